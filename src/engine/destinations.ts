// Which local paths are the destinations of files in unfinished jobs, so that addFile checks its own paths
// instead of every file of every job (thousands of jobs: the check was most of addFile's time).
import type { JobImpl } from './job';
import type { FileRecord } from './records';

/** Destinations compare case-insensitively where the file system usually does. */
export function normalisePathKey(p: string): string {
  return process.platform === 'win32' || process.platform === 'darwin' ? p.toLowerCase() : p;
}

export class ActiveDestinations {
  /** Path key → the jobs with a file there; built at the first check. */
  private byPath: Map<string, JobImpl[]> | undefined;

  constructor(
    private readonly allJobs: () => Iterable<JobImpl>,
    /** Whether the engine still has this job (it may have been removed without becoming final first). */
    private readonly isLive: (job: JobImpl) => boolean,
  ) {}

  /** Whether an unfinished job has a file at this path key. */
  has(key: string): boolean {
    const jobs = this.index().get(key);
    if (!jobs) {
      return false;
    }
    const holders = jobs.filter((j) => !j.isFinal && this.isLive(j));
    if (holders.length === 0) {
      this.byPath!.delete(key);
    } else if (holders.length < jobs.length) {
      this.byPath!.set(key, holders);
    }
    return holders.length > 0;
  }

  /** Files added to a job. */
  add(job: JobImpl, files: readonly FileRecord[]): void {
    if (this.byPath) {
      for (const f of files) {
        this.put(normalisePathKey(f.localPath), job);
      }
    }
  }

  /** A job became final: its files hold their paths no longer. */
  release(job: JobImpl): void {
    if (!this.byPath) {
      return;
    }
    for (const f of job.record.files) {
      const key = normalisePathKey(f.localPath);
      const rest = this.byPath.get(key)?.filter((j) => j !== job);
      if (rest && rest.length > 0) {
        this.byPath.set(key, rest);
      } else {
        this.byPath.delete(key);
      }
    }
  }

  private index(): Map<string, JobImpl[]> {
    if (!this.byPath) {
      this.byPath = new Map();
      for (const job of this.allJobs()) {
        if (!job.isFinal) {
          for (const f of job.record.files) {
            this.put(normalisePathKey(f.localPath), job);
          }
        }
      }
    }
    return this.byPath;
  }

  private put(key: string, job: JobImpl): void {
    const jobs = this.byPath!.get(key);
    if (jobs) {
      jobs.push(job);
    } else {
      this.byPath!.set(key, [job]);
    }
  }
}
