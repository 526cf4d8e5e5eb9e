// Commands that act on existing jobs: resume, suspend, complete, cancel, retry, priority, speed limit, errors, clean-up.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { describeError, formatBytes } from '../common/format';
import { ACTION_STATES, JOB_PRIORITIES, MIN_BYTES_PER_SECOND, parseRate, type CompleteResult, type EngineJob, type JobPriority } from '../engine';
import * as settings from '../settings';
import { forEachJob, jobsFromArgs, offeredFor, oneOrMany, registerCommand, targetJobs, type CommandContext } from './common';
import { notificationText } from '../common/untrustedText';
import { askBeforeLoss } from './askBeforeLoss';
import { redactUrl } from '../engine/errors';
import { isSingular } from '../common/plural';
import { jobFacts, offers } from '../engine/transitions';
import { failureSentence } from '../notifications';

const notFinal = (j: EngineJob): boolean => !j.isFinal;
/** What Complete can act on now: what the tree offers it on (all bytes here, or some files of a download transferred). */
const canComplete = (j: EngineJob): boolean => offers('complete', jobFacts(j.state, j.type, j.getFiles()), 'tree');
/** Run from the tree or the palette (a node, or nothing), not by a caller passing ids: callers passing ids mean it. */
const fromUi = (args: unknown[]): boolean => typeof args[0] !== 'string' && !(Array.isArray(args[0]) && args[0].every((x) => typeof x === 'string'));

