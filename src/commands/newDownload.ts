// New Download (URL → destination → a one-file job that runs and completes itself), New Job, Add File.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { DownloadError, type CreateJobOptions, type EngineJob, type JobPriority, type JobType } from '../engine';
import { redactUrl } from '../engine/errors';
import * as settings from '../settings';
import { offeredFor, registerCommand, targetJobs, type CommandContext } from './common';
import { askLocalFile, askUploadUrl } from './newUpload';
import { priorityPickItems } from './jobCommands';

/** Validates as the user types: a message, or undefined when the URL is acceptable. */
export function validateUrl(value: string): string | undefined {
  const v = value.trim();
  if (v === '') {
    return vscode.l10n.t('Enter the URL of the file to download.');
  }
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return vscode.l10n.t('This is not a valid URL; it should look like https://example.com/file.zip');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    return vscode.l10n.t('Only http and https URLs can be downloaded (this one uses {0}).', u.protocol.replace(':', ''));
  }
  if (!u.hostname) {
    return vscode.l10n.t('The URL has no host name.');
  }
  return undefined;
}

async function askUrl(title: string): Promise<string | undefined> {
  // Offer a URL from the clipboard, on the desktop only: in a browser, reading it asks for a permission.
  let value: string | undefined;
  if (vscode.env.uiKind === vscode.UIKind.Desktop) {
    const clip = await Promise.race([vscode.env.clipboard.readText().then((t) => t.trim(), () => ''), new Promise<string>((r) => setTimeout(() => r(''), 300))]);
    value = clip !== '' && clip.length < 2048 && validateUrl(clip) === undefined ? clip : undefined;
  }
  const url = await vscode.window.showInputBox({
    title,
    prompt: vscode.l10n.t('URL of the file to download (http or https)'),
    placeHolder: 'https://example.com/file.zip',
    value,
    ignoreFocusOut: true,
    validateInput: validateUrl,
  });
  return url?.trim() || undefined;
}

