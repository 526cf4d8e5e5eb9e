// Which queued jobs to start and which running ones to preempt: a pure function of the current picture.
import type { JobPriority } from './types';

export const PRIORITY_RANK: Record<JobPriority, number> = { FOREGROUND: 0, HIGH: 1, NORMAL: 2, LOW: 3 };

export interface SchedulerJob {
  id: string;
  priority: JobPriority;
  created: number;
  /** When the job last stopped running (round robin among equals: the one that waited longest goes first). */
  lastRunEnded: number;
}

export interface RunningJob extends SchedulerJob {
  /** When the current run started (for time slices). */
  runStarted: number;
}

export interface Plan {
  start: string[];
  preempt: string[];
}

/** The order in which queued jobs get their turn: higher priority, then the one that waited longest, then the oldest. */
export function waitingOrder(a: SchedulerJob, b: SchedulerJob): number {
  return PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority] || a.lastRunEnded - b.lastRunEnded || a.created - b.created;
}

/**
 * Only the first jobs of that order can start or preempt: the FOREGROUND ones, and at most one other for each
 * free slot or running job. A job that finds no victim means none after it finds one either.
 */
export function relevantWaiting(maxConcurrent: number, running: number): number {
  return maxConcurrent + running;
}

/**
 * FOREGROUND jobs always run; the others share `maxConcurrent` slots, higher priority first. A waiting job
 * preempts a running one of lower priority, or one of equal priority that has used up its time slice.
 */
export function planSchedule(queued: SchedulerJob[], running: RunningJob[], maxConcurrent: number, now: number, timeSliceMs: number): Plan {
  const waiting = [...queued].sort(waitingOrder);
  const background = running.filter((r) => r.priority !== 'FOREGROUND');
  let free = maxConcurrent - background.length;
  const plan: Plan = { start: [], preempt: [] };
  // Candidates to give up their slot: lowest priority first, then the one that has run longest.
  const victims = [...background].sort((a, b) => PRIORITY_RANK[b.priority] - PRIORITY_RANK[a.priority] || a.runStarted - b.runStarted);
  for (const job of waiting) {
    if (job.priority === 'FOREGROUND') {
      plan.start.push(job.id);
      continue;
    }
    if (free > 0) {
      plan.start.push(job.id);
      free--;
      continue;
    }
    const i = victims.findIndex(
      (v) => PRIORITY_RANK[v.priority] > PRIORITY_RANK[job.priority] || (v.priority === job.priority && now - v.runStarted >= timeSliceMs),
    );
    if (i >= 0) {
      plan.preempt.push(victims[i].id);
      victims.splice(i, 1);
      plan.start.push(job.id);
    }
  }
  return plan;
}
