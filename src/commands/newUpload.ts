// New Upload: a local file → a BITS upload URL, as a one-file upload job that starts at once. Like every
// upload job it waits in TRANSFERRED for Complete, which closes the upload session on the server.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { DownloadError } from '../engine';
import { redactUrl } from '../engine/errors';
import { registerCommand, type CommandContext } from './common';
import { validateUrl } from './newDownload';

export async function askLocalFile(): Promise<string | undefined> {
  const picked = await vscode.window.showOpenDialog({
    title: vscode.l10n.t('File to Upload'),
    canSelectFiles: true,
    canSelectFolders: false,
    canSelectMany: false,
    openLabel: vscode.l10n.t('Upload This File'),
  });
  const uri = picked?.[0];
  if (!uri) {
    return undefined;
  }
  if (uri.scheme !== 'file') {
    throw new DownloadError('E_INVALIDARG', vscode.l10n.t('Only local files can be uploaded, not {0}.', uri.toString(true)));
  }
  return uri.fsPath;
}

export async function askUploadUrl(file: string): Promise<string | undefined> {
  const url = await vscode.window.showInputBox({
    title: vscode.l10n.t("Upload '{0}'", path.basename(file)),
    prompt: vscode.l10n.t('BITS upload URL on the server (http or https)'),
    placeHolder: 'https://example.com/uploads/',
    ignoreFocusOut: true,
    validateInput: validateUrl,
  });
  return url?.trim() || undefined;
}

export function registerNewUploadCommands(ctx: CommandContext): vscode.Disposable[] {
  return [
    // (localPath?, url?) → the new upload job's id.
    registerCommand(ctx, 'managedDownloads.newUpload', async (fileArg?: unknown, urlArg?: unknown) => {
      const file = typeof fileArg === 'string' && fileArg !== '' ? fileArg : await askLocalFile();
      if (!file) {
        return undefined;
      }
      const url = typeof urlArg === 'string' && urlArg !== '' ? urlArg.trim() : await askUploadUrl(file);
      if (!url) {
        return undefined;
      }
      const job = await ctx.host.createJob({ displayName: path.basename(file), type: 'upload', description: redactUrl(url).slice(0, 1024) }, 'user');
      try {
        await job.addFile(url, file);
        await job.resume();
      } catch (e) {
        await job.cancel().catch(() => undefined);
        await ctx.host.engine.removeJob(job.id).catch(() => undefined);
        throw e;
      }
      ctx.log.info(`New upload '${job.displayName}' (${job.id}) → ${redactUrl(url)}.`);
      return job.id;
    }),
  ];
}
