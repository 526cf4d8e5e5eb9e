// Connects this window to the user's job engine: runs it when this window owns the store (global storage),
// or acts through the window that does. Relays its job events (so listeners survive a
// take-over or a re-open of the store) and feeds it the settings as they change.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { disposeAll, type IDisposable } from './common/lifecycle';
import { SharedEngine, type CreateJobOptions, type EngineJob, type EngineOptions, type HeaderVault, type JobService, type LogLevel } from './engine';
import { JobEventSource } from './engine/jobEvents';
import * as settings from './settings';

export interface EngineHostOptions {
  storeDir: string;
  headerVault: HeaderVault;
  log: vscode.LogOutputChannel;
  /** Engine options only tests pass (through the internal test hook). */
  extra?: Partial<EngineOptions>;
}

/** Relays the engine's job events (JobEventSource): listeners here survive a take-over or a re-open. */
export class EngineHost extends JobEventSource<EngineJob> implements vscode.Disposable {
  private shared: SharedEngine;
  private engineListeners: IDisposable[] = [];
  private readonly disposables: IDisposable[] = [];
  private disposed = false;

  private readonly _onDidReplaceEngine = this.own(new vscode.EventEmitter<JobService>());
  /** A new engine took over the same store (tests re-open it to simulate a reload). */
  readonly onDidReplaceEngine = this._onDidReplaceEngine.event;

