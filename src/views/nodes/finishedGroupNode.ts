// The "Finished" group at the end of the tree: recent history, the way a browser's downloads list keeps it.
// Completed, cancelled (and so failed-then-cancelled) jobs, newest first, at most FINISHED_SHOWN of them.
import * as vscode from 'vscode';
import type { EngineJob } from '../../engine';

/** How many finished jobs the group lists (the rest stay in the store until retention removes them). */
export const FINISHED_SHOWN = 100;

export class FinishedGroupNode {
  readonly kind = 'finishedGroup';
  readonly id = 'managedDownloads.finished';

  getTreeItem(count: number): vscode.TreeItem {
    // Expanded by default: the history is what a user looks for once a download ended. VS Code remembers a collapse.
    const label = vscode.l10n.t('Finished');
    const description = count > FINISHED_SHOWN ? vscode.l10n.t('{0} most recent of {1}', FINISHED_SHOWN, count) : String(count);
    const item = new vscode.TreeItem(label, vscode.TreeItemCollapsibleState.Expanded);
    item.id = this.id;
    item.description = description;
    item.contextValue = 'finishedGroup';
    item.iconPath = new vscode.ThemeIcon('history');
    item.tooltip = vscode.l10n.t('Completed and cancelled downloads, newest first, kept for up to 30 days.');
    // Screen readers (and the browser tests) read the label and the count, not the tooltip.
    item.accessibilityInformation = { label: `${label}, ${description}` };
    return item;
  }
}

/** Newest first: the time the job last changed (completed or cancelled), then its creation. */
export function newestFirst(a: EngineJob, b: EngineJob): number {
  return (
    b.getTimes().modification.getTime() - a.getTimes().modification.getTime() ||
    b.getTimes().creation.getTime() - a.getTimes().creation.getTime() ||
    a.id.localeCompare(b.id)
  );
}
