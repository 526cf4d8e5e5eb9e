// A file of a job, shown as a child of its job when the job has several (a one-file job is one row: jobNode.ts).
import * as path from 'node:path';
import * as vscode from 'vscode';
import { formatBytes, formatPercent, escapeMarkdown } from '../../common/format';
import type { JobFile, EngineJob } from '../../engine';
import { redactUrl } from '../../engine/errors';
import { archiveFormatOf } from '../../engine/extract';
import type { JobNode } from './jobNode';

export type FileStatus = 'pending' | 'partial' | 'transferring' | 'transferred' | 'completed' | 'dropped' | 'deleted' | 'failed';

export class FileNode {
  readonly kind = 'file';

  constructor(
    readonly parent: JobNode,
    readonly index: number,
  ) {}

  get job(): EngineJob {
    return this.parent.job;
  }

  get id(): string {
    return `${this.job.id}/file/${this.index}`;
  }

  /** The live file (undefined if the job no longer has it). */
  get file(): JobFile | undefined {
    return this.job.getFiles()[this.index];
  }

  static status(job: EngineJob, files: JobFile[], index: number): FileStatus {
    const f = files[index];
    if (f.completed) {
      return 'completed';
    }
    if (job.state === 'ACKNOWLEDGED') {
      return 'dropped';
    }
    if (job.state === 'CANCELLED') {
      return 'deleted';
    }
    if (f.transferred) {
      return 'transferred';
    }
    const current = files.findIndex((x) => !x.transferred && !x.completed);
    // The file the job failed on says so (not "waiting"): the error names it, else it is the one it was on.
    if (job.state === 'ERROR' && (job.getError()?.file?.localPath === f.localPath || (job.getError()?.file === undefined && current === index))) {
      return 'failed';
    }
    if (current === index && (job.state === 'TRANSFERRING' || job.state === 'CONNECTING')) {
      return 'transferring';
    }
    return f.bytesTransferred > 0 ? 'partial' : 'pending';
  }

  getTreeItem(): vscode.TreeItem {
    const files = this.job.getFiles();
    const f = files[this.index];
    const item = new vscode.TreeItem(f ? path.basename(f.localPath) : '?', vscode.TreeItemCollapsibleState.None);
    item.id = this.id;
    if (!f) {
      return item;
    }
    const status = FileNode.status(this.job, files, this.index);
    // "42% · 3.1 MB of 7.4 MB" while it moves (the icon spins); the status word leads otherwise.
    const parts: string[] = status === 'transferring' ? [] : [statusLabel(status)];
    const pct = formatPercent(f.bytesTransferred, f.bytesTotal);
    if (pct && status !== 'completed' && status !== 'transferred') {
      parts.push(pct);
    }
    parts.push(
      f.bytesTotal === undefined
        ? formatBytes(f.bytesTransferred)
        : f.bytesTransferred >= f.bytesTotal
          ? formatBytes(f.bytesTotal)
          : vscode.l10n.t('{0} of {1}', formatBytes(f.bytesTransferred), formatBytes(f.bytesTotal)),
    );
    if (f.bytesFromCache) {
      parts.push(vscode.l10n.t('{0} from cache', formatBytes(f.bytesFromCache)));
    } else {
      const from = sourceNote(f);
      if (from) {
        parts.push(from);
      }
    }
    item.description = parts.join(' · ');
    item.contextValue = `file:${status}${status === 'completed' ? ':openable' + (archiveFormatOf(f.localPath) ? ':archive' : '') : ''}`;
    item.iconPath = icon(status);
    const md = new vscode.MarkdownString(undefined, true);
    // The destination first: the local file of a download, the URL of an upload.
    const local = `**${vscode.l10n.t('File')}:** ${escapeMarkdown(f.localPath)}  \n`;
    const remote = `**${vscode.l10n.t('URL')}:** ${escapeMarkdown(redactUrl(f.remoteUrl))}  \n`;
    md.appendMarkdown(this.job.type === 'upload' ? remote + local : local + remote);
    appendSources(md, f);
    const described = [status === 'transferring' ? statusLabel(status) : undefined, item.description].filter(Boolean).join(' · ');
    md.appendMarkdown(`**${vscode.l10n.t('Status')}:** ${escapeMarkdown(described)}  \n`);
    if (!f.completed && status !== 'dropped' && status !== 'deleted') {
      md.appendMarkdown(`**${vscode.l10n.t('Temporary file')}:** ${escapeMarkdown(f.temporaryPath)}  \n`);
    }
    appendChecksum(md, f);
    item.tooltip = md;
    item.accessibilityInformation = { label: `${item.label as string}, ${described}` };
    return item;
  }
}

function statusLabel(s: FileStatus): string {
  switch (s) {
    case 'pending': return vscode.l10n.t('waiting');
    case 'partial': return vscode.l10n.t('partly transferred');
    case 'transferring': return vscode.l10n.t('transferring');
    case 'transferred': return vscode.l10n.t('transferred');
    case 'completed': return vscode.l10n.t('completed');
    case 'dropped': return vscode.l10n.t('dropped');
    case 'deleted': return vscode.l10n.t('deleted');
    case 'failed': return vscode.l10n.t('failed');
  }
}

function icon(s: FileStatus): vscode.ThemeIcon {
  switch (s) {
    case 'pending': return new vscode.ThemeIcon('file');
    case 'partial': return new vscode.ThemeIcon('debug-pause');
    case 'transferring': return new vscode.ThemeIcon('loading~spin');
    case 'transferred': return new vscode.ThemeIcon('check');
    case 'completed': return new vscode.ThemeIcon('pass', new vscode.ThemeColor('testing.iconPassed'));
    case 'dropped': return new vscode.ThemeIcon('circle-slash');
    case 'deleted': return new vscode.ThemeIcon('trash');
    case 'failed': return new vscode.ThemeIcon('error', new vscode.ThemeColor('list.errorForeground'));
  }
}

/** "from mirror host-b" or "from host-a, host-b at once" when the bytes do not come from the file's URL alone. */
export function sourceNote(f: JobFile): string | undefined {
  if (f.sourcesInUse) {
    return vscode.l10n.t('from {0} at once', [...new Set(f.sourcesInUse.map(hostOf))].join(', '));
  }
  return f.source ? vscode.l10n.t('from mirror {0}', hostOf(f.source)) : undefined;
}

/** The tooltip lines that say where a file's bytes come from: the sources in use and the mirrors. */
export function appendSources(md: vscode.MarkdownString, f: JobFile): void {
  if (f.sourcesInUse || f.source) {
    const from = f.sourcesInUse ?? [f.source!];
    md.appendMarkdown(`**${vscode.l10n.t('Coming from')}:** ${escapeMarkdown(from.map((u) => redactUrl(u)).join(', '))}  \n`);
  }
  if (f.mirrors?.length) {
    md.appendMarkdown(`**${vscode.l10n.t('Mirrors')}:** ${escapeMarkdown(f.mirrors.map((m) => redactUrl(m)).join(', '))}  \n`);
  }
}

export function appendChecksum(md: vscode.MarkdownString, f: JobFile): void {
  if (f.sha256) {
    md.appendMarkdown(`**SHA-256:** ${escapeMarkdown(f.sha256)}  \n`);
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return redactUrl(url);
  }
}
