// A window that does not own the store: mirrors the owner's jobs and acts on them through it.
import * as net from 'node:net';
import type { MessageConnection } from 'vscode-jsonrpc/node';
import { connectionOver, jsonRpc } from './jsonRpc';
import { Emitter } from '../emitter';
import { JobEventSource } from '../jobEvents';
import { DownloadError } from '../errors';
import {
  FINAL_STATES,
  type AutoCompleteError,
  type CancelResult,
  type CompleteResult,
  type CreateJobOptions,
  type EngineJob,
  type JobErrorInfo,
  type JobFile,
  type JobPriority,
  type JobProgress,
  type JobService,
  type JobTimes,
  type NewFile,
} from '../types';
import { checkSocketFile } from './storeClaim';
import { Notifications, PROTOCOL_VERSION, Requests, type HelloResult, type JobSnapshot, type RemoteJobMethod, type WireError } from './protocol';

export class RemoteJob implements EngineJob {
  constructor(
    private snap: JobSnapshot,
    private readonly engine: RemoteEngine,
  ) {}

  update(s: JobSnapshot): void {
    this.snap = s;
  }

  private get r() {
    return this.snap.record;
  }

  get id() { return this.r.id; }
  get displayName() { return this.r.displayName; }
  get description() { return this.r.description; }
  get type() { return this.r.type; }
  get priority() { return this.r.priority; }
  get state() { return this.r.state; }
  get errorCount() { return this.r.errorCount; }
  get isFinal() { return FINAL_STATES.has(this.r.state); }
  get retryAt() { return this.r.retryAt === undefined ? undefined : new Date(this.r.retryAt); }
  get autoComplete() { return this.r.autoComplete === true; }
  get autoCompleteError(): AutoCompleteError | undefined { return this.r.autoCompleteError && { ...this.r.autoCompleteError }; }
  get headerNames(): readonly string[] { return this.r.headerNames; }
  get leftoverTemporaries(): readonly string[] { return [...(this.r.leftoverTemporaries ?? [])]; }
  get minimumRetryDelaySeconds() { return this.r.minimumRetryDelaySeconds; }
  get retryDelaysSeconds(): readonly number[] { return [...(this.r.retryDelaysSeconds ?? [])]; }
  get noProgressTimeoutSeconds() { return this.r.noProgressTimeoutSeconds; }
  get maxBytesPerSecond() { return this.r.maxBytesPerSecond ?? 0; }
  get speedLimited() { return this.state === 'TRANSFERRING' && this.snap.speedLimited === true; }

  getFiles(): JobFile[] {
    return this.snap.files.map((f) => ({ ...f }));
  }

  getProgress(): JobProgress {
    const files = this.snap.files;
    return {
      bytesTotal: files.some((f) => f.bytesTotal === undefined) ? undefined : files.reduce((n, f) => n + (f.bytesTotal ?? 0), 0),
      bytesTransferred: files.reduce((n, f) => n + f.bytesTransferred, 0),
      filesTotal: files.length,
      filesTransferred: files.filter((f) => f.transferred).length,
      bytesFromCache: files.reduce((n, f) => n + (f.bytesFromCache ?? 0), 0),
    };
  }

  getTimes(): JobTimes {
    return {
      creation: new Date(this.r.created),
      modification: new Date(this.r.modified),
      transferCompletion: this.r.transferCompleted === undefined ? undefined : new Date(this.r.transferCompleted),
    };
  }

  getError(): JobErrorInfo | undefined {
    return this.state === 'ERROR' || this.state === 'TRANSIENT_ERROR' ? this.recordedError() : undefined;
  }

  get failureBeforeCancel(): JobErrorInfo | undefined {
    return this.state === 'CANCELLED' ? this.recordedError() : undefined;
  }

  private recordedError(): JobErrorInfo | undefined {
    const e = this.r.error;
    if (!e) {
      return undefined;
    }
    return { code: e.code, hresult: e.hresult, message: e.message, context: e.context, file: e.fileIndex === undefined ? undefined : this.snap.files[e.fileIndex] };
  }

