// Crash consistency: the power is cut (or the process crashes) at every file-system call of a job's life, from
// createJob to Complete or Cancel; the next start must find a journal whose every durable claim is backed by the
// bytes on disk, finish the job, and leave the right files and no temporaries. The disk is the power-loss double
// (test/support/powerLossFs.ts): after a power cut only what was fsynced survives (a different boot id);
// after a crash of the process the page cache survives (same boot id).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Agent } from 'undici';
import { DownloadEngine, type JobImpl } from '../../src/engine';
import { nodeIo, useIo } from '../../src/engine/io';
import type { FileRecord, JobRecord } from '../../src/engine/records';
import { JobStore } from '../../src/engine/store';
import { fastOptions, tempDir, waitForState, waitUntil } from '../support/engineHarness';
import { matrix, matrixNote } from '../support/matrix';
import { PowerLossFs } from '../support/powerLossFs';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';

const MiB = 1024 * 1024;
type Scenario = 'complete' | 'cancel';
/** A power cut with names durable at their folder's fsync, or names and sizes at any fsync (see powerLossFs.ts), or a crash of the process. */
type Crash = 'power' | 'power, metadata first' | 'process';

/** What one cut run found: how far its job had got, for the summary. */
interface RunOutcome {
  calls: number;
  cut: boolean;
  jobJournaled: boolean;
  claimedButMissing: number;
}

