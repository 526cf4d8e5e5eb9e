// The content cache (§9): files named by sha256, shared by engines (machines) and processes, verified on read.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DownloadEngine, JobImpl } from '../../src/engine';
import { ContentCache } from '../../src/engine/contentCache';
import { openEngine, useServerFixture, waitForState } from '../support/engineHarness';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';

describe('content cache', () => {
  let server: TestServer;
  let dir: string;
  let cacheDir: string;
  const engines: DownloadEngine[] = [];
  const body = randomBody(700_000, 71);
  const sha = sha256Hex(body);

  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.dispose()));
  });
  useServerFixture((f) => ({ server, dir } = f));
  beforeEach(() => {
    cacheDir = path.join(dir, 'cache');
  });

  /** An engine with its own store (a machine of its own) on the shared cache folder. */
  async function machine(name: string, maxSizeBytes = 1 << 30): Promise<DownloadEngine> {
    const e = await openEngine(path.join(dir, name, 'store'), { cache: { folder: cacheDir, maxSizeBytes, enabled: true } });
    engines.push(e);
    return e;
  }

  async function download(e: DownloadEngine, dest: string, o: { sha256?: string; replaceExisting?: boolean } = {}): Promise<JobImpl> {
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    const job = await e.createJob({ displayName: path.basename(dest) });
    await job.setMinimumRetryDelay(0);
    await job.addFile(server.url('/f'), dest, o);
    await job.resume();
    await waitForState(e, job, 'TRANSFERRED');
    assert.equal(await job.complete(), 'S_OK');
    return job;
  }

  it('a second machine on the same cache folder takes the file from it without any request', async () => {
    server.route('/f', { body });
    const a = await machine('a');
    await download(a, path.join(dir, 'a', 'f.bin'), { sha256: sha });
    await a.dispose(); // waits for the cache entry to be written
    server.requests.length = 0;

    const b = await machine('b');
    const job = await download(b, path.join(dir, 'b', 'f.bin'), { sha256: sha });
    assert.deepEqual(server.requests, [], 'the second machine fetched nothing from the origin');
    assert.equal(job.getProgress().bytesFromCache, body.length);
    assert.equal(job.getFiles()[0].bytesFromCache, body.length);
    assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'b', 'f.bin'))), sha);
  });

  it('a file without a sha256 is neither looked up nor added', async () => {
    server.route('/f', { body });
    const a = await machine('a');
    await download(a, path.join(dir, 'a', 'f.bin'));
    await a.dispose();
    assert.equal(fs.existsSync(path.join(cacheDir, 'sha256', sha.slice(0, 2), sha)), false);
  });

  it('a truncated or corrupted entry is deleted, never placed, and the file is downloaded again', async () => {
    server.route('/f', { body });
    const cache = new ContentCache(cacheDir, 1 << 30);
    const source = path.join(dir, 'source.bin');
    fs.writeFileSync(source, body);
    for (const damage of ['truncate', 'flip'] as const) {
      await cache.addNow(sha, source);
      const entry = cache.entryPath(sha);
      if (damage === 'truncate') {
        fs.truncateSync(entry, 1000);
      } else {
        const fd = fs.openSync(entry, 'r+');
        fs.writeSync(fd, Buffer.from([body[5000] ^ 0xff]), 0, 1, 5000);
        fs.closeSync(fd);
      }
      server.requests.length = 0;
      const e = await machine(damage);
      const job = await download(e, path.join(dir, damage, 'f.bin'), { sha256: sha });
      assert.equal(sha256Hex(fs.readFileSync(path.join(dir, damage, 'f.bin'))), sha, `${damage}: the right bytes are in place`);
      assert.equal(server.requestsFor('/f').length, 1, `${damage}: downloaded again`);
      assert.equal(job.getProgress().bytesFromCache, 0);
      await e.dispose();
      assert.equal(sha256Hex(fs.readFileSync(entry)), sha, `${damage}: the entry was written again, whole`);
    }
  });

  it('on another file system the entry is copied, verified while copying (a corrupt one is deleted, never placed)', async () => {
    // /dev/shm is a tmpfs, os.tmpdir() is not: a hard link between them fails with EXDEV.
    const otherFs = fs.mkdtempSync('/dev/shm/md-cache-');
    try {
      server.route('/f', { body });
      const cache = new ContentCache(otherFs, 1 << 30);
      const source = path.join(dir, 'source.bin');
      fs.writeFileSync(source, body);
      await cache.addNow(sha, source);
      const e = await openEngine(path.join(dir, 'x', 'store'), { cache: { folder: otherFs, maxSizeBytes: 1 << 30, enabled: true } });
      engines.push(e);
      const dest = path.join(dir, 'x', 'f.bin');
      await download(e, dest, { sha256: sha });
      assert.deepEqual(server.requests, []);
      assert.notEqual(fs.statSync(dest).ino, fs.statSync(cache.entryPath(sha)).ino, 'a copy, not a link');
      assert.equal(sha256Hex(fs.readFileSync(dest)), sha);

      const fd = fs.openSync(cache.entryPath(sha), 'r+');
      fs.writeSync(fd, Buffer.from([body[9] ^ 1]), 0, 1, 9);
      fs.closeSync(fd);
      const dest2 = path.join(dir, 'x', 'g.bin');
      const job = await download(e, dest2, { sha256: sha });
      assert.equal(job.getProgress().bytesFromCache, 0);
      assert.equal(server.requestsFor('/f').length, 1, 'downloaded instead');
      assert.equal(sha256Hex(fs.readFileSync(dest2)), sha);
    } finally {
      fs.rmSync(otherFs, { recursive: true, force: true });
    }
  });

  it('evicts the least recently used entries first; a use counts as recent', async () => {
    const cache = new ContentCache(cacheDir, 250_000);
    const bodies = [1, 2, 3].map((s) => randomBody(100_000, 700 + s));
    const shas = bodies.map(sha256Hex);
    const files = bodies.map((b, i) => {
      const p = path.join(dir, `src${i}`);
      fs.writeFileSync(p, b);
      return p;
    });
    await cache.addNow(shas[0], files[0]);
    await cache.addNow(shas[1], files[1]);
    // Entry 0 is older than entry 1, until it is used.
    fs.utimesSync(cache.entryPath(shas[0]), new Date(Date.now() - 20_000), new Date(Date.now() - 20_000));
    fs.utimesSync(cache.entryPath(shas[1]), new Date(Date.now() - 10_000), new Date(Date.now() - 10_000));
    assert.equal(await cache.lookup(shas[0]), cache.entryPath(shas[0]));
    await cache.addNow(shas[2], files[2]);
    assert.deepEqual(
      shas.map((s) => fs.existsSync(cache.entryPath(s))),
      [true, false, true],
      'the least recently used entry (1) went, the one just used (0) stayed',
    );
  });

  it('two processes writing the same entry at once never expose a partial entry', async function () {
    this.timeout(60_000);
    const big = randomBody(48 * 1024 * 1024, 72);
    const bigSha = sha256Hex(big);
    const source = path.join(dir, 'big.bin');
    fs.writeFileSync(source, big);
    const cache = new ContentCache(cacheDir, 1 << 30);
    fs.mkdirSync(path.dirname(cache.entryPath(bigSha)), { recursive: true });
    const moduleFile = path.resolve(__dirname, '../../src/engine/contentCache.js');
    const script = `new (require(${JSON.stringify(moduleFile)}).ContentCache)(process.argv[1], 1 << 30).addNow(process.argv[2], process.argv[3]).catch((e) => { console.error(e); process.exit(1); })`;
    const child = (): Promise<number | null> =>
      new Promise((resolve) => spawn(process.execPath, ['-e', script, cacheDir, bigSha, source], { stdio: 'inherit' }).on('exit', resolve));
    let running = true;
    const writers = Promise.all([child(), child()]).finally(() => {
      running = false;
    });
    const seen = new Set<number>();
    while (running) {
      const st = fs.statSync(cache.entryPath(bigSha), { throwIfNoEntry: false });
      if (st) {
        seen.add(st.size);
      }
      await new Promise((r) => setImmediate(r));
    }
    const exits = await writers;
    assert.deepEqual([...seen].filter((n) => n !== big.length), [], 'no reader ever saw a partial entry');
    assert.deepEqual(exits, [0, 0]);
    assert.equal(await cache.lookup(bigSha), cache.entryPath(bigSha));
    assert.deepEqual(fs.readdirSync(path.dirname(cache.entryPath(bigSha))), [bigSha], 'no temporary left behind');
  });

  it("a download task's destination declared with a sha256 (replacing an old file) is placed from the cache", async () => {
    server.route('/f', { body });
    const cache = new ContentCache(cacheDir, 1 << 30);
    const source = path.join(dir, 'source.bin');
    fs.writeFileSync(source, body);
    await cache.addNow(sha, source);
    const dest = path.join(dir, 'task', 'tool.bin');
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.writeFileSync(dest, 'an older version');
    const e = await machine('task');
    // What the task does: addFile with the declared sha256, replacing the destination it owns.
    await download(e, dest, { sha256: sha, replaceExisting: true });
    assert.deepEqual(server.requests, []);
    assert.equal(sha256Hex(fs.readFileSync(dest)), sha);
  });
});
