// Jobs survive a reload: the engine is closed and re-opened over the same store in global storage, as a
// window reload does (reloading the window itself would end this test run).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Job } from '../../../src/api/api.d';
import { randomBody, TestServer } from '../../support/testServer';
import { useSuiteFixture, waitFor, waitForState, type TestApi } from './util';

describe('reload', () => {
  let api: TestApi;
  let server: TestServer;
  let dir: string;
  let created: Set<string>;
  const body = randomBody(3_000_000, 13);

  useSuiteFixture((f) => ({ api, server, dir, created } = f));

  it('keeps a suspended job, its bytes and its headers, and resumes with a Range request', async () => {
    server.route('/big.bin', { body, throttleBytesPerSec: 400_000 });
    const job = await api.createJob({ displayName: 'survivor', priority: 'HIGH' });
    created.add(job.id);
    await job.setHttpHeaders({ 'X-Token': 'kept-in-secret-storage' });
    const dest = path.join(dir, 'big.bin');
    await job.addFile(server.url('/big.bin'), dest);
    await job.resume();
    await waitFor(() => job.getFiles()[0].bytesTransferred > 500_000, 'half a megabyte');
    await job.suspend();
    const bytes = job.getFiles()[0].bytesTransferred;
    const temp = job.getFiles()[0].temporaryPath;

    await api._test.reopenEngine();

    const again = api.getJob(job.id);
    assert.equal(again, job, 'the handle follows the job into the new engine (contract: API objects are live views)');
    assert.equal(again.state, 'SUSPENDED');
    assert.equal(again.displayName, 'survivor');
    assert.equal(again.priority, 'HIGH');
    const f = again.getFiles()[0];
    assert.equal(f.localPath, dest);
    assert.ok(f.bytesTransferred > 0, 'bytes survived');
    assert.ok(f.bytesTransferred <= bytes);
    assert.equal(fs.statSync(temp).size, f.bytesTransferred, 'the temporary file matches the journal');
    assert.ok(api._test.provider.getChildren().some((n) => n.id === job.id), 'the tree shows it again');

    const transferred = new Promise<Job>((resolve) => {
      const d = api.onDidTransferJob((j) => {
        if (j.id === job.id) {
          d.dispose();
          resolve(j);
        }
      });
    });
    server.route('/big.bin', { body });
    await again.resume();
    await transferred;
    const last = server.requestsFor('/big.bin').at(-1)!;
    assert.equal(last.range, `bytes=${f.bytesTransferred}-`, 'resumed from the bytes on disk');
    assert.ok(last.ifRange, 'validated with If-Range');
    assert.equal(last.headers['x-token'], 'kept-in-secret-storage', 'headers come back from secret storage');
    assert.equal(await again.complete(), 'S_OK');
    assert.ok(fs.readFileSync(dest).equals(body));
  });

  it('puts a job that was transferring back in the queue and finishes it', async () => {
    server.route('/busy.bin', { body, throttleBytesPerSec: 400_000 });
    const job = await api.createJob({ displayName: 'in flight' });
    created.add(job.id);
    await job.addFile(server.url('/busy.bin'), path.join(dir, 'busy.bin'));
    await job.resume();
    await waitFor(() => job.getFiles()[0].bytesTransferred > 300_000, 'some bytes');
    await api._test.reopenEngine();
    server.route('/busy.bin', { body });
    const again = await waitForState(api, job.id, 'TRANSFERRED', 30_000);
    const ranges = server.requestsFor('/busy.bin').map((r) => r.range);
    assert.equal(ranges[0], undefined);
    assert.match(ranges.at(-1) ?? '', /^bytes=\d+-$/, 'the second request resumed');
    assert.equal(await again.complete(), 'S_OK');
  });
});
