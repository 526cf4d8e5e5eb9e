// Which proxy a request goes through and how its TLS is checked, from the network settings (VS Code's http.proxy,
// http.noProxy, http.proxyStrictSSL) and the environment (HTTP(S)_PROXY, NO_PROXY). Written once: the downloads'
// dispatcher (dispatcher.ts) and the uploads' connection (bitsConnection.ts) both ask routeFor().
import type { NetworkSettings } from './dispatcher';
import { bareHostname } from './validation';

export interface Route {
  /** The proxy's URL, with a scheme; none: straight to the server. */
  proxy?: string;
  /** For the server's certificate and for an https proxy's. */
  tls: TlsRules;
}

export interface TlsRules {
  rejectUnauthorized: boolean;
  ca?: string | string[];
}

/** The proxy and TLS rules for one URL: the setting, else HTTP(S)_PROXY, unless noProxy (else NO_PROXY) names the host. */
export function routeFor(url: URL, s: NetworkSettings = {}, env: NodeJS.ProcessEnv = process.env): Route {
  const proxies = configuredProxies(s, env);
  const proxy = url.protocol === 'https:' ? proxies.https : proxies.http;
  return { ...(proxy && !bypassesProxy(url, s, env) ? { proxy } : {}), tls: tlsRules(s) };
}

/** Verify certificates unless strictSSL is false (VS Code's http.proxyStrictSSL), trusting the extra CAs too. */
export function tlsRules(s: NetworkSettings = {}): TlsRules {
  return { rejectUnauthorized: s.strictSSL ?? true, ...(s.ca ? { ca: s.ca } : {}) };
}

/** The proxies in force before noProxy: one for http:// URLs, one for https:// (the http one when no other is set). */
export function configuredProxies(s: NetworkSettings = {}, env: NodeJS.ProcessEnv = process.env): { http?: string; https?: string } {
  const http = withScheme(s.proxy || env.http_proxy || env.HTTP_PROXY);
  const https = withScheme(s.proxy || env.https_proxy || env.HTTPS_PROXY) || http;
  return { http, https };
}

/** 'proxy.example:3128', as people type it in http.proxy or HTTP_PROXY, means http://proxy.example:3128 (as curl reads it). */
function withScheme(proxy: string | undefined): string | undefined {
  const p = proxy?.trim();
  return p && !/^[a-z][a-z0-9+.-]*:\/\//i.test(p) ? `http://${p}` : p || undefined;
}

/**
 * Whether noProxy (else NO_PROXY) names the URL's host: an entry `*` names every host; `name` or `.name` or `*.name`
 * names that host and the hosts under it; `entry:port` only on that port. IPv6 literals with or without brackets.
 */
function bypassesProxy(url: URL, s: NetworkSettings, env: NodeJS.ProcessEnv): boolean {
  const list = s.noProxy && s.noProxy.length > 0 ? s.noProxy.join(',') : (env.no_proxy ?? env.NO_PROXY ?? '');
  // URL has put the host name in lower case already.
  const host = bareHostname(url.hostname);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  for (const raw of list.split(/[,\s]+/)) {
    const entry = raw.trim().toLowerCase();
    if (!entry) {
      continue;
    }
    if (entry === '*') {
      return true;
    }
    const { name, entryPort } = splitEntry(entry);
    if (entryPort !== undefined && entryPort !== port) {
      continue;
    }
    const bare = name.replace(/^\*?\./, '');
    if (host === bare || host.endsWith('.' + bare)) {
      return true;
    }
  }
  return false;
}

/** `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 literal (its colons are no port). */
function splitEntry(entry: string): { name: string; entryPort?: number } {
  const bracketed = /^\[([^\]]*)\](?::(\d+))?$/.exec(entry);
  if (bracketed) {
    return { name: bracketed[1], entryPort: bracketed[2] === undefined ? undefined : Number(bracketed[2]) };
  }
  const withPort = /^([^:]*):(\d+)$/.exec(entry);
  return withPort ? { name: withPort[1], entryPort: Number(withPort[2]) } : { name: entry };
}
