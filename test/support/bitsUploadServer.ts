/**
 * A BITS upload server for the tests and the demo: the server side of the BITS Upload Protocol ([MC-BUP] and
 * Microsoft's "BITS Upload Protocol" pages), with fault injection and a log of every request.
 *
 * Built on node:net with its own small HTTP/1.1 parser, because node:http (llhttp) refuses the BITS_POST method before
 * any handler runs. It handles requests with a Content-Length body (no chunked requests), keep-alive and pipelining,
 * origin-form and absolute-form targets (so it can also stand in for a forward proxy in tests). Binds 127.0.0.1 only (or
 * another loopback address given as `host`).
 *
 * Protocol, as implemented (section numbers are [MC-BUP]'s):
 *  - every BITS_POST answer is an Ack: `BITS-Packet-Type: Ack`, `Content-Length: 0`; errors carry BITS-Error-Code
 *    (hex HRESULT; [MC-BUP] names it BITS-Error) and BITS-Error-Context 0x5 (2.2.1.2);
 *  - a request without Content-Length gets 411 with E_INVALIDARG (3.2.5.2.3); body-less packets must say 0;
 *  - Ping → 200 Ack (3.2.5.2.5);
 *  - Create-Session → needs {7df0354d-249b-430f-820d-3d2a9bef4931} in BITS-Supported-Protocols (else 400, E_INVALIDARG),
 *    answers BITS-Protocol, BITS-Session-Id (a braced upper-case GUID, like Windows), Accept-Encoding: Identity, and
 *    BITS-Host-Id(-Fallback-Timeout) when configured (2.2.3, 3.2.5.2.4). The destination is the URL path under
 *    `destDir`; a path ending in '/' takes the file name from Content-Name. An existing destination is replaced
 *    unless `allowOverwrite: false` (then 403, E_ACCESSDENIED);
 *  - Fragment → `Content-Range: bytes a-b/total` with b-a+1 = Content-Length (else 400, E_INVALIDARG); a different
 *    total than earlier fragments is 400; a start past the bytes received is 416 with BITS-Received-Content-Range
 *    (3.2.5.2.6). A start before it writes only the new part, as Windows does (the Fragment page: "BITS writes only
 *    the non-overlapping portion"); with `strictContiguous: true` any start other than the bytes received is 416
 *    instead. Bytes are written as they arrive, so a fragment cut short keeps what came (`keepPartialFragments:
 *    false` writes a fragment only once complete). The Ack's BITS-Received-Content-Range is the next byte wanted;
 *  - Close-Session → the complete upload is renamed to its destination (3.2.5.2.7); an incomplete one is deleted
 *    ("you cannot upload a partial file", the Close-Session page); Ack;
 *  - Cancel-Session → the partial upload is deleted; Ack (3.2.5.2.8);
 *  - an unknown session gets 500 with BG_E_SESSION_NOT_FOUND (0x8020001F) (3.2.5.2.3);
 *  - an unknown packet type gets 400 with E_INVALIDARG (the "BITS Upload Protocol" page);
 *  - GET / HEAD serve finished uploads from `destDir` (handy for the demo), other methods get 405.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';

export const BITS_PROTOCOL_GUID = '{7df0354d-249b-430f-820d-3d2a9bef4931}';
export const BITS_ERRORS = {
  BG_E_SESSION_NOT_FOUND: 0x8020001f,
  BG_E_TOO_LARGE: 0x80200020,
  E_ACCESSDENIED: 0x80070005,
  E_INVALIDARG: 0x80070057,
} as const;

const MAX_HEAD_BYTES = 16 * 1024;
const REASONS: Record<number, string> = {
  200: 'OK', 307: 'Temporary Redirect', 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  411: 'Length Required', 413: 'Request Entity Too Large', 416: 'Requested Range Not Satisfiable', 431: 'Request Header Fields Too Large',
  500: 'Internal Server Error', 501: 'Not Implemented', 503: 'Service Unavailable',
};

export interface BitsUploadServerOptions {
  /** Default 0 (any free port). */
  port?: number;
  /** The loopback address to listen on (default 127.0.0.1; e.g. 127.0.0.2 to stand for another host). */
  host?: string;
  /** Where Close-Session puts finished uploads. Default: a new temporary folder. */
  destDir?: string;
  /** Where sessions keep their partial uploads. Default: a new temporary folder. */
  sessionDir?: string;
  /** Replace an existing destination (default true); false answers Create-Session with 403 E_ACCESSDENIED. */
  allowOverwrite?: boolean;
  /** 416 for any fragment that does not start exactly at the bytes received ([MC-BUP] 3.2.5.2.6). Default false. */
  strictContiguous?: boolean;
  /** Write fragment bytes as they arrive, so an interrupted fragment keeps what came. Default true. */
  keepPartialFragments?: boolean;
  /** Fragments longer than this get 413. */
  maxFragmentBytes?: number;
  /** Uploads larger than this get 500 with BG_E_TOO_LARGE. */
  maxUploadBytes?: number;
  /** Sent as BITS-Host-Id (and BITS-Host-Id-Fallback-Timeout) in the Ack for Create-Session. */
  hostId?: string;
  hostIdFallbackTimeoutSeconds?: number;
  /** Serve https with this key and certificate (e.g. TEST_TLS from testServer.ts). */
  tls?: { key: string; cert: string };
  /** Called with each finished log entry (the demo prints them). */
  onRequest?: (entry: BitsRequestLog) => void;
}

