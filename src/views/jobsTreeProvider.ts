// The jobs tree: one stable node per job GUID, per-item refreshes batched into arrays of changed nodes and
// throttled, and a root refresh only when the set of visible jobs changes (add, remove, a job finishing and
// moving into the "Finished" group, finished jobs shown or hidden). Rows of jobs waiting to retry are refreshed
// each second for their countdown, only while there are such jobs.
import * as vscode from 'vscode';
import { Disposable } from '../common/lifecycle';
import type { EngineJob } from '../engine';
import type { EngineHost } from '../engineHost';
import * as settings from '../settings';
import { FileNode } from './nodes/fileNode';
import { FINISHED_SHOWN, FinishedGroupNode, newestFirst } from './nodes/finishedGroupNode';
import { JobNode } from './nodes/jobNode';
import { PAGE_ROWS, PageNode, ROOT_ROWS } from './nodes/pageNode';

export type TreeNode = JobNode | FileNode | FinishedGroupNode | PageNode;

/** States that keep a job out of sight in a page of a long list: the rest (running, failed, …) come first. */
const WAITING = new Set(['QUEUED', 'SUSPENDED']);

export class JobsTreeProvider extends Disposable implements vscode.TreeDataProvider<TreeNode> {
  private readonly nodes = new Map<string, JobNode>();
  /** The jobs the last full fetch showed, each with whether it was under "Finished". */
  private shown = new Map<string, boolean>();
  private readonly finishedGroup = new FinishedGroupNode();
  private pending = new Set<JobNode>();
  private rootDirty = false;
  private timer: NodeJS.Timeout | undefined;
  private lastFlush = 0;
  private showFinished = settings.showFinishedJobs();
  /** Jobs waiting in TRANSIENT_ERROR: their rows count down ("retry in 12 s"), refreshed each second while any. */
  private readonly waitingToRetry = new Set<string>();
  private countdown: NodeJS.Timeout | undefined;
  /** A long active list as the last full fetch ordered it: waiting jobs after the others, cut into pages. */
  private paged: { list: EngineJob[]; pages: PageNode[]; position: Map<string, number>; firstWaiting: number; opened: Set<PageNode> } | undefined;

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
    this._register({ dispose: () => clearInterval(this.countdown) });
  }

  /** Whether rows are being refreshed each second for a countdown (tests). */
  get countingDown(): boolean {
    return this.countdown !== undefined;
  }

  isVisible(job: EngineJob): boolean {
    return this.showFinished || !job.isFinal;
  }

  getTreeItem(node: TreeNode): vscode.TreeItem {
    if (node instanceof FinishedGroupNode) {
      return node.getTreeItem(this.finishedJobs().length);
    }
    return node.getTreeItem();
  }

  /** Root: the active jobs, newest first, then the "Finished" group when finished jobs are shown. */
  getChildren(node?: TreeNode): TreeNode[] {
    if (node instanceof JobNode) {
      return node.getChildren();
    }
    if (node instanceof FinishedGroupNode) {
      return this.finishedJobs().slice(0, FINISHED_SHOWN).map((j) => this.nodeFor(j));
    }
    if (node instanceof PageNode) {
      this.paged?.opened.add(node);
      return (this.paged?.list.slice(node.start, node.end) ?? []).map((j) => this.nodeFor(j));
    }
    if (node) {
      return [];
    }
    const { active, finished } = this.visibleJobs();
    this.rememberShown(active, finished);
    const rows: TreeNode[] = this.paged ? [...this.paged.list.slice(0, ROOT_ROWS).map((j) => this.nodeFor(j)), ...this.paged.pages] : active.map((j) => this.nodeFor(j));
    if (finished.length > 0) {
      rows.push(this.finishedGroup);
    }
    return rows;
  }

  /**
   * Past ROOT_ROWS active jobs: the running, failed and downloaded ones first (newest first), then the queued
   * and paused ones; the first ROOT_ROWS at the root, the rest in pages.
   */
  private paginate(active: EngineJob[]): void {
    if (active.length <= ROOT_ROWS) {
      this.paged = undefined;
      return;
    }
    const moving = active.filter((j) => !WAITING.has(j.state));
    const list = [...moving, ...active.filter((j) => WAITING.has(j.state))];
    const pages: PageNode[] = [];
    for (let start = ROOT_ROWS; start < list.length; start += PAGE_ROWS) {
      pages.push(new PageNode(start, Math.min(list.length, start + PAGE_ROWS), list.length));
    }
    this.paged = { list, pages, position: new Map(list.map((j, i) => [j.id, i])), firstWaiting: moving.length, opened: new Set() };
  }

  /** The page a job of a long list was put in at the last full fetch (undefined: at the root, or not listed). */
  private pageOf(id: string): PageNode | undefined {
    const i = this.paged?.position.get(id);
    return i === undefined || i < ROOT_ROWS ? undefined : this.paged?.pages[Math.floor((i - ROOT_ROWS) / PAGE_ROWS)];
  }

  private visibleJobs(): { active: EngineJob[]; finished: EngineJob[] } {
    const all = this.host.engine.enumJobs({ includeFinal: true });
    const active = all.filter((j) => !j.isFinal).sort((a, b) => b.getTimes().creation.getTime() - a.getTimes().creation.getTime() || a.id.localeCompare(b.id));
    return { active, finished: this.showFinished ? this.finishedJobs(all) : [] };
  }

  private rememberShown(active: EngineJob[], finished: EngineJob[]): void {
    this.paginate(active);
    this.shown = new Map([...active.map((j) => [j.id, false] as const), ...finished.slice(0, FINISHED_SHOWN).map((j) => [j.id, true] as const)]);
    this.waitingToRetry.clear();
    for (const j of active) {
      this.noteRetryWait(j);
    }
    this.updateCountdown();
  }

  private noteRetryWait(job: EngineJob): void {
    if (job.state === 'TRANSIENT_ERROR') {
      this.waitingToRetry.add(job.id);
    } else {
      this.waitingToRetry.delete(job.id);
    }
  }

  /** Ticks only while a shown job waits to retry: no timer at all otherwise. */
  private updateCountdown(): void {
    if (this.waitingToRetry.size === 0 || this.isDisposed) {
      clearInterval(this.countdown);
      this.countdown = undefined;
    } else {
      this.countdown ??= setInterval(() => this.tick(), 1000);
    }
  }

  private tick(): void {
    for (const id of this.waitingToRetry) {
      const job = this.findJob(id);
      if (job?.state === 'TRANSIENT_ERROR' && this.shown.get(id) === false) {
        this.pending.add(this.nodeFor(job));
      } else {
        this.waitingToRetry.delete(id);
      }
    }
    this.updateCountdown();
    if (this.pending.size > 0) {
      this.schedule();
    }
  }

  private findJob(id: string): EngineJob | undefined {
    try {
      return this.host.engine.getJob(id);
    } catch {
      return undefined;
    }
  }

  private finishedJobs(all = this.host.engine.enumJobs({ includeFinal: true })): EngineJob[] {
    return this.showFinished ? all.filter((j) => j.isFinal).sort(newestFirst) : [];
  }

  getParent(node: TreeNode): TreeNode | undefined {
    if (node instanceof FileNode) {
      return node.parent;
    }
    if (node instanceof JobNode && !node.job.isFinal) {
      return this.pageOf(node.job.id);
    }
    return node instanceof JobNode && node.job.isFinal && this.showFinished ? this.finishedGroup : undefined;
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
    this.noteRetryWait(job);
    this.updateCountdown();
    const wasShown = this.shown.has(job.id);
    // Appearing, disappearing or moving between the active list and "Finished": the root changes.
    if (wasShown !== this.isVisible(job) || (wasShown && this.shown.get(job.id) !== job.isFinal)) {
      this.markRoot();
      return;
    }
    // In a long list a job that starts or stops waiting changes place (waiting jobs go last): the root is fetched
    // again, cheaply, since pages are built only when opened. A row in a page never opened is not refreshed.
    if (this.paged && !job.isFinal) {
      const i = this.paged.position.get(job.id);
      if (i !== undefined && (i >= this.paged.firstWaiting) !== WAITING.has(job.state)) {
        this.markRoot();
        return;
      }
      const page = this.pageOf(job.id);
      if (page && !this.paged.opened.has(page)) {
        return;
      }
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
      const { active, finished } = this.visibleJobs();
      this.rememberShown(active, finished);
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
