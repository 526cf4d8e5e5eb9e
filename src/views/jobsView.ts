// The managedDownloads.jobs tree view: the provider, multi-select, and a badge with the number of active jobs.
import * as vscode from 'vscode';
import { Disposable } from '../common/lifecycle';
import { activeDownloads } from '../common/plural';
import { ACTION_STATES } from '../engine';
import type { EngineHost } from '../engineHost';
import { JobsTreeProvider, type TreeNode } from './jobsTreeProvider';

export const VIEW_ID = 'managedDownloads.jobs';

export class JobsView extends Disposable {
  readonly provider: JobsTreeProvider;
  readonly treeView: vscode.TreeView<TreeNode>;
  private lastBadge = -1;
  private lastHasFinished: boolean | undefined;

  constructor(private readonly host: EngineHost) {
    super();
    this.provider = this._register(new JobsTreeProvider(host));
    this.treeView = this._register(
      vscode.window.createTreeView(VIEW_ID, { treeDataProvider: this.provider, canSelectMany: true, showCollapseAll: true }),
    );
    this._register(this.provider.onDidFlush(() => this.update()));
    this.update();
  }

  private update(): void {
    this.updateBadge();
    // The welcome view offers "Show Finished Downloads" when finished jobs are all there is.
    const hasFinished = this.host.engine.enumJobs({ includeFinal: true }).some((j) => j.isFinal);
    if (hasFinished !== this.lastHasFinished) {
      this.lastHasFinished = hasFinished;
      void vscode.commands.executeCommand('setContext', 'managedDownloads.hasFinishedJobs', hasFinished);
    }
  }

  activeCount(): number {
    return this.host.engine.enumJobs().filter((j) => ACTION_STATES.has(j.state)).length;
  }

  private updateBadge(): void {
    const n = this.activeCount();
    if (n === this.lastBadge) {
      return;
    }
    this.lastBadge = n;
    this.treeView.badge = n > 0 ? { value: n, tooltip: activeDownloads(n) } : undefined;
  }

  /** Shows a job in the tree (opening the view), even a finished one that is hidden: then says so. */
  async reveal(jobId: string): Promise<boolean> {
    const job = this.host.engine.getJob(jobId);
    if (!this.provider.isVisible(job)) {
      return false;
    }
    // Send the throttled refresh now: VS Code's reveal waits for a refresh in flight, but fails on an element
    // the tree has not fetched yet (a job created a moment ago), and a late success would steal the focus.
    this.provider.flushNow();
    this.provider.getChildren();
    await this.treeView.reveal(this.provider.nodeFor(job), { select: true, focus: true, expand: true });
    return true;
  }
}