/** Faults, changeable at any time through `server.faults`. Each applies to the BITS requests it names. */
export interface BitsFaults {
  /** Fragments: drop the connection once this many body bytes of one fragment arrived (they are kept, see above). */
  dropAfterBytes?: number;
  /** How many fragments get dropped (default 1). */
  dropTimes?: number;
  /** 'close' ends the connection (FIN), 'rst' resets it (RST: the client sees ECONNRESET). Default 'close'. */
  dropKind?: 'close' | 'rst';
  /** Answer this status instead of processing the packet (its body is read and thrown away) ... */
  failStatus?: number;
  /** ... this many times (default 1) ... */
  failTimes?: number;
  /** ... for these packet types (case-insensitive; default ['Fragment']) ... */
  failPackets?: string[];
  /** ... with this BITS-Error-Code (and BITS-Error-Context 0x5), and this Retry-After. */
  failBitsError?: number;
  failRetryAfter?: string;
  /** Answer every BITS request with a 307 redirect to this URL. */
  redirectTo?: string;
  /** Wait this long before acknowledging a Fragment (its bytes are already written). */
  ackDelayMs?: number;
  /**
   * Packets of these types (case-insensitive) are not processed: the answer is an Ack's head announcing a 1 GiB body,
   * then one byte every `intervalMs`, for as long as the client listens (a server that never finishes answering).
   */
  trickleAnswer?: { packets: string[]; intervalMs: number };
}

export interface BitsRequestLog {
  /** Date.now() when the request head arrived. */
  time: number;
  method: string;
  /** Path and query of the target (also for an absolute-form target). */
  path: string;
  /** The request target was an absolute URL (as a client sends it to a proxy). */
  absoluteForm: boolean;
  /** Request headers, names in lower case. */
  headers: Record<string, string>;
  packetType?: string;
  sessionId?: string;
  contentRange?: string;
  /** The Content-Length header, if any. */
  contentLength?: number;
  /** Body bytes that actually arrived. */
  bodyBytes: number;
  /** Status answered; 0 when the connection went away first. */
  status: number;
  bitsError?: number;
  /** BITS-Received-Content-Range answered. */
  receivedRange?: number;
  /** A fault that shaped this exchange. */
  fault?: 'drop' | 'fail' | 'redirect' | 'trickle';
}

export interface BitsSessionInfo {
  id: string;
  urlPath: string;
  destination: string;
  tempPath: string;
  contentName?: string;
  total?: number;
  received: number;
}

interface Session extends BitsSessionInfo {
  fd: number;
  /** The request allowed to write (a newer fragment for the session takes over from an older, cut-off one). */
  writer?: object;
}

interface Head {
  method: string;
  path: string;
  absoluteForm: boolean;
  version: string;
  headers: Record<string, string>;
  contentLength?: number;
  keepAlive: boolean;
}

interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Content-Length when it is not the body's (HEAD). */
  contentLength?: number;
  bitsError?: number;
  /** Whether this is a BITS Ack (BITS-Packet-Type: Ack). Default true for BITS_POST. */
  ack?: boolean;
}

/** What handles one request's body and then answers it. */
interface Exchange {
  /** Body bytes as they arrive; 'drop' cuts the connection. */
  onData?(chunk: Buffer): 'drop' | void;
  finish(): Answer | Promise<Answer>;
  /** Trickle the answer's body (faults.trickleAnswer). */
  trickleMs?: number;
}

export class BitsUploadServer {
  readonly log: BitsRequestLog[] = [];
  faults: BitsFaults = {};
  readonly destDir: string;
  readonly sessionDir: string;
  private readonly server: net.Server | tls.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly sessionMap = new Map<string, Session>();
  private readonly ownDirs: string[] = [];
  private port = 0;

  private constructor(private readonly opts: BitsUploadServerOptions) {
    this.destDir = opts.destDir ?? this.tempDir('bits-dest-');
    this.sessionDir = opts.sessionDir ?? this.tempDir('bits-sessions-');
    fs.mkdirSync(this.destDir, { recursive: true });
    fs.mkdirSync(this.sessionDir, { recursive: true });
    this.server = opts.tls ? tls.createServer({ key: opts.tls.key, cert: opts.tls.cert }, (s) => this.onConnection(s)) : net.createServer((s) => this.onConnection(s));
  }

