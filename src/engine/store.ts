// The durable job store: a snapshot of every job (jobs.json) and a log of the job records changed since
// (storeFormat.ts). A change costs one appended line, not a rewrite of every job; the changes that arrive while
// a write is on its way share the next one and its single fdatasync (group commit). When the log holds more
// than twice the live jobs, a new snapshot is written beside the running log (temporary file, fsync, rename,
// fsync of the folder) and the logs it covers are deleted: a crash at any point leaves either the old snapshot
// with every log from its generation on, or the new snapshot with its own.
import * as fs from './io';
import * as path from 'node:path';
import { constants } from './io';
import { DownloadError, HRESULTS } from './errors';
import { syncDir, writePrivateFileAtomic } from './privateFile';
import type { JobRecord } from './records';
import { trustVerdict } from './storeTrust';
import { nextTurn, TurnBudget } from './turns';
import {
  SNAPSHOT_FILE,
  STORE_VERSION,
  logFileName,
  logGeneration,
  parseLog,
  parseSnapshot,
  snapshotLines,
  type ParsedSnapshot,
  putLine,
  removeLine,
  snapshotText,
  validateLoadedRecord,
} from './storeFormat';

export { STORE_FORMAT, STORE_VERSION, isJobRecord, validateLoadedRecord } from './storeFormat';
export { syncDir };

/** Temporaries of removed jobs that could not be deleted yet (the engine retries them): a small file of their own. */
const ORPHANS_FILE = 'orphan-temporaries.json';

const TEMP_FILE = `${SNAPSHOT_FILE}.tmp`;
/** Below this much log, a new snapshot is not worth its write. */
const MIN_COMPACT_BYTES = 256 * 1024;
/** The store's files: created by us alone (never through a planted link), readable by the user alone. */
const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);
const FILE_MODE = 0o600;
/**
 * Linux: the log is opened with O_DSYNC, so each append is its own data sync (the kernel runs the same
 * fdatasync over the written range) and a commit is one thread-pool round trip instead of two. Elsewhere a
 * datasync follows the write (macOS: O_DSYNC would skip the drive's cache flush that libuv's fdatasync asks for).
 */
const SYNCED_APPENDS = process.platform === 'linux' && constants.O_DSYNC !== undefined ? constants.O_DSYNC : 0;

export interface LoadResult {
  jobs: JobRecord[];
  /** Temporaries of removed jobs that could not be deleted yet (saveOrphans). */
  orphanTemporaries: string[];
  /** Human-readable notes about what was wrong with the store (kept aside, not deleted). */
  problems: string[];
}

interface Waiters {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

function waiters(): Waiters {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}


export class JobStore {
  /** Each job's JSON as last made durable: what a restart reads back, and what the next snapshot holds. */
  private readonly durable = new Map<string, string>();
  private savedOrphans = '[]';
  private orphanWrites: Promise<void> = Promise.resolve();
  private durableBytes = 0;
  /** Changes for the next commit: the record to write, or null to remove the job. */
  private pending = new Map<string, JobRecord | null>();
  /** Callers waiting for the commit that will carry the pending changes. */
  private waiting: Waiters | undefined;
  private committing = false;
  private timer: NodeJS.Timeout | undefined;
  /** The generation appends go to, its open file (made at the first commit) and the highest generation named yet. */
  private generation = 0;
  private log: fs.FileHandle | undefined;
  private logExists = false;
  private maxGeneration = 0;
  /** Log bytes a restart would replay (since the snapshot). */
  private logBytes = 0;
  /** Generations of the log files on disk, deleted once a snapshot covers them. */
  private readonly logs = new Set<number>();
  private compacting: Promise<void> | undefined;
  private compactRequested = false;
  private closed = false;
  /** Called with each save error; the store keeps going (the next save may succeed). */
  onSaveError: (e: unknown) => void = () => undefined;

