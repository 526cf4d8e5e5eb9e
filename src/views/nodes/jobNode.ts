// A job in the tree: label, one-line progress, state icon, Markdown tooltip and a compound contextValue
// (`job:TRANSFERRING:suspendable:cancellable:completable`) that the menus match with `viewItem =~`.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { describeError, formatBytes, formatDate, formatDuration, formatPercent, formatSpeed, stateLabel, escapeMarkdown } from '../../common/format';
import type { EngineJob } from '../../engine';
import { plainError } from '../../common/plainWords';
import { isSingular } from '../../common/plural';
import { redactUrl } from '../../engine/errors';
import { appendChecksum, appendSources, FileNode, sourceNote } from './fileNode';
import { jobContextValue } from './jobContext';

export class JobNode {
  readonly kind = 'job';
  private readonly fileNodes: FileNode[] = [];

  constructor(public job: EngineJob) {}

  get id(): string {
    return this.job.id;
  }

  getChildren(): FileNode[] {
    if (!hasFileRows(this.job)) {
      this.fileNodes.length = 0;
      return [];
    }
    const n = this.job.getFiles().length;
    for (let i = this.fileNodes.length; i < n; i++) {
      this.fileNodes.push(new FileNode(this, i));
    }
    this.fileNodes.length = n;
    return [...this.fileNodes];
  }

  getTreeItem(): vscode.TreeItem {
    const job = this.job;
    const item = new vscode.TreeItem(job.displayName, hasFileRows(job) ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None);
    item.id = job.id;
    item.description = describeJob(job);
    item.contextValue = jobContextValue(job);
    item.iconPath = jobIcon(job);
    item.tooltip = jobTooltip(job);
    // A screen reader has no spinning icon: it hears the state word the row leaves out while transferring.
    item.accessibilityInformation = { label: `${job.displayName}, ${describeJob(job, { withState: true })}` };
    return item;
  }
}

/**
 * Whether the job's files are rows under it: a one-file job is one row (its file's details and actions are the
 * job's), so the view does not repeat the same name and progress twice.
 */
export function hasFileRows(job: Pick<EngineJob, 'getFiles'>): boolean {
  return job.getFiles().length > 1;
}

/**
 * "42% · ETA 5 s · 1.2 MB/s · 3.1 MB of 7.4 MB": what matters first, so it survives a narrow view. The state word
 * leads in every other state ("Suspended · 42% · …"); while transferring the spinning icon says it, unless `withState`.
 */
