// The owner's side: serves its DownloadEngine to the other windows over the store's socket.
import type * as net from 'node:net';
import type { MessageConnection } from 'vscode-jsonrpc/node';
import { connectionOver, jsonRpc } from './jsonRpc';
import type { DownloadEngine } from '../engine';
import { DownloadError, invalidArg } from '../errors';
import type { JobImpl } from '../job';
import type { CreateJobOptions, Disposable } from '../types';
import { Notifications, PROTOCOL_VERSION, REMOTE_JOB_METHODS, Requests, type HelloResult, type JobSnapshot, type RemoteJobMethod, type WireError } from './protocol';

/**
 * The largest request a window may send: an addFileSet of about a hundred thousand files. Beyond it the
 * connection is closed rather than the message buffered (a 2 GB Content-Length would be held in memory).
 */
const MAX_REQUEST_BYTES = 32 * 1024 * 1024;

export function snapshotOf(job: JobImpl): JobSnapshot {
  return { record: job.record, files: job.getFiles(), speed: job.getSpeed(), speedLimited: job.speedLimited };
}

export class EngineServer {
  /** Each client connection and how to close it (unsubscribe, dispose). */
  private readonly connections = new Map<MessageConnection, () => void>();

  constructor(
    private readonly engine: DownloadEngine,
    private readonly server: net.Server,
    private readonly log: (message: string) => void = () => undefined,
  ) {
    server.on('connection', (socket) => this.serve(socket));
  }

  get clientCount(): number {
    return this.connections.size;
  }

  private serve(socket: net.Socket): void {
    const conn = connectionOver(socket, {
      maxMessageBytes: MAX_REQUEST_BYTES,
      onRefused: (why) => this.log(`Closed a connection to the job engine that sent ${why}.`),
    });
    const e = this.engine;
    // A client that went away must not disturb the engine: notifications to it are dropped.
    const notify = (method: string, params: unknown): void => {
      try {
        conn.sendNotification(method, params).catch(() => undefined);
      } catch {
        // connection already closed
      }
    };
    const subs: Disposable[] = [
      e.onDidChangeJob((j) => notify(Notifications.changed, snapshotOf(j))),
      e.onDidAddJob((j) => notify(Notifications.added, snapshotOf(j))),
      e.onDidRemoveJob((j) => notify(Notifications.removed, j.id)),
      e.onDidTransferJob((j) => notify(Notifications.transferred, snapshotOf(j))),
      e.onDidFailJob((j) => notify(Notifications.failed, snapshotOf(j))),
      e.onDidTransferFile(({ job, file }) =>
        notify(Notifications.fileTransferred, { job: snapshotOf(job), index: job.getFiles().findIndex((f) => f.localPath === file.localPath) }),
      ),
    ];
    conn.onRequest(Requests.hello, (): HelloResult => ({
      version: PROTOCOL_VERSION,
      problems: [...e.problems],
      jobs: e.enumJobs({ includeFinal: true }).map(snapshotOf),
    }));
    conn.onRequest(Requests.createJob, (o: CreateJobOptions) => guard(async () => snapshotOf(await e.createJob(o))));
    conn.onRequest(Requests.removeJob, (id: string) => guard(() => e.removeJob(id)));
    conn.onRequest(Requests.callJob, (p: { id: string; method: RemoteJobMethod; args: unknown[] }) =>
      guard(async () => {
        if (!(REMOTE_JOB_METHODS as readonly string[]).includes(p.method)) {
          throw invalidArg(`'${String(p.method)}' cannot be called remotely.`);
        }
        const job = e.getJob(p.id);
        // Called on the job itself (not taken off it), so `this` stays the job.
        const methods = job as unknown as Record<RemoteJobMethod, (...a: unknown[]) => Promise<unknown>>;
        const result = await methods[p.method](...(Array.isArray(p.args) ? p.args : []));
        return { result: result ?? null, job: snapshotOf(job) };
      }),
    );
    const close = () => {
      if (!this.connections.delete(conn)) {
        return;
      }
      subs.forEach((d) => d.dispose());
      conn.dispose();
      socket.destroy();
    };
    this.connections.set(conn, close);
    conn.onClose(close);
    conn.onError(() => close());
    socket.on('close', close);
    socket.on('error', () => close());
    conn.listen();
    this.log(`Another window connected to the job engine (${this.connections.size} connected).`);
  }

  /** Closes every client connection (they take over or reconnect). */
  dispose(): void {
    for (const close of [...this.connections.values()]) {
      close();
    }
    this.server.close();
  }
}

/** Runs a handler and turns a DownloadError into a JSON-RPC error that keeps code and HRESULT. */
async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const e = err instanceof DownloadError ? err : new DownloadError((err as NodeJS.ErrnoException)?.code ?? 'E_FAIL', (err as Error)?.message ?? String(err));
    const data: WireError = { code: e.code, hresult: e.hresult, message: e.message, context: e.context, details: e.details ? { ...e.details } : undefined };
    throw new (jsonRpc().ResponseError)(1, e.message, data);
  }
}
