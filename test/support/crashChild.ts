/**
 * A download engine in its own process for the SIGKILL part of the fault matrix: it opens the store (recovering
 * whatever a previous kill left), runs the job of its round to the end (transfer, then complete()), and can be
 * told to SIGKILL itself at an exact point of a checkpoint or of Complete. Kills at random points of a transfer
 * (or of start-up) are sent by the parent.
 *
 * Usage: node crashChild.js '<json CrashChildConfig>'
 * Prints JSON lines on stdout: opened, started, transferred, completing, completed, error, killing.
 * Exit codes: 0 completed (job ACKNOWLEDGED), 2 job in ERROR, 3 complete() rejected, 1 anything else.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { DownloadEngine, type JobImpl } from '../../src/engine';
import { nodeIo, useIo, type IoBackend } from '../../src/engine/io';

export interface CrashChildFile {
  url: string;
  dest: string;
  sha256?: string;
}

/**
 * Where the child kills itself: at the `op`-th file-system operation of the phase (counted from 1), just
 * before it starts, while it runs (the kill is sent as soon as the call has been issued), or right after it
 * completed. Checkpoint operations are fdatasync/fsync calls before Complete starts; Complete operations are
 * every link, unlink, rename, fsync and fdatasync once complete() has been called.
 */
export interface KillPlan {
  phase: 'checkpoint' | 'complete';
  op: number;
  when: 'before' | 'during' | 'after';
}

export interface CrashChildConfig {
  storeDir: string;
  /** The job this run works on is named `round <n>`: continued if the store has it, created otherwise. */
  round: number;
  files: CrashChildFile[];
  kill?: KillPlan;
  checkpointIntervalMs?: number;
  checkpointBytes?: number;
}

function emit(o: Record<string, unknown>): void {
  // Synchronous: the line must be out before a SIGKILL that may follow immediately.
  fs.writeSync(1, JSON.stringify(o) + '\n');
}

let completing = false;
let counters = { checkpoint: 0, complete: 0 };

function die(where: string): never {
  emit({ event: 'killing', where });
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL cannot be caught; this line is never reached, but keep the type checker honest.
  throw new Error('unreachable');
}

/** Wraps an async operation so the kill plan can strike before, during or after its `op`-th call. */
function instrument<A extends unknown[], R>(name: string, phaseOf: () => 'checkpoint' | 'complete' | undefined, fn: (...a: A) => Promise<R>, plan: KillPlan | undefined): (...a: A) => Promise<R> {
  return async function (this: unknown, ...args: A): Promise<R> {
    const phase = phaseOf();
    if (!plan || phase !== plan.phase) {
      return fn.apply(this, args);
    }
    const n = ++counters[phase];
    if (n !== plan.op) {
      return fn.apply(this, args);
    }
    if (plan.when === 'before') {
      die(`${phase} op ${n} (${name}), before`);
    }
    const p = fn.apply(this, args);
    if (plan.when === 'during') {
      die(`${phase} op ${n} (${name}), during`);
    }
    const r = await p;
    die(`${phase} op ${n} (${name}), after`);
    return r;
  };
}

async function installKillPlan(plan: KillPlan | undefined): Promise<void> {
  if (!plan) {
    return;
  }
  counters = { checkpoint: 0, complete: 0 };
  const syncPhase = (): 'checkpoint' | 'complete' => (completing ? 'complete' : 'checkpoint');
  const completeOnly = (): 'complete' | undefined => (completing ? 'complete' : undefined);
  // FileHandle's prototype is shared by every handle: the engine's datasync (checkpoints) and sync (journal, finish).
  const probe = await fsp.open(__filename, 'r');
  const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void>; sync: () => Promise<void> };
  await probe.close();
  proto.datasync = instrument('fdatasync', syncPhase, proto.datasync, plan);
  proto.sync = instrument('fsync', syncPhase, proto.sync, plan);
  // A write to a handle opened with O_DSYNC (the store's log, on Linux) is a data sync of its own: it counts as one.
  const writeProto = proto as unknown as { write: (...a: unknown[]) => Promise<unknown> };
  const plainWrite = writeProto.write;
  const syncedWrite = instrument('O_DSYNC write', syncPhase, plainWrite, plan);
  writeProto.write = function (this: { fd: number }, ...a: unknown[]): Promise<unknown> {
    return (opensSynced(this.fd) ? syncedWrite : plainWrite).apply(this, a);
  };
  // The engine's links, unlinks and renames go through src/engine/io.ts (it took node's functions when it was
  // loaded, so replacing fs.promises' would not reach it): they are counted through its backend.
  const counted = <F>(name: 'link' | 'unlink' | 'rename', fn: F): F => instrument(name, completeOnly, fn as (...a: unknown[]) => Promise<unknown>, plan) as F;
  const io: IoBackend = { ...nodeIo, link: counted('link', nodeIo.link), unlink: counted('unlink', nodeIo.unlink), rename: counted('rename', nodeIo.rename) };
  useIo(io);
}

