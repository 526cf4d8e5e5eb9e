// Every message the extension shows goes through here: failures carry the code and hex HRESULT and real
// actions. Tests observe what was shown through the internal test hook (`history`, `onDidNotify`).
import * as path from 'node:path';
import * as vscode from 'vscode';
import { codeAndHresult, plainError } from './common/plainWords';
import { describeError, toErrorLike } from './common/format';
import { Disposable } from './common/lifecycle';
import { notificationText } from './common/untrustedText';
import { formatHresult, HRESULTS, type AutoCompleteError, type EngineJob } from './engine';
import type { EngineHost } from './engineHost';
import { jobsCompletedByTasks, taskRerun } from './tasks/taskJobs';

export type Severity = 'error' | 'warning' | 'info';

export interface NotificationAction {
  readonly title: string;
  run(): unknown;
}

export interface NotificationRecord {
  readonly severity: Severity;
  readonly message: string;
  readonly actions: readonly string[];
  readonly jobId?: string;
  /** Runs an action as a click on its button would, whenever that happens (tests: a toast may stay up for long). */
  choose(title: string): Promise<void>;
}

export interface FailureContext {
  /** The job the command acted on, for "Show Download". */
  job?: EngineJob;
  /** Runs the failed operation again. */
  retry?: () => unknown;
}

/**
 * DO_E_INVALID_STATE in plain words, in the user's language: what happened to the job, then the code
 * ("'x' was cancelled, so there is nothing to complete (DO_E_INVALID_STATE, 0x80D02013)."), from the details the
 * engine attaches. Undefined for refusals that carry their own reason (`why`), which the engine's message says.
 */
export function localizedInvalidState(e: unknown): string | undefined {
  const err = e as { code?: unknown; hresult?: unknown; details?: Record<string, string> };
  const d = err?.details;
  if (err?.code !== 'DO_E_INVALID_STATE' || !d || d.why !== undefined || typeof err.hresult !== 'number') {
    return undefined;
  }
  const code = 'DO_E_INVALID_STATE';
  const hresult = formatHresult(err.hresult);
  const addsFiles = d.verb === 'add files to';
  const verbs: Record<string, string> = {
    complete: vscode.l10n.t('complete'),
    cancel: vscode.l10n.t('cancel'),
    resume: vscode.l10n.t('resume'),
    suspend: vscode.l10n.t('pause'),
    rename: vscode.l10n.t('change'),
    'set the priority of': vscode.l10n.t('change'),
    'set the retry delay of': vscode.l10n.t('change'),
    'set the no-progress timeout of': vscode.l10n.t('change'),
    'set the HTTP headers of': vscode.l10n.t('change'),
    'set the speed limit of': vscode.l10n.t('change'),
    'change the URL of': vscode.l10n.t('change'),
    'replace the URL prefix of': vscode.l10n.t('change'),
    change: vscode.l10n.t('change'),
    remove: vscode.l10n.t('remove'),
  };
  if (d.state === 'CANCELLED') {
    return addsFiles
      ? vscode.l10n.t("'{0}' was cancelled, so it takes no more files ({1}, {2}).", d.jobName, code, hresult)
      : verbs[d.verb] && vscode.l10n.t("'{0}' was cancelled, so there is nothing to {1} ({2}, {3}).", d.jobName, verbs[d.verb], code, hresult);
  }
  if (d.state === 'ACKNOWLEDGED') {
    return addsFiles
      ? vscode.l10n.t("'{0}' is already completed, so it takes no more files ({1}, {2}).", d.jobName, code, hresult)
      : verbs[d.verb] && vscode.l10n.t("'{0}' is already completed, so there is nothing to {1} ({2}, {3}).", d.jobName, verbs[d.verb], code, hresult);
  }
  return undefined;
}

/** Codes a proxy or network setting can fix. */
function isNetworkProblem(code: string, hresult: number): boolean {
  const winhttp = hresult >>> 16 === 0x8007 && (hresult & 0xf000) === 0x2000;
  return code === 'HTTP_407' || winhttp || /^(ECONN|ENOTFOUND|EAI_|UND_ERR|ETIMEDOUT|CERT|ERR_TLS|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO)/.test(code);
}

/** Codes the download folder setting can fix. */
function isFolderProblem(code: string): boolean {
  return code === 'EACCES' || code === 'EPERM' || code === 'ENOENT' || code === 'EROFS' || code === 'ENOSPC' || code === 'ENOTDIR';
}

