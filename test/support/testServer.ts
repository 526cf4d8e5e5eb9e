/**
 * A real local HTTP(S) server with fault injection, for the download engine's tests and the demo.
 *
 * Built on node:http / node:https (no mocking). Binds to 127.0.0.1 only. Every socket is tracked so
 * close() never hangs, even with stalled responses.
 *
 * Semantics worth knowing:
 *  - The "N bytes" of resetAfterBytes / stallAfterBytes / closeEarlyAfterBytes count body bytes of *that
 *    response* (so a 206 for bytes=1000- that resets after 500 bytes has delivered bytes 1000..1499). A
 *    fault only fires when the response body is longer than N; a fault "time" (resetTimes/stallTimes) is
 *    only used up when it fires.
 *  - At most one of reset / stall / closeEarly applies to a response, in that order of precedence.
 *  - reset: after the N bytes have been flushed to the kernel the socket is destroyed (FIN without a
 *    complete body, and for TLS without close_notify). With resetKind: 'rst' it is aborted with a TCP RST
 *    instead, 50 ms after the N bytes were flushed (the client sees ECONNRESET; on Linux a client that has
 *    not read the N bytes by then sees EOF instead, and unsent bytes may be lost).
 *  - closeEarly: after N bytes the connection is ended gracefully (socket.end(), close_notify for TLS).
 *  - gzip: the entity is gzip(body); ETag, Content-Length and ranges refer to the gzipped bytes.
 *  - extraBytes: after the complete response, junk is written raw on the socket and the socket is ended.
 *  - Ranges: one range only (bytes=a-b, a-, -n). Multi-range or malformed Range headers are ignored (200).
 *    An unsatisfiable range gets 416 with Content-Range: bytes * /size.
 *  - If-Range uses strong comparison: a weak ETag never matches; a date matches Last-Modified if both
 *    parse to the same instant.
 *  - Methods other than GET/HEAD get 405 (unless the route has a handler).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import * as path from 'node:path';
import { createCipheriv, createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';

export interface RouteOptions {
  /** The entity; default empty. May be a function, evaluated once on first use (lazy bodies for the demo). */
  body?: Buffer | (() => Buffer);
  /** Force a status (e.g. 404, 503); the body is then a short text. */
  status?: number;
  /** Extra response headers (set last, so they override the defaults, case-insensitively). */
  headers?: Record<string, string>;
  /** Default: strong ETag from sha1 of the entity, "\"<hex16>\"". null = send none. May be weak (W/"x"). */
  etag?: string | null;
  /** Default null (none); an HTTP-date string to send as Last-Modified. */
  lastModified?: string | null;
  /** Honour Range with 206 + Content-Range and send Accept-Ranges: bytes. Default true. */
  ranges?: boolean;
  /** Honour If-Range (ETag or HTTP-date; mismatch => full 200). Default true. false = ignore If-Range. */
  ifRange?: boolean;
  /** Pace the body (small slices on a timer). */
  throttleBytesPerSec?: number;
  /** Destroy the socket after sending this many body bytes ... */
  resetAfterBytes?: number;
  /** ... on this many requests (default Infinity); later requests are served normally. */
  resetTimes?: number;
  /** How resetAfterBytes kills the connection: 'close' (default, destroy => FIN) or 'rst' (TCP RST, ECONNRESET). */
  resetKind?: 'close' | 'rst';
  /** Stop writing after N body bytes but keep the socket open (until server close). */
  stallAfterBytes?: number;
  /** Default Infinity. */
  stallTimes?: number;
  /** Send the full Content-Length header but end the connection cleanly after N body bytes. */
  closeEarlyAfterBytes?: number;
  /** Send this many junk bytes beyond Content-Length (raw on the socket), then end the connection. */
  extraBytes?: number;
  /** No Content-Length, Transfer-Encoding: chunked. */
  chunked?: boolean;
  /** Send Content-Encoding: gzip (gzip the body) even though not asked. */
  gzip?: boolean;
  /** Retry-After header value (sent with the forced status). */
  retryAfter?: string;
  /** With status: only the first N requests get `status`, later ones are served normally. */
  failTimes?: number;
  /** Location may be relative or absolute; status defaults to 302. */
  redirect?: { location: string; status?: 301 | 302 | 303 | 307 | 308 };
  /** ETag changes on each request (suffix counter), and If-Range then never matches. */
  changeEtagEachRequest?: boolean;
  /** From request number `requests` + 1 on, the entity is another one (the file changed on the server). */
  changeAfter?: { requests: number; body: Buffer; etag?: string | null; lastModified?: string | null };
  /** Send ETag / Last-Modified on 206 answers too. Default true; false: only on the others (seen behind proxies). */
  validatorsOn206?: boolean;
  /** Always answer 416 with Content-Range: bytes * /<size> to a Range request. */
  answer416?: boolean;
  /** Answer 412 to a request carrying If-Match/If-Range. */
  answer412?: boolean;
  /** Wait before sending headers. */
  delayHeadersMs?: number;
  /** Full custom control (status and written bytes are still logged). */
  handler?: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /** Record in the request log when each body slice was handed to the socket (RequestLog.sends), for rate tests. */
  timestampSends?: boolean;
}