  constructor(
    readonly dir: string,
    /** Every job the engine has, for saveAll(). */
    private readonly snapshot: () => JobRecord[],
    private readonly batchMs = 250,
    /** The engine's allowed roots: a loaded destination outside them is set aside like any untrusted record. */
    private readonly allowedRoots?: readonly string[],
  ) {}

  private file(name: string): string {
    return path.join(this.dir, name);
  }

  /**
   * Reads the snapshot and replays the logs after it. A corrupt snapshot is moved aside (with its logs) and
   * reported; one from a newer version is refused and left alone. A torn last line is dropped. A store that is
   * not exactly a current snapshot with at most its own intact log (new, old format, after a crash) gets a new
   * snapshot before anything else is written.
   */
  async load(): Promise<LoadResult> {
    await fs.mkdir(this.dir, { recursive: true });
    const problems: string[] = [];
    let generations = (await fs.readdir(this.dir)).map(logGeneration).filter((g): g is number => g !== undefined).sort((a, b) => a - b);
    const records = new Map<string, JobRecord>();
    /** Entries not loaded (damaged, or distrusted below): kept in a file of their own, never silently dropped. */
    const rejected: unknown[] = [];
    /** The snapshot line each entry was parsed from: kept as its durable JSON unless the load changes it. */
    const texts = new Map<unknown, string>();
    const budget = new TurnBudget();
    const keep = async (j: unknown): Promise<void> => {
      await budget.breathe(); // ten thousand jobs must not hold the event loop for the whole load
      const r = validateLoadedRecord(j);
      if (typeof r === 'string') {
        problems.push(r);
        rejected.push(j);
      } else {
        records.set(r.id, r);
      }
    };
    let text: string | undefined;
    try {
      text = await fs.readFile(this.file(SNAPSHOT_FILE), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw e;
      }
    }
    let version = 0;
    let from = 0;
    if (text !== undefined) {
      const snapshot = await this.parseSnapshotInTurns(text);
      if (!snapshot.ok && snapshot.newerVersion !== undefined) {
        throw new DownloadError(
          'STORE_NEWER_VERSION',
          `The job store at ${this.file(SNAPSHOT_FILE)} was written by a newer version of Managed Downloads (format ${snapshot.newerVersion}; this version reads ${STORE_VERSION}). It was left untouched; update the extension to use it.`,
          { hresult: HRESULTS.STORE_NEWER_VERSION, context: 'GENERAL_QUEUE_MANAGER' },
        );
      }
      if (snapshot.ok) {
        ({ version, generation: from } = snapshot);
        for (const [i, j] of snapshot.jobs.entries()) {
          if (snapshot.texts) {
            texts.set(j, snapshot.texts[i]);
          }
          await keep(j);
        }
      } else {
        problems.push(await this.setAside(snapshot.why, generations));
        generations = [];
      }
    }
    let intact = version === STORE_VERSION;
    for (const g of generations) {
      if (g < from) {
        // Covered by the snapshot: a compaction stopped before deleting it.
        await fs.unlink(this.file(logFileName(g))).catch(() => undefined);
        continue;
      }
      this.logs.add(g);
      const log = parseLog(await fs.readFile(this.file(logFileName(g)), 'utf8'));
      for (const change of log.changes) {
        if ('put' in change) {
          await keep(change.put);
        } else {
          records.delete(change.remove);
        }
      }
      this.logBytes += log.validBytes;
      intact &&= log.intact;
      if (log.linesAfterDamage > 0) {
        problems.push(`The job log ${logFileName(g)} is damaged after byte ${log.validBytes}; the ${log.linesAfterDamage} changes after that point were ignored.`);
      }
    }
    // The store may have been planted or restored from elsewhere: a record that could make the engine touch a file
    // it did not make is set aside, whole, in a file of its own (storeTrust.ts), and the store is rewritten without it.
    for (const r of [...records.values()]) {
      await budget.breathe();
      const verdict = await trustVerdict(r, this.allowedRoots, problems);
      if (verdict.why !== undefined) {
        rejected.push(r); // as read: a verdict against it changes nothing
        records.delete(r.id);
        problems.push(`Job '${String(r.displayName).slice(0, 80)}' was set aside and not loaded: ${verdict.why}.`);
      } else if (verdict.repaired) {
        texts.delete(r);
        intact = false; // cleaned (credentials taken out of a URL): the store is rewritten without them
      }
    }
    if (rejected.length > 0) {
      const aside = await this.keepRejected(rejected);
      problems.push(`${rejected.length} job entr${rejected.length === 1 ? 'y was' : 'ies were'} kept as ${aside}; nothing they name was touched.`);
      intact = false;
    }
    for (const r of records.values()) {
      await budget.breathe();
      const json = texts.get(r) ?? JSON.stringify(r);
      this.durable.set(r.id, json);
      this.durableBytes += json.length;
    }
    await fs.rm(this.file(TEMP_FILE), { force: true }).catch(() => undefined);
    this.maxGeneration = Math.max(from, ...generations);
    if (intact && [...this.logs].every((g) => g === from)) {
      this.generation = from;
      this.logExists = this.logs.has(from);
    } else {
      await this.compact();
    }
    return { jobs: [...records.values()], orphanTemporaries: await this.loadOrphans(), problems };
  }

