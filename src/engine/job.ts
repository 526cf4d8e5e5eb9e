// The live job object of contract §4: getters read the record, state-changing calls go through the engine.
import { DownloadError, formatHresult, HRESULTS, invalidArg } from './errors';
import type { JobRecord, FileRecord } from './records';
import { MINIMUM_RETRY_DELAY_FLOOR_SECONDS } from './records';
import {
  FINAL_STATES,
  JOB_PRIORITIES,
  type AutoCompleteError,
  type CancelResult,
  type CompleteResult,
  type Job,
  type JobErrorInfo,
  type JobFile,
  type JobPriority,
  type JobProgress,
  type JobTimes,
  type NewFile,
} from './types';
import { checkDisplayName, checkHeaders, checkSeconds } from './validation';
import { MIN_BYTES_PER_SECOND } from './rateLimiter';
import { byIndex, byPrefix, type UrlPick } from './remoteUrls';
import { jobFacts, verdict, type Allowed, type JobAction, type RefusalCode } from './transitions';
import { sourcesInUse } from './sources';
import { checkRetryDelays } from './retrySchedule';

/** A speed limit as given by a caller: 0 for none, else at least MIN_BYTES_PER_SECOND; undefined is stored for none. */
export function checkSpeedLimit(bytesPerSecond: unknown): number | undefined {
  if (typeof bytesPerSecond !== 'number' || !Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) {
    throw invalidArg(`A speed limit is a number of bytes per second (0 for none), not ${String(bytesPerSecond)}.`);
  }
  if (bytesPerSecond > 0 && bytesPerSecond < MIN_BYTES_PER_SECOND) {
    throw invalidArg(`A speed limit must be at least ${MIN_BYTES_PER_SECOND} bytes per second (or 0 for none), not ${bytesPerSecond}.`);
  }
  return bytesPerSecond === 0 ? undefined : Math.floor(bytesPerSecond);
}

/** A file to add; `replaceExisting` lets complete() replace an existing destination (the user confirmed it in a save dialog). */
export type AddedFile = NewFile & { replaceExisting?: boolean };

/** What a job needs from its engine; the engine implements it. */
export interface JobHost {
  readonly retryDelayFloorSeconds: number;
  addFiles(job: JobImpl, files: AddedFile[]): Promise<void>;
  resume(job: JobImpl): Promise<void>;
  suspend(job: JobImpl): Promise<void>;
  complete(job: JobImpl): Promise<CompleteResult>;
  cancel(job: JobImpl): Promise<CancelResult>;
  changed(job: JobImpl, o?: { persist?: boolean; immediate?: boolean }): void;
  /** Re-plans which jobs run (after a priority change). */
  reschedule(): void;
  /** Moves the next retry of a job waiting in TRANSIENT_ERROR after its retry delays changed. */
  retryDelaysChanged(job: JobImpl): void;
  setHeaders(job: JobImpl, headers: Record<string, string>): Promise<void>;
  /** Gives files new URLs (remoteUrls.ts): `pick` says which file gets which URL. */
  changeRemoteUrls(job: JobImpl, verb: string, pick: UrlPick): Promise<void>;
  /** Live byte count of the file being transferred, if any. */
  liveBytes(job: JobImpl, index: number): number | undefined;
  /** Whether a speed limit is holding the job back right now. */
  speedLimited?(job: JobImpl): boolean;
  now(): number;
}

/** Runtime-only facts about a job (never persisted). */
export interface JobRuntime {
  run?: { abort: AbortController; done: Promise<void>; started: number; reason?: 'preempt' | 'stop' };
  lastRunEnded: number;
  currentFile?: number;
  liveBytes?: number;
  /** Live bytes per file index while several files are in flight, and their sum. */
  live?: Map<number, number>;
  liveTotal?: number;
  speed: number;
  speedSample?: { at: number; bytes: number };
  lastChangeFired: number;
  changeTimer?: NodeJS.Timeout;
  /** Serialises state-changing calls so Complete and Cancel cannot interleave. */
  lock: Promise<unknown>;
  /** Set while complete()/cancel() tears the job down, so the scheduler leaves it alone. */
  closing?: boolean;
  /** Aborts an upload's Close-Session in flight (cancel() uses it). */
  closeSession?: AbortController;
}