  private constructor(
    private readonly opts: EngineHostOptions,
    shared: SharedEngine,
  ) {
    super();
    this.shared = shared;
    this.adopt(shared);
    this.own(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (settings.RETRY_DELAY_KEYS.some((k) => e.affectsConfiguration(`${settings.SECTION}.${k}`))) {
          void this.applyRetryDelaySetting();
        }
        const { engine: affected, network } = settings.affectsEngine(e);
        const local = this.shared.localEngine;
        if (affected && local) {
          const o = settings.liveEngineOptions();
          // Without a network change, keep the current dispatcher (and its pooled connections).
          const { network: _network, ...rest } = o;
          local.updateOptions({ ...(network ? o : rest), cache: settings.cacheSettings(defaultCacheFolder(this.opts.storeDir)) });
          this.opts.log.info(`Settings changed: ${o.maxConcurrentJobs} concurrent jobs, retention ${o.retentionDays} days${network ? ', proxy settings reloaded' : ''}.`);
        }
      }),
    );
  }

  /** The retry delay the setting gave the jobs created so far. */
  private retryDelaySetting = settings.minimumRetryDelaySeconds();

  /**
   * A changed minimum retry delay also applies to the jobs that took the old one from the setting, the ones
   * waiting in TRANSIENT_ERROR included (the engine moves their next retry). A delay set otherwise is left alone.
   */
  private async applyRetryDelaySetting(): Promise<void> {
    const old = this.retryDelaySetting;
    const delay = settings.minimumRetryDelaySeconds();
    this.retryDelaySetting = delay;
    if (delay === old || !this.shared.localEngine) {
      return; // the window that owns the engine applies it once for all windows
    }
    const jobs = this.engine.enumJobs().filter((j) => j.minimumRetryDelaySeconds === old);
    await Promise.all(
      jobs.map((j) => j.setMinimumRetryDelay(delay).catch((e: unknown) => this.opts.log.warn(`Job '${j.displayName}': the new retry delay was not applied: ${(e as Error).message}`))),
    );
    this.opts.log.info(`Settings changed: minimum retry delay ${delay} s, applied to ${jobs.length} unfinished jobs (${jobs.filter((j) => j.state === 'TRANSIENT_ERROR').length} waiting to retry).`);
  }

  static async open(opts: EngineHostOptions): Promise<EngineHost> {
    return new EngineHost(opts, await EngineHost.openShared(opts));
  }

  private static openShared(opts: EngineHostOptions): Promise<SharedEngine> {
    const log = opts.log;
    const write: Record<LogLevel, (m: string) => void> = {
      trace: (m) => log.trace(m),
      info: (m) => log.info(m),
      warn: (m) => log.warn(m),
      error: (m) => log.error(m),
    };
    return SharedEngine.open({
      storeDir: opts.storeDir,
      ...settings.liveEngineOptions(),
      cache: settings.cacheSettings(defaultCacheFolder(opts.storeDir)),
      headerVault: opts.headerVault,
      log: (level, message) => (write[level] ?? write.info)(message),
      ...opts.extra,
    });
  }

  /** The user's jobs: the local engine when this window owns the store, else the owner's, through it. */
  get engine(): JobService {
    return this.shared.service;
  }

  /** Resolves once a take-over (or reconnection) in progress is over. */
  settled(): Promise<void> {
    return this.shared.settled();
  }

  /** Whether this window runs the engine ('owner') or acts through another window ('client'). */
  get role(): 'owner' | 'client' {
    return this.shared.role;
  }

  /** Follows the shared engine when this window takes over from (or reconnects to) another owner. */
  private adopt(shared: SharedEngine): void {
    this.attach(shared.service);
    shared.onDidChangeService((service) => {
      this.detach();
      this.attach(service);
      this.opts.log.info(`Job engine ${shared.role === 'owner' ? 'taken over by this window' : 'reached through another window'}.`);
      this._onDidReplaceEngine.fire(service);
    });
  }

  /**
   * Creates a job with the user's default retry delay and no-progress timeout. `startedBy: 'user'` (a command of
   * the UI: someone is watching) adds short, growing delays before its first retries; API jobs keep the contract's.
   */
  async createJob(o: CreateJobOptions, startedBy: 'user' | 'caller' = 'caller'): Promise<EngineJob> {
    const job = await this.engine.createJob(o);
    const delay = settings.minimumRetryDelaySeconds();
    if (delay !== job.minimumRetryDelaySeconds) {
      await job.setMinimumRetryDelay(delay);
    }
    if (startedBy === 'user') {
      await job.setRetryDelays(USER_JOB_RETRY_DELAYS_SECONDS);
    }
    const timeout = settings.noProgressTimeoutSeconds();
    if (timeout !== job.noProgressTimeoutSeconds) {
      await job.setNoProgressTimeout(timeout);
    }
    return job;
  }

  /** Closes the engine and opens a new one over the same store, as a window reload would. Internal (tests). */
  async reopen(extra?: Partial<EngineOptions>): Promise<JobService> {
    this.detach();
    await this.shared.dispose();
    if (extra) {
      this.opts.extra = { ...this.opts.extra, ...extra };
    }
    this.shared = await EngineHost.openShared(this.opts);
    this.adopt(this.shared);
    this._onDidReplaceEngine.fire(this.shared.service);
    return this.shared.service;
  }

  private attach(engine: JobService): void {
    this.engineListeners = this.relayJobEvents(engine);
  }

  private detach(): void {
    for (const d of this.engineListeners) {
      d.dispose();
    }
    this.engineListeners = [];
  }

  private own<T extends IDisposable>(d: T): T {
    this.disposables.push(d);
    return d;
  }

  dispose(): void {
    if (this.disposed) {
      return;
    }
    this.disposed = true;
    this.detach();
    disposeAll(this.disposables);
    this.disposeJobEvents();
    // deactivate() awaits disposeEngine(); this is the synchronous fallback.
    void this.shared.dispose();
  }

  /** Stops transfers and flushes the store (awaited by deactivate). */
  disposeEngine(): Promise<void> {
    return this.shared.dispose();
  }
}

/** Before the first retries of a job someone started from the UI (then the minimum retry delay, 600 s by default). */
export const USER_JOB_RETRY_DELAYS_SECONDS: readonly number[] = [5, 15, 60];

/** The content cache's folder when the setting names none: beside the job store, in the global storage. */
function defaultCacheFolder(storeDir: string): string {
  return path.join(storeDir, 'content-cache');
}
