// The durable job store: one JSON journal replaced atomically (temp file, fsync, rename, fsync of the folder).
import * as fs from './io';
import * as path from 'node:path';
import { DownloadError, HRESULTS } from './errors';
import { JOB_PRIORITIES, JOB_STATES } from './types';
import { syncDir, writePrivateFileAtomic } from './privateFile';
import type { JobRecord } from './records';
import { distrustReason } from './storeTrust';

export { syncDir };

export const STORE_FORMAT = 'managed-downloads/jobs';
export const STORE_VERSION = 1;
const JOURNAL = 'jobs.json';

export interface LoadResult {
  jobs: JobRecord[];
  /** Temporary files of removed jobs that could not be deleted yet (retried until they are gone). */
  orphanTemporaries: string[];
  /** Human-readable notes about what was wrong with the store (kept aside, not deleted). */
  problems: string[];
}

export class JobStore {
  private readonly file: string;
  private lastWritten = '';
  private saving: Promise<void> | undefined;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Called with each save error; the store keeps going (the next save may succeed). */
  onSaveError: (e: unknown) => void = () => undefined;

  constructor(
    readonly dir: string,
    private readonly snapshot: () => JobRecord[],
    private readonly batchMs = 250,
    private readonly orphans: () => string[] = () => [],
    /** The engine's allowed roots: a loaded destination outside them is set aside like any untrusted record. */
    private readonly allowedRoots?: readonly string[],
  ) {
    this.file = path.join(dir, JOURNAL);
  }

  /** Reads the journal. A corrupt one is moved aside and reported; one from a newer version is refused and left alone. */
  async load(): Promise<LoadResult> {
    await fs.mkdir(this.dir, { recursive: true });
    let text: string;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        return { jobs: [], orphanTemporaries: [], problems: [] };
      }
      throw e;
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      return this.setAside('it is not valid JSON (truncated or overwritten)');
    }
    const d = data as { format?: unknown; version?: unknown; jobs?: unknown; orphanTemporaries?: unknown };
    if (typeof d !== 'object' || d === null || d.format !== STORE_FORMAT || typeof d.version !== 'number') {
      return this.setAside('it is not a Managed Downloads job store');
    }
    if (d.version > STORE_VERSION) {
      throw new DownloadError(
        'STORE_NEWER_VERSION',
        `The job store at ${this.file} was written by a newer version of Managed Downloads (format ${d.version}; this version reads ${STORE_VERSION}). It was left untouched; update the extension to use it.`,
        { hresult: HRESULTS.STORE_NEWER_VERSION, context: 'GENERAL_QUEUE_MANAGER' },
      );
    }
    if (!Array.isArray(d.jobs)) {
      return this.setAside('its job list is missing');
    }
    const jobs: JobRecord[] = [];
    const problems: string[] = [];
    const rejected: unknown[] = [];
    const ids = new Set<string>();
    for (const j of d.jobs) {
      if (!isJobRecord(j)) {
        rejected.push(j);
        problems.push(`A damaged job entry was skipped: ${JSON.stringify(j).slice(0, 120)}`);
        continue;
      }
      const kept = structuredClone(j);
      const why = ids.has(j.id) ? 'another job has the same id' : await distrustReason(j, this.allowedRoots, problems);
      if (why) {
        rejected.push(kept);
        problems.push(`Job '${j.displayName.slice(0, 80)}' was set aside and not loaded: ${why}.`);
        continue;
      }
      ids.add(j.id);
      jobs.push(j);
    }
    if (rejected.length > 0) {
      const aside = await this.keepRejected(rejected);
      problems.push(`${rejected.length} job entr${rejected.length === 1 ? 'y was' : 'ies were'} kept as ${aside}; nothing they name was touched.`);
    }
    this.lastWritten = text;
    const orphanTemporaries = Array.isArray(d.orphanTemporaries) ? d.orphanTemporaries.filter((p): p is string => typeof p === 'string') : [];
    return { jobs, orphanTemporaries, problems };
  }

  /** Entries not loaded stay readable beside the store (private: they may name private paths). */
  private async keepRejected(entries: unknown[]): Promise<string> {
    const aside = path.join(this.dir, `jobs.rejected-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    await writePrivateFileAtomic(aside, JSON.stringify({ format: STORE_FORMAT + '/rejected', version: STORE_VERSION, jobs: entries }, null, 1));
    return aside;
  }

  private async setAside(why: string): Promise<LoadResult> {
    const aside = path.join(this.dir, `jobs.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    await fs.rename(this.file, aside);
    return { jobs: [], orphanTemporaries: [], problems: [`The job store could not be read (${why}); it was kept as ${aside} and a new one was started.`] };
  }

  /** Asks for a save soon; many requests within the batch window become one write. */
  scheduleSave(): void {
    this.dirty = true;
    if (this.timer || this.closed) {
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.saveBatched().catch((e) => this.onSaveError(e));
    }, this.batchMs);
    this.timer.unref?.();
  }

  /**
   * The timer's save: one write, then another batch window for the changes made meanwhile, not save()'s tight
   * loop (under sustained change, e.g. thousands of small files, that rewrote the whole journal back to back).
   */
  private async saveBatched(): Promise<void> {
    try {
      await this.writeIfDirty();
    } finally {
      if (this.dirty) {
        this.scheduleSave();
      }
    }
  }

  /** Writes now (after any save in progress) and resolves once the journal is durable. */
  async save(): Promise<void> {
    this.dirty = true;
    // Another caller's write may carry our change: writeIfDirty waits for it, then writes only if still dirty.
    while (await this.writeIfDirty()) {
      // Changed again while writing: write again.
    }
  }

  /** After any write in progress, one write if there are unsaved changes; true if it wrote. */
  private async writeIfDirty(): Promise<boolean> {
    while (this.saving) {
      await this.saving.catch(() => undefined);
    }
    if (!this.dirty) {
      return false;
    }
    this.dirty = false;
    this.saving = this.write();
    try {
      await this.saving;
    } finally {
      this.saving = undefined;
    }
    return true;
  }

  async close(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    await this.save();
    this.closed = true;
  }

  private async write(): Promise<void> {
    const orphans = this.orphans();
    const text = JSON.stringify({ format: STORE_FORMAT, version: STORE_VERSION, jobs: this.snapshot(), ...(orphans.length > 0 ? { orphanTemporaries: orphans } : {}) });
    if (text === this.lastWritten) {
      return;
    }
    await writePrivateFileAtomic(this.file, text);
    this.lastWritten = text;
  }
}

function isJobRecord(j: unknown): j is JobRecord {
  const r = j as JobRecord;
  return (
    typeof r === 'object' && r !== null &&
    typeof r.id === 'string' && typeof r.displayName === 'string' &&
    (JOB_STATES as readonly string[]).includes(r.state) &&
    (JOB_PRIORITIES as readonly string[]).includes(r.priority) &&
    (r.type === 'download' || r.type === 'upload') &&
    typeof r.created === 'number' && Array.isArray(r.files) &&
    r.files.every((f) => typeof f === 'object' && f !== null && typeof f.remoteUrl === 'string' && typeof f.localPath === 'string' &&
      typeof f.temporaryPath === 'string' && typeof f.durableBytes === 'number')
  );
}
