// Bytes kept after a crash of the process within the same boot were only in the page cache when it died. The
// kernel usually wrote them out, but not always (a writeback error, an external disk that lost power, a FUSE
// file system that crashed): the file may then read back zeros there. Such a kept range is checked before the
// transfer builds on it: its last bytes are asked again (a small overlap before the resume offset) and must equal
// what the file holds; on any doubt the range is fetched again from the durable offset.
import * as fs from './io';

/** Bytes of overlap asked again before a kept range's end. */
export const OVERLAP_BYTES = 4096;

/** The overlap the server sent is not what the file holds: the kept bytes are not to be trusted. */
export class KeptBytesMismatch extends Error {
  constructor(readonly at: number) {
    super(`the bytes kept before the restart differ from the server's at byte ${at}`);
  }
}

/** Reads the `length` bytes at `position` (the kept bytes to compare); throws KeptBytesMismatch if they are not all there. */
export async function readKept(fh: fs.FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  try {
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, position + got);
      if (bytesRead === 0) {
        break;
      }
      got += bytesRead;
    }
  } catch {
    throw new KeptBytesMismatch(position);
  }
  if (got < length) {
    throw new KeptBytesMismatch(position + got);
  }
  return buf;
}

/**
 * The body's chunks past its first `expect.length` bytes, which must equal `expect` (the file's bytes at the
 * same place): KeptBytesMismatch otherwise. `onVerified` runs once they all matched.
 */
export async function* pastOverlap(body: AsyncIterable<Buffer>, expect: Buffer, position: number, onVerified: () => void): AsyncGenerator<Buffer> {
  let matched = 0;
  for await (const chunk of body) {
    if (matched >= expect.length) {
      yield chunk;
      continue;
    }
    const n = Math.min(expect.length - matched, chunk.length);
    if (!chunk.subarray(0, n).equals(expect.subarray(matched, matched + n))) {
      throw new KeptBytesMismatch(position + matched);
    }
    matched += n;
    if (matched === expect.length) {
      onVerified();
    }
    if (n < chunk.length) {
      yield chunk.subarray(n);
    }
  }
}
