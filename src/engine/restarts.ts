// Progress and restarts of one file. Bytes fetched again after a restart from byte 0 are not progress: only
// bytes past the best offset the file ever reached are. A file that keeps starting over without getting past
// it (a server without ranges that breaks off at 90 %, an entity that changes on every request) is stopped
// after MAX_FRUITLESS_RESTARTS restarts instead of being fetched again and again until the no-progress timeout.
import { DownloadError, redactUrl } from './errors';
import type { FileRecord } from './records';

/** Restarts from byte 0 in a row, none of them followed by a byte past the best offset, before ERROR. */
export const MAX_FRUITLESS_RESTARTS = 5;

/**
 * The file now holds `bytes` (from its start, or summed over its segments). Returns true when that is past
 * the best offset ever reached: new bytes, the only kind that counts as progress.
 */
export function noteBytesHeld(file: FileRecord, bytes: number): boolean {
  if (bytes <= count(file.bestOffset)) {
    return false;
  }
  file.bestOffset = bytes;
  file.fruitlessRestarts = 0;
  return true;
}

/** Counts a restart of the file from byte 0; throws (fatal) when it is one too many without new bytes. */
export function noteRestart(file: FileRecord, why: string): void {
  file.restarts++;
  const fruitless = count(file.fruitlessRestarts) + 1;
  if (fruitless <= MAX_FRUITLESS_RESTARTS) {
    file.fruitlessRestarts = fruitless;
    return;
  }
  // A later resume() by the user gets a fresh series.
  file.fruitlessRestarts = 0;
  throw new DownloadError(
    'DO_E_DOWNLOAD_NO_PROGRESS',
    `${file.localPath} started over from byte 0 ${MAX_FRUITLESS_RESTARTS} times without getting past byte ${count(file.bestOffset)} (last because ${why}): the server of ${redactUrl(file.remoteUrl)} cannot resume it; stopped instead of downloading it again and again.`,
    { context: 'REMOTE_FILE' },
  );
}

/** A count from the journal (hostile input like any file on disk): anything but a whole number ≥ 0 is 0. */
function count(v: unknown): number {
  return Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : 0;
}
