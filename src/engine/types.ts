// The contract's public shapes (§2, §4), shared by the engine, the extension's API and the CLI.
import type { JobEvents } from './jobEvents';

export const JOB_STATES = [
  'SUSPENDED',
  'QUEUED',
  'CONNECTING',
  'TRANSFERRING',
  'TRANSIENT_ERROR',
  'ERROR',
  'TRANSFERRED',
  'ACKNOWLEDGED',
  'CANCELLED',
] as const;
export type JobState = (typeof JOB_STATES)[number];

export const JOB_PRIORITIES = ['FOREGROUND', 'HIGH', 'NORMAL', 'LOW'] as const;
export type JobPriority = (typeof JOB_PRIORITIES)[number];
export type JobType = 'download' | 'upload';

export const FINAL_STATES: ReadonlySet<JobState> = new Set(['ACKNOWLEDGED', 'CANCELLED']);
/** States in which the engine is working on (or about to work on) the job. */
export const ACTION_STATES: ReadonlySet<JobState> = new Set(['QUEUED', 'CONNECTING', 'TRANSFERRING', 'TRANSIENT_ERROR']);

/** BG_S_UNABLE_TO_DELETE_FILES whenever a temporary could not be deleted (the files' `completed` flags still tell what was kept). */
export type CompleteResult = 'S_OK' | 'BG_S_PARTIAL_COMPLETE' | 'BG_S_UNABLE_TO_DELETE_FILES';
/** cancel() resolves with undefined, or BG_S_UNABLE_TO_DELETE_FILES when a temporary could not be deleted yet. */
export type CancelResult = undefined | 'BG_S_UNABLE_TO_DELETE_FILES';

/** vscode.Event's shape, so the engine's events can be handed to VS Code callers unchanged. */
export interface Disposable {
  dispose(): void;
}
export type Event<T> = (listener: (e: T) => unknown, thisArgs?: unknown, disposables?: Disposable[]) => Disposable;

export interface JobFile {
  readonly remoteUrl: string;
  readonly localPath: string;
  readonly temporaryPath: string;
  readonly bytesTotal?: number;
  readonly bytesTransferred: number;
  readonly completed: boolean;
  readonly transferred: boolean;
  readonly sha256?: string;
  /** Other URLs serving the same entity, tried in order when the current source fails (§8). */
  readonly mirrors?: readonly string[];
  /** The URL the bytes come from now, when it is not remoteUrl (a mirror took over). */
  readonly source?: string;
  /** While segments of the file come from several sources at once: those sources (runtime only). */
  readonly sourcesInUse?: readonly string[];
  /** Bytes placed from the content cache instead of being downloaded (§9). */
  readonly bytesFromCache?: number;
  /**
   * True once the server showed it cannot continue this file where it stopped (no `Accept-Ranges: bytes`, no
   * strong validator, or a range request answered with the whole file): a pause then starts it again at byte 0.
   */
  readonly serverCannotResume?: boolean;
}

export interface JobProgress {
  bytesTotal?: number;
  bytesTransferred: number;
  filesTotal: number;
  filesTransferred: number;
  /** Bytes placed from the content cache instead of being downloaded (§9). */
  bytesFromCache: number;
}

export interface JobTimes {
  creation: Date;
  modification: Date;
  transferCompletion?: Date;
}

export interface JobErrorInfo {
  code: string;
  hresult: number;
  message: string;
  context: string;
  file?: JobFile;
}

export interface NewFile {
  remoteUrl: string;
  localPath: string;
  sha256?: string;
  /** Other URLs of the same entity (§8). */
  mirrors?: string[];
}

