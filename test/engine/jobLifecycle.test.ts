// Complete, Cancel and retention when the disk does not cooperate or the folder is hostile (issues 14 and 15):
// what counts as transferred at the call, temporaries that cannot be deleted, the temporary and the
// destination swapped for something else between the transfer and Complete.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DownloadEngine } from '../../src/engine';
import type { HeaderVault } from '../../src/engine/headerVault';
import { openEngine, tempDir, waitForState, waitUntil } from '../support/engineHarness';
import { randomBody, TestServer } from '../support/testServer';

describe('job lifecycle: Complete, Cancel and retention against a hostile disk', () => {
  let server: TestServer;
  let dir: string;
  let engine: DownloadEngine | undefined;
  const body = randomBody(300_000, 41);

  before(async () => {
    server = await TestServer.start();
  });
  after(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.reset();
    server.route('/f', { body });
    dir = tempDir();
  });
  afterEach(async () => {
    await engine?.dispose();
    engine = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const dest = (name: string) => path.join(dir, name);

  it('a file that finishes while Complete waits for an earlier call is not kept, and does not count as transferred', async () => {
    // A header vault whose write waits for the test: setHttpHeaders holds the job's lock meanwhile.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const vault: HeaderVault = { get: async () => undefined, set: () => gate, delete: async () => undefined };
    engine = await openEngine(path.join(dir, 'store'), { headerVault: vault });
    server.route('/slow', { body, throttleBytesPerSec: 300_000 });
    const job = await engine.createJob({ displayName: 'late' });
    await job.addFile(server.url('/slow'), dest('late.bin'));
    await job.resume();
    await waitUntil(() => job.getFiles()[0].bytesTransferred > 0, 10_000, 'the transfer to start');
    const headers = job.setHttpHeaders({ 'X-Test': '1' });
    const completed = job.complete(); // nothing is transferred at this call
    await waitForState(engine, job, 'TRANSFERRED');
    release();
    await headers;
    assert.equal(await completed, 'BG_S_PARTIAL_COMPLETE');
    assert.equal(job.state, 'ACKNOWLEDGED');
    assert.ok(!fs.existsSync(dest('late.bin')), 'not put in place');
    assert.equal(job.getFiles()[0].transferred, false);
    assert.equal(job.getProgress().filesTransferred, 0);
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n !== 'store'), [], 'its temporary deleted');
  });
});
