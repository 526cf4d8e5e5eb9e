// The "1,000 jobs at once" row of the fault matrix: many small jobs through maxConcurrentJobs, with memory and
// event-loop responsiveness measured (generous bounds: the machine is shared and noisy).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { JobImpl } from '../../src/engine';
import { openEngine, useServerFixture, waitUntil } from '../support/engineHarness';
import { sha256File } from '../support/faults';
import { matrix, matrixNote } from '../support/matrix';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';

const JOBS = 1_000;
const MB = 1024 * 1024;

/** A full garbage collection, so heap figures compare like with like. */
function collect(): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
}

describe('fault matrix: scale', function () {
  this.timeout(120_000);
  let server: TestServer;
  let dir: string;
  useServerFixture((f) => ({ server, dir } = f), { prefix: 'md-scale-' });

  it(
    matrix(
      'concurrency',
      '1,000 jobs of small files at once (maxConcurrentJobs 16)',
      'all TRANSFERRED and completed with the right sha256; at most 16 running at once; heap back within 64 MB of the start after dispose, RSS growth < 512 MB; event loop never blocked > 3 s',
    ),
    async () => {
      const bodies = Array.from({ length: JOBS }, (_, i) => randomBody(2_048 + (i % 13) * 97, 5_000 + i));
      bodies.forEach((b, i) => server.route(`/m${i}`, { body: b }));
      const out = path.join(dir, 'out');
      fs.mkdirSync(out);
      collect();
      const heap0 = process.memoryUsage().heapUsed;
      const rss0 = process.memoryUsage().rss;
      let rssPeak = rss0;
      let heapPeak = heap0;
      const sampler = setInterval(() => {
        const m = process.memoryUsage();
        rssPeak = Math.max(rssPeak, m.rss);
        heapPeak = Math.max(heapPeak, m.heapUsed);
      }, 50);
      const lag = monitorEventLoopDelay({ resolution: 20 });
      lag.enable();
      const started = Date.now();
      const engine = await openEngine(path.join(dir, 'store'), { maxConcurrentJobs: 16, progressThrottleMs: 250, storeBatchMs: 100 });
      let running = 0;
      let maxRunning = 0;
      const sub = engine.onDidChangeJob(() => {
        running = engine.enumJobs().filter((j) => j.state === 'CONNECTING' || j.state === 'TRANSFERRING').length;
        maxRunning = Math.max(maxRunning, running);
      });
      let jobs: JobImpl[] = [];
      try {
        // 1,000 callers at once: each creates its job, adds its file and resumes it.
        jobs = await Promise.all(
          bodies.map(async (_, i) => {
            const job = await engine.createJob({ displayName: `small ${i}` });
            await job.addFile(server.url(`/m${i}`), path.join(out, `m${i}.bin`));
            await job.resume();
            return job;
          }),
        );
        const queuedAt = Date.now();
        await waitUntil(() => jobs.every((j) => j.state === 'TRANSFERRED' || j.state === 'ERROR'), 90_000, 'all 1,000 jobs transferred');
        const transferredAt = Date.now();
        const failed = jobs.filter((j) => j.state === 'ERROR');
        assert.deepEqual(failed.map((j) => `${j.displayName}: ${j.getError()?.message}`), []);
        const results = await Promise.all(jobs.map((j) => j.complete()));
        assert.ok(results.every((r) => r === 'S_OK'));
        const completedAt = Date.now();
        for (const [i, j] of jobs.entries()) {
          assert.equal(j.state, 'ACKNOWLEDGED');
          assert.equal(sha256File(path.join(out, `m${i}.bin`)), sha256Hex(bodies[i]), `file ${i}`);
        }
        assert.equal(fs.readdirSync(out).filter((n) => n.startsWith('.')).length, 0, 'no temporary left');
        assert.ok(maxRunning <= 16, `at most maxConcurrentJobs running at once (saw ${maxRunning})`);
        assert.ok(maxRunning >= 2, `jobs did run side by side (saw ${maxRunning})`);
        const served = bodies.reduce((n, _, i) => n + server.requestsFor(`/m${i}`).length, 0);
        assert.equal(served, JOBS, 'one request per file');
        sub.dispose();
        await engine.dispose();
        clearInterval(sampler);
        lag.disable();
        collect();
        const heap1 = process.memoryUsage().heapUsed;
        const summary =
          `${JOBS} jobs: queued in ${((queuedAt - started) / 1000).toFixed(1)} s, transferred after ${((transferredAt - started) / 1000).toFixed(1)} s, ` +
          `completed after ${((completedAt - started) / 1000).toFixed(1)} s; heap ${(heap0 / MB).toFixed(0)} → peak ${(heapPeak / MB).toFixed(0)} → ${(heap1 / MB).toFixed(0)} MB after dispose; ` +
          `RSS ${(rss0 / MB).toFixed(0)} → peak ${(rssPeak / MB).toFixed(0)} MB; event-loop delay p99 ${(lag.percentile(99) / 1e6).toFixed(0)} ms, max ${(lag.max / 1e6).toFixed(0)} ms; ` +
          `at most ${maxRunning} jobs running`;
        console.log(`      ${summary}`);
        matrixNote('1,000 jobs', summary);
        assert.ok(heap1 - heap0 < 64 * MB, `heap grew by ${((heap1 - heap0) / MB).toFixed(1)} MB`);
        assert.ok(rssPeak - rss0 < 512 * MB, `RSS grew by ${((rssPeak - rss0) / MB).toFixed(1)} MB`);
        assert.ok(lag.max / 1e6 < 3_000, `the event loop was blocked for ${(lag.max / 1e6).toFixed(0)} ms`);
      } finally {
        clearInterval(sampler);
        lag.disable();
        sub.dispose();
        await engine.dispose();
        server.reset();
      }
    },
  );
});
