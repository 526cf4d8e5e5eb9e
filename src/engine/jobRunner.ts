// The runner: decides what runs (pump), starts and stops runs, carries a run through its files and turns its
// progress into speed and events. It owns each job's run (job.rt.run, the live byte counts) and the scheduler's
// wake-up timer; how a failure ends is the failure policy's (jobFailures.ts, failurePolicy.ts).
import type { Dispatcher } from 'undici';
import { fillFromCache, type ContentCache } from './contentCache';
import { DEFAULT_TIMEOUTS, type EngineOptions } from './engineOptions';
import { DEFAULT_MIN_SEGMENT_BYTES, DEFAULT_SEGMENTS_PER_FILE, fetchFile, type FetchOptions } from './fetchFile';
import { judgeRetryWait } from './failurePolicy';
import { autoCompleteFailed, failJob, failNoProgress, type FailureHost } from './jobFailures';
import type { JobImpl } from './job';
import type { JobEventPayloads } from './jobEvents';
import { FileFailure, runFilesInParallel } from './parallelFiles';
import { recordTemporaryIdentity } from './placementChecks';
import type { RateLimiter } from './rateLimiter';
import type { FileRecord } from './records';
import { planSchedule, relevantWaiting } from './scheduler';
import { fetchFromSources, probeEntity } from './sources';
import type { JobStore } from './store';
import { TransferStopped } from './transfer';
import { uploadFile, type SessionCallOptions } from './uploadSession';
import { checkStillInsideRoots } from './validation';
import type { WaitingJobs } from './waitingJobs';

/** What the runner needs from the engine. */
export interface RunnerHost extends FailureHost {
  /** The engine's settings, read at each use (updateOptions changes them in place). */
  readonly opts: EngineOptions;
  log(level: 'info' | 'warn' | 'error', message: string): void;
  readonly waiting: WaitingJobs;
  readonly store: Pick<JobStore, 'save' | 'scheduleSave'>;
  readonly headers: ReadonlyMap<string, Record<string, string>>;
  readonly limiter: Pick<RateLimiter, 'bodyHighWaterMarkFor' | 'segmentsFor' | 'take' | 'rangePieceFor'>;
  /** The content cache in use, if any. */
  cache(): ContentCache | undefined;
  /** The HTTP stack, built on first use; `paced` for transfers under a speed limit. */
  dispatcher(paced: boolean): Dispatcher;
  job(id: string): JobImpl;
  marksPath(job: JobImpl, index: number): string;
  uploadCall(job: JobImpl, file: FileRecord): SessionCallOptions;
  fire<K extends 'onDidTransferFile' | 'onDidTransferJob'>(name: K, e: JobEventPayloads<JobImpl>[K]): void;
}

export class JobRunner {
  private wakeTimer: NodeJS.Timeout | undefined;
  private disposed = false;

  constructor(private readonly host: RunnerHost) {}

  /** No more scheduling: runs under way go on until stopped (stopRun). */
  dispose(): void {
    this.disposed = true;
    clearTimeout(this.wakeTimer);
  }

  /** Starts what may run, preempts what must yield, and sets a timer for the next due retry or slice. */
  pump(): void {
    if (this.disposed) {
      return;
    }
    const host = this.host;
    const now = host.now();
    const timeouts: number[] = [];
    for (const job of host.waiting.retryingJobs()) {
      const r = job.record;
      if (r.state !== 'TRANSIENT_ERROR' || job.rt.closing) {
        continue;
      }
      const verdict = judgeRetryWait(r, now);
      if (verdict.kind === 'giveUp') {
        failNoProgress(host, job);
      } else if (verdict.kind === 'retryNow') {
        r.retryAt = undefined;
        host.setState(job, 'QUEUED');
      } else {
        timeouts.push(verdict.ms);
      }
    }
    const running = [...host.waiting.running].filter((j) => j.rt.run && j.rt.run.reason === undefined);
    const maxConcurrent = Math.max(1, host.opts.maxConcurrentJobs ?? 4);
    // Only the head of the queue can start: thousands of queued jobs cost nothing here.
    const { jobs: queued, more } = host.waiting.head(relevantWaiting(maxConcurrent, running.length), (j) => !j.rt.run && !j.rt.closing);
    const slice = host.opts.timeSliceMs ?? 60_000;
    const plan = planSchedule(
      queued.map((j) => ({ id: j.id, priority: j.priority, created: j.record.created, lastRunEnded: j.rt.lastRunEnded })),
      running.map((j) => ({ id: j.id, priority: j.priority, created: j.record.created, lastRunEnded: j.rt.lastRunEnded, runStarted: j.rt.run!.started })),
      maxConcurrent,
      now,
      slice,
    );
    for (const id of plan.preempt) {
      const job = host.job(id);
      host.log('info', `Job '${job.displayName}' yields to a job of higher or equal priority; it keeps its bytes and resumes later.`);
      void this.stopRun(job, 'preempt');
    }
    for (const id of plan.start) {
      this.startRun(host.job(id));
    }
    // Equal priorities waiting: wake up when a slice ends.
    if (more || queued.length > plan.start.length) {
      for (const j of running) {
        timeouts.push(Math.max(50, j.rt.run!.started + slice - now));
      }
    }
    clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    if (timeouts.length > 0) {
      this.wakeTimer = setTimeout(() => this.pump(), Math.min(Math.max(10, Math.min(...timeouts)), 0x7fffffff));
      this.wakeTimer.unref?.();
    }
  }

