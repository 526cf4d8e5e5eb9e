// How long a job in TRANSIENT_ERROR waits. A job may carry its own short, growing delays for the first retries
// (a person who just started a download is watching it: 5 s, 15 s, 60 s), each capped by its minimum retry
// delay; later retries wait the minimum (BITS: 600 s). A server's Retry-After is never undercut.
import { invalidArg } from './errors';
import type { JobRecord } from './records';

/** More steps than this is not a schedule a person is watching. */
export const MAX_RETRY_DELAYS = 10;
const MAX_DELAY_SECONDS = 0xffffffff;

/** The delays a caller gave, as whole seconds, or E_INVALIDARG naming what is wrong. */
export function checkRetryDelays(value: unknown, floorSeconds: number): number[] {
  const why = retryDelaysProblem(value);
  if (why) {
    throw invalidArg(`The retry delays ${why}.`);
  }
  return (value as number[]).map((s) => Math.max(floorSeconds, Math.floor(s)));
}

/** Why a list is not a retry schedule (also for the store, which may have been edited), or undefined. */
export function retryDelaysProblem(value: unknown): string | undefined {
  if (!Array.isArray(value)) {
    return `must be a list of numbers of seconds, not ${typeof value}`;
  }
  if (value.length > MAX_RETRY_DELAYS) {
    return `are ${value.length}; at most ${MAX_RETRY_DELAYS} are allowed`;
  }
  const bad = value.findIndex((s) => typeof s !== 'number' || !Number.isFinite(s) || s < 0 || s > MAX_DELAY_SECONDS);
  return bad < 0 ? undefined : `must be numbers of seconds between 0 and ${MAX_DELAY_SECONDS} (item ${bad + 1} is ${String(JSON.stringify(value[bad])).slice(0, 40)})`;
}

/** Seconds to wait before retry number `retryIndex` (0: the first) of a stretch without progress. */
export function retryDelaySeconds(r: Pick<JobRecord, 'retryDelaysSeconds' | 'minimumRetryDelaySeconds'>, retryIndex: number, serverSeconds = 0): number {
  const own = r.retryDelaysSeconds?.[retryIndex];
  const delay = own === undefined ? r.minimumRetryDelaySeconds : Math.min(own, r.minimumRetryDelaySeconds);
  return Math.max(delay, serverSeconds);
}