export class Notifier extends Disposable {
  /** What was shown, newest last (kept short). Internal: read by the in-editor tests. */
  readonly history: NotificationRecord[] = [];
  private readonly _onDidNotify = this._register(new vscode.EventEmitter<NotificationRecord>());
  readonly onDidNotify = this._onDidNotify.event;
  /** Jobs whose entry into ERROR was already announced (until they leave ERROR). */
  private readonly failedAnnounced = new Set<string>();
  /** Auto-completing jobs already announced as downloaded (or finished before we started). */
  private readonly downloadedAnnounced = new Set<string>();
  /** Auto-completing jobs whose failure to complete themselves was announced (until complete() is tried again). */
  private readonly placeFailureAnnounced = new Set<string>();
  /** Jobs told "downloaded — not saved yet" (those that do not complete themselves): once per job. */
  private readonly readyAnnounced = new Set<string>();

  constructor(
    private readonly host: EngineHost,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
    this.seed();
    this._register(host.onDidReplaceEngine(() => this.seed()));
    this._register(host.onDidFailJob((job) => this.jobFailed(job)));
    this._register(
      host.onDidChangeJob((job) => {
        if (job.state !== 'ERROR') {
          this.failedAnnounced.delete(job.id);
        }
        if (job.autoComplete && job.state === 'ACKNOWLEDGED' && !this.downloadedAnnounced.has(job.id)) {
          this.downloadedAnnounced.add(job.id);
          this.downloaded(job);
        }
        if (!job.autoComplete && job.state === 'TRANSFERRED' && !this.readyAnnounced.has(job.id) && !jobsCompletedByTasks.has(job.id)) {
          this.readyAnnounced.add(job.id);
          this.readyToSave(job);
        }
        if (!job.autoCompleteError) {
          this.placeFailureAnnounced.delete(job.id);
        } else if (job.state === 'TRANSFERRED' && !this.placeFailureAnnounced.has(job.id)) {
          this.placeFailureAnnounced.add(job.id);
          this.couldNotPlace(job, job.autoCompleteError);
        }
      }),
    );
  }

  private seed(): void {
    for (const job of this.host.engine.enumJobs({ includeFinal: true })) {
      if (job.isFinal) {
        this.downloadedAnnounced.add(job.id);
      }
      if (job.state === 'ERROR') {
        this.failedAnnounced.add(job.id);
      }
      if (job.autoCompleteError) {
        this.placeFailureAnnounced.add(job.id); // said in the window that saw it; the tree still says it
      }
      if (job.state === 'TRANSFERRED' || job.isFinal) {
        this.readyAnnounced.add(job.id); // likewise: the tree says "Downloaded — not saved yet"
      }
    }
  }

  /** Shows a message with actions and runs the one the user picks. Resolves once shown, not when dismissed. */
  show(severity: Severity, text: string, actions: NotificationAction[] = [], jobId?: string): NotificationRecord {
    // Every notification passes here; its text embeds server messages and names, which must not become links.
    const message = notificationText(text);
    const choose = async (choice: string | undefined): Promise<void> => {
      const action = actions.find((a) => a.title === choice);
      try {
        await action?.run();
      } catch (e) {
        this.commandFailed(e);
      }
    };
    const record: NotificationRecord = { severity, message, actions: actions.map((a) => a.title), jobId, choose };
    this.history.push(record);
    if (this.history.length > 200) {
      this.history.splice(0, this.history.length - 200);
    }
    const line = `[notification] ${message}`;
    if (severity === 'error') {
      this.log.error(line);
    } else if (severity === 'warning') {
      this.log.warn(line);
    } else {
      this.log.info(line);
    }
    this._onDidNotify.fire(record);
    const titles = actions.map((a) => a.title);
    const shown =
      severity === 'error'
        ? vscode.window.showErrorMessage(message, ...titles)
        : severity === 'warning'
          ? vscode.window.showWarningMessage(message, ...titles)
          : vscode.window.showInformationMessage(message, ...titles);
    void Promise.resolve(shown).then(choose);
    return record;
  }

