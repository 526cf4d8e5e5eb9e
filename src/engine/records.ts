// What the durable store keeps for each job and file. Plain JSON: times are epoch milliseconds.
import type { ErrorContext } from './errors';
import type { JobPriority, JobState, JobType } from './types';

export interface FileRecord {
  remoteUrl: string;
  localPath: string;
  temporaryPath: string;
  /** Lower-case hex sha256 the bytes must match, if the caller gave one. */
  sha256?: string;
  bytesTotal?: number;
  /** Bytes known to be on disk (fdatasync'd) at the last checkpoint: the resume offset after a crash. */
  durableBytes: number;
  /**
   * Bytes from here to durableBytes were kept from before a crash of the process (same boot: flushed only at
   * the restart) and are not yet checked against the server (keptBytes.ts).
   */
  keptFrom?: number;
  transferred: boolean;
  completed: boolean;
  /** Strong validators of the entity the bytes on disk belong to. */
  etag?: string;
  lastModified?: string;
  /** Times the transfer had to start again from byte 0 (range ignored, entity changed, …). */
  restarts: number;
  /** Which file the temporary was when it became transferred: Complete places it only if it still is (placementChecks.ts). */
  temporaryIdentity?: { dev: number; ino: number };
  /** The most bytes this file ever held: only bytes past it count as progress (restarts.ts). */
  bestOffset?: number;
  /** Restarts from byte 0 since a byte last went past bestOffset (bounded: restarts.ts). */
  fruitlessRestarts?: number;
  /** Other URLs of the same entity, in order (§8). */
  mirrors?: string[];
  /** The URL in use when a mirror took over from remoteUrl (sources.ts). */
  source?: string;
  /** URLs set aside for this file after they failed (sources.ts); cleared when every source has failed. */
  failedSources?: string[];
  /** Bytes that came from the content cache (contentCache.ts), not from the network. */
  bytesFromCache?: number;
  /** The last full answer (200) showed the server cannot resume this file (JobFile.serverCannotResume). */
  serverCannotResume?: boolean;
  /** Set when the destination may replace an existing file (the user confirmed it in a save dialog). */
  replaceExisting?: boolean;
  /** Upload jobs only: the BITS upload session (durableBytes then counts the bytes the server acknowledged). */
  upload?: UploadState;
  /**
   * A segmented transfer in progress: byte ranges [start, end) of the temporary file, each with the bytes
   * from `start` known durable (`done`). durableBytes then stays the contiguous prefix. Absent in old stores.
   */
  segments?: SegmentRecord[];
  /** The boot (Linux boot_id) during which the segments' `written` offsets were recorded. */
  bootId?: string;
}

export interface SegmentRecord {
  start: number;
  end: number;
  done: number;
  /**
   * Bytes from `start` handed to the OS (page cache), not yet known durable. After a crash of the process only
   * (same bootId: the kernel kept its page cache) they are as good as `done` once the file is fdatasync'd.
   */
  written?: number;
}

/** An upload's BITS session ([MC-BUP] 3.1.1.2), kept so that an interrupted upload resumes in the same session. */
export interface UploadState {
  /** BITS-Session-Id from the Ack for Create-Session; cleared by Close-Session / Cancel-Session. */
  sessionId?: string;
  /** BITS-Host-Id: the server the session lives on, and how long to try it before going back to the URL's host. */
  hostId?: string;
  hostIdFallbackSeconds?: number;
  hostIdFailingSince?: number;
  /** The local file when the upload started; any later change fails the job with BG_E_LOCAL_FILE_CHANGED. */
  source?: { size: number; mtimeMs: number; ino: number };
}

export interface ErrorRecord {
  code: string;
  hresult: number;
  message: string;
  context: ErrorContext;
  fileIndex?: number;
}

export interface JobRecord {
  id: string;
  displayName: string;
  description: string;
  type: JobType;
  priority: JobPriority;
  state: JobState;
  errorCount: number;
  created: number;
  modified: number;
  transferCompleted?: number;
  minimumRetryDelaySeconds: number;
  noProgressTimeoutSeconds: number;
  /** Header names only; values may be secrets and live in the header vault. */
  headerNames: string[];
  error?: ErrorRecord;
  /** When a TRANSIENT_ERROR job is due for its next try. */
  retryAt?: number;
  /** Start of the current stretch without progress (set at the first transient error, cleared by progress). */
  noProgressSince?: number;
  /**
   * The job's own delays before the first retries of a stretch without progress (retrySchedule.ts), each capped
   * by minimumRetryDelaySeconds; later retries wait the minimum. Absent: every retry waits the minimum.
   */
  retryDelaysSeconds?: number[];
  /** Transient errors in the current stretch without progress: which delay of retryDelaysSeconds comes next. */
  retriesWithoutProgress?: number;
  /** When the current wait in TRANSIENT_ERROR began, and the server's Retry-After then: a changed delay is counted from it. */
  retryWaitStarted?: number;
  serverRetryAfterSeconds?: number;
  /** Whether the job should complete itself once transferred (New Download from the UI). */
  autoComplete?: boolean;
  /**
   * Why completing itself failed (e.g. EEXIST: someone else's file took the destination meanwhile). The job
   * stays TRANSFERRED; cleared when complete() is called again.
   */
  autoCompleteError?: Omit<ErrorRecord, 'fileIndex'>;
  /** Temporary files complete()/cancel() could not delete (busy, permission): retried at start-up and hourly. */
  leftoverTemporaries?: string[];
  /** Files of this job that may transfer at once (default 1: one at a time, in order). */
  filesInFlight?: number;
  /** The job's own speed limit in bytes per second (absent: only the engine's limit). */
  maxBytesPerSecond?: number;
  files: FileRecord[];
}

export const DEFAULT_MINIMUM_RETRY_DELAY_SECONDS = 600;
export const MINIMUM_RETRY_DELAY_FLOOR_SECONDS = 5;
export const DEFAULT_NO_PROGRESS_TIMEOUT_SECONDS = 1_209_600;
