// The job engine: owns the store, the scheduler, the transfers and the events. No vscode import.
import { randomUUID } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { createDispatcher } from './dispatcher';
import { JobEventSource } from './jobEvents';
import { ContentCache, fillFromCache, type CacheSettings } from './contentCache';
import { DownloadError, HRESULTS, invalidArg, osError } from './errors';
import { FileHeaderVault, type HeaderVault } from './headerVault';
import { JobImpl, type AddedFile, type JobHost } from './job';
import {
  DEFAULT_MINIMUM_RETRY_DELAY_SECONDS,
  DEFAULT_NO_PROGRESS_TIMEOUT_SECONDS,
  MINIMUM_RETRY_DELAY_FLOOR_SECONDS,
  type FileRecord,
  type JobRecord,
} from './records';
import type { UrlPick } from './remoteUrls';
import { fetchFromSources, probeEntity } from './sources';
import { planSchedule, relevantWaiting } from './scheduler';
import { WaitingJobs } from './waitingJobs';
import { ActiveDestinations } from './destinations';
import { JobStore } from './store';
import { DEFAULT_MIN_SEGMENT_BYTES, DEFAULT_SEGMENTS_PER_FILE, fetchFile, type FetchOptions } from './fetchFile';
import { FileFailure, runFilesInParallel } from './parallelFiles';
import { RateLimiter } from './rateLimiter';
import { judgeFailure, judgeRetryWait } from './failurePolicy';
import { TransferStopped } from './transfer';
import { uploadFile, type SessionCallOptions } from './upload';
import { FINAL_STATES, JOB_PRIORITIES, type CancelResult, type CompleteResult, type CreateJobOptions, type JobState } from './types';
import { checkDescription, checkDisplayName, checkStillInsideRoots } from './validation';
import { recordTemporaryIdentity } from './placementChecks';
import { keepOwnLeftovers, ownTemporaryNames, recoverJobs, sweepMarks } from './recovery';
import { runRetention } from './retention';
import { deleteTemporaries, deleteTemporary, marksPath, OrphanTemporaries, retryLeftoverTemporaries } from './temporaries';
import { cancelJob, completeJob, type CompletionHost } from './completion';
import * as actions from './jobActions';
import { DEFAULT_TIMEOUTS, type EngineOptions, type LogLevel } from './engineOptions';

export type { EngineOptions, Logger, LogLevel } from './engineOptions';

const HOUR = 3_600_000;

export class DownloadEngine extends JobEventSource<JobImpl> implements JobHost {
  private readonly jobs = new Map<string, JobImpl>();
  /** What the scheduler looks at, and which destinations unfinished jobs hold: indexes over `jobs`. */
  private readonly waiting = new WaitingJobs();
  private readonly destinations = new ActiveDestinations(() => this.jobs.values(), (j) => this.jobs.get(j.id) === j);
  private readonly store: JobStore;
  private readonly vault: HeaderVault;
  private readonly headers = new Map<string, Record<string, string>>();
  private ownDispatcher: Dispatcher | undefined;
  /** The one transfers under a speed limit use (dispatcher.ts: small reads). */
  private ownPacedDispatcher: Dispatcher | undefined;
  private readonly givenDispatcher: Dispatcher | undefined;
  private wakeTimer: NodeJS.Timeout | undefined;
  private retentionTimer: NodeJS.Timeout | undefined;
  private readonly orphans = new OrphanTemporaries();
  private disposed = false;
  private cache: ContentCache | undefined;
  private readonly opts: EngineOptions;
  private readonly limiter: RateLimiter;
  /** What complete() and cancel() use; also what the job actions use, with a few more. */
  private readonly parts: CompletionHost & actions.JobActionsHost;
  readonly now: () => number;
  /** What was wrong with the store at start-up (shown to the user, never fatal). */
  problems: string[] = [];


