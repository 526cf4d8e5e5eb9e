// Settings take effect while running.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import type { EngineJob } from '../../../src/engine';
import { randomBody, TestServer } from '../../support/testServer';
import { createEngineJob, setSetting, sleep, useSuiteFixture, waitFor, type TestApi } from './util';

describe('settings', () => {
  let api: TestApi;
  let server: TestServer;
  let dir: string;
  let created: Set<string>;

  useSuiteFixture((f) => ({ api, server, dir, created } = f), {
    routes: (server) => {
      server.route('/slow.bin', { body: randomBody(4_000_000, 12), throttleBytesPerSec: 150_000 });
    },
    resetSettings: ['maxConcurrentJobs', 'retryDelay', 'noProgressTimeout', 'minimumRetryDelaySeconds', 'noProgressTimeoutSeconds'],
  });

  it('maxConcurrentJobs = 1 lets only one job transfer; raising it starts the next at once', async () => {
    await setSetting('maxConcurrentJobs', 1);
    const jobs: EngineJob[] = [];
    for (const name of ['first.bin', 'second.bin']) {
      const j = (await api.createJob({ displayName: name })) as EngineJob;
      created.add(j.id);
      await j.addFile(server.url('/slow.bin'), path.join(dir, name));
      jobs.push(j);
    }
    await jobs[0].resume();
    await waitFor(() => jobs[0].state === 'TRANSFERRING', 'the first job to transfer');
    await jobs[1].resume();
    const running = (): number => jobs.filter((j) => j.state === 'CONNECTING' || j.state === 'TRANSFERRING').length;
    for (let i = 0; i < 15; i++) {
      assert.equal(running(), 1, `states: ${jobs.map((j) => j.state).join(', ')}`);
      await sleep(100);
    }
    assert.equal(jobs[1].state, 'QUEUED');
    await setSetting('maxConcurrentJobs', 2);
    await waitFor(() => running() === 2, 'both jobs to run once the limit is 2');
  });

  it('retryDelay and noProgressTimeout, written as durations, apply to new jobs', async () => {
    await setSetting('retryDelay', '42s');
    await setSetting('noProgressTimeout', '1 hour');
    const j = await createEngineJob(api, { displayName: 'with settings' });
    created.add(j.id);
    assert.equal(j.minimumRetryDelaySeconds, 42);
    assert.equal(j.noProgressTimeoutSeconds, 3600);
    await setSetting('retryDelay', undefined);
    await setSetting('noProgressTimeout', undefined);
    const k = await createEngineJob(api, { displayName: 'defaults' });
    created.add(k.id);
    assert.equal(k.minimumRetryDelaySeconds, 600);
    assert.equal(k.noProgressTimeoutSeconds, 1_209_600);
  });

  it('the older settings in seconds are still honoured until the duration ones are set', async () => {
    await setSetting('minimumRetryDelaySeconds', 42);
    await setSetting('noProgressTimeoutSeconds', 7200);
    const j = await createEngineJob(api, { displayName: 'older settings' });
    created.add(j.id);
    assert.equal(j.minimumRetryDelaySeconds, 42);
    assert.equal(j.noProgressTimeoutSeconds, 7200);
    await setSetting('retryDelay', '2 min');
    await setSetting('noProgressTimeout', '1d');
    const k = await createEngineJob(api, { displayName: 'duration settings win' });
    created.add(k.id);
    assert.equal(k.minimumRetryDelaySeconds, 120);
    assert.equal(k.noProgressTimeoutSeconds, 86_400);
  });

  it('a retryDelay that is not a duration falls back to the default, never to 0', async () => {
    await setSetting('retryDelay', '10 parsecs');
    const j = await createEngineJob(api, { displayName: 'bad duration' });
    created.add(j.id);
    assert.equal(j.minimumRetryDelaySeconds, 600);
  });
});