describe('power loss at every file-system call', function () {
  this.timeout(240_000);
  let server: TestServer;
  // One small file, one that checkpoints several times over one connection (under 2 x minSegmentBytes), one in segments.
  const bodies = new Map<string, Buffer>([
    ['/small', randomBody(10_000, 61)],
    ['/medium', randomBody(1_900_000, 62)],
    ['/seg', randomBody(2 * MiB + 500_000, 63)],
  ]);
  const names: Record<string, string> = { '/small': 'small.bin', '/medium': 'medium.bin', '/seg': 'seg.bin' };

  before(async () => {
    server = await TestServer.start();
    for (const [p, body] of bodies) {
      server.route(p, { body });
    }
  });
  after(async () => {
    await server.close();
  });

  function bodyOf(remoteUrl: string): Buffer {
    return bodies.get(new URL(remoteUrl).pathname)!;
  }

  async function openEngineOn(root: string, agent: Agent): Promise<DownloadEngine> {
    return DownloadEngine.open(fastOptions(path.join(root, 'store'), { segmentsPerFile: 2, minSegmentBytes: MiB, dispatcher: agent, log: () => undefined }));
  }

  /**
   * Rejects when the power is cut, so the scenario stops waiting for a job that will never move again. The call
   * itself is kept in `pending`: it may still be failing its way out (a link in flight at the cut), and must be
   * done before the real disk is handed to the next engine, as the dead process would be.
   */
  function orCut<T>(disk: PowerLossFs, pending: Promise<unknown>[], p: Promise<T>): Promise<T> {
    pending.push(p.catch(() => undefined));
    return Promise.race([p, disk.whenCut.then(() => Promise.reject(new Error('power cut')))]);
  }

  function within<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(what())), ms);
    });
    return Promise.race([p, late]).finally(() => clearTimeout(timer));
  }

  /** What the engine's calls promised before the power went (each resolved): the next start must find it so. */
  interface Promised {
    jobId?: string;
    /** addFileSet resolved: the job and its files are journaled. */
    files: boolean;
    /** complete() resolved: ACKNOWLEDGED, every file in place. */
    completed: boolean;
    /** cancel() resolved: CANCELLED. */
    cancelled: boolean;
  }

  /** The job's life on the double: create, add the files, transfer, then Complete or Cancel (the latter mid-way). */
  async function firstLife(root: string, disk: PowerLossFs, scenario: Scenario): Promise<Promised> {
    const promised: Promised = { files: false, completed: false, cancelled: false };
    // Set only while the power is on: a call that resolved and then saw the cut promised nothing we count.
    const kept = (what: 'files' | 'completed' | 'cancelled'): void => {
      promised[what] = promised[what] || !disk.isCut;
    };
    const agent = new Agent();
    const restore = useIo(disk.io);
    let engine: DownloadEngine | undefined;
    const pending: Promise<unknown>[] = [];
    const cut = <T>(p: Promise<T>): Promise<T> => orCut(disk, pending, p);
    try {
      engine = await openEngineOn(root, agent);
      const e = engine;
      const job = await cut(e.createJob({ displayName: 'power' }));
      promised.jobId = job.id;
      await cut(job.setMinimumRetryDelay(0));
      await cut(job.addFileSet([...bodies.keys()].map((p) => ({ remoteUrl: server.url(p), localPath: path.join(root, 'dl', names[p]), sha256: sha256Hex(bodies.get(p)!) }))));
      kept('files');
      await cut(job.resume());
      if (scenario === 'complete') {
        await orCut(disk, [], waitForState(e, job, 'TRANSFERRED', 30_000));
        await cut(job.complete());
        kept('completed');
      } else {
        // Mid-way: the medium file transferred, the segmented one under way.
        await orCut(disk, [], waitUntil(() => job.record.files[1].transferred || job.state === 'TRANSFERRED', 30_000, 'the medium file'));
        await cut(job.cancel());
        kept('cancelled');
      }
    } catch (e) {
      if (!disk.isCut) {
        throw new Error(`uncut first life failed after ${disk.calls} calls (last: ${disk.log.slice(-8).join(', ')})`, { cause: e });
      }
    } finally {
      if (engine) {
        // Its calls now fail: dispose must still end (the journal's last save is refused), and so must the calls
        // made on it (complete() runs beside dispose).
        await within(engine.dispose().catch(() => undefined), 10_000, () => `dispose hung after a cut at call ${disk.cutAt} (${disk.log.at(-1)})`);
        await within(Promise.all(pending), 10_000, () => `a job call hung after a cut at call ${disk.cutAt} (${disk.log.at(-1)})`);
      }
      restore();
      await agent.close();
    }
    return promised;
  }

  /** The journal as the next start finds it: none yet, or whole (a torn or empty one would lose every job). */
  function readJournal(root: string, where: string): JobRecord[] {
    const file = path.join(root, 'store', 'jobs.json');
    if (!fs.existsSync(file)) {
      return [];
    }
    const text = fs.readFileSync(file, 'utf8');
    try {
      return (JSON.parse(text) as { jobs: JobRecord[] }).jobs;
    } catch {
      assert.fail(`${where}: the journal is not whole after the cut (${text.length} bytes: ${JSON.stringify(text.slice(0, 60))})`);
    }
  }

  function readIfFile(p: string): Buffer | undefined {
    try {
      return fs.lstatSync(p).isFile() ? fs.readFileSync(p) : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Every durable claim of the journal is backed by the bytes on disk. A temporary that is gone or shorter than
   * claimed is told by its size and fetched again (counted); bytes that are there must be the served ones.
   */
  function checkJournalClaims(root: string, where: string): number {
    let missing = 0;
    for (const job of readJournal(root, where)) {
      for (const f of job.files) {
        const body = bodyOf(f.remoteUrl);
        const dest = readIfFile(f.localPath);
        if (dest) {
          assert.equal(sha256Hex(dest), sha256Hex(body), `${where}: ${path.basename(f.localPath)} is in place with wrong bytes`);
        }
        if (f.completed) {
          continue;
        }
        const tmp = readIfFile(f.temporaryPath);
        const claimed = claimedRanges(f);
        if (claimed.length === 0) {
          continue;
        }
        if (!tmp || tmp.length < Math.max(...claimed.map(([, to]) => to)) || (f.segments && tmp.length !== f.bytesTotal)) {
          missing++;
          continue;
        }
        for (const [from, to] of claimed) {
          assert.ok(tmp.subarray(from, to).equals(body.subarray(from, to)), `${where}: ${path.basename(f.temporaryPath)} claims bytes ${from}-${to} durable (transferred: ${f.transferred}) but they are not the served ones`);
        }
      }
    }
    return missing;
  }

  /** The byte ranges the journal says are on disk. */
  function claimedRanges(f: FileRecord): [number, number][] {
    if (f.transferred) {
      return [[0, f.bytesTotal ?? 0]];
    }
    const out: [number, number][] = f.durableBytes > 0 ? [[0, f.durableBytes]] : [];
    for (const s of f.segments ?? []) {
      if (s.done > 0) {
        out.push([s.start, s.start + s.done]);
      }
    }
    return out;
  }

  function temporariesIn(root: string): string[] {
    return fs.readdirSync(path.join(root, 'dl')).filter((n) => n.endsWith('.mdpart'));
  }

  /** The next start (real disk, this boot or another) finishes the job, then everything is checked. */
  async function secondLife(root: string, crash: Crash, scenario: Scenario, promised: Promised, where: string): Promise<boolean> {
    const agent = new Agent();
    const restore = useIo(crash !== 'process' ? { ...nodeIo, bootId: () => 'after-power-cut' } : nodeIo);
    const engine = await openEngineOn(root, agent);
    let journaled = false;
    try {
      const found: JobImpl | undefined = engine.enumJobs({ includeFinal: true }).find((j) => j.id === promised.jobId);
      journaled = found !== undefined;
      if (promised.files) {
        assert.equal(found?.record.files.length, bodies.size, `${where}: addFileSet had resolved, but the job and its files are not journaled`);
      }
      if (promised.completed) {
        assert.equal(found?.state, 'ACKNOWLEDGED', `${where}: complete() had resolved`);
      }
      if (promised.cancelled) {
        assert.equal(found?.state, 'CANCELLED', `${where}: cancel() had resolved`);
      }
      // A job journaled before its files were is as good as none: nothing was promised for it.
      const job = found && found.record.files.length > 0 ? found : undefined;
      if (job && scenario === 'complete') {
        if (job.state !== 'ACKNOWLEDGED') {
          await job.resume();
          await waitForState(engine, job, 'TRANSFERRED', 30_000);
          assert.equal(await job.complete(), 'S_OK', `${where}: Complete`);
        }
        for (const f of job.record.files) {
          const dest = readIfFile(f.localPath);
          assert.ok(dest, `${where}: ${path.basename(f.localPath)} missing after Complete (job ${job.state})`);
          assert.equal(sha256Hex(dest), sha256Hex(bodyOf(f.remoteUrl)), `${where}: ${path.basename(f.localPath)} has wrong bytes after Complete`);
        }
      } else if (job && job.state !== 'CANCELLED') {
        assert.notEqual(job.state, 'ACKNOWLEDGED', `${where}: a cancelled job came back completed`);
        await job.cancel();
      }
      if (!job || scenario === 'cancel') {
        const placed = fs.readdirSync(path.join(root, 'dl')).filter((n) => !n.endsWith('.mdpart'));
        assert.deepEqual(placed, [], `${where}: a destination exists though the job was ${job ? 'cancelled' : 'never journaled'}`);
      }
      assert.deepEqual(temporariesIn(root), [], `${where}: temporaries left behind`);
    } finally {
      await engine.dispose();
      restore();
      await agent.close();
    }
    return journaled;
  }

  /** On tmpfs where there is one: the double models durability, and the real fsyncs of the rerun cost only time. */
  function scratchDir(): string {
    return fs.existsSync('/dev/shm') ? fs.mkdtempSync('/dev/shm/md-power-') : tempDir('md-power-');
  }

  async function cutRun(scenario: Scenario, crash: Crash, cutAt: number | undefined): Promise<RunOutcome> {
    const root = scratchDir();
    try {
      fs.mkdirSync(path.join(root, 'store'));
      fs.mkdirSync(path.join(root, 'dl'));
      const disk = new PowerLossFs({ root, cutAt, syncMs: 1, names: crash === 'power, metadata first' ? 'at-any-fsync' : 'at-folder-fsync' });
      const promised = await firstLife(root, disk, scenario);
      const where = `${scenario}, ${crash} cut at call ${cutAt} of ${disk.calls} (${disk.log[(cutAt ?? 0) - 1] ?? 'none'})`;
      if (crash !== 'process') {
        disk.materializeDurable();
      }
      const claimedButMissing = checkJournalClaims(root, where);
      const jobJournaled = await secondLife(root, crash, scenario, promised, where).catch((e: Error) => {
        throw e instanceof assert.AssertionError ? e : new Error(`${where}: ${e.message}`, { cause: e });
      });
      return { calls: disk.calls, cut: disk.isCut, jobJournaled, claimedButMissing };
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }

  /** Runs once uncut to count the calls, then cuts at every one of them (alternating power cut and process crash). */
  async function everyCall(scenario: Scenario): Promise<void> {
    const clean = await cutRun(scenario, 'power', undefined);
    assert.equal(clean.cut, false);
    // The count varies from run to run (checkpoints race the stream, Cancel comes part way): cut at k = 1, 2, ...
    // until several runs in a row end before their cut.
    let cuts = 0;
    let missing = 0;
    let journaled = 0;
    for (let k = 1, uncut = 0; uncut < 5; k++) {
      const r = await cutRun(scenario, k % 2 === 1 ? 'process' : k % 4 === 0 ? 'power, metadata first' : 'power', k);
      cuts += r.cut ? 1 : 0;
      uncut = r.cut ? 0 : uncut + 1;
      missing += r.claimedButMissing;
      journaled += r.jobJournaled ? 1 : 0;
    }
    const note = `${scenario}: ${cuts} cut points exercised (of ${clean.calls} calls in an uncut run; process crash at odd calls, power cut at even ones, metadata first (names and sizes at any fsync) at every fourth); the job was journaled in ${journaled}; ${missing} temporaries claimed by the journal were gone or short (fetched again)`;
    console.log(`      ${note}`);
    matrixNote(`power loss (${scenario})`, note);
    assert.ok(cuts >= clean.calls * 0.8, `only ${cuts} cut points for ${clean.calls} calls`);
  }

  it('a store whose last save failed at close never writes again', async () => {
    const root = tempDir('md-power-');
    try {
      fs.mkdirSync(path.join(root, 'store'));
      const disk = new PowerLossFs({ root, cutAt: 1 });
      const record = { id: '0f0e0d0c-0b0a-4908-8706-050403020100', displayName: 'late', files: [] } as unknown as JobRecord;
      const jobs: JobRecord[] = [record];
      const store = new JobStore(path.join(root, 'store'), () => jobs, 5);
      const restore = useIo(disk.io);
      await assert.rejects(store.close(), /power cut/);
      restore();
      // The engine is gone (another one may own the journal now): a late change must not reach the disk.
      store.scheduleSave(record);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(fs.readdirSync(path.join(root, 'store')), []);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it(matrix('disk', 'power cut or process crash at every file-system call, through Complete', 'journal claims only durable bytes; rerun completes with the right sha256; no temporaries left'), async () => {
    await everyCall('complete');
  });

  it(matrix('disk', 'power cut or process crash at every file-system call, through Cancel', 'journal claims only durable bytes; rerun cancels; no destination created, no temporaries left'), async () => {
    await everyCall('cancel');
  });
});
