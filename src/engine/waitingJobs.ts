// The jobs the scheduler looks at (queued, waiting for a retry, running), kept up to date as states change, so
// that scheduling costs what is waiting and running, not every job in the store (thousands of finished ones).
import type { JobImpl } from './job';
import { waitingOrder, type SchedulerJob } from './scheduler';

/** A job's place in the queue; a later place of the same job (queued again) makes this one stale. */
interface Place extends SchedulerJob {
  job: JobImpl;
}

/** From this many newly queued jobs at once, sorting the whole queue beats inserting each. */
const SORT_FROM = 64;

export class WaitingJobs {
  /** Places of QUEUED jobs in the scheduler's order; stale ones are dropped when met. */
  private queue: Place[] = [];
  /** Jobs queued since the queue was last read: placed then, once their keys (last run's end) are final. */
  private arrivals: Place[] = [];
  private readonly current = new Map<JobImpl, Place>();
  private readonly retrying = new Set<JobImpl>();
  /** Jobs with a run in progress. */
  readonly running = new Set<JobImpl>();

  /** Called whenever a job's state may have changed (and for each job at start-up). */
  noteState(job: JobImpl): void {
    if (job.state === 'QUEUED') {
      if (!this.current.has(job)) {
        const place = { job, id: job.id, priority: job.priority, created: job.record.created, lastRunEnded: 0 };
        this.current.set(job, place);
        this.arrivals.push(place);
      }
      return;
    }
    this.current.delete(job);
    if (job.state === 'TRANSIENT_ERROR') {
      this.retrying.add(job);
    }
  }

  /** Priorities changed: place every queued job again. */
  reorder(): void {
    for (const p of this.queue) {
      p.priority = p.job.priority;
    }
    this.queue.sort(waitingOrder);
  }

  /** Jobs in TRANSIENT_ERROR (others that were, are forgotten here). */
  *retryingJobs(): Iterable<JobImpl> {
    for (const job of this.retrying) {
      if (job.state === 'TRANSIENT_ERROR') {
        yield job;
      } else {
        this.retrying.delete(job);
      }
    }
  }

  /**
   * The first queued jobs that may start, in the scheduler's order: every FOREGROUND one and `others` more;
   * `more` says whether any other could start too.
   */
  head(others: number, mayStart: (job: JobImpl) => boolean): { jobs: JobImpl[]; more: boolean } {
    this.placeArrivals();
    const jobs: JobImpl[] = [];
    let taken = 0;
    let kept = 0;
    let i = 0;
    let more = false;
    for (; i < this.queue.length; i++) {
      const place = this.queue[i];
      if (this.current.get(place.job) !== place || place.job.state !== 'QUEUED') {
        continue; // stale: dropped below
      }
      this.queue[kept++] = place;
      if (!mayStart(place.job)) {
        continue;
      }
      if (place.priority !== 'FOREGROUND' && taken === others) {
        more = true;
        i++;
        break;
      }
      jobs.push(place.job);
      if (place.priority !== 'FOREGROUND') {
        taken++;
      }
    }
    if (kept < i) {
      this.queue.splice(kept, i - kept);
    }
    return { jobs, more };
  }

  private placeArrivals(): void {
    if (this.arrivals.length === 0) {
      return;
    }
    for (const p of this.arrivals) {
      p.priority = p.job.priority;
      p.lastRunEnded = p.job.rt.lastRunEnded;
    }
    if (this.arrivals.length >= SORT_FROM) {
      this.queue = this.queue.concat(this.arrivals).sort(waitingOrder);
    } else {
      for (const p of this.arrivals) {
        let lo = 0;
        let hi = this.queue.length;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (waitingOrder(this.queue[mid], p) <= 0) {
            lo = mid + 1;
          } else {
            hi = mid;
          }
        }
        this.queue.splice(lo, 0, p);
      }
    }
    this.arrivals = [];
  }
}
