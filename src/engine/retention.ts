// Retention: jobs created longer ago than the retention period are cancelled and forgotten (at start-up and
// hourly), after another try at the temporaries complete()/cancel() could not delete.
import type { JobImpl } from './job';
import { nextTurn } from './turns';

const DAY = 24 * 3_600_000;
/** Loops over every job give the event loop a turn this often. */
const YIELD_EVERY_JOBS = 256;

/** What retention needs from the engine. */
export interface RetentionHost {
  /** The setting as given (1–30, default 30), read at each sweep. */
  retentionDays(): number | undefined;
  now(): number;
  log(level: 'info' | 'warn', message: string): void;
  /** Every job, final or not. */
  jobs(): Iterable<JobImpl>;
  retryLeftoverTemporaries(): Promise<void>;
  /** Drops a final job from memory (its undeletable temporaries become orphans). */
  forget(job: JobImpl): void;
  removed(job: JobImpl): void;
  /** Journals the orphans, then the removal of these jobs. */
  saveRemoval(ids: string[]): Promise<void>;
}

/** Returns how many jobs were removed. */
export async function runRetention(host: RetentionHost): Promise<number> {
  await host.retryLeftoverTemporaries();
  const days = Math.min(30, Math.max(1, host.retentionDays() ?? 30));
  const cutoff = host.now() - days * DAY;
  const removedIds: string[] = [];
  for (const job of [...host.jobs()]) {
    if (job.record.created >= cutoff) {
      continue;
    }
    if (!job.isFinal) {
      host.log('info', `Job '${job.displayName}' is older than ${days} days: cancelling it and deleting its temporary files.`);
      await job.cancel().catch((e) => host.log('warn', `Retention could not cancel '${job.displayName}': ${(e as Error).message}`));
    }
    host.forget(job);
    removedIds.push(job.id);
    host.removed(job);
    if (removedIds.length % YIELD_EVERY_JOBS === 0) {
      await nextTurn(); // thousands of expired jobs (and their listeners) must not stall the extension host
    }
  }
  if (removedIds.length > 0) {
    await host.saveRemoval(removedIds);
  }
  return removedIds.length;
}
