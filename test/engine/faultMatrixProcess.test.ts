// The "process" rows of the fault matrix: the engine SIGKILLed at random points of a transfer, of a checkpoint
// and of Complete, 20 times over, then restarted. Randomness comes from a seeded PRNG; the seed is printed and
// can be replayed with MATRIX_SEED=<seed>.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { useServerFixture } from '../support/engineHarness';
import type { CrashChildConfig, CrashChildFile, KillPlan } from '../support/crashChild';
import { isTmpfs, prng, sha256File, tryMountTmpfs, type Tmpfs } from '../support/faults';
import { matrix, matrixNote } from '../support/matrix';
import { randomBody, sha256Hex, TestServer, type RouteOptions } from '../support/testServer';
import { readStoredJobs } from '../support/storeFiles';

const CHILD = path.join(__dirname, '..', 'support', 'crashChild.js');

interface ChildLine {
  event: string;
  [k: string]: unknown;
}

/** Runs the crash child; `killAfterMs` sends SIGKILL that long after it opened its engine (if still running). */
function runChild(cfg: CrashChildConfig, killAfterMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; lines: ChildLine[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: ChildLine[] = [];
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
    let timer: NodeJS.Timeout | undefined;
    readline.createInterface({ input: child.stdout }).on('line', (l) => {
      const msg = JSON.parse(l) as ChildLine;
      lines.push(msg);
      if (msg.event === 'opened' && killAfterMs !== undefined) {
        timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      }
    });
    // A child that hangs must not hang the suite: it is ours, killed by its PID.
    const watchdog = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(watchdog);
      resolve({ code, signal, lines, stderr });
    });
  });
}

interface StoredFile {
  localPath: string;
  temporaryPath: string;
  transferred: boolean;
  completed: boolean;
  durableBytes: number;
  restarts: number;
}

/** Reads the journal straight from disk (no engine): its snapshot must always parse, its logs replay. */
function readJournal(storeDir: string): { jobs: StoredJob[] } | undefined {
  return readStoredJobs(storeDir);
}

interface StoredJob {
  displayName: string;
  state: string;
  files: StoredFile[];
}