  getSpeed(): number {
    return this.state === 'TRANSFERRING' ? this.snap.speed : 0;
  }

  getEta(): number | undefined {
    const p = this.getProgress();
    const speed = this.getSpeed();
    return p.bytesTotal === undefined || speed <= 0 ? undefined : Math.max(0, (p.bytesTotal - p.bytesTransferred) / speed);
  }

  addFile(remoteUrl: string, localPath: string, o?: { sha256?: string; mirrors?: string[]; replaceExisting?: boolean }): Promise<void> {
    return this.call('addFile', remoteUrl, localPath, o);
  }
  addFileSet(files: NewFile[]): Promise<void> { return this.call('addFileSet', files); }
  resume(): Promise<void> { return this.call('resume'); }
  suspend(): Promise<void> { return this.call('suspend'); }
  complete(): Promise<CompleteResult> { return this.call('complete'); }
  cancel(): Promise<CancelResult> { return this.call('cancel'); }
  setPriority(p: JobPriority): Promise<void> { return this.call('setPriority', p); }
  setDisplayName(name: string): Promise<void> { return this.call('setDisplayName', name); }
  setMinimumRetryDelay(seconds: number): Promise<void> { return this.call('setMinimumRetryDelay', seconds); }
  setNoProgressTimeout(seconds: number): Promise<void> { return this.call('setNoProgressTimeout', seconds); }
  setMaxBytesPerSecond(bytesPerSecond: number): Promise<void> { return this.call('setMaxBytesPerSecond', bytesPerSecond); }
  setHttpHeaders(headers: Record<string, string>): Promise<void> { return this.call('setHttpHeaders', headers); }
  setAutoComplete(on: boolean): Promise<void> { return this.call('setAutoComplete', on); }
  setRetryDelays(seconds: readonly number[]): Promise<void> { return this.call('setRetryDelays', seconds); }
  setRemoteUrl(fileIndex: number, url: string): Promise<void> { return this.call('setRemoteUrl', fileIndex, url); }
  replaceRemotePrefix(oldPrefix: string, newPrefix: string): Promise<void> { return this.call('replaceRemotePrefix', oldPrefix, newPrefix); }

  private call<T>(method: RemoteJobMethod, ...args: unknown[]): Promise<T> {
    return this.engine.callJob<T>(this.id, method, args);
  }
}

export class RemoteEngine extends JobEventSource<RemoteJob> implements JobService {
  private readonly jobs = new Map<string, RemoteJob>();
  private closed = false;
  problems: string[] = [];

  private readonly _onDidDisconnect = new Emitter<void>();
  /** The owner went away (closed or crashed): time to take over or reconnect. */
  readonly onDidDisconnect = this._onDidDisconnect.event;

  private constructor(
    private readonly conn: MessageConnection,
    private readonly socket: net.Socket,
  ) {
    super();
  }