export function registerJobCommands(ctx: CommandContext): vscode.Disposable[] {
  return [
    registerCommand(ctx, 'managedDownloads.resume', async (...args) => {
      const jobs = await targetJobs(ctx, args, { title: vscode.l10n.t('Resume which download?'), filter: offeredFor('resume') });
      return jobs && oneOrMany(await forEachJob(ctx, jobs, (j) => j.resume()));
    }),

    registerCommand(ctx, 'managedDownloads.suspend', async (...args) => {
      const jobs = await targetJobs(ctx, args, { title: vscode.l10n.t('Pause which download?'), filter: offeredFor('suspend') });
      if (!jobs || (fromUi(args) && !(await confirmPause(jobs)))) {
        return undefined;
      }
      return oneOrMany(await forEachJob(ctx, jobs, (j) => j.suspend()));
    }),

    registerCommand(ctx, 'managedDownloads.retry', async (...args) => {
      const jobs = await targetJobs(ctx, args, { title: vscode.l10n.t('Retry which download?'), filter: offeredFor('retry') });
      return jobs && oneOrMany(await forEachJob(ctx, jobs, (j) => j.resume()));
    }),

    // Offered on any job from the palette, finished ones included, so DO_E_INVALID_STATE can be seen.
    registerCommand(ctx, 'managedDownloads.complete', async (...args) => {
      const jobs = await targetJobs(ctx, args, {
        title: vscode.l10n.t('Save which download?'),
        filter: canComplete,
        others: { label: vscode.l10n.t('Nothing to save yet, or finished'), filter: () => true },
      });
      return jobs && oneOrMany(await forEachJob(ctx, jobs, (j) => complete(ctx, j)));
    }),

    registerCommand(ctx, 'managedDownloads.cancel', async (...args) => {
      const explicit = jobsFromArgs(ctx, args[0], args[1]);
      const jobs = explicit ?? (await targetJobsForPalette(ctx, vscode.l10n.t('Cancel which download?')));
      if (!jobs) {
        return undefined;
      }
      // Confirm only when bytes would be lost.
      if (fromUi(args) && !(await confirmCancel(jobs))) {
        return undefined;
      }
      return oneOrMany(await forEachJob(ctx, jobs, (j) => j.cancel()));
    }),

    registerCommand(ctx, 'managedDownloads.setPriority', async (...args) => {
      const jobs = await targetJobs(ctx, args, { title: vscode.l10n.t('Change the priority of which download?'), filter: offeredFor('modify') });
      if (!jobs) {
        return undefined;
      }
      let priority = typeof args[1] === 'string' ? (args[1] as JobPriority) : typeof args[2] === 'string' ? (args[2] as JobPriority) : undefined;
      if (!priority) {
        const current = jobs.length === 1 ? jobs[0].priority : undefined;
        const picked = await vscode.window.showQuickPick(priorityPickItems(current), { title: vscode.l10n.t('Priority') });
        priority = picked?.priority;
      }
      if (!priority) {
        return undefined;
      }
      const p = priority;
      return oneOrMany(await forEachJob(ctx, jobs, (j) => j.setPriority(p)));
    }),

    registerCommand(ctx, 'managedDownloads.setSpeedLimit', async (...args) => {
      const jobs = await targetJobs(ctx, args, { title: vscode.l10n.t('Limit the speed of which download?'), filter: offeredFor('modify') });
      if (!jobs) {
        return undefined;
      }
      // A number (bytes per second) may come with the command, as for setPriority.
      let limit = typeof args[1] === 'number' ? args[1] : typeof args[2] === 'number' ? args[2] : undefined;
      if (limit === undefined) {
        const current = jobs.length === 1 ? jobs[0].maxBytesPerSecond : 0;
        const global = settings.maxBytesPerSecond();
        const text = await vscode.window.showInputBox({
          title: vscode.l10n.t('Speed limit (bytes per second)'),
          prompt: global > 0
            ? vscode.l10n.t('For example 2M or 500k; 0 for none. The limit of all downloads ({0}/s) still applies.', formatBytes(global))
            : vscode.l10n.t('For example 2M or 500k; 0 for none.'),
          value: current > 0 ? String(current) : '',
          validateInput: (v) => {
            const n = parseRate(v);
            return n === undefined || (n > 0 && n < MIN_BYTES_PER_SECOND)
              ? vscode.l10n.t('Give a rate such as 2M, 500k or 0 (at least {0} bytes per second).', MIN_BYTES_PER_SECOND)
              : undefined;
          },
        });
        limit = text === undefined ? undefined : parseRate(text);
      }
      if (limit === undefined) {
        return undefined;
      }
      const l = limit;
      return oneOrMany(await forEachJob(ctx, jobs, (j) => j.setMaxBytesPerSecond(l)));
    }),

    registerCommand(ctx, 'managedDownloads.showError', async (...args) => {
      const jobs = await targetJobs(ctx, args, { title: vscode.l10n.t('Show the error of which download?'), filter: (j) => j.state === 'ERROR' || j.state === 'TRANSIENT_ERROR' });
      if (!jobs) {
        return undefined;
      }
      const job = jobs[0];
      const error = job.getError();
      if (!error) {
        void vscode.window.showInformationMessage(notificationText(vscode.l10n.t("Download '{0}' has no error.", job.displayName)));
        return undefined;
      }
      // A sentence first (as the failure notification says it), then how often and when next, then the details.
      const count = isSingular(job.errorCount) ? vscode.l10n.t('{0} error so far.', job.errorCount) : vscode.l10n.t('{0} errors so far.', job.errorCount);
      const retry = job.state === 'TRANSIENT_ERROR' && job.retryAt ? ' ' + vscode.l10n.t('Next retry at {0}.', job.retryAt.toLocaleTimeString(vscode.env.language)) : '';
      // The file is named when the job has several (a one-file job is named after its file already).
      const file = error.file && job.getFiles().length > 1 ? path.basename(error.file.localPath) : undefined;
      const details = file ? vscode.l10n.t('Details ({0}): {1}', file, describeError(error)) : vscode.l10n.t('Details: {0}', describeError(error));
      ctx.notifier.show(
        job.state === 'ERROR' ? 'error' : 'warning',
        `${failureSentence(job)} ${count}${retry} ${details}`,
        [ctx.notifier.retryAction(job), { title: vscode.l10n.t('Show Log'), run: () => ctx.log.show(true) }],
        job.id,
      );
      return error;
    }),

    registerCommand(ctx, 'managedDownloads.clearFinished', async () => {
      const finished = ctx.host.engine.enumJobs({ includeFinal: true }).filter((j) => j.isFinal);
      await forEachJob(ctx, finished, (j) => ctx.host.engine.removeJob(j.id));
      vscode.window.setStatusBarMessage(
        isSingular(finished.length)
          ? vscode.l10n.t('Managed Downloads: removed {0} finished download from the list.', finished.length)
          : vscode.l10n.t('Managed Downloads: removed {0} finished downloads from the list.', finished.length),
        4000,
      );
      return finished.length;
    }),

    registerCommand(ctx, 'managedDownloads.removeJob', async (...args) => {
      const jobs = await targetJobs(ctx, args, { title: vscode.l10n.t('Remove which finished download from the list?'), filter: offeredFor('remove'), includeFinal: true });
      return jobs && oneOrMany(await forEachJob(ctx, jobs, (j) => ctx.host.engine.removeJob(j.id)));
    }),

    registerCommand(ctx, 'managedDownloads.showJob', async (...args) => {
      const jobs = await targetJobs(ctx, args, { title: vscode.l10n.t('Show which download?'), includeFinal: settings.showFinishedJobs() });
      if (!jobs) {
        return false;
      }
      const job = jobs[0];
      if (await ctx.view.reveal(job.id)) {
        return true;
      }
      const show = vscode.l10n.t('Show Finished Downloads');
      const choice = await vscode.window.showInformationMessage(notificationText(vscode.l10n.t("Download '{0}' is {1} and finished downloads are hidden.", job.displayName, job.state)), show);
      if (choice === show) {
        await vscode.workspace.getConfiguration(settings.SECTION).update('showFinishedJobs', true, vscode.ConfigurationTarget.Global);
        ctx.view.provider.flushNow();
        return ctx.view.reveal(job.id);
      }
      return false;
    }),
  ];
}

