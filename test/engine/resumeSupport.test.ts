// Whether a file's server can continue it after a pause (JobFile.serverCannotResume): the UI warns before pausing
// a download that would start again from byte 0.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import type { DownloadEngine } from '../../src/engine';
import { useEngineFixture, waitForState } from '../support/engineHarness';
import { randomBody, type TestServer } from '../support/testServer';

describe('resume support of a file', () => {
  let server: TestServer;
  let dir: string;
  let engine: DownloadEngine;
  useEngineFixture((f) => ({ server, dir, engine } = f));

  async function download(route: string): Promise<boolean | undefined> {
    const job = await engine.createJob({ displayName: route });
    await job.addFile(server.url(route), path.join(dir, path.basename(route)));
    assert.equal(job.getFiles()[0].serverCannotResume, undefined, 'unknown before the server answered');
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    return job.getFiles()[0].serverCannotResume;
  }

  it('is known once the server answered: ranges and a strong validator, or not', async () => {
    server.route('/ranges.bin', { body: randomBody(10_000, 1) });
    server.route('/no-range.bin', { body: randomBody(10_000, 2), ranges: false });
    server.route('/no-validator.bin', { body: randomBody(10_000, 3), etag: null });
    assert.equal(await download('/ranges.bin'), undefined, 'Accept-Ranges: bytes and an ETag: a pause keeps the bytes');
    assert.equal(await download('/no-range.bin'), true, 'no Accept-Ranges');
    assert.equal(await download('/no-validator.bin'), true, 'no ETag nor Last-Modified: nothing to resume against');
  });
});