export class JobImpl implements Job {
  readonly rt: JobRuntime = { lastRunEnded: 0, speed: 0, lastChangeFired: 0, lock: Promise.resolve() };

  constructor(
    readonly record: JobRecord,
    private readonly host: JobHost,
  ) {}

  get id() { return this.record.id; }
  get displayName() { return this.record.displayName; }
  get description() { return this.record.description; }
  get type() { return this.record.type; }
  get priority() { return this.record.priority; }
  get state() { return this.record.state; }
  get errorCount() { return this.record.errorCount; }
  get isFinal() { return FINAL_STATES.has(this.record.state); }
  get minimumRetryDelaySeconds() { return this.record.minimumRetryDelaySeconds; }
  /** The job's own delays before its first retries (setRetryDelays); empty: each retry waits the minimum. */
  get retryDelaysSeconds(): readonly number[] { return [...(this.record.retryDelaysSeconds ?? [])]; }
  get noProgressTimeoutSeconds() { return this.record.noProgressTimeoutSeconds; }
  /** The job's own speed limit in bytes per second; 0: only the engine's limit. */
  get maxBytesPerSecond() { return this.record.maxBytesPerSecond ?? 0; }
  /** Whether a speed limit (the job's or the engine's) is holding the job back right now. */
  get speedLimited() { return this.host.speedLimited?.(this) ?? false; }
  get headerNames(): readonly string[] { return this.record.headerNames; }
  /** Temporary files complete()/cancel() could not delete yet (the engine keeps trying). */
  get leftoverTemporaries(): readonly string[] { return [...(this.record.leftoverTemporaries ?? [])]; }
  /** When the engine will retry a job in TRANSIENT_ERROR. */
  get retryAt(): Date | undefined { return this.record.retryAt === undefined ? undefined : new Date(this.record.retryAt); }
  /** Whether the engine completes the job on its own once transferred (jobs started from New Download). */
  get autoComplete() { return this.record.autoComplete === true; }
  /** Why the job could not complete itself (it stays TRANSFERRED), until complete() is called again. */
  get autoCompleteError(): AutoCompleteError | undefined { return this.record.autoCompleteError && { ...this.record.autoCompleteError }; }

  getFiles(): JobFile[] {
    return this.record.files.map((f, i) => this.fileView(f, i));
  }

  fileView(f: FileRecord, i: number): JobFile {
    const live = this.host.liveBytes(this, i);
    const bytes = f.transferred || f.completed ? (f.bytesTotal ?? f.durableBytes) : (live ?? bytesAtRest(f));
    return Object.freeze({
      remoteUrl: f.remoteUrl,
      localPath: f.localPath,
      temporaryPath: f.temporaryPath,
      bytesTotal: f.bytesTotal,
      bytesTransferred: bytes,
      completed: f.completed,
      transferred: f.transferred,
      sha256: f.sha256,
      ...(Array.isArray(f.mirrors) && f.mirrors.length > 0 ? { mirrors: [...f.mirrors] } : {}),
      ...(f.source !== undefined ? { source: f.source } : {}),
      ...(sourcesInUse(f) ? { sourcesInUse: sourcesInUse(f) } : {}),
      ...(f.bytesFromCache ? { bytesFromCache: f.bytesFromCache } : {}),
      ...(f.serverCannotResume === true ? { serverCannotResume: true } : {}),
    });
  }

  getProgress(): JobProgress {
    const files = this.getFiles();
    const unknown = files.some((f) => f.bytesTotal === undefined);
    return {
      bytesTotal: unknown ? undefined : files.reduce((n, f) => n + (f.bytesTotal ?? 0), 0),
      bytesTransferred: files.reduce((n, f) => n + f.bytesTransferred, 0),
      filesTotal: files.length,
      filesTransferred: files.filter((f) => f.transferred).length,
      bytesFromCache: files.reduce((n, f) => n + (f.bytesFromCache ?? 0), 0),
    };
  }

  getTimes(): JobTimes {
    const r = this.record;
    return {
      creation: new Date(r.created),
      modification: new Date(r.modified),
      transferCompletion: r.transferCompleted === undefined ? undefined : new Date(r.transferCompleted),
    };
  }

  getError(): JobErrorInfo | undefined {
    return this.state === 'ERROR' || this.state === 'TRANSIENT_ERROR' ? this.recordedError() : undefined;
  }