/** Whether a descriptor was opened with O_DSYNC (Linux: its flags, in octal, in /proc/self/fdinfo). */
function opensSynced(fd: number): boolean {
  const flags = /^flags:\s*([0-7]+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  return flags !== null && (parseInt(flags[1], 8) & (fs.constants.O_DSYNC ?? 0)) !== 0;
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2]) as CrashChildConfig;
  await installKillPlan(cfg.kill);
  const engine = await DownloadEngine.open({
    storeDir: cfg.storeDir,
    retryDelayFloorSeconds: 0,
    checkpointIntervalMs: cfg.checkpointIntervalMs ?? 20,
    checkpointBytes: cfg.checkpointBytes ?? 64 * 1024,
    storeBatchMs: 5,
    progressThrottleMs: 20,
    timeouts: { headersMs: 10_000, bodyIdleMs: 10_000, lowSpeedBytesPerSecond: 1, lowSpeedWindowMs: 60_000 },
  });
  const name = `round ${cfg.round}`;
  let job: JobImpl | undefined = engine.enumJobs({ includeFinal: true }).find((x) => x.displayName === name);
  emit({ event: 'opened', problems: engine.problems, state: job?.state ?? null, files: job?.record.files.length ?? 0 });
  if (!job) {
    job = await engine.createJob({ displayName: name });
  }
  const j = job;
  if (j.state === 'ACKNOWLEDGED') {
    emit({ event: 'completed', result: 'already' });
    await engine.dispose();
    process.exit(0);
  }
  if (j.record.files.length === 0) {
    await j.setMinimumRetryDelay(0);
    await j.addFileSet(cfg.files.map((f) => ({ remoteUrl: f.url, localPath: f.dest, sha256: f.sha256 })));
  }
  let finishing = false;
  const onState = (): void => {
    if (finishing) {
      return;
    }
    if (j.state === 'TRANSFERRED' && j.record.files.every((f) => f.transferred || f.completed)) {
      finishing = true;
      emit({ event: 'transferred' });
      completing = true;
      emit({ event: 'completing' });
      j.complete().then(
        async (result) => {
          emit({ event: 'completed', result });
          await engine.dispose();
          process.exit(0);
        },
        async (e: Error & { code?: string; hresult?: number }) => {
          emit({ event: 'error', where: 'complete', code: e.code, hresult: e.hresult, message: e.message });
          await engine.dispose();
          process.exit(3);
        },
      );
    } else if (j.state === 'ERROR') {
      finishing = true;
      emit({ event: 'error', where: 'job', error: j.getError() });
      void engine.dispose().then(() => process.exit(2));
    }
  };
  // Complete starts once TRANSFERRED is durable (onDidTransferJob fires after the journal save), as an API
  // caller would; ERROR is seen on any change.
  engine.onDidTransferJob((x) => x === j && onState());
  engine.onDidChangeJob((x) => x === j && j.state === 'ERROR' && onState());
  if (j.state === 'SUSPENDED' || j.state === 'ERROR') {
    await j.resume();
  }
  emit({ event: 'started', state: j.state });
  onState();
}

main().catch((e) => {
  emit({ event: 'error', where: 'main', message: (e as Error).stack ?? String(e), code: (e as { code?: string }).code });
  process.exit(1);
});
