// The CLI's --extract and --limit-rate (dist/cli.js, built by `node esbuild.js`), spawned as a user would run it.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeZip } from '../support/archives';
import { tempDir } from '../support/engineHarness';
import { TestServer } from '../support/testServer';

const CLI = path.resolve(__dirname, '..', '..', '..', 'dist', 'cli.js');

function cli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('CLI --extract and --limit-rate', function () {
  this.timeout(30_000);
  let server: TestServer;
  let dir: string;

  before(async function () {
    if (!fs.existsSync(CLI)) {
      throw new Error(`${CLI} is missing: run \`node esbuild.js\` first (npm test does).`);
    }
    server = await TestServer.start();
  });
  after(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.reset();
    dir = tempDir('md-cli-x-');
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--extract unpacks the downloaded zip beside it; --extract DIR into DIR', async () => {
    server.route('/tools.zip', { body: makeZip([{ name: 'bin/tool.txt', data: 'the tool' }]) });
    const r = await cli(['get', server.url('/tools.zip'), '-o', dir, '--store', path.join(dir, 'store'), '--extract', '-v']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(dir, 'tools', 'bin', 'tool.txt'), 'utf8'), 'the tool');
    assert.ok(fs.existsSync(path.join(dir, 'tools.zip')), 'the archive stays');

    const r2 = await cli(['get', '--extract', path.join(dir, 'elsewhere'), server.url('/tools.zip'), '--output', path.join(dir, 'second.zip'), '--store', path.join(dir, 'store')]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(fs.readFileSync(path.join(dir, 'elsewhere', 'bin', 'tool.txt'), 'utf8'), 'the tool');
  });

  it('--extract of a hostile archive exits 1 naming the entry and the code; the archive stays, nothing is extracted', async () => {
    server.route('/evil.zip', { body: makeZip([{ name: '../evil.txt', data: 'pwned' }]) });
    const r = await cli(['get', server.url('/evil.zip'), '-o', dir, '--store', path.join(dir, 'store'), '--extract']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /E_INVALIDARG \(0x80070057\).*'\.\.\/evil\.txt'/);
    assert.ok(fs.existsSync(path.join(dir, 'evil.zip')));
    assert.equal(fs.existsSync(path.join(dir, 'evil')), false);
    assert.equal(fs.existsSync(path.join(path.dirname(dir), 'evil.txt')), false);
  });

  it('--limit-rate 256k: 1 MiB takes at least the time the limit allows; a bad rate is a usage error (exit 2)', async () => {
    server.route('/one-mib.bin', { body: Buffer.alloc(1024 * 1024, 7) });
    const started = performance.now();
    const r = await cli(['get', server.url('/one-mib.bin'), '-o', dir, '--store', path.join(dir, 'store'), '--limit-rate', '256k']);
    const seconds = (performance.now() - started) / 1000;
    assert.equal(r.code, 0, r.stderr);
    // A lower bound only (a slow machine makes it longer, never shorter): 1 MiB less two chunks of burst at 256 KiB/s.
    assert.ok(seconds >= 2.5, `took ${seconds.toFixed(2)} s`);
    const bad = await cli(['get', server.url('/one-mib.bin'), '-o', dir, '--store', path.join(dir, 'store'), '--limit-rate', 'fast']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--limit-rate must be/);
  });

  it('--extract with no archive among the files is a usage error (exit 2)', async () => {
    const r = await cli(['get', server.url('/data.bin'), '-o', dir, '--store', path.join(dir, 'store'), '--extract']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--extract unpacks/);
  });
});
