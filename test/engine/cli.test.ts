// The headless CLI (dist/cli.js, built by `npm run build`) against the fault-injecting test server.
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir, waitUntil } from '../support/engineHarness';
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
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
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
