// The job engine: owns the store, the scheduler, the transfers and the events. No vscode import.
import { randomUUID } from 'node:crypto';
import * as fs from './io';
import * as path from 'node:path';
import { constants as fsConstants } from './io';
import type { Dispatcher } from 'undici';
import { createDispatcher, type NetworkSettings } from './dispatcher';
import { JobEventSource } from './jobEvents';
import { ContentCache, fillFromCache, type CacheSettings } from './contentCache';
import { bootId } from './io';
import { DownloadError, HRESULTS, invalidArg, osError } from './errors';
import { FileHeaderVault, type HeaderVault } from './headerVault';
import { fileMatchesDigest, parseSha256 } from './integrity';
import { JobImpl, type AddedFile, type JobHost } from './job';
import {
  DEFAULT_MINIMUM_RETRY_DELAY_SECONDS,
  DEFAULT_NO_PROGRESS_TIMEOUT_SECONDS,
  MINIMUM_RETRY_DELAY_FLOOR_SECONDS,
  type FileRecord,
  type JobRecord,
} from './records';
import { applyUrlChanges, type UrlPick } from './remoteUrls';
import { deleteBusyFile, renameIntoPlace } from './rename';
import { checkMirrors, fetchFromSources, probeEntity } from './sources';
import { planSchedule, relevantWaiting } from './scheduler';
import { WaitingJobs } from './waitingJobs';
import { inLanes } from './lanes';
import { TurnBudget } from './turns';
import { absentTemporaries, nothingToReconcile } from './absentTemporaries';
import { ActiveDestinations, normalisePathKey } from './destinations';
import { JobStore, syncDir } from './store';
import { DEFAULT_MIN_SEGMENT_BYTES, DEFAULT_SEGMENTS_PER_FILE, fetchFile, type FetchOptions } from './fetchFile';
import { FileFailure, runFilesInParallel } from './parallelFiles';
import { RateLimiter } from './rateLimiter';
import { retryDelaySeconds } from './retrySchedule';
import { placeInOrder } from './placeFiles';
import { TransferStopped, type TransferTimeouts } from './transfer';
import { cancelUploadSession, closeUploadSession, newUploadFile, uploadFile, type SessionCallOptions } from './upload';
import { FINAL_STATES, JOB_PRIORITIES, type CancelResult, type CompleteResult, type CreateJobOptions, type JobState } from './types';
import { checkLocalPathsOnDisk } from './pathChecks';
import { checkDescription, checkDisplayName, checkLocalPathSyntax, checkRemoteUrl, checkStillInsideRoots, temporaryPathFor } from './validation';
import { checkTemporaryUnchanged, recordTemporaryIdentity } from './placementChecks';

export type LogLevel = 'trace' | 'info' | 'warn' | 'error';
export type Logger = (level: LogLevel, message: string) => void;

export interface EngineOptions {
  /** Folder of the durable store (the extension passes its global storage). */
  storeDir: string;
  /** Clock, injectable for tests (retention, timeouts). */
  now?: () => number;
  maxConcurrentJobs?: number;
  /** Jobs created longer ago than this are cancelled and removed (1–30, default 30). */
  retentionDays?: number;
  /** How often retention (and the retry of undeletable temporaries) runs while open; hourly by default, tests shorten it. */
  retentionIntervalMs?: number;
  allowInsecureRedirects?: boolean;
  maxRedirects?: number;
  network?: NetworkSettings;
  /** Use this dispatcher instead of building one from `network` (the engine does not close it). */
  dispatcher?: Dispatcher;
  /** Local paths must stay inside these folders, when given. */
  allowedRoots?: string[];
  timeouts?: Partial<TransferTimeouts>;
  checkpointIntervalMs?: number;
  checkpointBytes?: number;
  /** Upper bound for a server's Retry-After. */
  maxRetryAfterSeconds?: number;
  /** Equal priorities take turns after this long. */
  timeSliceMs?: number;
  /** Progress events per job at most this often. */
  progressThrottleMs?: number;
  /** The contract's floor is 5 s; tests lower it to run retries quickly. */
  retryDelayFloorSeconds?: number;
  headerVault?: HeaderVault;
  log?: Logger;
  storeBatchMs?: number;
  /** Bytes per BITS upload Fragment (default 1 MiB). */
  uploadFragmentBytes?: number;
  /** Connections for one large file (size known, ranges, strong validator); 1 turns segmenting off. */
  segmentsPerFile?: number;
  /** No segment is smaller than this: files under twice this size never split. */
  minSegmentBytes?: number;
  /** No downloaded file may be larger (ERROR_FILE_TOO_LARGE); default: no limit but the disk's free space. */
  maxFileSizeBytes?: number;
  /** Speed limit of all transfers together, in bytes per second (0: none); jobs may set a lower one of their own. */
  maxBytesPerSecond?: number;
  /** The content cache (§9): files with a known sha256 are looked up before any request and added once complete. */
  cache?: CacheSettings;
}

