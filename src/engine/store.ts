// The durable job store: one JSON journal replaced atomically (temp file, fsync, rename, fsync of the folder).
import * as fs from './io';
import * as path from 'node:path';
import { DownloadError, HRESULTS } from './errors';
import { JOB_PRIORITIES, JOB_STATES } from './types';
import type { JobRecord } from './records';

export const STORE_FORMAT = 'managed-downloads/jobs';
export const STORE_VERSION = 1;
const JOURNAL = 'jobs.json';

export interface LoadResult {
  jobs: JobRecord[];
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
        return { jobs: [], problems: [] };
      }
      throw e;
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      return this.setAside('it is not valid JSON (truncated or overwritten)');
    }
    const d = data as { format?: unknown; version?: unknown; jobs?: unknown };
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
    for (const j of d.jobs) {
      if (isJobRecord(j)) {
        jobs.push(j);
      } else {
        problems.push(`A damaged job entry was skipped: ${JSON.stringify(j).slice(0, 120)}`);
      }
    }
    this.lastWritten = text;
    return { jobs, problems };
  }

  private async setAside(why: string): Promise<LoadResult> {
    const aside = path.join(this.dir, `jobs.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    await fs.rename(this.file, aside);
    return { jobs: [], problems: [`The job store could not be read (${why}); it was kept as ${aside} and a new one was started.`] };
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
    try {
      await this.save();
    } finally {
      // Even when that last save failed: a closed store never writes again (its engine is gone; another may own the journal).
      this.closed = true;
    }
  }

  private async write(): Promise<void> {
    const text = JSON.stringify({ format: STORE_FORMAT, version: STORE_VERSION, jobs: this.snapshot() });
    if (text === this.lastWritten) {
      return;
    }
    const tmp = this.file + '.tmp';
    const fh = await fs.open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, this.file);
    await syncDir(this.dir);
    this.lastWritten = text;
  }
}

/** fsync a folder so a rename in it survives a power cut (not possible on Windows; ignored there). */
export async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') {
    return;
  }
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(dir, 'r');
    await fh.sync();
  } catch {
    // Some file systems refuse fsync on folders; the rename is still atomic.
  } finally {
    await fh?.close();
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
