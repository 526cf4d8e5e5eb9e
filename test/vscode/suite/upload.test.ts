// Upload jobs in the editor: New Upload, Complete refused until TRANSFERRED (with its notification), then done.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { startBitsUploadServer, type BitsUploadServer } from '../../support/bitsUploadServer';
import { randomBody, sha256Hex } from '../../support/testServer';
import { activate, cleanupJobs, notificationsSince, tempDir, waitForState, type TestApi } from './util';

describe('upload jobs', () => {
  let api: TestApi;
  let server: BitsUploadServer;
  let dir: string;
  const created = new Set<string>();

  before(async () => {
    api = await activate();
    server = await startBitsUploadServer();
  });
  after(async () => {
    await cleanupJobs(api, created);
    await server.close();
  });
  beforeEach(() => {
    dir = tempDir();
  });

  it('New Upload sends the file; Complete is refused (DO_E_INVALID_STATE) until TRANSFERRED, then closes the session', async () => {
    const body = randomBody(3_000_000, 404);
    const local = path.join(dir, 'report.bin');
    fs.writeFileSync(local, body);
    server.faults = { ackDelayMs: 500 };
    const id = await vscode.commands.executeCommand<string>('managedDownloads.newUpload', local, server.url('/uploads/report.bin'));
    assert.ok(id, 'the command returns the new job id');
    created.add(id);
    const job = api._test.engine.getJob(id);
    assert.equal(job.type, 'upload');
    // While fragments go, the tree offers no Complete and the palette command explains why.
    const node = api._test.provider.nodeFor(job);
    const early = api._test.provider.getTreeItem(node);
    assert.notEqual(job.state, 'TRANSFERRED', 'each fragment Ack is delayed 500 ms, so the upload is still going');
    assert.ok(!String(early.contextValue).includes('completable'), String(early.contextValue));
    const before = api._test.notifier.history.length;
    await vscode.commands.executeCommand('managedDownloads.complete', id);
    const shown = notificationsSince(api, before).map((n) => n.message).join('\n');
    assert.match(shown, /DO_E_INVALID_STATE, 0x80D02013/);
    assert.notEqual(api._test.engine.getJob(id).state, 'ACKNOWLEDGED');
    server.faults = {};
    await waitForState(api, id, 'TRANSFERRED', 30_000);
    const item = api._test.provider.getTreeItem(api._test.provider.nodeFor(job));
    assert.match(String(item.contextValue), /completable/);
    assert.equal((item.iconPath as vscode.ThemeIcon).id, 'cloud-upload');
    const beforeComplete = api._test.notifier.history.length;
    assert.equal(await vscode.commands.executeCommand('managedDownloads.complete', id), 'S_OK');
    assert.equal(api._test.engine.getJob(id).state, 'ACKNOWLEDGED');
    const done = notificationsSince(api, beforeComplete).find((n) => n.jobId === id);
    assert.equal(done?.message, `'report.bin' uploaded to ${server.url('/uploads/report.bin')}.`, 'uploaded, not "in place"');
    assert.deepEqual(done?.actions, [], 'no Open of the local source, as if it were a download');
    assert.equal(sha256Hex(fs.readFileSync(path.join(server.destDir, 'uploads', 'report.bin'))), sha256Hex(body));
    assert.equal(sha256Hex(fs.readFileSync(local)), sha256Hex(body), 'the local file is untouched');
  });
});