  static async connect(socketPath: string, timeoutMs = 5_000): Promise<RemoteEngine> {
    if ((await checkSocketFile(socketPath)) !== 'ours') {
      throw new Error(`No job engine listens at ${socketPath}.`);
    }
    return new Promise((resolve, reject) => {
      const socket = net.connect(socketPath);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`The job engine at ${socketPath} did not answer within ${timeoutMs} ms.`));
      }, timeoutMs);
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      socket.once('connect', () => {
        const conn = connectionOver(socket);
        const engine = new RemoteEngine(conn, socket);
        engine.listen();
        conn
          .sendRequest<HelloResult>(Requests.hello)
          .then((hello) => {
            clearTimeout(timer);
            if (hello.version !== PROTOCOL_VERSION) {
              throw new Error(`The window that owns the job store speaks protocol ${hello.version}, this one ${PROTOCOL_VERSION}; reload the other window.`);
            }
            engine.problems = hello.problems;
            for (const s of hello.jobs) {
              engine.jobs.set(s.record.id, new RemoteJob(s, engine));
            }
            resolve(engine);
          })
          .catch((e: unknown) => {
            clearTimeout(timer);
            socket.destroy();
            reject(e instanceof Error ? e : new Error(String(e)));
          });
      });
    });
  }

  private listen(): void {
    const c = this.conn;
    c.onNotification(Notifications.changed, (s: JobSnapshot) => this.fireJobEvent('onDidChangeJob', this.upsert(s)));
    c.onNotification(Notifications.added, (s: JobSnapshot) => {
      const job = this.upsert(s);
      this.fireJobEvent('onDidAddJob', job);
      this.fireJobEvent('onDidChangeJob', job);
    });
    c.onNotification(Notifications.removed, (id: string) => {
      const job = this.jobs.get(id);
      if (job) {
        this.jobs.delete(id);
        this.fireJobEvent('onDidRemoveJob', job);
      }
    });
    c.onNotification(Notifications.transferred, (s: JobSnapshot) => this.fireJobEvent('onDidTransferJob', this.upsert(s)));
    c.onNotification(Notifications.failed, (s: JobSnapshot) => this.fireJobEvent('onDidFailJob', this.upsert(s)));
    c.onNotification(Notifications.fileTransferred, (p: { job: JobSnapshot; index: number }) => {
      const job = this.upsert(p.job);
      const file = job.getFiles()[p.index];
      if (file) {
        this.fireJobEvent('onDidTransferFile', { job, file });
      }
    });
    const lost = () => {
      if (!this.closed) {
        this.closed = true;
        this._onDidDisconnect.fire();
      }
    };
    c.onClose(lost);
    this.socket.on('close', lost);
    this.socket.on('error', lost);
    c.listen();
  }

  private upsert(s: JobSnapshot): RemoteJob {
    let job = this.jobs.get(s.record.id);
    if (job) {
      job.update(s);
    } else {
      job = new RemoteJob(s, this);
      this.jobs.set(s.record.id, job);
    }
    return job;
  }

  async callJob<T>(id: string, method: RemoteJobMethod, args: unknown[]): Promise<T> {
    const r = await this.request<{ result: T; job: JobSnapshot }>(Requests.callJob, { id, method, args });
    this.upsert(r.job);
    return (r.result ?? undefined) as T;
  }

  async createJob(o: CreateJobOptions): Promise<RemoteJob> {
    return this.upsert(await this.request<JobSnapshot>(Requests.createJob, o));
  }

  getJob(id: string): RemoteJob {
    const job = this.jobs.get(id);
    if (!job) {
      throw new DownloadError('DO_E_JOB_NOT_FOUND', `There is no job with id '${String(id)}'.`, { context: 'GENERAL_QUEUE_MANAGER' });
    }
    return job;
  }

  enumJobs(o?: { includeFinal?: boolean }): RemoteJob[] {
    const all = [...this.jobs.values()];
    return o?.includeFinal ? all : all.filter((j) => !j.isFinal);
  }

  async removeJob(id: string): Promise<void> {
    await this.request(Requests.removeJob, id);
  }

  private async request<T>(method: string, params: unknown): Promise<T> {
    if (this.closed) {
      throw new DownloadError('E_FAIL', 'The window that runs the job engine has closed; another window is taking over. Try again in a moment.');
    }
    try {
      return await this.conn.sendRequest<T>(method, params);
    } catch (e) {
      if (e instanceof jsonRpc().ResponseError && e.data && typeof (e.data as WireError).code === 'string') {
        const w = e.data as WireError;
        throw new DownloadError(w.code, w.message, { hresult: w.hresult, context: w.context, details: w.details });
      }
      throw new DownloadError('E_FAIL', `The job engine in another window did not answer: ${(e as Error).message}`);
    }
  }

  dispose(): Promise<void> {
    this.closed = true;
    this.conn.dispose();
    this.socket.end();
    this.disposeJobEvents();
    this._onDidDisconnect.dispose();
    return Promise.resolve();
  }
}
