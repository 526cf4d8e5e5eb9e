// complete() for many files: the destinations of a batch are hard-linked (several at once), then one journal
// save marks the batch completed, then the temporary names go. A crash in between leaves destination and
// temporary as one inode, which the start-up reconcile recognises as completed; so a journal write per batch
// (not per file, each one rewriting the whole journal) keeps the same guarantees. The links overlap (each is a
// thread-pool round trip), but the outcome is the one of linking in order: when a file cannot be linked, the
// files after it that were linked meanwhile are unlinked again, so what is in place is a prefix. (A crash in
// the middle of a batch can leave a later file linked and an earlier one not; the reconcile then counts that
// file completed, and the next complete() places the rest.)
// Everything else (replacing a destination, file systems without hard links, Windows' busy files) goes
// through renameIntoPlace one file at a time.
import * as fs from './io';
import type { FileRecord } from './records';

const BATCH = 2048;
const LINKS_IN_FLIGHT = 16;

export interface PlaceOptions {
  /** The original one-file path (renameIntoPlace with its own journaling and error handling). */
  placeOne: (f: FileRecord) => Promise<void>;
  /** Writes the journal durably. */
  save: () => Promise<void>;
  /** After a file is in place (and journaled). */
  placed: (f: FileRecord) => void;
  /** A file could not be put in place: handle it (the job stays TRANSFERRED) and throw. */
  failed: (f: FileRecord, e: unknown) => Promise<never>;
  /** Throws when a file must not be put in place (its temporary swapped, its folder now outside the allowed roots). */
  check: (f: FileRecord) => Promise<void>;
  /** Deletes the temporary name of a file now in place (one that cannot be deleted is noted, not thrown). */
  removeTemporary: (f: FileRecord) => Promise<void>;
}

/** Why a hard link failed: no hard links on this file system, or a real failure. */
function linkFailure(f: FileRecord, e: unknown): { fallback: true } | { fallback: false; error: unknown } {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS' || code === 'EXDEV') {
    return { fallback: true }; // the one-file path checks, then renames
  }
  if (code === 'EEXIST') {
    return { fallback: false, error: Object.assign(new Error(`'${f.localPath}' already exists (created by someone else); it was not replaced`), { code: 'EEXIST' }) };
  }
  return { fallback: false, error: e };
}

/** What became of each file of a batch: linked, the error of its link, or not tried (after a failure). */
type LinkOutcome = { linked: true } | { linked: false; error: unknown } | undefined;

/** Links the files' destinations, LINKS_IN_FLIGHT at a time, starting none after the first failure. */
async function linkAll(files: FileRecord[], check: PlaceOptions['check']): Promise<LinkOutcome[]> {
  const outcomes: LinkOutcome[] = new Array<LinkOutcome>(files.length);
  let next = 0;
  let stop = files.length;
  const lane = async (): Promise<void> => {
    for (let i = next++; i < stop; i = next++) {
      try {
        await check(files[i]);
        await fs.link(files[i].temporaryPath, files[i].localPath);
        outcomes[i] = { linked: true };
      } catch (error) {
        // EEXIST on our own link (an undo that could not remove it) is a link made.
        if ((error as NodeJS.ErrnoException).code === 'EEXIST' && (await isOurLink(files[i]))) {
          outcomes[i] = { linked: true };
          continue;
        }
        outcomes[i] = { linked: false, error };
        stop = Math.min(stop, i + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(LINKS_IN_FLIGHT, files.length) }, lane));
  return outcomes;
}

/** Whether the destination is a hard link to the file's temporary (made by us). */
async function isOurLink(f: FileRecord): Promise<boolean> {
  const [t, d] = await Promise.all([fs.lstat(f.temporaryPath).catch(() => undefined), fs.lstat(f.localPath).catch(() => undefined)]);
  return t !== undefined && d !== undefined && t.isFile() && t.ino === d.ino && t.dev === d.dev;
}

/** Removes a destination we linked ourselves (checked: still the temporary's inode), to undo it. */
async function unlinkOurs(f: FileRecord): Promise<void> {
  if (await isOurLink(f)) {
    await fs.unlink(f.localPath).catch(() => undefined);
  }
}

export async function placeInOrder(files: FileRecord[], o: PlaceOptions): Promise<void> {
  // Once a link says this file system has none, the rest go one by one without trying again.
  let noHardLinks = process.platform === 'win32';
  const batchable = (f: FileRecord): boolean => !noHardLinks && f.replaceExisting !== true;
  for (let i = 0; i < files.length; ) {
    if (!batchable(files[i])) {
      await o.placeOne(files[i]);
      i++;
      continue;
    }
    let end = i;
    while (end < files.length && end - i < BATCH && batchable(files[end])) {
      end++;
    }
    const batch = files.slice(i, end);
    const outcomes = await linkAll(batch, o.check);
    const firstFailure = outcomes.findIndex((r) => r?.linked === false);
    const linked = firstFailure < 0 ? batch : batch.slice(0, firstFailure);
    if (firstFailure >= 0) {
      // Linked while an earlier file failed: undone, so that only files before the failure are in place.
      await Promise.all(batch.map((f, k) => (k > firstFailure && outcomes[k]?.linked ? unlinkOurs(f) : Promise.resolve())));
    }
    if (linked.length > 0) {
      for (const f of linked) {
        f.completed = true;
      }
      // Journaled before any temporary name goes.
      await o.save();
      await Promise.all(linked.map((f) => o.removeTemporary(f)));
      for (const f of linked) {
        o.placed(f);
      }
    }
    i += linked.length;
    const failed = firstFailure >= 0 ? outcomes[firstFailure] : undefined;
    if (failed && !failed.linked) {
      const failure = linkFailure(files[i], failed.error);
      if (!failure.fallback) {
        await o.failed(files[i], failure.error);
      }
      noHardLinks = true;
      await o.placeOne(files[i]);
      i++;
    }
  }
}
