// Runs one download task in a pseudo-terminal: one job, one updating line per file, Complete at the end.
// Closing the terminal or stopping the task cancels the job (its temporaries are deleted).
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { describeError, formatBytes, formatDuration, formatPercent, formatSpeed } from '../common/format';
import { isSingular } from '../common/plural';
import { extractArchive, type EngineJob } from '../engine';
import { fileMatchesDigest, parseSha256 } from '../engine/integrity';
import type { EngineHost } from '../engineHost';
import * as settings from '../settings';
import { jobsCompletedByTasks, rememberTaskJob } from './taskJobs';
import { planTask, type DownloadTaskDefinition, type PlannedFile, type TaskPlan } from './taskDefinition';

const RED = '\x1b[31m';
const GREEN = '\x1b[32m';
const YELLOW = '\x1b[33m';
const DIM = '\x1b[2m';
const RESET = '\x1b[0m';
const CLEAR_LINE = '\r\x1b[2K';
/** Redraw the progress line at most this often. */
const REDRAW_MS = 200;

/** In test mode, what each task's terminal showed, by task name (tests cannot read terminals). */
export const taskTranscripts = new Map<string, string>();
const KEEP_TRANSCRIPTS = process.env.MD_TEST_MODE === '1';

export class DownloadTerminal implements vscode.Pseudoterminal {
  private readonly writeEmitter = new vscode.EventEmitter<string>();
  private readonly closeEmitter = new vscode.EventEmitter<number>();
  readonly onDidWrite = this.writeEmitter.event;
  readonly onDidClose = this.closeEmitter.event;

  private job: EngineJob | undefined;
  private listeners: vscode.Disposable[] = [];
  private closed = false;
  /** Set once the job reached its end (Complete or failure under way): later events are ignored. */
  private settling = false;
  private shownFile = -1;
  private lastDraw = 0;
  private lastRetryShown: number | undefined;
  private plan: TaskPlan | undefined;

  constructor(
    private readonly host: EngineHost,
    private readonly taskName: string,
    private readonly definition: DownloadTaskDefinition,
    private readonly workspaceFolder: string | undefined,
    private readonly log: vscode.LogOutputChannel,
    /** Injectable for tests; VS Code's Restricted Mode already blocks tasks, this is the second check. */
    private readonly isTrusted: () => boolean = () => vscode.workspace.isTrusted,
    /** Runs this task again (offered when its job fails). */
    private readonly runAgain?: () => Thenable<unknown>,
  ) {
    if (KEEP_TRANSCRIPTS) {
      this.onDidWrite((text) => taskTranscripts.set(taskName, (taskTranscripts.get(taskName) ?? '') + text));
    }
  }

  open(): void {
    void this.run().catch((e) => this.fail(e));
  }

