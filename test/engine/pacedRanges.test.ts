// Under a low speed limit a file is asked for in small closed ranges, each paid for before it is requested
// (pacedRanges.ts, issue #18): the server can never run more than one piece ahead of the limit. Every piece is
// judged as a resume is; a server that stops honouring ranges, or whose file changes, gets the file again from
// byte 0 as a refused resume does, never a splice. No timed assertions: what is checked is what was asked for.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DownloadEngine, JobImpl } from '../../src/engine';
import { openEngine, useServerFixture, waitForState, waitUntil } from '../support/engineHarness';
import { randomBody, sha256Hex, type RequestLog, type TestServer } from '../support/testServer';

const KiB = 1024;
/** 512 KiB/s: pieces of a quarter second, 128 KiB. */
const LIMIT = 512 * KiB;
const PIECE = 128 * KiB;

describe('ranges paced under a low speed limit', function () {
  this.timeout(30_000);
  let server: TestServer;
  let dir: string;
  let engine: DownloadEngine;
  const body = randomBody(1536 * KiB, 31);

  afterEach(async () => {
    await engine?.dispose();
  });
  useServerFixture((f) => ({ server, dir } = f), { prefix: 'md-paced-' });

  async function start(route: string, limit = LIMIT, segmentsPerFile = 8): Promise<JobImpl> {
    engine = await openEngine(path.join(dir, 'store'), { maxBytesPerSecond: limit, segmentsPerFile, minSegmentBytes: 256 * KiB });
    const job = await engine.createJob({ displayName: route });
    await job.addFile(server.url(route), path.join(dir, 'f.bin'));
    await job.resume();
    return job;
  }

  async function finished(job: JobImpl): Promise<Buffer> {
    await waitForState(engine, job, 'TRANSFERRED');
    assert.equal(await job.complete(), 'S_OK');
    return fs.readFileSync(path.join(dir, 'f.bin'));
  }

  /** [first, last] byte of a closed range request; undefined for an open one or none. */
  function closed(r: RequestLog): [number, number] | undefined {
    const m = /^bytes=(\d+)-(\d+)$/.exec(r.range ?? '');
    return m ? [Number(m[1]), Number(m[2])] : undefined;
  }

  it('asks for the file in pieces of a quarter second of the limit, one after the other, over one connection, each behind If-Range', async () => {
    server.route('/a', { body });
    const connectionsBefore = server.connections;
    const job = await start('/a');
    assert.equal(sha256Hex(await finished(job)), sha256Hex(body));
    const reqs = server.requestsFor('/a');
    assert.ok(reqs.length >= 2, `requests: ${reqs.map((r) => r.range).join(', ')}`);
    assert.deepEqual(closed(reqs[0]), [0, PIECE - 1]);
    let next = 0;
    for (const [i, r] of reqs.entries()) {
      const [first, last] = closed(r) ?? [-1, -1];
      assert.equal(first, next, `request ${i}: ${r.range}`);
      // A quarter second of the limit, more only when a request's round trip is long (a loaded machine): never 2 s.
      assert.ok(last === body.length - 1 || (last - first + 1 >= PIECE && last - first + 1 <= 2 * LIMIT), `request ${i}: ${r.range}`);
      assert.equal(r.status, 206);
      assert.equal(r.bytesSent, last - first + 1);
      // The first one has nothing to compare with yet; every later one must be of the same entity.
      assert.equal(r.ifRange === undefined, i === 0, `request ${i}: If-Range ${r.ifRange}`);
      next = last + 1;
    }
    assert.equal(next, body.length);
    assert.ok(reqs.slice(1).every((r) => r.ifRange === reqs[1].ifRange), 'the same If-Range on every later piece');
    assert.equal(server.connections - connectionsBefore, 1, 'the pieces reuse one kept-alive connection');
  });

  it('a server slow to answer each request gets pieces of twice its round trip, so that waiting for it does not cut the rate', async () => {
    server.route('/a', { body, delayHeadersMs: 300 });
    const job = await start('/a');
    assert.equal(sha256Hex(await finished(job)), sha256Hex(body));
    const sizes = server.requestsFor('/a').map((r) => closed(r)!).map(([first, last]) => last - first + 1);
    // Once a round trip was measured (after the second request), 300 ms or more: 0.6 s of the limit or more.
    const measured = sizes.slice(2, -1); // the last one is what was left
    assert.ok(measured.length > 0 && measured.every((n) => n >= 0.6 * LIMIT), `pieces: ${sizes.join(', ')}`);
  });

  it('a server that stops honouring ranges mid-way gets the file again from byte 0, whole (no splice)', async () => {
    server.route('/a', { body });
    const job = await start('/a');
    await waitUntil(() => server.requestsFor('/a').length >= 3, 10_000, 'three pieces');
    server.route('/a', { body, ranges: false });
    const got = await finished(job);
    assert.equal(got.length, body.length);
    assert.equal(sha256Hex(got), sha256Hex(body));
    const whole = server.requestsFor('/a').filter((r) => r.status === 200);
    assert.ok(whole.length >= 1, 'the whole file was sent once ranges were ignored');
  });

  it('a file that changes mid-way behind a server ignoring If-Range is fetched again from byte 0 (the piece is judged, never spliced)', async () => {
    server.route('/a', { body, ifRange: false });
    const job = await start('/a');
    await waitUntil(() => server.requestsFor('/a').length >= 3, 10_000, 'three pieces');
    const other = randomBody(body.length, 32);
    server.route('/a', { body: other, etag: '"v2"', ifRange: false });
    const got = await finished(job);
    assert.equal(sha256Hex(got), sha256Hex(other), 'the new file, not the old one with the new one spliced in');
    assert.ok(server.requestsFor('/a').some((r) => r.ifRange === '"v2"'), 'the new file continued in pieces behind its own ETag');
  });

  it('a piece whose body ends short of its range (no Content-Length) is not taken for the whole piece', async () => {
    server.route('/a', { body, etag: '"e1"' });
    const job = await start('/a');
    await waitUntil(() => server.requestsFor('/a').length >= 2, 10_000, 'two pieces');
    server.route('/a', {
      // Once: a 206 that names the range asked for and sends 1000 bytes of it, ended cleanly (chunked).
      handler: (req, res) => {
        server.route('/a', { body, etag: '"e1"' });
        const [first, last] = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range))!.slice(1).map(Number);
        res.writeHead(206, { 'Content-Range': `bytes ${first}-${last}/${body.length}`, ETag: '"e1"' });
        res.end(body.subarray(first, first + 1000));
      },
    });
    await waitForState(engine, job, 'TRANSIENT_ERROR');
    assert.match(job.getError()?.message ?? '', /ended after 1000 of the 131072 bytes/);
    await job.resume();
    const got = await finished(job);
    assert.equal(sha256Hex(got), sha256Hex(body));
  });

  it('a server whose 206 carries no validator: the file is asked for whole, as without a limit', async () => {
    server.route('/a', { body, etag: null });
    const job = await start('/a');
    assert.equal(sha256Hex(await finished(job)), sha256Hex(body));
    const reqs = server.requestsFor('/a');
    assert.deepEqual(
      reqs.map((r) => [r.range, r.status]),
      [
        [`bytes=0-${PIECE - 1}`, 206],
        [undefined, 200],
      ],
    );
  });

  it('suspended mid-way, the transfer resumes in pieces from its durable bytes', async () => {
    server.route('/a', { body });
    const job = await start('/a');
    await waitUntil(() => server.requestsFor('/a').length >= 4, 10_000, 'four pieces');
    await job.suspend();
    const durable = job.record.files[0].durableBytes;
    assert.ok(durable > 0, 'some bytes were durable at the suspend');
    const asked = server.requestsFor('/a').length;
    await job.resume();
    assert.equal(sha256Hex(await finished(job)), sha256Hex(body));
    const after = server.requestsFor('/a').slice(asked);
    assert.equal(closed(after[0])?.[0], durable, `resumed at the durable bytes: ${after[0].range}`);
    for (const r of after) {
      const range = closed(r);
      assert.ok(range && range[1] - range[0] + 1 <= PIECE && r.ifRange !== undefined, `after resuming, a piece behind If-Range: ${r.range} ${r.ifRange}`);
    }
  });

  it('when the limit is lifted mid-way, the rest is asked for in one validated open range', async () => {
    server.route('/a', { body });
    const job = await start('/a');
    await waitUntil(() => server.requestsFor('/a').length >= 3, 10_000, 'three pieces');
    engine.updateOptions({ maxBytesPerSecond: 0 });
    assert.equal(sha256Hex(await finished(job)), sha256Hex(body));
    const reqs = server.requestsFor('/a');
    const last = reqs[reqs.length - 1];
    assert.match(last.range ?? '', /^bytes=\d+-$/, `the last request: ${last.range}`);
    assert.ok(last.ifRange !== undefined && last.status === 206, 'behind If-Range, and honoured');
    assert.ok(reqs.length < body.length / PIECE, `${reqs.length} requests`);
  });

  it('a file smaller than a piece comes in one range, and an empty one (no byte 0 to ask for: 416) as a plain GET', async () => {
    const small = randomBody(1000, 33);
    server.route('/small', { body: small });
    server.route('/empty', { body: Buffer.alloc(0) });
    engine = await openEngine(path.join(dir, 'store'), { maxBytesPerSecond: LIMIT });
    for (const [route, expected] of [
      ['/small', small],
      ['/empty', Buffer.alloc(0)],
    ] as const) {
      const job = await engine.createJob({ displayName: route });
      await job.addFile(server.url(route), path.join(dir, route.slice(1)));
      await job.resume();
      await waitForState(engine, job, 'TRANSFERRED');
      assert.equal(await job.complete(), 'S_OK');
      assert.equal(sha256Hex(fs.readFileSync(path.join(dir, route.slice(1)))), sha256Hex(expected));
    }
    assert.deepEqual(
      server.requests.map((r) => [r.path, r.range, r.status]),
      [
        ['/small', `bytes=0-${PIECE - 1}`, 206],
        ['/empty', `bytes=0-${PIECE - 1}`, 416],
        ['/empty', undefined, 200],
      ],
    );
  });

  it('bytes kept after a crash are checked by the overlap in pieces too: a lost end is fetched again from the durable offset', async () => {
    server.route('/a', { body });
    const store = path.join(dir, 'store');
    let job = await start('/a');
    await waitUntil(() => job.record.files[0].durableBytes >= 256 * KiB, 10_000, 'some durable bytes');
    await job.suspend();
    await engine.dispose();
    // As a killed process leaves it: 100000 bytes written past the last checkpoint, the last 2000 lost.
    const durable = job.record.files[0].durableBytes;
    const kept = durable + 100_000;
    const temp = job.record.files[0].temporaryPath;
    fs.truncateSync(temp, durable);
    fs.appendFileSync(temp, Buffer.concat([body.subarray(durable, kept - 2000), Buffer.alloc(2000)]));
    const before = server.requests.length;
    engine = await openEngine(store, { maxBytesPerSecond: LIMIT });
    job = engine.getJob(job.id);
    await job.resume();
    assert.equal(sha256Hex(await finished(job)), sha256Hex(body));
    const ranges = server.requests.slice(before, before + 2).map((r) => r.range);
    assert.deepEqual(ranges, [`bytes=${kept - 4096}-${kept + PIECE - 1}`, `bytes=${durable}-${durable + PIECE - 1}`], 'the overlap before the kept end, then from the durable offset');
  });

  it('at 1 MiB/s and above the file is streamed as before, on one connection in one request', async () => {
    server.route('/a', { body });
    const job = await start('/a', 1024 * KiB, 1);
    assert.equal(sha256Hex(await finished(job)), sha256Hex(body));
    assert.deepEqual(
      server.requestsFor('/a').map((r) => [r.range, r.status]),
      [[undefined, 200]],
    );
  });
});