async function complete(ctx: CommandContext, job: EngineJob): Promise<CompleteResult> {
  if (!job.isFinal) {
    ctx.notifier.completingByCommand(job.id);
  }
  const result = await job.complete();
  if (result === 'BG_S_PARTIAL_COMPLETE') {
    ctx.notifier.partialComplete(job);
  } else if (job.type === 'upload') {
    // The server has the file now; the local one is the user's own source, not something to open as a result.
    const sent = job.getFiles();
    ctx.notifier.show(
      'info',
      sent.length === 1
        ? vscode.l10n.t("'{0}' uploaded to {1}.", path.basename(sent[0].localPath), redactUrl(sent[0].remoteUrl))
        : vscode.l10n.t("Upload '{0}' finished: {1} files uploaded.", job.displayName, sent.length),
      [],
      job.id,
    );
  } else {
    const kept = job.getFiles().filter((f) => f.completed);
    ctx.notifier.show(
      'info',
      kept.length === 1
        ? vscode.l10n.t("Download '{0}' completed: {1} is in place.", job.displayName, kept[0].localPath)
        : vscode.l10n.t("Download '{0}' completed: {1} files are in place.", job.displayName, kept.length),
      kept.length > 0
        ? [
            { title: vscode.l10n.t('Open'), run: () => vscode.commands.executeCommand('managedDownloads.openFile', job.id) },
            { title: vscode.l10n.t('Reveal'), run: () => vscode.commands.executeCommand('managedDownloads.revealFile', job.id) },
          ]
        : [],
      job.id,
    );
  }
  return result;
}

function targetJobsForPalette(ctx: CommandContext, title: string): Promise<EngineJob[] | undefined> {
  return targetJobs(ctx, [], { title, filter: notFinal, others: { label: vscode.l10n.t('Finished'), filter: (j) => j.isFinal } });
}

/** Asks before deleting downloaded bytes (askBeforeLoss.ts: Enter keeps them). */
async function confirmCancel(jobs: EngineJob[]): Promise<boolean> {
  const live = jobs.filter((j) => !j.isFinal);
  const bytes = (): number => live.reduce((n, j) => n + j.getProgress().bytesTransferred, 0);
  if (live.length === 0 || bytes() === 0) {
    return true;
  }
  const one = live.length === 1;
  return askBeforeLoss(
    () =>
      one
        ? vscode.l10n.t("Cancel '{0}' and delete the {1} downloaded so far?", live[0].displayName, formatBytes(bytes()))
        : vscode.l10n.t('Cancel {0} downloads and delete the {1} downloaded so far?', live.length, formatBytes(bytes())),
    vscode.l10n.t('Keep Downloading'),
    one ? vscode.l10n.t('Cancel Download') : vscode.l10n.t('Cancel Downloads'),
  );
}

/** Asks before pausing a download whose server cannot resume it: the bytes so far would be fetched again. */
async function confirmPause(jobs: EngineJob[]): Promise<boolean> {
  const restarting = jobs.flatMap((j) =>
    j.type === 'download' && ACTION_STATES.has(j.state)
      ? j.getFiles().filter((f) => f.serverCannotResume === true && !f.transferred && !f.completed && f.bytesTransferred > 0)
      : [],
  );
  if (restarting.length === 0) {
    return true;
  }
  return askBeforeLoss(
    () =>
      restarting.length === 1
        ? vscode.l10n.t("'{0}' restarts from 0 if paused: its server cannot continue where it stopped.", path.basename(restarting[0].localPath))
        : vscode.l10n.t('{0} files restart from 0 if paused: their servers cannot continue where they stopped.', restarting.length),
    vscode.l10n.t('Keep Downloading'),
    vscode.l10n.t('Pause Anyway'),
  );
}

/** Each level with what it does on its own line (the detail), the current one marked. */
export function priorityPickItems(current: JobPriority | undefined): (vscode.QuickPickItem & { priority: JobPriority })[] {
  return JOB_PRIORITIES.map((p) => ({
    label: p,
    description: p === current ? vscode.l10n.t('current') : undefined,
    detail: priorityDescription(p),
    picked: p === current,
    priority: p,
  }));
}

function priorityDescription(p: JobPriority): string {
  switch (p) {
    case 'FOREGROUND': return vscode.l10n.t('Goes first and gets the bandwidth first, ahead of every other download');
    case 'HIGH': return vscode.l10n.t('Goes ahead of normal and low downloads');
    case 'NORMAL': return vscode.l10n.t('The default: takes turns with the other normal downloads');
    case 'LOW': return vscode.l10n.t('Runs only when no other download is waiting');
  }
}
