// The "proxy" rows of the fault matrix: downloads through a real HTTP proxy (Debian's squid on 127.0.0.1,
// started by these tests), with and without proxy authentication, and noProxy honoured. When squid cannot be
// installed or started, every test here FAILS with the reason (it never passes silently).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createDispatcher, type DownloadEngine, type JobImpl } from '../../src/engine';
import { openEngine, tempDir, waitForState } from '../support/engineHarness';
import { sha256File } from '../support/faults';
import { matrix, matrixNote } from '../support/matrix';
import { Squid } from '../support/squid';
import { randomBody, sha256Hex, TEST_TLS, TestServer } from '../support/testServer';

const USER = 'alice';
const PASSWORD = 'correct horse:battery/staple';

describe('fault matrix: proxy (squid)', function () {
  // The first run on a machine may install squid with apt-get.
  this.timeout(60_000);
  let open: Squid | undefined;
  let authed: Squid | undefined;
  let startError: Error | undefined;
  let origin: TestServer;
  let other: TestServer;
  let dir: string;
  const engines: DownloadEngine[] = [];
  const body = randomBody(1_500_000, 61);

  before(async function () {
    this.timeout(15 * 60_000);
    origin = await TestServer.start();
    other = await TestServer.start();
    try {
      open = await Squid.start({}, (m) => console.log(`      ${m}`));
      authed = await Squid.start({ auth: { user: USER, password: PASSWORD } });
      const v = spawnSync('squid', ['-v'], { encoding: 'utf8' }).stdout?.split('\n')[0] ?? '';
      matrixNote('proxy', `${v.trim() || 'squid'} on 127.0.0.1 (ports ${open.port} open, ${authed.port} with Basic auth via basic_ncsa_auth)`);
    } catch (e) {
      startError = e as Error;
      matrixNote('proxy', `squid unavailable: ${startError.message}`);
    }
  });
  after(async () => {
    await open?.stop();
    await authed?.stop();
    await origin.close();
    await other.close();
  });
  beforeEach(() => {
    origin.reset();
    other.reset();
    dir = tempDir('md-proxy-');
  });
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.dispose()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** The running squid, or the reason it is not running, as this test's failure. */
  function need(s: Squid | undefined): Squid {
    if (!s) {
      throw startError ?? new Error('squid did not start');
    }
    return s;
  }

  async function engineWith(extra: Parameters<typeof openEngine>[1]): Promise<DownloadEngine> {
    const e = await openEngine(path.join(dir, `store${engines.length}`), extra);
    engines.push(e);
    return e;
  }

  async function start(e: DownloadEngine, url: string, name: string): Promise<JobImpl> {
    const job = await e.createJob({ displayName: name });
    await job.setMinimumRetryDelay(0);
    await job.addFile(url, path.join(dir, name), { sha256: sha256Hex(body) });
    await job.resume();
    return job;
  }

  async function completeAndCheck(e: DownloadEngine, job: JobImpl): Promise<void> {
    await waitForState(e, job, 'TRANSFERRED');
    assert.equal(await job.complete(), 'S_OK');
    assert.equal(sha256File(job.getFiles()[0].localPath), sha256Hex(body));
  }

  it(matrix('proxy', 'download through squid (http.proxy set)', "TRANSFERRED, right sha256; squid's access log has the request, the origin sees it arrive through squid (Via, X-Forwarded-For)"), async () => {
    const squid = need(open);
    origin.route('/through', { body });
    const e = await engineWith({ network: { proxy: squid.url() } });
    const job = await start(e, origin.url('/through'), 'through.bin');
    await completeAndCheck(e, job);
    const line = await squid.waitForLog(new RegExp(`GET ${escape(origin.url('/through'))} `));
    assert.match(line, /TCP_MISS\/200/);
    const req = origin.requestsFor('/through')[0];
    assert.match(String(req.headers.via), /md-test-squid/);
    assert.equal(req.headers['x-forwarded-for'], '127.0.0.1');
  });

  it(matrix('proxy', 'http.proxy typed without a scheme (127.0.0.1:port, user:pass@127.0.0.1:port)', 'read as http://…: TRANSFERRED through squid, right sha256 (the engine does not fail to start)'), async () => {
    const plain = need(open);
    const auth = need(authed);
    origin.route('/bare', { body });
    const e = await engineWith({ network: { proxy: `127.0.0.1:${plain.port}` } });
    const job = await start(e, origin.url('/bare'), 'bare.bin');
    await completeAndCheck(e, job);
    await plain.waitForLog(new RegExp(`GET ${escape(origin.url('/bare'))} `));
    const e2 = await engineWith({ network: { proxy: auth.url({ user: USER, password: PASSWORD }).replace(/^http:\/\//, '') } });
    const job2 = await start(e2, origin.url('/bare'), 'bare2.bin');
    await completeAndCheck(e2, job2);
    await auth.waitForLog(new RegExp(`GET ${escape(origin.url('/bare'))} ${USER} `));
  });

  it(matrix('proxy', 'reset mid-body through squid', 'TRANSIENT_ERROR, then the resume goes through squid with Range + If-Range and gets 206; right sha256'), async () => {
    const squid = need(open);
    origin.route('/reset', { body, resetAfterBytes: 500_000, resetTimes: 1 });
    const e = await engineWith({ network: { proxy: squid.url() } });
    const job = await start(e, origin.url('/reset'), 'reset.bin');
    await completeAndCheck(e, job);
    const reqs = origin.requestsFor('/reset');
    assert.equal(reqs.length, 2);
    assert.match(reqs[1].range ?? '', /^bytes=\d+-$/);
    assert.ok(reqs[1].ifRange, 'If-Range passed through the proxy');
    assert.equal(reqs[1].status, 206);
    assert.ok(reqs.every((r) => /md-test-squid/.test(String(r.headers.via))));
    assert.equal(job.errorCount, 1);
    assert.equal(job.record.files[0].restarts, 0);
  });

  it(matrix('proxy', 'https through squid (CONNECT tunnel)', "TRANSFERRED, right sha256; squid's log shows the CONNECT to the origin"), async () => {
    const squid = need(open);
    const tls = await TestServer.start({ https: true });
    try {
      tls.route('/secure', { body });
      const e = await engineWith({ network: { proxy: squid.url(), ca: TEST_TLS.cert } });
      const job = await start(e, tls.url('/secure'), 'secure.bin');
      await completeAndCheck(e, job);
      // Squid logs a tunnel when it closes: close the engine's connections first.
      await Promise.all(engines.splice(0).map((x) => x.dispose()));
      await squid.waitForLog(new RegExp(`CONNECT 127\\.0\\.0\\.1:${new URL(tls.url('/')).port} `));
      assert.equal(tls.requestsFor('/secure').length, 1);
    } finally {
      await tls.close();
    }
  });

  it(matrix('proxy', 'proxy authentication: credentials in the proxy URL', "TRANSFERRED, right sha256; squid's log names the authenticated user; the origin never sees Proxy-Authorization"), async () => {
    const squid = need(authed);
    origin.route('/auth', { body });
    const e = await engineWith({ network: { proxy: squid.url({ user: USER, password: PASSWORD }) } });
    const job = await start(e, origin.url('/auth'), 'auth.bin');
    await completeAndCheck(e, job);
    const line = await squid.waitForLog(new RegExp(`GET ${escape(origin.url('/auth'))} ${USER} `));
    assert.match(line, /TCP_MISS\/200/);
    assert.equal(origin.requestsFor('/auth')[0].headers['proxy-authorization'], undefined);
  });

  it(matrix('proxy', 'proxy authentication: wrong or missing credentials', "squid answers 407: ERROR HTTP_407, 0x80190197, not retried, no bytes on disk, the password in no message; the origin is never reached"), async () => {
    const squid = need(authed);
    origin.route('/denied', { body });
    const wrong = await engineWith({ network: { proxy: squid.url({ user: USER, password: 'wrong password' }) } });
    const none = await engineWith({ network: { proxy: squid.url() } });
    const a = await start(wrong, origin.url('/denied'), 'wrong.bin');
    const b = await start(none, origin.url('/denied'), 'none.bin');
    for (const [e, job] of [[wrong, a], [none, b]] as const) {
      await waitForState(e, job, 'ERROR');
      const err = job.getError()!;
      assert.equal(err.code, 'HTTP_407', err.message);
      assert.equal(err.hresult, 0x80190197);
      assert.equal(job.errorCount, 1);
      assert.ok(!err.message.includes('wrong password'));
      const f = job.getFiles()[0];
      assert.ok(!fs.existsSync(f.localPath));
      assert.ok(!fs.existsSync(f.temporaryPath) || fs.statSync(f.temporaryPath).size === 0);
    }
    const denied = await squid.waitForLog(/TCP_DENIED\/407/);
    assert.match(denied, new RegExp(escape(origin.url('/denied'))));
    assert.equal(origin.requestsFor('/denied').length, 0);
  });

  it(matrix('proxy', 'noProxy honoured (http.noProxy)', 'a host:port in noProxy is fetched directly (nothing in squid\'s log, no Via); the other origin goes through squid'), async () => {
    const squid = need(open);
    origin.route('/proxied', { body });
    other.route('/direct', { body });
    const directHost = new URL(other.url('/')).host; // 127.0.0.1:<port>
    const e = await engineWith({ network: { proxy: squid.url(), noProxy: [directHost] } });
    const direct = await start(e, other.url('/direct'), 'direct.bin');
    const proxied = await start(e, origin.url('/proxied'), 'proxied.bin');
    await completeAndCheck(e, direct);
    await completeAndCheck(e, proxied);
    await squid.waitForLog(new RegExp(`GET ${escape(origin.url('/proxied'))} `));
    const port = new URL(other.url('/')).port;
    assert.deepEqual(squid.accessLog().filter((l) => l.includes(`:${port}`)), [], 'nothing for the noProxy host in squid\'s log');
    assert.equal(other.requestsFor('/direct')[0].headers.via, undefined, 'fetched directly');
    assert.match(String(origin.requestsFor('/proxied')[0].headers.via), /md-test-squid/);
  });

  it(matrix('proxy', 'HTTP_PROXY / NO_PROXY from the environment when http.proxy is empty', 'the environment proxy is used, NO_PROXY hosts bypass it'), async () => {
    const squid = need(open);
    origin.route('/env', { body });
    other.route('/env', { body });
    const env = { HTTP_PROXY: squid.url(), NO_PROXY: new URL(other.url('/')).host };
    const dispatcher = createDispatcher({}, env);
    try {
      const e = await engineWith({ dispatcher });
      const viaEnv = await start(e, origin.url('/env'), 'env.bin');
      const bypass = await start(e, other.url('/env'), 'bypass.bin');
      await completeAndCheck(e, viaEnv);
      await completeAndCheck(e, bypass);
      await squid.waitForLog(new RegExp(`GET ${escape(origin.url('/env'))} `));
      assert.match(String(origin.requestsFor('/env')[0].headers.via), /md-test-squid/);
      assert.equal(other.requestsFor('/env')[0].headers.via, undefined);
    } finally {
      await Promise.all(engines.splice(0).map((x) => x.dispose()));
      await dispatcher.close();
    }
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
