// The jobs tree: children, labels, descriptions, context values and icons for jobs in each state.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { EngineJob } from '../../../src/engine';
import type { TreeNode } from '../../../src/views/jobsTreeProvider';
import { PAGE_ROWS, ROOT_ROWS, type PageNode } from '../../../src/views/nodes/pageNode';
import { makeZip } from '../../support/archives';
import { randomBody, TestServer } from '../../support/testServer';
import { createEngineJob, setSetting, sleep, useSuiteFixture, waitFor, waitForState, type TestApi } from './util';

const FINISHED_GROUP = 'managedDownloads.finished';

describe('tree view', () => {
  let api: TestApi;
  let server: TestServer;
  let dir: string;
  let created: Set<string>;

  useSuiteFixture((f) => ({ api, server, dir, created } = f), {
    routes: (server) => {
      server.route('/ok.bin', { body: randomBody(50_000, 9) });
      server.route('/slow.bin', { body: randomBody(5_000_000, 10), throttleBytesPerSec: 200_000 });
      server.route('/404', { status: 404 });
    },
    resetSettings: ['showFinishedJobs'],
  });

  async function job(name: string, route?: string): Promise<EngineJob> {
    const j = await createEngineJob(api, { displayName: name });
    created.add(j.id);
    if (route) {
      await j.addFile(server.url(route), path.join(dir, name));
    }
    return j;
  }

  /** A job of two files (its files are rows under it): `first` from `route`, then a small second one. */
  async function pair(first: string, route: string): Promise<EngineJob> {
    const j = await job(`${first} and more`, route);
    await j.addFile(server.url('/ok.bin'), path.join(dir, `second-of-${first}`));
    return j;
  }

  /** A job's row, at the root or inside the "Finished" group. */
  function item(id: string): { node: TreeNode; item: vscode.TreeItem } {
    const provider = api._test.provider;
    const rows = provider.getChildren();
    const group = rows.find((n) => n.id === FINISHED_GROUP);
    const node = [...rows, ...(group ? provider.getChildren(group) : [])].find((n) => n.id === id);
    assert.ok(node, `job ${id} is not in the tree`);
    return { node, item: provider.getTreeItem(node) };
  }

  const icon = (i: vscode.TreeItem): string => (i.iconPath as vscode.ThemeIcon).id;

  it('shows each state with its label, description, context value and icon', async () => {
    const empty = await job('empty job');
    const suspended = await job('suspended.bin', '/ok.bin');
    const running = await job('running.bin', '/slow.bin');
    const failed = await job('failed.bin', '/404');
    const transferred = await job('transferred.bin', '/ok.bin');
    await Promise.all([running.resume(), failed.resume(), transferred.resume()]);
    await waitForState(api, running.id, 'TRANSFERRING');
    await waitFor(() => running.getProgress().bytesTransferred > 0 && running.getSpeed() > 0, 'speed');
    await waitForState(api, failed.id, 'ERROR');
    await waitForState(api, transferred.id, 'TRANSFERRED');

    let t = item(empty.id).item;
    assert.equal(t.label, 'empty job');
    assert.equal(t.id, empty.id);
    assert.equal(t.description, 'Suspended · no files');
    assert.equal(t.contextValue, 'job:SUSPENDED:download:cancellable:modifiable:canAddFile:empty');
    assert.equal(icon(t), 'debug-pause');
    assert.equal(t.collapsibleState, vscode.TreeItemCollapsibleState.None);

    t = item(suspended.id).item;
    assert.equal(t.description, 'Suspended · 0 B');
    assert.match(t.contextValue!, /^job:SUSPENDED:download:resumable:cancellable/);
    assert.doesNotMatch(t.contextValue!, /suspendable|completable/);

    t = item(running.id).item;
    // What matters first, so a narrow view keeps it; the spinning icon (and the screen reader's label) says "Transferring".
    assert.match(t.description as string, /^\d+% · ETA \d+[^·]* · [\d.]+ (B|KB|MB)\/s · [\d.]+ (B|KB|MB) of 4\.8 MB$/);
    assert.match(t.accessibilityInformation!.label, /^running\.bin, Transferring · \d+% · /);
    assert.match(t.contextValue!, /^job:TRANSFERRING:download:suspendable:cancellable:modifiable/);
    assert.doesNotMatch(t.contextValue!, /resumable|completable/);
    assert.equal(icon(t), 'loading~spin');
    const tip = (t.tooltip as vscode.MarkdownString).value.replace(/\\(.)/g, '$1');
    assert.ok(tip.includes(running.id), 'the tooltip shows the id');
    assert.match(tip, /NORMAL/);
    assert.ok(tip.includes('.mdpart'), 'the tooltip lists the temporary file');
    assert.ok(tip.split('\n')[0].endsWith(`**${path.join(dir, 'running.bin')}**  `), `the tooltip starts with the destination: ${tip.split('\n')[0]}`);
    assert.ok(tip.includes(`**URL:** ${server.url('/slow.bin')}`), 'a one-file job\'s tooltip has its file\'s URL');

    t = item(failed.id).item;
    assert.equal(t.description, 'Failed: not found (404) · 0 B', 'plain words first, the code in the tooltip');
    assert.match(t.contextValue!, /^job:ERROR:download:cancellable:modifiable:retryable:hasError/);
    assert.doesNotMatch(t.contextValue!, /suspendable|canAddFile/, 'no Pause and no Add File on a failed job');
    assert.equal(icon(t), 'error');
    assert.match((t.tooltip as vscode.MarkdownString).value.replace(/\\(.)/g, '$1'), /HTTP_404, 0x80190194/);

    t = item(transferred.id).item;
    assert.equal(t.description, 'Downloaded — not saved yet · 100% · 48.8 KB of 48.8 KB', 'TRANSFERRED in words: the bytes are here, not yet under their name');
    assert.match(t.contextValue!, /^job:TRANSFERRED:download:cancellable:modifiable:completable/);
    assert.equal(icon(t), 'check');

  });

  it('shows the files of a job of several as rows under it, each with its own status', async () => {
    const running = await pair('running.bin', '/slow.bin');
    const failed = await pair('failed.bin', '/404');
    const transferred = await pair('transferred.bin', '/ok.bin');
    await Promise.all([running.resume(), failed.resume(), transferred.resume()]);
    await waitForState(api, running.id, 'TRANSFERRING');
    await waitFor(() => running.getProgress().bytesTransferred > 0, 'bytes');
    await waitForState(api, failed.id, 'ERROR');
    await waitForState(api, transferred.id, 'TRANSFERRED');
    const provider = api._test.provider;
    const rows = (j: EngineJob): vscode.TreeItem[] => provider.getChildren(item(j.id).node).map((n) => provider.getTreeItem(n));

    assert.equal(item(running.id).item.collapsibleState, vscode.TreeItemCollapsibleState.Collapsed);
    const [runningFile, waitingFile] = rows(running);
    assert.match(String(runningFile.description), /^\d+% · [\d.]+ (B|KB|MB) of 4\.8 MB$/, 'the file row too: percent first');
    assert.match(runningFile.accessibilityInformation!.label, /^running\.bin and more, transferring · \d+% · /);
    assert.match(String(waitingFile.description), /^waiting · /);

    const [failedFile, behindIt] = rows(failed);
    assert.match(String(failedFile.description), /^failed · /, 'the file it failed on says so, not "waiting"');
    assert.match(String(behindIt.description), /^waiting · /);

    const files = provider.getChildren(item(transferred.id).node);
    assert.equal(files.length, 2);
    const f = provider.getTreeItem(files[0]);
    assert.equal(f.label, 'transferred.bin and more');
    assert.equal(f.description, 'transferred · 48.8 KB');
    assert.equal(f.contextValue, 'file:transferred');
    assert.equal(f.id, `${transferred.id}/file/0`);
    assert.equal(provider.getParent(files[0]), item(transferred.id).node);
  });

  it('keeps the reason on a job cancelled after it failed (as a task does with its failed job)', async () => {
    const j = await job('gone.bin', '/404');
    await j.resume();
    await waitForState(api, j.id, 'ERROR');
    await j.cancel();
    await waitForState(api, j.id, 'CANCELLED');
    const t = item(j.id).item;
    assert.equal(t.description, 'Cancelled: not found (404) · 0 B', 'not a bare "Cancelled · 0 B"');
    const tip = (t.tooltip as vscode.MarkdownString).value.replace(/\\(.)/g, '$1');
    assert.match(tip, /\*\*Failed before it was cancelled:\*\* .*HTTP_404, 0x80190194/);
  });

  it('says what a partial Complete kept, not a percentage of the files it dropped', async () => {
    const j = await job('kept one', '/ok.bin');
    await j.addFile(server.url('/slow.bin'), path.join(dir, 'dropped.bin'));
    await j.resume();
    await waitFor(() => j.getFiles()[0].transferred, 'the first file transferred');
    assert.equal(await j.complete(), 'BG_S_PARTIAL_COMPLETE');
    await waitForState(api, j.id, 'ACKNOWLEDGED');
    assert.equal(item(j.id).item.description, 'Completed · 1 file kept of 2 · 48.8 KB');
  });

  it('shows a one-file job as one row: no child repeating it, its file\'s actions and details on the job', async () => {
    server.route('/tools.zip', { body: makeZip([{ name: 'a.txt', data: 'a\n' }]) });
    const suspended = await job('suspended.bin', '/slow.bin');
    const archive = await job('tools.zip', '/tools.zip');
    await archive.resume();
    await waitForState(api, archive.id, 'TRANSFERRED');
    await archive.complete();
    const provider = api._test.provider;

    const s = item(suspended.id);
    assert.equal(s.item.collapsibleState, vscode.TreeItemCollapsibleState.None, 'nothing to expand');
    assert.deepEqual(provider.getChildren(s.node), [], 'no file row repeating the job');
    assert.match(s.item.contextValue!, /:changeUrl(:|$)/, 'Change URL… is offered on the job row');
    assert.doesNotMatch(s.item.contextValue!, /:archive(:|$)/);
    const tip = (s.item.tooltip as vscode.MarkdownString).value.replace(/\\(.)/g, '$1');
    assert.ok(tip.includes(`**URL:** ${server.url('/slow.bin')}`), tip);

    const a = item(archive.id);
    assert.equal(a.item.collapsibleState, vscode.TreeItemCollapsibleState.None);
    assert.match(a.item.contextValue!, /:archive(:|$)/, 'Extract is offered on the job row of a completed archive');
    assert.doesNotMatch(a.item.contextValue!, /:changeUrl(:|$)/, 'no Change URL… once the file is in place');
    // The menu's Extract, run on the job's row, unpacks its one file.
    const folder = await vscode.commands.executeCommand<string>('managedDownloads.extract', a.node);
    assert.equal(folder, path.join(dir, 'tools'));
    assert.equal(fs.readFileSync(path.join(folder, 'a.txt'), 'utf8'), 'a\n');
  });

  it('lists finished jobs in a "Finished" group by default, newest first, and hides them when the setting is off, live', async () => {
    const done = await job('done.bin', '/ok.bin');
    await done.resume();
    await waitForState(api, done.id, 'TRANSFERRED');
    await done.complete();
    await sleep(5);
    const cancelled = await job('cancelled job');
    await cancelled.cancel();
    const provider = api._test.provider;
    const ids = (): string[] => provider.getChildren().map((n) => n.id);
    await waitFor(() => ids().includes(FINISHED_GROUP), 'the Finished group');
    assert.ok(!ids().includes(done.id) && !ids().includes(cancelled.id), 'finished jobs are not among the active ones');
    const group = provider.getChildren().find((n) => n.id === FINISHED_GROUP)!;
    assert.equal(ids().at(-1), FINISHED_GROUP, 'the group comes after the active jobs');
    const g = provider.getTreeItem(group);
    assert.equal(g.label, 'Finished');
    assert.equal(g.collapsibleState, vscode.TreeItemCollapsibleState.Expanded);
    assert.match(String(g.description), /^\d+$/);
    const inGroup = provider.getChildren(group).map((n) => n.id);
    assert.ok(inGroup.indexOf(cancelled.id) >= 0 && inGroup.indexOf(cancelled.id) < inGroup.indexOf(done.id), `newest first: ${inGroup.join(', ')}`);
    assert.equal(provider.getParent(item(done.id).node), group, 'reveal() can find a finished job through its group');
    const t = item(done.id).item;
    assert.equal(t.description, 'Completed · 100% · 48.8 KB of 48.8 KB');
    assert.match(t.contextValue!, /^job:ACKNOWLEDGED:download:openable:linked:again:final$/);
    assert.equal(icon(t), 'pass');
    assert.deepEqual(provider.getChildren(item(done.id).node), [], 'a one-file job has no file row');
    const c = item(cancelled.id).item;
    assert.equal(c.contextValue, 'job:CANCELLED:download:empty:final');
    assert.equal(icon(c), 'circle-slash');
    await setSetting('showFinishedJobs', false);
    await waitFor(() => !ids().includes(FINISHED_GROUP), 'the Finished group to go');
    assert.ok(!ids().includes(done.id));
    await setSetting('showFinishedJobs', undefined);
    await waitFor(() => ids().includes(FINISHED_GROUP), 'the Finished group back (default)');
  });

  it('refreshes changed jobs per item while they transfer, never the whole tree', async () => {
    const provider = api._test.provider;
    const running = await job('ticking.bin', '/slow.bin');
    await running.resume();
    await waitForState(api, running.id, 'TRANSFERRING');
    provider.getChildren();
    await sleep(400);
    const fired: (TreeNode[] | TreeNode | undefined)[] = [];
    const d = provider.onDidChangeTreeData((e) => fired.push(e));
    await sleep(1500);
    d.dispose();
    assert.ok(fired.length >= 2, `expected several per-item refreshes, got ${fired.length}`);
    assert.ok(fired.length <= 1500 / 300 + 2, `refreshes are throttled (got ${fired.length} in 1.5 s)`);
    for (const e of fired) {
      assert.ok(Array.isArray(e), 'a progress tick fires an array of changed nodes, not a full refresh');
      assert.ok(e.every((n) => n.id === running.id));
    }
  });

  it('a long list: past 200 active jobs the root lists 200 and the rest in pages of 500, built when opened; a job that starts running comes to the root', async function () {
    this.timeout(180_000);
    const count = ROOT_ROWS + PAGE_ROWS + 50;
    const many: EngineJob[] = new Array<EngineJob>(count);
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let i = next++; i < count; i = next++) {
          many[i] = await job(`bulk ${i}`, '/slow.bin');
        }
      }),
    );
    const provider = api._test.provider;
    provider.flushNow();
    const rows = provider.getChildren();
    const pages = rows.filter((n): n is PageNode => n.kind === 'page'); // the bundle's classes, not this file's imports
    const total = api._test.engine.enumJobs().length; // the active ones (earlier tests may have left some)
    assert.ok(total >= count);
    assert.equal(rows.filter((n) => n.kind === 'job').length, ROOT_ROWS, 'the first 200 one by one');
    assert.deepEqual(pages.map((p) => [p.start, p.end]), [[ROOT_ROWS, ROOT_ROWS + PAGE_ROWS], [ROOT_ROWS + PAGE_ROWS, total]]);
    const pageItem = provider.getTreeItem(pages[1]);
    assert.equal(pageItem.label, 'More downloads');
    assert.equal(pageItem.description, `701–${total.toLocaleString('en')} of ${total.toLocaleString('en')}`);
    assert.equal(pageItem.collapsibleState, vscode.TreeItemCollapsibleState.Collapsed);
    // Newest first: the oldest job is in the last page, and says so to reveal().
    const oldest = many[0];
    const inPage = provider.getChildren(pages[1]);
    assert.equal(inPage.length, total - ROOT_ROWS - PAGE_ROWS);
    assert.ok(inPage.some((n) => n.id === oldest.id), 'the oldest job is in the last page');
    assert.equal(provider.getParent(provider.nodeFor(oldest)), pages[1]);
    // It starts: running jobs come before the waiting ones, at the root.
    await oldest.resume();
    await waitForState(api, oldest.id, 'TRANSFERRING');
    provider.flushNow();
    const after = provider.getChildren();
    assert.equal(after[0].id, oldest.id, 'the running job is the first row');
    assert.equal(provider.getParent(provider.nodeFor(oldest)), undefined);
    await oldest.suspend();
  });

  it('shows the number of active jobs as a badge and in the status bar', async () => {
    const running = await job('badge.bin', '/slow.bin');
    await running.resume();
    await waitForState(api, running.id, 'TRANSFERRING');
    const view = api._test.view;
    await waitFor(() => view.treeView.badge?.value === 1, 'the badge');
    const status = api._test.statusBar.item;
    await waitFor(() => /^\$\(cloud-download\) 1 · \d+%$/.test(status.text), `the status bar text (${status.text})`);
    assert.equal(status.command, 'managedDownloads.jobs.focus');
    assert.equal(view.treeView.badge?.tooltip, '1 active download', 'singular for one');
    assert.match(status.accessibilityInformation!.label, /^1 active download, \d+%$/);
    const second = await job('badge-2.bin', '/slow.bin');
    await second.resume();
    await waitFor(() => view.treeView.badge?.value === 2, 'the badge to count two');
    assert.equal(view.treeView.badge?.tooltip, '2 active downloads');
    await second.suspend();
    await running.suspend();
    await waitFor(() => view.treeView.badge === undefined, 'the badge to clear');
  });
});