/** A file name from the URL's last path segment, made safe for every file system. */
export function fileNameFromUrl(url: string): string {
  let name = '';
  try {
    const segments = new URL(url).pathname.split('/').filter(Boolean);
    name = decodeURIComponent(segments[segments.length - 1] ?? '');
  } catch {
    name = '';
  }
  name = name.replace(/[<>:"/\\|?*\x00-\x1f]/g, '_').replace(/[. ]+$/, '').slice(0, 200);
  return name || 'download';
}

interface Destination {
  path: string;
  replaceExisting: boolean;
}

/** The save dialog, starting in the download folder; picking an existing file means the user agreed to replace it. */
async function askDestination(url: string, title: string): Promise<Destination | undefined> {
  const folder = settings.downloadFolder();
  const uri = await vscode.window.showSaveDialog({
    title,
    defaultUri: vscode.Uri.file(path.join(folder, fileNameFromUrl(url))),
    saveLabel: vscode.l10n.t('Download Here'),
  });
  if (!uri) {
    return undefined;
  }
  if (uri.scheme !== 'file') {
    throw new DownloadError('E_INVALIDARG', vscode.l10n.t('Downloads can only be saved to local files, not to {0}.', uri.toString(true)));
  }
  return { path: uri.fsPath, replaceExisting: fs.existsSync(uri.fsPath) };
}

/** A path given as an argument: absolute, or relative to the download folder. Never replaces an existing file. */
function destinationFromArg(p: string): Destination {
  const target = path.isAbsolute(p) ? path.normalize(p) : path.resolve(settings.downloadFolder(), p);
  if (fs.existsSync(target)) {
    // Refuse now rather than after the whole transfer, when complete() would.
    throw new DownloadError('E_INVALIDARG', vscode.l10n.t("'{0}' already exists; choose another destination or delete it first.", target));
  }
  return { path: target, replaceExisting: false };
}

function jobOptionsFromArg(arg: unknown): CreateJobOptions | undefined {
  if (typeof arg === 'string') {
    return { displayName: arg };
  }
  if (arg && typeof arg === 'object' && typeof (arg as { displayName?: unknown }).displayName === 'string') {
    const o = arg as { displayName: string; type?: JobType; priority?: JobPriority; description?: string };
    return { displayName: o.displayName, type: o.type, priority: o.priority, description: o.description };
  }
  return undefined;
}

export function registerNewDownloadCommands(ctx: CommandContext): vscode.Disposable[] {
  return [
    // (url?, destinationPath?) → the new job's id.
    registerCommand(ctx, 'managedDownloads.newDownload', async (urlArg?: unknown, destArg?: unknown) => {
      const url = typeof urlArg === 'string' ? urlArg.trim() : await askUrl(vscode.l10n.t('New Download'));
      if (!url) {
        return undefined;
      }
      const invalid = validateUrl(url);
      if (invalid) {
        throw new DownloadError('E_INVALIDARG', `${invalid} (${redactUrl(url)})`);
      }
      const dest = typeof destArg === 'string' && destArg !== '' ? destinationFromArg(destArg) : await askDestination(url, vscode.l10n.t('Save Download As'));
      if (!dest) {
        return undefined;
      }
      const job = await ctx.host.createJob({ displayName: path.basename(dest.path), description: redactUrl(url).slice(0, 1024) }, 'user');
      try {
        await job.setAutoComplete(true);
        await job.addFile(url, dest.path, { replaceExisting: dest.replaceExisting });
        await job.resume();
      } catch (e) {
        await discard(ctx, job);
        throw e;
      }
      ctx.log.info(`New download '${job.displayName}' (${job.id}) → ${dest.path}${dest.replaceExisting ? ' (replaces the existing file)' : ''}.`);
      return job.id;
    }),

    // (displayName? | { displayName, type?, priority?, description? }) → the new job's id. The job starts SUSPENDED.
    registerCommand(ctx, 'managedDownloads.newJob', async (arg?: unknown) => {
      let o = jobOptionsFromArg(arg);
      if (!o) {
        const name = await vscode.window.showInputBox({
          title: vscode.l10n.t('New Multi-File Download'),
          prompt: vscode.l10n.t('Name of the new download (it starts paused: add its files, then resume it)'),
          ignoreFocusOut: true,
          validateInput: (v) => (v.trim() === '' ? vscode.l10n.t('Enter a name.') : v.length > 256 ? vscode.l10n.t('At most 256 characters.') : undefined),
        });
        if (!name) {
          return undefined;
        }
        // Each level explained, as in Set Priority…; NORMAL first: Enter takes the usual choice (picked has no
        // effect on a single-choice pick).
        const levels = priorityPickItems(undefined);
        const priority = await vscode.window.showQuickPick(
          [...levels.filter((l) => l.priority === 'NORMAL'), ...levels.filter((l) => l.priority !== 'NORMAL')],
          { title: vscode.l10n.t('Priority of the new download'), ignoreFocusOut: true },
        );
        if (!priority) {
          return undefined;
        }
        o = { displayName: name.trim(), priority: priority.priority };
      }
      const job = await ctx.host.createJob(o, 'user');
      if (arg === undefined) {
        void ctx.view.reveal(job.id).catch(() => undefined);
      }
      return job.id;
    }),

    // (jobId?, url?, path?) → the job's id. Adds one file; the job keeps its state (resume it to transfer).
    registerCommand(
      ctx,
      'managedDownloads.addFile',
      async (...args: unknown[]) => {
        const jobs = await targetJobs(ctx, [args[0], Array.isArray(args[1]) ? args[1] : undefined], {
          title: vscode.l10n.t('Add a file to which download?'),
          filter: offeredFor('addFile'),
        });
        if (!jobs) {
          return undefined;
        }
        const job = jobs[0];
        if (job.type === 'upload') {
          // An upload job's one file is a local file sent to a BITS upload URL.
          const file = typeof args[2] === 'string' && args[2] !== '' ? args[2] : await askLocalFile();
          const target = file && (typeof args[1] === 'string' ? args[1].trim() : await askUploadUrl(file));
          if (!file || !target) {
            return undefined;
          }
          await job.addFile(target, file);
          return job.id;
        }
        const url = typeof args[1] === 'string' ? args[1].trim() : await askUrl(vscode.l10n.t("Add File to '{0}'", job.displayName));
        if (!url) {
          return undefined;
        }
        const dest = typeof args[2] === 'string' && args[2] !== '' ? destinationFromArg(args[2]) : await askDestination(url, vscode.l10n.t("Save the File of Download '{0}' As", job.displayName));
        if (!dest) {
          return undefined;
        }
        await job.addFile(url, dest.path, { replaceExisting: dest.replaceExisting });
        return job.id;
      },
      (args) => ({ job: typeof args[0] === 'string' ? tryGetJob(ctx, args[0]) : undefined }),
    ),
  ];
}

function tryGetJob(ctx: CommandContext, id: string): EngineJob | undefined {
  try {
    return ctx.host.engine.getJob(id);
  } catch {
    return undefined;
  }
}

/** A New Download that could not start leaves nothing behind. */
async function discard(ctx: CommandContext, job: EngineJob): Promise<void> {
  try {
    if (!job.isFinal) {
      await job.cancel();
    }
    await ctx.host.engine.removeJob(job.id);
  } catch (e) {
    ctx.log.warn(`Could not discard the failed new download '${job.displayName}': ${(e as Error).message}`);
  }
}
