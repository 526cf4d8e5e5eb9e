// The engine's own undici dispatcher. Never the global one: the extension host is shared with other extensions,
// and VS Code's proxy patching does not reach a bundled undici, so proxies are resolved here.
import type { Dispatcher, EnvHttpProxyAgent } from 'undici';
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

export function createDispatcher(s: NetworkSettings = {}, env: NodeJS.ProcessEnv = process.env): Dispatcher {
  const { Agent, EnvHttpProxyAgent } = undici();
  const connect = {
    timeout: s.connectTimeoutMs ?? 15_000,
    rejectUnauthorized: s.strictSSL ?? true,
    ...(s.ca ? { ca: s.ca } : {}),
  };
  const common = {
    connections: s.connectionsPerOrigin ?? 16,
    keepAliveTimeout: 4_000,
    // HTTP/1.1: h2 flow-control windows throttle big bodies.
    allowH2: false,
    connect,
  };
  const httpProxy = withScheme(s.proxy || env.http_proxy || env.HTTP_PROXY);
  const httpsProxy = withScheme(s.proxy || env.https_proxy || env.HTTPS_PROXY) || httpProxy;
  if (!httpProxy && !httpsProxy) {
    return new Agent(common);
  }
  const noProxy = s.noProxy && s.noProxy.length > 0 ? s.noProxy.join(',') : (env.no_proxy ?? env.NO_PROXY ?? '');
  return new EnvHttpProxyAgent({
    ...common,
    httpProxy,
    httpsProxy,
    noProxy,
    requestTls: connect,
    proxyTls: connect,
    // http:// URLs go to the proxy as absolute-form requests (as curl and browsers do); only https:// is
    // tunnelled with CONNECT. Stock proxy configs allow CONNECT to port 443 only (squid: "deny CONNECT !SSL_ports").
    proxyTunnel: false,
  } as EnvHttpProxyAgent.Options);
}

/** 'proxy.example:3128', as people type it in http.proxy or HTTP_PROXY, means http://proxy.example:3128 (as curl reads it). */
function withScheme(proxy: string | undefined): string | undefined {
  const p = proxy?.trim();
  return p && !/^[a-z][a-z0-9+.-]*:\/\//i.test(p) ? `http://${p}` : p || undefined;
}
