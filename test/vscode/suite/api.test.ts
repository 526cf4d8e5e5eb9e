// The exported API end to end against a local HTTP server started here (127.0.0.1, port 0).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Job, JobFile } from '../../../src/api/api.d';
import { randomBody, TestServer } from '../../support/testServer';
import { useSuiteFixture, waitFor, waitForState, type TestApi } from './util';

describe('API', () => {
  let api: TestApi;
  let server: TestServer;
  let dir: string;
  let created: Set<string>;

  useSuiteFixture((f) => ({ api, server, dir, created } = f));

  async function newJob(name: string): Promise<Job> {
    const job = await api.createJob({ displayName: name });
    created.add(job.id);
    return job;
  }

  it('downloads end to end: createJob → addFile → resume → onDidTransferJob → complete S_OK', async () => {
    const body = randomBody(300_000, 11);
    server.route('/e2e.bin', { body });
    const job = await newJob('e2e');
    assert.equal(job.state, 'SUSPENDED');
    assert.match(job.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const dest = path.join(dir, 'e2e.bin');
    await job.addFile(server.url('/e2e.bin'), dest);
    const changes: string[] = [];
    const files: JobFile[] = [];
    const subs = [
      api.onDidChangeJob((j) => j.id === job.id && changes.push(j.state)),
      api.onDidTransferFile((e) => e.job.id === job.id && files.push(e.file)),
    ];
    const transferred = new Promise<Job>((resolve) => {
      const d = api.onDidTransferJob((j) => {
        if (j.id === job.id) {
          d.dispose();
          resolve(j);
        }
      });
    });
    await job.resume();
    const same = await transferred;
    subs.forEach((d) => d.dispose());
    assert.equal(same, job, 'events carry the live job object');
    assert.equal(job.state, 'TRANSFERRED');
    assert.ok(changes.includes('TRANSFERRED'), `changes seen: ${changes.join(',')}`);
    assert.equal(files.length, 1);
    assert.equal(files[0].transferred, true);
    assert.equal(fs.existsSync(dest), false, 'the destination does not exist before complete()');
    assert.equal(fs.statSync(job.getFiles()[0].temporaryPath).size, body.length);
    assert.equal(await job.complete(), 'S_OK');
    assert.equal(job.state, 'ACKNOWLEDGED');
    assert.ok(fs.readFileSync(dest).equals(body), 'the file has the right bytes');
    assert.equal(fs.existsSync(job.getFiles()[0].temporaryPath), false);
    const p = job.getProgress();
    assert.deepEqual(p, { bytesTotal: body.length, bytesTransferred: body.length, filesTotal: 1, filesTransferred: 1, bytesFromCache: 0 });
    assert.ok(job.getTimes().transferCompletion instanceof Date);
    assert.equal(api.enumJobs().some((j) => j.id === job.id), false, 'final jobs are hidden by default');
    assert.equal(api.enumJobs({ includeFinal: true }).some((j) => j.id === job.id), true);
    assert.equal(api.getJob(job.id), job);
  });

  it("keeps only files transferred before complete(): 'BG_S_PARTIAL_COMPLETE'", async () => {
    const a = randomBody(20_000, 1);
    const b = randomBody(30_000, 2);
    server.route('/p1', { body: a });
    server.route('/p2', { body: b });
    server.route('/p3', { body: randomBody(2_000_000, 3), throttleBytesPerSec: 100_000 });
    const job = await newJob('partial');
    await job.addFileSet([
      { remoteUrl: server.url('/p1'), localPath: path.join(dir, 'one.bin') },
      { remoteUrl: server.url('/p2'), localPath: path.join(dir, 'two.bin') },
      { remoteUrl: server.url('/p3'), localPath: path.join(dir, 'three.bin') },
    ]);
    await job.resume();
    await waitFor(() => job.getFiles()[1].transferred && job.getFiles()[2].bytesTransferred > 0, 'files 1 and 2 transferred, 3 under way');
    const temp3 = job.getFiles()[2].temporaryPath;
    assert.equal(await job.complete(), 'BG_S_PARTIAL_COMPLETE');
    assert.equal(job.state, 'ACKNOWLEDGED');
    assert.ok(fs.readFileSync(path.join(dir, 'one.bin')).equals(a));
    assert.ok(fs.readFileSync(path.join(dir, 'two.bin')).equals(b));
    assert.equal(fs.existsSync(path.join(dir, 'three.bin')), false);
    assert.equal(fs.existsSync(temp3), false, 'the dropped file left no temporary');
    assert.deepEqual(
      job.getFiles().map((f) => f.completed),
      [true, true, false],
    );
  });

  it('cancel() deletes the temporary files and never creates the destination', async () => {
    server.route('/slow', { body: randomBody(3_000_000, 4), throttleBytesPerSec: 200_000 });
    const job = await newJob('to cancel');
    const dest = path.join(dir, 'slow.bin');
    await job.addFile(server.url('/slow'), dest);
    await job.resume();
    const temp = job.getFiles()[0].temporaryPath;
    await waitFor(() => job.getFiles()[0].bytesTransferred > 0 && fs.existsSync(temp), 'bytes on disk');
    assert.equal(path.dirname(temp), dir, 'the temporary file is in the destination folder');
    assert.ok(path.basename(temp).startsWith('.slow.bin.'), path.basename(temp));
    await job.cancel();
    assert.equal(job.state, 'CANCELLED');
    assert.equal(fs.existsSync(temp), false);
    assert.equal(fs.existsSync(dest), false);
  });

  it('fails state-changing calls on final jobs with DO_E_INVALID_STATE (0x80D02013); getters still work', async () => {
    server.route('/small', { body: Buffer.from('hello') });
    const job = await newJob('final one');
    await job.addFile(server.url('/small'), path.join(dir, 'small.txt'));
    await job.cancel();
    const calls: [string, () => Promise<unknown>][] = [
      ['complete', () => job.complete()],
      ['cancel', () => job.cancel()],
      ['resume', () => job.resume()],
      ['suspend', () => job.suspend()],
      ['addFile', () => job.addFile(server.url('/small'), path.join(dir, 'other.txt'))],
      ['setPriority', () => job.setPriority('HIGH')],
      ['setDisplayName', () => job.setDisplayName('x')],
      ['setHttpHeaders', () => job.setHttpHeaders({ 'X-A': 'b' })],
    ];
    for (const [name, call] of calls) {
      await assert.rejects(call(), (e: Error & { code?: string; hresult?: number }) => {
        assert.ok(e instanceof Error, `${name}: not an Error`);
        assert.equal(e.code, 'DO_E_INVALID_STATE', name);
        assert.equal(e.hresult, 0x80d02013, name);
        assert.match(e.message, /CANCELLED/, name);
        return true;
      });
    }
    assert.equal(job.state, 'CANCELLED');
    assert.equal(job.getFiles().length, 1);
    assert.equal(job.getError(), undefined);
  });

  it('reports unknown ids, empty jobs and bad arguments with their codes', async () => {
    assert.throws(() => api.getJob('00000000-0000-0000-0000-000000000000'), { code: 'DO_E_JOB_NOT_FOUND', hresult: 0x80d02003 });
    const job = await newJob('empty');
    await assert.rejects(job.resume(), { code: 'DO_E_JOB_EMPTY', hresult: 0x80d02004 });
    await assert.rejects(job.addFile('ftp://127.0.0.1/x', path.join(dir, 'x')), { code: 'E_INVALIDARG', hresult: 0x80070057 });
    await assert.rejects(job.addFile(server.url('/x'), 'relative/x'), { code: 'E_INVALIDARG', hresult: 0x80070057 });
  });

  it('fires onDidFailJob once when a job enters ERROR (404 → HTTP_404, 0x80190194)', async () => {
    server.route('/missing', { status: 404 });
    const job = await newJob('missing');
    await job.addFile(server.url('/missing'), path.join(dir, 'missing.bin'));
    let fails = 0;
    const d = api.onDidFailJob((j) => {
      if (j.id === job.id) {
        fails++;
      }
    });
    await job.resume();
    await waitForState(api, job.id, 'ERROR');
    await new Promise((r) => setTimeout(r, 300));
    d.dispose();
    assert.equal(fails, 1);
    const err = job.getError();
    assert.ok(err);
    assert.equal(err.code, 'HTTP_404');
    assert.equal(err.hresult, 0x80190194);
    assert.equal(err.file?.remoteUrl, server.url('/missing'));
  });

  it('replaces an existing destination only when asked to (the save dialog confirmed it)', async () => {
    server.route('/new.txt', { body: Buffer.from('new content') });
    const kept = path.join(dir, 'kept.txt');
    const replaced = path.join(dir, 'replaced.txt');
    fs.writeFileSync(kept, 'old');
    fs.writeFileSync(replaced, 'old');
    const a = await newJob('no replace');
    await a.addFile(server.url('/new.txt'), kept);
    const b = api._test.engine.getJob((await newJob('replace')).id);
    await b.addFile(server.url('/new.txt'), replaced, { replaceExisting: true });
    await Promise.all([a.resume(), b.resume()]);
    await waitForState(api, a.id, 'TRANSFERRED');
    await waitForState(api, b.id, 'TRANSFERRED');
    await assert.rejects(a.complete(), { code: 'EEXIST' });
    assert.equal(a.state, 'TRANSFERRED', 'a failed rename leaves the job TRANSFERRED');
    assert.equal(fs.readFileSync(kept, 'utf8'), 'old');
    assert.equal(await b.complete(), 'S_OK');
    assert.equal(fs.readFileSync(replaced, 'utf8'), 'new content');
  });

  it('keeps HTTP headers out of the job store and sends them', async () => {
    server.route('/auth', { body: Buffer.from('secret stuff') });
    const job = await newJob('with headers');
    await job.setHttpHeaders({ Authorization: 'Bearer very-secret-token-123' });
    await job.addFile(server.url('/auth'), path.join(dir, 'auth.txt'));
    await job.resume();
    await waitForState(api, job.id, 'TRANSFERRED');
    const sent = server.requestsFor('/auth').at(-1);
    assert.equal(sent?.headers.authorization, 'Bearer very-secret-token-123');
    const store = fs.readdirSync(api._test.storeDir).map((f) => {
      const p = path.join(api._test.storeDir, f);
      return fs.statSync(p).isFile() ? fs.readFileSync(p, 'utf8') : '';
    });
    assert.ok(store.join('').includes(job.id), 'the store holds the job');
    assert.ok(!store.join('').includes('very-secret-token-123'), 'the header value is not in the store folder');
  });
});
