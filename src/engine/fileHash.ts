// Reading a file back for its checksum, written once: the whole file (the content cache), a prefix (a resumed
// transfer, an archive), or while copying it. Through io.ts, so the power-loss test sees these reads too.
import { createHash, type Hash } from 'node:crypto';
import * as fs from './io';
import type { DigestAlgorithm } from './integrity';

const CHUNK_BYTES = 1 << 20;

/** The bytes [0, length) of an open file in chunks of one reused buffer (each valid until the next); stops early at its end. */
export async function* fileChunks(file: fs.FileHandle, length = Infinity): AsyncGenerator<Buffer> {
  const buf = Buffer.allocUnsafe(CHUNK_BYTES);
  for (let pos = 0; pos < length; ) {
    const { bytesRead } = await file.read(buf, 0, Math.min(buf.length, length - pos), pos);
    if (bytesRead === 0) {
      return;
    }
    yield buf.subarray(0, bytesRead);
    pos += bytesRead;
  }
}

/** Feeds the first `length` bytes of an open file (all of it by default) to `hash`, and returns it. */
export async function hashOpenFile(file: fs.FileHandle, hash: Hash, length = Infinity): Promise<Hash> {
  for await (const chunk of fileChunks(file, length)) {
    hash.update(chunk);
  }
  return hash;
}

/** The hex digest of a whole file; a symbolic link is never followed (it fails with ELOOP). */
export async function hashFile(p: string, algorithm: DigestAlgorithm = 'sha256'): Promise<string> {
  const fh = await fs.open(p, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0));
  try {
    return (await hashOpenFile(fh, createHash(algorithm))).digest('hex');
  } finally {
    await fh.close();
  }
}
