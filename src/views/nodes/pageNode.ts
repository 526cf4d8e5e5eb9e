// A page of the active list when it is long: VS Code asks a tree for all of a node's children at once and the
// extension host builds an item for each, so 10,000 jobs at the root were a 2-second stall when the view opened.
// Past ROOT_ROWS jobs the rest come in collapsed pages of PAGE_ROWS, built only when opened.
import * as vscode from 'vscode';

/** Jobs listed one by one at the root before the rest go into pages. */
export const ROOT_ROWS = 200;
/** Jobs in one page. */
export const PAGE_ROWS = 500;

export class PageNode {
  readonly kind = 'page';
  readonly id: string;

  /** Rows `start` to `end` (from 0, end excluded) of the active list of `total` jobs. */
  constructor(
    readonly start: number,
    readonly end: number,
    readonly total: number,
  ) {
    this.id = `managedDownloads.page.${start}`;
  }

  getTreeItem(): vscode.TreeItem {
    const label = vscode.l10n.t('More downloads');
    const description = vscode.l10n.t('{0}–{1} of {2}', (this.start + 1).toLocaleString(vscode.env.language), this.end.toLocaleString(vscode.env.language), this.total.toLocaleString(vscode.env.language));
    const item = new vscode.TreeItem(label, vscode.TreeItemCollapsibleState.Collapsed);
    item.id = this.id;
    item.description = description;
    item.contextValue = 'page';
    item.iconPath = new vscode.ThemeIcon('list-flat');
    item.accessibilityInformation = { label: `${label}, ${description}` };
    return item;
  }
}