  /** A command failed: the error's sentence with its code and hex HRESULT, and what can be done about it. */
  commandFailed(e: unknown, ctx: FailureContext = {}): NotificationRecord {
    const err = toErrorLike(e);
    const actions: NotificationAction[] = [];
    // A finished download refused an action: fetching it again is what the user most likely wants next.
    const job = ctx.job;
    if (err.code === 'DO_E_INVALID_STATE' && job?.isFinal && job.type === 'download' && job.getFiles().length > 0 && this.hasJob(job.id)) {
      actions.push({ title: vscode.l10n.t('Download Again'), run: () => vscode.commands.executeCommand('managedDownloads.downloadAgain', job.id) });
    }
    if (job && this.hasJob(job.id)) {
      actions.push(this.showJobAction(job));
    }
    if (ctx.retry && err.code !== 'DO_E_INVALID_STATE' && err.code !== 'DO_E_JOB_NOT_FOUND') {
      actions.push({ title: vscode.l10n.t('Retry'), run: ctx.retry });
    }
    if (isNetworkProblem(err.code, err.hresult)) {
      actions.push(this.openSettingsAction('http.proxy'));
    } else if (isFolderProblem(err.code)) {
      actions.push(this.openSettingsAction('managedDownloads.downloadFolder'));
    }
    actions.push(this.showLogAction());
    return this.show('error', localizedInvalidState(e) ?? describeError(err), actions, ctx.job?.id);
  }

  /** A job entered ERROR: said once per entry, never per transient retry. */
  jobFailed(job: EngineJob): void {
    if (this.failedAnnounced.has(job.id)) {
      return;
    }
    this.failedAnnounced.add(job.id);
    const info = job.getError();
    // A task cancels its failed job: running the task again is what can work, not Retry on that job.
    const runTaskAgain = taskRerun(job.id);
    const actions: NotificationAction[] = [
      runTaskAgain ? { title: vscode.l10n.t('Run Task Again'), run: runTaskAgain } : this.retryAction(job),
      this.showJobAction(job),
    ];
    if (info && isNetworkProblem(info.code, info.hresult)) {
      actions.push(this.openSettingsAction('http.proxy'));
    }
    actions.push(this.showLogAction());
    const message = failureSentence(job);
    this.show('error', message, actions, job.id);
  }

  /** The user completes this job now: the command says how it went, so no "Downloaded" message as well. */
  completingByCommand(jobId: string): void {
    this.downloadedAnnounced.add(jobId);
  }

  /** A New Download job completed itself. */
  downloaded(job: EngineJob): void {
    const files = job.getFiles().filter((f) => f.completed);
    if (files.length === 0) {
      return;
    }
    const target = files[0].localPath;
    this.show(
      'info',
      files.length === 1
        ? vscode.l10n.t("Downloaded '{0}' to {1}.", path.basename(target), path.dirname(target))
        : vscode.l10n.t("'{0}': {1} files downloaded.", job.displayName, files.length),
      [
        { title: vscode.l10n.t('Open'), run: () => vscode.commands.executeCommand('managedDownloads.openFile', job.id) },
        { title: vscode.l10n.t('Reveal'), run: () => vscode.commands.executeCommand('managedDownloads.revealFile', job.id) },
      ],
      job.id,
    );
  }

  /**
   * A job that does not complete itself (New Job, a task's, the API's) has all its bytes: they are under a hidden
   * temporary name until Save (Complete) puts them in place, which the user may not know.
   */
  readyToSave(job: EngineJob): void {
    // An upload's bytes are on the server, which keeps them only once Complete closes the upload session.
    const upload = job.type === 'upload';
    const save = upload ? vscode.l10n.t('Confirm') : vscode.l10n.t('Save');
    this.show(
      'info',
      upload
        ? vscode.l10n.t("'{0}' is uploaded but not confirmed yet: Confirm closes the upload on the server.", job.displayName)
        : vscode.l10n.t("'{0}' is downloaded but not saved yet: Save puts its files in place.", job.displayName),
      [{ title: save, run: () => vscode.commands.executeCommand('managedDownloads.complete', job.id) }, this.showJobAction(job)],
      job.id,
    );
  }

  /** A New Download finished transferring but could not complete itself (e.g. its destination appeared meanwhile). */
  couldNotPlace(job: EngineJob, err: AutoCompleteError): NotificationRecord {
    const actions: NotificationAction[] = [
      this.jobAction(job, vscode.l10n.t('Complete'), (j) => j.state === 'TRANSFERRED', (j) => vscode.commands.executeCommand('managedDownloads.complete', j.id)),
      this.showJobAction(job),
    ];
    if (isFolderProblem(err.code)) {
      actions.push(this.openSettingsAction('managedDownloads.downloadFolder'));
    }
    actions.push(this.showLogAction());
    return this.show(
      'error',
      vscode.l10n.t("Download '{0}' finished downloading but could not complete itself: {1}", job.displayName, describeError(err)),
      actions,
      job.id,
    );
  }

