// The engine's settings (DownloadEngine.open) and the defaults its parts share.
import type { Dispatcher } from 'undici';
import type { CacheSettings } from './contentCache';
import type { NetworkSettings } from './dispatcher';
import type { HeaderVault } from './headerVault';
import type { TransferTimeouts } from './transfer';

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

export const DEFAULT_TIMEOUTS: TransferTimeouts = {
  headersMs: 30_000,
  bodyIdleMs: 60_000,
  lowSpeedBytesPerSecond: 1,
  lowSpeedWindowMs: 120_000,
};
