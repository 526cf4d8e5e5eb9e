// What a failed run, a due retry or a changed retry schedule leads to, decided from the job's record and the clock
// alone: no I/O and no state change, so each decision is tested on its own (failurePolicy.test.ts). The runner
// applies the verdicts (jobRunner.ts, jobFailures.ts).
import type { JobRecord } from './records';
import { retryDelaySeconds } from './retrySchedule';

/** The facts of an error the policy looks at (a DownloadError has them). */
export interface FailureFacts {
  transient: boolean;
  /** The server's Retry-After, already bounded. */
  retryAfterSeconds?: number;
}

export type RetrySettings = Pick<
  JobRecord,
  'noProgressSince' | 'retriesWithoutProgress' | 'noProgressTimeoutSeconds' | 'retryDelaysSeconds' | 'minimumRetryDelaySeconds'
>;

export type FailureVerdict =
  /** Fatal: ERROR at once. */
  | { kind: 'fatal' }
  /** Transient, but waiting would end past the no-progress timeout: ERROR (DO_E_DOWNLOAD_NO_PROGRESS). */
  | { kind: 'noProgress'; noProgressSince: number }
  /** Transient: TRANSIENT_ERROR until `retryAt`. */
  | { kind: 'retry'; noProgressSince: number; retriesWithoutProgress: number; delaySeconds: number; retryAt: number };

/** A failed run: fatal errors go to ERROR, transient ones wait for a retry unless progress has stopped too long. */
export function judgeFailure(error: FailureFacts, job: RetrySettings, now: number): FailureVerdict {
  if (!error.transient) {
    return { kind: 'fatal' };
  }
  // A stretch without progress starts its schedule over (progress clears noProgressSince).
  const retryIndex = job.noProgressSince === undefined ? 0 : (job.retriesWithoutProgress ?? 0);
  const noProgressSince = job.noProgressSince ?? now;
  const delaySeconds = retryDelaySeconds(job, retryIndex, error.retryAfterSeconds);
  const timeout = job.noProgressTimeoutSeconds;
  if (timeout === 0 || delaySeconds > timeout || now - noProgressSince >= timeout * 1000) {
    return { kind: 'noProgress', noProgressSince };
  }
  return { kind: 'retry', noProgressSince, retriesWithoutProgress: retryIndex + 1, delaySeconds, retryAt: now + delaySeconds * 1000 };
}

export type RetryWaitVerdict = { kind: 'giveUp' } | { kind: 'retryNow' } | { kind: 'wait'; ms: number };

/** A job waiting in TRANSIENT_ERROR, looked at by the scheduler: past its no-progress deadline, due, or how long to wait. */
export function judgeRetryWait(job: Pick<JobRecord, 'noProgressSince' | 'noProgressTimeoutSeconds' | 'retryAt'>, now: number): RetryWaitVerdict {
  const deadline = job.noProgressSince === undefined ? Infinity : job.noProgressSince + job.noProgressTimeoutSeconds * 1000;
  if (now >= deadline) {
    return { kind: 'giveUp' };
  }
  if (job.retryAt === undefined || now >= job.retryAt) {
    return { kind: 'retryNow' };
  }
  return { kind: 'wait', ms: Math.min(job.retryAt, deadline) - now };
}

/**
 * The job's retry delays changed: a wait under way counts from its start with the new delay. Undefined when the
 * job is not waiting for a retry.
 */
export function rescheduledRetryAt(
  job: Pick<JobRecord, 'state' | 'retryAt' | 'retryWaitStarted' | 'retriesWithoutProgress' | 'serverRetryAfterSeconds' | 'retryDelaysSeconds' | 'minimumRetryDelaySeconds'>,
): number | undefined {
  if (job.state !== 'TRANSIENT_ERROR' || job.retryAt === undefined || job.retryWaitStarted === undefined) {
    return undefined;
  }
  return job.retryWaitStarted + retryDelaySeconds(job, Math.max(0, (job.retriesWithoutProgress ?? 1) - 1), job.serverRetryAfterSeconds) * 1000;
}