  private constructor(opts: EngineOptions) {
    super();
    this.opts = { ...opts };
    this.now = opts.now ?? Date.now;
    this.store = new JobStore(opts.storeDir, () => [...this.jobs.values()].map((j) => j.record), opts.storeBatchMs ?? 250, opts.allowedRoots);
    this.store.onSaveError = (e) => this.log('error', `Saving the job store failed: ${(e as Error).message}`);
    this.vault = opts.headerVault ?? new FileHeaderVault(opts.storeDir);
    this.givenDispatcher = opts.dispatcher;
    this.limiter = new RateLimiter(opts.maxBytesPerSecond ?? 0);
    this.useCache(opts.cache);
    this.parts = {
      opts: this.opts,
      store: this.store,
      vault: this.vault,
      headers: this.headers,
      destinations: this.destinations,
      cache: () => this.cache,
      now: () => this.now(),
      log: (level, message) => this.log(level, message),
      setState: (job, state) => this.setState(job, state),
      changed: (job, o) => this.changed(job, o),
      stopRun: (job, reason) => this.stopRun(job, reason),
      pump: () => this.pump(),
      uploadCall: (job, file) => this.uploadCall(job, file),
      deleteTemporary: (job, p) => deleteTemporary(job, p, (m) => this.log('warn', m)),
      deleteTemporaries: (job) => deleteTemporaries(job, this.opts.storeDir, (m) => this.log('warn', m)),
    };
  }

  /** Whether a speed limit (the job's or the global one) is holding the job back right now. */
  speedLimited(job: JobImpl): boolean {
    return this.limiter.isLimiting(job.id);
  }

  private useCache(c: CacheSettings | undefined): void {
    const keep = this.cache && c?.enabled && c.folder === this.cache.folder && c.maxSizeBytes === this.cache.maxSizeBytes;
    if (!keep) {
      this.cache = c?.enabled ? new ContentCache(c.folder, c.maxSizeBytes, (m) => this.log('info', m)) : undefined;
    }
  }

  /** Loads the store, reconciles temporaries with it, applies retention and starts scheduling. */
  static async open(opts: EngineOptions): Promise<DownloadEngine> {
    const engine = new DownloadEngine(opts);
    await engine.load();
    return engine;
  }

  /** Built on first use: loading the HTTP stack waits until something is downloaded. */
  private get dispatcher(): Dispatcher {
    return this.givenDispatcher ?? (this.ownDispatcher ??= createDispatcher(this.opts.network));
  }

  private get pacedDispatcher(): Dispatcher {
    return this.givenDispatcher ?? (this.ownPacedDispatcher ??= createDispatcher(this.opts.network, process.env, true));
  }

  get retryDelayFloorSeconds(): number {
    return this.opts.retryDelayFloorSeconds ?? MINIMUM_RETRY_DELAY_FLOOR_SECONDS;
  }

  private log(level: LogLevel, message: string): void {
    this.opts.log?.(level, message);
  }

  private async load(): Promise<void> {
    const { jobs, orphanTemporaries, problems } = await this.store.load();
    this.problems = problems;
    this.orphans.paths = ownTemporaryNames(orphanTemporaries);
    for (const p of problems) {
      this.log('warn', p);
    }
    for (const record of jobs) {
      keepOwnLeftovers(record);
      this.jobs.set(record.id, new JobImpl(record, this));
    }
    const untouched = await recoverJobs([...this.jobs.values()], { log: (level, message) => this.log(level, message), vault: this.vault, headers: this.headers });
    await sweepMarks(this.opts.storeDir, this.jobs.values());
    // A sweep that cannot save (a full disk) is said in the log and tried again at the next one, never fatal.
    const sweep = (): Promise<void> => this.runRetention().then(
      () => undefined,
      (e: unknown) => this.log('warn', `The retention sweep failed: ${(e as Error).message}`),
    );
    await sweep();
    this.retentionTimer = setInterval(() => void sweep(), this.opts.retentionIntervalMs ?? HOUR);
    this.retentionTimer.unref?.();
    await this.store.saveAll((r) => !FINAL_STATES.has(r.state) && !untouched.has(r.id)); // the start-up checks change unfinished jobs only
    for (const job of this.jobs.values()) {
      this.waiting.noteState(job);
    }
    this.pump();
  }

  // ---------------------------------------------------------------- public API

