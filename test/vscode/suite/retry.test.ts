// Waiting to retry, as a person sees it: jobs started from the UI retry soon, the row and the status bar count down,
// Retry Now skips the wait, a changed setting moves the wait, and a toast's button never fails on a job that changed.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { EngineJob } from '../../../src/engine';
import { randomBody, TestServer } from '../../support/testServer';
import { createEngineJob, notificationsSince, setSetting, useSuiteFixture, waitFor, waitForState, type TestApi } from './util';

describe('waiting to retry', () => {
  let api: TestApi;
  let server: TestServer;
  let dir: string;
  let created: Set<string>;
  const body = randomBody(20_000, 31);

  useSuiteFixture((f) => ({ api, server, dir, created } = f), { resetSettings: ['retryDelay', 'minimumRetryDelaySeconds'] });
  beforeEach(() => server.reset());

  /** A job made through the API (the contract's 600 s wait) that fails with 503 until the route changes. */
  async function waitingApiJob(name: string): Promise<EngineJob> {
    server.route(`/${name}`, { status: 503 });
    const job = await createEngineJob(api, { displayName: name });
    created.add(job.id);
    await job.addFile(server.url(`/${name}`), path.join(dir, name));
    await job.resume();
    return waitForState(api, job.id, 'TRANSIENT_ERROR');
  }

  /** A New Download from the UI of a URL that fails with 503 until the route changes. */
  async function waitingUserJob(name: string): Promise<EngineJob> {
    server.route(`/${name}`, { status: 503 });
    const id = await vscode.commands.executeCommand<string>('managedDownloads.newDownload', server.url(`/${name}`), path.join(dir, name));
    assert.ok(id, 'New Download made a job');
    created.add(id);
    return waitForState(api, id, 'TRANSIENT_ERROR');
  }

  function row(job: EngineJob): vscode.TreeItem {
    const provider = api._test.provider;
    return provider.getTreeItem(provider.nodeFor(job));
  }

  it('a New Download retries after 5 s, 15 s, 60 s, then the minimum; an API job waits the minimum (600 s)', async () => {
    const user = await waitingUserJob('ui.bin');
    assert.deepEqual(user.retryDelaysSeconds, [5, 15, 60]);
    assert.ok(user.retryAt!.getTime() <= Date.now() + 5_000, `next retry at ${user.retryAt!.toISOString()}`);
    const apiJob = await waitingApiJob('api.bin');
    assert.deepEqual(apiJob.retryDelaysSeconds, []);
    assert.ok(apiJob.retryAt!.getTime() > Date.now() + 500_000, 'the contract default');
  });

  it('the row of a waiting job counts down each second without engine events, and stops once none waits', async () => {
    const job = await waitingUserJob('countdown.bin');
    const provider = api._test.provider;
    assert.ok(provider.countingDown);
    const retryAt = job.retryAt!.getTime();
    const seen = new Set<string>();
    let engineEvents = 0;
    const subs = [
      api._test.host.onDidChangeJob((j) => j.id === job.id && engineEvents++),
      provider.onDidChangeTreeData((nodes) => {
        if (Array.isArray(nodes) && nodes.some((n) => n.id === job.id) && job.state === 'TRANSIENT_ERROR' && job.retryAt?.getTime() === retryAt) {
          seen.add(String(row(job).description));
        }
      }),
    ];
    try {
      await waitFor(() => seen.size >= 2, 'two different countdowns in the row');
    } finally {
      subs.forEach((s) => {
        s.dispose();
      });
    }
    assert.equal(engineEvents, 0, 'the row moved on its own, not because the job changed');
    assert.ok([...seen].every((d) => /retry in \d+ s/.test(d)), [...seen].join(' | '));
    await job.cancel();
    await waitFor(() => !provider.countingDown, 'the countdown to stop');
  });

  it('the status bar turns to a warning with the countdown while a job waits to retry', async () => {
    const item = api._test.statusBar.item;
    const job = await waitingUserJob('status.bin');
    // The background, not the text alone: a hidden item keeps the text it had when the last job went (an earlier
    // test's countdown), and the status bar redraws half a second after a change.
    await waitFor(() => item.backgroundColor !== undefined && item.text.startsWith('$(warning)'), `a warning in the status bar (it shows ${item.text})`);
    assert.match(item.text, /retry in \d+ s/);
    assert.equal(item.backgroundColor?.id, 'statusBarItem.warningBackground');
    server.route('/status.bin', { body });
    await vscode.commands.executeCommand('managedDownloads.retry', job.id);
    await waitForState(api, job.id, 'ACKNOWLEDGED');
    await waitFor(() => item.backgroundColor === undefined, 'the warning to go');
  });

  it('Retry Now (not Resume) is offered on a waiting job and retries at once, skipping the 600 s wait', async () => {
    const job = await waitingApiJob('now.bin');
    const context = row(job).contextValue!;
    assert.match(context, /:retryable/);
    assert.doesNotMatch(context, /:resumable/, 'a job waiting to retry is not paused');
    const before = api._test.notifier.history.length;
    await vscode.commands.executeCommand('managedDownloads.showError', job.id);
    const [shown] = notificationsSince(api, before);
    assert.equal(shown.actions[0], 'Retry Now');
    server.route('/now.bin', { body });
    await shown.choose('Retry Now');
    await waitForState(api, job.id, 'TRANSFERRED');
  });

  it('a changed minimum retry delay applies to a job already waiting', async () => {
    const job = await waitingApiJob('setting.bin');
    server.route('/setting.bin', { body });
    await setSetting('retryDelay', '5 seconds');
    await waitFor(() => job.retryAt === undefined || job.retryAt.getTime() <= Date.now() + 5_000, 'the wait to shrink to 5 s');
    assert.equal(job.minimumRetryDelaySeconds, 5);
    await waitForState(api, job.id, 'TRANSFERRED');
  });

  it("a failure toast's Retry, clicked after the job was cancelled, says so plainly instead of failing with DO_E_INVALID_STATE", async () => {
    server.route('/gone.bin', { status: 404 });
    const job = await createEngineJob(api, { displayName: 'gone.bin' });
    created.add(job.id);
    await job.addFile(server.url('/gone.bin'), path.join(dir, 'gone.bin'));
    const before = api._test.notifier.history.length;
    await job.resume();
    const toast = await waitFor(() => notificationsSince(api, before).find((n) => n.jobId === job.id && n.actions.includes('Retry')), 'the failure toast');
    await job.cancel();
    const clicked = api._test.notifier.history.length;
    await toast.choose('Retry');
    const after = notificationsSince(api, clicked);
    assert.ok(!after.some((n) => /DO_E_INVALID_STATE/.test(n.message)), JSON.stringify(after));
    assert.deepEqual(after.map((n) => n.message), ["'gone.bin' was cancelled in the meantime; nothing was done."]);
  });
});
