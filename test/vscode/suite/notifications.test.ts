// What the user is told: the command's own error notification, with code and hex HRESULT, once.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { randomBody, TestServer } from '../../support/testServer';
import { count, notificationsSince, sleep, useSuiteFixture, waitFor, waitForState, type TestApi } from './util';

describe('notifications', () => {
  let api: TestApi;
  let server: TestServer;
  let dir: string;
  let created: Set<string>;

  useSuiteFixture((f) => ({ api, server, dir, created } = f));

  it('Complete on a CANCELLED job shows DO_E_INVALID_STATE (0x80D02013) naming the job and its state', async function () {
    const job = await api.createJob({ displayName: 'nightly.iso' });
    created.add(job.id);
    await job.cancel();
    const before = api._test.notifier.history.length;
    const result = await vscode.commands.executeCommand('managedDownloads.complete', job.id);
    assert.equal(result, undefined);
    const shown = notificationsSince(api, before);
    assert.equal(shown.length, 1, JSON.stringify(shown));
    const n = shown[0];
    this.test!.title += ` [shown: ${n.message} {${n.actions.join(' | ')}}]`;
    assert.equal(n.severity, 'error');
    // What happened in plain words, then the code; and what to do next.
    assert.equal(n.message, "'nightly.iso' was cancelled, so there is nothing to complete (DO_E_INVALID_STATE, 0x80D02013).");
    assert.equal(count(n.message, 'DO_E_INVALID_STATE'), 1, 'the code is not doubled');
    assert.ok(!n.actions.includes('Retry'), 'no pointless Retry on an invalid state');
    assert.ok(n.actions.includes('Show Download'));
    assert.ok(n.actions.includes('Show Log'));
    assert.ok(!n.actions.includes('Download Again'), 'a job without files has nothing to download again');
  });

  it('Cancel on an ACKNOWLEDGED job shows DO_E_INVALID_STATE too', async () => {
    server.route('/done.txt', { body: Buffer.from('done') });
    const job = await api.createJob({ displayName: 'done job' });
    created.add(job.id);
    await job.addFile(server.url('/done.txt'), path.join(dir, 'done.txt'));
    await job.resume();
    await waitForState(api, job.id, 'TRANSFERRED');
    await job.complete();
    const before = api._test.notifier.history.length;
    await vscode.commands.executeCommand('managedDownloads.cancel', job.id);
    const [n] = notificationsSince(api, before);
    assert.equal(n.severity, 'error');
    assert.equal(n.message, "'done job' is already completed, so there is nothing to cancel (DO_E_INVALID_STATE, 0x80D02013).");
    assert.deepEqual(n.actions.slice(0, 2), ['Download Again', 'Show Download'], 'a finished download offers to fetch it again first');

    // Download Again from the notification makes a new job of the same file (its old copy deleted: no save dialog).
    fs.rmSync(path.join(dir, 'done.txt'));
    const jobsBefore = new Set(api.enumJobs({ includeFinal: true }).map((j) => j.id));
    await n.choose('Download Again');
    const again = await waitFor(() => api.enumJobs({ includeFinal: true }).find((j) => !jobsBefore.has(j.id)), 'a new job');
    created.add(again.id);
    assert.equal(again.getFiles()[0].remoteUrl, server.url('/done.txt'));
  });

  it('a job entering ERROR is announced once, with Retry and Show Job', async () => {
    server.route('/gone', { status: 410 });
    const job = await api.createJob({ displayName: 'gone job' });
    created.add(job.id);
    await job.addFile(server.url('/gone'), path.join(dir, 'gone.bin'));
    const before = api._test.notifier.history.length;
    await job.resume();
    await waitForState(api, job.id, 'ERROR');
    await sleep(500);
    const mine = notificationsSince(api, before).filter((n) => n.jobId === job.id);
    assert.equal(mine.length, 1, JSON.stringify(mine));
    assert.equal(mine[0].severity, 'error');
    // Plain words first, then the code.
    assert.equal(mine[0].message, "'gone job' could not be downloaded: the server has no such file (HTTP 410, 0x8019019A).");
    assert.deepEqual(mine[0].actions.slice(0, 2), ['Retry', 'Show Download']);
  });

  it('a job that does not complete itself says once that it is downloaded but not saved, with Save', async () => {
    server.route('/ready.bin', { body: randomBody(10_000, 11) });
    const job = await api.createJob({ displayName: 'ready job' });
    created.add(job.id);
    await job.addFile(server.url('/ready.bin'), path.join(dir, 'ready.bin'));
    const before = api._test.notifier.history.length;
    await job.resume();
    await waitForState(api, job.id, 'TRANSFERRED');
    const shown = await waitFor(() => notificationsSince(api, before).find((n) => n.jobId === job.id), 'the "not saved yet" notification');
    assert.equal(shown.message, "'ready job' is downloaded but not saved yet: Save puts its files in place.");
    assert.deepEqual(shown.actions, ['Save', 'Show Download']);
    await job.suspend().catch(() => undefined);
    await sleep(300);
    assert.equal(notificationsSince(api, before).filter((n) => n.jobId === job.id).length, 1, 'once per job');
  });

  it('a partial Complete says which files were dropped (BG_S_PARTIAL_COMPLETE)', async () => {
    server.route('/first.bin', { body: randomBody(10_000, 7) });
    server.route('/second.bin', { body: randomBody(3_000_000, 8), throttleBytesPerSec: 100_000 });
    const job = await api.createJob({ displayName: 'two files' });
    created.add(job.id);
    await job.addFileSet([
      { remoteUrl: server.url('/first.bin'), localPath: path.join(dir, 'first.bin') },
      { remoteUrl: server.url('/second.bin'), localPath: path.join(dir, 'second.bin') },
    ]);
    await job.resume();
    await waitFor(() => job.getFiles()[0].transferred, 'the first file');
    const before = api._test.notifier.history.length;
    assert.equal(await vscode.commands.executeCommand('managedDownloads.complete', job.id), 'BG_S_PARTIAL_COMPLETE');
    const [n] = notificationsSince(api, before);
    assert.equal(n.severity, 'warning');
    assert.match(n.message, /BG_S_PARTIAL_COMPLETE, 0x00200017/);
    assert.match(n.message, /second\.bin/);
    assert.doesNotMatch(n.message, /first\.bin/);
  });
});
