// One status bar item while jobs are active: "$(cloud-download) 2 · 45%"; a click opens the jobs view.
import * as vscode from 'vscode';
import { formatPercent, stateLabel, escapeMarkdown } from './common/format';
import { Disposable } from './common/lifecycle';
import { activeDownloads } from './common/plural';
import { ACTION_STATES } from './engine';
import type { EngineHost } from './engineHost';

export class DownloadsStatusBar extends Disposable {
  readonly item: vscode.StatusBarItem;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly host: EngineHost) {
    super();
    this.item = this._register(vscode.window.createStatusBarItem('managedDownloads.status', vscode.StatusBarAlignment.Left, 10));
    this.item.name = vscode.l10n.t('Managed Downloads');
    this.item.command = 'managedDownloads.jobs.focus';
    this._register(host.onDidChangeJob(() => this.schedule()));
    this._register(host.onDidRemoveJob(() => this.schedule()));
    this._register(host.onDidReplaceEngine(() => this.schedule()));
    this._register({ dispose: () => clearTimeout(this.timer) });
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
    this.item.text = `$(cloud-download) ${active.length}${pct ? ` · ${pct}` : ''}`;
    const md = new vscode.MarkdownString(undefined, true);
    md.appendMarkdown(`**${escapeMarkdown(activeDownloads(active.length))}**\n\n`);
    for (const j of active.slice(0, 10)) {
      const p = j.getProgress();
      const jp = formatPercent(p.bytesTransferred, p.bytesTotal);
      md.appendMarkdown(`- ${escapeMarkdown(`${j.displayName}: ${stateLabel(j.state, j.type)}${jp ? ` · ${jp}` : ''}`)}\n`);
    }
    this.item.tooltip = md;
    this.item.accessibilityInformation = { label: activeDownloads(active.length) + (pct ? `, ${pct}` : '') };
    this.item.show();
  }
}