export function describeJob(job: EngineJob, o: { withState?: boolean } = {}): string {
  const p = job.getProgress();
  const parts: string[] = [];
  const error = job.getError();
  if (job.state === 'TRANSIENT_ERROR') {
    const at = job.retryAt;
    const seconds = at ? Math.max(0, (at.getTime() - Date.now()) / 1000) : undefined;
    parts.push(seconds === undefined ? stateLabel(job.state, job.type) : vscode.l10n.t('{0}, retry in {1}', stateLabel(job.state, job.type), formatDuration(seconds)));
  } else if (job.state === 'ERROR' && error) {
    // "Failed: not found (404)": the words first, so they survive a narrow view (the code is in the tooltip).
    parts.push(vscode.l10n.t('Failed: {0}', plainError(error.code)?.short ?? error.code));
  } else if (job.state === 'CANCELLED' && job.failureBeforeCancel) {
    // History keeps why it stopped: "Cancelled: not found (404)", not a bare "Cancelled · 0 B".
    const code = job.failureBeforeCancel.code;
    parts.push(vscode.l10n.t('Cancelled: {0}', plainError(code)?.short ?? code));
  } else if (job.state === 'TRANSFERRED' && job.autoCompleteError) {
    parts.push(vscode.l10n.t('Downloaded, could not be saved: {0}', job.autoCompleteError.code));
  } else {
    parts.push(stateLabel(job.state, job.type));
  }
  if (p.filesTotal === 0) {
    parts.push(vscode.l10n.t('no files'));
    return parts.join(' · ');
  }
  // A partial Complete: what was kept, not a percentage of files that were dropped ("Completed · 5%" read as a
  // failure). Files are listed only for a completed job: this runs on every progress refresh of every row.
  const kept = job.state === 'ACKNOWLEDGED' ? job.getFiles().filter((f) => f.completed) : undefined;
  if (kept && kept.length < p.filesTotal) {
    parts.push(isSingular(kept.length) ? vscode.l10n.t('{0} file kept of {1}', kept.length, p.filesTotal) : vscode.l10n.t('{0} files kept of {1}', kept.length, p.filesTotal));
    parts.push(formatBytes(kept.reduce((sum, f) => sum + f.bytesTransferred, 0)));
    return parts.join(' · ');
  }
  if (job.state === 'TRANSFERRING' && !o.withState) {
    parts.pop();
  }
  const pct = formatPercent(p.bytesTransferred, p.bytesTotal);
  if (pct) {
    parts.push(pct);
  }
  if (job.state === 'TRANSFERRING') {
    const eta = job.getEta();
    if (eta !== undefined) {
      parts.push(vscode.l10n.t('ETA {0}', formatDuration(eta)));
    }
    const speed = job.getSpeed();
    if (speed > 0) {
      parts.push(job.speedLimited ? vscode.l10n.t('{0}, limited', formatSpeed(speed)) : formatSpeed(speed));
    }
  }
  parts.push(p.bytesTotal === undefined ? formatBytes(p.bytesTransferred) : vscode.l10n.t('{0} of {1}', formatBytes(p.bytesTransferred), formatBytes(p.bytesTotal)));
  if (p.filesTotal > 1) {
    parts.push(vscode.l10n.t('{0}/{1} files', p.filesTransferred, p.filesTotal));
  }
  if (p.bytesFromCache > 0) {
    parts.push(vscode.l10n.t('{0} from cache', formatBytes(p.bytesFromCache)));
  } else if (p.filesTotal === 1 && !job.isFinal) {
    // The row of a one-file job says what its file row would have: where the bytes come from.
    const from = sourceNote(job.getFiles()[0]);
    if (from) {
      parts.push(from);
    }
  }
  return parts.join(' · ');
}

export function jobIcon(job: EngineJob): vscode.ThemeIcon {
  switch (job.state) {
    case 'SUSPENDED': return new vscode.ThemeIcon('debug-pause');
    case 'QUEUED': return new vscode.ThemeIcon('clock');
    case 'CONNECTING':
    case 'TRANSFERRING': return new vscode.ThemeIcon('loading~spin');
    case 'TRANSIENT_ERROR': return new vscode.ThemeIcon('warning', new vscode.ThemeColor('list.warningForeground'));
    case 'ERROR': return new vscode.ThemeIcon('error', new vscode.ThemeColor('list.errorForeground'));
    case 'TRANSFERRED':
      return job.autoCompleteError
        ? new vscode.ThemeIcon('warning', new vscode.ThemeColor('list.warningForeground'))
        : new vscode.ThemeIcon(job.type === 'upload' ? 'cloud-upload' : 'check');
    case 'ACKNOWLEDGED': return new vscode.ThemeIcon('pass', new vscode.ThemeColor('testing.iconPassed'));
    case 'CANCELLED': return new vscode.ThemeIcon('circle-slash');
  }
}

