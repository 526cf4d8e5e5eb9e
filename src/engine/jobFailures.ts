// Applies the failure policy (failurePolicy.ts) to a job: records the error, sets the state, says so.
import { DownloadError, HRESULTS, osError } from './errors';
import { judgeFailure } from './failurePolicy';
import type { JobImpl } from './job';
import type { JobState } from './types';

/** What failing a job needs from the engine. */
export interface FailureHost {
  now(): number;
  log(level: 'info' | 'warn', message: string): void;
  setState(job: JobImpl, state: JobState): void;
  changed(job: JobImpl, o?: { persist?: boolean; immediate?: boolean }): void;
  failed(job: JobImpl): void;
}

/** A failed run: fatal errors go to ERROR, transient ones wait for a retry unless progress has stopped too long. */
export function failJob(host: FailureHost, job: JobImpl, e: unknown, fileIndex: number): void {
  const err = e instanceof DownloadError ? e : osError(e, 'Unexpected failure');
  const r = job.record;
  r.errorCount++;
  r.error = { code: err.code, hresult: err.hresult, message: err.message, context: err.context, fileIndex: fileIndex >= 0 ? fileIndex : undefined };
  job.rt.speed = 0;
  const now = host.now();
  const verdict = judgeFailure(err, r, now);
  if (verdict.kind === 'fatal') {
    host.log('warn', `Job '${job.displayName}' failed: ${err.message} (${err.codeAndHresult})`);
    host.setState(job, 'ERROR');
    host.failed(job);
    return;
  }
  r.noProgressSince = verdict.noProgressSince;
  if (verdict.kind === 'noProgress') {
    failNoProgress(host, job);
    return;
  }
  r.retriesWithoutProgress = verdict.retriesWithoutProgress;
  r.retryWaitStarted = now;
  r.serverRetryAfterSeconds = err.retryAfterSeconds;
  r.retryAt = verdict.retryAt;
  host.log('info', `Job '${job.displayName}': ${err.message} (${err.codeAndHresult}); retry in ${verdict.delaySeconds} s.`);
  host.setState(job, 'TRANSIENT_ERROR');
}

/** No progress for the job's no-progress timeout: ERROR, keeping the last error's message and where it was. */
export function failNoProgress(host: FailureHost, job: JobImpl): void {
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
  host.log('warn', r.error.message);
  host.setState(job, 'ERROR');
  host.failed(job);
}

/** complete() on the job's own behalf failed: the job stays TRANSFERRED and says why, for the UI to show. */
export function autoCompleteFailed(host: FailureHost, job: JobImpl, e: unknown): void {
  const err = e instanceof DownloadError ? e : osError(e, 'Unexpected failure');
  host.log('warn', `Job '${job.displayName}' could not complete itself: ${err.message} (${err.codeAndHresult})`);
  if (job.state !== 'TRANSFERRED') {
    return; // cancelled or completed meanwhile: nothing left to say
  }
  job.record.autoCompleteError = { code: err.code, hresult: err.hresult, message: err.message, context: err.context };
  host.changed(job, { immediate: true, persist: true });
}
