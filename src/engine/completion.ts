// Closing a job: complete() puts a download's files in place (or closes an upload's session) and cancel() drops
// them. Both stop the run first and decide which temporaries are placed, kept or deleted.
import * as path from 'node:path';
import type { ContentCache } from './contentCache';
import type { EngineOptions } from './engineOptions';
import { DownloadError, osError } from './errors';
import type { HeaderVault } from './headerVault';
import type { JobImpl } from './job';
import { checkTemporaryUnchanged } from './placementChecks';
import { placeInOrder } from './placeFiles';
import type { FileRecord } from './records';
import { renameIntoPlace } from './rename';
import { syncDir, type JobStore } from './store';
import type { CancelResult, CompleteResult, JobState } from './types';
import { cancelUploadSession, closeUploadSession, type SessionCallOptions } from './uploadSession';
import { checkStillInsideRoots } from './validation';

/** What complete() and cancel() need from the engine. */
export interface CompletionHost {
  /** The engine's settings, read at each use (updateOptions changes them in place). */
  readonly opts: Pick<EngineOptions, 'allowedRoots'>;
  readonly store: Pick<JobStore, 'save'>;
  readonly vault: Pick<HeaderVault, 'delete'>;
  /** The content cache in use, if any: files completed with a known sha256 go in it. */
  cache(): ContentCache | undefined;
  log(level: 'info', message: string): void;
  setState(job: JobImpl, state: JobState): void;
  changed(job: JobImpl, o?: { immediate?: boolean }): void;
  stopRun(job: JobImpl, reason: 'stop'): Promise<void>;
  pump(): void;
  uploadCall(job: JobImpl, file: FileRecord): SessionCallOptions;
  deleteTemporary(job: JobImpl, p: string): Promise<void>;
  deleteTemporaries(job: JobImpl): Promise<void>;
}

export function completeJob(host: CompletionHost, job: JobImpl): Promise<CompleteResult> {
  // Only files fully transferred (and verified) before this call are kept: decided now, not once the calls
  // queued before this one have run (the transfer goes on meanwhile).
  const keep = new Set(job.record.files.filter((f) => f.transferred || f.completed));
  return job.exclusive(async () => {
    job.check('complete', 'complete');
    const r = job.record;
    if (job.type === 'upload') {
      return await completeUpload(host, job);
    }
    if (r.autoCompleteError) {
      r.autoCompleteError = undefined;
      host.changed(job, { immediate: true });
    }
    job.rt.closing = true;
    try {
      await host.stopRun(job, 'stop');
      // A file is journaled completed only once the names it relies on are durable: its temporary's (a rename
      // not yet done is told by it at the next start) and then its destination's link. Without the folders'
      // fsync a power cut could keep the journal and lose both names: an ACKNOWLEDGED job without its file.
      const dirs = new Set(r.files.map((f) => parentDir(f.localPath)));
      const syncDirs = (): Promise<unknown> => Promise.all([...dirs].map(syncDir));
      await syncDirs();
      const failed = async (f: FileRecord, e: unknown): Promise<never> => {
        host.setState(job, 'TRANSFERRED');
        await host.store.save(job.record);
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
          inside = checkStillInsideRoots(f.localPath, host.opts.allowedRoots);
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
            // else's file at the next start (recovery.ts reconcile); otherwise Complete would fail forever with EEXIST.
            f.completed = true;
            placed = phase === 'linked';
            if (placed) {
              await syncDir(parentDir(f.localPath));
            }
            await host.store.save(job.record);
          });
        } catch (e) {
          if (!placed) {
            f.completed = false;
          }
          return await failed(f, e);
        }
        f.completed = true;
        if (how === 'linked') {
          await host.deleteTemporary(job, f.temporaryPath);
        }
        host.changed(job);
      };
      // In order; hard links journaled per batch (see placeFiles.ts), the rest one by one as above.
      await placeInOrder(r.files.filter((f) => !f.completed && keep.has(f)), {
        placeOne,
        failed,
        check,
        save: async () => {
          await syncDirs();
          await host.store.save(job.record);
        },
        placed: () => host.changed(job),
        removeTemporary: (f) => host.deleteTemporary(job, f.temporaryPath),
      });
      for (const f of r.files) {
        if (f.completed && f.sha256 && keep.has(f)) {
          host.cache()?.add(f.sha256, f.localPath); // in the background; best effort
        }
      }
      for (const f of r.files) {
        if (!keep.has(f)) {
          await host.deleteTemporary(job, f.temporaryPath);
          // One that finished after the call (or while the run stopped) is dropped too, so not transferred.
          f.transferred = false;
        }
      }
      await syncDirs();
      host.setState(job, 'ACKNOWLEDGED');
      await host.store.save(job.record);
      await host.vault.delete(job.id).catch(() => undefined);
      const dropped = r.files.length - keep.size;
      if (dropped > 0) {
        host.log('info', `Job '${job.displayName}' completed partially: ${keep.size} of ${r.files.length} files kept.`);
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

/** complete() of a TRANSFERRED upload: Close-Session, then ACKNOWLEDGED. On failure the job stays TRANSFERRED. */
async function completeUpload(host: CompletionHost, job: JobImpl): Promise<CompleteResult> {
  const file = job.record.files[0];
  job.rt.closing = true;
  job.rt.closeSession = new AbortController();
  try {
    await closeUploadSession({ ...host.uploadCall(job, file), signal: job.rt.closeSession.signal });
  } catch (e) {
    const err = e instanceof DownloadError ? e : osError(e, 'Close-Session failed');
    const lost = err.code === 'BG_E_SESSION_NOT_FOUND';
    if (lost) {
      // The server forgot the session: the file goes again, in a new one ([MC-BUP] 3.1.5.2.1).
      host.setState(job, 'QUEUED');
    }
    await host.store.save(job.record);
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
    host.pump();
  }
  file.completed = true;
  host.setState(job, 'ACKNOWLEDGED');
  await host.store.save(job.record);
  await host.vault.delete(job.id).catch(() => undefined);
  return 'S_OK';
}

export function cancelJob(host: CompletionHost, job: JobImpl): Promise<CancelResult> {
  job.rt.closeSession?.abort(); // a Close-Session in flight holds the lock: cancel does not wait for its answer
  return job.exclusive(async () => {
    job.check('cancel', 'cancel');
    // A job cancelled while failing keeps why it failed (its history says so); any other forgets an old error.
    const failing = job.state === 'ERROR' || job.state === 'TRANSIENT_ERROR';
    job.rt.closing = true;
    try {
      await host.stopRun(job, 'stop');
      const upload = job.type === 'upload' ? job.record.files[0] : undefined;
      if (upload) {
        // The server drops the partial upload; the local file is the user's and stays.
        await cancelUploadSession(host.uploadCall(job, upload));
      } else if (job.type === 'download') {
        await host.deleteTemporaries(job);
      }
      if (!failing) {
        job.record.error = undefined;
      }
      host.setState(job, 'CANCELLED');
      await host.store.save(job.record);
      await host.vault.delete(job.id).catch(() => undefined);
      return job.leftoverTemporaries.length > 0 ? 'BG_S_UNABLE_TO_DELETE_FILES' : undefined;
    } finally {
      job.rt.closing = false;
    }
  });
}

function parentDir(p: string): string {
  const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  return i > 0 ? p.slice(0, i) : p;
}