export function jobTooltip(job: EngineJob): vscode.MarkdownString {
  const md = new vscode.MarkdownString(undefined, true);
  const line = (label: string, value: string): void => {
    md.appendMarkdown(`**${label}:** ${escapeMarkdown(value)}  \n`);
  };
  // Where the bytes go comes first: it is what a truncated row cannot show.
  const destination = jobDestination(job);
  if (destination) {
    md.appendMarkdown(`$(${job.type === 'upload' ? 'cloud-upload' : 'cloud-download'}) **${escapeMarkdown(destination)}**  \n${escapeMarkdown(job.displayName)}  \n`);
  } else {
    md.appendMarkdown(`$(${job.type === 'upload' ? 'cloud-upload' : 'cloud-download'}) **${escapeMarkdown(job.displayName)}**  \n`);
  }
  if (job.description) {
    md.appendMarkdown(`${escapeMarkdown(job.description)}  \n`);
  }
  md.appendMarkdown('\n');
  const files = job.getFiles();
  if (files.length === 1) {
    // The file's own details (what its row would show): the other end of the transfer, its sources, its checksum.
    const f = files[0];
    line(job.type === 'upload' ? vscode.l10n.t('File') : vscode.l10n.t('URL'), job.type === 'upload' ? f.localPath : redactUrl(f.remoteUrl));
    appendSources(md, f);
    appendChecksum(md, f);
  }
  line(vscode.l10n.t('Id'), job.id);
  line(vscode.l10n.t('Type'), job.type);
  line(vscode.l10n.t('State'), `${job.state} (${stateLabel(job.state, job.type)})`);
  line(vscode.l10n.t('Priority'), job.priority);
  line(vscode.l10n.t('Progress'), describeJob(job));
  const t = job.getTimes();
  line(vscode.l10n.t('Created'), formatDate(t.creation));
  line(vscode.l10n.t('Modified'), formatDate(t.modification));
  if (t.transferCompletion) {
    line(vscode.l10n.t('Transfer finished'), formatDate(t.transferCompletion));
  }
  if (job.errorCount > 0) {
    line(vscode.l10n.t('Errors'), String(job.errorCount));
  }
  const error = job.getError();
  if (error) {
    line(vscode.l10n.t('Error'), describeError(error));
    line(vscode.l10n.t('Error context'), error.context + (error.file ? ` — ${error.file.localPath}` : ''));
  }
  if (job.state === 'TRANSFERRED' && job.autoCompleteError) {
    line(vscode.l10n.t('Could not complete itself'), describeError(job.autoCompleteError));
  }
  if (job.failureBeforeCancel) {
    line(vscode.l10n.t('Failed before it was cancelled'), describeError(job.failureBeforeCancel));
  }
  if (job.state === 'TRANSIENT_ERROR' && job.retryAt) {
    line(vscode.l10n.t('Next retry'), formatDate(job.retryAt));
  }
  line(vscode.l10n.t('Minimum retry delay'), formatDuration(job.minimumRetryDelaySeconds));
  line(vscode.l10n.t('No-progress timeout'), formatDuration(job.noProgressTimeoutSeconds));
  if (job.headerNames.length > 0) {
    line(vscode.l10n.t('HTTP headers (values in secret storage)'), job.headerNames.join(', '));
  }
  const temporaries = job.isFinal ? [] : files.filter((f) => !f.completed);
  if (temporaries.length > 0) {
    md.appendMarkdown(`\n**${vscode.l10n.t('Temporary files')}:**\n`);
    for (const f of temporaries.slice(0, 20)) {
      md.appendMarkdown(`- ${escapeMarkdown(f.temporaryPath)}\n`);
    }
    if (temporaries.length > 20) {
      md.appendMarkdown(`- ${escapeMarkdown(vscode.l10n.t('… and {0} more', temporaries.length - 20))}\n`);
    }
  }
  return md;
}

/** Where a job writes: the file (a download) or URL (an upload), or the folder when all its files share one. */
export function jobDestination(job: EngineJob): string | undefined {
  const files = job.getFiles();
  if (files.length === 0) {
    return undefined;
  }
  if (job.type === 'upload') {
    return files.length === 1 ? redactUrl(files[0].remoteUrl) : undefined;
  }
  if (files.length === 1) {
    return files[0].localPath;
  }
  const folders = new Set(files.map((f) => path.dirname(f.localPath)));
  return folders.size === 1 ? vscode.l10n.t('{0} files in {1}', files.length, [...folders][0]) : undefined;
}
