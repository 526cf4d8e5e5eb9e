// HTTP behaviour of a transfer: resume decisions, validators, redirects, timeouts and integrity.
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as path from 'node:path';
import type { LookupFunction } from 'node:net';
import { Agent } from 'undici';
import { DownloadEngine, type EngineOptions, type JobImpl } from '../../src/engine';
import { httpError, isTransientHttpStatus } from '../../src/engine/errors';
import { MAX_FRUITLESS_RESTARTS } from '../../src/engine/restarts';
import { openEngine, useEngineFixture, type EngineFixture, waitForState, waitUntil } from '../support/engineHarness';
import { matrix } from '../support/matrix';
import { randomBody, sha256Hex, TEST_TLS, TestServer } from '../support/testServer';

describe('HTTP transfers', () => {
  let server: TestServer;
  let dir: string;
  let engine: DownloadEngine;
  const body = randomBody(1_000_000, 21);

  let reopen: EngineFixture['reopen'];
  useEngineFixture((f) => ({ server, dir, engine, reopen } = f));

  /** Creates a one-file job with a zero retry delay and resumes it. */
  async function start(url: string, name = 'f.bin', o: { sha256?: string; e?: DownloadEngine } = {}): Promise<JobImpl> {
    const e = o.e ?? engine;
    const job = await e.createJob({ displayName: name });
    await job.setMinimumRetryDelay(0);
    await job.addFile(url, path.join(dir, name), { sha256: o.sha256 });
    await job.resume();
    return job;
  }

  async function finishAndRead(job: JobImpl, e = engine): Promise<Buffer> {
    await waitForState(e, job, 'TRANSFERRED');
    assert.equal(await job.complete(), 'S_OK');
    return fs.readFileSync(job.getFiles()[0].localPath);
  }

  it(matrix('network', 'reset mid-body, many times', 'each retry resumes with Range + If-Range, little is re-fetched, no restart; right sha256'), async () => {
    server.route('/r', { body, resetAfterBytes: 150_000, resetTimes: 5 });
    const job = await start(server.url('/r'));
    const got = await finishAndRead(job);
    assert.equal(sha256Hex(got), sha256Hex(body));
    const reqs = server.requestsFor('/r');
    assert.equal(reqs.length, 6);
    for (const r of reqs.slice(1)) {
      assert.match(r.range ?? '', /^bytes=\d+-$/);
      assert.ok(r.ifRange?.startsWith('"'), 'a strong ETag in If-Range');
    }
    const refetched = server.bytesSentFor('/r') - body.length;
    assert.ok(refetched < 5 * 150_000, `bytes fetched twice: ${refetched}`);
    assert.equal(job.getFiles()[0].bytesTransferred, body.length);
    assert.equal(job.record.files[0].restarts, 0);
  });

  it(matrix('network', 'a 200 answer to a range request', 'truncates and restarts from 0, never appends (restarts = 1); right sha256'), async () => {
    server.route('/r', { body, resetAfterBytes: 300_000, resetTimes: 1, ranges: false });
    const job = await start(server.url('/r'));
    const got = await finishAndRead(job);
    assert.equal(sha256Hex(got), sha256Hex(body));
    assert.equal(server.requestsFor('/r')[1].range, 'bytes=300000-');
    assert.equal(job.record.files[0].restarts, 1);
  });

  it(matrix('network', 'ETag changing mid-download', 'restarts that file from 0 (restarts = 1); right sha256'), async () => {
    server.route('/r', { body, resetAfterBytes: 300_000, resetTimes: 1, changeEtagEachRequest: true });
    const job = await start(server.url('/r'));
    const got = await finishAndRead(job);
    assert.equal(sha256Hex(got), sha256Hex(body));
    assert.equal(job.record.files[0].restarts, 1);
    assert.equal(server.requestsFor('/r')[1].status, 200);
  });

  it(matrix('network', 'Last-Modified only (no ETag)', 'a strong Last-Modified goes in If-Range, the resume gets 206, no restart; right sha256'), async () => {
    const lm = new Date(Date.now() - 60_000).toUTCString();
    server.route('/r', { body, etag: null, lastModified: lm, resetAfterBytes: 300_000, resetTimes: 1 });
    const job = await start(server.url('/r'));
    const got = await finishAndRead(job);
    assert.equal(sha256Hex(got), sha256Hex(body));
    assert.equal(server.requestsFor('/r')[1].ifRange, lm);
    assert.equal(server.requestsFor('/r')[1].status, 206);
    assert.equal(job.record.files[0].restarts, 0);
  });

  it(matrix('network', 'no validators at all', 'restarts from 0 (no Range sent) rather than splice an unknown entity; right sha256'), async () => {
    server.route('/r', { body, etag: null, resetAfterBytes: 300_000, resetTimes: 1 });
    const job = await start(server.url('/r'));
    const got = await finishAndRead(job);
    assert.equal(sha256Hex(got), sha256Hex(body));
    assert.equal(server.requestsFor('/r')[1].range, undefined);
    assert.equal(job.record.files[0].restarts, 1);
  });

  it('a weak ETag is never put in If-Range', async () => {
    server.route('/r', { body, etag: 'W/"weak"', resetAfterBytes: 300_000, resetTimes: 1 });
    const job = await start(server.url('/r'));
    await finishAndRead(job);
    assert.equal(server.requestsFor('/r')[1].ifRange, undefined);
  });

  it(matrix('network', '416 to a resume request', 'same size: every byte is already here, TRANSFERRED; another size: restart from 0; right sha256'), async () => {
    server.route('/r', { body, stallAfterBytes: 1, stallTimes: 0 });
    const job = await engine.createJob({ displayName: '416' });
    await job.setMinimumRetryDelay(0);
    await job.addFile(server.url('/r'), path.join(dir, 'a.bin'));
    // Prepare a temporary file that already holds every byte, as after a crash right before the last checkpoint.
    const f = job.record.files[0];
    fs.writeFileSync(f.temporaryPath, body);
    Object.assign(f, { durableBytes: body.length, bytesTotal: body.length, etag: '"x"' });
    server.route('/r', { body, answer416: true });
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    assert.equal(server.requestsFor('/r').length, 1);
    assert.equal(sha256Hex(fs.readFileSync(f.temporaryPath)), sha256Hex(body));

    const other = await engine.createJob({ displayName: '416b' });
    await other.setMinimumRetryDelay(0);
    await other.addFile(server.url('/r2'), path.join(dir, 'b.bin'));
    const g = other.record.files[0];
    fs.writeFileSync(g.temporaryPath, body.subarray(0, 500));
    Object.assign(g, { durableBytes: 500, bytesTotal: 500, etag: '"x"' });
    let n = 0;
    server.route('/r2', {
      handler: (req, res) => {
        n++;
        if (req.headers.range) {
          res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        } else {
          res.writeHead(200, { 'content-length': String(body.length), etag: '"y"' }).end(body);
        }
      },
    });
    await other.resume();
    await waitForState(engine, other, 'TRANSFERRED');
    assert.equal(n, 2);
    assert.equal(sha256Hex(fs.readFileSync(g.temporaryPath)), sha256Hex(body));
    assert.equal(g.restarts, 1);
  });

  it('412 restarts from 0', async () => {
    const job = await engine.createJob({ displayName: '412' });
    await job.setMinimumRetryDelay(0);
    await job.addFile(server.url('/r'), path.join(dir, 'a.bin'));
    const f = job.record.files[0];
    fs.writeFileSync(f.temporaryPath, body.subarray(0, 1000));
    Object.assign(f, { durableBytes: 1000, bytesTotal: body.length, etag: '"old"' });
    server.route('/r', { body, answer412: true });
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    assert.equal(server.requestsFor('/r')[0].status, 412);
    assert.equal(server.requestsFor('/r')[1].range, undefined);
    assert.equal(sha256Hex(fs.readFileSync(f.temporaryPath)), sha256Hex(body));
  });

  it(matrix('network', 'server closes before Content-Length', 'TRANSIENT_ERROR (errorCount 1), then resumes; right sha256'), async () => {
    server.route('/r', { body, closeEarlyAfterBytes: 400_000, stallTimes: 0 });
    let first = true;
    server.route('/r', {
      handler: (req, res) => {
        if (first) {
          first = false;
          res.writeHead(200, { 'content-length': String(body.length), etag: '"e1"' });
          res.write(body.subarray(0, 400_000), () => res.socket?.end());
          return;
        }
        const start = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
        res.writeHead(start ? 206 : 200, {
          'content-length': String(body.length - start),
          etag: '"e1"',
          ...(start ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
        });
        res.end(body.subarray(start));
      },
    });
    const job = await start(server.url('/r'));
    const got = await finishAndRead(job);
    assert.equal(sha256Hex(got), sha256Hex(body));
    assert.equal(job.errorCount, 1);
  });

  it(matrix('network', 'body longer than Content-Length', 'exactly Content-Length bytes kept; right sha256'), async () => {
    server.route('/r', { body, extraBytes: 5000 });
    const job = await start(server.url('/r'));
    const got = await finishAndRead(job);
    assert.equal(got.length, body.length);
    assert.equal(sha256Hex(got), sha256Hex(body));
  });

  it(matrix('network', 'Content-Encoding: gzip sent unasked', 'stored as sent, not decoded mid-stream (gunzip of the file gives the entity)'), async () => {
    server.route('/r', { body, gzip: true });
    const job = await start(server.url('/r'));
    const got = await finishAndRead(job);
    const { gunzipSync } = await import('node:zlib');
    assert.equal(sha256Hex(gunzipSync(got)), sha256Hex(body));
  });

  it(matrix('network', 'chunked with no length', 'size unknown while transferring, known at the end; right sha256'), async () => {
    server.route('/r', { body, chunked: true, throttleBytesPerSec: 2_000_000 });
    // Every progress seen while bytes flow (not one sample that may come too late to be taken).
    const totalsWhileTransferring: (number | undefined)[] = [];
    const sub = engine.onDidChangeJob((j) => {
      const p = j.getProgress();
      if (j.state === 'TRANSFERRING' && p.bytesTransferred > 0 && p.bytesTransferred < body.length) {
        totalsWhileTransferring.push(p.bytesTotal);
      }
    });
    const job = await start(server.url('/r'));
    const got = await finishAndRead(job).finally(() => sub.dispose());
    assert.ok(totalsWhileTransferring.length > 0, 'progress was reported while transferring');
    assert.deepEqual(new Set(totalsWhileTransferring), new Set([undefined]), 'size unknown while transferring');
    assert.equal(sha256Hex(got), sha256Hex(body));
    assert.equal(job.getProgress().bytesTotal, body.length);
  });

  it('a server without range support still works, restarting after an interruption (counted)', async () => {
    server.route('/r', { body, ranges: false, etag: null, resetAfterBytes: 200_000, resetTimes: 2 });
    const job = await start(server.url('/r'));
    const got = await finishAndRead(job);
    assert.equal(sha256Hex(got), sha256Hex(body));
    assert.equal(job.record.files[0].restarts, 2);
  });

  it(matrix('network', 'no range support, connection broken at 90 % every time', `ERROR DO_E_DOWNLOAD_NO_PROGRESS after ${MAX_FRUITLESS_RESTARTS} restarts from 0 without a new byte, not fetched again for 14 days`), async () => {
    server.route('/r', { body, ranges: false, etag: null, resetAfterBytes: 900_000 });
    const job = await start(server.url('/r'));
    await waitForState(engine, job, 'ERROR', 10_000);
    assert.equal(job.getError()?.code, 'DO_E_DOWNLOAD_NO_PROGRESS');
    assert.equal(job.getError()?.hresult, 0x80d02002);
    assert.match(job.getError()!.message, /started over from byte 0 5 times without getting past byte 900000/);
    assert.equal(server.requestsFor('/r').length, 1 + MAX_FRUITLESS_RESTARTS, 'the first try and one per restart');
  });

  it('bytes fetched again after a restart are not progress: the no-progress clock keeps running until a byte passes the best offset', async () => {
    server.route('/r', { body, ranges: false, etag: null, resetAfterBytes: 900_000, resetTimes: 2, throttleBytesPerSec: 20_000_000 });
    const since: (number | undefined)[] = [];
    const sub = engine.onDidChangeJob((j) => {
      if (j.state === 'TRANSIENT_ERROR' && since.length < 10) {
        since.push(j.record.noProgressSince);
      }
    });
    try {
      const job = await start(server.url('/r'));
      await finishAndRead(job);
      assert.ok(since.length >= 2, `two transient errors seen: ${since.length}`);
      assert.ok(since[0] !== undefined);
      assert.ok(since.every((t) => t === since[0]), `the clock started at the first error and was never reset: ${JSON.stringify(since)}`);
      assert.equal(job.record.files[0].restarts, 2);
      assert.equal(job.record.noProgressSince, undefined, 'cleared once transferred');
    } finally {
      sub.dispose();
    }
  });

  describe('disk room', () => {
    /** A response of `headers` whose body never ends: 64 KiB chunks as fast as the client takes them. */
    function endless(headers: Record<string, string>): (req: IncomingMessage, res: ServerResponse) => void {
      return (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', ...headers });
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        const pump = (): void => {
          while (!res.destroyed && res.write(chunk)) {
            // fill the socket
          }
          if (!res.destroyed) {
            res.once('drain', pump);
          }
        };
        pump();
      };
    }

    it(matrix('disk', 'a Content-Length larger than the free space (8 TB)', 'refused before a byte is written: TRANSIENT_ERROR ENOSPC 0x80070070, temporary file empty'), async () => {
      server.route('/huge', { handler: endless({ 'content-length': String(8 * 1024 ** 4) }) });
      const job = await start(server.url('/huge'), 'huge.bin');
      await job.setMinimumRetryDelay(600);
      await waitForState(engine, job, ['TRANSIENT_ERROR', 'ERROR']);
      assert.equal(job.state, 'TRANSIENT_ERROR');
      assert.equal(job.getError()?.code, 'ENOSPC');
      assert.equal(job.getError()?.hresult, 0x80070070);
      assert.match(job.getError()!.message, /needs 8796093022208 more bytes but the disk of .* has only \d+ free/);
      assert.equal(fs.statSync(job.getFiles()[0].temporaryPath).size, 0, 'nothing written');
    });

    it(matrix('disk', 'an endless body without a length; a length past the maximum file size', 'stopped at maxFileSizeBytes: ERROR ERROR_FILE_TOO_LARGE 0x800700DF; a Content-Length past it refused before writing'), async () => {
      const limited = await openEngine(path.join(dir, 'limited'), { maxFileSizeBytes: 2_000_000 });
      try {
        server.route('/endless', { handler: endless({}) });
        const job = await start(server.url('/endless'), 'endless.bin', { e: limited });
        await waitForState(limited, job, 'ERROR');
        assert.equal(job.getError()?.code, 'ERROR_FILE_TOO_LARGE');
        assert.equal(job.getError()?.hresult, 0x800700df);
        assert.ok(fs.statSync(job.getFiles()[0].temporaryPath).size <= 2_000_000, 'never written past the maximum');
        server.route('/big', { handler: endless({ 'content-length': '2000001' }) });
        const big = await start(server.url('/big'), 'big.bin', { e: limited });
        await waitForState(limited, big, 'ERROR');
        assert.equal(big.getError()?.code, 'ERROR_FILE_TOO_LARGE');
        assert.equal(fs.statSync(big.getFiles()[0].temporaryPath).size, 0, 'refused before writing');
        server.route('/fits', { body: body.subarray(0, 2_000_000) });
        await finishAndRead(await start(server.url('/fits'), 'fits.bin', { e: limited }), limited);
      } finally {
        await limited.dispose();
      }
    });
  });

  describe('redirects', () => {
    it('follows a chain, and each resume starts again from the original URL', async () => {
      server.route('/start', { redirect: { location: '/hop1', status: 301 } });
      server.route('/hop1', { redirect: { location: server.url('/hop2'), status: 307 } });
      server.route('/hop2', { redirect: { location: '/final', status: 308 } });
      server.route('/final', { body, resetAfterBytes: 300_000, resetTimes: 1 });
      const job = await start(server.url('/start'));
      const got = await finishAndRead(job);
      assert.equal(sha256Hex(got), sha256Hex(body));
      assert.equal(server.requestsFor('/start').length, 2, 'the resume went back to the original URL');
      assert.ok(server.requestsFor('/final')[1].range);
    });

    it(matrix('network', '11 redirects', 'ERROR TOO_MANY_REDIRECTS, 0x80072F7A; 10 hops still work'), async () => {
      for (let i = 0; i < 11; i++) {
        server.route(`/h${i}`, { redirect: { location: `/h${i + 1}` } });
      }
      server.route('/h11', { body });
      const job = await start(server.url('/h0'));
      await waitForState(engine, job, 'ERROR');
      assert.equal(job.getError()?.code, 'TOO_MANY_REDIRECTS');
      assert.equal(job.getError()?.hresult, 0x80072f7a);
      // 10 hops are fine.
      const ok = await start(server.url('/h1'), 'ok.bin');
      await waitForState(engine, ok, 'TRANSFERRED');
    });

    it(matrix('network', 'redirect loop', 'ERROR REDIRECT_LOOP after a single request'), async () => {
      server.route('/a', { redirect: { location: '/b' } });
      server.route('/b', { redirect: { location: '/a' } });
      const job = await start(server.url('/a'));
      await waitForState(engine, job, 'ERROR');
      assert.equal(job.getError()?.code, 'REDIRECT_LOOP');
      assert.equal(server.requestsFor('/a').length, 1);
    });

    it(matrix('network', 'cross-origin redirect carrying the job\'s headers', 'every header of the job (Authorization, Cookie, X-Api-Key, …) and Referer dropped on the hop to another origin (other port), kept on the same origin'), async () => {
      const other = await TestServer.start();
      try {
        other.route('/file', { body, resetAfterBytes: 300_000, resetTimes: 1 });
        server.route('/same', { redirect: { location: '/cross' } });
        server.route('/cross', { redirect: { location: other.url('/file') } });
        const job = await engine.createJob({ displayName: 'auth' });
        await job.setMinimumRetryDelay(0);
        const jobHeaders = { Authorization: 'Bearer s3cret', Cookie: 'a=b', 'X-Api-Key': 'k3y', 'X-Keep': 'yes', Referer: 'https://intranet.example/page' };
        await job.setHttpHeaders(jobHeaders);
        await job.addFile(server.url('/same'), path.join(dir, 'auth.bin'));
        await job.resume();
        await waitForState(engine, job, 'TRANSFERRED');
        const sameOrigin = server.requestsFor('/cross')[0].headers;
        assert.equal(sameOrigin.authorization, 'Bearer s3cret');
        assert.equal(sameOrigin['x-api-key'], 'k3y');
        const finals = other.requestsFor('/file');
        assert.equal(finals.length, 2, 'the first answer and the resume');
        assert.ok(finals[1].range, 'the engine\'s own Range still follows');
        for (const r of finals) {
          for (const name of Object.keys(jobHeaders)) {
            assert.equal(r.headers[name.toLowerCase()], undefined, `${name} reached the other origin`);
          }
        }
      } finally {
        await other.close();
      }
    });

    it(matrix('network', 'https→http redirect', 'ERROR INSECURE_REDIRECT, the http URL is never requested; followed only when allowed'), async () => {
      const tls = await TestServer.start({ https: true });
      const opts: Partial<EngineOptions> = { dispatcher: new Agent({ connect: { ca: TEST_TLS.cert } }) };
      const secure = await openEngine(path.join(dir, 's2'), opts);
      const lax = await openEngine(path.join(dir, 's3'), { ...opts, allowInsecureRedirects: true });
      try {
        server.route('/plain', { body });
        tls.route('/down', { redirect: { location: server.url('/plain') } });
        tls.route('/direct', { body });
        const direct = await start(tls.url('/direct'), 'direct.bin', { e: secure });
        await waitForState(secure, direct, 'TRANSFERRED');
        const refused = await start(tls.url('/down'), 'refused.bin', { e: secure });
        await waitForState(secure, refused, 'ERROR');
        assert.equal(refused.getError()?.code, 'INSECURE_REDIRECT');
        assert.equal(server.requestsFor('/plain').length, 0);
        const allowed = await start(tls.url('/down'), 'allowed.bin', { e: lax });
        await waitForState(lax, allowed, 'TRANSFERRED');
      } finally {
        await secure.dispose();
        await lax.dispose();
        await tls.close();
      }
    });
  });

  describe('timeouts and network failures', () => {
    it(matrix('network', 'stall with the socket open', 'TRANSIENT_ERROR (body idle timeout), then resumes with Range; right sha256'), async () => {
      const quick = await openEngine(path.join(dir, 'q'), { timeouts: { headersMs: 2000, bodyIdleMs: 300, lowSpeedBytesPerSecond: 1, lowSpeedWindowMs: 60_000 } });
      try {
        server.route('/r', { body, stallAfterBytes: 200_000, stallTimes: 1 });
        const job = await start(server.url('/r'), 'stall.bin', { e: quick });
        const got = await finishAndRead(job, quick);
        assert.equal(sha256Hex(got), sha256Hex(body));
        assert.equal(job.errorCount, 1);
        assert.ok(server.requestsFor('/r')[1].range);
      } finally {
        await quick.dispose();
      }
    });

    it(matrix('network', 'slow trickle below the low-speed rule', 'a stall: TRANSIENT_ERROR (or ERROR with no-progress 0), "slower than 100000 bytes/s"'), async () => {
      const quick = await openEngine(path.join(dir, 'q'), { timeouts: { headersMs: 2000, bodyIdleMs: 5000, lowSpeedBytesPerSecond: 100_000, lowSpeedWindowMs: 500 } });
      try {
        server.route('/r', { body, throttleBytesPerSec: 20_000 });
        const job = await start(server.url('/r'), 'trickle.bin', { e: quick });
        await job.setNoProgressTimeout(0);
        await waitForState(quick, job, ['TRANSIENT_ERROR', 'ERROR']);
        assert.match(job.getError()!.message, /slower than 100000 bytes\/s/);
      } finally {
        await quick.dispose();
      }
    });

    it(matrix('network', 'response headers that never come', 'TRANSIENT_ERROR 0x80072EE2 (timeout)'), async () => {
      const quick = await openEngine(path.join(dir, 'q'), { timeouts: { headersMs: 300, bodyIdleMs: 5000, lowSpeedBytesPerSecond: 1, lowSpeedWindowMs: 60_000 } });
      try {
        server.route('/r', { body, delayHeadersMs: 3000 });
        const job = await start(server.url('/r'), 'late.bin', { e: quick });
        await waitForState(quick, job, 'TRANSIENT_ERROR');
        assert.equal(job.getError()?.hresult, 0x80072ee2);
      } finally {
        await quick.dispose();
      }
    });

    it(matrix('network', 'DNS failure; connection refused', 'TRANSIENT_ERROR ENOTFOUND 0x80072EE7; TRANSIENT_ERROR ECONNREFUSED 0x80072EFD'), async () => {
      const refused = await start('http://127.0.0.1:1/x', 'refused.bin');
      await waitForState(engine, refused, 'TRANSIENT_ERROR');
      assert.equal(refused.getError()?.code, 'ECONNREFUSED');
      assert.equal(refused.getError()?.hresult, 0x80072efd);
      // This machine has no resolver to ask, so the name lookup fails the way getaddrinfo does, at once.
      const noDns = new Agent({
        connect: {
          lookup: ((hostname: string, _o: unknown, cb: (e: NodeJS.ErrnoException | null, a: string, f: number) => void) =>
            cb(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '', 0)) as unknown as LookupFunction,
        },
      });
      const dnsEngine = await openEngine(path.join(dir, 'dns'), { dispatcher: noDns });
      try {
        const dns = await start('http://no-such-host.invalid/x', 'dns.bin', { e: dnsEngine });
        await waitForState(dnsEngine, dns, 'TRANSIENT_ERROR');
        assert.equal(dns.getError()?.code, 'ENOTFOUND');
        assert.equal(dns.getError()?.hresult, 0x80072ee7);
        assert.match(dns.getError()!.message, /could not be resolved/);
      } finally {
        await dnsEngine.dispose();
        await noDns.close();
      }
    });

    it(matrix('network', 'HTTP status classification', '4xx ERROR except 408/409/429, 5xx TRANSIENT_ERROR except 501/505, 204 and 3xx that cannot be followed ERROR; code HTTP_n, hresult 0x80190000 + n'), async () => {
      const cases: [number, string][] = [[204, 'ERROR'], [300, 'ERROR'], [302, 'ERROR'], [304, 'ERROR'], [305, 'ERROR'], [401, 'ERROR'], [403, 'ERROR'], [410, 'ERROR'], [408, 'TRANSIENT_ERROR'], [409, 'TRANSIENT_ERROR'], [429, 'TRANSIENT_ERROR'], [500, 'TRANSIENT_ERROR'], [501, 'ERROR'], [502, 'TRANSIENT_ERROR'], [505, 'ERROR']];
      const jobs: [number, string, JobImpl][] = [];
      for (const [status, want] of cases) {
        server.route(`/s${status}`, { status });
        const job = await start(server.url(`/s${status}`), `s${status}.bin`);
        await job.setMinimumRetryDelay(600);
        jobs.push([status, want, job]);
      }
      for (const [status, want, job] of jobs) {
        await waitForState(engine, job, ['ERROR', 'TRANSIENT_ERROR']);
        assert.equal(job.state, want, `HTTP ${status}`);
        assert.equal(job.getError()?.hresult, 0x80190000 + status);
        assert.equal(job.getError()?.code, `HTTP_${status}`);
      }
    });
  });

  it('statuses that are not errors a retry can cure are fatal: 1xx, 204, 3xx without a usable Location', () => {
    for (const status of [100, 101, 103, 199, 204, 300, 301, 302, 304, 305, 306, 307, 308, 399]) {
      const err = httpError(status, 'http://example.test/f');
      assert.equal(err.transient, false, `HTTP ${status}`);
      assert.equal(err.code, `HTTP_${status}`);
      assert.equal(err.hresult, 0x80190000 + status);
    }
    for (const status of [200, 201, 206, 408, 409, 429, 500, 502, 503]) {
      assert.equal(isTransientHttpStatus(status), true, `HTTP ${status}`);
    }
  });

  describe('integrity', () => {
    it('a matching sha256 (hex or SRI) completes; the hash survives a resume', async () => {
      server.route('/r', { body, resetAfterBytes: 300_000, resetTimes: 2 });
      const hex = sha256Hex(body);
      const a = await start(server.url('/r'), 'hex.bin', { sha256: hex.toUpperCase() });
      assert.equal(sha256Hex(await finishAndRead(a)), hex);
      const sri = 'sha256-' + Buffer.from(hex, 'hex').toString('base64');
      const b = await start(server.url('/r'), 'sri.bin', { sha256: `md5-xyz ${sri}` });
      assert.equal(sha256Hex(await finishAndRead(b)), hex);
      assert.equal(b.getFiles()[0].sha256, hex);
    });

    it('SRI with several algorithms: the strongest one present is verified (sha512 > sha384 > sha256), across a resume', async () => {
      server.route('/r', { body, resetAfterBytes: 300_000, resetTimes: 2 });
      const sri = (alg: string, data: Buffer): string => `${alg}-${createHash(alg).update(data).digest('base64')}`;
      const wrong = Buffer.from('not the body');
      // The right sha512 beside a wrong sha256: the sha512 decides.
      const good = await start(server.url('/r'), 'good.bin', { sha256: `${sri('sha256', wrong)} ${sri('sha512', body)} ${sri('sha384', wrong)}` });
      assert.equal(sha256Hex(await finishAndRead(good)), sha256Hex(body));
      assert.equal(good.getFiles()[0].sha256, `sha512:${createHash('sha512').update(body).digest('hex')}`);
      // A right sha256 does not make up for a wrong sha384.
      const bad = await start(server.url('/r'), 'bad384.bin', { sha256: `${sri('sha256', body)} ${sri('sha384', wrong)}` });
      await waitForState(engine, bad, 'ERROR');
      assert.equal(bad.getError()?.code, 'BG_E_VALIDATION_FAILED');
      assert.match(bad.getError()!.message, /sha384/);
      // sha384 alone.
      const only384 = await start(server.url('/r'), 'only384.bin', { sha256: sri('sha384', body) });
      assert.equal(sha256Hex(await finishAndRead(only384)), sha256Hex(body));
      // A malformed token of a known algorithm is refused, never skipped for a weaker one.
      const job = await engine.createJob({ displayName: 'malformed' });
      await assert.rejects(job.addFile(server.url('/r'), path.join(dir, 'm.bin'), { sha256: `sha512-xyz ${sri('sha256', body)}` }), /not a valid sha512/);
    });

    it('a mismatch → ERROR BG_E_VALIDATION_FAILED, the bad temporary removed, no destination', async () => {
      server.route('/r', { body });
      const job = await start(server.url('/r'), 'bad.bin', { sha256: '0'.repeat(64) });
      await waitForState(engine, job, 'ERROR');
      const err = job.getError()!;
      assert.equal(err.code, 'BG_E_VALIDATION_FAILED');
      assert.equal(err.hresult, 0x80200053);
      assert.ok(!fs.existsSync(job.getFiles()[0].temporaryPath));
      assert.equal(job.getFiles()[0].transferred, false);
      assert.equal(await job.complete(), 'BG_S_PARTIAL_COMPLETE');
      assert.ok(!fs.existsSync(path.join(dir, 'bad.bin')));
    });

    it('the prefix is re-hashed after an engine restart', async () => {
      server.route('/r', { body, throttleBytesPerSec: 1_000_000 });
      const job = await start(server.url('/r'), 'rehash.bin', { sha256: sha256Hex(body) });
      await waitUntil(() => job.record.files[0].durableBytes > 200_000, 10_000, 'a checkpoint');
      await engine.dispose();
      server.route('/r', { body });
      engine = await reopen();
      const again = engine.getJob(job.id);
      assert.ok(['QUEUED', 'CONNECTING', 'TRANSFERRING'].includes(again.state), `interrupted run queued again: ${again.state}`);
      const got = await finishAndRead(again);
      assert.equal(sha256Hex(got), sha256Hex(body));
      assert.ok(server.requestsFor('/r')[1].range, 'resumed, not restarted');
    });
  });
});
