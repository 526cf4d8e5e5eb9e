// One engine per user across windows: one owner per store, the others act through it, and take over.
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { DownloadError, EngineJob } from '../../src/engine';
import { SharedEngine } from '../../src/engine/remote/sharedEngine';
import { socketPathFor } from '../../src/engine/remote/storeClaim';
import { fastOptions, useServerFixture, waitUntil } from '../support/engineHarness';
import { matrix } from '../support/matrix';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';

const CHILD = path.join(__dirname, '..', 'support', 'sharedOwnerChild.js');

describe('one engine per store across windows', () => {
  let server: TestServer;
  let dir: string;
  let store: string;
  const opened: SharedEngine[] = [];
  const body = randomBody(3_000_000, 71);

  afterEach(async () => {
    for (const s of opened.splice(0)) {
      await s.dispose();
    }
  });
  useServerFixture((f) => ({ server, dir } = f));
  beforeEach(() => {
    server.route('/f', { body });
    store = path.join(dir, 'store');
  });

  async function open(): Promise<SharedEngine> {
    const s = await SharedEngine.open(fastOptions(store));
    opened.push(s);
    return s;
  }

  function waitForJobState(job: () => EngineJob, state: string, ms = 15_000): Promise<void> {
    return waitUntil(() => job().state === state, ms, `state ${state} (is ${job().state})`);
  }

  it(matrix('process', 'several windows open the same store at once', 'exactly one owns it; the others are clients'), async () => {
    const all = await Promise.all([open(), open(), open(), open()]);
    assert.equal(all.filter((s) => s.role === 'owner').length, 1);
    assert.equal(all.filter((s) => s.role === 'client').length, 3);
    const mode = fs.statSync(socketPathFor(store)).mode & 0o777;
    assert.equal(mode, 0o600, 'the socket is readable only by the user');
  });

  it('a client sees the owner\'s jobs live and acts on them through it; errors keep code and HRESULT', async () => {
    const owner = await open();
    const client = await open();
    assert.equal(owner.role, 'owner');
    assert.equal(client.role, 'client');
    const job = await client.service.createJob({ displayName: 'via client' });
    assert.ok(owner.service.getJob(job.id), 'the job lives in the owner');
    await job.addFile(server.url('/f'), path.join(dir, 'f.bin'));
    const transferred = new Promise<void>((r) => client.service.onDidTransferJob((j) => j.id === job.id && r()));
    await job.resume();
    await transferred;
    assert.equal(client.service.getJob(job.id).state, 'TRANSFERRED');
    assert.equal(client.service.getJob(job.id).getProgress().bytesTransferred, body.length);
    assert.equal(await job.complete(), 'S_OK');
    assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'f.bin'))), sha256Hex(body));
    await assert.rejects(job.cancel(), (e: DownloadError) => e.code === 'DO_E_INVALID_STATE' && e.hresult === 0x80d02013 && /ACKNOWLEDGED/.test(e.message));
    assert.throws(() => client.service.getJob('nope'), /no job/);
  });

  it(matrix('process', 'the owner window closes mid-transfer', 'another window takes over within seconds and the file resumes from its durable offset'), async () => {
    server.route('/f', { body, throttleBytesPerSec: 1_500_000 });
    const owner = await open();
    const client = await open();
    const job = await owner.service.createJob({ displayName: 'handover' });
    await job.addFile(server.url('/f'), path.join(dir, 'h.bin'));
    await job.resume();
    await waitUntil(() => client.service.getJob(job.id).getProgress().bytesTransferred > 500_000, 10_000, 'progress seen by the client');
    const tookOver = new Promise<void>((r) => client.onDidChangeService(() => r()));
    const closedAt = Date.now();
    await owner.dispose();
    opened.splice(opened.indexOf(owner), 1);
    await tookOver;
    assert.ok(Date.now() - closedAt < 5_000, 'took over within a few seconds');
    assert.equal(client.role, 'owner');
    server.route('/f', { body });
    await waitForJobState(() => client.service.getJob(job.id), 'TRANSFERRED');
    const reqs = server.requestsFor('/f');
    assert.ok(reqs.length >= 2);
    assert.match(reqs.at(-1)!.range ?? '', /^bytes=[1-9]\d*-$/, 'resumed with a range');
    assert.ok(reqs.at(-1)!.ifRange);
    assert.equal(await client.service.getJob(job.id).complete(), 'S_OK');
    assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'h.bin'))), sha256Hex(body));
  });

  it(matrix('process', 'the owner process is killed (SIGKILL)', 'a waiting window takes over the stale socket and runs the jobs'), async () => {
    const child: ChildProcess = spawn(process.execPath, [CHILD, store], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const first = await new Promise<string>((resolve) => readline.createInterface({ input: child.stdout! }).once('line', (l) => resolve((JSON.parse(l) as { role: string }).role)));
      assert.equal(first, 'owner');
      const client = await open();
      assert.equal(client.role, 'client');
      const job = await client.service.createJob({ displayName: 'survivor' });
      await job.addFile(server.url('/f'), path.join(dir, 's.bin'));
      const tookOver = new Promise<void>((r) => client.onDidChangeService(() => r()));
      child.kill('SIGKILL');
      await tookOver;
      assert.equal(client.role, 'owner');
      const again = client.service.getJob(job.id);
      await again.resume();
      await waitForJobState(() => client.service.getJob(job.id), 'TRANSFERRED');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