  static async start(opts: BitsUploadServerOptions = {}): Promise<BitsUploadServer> {
    const s = new BitsUploadServer(opts);
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject);
      s.server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
        s.server.off('error', reject);
        resolve();
      });
    });
    s.port = (s.server.address() as net.AddressInfo).port;
    return s;
  }

  get origin(): string {
    return `${this.opts.tls ? 'https' : 'http'}://${this.opts.host ?? '127.0.0.1'}:${this.port}`;
  }

  /** The URL of an upload destination, e.g. url('/uploads/report.pdf'). */
  url(p = '/upload/file.bin'): string {
    return this.origin + (p.startsWith('/') ? p : '/' + p);
  }

  /** Where Close-Session puts the upload of a URL path. */
  destinationOf(urlPath: string, contentName?: string): string | undefined {
    let decoded: string;
    try {
      decoded = decodeURIComponent(urlPath.split('?')[0]);
    } catch {
      return undefined;
    }
    if (decoded.includes('\0')) {
      return undefined;
    }
    let target = path.resolve(this.destDir, '.' + path.posix.normalize('/' + decoded));
    if (decoded.endsWith('/')) {
      const name = contentName ? safeName(contentName) : undefined;
      if (!name) {
        return undefined;
      }
      target = path.join(target, name);
    }
    const rel = path.relative(this.destDir, target);
    return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? target : undefined;
  }

  /** Requests of one packet type (case-insensitive), in order. */
  requests(packetType?: string): BitsRequestLog[] {
    return packetType ? this.log.filter((e) => e.packetType?.toLowerCase() === packetType.toLowerCase()) : [...this.log];
  }

  sessions(): BitsSessionInfo[] {
    return [...this.sessionMap.values()].map(({ fd: _fd, writer: _w, ...info }) => ({ ...info }));
  }

  session(id: string): BitsSessionInfo | undefined {
    return this.sessions().find((s) => s.id === id);
  }

  /** Loses every session and its partial upload, as a restarted or timed-out server would. Returns how many. */
  forgetSessions(): number {
    const n = this.sessionMap.size;
    for (const s of [...this.sessionMap.values()]) {
      this.dropSession(s);
    }
    return n;
  }

  /** Clears the log and the faults (sessions stay). */
  reset(): void {
    this.log.length = 0;
    this.faults = {};
  }

  async close(): Promise<void> {
    for (const s of this.sockets) {
      s.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of [...this.sessionMap.values()]) {
      closeQuietly(s.fd);
    }
    this.sessionMap.clear();
    for (const d of this.ownDirs) {
      fs.rmSync(d, { recursive: true, force: true });
    }
  }

  // ---------------------------------------------------------------------------------------------- connections

  private onConnection(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('error', () => undefined);
    let buf: Buffer = Buffer.alloc(0);
    let current: { head: Head; entry: BitsRequestLog; ex: Exchange; remaining: number } | undefined;
    let busy = false;
    let dead = false;

    const kill = (kind: 'close' | 'rst'): void => {
      dead = true;
      try {
        if (kind === 'rst' && typeof socket.resetAndDestroy === 'function') {
          socket.resetAndDestroy();
          return;
        }
      } catch {
        // not resettable (e.g. TLS): close it instead
      }
      socket.destroy();
    };

    const pump = (): void => {
      while (!busy && !dead) {
        if (!current) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) {
            if (buf.length > MAX_HEAD_BYTES) {
              socket.end(rawAnswer({ status: 431, ack: false }, false));
              dead = true;
            }
            return;
          }
          const text = buf.subarray(0, end).toString('latin1');
          buf = buf.subarray(end + 4);
          const head = parseHead(text);
          if (!head) {
            socket.end(rawAnswer({ status: 400, ack: false }, false));
            dead = true;
            return;
          }
          const entry: BitsRequestLog = {
            time: Date.now(),
            method: head.method,
            path: head.path,
            absoluteForm: head.absoluteForm,
            headers: head.headers,
            packetType: head.headers['bits-packet-type'],
            sessionId: head.headers['bits-session-id'],
            contentRange: head.headers['content-range'],
            contentLength: head.contentLength,
            bodyBytes: 0,
            status: 0,
          };
          this.log.push(entry);
          if (head.headers['transfer-encoding']) {
            entry.status = 501;
            this.opts.onRequest?.(entry);
            socket.end(rawAnswer({ status: 501, ack: false }, false));
            dead = true;
            return;
          }
          current = { head, entry, ex: this.begin(head, entry), remaining: head.contentLength ?? 0 };
        }
        if (current.remaining > 0) {
          if (buf.length === 0) {
            return;
          }
          const n = Math.min(buf.length, current.remaining);
          const chunk = buf.subarray(0, n);
          buf = buf.subarray(n);
          current.remaining -= n;
          current.entry.bodyBytes += n;
          if (current.ex.onData?.(chunk) === 'drop') {
            current.entry.fault = 'drop';
            this.opts.onRequest?.(current.entry);
            kill(this.faults.dropKind ?? 'close');
            return;
          }
          if (current.remaining > 0) {
            continue;
          }
        }
        const { head, entry, ex } = current;
        current = undefined;
        busy = true;
        void Promise.resolve()
          .then(() => ex.finish())
          .catch((e: unknown): Answer => ({ status: 500, headers: { 'X-Error': String((e as Error)?.message ?? e).replace(/[\r\n]/g, ' ') } }))
          .then((ans) => {
            busy = false;
            if (dead || socket.destroyed) {
              return;
            }
            entry.status = ans.status;
            entry.bitsError = ans.bitsError;
            const rcr = ans.headers?.['BITS-Received-Content-Range'];
            entry.receivedRange = rcr === undefined ? undefined : Number(rcr);
            this.opts.onRequest?.(entry);
            const keep = head.keepAlive;
            if (ex.trickleMs !== undefined) {
              socket.write(rawAnswer({ ack: true, ...ans, contentLength: 1 << 30 }, keep));
              const timer = setInterval(() => socket.write('.'), ex.trickleMs);
              socket.once('close', () => clearInterval(timer));
              dead = true;
              return;
            }
            socket.write(rawAnswer({ ack: head.method === 'BITS_POST', ...ans }, keep));
            if (!keep) {
              socket.end();
              dead = true;
              return;
            }
            pump();
          });
      }
    };

    socket.on('data', (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      pump();
    });
    socket.on('close', () => {
      dead = true;
      this.sockets.delete(socket);
    });
  }

  // ---------------------------------------------------------------------------------------------- requests

  private begin(head: Head, entry: BitsRequestLog): Exchange {
    if (head.method === 'GET' || head.method === 'HEAD') {
      return { finish: () => this.serveFile(head) };
    }
    if (head.method !== 'BITS_POST') {
      return { finish: () => ({ status: 405, headers: { Allow: 'BITS_POST, GET, HEAD' }, ack: false }) };
    }
    const f = this.faults;
    if (f.redirectTo) {
      entry.fault = 'redirect';
      return { finish: () => ({ status: 307, headers: { Location: f.redirectTo! } }) };
    }
    if (head.contentLength === undefined) {
      // [MC-BUP] 3.2.5.2.3: a request without Content-Length is rejected (411, E_INVALIDARG).
      return { finish: () => error(411, BITS_ERRORS.E_INVALIDARG) };
    }
    const type = (head.headers['bits-packet-type'] ?? '').toLowerCase();
    if (f.failStatus !== undefined && (f.failTimes ?? 1) > 0 && (f.failPackets ?? ['Fragment']).some((p) => p.toLowerCase() === type)) {
      f.failTimes = (f.failTimes ?? 1) - 1;
      entry.fault = 'fail';
      const status = f.failStatus;
      const extra = f.failRetryAfter ? { 'Retry-After': f.failRetryAfter } : undefined;
      return { finish: () => error(status, f.failBitsError, extra) };
    }
    if (f.trickleAnswer && f.trickleAnswer.packets.some((p) => p.toLowerCase() === type)) {
      entry.fault = 'trickle';
      return { finish: () => ({ status: 200 }), trickleMs: f.trickleAnswer.intervalMs };
    }
    if (type !== 'fragment' && head.contentLength !== 0) {
      // Every packet but Fragment MUST have Content-Length 0 ([MC-BUP] 2.2.2.1, 2.2.4.1, 2.2.8.1, 2.2.10.1).
      return { finish: () => error(400, BITS_ERRORS.E_INVALIDARG) };
    }
    switch (type) {
      case 'ping':
        return { finish: () => ({ status: 200 }) };
      case 'create-session':
        return { finish: () => this.createSession(head) };
      case 'fragment':
        return this.fragment(head);
      case 'close-session':
        return { finish: () => this.closeSession(head) };
      case 'cancel-session':
        return { finish: () => this.cancelSession(head) };
      default:
        return { finish: () => error(400, BITS_ERRORS.E_INVALIDARG) };
    }
  }

  private createSession(head: Head): Answer {
    const offered = (head.headers['bits-supported-protocols'] ?? '').split(/[\s,]+/).map((p) => p.toLowerCase());
    if (!offered.includes(BITS_PROTOCOL_GUID)) {
      return error(400, BITS_ERRORS.E_INVALIDARG);
    }
    const contentName = decodeName(head.headers['content-name']);
    const destination = this.destinationOf(head.path, contentName);
    if (!destination) {
      return error(400, BITS_ERRORS.E_INVALIDARG);
    }
    let existing: fs.Stats | undefined;
    try {
      existing = fs.statSync(destination);
    } catch {
      existing = undefined;
    }
    if (existing?.isDirectory()) {
      return error(400, BITS_ERRORS.E_INVALIDARG);
    }
    if (existing && this.opts.allowOverwrite === false) {
      return error(403, BITS_ERRORS.E_ACCESSDENIED);
    }
    const guid = randomUUID().toUpperCase();
    const id = `{${guid}}`;
    const tempPath = path.join(this.sessionDir, `${guid}.upload`);
    const fd = fs.openSync(tempPath, 'w+');
    this.sessionMap.set(id, { id, urlPath: head.path, destination, tempPath, contentName, received: 0, fd });
    const headers: Record<string, string> = {
      'BITS-Protocol': BITS_PROTOCOL_GUID,
      'BITS-Session-Id': id,
      'Accept-Encoding': 'Identity',
    };
    if (this.opts.hostId) {
      headers['BITS-Host-Id'] = this.opts.hostId;
      if (this.opts.hostIdFallbackTimeoutSeconds !== undefined) {
        headers['BITS-Host-Id-Fallback-Timeout'] = String(this.opts.hostIdFallbackTimeoutSeconds);
      }
    }
    return { status: 200, headers };
  }

  private fragment(head: Head): Exchange {
    const s = this.sessionOf(head);
    if (!s) {
      return { finish: () => error(500, BITS_ERRORS.BG_E_SESSION_NOT_FOUND) };
    }
    const m = /^bytes\s+(\d{1,15})-(\d{1,15})\/(\d{1,15})$/i.exec((head.headers['content-range'] ?? '').trim());
    const start = m ? Number(m[1]) : NaN;
    const end = m ? Number(m[2]) : NaN;
    const total = m ? Number(m[3]) : NaN;
    const length = head.contentLength ?? 0;
    const sid = { 'BITS-Session-Id': s.id };
    if (!m || end < start || end >= total || end - start + 1 !== length || (s.total !== undefined && s.total !== total)) {
      return { finish: () => error(400, BITS_ERRORS.E_INVALIDARG, sid) };
    }
    if (this.opts.maxUploadBytes !== undefined && total > this.opts.maxUploadBytes) {
      return { finish: () => error(500, BITS_ERRORS.BG_E_TOO_LARGE, sid) };
    }
    if (this.opts.maxFragmentBytes !== undefined && length > this.opts.maxFragmentBytes) {
      return { finish: () => ({ status: 413, headers: { ...sid, 'BITS-Received-Content-Range': String(s.received) } }) };
    }
    s.total = total;
    const outOfSync = (): Answer => ({ status: 416, headers: { ...sid, 'BITS-Received-Content-Range': String(s.received) } });
    if (start > s.received || (this.opts.strictContiguous && start !== s.received)) {
      return { finish: outOfSync };
    }
    const token = {};
    s.writer = token;
    const keep = this.opts.keepPartialFragments ?? true;
    const pending: Buffer[] = [];
    let seen = 0;
    let gap = false;
    const write = (chunk: Buffer, pos: number): void => {
      if (s.writer !== token || !this.sessionMap.has(s.id)) {
        return;
      }
      if (pos > s.received) {
        gap = true;
        return;
      }
      const skip = s.received - pos;
      if (skip >= chunk.length) {
        return;
      }
      const part = chunk.subarray(skip);
      fs.writeSync(s.fd, part, 0, part.length, s.received);
      s.received += part.length;
    };
    const f = this.faults;
    return {
      onData: (chunk) => {
        const pos = start + seen;
        const drop = f.dropAfterBytes !== undefined && (f.dropTimes ?? 1) > 0 && seen + chunk.length >= f.dropAfterBytes;
        const part = drop ? chunk.subarray(0, Math.max(0, f.dropAfterBytes! - seen)) : chunk;
        seen += part.length;
        if (keep) {
          write(part, pos);
        } else {
          pending.push(Buffer.from(part));
        }
        if (drop) {
          f.dropTimes = (f.dropTimes ?? 1) - 1;
          return 'drop';
        }
        return undefined;
      },
      finish: async () => {
        if (!keep) {
          write(Buffer.concat(pending), start);
        }
        if (s.writer === token) {
          s.writer = undefined;
        }
        if (!this.sessionMap.has(s.id)) {
          return error(500, BITS_ERRORS.BG_E_SESSION_NOT_FOUND);
        }
        if (f.ackDelayMs) {
          await new Promise((r) => setTimeout(r, f.ackDelayMs));
        }
        return gap ? outOfSync() : { status: 200, headers: { ...sid, 'BITS-Received-Content-Range': String(s.received) } };
      },
    };
  }

  private closeSession(head: Head): Answer {
    const s = this.sessionOf(head);
    if (!s) {
      return error(500, BITS_ERRORS.BG_E_SESSION_NOT_FOUND);
    }
    const sid = { 'BITS-Session-Id': s.id };
    const complete = s.total === undefined ? s.received === 0 : s.received === s.total;
    if (!complete) {
      // "If you send this packet before uploading all fragments, the upload file is deleted."
      this.dropSession(s);
      return { status: 200, headers: sid };
    }
    if (this.opts.allowOverwrite === false && fs.existsSync(s.destination)) {
      return error(403, BITS_ERRORS.E_ACCESSDENIED, sid);
    }
    closeQuietly(s.fd);
    fs.mkdirSync(path.dirname(s.destination), { recursive: true });
    try {
      fs.renameSync(s.tempPath, s.destination);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EXDEV') {
        throw e;
      }
      fs.copyFileSync(s.tempPath, s.destination);
      fs.rmSync(s.tempPath, { force: true });
    }
    this.sessionMap.delete(s.id);
    return { status: 200, headers: sid };
  }

  private cancelSession(head: Head): Answer {
    const s = this.sessionOf(head);
    if (!s) {
      return error(500, BITS_ERRORS.BG_E_SESSION_NOT_FOUND);
    }
    this.dropSession(s);
    return { status: 200, headers: { 'BITS-Session-Id': s.id } };
  }

  private serveFile(head: Head): Answer {
    const file = this.destinationOf(head.path);
    let body: Buffer | undefined;
    try {
      body = file ? fs.readFileSync(file) : undefined;
    } catch {
      body = undefined;
    }
    if (!body) {
      return { status: 404, ack: false };
    }
    return { status: 200, ack: false, headers: { 'Content-Type': 'application/octet-stream' }, contentLength: body.length, body: head.method === 'HEAD' ? undefined : body };
  }

  private sessionOf(head: Head): Session | undefined {
    const id = head.headers['bits-session-id'];
    return id === undefined ? undefined : this.sessionMap.get(id);
  }

  private dropSession(s: Session): void {
    closeQuietly(s.fd);
    fs.rmSync(s.tempPath, { force: true });
    this.sessionMap.delete(s.id);
  }

  private tempDir(prefix: string): string {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    this.ownDirs.push(d);
    return d;
  }
}

