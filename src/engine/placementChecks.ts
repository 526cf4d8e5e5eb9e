// Complete puts a temporary file in place by its name, hours or days after it was downloaded and verified.
// Whoever can write the destination's folder could meanwhile have swapped that name for a symbolic link (the
// link itself would become the destination, pointing at a file of their choice) or for another file. So at
// placement the name must still be the file the transfer finished: same device and inode as recorded then,
// a regular file, with no other name than the one Complete may itself have made (or, for a file placed from
// the content cache, its cache entry).
import * as fs from './io';
import { DownloadError } from './errors';
import type { FileRecord } from './records';

/** Notes which file the temporary is, once it is transferred (placement compares against it). */
export async function recordTemporaryIdentity(f: FileRecord): Promise<void> {
  const st = await fs.lstat(f.temporaryPath).catch(() => undefined);
  if (st?.isFile()) {
    f.temporaryIdentity = { dev: st.dev, ino: st.ino };
  }
}

export async function checkTemporaryUnchanged(f: FileRecord): Promise<void> {
  const st = await fs.lstat(f.temporaryPath).catch(() => undefined);
  const id = f.temporaryIdentity;
  let why: string | undefined;
  if (!st) {
    why = 'it is gone';
  } else if (st.isSymbolicLink()) {
    why = 'it was replaced by a symbolic link';
  } else if (!st.isFile()) {
    why = 'it is no longer a regular file';
  } else if (id && (st.dev !== id.dev || st.ino !== id.ino)) {
    why = 'it was replaced by another file';
  } else if (f.bytesTotal !== undefined && st.size !== f.bytesTotal) {
    why = `its size changed (${st.size} bytes, not ${f.bytesTotal})`;
  } else if (st.nlink > 1 && !f.bytesFromCache && !(await isLinkedAt(f.localPath, st))) {
    // (A file placed from the content cache is a hard link to its cache entry: that other name is ours.)
    why = 'it has another name (a hard link) somewhere else';
  }
  if (why) {
    throw new DownloadError('BG_E_LOCAL_FILE_CHANGED', `The temporary file ${f.temporaryPath} is no longer the file that was downloaded and verified (${why}); it was not put in place as '${f.localPath}'. Cancel the job and download it again.`, {
      context: 'LOCAL_FILE',
    });
  }
}

/** Whether `p` is the file `st` describes (a link to the temporary that an earlier Complete made and could not undo). */
async function isLinkedAt(p: string, st: { dev: number; ino: number }): Promise<boolean> {
  const d = await fs.lstat(p).catch(() => undefined);
  return d !== undefined && d.isFile() && d.dev === st.dev && d.ino === st.ino && d.nlink === 2;
}
