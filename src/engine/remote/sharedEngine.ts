// One engine per user across windows: the first window to claim the store runs the engine and serves it;
// the others act through it. When the owner goes away, a waiting window takes over and resumes the jobs
// from their durable offsets.
import { DownloadEngine, type EngineOptions } from '../engine';
import { Emitter } from '../emitter';
import type { JobService } from '../types';
import { EngineServer } from './engineServer';
import { RemoteEngine } from './remoteEngine';
import { claimStore, socketPathFor, type StoreClaim } from './storeClaim';

export type EngineRole = 'owner' | 'client';

export class SharedEngine {
  private _service!: JobService;
  private _role: EngineRole = 'client';
  private claim: StoreClaim | undefined;
  private server: EngineServer | undefined;
  private disposed = false;
  /** A take-over in progress; dispose() waits for it so nothing it opens is left running. */
  private pending: Promise<void> | undefined;
  private readonly _onDidChangeService = new Emitter<JobService>();
  /** A new service replaced the old one (this window took over, or reconnected to a new owner). */
  readonly onDidChangeService = this._onDidChangeService.event;

  private constructor(private readonly opts: EngineOptions) {}

  static async open(opts: EngineOptions): Promise<SharedEngine> {
    const shared = new SharedEngine(opts);
    await shared.connectOrOwn();
    return shared;
  }

  get service(): JobService {
    return this._service;
  }

  get role(): EngineRole {
    return this._role;
  }

  /** Resolves once a take-over (or reconnection) in progress is over; at once when none is. */
  async settled(): Promise<void> {
    await this.pending;
  }

  /** The local engine when this window owns the store. */
  get localEngine(): DownloadEngine | undefined {
    return this._role === 'owner' ? (this._service as DownloadEngine) : undefined;
  }

  private log(message: string): void {
    this.opts.log?.('info', message);
  }

  private async connectOrOwn(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (this.disposed && attempt > 0) {
        return;
      }
      const claim = await claimStore(this.opts.storeDir);
      if (claim) {
        let engine: DownloadEngine;
        try {
          engine = await DownloadEngine.open(this.opts);
        } catch (e) {
          await claim.release();
          throw e;
        }
        this.claim = claim;
        this.server = new EngineServer(engine, claim.server, (m) => this.log(m));
        this._service = engine;
        this._role = 'owner';
        this.log(`This window runs the job engine (socket ${claim.socketPath}).`);
        return;
      }
      try {
        const remote = await RemoteEngine.connect(socketPathFor(this.opts.storeDir));
        remote.onDidDisconnect(() => {
          this.pending = this.takeOver(remote).finally(() => (this.pending = undefined));
        });
        this._service = remote;
        this._role = 'client';
        this.log('Another window runs the job engine; this one shows its jobs and acts through it.');
        return;
      } catch (e) {
        if (attempt >= 50) {
          throw e;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private async takeOver(old: RemoteEngine): Promise<void> {
    if (this.disposed || this._service !== old) {
      return;
    }
    this.log('The window that ran the job engine went away; taking over or reconnecting.');
    await old.dispose();
    // Spread the windows out a little so one of them claims the store cleanly.
    await new Promise((r) => setTimeout(r, 50 + Math.random() * 250));
    if (this.disposed) {
      return;
    }
    try {
      await this.connectOrOwn();
      if (this.disposed) {
        return; // dispose() is waiting for us and closes what we just opened
      }
      this._onDidChangeService.fire(this._service);
    } catch (e) {
      this.opts.log?.('error', `Could not take over the job engine: ${(e as Error).message}`);
    }
  }

  /** Closes the local engine (after a checkpoint) and frees the store for another window, or disconnects. */
  async dispose(): Promise<void> {
    if (this.disposed) {
      return;
    }
    this.disposed = true;
    await this.pending;
    this.server?.dispose();
    await this._service?.dispose();
    await this.claim?.release();
    this._onDidChangeService.dispose();
  }
}
