// Speed limits (contract §10): the engine's global limit, shared by every transfer, and each job's own limit.
// A transfer pays for each body chunk after reading it and, while the bucket is in debt, waits before reading
// the next one: the body stream is not read, so TCP's flow control slows the server down. Bursts stay small
// (a bucket holds 100 ms of bytes, plus the one chunk each transfer reads before paying). Under the global limit, waiting transfers are
// served by priority (FOREGROUND first, then HIGH, NORMAL, LOW), first come first served within one. Below
// 1 MiB/s a file on one connection is asked for in small ranges, each paid for before it is asked (pacedRanges.ts).
import { pieceBytesFor } from './pacedRanges';
import type { JobPriority } from './types';

const PRIORITY_ORDER: Record<JobPriority, number> = { FOREGROUND: 0, HIGH: 1, NORMAL: 2, LOW: 3 };
/**
 * The bucket holds this much time of bytes: bursts stay short, and a timer firing up to this late loses
 * nothing. No minimum: a chunk is admitted whenever the balance is not negative, whatever its size.
 */
const BURST_SECONDS = 0.1;
/**
 * A transfer starved by higher priorities still gets a chunk after this long: a transfer that receives
 * nothing for the low-speed window (2 min by default) would be taken for a stalled connection.
 */
const STARVATION_MS = 15_000;
/** A job counts as held back by a limit when it waited for one this recently (for "limited" in the UI). */
const LIMITED_RECENTLY_MS = 2_000;
/**
 * Each connection reads one chunk (up to 64 KiB) before it pays for it: under a low limit, many connections
 * would read that much ahead of the budget when they start. A file is split only into as many segments as
 * the limit gives this much each, so that head start stays under 1/8 s of the limit.
 */
const BYTES_PER_SECOND_PER_SEGMENT = 512 * 1024;
/** Below this, a chunk of 64 KiB would take more than a minute: the limit would look like a stalled transfer. */
export const MIN_BYTES_PER_SECOND = 1024;

interface Waiter {
  bytes: number;
  order: number;
  since: number;
  resolve: () => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** A token bucket that admits chunks: paid on admission, admitted while the balance is not negative. */
class Bucket {
  private tokens = 0;
  private last: number;
  private readonly waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private rate: number,
    private readonly now: () => number,
  ) {
    this.last = now();
  }

  get bytesPerSecond(): number {
    return this.rate;
  }

  setRate(rate: number): void {
    this.refill();
    this.rate = rate;
    this.tokens = Math.min(this.tokens, this.depth());
    this.pump();
  }

  /** Pays for `bytes` (already received); resolves when the caller may read on. undefined: at once. */
  admit(bytes: number, order: number, signal?: AbortSignal): Promise<void> | undefined {
    if (this.rate <= 0) {
      return undefined;
    }
    this.refill();
    if (this.waiters.length === 0 && this.tokens >= 0) {
      this.tokens -= bytes;
      return undefined;
    }
    return new Promise<void>((resolve) => {
      const w: Waiter = { bytes, order, since: this.now(), resolve, signal };
      if (signal) {
        w.onAbort = () => this.release(w);
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.waiters.push(w);
      this.pump();
    });
  }

  /** Whether transfers are waiting for this bucket. */
  get busy(): boolean {
    return this.waiters.length > 0;
  }

  private depth(): number {
    return this.rate * BURST_SECONDS;
  }

  private refill(): void {
    const t = this.now();
    if (this.rate > 0) {
      this.tokens = Math.min(this.depth(), this.tokens + ((t - this.last) * this.rate) / 1000);
    }
    this.last = t;
  }

  private release(w: Waiter): void {
    const i = this.waiters.indexOf(w);
    if (i >= 0) {
      this.waiters.splice(i, 1);
    }
    if (w.signal && w.onAbort) {
      w.signal.removeEventListener('abort', w.onAbort);
    }
    w.resolve();
  }

  /** The waiter served next: one starved too long, else the highest priority, first come first served. */
  private next(): Waiter {
    const t = this.now();
    let best = this.waiters[0];
    for (const w of this.waiters) {
      if (t - w.since >= STARVATION_MS) {
        return w;
      }
      if (w.order < best.order) {
        best = w;
      }
    }
    return best;
  }

  private pump(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.rate <= 0) {
      for (const w of [...this.waiters]) {
        this.release(w);
      }
      return;
    }
    this.refill();
    while (this.waiters.length > 0 && this.tokens >= 0) {
      const w = this.next();
      this.tokens -= w.bytes;
      this.release(w);
    }
    if (this.waiters.length > 0) {
      const wait = Math.max(1, Math.ceil((-this.tokens * 1000) / this.rate));
      this.timer = setTimeout(() => this.pump(), wait);
    }
  }
}

/** What the limiter needs to know of a job; read at each chunk, so changes apply at once. */
export interface PacedJob {
  readonly id: string;
  readonly priority: JobPriority;
  /** The job's own limit in bytes per second; 0 or undefined: only the global limit. */
  readonly maxBytesPerSecond?: number;
}

