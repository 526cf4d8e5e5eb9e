// The contract's state model (§2) and error table (§3), row by row, against a real local server.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DownloadEngine, DownloadError, type JobImpl } from '../../src/engine';
import { useEngineFixture, type EngineFixture, waitForState, waitUntil } from '../support/engineHarness';
import { matrix } from '../support/matrix';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';
import { readStoredJobs } from '../support/storeFiles';

describe('job states and errors', () => {
  let server: TestServer;
  let dir: string;
  let engine: DownloadEngine;
  const small = randomBody(100_000, 7);
  const big = randomBody(2_000_000, 8);

  let reopen: EngineFixture['reopen'];
  useEngineFixture((f) => ({ server, dir, engine, reopen } = f));
  beforeEach(() => {
    server.route('/small', { body: small });
    server.route('/slow', { body: big, throttleBytesPerSec: 200_000 });
    server.route('/missing', { status: 404 });
  });

  async function rejects(p: Promise<unknown>, code: string, hresult: number): Promise<DownloadError> {
    const e = await p.then(
      () => assert.fail(`expected ${code}`),
      (err: unknown) => err,
    );
    assert.ok(e instanceof Error, 'an Error');
    assert.equal((e as DownloadError).code, code);
    assert.equal((e as DownloadError).hresult, hresult);
    assert.ok(e.message.length > 10);
    return e as DownloadError;
  }

  it('a new job is SUSPENDED with no files, and resume() with no files fails with DO_E_JOB_EMPTY', async () => {
    const job = await engine.createJob({ displayName: 'empty' });
    assert.equal(job.state, 'SUSPENDED');
    assert.deepEqual(job.getFiles(), []);
    assert.equal(job.priority, 'NORMAL');
    assert.equal(job.type, 'download');
    assert.match(job.id, /^[0-9a-f-]{36}$/);
    const e = await rejects(job.resume(), 'DO_E_JOB_EMPTY', 0x80d02004);
    assert.match(e.message, /'empty'/);
    assert.equal(job.state, 'SUSPENDED');
  });

  it('SUSPENDED → QUEUED → CONNECTING → TRANSFERRING → TRANSFERRED → ACKNOWLEDGED, with the file in place only after complete()', async () => {
    const job = await engine.createJob({ displayName: 'one' });
    const dest = path.join(dir, 'one.bin');
    await job.addFile(server.url('/small'), dest);
    const seen: string[] = [];
    engine.onDidChangeJob((j) => {
      if (j === job && seen[seen.length - 1] !== j.state) {
        seen.push(j.state);
      }
    });
    const transferred = new Promise<void>((r) => engine.onDidTransferJob((j) => j === job && r()));
    await job.resume();
    await transferred;
    assert.equal(job.state, 'TRANSFERRED');
    assert.deepEqual(seen.slice(0, 1), ['QUEUED']);
    assert.ok(seen.includes('CONNECTING') && seen.includes('TRANSFERRING'), `states seen: ${seen.join(',')}`);
    assert.ok(!fs.existsSync(dest), 'the destination does not exist before complete()');
    const [file] = job.getFiles();
    assert.ok(fs.existsSync(file.temporaryPath));
    assert.match(path.basename(file.temporaryPath), new RegExp(`^\\.one\\.bin\\.${job.id.slice(0, 8)}\\.mdpart$`));
    assert.equal(file.transferred, true);
    assert.equal(file.completed, false);
    assert.deepEqual(job.getProgress(), { bytesTotal: small.length, bytesTransferred: small.length, filesTotal: 1, filesTransferred: 1, bytesFromCache: 0 });
    assert.ok(job.getTimes().transferCompletion instanceof Date);
    assert.equal(await job.complete(), 'S_OK');
    assert.equal(job.state, 'ACKNOWLEDGED');
    assert.equal(sha256Hex(fs.readFileSync(dest)), sha256Hex(small));
    assert.ok(!fs.existsSync(file.temporaryPath));
    assert.equal(job.getFiles()[0].completed, true);
  });

  it('final jobs refuse every state-changing call with DO_E_INVALID_STATE, and getters keep working', async () => {
    const acknowledged = await engine.createJob({ displayName: 'nightly.iso' });
    await acknowledged.complete();
    assert.equal(acknowledged.state, 'ACKNOWLEDGED');
    const cancelled = await engine.createJob({ displayName: 'cancelled one' });
    await cancelled.cancel();
    assert.equal(cancelled.state, 'CANCELLED');
    for (const job of [acknowledged, cancelled]) {
      const calls: [string, () => Promise<unknown>][] = [
        ['resume', () => job.resume()],
        ['suspend', () => job.suspend()],
        ['complete', () => job.complete()],
        ['cancel', () => job.cancel()],
        ['addFile', () => job.addFile(server.url('/small'), path.join(dir, 'x.bin'))],
        ['addFileSet', () => job.addFileSet([{ remoteUrl: server.url('/small'), localPath: path.join(dir, 'y.bin') }])],
        ['setPriority', () => job.setPriority('HIGH')],
        ['setDisplayName', () => job.setDisplayName('other')],
        ['setMinimumRetryDelay', () => job.setMinimumRetryDelay(60)],
        ['setNoProgressTimeout', () => job.setNoProgressTimeout(60)],
        ['setHttpHeaders', () => job.setHttpHeaders({ 'X-A': 'b' })],
      ];
      for (const [name, call] of calls) {
        const e = await rejects(call(), 'DO_E_INVALID_STATE', 0x80d02013);
        assert.ok(e.message.includes(job.state) && e.message.includes(job.displayName), `${name}: ${e.message}`);
        assert.ok(e.message.includes('0x80D02013'), e.message);
      }
      assert.equal(job.getFiles().length, 0);
      assert.doesNotThrow(() => job.getProgress());
      assert.doesNotThrow(() => job.getTimes());
      assert.equal(job.getError(), undefined);
    }
    const e = await rejects(cancelled.complete(), 'DO_E_INVALID_STATE', 0x80d02013);
    assert.equal(e.message, "Cannot complete job 'cancelled one': it is CANCELLED (DO_E_INVALID_STATE, 0x80D02013).");
  });

  it('final jobs check their state before their arguments: every state-changing call with bad arguments gives DO_E_INVALID_STATE', async () => {
    const acknowledged = await engine.createJob({ displayName: 'done' });
    await acknowledged.complete();
    const cancelled = await engine.createJob({ displayName: 'dropped' });
    await cancelled.cancel();
    for (const job of [acknowledged, cancelled]) {
      const bad = job as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
      const calls: [string, () => Promise<unknown>][] = [
        ['addFile with a relative path', () => job.addFile(server.url('/small'), 'relative.bin')],
        ['addFile with a file: URL', () => job.addFile('file:///etc/passwd', path.join(dir, 'x.bin'))],
        ['addFileSet([])', () => job.addFileSet([])],
        ['addFileSet(not a list)', () => bad.addFileSet.call(job, 'nope')],
        ['addFileSet with a bad entry', () => job.addFileSet([{ remoteUrl: 'ftp://x', localPath: 'y' }])],
        ['setPriority(bad)', () => bad.setPriority.call(job, 'URGENT')],
        ['setDisplayName(empty)', () => job.setDisplayName('')],
        ['setMinimumRetryDelay(-1)', () => job.setMinimumRetryDelay(-1)],
        ['setNoProgressTimeout(NaN)', () => job.setNoProgressTimeout(Number.NaN)],
        ['setHttpHeaders(bad header)', () => job.setHttpHeaders({ 'Bad Name': 'x' })],
        ['setHttpHeaders(engine header)', () => job.setHttpHeaders({ Range: 'bytes=0-' })],
        ['setHttpHeaders(not an object)', () => bad.setHttpHeaders.call(job, null)],
        ['setAutoComplete', () => job.setAutoComplete(true)],
        ['setFilesInFlight(0)', () => job.setFilesInFlight(0)],
      ];
      for (const [name, call] of calls) {
        const e = await call().then(
          () => assert.fail(`${name} on a ${job.state} job succeeded`),
          (err: unknown) => err as DownloadError,
        );
        assert.equal(e.code, 'DO_E_INVALID_STATE', `${name} on a ${job.state} job: ${e.code} ${e.message}`);
        assert.equal(e.hresult, 0x80d02013, name);
      }
    }
  });

  it('final jobs are hidden from enumJobs unless asked for', async () => {
    const a = await engine.createJob({ displayName: 'a' });
    const b = await engine.createJob({ displayName: 'b' });
    await b.cancel();
    assert.deepEqual(engine.enumJobs().map((j) => j.id), [a.id]);
    assert.deepEqual(engine.enumJobs({ includeFinal: true }).map((j) => j.id).sort(), [a.id, b.id].sort());
    assert.equal(engine.getJob(b.id), b);
  });

  it('getJob of an unknown id throws DO_E_JOB_NOT_FOUND', () => {
    assert.throws(() => engine.getJob('00000000-0000-0000-0000-000000000000'), (e: DownloadError) => e.code === 'DO_E_JOB_NOT_FOUND' && e.hresult === 0x80d02003);
  });

  it('suspend from an action state stops the transfer and keeps the bytes; resume continues with a range', async () => {
    const job = await engine.createJob({ displayName: 'pausable' });
    await job.addFile(server.url('/slow'), path.join(dir, 'slow.bin'));
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRING');
    await waitUntil(() => job.getProgress().bytesTransferred > 150_000, 10_000, 'some bytes');
    await job.suspend();
    assert.equal(job.state, 'SUSPENDED');
    const kept = job.getFiles()[0].bytesTransferred;
    assert.ok(kept > 0);
    await job.suspend(); // a no-op when already suspended
    assert.equal(job.state, 'SUSPENDED');
    server.route('/slow', { body: big }); // full speed now
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    const requests = server.requestsFor('/slow');
    assert.equal(requests.length, 2);
    assert.equal(requests[1].range, `bytes=${kept}-`);
    assert.ok(requests[1].ifRange, 'the resume carries If-Range');
    assert.equal(await job.complete(), 'S_OK');
    assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'slow.bin'))), sha256Hex(big));
  });

  it('resume in an action state leaves it unchanged; suspend and resume from TRANSFERRED', async () => {
    const job = await engine.createJob({ displayName: 'idem' });
    await job.addFile(server.url('/slow'), path.join(dir, 'idem.bin'));
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRING');
    await job.resume();
    assert.equal(job.state, 'TRANSFERRING');
    server.route('/slow', { body: big });
    await job.suspend();
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    await job.suspend();
    assert.equal(job.state, 'SUSPENDED');
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    await job.resume();
    assert.equal(job.state, 'TRANSFERRED');
  });

  it('HTTP 404 is fatal: ERROR, onDidFailJob, getError with 0x80190194 and the file; no retry until resumed', async () => {
    const job = await engine.createJob({ displayName: 'broken' });
    await job.addFile(server.url('/missing'), path.join(dir, 'missing.bin'));
    const failed = new Promise<void>((r) => engine.onDidFailJob((j) => j === job && r()));
    await job.resume();
    await failed;
    assert.equal(job.state, 'ERROR');
    assert.equal(job.errorCount, 1);
    const err = job.getError()!;
    assert.equal(err.code, 'HTTP_404');
    assert.equal(err.hresult, 0x80190194);
    assert.equal(err.context, 'REMOTE_FILE');
    assert.equal(err.file?.localPath, path.join(dir, 'missing.bin'));
    assert.match(err.message, /404/);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(server.requestsFor('/missing').length, 1, 'ERROR is not retried by the engine');
    // Fix the cause, then Resume retries at once.
    server.route('/missing', { body: small });
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    assert.equal(job.getError(), undefined);
    assert.equal(job.errorCount, 1);
  });

  it('getError is undefined outside ERROR and TRANSIENT_ERROR', async () => {
    const job = await engine.createJob({ displayName: 'fine' });
    assert.equal(job.getError(), undefined);
  });

  it('HTTP 503 is transient: TRANSIENT_ERROR, retried after the minimum retry delay, errorCount counts each failure', async () => {
    server.route('/flaky', { body: small, status: 503, failTimes: 2 });
    const job = await engine.createJob({ displayName: 'flaky' });
    await job.setMinimumRetryDelay(0);
    await job.addFile(server.url('/flaky'), path.join(dir, 'flaky.bin'));
    const failed: string[] = [];
    engine.onDidFailJob((j) => failed.push(j.id));
    const states: string[] = [];
    engine.onDidChangeJob((j) => j === job && states.push(j.state));
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    assert.ok(states.includes('TRANSIENT_ERROR'));
    assert.equal(job.errorCount, 2);
    assert.equal(server.requestsFor('/flaky').length, 3);
    assert.deepEqual(failed, [], 'transient errors do not fire onDidFailJob');
  });

  it('Retry-After is honoured (bounded) over a shorter minimum retry delay', async () => {
    server.route('/busy', { body: small, status: 503, failTimes: 1, retryAfter: '1' });
    const job = await engine.createJob({ displayName: 'busy' });
    await job.setMinimumRetryDelay(0);
    await job.addFile(server.url('/busy'), path.join(dir, 'busy.bin'));
    await job.resume();
    await waitForState(engine, job, 'TRANSIENT_ERROR');
    assert.equal(job.getError()?.hresult, 0x801901f7);
    const wait = job.retryAt!.getTime() - Date.now();
    assert.ok(wait > 500 && wait <= 1000, `retry in ${wait} ms`);
    await waitForState(engine, job, 'TRANSFERRED', 5_000);
  });

  it(matrix('network', '503 with a huge or malformed Retry-After', 'TRANSIENT_ERROR 0x801901F7; a huge value is bounded (30 s here), garbage is ignored'), async () => {
    const bounded = await DownloadEngine.open({ storeDir: path.join(dir, 's2'), retryDelayFloorSeconds: 0, maxRetryAfterSeconds: 30 });
    try {
      server.route('/huge', { status: 503, retryAfter: '999999999' });
      server.route('/junk', { status: 503, retryAfter: 'soon-ish' });
      const a = await bounded.createJob({ displayName: 'huge' });
      await a.setMinimumRetryDelay(0);
      await a.addFile(server.url('/huge'), path.join(dir, 'huge.bin'));
      const b = await bounded.createJob({ displayName: 'junk' });
      await b.setMinimumRetryDelay(1);
      await b.addFile(server.url('/junk'), path.join(dir, 'junk.bin'));
      await a.resume();
      await b.resume();
      await waitForState(bounded, a, 'TRANSIENT_ERROR');
      await waitForState(bounded, b, 'TRANSIENT_ERROR');
      const waitA = a.retryAt!.getTime() - Date.now();
      assert.ok(waitA > 25_000 && waitA <= 30_000, `bounded to 30 s: ${waitA}`);
      const waitB = b.retryAt!.getTime() - Date.now();
      assert.ok(waitB <= 1_000, `garbage ignored: ${waitB}`);
    } finally {
      await bounded.dispose();
    }
  });

  it('a no-progress timeout of 0 makes a transient error fatal with DO_E_DOWNLOAD_NO_PROGRESS', async () => {
    server.route('/down', { status: 503 });
    const job = await engine.createJob({ displayName: 'no progress' });
    await job.setNoProgressTimeout(0);
    await job.addFile(server.url('/down'), path.join(dir, 'down.bin'));
    await job.resume();
    await waitForState(engine, job, 'ERROR');
    const err = job.getError()!;
    assert.equal(err.code, 'DO_E_DOWNLOAD_NO_PROGRESS');
    assert.equal(err.hresult, 0x80d02002);
    assert.match(err.message, /503/, 'the last error is named');
  });

  it('TRANSIENT_ERROR turns into ERROR once nothing moved for the no-progress timeout', async () => {
    server.route('/down', { status: 503 });
    const job = await engine.createJob({ displayName: 'stuck' });
    await job.setMinimumRetryDelay(0);
    await job.setNoProgressTimeout(1);
    await job.addFile(server.url('/down'), path.join(dir, 'down.bin'));
    await job.resume();
    await waitForState(engine, job, 'ERROR', 5_000);
    assert.equal(job.getError()?.code, 'DO_E_DOWNLOAD_NO_PROGRESS');
    assert.ok(job.errorCount >= 2, `retried before giving up (${job.errorCount})`);
  });

  it('a retry delay longer than the no-progress timeout goes straight to ERROR', async () => {
    server.route('/down', { status: 503 });
    const job = await engine.createJob({ displayName: 'long delay' });
    await job.setMinimumRetryDelay(120);
    await job.setNoProgressTimeout(60);
    await job.addFile(server.url('/down'), path.join(dir, 'down.bin'));
    await job.resume();
    await waitForState(engine, job, 'ERROR');
    assert.equal(job.getError()?.code, 'DO_E_DOWNLOAD_NO_PROGRESS');
  });

  it('resume from TRANSIENT_ERROR retries at once, skipping the delay', async () => {
    server.route('/later', { body: small, status: 503, failTimes: 1 });
    const job = await engine.createJob({ displayName: 'impatient' });
    await job.addFile(server.url('/later'), path.join(dir, 'later.bin'));
    await job.resume();
    await waitForState(engine, job, 'TRANSIENT_ERROR');
    assert.ok(job.retryAt!.getTime() - Date.now() > 500_000, 'default delay is 600 s');
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED', 5_000);
  });

  it('setters: priority, display name, retry delay floor of 5 s, no-progress timeout, headers sent and not stored in the journal', async () => {
    const floor = await DownloadEngine.open({ storeDir: path.join(dir, 'floor') });
    try {
      const j = await floor.createJob({ displayName: 'floor' });
      await j.setMinimumRetryDelay(1);
      assert.equal(j.minimumRetryDelaySeconds, 5);
      assert.equal(j.noProgressTimeoutSeconds, 1_209_600);
    } finally {
      await floor.dispose();
    }
    const job = await engine.createJob({ displayName: 'props', priority: 'LOW', description: 'd' });
    await job.setPriority('HIGH');
    assert.equal(job.priority, 'HIGH');
    await assert.rejects(job.setPriority('URGENT' as never), (e: DownloadError) => e.code === 'E_INVALIDARG');
    await job.setDisplayName('renamed');
    assert.equal(job.displayName, 'renamed');
    await assert.rejects(job.setDisplayName(''), (e: DownloadError) => e.code === 'E_INVALIDARG');
    await assert.rejects(job.setDisplayName('x'.repeat(257)), (e: DownloadError) => e.code === 'E_INVALIDARG' && /257/.test(e.message));
    await assert.rejects(job.setMinimumRetryDelay(-1), (e: DownloadError) => e.code === 'E_INVALIDARG');
    await job.setHttpHeaders({ Authorization: 'Bearer secret-token', 'X-Trace': '1' });
    await assert.rejects(job.setHttpHeaders({ 'X-Evil': 'a\r\nInjected: yes' }), (e: DownloadError) => e.code === 'E_INVALIDARG' && /injection/.test(e.message));
    await assert.rejects(job.setHttpHeaders({ Range: 'bytes=0-' }), (e: DownloadError) => e.code === 'E_INVALIDARG');
    await job.addFile(server.url('/small'), path.join(dir, 'h.bin'));
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    const req = server.requestsFor('/small')[0];
    assert.equal(req.headers['authorization'], 'Bearer secret-token');
    assert.equal(req.headers['x-trace'], '1');
    assert.equal(req.headers['accept-encoding'], undefined, 'no Accept-Encoding');
    const journal = JSON.stringify(readStoredJobs(path.join(dir, 'store')));
    assert.ok(!journal.includes('secret-token'), 'header values stay out of the journal');
    assert.ok(journal.includes('Authorization'), 'header names are kept');
  });

  it('upload jobs: one file only (BG_E_TOO_MANY_FILES), complete() only when TRANSFERRED (the protocol itself: upload.test.ts)', async () => {
    const job = await engine.createJob({ displayName: 'up', type: 'upload' });
    const src = path.join(dir, 'src.bin');
    fs.writeFileSync(src, 'hello');
    await job.addFile('http://127.0.0.1:1/upload', src);
    await rejects(job.addFile('http://127.0.0.1:1/upload2', path.join(dir, 'other.bin')), 'BG_E_TOO_MANY_FILES', 0x8020001c);
    const e = await rejects(job.complete(), 'DO_E_INVALID_STATE', 0x80d02013);
    assert.match(e.message, /SUSPENDED/);
    await job.cancel();
    assert.equal(job.state, 'CANCELLED');
  });

  it('events: onDidTransferFile per file in order, onDidChangeJob throttled to a few per second per job', async () => {
    server.route('/a', { body: small });
    server.route('/b', { body: big, throttleBytesPerSec: 2_000_000 });
    const slow = await DownloadEngine.open({ storeDir: path.join(dir, 'ev'), progressThrottleMs: 250 });
    try {
      const job = await slow.createJob({ displayName: 'events' });
      await job.addFileSet([
        { remoteUrl: server.url('/a'), localPath: path.join(dir, 'a.bin') },
        { remoteUrl: server.url('/b'), localPath: path.join(dir, 'b.bin') },
      ]);
      const files: string[] = [];
      slow.onDidTransferFile(({ job: j, file }) => j === job && files.push(path.basename(file.localPath)));
      let changes = 0;
      slow.onDidChangeJob((j) => j === job && changes++);
      const started = Date.now();
      await job.resume();
      await waitForState(slow, job, 'TRANSFERRED');
      const seconds = (Date.now() - started) / 1000;
      assert.deepEqual(files, ['a.bin', 'b.bin']);
      assert.ok(changes <= 4 * seconds + 12, `${changes} change events in ${seconds.toFixed(1)} s`);
      assert.ok(changes >= 3);
    } finally {
      await slow.dispose();
    }
  });

  it('modification time moves on changes and progress', async () => {
    const job = await engine.createJob({ displayName: 'times' });
    const t0 = job.getTimes().modification.getTime();
    await new Promise((r) => setTimeout(r, 15));
    await job.setDisplayName('times2');
    assert.ok(job.getTimes().modification.getTime() > t0);
    assert.equal(job.getTimes().creation.getTime(), t0);
  });

  it('jobs and their state survive closing and re-opening the engine', async () => {
    const job = await engine.createJob({ displayName: 'persisted', priority: 'HIGH', description: 'kept' });
    await job.addFile(server.url('/small'), path.join(dir, 'p.bin'));
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    const id = job.id;
    await engine.dispose();
    engine = await reopen();
    const again: JobImpl = engine.getJob(id);
    assert.equal(again.state, 'TRANSFERRED');
    assert.equal(again.displayName, 'persisted');
    assert.equal(again.priority, 'HIGH');
    assert.equal(again.description, 'kept');
    assert.equal(again.getFiles()[0].transferred, true);
    assert.equal(await again.complete(), 'S_OK');
    assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'p.bin'))), sha256Hex(small));
  });
});
