// The headless CLI (dist/cli.js, built by `npm run build`) against the fault-injecting test server.
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DownloadEngine } from '../../src/engine';
import { fastOptions, tempDir, waitForState, waitUntil } from '../support/engineHarness';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';
import { readStoredJobs } from '../support/storeFiles';

const CLI = path.resolve(__dirname, '..', '..', '..', 'dist', 'cli.js');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function start(args: string[]): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

function cli(args: string[]): Promise<Run> {
  return start(args).done;
}

/** Durable bytes of the first file of the first job in a CLI store (what a crash keeps). */
function durableInStore(store: string): number {
  try {
    return readStoredJobs(store)?.jobs[0]?.files[0]?.durableBytes ?? 0;
  } catch {
    return 0;
  }
}

describe('CLI (dist/cli.js)', function () {
  this.timeout(30_000);
  let server: TestServer;
  let dir: string;
  let store: string;
  const body = randomBody(3_000_000, 71);

  before(async function () {
    if (!fs.existsSync(CLI)) {
      throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does).`);
    }
    server = await TestServer.start();
  });
  after(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.reset();
    dir = tempDir('md-cli-');
    store = path.join(dir, 'store');
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--help prints the usage and exits 0', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: managed-downloads get <url>/);
  });

  it('bad arguments exit 2 with E_INVALIDARG', async () => {
    const r = await cli(['get', '--segments', 'many', server.url('/a')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /E_INVALIDARG \(0x80070057\)/);
  });

  it('downloads into -o DIR with the sha256 checked, silently when stderr is not a terminal, and exits 0', async () => {
    server.route('/a.bin', { body });
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    const r = await cli(['get', server.url('/a.bin'), '-o', out, '--store', store, '--sha256', sha256Hex(body)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(r.stdout, '');
    assert.equal(sha256Hex(fs.readFileSync(path.join(out, 'a.bin'))), sha256Hex(body));
    assert.deepEqual(fs.readdirSync(out), ['a.bin'], 'no temporary file left');
  });

  it('--max-size refuses a larger file before writing it: exit 1 with ERROR_FILE_TOO_LARGE', async () => {
    server.route('/a.bin', { body });
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    const r = await cli(['get', server.url('/a.bin'), '-o', out, '--store', store, '--max-size', '1M']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ERROR_FILE_TOO_LARGE \(0x800700DF\)/);
    assert.ok(!fs.existsSync(path.join(out, 'a.bin')));
    const fits = await cli(['get', server.url('/a.bin'), '-o', out, '--store', store, '--max-size', '3M']);
    assert.equal(fits.code, 0, fits.stderr);
  });

  it('several URLs, several files in flight, one --output per URL name; a rerun refuses to overwrite', async () => {
    const files = Array.from({ length: 12 }, (_, i) => randomBody(10_000 + i * 997, 100 + i));
    files.forEach((b, i) => server.route(`/f${i}.bin`, { body: b }));
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    const urls = files.map((_, i) => server.url(`/f${i}.bin`));
    const connectionsBefore = server.connections;
    const r = await cli(['get', ...urls, '-o', out, '--store', store, '--concurrency', '4']);
    assert.equal(r.code, 0, r.stderr);
    files.forEach((b, i) => assert.equal(sha256Hex(fs.readFileSync(path.join(out, `f${i}.bin`))), sha256Hex(b)));
    assert.ok(server.connections - connectionsBefore <= 4, `keep-alive connections reused (${server.connections - connectionsBefore} opened for 12 files)`);
    const again = await cli(['get', urls[0], '-o', out, '--store', store]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already exists.*--overwrite/);
    const forced = await cli(['get', urls[0], '-o', out, '--store', store, '--overwrite']);
    assert.equal(forced.code, 0, forced.stderr);
  });

  it('--output FILE names the destination', async () => {
    server.route('/a.bin', { body });
    const dest = path.join(dir, 'renamed.dat');
    const r = await cli(['get', server.url('/a.bin'), '--output', dest, '--store', store]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256Hex(fs.readFileSync(dest)), sha256Hex(body));
  });

  it('a 404 exits non-zero with HTTP_404 (0x80190194) on stderr and leaves nothing behind', async () => {
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    const r = await cli(['get', server.url('/missing.bin'), '-o', out, '--store', store]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /HTTP_404 \(0x80190194\)/);
    assert.deepEqual(fs.readdirSync(out), []);
  });

  it('a --sha256 mismatch exits non-zero with BG_E_VALIDATION_FAILED and no output file', async () => {
    server.route('/a.bin', { body });
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    const r = await cli(['get', server.url('/a.bin'), '-o', out, '--store', store, '--sha256', 'ab'.repeat(32)]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /BG_E_VALIDATION_FAILED \(0x80200053\)/);
    assert.deepEqual(fs.readdirSync(out), []);
  });

  describe('never exits before a final outcome (contract §7)', () => {
    it('a 503 then a 200: waits for the retry and exits 0 with the file in place', async () => {
      server.route('/a.bin', { body, status: 503, failTimes: 1 });
      const out = path.join(dir, 'out');
      fs.mkdirSync(out);
      const r = await cli(['get', server.url('/a.bin'), '-o', out, '--store', store, '--retry-delay', '1']);
      assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
      assert.equal(server.requestsFor('/a.bin').length, 2, 'retried once');
      assert.equal(sha256Hex(fs.readFileSync(path.join(out, 'a.bin'))), sha256Hex(body));
      assert.deepEqual(fs.readdirSync(out), ['a.bin']);
    });

    it('a connection reset mid-body: resumes after the retry delay and exits 0 with the right bytes', async () => {
      server.route('/a.bin', { body, resetAfterBytes: 1_000_000, resetTimes: 1 });
      const out = path.join(dir, 'out');
      fs.mkdirSync(out);
      const r = await cli(['get', server.url('/a.bin'), '-o', out, '--store', store, '--retry-delay', '1', '--sha256', sha256Hex(body)]);
      assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
      const reqs = server.requestsFor('/a.bin');
      assert.equal(reqs.length, 2);
      assert.match(reqs[1].range ?? '', /^bytes=[1-9]\d*-$/, 'resumed with a range');
      assert.equal(sha256Hex(fs.readFileSync(path.join(out, 'a.bin'))), sha256Hex(body));
      assert.deepEqual(fs.readdirSync(out), ['a.bin']);
    });

    it('--timeout S: a server that keeps failing transiently ends in exit 1 with DO_E_DOWNLOAD_NO_PROGRESS', async () => {
      server.route('/a.bin', { body, status: 503 });
      const out = path.join(dir, 'out');
      fs.mkdirSync(out);
      const r = await cli(['get', server.url('/a.bin'), '-o', out, '--store', store, '--retry-delay', '1', '--timeout', '3']);
      assert.equal(r.code, 1, `exit ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, /DO_E_DOWNLOAD_NO_PROGRESS \(0x80D02002\): .*no progress.*3 s/i);
      assert.ok(server.requestsFor('/a.bin').length >= 2, 'retried until the timeout');
      assert.deepEqual(fs.readdirSync(out), []);
    });
  });

  describe('one CLI per store, released by the kernel when its process dies', () => {
    it('a cli.lock naming a live unrelated process does not block a rerun', async () => {
      server.route('/a.bin', { body });
      const out = path.join(dir, 'out');
      fs.mkdirSync(out);
      fs.mkdirSync(store, { recursive: true });
      // What a SIGKILLed CLI whose pid was reused (here by the test runner) leaves behind.
      fs.writeFileSync(path.join(store, 'cli.lock'), String(process.pid));
      const r = await cli(['get', server.url('/a.bin'), '-o', out, '--store', store]);
      assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
      assert.equal(sha256Hex(fs.readFileSync(path.join(out, 'a.bin'))), sha256Hex(body));
    });

    it('a second CLI on a store in use is refused clearly and the first one finishes', async () => {
      server.route('/slow.bin', { body, throttleBytesPerSec: 2_000_000 });
      server.route('/a.bin', { body });
      const out = path.join(dir, 'out');
      fs.mkdirSync(out);
      const first = start(['get', server.url('/slow.bin'), '-o', out, '--store', store]);
      await waitUntil(() => server.requestsFor('/slow.bin').length > 0, 10_000, 'the first CLI downloading');
      const second = await cli(['get', server.url('/a.bin'), '-o', out, '--store', store]);
      assert.equal(second.code, 1, second.stderr);
      assert.match(second.stderr, /E_ACCESSDENIED \(0x80070005\): Another managed-downloads process is using the store/);
      assert.equal(server.requestsFor('/a.bin').length, 0);
      const r = await first.done;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256Hex(fs.readFileSync(path.join(out, 'slow.bin'))), sha256Hex(body));
    });
  });

  describe('a crash inside Complete: the same command again finishes it', () => {
    const big = randomBody(4_000_000, 73);

    /**
     * Leaves the store as a CLI killed inside Complete would: the job TRANSFERRED in the journal, its temporary
     * full-size, then `place` puts the destination in place the way Complete had got to before the crash.
     */
    async function killedInsideComplete(args: string[], out: string, place: (temporary: string, dest: string) => void): Promise<void> {
      server.route('/big.bin', { body: big, throttleBytesPerSec: 2_000_000 });
      const first = start(args);
      await waitUntil(() => durableInStore(store) > 0, 15_000, 'a durable checkpoint');
      first.child.kill('SIGKILL');
      await first.done;
      server.route('/big.bin', { body: big });
      const engine = await DownloadEngine.open(fastOptions(store));
      try {
        const [job] = engine.enumJobs();
        await job.resume();
        await waitForState(engine, job, 'TRANSFERRED');
        const file = job.getFiles()[0];
        place(file.temporaryPath, path.join(out, 'big.bin'));
      } finally {
        await engine.dispose();
      }
      assert.equal(fs.readdirSync(out).length, 2, 'destination and temporary both there');
    }

    it('killed between linking the destination and journaling it: exits 0, the file in place, no temporary left', async () => {
      const out = path.join(dir, 'out');
      fs.mkdirSync(out);
      const args = ['get', server.url('/big.bin'), '-o', out, '--store', store];
      await killedInsideComplete(args, out, (temporary, dest) => fs.linkSync(temporary, dest));
      const requests = server.requestsFor('/big.bin').length;
      const r = await cli(args);
      assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
      assert.equal(sha256Hex(fs.readFileSync(path.join(out, 'big.bin'))), sha256Hex(big));
      assert.deepEqual(fs.readdirSync(out), ['big.bin'], 'no temporary left');
      assert.equal(server.requestsFor('/big.bin').length, requests, 'nothing downloaded again');
    });

    it('the destination holds the verified bytes (--sha256) and the temporary is gone: exits 0 without downloading again', async () => {
      const out = path.join(dir, 'out');
      fs.mkdirSync(out);
      const args = ['get', server.url('/big.bin'), '-o', out, '--store', store, '--sha256', sha256Hex(big)];
      await killedInsideComplete(args, out, (temporary, dest) => fs.copyFileSync(temporary, dest));
      fs.unlinkSync(fs.readdirSync(out).filter((n) => n !== 'big.bin').map((n) => path.join(out, n))[0]);
      const requests = server.requestsFor('/big.bin').length;
      const r = await cli(args);
      assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
      assert.equal(sha256Hex(fs.readFileSync(path.join(out, 'big.bin'))), sha256Hex(big));
      assert.deepEqual(fs.readdirSync(out), ['big.bin']);
      assert.equal(server.requestsFor('/big.bin').length, requests, 'nothing downloaded again');
    });

    it('a destination that is not ours still needs --overwrite, and the unfinished download is kept', async () => {
      const out = path.join(dir, 'out');
      fs.mkdirSync(out);
      const args = ['get', server.url('/big.bin'), '-o', out, '--store', store, '--sha256', sha256Hex(big)];
      await killedInsideComplete(args, out, (_temporary, dest) => fs.writeFileSync(dest, 'someone else'));
      const r = await cli(args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /already exists.*--overwrite/);
      assert.equal(fs.readFileSync(path.join(out, 'big.bin'), 'utf8'), 'someone else');
      const forced = await cli([...args, '--overwrite']);
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal(sha256Hex(fs.readFileSync(path.join(out, 'big.bin'))), sha256Hex(big));
      assert.deepEqual(fs.readdirSync(out), ['big.bin']);
    });
  });

  it('SIGKILL mid-file, then the same command again: resumes with Range + If-Range and the bytes are right', async () => {
    const big = randomBody(16_000_000, 72);
    server.route('/big.bin', { body: big, throttleBytesPerSec: 4_000_000 });
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    const args = ['get', server.url('/big.bin'), '-o', out, '--store', store, '--sha256', sha256Hex(big)];
    const first = start(args);
    await waitUntil(() => durableInStore(store) > 0, 15_000, 'a durable checkpoint');
    first.child.kill('SIGKILL');
    const killed = await first.done;
    assert.equal(killed.signal, 'SIGKILL');
    const durable = durableInStore(store);
    const second = await cli(args);
    assert.equal(second.code, 0, second.stderr);
    const reqs = server.requestsFor('/big.bin');
    assert.equal(reqs.length, 2);
    assert.equal(reqs[1].range, `bytes=${durable}-`);
    assert.ok(reqs[1].ifRange?.startsWith('"'), 'validated with a strong ETag in If-Range');
    assert.equal(sha256Hex(fs.readFileSync(path.join(out, 'big.bin'))), sha256Hex(big));
    assert.deepEqual(fs.readdirSync(out), ['big.bin']);
  });
});
