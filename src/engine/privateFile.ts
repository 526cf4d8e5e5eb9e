// Files of the store folder that only their owner may read (the job journal, the header vault), replaced
// atomically. The temporary is created fresh every time: a leftover one would lend the new file its mode (a 0666
// .tmp made the vault world-readable) and a symbolic link planted at its name would be written through.
import * as fs from './io';
import { constants } from './io';
import * as path from 'node:path';

/** Writes `text` to `file` through `file.tmp`: mode 0600, fsync'd, renamed into place, folder fsync'd. */
export async function writePrivateFileAtomic(file: string, text: string): Promise<void> {
  const tmp = file + '.tmp';
  // unlink removes a planted link itself, never its target; whatever sits at the name goes.
  await fs.unlink(tmp).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') {
      throw e;
    }
  });
  // O_EXCL: a file or link that reappeared meanwhile makes this fail rather than be reused or followed.
  const fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0), 0o600);
  try {
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, file);
  await syncDir(path.dirname(file));
}

/** fsync a folder so a rename in it survives a power cut (not possible on Windows; ignored there). */
export async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') {
    return;
  }
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(dir, 'r');
    await fh.sync();
  } catch {
    // Some file systems refuse fsync on folders; the rename is still atomic.
  } finally {
    await fh?.close();
  }
}