export interface RequestLog {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** Status sent; 0 if the connection went away before headers were sent. */
  status: number;
  /** Body bytes actually written (including extraBytes junk). */
  bytesSent: number;
  range?: string;
  ifRange?: string;
  /** Date.now() when the request arrived. */
  time: number;
  /** With timestampSends: [performance.now(), bytes] of each body slice, when the socket took it. */
  sends?: [at: number, bytes: number][];
}

// ---------------------------------------------------------------------------------------------------------
// TLS fixture

function findTlsDir(): string {
  let dir = __dirname;
  for (let i = 0; i < 8; i++) {
    const candidate = path.join(dir, 'test', 'fixtures', 'tls');
    if (fs.existsSync(path.join(candidate, 'cert.pem'))) {
      return candidate;
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      break;
    }
    dir = parent;
  }
  // Compiled layout: out/test/support -> repo root.
  return path.resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'tls');
}

const TLS_DIR = findTlsDir();

/**
 * Self-signed certificate for 127.0.0.1 / localhost (CA:TRUE), valid 2025-01-01 .. 2125-01-01.
 * Trust it on the client with { ca: TEST_TLS.cert }.
 */
export const TEST_TLS: { key: string; cert: string } = {
  key: fs.readFileSync(path.join(TLS_DIR, 'key.pem'), 'utf8'),
  cert: fs.readFileSync(path.join(TLS_DIR, 'cert.pem'), 'utf8'),
};

// ---------------------------------------------------------------------------------------------------------
// Helpers

/** Deterministic pseudo-random bytes (AES-128-CTR keystream keyed by the seed). Fast enough for 100s of MiB. */
export function randomBody(size: number, seed = 1): Buffer {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new RangeError(`randomBody: bad size ${size}`);
  }
  const key = createHash('sha256').update(`randomBody:${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const out = Buffer.allocUnsafe(size);
  const BLOCK = 1 << 20;
  const zeros = Buffer.alloc(Math.min(BLOCK, size));
  for (let pos = 0; pos < size; pos += BLOCK) {
    const n = Math.min(BLOCK, size - pos);
    cipher.update(zeros.subarray(0, n)).copy(out, pos);
  }
  return out;
}

export function sha256Hex(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function defaultEtag(entity: Buffer): string {
  return `"${createHash('sha1').update(entity).digest('hex').slice(0, 16)}"`;
}

/** "abc" -> "abc-n", W/"abc" -> W/"abc-n", bare token -> token-n */
function etagWithSuffix(etag: string, n: number): string {
  return etag.endsWith('"') ? `${etag.slice(0, -1)}-${n}"` : `${etag}-${n}`;
}

type RangeResult = { start: number; end: number } | 'unsatisfiable' | null; // end exclusive; null = ignore

function parseRange(header: string, size: number): RangeResult {
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) {
    return null; // malformed or multi-range: ignore, serve 200
  }
  const [, a, b] = m;
  if (a === '' && b === '') {
    return null;
  }
  if (a === '') {
    const n = Number(b);
    if (n === 0 || size === 0) {
      return 'unsatisfiable';
    }
    return { start: Math.max(0, size - n), end: size };
  }
  const start = Number(a);
  if (b !== '' && Number(b) < start) {
    return null; // invalid range-spec: ignore
  }
  if (start >= size) {
    return 'unsatisfiable';
  }
  const end = b === '' ? size : Math.min(size, Number(b) + 1);
  return { start, end };
}

