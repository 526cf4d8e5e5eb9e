// Speed limits, measured as the bytes the transfers read from their bodies (what the limiter paces). The
// server's own timestamps (timestampSends) are no use in short runs on loopback: the kernel's socket buffers
// take several MB at once, and only once they are full does the server's rate follow the reader's.
// Short runs with loose bounds (±20 %): the machine is shared and noisy; the accuracy target (±5 % over
// 10 s windows) is measured by `npm run bench:rate`.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { createDispatcher, type DownloadEngine, type DownloadError, type EngineOptions, type JobImpl, type JobPriority } from '../../src/engine';
import { BitsUploadServer } from '../support/bitsUploadServer';
import { openEngine, useServerFixture, waitForState, waitUntil } from '../support/engineHarness';
import { randomBody, TestServer } from '../support/testServer';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('speed limits', function () {
  this.timeout(30_000);
  let server: TestServer;
  let dir: string;
  let engine: DownloadEngine;
  const big = randomBody(24 * MiB, 5);

  afterEach(async () => {
    await engine?.dispose();
  });
  useServerFixture((f) => ({ server, dir } = f), { prefix: 'md-rate-' });
  beforeEach(() => {
    for (const p of ['/a', '/b']) {
      server.route(p, { body: big });
    }
  });

  async function open(extra: Partial<EngineOptions>): Promise<DownloadEngine> {
    engine = await openEngine(path.join(dir, 'store'), { maxConcurrentJobs: 4, segmentsPerFile: 1, ...extra });
    return engine;
  }

  async function start(name: string, route: string, o: { priority?: JobPriority; limit?: number } = {}): Promise<JobImpl> {
    const job = await engine.createJob({ displayName: name, priority: o.priority });
    await job.addFile(server.url(route), path.join(dir, name));
    if (o.limit !== undefined) {
      await job.setMaxBytesPerSecond(o.limit);
    }
    await job.resume();
    return job;
  }

  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  /** Lets the transfers settle, then measures each job's rate (bytes read per second) for `ms`. */
  async function measure(jobs: JobImpl[], ms: number, settleMs = 1_000): Promise<number[]> {
    await sleep(settleMs);
    const before = jobs.map((j) => j.getProgress().bytesTransferred);
    const from = performance.now();
    await sleep(ms);
    const seconds = (performance.now() - from) / 1000;
    return jobs.map((j, i) => (j.getProgress().bytesTransferred - before[i]) / seconds);
  }

  /**
   * Loose on purpose (the accuracy table is bench/rateLimit.js's): never 20 % over the limit, and not far under it.
   * Under is looser: on a loaded machine the reader itself falls behind, which no limiter bug explains away.
   */
  function near(actual: number, expected: number, what: string): void {
    assert.ok(actual <= expected * 1.2 && actual >= expected * 0.65, `${what}: ${Math.round(actual / KiB)} KiB/s, expected ${Math.round(expected / KiB)} KiB/s (−35 % to +20 %)`);
  }

  it('the global limit holds on one connection', async () => {
    await open({ maxBytesPerSecond: 512 * KiB });
    const job = await start('one', '/a');
    const [r] = await measure([job], 2_500);
    near(r, 512 * KiB, 'one connection');
  });

  it('the global limit holds across the segments of one file', async () => {
    await open({ maxBytesPerSecond: 2 * MiB, segmentsPerFile: 4, minSegmentBytes: 1 * MiB });
    const job = await start('split', '/a');
    await waitUntil(() => server.requestsFor('/a').length >= 4, 10_000, 'four segment requests');
    const [r] = await measure([job], 2_500);
    near(r, 2 * MiB, 'four segments');
  });

  it('under a low limit a file is split only into the connections the limit needs (each reads a chunk ahead)', async () => {
    await open({ maxBytesPerSecond: 1 * MiB, segmentsPerFile: 4, minSegmentBytes: 1 * MiB });
    const job = await start('split', '/a');
    await waitUntil(() => job.getProgress().bytesTransferred > 1 * MiB, 10_000, 'a first MiB');
    assert.equal(server.requestsFor('/a').length, 2, '1 MiB/s: two connections of 512 KiB/s each');
  });

  it('two jobs share the global limit', async () => {
    await open({ maxBytesPerSecond: 512 * KiB });
    const [a, b] = await measure([await start('one', '/a'), await start('two', '/b')], 2_500);
    near(a + b, 512 * KiB, 'both jobs together');
    assert.ok(Math.min(a, b) > 0.25 * (a + b), `equal priorities share: ${Math.round(a / KiB)} and ${Math.round(b / KiB)} KiB/s`);
  });

  it("a job's own limit below the global one holds, and lifting it leaves the global one", async () => {
    await open({ maxBytesPerSecond: 1 * MiB });
    const job = await start('slow', '/a', { limit: 256 * KiB });
    assert.equal(job.maxBytesPerSecond, 256 * KiB);
    const [r] = await measure([job], 2_500);
    near(r, 256 * KiB, 'the job limit');
    await waitUntil(() => job.speedLimited, 5_000, 'the job to show as limited');
    await job.setMaxBytesPerSecond(0);
    const [r2] = await measure([job], 2_000, 300);
    near(r2, 1 * MiB, 'the global limit after lifting the job limit');
  });

  it('under the global limit, a FOREGROUND job gets its bandwidth before a LOW one', async () => {
    await open({ maxBytesPerSecond: 512 * KiB });
    const low = await start('low', '/b', { priority: 'LOW' });
    const fg = await start('fg', '/a', { priority: 'FOREGROUND' });
    const [fgRate, lowRate] = await measure([fg, low], 2_500);
    near(fgRate + lowRate, 512 * KiB, 'both together');
    assert.ok(fgRate > 0.8 * (fgRate + lowRate), `FOREGROUND ${Math.round(fgRate / KiB)} KiB/s, LOW ${Math.round(lowRate / KiB)} KiB/s`);
  });

  it('a limit changed while transferring applies at once', async () => {
    await open({ maxBytesPerSecond: 384 * KiB });
    const job = await start('one', '/a');
    const [r] = await measure([job], 2_500);
    near(r, 384 * KiB, 'before the change');
    engine.updateOptions({ maxBytesPerSecond: 1 * MiB });
    const [r2] = await measure([job], 2_000, 300);
    near(r2, 1 * MiB, 'after the change');
  });

  it('an upload job is paced too: the global limit, and its own limit below it', async () => {
    const uploads = await BitsUploadServer.start();
    try {
      const source = path.join(dir, 'report.bin');
      fs.writeFileSync(source, randomBody(1536 * KiB, 9));
      await open({ maxBytesPerSecond: 512 * KiB, uploadFragmentBytes: 256 * KiB });
      /** Uploads the source in a new job; the rate from resume() to TRANSFERRED (all bytes acknowledged). */
      const upload = async (name: string, limit?: number): Promise<number> => {
        const job = await engine.createJob({ displayName: name, type: 'upload' });
        await job.addFile(uploads.url(`/up/${name}`), source);
        if (limit !== undefined) {
          await job.setMaxBytesPerSecond(limit);
        }
        const from = performance.now();
        await job.resume();
        await waitForState(engine, job, 'TRANSFERRED', 20_000);
        return (1536 * KiB * 1000) / (performance.now() - from);
      };
      near(await upload('global.bin'), 512 * KiB, 'an upload under the global limit');
      near(await upload('own.bin', 384 * KiB), 384 * KiB, "an upload under its job's own limit");
    } finally {
      await uploads.close();
    }
  });

  it('the dispatcher of limited transfers takes bodies off the socket in small steps (a slow reader gets less than 64 KiB at a time, not 128 KiB and more)', async () => {
    // Node reads 64 KiB at a time and buffers 64 KiB more: under a low limit the kernel would hand over (and
    // the server send) the body in steps of 128 KiB, and grow the receive buffer after such large reads.
    const paced = createDispatcher({}, {}, true);
    try {
      const origin = new URL(server.url('/a')).origin;
      const res = await paced.request({ origin, path: '/a', method: 'GET', highWaterMark: 16 * KiB });
      let largest = 0;
      let chunks = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        largest = Math.max(largest, chunk.length);
        if (++chunks >= 40) {
          break;
        }
        await sleep(30); // a slow reader: the socket has time to fill whatever Node buffers
      }
      assert.ok(largest < 64 * KiB, `largest chunk: ${largest} bytes`);
    } finally {
      await paced.close();
    }
  });

  it('setMaxBytesPerSecond: refuses negative and NaN (E_INVALIDARG), a final job first (DO_E_INVALID_STATE), and persists', async () => {
    await open({});
    const job = await engine.createJob({ displayName: 'limits' });
    for (const bad of [-1, Number.NaN, Infinity]) {
      await assert.rejects(job.setMaxBytesPerSecond(bad), (e: DownloadError) => e.code === 'E_INVALIDARG');
    }
    await job.setMaxBytesPerSecond(300_000);
    await engine.dispose();
    await open({});
    const again = engine.getJob(job.id);
    assert.equal(again.maxBytesPerSecond, 300_000);
    await again.cancel();
    await waitForState(engine, again, 'CANCELLED');
    await assert.rejects(again.setMaxBytesPerSecond(-1), (e: DownloadError) => e.code === 'DO_E_INVALID_STATE');
  });
});