export class RateLimiter {
  private readonly global: Bucket;
  private readonly perJob = new Map<string, Bucket>();
  private readonly lastHeld = new Map<string, number>();

  constructor(
    globalBytesPerSecond = 0,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.global = new Bucket(globalBytesPerSecond, now);
  }

  get globalBytesPerSecond(): number {
    return this.global.bytesPerSecond;
  }

  setGlobalLimit(bytesPerSecond: number): void {
    this.global.setRate(Math.max(0, bytesPerSecond || 0));
  }

  /**
   * Called by a transfer after reading `bytes` of a body, before reading more (every segment and file of
   * the job calls it). undefined when it may go on at once; else a promise that resolves when it may (or
   * when `signal` aborts).
   */
  take(job: PacedJob, bytes: number, signal?: AbortSignal): Promise<void> | undefined {
    // The record may come from a damaged store: anything but a positive number means no limit of its own.
    const given = job.maxBytesPerSecond;
    const own = typeof given === 'number' && Number.isFinite(given) && given > 0 ? Math.max(MIN_BYTES_PER_SECOND, given) : 0;
    let bucket = this.perJob.get(job.id);
    if (own > 0 && !bucket) {
      bucket = new Bucket(own, this.now);
      this.perJob.set(job.id, bucket);
    } else if (bucket && bucket.bytesPerSecond !== own) {
      bucket.setRate(own);
      if (own <= 0) {
        this.perJob.delete(job.id);
      }
    }
    const order = PRIORITY_ORDER[job.priority] ?? PRIORITY_ORDER.NORMAL;
    const first = own > 0 ? bucket?.admit(bytes, order, signal) : undefined;
    if (!first) {
      return this.admitGlobal(job.id, bytes, order, signal);
    }
    this.lastHeld.set(job.id, this.now());
    return first.then(() => (signal?.aborted ? undefined : this.admitGlobal(job.id, bytes, order, signal)));
  }

  private admitGlobal(id: string, bytes: number, order: number, signal?: AbortSignal): Promise<void> | undefined {
    const wait = this.global.admit(bytes, order, signal);
    if (wait) {
      this.lastHeld.set(id, this.now());
    }
    return wait;
  }

  /** How many connections a file of `job` may use, given `wanted` without limits (see BYTES_PER_SECOND_PER_SEGMENT). */
  segmentsFor(job: PacedJob, wanted: number): number {
    const limit = this.effectiveLimit(job);
    if (limit <= 0) {
      return wanted;
    }
    return Math.max(1, Math.min(wanted, Math.floor(limit / BYTES_PER_SECOND_PER_SEGMENT)));
  }

  /**
   * How much a response body of `job` may buffer ahead of its reader (transfer.ts bodyHighWaterMark): under a
   * limit, 50 ms of it (1 to 16 KiB), else undefined (undici's 64 KiB). Buffered bytes were already sent: the
   * less there is, the more the server's own rate follows the limit instead of moving in buffer-sized steps.
   */
  bodyHighWaterMarkFor(job: PacedJob): number | undefined {
    const limit = this.effectiveLimit(job);
    return limit > 0 ? Math.max(1024, Math.min(16 * 1024, Math.round(limit * 0.05))) : undefined;
  }

  /**
   * Under a low limit, the size of the ranges a transfer of `job` asks for one at a time (pacedRanges.ts);
   * undefined: no limit, or one high enough to stream the body. Read before each piece: it follows the limit,
   * and grows with the requests' round trip (`roundTripMs`).
   */
  rangePieceFor(job: PacedJob, roundTripMs?: number): number | undefined {
    return pieceBytesFor(this.effectiveLimit(job), roundTripMs);
  }

  /** The lower of the global limit and the job's own (0: none). */
  private effectiveLimit(job: PacedJob): number {
    const own = job.maxBytesPerSecond;
    const limits = [this.global.bytesPerSecond, typeof own === 'number' && Number.isFinite(own) ? own : 0].filter((l) => l > 0);
    return limits.length > 0 ? Math.min(...limits) : 0;
  }

  /** Whether a limit held this job back in the last moments (the UI says "limited"). */
  isLimiting(jobId: string): boolean {
    const at = this.lastHeld.get(jobId);
    return at !== undefined && this.now() - at < LIMITED_RECENTLY_MS;
  }

  /** Forgets a job (removed or final). */
  forget(jobId: string): void {
    this.perJob.get(jobId)?.setRate(0);
    this.perJob.delete(jobId);
    this.lastHeld.delete(jobId);
  }
}

/** "2M", "500k", "1.5 MB/s", "0" → bytes per second (k = 1024, M = 1024², G = 1024³); undefined when it is not a rate. */
export function parseRate(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?(?:\/s)?\s*$/i.exec(text);
  if (!m) {
    return undefined;
  }
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Math.floor(Number(m[1]) * unit);
}
