// Changing a file's URL (§8, BITS SetRemoteName / ReplaceRemotePrefix): the bytes on disk are kept and validated.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DownloadEngine, JobImpl } from '../../src/engine';
import { useEngineFixture, waitForState, waitUntil } from '../support/engineHarness';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';

describe('changing a URL', () => {
  let server: TestServer;
  let dir: string;
  let engine: DownloadEngine;
  const body = randomBody(1_000_000, 81);
  useEngineFixture((f) => ({ server, dir, engine } = f));

  async function newJob(urls: string[], retryDelay = 0): Promise<JobImpl> {
    const job = await engine.createJob({ displayName: 'j' });
    await job.setMinimumRetryDelay(retryDelay);
    await job.addFileSet(urls.map((u, i) => ({ remoteUrl: u, localPath: path.join(dir, `f${i}.bin`) })));
    return job;
  }

  it('a job in ERROR because its signed URL expired (403) goes on from a fresh URL, keeping its bytes', async () => {
    server.route('/signed-a', { body, resetAfterBytes: 400_000, resetTimes: 1 });
    const job = await newJob([server.url('/signed-a')], 600);
    await job.resume();
    await waitForState(engine, job, 'TRANSIENT_ERROR');
    const kept = job.record.files[0].durableBytes;
    assert.ok(kept > 0, 'bytes on disk before the URL expired');
    server.route('/signed-a', { body, status: 403 });
    await job.resume();
    await waitForState(engine, job, 'ERROR');
    assert.equal(job.getError()?.code, 'HTTP_403');

    server.route('/signed-b', { body });
    await job.setRemoteUrl(0, server.url('/signed-b'));
    assert.equal(job.getFiles()[0].remoteUrl, server.url('/signed-b'));
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    const reqs = server.requestsFor('/signed-b');
    assert.equal(reqs.length, 1);
    assert.equal(reqs[0].range, `bytes=${kept}-`, 'the new URL was asked only for the bytes not on disk');
    assert.ok(reqs[0].ifRange, 'behind If-Range: the bytes are kept only if the entity is the same');
    assert.equal(reqs[0].status, 206);
    assert.equal(await job.complete(), 'S_OK');
    assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'f0.bin'))), sha256Hex(body));
  });

  it('a new URL that serves another entity starts the file again from 0', async () => {
    server.route('/v1', { body, resetAfterBytes: 400_000, resetTimes: 1 });
    const job = await newJob([server.url('/v1')], 600);
    await job.resume();
    await waitForState(engine, job, 'TRANSIENT_ERROR');
    const other = randomBody(900_000, 82);
    server.route('/v2', { body: other });
    await job.setRemoteUrl(0, server.url('/v2'));
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    await job.complete();
    assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'f0.bin'))), sha256Hex(other));
  });

  it('changing the URL of the file being transferred stops it and goes on from the new URL', async () => {
    server.route('/slow', { body, throttleBytesPerSec: 300_000 });
    server.route('/fast', { body });
    const job = await newJob([server.url('/slow')]);
    await job.resume();
    await waitUntil(() => job.getFiles()[0].bytesTransferred > 100_000 && job.record.files[0].durableBytes > 0, 15_000, 'some bytes');
    await job.setRemoteUrl(0, server.url('/fast'));
    await waitForState(engine, job, 'TRANSFERRED');
    const fast = server.requestsFor('/fast');
    assert.equal(fast.length, 1);
    assert.match(fast[0].range ?? '', /^bytes=[1-9]\d*-$/, 'resumed from the bytes already on disk');
    assert.equal(server.requestsFor('/slow').length, 1);
    await job.complete();
    assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'f0.bin'))), sha256Hex(body));
  });

  it('replaceRemotePrefix moves every untransferred file (and mirror) to the new prefix', async () => {
    server.route('/new/a', { body });
    server.route('/new/b', { body });
    const job = await newJob([server.url('/old/a'), server.url('/old/b'), 'https://elsewhere.example/c']);
    await job.replaceRemotePrefix(server.url('/old/'), server.url('/new/'));
    assert.deepEqual(
      job.getFiles().map((f) => f.remoteUrl),
      [server.url('/new/a'), server.url('/new/b'), 'https://elsewhere.example/c'],
    );
  });

  it('refuses: a final job (DO_E_INVALID_STATE first), a bad URL or index (E_INVALIDARG), a transferred file', async () => {
    server.route('/a', { body });
    const job = await newJob([server.url('/a'), server.url('/a')]);
    await assert.rejects(job.setRemoteUrl(0, 'ftp://example.com/x'), { code: 'E_INVALIDARG' });
    await assert.rejects(job.setRemoteUrl(0, 'not a url'), { code: 'E_INVALIDARG' });
    await assert.rejects(job.setRemoteUrl(2, server.url('/a')), { code: 'E_INVALIDARG' });
    await assert.rejects(job.replaceRemotePrefix('', server.url('/')), { code: 'E_INVALIDARG' });
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    await assert.rejects(job.setRemoteUrl(0, server.url('/b')), { code: 'DO_E_INVALID_STATE' });
    await job.cancel();
    await assert.rejects(job.setRemoteUrl(0, 'ftp://bad'), { code: 'DO_E_INVALID_STATE' });
    await assert.rejects(job.replaceRemotePrefix('', ''), { code: 'DO_E_INVALID_STATE' });
  });
});
