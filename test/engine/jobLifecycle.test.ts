// Complete, Cancel and retention when the disk does not cooperate or the folder is hostile (issues 14 and 15):
// what counts as transferred at the call, temporaries that cannot be deleted, the temporary and the
// destination swapped for something else between the transfer and Complete.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DownloadEngine } from '../../src/engine';
import type { HeaderVault } from '../../src/engine/headerVault';
import { nodeIo, useIo } from '../../src/engine/io';
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
  let restoreIo: (() => void) | undefined;
  afterEach(async () => {
    restoreIo?.();
    restoreIo = undefined;
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

  /** From now on the engine cannot delete these paths (as for a file another program holds open, or no permission). */
  function undeletable(...paths: string[]): void {
    restoreIo?.();
    restoreIo = useIo({
      ...nodeIo,
      unlink: async (p) => {
        if (paths.includes(String(p))) {
          throw Object.assign(new Error(`EACCES: permission denied, unlink '${String(p)}'`), { code: 'EACCES' });
        }
        return nodeIo.unlink(p);
      },
    });
  }
  function deletable(): void {
    restoreIo?.();
    restoreIo = undefined;
  }

  async function transferred(name: string, extra: Parameters<typeof openEngine>[1] = {}) {
    engine ??= await openEngine(path.join(dir, 'store'), extra);
    const job = await engine.createJob({ displayName: name });
    await job.addFile(server.url('/f'), dest(name));
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    return job;
  }

  it('cancel() whose temporary cannot be deleted still cancels, answers BG_S_UNABLE_TO_DELETE_FILES, and the file is deleted later', async () => {
    const job = await transferred('stuck.bin');
    const tmp = job.getFiles()[0].temporaryPath;
    undeletable(tmp);
    assert.equal(await job.cancel(), 'BG_S_UNABLE_TO_DELETE_FILES');
    assert.equal(job.state, 'CANCELLED');
    assert.deepEqual(job.leftoverTemporaries, [tmp]);
    assert.ok(fs.existsSync(tmp));
    // Kept across a restart, and deleted at start-up once it can be.
    await engine!.dispose();
    deletable();
    engine = await openEngine(path.join(dir, 'store'));
    assert.ok(!fs.existsSync(tmp), 'deleted at start-up');
    assert.deepEqual(engine.getJob(job.id).leftoverTemporaries, []);
    assert.equal(engine.getJob(job.id).state, 'CANCELLED');
  });

  it('complete() whose dropped or placed temporaries cannot be deleted still completes, answers BG_S_UNABLE_TO_DELETE_FILES, and the hourly sweep deletes them', async () => {
    server.route('/slow', { body, throttleBytesPerSec: 100_000 });
    engine = await openEngine(path.join(dir, 'store'));
    const job = await engine.createJob({ displayName: 'two' });
    await job.addFileSet([
      { remoteUrl: server.url('/f'), localPath: dest('kept.bin') },
      { remoteUrl: server.url('/slow'), localPath: dest('dropped.bin') },
    ]);
    await job.resume();
    await waitUntil(() => job.getFiles()[1].bytesTransferred > 0, 10_000, 'file 2 started');
    await job.suspend();
    const temps = job.getFiles().map((f) => f.temporaryPath);
    assert.ok(temps.every((t) => fs.existsSync(t)));
    undeletable(...temps);
    assert.equal(await job.complete(), 'BG_S_UNABLE_TO_DELETE_FILES');
    assert.equal(job.state, 'ACKNOWLEDGED');
    assert.deepEqual(job.getFiles().map((f) => f.completed), [true, false]);
    assert.equal(fs.readFileSync(dest('kept.bin')).length, body.length);
    assert.deepEqual([...job.leftoverTemporaries].sort(), [...temps].sort());
    deletable();
    await engine.runRetention();
    assert.ok(temps.every((t) => !fs.existsSync(t)), 'deleted by the sweep');
    assert.deepEqual(job.leftoverTemporaries, []);
    assert.equal(fs.readFileSync(dest('kept.bin')).length, body.length, 'the placed file stays');
  });

  it('retention removes a job whose temporary cannot be deleted, but not the engine\'s memory of it: deleted after a restart', async () => {
    let now = Date.now();
    const job = await transferred('old.bin', { now: () => now });
    const tmp = job.getFiles()[0].temporaryPath;
    undeletable(tmp);
    now += 31 * 24 * 3_600_000;
    assert.equal(await engine!.runRetention(), 1);
    assert.throws(() => engine!.getJob(job.id), /no job/);
    assert.ok(fs.existsSync(tmp));
    await engine!.dispose();
    deletable();
    engine = await openEngine(path.join(dir, 'store'), { now: () => now });
    assert.ok(!fs.existsSync(tmp), 'deleted at start-up');
    await engine.dispose();
    const store = JSON.parse(fs.readFileSync(path.join(dir, 'store', 'jobs.json'), 'utf8')) as { orphanTemporaries?: string[] };
    assert.equal(store.orphanTemporaries, undefined, 'and forgotten once deleted');
    engine = undefined;
  });

  it('retention runs on its own while the engine is open (the hourly timer), removing a job once it is older than the retention period', async () => {
    let now = Date.now();
    engine = await openEngine(path.join(dir, 'store'), { now: () => now, retentionIntervalMs: 50 });
    const job = await engine.createJob({ displayName: 'aging' });
    await job.addFile(server.url('/f'), dest('aging.bin'));
    let removed = false;
    engine.onDidRemoveJob((j) => (removed ||= j.id === job.id));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(engine.getJob(job.id), job, 'young jobs stay');
    now += 31 * 24 * 3_600_000;
    await waitUntil(() => removed, 5_000, 'the retention timer to remove the old job');
    assert.equal(job.state, 'CANCELLED');
    assert.throws(() => engine!.getJob(job.id), /no job/);
  });
});
