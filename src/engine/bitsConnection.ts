// The transport of BITS upload packets: one keep-alive HTTP/1.1 connection per upload, straight or through the
// proxy proxyRules.ts picks (absolute-form requests for http, a CONNECT tunnel for https), under a deadline, with
// the body written at the pace of the speed limit.
//
// Why node:http rather than undici here: every BITS request MUST carry Content-Length ([MC-BUP] 2.2.1.1; the Windows
// server answers 400 without it, <23>), but undici omits "Content-Length: 0" on a body-less request whose method is not
// POST/PUT/PATCH/... (client-h1 writeH1, `expectsPayload`), which is every BITS packet except Fragment, and it closes
// the connection after each Fragment. node:http sends the header we give it and keeps the connection.
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import type { BitsAnswer } from './bitsPackets';
import type { NetworkSettings } from './dispatcher';
import { routeFor } from './proxyRules';
import type { TransferTimeouts } from './transfer';
import { bareHostname as bare } from './validation';

/**
 * Every packet's exchange must end: an answer within the header time-out plus the body idle time-out (90 s by
 * default), plus 1 ms per byte sent (a Fragment on a slow link). The socket idle time-out alone never fires on a
 * server that trickles its answer.
 */
function requestDeadlineMs(t: TransferTimeouts, bodyBytes: number): number {
  return t.headersMs + t.bodyIdleMs + bodyBytes;
}

/** A keep-alive connection for the packets of one upload: the protocol allows one outstanding request at a time. */
export class BitsConnection {
  private readonly agents = new Map<string, http.Agent>();

  constructor(
    private readonly o: {
      network?: NetworkSettings;
      timeouts: TransferTimeouts;
      signal?: AbortSignal;
      env?: NodeJS.ProcessEnv;
      pace?: (bytes: number) => Promise<void> | undefined;
    },
  ) {}

  private get timeoutMs(): number {
    return this.o.timeouts.headersMs;
  }

  post(url: URL, headers: Record<string, string>, body: Buffer): Promise<BitsAnswer> {
    const secure = url.protocol === 'https:';
    const route = routeFor(url, this.o.network, this.o.env);
    const proxy = parsedProxy(route.proxy);
    const tlsOptions: tls.ConnectionOptions = route.tls;
    // [MC-BUP] 2.2.1.1: Content-Length MUST be present on every request, 0 included.
    const all: Record<string, string> = { ...headers, 'Content-Length': String(body.length) };
    let opts: https.RequestOptions;
    if (proxy && !secure) {
      // Plain http through a proxy: the request goes to the proxy with the absolute URL as target.
      opts = {
        protocol: proxy.protocol,
        hostname: bare(proxy.hostname),
        port: proxy.port || (proxy.protocol === 'https:' ? 443 : 80),
        path: url.href,
        headers: { ...all, Host: url.host, ...proxyAuthorization(proxy) },
        agent: this.agent(`proxy ${proxy.href}`, () =>
          proxy.protocol === 'https:' ? new https.Agent({ keepAlive: true, maxSockets: 1, ...tlsOptions }) : new http.Agent({ keepAlive: true, maxSockets: 1 })),
      };
    } else {
      opts = {
        protocol: url.protocol,
        hostname: bare(url.hostname),
        port: url.port || (secure ? 443 : 80),
        path: url.pathname + url.search,
        headers: all,
        agent: this.agent(secure ? `tls ${proxy?.href ?? ''}` : 'plain', () => {
          if (!secure) {
            return new http.Agent({ keepAlive: true, maxSockets: 1 });
          }
          return proxy ? new TunnelAgent(proxy, this.timeoutMs, { keepAlive: true, maxSockets: 1, ...tlsOptions }) : new https.Agent({ keepAlive: true, maxSockets: 1, ...tlsOptions });
        }),
      };
    }
    opts.method = 'BITS_POST';
    if (this.o.signal) {
      opts.signal = this.o.signal;
    }
    const deadline = requestDeadlineMs(this.o.timeouts, body.length);
    return new Promise<BitsAnswer>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (f: () => void): void => {
        clearTimeout(timer);
        timer = undefined;
        f();
      };
      const req = (opts.protocol === 'https:' ? https : http).request(opts, (res) => {
        res.on('data', () => undefined);
        res.once('end', () => settle(() => resolve({ status: res.statusCode ?? 0, headers: res.headers })));
        res.once('error', (e) => settle(() => reject(e)));
        res.once('close', () => {
          if (!res.complete) {
            settle(() => reject(Object.assign(new Error('the connection closed in the middle of the answer'), { code: 'ECONNRESET' })));
          }
        });
      });
      timer = setTimeout(() => {
        // Rejected first: once the answer has begun, destroying the request only closes the response.
        settle(() => reject(Object.assign(new Error(`no complete answer within ${deadline} ms`), { code: 'ETIMEDOUT' })));
        req.destroy();
      }, deadline);
      req.setTimeout(this.timeoutMs, () => {
        req.destroy(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      });
      req.once('error', (e) => settle(() => reject(e)));
      if (this.o.pace && body.length > 0) {
        void writePaced(req, body, this.o.pace);
      } else {
        req.end(body);
      }
    });
  }

  private agent(key: string, make: () => http.Agent): http.Agent {
    let a = this.agents.get(key);
    if (!a) {
      a = make();
      this.agents.set(key, a);
    }
    return a;
  }

  close(): void {
    for (const a of this.agents.values()) {
      a.destroy();
    }
    this.agents.clear();
  }
}