/** The live job object of contract §4. */
export interface Job {
  readonly id: string;
  readonly displayName: string;
  readonly description: string;
  readonly type: JobType;
  readonly priority: JobPriority;
  readonly state: JobState;
  readonly errorCount: number;
  getFiles(): JobFile[];
  getProgress(): JobProgress;
  getTimes(): JobTimes;
  /** undefined unless the job is in ERROR or TRANSIENT_ERROR (we return undefined rather than throw). */
  getError(): JobErrorInfo | undefined;
  addFile(remoteUrl: string, localPath: string, o?: { sha256?: string; mirrors?: string[] }): Promise<void>;
  addFileSet(files: NewFile[]): Promise<void>;
  resume(): Promise<void>;
  suspend(): Promise<void>;
  complete(): Promise<CompleteResult>;
  cancel(): Promise<CancelResult>;
  setPriority(p: JobPriority): Promise<void>;
  setDisplayName(name: string): Promise<void>;
  setMinimumRetryDelay(seconds: number): Promise<void>;
  setNoProgressTimeout(seconds: number): Promise<void>;
  setHttpHeaders(headers: Record<string, string>): Promise<void>;
  /** The job's own speed limit in bytes per second (contract §10); 0: only the engine's limit applies. */
  readonly maxBytesPerSecond: number;
  /** 0 lifts the job's own limit (never the engine's); negative or not a number: E_INVALIDARG; final job: DO_E_INVALID_STATE. */
  setMaxBytesPerSecond(bytesPerSecond: number): Promise<void>;
  /** BITS SetRemoteName (§8): a new URL for a file not transferred yet; its bytes are kept if the entity is the same. */
  setRemoteUrl(fileIndex: number, url: string): Promise<void>;
  /** BITS ReplaceRemotePrefix (§8): every untransferred file's URL (and mirror) starting with oldPrefix. */
  replaceRemotePrefix(oldPrefix: string, newPrefix: string): Promise<void>;
}

export interface CreateJobOptions {
  displayName: string;
  type?: JobType;
  priority?: JobPriority;
  description?: string;
}

/** The contract's four events: a job changed, transferred, failed, and a file transferred. */
export interface ManagedDownloadsApi extends Pick<JobEvents<Job>, 'onDidChangeJob' | 'onDidTransferJob' | 'onDidFailJob' | 'onDidTransferFile'> {
  readonly apiVersion: 1;
  createJob(o: CreateJobOptions): Promise<Job>;
  getJob(id: string): Job;
  enumJobs(o?: { includeFinal?: boolean }): Job[];
}

export interface AutoCompleteError {
  readonly code: string;
  readonly hresult: number;
  readonly message: string;
}

/** A job as the engine's clients see it: the contract's Job plus what the UI shows. */
export interface EngineJob extends Job {
  readonly isFinal: boolean;
  readonly retryAt: Date | undefined;
  readonly autoComplete: boolean;
  /** Why an autoComplete job could not complete itself (it stays TRANSFERRED); cleared by complete(). */
  readonly autoCompleteError: AutoCompleteError | undefined;
  /** Why a job cancelled while it was failing (ERROR or TRANSIENT_ERROR) had failed, kept for its history. */
  readonly failureBeforeCancel: JobErrorInfo | undefined;
  readonly headerNames: readonly string[];
  /** Temporary files complete()/cancel() could not delete; the engine retries them at start-up and hourly. */
  readonly leftoverTemporaries: readonly string[];
  readonly minimumRetryDelaySeconds: number;
  /** Delays before the first retries of a stretch without progress (jobs started from the UI); empty: the minimum each time. */
  readonly retryDelaysSeconds: readonly number[];
  readonly noProgressTimeoutSeconds: number;
  /** Whether a speed limit (the job's or the engine's) is holding the job back right now. */
  readonly speedLimited: boolean;
  /** Bytes per second, smoothed; 0 when not transferring. */
  getSpeed(): number;
  /** Seconds left at the current speed, or undefined when unknown. */
  getEta(): number | undefined;
  addFile(remoteUrl: string, localPath: string, o?: { sha256?: string; mirrors?: string[]; replaceExisting?: boolean }): Promise<void>;
  setAutoComplete(on: boolean): Promise<void>;
  setRetryDelays(seconds: readonly number[]): Promise<void>;
}

/**
 * What the extension needs of an engine: the local DownloadEngine (this window owns the store) or a
 * RemoteEngine (another window owns it and this one acts through it).
 */
export interface JobService extends JobEvents<EngineJob> {
  /** Problems found in the store at start-up (shown once). */
  readonly problems: readonly string[];
  createJob(o: CreateJobOptions): Promise<EngineJob>;
  getJob(id: string): EngineJob;
  enumJobs(o?: { includeFinal?: boolean }): EngineJob[];
  removeJob(id: string): Promise<void>;
  dispose(): Promise<void>;
}
