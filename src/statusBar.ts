// One status bar item while jobs are active: "$(cloud-download) 2 · 45%"; a click opens the jobs view. While a
// job waits to retry after a transient error it turns to a warning that counts down: "$(warning) 2 · retry in 12 s".
import * as vscode from 'vscode';
import { formatDuration, formatPercent, stateLabel, escapeMarkdown } from './common/format';
import { Disposable } from './common/lifecycle';
import { activeDownloads } from './common/plural';
import { ACTION_STATES } from './engine';
import type { EngineHost } from './engineHost';

export class DownloadsStatusBar extends Disposable {
  readonly item: vscode.StatusBarItem;
  private timer: NodeJS.Timeout | undefined;
  /** Redraws the countdown each second, only while a job waits to retry. */
  private countdown: NodeJS.Timeout | undefined;

  constructor(private readonly host: EngineHost) {
    super();
    this.item = this._register(vscode.window.createStatusBarItem('managedDownloads.status', vscode.StatusBarAlignment.Left, 10));
    this.item.name = vscode.l10n.t('Managed Downloads');
    this.item.command = 'managedDownloads.jobs.focus';
    this._register(host.onDidChangeJob(() => this.schedule()));
    this._register(host.onDidRemoveJob(() => this.schedule()));
    this._register(host.onDidReplaceEngine(() => this.schedule()));
    this._register({ dispose: () => clearTimeout(this.timer) });
    this._register({ dispose: () => clearInterval(this.countdown) });
    this.update();
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.update();
    }, 500);
  }

  update(): void {
    const active = this.host.engine.enumJobs().filter((j) => ACTION_STATES.has(j.state));
    const nextRetry = Math.min(...active.filter((j) => j.state === 'TRANSIENT_ERROR').map((j) => j.retryAt?.getTime() ?? Infinity));
    const waiting = active.some((j) => j.state === 'TRANSIENT_ERROR');
    if (waiting && !this.isDisposed) {
      this.countdown ??= setInterval(() => this.update(), 1000);
    } else {
      clearInterval(this.countdown);
      this.countdown = undefined;
    }
    this.item.backgroundColor = waiting ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    if (active.length === 0) {
      this.item.hide();
      return;
    }
    let done = 0;
    let total = 0;
    let known = true;
    for (const j of active) {
      const p = j.getProgress();
      if (p.bytesTotal === undefined) {
        known = false;
      } else {
        total += p.bytesTotal;
      }
      done += p.bytesTransferred;
    }
    const pct = known ? formatPercent(done, total) : undefined;
    const retry = waiting && Number.isFinite(nextRetry) ? vscode.l10n.t('retry in {0}', formatDuration(Math.max(0, (nextRetry - Date.now()) / 1000))) : undefined;
    this.item.text = waiting
      ? `$(warning) ${active.length}${retry ? ` · ${retry}` : ''}`
      : `$(cloud-download) ${active.length}${pct ? ` · ${pct}` : ''}`;
    const md = new vscode.MarkdownString(undefined, true);
    md.appendMarkdown(`**${escapeMarkdown(activeDownloads(active.length))}**\n\n`);
    for (const j of active.slice(0, 10)) {
      const p = j.getProgress();
      const jp = formatPercent(p.bytesTransferred, p.bytesTotal);
      md.appendMarkdown(`- ${escapeMarkdown(`${j.displayName}: ${stateLabel(j.state, j.type)}${jp ? ` · ${jp}` : ''}`)}\n`);
    }
    this.item.tooltip = md;
    this.item.accessibilityInformation = { label: activeDownloads(active.length) + (retry ? `, ${retry}` : pct ? `, ${pct}` : '') };
    this.item.show();
  }
}
