// Deleting temporary files. One that cannot be deleted (busy past the retries, permission) never stops
// complete() or cancel(): it goes on the job's list, which is journaled and retried later (retention.ts), and
// once the job is removed, on the engine's list of orphans.
import * as fs from './io';
import * as path from 'node:path';
import { osError } from './errors';
import type { JobImpl } from './job';
import { deleteBusyFile } from './rename';
import type { JobStore } from './store';

export type Warn = (message: string) => void;

/** Temporaries of removed jobs that could not be deleted: kept in the store and retried until gone. */
export class OrphanTemporaries {
  paths: string[] = [];

  /** A final job is forgotten: the temporaries it could not delete stay listed here. */
  adopt(job: JobImpl): void {
    this.paths.push(...job.leftoverTemporaries.filter((p) => !this.paths.includes(p)));
  }
}

/** Where a file's segmented transfer notes its written offsets (writeMarks.ts). */
export function marksPath(storeDir: string, job: JobImpl, index: number): string {
  return path.join(storeDir, 'marks', `${job.id}.${index}`);
}

/** Deletes a temporary file; one that cannot be deleted yet goes on the job's list of leftovers. */
export async function deleteTemporary(job: JobImpl, p: string, warn: Warn): Promise<void> {
  try {
    await deleteBusyFile(p);
  } catch (e) {
    warn(`Job '${job.displayName}': ${osError(e, `cannot delete the temporary file ${p} yet; it is retried later`).message}`);
    const left = (job.record.leftoverTemporaries ??= []);
    if (!left.includes(p)) {
      left.push(p);
    }
  }
}

/** Deletes the temporaries of a download's unfinished files, and their marks. */
export async function deleteTemporaries(job: JobImpl, storeDir: string, warn: Warn): Promise<void> {
  for (const [i, f] of job.record.files.entries()) {
    if (!f.completed) {
      await deleteTemporary(job, f.temporaryPath, warn);
    }
    if (f.segments) {
      // Only a segmented transfer notes marks (a finished or reset one has deleted them); else swept at the next start.
      await fs.rm(marksPath(storeDir, job, i), { force: true }).catch(() => undefined);
    }
  }
}

/** Another try at the temporaries that could not be deleted, of jobs and of jobs already removed. */
export async function retryLeftoverTemporaries(
  jobs: Iterable<JobImpl>,
  orphans: OrphanTemporaries,
  store: Pick<JobStore, 'scheduleSave' | 'saveOrphans'>,
): Promise<void> {
  const remaining = async (paths: readonly string[]): Promise<string[]> => {
    const left: string[] = [];
    for (const p of paths) {
      await deleteBusyFile(p).catch(() => left.push(p));
    }
    return left;
  };
  for (const job of jobs) {
    const before = job.record.leftoverTemporaries;
    if (before && before.length > 0) {
      const after = await remaining(before);
      job.record.leftoverTemporaries = after.length > 0 ? after : undefined;
      if (after.length !== before.length) {
        store.scheduleSave(job.record);
      }
    }
  }
  if (orphans.paths.length > 0) {
    orphans.paths = await remaining(orphans.paths);
    await store.saveOrphans(orphans.paths);
  }
}
