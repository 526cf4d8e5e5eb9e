import * as assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import * as net from 'node:net';
import { gunzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { randomBody, sha256Hex, TEST_TLS, TestServer } from '../support/testServer';

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  error?: Error & { code?: string };
  ms: number;
}

interface GetOpts {
  headers?: Record<string, string>;
  method?: 'GET' | 'HEAD';
  bodyTimeout?: number;
  ca?: string;
  agent?: Agent;
}

/** One request with its own Agent (unless one is given); the body error, if any, is returned, not thrown. */
async function get(url: string, o: GetOpts = {}): Promise<Got> {
  const agent =
    o.agent ??
    new Agent({
      bodyTimeout: o.bodyTimeout ?? 5000,
      headersTimeout: 5000,
      connect: o.ca !== undefined ? { ca: o.ca } : {},
    });
  const t0 = performance.now();
  try {
    const res = await request(url, { method: o.method ?? 'GET', headers: o.headers, dispatcher: agent });
    const chunks: Buffer[] = [];
    let error: Got['error'];
    try {
      for await (const c of res.body) {
        chunks.push(c as Buffer);
      }
    } catch (e) {
      error = e as Got['error'];
    }
    return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), error, ms: performance.now() - t0 };
  } finally {
    if (!o.agent) {
      await agent.destroy();
    }
  }
}

interface RawGot {
  head: string;
  body: Buffer;
  how: 'end' | 'error';
  errorCode?: string;
}

/** A bare HTTP/1.1 GET on a TCP socket; collects everything the server sends until the connection ends. */
function rawGet(server: TestServer, path: string): Promise<RawGot> {
  const port = Number(new URL(server.origin).port);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    });
    const done = (how: RawGot['how'], errorCode?: string): void => {
      const all = Buffer.concat(chunks);
      const i = all.indexOf('\r\n\r\n');
      resolve({
        head: i < 0 ? all.toString('latin1') : all.subarray(0, i).toString('latin1'),
        body: i < 0 ? Buffer.alloc(0) : all.subarray(i + 4),
        how,
        errorCode,
      });
    };
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('end', () => done('end'));
    sock.on('error', (e: Error & { code?: string }) => done('error', e.code));
  });
}

function headerOf(head: string, name: string): string | undefined {
  const m = new RegExp(`^${name}:\\s*(.*)$`, 'im').exec(head);
  return m ? m[1].trim() : undefined;
}

