// Scheduling: concurrency limit, priorities, FOREGROUND, preemption that keeps bytes, turns among equals.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DownloadEngine, type JobImpl, type JobPriority } from '../../src/engine';
import { planSchedule } from '../../src/engine/scheduler';
import { openEngine, useServerFixture, waitForState, waitUntil } from '../support/engineHarness';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';

describe('scheduling', () => {
  describe('planSchedule (pure)', () => {
    const q = (id: string, priority: JobPriority, lastRunEnded = 0, created = 0) => ({ id, priority, lastRunEnded, created });
    const r = (id: string, priority: JobPriority, runStarted: number) => ({ id, priority, lastRunEnded: 0, created: 0, runStarted });

    it('fills free slots, higher priority first', () => {
      const plan = planSchedule([q('low', 'LOW'), q('high', 'HIGH'), q('n', 'NORMAL')], [], 2, 0, 1000);
      assert.deepEqual(plan, { start: ['high', 'n'], preempt: [] });
    });
    it('FOREGROUND always runs, beyond the limit', () => {
      const plan = planSchedule([q('fg', 'FOREGROUND')], [r('a', 'NORMAL', 0)], 1, 0, 1000);
      assert.deepEqual(plan, { start: ['fg'], preempt: [] });
    });
    it('a higher priority preempts the lowest running job', () => {
      const plan = planSchedule([q('high', 'HIGH')], [r('n', 'NORMAL', 0), r('low', 'LOW', 5)], 2, 10, 1000);
      assert.deepEqual(plan, { start: ['high'], preempt: ['low'] });
    });
    it('equal priorities take turns once the slice is used up, the longest waiting first', () => {
      assert.deepEqual(planSchedule([q('b', 'NORMAL')], [r('a', 'NORMAL', 0)], 1, 500, 1000), { start: [], preempt: [] });
      assert.deepEqual(planSchedule([q('c', 'NORMAL', 20), q('b', 'NORMAL', 10)], [r('a', 'NORMAL', 0)], 1, 1000, 1000), { start: ['b'], preempt: ['a'] });
    });
    it('a lower priority never preempts', () => {
      assert.deepEqual(planSchedule([q('low', 'LOW')], [r('n', 'NORMAL', 0)], 1, 1e9, 1000), { start: [], preempt: [] });
    });
  });

  describe('in the engine', () => {
    let server: TestServer;
    let dir: string;
    let engine: DownloadEngine;
    const body = randomBody(600_000, 55);

    afterEach(async () => {
      await engine.dispose();
    });
    useServerFixture((f) => ({ server, dir } = f));
    beforeEach(() => {
      server.route('/slow', { body, throttleBytesPerSec: 400_000 });
      server.route('/fast', { body });
    });

    async function job(name: string, url: string, priority: JobPriority = 'NORMAL'): Promise<JobImpl> {
      const j = await engine.createJob({ displayName: name, priority });
      await j.addFile(url, path.join(dir, name));
      return j;
    }
    const active = () => engine.enumJobs().filter((j) => j.state === 'CONNECTING' || j.state === 'TRANSFERRING').length;

    it('runs at most maxConcurrentJobs at once; files of one job go one at a time, in order', async () => {
      engine = await openEngine(path.join(dir, 'store'), { maxConcurrentJobs: 2 });
      const jobs = await Promise.all(['a', 'b', 'c'].map((n) => job(n, server.url('/slow'))));
      let peak = 0;
      engine.onDidChangeJob(() => (peak = Math.max(peak, active())));
      for (const j of jobs) {
        await j.resume();
      }
      await Promise.all(jobs.map((j) => waitForState(engine, j, 'TRANSFERRED', 20_000)));
      assert.equal(peak, 2);

      const multi = await engine.createJob({ displayName: 'multi' });
      await multi.addFileSet([1, 2, 3].map((i) => ({ remoteUrl: server.url(`/fast?${i}`), localPath: path.join(dir, `m${i}`) })));
      const order: string[] = [];
      engine.onDidTransferFile(({ file }) => order.push(path.basename(file.localPath)));
      await multi.resume();
      await waitForState(engine, multi, 'TRANSFERRED');
      assert.deepEqual(order, ['m1', 'm2', 'm3']);
    });

    it('a HIGH job preempts a running LOW one, which keeps its bytes and resumes with a range', async () => {
      engine = await openEngine(path.join(dir, 'store'), { maxConcurrentJobs: 1 });
      const low = await job('low', server.url('/slow'), 'LOW');
      await low.resume();
      await waitUntil(() => low.getProgress().bytesTransferred > 100_000, 10_000, 'low has bytes');
      const high = await job('high', server.url('/fast'), 'HIGH');
      const lowStates: string[] = [];
      engine.onDidChangeJob((j) => j === low && lowStates.push(j.state));
      await high.resume();
      await waitForState(engine, high, 'TRANSFERRED');
      assert.ok(lowStates.includes('QUEUED'), `low went back to the queue: ${lowStates.join(',')}`);
      await waitForState(engine, low, 'TRANSFERRED', 20_000);
      const lowReqs = server.requestsFor('/slow');
      assert.equal(lowReqs.length, 2);
      assert.match(lowReqs[1].range ?? '', /^bytes=[1-9]\d*-$/);
      await low.complete();
      assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'low'))), sha256Hex(body));
    });

    it('a LOW job waits while a NORMAL one runs; FOREGROUND runs alongside', async () => {
      engine = await openEngine(path.join(dir, 'store'), { maxConcurrentJobs: 1 });
      const normal = await job('normal', server.url('/slow'));
      const low = await job('low', server.url('/fast'), 'LOW');
      const fg = await job('fg', server.url('/fast'), 'FOREGROUND');
      await normal.resume();
      await waitForState(engine, normal, 'TRANSFERRING');
      await low.resume();
      await fg.resume();
      await waitForState(engine, fg, 'TRANSFERRED');
      assert.equal(low.state, 'QUEUED', 'low waits');
      assert.ok(normal.state === 'TRANSFERRING' || normal.state === 'TRANSFERRED');
      await waitForState(engine, low, 'TRANSFERRED', 20_000);
    });

    it('equal priorities take turns after a time slice', async () => {
      engine = await openEngine(path.join(dir, 'store'), { maxConcurrentJobs: 1, timeSliceMs: 300 });
      server.route('/slow', { body, throttleBytesPerSec: 300_000 });
      const a = await job('a', server.url('/slow'));
      const b = await job('b', server.url('/slow?b'));
      await a.resume();
      await waitForState(engine, a, 'TRANSFERRING');
      await b.resume();
      await waitUntil(() => b.getProgress().bytesTransferred > 0, 5_000, 'b gets a turn');
      assert.ok(a.getProgress().bytesTransferred > 0 && !a.getFiles()[0].transferred, 'a was interrupted, not finished');
      await Promise.all([a, b].map((j) => waitForState(engine, j, 'TRANSFERRED', 20_000)));
      assert.ok(server.requestsFor('/slow').length >= 2);
    });

    it('raising a queued job\'s priority lets it run first', async () => {
      engine = await openEngine(path.join(dir, 'store'), { maxConcurrentJobs: 1 });
      const first = await job('first', server.url('/slow'), 'LOW');
      const second = await job('second', server.url('/fast'), 'LOW');
      await first.resume();
      await waitForState(engine, first, 'TRANSFERRING');
      await second.resume();
      assert.equal(second.state, 'QUEUED');
      await second.setPriority('HIGH');
      await waitForState(engine, second, 'TRANSFERRED');
      assert.ok(!first.getFiles()[0].transferred);
      await waitForState(engine, first, 'TRANSFERRED', 20_000);
    });
  });
});
