// Several files of one job in flight at once, when the caller allows it (JobRecord.filesInFlight > 1).
// Files are still taken in the order added; they may finish out of order, and complete() still renames
// in list order and keeps exactly the files transferred (and verified) before it was called.
import { setMaxListeners } from 'node:events';
import type { FileRecord } from './records';

export interface ParallelFilesOptions {
  files: FileRecord[];
  /** Files in flight at most (connections per file are a separate matter: see segmentsPerFile). */
  limit: number;
  /** The run's signal: aborting it stops every file in flight. */
  signal: AbortSignal;
  /** Transfers one file; `signal` is this pool's own (aborted on the first failure too). */
  runOne: (file: FileRecord, index: number, signal: AbortSignal) => Promise<void>;
}

/** Thrown with the index of the file whose transfer failed first (the others were stopped and kept their bytes). */
export class FileFailure extends Error {
  constructor(
    readonly index: number,
    readonly error: unknown,
  ) {
    super(`file ${index} failed`);
  }
}

export async function runFilesInParallel(o: ParallelFilesOptions): Promise<void> {
  const inner = new AbortController();
  // Every request in flight listens to it.
  setMaxListeners(Math.max(10, o.limit * 4), inner.signal);
  const onAbort = (): void => inner.abort();
  if (o.signal.aborted) {
    inner.abort();
  } else {
    o.signal.addEventListener('abort', onAbort, { once: true });
  }
  let next = 0;
  let failure: FileFailure | undefined;
  const take = (): number => {
    while (next < o.files.length) {
      const i = next++;
      const f = o.files[i];
      if (!f.transferred && !f.completed) {
        return i;
      }
    }
    return -1;
  };
  const lane = async (): Promise<void> => {
    for (;;) {
      if (inner.signal.aborted) {
        return;
      }
      const i = take();
      if (i < 0) {
        return;
      }
      try {
        await o.runOne(o.files[i], i, inner.signal);
      } catch (e) {
        if (!failure && !o.signal.aborted) {
          failure = new FileFailure(i, e);
          inner.abort();
        }
        return;
      }
    }
  };
  try {
    const lanes = Math.max(1, Math.min(o.limit, o.files.length));
    await Promise.all(Array.from({ length: lanes }, lane));
  } finally {
    o.signal.removeEventListener('abort', onAbort);
  }
  if (failure) {
    throw failure;
  }
}
