// The dispatcher for settings with a proxy: each request goes straight or through a proxy as proxyRules.ts decides
// for its origin. Built as undici's EnvHttpProxyAgent is, with those rules in place of its own NO_PROXY matching, so
// that downloads and uploads (bitsConnection.ts) cannot disagree on which hosts bypass the proxy.
import type { Dispatcher } from 'undici';
import { undici } from './undici';

/** `proxied`: a dispatcher for each proxy `route` may name (by its URL); `route` gives none for a direct request. */
export function proxyRouter(direct: Dispatcher, proxied: ReadonlyMap<string, Dispatcher>, route: (origin: URL) => string | undefined): Dispatcher {
  const { DispatcherBase, kDispatch, kClose, kDestroy } = undici();
  const all = [direct, ...proxied.values()];
  class ProxyRouter extends DispatcherBase {
    // DispatcherBase.dispatch calls this once the router is known open, and hands what it throws to the handler.
    [kDispatch](opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
      const proxy = route(new URL(String(opts.origin)));
      return (proxy === undefined ? direct : proxied.get(proxy)!).dispatch(opts, handler);
    }

    [kClose](): Promise<unknown> {
      return Promise.all(all.map((d) => d.close()));
    }

    [kDestroy](err: Error): Promise<unknown> {
      return Promise.all(all.map((d) => d.destroy(err)));
    }
  }
  return new ProxyRouter();
}
