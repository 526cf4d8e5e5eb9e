// A team's cache beyond one machine, the proxy way (§9, issue #17): two engines with separate stores stand for
// two machines behind one caching HTTP proxy (Debian's squid with a cache_dir, on 127.0.0.1). The second
// machine's download is served by the proxy: the origin sees exactly one request for the bytes. When squid
// cannot be installed or started, the test FAILS with the reason.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DownloadEngine } from '../../src/engine';
import { openEngine, tempDir, waitForState } from '../support/engineHarness';
import { Squid } from '../support/squid';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';

describe('a team behind a caching proxy (squid with cache_dir)', function () {
  // The first run on a machine may install squid with apt-get.
  this.timeout(60_000);
  let squid: Squid;
  let origin: TestServer;
  let dir: string;
  const engines: DownloadEngine[] = [];
  const body = randomBody(2_000_000, 181);

  before(async function () {
    this.timeout(15 * 60_000);
    origin = await TestServer.start();
    squid = await Squid.start({ cacheDir: true }, (m) => console.log(`      ${m}`));
  });
  after(async () => {
    await squid?.stop();
    await origin.close();
  });
  beforeEach(() => {
    dir = tempDir('md-proxy-cache-');
  });
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.dispose()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** One "machine": its own store and download folder, the team's proxy as its proxy setting. */
  async function machineDownloads(name: string, url: string): Promise<string> {
    const engine = await openEngine(path.join(dir, name, 'store'), { network: { proxy: squid.url() }, segmentsPerFile: 1 });
    engines.push(engine);
    const dest = path.join(dir, name, 'toolchain.tar.gz');
    const job = await engine.createJob({ displayName: `toolchain on ${name}` });
    await job.addFile(url, dest);
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    assert.equal(await job.complete(), 'S_OK');
    return sha256Hex(fs.readFileSync(dest));
  }

  it('the second machine gets the file from the proxy: the origin sees one request', async () => {
    origin.route('/toolchain.tar.gz', {
      body,
      lastModified: new Date(Date.now() - 86_400_000).toUTCString(),
      headers: { 'Cache-Control': 'public, max-age=3600' },
    });
    const url = origin.url('/toolchain.tar.gz');
    assert.equal(await machineDownloads('machine-a', url), sha256Hex(body));
    await squid.waitForLog(/TCP_MISS\/200 .*toolchain\.tar\.gz/);
    assert.equal(await machineDownloads('machine-b', url), sha256Hex(body));
    const hit = await squid.waitForLog(/TCP_(?:MEM_)?HIT\/200 .*toolchain\.tar\.gz/);
    // Squid's native log: time elapsed client code/status bytes (headers included) method URL ...
    assert.ok(Number(hit.trim().split(/\s+/)[4]) >= body.length, `squid served the whole file from its cache: ${hit}`);
    const asked = origin.requestsFor('/toolchain.tar.gz');
    assert.equal(asked.length, 1, `the origin saw one request, not ${asked.length}`);
    assert.equal(asked[0].bytesSent, body.length);
  });
});