  /** The terminal was closed or the task terminated: cancel the job, delete its temporaries. */
  close(): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    this.dispose();
    const job = this.job;
    if (job && !job.isFinal) {
      this.log.info(`Task '${this.taskName}' was stopped: cancelling job '${job.displayName}'.`);
      job.cancel().catch((e) => this.log.warn(`Cancelling job '${job.displayName}' failed: ${describeError(e)}`));
    }
  }

  private line(text: string): void {
    this.writeEmitter.fire(text.replace(/\r?\n/g, '\r\n') + '\r\n');
  }

  private async run(): Promise<void> {
    if (!this.isTrusted()) {
      throw new Error(vscode.l10n.t('This workspace is not trusted, so download tasks defined by it do not run. Trust the workspace to run them.'));
    }
    const plan = planTask(this.definition, this.workspaceFolder);
    this.plan = plan;
    this.line(`${DIM}${(isSingular(plan.files.length)
      ? vscode.l10n.t('Managed Downloads: {0} file for task "{1}"', plan.files.length, this.taskName)
      : vscode.l10n.t('Managed Downloads: {0} files for task "{1}"', plan.files.length, this.taskName))}${RESET}`);

    // Idempotent: every destination already there with its declared sha256 → nothing to do, no network.
    const existing = await Promise.all(plan.files.map((f) => this.checkExisting(f)));
    if (existing.every((s) => s === 'up-to-date')) {
      for (const f of plan.files) {
        this.line(`${GREEN}✓${RESET} ${vscode.l10n.t('{0} is up to date (sha256 matches); nothing to download.', f.localPath)}`);
      }
      await this.extractArchives(plan);
      this.finish(0);
      return;
    }
    existing.forEach((s, i) => {
      if (s === 'exists-unverified') {
        this.line(`${YELLOW}${vscode.l10n.t('{0} exists and the task declares no sha256 to check it against: downloading it again.', plan.files[i].localPath)}${RESET}`);
      } else if (s === 'exists-mismatch') {
        this.line(`${YELLOW}${vscode.l10n.t('{0} exists but its sha256 differs: downloading it again.', plan.files[i].localPath)}${RESET}`);
      }
    });

    const job = await this.host.createJob({ displayName: plan.displayName ?? this.taskName, priority: plan.priority, description: vscode.l10n.t('Task: {0}', this.taskName) }, 'user');
    this.job = job;
    jobsCompletedByTasks.add(job.id);
    if (this.runAgain) {
      rememberTaskJob(job.id, this.runAgain);
    }
    if (this.closed) {
      await job.cancel();
      return;
    }
    if (plan.headers && Object.keys(plan.headers).length > 0) {
      await job.setHttpHeaders(plan.headers);
    }
    if (plan.maxBytesPerSecond) {
      await job.setMaxBytesPerSecond(plan.maxBytesPerSecond);
    }
    for (const [i, f] of plan.files.entries()) {
      // Build tools expect output folders to appear (like curl --create-dirs).
      await fs.mkdir(path.dirname(f.localPath), { recursive: true });
      // Files are added one by one so each can replace an existing destination the task owns.
      await job.addFile(f.url, f.localPath, { sha256: f.sha256, mirrors: f.mirrors, replaceExisting: existing[i] !== 'missing' });
    }
    this.listeners.push(this.host.onDidChangeJob((j) => j === job && this.onChange(j)));
    await job.resume();
    this.onChange(job);
  }

  private async checkExisting(f: PlannedFile): Promise<'missing' | 'up-to-date' | 'exists-unverified' | 'exists-mismatch'> {
    let st;
    try {
      st = await fs.stat(f.localPath);
    } catch {
      return 'missing';
    }
    if (!st.isFile()) {
      return 'exists-unverified';
    }
    const want = parseSha256(f.sha256);
    if (!want) {
      return 'exists-unverified';
    }
    return (await fileMatchesDigest(f.localPath, want)) ? 'up-to-date' : 'exists-mismatch';
  }

  private onChange(job: EngineJob): void {
    if (this.closed || this.settling) {
      return;
    }
    const files = job.getFiles();
    // Finish the lines of files done since the last redraw, then redraw the current one.
    const current = files.findIndex((f) => !f.transferred);
    const upTo = current < 0 ? files.length : current;
    for (let i = Math.max(0, this.shownFile); i < upTo; i++) {
      this.writeEmitter.fire(CLEAR_LINE + this.fileLine(job, i) + '\r\n');
      this.shownFile = i + 1;
    }
    if (current >= 0 && (job.state === 'TRANSFERRING' || job.state === 'CONNECTING')) {
      const now = Date.now();
      if (now - this.lastDraw >= REDRAW_MS || this.shownFile !== current) {
        this.shownFile = current;
        this.lastDraw = now;
        this.writeEmitter.fire(CLEAR_LINE + this.fileLine(job, current));
      }
    }
    switch (job.state) {
      case 'TRANSIENT_ERROR': {
        const at = job.retryAt?.getTime();
        if (at !== undefined && at !== this.lastRetryShown) {
          this.lastRetryShown = at;
          const err = job.getError();
          const secs = Math.max(0, Math.round((at - Date.now()) / 1000));
          this.writeEmitter.fire(CLEAR_LINE);
          this.line(`${YELLOW}${vscode.l10n.t('{0} — retrying in {1}.', err ? describeError(err) : job.state, formatDuration(secs))}${RESET}`);
        }
        break;
      }
      case 'ERROR':
        this.settling = true;
        void this.failJob(job);
        break;
      case 'TRANSFERRED':
        this.settling = true;
        void this.completeJob(job);
        break;
      case 'CANCELLED':
        this.writeEmitter.fire(CLEAR_LINE);
        this.line(`${RED}${vscode.l10n.t("Download '{0}' was cancelled (state CANCELLED); nothing was kept.", job.displayName)}${RESET}`);
        this.finish(1);
        break;
      default:
        break;
    }
  }

  private fileLine(job: EngineJob, i: number): string {
    const f = job.getFiles()[i];
    const name = path.basename(f.localPath);
    if (f.transferred) {
      return `${GREEN}✓${RESET} ${name}  ${formatBytes(f.bytesTotal ?? f.bytesTransferred)}`;
    }
    const pct = formatPercent(f.bytesTransferred, f.bytesTotal);
    const eta = job.getEta();
    const parts = [
      `↓ ${name}`,
      pct ?? '',
      `${formatBytes(f.bytesTransferred)}${f.bytesTotal !== undefined ? ' / ' + formatBytes(f.bytesTotal) : ''}`,
      job.getSpeed() > 0 ? formatSpeed(job.getSpeed()) : '',
      eta !== undefined ? `ETA ${formatDuration(eta)}` : '',
    ];
    return parts.filter((p) => p !== '').join('  ');
  }

  private async completeJob(job: EngineJob): Promise<void> {
    if (this.closed) {
      return;
    }
    this.dispose();
    try {
      const result = await job.complete();
      const n = job.getFiles().filter((f) => f.completed).length;
      this.line(`${GREEN}${(isSingular(n) ? vscode.l10n.t('Done: {0} file in place ({1}).', n, result) : vscode.l10n.t('Done: {0} files in place ({1}).', n, result))}${RESET}`);
      if (result === 'S_OK' && this.plan) {
        await this.extractArchives(this.plan);
      }
      this.finish(result === 'S_OK' ? 0 : 1);
    } catch (e) {
      this.fail(e);
    }
  }

  /** `"extract"`: unpacks each archive once it is in place; a failure leaves the archive and fails the task. */
  private async extractArchives(plan: TaskPlan): Promise<void> {
    for (const { archive, folder } of plan.extractions) {
      let lastDraw = 0;
      const result = await extractArchive(archive, folder, {
        ...settings.extractLimits(),
        onProgress: (read, total) => {
          const now = Date.now();
          if (now - lastDraw >= REDRAW_MS) {
            lastDraw = now;
            this.writeEmitter.fire(`${CLEAR_LINE}${vscode.l10n.t('Extracting {0}: {1}', path.basename(archive), formatPercent(read, total) ?? '…')}`);
          }
        },
      });
      this.writeEmitter.fire(CLEAR_LINE);
      this.line(
        result.alreadyExtracted
          ? `${GREEN}✓${RESET} ${vscode.l10n.t('{0} already holds the contents of {1}.', result.folder, path.basename(archive))}`
          : `${GREEN}${(isSingular(result.files)
              ? vscode.l10n.t('Extracted {0} file ({1}) into {2}.', result.files, formatBytes(result.bytes), result.folder)
              : vscode.l10n.t('Extracted {0} files ({1}) into {2}.', result.files, formatBytes(result.bytes), result.folder))}${RESET}`,
      );
    }
  }

  private async failJob(job: EngineJob): Promise<void> {
    if (this.closed) {
      return;
    }
    this.dispose();
    const err = job.getError();
    this.writeEmitter.fire(CLEAR_LINE);
    this.line(`${RED}✗ ${err ? describeError(err) : vscode.l10n.t('The download failed.')}${RESET}`);
    // A failed task leaves nothing behind: no destination, no temporary.
    await job.cancel().catch(() => undefined);
    this.finish(1);
  }

  private fail(e: unknown): void {
    if (this.closed) {
      return;
    }
    this.dispose();
    this.writeEmitter.fire(CLEAR_LINE);
    this.line(`${RED}✗ ${describeError(e)}${RESET}`);
    const job = this.job;
    if (job && !job.isFinal) {
      void job.cancel().catch(() => undefined);
    }
    this.finish(1);
  }

  private finish(code: number): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    this.dispose();
    this.closeEmitter.fire(code);
  }

  private dispose(): void {
    for (const l of this.listeners) {
      l.dispose();
    }
    this.listeners = [];
  }
}