  async createJob(o: CreateJobOptions): Promise<JobImpl> {
    this.assertOpen();
    if (!o || typeof o !== 'object') {
      throw invalidArg('createJob needs an options object with a displayName.');
    }
    const displayName = checkDisplayName(o.displayName);
    const description = checkDescription(o.description);
    const type = o.type ?? 'download';
    if (type !== 'download' && type !== 'upload') {
      throw invalidArg(`'${String(type)}' is not a job type; use 'download' or 'upload'.`);
    }
    const priority = o.priority ?? 'NORMAL';
    if (!(JOB_PRIORITIES as readonly string[]).includes(priority)) {
      throw invalidArg(`'${String(priority)}' is not a priority; use one of ${JOB_PRIORITIES.join(', ')}.`);
    }
    const now = this.now();
    const record: JobRecord = {
      id: randomUUID(),
      displayName,
      description,
      type,
      priority,
      state: 'SUSPENDED',
      errorCount: 0,
      created: now,
      modified: now,
      minimumRetryDelaySeconds: DEFAULT_MINIMUM_RETRY_DELAY_SECONDS,
      noProgressTimeoutSeconds: DEFAULT_NO_PROGRESS_TIMEOUT_SECONDS,
      headerNames: [],
      files: [],
    };
    const job = new JobImpl(record, this);
    this.jobs.set(record.id, job);
    await this.store.save(record);
    this.fireJobEvent('onDidAddJob', job);
    this.fireJobEvent('onDidChangeJob', job);
    return job;
  }

  getJob(id: string): JobImpl {
    const job = typeof id === 'string' ? this.jobs.get(id) : undefined;
    if (!job) {
      throw new DownloadError('DO_E_JOB_NOT_FOUND', `There is no job with id '${String(id)}'.`, { context: 'GENERAL_QUEUE_MANAGER' });
    }
    return job;
  }

  enumJobs(o?: { includeFinal?: boolean }): JobImpl[] {
    const all = [...this.jobs.values()];
    return o?.includeFinal ? all : all.filter((j) => !j.isFinal);
  }

  /** Forgets a finished (ACKNOWLEDGED or CANCELLED) job. */
  async removeJob(id: string): Promise<void> {
    const job = this.getJob(id);
    job.check('remove', 'remove');
    this.forget(job);
    await this.saveRemoval([id]);
    this.fireJobEvent('onDidRemoveJob', job);
  }

  /** The orphan list first: a crash in between leaves a path listed twice, never a temporary forgotten. */
  private async saveRemoval(ids: string[]): Promise<void> {
    await this.store.saveOrphans(this.orphans.paths);
    await this.store.remove(...ids);
  }

  /** Drops a final job from the store; its temporaries that could not be deleted stay on the engine's list. */
  private forget(job: JobImpl): void {
    this.orphans.adopt(job);
    this.jobs.delete(job.id);
    this.limiter.forget(job.id);
  }

  /** Settings that may change while running (VS Code configuration). */
  updateOptions(o: Pick<EngineOptions, 'maxConcurrentJobs' | 'retentionDays' | 'allowInsecureRedirects' | 'network' | 'segmentsPerFile' | 'maxBytesPerSecond' | 'cache'>): void {
    if (o.maxBytesPerSecond !== undefined) {
      this.limiter.setGlobalLimit(o.maxBytesPerSecond);
    }
    if ('cache' in o) {
      this.useCache(o.cache);
    }
    if (o.network !== undefined) {
      for (const old of [this.ownDispatcher, this.ownPacedDispatcher]) {
        // Running transfers keep the old one until they finish.
        if (old) {
          setTimeout(() => void old.close().catch(() => undefined), 60_000).unref?.();
        }
      }
      // The next transfer builds one with the new settings.
      this.ownDispatcher = undefined;
      this.ownPacedDispatcher = undefined;
    }
    Object.assign(this.opts, o);
    this.pump();
  }

  async dispose(): Promise<void> {
    if (this.disposed) {
      return;
    }
    this.disposed = true;
    clearTimeout(this.wakeTimer);
    clearInterval(this.retentionTimer);
    await Promise.all([...this.jobs.values()].map((j) => this.stopRun(j, 'stop')));
    for (const j of this.jobs.values()) {
      clearTimeout(j.rt.changeTimer);
    }
    await this.cache?.idle();
    await this.store.close();
    await this.ownDispatcher?.close().catch(() => undefined);
    await this.ownPacedDispatcher?.close().catch(() => undefined);
    this.disposeJobEvents();
  }

