// A job's progress as the tree reads it never goes back when it is suspended, and a cancelled job keeps the
// share it had reached (its history row says how far it got, not 0 %).
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import type { DownloadEngine } from '../../src/engine';
import { useEngineFixture, waitUntil } from '../support/engineHarness';
import { randomBody, type TestServer } from '../support/testServer';

/** Large enough to be fetched in segments (at least 32 MiB): the case where live and durable bytes differ most. */
const SIZE = 40 * 1024 * 1024;

describe('progress after a stop', () => {
  let server: TestServer;
  let dir: string;
  let engine: DownloadEngine;
  useEngineFixture((f) => ({ server, dir, engine } = f));

  async function running(name: string): Promise<{ job: Awaited<ReturnType<DownloadEngine['createJob']>>; seen: number[] }> {
    server.route(`/${name}`, { body: randomBody(SIZE, 5), throttleBytesPerSec: 4_000_000 });
    const job = await engine.createJob({ displayName: name });
    await job.addFile(server.url(`/${name}`), path.join(dir, name));
    const seen: number[] = [];
    engine.onDidChangeJob((j) => j.id === job.id && seen.push(j.getProgress().bytesTransferred));
    await job.resume();
    await waitUntil(() => job.getProgress().bytesTransferred > 2_000_000);
    return { job, seen };
  }

  it('never goes back on Suspend', async () => {
    const { job, seen } = await running('suspend.bin');
    const before = job.getProgress().bytesTransferred;
    await job.suspend();
    assert.ok(job.getProgress().bytesTransferred >= before, `${job.getProgress().bytesTransferred} < ${before} after Suspend`);
    for (let i = 1; i < seen.length; i++) {
      assert.ok(seen[i] >= seen[i - 1], `went back from ${seen[i - 1]} to ${seen[i]}: ${seen.join(', ')}`);
    }
  });

  it('a cancelled job keeps the bytes it had reached in its progress', async () => {
    const { job } = await running('cancel.bin');
    const before = job.getProgress().bytesTransferred;
    await job.cancel();
    assert.equal(job.state, 'CANCELLED');
    assert.ok(job.getProgress().bytesTransferred >= before, `${job.getProgress().bytesTransferred} < ${before} after Cancel`);
    assert.equal(job.getProgress().bytesTotal, SIZE);
  });
});