function h(headers: IncomingHttpHeaders | Got['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

describe('TestServer (test support)', function () {
  this.timeout(10000);
  const SIZE = 100_000;
  const body = randomBody(SIZE, 7);
  let s: TestServer;

  beforeEach(async () => {
    s = await TestServer.start();
  });
  afterEach(async () => {
    await s.close();
  });

  describe('helpers', () => {
    it('randomBody is deterministic per seed and sha256Hex is hex sha256', () => {
      assert.deepEqual(randomBody(1000, 1), randomBody(1000, 1));
      assert.notDeepEqual(randomBody(1000, 1), randomBody(1000, 2));
      assert.deepEqual(randomBody(1000, 1).subarray(0, 500), randomBody(500, 1));
      assert.equal(randomBody(0).length, 0);
      assert.equal(sha256Hex(Buffer.from('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    });
  });

  describe('plain serving and the request log', () => {
    it('serves the body with Content-Length, default strong ETag and Accept-Ranges', async () => {
      s.route('/f', { body });
      const r = await get(s.url('/f?x=1'));
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(body));
      assert.equal(h(r.headers, 'content-length'), String(SIZE));
      assert.equal(h(r.headers, 'accept-ranges'), 'bytes');
      assert.match(h(r.headers, 'etag') ?? '', /^"[0-9a-f]{16}"$/);
      assert.equal(h(r.headers, 'last-modified'), undefined);
      assert.equal(s.requests.length, 1);
      assert.equal(s.requests[0].path, '/f');
      assert.equal(s.requests[0].status, 200);
      assert.equal(s.bytesSentFor('/f'), SIZE);
    });

    it('sends the configured etag / lastModified / headers, or no ETag for etag:null', async () => {
      s.route('/a', { body, etag: 'W/"weak1"', lastModified: 'Wed, 21 Oct 2015 07:28:00 GMT', headers: { 'Content-Type': 'text/plain', 'X-Test': 'yes' } });
      s.route('/b', { body, etag: null });
      const a = await get(s.url('/a'));
      assert.equal(h(a.headers, 'etag'), 'W/"weak1"');
      assert.equal(h(a.headers, 'last-modified'), 'Wed, 21 Oct 2015 07:28:00 GMT');
      assert.equal(h(a.headers, 'content-type'), 'text/plain');
      assert.equal(h(a.headers, 'x-test'), 'yes');
      const b = await get(s.url('/b'));
      assert.equal(h(b.headers, 'etag'), undefined);
    });

    it('answers HEAD with headers only', async () => {
      s.route('/f', { body });
      const r = await get(s.url('/f'), { method: 'HEAD' });
      assert.equal(r.status, 200);
      assert.equal(h(r.headers, 'content-length'), String(SIZE));
      assert.equal(r.body.length, 0);
      assert.equal(s.bytesSentFor('/f'), 0);
    });

    it('answers 404 for unknown paths and logs them', async () => {
      const r = await get(s.url('/nope'));
      assert.equal(r.status, 404);
      assert.equal(s.requestsFor('/nope').length, 1);
      assert.equal(s.requestsFor('/nope')[0].status, 404);
    });

    it('counts connections and reset() clears routes and the log', async () => {
      s.route('/f', { body: Buffer.from('x') });
      await get(s.url('/f'));
      await get(s.url('/f'));
      assert.equal(s.connections, 2);
      const agent = new Agent({ connections: 1 });
      try {
        for (let i = 0; i < 3; i++) {
          await get(s.url('/f'), { agent }); // keep-alive reuse
        }
      } finally {
        await agent.destroy();
      }
      assert.equal(s.connections, 3);
      s.reset();
      assert.equal(s.requests.length, 0);
      assert.equal((await get(s.url('/f'))).status, 404);
    });

    it('supports a custom handler and still logs status and bytes', async () => {
      s.route('/h', {
        handler: (req, res) => {
          res.writeHead(201, { 'X-Method': req.method ?? '' });
          res.end('hello');
        },
      });
      const r = await get(s.url('/h'));
      assert.equal(r.status, 201);
      assert.equal(r.body.toString(), 'hello');
      assert.equal(h(r.headers, 'x-method'), 'GET');
      assert.equal(s.requestsFor('/h')[0].status, 201);
      assert.equal(s.bytesSentFor('/h'), 5);
    });

    it('accepts a lazy body function, evaluated once', async () => {
      let calls = 0;
      s.route('/lazy', {
        body: () => {
          calls++;
          return body;
        },
      });
      assert.equal(calls, 0);
      assert.ok((await get(s.url('/lazy'))).body.equals(body));
      assert.ok((await get(s.url('/lazy'))).body.equals(body));
      assert.equal(calls, 1);
    });
  });

  describe('ranges', () => {
    it('answers bytes=a-b, a- and -n with 206 and the right Content-Range', async () => {
      s.route('/f', { body });
      const cases: Array<[string, number, number]> = [
        ['bytes=10-19', 10, 20],
        ['bytes=99990-', 99990, SIZE],
        ['bytes=-25', SIZE - 25, SIZE],
        ['bytes=99000-200000', 99000, SIZE], // end clamped
      ];
      for (const [range, start, end] of cases) {
        const r = await get(s.url('/f'), { headers: { Range: range } });
        assert.equal(r.status, 206, range);
        assert.equal(h(r.headers, 'content-range'), `bytes ${start}-${end - 1}/${SIZE}`, range);
        assert.equal(h(r.headers, 'content-length'), String(end - start), range);
        assert.ok(r.body.equals(body.subarray(start, end)), range);
      }
      assert.equal(s.requests[0].range, 'bytes=10-19');
      assert.equal(s.bytesSentFor('/f'), 10 + 10 + 25 + 1000);
    });

    it('answers 416 with bytes */size for an unsatisfiable range and ignores multi-ranges', async () => {
      s.route('/f', { body });
      const r = await get(s.url('/f'), { headers: { Range: `bytes=${SIZE}-` } });
      assert.equal(r.status, 416);
      assert.equal(h(r.headers, 'content-range'), `bytes */${SIZE}`);
      const m = await get(s.url('/f'), { headers: { Range: 'bytes=0-1,5-6' } });
      assert.equal(m.status, 200);
      assert.equal(m.body.length, SIZE);
    });

    it('ranges:false ignores Range: 200, full body, no Accept-Ranges', async () => {
      s.route('/f', { body, ranges: false });
      const r = await get(s.url('/f'), { headers: { Range: 'bytes=10-19' } });
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(body));
      assert.equal(h(r.headers, 'accept-ranges'), undefined);
      assert.equal(h(r.headers, 'content-range'), undefined);
    });

    it('If-Range: matching ETag or date gives 206, mismatch or weak ETag gives the full 200', async () => {
      const lm = 'Wed, 21 Oct 2015 07:28:00 GMT';
      s.route('/f', { body, lastModified: lm });
      const etag = h((await get(s.url('/f'), { method: 'HEAD' })).headers, 'etag') ?? '';
      const range = 'bytes=100-199';
      const match = await get(s.url('/f'), { headers: { Range: range, 'If-Range': etag } });
      assert.equal(match.status, 206);
      const byDate = await get(s.url('/f'), { headers: { Range: range, 'If-Range': lm } });
      assert.equal(byDate.status, 206);
      const mismatch = await get(s.url('/f'), { headers: { Range: range, 'If-Range': '"other"' } });
      assert.equal(mismatch.status, 200);
      assert.ok(mismatch.body.equals(body));
      const oldDate = await get(s.url('/f'), { headers: { Range: range, 'If-Range': 'Tue, 20 Oct 2015 07:28:00 GMT' } });
      assert.equal(oldDate.status, 200);
      const weak = await get(s.url('/f'), { headers: { Range: range, 'If-Range': `W/${etag}` } });
      assert.equal(weak.status, 200);
      assert.equal(s.requestsFor('/f')[3].ifRange, '"other"');
    });

    it('ifRange:false honours Range regardless of If-Range', async () => {
      s.route('/f', { body, ifRange: false });
      const r = await get(s.url('/f'), { headers: { Range: 'bytes=0-9', 'If-Range': '"other"' } });
      assert.equal(r.status, 206);
      assert.equal(r.body.length, 10);
    });

    it('changeEtagEachRequest: a new ETag every time and If-Range never matches', async () => {
      s.route('/f', { body, changeEtagEachRequest: true });
      const a = await get(s.url('/f'), { headers: { Range: 'bytes=0-9' } });
      const b = await get(s.url('/f'), { headers: { Range: 'bytes=0-9' } });
      assert.equal(a.status, 206);
      const ea = h(a.headers, 'etag');
      const eb = h(b.headers, 'etag');
      assert.ok(ea && eb);
      assert.notEqual(ea, eb);
      const c = await get(s.url('/f'), { headers: { Range: 'bytes=0-9', 'If-Range': eb } });
      assert.equal(c.status, 200);
      assert.equal(c.body.length, SIZE);
    });

    it('answer416 always answers a Range request with 416 and bytes */size', async () => {
      s.route('/f', { body, answer416: true });
      const r = await get(s.url('/f'), { headers: { Range: 'bytes=0-9' } });
      assert.equal(r.status, 416);
      assert.equal(h(r.headers, 'content-range'), `bytes */${SIZE}`);
      assert.equal((await get(s.url('/f'))).status, 200);
    });

    it('answer412 answers requests carrying If-Match or If-Range with 412', async () => {
      s.route('/f', { body, answer412: true });
      assert.equal((await get(s.url('/f'), { headers: { 'If-Match': '"x"' } })).status, 412);
      assert.equal((await get(s.url('/f'), { headers: { Range: 'bytes=0-1', 'If-Range': '"x"' } })).status, 412);
      assert.equal((await get(s.url('/f'), { headers: { Range: 'bytes=0-1' } })).status, 206);
    });
  });

  describe('status, retry and redirect', () => {
    it('forces a status with a short text body and Retry-After', async () => {
      s.route('/busy', { body, status: 503, retryAfter: '7' });
      const r = await get(s.url('/busy'));
      assert.equal(r.status, 503);
      assert.equal(h(r.headers, 'retry-after'), '7');
      assert.ok(r.body.length < 100);
      assert.equal((await get(s.url('/busy'))).status, 503);
    });

    it('failTimes: only the first N requests get the status', async () => {
      s.route('/f', { body, status: 429, retryAfter: '1', failTimes: 2 });
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        statuses.push((await get(s.url('/f'))).status);
      }
      assert.deepEqual(statuses, [429, 429, 200, 200]);
      assert.deepEqual(
        s.requestsFor('/f').map((r) => r.status),
        [429, 429, 200, 200],
      );
    });

    it('redirects with a relative or absolute Location', async () => {
      s.route('/target', { body });
      s.route('/rel', { redirect: { location: '/target' } });
      s.route('/abs', { redirect: { location: s.url('/target'), status: 307 } });
      const rel = await get(s.url('/rel'));
      assert.equal(rel.status, 302);
      assert.equal(h(rel.headers, 'location'), '/target');
      const followed = await get(new URL(h(rel.headers, 'location') ?? '', s.url('/rel')).toString());
      assert.ok(followed.body.equals(body));
      const abs = await get(s.url('/abs'));
      assert.equal(abs.status, 307);
      assert.equal(h(abs.headers, 'location'), s.url('/target'));
    });

    it('delayHeadersMs delays the response', async () => {
      s.route('/slow', { body: Buffer.from('x'), delayHeadersMs: 200 });
      const r = await get(s.url('/slow'));
      assert.equal(r.status, 200);
      assert.ok(r.ms >= 180, `took ${r.ms} ms`);
      s.route('/quick', { body: Buffer.from('x') });
      assert.ok((await get(s.url('/quick'))).ms < 150);
    });
  });

  describe('body faults', () => {
    it('throttleBytesPerSec actually slows the body', async () => {
      const small = randomBody(64 * 1024, 1);
      s.route('/fast', { body: small });
      s.route('/slow', { body: small, throttleBytesPerSec: 200 * 1024 }); // ~320 ms
      const fast = await get(s.url('/fast'));
      const slow = await get(s.url('/slow'));
      assert.ok(slow.body.equals(small));
      assert.ok(slow.ms >= 250, `throttled took only ${slow.ms} ms`);
      assert.ok(slow.ms < 2000, `throttled took ${slow.ms} ms`);
      assert.ok(fast.ms < slow.ms / 2, `fast ${fast.ms} ms vs slow ${slow.ms} ms`);
    });

    it('resetAfterBytes: client gets exactly N bytes and an error, resetTimes later requests succeed', async () => {
      s.route('/f', { body, resetAfterBytes: 5000, resetTimes: 2 });
      for (let i = 0; i < 2; i++) {
        const r = await get(s.url('/f'));
        assert.equal(r.status, 200);
        assert.ok(r.error, 'expected a body error');
        assert.equal(r.body.length, 5000);
        assert.ok(r.body.equals(body.subarray(0, 5000)));
      }
      const ok = await get(s.url('/f'));
      assert.equal(ok.error, undefined);
      assert.ok(ok.body.equals(body));
      assert.equal(s.bytesSentFor('/f'), 5000 + 5000 + SIZE);
    });

    it('resetAfterBytes counts bytes of that response (ranged resume)', async () => {
      s.route('/f', { body, resetAfterBytes: 1000 });
      const r = await get(s.url('/f'), { headers: { Range: 'bytes=50000-' } });
      assert.equal(r.status, 206);
      assert.ok(r.error);
      assert.ok(r.body.equals(body.subarray(50000, 51000)));
    });

    it("resetKind 'rst' aborts with ECONNRESET", async () => {
      s.route('/f', { body, resetAfterBytes: 1000, resetKind: 'rst' });
      const r = await rawGet(s, '/f');
      assert.equal(r.how, 'error');
      assert.equal(r.errorCode, 'ECONNRESET');
    });

    it('stallAfterBytes: the client body timeout fires after N bytes; stallTimes then serves normally', async () => {
      s.route('/f', { body, stallAfterBytes: 3000, stallTimes: 1 });
      const r = await get(s.url('/f'), { bodyTimeout: 300 });
      assert.equal(r.status, 200);
      assert.equal(r.error?.code, 'UND_ERR_BODY_TIMEOUT');
      assert.equal(r.body.length, 3000);
      const ok = await get(s.url('/f'), { bodyTimeout: 300 });
      assert.equal(ok.error, undefined);
      assert.ok(ok.body.equals(body));
    });

    it('close() does not hang on a stalled response', async () => {
      s.route('/f', { body, stallAfterBytes: 10 });
      const pending = get(s.url('/f'), { bodyTimeout: 0 });
      while (s.bytesSentFor('/f') < 10) {
        await new Promise((r) => setTimeout(r, 5));
      }
      const t0 = performance.now();
      await s.close();
      assert.ok(performance.now() - t0 < 1000);
      const r = await pending;
      assert.ok(r.error);
      assert.equal(r.body.length, 10);
    });

    it('closeEarlyAfterBytes: full Content-Length, then a clean end after N bytes', async () => {
      s.route('/f', { body, closeEarlyAfterBytes: 2000 });
      const raw = await rawGet(s, '/f');
      assert.equal(raw.how, 'end'); // FIN, not RST
      assert.equal(headerOf(raw.head, 'content-length'), String(SIZE));
      assert.ok(raw.body.equals(body.subarray(0, 2000)));
      const r = await get(s.url('/f'));
      assert.ok(r.error, 'client must notice the short body');
      assert.equal(r.body.length, 2000);
    });

    it('extraBytes: junk beyond Content-Length on the wire', async () => {
      s.route('/f', { body, extraBytes: 123 });
      const raw = await rawGet(s, '/f');
      assert.equal(headerOf(raw.head, 'content-length'), String(SIZE));
      assert.equal(raw.body.length, SIZE + 123);
      assert.ok(raw.body.subarray(0, SIZE).equals(body));
      assert.equal(s.bytesSentFor('/f'), SIZE + 123);
    });

    it('chunked: no Content-Length, Transfer-Encoding chunked', async () => {
      s.route('/f', { body, chunked: true });
      const r = await get(s.url('/f'));
      assert.equal(h(r.headers, 'transfer-encoding'), 'chunked');
      assert.equal(h(r.headers, 'content-length'), undefined);
      assert.ok(r.body.equals(body));
    });

    it('gzip: Content-Encoding gzip without being asked', async () => {
      const text = Buffer.from('hello hello hello hello hello hello\n'.repeat(1000));
      s.route('/f', { body: text, gzip: true });
      const r = await get(s.url('/f'));
      assert.equal(h(r.headers, 'content-encoding'), 'gzip');
      assert.ok(r.body.length < text.length);
      assert.equal(Number(h(r.headers, 'content-length')), r.body.length);
      assert.ok(gunzipSync(r.body).equals(text));
      assert.equal(s.requests[0].headers['accept-encoding'], undefined);
    });
  });

  describe('https', () => {
    let tls: TestServer;
    before(async () => {
      tls = await TestServer.start({ https: true });
    });
    after(async () => {
      await tls.close();
    });

    it('serves over TLS, trusted with { ca: TEST_TLS.cert } and rejected without it', async () => {
      assert.match(tls.origin, /^https:\/\/127\.0\.0\.1:\d+$/);
      tls.route('/f', { body });
      const r = await get(tls.url('/f'), { ca: TEST_TLS.cert, headers: { Range: 'bytes=0-99' } });
      assert.equal(r.status, 206);
      assert.ok(r.body.equals(body.subarray(0, 100)));
      const untrusted = await get(tls.url('/f')).catch((e: Error) => e);
      assert.ok(untrusted instanceof Error);
      assert.equal(tls.connections, 2);
    });

    it('resets and stalls over TLS too', async () => {
      tls.route('/r', { body, resetAfterBytes: 4000 });
      tls.route('/s', { body, stallAfterBytes: 4000 });
      const r = await get(tls.url('/r'), { ca: TEST_TLS.cert });
      assert.ok(r.error);
      assert.equal(r.body.length, 4000);
      const st = await get(tls.url('/s'), { ca: TEST_TLS.cert, bodyTimeout: 200 });
      assert.equal(st.error?.code, 'UND_ERR_BODY_TIMEOUT');
      assert.equal(st.body.length, 4000);
    });
  });

  it('start() rejects when the port is busy', async () => {
    const port = Number(new URL(s.origin).port);
    await assert.rejects(TestServer.start({ port }), /EADDRINUSE/);
  });
});
