// The state-changing calls of a job other than complete() and cancel() (completion.ts): adding files, resume,
// suspend, headers, URLs and retry delays. Each one checks, changes the record, journals it and says so.
import { checkMirrors } from './sources';
import type { ActiveDestinations } from './destinations';
import { normalisePathKey } from './destinations';
import type { EngineOptions } from './engineOptions';
import { DownloadError, invalidArg } from './errors';
import { rescheduledRetryAt } from './failurePolicy';
import type { HeaderVault } from './headerVault';
import { parseSha256 } from './integrity';
import type { AddedFile, JobImpl } from './job';
import { checkLocalPathsOnDisk } from './pathChecks';
import type { FileRecord } from './records';
import { applyUrlChanges, type UrlPick } from './remoteUrls';
import type { JobStore } from './store';
import { TurnBudget } from './turns';
import type { JobState } from './types';
import { newUploadFile } from './uploadSource';
import { checkLocalPathSyntax, checkRemoteUrl, temporaryPathFor } from './validation';

/** What the job actions need from the engine. */
export interface JobActionsHost {
  /** The engine's settings, read at each use (updateOptions changes them in place). */
  readonly opts: Pick<EngineOptions, 'allowedRoots'>;
  readonly destinations: Pick<ActiveDestinations, 'add' | 'has'>;
  readonly store: Pick<JobStore, 'save'>;
  readonly vault: Pick<HeaderVault, 'set'>;
  readonly headers: Map<string, Record<string, string>>;
  now(): number;
  log(level: 'info', message: string): void;
  setState(job: JobImpl, state: JobState): void;
  changed(job: JobImpl, o?: { persist?: boolean; immediate?: boolean }): void;
  pump(): void;
  stopRun(job: JobImpl, reason: 'preempt' | 'stop'): Promise<void>;
}

export function addFiles(host: JobActionsHost, job: JobImpl, files: AddedFile[]): Promise<void> {
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
      job.record.files.push(await newUploadFile(files[0], host.opts.allowedRoots));
      host.destinations.add(job, job.record.files);
      job.record.modified = host.now();
      await host.store.save(job.record);
      host.changed(job, { immediate: true });
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
      if (taken.has(key) || host.destinations.has(key)) {
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
    await checkLocalPathsOnDisk(records.map((r) => r.localPath), host.opts.allowedRoots);
    job.record.files.push(...records);
    host.destinations.add(job, records);
    job.record.modified = host.now();
    await host.store.save(job.record);
    host.changed(job, { immediate: true });
    host.pump();
  });
}

export function resume(host: JobActionsHost, job: JobImpl): Promise<void> {
  return job.exclusive(async () => {
    const { to } = job.check('resume', 'resume');
    if (!to) {
      return;
    }
    job.record.retryAt = undefined;
    host.setState(job, to);
    await host.store.save(job.record);
    host.pump();
  });
}

export function suspend(host: JobActionsHost, job: JobImpl): Promise<void> {
  return job.exclusive(async () => {
    const { to } = job.check('suspend', 'suspend');
    if (!to) {
      return;
    }
    job.record.retryAt = undefined;
    host.setState(job, to);
    await host.stopRun(job, 'stop');
    await host.store.save(job.record);
  });
}

export async function setHeaders(host: JobActionsHost, job: JobImpl, headers: Record<string, string>): Promise<void> {
  await host.vault.set(job.id, headers);
  host.headers.set(job.id, headers);
  job.record.headerNames = Object.keys(headers);
  job.record.modified = host.now();
  await host.store.save(job.record);
  host.changed(job, { immediate: true });
}

/** The job's retry delays changed: a wait under way counts from its start with the new delay (due now: retried now). */
export function retryDelaysChanged(host: JobActionsHost, job: JobImpl): void {
  const r = job.record;
  const retryAt = rescheduledRetryAt(r);
  if (retryAt !== undefined && retryAt !== r.retryAt) {
    r.retryAt = retryAt;
    host.log('info', `Job '${job.displayName}': retry delay changed; next retry ${retryAt <= host.now() ? 'now' : `in ${Math.ceil((retryAt - host.now()) / 1000)} s`}.`);
    host.changed(job, { persist: true, immediate: true });
    host.pump();
  }
}

/** New URLs for files not transferred yet; a transfer running on one of them stops and starts again from the new URL. */
export function changeRemoteUrls(host: JobActionsHost, job: JobImpl, verb: string, pick: UrlPick): Promise<void> {
  return job.exclusive(async () => {
    job.check('changeUrl', verb);
    const changes = pick(job.record.files);
    const done = changes.find((c) => job.record.files[c.index].transferred || job.record.files[c.index].completed);
    if (done) {
      throw job.invalidState(verb, `file ${done.index} is already transferred`);
    }
    applyUrlChanges(job.record.files, changes);
    job.record.modified = host.now();
    await host.store.save(job.record);
    host.changed(job, { immediate: true });
    const rt = job.rt;
    if (rt.run && changes.some((c) => rt.currentFile === c.index || rt.live !== undefined)) {
      host.log('info', `Job '${job.displayName}': a URL changed under its transfer; it starts again from the new URL, keeping its bytes.`);
      await host.stopRun(job, 'preempt');
    }
  });
}
