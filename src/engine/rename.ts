// Puts a finished temporary file in place without silently replacing someone else's file.
import * as fs from './io';
import { checkExistingKind } from './validation';

/** 'linked': `dest` now names the finished file (and so does `tmp`, until it is unlinked); 'renaming': about to rename. */
export type PlacePhase = 'linked' | 'renaming';

/**
 * Moves `tmp` to `dest`. Unless `replace` is set, an existing destination is an EEXIST error:
 * link()+unlink() makes that check atomic where hard links exist; elsewhere we check, then rename.
 * Windows' antivirus and indexer briefly lock files, so busy errors are retried for a while.
 * `onPlaced` runs after the link (or just before a rename), so the caller can journal the file as completed
 * while both names still tell what happened: after a crash in between, `tmp` and `dest` are the same file
 * (link done) or `tmp` is still there and `dest` is not it (rename not done).
 * Returns 'linked' when `tmp` still names the file as well: the caller deletes that name (a failure to delete
 * it leaves a temporary behind, not a file out of place).
 */
export async function renameIntoPlace(tmp: string, dest: string, replace: boolean, onPlaced?: (phase: PlacePhase) => Promise<void>): Promise<'linked' | 'renamed'> {
  let placed = 'renamed' as 'linked' | 'renamed';
  await retryBusy(async () => {
    if (replace) {
      // Only a regular file is replaced: never a device, FIFO, socket, folder or link put there since addFile.
      const there = await fs.lstat(dest).catch(() => undefined);
      if (there) {
        checkExistingKind(dest, there);
      }
      await onPlaced?.('renaming');
      await fs.rename(tmp, dest);
      return;
    }
    try {
      await fs.link(tmp, dest);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        throw Object.assign(new Error(`'${dest}' already exists (created by someone else); it was not replaced`), { code: 'EEXIST' });
      }
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS' && code !== 'EXDEV') {
        throw e;
      }
      // No hard links here (FAT, some network shares): check, then rename.
      const exists = await fs.lstat(dest).then(() => true, () => false);
      if (exists) {
        throw Object.assign(new Error(`'${dest}' already exists (created by someone else); it was not replaced`), { code: 'EEXIST' });
      }
      await onPlaced?.('renaming');
      await fs.rename(tmp, dest);
      return;
    }
    placed = 'linked';
  });
  if (placed === 'linked') {
    await onPlaced?.('linked');
  }
  return placed;
}

/** Deletes a file, retrying busy errors as a rename is retried (Windows); a missing file counts as deleted. */
export async function deleteBusyFile(p: string): Promise<void> {
  await retryBusy(async () => {
    try {
      await fs.unlink(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw e;
      }
    }
  });
}

async function retryBusy(fn: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + (process.platform === 'win32' ? 60_000 : 0);
  for (let wait = 50; ; wait = Math.min(wait * 2, 2_000)) {
    try {
      return await fn();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (!(code === 'EBUSY' || code === 'EPERM' || code === 'EACCES') || Date.now() >= deadline) {
        throw e;
      }
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
