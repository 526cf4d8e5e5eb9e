// Fetches one file: over one connection (transferFile), or over several when it is large, the server takes
// ranges and the entity has a strong validator (segmentedTransfer). The first response decides: when a plain
// GET's 200 shows a large, rangeable, validated entity, the file is fetched in segments from then on, that
// body read as the first one (a restart continues with the recorded segments).
import type { Dispatcher } from 'undici';
import { noteBytesHeld } from './restarts';
import { canSplit, planSegments } from './segmentPlan';
import { segmentedTransfer } from './segmentedTransfer';
import { transferFile, type TransferOptions } from './transfer';
import type { OtherSources } from './segmentSources';

/** Measured on the project's 2-core machine against nginx on loopback: see bench/README.md. */
export const DEFAULT_SEGMENTS_PER_FILE = 2;
export const DEFAULT_MIN_SEGMENT_BYTES = 16 * 1024 * 1024;
/** With several sources, segments per connection: a slow source then holds back only a small share of the file. */
const SEGMENTS_PER_CONNECTION = 4;
/** The write marks hold at most 64 segments (writeMarks.ts). */
const MAX_SEGMENTS = 64;

export interface FetchOptions extends TransferOptions {
  segmentsPerFile: number;
  minSegmentBytes: number;
  hashMode?: 'worker' | 'frontier' | 'end';
  marksPath?: string;
  otherSources?: OtherSources;
}

export async function fetchFile(options: FetchOptions): Promise<void> {
  const { file } = options;
  // Bytes fetched again after a restart are not progress: only those past the best offset (restarts.ts).
  const onProgress = (bytes: number): void => {
    if (noteBytesHeld(file, bytes)) {
      options.onNewBytes?.();
    }
    options.onProgress(bytes);
  };
  const o: FetchOptions = { ...options, onProgress };
  let firstBody: Dispatcher.ResponseData['body'] | undefined;
  let split = o.segmentsPerFile > 1;
  for (;;) {
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
    const pieces = o.otherSources?.urls.length ? Math.min(MAX_SEGMENTS, o.segmentsPerFile * SEGMENTS_PER_CONNECTION) : o.segmentsPerFile;
    file.segments = planSegments(file.bytesTotal!, pieces, o.minSegmentBytes);
    o.log(`${file.localPath}: ${file.bytesTotal} bytes in ${file.segments.length} segments.`);
    o.onCheckpoint();
  }
}
