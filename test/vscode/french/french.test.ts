// The extension in a French window: tree rows, the badge and the contributed titles in French.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { randomBody, type TestServer } from '../../support/testServer';
import { createEngineJob, useSuiteFixture, waitFor, type TestApi } from '../suite/util';

describe('French', () => {
  let api: TestApi;
  let server: TestServer;
  let dir: string;
  let created: Set<string>;

  useSuiteFixture((f) => ({ api, server, dir, created } = f), {
    routes: (server) => server.route('/slow.bin', { body: randomBody(5_000_000, 10), throttleBytesPerSec: 200_000 }),
  });

  it('speaks French when VS Code does', async function () {
    assert.equal(vscode.env.language, 'fr', 'this suite runs in a French window (run-vscode-tests.js --locale fr)');
    const empty = await createEngineJob(api, { displayName: 'vide' });
    created.add(empty.id);
    const provider = api._test.provider;
    // A download job is a "téléchargement" (masculine), not a "tâche": that word is VS Code's for tasks.
    assert.equal(provider.getTreeItem(provider.nodeFor(empty)).description, 'Suspendu · aucun fichier');
    const running = await createEngineJob(api, { displayName: 'badge.bin' });
    created.add(running.id);
    await running.addFile(server.url('/slow.bin'), path.join(dir, 'badge.bin'));
    await running.resume();
    const view = api._test.view;
    await waitFor(() => view.treeView.badge?.value === 1, 'the badge');
    assert.equal(view.treeView.badge?.tooltip, '1 téléchargement actif');
    await running.suspend();
    // The manifest as VS Code read it: localized titles are { value, original }.
    const pkg = vscode.extensions.getExtension('dojobs.managed-downloads')!.packageJSON as {
      contributes: { commands: { command: string; title: string | { value: string } }[] };
    };
    const raw = pkg.contributes.commands.find((c) => c.command === 'managedDownloads.newDownload')?.title;
    const title = typeof raw === 'string' ? raw : raw?.value;
    this.test!.title += ` [newDownload title: ${title}]`;
    assert.equal(title, 'Nouveau téléchargement…');
    // A download job is a "téléchargement", not a "tâche" (that is a VS Code task).
    const show = pkg.contributes.commands.find((c) => c.command === 'managedDownloads.showJob')?.title;
    assert.equal(typeof show === 'string' ? show : show?.value, 'Afficher le téléchargement…');
  });
});
