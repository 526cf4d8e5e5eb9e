// The API that `vscode.extensions.getExtension('dojobs.managed-downloads').activate()` resolves to
// (contract §4). Other extensions may copy src/engine/types.ts, which declares the same shapes with no
// dependencies; this file re-exports them under the names they use.
export type {
  CancelResult,
  CompleteResult,
  CreateJobOptions,
  Disposable,
  Event,
  Job,
  JobErrorInfo,
  JobFile,
  JobPriority,
  JobProgress,
  JobState,
  JobTimes,
  JobType,
  ManagedDownloadsApi,
  NewFile,
} from '../engine/types';
