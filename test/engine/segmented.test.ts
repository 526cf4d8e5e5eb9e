// Segmented transfers: several ranged connections into one temporary file, guarded by If-Range / If-Match,
// with per-segment durable progress in the store.
import * as assert from 'node:assert/strict';
import { OVERLAP_BYTES } from '../../src/engine/keptBytes';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Agent } from 'undici';
import { fetchFile, type FetchOptions } from '../../src/engine/fetchFile';
import { parseSha256 } from '../../src/engine/integrity';
import type { FileRecord } from '../../src/engine/records';
import { planSegments } from '../../src/engine/segmentPlan';
import type { DownloadEngine, DownloadError, JobImpl } from '../../src/engine';
import { useEngineFixture, waitForState, waitUntil, type EngineFixture } from '../support/engineHarness';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';
import { readStoredJobs } from '../support/storeFiles';

const MiB = 1024 * 1024;
/** A segmented file's write marks (`<job>.<file>` in the store's marks folder): one offset per segment. */
type Marks = { w: number[] };
const CLI = path.resolve(__dirname, '..', '..', '..', 'dist', 'cli.js');

describe('segmented transfers', function () {
  this.timeout(30_000);
  let server: TestServer;
  let dir: string;
  let engine: DownloadEngine;
  const body = randomBody(8 * MiB + 12345, 81);

  let reopen: EngineFixture['reopen'];
  useEngineFixture((f) => ({ server, dir, engine, reopen } = f), { segmentsPerFile: 4, minSegmentBytes: MiB });

  async function start(url: string, o: { sha256?: string; name?: string } = {}): Promise<JobImpl> {
    const job = await engine.createJob({ displayName: o.name ?? 'seg' });
    await job.setMinimumRetryDelay(0);
    await job.addFile(url, path.join(dir, o.name ?? 'f.bin'), { sha256: o.sha256 });
    await job.resume();
    return job;
  }

  async function finishAndRead(job: JobImpl): Promise<Buffer> {
    await waitForState(engine, job, 'TRANSFERRED');
    assert.equal(await job.complete(), 'S_OK');
    return fs.readFileSync(job.getFiles()[0].localPath);
  }

  /** fetchFile's options for a call without an engine: 3 segments of at least 1 MiB, callbacks that do nothing. */
  function directOptions(file: FileRecord, dispatcher: Agent): FetchOptions {
    return {
      file,
      headers: {},
      dispatcher,
      signal: new AbortController().signal,
      allowInsecureRedirects: false,
      maxRedirects: 5,
      timeouts: { headersMs: 5_000, bodyIdleMs: 5_000, lowSpeedBytesPerSecond: 1, lowSpeedWindowMs: 60_000 },
      checkpointIntervalMs: 50,
      checkpointBytes: 256 * 1024,
      maxRetryAfterSeconds: 60,
      segmentsPerFile: 3,
      minSegmentBytes: MiB,
      now: Date.now,
      log: () => undefined,
      onProgress: () => undefined,
      onConnected: () => undefined,
      onCheckpoint: () => undefined,
    };
  }

  /** The ranged requests of a path, as [from, to] pairs. */
  function ranges(p: string): [number, number][] {
    return server
      .requestsFor(p)
      .filter((r) => r.range)
      .map((r) => {
        const m = /^bytes=(\d+)-(\d+)$/.exec(r.range!);
        assert.ok(m, `a closed range: ${r.range}`);
        return [Number(m[1]), Number(m[2])] as [number, number];
      });
  }

  it('fetches a large file over N ranged connections guarded by If-Range and If-Match, with the right bytes and sha256', async () => {
    server.route('/big', { body });
    const job = await start(server.url('/big'), { sha256: sha256Hex(body) });
    const got = await finishAndRead(job);
    assert.equal(sha256Hex(got), sha256Hex(body));
    const reqs = server.requestsFor('/big');
    const plan = planSegments(body.length, 4, MiB);
    assert.equal(reqs[0].range, undefined, 'the first request is a plain GET');
    assert.ok(reqs[0].bytesSent >= plan[0].end, 'its body is read as the first segment, not thrown away');
    assert.ok(reqs[0].bytesSent < body.length, 'and cut at that segment\'s end');
    const segs = reqs.slice(1);
    assert.equal(segs.length, plan.length - 1, 'one ranged request for each other segment');
    assert.ok(segs.length >= 2);
    for (const r of segs) {
      assert.ok(r.ifRange?.startsWith('"'), 'If-Range carries the strong ETag');
      assert.equal(r.headers['if-match'], r.ifRange, 'If-Match too (412 instead of a wasted body if it changed)');
      assert.equal(r.status, 206);
    }
    const covered = [[0, plan[0].end - 1] as [number, number], ...ranges('/big')].sort((a, b) => a[0] - b[0]);
    assert.equal(covered.at(-1)![1], body.length - 1);
    for (let i = 1; i < covered.length; i++) {
      assert.equal(covered[i][0], covered[i - 1][1] + 1, 'segments tile the file');
    }
    assert.equal(job.record.files[0].segments, undefined, 'the plan is dropped once transferred');
    assert.equal(job.getFiles()[0].bytesTransferred, body.length);
  });

  for (const hashMode of ['worker', 'frontier', 'end'] as const) {
    it(`sha256 with hashMode '${hashMode}': verified when right, BG_E_VALIDATION_FAILED and nothing kept when wrong`, async () => {
      server.route('/big', { body });
      const dispatcher = new Agent({ allowH2: false });
      const run = async (sha256: string): Promise<FileRecord> => {
        const file: FileRecord = {
          remoteUrl: server.url('/big'),
          localPath: path.join(dir, `h-${hashMode}.bin`),
          temporaryPath: path.join(dir, `.h-${hashMode}.bin.mdpart`),
          sha256,
          durableBytes: 0,
          transferred: false,
          completed: false,
          restarts: 0,
        };
        await fetchFile({ ...directOptions(file, dispatcher), hashMode });
        return file;
      };
      try {
        const ok = await run(sha256Hex(body));
        assert.equal(ok.transferred, true);
        assert.equal(sha256Hex(fs.readFileSync(ok.temporaryPath)), sha256Hex(body));
        server.reset();
        server.route('/big', { body });
        await assert.rejects(run('00'.repeat(32)), (e: DownloadError) => e.code === 'BG_E_VALIDATION_FAILED');
        assert.ok(server.requestsFor('/big').length >= 3, 'it was segmented');
        assert.ok(!fs.existsSync(path.join(dir, `.h-${hashMode}.bin.mdpart`)), 'the bad bytes are deleted');
        // An SRI sha512 is verified with sha512.
        const sha512 = createHash('sha512').update(body).digest();
        const strong = await run(parseSha256(`sha512-${sha512.toString('base64')}`)!);
        assert.equal(strong.transferred, true);
        fs.rmSync(strong.temporaryPath);
        const wrong = Buffer.from(sha512);
        wrong[0] ^= 1;
        await assert.rejects(run(parseSha256(`sha512-${wrong.toString('base64')}`)!), (e: DownloadError) => e.code === 'BG_E_VALIDATION_FAILED' && /sha512/.test(e.message));
      } finally {
        await dispatcher.close();
      }
    });
  }

  it('the journal lists the segments durably before the temporary file becomes sparse (a crash between must not leave holes that look written)', async () => {
    server.route('/big', { body });
    const dispatcher = new Agent({ allowH2: false });
    const file: FileRecord = {
      remoteUrl: server.url('/big'),
      localPath: path.join(dir, 'j.bin'),
      temporaryPath: path.join(dir, '.j.bin.mdpart'),
      durableBytes: 0,
      transferred: false,
      completed: false,
      restarts: 0,
    };
    // What durable journal writes (persistNow) held; batched saves (onCheckpoint) may come too late.
    type Seen = { segments: boolean; done: boolean; bootId?: string; size: number };
    const seen = (): Seen => ({
      segments: file.segments !== undefined,
      done: file.transferred,
      bootId: file.bootId,
      size: fs.existsSync(file.temporaryPath) ? fs.statSync(file.temporaryPath).size : -1,
    });
    const durable: Seen[] = [];
    try {
      await fetchFile({ ...directOptions(file, dispatcher), persistNow: () => {
          durable.push(seen());
          return Promise.resolve();
        } });
    } finally {
      await dispatcher.close();
    }
    assert.equal(file.transferred, true);
    assert.ok(
      durable.some((x) => x.segments && x.size >= 0 && x.size < body.length),
      `a durable journal write listed the segments while the file was not yet full-size (sparse): ${JSON.stringify(durable)}`,
    );
  });

  it('a segment reset mid-way: only that segment is fetched again, from where it stopped', async () => {
    // The first (plain) response, which is the first segment, and the next one reset after 700000 bytes.
    server.route('/big', { body, resetAfterBytes: 700_000, resetTimes: 2, throttleBytesPerSec: 20 * MiB });
    const job = await start(server.url('/big'));
    const got = await finishAndRead(job);
    assert.equal(sha256Hex(got), sha256Hex(body));
    const r = ranges('/big');
    const plan = planSegments(body.length, 4, MiB);
    assert.equal(r.length, plan.length - 1 + 2, `each other segment once, and two retries: ${JSON.stringify(r)}`);
    const starts = new Set(plan.map((s) => s.start));
    const retries = r.filter(([from]) => !starts.has(from));
    assert.equal(retries.length, 2, 'two requests resume inside a segment');
    for (const [from] of retries) {
      assert.ok(starts.has(from - 700_000), `each starts right after the 700000 bytes received (${from})`);
    }
    assert.equal(job.record.files[0].restarts, 0);
    assert.equal(server.bytesSentFor('/big') - body.length, 0, 'no byte fetched twice (the first response was not thrown away)');
  });

  it('an ETag change between segment requests is never spliced: the file starts over and holds only the new bytes', async () => {
    server.route('/big', { body, throttleBytesPerSec: 2 * MiB });
    const job = await start(server.url('/big'));
    await waitUntil(() => job.getProgress().bytesTransferred > 2 * MiB, 15_000, 'some segment progress');
    await job.suspend();
    const other = randomBody(body.length, 82);
    server.route('/big', { body: other });
    await job.resume();
    const got = await finishAndRead(job);
    assert.equal(sha256Hex(got), sha256Hex(other));
    assert.equal(job.record.files[0].restarts, 1);
    const statuses = server.requestsFor('/big').map((r) => r.status);
    assert.ok(statuses.includes(200), 'the old If-Range got the full 200 (dropped), then a fresh start');
  });

  it('the first response, read as the first segment, stops as soon as another segment finds the entity changed', async () => {
    // Every answer has another ETag: the ranged requests get 412 at once, while the plain GET trickles.
    server.route('/big', { body, changeEtagEachRequest: true, throttleBytesPerSec: MiB });
    const job = await start(server.url('/big'));
    await waitUntil(() => server.requestsFor('/big').filter((r) => !r.range).length >= 2, 15_000, 'a restart after the change');
    await job.suspend();
    const plan = planSegments(body.length, 4, MiB);
    const first = server.requestsFor('/big')[0];
    assert.equal(first.range, undefined);
    assert.ok(first.bytesSent < plan[0].end / 2, `the first response was stopped with the transfer (${first.bytesSent} of its ${plan[0].end} bytes sent)`);
  });

  it('a 412 to If-Match is an entity change too (restart, never a splice)', async () => {
    let phase = 0;
    const other = randomBody(body.length, 83);
    server.route('/big', { body, throttleBytesPerSec: 4 * MiB });
    const job = await start(server.url('/big'));
    await waitUntil(() => job.getProgress().bytesTransferred > MiB, 15_000, 'some segment progress');
    await job.suspend();
    server.route('/big', {
      handler: (req, res) => {
        if (req.headers['if-match'] !== undefined && phase === 0) {
          phase = 1;
          res.writeHead(412, { 'content-length': '0' });
          res.end();
          return;
        }
        res.writeHead(200, { 'content-length': String(other.length), etag: '"new"', 'accept-ranges': 'none' });
        res.end(other);
      },
    });
    await job.resume();
    assert.equal(sha256Hex(await finishAndRead(job)), sha256Hex(other));
    assert.equal(job.record.files[0].restarts, 1);
  });

  it('write marks: noted while segments run, deleted on cancel, and stale ones swept when the engine starts', async () => {
    server.route('/big', { body, throttleBytesPerSec: 2 * MiB });
    const job = await start(server.url('/big'));
    const marksDir = path.join(dir, 'store', 'marks');
    const marksFile = path.join(marksDir, `${job.id}.0`);
    await waitUntil(() => fs.existsSync(marksFile) && (JSON.parse(fs.readFileSync(marksFile, 'utf8')) as Marks).w.some((n) => n > 0), 10_000, 'marks with progress');
    const noted = (JSON.parse(fs.readFileSync(marksFile, 'utf8')) as Marks).w;
    assert.equal(noted.length, job.record.files[0].segments!.length, 'one offset per segment');
    await job.cancel();
    assert.deepEqual(fs.readdirSync(marksDir), [], 'cancel deletes the marks with the temporaries');
    fs.writeFileSync(path.join(marksDir, 'no-such-job.0'), '{}');
    engine = await reopen();
    assert.deepEqual(fs.readdirSync(marksDir), [], 'marks of no unfinished segmented file are swept at start');
  });

  it('small files, files without a strong validator and servers without ranges are never split', async () => {
    const small = randomBody(2 * MiB - 1, 84);
    server.route('/small', { body: small });
    server.route('/noetag', { body, etag: null });
    server.route('/noranges', { body, ranges: false });
    for (const p of ['/small', '/noetag', '/noranges']) {
      const job = await start(server.url(p), { name: p.slice(1) });
      const got = await finishAndRead(job);
      assert.equal(got.length, p === '/small' ? small.length : body.length);
      assert.equal(server.requestsFor(p).length, 1, `${p}: one request`);
      assert.equal(server.requestsFor(p)[0].range, undefined);
    }
  });

  it('SIGKILL mid-transfer, then again: only the missing ranges are fetched (server byte count)', async () => {
    // Never skipped: npm run test:engine (and npm test) build dist/cli.js before the suite.
    assert.ok(fs.existsSync(CLI), `${CLI} is missing: run \`npm run build\` first (npm run test:engine does).`);
    const big = randomBody(16 * MiB, 85);
    server.route('/k.bin', { body: big, throttleBytesPerSec: 1.5 * MiB });
    const store = path.join(dir, 'clistore');
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    const args = [CLI, 'get', server.url('/k.bin'), '-o', out, '--store', store, '--segments', '4', '--min-segment-size', '1M', '--sha256', sha256Hex(big)];
    const segmentsInStore = (): { start: number; end: number; done: number; written?: number }[] => {
      try {
        return readStoredJobs(store)?.jobs[0]?.files[0]?.segments ?? [];
      } catch {
        return [];
      }
    };
    const child = spawn(process.execPath, args, { stdio: 'ignore' });
    const exited = new Promise((r) => child.on('exit', r));
    await waitUntil(() => segmentsInStore().reduce((n, s) => n + s.done, 0) > 4 * MiB, 20_000, 'durable segment progress');
    child.kill('SIGKILL');
    await exited;
    // Same boot: the bytes the killed process had written are kept, not only the fdatasync'd ones: as far as the
    // marks (noted after every write) say, or the journal's `written` (batched) where that is further.
    const marksDir = path.join(store, 'marks');
    const marksFiles = fs.readdirSync(marksDir);
    assert.equal(marksFiles.length, 1, 'one marks file for the one segmented file');
    const noted = (JSON.parse(fs.readFileSync(path.join(marksDir, marksFiles[0]), 'utf8')) as Marks).w;
    const segs = segmentsInStore().map((s, i) => ({ ...s, kept: Math.max(s.done, s.written ?? 0, noted[i]) }));
    assert.equal(noted.length, segs.length, 'a mark for each segment');
    assert.ok(segs.some((s) => (s.written ?? 0) >= s.done), 'the journal records written offsets');
    const done = segs.reduce((n, s) => n + s.kept, 0);
    const firstRun = server.requests.length;
    const sentBefore = server.bytesSentFor('/k.bin');
    server.route('/k.bin', { body: big });
    const second = spawn(process.execPath, args, { stdio: 'ignore' });
    const code = await new Promise((r) => second.on('exit', r));
    assert.equal(code, 0);
    assert.equal(sha256Hex(fs.readFileSync(path.join(out, 'k.bin'))), sha256Hex(big));
    const again = server.requests.slice(firstRun);
    // Kept bytes past the durable offset are checked first: each such segment asks again for their last 4 KiB
    // (keptBytes.ts), even one that was written to its end; a segment durable to its end asks for nothing.
    const expected = segs.flatMap((s) => {
      const from = s.start + s.kept - Math.min(OVERLAP_BYTES, s.kept - s.done);
      return from < s.end ? [`bytes=${from}-${s.end - 1}`] : [];
    });
    assert.deepEqual(again.map((r) => r.range).sort(), expected.sort(), 'each segment resumes where its kept bytes end, less the overlap that checks them');
    assert.ok(again.every((r) => r.ifRange && r.status === 206));
    const secondBytes = again.reduce((n, r) => n + r.bytesSent, 0);
    const overlaps = segs.reduce((n, s) => n + Math.min(OVERLAP_BYTES, s.kept - s.done), 0);
    assert.equal(secondBytes, big.length - done + overlaps, 'the second run fetched exactly the missing bytes (and the overlaps)');
    assert.deepEqual(fs.readdirSync(marksDir), [], 'the marks are deleted once the file is transferred');
    const wasted = sentBefore - done;
    // What sat in socket buffers, and the last few milliseconds before the kill.
    assert.ok(wasted < 4 * MiB, `bytes sent before the kill but not kept: ${wasted}`);
  });
});