/** For the demo: a BITS upload server on 127.0.0.1 (port 0 unless given). */
export function startBitsUploadServer(opts: BitsUploadServerOptions = {}): Promise<BitsUploadServer> {
  return BitsUploadServer.start(opts);
}

// ------------------------------------------------------------------------------------------------ HTTP/1.1 bits

function parseHead(text: string): Head | undefined {
  const lines = text.split('\r\n');
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/(1\.[01])$/.exec(lines[0] ?? '');
  if (!m) {
    return undefined;
  }
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0 || /\s/.test(line.slice(0, i))) {
      return undefined;
    }
    const name = line.slice(0, i).toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  let target = m[2];
  let absoluteForm = false;
  if (/^https?:\/\//i.test(target)) {
    try {
      const u = new URL(target);
      target = u.pathname + u.search;
      absoluteForm = true;
    } catch {
      return undefined;
    }
  }
  if (!target.startsWith('/')) {
    return undefined;
  }
  let contentLength: number | undefined;
  if (headers['content-length'] !== undefined) {
    if (!/^\d{1,15}$/.test(headers['content-length'])) {
      return undefined;
    }
    contentLength = Number(headers['content-length']);
  }
  const connection = (headers['connection'] ?? '').toLowerCase();
  const keepAlive = m[3] === '1.1' ? !connection.includes('close') : connection.includes('keep-alive');
  return { method: m[1], path: target, absoluteForm, version: m[3], headers, contentLength, keepAlive };
}

