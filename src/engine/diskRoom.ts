// Room on disk for a file, checked before its bytes are written: a Content-Length larger than the free space of
// the destination's file system (or than the engine's maximum file size) is refused up front, and a body never
// grows past its announced size or that maximum (a server may send an endless body without a length).
import * as path from 'node:path';
import * as fs from './io';
import { DownloadError, redactUrl } from './errors';
import type { FileRecord } from './records';

const ENOSPC_HRESULT = 0x80070070;
const ROOM_CHECK_MIN_BYTES = 1024 * 1024;
/** ERROR_FILE_TOO_LARGE: "The file size exceeds the limit allowed and cannot be saved." */
const FILE_TOO_LARGE_HRESULT = 0x800700df;

/**
 * Before writing: `total` is the entity's announced size (undefined: unknown), `toWrite` the bytes still to
 * come. Throws ERROR_FILE_TOO_LARGE (fatal) past `maxFileSizeBytes`, ENOSPC (transient: space may be freed)
 * when the file system has less room than that (checked from 1 MiB on). A file system that cannot say its free
 * space is not checked.
 */
export async function assertRoomFor(file: FileRecord, total: number | undefined, toWrite: number, maxFileSizeBytes: number | undefined): Promise<void> {
  if (total !== undefined) {
    assertWithinMaximum(file, total, maxFileSizeBytes, 'announces');
  }
  if (toWrite < ROOM_CHECK_MIN_BYTES) {
    // A small file is not worth a file-system call each (thousands of them): a full disk still fails its write.
    return;
  }
  const dir = path.dirname(file.temporaryPath);
  let free: number;
  try {
    const st = await fs.statfs(dir);
    free = Number(st.bavail) * Number(st.bsize);
  } catch {
    return;
  }
  if (Number.isFinite(free) && toWrite > free) {
    throw new DownloadError('ENOSPC', `${file.localPath} needs ${toWrite} more bytes but the disk of ${dir} has only ${free} free (the server of ${redactUrl(file.remoteUrl)} announces ${total ?? 'an unknown number of'} bytes).`, {
      hresult: ENOSPC_HRESULT,
      transient: true,
      context: 'LOCAL_FILE',
    });
  }
}

/** While writing: the file would hold `bytes`; throws once that passes the announced size or the maximum. */
export function assertBodyWithinBounds(file: FileRecord, bytes: number, maxFileSizeBytes: number | undefined): void {
  if (file.bytesTotal !== undefined && bytes > file.bytesTotal) {
    throw new DownloadError('WINHTTP_INVALID_SERVER_RESPONSE', `The server of ${redactUrl(file.remoteUrl)} sent more than the ${file.bytesTotal} bytes it announced; the extra bytes were not written.`, {
      hresult: 0x80072f78,
      transient: true,
      context: 'REMOTE_FILE',
    });
  }
  assertWithinMaximum(file, bytes, maxFileSizeBytes, 'sent');
}

function assertWithinMaximum(file: FileRecord, bytes: number, maxFileSizeBytes: number | undefined, verb: string): void {
  if (maxFileSizeBytes !== undefined && bytes > maxFileSizeBytes) {
    throw new DownloadError('ERROR_FILE_TOO_LARGE', `The server of ${redactUrl(file.remoteUrl)} ${verb} more than the maximum file size of ${maxFileSizeBytes} bytes for ${file.localPath}; nothing more is written.`, {
      hresult: FILE_TOO_LARGE_HRESULT,
      context: 'REMOTE_FILE',
    });
  }
}