  /** Stops the job's run, if any, and waits until it has ended; 'preempt' puts the job back in the queue. */
  async stopRun(job: JobImpl, reason: 'preempt' | 'stop'): Promise<void> {
    const run = job.rt.run;
    if (!run) {
      return;
    }
    run.reason = run.reason ?? reason;
    run.abort.abort();
    await run.done;
  }

  /** Live byte count of a file of a running job. */
  liveBytes(job: JobImpl, index: number): number | undefined {
    if (!job.rt.run) {
      return undefined;
    }
    return job.rt.live?.get(index) ?? (job.rt.currentFile === index ? job.rt.liveBytes : undefined);
  }

  private startRun(job: JobImpl): void {
    const host = this.host;
    const abort = new AbortController();
    const run = { abort, started: host.now(), done: Promise.resolve(), reason: undefined as 'preempt' | 'stop' | undefined };
    job.rt.run = run;
    host.waiting.running.add(job);
    run.done = this.runJob(job, abort.signal)
      .catch((e) => host.log('error', `Job '${job.displayName}': unexpected failure: ${(e as Error).stack ?? String(e)}`))
      .finally(() => {
        if (run.reason === 'preempt' && job.state !== 'SUSPENDED' && !job.isFinal && !job.rt.closing) {
          host.setState(job, 'QUEUED');
        }
        job.rt.run = undefined;
        host.waiting.running.delete(job);
        job.rt.currentFile = undefined;
        job.rt.liveBytes = undefined;
        job.rt.lastRunEnded = host.now();
        host.store.scheduleSave(job.record);
        this.pump();
      });
  }

  private async runJob(job: JobImpl, signal: AbortSignal): Promise<void> {
    const host = this.host;
    const r = job.record;
    host.setState(job, 'CONNECTING');
    let index = -1;
    try {
      const inFlight = Math.max(1, r.filesInFlight ?? 1);
      if (inFlight > 1 && r.files.filter((f) => !f.transferred && !f.completed).length > 1) {
        job.rt.live = new Map();
        job.rt.liveTotal = 0;
        job.rt.speedSample = { at: Date.now(), bytes: 0 };
        try {
          await runFilesInParallel({ files: r.files, limit: inFlight, signal, runOne: (f, i, sig) => this.downloadOne(job, f, i, sig, true) });
        } catch (e) {
          if (e instanceof FileFailure) {
            index = e.index;
            throw e.error;
          }
          throw e;
        } finally {
          job.rt.live = undefined;
        }
      }
      for (;;) {
        index = r.files.findIndex((f) => !f.transferred && !f.completed);
        if (index < 0 || signal.aborted) {
          break;
        }
        const file = r.files[index];
        job.rt.currentFile = index;
        job.rt.liveBytes = file.durableBytes;
        job.rt.speedSample = { at: Date.now(), bytes: file.durableBytes };
        if (job.type === 'upload') {
          await this.uploadOne(job, file, index, signal);
          continue;
        }
        await this.downloadOne(job, file, index, signal, false);
      }
      if (signal.aborted) {
        throw new TransferStopped();
      }
      r.error = undefined;
      r.noProgressSince = undefined;
      r.transferCompleted = host.now();
      host.setState(job, 'TRANSFERRED');
      await host.store.save(job.record);
      host.fire('onDidTransferJob', job);
      if (r.autoComplete && !signal.aborted) {
        // Let the run finish first: complete() waits for it.
        setImmediate(() => {
          job.complete().catch((e) => autoCompleteFailed(host, job, e));
        });
      }
    } catch (e) {
      if (e instanceof TransferStopped || signal.aborted) {
        return;
      }
      failJob(host, job, e, index);
    }
  }

