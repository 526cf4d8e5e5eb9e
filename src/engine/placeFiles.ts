// complete() for many files: the destinations are hard-linked in order, then one journal save marks a whole
// batch completed, then the temporary names go. A crash in between leaves destination and temporary as one
// inode, which the start-up reconcile recognises as completed; so a journal write per batch (not per file, each
// one rewriting the whole journal) keeps the same guarantees. Everything else (replacing a destination, file
// systems without hard links, Windows' busy files) goes through renameIntoPlace one file at a time.
import * as fs from 'node:fs/promises';
import type { FileRecord } from './records';

const BATCH = 256;

export interface PlaceOptions {
  /** The original one-file path (renameIntoPlace with its own journaling and error handling). */
  placeOne: (f: FileRecord) => Promise<void>;
  /** Writes the journal durably. */
  save: () => Promise<void>;
  /** After a file is in place (and journaled). */
  placed: (f: FileRecord) => void;
  /** A file could not be put in place: handle it (the job stays TRANSFERRED) and throw. */
  failed: (f: FileRecord, e: unknown) => Promise<never>;
}

export async function placeInOrder(files: FileRecord[], o: PlaceOptions): Promise<void> {
  const batchable = (f: FileRecord): boolean => process.platform !== 'win32' && f.replaceExisting !== true;
  for (let i = 0; i < files.length; ) {
    if (!batchable(files[i])) {
      await o.placeOne(files[i]);
      i++;
      continue;
    }
    const linked: FileRecord[] = [];
    let failure: [FileRecord, unknown] | undefined;
    let fallback = false;
    while (i < files.length && linked.length < BATCH && batchable(files[i])) {
      const f = files[i];
      try {
        await fs.link(f.temporaryPath, f.localPath);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS' || code === 'EXDEV') {
          fallback = true; // no hard links here: the one-file path checks, then renames
        } else if (code === 'EEXIST') {
          failure = [f, Object.assign(new Error(`'${f.localPath}' already exists (created by someone else); it was not replaced`), { code: 'EEXIST' })];
        } else {
          failure = [f, e];
        }
        break;
      }
      f.completed = true;
      linked.push(f);
      i++;
    }
    if (linked.length > 0) {
      // Journaled before any temporary name goes.
      await o.save();
      await Promise.all(linked.map((f) => fs.unlink(f.temporaryPath).catch(() => undefined)));
      for (const f of linked) {
        o.placed(f);
      }
    }
    if (failure) {
      await o.failed(failure[0], failure[1]);
    }
    if (fallback) {
      await o.placeOne(files[i]);
      i++;
    }
  }
}