/** Under a speed limit a fragment goes in pieces this large, each paid for before it is written. */
const PACED_PIECE_BYTES = 16 * 1024;

/**
 * Writes `body` piece by piece, each once `pace` lets it go, and waits for the socket to take each piece (so
 * the limit paces what leaves, not what waits in Node's buffers). Ends early, quietly, when the request is
 * destroyed: its error or time-out is what post() reports.
 */
async function writePaced(req: http.ClientRequest, body: Buffer, pace: (bytes: number) => Promise<void> | undefined): Promise<void> {
  let wake: (() => void) | undefined;
  req.once('close', () => wake?.());
  for (let at = 0; at < body.length; at += PACED_PIECE_BYTES) {
    const piece = body.subarray(at, at + PACED_PIECE_BYTES);
    await pace(piece.length);
    if (req.destroyed) {
      return;
    }
    await new Promise<void>((resolve) => {
      wake = resolve;
      req.write(piece, () => resolve());
    });
    if (req.destroyed) {
      return;
    }
  }
  req.end();
}

/** https through an http(s) proxy: a CONNECT tunnel, then TLS to the upload server inside it. */
class TunnelAgent extends https.Agent {
  constructor(
    private readonly proxy: URL,
    private readonly timeoutMs: number,
    opts: https.AgentOptions,
  ) {
    super(opts);
  }

  override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const done = callback ?? (() => undefined);
    const target = `${options.hostname ?? options.host}:${options.port ?? 443}`;
    const req = (this.proxy.protocol === 'https:' ? https : http).request({
      hostname: bare(this.proxy.hostname),
      port: this.proxy.port || (this.proxy.protocol === 'https:' ? 443 : 80),
      method: 'CONNECT',
      path: target,
      headers: { Host: target, ...proxyAuthorization(this.proxy) },
      agent: false,
      timeout: this.timeoutMs,
    });
    req.once('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        // Worded as undici words it, so that networkError() classifies the proxy's answer like any HTTP status.
        done(new Error(`Proxy response (${res.statusCode}) !== 200 when HTTP Tunneling`), undefined as unknown as Duplex);
        return;
      }
      const host = bare(String(options.hostname ?? options.host ?? ''));
      // No SNI for an IP literal (RFC 6066), as https.Agent does.
      const servername = options.servername || (net.isIP(host) ? undefined : host);
      done(null, tls.connect({ socket, ...(servername ? { servername } : {}), rejectUnauthorized: this.options.rejectUnauthorized, ...(this.options.ca ? { ca: this.options.ca } : {}) }));
    });
    req.once('timeout', () => req.destroy(Object.assign(new Error('the proxy did not answer CONNECT in time'), { code: 'ETIMEDOUT' })));
    req.once('error', (e) => done(e, undefined as unknown as Duplex));
    req.end();
    return undefined;
  }
}

/** A proxy setting that is not a URL leaves the packets going straight to the server (undici's ProxyAgent throws on it instead). */
function parsedProxy(proxy: string | undefined): URL | undefined {
  try {
    return proxy === undefined ? undefined : new URL(proxy);
  } catch {
    return undefined;
  }
}

function proxyAuthorization(proxy: URL): Record<string, string> {
  if (!proxy.username) {
    return {};
  }
  const cred = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return { 'Proxy-Authorization': 'Basic ' + Buffer.from(cred).toString('base64') };
}

