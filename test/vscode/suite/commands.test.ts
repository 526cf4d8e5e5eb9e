// Every command, called with arguments the way keybindings and other extensions call them.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { makeZip } from '../../support/archives';
import { randomBody, TestServer } from '../../support/testServer';
import { jobPickItems } from '../../../src/commands/common';
import { priorityPickItems } from '../../../src/commands/jobCommands';
import { count, notificationsSince, setSetting, sleep, useSuiteFixture, waitFor, waitForState, type TestApi } from './util';

const run = <T = unknown>(command: string, ...args: unknown[]): Thenable<T> => vscode.commands.executeCommand<T>(`managedDownloads.${command}`, ...args);

describe('commands', () => {
  let api: TestApi;
  let server: TestServer;
  let dir: string;
  let created: Set<string>;

  useSuiteFixture((f) => ({ api, server, dir, created } = f), {
    routes: (server) => {
      server.route('/small.txt', { body: Buffer.from('small file\n') });
      server.route('/medium.bin', { body: randomBody(200_000, 5) });
      server.route('/slow.bin', { body: randomBody(4_000_000, 6), throttleBytesPerSec: 150_000 });
      server.route('/no-range.bin', { body: randomBody(4_000_000, 8), throttleBytesPerSec: 150_000, ranges: false });
      server.route('/taken.bin', { body: randomBody(300_000, 7), throttleBytesPerSec: 300_000 });
      server.route('/fast.bin', { body: randomBody(16_000_000, 8) });
      server.route('/archive.zip', { body: makeZip([{ name: 'docs/a.txt', data: 'first\n' }, { name: 'b.txt', data: 'second\n' }]) });
    },
    resetSettings: ['showFinishedJobs'],
  });

  async function newJobWith(route: string, name = path.basename(route)): Promise<string> {
    const id = await run<string>('newJob', name);
    created.add(id);
    await run('addFile', id, server.url(route), path.join(dir, name));
    return id;
  }

  it('newDownload(url, path) downloads, completes by itself and offers Open / Reveal', async () => {
    const before = api._test.notifier.history.length;
    const dest = path.join(dir, 'medium.bin');
    const id = await run<string>('newDownload', server.url('/medium.bin'), dest);
    assert.ok(id, 'newDownload returns the job id');
    created.add(id);
    const job = await waitForState(api, id, 'ACKNOWLEDGED');
    assert.equal(job.autoComplete, true);
    assert.equal(fs.statSync(dest).size, 200_000);
    const shown = await waitFor(() => notificationsSince(api, before).find((n) => n.jobId === id), 'the downloaded notification');
    assert.equal(shown.severity, 'info');
    assert.match(shown.message, /medium\.bin/);
    assert.deepEqual(shown.actions, ['Open', 'Reveal']);
  });

  it('newDownload whose destination is taken meanwhile says so with the code, marks the job in the tree and completes once freed', async () => {
    const before = api._test.notifier.history.length;
    const dest = path.join(dir, 'taken.bin');
    const id = await run<string>('newDownload', server.url('/taken.bin'), dest);
    created.add(id);
    await waitFor(() => api.getJob(id).getFiles()[0].bytesTransferred > 0, 'the transfer under way');
    fs.writeFileSync(dest, 'someone else'); // e.g. a build wrote it while we downloaded
    const shown = await waitFor(() => notificationsSince(api, before).find((n) => n.jobId === id), 'the could-not-complete notification');
    assert.equal(shown.severity, 'error');
    assert.match(shown.message, /could not complete itself/);
    assert.match(shown.message, /EEXIST, 0x800700B7/);
    assert.match(shown.message, /taken\.bin/);
    assert.deepEqual(shown.actions, ['Complete', 'Show Download', 'Show Log']);
    assert.equal(api.getJob(id).state, 'TRANSFERRED');
    // Said once, not at every later change of the job.
    await api.getJob(id).setPriority('HIGH');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(notificationsSince(api, before).filter((n) => n.jobId === id && /could not complete itself/.test(n.message)).length, 1);
    assert.equal(fs.readFileSync(dest, 'utf8'), 'someone else', 'the other file is untouched');
    const provider = api._test.provider;
    provider.flushNow();
    const node = provider.getChildren().find((n) => n.id === id);
    assert.ok(node, 'the job is in the tree');
    const item = provider.getTreeItem(node);
    assert.match(String(item.description), /^Downloaded, could not be saved: EEXIST/);
    assert.equal((item.iconPath as vscode.ThemeIcon).id, 'warning');
    assert.match((item.tooltip as vscode.MarkdownString).value, /Could not complete itself/);
    fs.rmSync(dest);
    assert.equal(await run('complete', id), 'S_OK');
    assert.equal(api.getJob(id).state, 'ACKNOWLEDGED');
    assert.equal(fs.statSync(dest).size, 300_000);
  });

  it('newDownload refuses a non-http URL with E_INVALIDARG and creates no job', async () => {
    const before = api._test.notifier.history.length;
    const jobsBefore = api.enumJobs({ includeFinal: true }).length;
    const id = await run('newDownload', 'ftp://127.0.0.1/file', path.join(dir, 'x'));
    assert.equal(id, undefined);
    const [n] = notificationsSince(api, before);
    assert.equal(n.severity, 'error');
    assert.match(n.message, /E_INVALIDARG, 0x80070057/);
    assert.equal(api.enumJobs({ includeFinal: true }).length, jobsBefore);
  });

  it('newJob, addFile, resume, complete with a job id', async () => {
    const id = await run<string>('newJob', { displayName: 'by id', priority: 'LOW' });
    created.add(id);
    const job = api.getJob(id);
    assert.equal(job.state, 'SUSPENDED');
    assert.equal(job.priority, 'LOW');
    assert.equal(await run('addFile', id, server.url('/small.txt'), path.join(dir, 'small.txt')), id);
    assert.equal(job.getFiles().length, 1);
    await run('resume', id);
    await waitForState(api, id, 'TRANSFERRED');
    assert.equal(await run('complete', id), 'S_OK');
    assert.equal(fs.readFileSync(path.join(dir, 'small.txt'), 'utf8'), 'small file\n');
  });

  it('palette pickers list the jobs the action can work on first, finished ones after a separator, by state and name', async () => {
    const active = await newJobWith('/small.txt', 'active.txt');
    const done = await newJobWith('/small.txt', 'done.txt');
    await run('resume', done);
    await waitForState(api, done, 'TRANSFERRED');
    await run('complete', done);
    // Cancel from the palette, accepting the first item as Enter does: the (older) active job, not the newer finished one.
    let settled = false;
    const cancelled = Promise.resolve(run('cancel')).finally(() => (settled = true));
    while (!settled) {
      await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
      await sleep(100);
    }
    await cancelled;
    assert.equal(api.getJob(active).state, 'CANCELLED', 'the first item is a job Cancel can act on');

    const live = await newJobWith('/small.txt', 'live.txt');
    const items = jobPickItems([api._test.engine.getJob(done), api._test.engine.getJob(live)], {
      filter: (j) => !j.isFinal,
      others: { label: 'Finished', filter: (j) => j.isFinal },
    });
    assert.deepEqual(
      items.map((i) => [i.kind === vscode.QuickPickItemKind.Separator ? 'separator' : 'item', i.label.replace(/^\$\([\w-]+\) /, '')]),
      [['item', 'live.txt'], ['separator', 'Finished'], ['item', 'done.txt']],
    );
    assert.match(String(items[0].description), /^Suspended · /, 'the state, in words');
    assert.match(String(items[2].description), /^Completed · /);
    for (const i of items) {
      assert.ok(!`${i.label} ${i.description ?? ''} ${i.detail ?? ''}`.includes(done) && !`${i.detail ?? ''}`.includes(live), `no bare id: ${i.label} ${i.description ?? ''} ${i.detail ?? ''}`);
    }
    assert.equal(items[2].detail, path.join(dir, 'done.txt'), 'the detail says where it went');
  });

  /** Runs `command` as the tree does (a job object, not an id) and answers its question with Enter, after `moves`. */
  async function answer(command: string, id: string, moves: number): Promise<void> {
    let settled = false;
    const done = Promise.resolve(run(command, { id })).finally(() => (settled = true));
    while (!settled) {
      // A move sent before the question shows is lost (and Enter then keeps): callers ask again until it took.
      await sleep(moves > 0 ? 300 : 0);
      for (let i = 0; i < moves; i++) {
        await vscode.commands.executeCommand('workbench.action.quickOpenSelectNext');
      }
      await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
      await sleep(100);
    }
    await done;
  }

  it('Pause from the UI on a server that cannot resume warns first: Enter keeps downloading, "Pause Anyway" pauses', async () => {
    const id = await newJobWith('/no-range.bin');
    await run('resume', id);
    await waitFor(() => api._test.engine.getJob(id).getFiles()[0].serverCannotResume && api.getJob(id).getProgress().bytesTransferred > 0, 'bytes from a server without ranges');
    await answer('suspend', id, 0);
    assert.equal(api.getJob(id).state, 'TRANSFERRING', 'Enter on the warning keeps downloading');
    while (api.getJob(id).state !== 'SUSPENDED') {
      await answer('suspend', id, 1);
    }
    await run('resume', id);
    await run('suspend', id); // an id from a caller: it means it, no question
    assert.equal(api.getJob(id).state, 'SUSPENDED');
  });

  it('Cancel from the UI asks first, and Enter keeps the download; the second answer cancels it', async () => {
    const id = await newJobWith('/slow.bin', 'keep.bin');
    await run('resume', id);
    await waitFor(() => api.getJob(id).getProgress().bytesTransferred > 0, 'some bytes downloaded');
    await answer('cancel', id, 0);
    assert.notEqual(api.getJob(id).state, 'CANCELLED', 'Enter on the question keeps downloading');
    // One move down, then Enter (again if the question opened between the two, which answers "keep").
    while (api.getJob(id).state !== 'CANCELLED') {
      await answer('cancel', id, 1);
    }
    assert.equal(fs.existsSync(path.join(dir, 'keep.bin')), false, '"Cancel Download" cancels');
  });

  it('the priority picker explains each level on its own line and marks the current one', () => {
    const items = priorityPickItems('LOW');
    assert.deepEqual(items.map((i) => i.label), ['FOREGROUND', 'HIGH', 'NORMAL', 'LOW']);
    for (const i of items) {
      assert.ok((i.detail ?? '').split(' ').length >= 5, `${i.label} is explained: "${i.detail ?? ''}"`);
    }
    assert.deepEqual(items.map((i) => i.description), [undefined, undefined, undefined, 'current']);
  });

  it('suspend, setPriority, resume and cancel with a job id', async () => {
    const id = await newJobWith('/slow.bin');
    await run('resume', id);
    await waitForState(api, id, 'TRANSFERRING');
    await run('suspend', id);
    assert.equal(api.getJob(id).state, 'SUSPENDED');
    await run('setPriority', id, 'HIGH');
    assert.equal(api.getJob(id).priority, 'HIGH');
    await run('resume', id);
    await waitForState(api, id, ['QUEUED', 'CONNECTING', 'TRANSFERRING']);
    const temp = api.getJob(id).getFiles()[0].temporaryPath;
    await run('cancel', id);
    assert.equal(api.getJob(id).state, 'CANCELLED');
    assert.equal(fs.existsSync(temp), false);
  });

  it('acts on several jobs at once (arrays of ids, and tree nodes with a selection)', async () => {
    const a = await newJobWith('/slow.bin', 'a.bin');
    const b = await newJobWith('/slow.bin', 'b.bin');
    await run('resume', [a, b]);
    await waitForState(api, a, ['QUEUED', 'CONNECTING', 'TRANSFERRING']);
    await waitForState(api, b, ['QUEUED', 'CONNECTING', 'TRANSFERRING']);
    await run('suspend', [a, b]);
    assert.deepEqual([api.getJob(a).state, api.getJob(b).state], ['SUSPENDED', 'SUSPENDED']);
    // From the tree VS Code passes the clicked node and the whole selection.
    const provider = api._test.provider;
    const nodes = provider.getChildren().filter((n) => n.id === a || n.id === b);
    assert.equal(nodes.length, 2);
    await run('resume', nodes[0], nodes);
    assert.notEqual(api.getJob(a).state, 'SUSPENDED');
    assert.notEqual(api.getJob(b).state, 'SUSPENDED');
    await run('cancel', [a, b]);
    assert.deepEqual([api.getJob(a).state, api.getJob(b).state], ['CANCELLED', 'CANCELLED']);
  });

  it('retry and showError on a job in ERROR', async () => {
    server.route('/flaky.txt', { status: 404 });
    const id = await newJobWith('/flaky.txt');
    await run('resume', id);
    await waitForState(api, id, 'ERROR');
    const before = api._test.notifier.history.length;
    const info = await run<{ code: string; hresult: number }>('showError', id);
    assert.equal(info.code, 'HTTP_404');
    const shown = notificationsSince(api, before).at(-1)!;
    // A sentence first, as the failure notification says it; then how many errors; the details last.
    assert.match(shown.message, /^'[^']+' could not be downloaded: the server has no such file \(HTTP 404, 0x80190194\)\. 1 error so far\. Details/);
    assert.match(shown.message, /HTTP_404, 0x80190194/);
    server.route('/flaky.txt', { body: Buffer.from('now it works') });
    await run('retry', id);
    await waitForState(api, id, 'TRANSFERRED');
  });

  it('openFile, revealFile, showJob, removeJob and clearFinished', async () => {
    const id = await newJobWith('/small.txt', 'open-me.txt');
    await run('resume', id);
    await waitForState(api, id, 'TRANSFERRED');
    await run('complete', id);
    const dest = path.join(dir, 'open-me.txt');
    assert.equal(await run('openFile', id), dest);
    await waitFor(() => vscode.window.activeTextEditor?.document.uri.fsPath === dest, 'the file to open in an editor');
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
    assert.equal(await run('revealFile', id), dest);
    await setSetting('showFinishedJobs', true);
    api._test.provider.flushNow();
    assert.equal(await run('showJob', id), true);
    assert.equal(await run('removeJob', id), undefined);
    assert.throws(() => api.getJob(id), { code: 'DO_E_JOB_NOT_FOUND' });
    const other = await newJobWith('/small.txt', 'other.txt');
    await run('cancel', other);
    const removed = await run<number>('clearFinished');
    assert.ok(removed >= 1);
    assert.equal(api.enumJobs({ includeFinal: true }).filter((j) => j.state === 'ACKNOWLEDGED' || j.state === 'CANCELLED').length, 0);
  });

  it('extract unpacks a completed archive into a folder beside it, named after it; again, it is left as is', async () => {
    const id = await newJobWith('/archive.zip', 'bundle.zip');
    await run('resume', id);
    await waitForState(api, id, 'TRANSFERRED');
    await run('complete', id);
    const folder = path.join(dir, 'bundle');
    assert.equal(await run('extract', id), folder);
    assert.equal(fs.readFileSync(path.join(folder, 'docs', 'a.txt'), 'utf8'), 'first\n');
    assert.equal(fs.readFileSync(path.join(folder, 'b.txt'), 'utf8'), 'second\n');
    assert.ok(fs.existsSync(path.join(dir, 'bundle.zip')), 'the archive stays in place');
    const extractedAt = fs.statSync(path.join(folder, 'b.txt')).mtimeMs;
    assert.equal(await run('extract', id), folder);
    assert.equal(fs.statSync(path.join(folder, 'b.txt')).mtimeMs, extractedAt, 'already extracted: not written again');
  });

  it('setSpeedLimit with a job id: the job keeps to it, and the tree says "…, limited"', async () => {
    const id = await newJobWith('/fast.bin', 'limited.bin');
    await run('setSpeedLimit', id, 256 * 1024);
    assert.equal(api.getJob(id).maxBytesPerSecond, 256 * 1024);
    await run('resume', id);
    await waitForState(api, id, 'TRANSFERRING');
    const provider = api._test.provider;
    const description = (): string => {
      provider.flushNow();
      const node = provider.getChildren().find((n) => n.id === id);
      return node ? String(provider.getTreeItem(node).description ?? '') : '';
    };
    await waitFor(() => /, limited/.test(description()), 'the tree to show the job as limited');
    // Unlimited, 16 MB on loopback take a fraction of a second; at 256 KiB/s, about a minute.
    assert.notEqual(api.getJob(id).state, 'TRANSFERRED', 'the limit holds the job back');
    await run('setSpeedLimit', id, 0);
    assert.equal(api.getJob(id).maxBytesPerSecond, 0);
    await waitForState(api, id, 'TRANSFERRED');
  });

  it('downloadAgain fetches the files of a finished job anew; copyLink copies its link', async () => {
    const id = await newJobWith('/medium.bin', 'again.bin');
    await run('resume', id);
    await waitForState(api, id, 'TRANSFERRED');
    await run('complete', id);
    assert.equal(await run('copyLink', id), server.url('/medium.bin'));
    assert.equal(await vscode.env.clipboard.readText(), server.url('/medium.bin'));
    // The file was deleted since: the same place again, in a new job that completes itself.
    const dest = path.join(dir, 'again.bin');
    fs.rmSync(dest);
    const again = await run<string>('downloadAgain', id);
    assert.ok(again && again !== id, 'a new job');
    created.add(again);
    await waitForState(api, again, 'ACKNOWLEDGED');
    assert.equal(fs.statSync(dest).size, 200_000);
    // Several files, one of them still in place: refused with the reason, nothing started.
    const two = await newJobWith('/small.txt', 'two-a.txt');
    await run('addFile', two, server.url('/small.txt'), path.join(dir, 'two-b.txt'));
    await run('resume', two);
    await waitForState(api, two, 'TRANSFERRED');
    await run('complete', two);
    const before = api._test.notifier.history.length;
    const jobsBefore = api.enumJobs({ includeFinal: true }).length;
    assert.equal(await run('downloadAgain', two), undefined);
    const [n] = notificationsSince(api, before);
    assert.match(n.message, /2 of its files are there already/);
    assert.equal(api.enumJobs({ includeFinal: true }).length, jobsBefore);
  });

  it('refresh, showFinishedJobs, hideFinishedJobs and showLog run', async () => {
    await run('refresh');
    assert.equal(await run('showFinishedJobs'), true);
    assert.equal(vscode.workspace.getConfiguration('managedDownloads').get('showFinishedJobs'), true);
    assert.equal(await run('hideFinishedJobs'), false);
    assert.equal(vscode.workspace.getConfiguration('managedDownloads').get('showFinishedJobs'), false);
    await run('showLog');
  });

  it('an unknown job id shows DO_E_JOB_NOT_FOUND with its HRESULT', async () => {
    const before = api._test.notifier.history.length;
    await run('resume', 'no-such-job');
    const [n] = notificationsSince(api, before);
    assert.equal(n.severity, 'error');
    assert.match(n.message, /DO_E_JOB_NOT_FOUND, 0x80D02003/);
    assert.equal(count(n.message, 'DO_E_JOB_NOT_FOUND'), 1);
  });
});
