// What the owner of a store and the other windows say to each other (JSON-RPC over the store's socket).
import type { ErrorContext } from '../errors';
import type { JobRecord } from '../records';
import type { JobFile } from '../types';

export const PROTOCOL_VERSION = 1;

/** A job as sent to clients: its journal record plus what only the owner knows (live bytes, speed). */
export interface JobSnapshot {
  record: JobRecord;
  files: JobFile[];
  speed: number;
  /** A speed limit is holding the job back (absent from owners that predate limits). */
  speedLimited?: boolean;
}

export interface HelloResult {
  version: number;
  problems: string[];
  jobs: JobSnapshot[];
}

export interface WireError {
  code: string;
  hresult: number;
  message: string;
  context: ErrorContext;
  details?: Record<string, string>;
}

/** Job methods a client may call through the owner (anything else is refused). */
export const REMOTE_JOB_METHODS = [
  'addFile', 'addFileSet', 'resume', 'suspend', 'complete', 'cancel', 'setPriority', 'setDisplayName',
  'setMinimumRetryDelay', 'setNoProgressTimeout', 'setHttpHeaders', 'setAutoComplete', 'setMaxBytesPerSecond',
  'setRemoteUrl', 'replaceRemotePrefix', 'setRetryDelays',
] as const;
export type RemoteJobMethod = (typeof REMOTE_JOB_METHODS)[number];

export const Requests = {
  hello: 'md/hello',
  createJob: 'md/createJob',
  removeJob: 'md/removeJob',
  callJob: 'md/callJob',
} as const;

export const Notifications = {
  changed: 'md/jobChanged',
  added: 'md/jobAdded',
  removed: 'md/jobRemoved',
  transferred: 'md/jobTransferred',
  failed: 'md/jobFailed',
  fileTransferred: 'md/fileTransferred',
} as const;
