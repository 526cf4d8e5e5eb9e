// The proxy rules (proxyRules.ts) that downloads (dispatcher.ts) and uploads (bitsConnection.ts) share, as a pure
// function of the URL, the settings and the environment. proxy.test.ts and upload.test.ts go through a real squid;
// these pin each decision, so that a mutation of one rule fails here.
import * as assert from 'node:assert/strict';
import { configuredProxies, routeFor } from '../../src/engine/proxyRules';

const proxyOf = (url: string, s: Parameters<typeof routeFor>[1], env: NodeJS.ProcessEnv = {}): string | undefined => routeFor(new URL(url), s, env).proxy;

describe('proxy rules (proxyRules.ts)', () => {
  describe('which proxy', () => {
    it('none configured: straight to the server', () => {
      assert.equal(proxyOf('http://a.example/', {}), undefined);
      assert.equal(proxyOf('https://a.example/', {}, { NO_PROXY: 'b.example' }), undefined);
    });

    it('the setting serves http and https, before any environment variable', () => {
      const env = { HTTP_PROXY: 'http://env:1', HTTPS_PROXY: 'http://env:2' };
      assert.equal(proxyOf('http://a.example/', { proxy: 'http://set:3128' }, env), 'http://set:3128');
      assert.equal(proxyOf('https://a.example/', { proxy: 'http://set:3128' }, env), 'http://set:3128');
    });

    it('from the environment: https URLs take HTTPS_PROXY, else HTTP_PROXY; http URLs never take HTTPS_PROXY; lower case first', () => {
      assert.equal(proxyOf('https://a.example/', {}, { HTTP_PROXY: 'http://h:1', HTTPS_PROXY: 'http://s:2' }), 'http://s:2');
      assert.equal(proxyOf('https://a.example/', {}, { HTTP_PROXY: 'http://h:1' }), 'http://h:1');
      assert.equal(proxyOf('http://a.example/', {}, { HTTPS_PROXY: 'http://s:2' }), undefined);
      assert.equal(proxyOf('http://a.example/', {}, { http_proxy: 'http://lower:1', HTTP_PROXY: 'http://upper:1' }), 'http://lower:1');
      assert.equal(proxyOf('https://a.example/', {}, { https_proxy: 'http://lower:2', HTTPS_PROXY: 'http://upper:2' }), 'http://lower:2');
    });

    it('an empty setting leaves the environment in force', () => {
      assert.equal(proxyOf('http://a.example/', { proxy: '' }, { HTTP_PROXY: 'http://env:1' }), 'http://env:1');
    });

    it('typed without a scheme (host:port, user:pass@host:port) means http://; spaces around are dropped; other schemes stay', () => {
      assert.equal(proxyOf('http://a.example/', { proxy: '127.0.0.1:3128' }), 'http://127.0.0.1:3128');
      assert.equal(proxyOf('http://a.example/', { proxy: ' me:pw@proxy:3128 ' }), 'http://me:pw@proxy:3128');
      assert.equal(proxyOf('https://a.example/', { proxy: 'HTTPS://proxy:443' }), 'HTTPS://proxy:443');
      assert.deepEqual(configuredProxies({ proxy: '   ' }, {}), { http: undefined, https: undefined });
    });
  });

  describe('noProxy / NO_PROXY', () => {
    const set = (noProxy: string[]): { proxy: string; noProxy: string[] } => ({ proxy: 'http://p:1', noProxy });

    it('a name bypasses the proxy for that host and the hosts under it, in any case, but not for a longer name', () => {
      assert.equal(proxyOf('http://intranet.example/', set(['intranet.example'])), undefined);
      assert.equal(proxyOf('http://files.INTRANET.example/', set(['Intranet.Example'])), undefined);
      assert.equal(proxyOf('http://notintranet.example/', set(['intranet.example'])), 'http://p:1');
      assert.equal(proxyOf('http://intranet.example.com/', set(['intranet.example'])), 'http://p:1');
    });

    it('.name and *.name are the same as name', () => {
      for (const entry of ['.intranet.example', '*.intranet.example']) {
        assert.equal(proxyOf('http://intranet.example/', set([entry])), undefined, entry);
        assert.equal(proxyOf('http://a.intranet.example/', set([entry])), undefined, entry);
        assert.equal(proxyOf('http://other.example/', set([entry])), 'http://p:1', entry);
      }
    });

    it('host:port bypasses on that port only (the scheme\'s default port when the URL names none)', () => {
      assert.equal(proxyOf('http://a.example:8080/', set(['a.example:8080'])), undefined);
      assert.equal(proxyOf('http://a.example:8081/', set(['a.example:8080'])), 'http://p:1');
      assert.equal(proxyOf('http://a.example/', set(['a.example:80'])), undefined);
      assert.equal(proxyOf('https://a.example/', set(['a.example:80'])), 'http://p:1');
      assert.equal(proxyOf('https://a.example/', set(['a.example:443'])), undefined);
    });

    it('* bypasses every host, also among other entries', () => {
      assert.equal(proxyOf('http://a.example/', set(['*'])), undefined);
      assert.equal(proxyOf('https://b.example/', set(['localhost', '*'])), undefined);
    });

    it('IPv6 literals, with brackets, with a port, or bare', () => {
      assert.equal(proxyOf('http://[::1]:8080/', set(['[::1]'])), undefined);
      assert.equal(proxyOf('http://[::1]:8080/', set(['[::1]:8080'])), undefined);
      assert.equal(proxyOf('http://[::1]:8081/', set(['[::1]:8080'])), 'http://p:1');
      assert.equal(proxyOf('http://[::1]:8080/', set(['::1'])), undefined);
      assert.equal(proxyOf('http://[::2]/', set(['::1'])), 'http://p:1');
    });

    it('a list in one string, by commas or spaces; empty entries ignored', () => {
      const env = { HTTP_PROXY: 'http://p:1', NO_PROXY: ' a.example,, b.example  c.example ' };
      for (const host of ['a.example', 'b.example', 'c.example']) {
        assert.equal(proxyOf(`http://${host}/`, {}, env), undefined, host);
      }
      assert.equal(proxyOf('http://d.example/', {}, env), 'http://p:1');
    });

    it('the setting replaces NO_PROXY (not added to it); an empty one leaves NO_PROXY in force; no_proxy before NO_PROXY', () => {
      const env = { HTTP_PROXY: 'http://p:1', NO_PROXY: 'env.example' };
      assert.equal(proxyOf('http://env.example/', { noProxy: ['set.example'] }, env), 'http://p:1');
      assert.equal(proxyOf('http://set.example/', { noProxy: ['set.example'] }, env), undefined);
      assert.equal(proxyOf('http://env.example/', { noProxy: [] }, env), undefined);
      assert.equal(proxyOf('http://upper.example/', {}, { ...env, no_proxy: 'lower.example', NO_PROXY: 'upper.example' }), 'http://p:1');
      assert.equal(proxyOf('http://lower.example/', {}, { ...env, no_proxy: 'lower.example', NO_PROXY: 'upper.example' }), undefined);
    });
  });

  it('TLS: certificates are verified unless strictSSL is false; extra CAs go along', () => {
    const url = new URL('https://a.example/');
    assert.deepEqual(routeFor(url, {}, {}).tls, { rejectUnauthorized: true });
    assert.deepEqual(routeFor(url, { strictSSL: true }, {}).tls, { rejectUnauthorized: true });
    assert.deepEqual(routeFor(url, { strictSSL: false, ca: 'PEM' }, {}).tls, { rejectUnauthorized: false, ca: 'PEM' });
    assert.deepEqual(routeFor(url, { proxy: 'http://p:1', noProxy: ['a.example'], strictSSL: false }, {}).tls, { rejectUnauthorized: false }, 'also on a direct request');
  });
});
