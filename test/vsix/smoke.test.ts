// Smoke test of the packaged extension, installed from its .vsix with `--install-extension` (not loaded from this
// repository): it activates, downloads, shows the job in its tree and tells the user about an invalid state.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { createHash } from 'node:crypto';
import { randomBody, TestServer } from '../support/testServer';
import { activate, EXTENSION_ID, notificationsSince, tempDir, waitFor, waitForState, type TestApi } from '../vscode/suite/util';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('installed .vsix', () => {
  let api: TestApi;
  let server: TestServer;
  let dir: string;
  const body = randomBody(300_000, 77);

  before(async () => {
    server = await TestServer.start();
    server.route('/tool.bin', { body });
    dir = tempDir('md-vsix-');
  });
  after(async () => {
    await server.close();
  });

  it('is the installed copy, not the repository, and activates with API version 1', async () => {
    const ext = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(ext, `${EXTENSION_ID} is not installed`);
    const repo = path.resolve(process.env.MD_REPO_ROOT ?? '');
    assert.notEqual(path.resolve(ext.extensionPath), repo, 'loaded from the development path');
    assert.ok(!fs.existsSync(path.join(ext.extensionPath, 'src')), `sources shipped in ${ext.extensionPath}`);
    assert.ok(fs.existsSync(path.join(ext.extensionPath, 'dist', 'extension.js')));
    api = await activate();
    assert.equal(api.apiVersion, 1);
  });

  it('downloads a file through New Download and puts it in place', async () => {
    const dest = path.join(dir, 'tool.bin');
    await vscode.commands.executeCommand('managedDownloads.newDownload', server.url('/tool.bin'), dest);
    await waitFor(() => fs.existsSync(dest), `${dest} in place`, 30_000);
    assert.equal(sha256(fs.readFileSync(dest)), sha256(body));
  });

  it('lists a job in its tree and reports Complete on a finished job as DO_E_INVALID_STATE', async () => {
    const job = await api.createJob({ displayName: 'smoke job' });
    await job.addFile(server.url('/tool.bin'), path.join(dir, 'smoke.bin'));
    await job.resume();
    await waitForState(api, job.id, 'TRANSFERRED');
    const rows = api._test.provider.getChildren();
    const row = rows.find((n) => n.id === job.id);
    assert.ok(row, 'the job is not in the tree');
    const label = api._test.provider.getTreeItem(row).label;
    assert.match(typeof label === 'string' ? label : label?.label ?? '', /smoke job/);
    assert.equal(await job.complete(), 'S_OK');
    const before = api._test.notifier.history.length;
    await vscode.commands.executeCommand('managedDownloads.complete', job.id);
    const shown = notificationsSince(api, before);
    assert.equal(shown.length, 1, JSON.stringify(shown));
    assert.match(shown[0].message, /DO_E_INVALID_STATE, 0x80D02013/);
  });
});
