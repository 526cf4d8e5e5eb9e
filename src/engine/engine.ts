// The job engine, as a façade: owns the store, the jobs, the settings and the events, and hands the work to its
// parts: recovery.ts (start-up), jobActions.ts and completion.ts (what a job's calls do), jobRunner.ts (what runs,
// and the runs themselves), failurePolicy.ts and jobFailures.ts (how a failure ends), retention.ts and
// temporaries.ts (what is deleted when). Each part gets only what it needs from here. No vscode import.
import { randomUUID } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { createDispatcher } from './dispatcher';
import { JobEventSource } from './jobEvents';
import { ContentCache, type CacheSettings } from './contentCache';
import { DownloadError, invalidArg } from './errors';
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
import { WaitingJobs } from './waitingJobs';
import { ActiveDestinations } from './destinations';
import { JobStore } from './store';
import { RateLimiter } from './rateLimiter';
import type { SessionCallOptions } from './uploadSession';
import { FINAL_STATES, JOB_PRIORITIES, type CancelResult, type CompleteResult, type CreateJobOptions, type JobState } from './types';
import { checkDescription, checkDisplayName } from './validation';
import { DEFAULT_TIMEOUTS, type EngineOptions, type LogLevel } from './engineOptions';
import { keepOwnLeftovers, ownTemporaryNames, recoverJobs, sweepMarks } from './recovery';
import { runRetention } from './retention';
import { deleteTemporaries, deleteTemporary, marksPath, OrphanTemporaries, retryLeftoverTemporaries } from './temporaries';
import { cancelJob, completeJob, type CompletionHost } from './completion';
import * as actions from './jobActions';
import { JobRunner } from './jobRunner';

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
  private retentionTimer: NodeJS.Timeout | undefined;
  private readonly orphans = new OrphanTemporaries();
  private disposed = false;
  private cache: ContentCache | undefined;
  private readonly opts: EngineOptions;
  private readonly limiter: RateLimiter;
  private readonly runner: JobRunner;
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
    this.runner = new JobRunner({
      opts: this.opts,
      store: this.store,
      waiting: this.waiting,
      headers: this.headers,
      limiter: this.limiter,
      cache: () => this.cache,
      dispatcher: (paced) => (paced ? this.pacedDispatcher : this.dispatcher),
      job: (id) => this.jobs.get(id)!,
      marksPath: (job, index) => marksPath(this.opts.storeDir, job, index),
      uploadCall: (job, file) => this.uploadCall(job, file),
      fire: (name, e) => this.fireJobEvent(name, e),
      failed: (job) => this.fireJobEvent('onDidFailJob', job),
      now: () => this.now(),
      log: (level, message) => this.log(level, message),
      setState: (job, state) => this.setState(job, state),
      changed: (job, o) => this.changed(job, o),
    });
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
      stopRun: (job, reason) => this.runner.stopRun(job, reason),
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
    this.runner.dispose();
    clearInterval(this.retentionTimer);
    await Promise.all([...this.jobs.values()].map((j) => this.runner.stopRun(j, 'stop')));
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
    return this.runner.liveBytes(job, index);
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

  /** Every state change goes through here: the scheduler's indexes, the destinations held, the journal, the event. */
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

  private pump(): void {
    this.runner.pump();
  }

  /** The settings of one BITS upload call (uploadSession.ts). */
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

  private assertOpen(): void {
    if (this.disposed) {
      throw new DownloadError('E_FAIL', 'The download engine has been shut down.');
    }
  }
}
