// A job's own retry schedule (jobs a person started from the UI): short, growing delays for the first retries of a
// stretch without progress, then the minimum retry delay; a changed delay moves a wait under way. The engine's clock
// is held still, so each wait is exactly the delay chosen (no timing in the assertions); "Retry Now" (resume) stands
// in for the time passing.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DownloadError, type DownloadEngine, type JobImpl } from '../../src/engine';
import { openEngine, tempDir, waitForState } from '../support/engineHarness';
import { matrix } from '../support/matrix';
import { randomBody, TestServer } from '../support/testServer';

const T0 = Date.UTC(2026, 0, 1);

describe('retry schedule', () => {
  let server: TestServer;
  let dir: string;
  let engine: DownloadEngine;
  const body = randomBody(300_000, 19);

  before(async () => {
    server = await TestServer.start();
  });
  after(async () => {
    await server.close();
  });
  beforeEach(async () => {
    server.reset();
    dir = tempDir('md-retry-');
    engine = await openEngine(path.join(dir, 'store'), { now: () => T0 });
  });
  afterEach(async () => {
    await engine.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function failingJob(route: string, delays?: number[]): Promise<JobImpl> {
    server.route(route, { status: 503 });
    const job = await engine.createJob({ displayName: route.slice(1) });
    if (delays) {
      await job.setRetryDelays(delays);
    }
    await job.addFile(server.url(route), path.join(dir, `${route.slice(1)}.bin`));
    return job;
  }

  /** Seconds from the failure to the next retry, after (re)starting the job and seeing it fail again. */
  async function nextWait(job: JobImpl): Promise<number> {
    const before = job.errorCount;
    await job.resume();
    await waitForState(engine, job, 'TRANSIENT_ERROR');
    assert.equal(job.errorCount, before + 1);
    return (job.retryAt!.getTime() - T0) / 1000;
  }

  it('waits 5 s, 15 s, 60 s, then the minimum retry delay (600 s) while nothing moves', async () => {
    const job = await failingJob('/down', [5, 15, 60]);
    const waits = [await nextWait(job), await nextWait(job), await nextWait(job), await nextWait(job), await nextWait(job)];
    assert.deepEqual(waits, [5, 15, 60, 600, 600]);
  });

  it('without a schedule (API and CLI jobs) every retry waits the minimum retry delay', async () => {
    const job = await failingJob('/plain');
    assert.deepEqual(job.retryDelaysSeconds, []);
    assert.deepEqual([await nextWait(job), await nextWait(job)], [600, 600]);
  });

  it('a delay of the schedule never exceeds the minimum retry delay, and never undercuts Retry-After', async () => {
    const job = await failingJob('/capped', [5, 15, 60]);
    await job.setMinimumRetryDelay(10);
    assert.deepEqual([await nextWait(job), await nextWait(job), await nextWait(job)], [5, 10, 10]);
    server.route('/busy', { status: 503, retryAfter: '40' });
    const busy = await failingJob('/busy', [5]);
    server.route('/busy', { status: 503, retryAfter: '40' });
    assert.equal(await nextWait(busy), 40);
  });

  it('progress starts the schedule over', async () => {
    const job = await failingJob('/flaky', [5, 15, 60]);
    assert.deepEqual([await nextWait(job), await nextWait(job)], [5, 15]);
    server.route('/flaky', { body, resetAfterBytes: 100_000, resetTimes: 1 });
    assert.equal(await nextWait(job), 5, 'the connection dropped after new bytes: a new stretch');
    assert.ok(job.getProgress().bytesTransferred > 0);
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
  });

  it('a changed minimum retry delay moves the wait of a job already in TRANSIENT_ERROR', async () => {
    const job = await failingJob('/waiting');
    assert.equal(await nextWait(job), 600);
    await job.setMinimumRetryDelay(30);
    assert.equal((job.retryAt!.getTime() - T0) / 1000, 30, 'counted from the failure, with the new delay');
    await job.setRetryDelays([5]);
    assert.equal((job.retryAt!.getTime() - T0) / 1000, 5, 'a schedule given while waiting applies to this wait');
    // Due at once (the clock stands at the failure and the delay is now 0): retried now, and the server is back.
    server.route('/waiting', { body });
    await job.setMinimumRetryDelay(0);
    await waitForState(engine, job, 'TRANSFERRED');
    assert.equal(server.requestsFor('/waiting').length, 2);
  });

  it('the schedule is kept in the store across a restart', async () => {
    const job = await failingJob('/kept', [5, 15, 60]);
    assert.equal(await nextWait(job), 5);
    await engine.dispose();
    engine = await openEngine(path.join(dir, 'store'), { now: () => T0 });
    const again = engine.getJob(job.id);
    assert.deepEqual(again.retryDelaysSeconds, [5, 15, 60]);
    assert.equal(await nextWait(again), 15, 'the stretch without progress goes on where it was');
  });

  it('setRetryDelays refuses what is not a short list of seconds (E_INVALIDARG, naming the problem)', async () => {
    const job = await engine.createJob({ displayName: 'odd' });
    for (const [bad, why] of [
      [[5, -1], /item 2 is -1/],
      [[5, Number.NaN], /item 2/],
      ['5,15', /list/],
      [new Array(11).fill(5), /at most 10/],
    ] as const) {
      await assert.rejects(job.setRetryDelays(bad as never), (e: DownloadError) => e.code === 'E_INVALIDARG' && why.test(e.message), String(bad));
    }
    await job.setRetryDelays([]);
    assert.deepEqual(job.retryDelaysSeconds, []);
  });

  it(matrix('hostile input', 'a planted store with an odd retry schedule and wait (negative, text, 1000 steps)', 'the schedule is ignored and reported; the job loads and waits its minimum delay'), async () => {
    const job = await failingJob('/planted', [5]);
    const id = job.id;
    await engine.dispose();
    const file = path.join(dir, 'store', 'jobs.json');
    const text = fs.readFileSync(file, 'utf8');
    for (const [i, planted] of [[-5, 15], 'soon', new Array(1000).fill(1)].entries()) {
      const journal = JSON.parse(text) as { jobs: Record<string, unknown>[] };
      Object.assign(journal.jobs[0], { retryDelaysSeconds: planted, retriesWithoutProgress: 'x', retryWaitStarted: -1 });
      fs.writeFileSync(file, JSON.stringify(journal));
      for (const name of fs.readdirSync(path.join(dir, 'store')).filter((n) => n.endsWith('.log'))) {
        fs.rmSync(path.join(dir, 'store', name));
      }
      engine = await openEngine(path.join(dir, 'store'), { now: () => T0 });
      const loaded = engine.getJob(id);
      assert.deepEqual(loaded.retryDelaysSeconds, [], `case ${i}`);
      assert.ok(engine.problems.some((p) => /retry delays were ignored/.test(p)), engine.problems.join('\n'));
      assert.equal(loaded.record.retriesWithoutProgress, undefined);
      assert.equal(loaded.record.retryWaitStarted, undefined);
      await engine.dispose();
    }
    engine = await openEngine(path.join(dir, 'store'), { now: () => T0 });
  });
});