  // ---------------------------------------------------------------- JobHost: a job's calls, handed to the parts

  addFiles(job: JobImpl, files: AddedFile[]): Promise<void> {
    return actions.addFiles(this.parts, job, files);
  }

  resume(job: JobImpl): Promise<void> {
    return actions.resume(this.parts, job);
  }

  suspend(job: JobImpl): Promise<void> {
    return actions.suspend(this.parts, job);
  }

  complete(job: JobImpl): Promise<CompleteResult> {
    return completeJob(this.parts, job);
  }

  cancel(job: JobImpl): Promise<CancelResult> {
    return cancelJob(this.parts, job);
  }

  setHeaders(job: JobImpl, headers: Record<string, string>): Promise<void> {
    return actions.setHeaders(this.parts, job, headers);
  }

  retryDelaysChanged(job: JobImpl): void {
    actions.retryDelaysChanged(this.parts, job);
  }

  reschedule(): void {
    this.waiting.reorder();
    this.pump();
  }

  changeRemoteUrls(job: JobImpl, verb: string, pick: UrlPick): Promise<void> {
    return actions.changeRemoteUrls(this.parts, job, verb, pick);
  }

  liveBytes(job: JobImpl, index: number): number | undefined {
    if (!job.rt.run) {
      return undefined;
    }
    return job.rt.live?.get(index) ?? (job.rt.currentFile === index ? job.rt.liveBytes : undefined);
  }

  /** Progress of one of several files in flight: the job's speed follows the sum. */
  private onParallelProgress(job: JobImpl, index: number, bytes: number): void {
    const rt = job.rt;
    const before = rt.live?.get(index) ?? 0;
    rt.live?.set(index, bytes);
    rt.liveTotal = Math.max(0, (rt.liveTotal ?? 0) + bytes - before);
    this.onProgress(job, rt.liveTotal);
  }

  /** Records a change; progress ticks are throttled per job, state changes go out at once. */
  changed(job: JobImpl, o: { persist?: boolean; immediate?: boolean } = {}): void {
    if (o.persist) {
      this.store.scheduleSave(job.record);
    }
    const rt = job.rt;
    const throttle = this.opts.progressThrottleMs ?? 250;
    const since = Date.now() - rt.lastChangeFired;
    if (o.immediate || since >= throttle) {
      clearTimeout(rt.changeTimer);
      rt.changeTimer = undefined;
      rt.lastChangeFired = Date.now();
      this.fireJobEvent('onDidChangeJob', job);
    } else if (!rt.changeTimer) {
      rt.changeTimer = setTimeout(() => {
        rt.changeTimer = undefined;
        rt.lastChangeFired = Date.now();
        this.fireJobEvent('onDidChangeJob', job);
      }, throttle - since);
      rt.changeTimer.unref?.();
    }
  }

  // ---------------------------------------------------------------- scheduling

  private setState(job: JobImpl, state: JobState): void {
    if (job.record.state === state) {
      return;
    }
    job.record.state = state;
    this.waiting.noteState(job);
    if (FINAL_STATES.has(state)) {
      this.destinations.release(job);
    }
    job.record.modified = this.now();
    if (state !== 'TRANSFERRED') {
      job.record.autoCompleteError = undefined; // it was about completing this transfer
    }
    this.store.scheduleSave(job.record);
    this.changed(job, { immediate: true });
  }