  /** complete() kept only some files: say which were dropped. */
  partialComplete(job: EngineJob): NotificationRecord {
    const files = job.getFiles();
    const dropped = files.filter((f) => !f.completed).map((f) => path.basename(f.localPath));
    const kept = files.length - dropped.length;
    return this.show(
      'warning',
      vscode.l10n.t(
        "Download '{0}' completed partially (BG_S_PARTIAL_COMPLETE, {1}): kept {2} of {3} files; not transferred and dropped: {4}.",
        job.displayName,
        formatHresult(HRESULTS.BG_S_PARTIAL_COMPLETE),
        kept,
        files.length,
        dropped.join(', '),
      ),
      [this.showJobAction(job), { title: vscode.l10n.t('Open'), run: () => vscode.commands.executeCommand('managedDownloads.openFile', job.id) }],
      job.id,
    );
  }

  /** What was wrong with the job store at start-up, once. */
  storeProblems(problems: readonly string[]): void {
    if (problems.length === 0) {
      return;
    }
    const first = problems[0];
    this.show(
      'warning',
      problems.length === 1
        ? vscode.l10n.t('Managed Downloads found a problem in its job store: {0}', first)
        : vscode.l10n.t('Managed Downloads found {0} problems in its job store; the first: {1}', problems.length, first),
      [this.showLogAction()],
    );
  }

  private hasJob(id: string): boolean {
    return this.currentJob(id) !== undefined;
  }

  private currentJob(id: string): EngineJob | undefined {
    try {
      return this.host.engine.getJob(id);
    } catch {
      return undefined;
    }
  }

  /** "Retry Now" on a job waiting to retry, "Retry" on a failed one; a click acts on the job as it is then. */
  retryAction(job: EngineJob): NotificationAction {
    return this.jobAction(
      job,
      job.state === 'TRANSIENT_ERROR' ? vscode.l10n.t('Retry Now') : vscode.l10n.t('Retry'),
      // Paused by the user since: the click says go again.
      (j) => j.state === 'ERROR' || j.state === 'TRANSIENT_ERROR' || (j.state === 'SUSPENDED' && j.getFiles().length > 0),
      (j) => vscode.commands.executeCommand('managedDownloads.retry', j.id),
    );
  }

  /**
   * A toast's button for `job`. VS Code cannot withdraw a shown message, so the click looks at the job as it is
   * then: when the action no longer `applies`, nothing is done, and a job that finished or went away says so in
   * plain words (never DO_E_INVALID_STATE for an action the user did not ask for). A job already running again
   * needs no word.
   */
  private jobAction(job: EngineJob, title: string, applies: (j: EngineJob) => boolean, run: (j: EngineJob) => unknown): NotificationAction {
    return {
      title,
      run: () => {
        const now = this.currentJob(job.id);
        if (now && applies(now)) {
          return run(now);
        }
        const said =
          now === undefined
            ? vscode.l10n.t("'{0}' is no longer in the list; nothing was done.", job.displayName)
            : now.state === 'CANCELLED'
              ? vscode.l10n.t("'{0}' was cancelled in the meantime; nothing was done.", now.displayName)
              : now.state === 'ACKNOWLEDGED'
                ? vscode.l10n.t("'{0}' was completed in the meantime; nothing was done.", now.displayName)
                : undefined;
        if (said) {
          this.show('info', said, [], job.id);
        }
        return undefined;
      },
    };
  }

  private showJobAction(job: EngineJob): NotificationAction {
    return { title: vscode.l10n.t('Show Download'), run: () => vscode.commands.executeCommand('managedDownloads.showJob', job.id) };
  }

  private showLogAction(): NotificationAction {
    return { title: vscode.l10n.t('Show Log'), run: () => this.log.show(true) };
  }

  private openSettingsAction(query: string): NotificationAction {
    return { title: vscode.l10n.t('Open Settings'), run: () => vscode.commands.executeCommand('workbench.action.openSettings', query) };
  }
}

/**
 * What went wrong with `job`, plain words first, then the code: "'missing.bin' could not be downloaded: the
 * server has no such file (HTTP 404, 0x80190194)." (the failure notification and Show Error).
 */
export function failureSentence(job: EngineJob): string {
  const info = job.getError();
  const plain = info && plainError(info.code);
  if (!plain) {
    return vscode.l10n.t("Download '{0}' failed: {1}", job.displayName, info ? describeError(info) : vscode.l10n.t('No error information is available.'));
  }
  return job.type === 'upload'
    ? vscode.l10n.t("'{0}' could not be uploaded: {1} ({2}).", job.displayName, plain.sentence, codeAndHresult(info.code, info.hresult))
    : vscode.l10n.t("'{0}' could not be downloaded: {1} ({2}).", job.displayName, plain.sentence, codeAndHresult(info.code, info.hresult));
}
