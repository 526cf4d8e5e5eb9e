// Start-up recovery: what the store says is checked against the disk before anything runs. Interrupted runs go
// back to the queue, each temporary file matches the journal (bytes past the last checkpoint are kept or cut),
// a crash inside complete() is told apart from someone else's file, and marks nobody will read are swept.
import * as fs from './io';
import * as path from 'node:path';
import { bootId, constants as fsConstants } from './io';
import { absentTemporaries, nothingToReconcile } from './absentTemporaries';
import type { HeaderVault } from './headerVault';
import { fileMatchesDigest } from './integrity';
import type { JobImpl } from './job';
import { inLanes } from './lanes';
import type { FileRecord, JobRecord } from './records';
import { marksPath } from './temporaries';
import { TurnBudget } from './turns';

/** Jobs checked at once at start-up. */
const START_UP_LANES = 16;

type Log = (level: 'info' | 'warn', message: string) => void;

/** What recovery needs from the engine. */
export interface RecoveryHost {
  log: Log;
  readonly vault: Pick<HeaderVault, 'get'>;
  /** Filled with the stored headers of each job that has some. */
  readonly headers: Map<string, Record<string, string>>;
}

/** Orphan temporaries from the store: only names the engine could have made (a damaged or hostile store must not make it delete other files). */
export function ownTemporaryNames(paths: readonly unknown[]): string[] {
  return paths.filter(isTemporaryName);
}

/** A job's leftover temporaries from the store: only its own files' temporaries, for the same reason. */
export function keepOwnLeftovers(record: JobRecord): void {
  if (record.leftoverTemporaries !== undefined) {
    const own = new Set(record.files.map((f) => f.temporaryPath));
    record.leftoverTemporaries = Array.isArray(record.leftoverTemporaries) ? record.leftoverTemporaries.filter((p) => own.has(p)) : [];
  }
}

/**
 * Loads each job's headers and reconciles it with the disk. Returns the ids of the jobs left exactly as they
 * were (they need no save).
 */
export async function recoverJobs(jobs: readonly JobImpl[], host: RecoveryHost): Promise<Set<string>> {
  // Thousands of unfinished jobs: their start-up checks (an lstat or two each) overlap, and temporaries that
  // their folder's listing lacks need none.
  const unfinished = jobs.filter((j) => !j.isFinal && j.type === 'download');
  const untouched = new Set<string>();
  const absent = await absentTemporaries(unfinished.flatMap((j) => j.record.files.filter((f) => !f.completed).map((f) => f.temporaryPath)));
  const budget = new TurnBudget(); // jobs with nothing to check finish at once: 10,000 of them are one long turn
  await inLanes([...jobs], START_UP_LANES, async (job) => {
    await budget.breathe();
    const record = job.record;
    if (record.headerNames.length > 0) {
      const h = await host.vault.get(record.id).catch(() => undefined);
      if (h) {
        host.headers.set(record.id, h);
      }
    }
    if (nothingToReconcile(record, absent)) {
      untouched.add(record.id);
    } else {
      await reconcile(job, absent, host.log);
    }
  });
  return untouched;
}