  /** Starts what may run, preempts what must yield, and sets a timer for the next due retry or slice. */
  private pump(): void {
    if (this.disposed) {
      return;
    }
    const now = this.now();
    const timeouts: number[] = [];
    for (const job of this.waiting.retryingJobs()) {
      const r = job.record;
      if (r.state !== 'TRANSIENT_ERROR' || job.rt.closing) {
        continue;
      }
      const verdict = judgeRetryWait(r, now);
      if (verdict.kind === 'giveUp') {
        this.failNoProgress(job);
      } else if (verdict.kind === 'retryNow') {
        r.retryAt = undefined;
        this.setState(job, 'QUEUED');
      } else {
        timeouts.push(verdict.ms);
      }
    }
    const running = [...this.waiting.running].filter((j) => j.rt.run && j.rt.run.reason === undefined);
    const maxConcurrent = Math.max(1, this.opts.maxConcurrentJobs ?? 4);
    // Only the head of the queue can start: thousands of queued jobs cost nothing here.
    const { jobs: queued, more } = this.waiting.head(relevantWaiting(maxConcurrent, running.length), (j) => !j.rt.run && !j.rt.closing);
    const slice = this.opts.timeSliceMs ?? 60_000;
    const plan = planSchedule(
      queued.map((j) => ({ id: j.id, priority: j.priority, created: j.record.created, lastRunEnded: j.rt.lastRunEnded })),
      running.map((j) => ({ id: j.id, priority: j.priority, created: j.record.created, lastRunEnded: j.rt.lastRunEnded, runStarted: j.rt.run!.started })),
      maxConcurrent,
      now,
      slice,
    );
    for (const id of plan.preempt) {
      const job = this.jobs.get(id)!;
      this.log('info', `Job '${job.displayName}' yields to a job of higher or equal priority; it keeps its bytes and resumes later.`);
      void this.stopRun(job, 'preempt');
    }
    for (const id of plan.start) {
      this.startRun(this.jobs.get(id)!);
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

  private startRun(job: JobImpl): void {
    const abort = new AbortController();
    const run = { abort, started: this.now(), done: Promise.resolve(), reason: undefined as 'preempt' | 'stop' | undefined };
    job.rt.run = run;
    this.waiting.running.add(job);
    run.done = this.runJob(job, abort.signal)
      .catch((e) => this.log('error', `Job '${job.displayName}': unexpected failure: ${(e as Error).stack ?? String(e)}`))
      .finally(() => {
        if (run.reason === 'preempt' && job.state !== 'SUSPENDED' && !job.isFinal && !job.rt.closing) {
          this.setState(job, 'QUEUED');
        }
        job.rt.run = undefined;
        this.waiting.running.delete(job);
        job.rt.currentFile = undefined;
        job.rt.liveBytes = undefined;
        job.rt.lastRunEnded = this.now();
        this.store.scheduleSave(job.record);
        this.pump();
      });
  }

  private async stopRun(job: JobImpl, reason: 'preempt' | 'stop'): Promise<void> {
    const run = job.rt.run;
    if (!run) {
      return;
    }
    run.reason = run.reason ?? reason;
    run.abort.abort();
    await run.done;
  }

  private async runJob(job: JobImpl, signal: AbortSignal): Promise<void> {
    const r = job.record;
    this.setState(job, 'CONNECTING');
    let index = -1;
    try {
      const inFlight = Math.max(1, r.filesInFlight ?? 1);
      const perFile = async (file: FileRecord, i: number, sig: AbortSignal, parallel: boolean): Promise<void> => {
        // Checked at addFile, the allowed roots are checked again before anything is written in the folder.
        await checkStillInsideRoots(file.localPath, this.opts.allowedRoots);
        const log = (m: string): void => this.log('info', `[${job.displayName}] ${m}`);
        // Read when the file starts: a limit set later paces it all the same, with larger steps.
        const bodyHighWaterMark = this.limiter.bodyHighWaterMarkFor(job.record);
        const fetchOptions: FetchOptions = {
          file,
          headers: this.headers.get(job.id) ?? {},
          dispatcher: bodyHighWaterMark ? this.pacedDispatcher : this.dispatcher,
          signal: sig,
          allowInsecureRedirects: this.opts.allowInsecureRedirects ?? false,
          maxRedirects: this.opts.maxRedirects ?? 10,
          timeouts: { ...DEFAULT_TIMEOUTS, ...this.opts.timeouts },
          checkpointIntervalMs: this.opts.checkpointIntervalMs ?? 2_000,
          checkpointBytes: this.opts.checkpointBytes ?? 64 * 1024 * 1024,
          maxRetryAfterSeconds: this.opts.maxRetryAfterSeconds ?? 3_600,
          segmentsPerFile: this.limiter.segmentsFor(job.record, this.opts.segmentsPerFile ?? DEFAULT_SEGMENTS_PER_FILE),
          minSegmentBytes: this.opts.minSegmentBytes ?? DEFAULT_MIN_SEGMENT_BYTES,
          maxFileSizeBytes: this.opts.maxFileSizeBytes,
          now: this.now,
          log,
          onConnected: () => {
            if (!sig.aborted && (job.state === 'CONNECTING' || job.state === 'QUEUED')) {
              this.setState(job, 'TRANSFERRING');
            }
          },
          onProgress: parallel ? (bytes) => this.onParallelProgress(job, i, bytes) : (bytes) => this.onProgress(job, bytes),
          onNewBytes: () => {
            job.record.noProgressSince = undefined;
          },
          onCheckpoint: () => {
            job.record.modified = this.now();
            this.store.scheduleSave(job.record);
          },
          persistNow: () => this.store.save(job.record),
          pace: (bytes) => this.limiter.take(job.record, bytes, sig),
          bodyHighWaterMark,
          marksPath: this.marksPath(job, i),
        };
        if (this.cache && (await fillFromCache(this.cache, file, log))) {
          this.store.scheduleSave(job.record);
        } else {
          file.bytesFromCache = undefined;
          await fetchFromSources({
            ...fetchOptions,
            fetch: (f, others) => fetchFile({ ...fetchOptions, file: f, otherSources: others }),
            probe: (url) => probeEntity(url, fetchOptions),
            persistNow: () => this.store.save(job.record),
          });
        }
        if (file.transferred) {
          await recordTemporaryIdentity(file);
        }
        if (sig.aborted) {
          throw new TransferStopped();
        }
        job.rt.live?.delete(i);
        this.fireJobEvent('onDidTransferFile', { job, file: job.fileView(file, i) });
        this.changed(job, { immediate: !parallel });
      };
      if (inFlight > 1 && r.files.filter((f) => !f.transferred && !f.completed).length > 1) {
        job.rt.live = new Map();
        job.rt.liveTotal = 0;
        job.rt.speedSample = { at: Date.now(), bytes: 0 };
        try {
          await runFilesInParallel({ files: r.files, limit: inFlight, signal, runOne: (f, i, sig) => perFile(f, i, sig, true) });
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
        await perFile(file, index, signal, false);
      }
      if (signal.aborted) {
        throw new TransferStopped();
      }
      r.error = undefined;
      r.noProgressSince = undefined;
      r.transferCompleted = this.now();
      this.setState(job, 'TRANSFERRED');
      await this.store.save(job.record);
      this.fireJobEvent('onDidTransferJob', job);
      if (r.autoComplete && !signal.aborted) {
        // Let the run finish first: complete() waits for it.
        setImmediate(() => {
          job.complete().catch((e) => this.autoCompleteFailed(job, e));
        });
      }
    } catch (e) {
      if (e instanceof TransferStopped || signal.aborted) {
        return;
      }
      this.fail(job, e, index);
    }
  }

  // ---------------------------------------------------------------- upload jobs (BITS Upload Protocol, upload.ts)

  private uploadCall(job: JobImpl, file: FileRecord): SessionCallOptions {
    return {
      file,
      headers: this.headers.get(job.id) ?? {},
      network: this.opts.network,
      timeouts: { ...DEFAULT_TIMEOUTS, ...this.opts.timeouts },
      maxRetryAfterSeconds: this.opts.maxRetryAfterSeconds ?? 3_600,
      now: this.now,
      log: (m) => this.log('info', `[${job.displayName}] ${m}`),
    };
  }

  /** Sends the upload's fragments; TRANSFERRED follows once the server acknowledged the last byte. */
  private async uploadOne(job: JobImpl, file: FileRecord, index: number, signal: AbortSignal): Promise<void> {
    await uploadFile({
      ...this.uploadCall(job, file),
      signal,
      fragmentBytes: this.opts.uploadFragmentBytes,
      pace: (bytes) => this.limiter.take(job.record, bytes, signal),
      onConnected: () => {
        if (!signal.aborted && (job.state === 'CONNECTING' || job.state === 'QUEUED')) {
          this.setState(job, 'TRANSFERRING');
        }
      },
      onProgress: (bytes) => this.onProgress(job, bytes),
      onCheckpoint: () => {
        job.record.modified = this.now();
        this.store.scheduleSave(job.record);
      },
    });
    if (signal.aborted) {
      throw new TransferStopped();
    }
    this.fireJobEvent('onDidTransferFile', { job, file: job.fileView(file, index) });
    this.changed(job, { immediate: true });
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
    this.changed(job);
  }

  /** complete() on the job's own behalf failed: the job stays TRANSFERRED and says why, for the UI to show. */
  private autoCompleteFailed(job: JobImpl, e: unknown): void {
    const err = e instanceof DownloadError ? e : osError(e, 'Unexpected failure');
    this.log('warn', `Job '${job.displayName}' could not complete itself: ${err.message} (${err.codeAndHresult})`);
    if (job.state !== 'TRANSFERRED') {
      return; // cancelled or completed meanwhile: nothing left to say
    }
    job.record.autoCompleteError = { code: err.code, hresult: err.hresult, message: err.message, context: err.context };
    this.changed(job, { immediate: true, persist: true });
  }

  /** A failed run: fatal errors go to ERROR, transient ones wait for a retry unless progress has stopped too long. */
  private fail(job: JobImpl, e: unknown, fileIndex: number): void {
    const err = e instanceof DownloadError ? e : osError(e, 'Unexpected failure');
    const r = job.record;
    r.errorCount++;
    r.error = { code: err.code, hresult: err.hresult, message: err.message, context: err.context, fileIndex: fileIndex >= 0 ? fileIndex : undefined };
    job.rt.speed = 0;
    const now = this.now();
    const verdict = judgeFailure(err, r, now);
    if (verdict.kind === 'fatal') {
      this.log('warn', `Job '${job.displayName}' failed: ${err.message} (${err.codeAndHresult})`);
      this.setState(job, 'ERROR');
      this.fireJobEvent('onDidFailJob', job);
      return;
    }
    r.noProgressSince = verdict.noProgressSince;
    if (verdict.kind === 'noProgress') {
      this.failNoProgress(job);
      return;
    }
    r.retriesWithoutProgress = verdict.retriesWithoutProgress;
    r.retryWaitStarted = now;
    r.serverRetryAfterSeconds = err.retryAfterSeconds;
    r.retryAt = verdict.retryAt;
    this.log('info', `Job '${job.displayName}': ${err.message} (${err.codeAndHresult}); retry in ${verdict.delaySeconds} s.`);
    this.setState(job, 'TRANSIENT_ERROR');
  }

  private failNoProgress(job: JobImpl): void {
    const r = job.record;
    const last = r.error ? ` Last error: ${r.error.message}` : '';
    r.error = {
      code: 'DO_E_DOWNLOAD_NO_PROGRESS',
      hresult: HRESULTS.DO_E_DOWNLOAD_NO_PROGRESS,
      message: `Job '${job.displayName}' made no progress for its no-progress timeout (${r.noProgressTimeoutSeconds} s).${last}`,
      context: r.error?.context ?? 'GENERAL_TRANSPORT',
      fileIndex: r.error?.fileIndex,
    };
    r.retryAt = undefined;
    this.log('warn', r.error.message);
    this.setState(job, 'ERROR');
    this.fireJobEvent('onDidFailJob', job);
  }

  // ---------------------------------------------------------------- retention and helpers

  /**
   * Cancels and forgets jobs older than the retention period (at start-up and hourly), after another try at
   * the temporaries complete()/cancel() could not delete.
   */
  runRetention(): Promise<number> {
    return runRetention({
      retentionDays: () => this.opts.retentionDays,
      now: () => this.now(),
      log: (level, message) => this.log(level, message),
      jobs: () => this.jobs.values(),
      retryLeftoverTemporaries: () => retryLeftoverTemporaries(this.jobs.values(), this.orphans, this.store),
      forget: (job) => this.forget(job),
      removed: (job) => this.fireJobEvent('onDidRemoveJob', job),
      saveRemoval: (ids) => this.saveRemoval(ids),
    });
  }

  private marksPath(job: JobImpl, index: number): string {
    return marksPath(this.opts.storeDir, job, index);
  }

  private assertOpen(): void {
    if (this.disposed) {
      throw new DownloadError('E_FAIL', 'The download engine has been shut down.');
    }
  }
}

