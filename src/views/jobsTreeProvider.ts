// The jobs tree: one stable node per job GUID, per-item refreshes batched into arrays of changed nodes and
// throttled, and a root refresh only when the set of visible jobs changes (add, remove, finished jobs hidden).
import * as vscode from 'vscode';
import { Disposable } from '../common/lifecycle';
import type { EngineJob } from '../engine';
import type { EngineHost } from '../engineHost';
import * as settings from '../settings';
import { FileNode } from './nodes/fileNode';
import { JobNode } from './nodes/jobNode';

export type TreeNode = JobNode | FileNode;

export class JobsTreeProvider extends Disposable implements vscode.TreeDataProvider<TreeNode> {
  private readonly nodes = new Map<string, JobNode>();
  /** Ids of the jobs the last root getChildren() returned. */
  private shown = new Set<string>();
  private pending = new Set<JobNode>();
  private rootDirty = false;
  private timer: NodeJS.Timeout | undefined;
  private lastFlush = 0;
  private showFinished = settings.showFinishedJobs();

  private readonly _onDidChangeTreeData = this._register(new vscode.EventEmitter<TreeNode[] | TreeNode | undefined>());
  readonly onDidChangeTreeData = this._onDidChangeTreeData.event;
  /** Fired after each batch of changes reached the tree (the badge and the tests follow it). */
  private readonly _onDidFlush = this._register(new vscode.EventEmitter<void>());
  readonly onDidFlush = this._onDidFlush.event;
  /** Counts of what was fired, for the tests: full refreshes vs. per-item ones. */
  readonly stats = { fullRefreshes: 0, itemRefreshes: 0, itemsRefreshed: 0 };

  constructor(
    private readonly host: EngineHost,
    private readonly throttleMs = 300,
  ) {
    super();
    this._register(host.onDidChangeJob((j) => this.jobChanged(j)));
    this._register(host.onDidAddJob(() => this.markRoot()));
    this._register(
      host.onDidRemoveJob((j) => {
        this.nodes.delete(j.id);
        this.markRoot();
      }),
    );
    this._register(
      host.onDidReplaceEngine(() => {
        this.nodes.clear();
        this.markRoot();
      }),
    );
    this._register(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration(`${settings.SECTION}.showFinishedJobs`)) {
          this.showFinished = settings.showFinishedJobs();
          this.markRoot();
        }
      }),
    );
    this._register({ dispose: () => clearTimeout(this.timer) });
  }

  isVisible(job: EngineJob): boolean {
    return this.showFinished || !job.isFinal;
  }

  getTreeItem(node: TreeNode): vscode.TreeItem {
    return node.getTreeItem();
  }

  getChildren(node?: TreeNode): TreeNode[] {
    if (node) {
      return node instanceof JobNode ? node.getChildren() : [];
    }
    const jobs = this.visibleJobs();
    this.shown = new Set(jobs.map((j) => j.id));
    return jobs.map((j) => this.nodeFor(j));
  }

  private visibleJobs(): EngineJob[] {
    return this.host.engine
      .enumJobs({ includeFinal: true })
      .filter((j) => this.isVisible(j))
      .sort((a, b) => b.getTimes().creation.getTime() - a.getTimes().creation.getTime() || a.id.localeCompare(b.id));
  }

  getParent(node: TreeNode): TreeNode | undefined {
    return node instanceof FileNode ? node.parent : undefined;
  }

  /** The stable node of a job (created on first use). */
  nodeFor(job: EngineJob): JobNode {
    let node = this.nodes.get(job.id);
    if (!node) {
      node = new JobNode(job);
      this.nodes.set(job.id, node);
    } else if (node.job !== job) {
      node.job = job;
    }
    return node;
  }

  /** Everything again (the Refresh button, setting changes). */
  refresh(): void {
    this.markRoot();
  }

  /** Sends queued changes now instead of at the end of the throttle window (tests). */
  flushNow(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flush();
  }

  private jobChanged(job: EngineJob): void {
    const wasShown = this.shown.has(job.id);
    if (wasShown !== this.isVisible(job)) {
      this.markRoot();
      return;
    }
    if (wasShown) {
      this.pending.add(this.nodeFor(job));
      this.schedule();
    }
  }

  private markRoot(): void {
    this.rootDirty = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.isDisposed) {
      return;
    }
    const wait = Math.max(0, this.lastFlush + this.throttleMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, wait);
  }

  private flush(): void {
    this.lastFlush = Date.now();
    if (this.rootDirty) {
      this.rootDirty = false;
      this.pending.clear();
      // What the tree is about to fetch: later ticks of these jobs are per-item refreshes again.
      this.shown = new Set(this.visibleJobs().map((j) => j.id));
      this.stats.fullRefreshes++;
      this._onDidChangeTreeData.fire(undefined);
    } else if (this.pending.size > 0) {
      const changed = [...this.pending];
      this.pending.clear();
      this.stats.itemRefreshes++;
      this.stats.itemsRefreshed += changed.length;
      this._onDidChangeTreeData.fire(changed);
    }
    this._onDidFlush.fire();
  }
}