function ifRangeMatches(value: string, etag: string | null, lastModified: string | null | undefined, etagChanges: boolean): boolean {
  const v = value.trim();
  if (v.startsWith('W/')) {
    return false; // If-Range requires a strong validator
  }
  if (v.startsWith('"')) {
    if (etagChanges || etag == null || etag.startsWith('W/')) {
      return false;
    }
    return etag === v;
  }
  if (lastModified == null) {
    return false;
  }
  const a = Date.parse(v);
  const b = Date.parse(lastModified);
  return !Number.isNaN(a) && a === b;
}

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

// ---------------------------------------------------------------------------------------------------------

interface RouteState {
  opts: RouteOptions;
  hits: number;
  fails: number;
  resets: number;
  stalls: number;
  entity?: Buffer;
  baseEtag?: string | null;
}

interface Ctx {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  entry: RequestLog;
  socket: net.Socket;
  closed: boolean;
}

type BodyEnd = 'end' | 'reset' | 'stall' | 'closeEarly';

const CHUNK = 64 * 1024;
const THROTTLE_TICK_MS = 20;
const RST_GRACE_MS = 50;

type AnyServer = http.Server | https.Server;

export class TestServer {
  readonly origin: string;
  readonly requests: RequestLog[] = [];
  /** Optional hook, called once per request when its response is done (or its connection went away). */
  onRequestDone?: (entry: RequestLog) => void;

  private readonly server: AnyServer;
  private readonly routes = new Map<string, RouteState>();
  private readonly sockets = new Set<net.Socket>();
  private readonly rawByPeer = new Map<string, net.Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly openResponses = new Set<http.ServerResponse>();
  private accepted = 0;
  private closing: Promise<void> | undefined;

