// What every command needs: the engine, the view, the notifier, and how arguments become jobs.
import * as vscode from 'vscode';
import { DownloadError, type EngineJob } from '../engine';
import { jobFacts, offers, type OfferedAction } from '../engine/transitions';
import type { EngineHost } from '../engineHost';
import type { FailureContext, Notifier } from '../notifications';
import { FileNode } from '../views/nodes/fileNode';
import { describeJob, jobDestination, jobIcon, JobNode } from '../views/nodes/jobNode';
import type { JobsView } from '../views/jobsView';
import { notificationText } from '../common/untrustedText';

export interface CommandContext {
  readonly host: EngineHost;
  readonly view: JobsView;
  readonly notifier: Notifier;
  readonly log: vscode.LogOutputChannel;
}

/** A job picker's filter: the jobs on which the palette offers `action` (the engine's own table, engine/transitions.ts). */
export const offeredFor = (action: OfferedAction) => (j: EngineJob): boolean => offers(action, jobFacts(j.state, j.type, j.getFiles()), 'palette');

/**
 * Registers a command whose failures become one error notification (code + hex HRESULT) instead of VS Code's
 * generic "command failed" message. The handler's result is the command's result.
 */
export function registerCommand(
  ctx: CommandContext,
  id: string,
  handler: (...args: unknown[]) => unknown,
  failure?: (args: unknown[]) => FailureContext,
): vscode.Disposable {
  return vscode.commands.registerCommand(id, async (...args: unknown[]) => {
    try {
      return await handler(...args);
    } catch (e) {
      ctx.notifier.commandFailed(e, failure?.(args));
      return undefined;
    }
  });
}

/** A job id, a tree node, an API job object. */
function toJob(ctx: CommandContext, x: unknown): EngineJob {
  if (typeof x === 'string') {
    return ctx.host.engine.getJob(x);
  }
  if (x instanceof JobNode || x instanceof FileNode) {
    return ctx.host.engine.getJob(x.job.id);
  }
  if (x && typeof x === 'object' && typeof (x as { id?: unknown }).id === 'string') {
    return ctx.host.engine.getJob((x as { id: string }).id);
  }
  throw new DownloadError('E_INVALIDARG', vscode.l10n.t('Expected a job id, a job or a tree item, got {0}.', describe(x)));
}

function describe(x: unknown): string {
  if (typeof x === 'object' && x !== null) {
    try {
      const json = JSON.stringify(x);
      if (json !== undefined) {
        return json.slice(0, 80);
      }
    } catch {
      // A cycle or a bigint inside: named by its kind below.
    }
    return Object.prototype.toString.call(x);
  }
  return String(x);
}

/**
 * The jobs a command acts on: the tree selection when run from the tree (VS Code passes the clicked item, then
 * all selected items), an array or a single job id/job/node when called with arguments, else undefined.
 */
export function jobsFromArgs(ctx: CommandContext, arg: unknown, selection: unknown): EngineJob[] | undefined {
  let items: unknown[];
  if (Array.isArray(selection) && selection.length > 0 && (arg === undefined || selection.includes(arg))) {
    items = selection;
  } else if (Array.isArray(arg)) {
    items = arg;
  } else if (arg === undefined || arg === null) {
    return undefined;
  } else {
    items = [arg];
  }
  const seen = new Map<string, EngineJob>();
  for (const x of items) {
    const job = toJob(ctx, x);
    seen.set(job.id, job);
  }
  return [...seen.values()];
}

interface JobPickItem extends vscode.QuickPickItem {
  job?: EngineJob;
}

/** What a palette command asks: the jobs it can work on (`filter`), and optionally others in their own section. */
export interface JobPickOptions {
  title: string;
  filter?: (j: EngineJob) => boolean;
  includeFinal?: boolean;
  canPickMany?: boolean;
  /**
   * Jobs still offered after a separator titled `label` (Complete and Cancel keep finished jobs pickable, so the
   * DO_E_INVALID_STATE notification stays reachable), below the ones the action can work on.
   */
  others?: { label: string; filter: (j: EngineJob) => boolean };
}

/**
 * The items of a job picker: the jobs the action can work on first, newest first, then the `others` section.
 * Each reads "name" with its state and progress; the detail is where it writes, never a bare id.
 */
export function jobPickItems(jobs: readonly EngineJob[], o: Pick<JobPickOptions, 'filter' | 'others'>): JobPickItem[] {
  const newestFirst = (a: EngineJob, b: EngineJob): number => b.getTimes().creation.getTime() - a.getTimes().creation.getTime();
  const main = jobs.filter((j) => !o.filter || o.filter(j)).sort(newestFirst);
  const others = o.others ? jobs.filter((j) => !main.includes(j) && o.others!.filter(j)).sort(newestFirst) : [];
  const item = (job: EngineJob): JobPickItem => ({
    job,
    label: `$(${jobIcon(job).id.replace('~spin', '')}) ${job.displayName}`,
    // A quick pick's icon does not spin: the state word says what the tree's icon does.
    description: describeJob(job, { withState: true }),
    detail: [job.description, jobDestination(job)].filter((x) => x).join(' · ') || undefined,
  });
  const items = main.map(item);
  if (others.length > 0) {
    items.push({ label: o.others!.label, kind: vscode.QuickPickItemKind.Separator }, ...others.map(item));
  }
  return items;
}

/** Asks which job(s): the ones the action can work on first, `others` in their own section. */
export async function pickJobs(ctx: CommandContext, o: JobPickOptions): Promise<EngineJob[] | undefined> {
  const items = jobPickItems(ctx.host.engine.enumJobs({ includeFinal: o.includeFinal === true || o.others !== undefined }), o);
  if (items.length === 0) {
    void vscode.window.showInformationMessage(notificationText(vscode.l10n.t('There is no download to choose from.')));
    return undefined;
  }
  const jobsOf = (picked: readonly JobPickItem[]): EngineJob[] => picked.flatMap((p) => (p.job ? [p.job] : []));
  if (o.canPickMany) {
    const picked = await vscode.window.showQuickPick(items, { title: o.title, canPickMany: true, matchOnDescription: true, matchOnDetail: true });
    return picked && picked.length > 0 ? jobsOf(picked) : undefined;
  }
  const picked = await vscode.window.showQuickPick(items, { title: o.title, matchOnDescription: true, matchOnDetail: true });
  return picked?.job ? [picked.job] : undefined;
}

/** jobsFromArgs, or a quick pick when the command was run without arguments. */
export async function targetJobs(
  ctx: CommandContext,
  args: unknown[],
  pick: JobPickOptions,
): Promise<EngineJob[] | undefined> {
  return jobsFromArgs(ctx, args[0], args[1]) ?? (await pickJobs(ctx, pick));
}

/** Runs `action` on each job; each failure is its own notification (with Retry). One result per job. */
export async function forEachJob<T>(ctx: CommandContext, jobs: EngineJob[], action: (job: EngineJob) => Promise<T>): Promise<(T | undefined)[]> {
  return Promise.all(
    jobs.map(async (job) => {
      try {
        return await action(job);
      } catch (e) {
        ctx.notifier.commandFailed(e, { job, retry: () => action(job) });
        return undefined;
      }
    }),
  );
}

/** A single job's result for a single target, the list for several. */
export function oneOrMany<T>(results: T[]): T | T[] | undefined {
  return results.length === 0 ? undefined : results.length === 1 ? results[0] : results;
}