  /** One file of a download: from the content cache when it has it, else from its sources. */
  private async downloadOne(job: JobImpl, file: FileRecord, i: number, sig: AbortSignal, parallel: boolean): Promise<void> {
    const host = this.host;
    const opts = host.opts;
    // Checked at addFile, the allowed roots are checked again before anything is written in the folder.
    await checkStillInsideRoots(file.localPath, opts.allowedRoots);
    const log = (m: string): void => host.log('info', `[${job.displayName}] ${m}`);
    // Read when the file starts: a limit set later paces it all the same, with larger steps.
    const bodyHighWaterMark = host.limiter.bodyHighWaterMarkFor(job.record);
    const fetchOptions: FetchOptions = {
      file,
      headers: host.headers.get(job.id) ?? {},
      dispatcher: host.dispatcher(Boolean(bodyHighWaterMark)),
      signal: sig,
      allowInsecureRedirects: opts.allowInsecureRedirects ?? false,
      maxRedirects: opts.maxRedirects ?? 10,
      timeouts: { ...DEFAULT_TIMEOUTS, ...opts.timeouts },
      checkpointIntervalMs: opts.checkpointIntervalMs ?? 2_000,
      checkpointBytes: opts.checkpointBytes ?? 64 * 1024 * 1024,
      maxRetryAfterSeconds: opts.maxRetryAfterSeconds ?? 3_600,
      segmentsPerFile: host.limiter.segmentsFor(job.record, opts.segmentsPerFile ?? DEFAULT_SEGMENTS_PER_FILE),
      minSegmentBytes: opts.minSegmentBytes ?? DEFAULT_MIN_SEGMENT_BYTES,
      maxFileSizeBytes: opts.maxFileSizeBytes,
      now: () => host.now(),
      log,
      onConnected: () => {
        if (!sig.aborted && (job.state === 'CONNECTING' || job.state === 'QUEUED')) {
          host.setState(job, 'TRANSFERRING');
        }
      },
      onProgress: parallel ? (bytes) => this.onParallelProgress(job, i, bytes) : (bytes) => this.onProgress(job, bytes),
      onNewBytes: () => {
        job.record.noProgressSince = undefined;
      },
      onCheckpoint: () => {
        job.record.modified = host.now();
        host.store.scheduleSave(job.record);
      },
      persistNow: () => host.store.save(job.record),
      pace: (bytes) => host.limiter.take(job.record, bytes, sig),
      bodyHighWaterMark,
      rangePieceBytes: (roundTripMs) => host.limiter.rangePieceFor(job.record, roundTripMs),
      marksPath: host.marksPath(job, i),
    };
    const cache = host.cache();
    if (cache && (await fillFromCache(cache, file, log))) {
      host.store.scheduleSave(job.record);
    } else {
      file.bytesFromCache = undefined;
      await fetchFromSources({
        ...fetchOptions,
        fetch: (f, others) => fetchFile({ ...fetchOptions, file: f, otherSources: others }),
        probe: (url) => probeEntity(url, fetchOptions),
        persistNow: () => host.store.save(job.record),
      });
    }
    if (file.transferred) {
      await recordTemporaryIdentity(file);
    }
    if (sig.aborted) {
      throw new TransferStopped();
    }
    job.rt.live?.delete(i);
    host.fire('onDidTransferFile', { job, file: job.fileView(file, i) });
    host.changed(job, { immediate: !parallel });
  }

  /** Sends the upload's fragments; TRANSFERRED follows once the server acknowledged the last byte. */
  private async uploadOne(job: JobImpl, file: FileRecord, index: number, signal: AbortSignal): Promise<void> {
    const host = this.host;
    await uploadFile({
      ...host.uploadCall(job, file),
      signal,
      fragmentBytes: host.opts.uploadFragmentBytes,
      pace: (bytes) => host.limiter.take(job.record, bytes, signal),
      onConnected: () => {
        if (!signal.aborted && (job.state === 'CONNECTING' || job.state === 'QUEUED')) {
          host.setState(job, 'TRANSFERRING');
        }
      },
      onProgress: (bytes) => this.onProgress(job, bytes),
      onCheckpoint: () => {
        job.record.modified = host.now();
        host.store.scheduleSave(job.record);
      },
    });
    if (signal.aborted) {
      throw new TransferStopped();
    }
    host.fire('onDidTransferFile', { job, file: job.fileView(file, index) });
    host.changed(job, { immediate: true });
  }

  /** Progress of one of several files in flight: the job's speed follows the sum. */
  private onParallelProgress(job: JobImpl, index: number, bytes: number): void {
    const rt = job.rt;
    const before = rt.live?.get(index) ?? 0;
    rt.live?.set(index, bytes);
    rt.liveTotal = Math.max(0, (rt.liveTotal ?? 0) + bytes - before);
    this.onProgress(job, rt.liveTotal);
  }

  private onProgress(job: JobImpl, bytes: number): void {
    const rt = job.rt;
    const before = rt.liveBytes ?? 0;
    rt.liveBytes = bytes;
    if (bytes > before && job.type === 'upload') {
      // (A download's progress is bytes past the best offset its file reached: fetchFile's onNewBytes.)
      job.record.noProgressSince = undefined;
    }
    const t = Date.now();
    const sample = rt.speedSample;
    if (!sample || bytes < sample.bytes) {
      rt.speedSample = { at: t, bytes };
    } else if (t - sample.at >= 500) {
      const inst = ((bytes - sample.bytes) * 1000) / (t - sample.at);
      rt.speed = rt.speed === 0 ? inst : 0.3 * inst + 0.7 * rt.speed;
      rt.speedSample = { at: t, bytes };
    }
    this.host.changed(job);
  }
}
