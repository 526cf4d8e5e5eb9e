// What a finished download offers, as a browser's downloads list does: Download Again and Copy Link
// (Show in Folder is revealFile, fileCommands.ts).
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import { DownloadError, type EngineJob } from '../engine';
import { FileNode } from '../views/nodes/fileNode';
import { registerCommand, targetJobs, type CommandContext } from './common';

export function registerHistoryCommands(ctx: CommandContext): vscode.Disposable[] {
  return [
    // (jobId | tree node) → the new job's id. The same files again, in a new job that starts at once.
    registerCommand(ctx, 'managedDownloads.downloadAgain', async (...args) => {
      const jobs = await targetJobs(ctx, args, {
        title: vscode.l10n.t('Download which one again?'),
        includeFinal: true,
        filter: (j) => j.type === 'download' && j.getFiles().length > 0,
      });
      const job = jobs?.[0];
      if (!job) {
        return undefined;
      }
      if (job.type !== 'download') {
        throw new DownloadError('E_INVALIDARG', vscode.l10n.t("'{0}' is an upload; only downloads can be downloaded again.", job.displayName));
      }
      const files = job.getFiles();
      if (files.length === 1) {
        // New Download asks where to save when the old destination is taken (by the file downloaded last time).
        const f = files[0];
        return vscode.commands.executeCommand('managedDownloads.newDownload', f.remoteUrl, fs.existsSync(f.localPath) ? undefined : f.localPath);
      }
      const taken = files.filter((f) => fs.existsSync(f.localPath));
      if (taken.length > 0) {
        throw new DownloadError(
          'E_INVALIDARG',
          vscode.l10n.t("'{0}' cannot be downloaded again into the same places: {1} of its files are there already (first: {2}). Move or delete them first.", job.displayName, taken.length, taken[0].localPath),
        );
      }
      const again = await ctx.host.createJob({ displayName: job.displayName, description: job.description, priority: job.priority }, 'user');
      await again.addFileSet(files.map((f) => ({ remoteUrl: f.remoteUrl, localPath: f.localPath, sha256: f.sha256 })));
      await again.setAutoComplete(true);
      await again.resume();
      ctx.log.info(`Downloading '${job.displayName}' again as job ${again.id} (${files.length} files).`);
      return again.id;
    }),

    // (jobId | job node | file node) → the link(s) copied. A job's links are one per line.
    registerCommand(ctx, 'managedDownloads.copyLink', async (...args) => {
      let links: string[];
      if (args[0] instanceof FileNode) {
        links = args[0].file ? [args[0].file.remoteUrl] : [];
      } else {
        const jobs: EngineJob[] | undefined = await targetJobs(ctx, args, { title: vscode.l10n.t('Copy the link of which download?'), includeFinal: true, filter: (j) => j.getFiles().length > 0 });
        links = (jobs ?? []).flatMap((j) => j.getFiles().map((f) => f.remoteUrl));
      }
      if (links.length === 0) {
        return undefined;
      }
      const text = links.join('\n');
      await vscode.env.clipboard.writeText(text);
      return text;
    }),
  ];
}