function rawAnswer(a: Answer, keepAlive: boolean): Buffer {
  const lines = [`HTTP/1.1 ${a.status} ${REASONS[a.status] ?? 'Status'}`];
  if (a.ack ?? true) {
    lines.push('BITS-Packet-Type: Ack');
  }
  const headers = { ...(a.headers ?? {}) };
  if (a.bitsError !== undefined) {
    headers['BITS-Error-Code'] = '0x' + (a.bitsError >>> 0).toString(16).toUpperCase().padStart(8, '0');
    headers['BITS-Error-Context'] = '0x5';
  }
  for (const [k, v] of Object.entries(headers)) {
    lines.push(`${k}: ${v}`);
  }
  lines.push(`Content-Length: ${a.contentLength ?? a.body?.length ?? 0}`);
  lines.push(`Connection: ${keepAlive ? 'keep-alive' : 'close'}`);
  const head = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
  return a.body ? Buffer.concat([head, a.body]) : head;
}

function error(status: number, bitsError?: number, headers?: Record<string, string>): Answer {
  return { status, bitsError, headers };
}

function decodeName(v: string | undefined): string | undefined {
  if (v === undefined) {
    return undefined;
  }
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/** A Content-Name usable as a file name: no path, none of \ / : * ? " < > | ([MC-BUP] <3>), no control characters. */
function safeName(name: string): string | undefined {
  const base = name.replace(/[\\/:*?"<>|\x00-\x1f]/g, '_').trim();
  return base === '' || base === '.' || base === '..' ? undefined : base;
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}
