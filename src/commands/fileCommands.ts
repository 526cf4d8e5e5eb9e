// Open, Reveal and Extract the files a completed job put in place.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { archiveFormatOf, DownloadError, extractArchive, type JobFile } from '../engine';
import * as settings from '../settings';
import { FileNode } from '../views/nodes/fileNode';
import { registerCommand, targetJobs, type CommandContext } from './common';
import { notificationText } from '../common/untrustedText';
import { isSingular } from '../common/plural';

/** The completed files the arguments point at (a file node: that file; a job: its completed files). */
async function completedFiles(ctx: CommandContext, args: unknown[], title: string): Promise<JobFile[] | undefined> {
  if (args[0] instanceof FileNode) {
    const f = args[0].file;
    return f ? [f] : [];
  }
  const jobs = await targetJobs(ctx, args, { title, includeFinal: true, filter: (j) => j.getFiles().some((f) => f.completed) });
  return jobs?.flatMap((j) => j.getFiles().filter((f) => f.completed));
}

async function pickOne(files: JobFile[], title: string): Promise<JobFile | undefined> {
  if (files.length <= 1) {
    return files[0];
  }
  const picked = await vscode.window.showQuickPick(
    files.map((f) => ({ label: path.basename(f.localPath), description: path.dirname(f.localPath), file: f })),
    { title },
  );
  return picked?.file;
}

function notInPlace(f: JobFile): DownloadError {
  return new DownloadError('DO_E_INVALID_STATE', vscode.l10n.t("'{0}' is not in place yet: complete its download first.", f.localPath), { hresult: 0x80d02013 });
}

export function registerFileCommands(ctx: CommandContext): vscode.Disposable[] {
  return [
    registerCommand(ctx, 'managedDownloads.openFile', async (...args) => {
      const files = await completedFiles(ctx, args, vscode.l10n.t('Open the file of which download?'));
      if (!files) {
        return undefined;
      }
      if (files.length === 0) {
        void vscode.window.showInformationMessage(notificationText(vscode.l10n.t('No downloaded file is in place yet: complete the download first.')));
        return undefined;
      }
      const f = await pickOne(files, vscode.l10n.t('Open which file?'));
      if (!f) {
        return undefined;
      }
      if (!f.completed) {
        throw notInPlace(f);
      }
      await vscode.commands.executeCommand('vscode.open', vscode.Uri.file(f.localPath));
      return f.localPath;
    }),

    registerCommand(ctx, 'managedDownloads.revealFile', async (...args) => {
      const files = await completedFiles(ctx, args, vscode.l10n.t('Reveal the file of which download?'));
      if (!files) {
        return undefined;
      }
      if (files.length === 0) {
        void vscode.window.showInformationMessage(notificationText(vscode.l10n.t('No downloaded file is in place yet: complete the download first.')));
        return undefined;
      }
      const f = await pickOne(files, vscode.l10n.t('Reveal which file?'));
      if (!f) {
        return undefined;
      }
      if (!f.completed) {
        throw notInPlace(f);
      }
      const uri = vscode.Uri.file(f.localPath);
      if (vscode.env.uiKind === vscode.UIKind.Desktop && !vscode.env.remoteName) {
        await vscode.commands.executeCommand('revealFileInOS', uri);
      } else if (vscode.workspace.getWorkspaceFolder(uri)) {
        await vscode.commands.executeCommand('revealInExplorer', uri);
      } else {
        // The file is on the machine the extension runs on and outside the workspace: say where it is.
        const copy = vscode.l10n.t('Copy Path');
        void vscode.window.showInformationMessage(notificationText(vscode.l10n.t('The file is at {0}', f.localPath)), copy).then((c) => (c === copy ? vscode.env.clipboard.writeText(f.localPath) : undefined));
      }
      return f.localPath;
    }),

    registerCommand(ctx, 'managedDownloads.extract', async (...args) => {
      const files = (await completedFiles(ctx, args, vscode.l10n.t('Extract the archive of which download?')))?.filter((f) => archiveFormatOf(f.localPath));
      if (!files) {
        return undefined;
      }
      if (files.length === 0) {
        void vscode.window.showInformationMessage(notificationText(vscode.l10n.t('No .zip, .tar, .tar.gz or .tgz file of this download is in place.')));
        return undefined;
      }
      const f = await pickOne(files, vscode.l10n.t('Extract which archive?'));
      if (!f) {
        return undefined;
      }
      if (!f.completed) {
        throw notInPlace(f);
      }
      const name = path.basename(f.localPath);
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: vscode.l10n.t('Extracting {0}', name), cancellable: true },
        (progress, token) => {
          const abort = new AbortController();
          token.onCancellationRequested(() => abort.abort());
          let shown = 0;
          return extractArchive(f.localPath, undefined, {
            ...settings.extractLimits(),
            signal: abort.signal,
            onProgress: (read, total) => {
              const pct = total > 0 ? Math.floor((read / total) * 100) : 100;
              if (pct > shown) {
                progress.report({ increment: pct - shown });
                shown = pct;
              }
            },
          });
        },
      );
      const reveal = vscode.l10n.t('Reveal');
      const message = result.alreadyExtracted
        ? vscode.l10n.t('{0} already holds the contents of {1}.', result.folder, name)
        : isSingular(result.files)
          ? vscode.l10n.t('Extracted {0} file from {1} into {2}.', result.files, name, result.folder)
          : vscode.l10n.t('Extracted {0} files from {1} into {2}.', result.files, name, result.folder);
      void vscode.window.showInformationMessage(notificationText(message), reveal).then((c) =>
        c === reveal ? vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(result.folder)) : undefined,
      );
      return result.folder;
    }),
  ];
}
