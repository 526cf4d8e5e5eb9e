// Fetches one file: over one connection (transferFile), or over several when it is large, the server takes
// ranges and the entity has a strong validator (segmentedTransfer). The first response decides: when a plain
// GET's 200 shows a large, rangeable, validated entity, the file is fetched in segments from then on, that
// body read as the first one (a restart continues with the recorded segments).
import type { Dispatcher } from 'undici';
import { DownloadError, redactUrl } from './errors';
import { canSplit, planSegments, segmentedTransfer } from './segmentedTransfer';
import { transferFile, type TransferOptions } from './transfer';

/** Measured on the project's 2-core machine against nginx on loopback: see bench/README.md. */
export const DEFAULT_SEGMENTS_PER_FILE = 2;
export const DEFAULT_MIN_SEGMENT_BYTES = 16 * 1024 * 1024;
/** Times one call may start a file over because its entity changed under the segments. */
const MAX_RESTARTS_PER_CALL = 3;

export interface FetchOptions extends TransferOptions {
  segmentsPerFile: number;
  minSegmentBytes: number;
  hashMode?: 'worker' | 'frontier' | 'end';
  marksPath?: string;
}

export async function fetchFile(o: FetchOptions): Promise<void> {
  const { file } = o;
  let firstBody: Dispatcher.ResponseData['body'] | undefined;
  let split = o.segmentsPerFile > 1;
  for (let round = 0; ; round++) {
    if (round > MAX_RESTARTS_PER_CALL) {
      throw new DownloadError('DO_E_INSUFFICIENT_RANGE_SUPPORT', `The file at ${redactUrl(file.remoteUrl)} keeps changing while it is fetched in segments.`, {
        transient: true,
        context: 'REMOTE_FILE',
      });
    }
    if (file.segments && !file.transferred) {
      // Segments on disk are finished as planned, even if segmenting was turned off since.
      const body = firstBody;
      firstBody = undefined;
      const outcome = await segmentedTransfer({ ...o, firstBody: body });
      if (outcome === 'done') {
        return;
      }
      // Its 206 answers carried nothing to check them by: one connection, whose resumes restart instead.
      split &&= outcome !== 'unsplittable';
      // The segments are forgotten: journal that before the next attempt recreates the temporary file.
      await o.persistNow?.();
      continue;
    }
    const splitLargeFile = split ? (h: Parameters<NonNullable<TransferOptions['splitLargeFile']>>[0]) => canSplit(file, h, o.segmentsPerFile, o.minSegmentBytes) : undefined;
    const r = await transferFile({ ...o, splitLargeFile });
    if (r === undefined) {
      return;
    }
    firstBody = r.split;
    file.segments = planSegments(file.bytesTotal!, o.segmentsPerFile, o.minSegmentBytes);
    o.log(`${file.localPath}: ${file.bytesTotal} bytes in ${file.segments.length} segments.`);
    o.onCheckpoint();
  }
}
