// Owns the running DownloadEngine: opens it over global storage, relays its events as vscode events (so
// listeners survive a re-open of the store), and feeds it the settings as they change.
import * as vscode from 'vscode';
import { Disposable } from './common/lifecycle';
import { DownloadEngine, type CreateJobOptions, type EngineOptions, type HeaderVault, type JobFile, type JobImpl, type LogLevel } from './engine';
import * as settings from './settings';

export interface EngineHostOptions {
  storeDir: string;
  headerVault: HeaderVault;
  log: vscode.LogOutputChannel;
  /** Engine options only tests pass (through the internal test hook). */
  extra?: Partial<EngineOptions>;
}

export class EngineHost extends Disposable {
  private _engine: DownloadEngine;
  private engineListeners: vscode.Disposable[] = [];

  private readonly _onDidChangeJob = this._register(new vscode.EventEmitter<JobImpl>());
  private readonly _onDidTransferJob = this._register(new vscode.EventEmitter<JobImpl>());
  private readonly _onDidFailJob = this._register(new vscode.EventEmitter<JobImpl>());
  private readonly _onDidTransferFile = this._register(new vscode.EventEmitter<{ job: JobImpl; file: JobFile }>());
  private readonly _onDidAddJob = this._register(new vscode.EventEmitter<JobImpl>());
  private readonly _onDidRemoveJob = this._register(new vscode.EventEmitter<JobImpl>());
  private readonly _onDidReplaceEngine = this._register(new vscode.EventEmitter<DownloadEngine>());
  readonly onDidChangeJob = this._onDidChangeJob.event;
  readonly onDidTransferJob = this._onDidTransferJob.event;
  readonly onDidFailJob = this._onDidFailJob.event;
  readonly onDidTransferFile = this._onDidTransferFile.event;
  readonly onDidAddJob = this._onDidAddJob.event;
  readonly onDidRemoveJob = this._onDidRemoveJob.event;
  /** A new engine took over the same store (tests re-open it to simulate a reload). */
  readonly onDidReplaceEngine = this._onDidReplaceEngine.event;

  private constructor(
    private readonly opts: EngineHostOptions,
    engine: DownloadEngine,
  ) {
    super();
    this._engine = engine;
    this.attach(engine);
    this._register(
      vscode.workspace.onDidChangeConfiguration((e) => {
        const { engine: affected, network } = settings.affectsEngine(e);
        if (affected) {
          const o = settings.liveEngineOptions();
          // Without a network change, keep the current dispatcher (and its pooled connections).
          const { network: _network, ...rest } = o;
          this._engine.updateOptions(network ? o : rest);
          this.opts.log.info(`Settings changed: ${o.maxConcurrentJobs} concurrent jobs, retention ${o.retentionDays} days${network ? ', proxy settings reloaded' : ''}.`);
        }
      }),
    );
  }

  static async open(opts: EngineHostOptions): Promise<EngineHost> {
    return new EngineHost(opts, await EngineHost.openEngine(opts));
  }

  private static openEngine(opts: EngineHostOptions): Promise<DownloadEngine> {
    const log = opts.log;
    const write: Record<LogLevel, (m: string) => void> = {
      trace: (m) => log.trace(m),
      info: (m) => log.info(m),
      warn: (m) => log.warn(m),
      error: (m) => log.error(m),
    };
    return DownloadEngine.open({
      storeDir: opts.storeDir,
      ...settings.liveEngineOptions(),
      headerVault: opts.headerVault,
      log: (level, message) => (write[level] ?? write.info)(message),
      ...opts.extra,
    });
  }

  get engine(): DownloadEngine {
    return this._engine;
  }

  /** Creates a job with the user's default retry delay and no-progress timeout. */
  async createJob(o: CreateJobOptions): Promise<JobImpl> {
    const job = await this._engine.createJob(o);
    const delay = settings.minimumRetryDelaySeconds();
    if (delay !== job.minimumRetryDelaySeconds) {
      await job.setMinimumRetryDelay(delay);
    }
    const timeout = settings.noProgressTimeoutSeconds();
    if (timeout !== job.noProgressTimeoutSeconds) {
      await job.setNoProgressTimeout(timeout);
    }
    return job;
  }

  /** Closes the engine and opens a new one over the same store, as a window reload would. Internal (tests). */
  async reopen(extra?: Partial<EngineOptions>): Promise<DownloadEngine> {
    this.detach();
    await this._engine.dispose();
    if (extra) {
      this.opts.extra = { ...this.opts.extra, ...extra };
    }
    this._engine = await EngineHost.openEngine(this.opts);
    this.attach(this._engine);
    this._onDidReplaceEngine.fire(this._engine);
    return this._engine;
  }

  private attach(engine: DownloadEngine): void {
    this.engineListeners = [
      engine.onDidChangeJob((j) => this._onDidChangeJob.fire(j)),
      engine.onDidTransferJob((j) => this._onDidTransferJob.fire(j)),
      engine.onDidFailJob((j) => this._onDidFailJob.fire(j)),
      engine.onDidTransferFile((e) => this._onDidTransferFile.fire(e)),
      engine.onDidAddJob((j) => this._onDidAddJob.fire(j)),
      engine.onDidRemoveJob((j) => this._onDidRemoveJob.fire(j)),
    ];
  }

  private detach(): void {
    for (const d of this.engineListeners) {
      d.dispose();
    }
    this.engineListeners = [];
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.detach();
    super.dispose();
    // deactivate() awaits disposeEngine(); this is the synchronous fallback.
    void this._engine.dispose();
  }

  /** Stops transfers and flushes the store (awaited by deactivate). */
  disposeEngine(): Promise<void> {
    return this._engine.dispose();
  }
}