/** After a restart: interrupted runs go back to the queue, and each temporary file matches the journal. */
export async function reconcile(job: JobImpl, absent: (p: string) => boolean, log: Log): Promise<void> {
  const r = job.record;
  if (job.isFinal) {
    return;
  }
  if (r.state === 'CONNECTING' || r.state === 'TRANSFERRING') {
    r.state = 'QUEUED';
  }
  if (job.type === 'upload') {
    // No temporary file: the server's BITS-Received-Content-Range says where a resumed upload continues.
    return;
  }
  for (const f of r.files) {
    if (f.transferred || f.completed) {
      // A crash inside complete(): the destination may already be our file (hard link to the temporary), or
      // hold exactly the bytes the sha256 asks for (then the temporary has nothing more to give).
      const [t, d] = await Promise.all([fs.lstat(f.temporaryPath).catch(() => undefined), fs.lstat(f.localPath).catch(() => undefined)]);
      const ours = t?.isFile() && d?.isFile() && t.ino === d.ino && t.dev === d.dev;
      if (ours || (!f.completed && d?.isFile() && d.size === f.bytesTotal && (await holdsSha256(f.localPath, f.sha256)))) {
        await fs.unlink(f.temporaryPath).catch(() => undefined);
        Object.assign(f, { transferred: true, completed: true });
        continue;
      }
      if (f.completed && t?.isFile()) {
        // Journaled as completed just before a rename that never happened: the file is still only transferred.
        f.completed = false;
      }
    }
    if (f.completed) {
      continue;
    }
    let size: number | undefined;
    const st = absent(f.temporaryPath) ? undefined : await fs.lstat(f.temporaryPath).catch(() => undefined);
    size = st?.isFile() ? st.size : undefined;
    const id = f.temporaryIdentity;
    if (f.transferred && st && size === f.bytesTotal && id && (st.dev !== id.dev || st.ino !== id.ino)) {
      // Not the file that was verified (restored from a backup, rebuilt by a file system check, or swapped):
      // Complete would refuse it (placementChecks.ts). Verified again when a checksum is known, else fetched again.
      if (f.sha256 && (await fileMatchesDigest(f.temporaryPath, f.sha256))) {
        f.temporaryIdentity = { dev: st.dev, ino: st.ino };
        log('info', `${f.localPath}: its transferred temporary file is another file than before, with the right checksum: kept.`);
      } else {
        size = undefined;
      }
    }
    if (f.transferred && size !== f.bytesTotal) {
      log('warn', `${f.localPath}: its transferred temporary file is missing or changed; it will be downloaded again.`);
      Object.assign(f, { transferred: false, durableBytes: 0, etag: undefined, lastModified: undefined, bytesTotal: undefined });
      f.restarts++;
      if (r.state === 'TRANSFERRED') {
        r.state = 'QUEUED';
        r.autoCompleteError = undefined;
      }
    } else if (!f.transferred && !f.segments && size !== undefined && size > f.durableBytes) {
      // (A segmented file is sparse and as long as the entity: its segments say which bytes are real.)
      if (!(await keepWrittenBytes(f, size, log))) {
        // Bytes past the last checkpoint may be garbage after a power cut.
        await fs.truncate(f.temporaryPath, f.durableBytes).catch(() => undefined);
      }
    } else if (!f.transferred && f.durableBytes > 0 && (size === undefined || size < f.durableBytes)) {
      f.durableBytes = 0;
    }
  }
}

/**
 * One connection writes a file in order, so after a crash of the process within the same boot every byte up
 * to the file's size is what the server sent for the journaled entity: flush it and keep it. Only past a
 * checkpoint: before the first one the journal may still name the validator of an earlier attempt (a new
 * 200 is journaled with the next batched save), while a restart from a checkpoint is journaled before the
 * bytes go.
 */
async function keepWrittenBytes(f: FileRecord, size: number, log: Log): Promise<boolean> {
  if (bootId() === undefined || f.bootId !== bootId() || f.durableBytes === 0 || !(f.etag ?? f.lastModified) || (f.bytesTotal !== undefined && size > f.bytesTotal)) {
    return false;
  }
  try {
    const fh = await fs.open(f.temporaryPath, fsConstants.O_RDWR | (fsConstants.O_NOFOLLOW ?? 0));
    try {
      await fh.datasync();
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
  log('info', `${f.localPath}: kept ${size - f.durableBytes} bytes written before the process stopped (same boot, now flushed to disk; checked against the server before use).`);
  // Not trusted yet: the page cache may have lost them without a reboot (transfer.ts checks them).
  f.keptFrom = Math.min(f.keptFrom ?? f.durableBytes, f.durableBytes);
  f.durableBytes = size;
  return true;
}

/** Deletes the marks no unfinished segmented transfer will read (left by a crash, a cancel, an older run). */
export async function sweepMarks(storeDir: string, jobs: Iterable<JobImpl>): Promise<void> {
  const dir = path.join(storeDir, 'marks');
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const wanted = new Set<string>();
  for (const job of jobs) {
    job.record.files.forEach((f, i) => {
      if (!job.isFinal && f.segments && !f.transferred) {
        wanted.add(path.basename(marksPath(storeDir, job, i)));
      }
    });
  }
  await Promise.all(names.filter((n) => !wanted.has(n)).map((n) => fs.rm(path.join(dir, n), { force: true }).catch(() => undefined)));
}

/** Whether `p` has the shape of a temporary file's name (validation.ts temporaryPathFor). */
function isTemporaryName(p: unknown): p is string {
  return typeof p === 'string' && path.isAbsolute(p) && /^\..+\.[0-9a-f]{8}\.mdpart$/.test(path.basename(p));
}

/** Whether the file's bytes have this checksum (false when none is known or the file cannot be read). */
async function holdsSha256(file: string, sha256: string | undefined): Promise<boolean> {
  return sha256 !== undefined && (await fileMatchesDigest(file, sha256));
}