const DEFAULT_TIMEOUTS: TransferTimeouts = {
  headersMs: 30_000,
  bodyIdleMs: 60_000,
  lowSpeedBytesPerSecond: 1,
  lowSpeedWindowMs: 120_000,
};
const HOUR = 3_600_000;
/** Loops over every job give the event loop a turn this often. */
const YIELD_EVERY_JOBS = 256;
const yieldToEventLoop = (): Promise<void> => new Promise((r) => setImmediate(r));
/** Jobs checked at once at start-up. */
const START_UP_LANES = 16;
const DAY = 24 * HOUR;

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
  /** Temporaries of removed jobs that could not be deleted: kept in the store and retried until gone. */
  private orphanTemporaries: string[] = [];
  private disposed = false;
  private cache: ContentCache | undefined;
  private readonly opts: EngineOptions;
  private readonly limiter: RateLimiter;
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
    // Only names the engine could have made (a damaged or hostile store must not make it delete other files).
    this.orphanTemporaries = orphanTemporaries.filter(isTemporaryName);
    for (const p of problems) {
      this.log('warn', p);
    }
    for (const record of jobs) {
      if (record.leftoverTemporaries !== undefined) {
        const own = new Set(record.files.map((f) => f.temporaryPath));
        record.leftoverTemporaries = Array.isArray(record.leftoverTemporaries) ? record.leftoverTemporaries.filter((p) => own.has(p)) : [];
      }
      this.jobs.set(record.id, new JobImpl(record, this));
    }
    // Thousands of unfinished jobs: their start-up checks (an lstat or two each) overlap, and temporaries that
    // their folder's listing lacks need none.
    const unfinished = [...this.jobs.values()].filter((j) => !j.isFinal && j.type === 'download');
    const untouched = new Set<string>();
    const absent = await absentTemporaries(unfinished.flatMap((j) => j.record.files.filter((f) => !f.completed).map((f) => f.temporaryPath)));
    const budget = new TurnBudget(); // jobs with nothing to check finish at once: 10,000 of them are one long turn
    await inLanes([...this.jobs.values()], START_UP_LANES, async (job) => {
      await budget.breathe();
      const record = job.record;
      if (record.headerNames.length > 0) {
        const h = await this.vault.get(record.id).catch(() => undefined);
        if (h) {
          this.headers.set(record.id, h);
        }
      }
      if (nothingToReconcile(record, absent)) {
        untouched.add(record.id);
      } else {
        await this.reconcile(job, absent);
      }
    });
    await this.sweepMarks();
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

  /** After a restart: interrupted runs go back to the queue, and each temporary file matches the journal. */
  private async reconcile(job: JobImpl, absent: (p: string) => boolean): Promise<void> {
    const r = job.record;
    if (job.isFinal) {
      return;
    }
    if (r.state === 'CONNECTING' || r.state === 'TRANSFERRING') {
      r.state = 'QUEUED';
    }
    if (job.type === 'upload') {
      // No temporary file: the server's BITS-Received-Content-Range says where a resumed upload continues.
      return;
    }
    for (const f of r.files) {
      if (f.transferred || f.completed) {
        // A crash inside complete(): the destination may already be our file (hard link to the temporary), or
        // hold exactly the bytes the sha256 asks for (then the temporary has nothing more to give).
        const [t, d] = await Promise.all([fs.lstat(f.temporaryPath).catch(() => undefined), fs.lstat(f.localPath).catch(() => undefined)]);
        const ours = t?.isFile() && d?.isFile() && t.ino === d.ino && t.dev === d.dev;
        if (ours || (!f.completed && d?.isFile() && d.size === f.bytesTotal && (await holdsSha256(f.localPath, f.sha256)))) {
          await fs.unlink(f.temporaryPath).catch(() => undefined);
          Object.assign(f, { transferred: true, completed: true });
          continue;
        }
        if (f.completed && t?.isFile()) {
          // Journaled as completed just before a rename that never happened: the file is still only transferred.
          f.completed = false;
        }
      }
      if (f.completed) {
        continue;
      }
      let size: number | undefined;
      const st = absent(f.temporaryPath) ? undefined : await fs.lstat(f.temporaryPath).catch(() => undefined);
      size = st?.isFile() ? st.size : undefined;
      const id = f.temporaryIdentity;
      if (f.transferred && st && size === f.bytesTotal && id && (st.dev !== id.dev || st.ino !== id.ino)) {
        // Not the file that was verified (restored from a backup, rebuilt by a file system check, or swapped):
        // Complete would refuse it (placementChecks.ts). Verified again when a checksum is known, else fetched again.
        if (f.sha256 && (await fileMatchesDigest(f.temporaryPath, f.sha256))) {
          f.temporaryIdentity = { dev: st.dev, ino: st.ino };
          this.log('info', `${f.localPath}: its transferred temporary file is another file than before, with the right checksum: kept.`);
        } else {
          size = undefined;
        }
      }
      if (f.transferred && size !== f.bytesTotal) {
        this.log('warn', `${f.localPath}: its transferred temporary file is missing or changed; it will be downloaded again.`);
        Object.assign(f, { transferred: false, durableBytes: 0, etag: undefined, lastModified: undefined, bytesTotal: undefined });
        f.restarts++;
        if (r.state === 'TRANSFERRED') {
          r.state = 'QUEUED';
          r.autoCompleteError = undefined;
        }
      } else if (!f.transferred && !f.segments && size !== undefined && size > f.durableBytes) {
        // (A segmented file is sparse and as long as the entity: its segments say which bytes are real.)
        if (!(await this.keepWrittenBytes(f, size))) {
          // Bytes past the last checkpoint may be garbage after a power cut.
          await fs.truncate(f.temporaryPath, f.durableBytes).catch(() => undefined);
        }
      } else if (!f.transferred && f.durableBytes > 0 && (size === undefined || size < f.durableBytes)) {
        f.durableBytes = 0;
      }
    }
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
    // The orphan list first: a crash in between leaves a path listed twice, never a temporary forgotten.
    await this.store.saveOrphans(this.orphanTemporaries);
    await this.store.remove(id);
    this.fireJobEvent('onDidRemoveJob', job);
  }

  /** Drops a final job from the store; its temporaries that could not be deleted stay on the engine's list. */
  private forget(job: JobImpl): void {
    this.orphanTemporaries.push(...job.leftoverTemporaries.filter((p) => !this.orphanTemporaries.includes(p)));
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

  // ---------------------------------------------------------------- JobHost: state-changing calls

  addFiles(job: JobImpl, files: AddedFile[]): Promise<void> {
    return job.exclusive(async () => {
      job.assertNotFinal('add files to');
      if (!Array.isArray(files) || files.length === 0) {
        throw invalidArg('addFileSet needs a non-empty list of files.');
      }
      job.check('addFile', 'add files to'); // an upload that holds its file takes no other
      if (job.type === 'upload' && files.length > 1) {
        throw new DownloadError('BG_E_TOO_MANY_FILES', `Upload job '${job.displayName}' can hold exactly one file.`, { context: 'GENERAL_QUEUE_MANAGER' });
      }
      if (job.type === 'upload') {
        // The local path names an existing file to send, not a destination: its own checks, no temporary file.
        job.record.files.push(await newUploadFile(files[0], this.opts.allowedRoots));
        this.destinations.add(job, job.record.files);
        job.record.modified = this.now();
        await this.store.save(job.record);
        this.changed(job, { immediate: true });
        return;
      }
      // Check everything first: a set is added whole or not at all.
      const records: FileRecord[] = [];
      const taken = new Set<string>();
      const budget = new TurnBudget(); // 100,000 files take seconds to check: other work goes on meanwhile
      for (const f of files) {
        await budget.breathe();
        if (!f || typeof f !== 'object') {
          throw invalidArg('Each file needs a remoteUrl and a localPath.');
        }
        checkRemoteUrl(f.remoteUrl);
        const localPath = checkLocalPathSyntax(f.localPath);
        const sha256 = parseSha256(f.sha256);
        const mirrors = checkMirrors(f.mirrors, f.remoteUrl);
        const key = normalisePathKey(localPath);
        if (taken.has(key) || this.destinations.has(key)) {
          throw invalidArg(`The local path '${localPath}' is already the destination of a file in an active job.`);
        }
        taken.add(key);
        records.push({
          remoteUrl: f.remoteUrl,
          localPath,
          temporaryPath: temporaryPathFor(localPath, job.id),
          sha256,
          durableBytes: 0,
          transferred: false,
          completed: false,
          restarts: 0,
          ...(mirrors ? { mirrors } : {}),
          ...(f.replaceExisting === true ? { replaceExisting: true } : {}),
        });
      }
      await checkLocalPathsOnDisk(records.map((r) => r.localPath), this.opts.allowedRoots);
      job.record.files.push(...records);
      this.destinations.add(job, records);
      job.record.modified = this.now();
      await this.store.save(job.record);
      this.changed(job, { immediate: true });
      this.pump();
    });
  }

  resume(job: JobImpl): Promise<void> {
    return job.exclusive(async () => {
      const { to } = job.check('resume', 'resume');
      if (!to) {
        return;
      }
      job.record.retryAt = undefined;
      this.setState(job, to);
      await this.store.save(job.record);
      this.pump();
    });
  }

  suspend(job: JobImpl): Promise<void> {
    return job.exclusive(async () => {
      const { to } = job.check('suspend', 'suspend');
      if (!to) {
        return;
      }
      job.record.retryAt = undefined;
      this.setState(job, to);
      await this.stopRun(job, 'stop');
      await this.store.save(job.record);
    });
  }

  complete(job: JobImpl): Promise<CompleteResult> {
    // Only files fully transferred (and verified) before this call are kept: decided now, not once the calls
    // queued before this one have run (the transfer goes on meanwhile).
    const keep = new Set(job.record.files.filter((f) => f.transferred || f.completed));
    return job.exclusive(async () => {
      job.check('complete', 'complete');
      const r = job.record;
      if (job.type === 'upload') {
        return await this.completeUpload(job);
      }
      if (r.autoCompleteError) {
        r.autoCompleteError = undefined;
        this.changed(job, { immediate: true });
      }
      job.rt.closing = true;
      try {
        await this.stopRun(job, 'stop');
        // A file is journaled completed only once the names it relies on are durable: its temporary's (a rename
        // not yet done is told by it at the next start) and then its destination's link. Without the folders'
        // fsync a power cut could keep the journal and lose both names: an ACKNOWLEDGED job without its file.
        const dirs = new Set(r.files.map((f) => parentDir(f.localPath)));
        const syncDirs = (): Promise<unknown> => Promise.all([...dirs].map(syncDir));
        await syncDirs();
        const failed = async (f: FileRecord, e: unknown): Promise<never> => {
          this.setState(job, 'TRANSFERRED');
          await this.store.save(job.record);
          const what = `Cannot put '${f.localPath}' in place for job '${job.displayName}'`;
          if (e instanceof DownloadError) {
            throw new DownloadError(e.code, `${what}: ${e.message.replace(/\.$/, '')} (the job stays TRANSFERRED).`, { hresult: e.hresult, context: e.context, cause: e });
          }
          throw osError(e, `${what} (the job stays TRANSFERRED; Complete again or Cancel)`);
        };
        // The folder (once per folder) and the temporary are checked again just before each file is placed.
        const foldersChecked = new Map<string, Promise<void>>();
        const check = async (f: FileRecord): Promise<void> => {
          const folder = path.dirname(f.localPath);
          let inside = foldersChecked.get(folder);
          if (!inside) {
            inside = checkStillInsideRoots(f.localPath, this.opts.allowedRoots);
            foldersChecked.set(folder, inside);
          }
          await inside;
          await checkTemporaryUnchanged(f);
        };
        const placeOne = async (f: FileRecord): Promise<void> => {
          let placed = false;
          let how: 'linked' | 'renamed';
          try {
            await check(f);
            how = await renameIntoPlace(f.temporaryPath, f.localPath, f.replaceExisting === true, async (phase) => {
              // Journaled before the temporary name goes, so a crash right here is told apart from someone
              // else's file at the next start (reconcile); otherwise Complete would fail forever with EEXIST.
              f.completed = true;
              placed = phase === 'linked';
              if (placed) {
                await syncDir(parentDir(f.localPath));
              }
              await this.store.save(job.record);
            });
          } catch (e) {
            if (!placed) {
              f.completed = false;
            }
            return await failed(f, e);
          }
          f.completed = true;
          if (how === 'linked') {
            await this.deleteTemporary(job, f.temporaryPath);
          }
          this.changed(job);
        };
        // In order; hard links journaled per batch (see placeFiles.ts), the rest one by one as above.
        await placeInOrder(r.files.filter((f) => !f.completed && keep.has(f)), {
          placeOne,
          failed,
          check,
          save: async () => {
            await syncDirs();
            await this.store.save(job.record);
          },
          placed: () => this.changed(job),
          removeTemporary: (f) => this.deleteTemporary(job, f.temporaryPath),
        });
        for (const f of r.files) {
          if (f.completed && f.sha256 && keep.has(f)) {
            this.cache?.add(f.sha256, f.localPath); // in the background; best effort
          }
        }
        for (const f of r.files) {
          if (!keep.has(f)) {
            await this.deleteTemporary(job, f.temporaryPath);
            // One that finished after the call (or while the run stopped) is dropped too, so not transferred.
            f.transferred = false;
          }
        }
        await syncDirs();
        this.setState(job, 'ACKNOWLEDGED');
        await this.store.save(job.record);
        await this.vault.delete(job.id).catch(() => undefined);
        const dropped = r.files.length - keep.size;
        if (dropped > 0) {
          this.log('info', `Job '${job.displayName}' completed partially: ${keep.size} of ${r.files.length} files kept.`);
        }
        if (job.leftoverTemporaries.length > 0) {
          return 'BG_S_UNABLE_TO_DELETE_FILES';
        }
        return dropped > 0 ? 'BG_S_PARTIAL_COMPLETE' : 'S_OK';
      } finally {
        job.rt.closing = false;
      }
    });
  }

  cancel(job: JobImpl): Promise<CancelResult> {
    job.rt.closeSession?.abort(); // a Close-Session in flight holds the lock: cancel does not wait for its answer
    return job.exclusive(async () => {
      job.check('cancel', 'cancel');
      // A job cancelled while failing keeps why it failed (its history says so); any other forgets an old error.
      const failing = job.state === 'ERROR' || job.state === 'TRANSIENT_ERROR';
      job.rt.closing = true;
      try {
        await this.stopRun(job, 'stop');
        const upload = job.type === 'upload' ? job.record.files[0] : undefined;
        if (upload) {
          // The server drops the partial upload; the local file is the user's and stays.
          await cancelUploadSession(this.uploadCall(job, upload));
        } else if (job.type === 'download') {
          await this.deleteTemporaries(job);
        }
        if (!failing) {
          job.record.error = undefined;
        }
        this.setState(job, 'CANCELLED');
        await this.store.save(job.record);
        await this.vault.delete(job.id).catch(() => undefined);
        return job.leftoverTemporaries.length > 0 ? 'BG_S_UNABLE_TO_DELETE_FILES' : undefined;
      } finally {
        job.rt.closing = false;
      }
    });
  }

  async setHeaders(job: JobImpl, headers: Record<string, string>): Promise<void> {
    await this.vault.set(job.id, headers);
    this.headers.set(job.id, headers);
    job.record.headerNames = Object.keys(headers);
    job.record.modified = this.now();
    await this.store.save(job.record);
    this.changed(job, { immediate: true });
  }

  /** The job's retry delays changed: a wait under way counts from its start with the new delay (due now: retried now). */
  retryDelaysChanged(job: JobImpl): void {
    const r = job.record;
    if (r.state !== 'TRANSIENT_ERROR' || r.retryAt === undefined || r.retryWaitStarted === undefined) {
      return;
    }
    const retryAt = r.retryWaitStarted + retryDelaySeconds(r, Math.max(0, (r.retriesWithoutProgress ?? 1) - 1), r.serverRetryAfterSeconds) * 1000;
    if (retryAt !== r.retryAt) {
      r.retryAt = retryAt;
      this.log('info', `Job '${job.displayName}': retry delay changed; next retry ${retryAt <= this.now() ? 'now' : `in ${Math.ceil((retryAt - this.now()) / 1000)} s`}.`);
      this.changed(job, { persist: true, immediate: true });
      this.pump();
    }
  }

  reschedule(): void {
    this.waiting.reorder();
    this.pump();
  }

  /** New URLs for files not transferred yet; a transfer running on one of them stops and starts again from the new URL. */
  changeRemoteUrls(job: JobImpl, verb: string, pick: UrlPick): Promise<void> {
    return job.exclusive(async () => {
      job.check('changeUrl', verb);
      const changes = pick(job.record.files);
      const done = changes.find((c) => job.record.files[c.index].transferred || job.record.files[c.index].completed);
      if (done) {
        throw job.invalidState(verb, `file ${done.index} is already transferred`);
      }
      applyUrlChanges(job.record.files, changes);
      job.record.modified = this.now();
      await this.store.save(job.record);
      this.changed(job, { immediate: true });
      const rt = job.rt;
      if (rt.run && changes.some((c) => rt.currentFile === c.index || rt.live !== undefined)) {
        this.log('info', `Job '${job.displayName}': a URL changed under its transfer; it starts again from the new URL, keeping its bytes.`);
        await this.stopRun(job, 'preempt');
      }
    });
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
      const deadline = r.noProgressSince === undefined ? Infinity : r.noProgressSince + r.noProgressTimeoutSeconds * 1000;
      if (now >= deadline) {
        this.failNoProgress(job);
      } else if (r.retryAt === undefined || now >= r.retryAt) {
        r.retryAt = undefined;
        this.setState(job, 'QUEUED');
      } else {
        timeouts.push(Math.min(r.retryAt, deadline) - now);
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
          rangePieceBytes: (roundTripMs) => this.limiter.rangePieceFor(job.record, roundTripMs),
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

  /** complete() of a TRANSFERRED upload: Close-Session, then ACKNOWLEDGED. On failure the job stays TRANSFERRED. */
  private async completeUpload(job: JobImpl): Promise<CompleteResult> {
    const file = job.record.files[0];
    job.rt.closing = true;
    job.rt.closeSession = new AbortController();
    try {
      await closeUploadSession({ ...this.uploadCall(job, file), signal: job.rt.closeSession.signal });
    } catch (e) {
      const err = e instanceof DownloadError ? e : osError(e, 'Close-Session failed');
      const lost = err.code === 'BG_E_SESSION_NOT_FOUND';
      if (lost) {
        // The server forgot the session: the file goes again, in a new one ([MC-BUP] 3.1.5.2.1).
        this.setState(job, 'QUEUED');
      }
      await this.store.save(job.record);
      const then = lost ? 'the job is QUEUED to send the file again' : 'the job stays TRANSFERRED; Complete again or Cancel';
      throw new DownloadError(err.code, `Cannot complete upload job '${job.displayName}': ${err.message.replace(/\.$/, '')} (${then}).`, {
        hresult: err.hresult,
        transient: err.transient,
        context: err.context,
        cause: err,
      });
    } finally {
      job.rt.closing = false;
      job.rt.closeSession = undefined;
      this.pump();
    }
    file.completed = true;
    this.setState(job, 'ACKNOWLEDGED');
    await this.store.save(job.record);
    await this.vault.delete(job.id).catch(() => undefined);
    return 'S_OK';
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
    if (!err.transient) {
      this.log('warn', `Job '${job.displayName}' failed: ${err.message} (${err.codeAndHresult})`);
      this.setState(job, 'ERROR');
      this.fireJobEvent('onDidFailJob', job);
      return;
    }
    const now = this.now();
    // A stretch without progress starts its schedule over (progress clears noProgressSince).
    const retryIndex = r.noProgressSince === undefined ? 0 : (r.retriesWithoutProgress ?? 0);
    r.noProgressSince = r.noProgressSince ?? now;
    const delay = retryDelaySeconds(r, retryIndex, err.retryAfterSeconds);
    const timeout = r.noProgressTimeoutSeconds;
    if (timeout === 0 || delay > timeout || now - r.noProgressSince >= timeout * 1000) {
      this.failNoProgress(job);
      return;
    }
    r.retriesWithoutProgress = retryIndex + 1;
    r.retryWaitStarted = now;
    r.serverRetryAfterSeconds = err.retryAfterSeconds;
    r.retryAt = now + delay * 1000;
    this.log('info', `Job '${job.displayName}': ${err.message} (${err.codeAndHresult}); retry in ${delay} s.`);
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
  async runRetention(): Promise<number> {
    await this.retryLeftoverTemporaries();
    const days = Math.min(30, Math.max(1, this.opts.retentionDays ?? 30));
    const cutoff = this.now() - days * DAY;
    let removed = 0;
    const removedIds: string[] = [];
    for (const job of [...this.jobs.values()]) {
      if (job.record.created >= cutoff) {
        continue;
      }
      if (!job.isFinal) {
        this.log('info', `Job '${job.displayName}' is older than ${days} days: cancelling it and deleting its temporary files.`);
        await job.cancel().catch((e) => this.log('warn', `Retention could not cancel '${job.displayName}': ${(e as Error).message}`));
      }
      this.forget(job);
      removedIds.push(job.id);
      removed++;
      this.fireJobEvent('onDidRemoveJob', job);
      if (removed % YIELD_EVERY_JOBS === 0) {
        await yieldToEventLoop(); // thousands of expired jobs (and their listeners) must not stall the extension host
      }
    }
    if (removed > 0) {
      await this.store.saveOrphans(this.orphanTemporaries);
      await this.store.remove(...removedIds);
    }
    return removed;
  }

  private async deleteTemporaries(job: JobImpl): Promise<void> {
    for (const [i, f] of job.record.files.entries()) {
      if (!f.completed) {
        await this.deleteTemporary(job, f.temporaryPath);
      }
      if (f.segments) {
        // Only a segmented transfer notes marks (a finished or reset one has deleted them); else swept at the next start.
        await fs.rm(this.marksPath(job, i), { force: true }).catch(() => undefined);
      }
    }
  }

  /**
   * Deletes a temporary file. One that cannot be deleted (busy past the retries, permission) does not stop
   * complete() or cancel(): it goes on the job's list, which is journaled and retried later.
   */
  private async deleteTemporary(job: JobImpl, p: string): Promise<void> {
    try {
      await deleteBusyFile(p);
    } catch (e) {
      this.log('warn', `Job '${job.displayName}': ${osError(e, `cannot delete the temporary file ${p} yet; it is retried later`).message}`);
      const left = (job.record.leftoverTemporaries ??= []);
      if (!left.includes(p)) {
        left.push(p);
      }
    }
  }

  /** Another try at the temporaries that could not be deleted, of jobs and of jobs already removed. */
  private async retryLeftoverTemporaries(): Promise<void> {
    const remaining = async (paths: readonly string[]): Promise<string[]> => {
      const left: string[] = [];
      for (const p of paths) {
        await deleteBusyFile(p).catch(() => left.push(p));
      }
      return left;
    };
    for (const job of this.jobs.values()) {
      const before = job.record.leftoverTemporaries;
      if (before && before.length > 0) {
        const after = await remaining(before);
        job.record.leftoverTemporaries = after.length > 0 ? after : undefined;
        if (after.length !== before.length) {
          this.store.scheduleSave(job.record);
        }
      }
    }
    if (this.orphanTemporaries.length > 0) {
      this.orphanTemporaries = await remaining(this.orphanTemporaries);
      await this.store.saveOrphans(this.orphanTemporaries);
    }
  }

  /** Where a file's segmented transfer notes its written offsets (writeMarks.ts). */
  private marksPath(job: JobImpl, index: number): string {
    return path.join(this.opts.storeDir, 'marks', `${job.id}.${index}`);
  }

  /** Deletes the marks no unfinished segmented transfer will read (left by a crash, a cancel, an older run). */
  private async sweepMarks(): Promise<void> {
    const dir = path.join(this.opts.storeDir, 'marks');
    const names = await fs.readdir(dir).catch(() => [] as string[]);
    const wanted = new Set<string>();
    for (const job of this.jobs.values()) {
      job.record.files.forEach((f, i) => {
        if (!job.isFinal && f.segments && !f.transferred) {
          wanted.add(path.basename(this.marksPath(job, i)));
        }
      });
    }
    await Promise.all(names.filter((n) => !wanted.has(n)).map((n) => fs.rm(path.join(dir, n), { force: true }).catch(() => undefined)));
  }

  /**
   * One connection writes a file in order, so after a crash of the process within the same boot every byte up
   * to the file's size is what the server sent for the journaled entity: flush it and keep it. Only past a
   * checkpoint: before the first one the journal may still name the validator of an earlier attempt (a new
   * 200 is journaled with the next batched save), while a restart from a checkpoint is journaled before the
   * bytes go.
   */
  private async keepWrittenBytes(f: FileRecord, size: number): Promise<boolean> {
    if (bootId() === undefined || f.bootId !== bootId() || f.durableBytes === 0 || !(f.etag ?? f.lastModified) || (f.bytesTotal !== undefined && size > f.bytesTotal)) {
      return false;
    }
    try {
      const fh = await fs.open(f.temporaryPath, fsConstants.O_RDWR | (fsConstants.O_NOFOLLOW ?? 0));
      try {
        await fh.datasync();
      } finally {
        await fh.close();
      }
    } catch {
      return false;
    }
    this.log('info', `${f.localPath}: kept ${size - f.durableBytes} bytes written before the process stopped (same boot, now flushed to disk; checked against the server before use).`);
    // Not trusted yet: the page cache may have lost them without a reboot (transfer.ts checks them).
    f.keptFrom = Math.min(f.keptFrom ?? f.durableBytes, f.durableBytes);
    f.durableBytes = size;
    return true;
  }

  private assertOpen(): void {
    if (this.disposed) {
      throw new DownloadError('E_FAIL', 'The download engine has been shut down.');
    }
  }
}

/** Whether `p` has the shape of a temporary file's name (validation.ts temporaryPathFor). */
function isTemporaryName(p: unknown): p is string {
  return typeof p === 'string' && path.isAbsolute(p) && /^\..+\.[0-9a-f]{8}\.mdpart$/.test(path.basename(p));
}

/** Whether the file's bytes have this checksum (false when none is known or the file cannot be read). */
async function holdsSha256(file: string, sha256: string | undefined): Promise<boolean> {
  return sha256 !== undefined && (await fileMatchesDigest(file, sha256));
}

function parentDir(p: string): string {
  const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  return i > 0 ? p.slice(0, i) : p;
}

