// The engine's own undici dispatcher. Never the global one: the extension host is shared with other extensions,
// and VS Code's proxy patching does not reach a bundled undici, so proxies are resolved here, by the rules of
// proxyRules.ts that the uploads follow too.
import type { Dispatcher } from 'undici';
import { configuredProxies, routeFor, tlsRules } from './proxyRules';
import { proxyRouter } from './proxyRouter';
import { undici } from './undici';

export interface NetworkSettings {
  /** Proxy URL (VS Code's http.proxy); empty means: use the environment's HTTP(S)_PROXY, if any. */
  proxy?: string;
  /** Hosts that bypass the proxy (VS Code's http.noProxy, or NO_PROXY). */
  noProxy?: string[];
  /** Verify TLS certificates of servers and proxies (VS Code's http.proxyStrictSSL). Default true. */
  strictSSL?: boolean;
  /** Extra trusted certificate authorities (PEM). */
  ca?: string | string[];
  connectTimeoutMs?: number;
  /** Connections per origin: segments and parallel files share this pool. */
  connectionsPerOrigin?: number;
}

/**
 * Under a speed limit, plain-http sockets read the kernel this much at a time (Node's default is 64 KiB, and the
 * socket buffers 64 KiB more): the reader takes bytes off the kernel in small steps as the limiter lets it, so
 * the receive window reopens in small steps too and the kernel does not grow the receive buffer (it grows it
 * after large reads), and the server's rate follows the limit more closely.
 */
const PACED_READ_BYTES = 16 * 1024;

/**
 * `paced`: the dispatcher for transfers under a speed limit (see PACED_READ_BYTES). Through a proxy, or over
 * https (TLS reads the socket itself), it reads as the ordinary one does.
 */
export function createDispatcher(s: NetworkSettings = {}, env: NodeJS.ProcessEnv = process.env, paced = false): Dispatcher {
  const { Agent, ProxyAgent, buildConnector } = undici();
  const connect = {
    timeout: s.connectTimeoutMs ?? 15_000,
    ...tlsRules(s),
  };
  const common = {
    connections: s.connectionsPerOrigin ?? 16,
    keepAliveTimeout: 4_000,
    // HTTP/1.1: h2 flow-control windows throttle big bodies.
    allowH2: false,
    connect,
  };
  const proxies = configuredProxies(s, env);
  if (!proxies.http && !proxies.https) {
    return new Agent(paced ? { ...common, connect: smallReadsConnector(buildConnector, connect) } : common);
  }
  // Made now, not on first use: a proxy setting undici cannot use fails here, before any transfer.
  const proxied = new Map<string, Dispatcher>();
  for (const uri of [proxies.http, proxies.https]) {
    if (uri && !proxied.has(uri)) {
      proxied.set(uri, new ProxyAgent({
        ...common,
        uri,
        requestTls: connect,
        proxyTls: connect,
        // http:// URLs go to the proxy as absolute-form requests (as curl and browsers do); only https:// is
        // tunnelled with CONNECT. Stock proxy configs allow CONNECT to port 443 only (squid: "deny CONNECT !SSL_ports").
        proxyTunnel: false,
      }));
    }
  }
  return proxyRouter(new Agent(common), proxied, (url) => routeFor(url, s, env).proxy);
}

/** Connects as undici does, but plain-http sockets read PACED_READ_BYTES at a time (Node's `onread` buffer). */
function smallReadsConnector(build: typeof import('undici').buildConnector, options: import('undici').buildConnector.BuildOptions): import('undici').buildConnector.connector {
  const secure = build(options);
  // Passed on to net.connect (undici's types list only its own options).
  const plain = build({
    ...options,
    highWaterMark: PACED_READ_BYTES,
    onread: {
      buffer: () => Buffer.allocUnsafe(PACED_READ_BYTES),
      // The buffer is reused for the next read: push a copy. push() saying "full" stops reading, as Node's own.
      callback(this: import('node:net').Socket, n: number, buf: Uint8Array): boolean {
        return this.push(Buffer.from(buf.subarray(0, n)));
      },
    },
  } as unknown as import('undici').buildConnector.BuildOptions);
  return (opts, callback) => (opts.protocol === 'https:' ? secure : plain)(opts, callback);
}