  private constructor(server: AnyServer, origin: string, useTls: boolean) {
    this.server = server;
    this.origin = origin;
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.onRequest(req, res);
    });
    server.on('connection', (socket: net.Socket) => {
      this.track(socket, true);
    });
    if (useTls) {
      server.on('secureConnection', (socket: net.Socket) => {
        this.track(socket, false);
      });
    }
  }

  static async start(opts: { https?: boolean; port?: number } = {}): Promise<TestServer> {
    const useTls = opts.https === true;
    const server: AnyServer = useTls
      ? https.createServer({ key: TEST_TLS.key, cert: TEST_TLS.cert })
      : http.createServer();
    // No client knows the port before 'listening', so listeners attached by the constructor miss nothing.
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(err);
      };
      server.once('error', onError);
      server.listen(opts.port ?? 0, '127.0.0.1', () => {
        server.off('error', onError);
        resolve();
      });
    });
    const addr = server.address();
    if (addr === null || typeof addr === 'string') {
      server.close();
      throw new Error('TestServer: unexpected server address');
    }
    return new TestServer(server, `${useTls ? 'https' : 'http'}://127.0.0.1:${addr.port}`, useTls);
  }

  /** Total TCP connections accepted. */
  get connections(): number {
    return this.accepted;
  }

  url(p: string): string {
    return this.origin + p;
  }

  route(p: string, o: RouteOptions): void {
    this.routes.set(p, { opts: o, hits: 0, fails: 0, resets: 0, stalls: 0 });
  }

  requestsFor(p: string): RequestLog[] {
    return this.requests.filter((r) => r.path === p);
  }

  bytesSentFor(p: string): number {
    return this.requestsFor(p).reduce((sum, r) => sum + r.bytesSent, 0);
  }

  reset(): void {
    this.routes.clear();
    this.requests.length = 0;
  }

  close(): Promise<void> {
    if (!this.closing) {
      this.closing = new Promise<void>((resolve) => {
        for (const t of this.timers) {
          clearTimeout(t);
        }
        this.timers.clear();
        this.server.close(() => {
          // Let the 'close' events of destroyed responses run first (onRequestDone, log statuses).
          this.whenNoOpenResponses(resolve);
        });
        this.server.closeAllConnections();
        for (const s of this.sockets) {
          s.destroy();
        }
        this.sockets.clear();
      });
    }
    return this.closing;
  }

  // -------------------------------------------------------------------------------------------------------

  private whenNoOpenResponses(fn: () => void): void {
    const deadline = Date.now() + 1000;
    const check = (): void => {
      if (this.openResponses.size === 0 || Date.now() > deadline) {
        fn();
      } else {
        setTimeout(check, 1);
      }
    };
    setImmediate(check);
  }

  private track(socket: net.Socket, raw: boolean): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (raw) {
      this.accepted++;
      const key = `${socket.remoteAddress}:${socket.remotePort}`;
      this.rawByPeer.set(key, socket);
      socket.once('close', () => {
        this.rawByPeer.delete(key);
      });
    }
    this.sockets.add(socket);
    socket.on('error', () => {
      /* client went away; nothing to do */
    });
    socket.once('close', () => {
      this.sockets.delete(socket);
    });
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    let p = req.url ?? '/';
    if (!p.startsWith('/')) {
      try {
        p = new URL(p).pathname; // absolute-form request target
      } catch {
        /* keep as is */
      }
    }
    p = p.split('?')[0].split('#')[0];
    const entry: RequestLog = {
      method: req.method ?? 'GET',
      path: p,
      headers: req.headers,
      status: 0,
      bytesSent: 0,
      time: Date.now(),
    };
    const range = headerString(req.headers.range);
    if (range !== undefined) {
      entry.range = range;
    }
    const ifRange = headerString(req.headers['if-range']);
    if (ifRange !== undefined) {
      entry.ifRange = ifRange;
    }
    this.requests.push(entry);
    const ctx: Ctx = { req, res, entry, socket: req.socket, closed: false };
    this.openResponses.add(res);
    res.once('close', () => {
      this.openResponses.delete(res);
      ctx.closed = true;
      if (entry.status === 0 && res.headersSent) {
        entry.status = res.statusCode;
      }
      this.onRequestDone?.(entry);
    });
    // The request body (if any) is not needed; drain it so the connection can be reused.
    req.resume();

    const state = this.routes.get(p);
    if (!state) {
      this.sendText(ctx, 404);
      return;
    }
    const delay = state.opts.delayHeadersMs ?? 0;
    if (delay > 0) {
      this.later(delay, () => {
        if (!ctx.closed) {
          this.dispatch(ctx, state);
        }
      });
    } else {
      this.dispatch(ctx, state);
    }
  }

  private sendText(ctx: Ctx, status: number, extra: Record<string, string> = {}): void {
    const { res, entry } = ctx;
    const text = Buffer.from(`${status} ${http.STATUS_CODES[status] ?? ''}\n`);
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.setHeader('Content-Length', text.length);
    for (const [k, v] of Object.entries(extra)) {
      res.setHeader(k, v);
    }
    res.writeHead(status);
    entry.status = status;
    if (entry.method === 'HEAD') {
      res.end();
    } else {
      entry.bytesSent += text.length;
      res.end(text);
    }
  }

  private entityOf(state: RouteState): Buffer {
    if (state.entity === undefined) {
      const b = state.opts.body;
      const body = typeof b === 'function' ? b() : b ?? Buffer.alloc(0);
      state.entity = state.opts.gzip ? gzipSync(body) : body;
    }
    return state.entity;
  }

  private baseEtagOf(state: RouteState, entity: Buffer): string | null {
    if (state.baseEtag === undefined) {
      const e = state.opts.etag;
      state.baseEtag = e === undefined ? defaultEtag(entity) : e;
    }
    return state.baseEtag;
  }

  private dispatch(ctx: Ctx, state: RouteState): void {
    const { req, res, entry } = ctx;
    const o = state.opts;
    state.hits++;
    const hit = state.hits;

    if (o.handler) {
      this.runHandler(ctx, o.handler);
      return;
    }

    if (o.status !== undefined && (o.failTimes === undefined || state.fails < o.failTimes)) {
      state.fails++;
      const extra: Record<string, string> = { ...o.headers };
      if (o.retryAfter !== undefined) {
        extra['Retry-After'] = o.retryAfter;
      }
      this.sendText(ctx, o.status, extra);
      return;
    }

    if (o.redirect) {
      this.sendText(ctx, o.redirect.status ?? 302, { ...o.headers, Location: o.redirect.location });
      return;
    }

    const method = entry.method.toUpperCase();
    const isHead = method === 'HEAD';
    if (method !== 'GET' && !isHead) {
      this.sendText(ctx, 405, { Allow: 'GET, HEAD' });
      return;
    }

    if (o.answer412 && (req.headers['if-match'] !== undefined || req.headers['if-range'] !== undefined)) {
      this.sendText(ctx, 412, { ...o.headers });
      return;
    }

    const swap = o.changeAfter !== undefined && hit > o.changeAfter.requests ? o.changeAfter : undefined;
    const entity = swap ? swap.body : this.entityOf(state);
    const size = entity.length;
    let etag = swap ? (swap.etag === undefined ? defaultEtag(entity) : swap.etag) : this.baseEtagOf(state, entity);
    const lastModified = swap ? swap.lastModified : o.lastModified;
    if (o.changeEtagEachRequest) {
      etag = etagWithSuffix(etag ?? defaultEtag(entity), hit);
    }
    const rangesOn = o.ranges !== false;

    const validators: Record<string, string> = {};
    if (etag != null) {
      validators.ETag = etag;
    }
    if (lastModified != null) {
      validators['Last-Modified'] = lastModified;
    }

    let status = 200;
    let start = 0;
    let end = size;
    const rangeHeader = headerString(req.headers.range);
    if (rangeHeader !== undefined && o.answer416) {
      this.sendText(ctx, 416, { ...validators, ...o.headers, 'Content-Range': `bytes */${size}` });
      return;
    }
    if (rangeHeader !== undefined && rangesOn) {
      const ifRange = headerString(req.headers['if-range']);
      const honour =
        o.ifRange === false ||
        ifRange === undefined ||
        ifRangeMatches(ifRange, etag, lastModified, o.changeEtagEachRequest === true);
      if (honour) {
        const r = parseRange(rangeHeader, size);
        if (r === 'unsatisfiable') {
          this.sendText(ctx, 416, {
            ...validators,
            'Accept-Ranges': 'bytes',
            ...o.headers,
            'Content-Range': `bytes */${size}`,
          });
          return;
        }
        if (r) {
          status = 206;
          start = r.start;
          end = r.end;
        }
      }
    }

    res.setHeader('Content-Type', 'application/octet-stream');
    if (!o.chunked) {
      res.setHeader('Content-Length', end - start);
    }
    if (rangesOn) {
      res.setHeader('Accept-Ranges', 'bytes');
    }
    if (status === 206) {
      res.setHeader('Content-Range', `bytes ${start}-${end - 1}/${size}`);
    }
    for (const [k, v] of Object.entries(status === 206 && o.validatorsOn206 === false ? {} : validators)) {
      res.setHeader(k, v);
    }
    if (o.gzip) {
      res.setHeader('Content-Encoding', 'gzip');
    }
    for (const [k, v] of Object.entries(o.headers ?? {})) {
      res.setHeader(k, v);
    }
    res.writeHead(status);
    entry.status = status;

    if (isHead) {
      res.end();
      return;
    }
    res.flushHeaders();
    this.sendBody(ctx, state, entity.subarray(start, end));
  }

  private sendBody(ctx: Ctx, state: RouteState, data: Buffer): void {
    const o = state.opts;
    const len = data.length;
    let limit = len;
    let action: BodyEnd = 'end';
    if (o.resetAfterBytes !== undefined && o.resetAfterBytes < len && state.resets < (o.resetTimes ?? Infinity)) {
      state.resets++;
      limit = Math.max(0, o.resetAfterBytes);
      action = 'reset';
    } else if (
      o.stallAfterBytes !== undefined &&
      o.stallAfterBytes < len &&
      state.stalls < (o.stallTimes ?? Infinity)
    ) {
      state.stalls++;
      limit = Math.max(0, o.stallAfterBytes);
      action = 'stall';
    } else if (o.closeEarlyAfterBytes !== undefined && o.closeEarlyAfterBytes < len) {
      limit = Math.max(0, o.closeEarlyAfterBytes);
      action = 'closeEarly';
    }

    const rate = o.throttleBytesPerSec !== undefined && o.throttleBytesPerSec > 0 ? o.throttleBytesPerSec : 0;
    const slice = rate > 0 ? Math.max(1, Math.min(CHUNK, Math.floor((rate * THROTTLE_TICK_MS) / 1000))) : CHUNK;
    const t0 = performance.now();
    let pos = 0;

    const step = (): void => {
      if (ctx.closed || this.closing) {
        return;
      }
      if (pos >= limit) {
        this.finishBody(ctx, action, o);
        return;
      }
      let n = Math.min(CHUNK, limit - pos);
      if (rate > 0) {
        const allowed = (rate * (performance.now() - t0)) / 1000 - pos;
        const want = Math.min(slice, limit - pos);
        if (allowed < want) {
          const waitMs = Math.max(1, Math.ceil(((want - allowed) * 1000) / rate));
          this.later(waitMs, step);
          return;
        }
        n = Math.min(n, Math.floor(allowed));
      }
      const chunk = data.subarray(pos, pos + n);
      pos += n;
      ctx.entry.bytesSent += n;
      if (o.timestampSends) {
        ctx.entry.sends ??= [];
      }
      ctx.res.write(chunk, (err) => {
        if (!err) {
          ctx.entry.sends?.push([performance.now(), n]);
          step();
        }
      });
    };
    step();
  }

  private finishBody(ctx: Ctx, action: BodyEnd, o: RouteOptions): void {
    const { res, socket } = ctx;
    switch (action) {
      case 'end': {
        const extra = o.extraBytes ?? 0;
        if (extra > 0) {
          res.end(() => {
            if (!socket.destroyed) {
              ctx.entry.bytesSent += extra;
              socket.end(Buffer.alloc(extra, 0x5a)); // 'Z'
            }
          });
        } else {
          res.end();
        }
        return;
      }
      case 'stall':
        return; // keep the socket open; close() destroys it
      case 'closeEarly':
        this.whenFlushed(socket, () => {
          socket.end();
        });
        return;
      case 'reset':
        this.whenFlushed(socket, () => {
          if (o.resetKind !== 'rst') {
            socket.destroy();
            return;
          }
          // Give the client a moment to read the N bytes: Linux reports EOF rather than ECONNRESET when the
          // RST arrives while received data is still unread.
          const raw = this.rawByPeer.get(`${socket.remoteAddress}:${socket.remotePort}`) ?? socket;
          this.later(RST_GRACE_MS, () => {
            try {
              raw.resetAndDestroy();
            } catch {
              raw.destroy();
            }
            socket.destroy();
          });
        });
        return;
    }
  }

  /** Run fn once the socket has handed all queued bytes to the kernel. */
  private whenFlushed(socket: net.Socket, fn: () => void): void {
    const check = (): void => {
      if (socket.destroyed || this.closing) {
        return;
      }
      if (socket.writableLength === 0) {
        fn();
      } else {
        this.later(2, check);
      }
    };
    setImmediate(check);
  }

  private runHandler(ctx: Ctx, handler: NonNullable<RouteOptions['handler']>): void {
    const { res, entry } = ctx;
    const count = (chunk: unknown): void => {
      if (typeof chunk === 'string') {
        entry.bytesSent += Buffer.byteLength(chunk);
      } else if (chunk instanceof Uint8Array) {
        entry.bytesSent += chunk.length;
      }
    };
    const origWrite = res.write.bind(res) as (...args: unknown[]) => boolean;
    const origEnd = res.end.bind(res) as (...args: unknown[]) => http.ServerResponse;
    res.write = function (this: http.ServerResponse, ...args: unknown[]): boolean {
      count(args[0]);
      return origWrite(...args);
    } as typeof res.write;
    res.end = function (this: http.ServerResponse, ...args: unknown[]): http.ServerResponse {
      if (typeof args[0] !== 'function') {
        count(args[0]);
      }
      return origEnd(...args);
    } as typeof res.end;
    try {
      handler(ctx.req, res);
    } catch (err) {
      if (!res.headersSent) {
        this.sendText(ctx, 500);
      } else {
        res.destroy(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }
}