describe('fault matrix: process', function () {
  this.timeout(180_000);
  let server: TestServer;
  let dir: string;
  let tmpfs: Tmpfs | undefined;

  // The tmpfs is unmounted (its own afterEach, added first) before the fixture deletes the folder.
  afterEach(() => {
    tmpfs?.unmount();
  });
  useServerFixture((f) => ({ server, dir } = f), { prefix: 'md-kill-' });
  beforeEach(() => {
    // SIGKILL leaves the page cache intact, so fsync costs nothing here but time: a tmpfs keeps the loop short.
    const t = tryMountTmpfs(path.join(dir, 'fs'), 256 * 1024 * 1024);
    tmpfs = isTmpfs(t) ? t : undefined;
    if (!tmpfs) {
      matrixNote('SIGKILL loop: file system', `on the test machine's disk (${(t as { error: string }).error})`);
    }
  });

  it(
    matrix(
      'process',
      'SIGKILL of the engine at random points of a transfer, of a checkpoint and of Complete, 20 times over, then restart',
      'the journal always parses and the store always loads; a temporary marked transferred and every destination always hold the right sha256; after each restart every file resumes or restarts and ends with the right sha256; no temporary left',
    ),
    async () => {
      const seed = Number(process.env.MATRIX_SEED ?? Date.now()) >>> 0;
      console.log(`      SIGKILL loop seed: ${seed} (replay with MATRIX_SEED=${seed})`);
      matrixNote('SIGKILL loop: PRNG seed', `${seed} (replay with MATRIX_SEED=${seed})`);
      const rnd = prng(seed);
      const base = tmpfs?.dir ?? path.join(dir, 'fs');
      const storeDir = path.join(base, 'store');
      // Four files with different resume behaviour: strong ETag (+ sha256), ETag, no range support (+ sha256),
      // Last-Modified only. Throttled so that a round takes about half a second; the engine writes in 512 KiB
      // batches, so each file sees a few checkpoints.
      const lm = new Date(Date.now() - 3_600_000).toUTCString();
      const specs: { name: string; body: Buffer; route: RouteOptions; sha: boolean }[] = [
        { name: 'etag-sha.bin', body: randomBody(1_500_000, 901), route: {}, sha: true },
        { name: 'etag.bin', body: randomBody(1_100_000, 902), route: {}, sha: false },
        { name: 'norange-sha.bin', body: randomBody(700_000, 903), route: { ranges: false, etag: null }, sha: true },
        { name: 'lastmod.bin', body: randomBody(1_100_000, 904), route: { etag: null, lastModified: lm }, sha: false },
      ];
      const expected = new Map<string, string>();
      const filesOf = (round: number): CrashChildFile[] => {
        const out = path.join(base, `round${round}`);
        fs.mkdirSync(out, { recursive: true });
        return specs.map((sp, k) => {
          const route = `/k${round}-${k}`;
          server.route(route, { body: sp.body, throttleBytesPerSec: 8_000_000, ...sp.route });
          const dest = path.join(out, sp.name);
          expected.set(dest, sha256Hex(sp.body));
          return { url: server.url(route), dest, sha256: sp.sha ? sha256Hex(sp.body) : undefined };
        });
      };

      /** What the journal claims must be true on disk, whatever moment the kill hit. */
      const checkInvariants = (where: string): StoredJob[] => {
        const journal = readJournal(storeDir);
        for (const job of journal?.jobs ?? []) {
          for (const f of job.files) {
            const want = expected.get(f.localPath)!;
            if (f.completed) {
              assert.equal(sha256File(f.localPath), want, `${where}: ${f.localPath} is marked completed`);
            } else if (f.transferred) {
              const tempOk = fs.existsSync(f.temporaryPath) && sha256File(f.temporaryPath) === want;
              const placed = fs.existsSync(f.localPath) && sha256File(f.localPath) === want; // killed inside Complete
              assert.ok(tempOk || placed, `${where}: ${path.basename(f.localPath)} is marked transferred but neither its temporary nor its destination holds the right bytes`);
            } else if (fs.existsSync(f.temporaryPath)) {
              assert.ok(fs.statSync(f.temporaryPath).size >= f.durableBytes, `${where}: the journal claims more durable bytes than the temporary holds`);
            }
          }
          if (job.state === 'ACKNOWLEDGED') {
            assert.ok(job.files.every((f) => f.completed), `${where}: ${job.displayName} is ACKNOWLEDGED with every file in place`);
          }
        }
        for (const d of fs.readdirSync(base).filter((n) => n.startsWith('round'))) {
          for (const n of fs.readdirSync(path.join(base, d)).filter((x) => !x.startsWith('.'))) {
            const p = path.join(base, d, n);
            assert.equal(sha256File(p), expected.get(p), `${where}: a destination with wrong bytes (${p})`);
          }
        }
        return journal?.jobs ?? [];
      };

      const started = Date.now();
      const tally = { transfer: 0, checkpoint: 0, complete: 0, spawns: 0, rounds: 0, resumed: 0, restarted: 0 };
      let kills = 0;
      let round = 0;
      let files = filesOf(round);
      while (kills < 20) {
        assert.ok(tally.spawns < 60, 'the loop makes progress');
        // Rotate through the three kinds of kill; where and when inside each is random.
        const kind = (['transfer', 'checkpoint', 'complete'] as const)[kills % 3];
        let kill: KillPlan | undefined;
        let killAfterMs: number | undefined;
        if (kind === 'transfer') {
          killAfterMs = Math.floor(rnd() * 600); // from start-up (store load, reconcile) to the end of the transfer
        } else if (kind === 'checkpoint') {
          kill = { phase: 'checkpoint', op: 1 + Math.floor(rnd() * 12), when: (['before', 'during', 'after'] as const)[Math.floor(rnd() * 3)] };
        } else {
          // Complete of 4 files: 4 × (link, journal save = fsync + rename + folder fsync, unlink), the folder's
          // fsync, the final journal save: 24 operations.
          kill = { phase: 'complete', op: 1 + Math.floor(rnd() * 24), when: (['before', 'during', 'after'] as const)[Math.floor(rnd() * 3)] };
        }
        const where = `spawn ${tally.spawns} round ${round} (${kind}${kill ? ` ${kill.phase} op ${kill.op} ${kill.when}` : ` after ${killAfterMs} ms`})`;
        const run = await runChild({ storeDir, round, files, kill }, killAfterMs);
        tally.spawns++;
        const opened = run.lines.find((l) => l.event === 'opened');
        if (opened) {
          assert.deepEqual(opened.problems, [], `${where}: the store loads without problems`);
        }
        const jobs = checkInvariants(where);
        if (run.signal === 'SIGKILL') {
          kills++;
          tally[kind]++;
          continue; // the next spawn restarts the engine on the same store and must recover
        }
        assert.equal(run.code, 0, `${where}: the engine did not finish: ${JSON.stringify(run.lines.filter((l) => l.event === 'error'))} ${run.stderr}`);
        // The round's job completed: every file in place with the right bytes, nothing left behind.
        const job = jobs.find((j) => j.displayName === `round ${round}`)!;
        assert.equal(job.state, 'ACKNOWLEDGED', `${where}: final state`);
        for (const f of job.files) {
          assert.ok(f.completed, `${where}: ${f.localPath} completed`);
          assert.equal(sha256File(f.localPath), expected.get(f.localPath), `${where}: ${f.localPath} has the right bytes`);
        }
        assert.deepEqual(fs.readdirSync(path.join(base, `round${round}`)).filter((n) => n.startsWith('.')), [], `${where}: no temporary file left`);
        tally.rounds++;
        round++;
        files = filesOf(round);
      }
      // The last kill still has to be recovered from: one more run, no kill.
      const last = await runChild({ storeDir, round, files });
      tally.spawns++;
      assert.equal(last.code, 0, `final restart: ${JSON.stringify(last.lines.filter((l) => l.event === 'error'))} ${last.stderr}`);
      const finalJobs = checkInvariants('final restart');
      assert.ok(finalJobs.every((j) => j.state === 'ACKNOWLEDGED'), 'every round ends ACKNOWLEDGED');
      for (const j of finalJobs) {
        for (const f of j.files) {
          assert.equal(sha256File(f.localPath), expected.get(f.localPath), `${f.localPath} has the right bytes`);
        }
      }
      tally.rounds++;
      // How each file recovered (either is right; which one depends on where the kills fell).
      for (let r = 0; r <= round; r++) {
        for (const [k] of specs.entries()) {
          const reqs = server.requestsFor(`/k${r}-${k}`);
          if (reqs.slice(1).some((q) => q.status === 206)) {
            tally.resumed++;
          } else if (reqs.length > 1) {
            tally.restarted++;
          }
        }
      }
      const seconds = (Date.now() - started) / 1000;
      const summary =
        `${kills} kills in ${seconds.toFixed(1)} s over ${tally.spawns} engine processes and ${tally.rounds} jobs of 4 files: in transfer or start-up ${tally.transfer}, in a checkpoint ${tally.checkpoint}, in Complete ${tally.complete}; ` +
        `files resumed with a range ${tally.resumed}, fetched again from 0 ${tally.restarted}`;
      console.log(`      ${summary}`);
      matrixNote('SIGKILL loop', summary);
    },
  );

  it(
    matrix(
      'process',
      "SIGKILL at each step of Complete's first file (after the hard link, during its journal save, before the temporary is unlinked)",
      'the restarted engine recognises its own file in place (same inode) and finishes Complete: S_OK, right sha256, no EEXIST, nothing downloaded again',
    ),
    async () => {
      const base = tmpfs?.dir ?? path.join(dir, 'fs');
      const bodies = [randomBody(300_000, 951), randomBody(200_000, 952)];
      // Complete's operations, counted from 1: link, journal fsync, journal rename, folder fsync, unlink, …
      const plans: KillPlan[] = [
        { phase: 'complete', op: 1, when: 'after' },
        { phase: 'complete', op: 2, when: 'during' },
        { phase: 'complete', op: 5, when: 'before' },
      ];
      for (const [i, kill] of plans.entries()) {
        const storeDir = path.join(base, `step${i}`, 'store');
        const out = path.join(base, `step${i}`, 'out');
        fs.mkdirSync(out, { recursive: true });
        const files: CrashChildFile[] = bodies.map((b, k) => {
          server.route(`/s${i}-${k}`, { body: b });
          return { url: server.url(`/s${i}-${k}`), dest: path.join(out, `f${k}.bin`), sha256: k === 0 ? sha256Hex(b) : undefined };
        });
        const first = await runChild({ storeDir, round: 0, files, kill });
        const killedAt = first.lines.find((l) => l.event === 'killing')?.where;
        const where = `step ${JSON.stringify(kill)}: ${typeof killedAt === 'string' ? killedAt : 'not killed'}`;
        assert.equal(first.signal, 'SIGKILL', `${where}: killed inside Complete`);
        const again = await runChild({ storeDir, round: 0, files });
        assert.equal(again.code, 0, `${where}: the restarted engine could not finish: ${JSON.stringify(again.lines.filter((l) => l.event === 'error'))} ${again.stderr}`);
        assert.deepEqual(again.lines.find((l) => l.event === 'opened')?.problems, []);
        for (const [k, b] of bodies.entries()) {
          assert.equal(sha256File(path.join(out, `f${k}.bin`)), sha256Hex(b), `${where}: file ${k}`);
          assert.equal(server.requestsFor(`/s${i}-${k}`).length, 1, `${where}: file ${k} was not downloaded again`);
        }
        assert.deepEqual(fs.readdirSync(out).filter((n) => n.startsWith('.')), [], `${where}: no temporary left`);
        const job = readJournal(storeDir)!.jobs[0];
        assert.equal(job.state, 'ACKNOWLEDGED');
      }
    },
  );
});
