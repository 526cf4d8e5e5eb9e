// Mirrors (§8): a failing source is set aside and the next one takes over, keeping the bytes on disk only when
// the next source provably serves the same entity.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DownloadEngine, JobImpl } from '../../src/engine';
import { openEngine, tempDir, waitForState } from '../support/engineHarness';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';

describe('mirrors', () => {
  let origin: TestServer;
  let mirror: TestServer;
  let dir: string;
  let engine: DownloadEngine;
  let logLines: string[];
  const body = randomBody(1_000_000, 91);
  const sha = sha256Hex(body);

  before(async () => {
    origin = await TestServer.start();
    mirror = await TestServer.start();
  });
  after(async () => {
    await origin.close();
    await mirror.close();
  });
  beforeEach(async () => {
    origin.reset();
    mirror.reset();
    dir = tempDir();
    logLines = [];
    engine = await openEngine(path.join(dir, 'store'), { log: (_l, m) => logLines.push(m), segmentsPerFile: 1 });
  });
  afterEach(async () => {
    await engine.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function run(remoteUrl: string, mirrors: string[], o: { sha256?: string; until?: 'TRANSFERRED' | 'ERROR' } = {}): Promise<JobImpl> {
    const job = await engine.createJob({ displayName: 'mirrored' });
    await job.setMinimumRetryDelay(0);
    await job.addFile(remoteUrl, path.join(dir, 'f.bin'), { sha256: o.sha256, mirrors });
    await job.resume();
    await waitForState(engine, job, o.until ?? 'TRANSFERRED');
    return job;
  }

  async function placed(job: JobImpl): Promise<string> {
    assert.equal(await job.complete(), 'S_OK');
    return sha256Hex(fs.readFileSync(path.join(dir, 'f.bin')));
  }

  it('a fatal error (404) sets the source aside and the next one serves the file; the file says where it comes from', async () => {
    origin.route('/f', { status: 404 });
    mirror.route('/f', { body });
    const job = await run(origin.url('/f'), [mirror.url('/f')]);
    assert.deepEqual(job.getFiles()[0].mirrors, [mirror.url('/f')]);
    assert.equal(job.getFiles()[0].source, mirror.url('/f'));
    assert.equal(job.getFiles()[0].remoteUrl, origin.url('/f'), 'the remoteUrl stays the one the caller gave');
    assert.equal(origin.requestsFor('/f').length, 1);
    assert.equal(await placed(job), sha);
  });

  it('transient errors (500) past their share, two in a row, move to the next source', async () => {
    origin.route('/f', { status: 500 });
    mirror.route('/f', { body });
    const job = await run(origin.url('/f'), [mirror.url('/f')]);
    assert.equal(origin.requestsFor('/f').length, 2);
    assert.equal(job.errorCount, 1, 'the first failure waited for its retry; the second moved on at once');
    assert.equal(await placed(job), sha);
  });

  it('a source serving another entity is dropped and said in the log; the next good one serves the file', async () => {
    origin.route('/f', { status: 404 });
    mirror.route('/other', { body: randomBody(1_000_000, 92) });
    mirror.route('/f', { body });
    const job = await run(origin.url('/f'), [mirror.url('/other'), mirror.url('/f')], { sha256: sha });
    assert.ok(
      logLines.some((l) => l.includes(mirror.url('/other')) && l.includes('another entity')),
      `the log says the source serves another entity:\n${logLines.join('\n')}`,
    );
    assert.equal(await placed(job), sha);
  });

  it('when every source fails the job goes to ERROR and getError() names each one', async () => {
    origin.route('/f', { status: 404 });
    mirror.route('/other', { body: randomBody(1_000, 93) });
    mirror.route('/gone', { status: 410 });
    const job = await run(origin.url('/f'), [mirror.url('/other'), mirror.url('/gone')], { sha256: sha, until: 'ERROR' });
    const message = job.getError()?.message ?? '';
    for (const u of [origin.url('/f'), mirror.url('/other'), mirror.url('/gone')]) {
      assert.ok(message.includes(u), `${u} is named in: ${message}`);
    }
    // A resume tries every source again.
    mirror.route('/gone', { body });
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    assert.equal(await placed(job), sha);
  });

  it('keeps the bytes on disk when the next source serves the same size and a sha256 checks the whole file', async () => {
    origin.route('/f', { body, resetAfterBytes: 300_000 });
    mirror.route('/f', { body, etag: '"another-server"' });
    const job = await run(origin.url('/f'), [mirror.url('/f')], { sha256: sha });
    const ranges = mirror.requestsFor('/f').map((r) => r.range);
    assert.equal(ranges.length, 2, 'a one-byte probe, then the rest');
    assert.equal(ranges[0], 'bytes=0-0');
    assert.match(ranges[1] ?? '', /^bytes=[1-9]\d*-$/, 'resumed where the origin stopped');
    assert.equal(job.record.files[0].restarts, 0);
    assert.equal(await placed(job), sha);
  });

  it('keeps the bytes when the next source has the same strong validator (no sha256)', async () => {
    origin.route('/f', { body, resetAfterBytes: 300_000 });
    mirror.route('/f', { body }); // the same default ETag: the same entity
    const job = await run(origin.url('/f'), [mirror.url('/f')]);
    assert.match(mirror.requestsFor('/f').at(-1)?.range ?? '', /^bytes=[1-9]\d*-$/);
    assert.equal(await placed(job), sha);
  });

  it('starts again from 0 when the next source cannot be shown to serve the same entity', async () => {
    origin.route('/f', { body, resetAfterBytes: 300_000 });
    mirror.route('/f', { body, etag: '"another-server"' });
    const job = await run(origin.url('/f'), [mirror.url('/f')]);
    const last = mirror.requestsFor('/f').at(-1);
    assert.equal(last?.range, undefined, 'a whole-file request');
    assert.equal(job.record.files[0].restarts, 1);
    assert.equal(await placed(job), sha);
  });

  it('refuses a mirror that is not an http(s) URL', async () => {
    const job = await engine.createJob({ displayName: 'bad' });
    await assert.rejects(job.addFile(origin.url('/f'), path.join(dir, 'f.bin'), { mirrors: ['ftp://x/f'] }), { code: 'E_INVALIDARG' });
    await assert.rejects(job.addFileSet([{ remoteUrl: origin.url('/f'), localPath: path.join(dir, 'f.bin'), mirrors: 'http://x' as unknown as string[] }]), { code: 'E_INVALIDARG' });
  });
});