  /** Entries not loaded stay readable beside the store (private: they may name private paths). */
  private async keepRejected(entries: unknown[]): Promise<string> {
    const aside = this.file(`jobs.rejected-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    await writePrivateFileAtomic(aside, JSON.stringify({ format: 'managed-downloads/jobs/rejected', version: STORE_VERSION, jobs: entries }, null, 1));
    return aside;
  }

  /** The orphan list as last saved (strings only: the engine checks each is a name it could have made). */
  private async loadOrphans(): Promise<string[]> {
    try {
      const list: unknown = JSON.parse(await fs.readFile(this.file(ORPHANS_FILE), 'utf8'));
      this.savedOrphans = JSON.stringify(list);
      return Array.isArray(list) ? list.filter((p): p is string => typeof p === 'string') : [];
    } catch {
      return [];
    }
  }

  /** Keeps the list of temporaries still to delete (durable when this resolves); nothing is written if unchanged. */
  saveOrphans(list: readonly string[]): Promise<void> {
    const text = JSON.stringify(list);
    // One write at a time (they share a temporary name); noted as saved only once it is.
    const write = async (): Promise<void> => {
      if (text === this.savedOrphans || this.closed) {
        return;
      }
      if (list.length === 0) {
        await fs.rm(this.file(ORPHANS_FILE), { force: true });
        await syncDir(this.dir);
      } else {
        await writePrivateFileAtomic(this.file(ORPHANS_FILE), text);
      }
      this.savedOrphans = text;
    };
    const next = this.orphanWrites.then(write, write);
    this.orphanWrites = next.catch(() => undefined);
    return next;
  }

  /** parseSnapshot, a few hundred jobs per turn of the event loop when the file is in the layout we write. */
  private async parseSnapshotInTurns(text: string): Promise<ParsedSnapshot & { texts?: string[] }> {
    const lines = snapshotLines(text);
    const head = lines && parseSnapshot(lines.head);
    if (!lines || !head?.ok) {
      return parseSnapshot(text);
    }
    const jobs: unknown[] = [];
    const budget = new TurnBudget();
    for (const line of lines.jobs) {
      await budget.breathe();
      try {
        jobs.push(JSON.parse(line));
      } catch {
        return parseSnapshot(text); // not our layout after all: the whole text decides
      }
    }
    return { ...head, jobs, texts: lines.jobs };
  }

  /** Moves an unreadable snapshot and its logs aside, for a person to look at; the store starts empty. */
  private async setAside(why: string, generations: number[]): Promise<string> {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const aside = this.file(`jobs.corrupt-${stamp}.json`);
    await fs.rename(this.file(SNAPSHOT_FILE), aside);
    for (const g of generations) {
      await fs.rename(this.file(logFileName(g)), this.file(`jobs.corrupt-${stamp}.${g}.log`));
    }
    const logs = generations.length > 0 ? ` (its ${generations.length} change logs beside it)` : '';
    return `The job store could not be read (${why}); it was kept as ${aside}${logs} and a new one was started.`;
  }

  /** Writes this job soon; the changes of many jobs within the batch window share one write. */
  scheduleSave(record: JobRecord): void {
    this.pending.set(record.id, record);
    this.armTimer();
  }

  /** Writes this job now (with whatever else is waiting) and resolves once that is durable. */
  save(record: JobRecord): Promise<void> {
    this.pending.set(record.id, record);
    return this.commitSoon();
  }

  /** Forgets jobs; resolves once that is durable. */
  remove(...ids: string[]): Promise<void> {
    for (const id of ids) {
      this.pending.set(id, null);
    }
    return this.commitSoon();
  }

  /**
   * Writes every job that changed since it was last written (of those `mayHaveChanged` names: comparing costs
   * a serialisation each), and removes the ones the engine no longer has.
   */
  saveAll(mayHaveChanged: (r: JobRecord) => boolean = () => true): Promise<void> {
    const live = new Set<string>();
    for (const r of this.snapshot()) {
      live.add(r.id);
      if (mayHaveChanged(r)) {
        this.pending.set(r.id, r);
      }
    }
    for (const id of this.durable.keys()) {
      if (!live.has(id)) {
        this.pending.set(id, null);
      }
    }
    return this.commitSoon();
  }

  /** Writes what is pending and a snapshot of it all, so that the next start reads one file. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    try {
      await this.saveAll();
      await this.compacting?.catch(() => undefined);
      if (this.logBytes > 0) {
        this.compactRequested = true;
        await this.commitSoon();
        await this.compacting;
      }
    } finally {
      // Even when that last save failed: a closed store never writes again (its engine is gone; another may own the
      // journal), not even the retry a failed commit arms.
      this.closed = true;
      clearTimeout(this.timer);
      this.timer = undefined;
      await this.compacting?.catch(() => undefined); // one already under way finishes (it only replaces whole files)
      await this.orphanWrites;
      await this.log?.close().catch(() => undefined);
      this.log = undefined;
    }
  }

  private armTimer(): void {
    if (this.timer || this.closed) {
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.pending.size > 0 && !this.closed) {
        this.commitSoon().catch((e) => this.onSaveError(e));
      }
    }, this.batchMs);
    this.timer.unref?.();
  }

  /** The promise of the commit that will carry what is pending now; starts the commit loop if it is idle. */
  private commitSoon(): Promise<void> {
    if (this.closed) {
      // Its engine is gone (another may own the store now): nothing more is written, whoever still calls.
      this.pending.clear();
      return Promise.resolve();
    }
    const w = (this.waiting ??= waiters());
    if (!this.committing) {
      this.committing = true;
      void this.commitLoop();
    }
    return w.promise;
  }

  /** One commit at a time; whatever arrives during one goes into the next (group commit). */
  private async commitLoop(): Promise<void> {
    try {
      while (this.waiting) {
        await nextTurn(); // callers of this same moment join this commit
        const w = this.waiting;
        this.waiting = undefined;
        const batch = this.pending;
        this.pending = new Map();
        try {
          await this.commit(batch);
        } catch (e) {
          for (const [id, r] of batch) {
            if (!this.pending.has(id)) {
              this.pending.set(id, r); // to be tried again with the next commit
            }
          }
          this.armTimer();
          w.reject(e);
          continue;
        }
        this.compactIfDue();
        w.resolve();
      }
    } finally {
      this.committing = false;
    }
  }

  /** Appends the batch's changed jobs to the log and makes them durable (one write with O_DSYNC, or a write and an fdatasync). */
  private async commit(batch: Map<string, JobRecord | null>): Promise<void> {
    const lines: string[] = [];
    const applied: [string, string | null][] = [];
    const budget = new TurnBudget();
    for (const [id, record] of batch) {
      await budget.breathe();
      if (record === null) {
        if (this.durable.has(id)) {
          lines.push(removeLine(id));
          applied.push([id, null]);
        }
        continue;
      }
      const json = JSON.stringify(record);
      if (this.durable.get(id) !== json) {
        lines.push(putLine(json));
        applied.push([id, json]);
      }
    }
    if (lines.length === 0) {
      return;
    }
    const bytes = Buffer.from(lines.join(''));
    try {
      const log = await this.openLog();
      for (let at = 0; at < bytes.length; ) {
        at += (await log.write(bytes, at, bytes.length - at)).bytesWritten;
      }
      if (SYNCED_APPENDS === 0) {
        await log.datasync();
      }
    } catch (e) {
      this.abandonLog();
      throw e;
    }
    this.logBytes += bytes.length;
    for (const [id, json] of applied) {
      this.durableBytes -= this.durable.get(id)?.length ?? 0;
      if (json === null) {
        this.durable.delete(id);
      } else {
        this.durable.set(id, json);
        this.durableBytes += json.length;
      }
    }
  }

  private async openLog(): Promise<fs.FileHandle> {
    if (this.log) {
      return this.log;
    }
    const file = this.file(logFileName(this.generation));
    if (this.logExists) {
      this.log = await fs.open(file, constants.O_WRONLY | constants.O_APPEND | SYNCED_APPENDS | (constants.O_NOFOLLOW ?? 0));
      return this.log;
    }
    this.log = await fs.open(file, CREATE_NEW | constants.O_APPEND | SYNCED_APPENDS, FILE_MODE);
    this.logExists = true;
    this.logs.add(this.generation);
    // The new name must survive a power cut before any line in it counts as durable.
    await syncDir(this.dir);
    return this.log;
  }

  /** After a failed write the log may end in a partial line: later lines go to a new log, replayed after it. */
  private abandonLog(): void {
    void this.log?.close().catch(() => undefined);
    this.log = undefined;
    this.logExists = false;
    this.generation = ++this.maxGeneration;
  }

  private compactIfDue(): void {
    if (this.compacting || !(this.compactRequested || this.logBytes > Math.max(MIN_COMPACT_BYTES, 2 * this.durableBytes))) {
      return;
    }
    this.compactRequested = false;
    this.compact().catch((e) => this.onSaveError(e));
  }

  /**
   * Starts a new log generation and writes the durable jobs as the snapshot it follows; then deletes the logs
   * the snapshot covers. Runs between commits (the switch is synchronous); the write goes on in the background.
   */
  private compact(): Promise<void> {
    if (this.closed) {
      return Promise.resolve();
    }
    const old = this.log;
    this.log = undefined;
    this.logExists = false;
    this.generation = ++this.maxGeneration;
    this.logBytes = 0;
    const generation = this.generation;
    const text = snapshotText(generation, [...this.durable.values()]);
    this.compacting = (async () => {
      await old?.close().catch(() => undefined);
      await this.writeSnapshot(text);
      for (const g of [...this.logs]) {
        if (g < generation) {
          await fs.unlink(this.file(logFileName(g))).catch(() => undefined);
          this.logs.delete(g);
        }
      }
    })().finally(() => {
      this.compacting = undefined;
    });
    return this.compacting;
  }

  /** Temporary file (created fresh, private, never through a link), fsync, rename over the snapshot, fsync of the folder. */
  private writeSnapshot(text: string): Promise<void> {
    return writePrivateFileAtomic(this.file(SNAPSHOT_FILE), text);
  }
}

