// Where bytes come from (§8): Change URL… on a file, and Import Metalink… (one suspended job).
import * as path from 'node:path';
import * as vscode from 'vscode';
import { notificationText } from '../common/untrustedText';
import { isSingular } from '../common/plural';
import type { EngineJob } from '../engine';
import { createMetalinkJob } from '../engine/metalink';
import * as settings from '../settings';
import { FileNode } from '../views/nodes/fileNode';
import { offeredFor, registerCommand, targetJobs, type CommandContext } from './common';

const untransferred = (j: EngineJob): number[] =>
  j.getFiles().flatMap((f, i) => (!f.transferred && !f.completed ? [i] : []));

/** The job and file a Change URL acts on: the file node, (jobId, index), or picks. */
async function targetFile(ctx: CommandContext, args: unknown[]): Promise<{ job: EngineJob; index: number } | undefined> {
  if (args[0] instanceof FileNode) {
    return { job: ctx.host.engine.getJob(args[0].job.id), index: args[0].index };
  }
  const jobs = await targetJobs(ctx, [args[0]], {
    title: vscode.l10n.t('Change the URL of a file of which download?'),
    filter: offeredFor('changeUrl'),
  });
  const job = jobs?.[0];
  if (!job) {
    return undefined;
  }
  if (typeof args[1] === 'number') {
    return { job, index: args[1] };
  }
  const candidates = untransferred(job);
  if (candidates.length === 1) {
    return { job, index: candidates[0] };
  }
  const picked = await vscode.window.showQuickPick(
    candidates.map((index) => ({ label: path.basename(job.getFiles()[index].localPath), description: job.getFiles()[index].remoteUrl, index })),
    { title: vscode.l10n.t('Change the URL of which file?') },
  );
  return picked && { job, index: picked.index };
}

export function registerSourceCommands(ctx: CommandContext): vscode.Disposable[] {
  return [
    // (fileNode | jobId, fileIndex?, url?) → the new URL. The bytes on disk stay if the new URL serves the same file.
    registerCommand(ctx, 'managedDownloads.changeUrl', async (...args: unknown[]) => {
      const target = await targetFile(ctx, args);
      if (!target) {
        return undefined;
      }
      const current = target.job.getFiles()[target.index]?.remoteUrl ?? '';
      const url =
        typeof args[2] === 'string'
          ? args[2]
          : await vscode.window.showInputBox({
              title: vscode.l10n.t('Change URL'),
              prompt: vscode.l10n.t('New URL of {0} (the bytes already downloaded are kept if it serves the same file)', path.basename(target.job.getFiles()[target.index]?.localPath ?? '')),
              value: current,
              ignoreFocusOut: true,
              validateInput: (v) => (/^https?:\/\/\S+$/i.test(v.trim()) ? undefined : vscode.l10n.t('Enter an http or https URL.')),
            });
      if (!url) {
        return undefined;
      }
      await target.job.setRemoteUrl(target.index, url.trim());
      return url.trim();
    }),

    // (metalinkPath?, folder?) → the new job's id (SUSPENDED).
    registerCommand(ctx, 'managedDownloads.importMetalink', async (...args: unknown[]) => {
      let file = typeof args[0] === 'string' ? args[0] : undefined;
      if (!file) {
        const picked = await vscode.window.showOpenDialog({
          title: vscode.l10n.t('Import Metalink'),
          canSelectMany: false,
          filters: { Metalink: ['meta4', 'metalink'] },
        });
        file = picked?.[0]?.fsPath;
      }
      if (!file) {
        return undefined;
      }
      let folder = typeof args[1] === 'string' ? args[1] : undefined;
      if (!folder) {
        const picked = await vscode.window.showOpenDialog({
          title: vscode.l10n.t('Download the files of the Metalink into which folder?'),
          canSelectFiles: false,
          canSelectFolders: true,
          defaultUri: vscode.Uri.file(settings.downloadFolder()),
        });
        folder = picked?.[0]?.fsPath;
      }
      if (!folder) {
        return undefined;
      }
      const job = await createMetalinkJob({ createJob: (o) => ctx.host.createJob(o, 'user') }, file, folder);
      if (args[0] === undefined) {
        void ctx.view.reveal(job.id).catch(() => undefined);
        const resume = vscode.l10n.t('Resume');
        void vscode.window
          .showInformationMessage(notificationText(
              isSingular(job.getFiles().length)
                ? vscode.l10n.t('Download {0} holds the {1} file of the Metalink; it is paused.', job.displayName, job.getFiles().length)
                : vscode.l10n.t('Download {0} holds the {1} files of the Metalink; it is paused.', job.displayName, job.getFiles().length),
            ), resume)
          .then((c) => (c === resume ? job.resume() : undefined))
          .then(undefined, (e: unknown) => ctx.notifier.commandFailed(e));
      }
      return job.id;
    }),
  ];
}