  get failureBeforeCancel(): JobErrorInfo | undefined {
    // cancel() keeps the error only when the job was failing at that moment (completion.ts).
    return this.state === 'CANCELLED' ? this.recordedError() : undefined;
  }

  private recordedError(): JobErrorInfo | undefined {
    const e = this.record.error;
    if (!e) {
      return undefined;
    }
    const file = e.fileIndex === undefined ? undefined : this.record.files[e.fileIndex];
    return {
      code: e.code,
      hresult: e.hresult,
      message: e.message,
      context: e.context,
      file: file && e.fileIndex !== undefined ? this.fileView(file, e.fileIndex) : undefined,
    };
  }

  /** Bytes per second, smoothed; 0 when not transferring. */
  getSpeed(): number {
    return this.state === 'TRANSFERRING' ? this.rt.speed : 0;
  }

  /** Seconds left at the current speed, or undefined when it cannot be known (no size, no speed). */
  getEta(): number | undefined {
    const p = this.getProgress();
    const speed = this.getSpeed();
    if (p.bytesTotal === undefined || speed <= 0) {
      return undefined;
    }
    return Math.max(0, (p.bytesTotal - p.bytesTransferred) / speed);
  }

  addFile(remoteUrl: string, localPath: string, o?: { sha256?: string; mirrors?: string[]; replaceExisting?: boolean }): Promise<void> {
    return this.host.addFiles(this, [{ remoteUrl, localPath, sha256: o?.sha256, mirrors: o?.mirrors, replaceExisting: o?.replaceExisting }]);
  }

  addFileSet(files: NewFile[]): Promise<void> {
    // The list itself is checked by the engine, after the job's state (a final job says so first).
    return this.host.addFiles(this, files);
  }

  resume(): Promise<void> { return this.host.resume(this); }
  suspend(): Promise<void> { return this.host.suspend(this); }
  complete(): Promise<CompleteResult> { return this.host.complete(this); }
  cancel(): Promise<CancelResult> { return this.host.cancel(this); }

  setPriority(p: JobPriority): Promise<void> {
    return this.update('set the priority of', () => {
      if (!(JOB_PRIORITIES as readonly string[]).includes(p)) {
        throw invalidArg(`'${String(p)}' is not a priority; use one of ${JOB_PRIORITIES.join(', ')}.`);
      }
      this.record.priority = p;
    }).then(() => this.host.reschedule());
  }

  setDisplayName(name: string): Promise<void> {
    return this.update('rename', () => {
      this.record.displayName = checkDisplayName(name);
    });
  }

  setMinimumRetryDelay(seconds: number): Promise<void> {
    return this.update('set the retry delay of', () => {
      this.record.minimumRetryDelaySeconds = checkSeconds(seconds, 'minimum retry delay', this.retryFloorSeconds);
    }).then(() => this.host.retryDelaysChanged(this));
  }

  /**
   * Engine-internal: the delays before the first retries of a stretch without progress (at most 10, each capped by
   * the minimum retry delay); [] for none. A wait under way is rescheduled.
   */
  setRetryDelays(seconds: readonly number[]): Promise<void> {
    return this.update('set the retry delay of', () => {
      const delays = checkRetryDelays(seconds, this.retryFloorSeconds);
      this.record.retryDelaysSeconds = delays.length > 0 ? delays : undefined;
    }).then(() => this.host.retryDelaysChanged(this));
  }

  private get retryFloorSeconds(): number {
    return Math.min(this.host.retryDelayFloorSeconds, MINIMUM_RETRY_DELAY_FLOOR_SECONDS);
  }

  /** The job's own speed limit (contract §10): 0 lifts it (the engine's limit still applies); it never raises the engine's. */
  setMaxBytesPerSecond(bytesPerSecond: number): Promise<void> {
    return this.update('set the speed limit of', () => {
      this.record.maxBytesPerSecond = checkSpeedLimit(bytesPerSecond);
    });
  }

  setNoProgressTimeout(seconds: number): Promise<void> {
    return this.update('set the no-progress timeout of', () => {
      this.record.noProgressTimeoutSeconds = checkSeconds(seconds, 'no-progress timeout', 0);
    });
  }

  async setHttpHeaders(headers: Record<string, string>): Promise<void> {
    await this.exclusive(async () => {
      this.assertNotFinal('set the HTTP headers of');
      await this.host.setHeaders(this, checkHeaders(headers));
    });
  }

