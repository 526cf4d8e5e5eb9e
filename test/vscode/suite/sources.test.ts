// Where bytes come from (§8) through the commands a user runs: Change URL… on a file of the view, and Import
// Metalink… of a .meta4 in the workspace. Their input box and file dialogs are answered by stand-ins.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { randomBody, sha256Hex, TestServer } from '../../support/testServer';
import { useSuiteFixture, waitFor, waitForState, type TestApi } from './util';

type Window = typeof vscode.window;

/** Runs `fn` with `vscode.window[name]` answering as `answer` does; the calls it got are returned. */
async function withDialog<K extends 'showInputBox' | 'showOpenDialog'>(name: K, answers: Awaited<ReturnType<Window[K]>>[], fn: () => Promise<void>): Promise<unknown[][]> {
  const win = vscode.window as { -readonly [P in K]: Window[P] };
  const real = win[name];
  const calls: unknown[][] = [];
  win[name] = ((...args: unknown[]) => {
    calls.push(args);
    return Promise.resolve(answers.shift());
  }) as unknown as Window[K];
  try {
    await fn();
  } finally {
    win[name] = real;
  }
  return calls;
}

describe('sources: Change URL… and Import Metalink…', () => {
  let api: TestApi;
  let server: TestServer;
  let dir: string;
  let created: Set<string>;
  const body = randomBody(3_000_000, 41);

  useSuiteFixture((f) => ({ api, server, dir, created } = f));
  beforeEach(() => server.reset());

  /** A job whose one file stopped part-way (suspended), and its row in the view (the one the menu acts on). */
  async function partlyDownloaded(route: string): Promise<{ id: string; row: unknown }> {
    const job = await api.createJob({ displayName: 'change url' });
    created.add(job.id);
    await job.addFile(server.url(route), path.join(dir, 'f.bin'));
    await job.resume();
    await waitFor(() => job.getFiles()[0].bytesTransferred > 400_000, 'some bytes on disk');
    await job.suspend();
    await waitForState(api, job.id, 'SUSPENDED');
    const provider = api._test.provider;
    provider.flushNow();
    const jobNode = provider.getChildren().find((n) => n.id === job.id);
    assert.ok(jobNode, 'the job is in the view');
    // A one-file job is one row: Change URL… is on it (its file has no row of its own).
    assert.deepEqual(provider.getChildren(jobNode), []);
    assert.match(provider.getTreeItem(jobNode).contextValue!, /:changeUrl(:|$)/);
    return { id: job.id, row: jobNode };
  }

  it('Change URL… on a one-file job\'s row keeps the bytes on disk when the new URL serves the same file', async () => {
    server.route('/expired', { body, throttleBytesPerSec: 600_000 });
    server.route('/fresh', { body }); // the same entity (same ETag)
    const { id, row } = await partlyDownloaded('/expired');
    const calls = await withDialog('showInputBox', [server.url('/fresh')], async () => {
      await vscode.commands.executeCommand('managedDownloads.changeUrl', row);
    });
    assert.equal(calls.length, 1, 'the user was asked for the new URL');
    assert.equal((calls[0][0] as vscode.InputBoxOptions).value, server.url('/expired'), 'the box starts from the current URL');
    const job = api.getJob(id);
    assert.equal(job.getFiles()[0].remoteUrl, server.url('/fresh'));
    await job.resume();
    await waitForState(api, id, 'TRANSFERRED');
    const asked = server.requestsFor('/fresh');
    assert.equal(asked.length, 1);
    assert.match(asked[0].range ?? '', /^bytes=[1-9]\d*-$/, 'only the rest was asked from the new URL');
    assert.equal(asked[0].status, 206);
    assert.equal(await job.complete(), 'S_OK');
    assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'f.bin'))), sha256Hex(body));
  });

  it('Change URL… to a URL serving another file drops the bytes and fetches it whole', async () => {
    const other = randomBody(3_000_000, 42);
    server.route('/expired', { body, throttleBytesPerSec: 600_000 });
    server.route('/elsewhere', { body: other });
    const { id, row } = await partlyDownloaded('/expired');
    await withDialog('showInputBox', [server.url('/elsewhere')], async () => {
      await vscode.commands.executeCommand('managedDownloads.changeUrl', row);
    });
    const job = api.getJob(id);
    await job.resume();
    await waitForState(api, id, 'TRANSFERRED');
    const asked = server.requestsFor('/elsewhere');
    assert.match(asked[0]?.range ?? '', /^bytes=[1-9]\d*-$/, 'the rest was asked for first, behind If-Range');
    assert.equal(asked[0].status, 200, 'the server answered with the whole other file');
    assert.equal(asked[0].bytesSent, other.length);
    assert.equal(await job.complete(), 'S_OK');
    assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'f.bin'))), sha256Hex(other));
  });

  it('the row of a one-file job names the hosts its segments come from while a mirror serves segments at the same time', async () => {
    // Large enough to be split with the default settings (two segments of at least 16 MiB), slow enough to look at.
    const big = randomBody(40 * 1024 * 1024, 45);
    server.route('/big.bin', { body: big, throttleBytesPerSec: 4 * 1024 * 1024 });
    const mirror = await TestServer.start();
    try {
      mirror.route('/big.bin', { body: big, throttleBytesPerSec: 4 * 1024 * 1024 });
      const job = await api.createJob({ displayName: 'spread' });
      created.add(job.id);
      await job.addFile(server.url('/big.bin'), path.join(dir, 'big.bin'), { mirrors: [mirror.url('/big.bin')] });
      await job.resume();
      const provider = api._test.provider;
      const row = (): vscode.TreeItem | undefined => {
        provider.flushNow();
        const jobNode = provider.getChildren().find((n) => n.id === job.id);
        return jobNode && provider.getTreeItem(jobNode);
      };
      const hosts = [new URL(server.url('/')).host, new URL(mirror.url('/')).host];
      const item = await waitFor(() => {
        const r = row();
        return r && hosts.every((h) => String(r.description).includes(h)) ? r : undefined;
      }, `the row to name both hosts (it says: ${String(row()?.description)})`);
      assert.match(String(item.description), /at once/);
      const tip = (item.tooltip as vscode.MarkdownString).value;
      assert.ok(tip.includes(server.url('/big.bin')) && tip.includes(mirror.url('/big.bin')), tip);
      await job.cancel();
    } finally {
      await mirror.close();
    }
  });

  it('Import Metalink… of a .meta4 in the workspace makes one suspended job with its files, which downloads', async () => {
    const a = randomBody(50_000, 43);
    const b = randomBody(70_000, 44);
    server.route('/a.bin', { body: a });
    server.route('/b.bin', { status: 404 });
    server.route('/b-mirror.bin', { body: b });
    const workspace = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    assert.ok(workspace, 'the tests run in a workspace');
    const meta = path.join(workspace, 'imported.meta4');
    fs.writeFileSync(
      meta,
      `<?xml version="1.0" encoding="UTF-8"?>
<metalink xmlns="urn:ietf:params:xml:ns:metalink">
  <file name="a.bin"><size>${a.length}</size><hash type="sha-256">${sha256Hex(a)}</hash>
    <url priority="1">${server.url('/a.bin')}</url></file>
  <file name="sub/b.bin"><size>${b.length}</size><hash type="sha-256">${sha256Hex(b)}</hash>
    <url priority="1">${server.url('/b.bin')}</url><url priority="2">${server.url('/b-mirror.bin')}</url></file>
</metalink>`,
    );
    const before = new Set(api.enumJobs({ includeFinal: true }).map((j) => j.id));
    let id: string | undefined;
    const calls = await withDialog('showOpenDialog', [[vscode.Uri.file(meta)], [vscode.Uri.file(dir)]], async () => {
      id = await vscode.commands.executeCommand<string>('managedDownloads.importMetalink');
    });
    fs.rmSync(meta);
    assert.equal(calls.length, 2, 'asked for the Metalink, then for the folder');
    assert.ok(id, 'the command returns the new job id');
    created.add(id);
    assert.deepEqual(
      api.enumJobs({ includeFinal: true }).filter((j) => !before.has(j.id)).map((j) => j.id),
      [id],
      'one job',
    );
    const job = api.getJob(id);
    assert.equal(job.state, 'SUSPENDED');
    const files = job.getFiles();
    assert.deepEqual(
      files.map((f) => [path.relative(dir, f.localPath), f.remoteUrl]),
      [
        ['a.bin', server.url('/a.bin')],
        [path.join('sub', 'b.bin'), server.url('/b.bin')],
      ],
    );
    assert.deepEqual(api._test.engine.getJob(id).getFiles()[1].mirrors, [server.url('/b-mirror.bin')]);
    await job.resume();
    await waitForState(api, id, 'TRANSFERRED');
    assert.equal(await job.complete(), 'S_OK');
    assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'a.bin'))), sha256Hex(a));
    assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'sub', 'b.bin'))), sha256Hex(b), 'the second file came from its mirror');
  });
});
