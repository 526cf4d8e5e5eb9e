// Complete, Cancel and retention when the disk does not cooperate or the folder is hostile (issues 14 and 15):
// what counts as transferred at the call, temporaries that cannot be deleted, the temporary and the
// destination swapped for something else between the transfer and Complete.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DownloadEngine, type DownloadError } from '../../src/engine';
import type { HeaderVault } from '../../src/engine/headerVault';
import { nodeIo, useIo } from '../../src/engine/io';
import { openEngine, useServerFixture, waitForState, waitUntil } from '../support/engineHarness';
import { randomBody, TestServer } from '../support/testServer';

describe('job lifecycle: Complete, Cancel and retention against a hostile disk', () => {
  let server: TestServer;
  let dir: string;
  let engine: DownloadEngine | undefined;
  const body = randomBody(300_000, 41);

  let restoreIo: (() => void) | undefined;
  afterEach(async () => {
    restoreIo?.();
    restoreIo = undefined;
    await engine?.dispose();
    engine = undefined;
  });
  useServerFixture((f) => ({ server, dir } = f));
  beforeEach(() => {
    server.route('/f', { body });
  });

  const dest = (name: string) => path.join(dir, name);

  it('a file that finishes while Complete waits for an earlier call is not kept, and does not count as transferred', async () => {
    // A header vault whose write waits for the test: setHttpHeaders holds the job's lock meanwhile.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const vault: HeaderVault = { get: () => Promise.resolve(undefined), set: () => gate, delete: () => Promise.resolve() };
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

  async function rejectsWith(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
    await assert.rejects(p, (e: DownloadError) => {
      assert.equal(e.code, code, e.message);
      assert.match(e.message, re);
      return true;
    });
  }

  it('a temporary swapped for a symbolic link (or another file) after the transfer is not put in place: Complete refuses, the job stays TRANSFERRED', async () => {
    const job = await transferred('report.bin');
    const tmp = job.getFiles()[0].temporaryPath;
    const secret = dest('secret.txt');
    fs.writeFileSync(secret, 'the secret');
    fs.renameSync(tmp, dest('moved-away'));
    fs.symlinkSync(secret, tmp);
    await rejectsWith(job.complete(), 'BG_E_LOCAL_FILE_CHANGED', /report\.bin.*replaced by a symbolic link/);
    assert.equal(job.state, 'TRANSFERRED');
    assert.equal(fs.lstatSync(dest('report.bin'), { throwIfNoEntry: false }), undefined, 'no destination, and no link to the secret');
    // The same bytes in another file are not the file that was verified either.
    fs.rmSync(tmp);
    fs.copyFileSync(dest('moved-away'), tmp);
    await rejectsWith(job.complete(), 'BG_E_LOCAL_FILE_CHANGED', /replaced by another file/);
    assert.equal(fs.lstatSync(dest('report.bin'), { throwIfNoEntry: false }), undefined);
    // Its own file back: placed.
    fs.rmSync(tmp);
    fs.renameSync(dest('moved-away'), tmp);
    assert.equal(await job.complete(), 'S_OK');
    assert.equal(fs.readFileSync(dest('report.bin')).length, body.length);
  });

  it('only a regular file is replaced: a FIFO or a link to /dev/null at the destination is refused at addFile and again at Complete', async () => {
    engine = await openEngine(path.join(dir, 'store'));
    const fifo = dest('pipe');
    execFileSync('mkfifo', [fifo]);
    fs.symlinkSync('/dev/null', dest('null'));
    const job = await engine.createJob({ displayName: 'replace' });
    await rejectsWith(job.addFile(server.url('/f'), fifo, { replaceExisting: true }), 'E_INVALIDARG', /pipe' is a device, FIFO or socket/);
    await rejectsWith(job.addFile(server.url('/f'), dest('null'), { replaceExisting: true }), 'E_INVALIDARG', /null' is a symbolic link/);
    await rejectsWith(job.addFileSet([dest('a'), fifo].map((p) => ({ remoteUrl: server.url('/f'), localPath: p }))), 'E_INVALIDARG', /pipe' is a device, FIFO or socket/);
    // Put there after addFile: Complete leaves them alone.
    await job.addFile(server.url('/f'), dest('later.bin'), { replaceExisting: true });
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    execFileSync('mkfifo', [dest('later.bin')]);
    await rejectsWith(job.complete(), 'E_INVALIDARG', /later\.bin' is a device, FIFO or socket/);
    assert.equal(job.state, 'TRANSFERRED');
    assert.ok(fs.lstatSync(dest('later.bin')).isFIFO(), 'the FIFO is still there');
    fs.rmSync(dest('later.bin'));
    fs.symlinkSync('/dev/null', dest('later.bin'));
    await rejectsWith(job.complete(), 'E_INVALIDARG', /later\.bin' is a symbolic link/);
    assert.ok(fs.lstatSync(dest('later.bin')).isSymbolicLink(), 'the link is still there');
    assert.ok(fs.statSync('/dev/null').isCharacterDevice());
    // A regular file is replaced, as asked.
    fs.rmSync(dest('later.bin'));
    fs.writeFileSync(dest('later.bin'), 'old');
    assert.equal(await job.complete(), 'S_OK');
    assert.equal(fs.readFileSync(dest('later.bin')).length, body.length);
  });

  describe('allowed roots are checked again when the engine writes, not only at addFile', () => {
    const inside = () => path.join(dir, 'inside');
    const outside = () => path.join(dir, 'outside');
    beforeEach(() => {
      fs.mkdirSync(path.join(inside(), 'sub'), { recursive: true });
      fs.mkdirSync(outside());
    });
    /** Replaces inside/sub by a symbolic link to the outside folder (its contents moved there). */
    function escape(): void {
      for (const n of fs.readdirSync(path.join(inside(), 'sub'))) {
        fs.renameSync(path.join(inside(), 'sub', n), path.join(outside(), n));
      }
      fs.rmdirSync(path.join(inside(), 'sub'));
      fs.symlinkSync(outside(), path.join(inside(), 'sub'));
    }

    it('a folder swapped for a link to outside before the transfer starts: the transfer fails with E_INVALIDARG, nothing written outside', async () => {
      engine = await openEngine(path.join(dir, 'store'), { allowedRoots: [inside()] });
      const job = await engine.createJob({ displayName: 'escape' });
      await job.addFile(server.url('/f'), path.join(inside(), 'sub', 'x.bin'));
      escape();
      await job.resume();
      await waitForState(engine, job, ['ERROR', 'TRANSFERRED']);
      assert.equal(job.state, 'ERROR');
      assert.equal(job.getError()?.code, 'E_INVALIDARG');
      assert.match(job.getError()!.message, /outside the allowed folders/);
      assert.deepEqual(fs.readdirSync(outside()), [], 'nothing written outside');
    });

    it('a folder swapped for a link to outside after the transfer: Complete refuses with E_INVALIDARG, no destination outside', async () => {
      engine = await openEngine(path.join(dir, 'store'), { allowedRoots: [inside()] });
      const job = await engine.createJob({ displayName: 'escape later' });
      await job.addFile(server.url('/f'), path.join(inside(), 'sub', 'y.bin'));
      await job.resume();
      await waitForState(engine, job, 'TRANSFERRED');
      escape();
      await rejectsWith(job.complete(), 'E_INVALIDARG', /outside the allowed folders/);
      assert.equal(job.state, 'TRANSFERRED');
      assert.ok(!fs.existsSync(path.join(outside(), 'y.bin')), 'not placed outside');
    });
  });
});