  setRemoteUrl(fileIndex: number, url: string): Promise<void> {
    return this.host.changeRemoteUrls(this, 'change the URL of', byIndex(fileIndex, url));
  }

  replaceRemotePrefix(oldPrefix: string, newPrefix: string): Promise<void> {
    return this.host.changeRemoteUrls(this, 'replace the URL prefix of', byPrefix(oldPrefix, newPrefix));
  }

  /** Engine-internal: mark a job to complete itself once transferred. */
  setAutoComplete(on: boolean): Promise<void> {
    return this.update('change', () => {
      this.record.autoComplete = on;
    });
  }

  /** Engine-internal: let up to `n` files of this job transfer at once (1–64; they still complete in order). */
  setFilesInFlight(n: number): Promise<void> {
    return this.update('change', () => {
      if (!Number.isInteger(n) || n < 1 || n > 64) {
        throw invalidArg(`Files in flight must be a whole number from 1 to 64, not ${String(n)}.`);
      }
      this.record.filesInFlight = n;
    });
  }

  /** Engine-internal: let complete() replace existing destinations of this job's files (the CLI's --overwrite). */
  setReplaceExisting(on: boolean): Promise<void> {
    return this.update('change', () => {
      for (const f of this.record.files) {
        f.replaceExisting = on ? true : undefined;
      }
    });
  }

  private update(verb: string, apply: () => void): Promise<void> {
    // exclusive() runs fn inside then(), so a throw here still comes back as a rejection.
    return this.exclusive(() => {
      this.assertNotFinal(verb);
      apply();
      this.record.modified = this.host.now();
      this.host.changed(this, { persist: true, immediate: true });
      return Promise.resolve();
    });
  }

  /** Runs a state-changing call after the previous one finished. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.rt.lock.then(fn, fn);
    this.rt.lock = run.catch(() => undefined);
    return run;
  }

  /** What `action` does now (transitions.ts); throws the table's refusal, worded with `verb`. */
  check(action: JobAction, verb: string): Allowed {
    const v = verdict(action, jobFacts(this.state, this.type, this.record.files));
    if (!v.allowed) {
      throw this.refusal(v.code, verb, v.why);
    }
    return v;
  }

  /** Every call on a final job fails with DO_E_INVALID_STATE (contract §2). */
  assertNotFinal(verb: string): void {
    this.check('modify', verb);
  }

  private refusal(code: RefusalCode, verb: string, why?: string): DownloadError {
    switch (code) {
      case 'DO_E_INVALID_STATE':
        return this.invalidState(verb, why);
      case 'DO_E_JOB_EMPTY':
        return new DownloadError('DO_E_JOB_EMPTY', `Job '${this.displayName}' has no files to transfer; add a file first.`, { context: 'GENERAL_QUEUE_MANAGER' });
      case 'BG_E_TOO_MANY_FILES':
        return new DownloadError('BG_E_TOO_MANY_FILES', `Upload job '${this.displayName}' can hold exactly one file.`, { context: 'GENERAL_QUEUE_MANAGER' });
    }
  }

  invalidState(verb: string, why?: string): DownloadError {
    return new DownloadError(
      'DO_E_INVALID_STATE',
      `Cannot ${verb} job '${this.displayName}': it is ${this.state}${why ? ` (${why})` : ''} (DO_E_INVALID_STATE, ${formatHresult(HRESULTS.DO_E_INVALID_STATE)}).`,
      { context: 'GENERAL_QUEUE_MANAGER', details: { verb, jobName: this.displayName, state: this.state, ...(why ? { why } : {}) } },
    );
  }
}

/**
 * The bytes a file not running holds: a segmented file's segments all count (its durableBytes is only the
 * contiguous prefix), so the progress does not fall back when a transfer in segments is suspended or cancelled.
 */
function bytesAtRest(f: FileRecord): number {
  if (!f.segments) {
    return f.durableBytes;
  }
  // Clamped: the journal is not trusted to keep each count within its segment.
  return f.segments.reduce((n, s) => n + (Number.isFinite(s.done) && Number.isFinite(s.end - s.start) ? Math.min(Math.max(0, s.done), Math.max(0, s.end - s.start)) : 0), 0);
}
