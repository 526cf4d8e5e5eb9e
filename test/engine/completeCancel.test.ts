// Complete and Cancel: partial Complete, rename failure, no write after Complete, races, bad input.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DownloadEngine, type DownloadError } from '../../src/engine';
import { nodeIo, useIo } from '../../src/engine/io';
import { openEngine, useEngineFixture, type EngineFixture, waitForState, waitUntil } from '../support/engineHarness';
import { matrix } from '../support/matrix';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';

describe('complete() and cancel()', () => {
  let server: TestServer;
  let dir: string;
  let engine: DownloadEngine;
  const bodies = [1, 2, 3, 4, 5].map((i) => randomBody(200_000 + i * 1000, 100 + i));

  let reopen: EngineFixture['reopen'];
  useEngineFixture((f) => ({ server, dir, engine, reopen } = f));
  beforeEach(() => {
    bodies.forEach((b, i) => server.route(`/f${i + 1}`, { body: b }));
  });

  const dest = (i: number) => path.join(dir, `file${i}.bin`);

  it('called while file 3 of 5 is transferring, keeps files 1–2 and deletes the rest (BG_S_PARTIAL_COMPLETE), with no write afterwards', async () => {
    server.route('/f3', { body: bodies[2], throttleBytesPerSec: 100_000 });
    const job = await engine.createJob({ displayName: 'five' });
    await job.addFileSet(bodies.map((_, i) => ({ remoteUrl: server.url(`/f${i + 1}`), localPath: dest(i + 1) })));
    await job.resume();
    await waitUntil(() => job.getFiles()[2].bytesTransferred > 20_000, 10_000, 'file 3 in flight');
    const temps = job.getFiles().map((f) => f.temporaryPath);
    assert.equal(await job.complete(), 'BG_S_PARTIAL_COMPLETE');
    assert.equal(job.state, 'ACKNOWLEDGED');
    assert.equal(sha256Hex(fs.readFileSync(dest(1))), sha256Hex(bodies[0]));
    assert.equal(sha256Hex(fs.readFileSync(dest(2))), sha256Hex(bodies[1]));
    for (const i of [3, 4, 5]) {
      assert.ok(!fs.existsSync(dest(i)), `file ${i} not in place`);
    }
    for (const t of temps) {
      assert.ok(!fs.existsSync(t), `temporary ${t} gone`);
    }
    assert.deepEqual(job.getFiles().map((f) => f.completed), [true, true, false, false, false]);
    // No write after complete() returned: the folder stays as it is.
    const before = fs.readdirSync(dir).sort();
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(fs.readdirSync(dir).sort(), before);
    assert.equal(server.requestsFor('/f4').length, 0);
  });

  it('a job cancelled while failing keeps why it failed (for its history, across a restart); one cancelled while running does not', async () => {
    server.route('/gone', { status: 404 });
    const failed = await engine.createJob({ displayName: 'failed then cancelled' });
    await failed.addFile(server.url('/gone'), dest(1));
    await failed.resume();
    await waitForState(engine, failed, 'ERROR');
    await failed.cancel();
    assert.equal(failed.getError(), undefined, 'GetError answers only in ERROR and TRANSIENT_ERROR, as in BITS');
    assert.equal(failed.failureBeforeCancel?.code, 'HTTP_404');

    // A 503 that was retried and got over, then a cancel while transferring: no failure to tell.
    server.route('/f2', { body: bodies[1], status: 503, failTimes: 1, throttleBytesPerSec: 100_000 });
    const recovered = await engine.createJob({ displayName: 'recovered then cancelled' });
    await recovered.setMinimumRetryDelay(0);
    await recovered.addFile(server.url('/f2'), dest(2));
    await recovered.resume();
    await waitUntil(() => recovered.errorCount === 1 && recovered.state === 'TRANSFERRING' && recovered.getFiles()[0].bytesTransferred > 0, 10_000, 'a retried transfer under way');
    await recovered.cancel();
    assert.equal(recovered.failureBeforeCancel, undefined);

    engine = await reopen();
    assert.equal(engine.getJob(failed.id).failureBeforeCancel?.code, 'HTTP_404', 'kept in the store');
    assert.equal(engine.getJob(recovered.id).failureBeforeCancel, undefined);
  });

  it('complete() from SUSPENDED with nothing transferred keeps nothing', async () => {
    const job = await engine.createJob({ displayName: 'nothing' });
    await job.addFile(server.url('/f1'), dest(1));
    assert.equal(await job.complete(), 'BG_S_PARTIAL_COMPLETE');
    assert.ok(!fs.existsSync(dest(1)));
  });

  it('complete() from ERROR keeps the files transferred before the error', async () => {
    server.route('/f2', { status: 404 });
    const job = await engine.createJob({ displayName: 'err' });
    await job.addFileSet([1, 2].map((i) => ({ remoteUrl: server.url(`/f${i}`), localPath: dest(i) })));
    await job.resume();
    await waitForState(engine, job, 'ERROR');
    assert.equal(await job.complete(), 'BG_S_PARTIAL_COMPLETE');
    assert.ok(fs.existsSync(dest(1)));
    assert.ok(!fs.existsSync(dest(2)));
  });

  it(matrix('disk', 'a file with the destination name created by someone else before Complete', 'Complete rejects EEXIST 0x800700B7, job stays TRANSFERRED, that file untouched, earlier files stay in place; Complete again works'), async () => {
    const job = await engine.createJob({ displayName: 'blocked' });
    await job.addFileSet([1, 2, 3].map((i) => ({ remoteUrl: server.url(`/f${i}`), localPath: dest(i) })));
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    // Someone else creates file 2's destination before Complete: it must not be replaced.
    fs.writeFileSync(dest(2), 'precious');
    const err = (await job.complete().then(() => assert.fail('should reject'), (e: unknown) => e)) as DownloadError;
    assert.equal(err.code, 'EEXIST');
    assert.equal(err.hresult, 0x800700b7);
    assert.match(err.message, /file2\.bin/);
    assert.equal(job.state, 'TRANSFERRED');
    assert.ok(fs.existsSync(dest(1)), 'file 1 stays in place');
    assert.equal(fs.readFileSync(dest(2), 'utf8'), 'precious', 'the other file is untouched');
    assert.deepEqual(job.getFiles().map((f) => f.completed), [true, false, false]);
    fs.rmSync(dest(2));
    assert.equal(await job.complete(), 'S_OK');
    assert.equal(sha256Hex(fs.readFileSync(dest(3))), sha256Hex(bodies[2]));
  });

  it('a job that completes itself and finds its destination taken stays TRANSFERRED, says why (kept across a restart) and completes once it is free', async () => {
    server.route('/f1', { body: bodies[0], throttleBytesPerSec: 400_000 });
    const job = await engine.createJob({ displayName: 'self' });
    await job.addFile(server.url('/f1'), dest(1));
    await job.setAutoComplete(true);
    await job.resume();
    await waitUntil(() => job.getFiles()[0].bytesTransferred > 0, 10_000, 'the transfer under way');
    fs.writeFileSync(dest(1), 'precious'); // someone else's file takes the name meanwhile
    await waitUntil(() => job.autoCompleteError !== undefined, 10_000, 'the failure to complete itself');
    assert.equal(job.state, 'TRANSFERRED');
    assert.equal(job.autoCompleteError?.code, 'EEXIST');
    assert.equal(job.autoCompleteError?.hresult, 0x800700b7);
    assert.match(job.autoCompleteError?.message ?? '', /file1\.bin/);
    assert.equal(fs.readFileSync(dest(1), 'utf8'), 'precious', 'the other file is untouched');
    assert.ok(fs.existsSync(job.getFiles()[0].temporaryPath), 'the downloaded bytes are kept for a later Complete');
    await engine.dispose();
    engine = await reopen();
    const again = engine.getJob(job.id);
    assert.equal(again.autoCompleteError?.code, 'EEXIST', 'the reason survives a restart');
    fs.rmSync(dest(1));
    assert.equal(await again.complete(), 'S_OK');
    assert.equal(again.autoCompleteError, undefined);
    assert.equal(sha256Hex(fs.readFileSync(dest(1))), sha256Hex(bodies[0]));
  });

  it('the reason a job could not complete itself is forgotten when it downloads again, and said again if it fails again', async () => {
    const job = await engine.createJob({ displayName: 'again' });
    await job.addFile(server.url('/f1'), dest(1));
    await job.setAutoComplete(true);
    fs.writeFileSync(dest(1), 'precious');
    await job.resume();
    await waitUntil(() => job.autoCompleteError !== undefined, 10_000, 'the first failure to complete itself');
    const temp = job.getFiles()[0].temporaryPath;
    await engine.dispose();
    fs.rmSync(temp); // the downloaded bytes are lost: the restart fetches the file again
    engine = await reopen();
    const again = engine.getJob(job.id);
    assert.notEqual(again.state, 'TRANSFERRED');
    assert.equal(again.autoCompleteError, undefined, 'no stale reason while it downloads again');
    await waitUntil(() => again.autoCompleteError !== undefined, 10_000, 'the second failure to complete itself');
    assert.equal(again.state, 'TRANSFERRED');
    assert.equal(fs.readFileSync(dest(1), 'utf8'), 'precious');
    await again.cancel();
    assert.equal(again.autoCompleteError, undefined, 'nothing to complete any more');
  });

  it('a destination that already is a hard link to its own temporary (an undo that could not remove it) counts as placed', async () => {
    const job = await engine.createJob({ displayName: 'own link' });
    await job.addFileSet([1, 2, 3].map((i) => ({ remoteUrl: server.url(`/f${i}`), localPath: dest(i) })));
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    fs.linkSync(job.getFiles()[1].temporaryPath, dest(2));
    assert.equal(await job.complete(), 'S_OK');
    for (const i of [1, 2, 3]) {
      assert.equal(sha256Hex(fs.readFileSync(dest(i))), sha256Hex(bodies[i - 1]), `file ${i} in place`);
    }
    assert.ok(!fs.existsSync(job.getFiles()[1].temporaryPath));
  });

  it('Complete of many files whose 10th destination is taken: files 1–9 in place, none after it (links made ahead are undone), temporaries kept', async () => {
    const small = Array.from({ length: 40 }, (_, i) => randomBody(1000 + i, 500 + i));
    small.forEach((b, i) => server.route(`/s${i}`, { body: b }));
    const many = (i: number): string => path.join(dir, `many${i}.bin`);
    const job = await engine.createJob({ displayName: 'many' });
    await job.addFileSet(small.map((_, i) => ({ remoteUrl: server.url(`/s${i}`), localPath: many(i) })));
    await job.setFilesInFlight(8);
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    fs.writeFileSync(many(9), 'precious');
    const err = (await job.complete().then(() => assert.fail('should reject'), (e: unknown) => e)) as DownloadError;
    assert.equal(err.code, 'EEXIST');
    assert.match(err.message, /many9\.bin/);
    assert.equal(job.state, 'TRANSFERRED');
    assert.deepEqual(job.getFiles().map((f) => f.completed), small.map((_, i) => i < 9));
    for (let i = 0; i < 40; i++) {
      if (i < 9) {
        assert.equal(sha256Hex(fs.readFileSync(many(i))), sha256Hex(small[i]), `file ${i} in place`);
      } else if (i > 9) {
        assert.ok(!fs.existsSync(many(i)), `file ${i} is not in place`);
        assert.ok(fs.existsSync(job.getFiles()[i].temporaryPath), `file ${i} keeps its temporary`);
      }
    }
    assert.equal(fs.readFileSync(many(9), 'utf8'), 'precious');
    fs.rmSync(many(9));
    assert.equal(await job.complete(), 'S_OK');
    for (let i = 0; i < 40; i++) {
      assert.equal(sha256Hex(fs.readFileSync(many(i))), sha256Hex(small[i]), `file ${i} in place at last`);
    }
  });

  it(matrix('disk', 'destination unrenamable on Complete (read-only folder; as root, a folder in the way)', 'Complete rejects with the OS error, job stays TRANSFERRED; Cancel keeps the files already in place'), async function () {
    if (process.getuid?.() === 0) {
      // root ignores folder permissions; use a destination that is a folder instead (EISDIR / EEXIST).
      const job = await engine.createJob({ displayName: 'locked' });
      await job.addFileSet([1, 2].map((i) => ({ remoteUrl: server.url(`/f${i}`), localPath: dest(i) })));
      await job.resume();
      await waitForState(engine, job, 'TRANSFERRED');
      fs.mkdirSync(dest(2));
      await assert.rejects(job.complete(), (e: DownloadError) => typeof e.code === 'string' && e.hresult > 0x80000000);
      assert.equal(job.state, 'TRANSFERRED');
      const temp2 = job.getFiles()[1].temporaryPath;
      await job.cancel();
      assert.equal(job.state, 'CANCELLED');
      assert.ok(fs.existsSync(dest(1)), 'cancel never deletes a destination complete() put in place');
      assert.ok(!fs.existsSync(temp2));
      return;
    }
    const job = await engine.createJob({ displayName: 'locked' });
    await job.addFile(server.url('/f1'), dest(1));
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    fs.chmodSync(dir, 0o555);
    await assert.rejects(job.complete(), (e: DownloadError) => e.code === 'EACCES' && e.hresult === 0x80070005);
    assert.equal(job.state, 'TRANSFERRED');
  });

  it('cancel() stops the transfer, deletes every temporary (finished or partial) and leaves no destination', async () => {
    server.route('/f2', { body: bodies[1], throttleBytesPerSec: 100_000 });
    const job = await engine.createJob({ displayName: 'cancel me' });
    await job.addFileSet([1, 2].map((i) => ({ remoteUrl: server.url(`/f${i}`), localPath: dest(i) })));
    await job.resume();
    await waitUntil(() => job.getFiles()[1].bytesTransferred > 10_000, 10_000, 'file 2 in flight');
    await job.cancel();
    assert.equal(job.state, 'CANCELLED');
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n !== 'store'), []);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n !== 'store'), [], 'nothing written after cancel()');
  });

  it(matrix('concurrency', 'Complete and Cancel racing on the same job', 'one wins (ACKNOWLEDGED, file in place), the other rejects DO_E_INVALID_STATE'), async () => {
    const job = await engine.createJob({ displayName: 'race' });
    await job.addFile(server.url('/f1'), dest(1));
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    const [c, x] = await Promise.allSettled([job.complete(), job.cancel()]);
    assert.equal(c.status, 'fulfilled');
    assert.equal(x.status, 'rejected');
    assert.equal((x.reason as DownloadError).code, 'DO_E_INVALID_STATE');
    assert.equal(job.state, 'ACKNOWLEDGED');
    assert.ok(fs.existsSync(dest(1)));
  });

  it('files added to a TRANSFERRED job transfer after resume', async () => {
    const job = await engine.createJob({ displayName: 'more' });
    await job.addFile(server.url('/f1'), dest(1));
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    await job.addFile(server.url('/f2'), dest(2));
    assert.equal(job.state, 'TRANSFERRED');
    await job.resume();
    await waitUntil(() => job.getFiles()[1].transferred, 10_000, 'file 2');
    await waitForState(engine, job, 'TRANSFERRED');
    assert.equal(await job.complete(), 'S_OK');
    assert.ok(fs.existsSync(dest(2)));
  });

  describe('bad input is refused at add time, and nothing is half-added', () => {
    async function refused(localPath: string, url: string, re: RegExp, code = 'E_INVALIDARG'): Promise<void> {
      const job = await engine.createJob({ displayName: 'bad' });
      await assert.rejects(job.addFile(url, localPath), (e: DownloadError) => {
        assert.equal(e.code, code, e.message);
        assert.match(e.message, re);
        return true;
      });
      assert.equal(job.getFiles().length, 0);
    }

    it(matrix('hostile input', 'URLs: file:, data:, javascript:, ftp:, garbage, CR/LF, 10,000 characters, empty', 'E_INVALIDARG at add time, nothing added'), async () => {
      for (const u of ['file:///etc/passwd', 'data:text/plain,hi', 'javascript:alert(1)', 'ftp://x/y']) {
        await refused(dest(1), u, /scheme/);
      }
      await refused(dest(1), 'not a url', /not a valid URL/);
      await refused(dest(1), 'http://x/\r\nHost: evil', /control character/);
      await refused(dest(1), 'http://example.com/' + 'a'.repeat(10_000), /10019 characters/);
      await refused(dest(1), '', /empty/);
    });

    it(matrix('hostile input', 'local paths: relative, with .., NUL bytes, a folder, names reserved on Windows (CON, nul.txt), a missing folder, a symlink', 'E_INVALIDARG (ENOENT for the missing folder), nothing added'), async () => {
      const url = server.url('/f1');
      await refused('relative/file.bin', url, /relative/);
      await refused(dir + '/../x/file.bin', url, /not normalised/);
      await refused(dir + '/a\0b', url, /NUL/);
      await refused(dir, url, /existing folder/);
      await refused(path.join(dir, 'CON'), url, /not portable/);
      await refused(path.join(dir, 'nul.txt'), url, /not portable/);
      await refused(path.join(dir, 'no-such-folder', 'f.bin'), url, /does not exist/, 'ENOENT');
      fs.symlinkSync('/etc/hostname', path.join(dir, 'link'));
      await refused(path.join(dir, 'link'), url, /symbolic link/);
    });

    it('a set of 300 files into one folder (checked from one listing of it) still refuses a folder or a symlink among the destinations, naming the first', async () => {
      fs.mkdirSync(path.join(dir, 'f150.bin'));
      fs.symlinkSync('/etc/hostname', path.join(dir, 'f200.bin'));
      fs.writeFileSync(path.join(dir, 'f100.bin'), 'an existing file is not refused at add time');
      const set = (from: number): { remoteUrl: string; localPath: string }[] =>
        Array.from({ length: 300 }, (_, i) => ({ remoteUrl: server.url('/f1'), localPath: path.join(dir, `f${from + i}.bin`) }));
      const job = await engine.createJob({ displayName: 'set' });
      await assert.rejects(job.addFileSet(set(0)), (e: DownloadError) => {
        assert.equal(e.code, 'E_INVALIDARG');
        assert.match(e.message, /f150\.bin' is an existing folder/);
        return true;
      });
      await assert.rejects(job.addFileSet(set(151)), /f200\.bin' is a symbolic link/);
      assert.equal(job.getFiles().length, 0);
      await job.addFileSet(set(201));
      assert.equal(job.getFiles().length, 300);
    });

    it(matrix('hostile input', 'symlink pointing outside the chosen folder', 'refused (outside the allowed folders); a path inside is accepted'), async () => {
      const roots = await openEngine(path.join(dir, 's2'), { allowedRoots: [path.join(dir, 'inside')] });
      try {
        fs.mkdirSync(path.join(dir, 'inside'));
        fs.mkdirSync(path.join(dir, 'outside'));
        fs.symlinkSync(path.join(dir, 'outside'), path.join(dir, 'inside', 'escape'));
        const job = await roots.createJob({ displayName: 'roots' });
        await assert.rejects(job.addFile(server.url('/f1'), path.join(dir, 'inside', 'escape', 'x.bin')), /outside the allowed folders/);
        await job.addFile(server.url('/f1'), path.join(dir, 'inside', 'ok.bin'));
        assert.equal(job.getFiles().length, 1);
      } finally {
        await roots.dispose();
      }
    });

    it(matrix('disk', 'read-only folder at add time', 'addFile rejects EACCES/EROFS, nothing added'), async () => {
      const ro = path.join(dir, 'ro');
      fs.mkdirSync(ro, { mode: 0o555 });
      let unmount = (): void => undefined;
      if (process.getuid?.() === 0) {
        // root ignores permission bits: a read-only tmpfs makes the folder unwritable for root too.
        try {
          execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', ro], { stdio: 'ignore' });
          unmount = () => execFileSync('umount', [ro], { stdio: 'ignore' });
        } catch {
          // No mounting allowed (a container): the engine's disk says what a read-only file system would.
          const readOnly = (p: fs.PathLike, write: boolean): boolean => write && path.resolve(String(p)).startsWith(ro);
          unmount = useIo({
            ...nodeIo,
            access: (p, mode) => (readOnly(p, ((mode ?? 0) & fs.constants.W_OK) !== 0) ? Promise.reject(Object.assign(new Error(`EROFS: read-only file system, access '${String(p)}'`), { code: 'EROFS' })) : nodeIo.access(p, mode)),
          });
        }
      }
      try {
        const job = await engine.createJob({ displayName: 'ro' });
        await assert.rejects(job.addFile(server.url('/f1'), path.join(ro, 'f.bin')), (e: DownloadError) => {
          assert.ok(e.code === 'EACCES' || e.code === 'EROFS', e.code);
          assert.match(e.message, /cannot be written/);
          return true;
        });
        assert.equal(job.getFiles().length, 0);
      } finally {
        unmount();
      }
    });

    it('two files with the same destination in active jobs, within a set or across jobs', async () => {
      const a = await engine.createJob({ displayName: 'a' });
      await a.addFile(server.url('/f1'), dest(1));
      await refused(dest(1), server.url('/f2'), /already the destination/);
      const b = await engine.createJob({ displayName: 'b' });
      await assert.rejects(
        b.addFileSet([
          { remoteUrl: server.url('/f2'), localPath: dest(2) },
          { remoteUrl: server.url('/f3'), localPath: dest(2) },
        ]),
        /already the destination/,
      );
      assert.equal(b.getFiles().length, 0, 'all or nothing');
      await a.cancel();
      await b.addFile(server.url('/f1'), dest(1)); // free again once the first job is final
    });

    it('a set with one bad entry adds nothing', async () => {
      const job = await engine.createJob({ displayName: 'set' });
      await assert.rejects(
        job.addFileSet([
          { remoteUrl: server.url('/f1'), localPath: dest(1) },
          { remoteUrl: 'gopher://x', localPath: dest(2) },
        ]),
        /scheme/,
      );
      assert.equal(job.getFiles().length, 0);
      await assert.rejects(job.addFileSet([]), /non-empty/);
      await assert.rejects(job.addFile(server.url('/f1'), dest(1), { sha256: 'abc' }), /not a sha256/);
    });

    it('job names: empty, over 256 characters', async () => {
      await assert.rejects(engine.createJob({ displayName: '' }), (e: DownloadError) => e.code === 'E_INVALIDARG');
      await assert.rejects(engine.createJob({ displayName: 'n'.repeat(257) }), (e: DownloadError) => e.code === 'E_INVALIDARG' && /256/.test(e.message));
      await assert.rejects(engine.createJob({ displayName: 'x', type: 'sideways' as never }), /job type/);
    });
  });
});
