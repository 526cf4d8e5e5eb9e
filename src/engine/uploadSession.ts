// An upload job's BITS session, the client side of the BITS Upload Protocol (bitsPackets.ts describes the packets):
// Ping and Create-Session, then the file in Fragments that resume where the server's Acks say, a new session when the
// server forgot the old one, smaller fragments after a 413; Close-Session on complete(), Cancel-Session on cancel().
// The packets travel over bitsConnection.ts; the local file is watched by uploadSource.ts.
import * as fs from './io';
import * as path from 'node:path';
import { BitsConnection } from './bitsConnection';
import { BITS_HRESULTS, BITS_UPLOAD_PROTOCOL, bitsError, contentName, describeBitsError, header, hostIdOf, isAck, isSuccess, packetHeaders, receivedRangeOf, sessionIdOf, type BadHeader, type BitsAnswer, type Packet } from './bitsPackets';
import type { NetworkSettings } from './dispatcher';
import { DownloadError, httpError, networkError, redactUrl, type ErrorContext } from './errors';
import type { FileRecord } from './records';
import { parseRetryAfter } from './retryAfter';
import { TransferStopped, type TransferTimeouts } from './transfer';
import { assertUnchanged, identity, readAt, sourceError, statSource } from './uploadSource';

export const DEFAULT_FRAGMENT_BYTES = 1024 * 1024;
/** Windows never shrinks a fragment below 5 KB after a 413 ([MC-BUP] <10>). */
const MIN_FRAGMENT_BYTES = 5 * 1024;
const MAX_FRAGMENT_BYTES = 64 * 1024 * 1024;
/** Answers in a row that do not move the upload forward before we stop trusting the server. */
const MAX_IDLE_ANSWERS = 4;
/** New sessions one run may create after the server forgot the previous one. */
const MAX_SESSION_RESTARTS = 2;
/** Cancel-Session is best effort: never hold cancel() longer than this. */
const CANCEL_BOUND_MS = 10_000;

export interface UploadOptions {
  file: FileRecord;
  headers: Record<string, string>;
  network?: NetworkSettings;
  signal: AbortSignal;
  timeouts: TransferTimeouts;
  /** Bytes per Fragment (default 1 MiB). */
  fragmentBytes?: number;
  maxRetryAfterSeconds: number;
  now: () => number;
  log: (message: string) => void;
  /** Called right before the first fragment goes (the job becomes TRANSFERRING). */
  onConnected: () => void;
  /** Called with the bytes the server acknowledged. */
  onProgress: (bytes: number) => void;
  /** Called after the file's upload state changed: the caller persists the store. */
  onCheckpoint: () => void;
  /** Speed limits (rateLimiter.ts): asked before each piece of a fragment is written; the piece goes when it resolves. */
  pace?: (bytes: number) => Promise<void> | undefined;
}

/** What Close-Session and Cancel-Session need; `signal` lets cancel() interrupt a Close-Session in flight. */
export type SessionCallOptions = Pick<UploadOptions, 'file' | 'headers' | 'network' | 'timeouts' | 'maxRetryAfterSeconds' | 'now' | 'log'> & { signal?: AbortSignal };

// ------------------------------------------------------------------------------------------------ the upload

/**
 * Sends the file's bytes the server does not have yet, in fragments, and returns once the server acknowledged the last
 * byte (the file is then `transferred`; Close-Session is complete()'s job). Resumes the session in `file.upload`: the
 * server's BITS-Received-Content-Range decides where to continue, never our own count alone.
 */
export async function uploadFile(o: UploadOptions): Promise<void> {
  const f = o.file;
  const state = (f.upload ??= {});
  // The local file may not change once the upload started (BG_E_LOCAL_FILE_CHANGED); its identity is taken then.
  const first = await statSource(f);
  if (!state.source) {
    state.source = identity(first);
    f.bytesTotal = first.size;
    o.onCheckpoint();
  } else {
    assertUnchanged(f, first);
  }
  const total = state.source.size;
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(f.localPath, 'r');
  } catch (e) {
    throw sourceError(f, e);
  }
  const conn = new BitsConnection({ network: o.network, timeouts: o.timeouts, signal: o.signal, pace: o.pace });
  try {
    assertUnchanged(f, await fh.stat());
    const x = new Exchange(f, conn, o);
    await x.ping();
    const resumed = state.sessionId !== undefined;
    const startSession = async (): Promise<void> => {
      await x.createSession();
      o.onProgress(0);
      o.onCheckpoint();
      if (state.hostId) {
        // [MC-BUP] 3.1.5.2.2: check that the BITS-Host-Id server can be reached.
        await x.ping();
      }
    };
    if (resumed) {
      o.log(`${f.localPath}: resuming BITS session ${state.sessionId} (${f.durableBytes} of ${total} bytes acknowledged so far).`);
    } else {
      await startSession();
    }
    let offset = Math.min(f.durableBytes, total);
    // A resumed session first sends one byte: the Ack says where the server really is (it may hold bytes whose Ack
    // we never saw, or fewer than we think), so almost nothing is sent twice.
    let probe = resumed;
    let fragment = clampFragment(o.fragmentBytes);
    let idle = 0;
    let restarts = 0;
    o.onConnected();
    while (offset < total) {
      if (o.signal.aborted) {
        throw new TransferStopped();
      }
      assertUnchanged(f, await statSource(f));
      const start = offset;
      const length = probe ? 1 : Math.min(fragment, total - start);
      const body = await readAt(fh, f, start, length);
      const ans = await x.send('Fragment', {
        'BITS-Session-Id': state.sessionId!,
        ...contentName(f.localPath),
        'Content-Range': `bytes ${start}-${start + length - 1}/${total}`,
      }, body);
      const bits = bitsError(ans.headers);
      if (bits.code === BITS_HRESULTS.BG_E_SESSION_NOT_FOUND) {
        // [MC-BUP] 3.1.5.2.1: the server forgot the session; start the upload again in a new one.
        if (++restarts > MAX_SESSION_RESTARTS) {
          throw new DownloadError('BG_E_SESSION_NOT_FOUND', `The upload server ${redactUrl(f.remoteUrl)} keeps forgetting the upload session (BG_E_SESSION_NOT_FOUND).`, {
            hresult: BITS_HRESULTS.BG_E_SESSION_NOT_FOUND,
            transient: true,
            context: 'REMOTE_FILE',
          });
        }
        o.log(`${f.localPath}: the server no longer knows session ${state.sessionId}; starting the upload again in a new session.`);
        await startSession();
        offset = 0;
        probe = false;
        continue;
      }
      if (ans.status === 413 && !probe && fragment > MIN_FRAGMENT_BYTES) {
        // [MC-BUP] 3.1.5.2.4: the fragment is too large for the server; send smaller ones.
        fragment = Math.max(MIN_FRAGMENT_BYTES, Math.floor(length / 2));
        o.log(`${f.localPath}: the server refused a ${length}-byte fragment (413); sending ${fragment}-byte fragments.`);
        continue;
      }
      if (!(isSuccess(ans.status) || ans.status === 416)) {
        throw x.failure('Fragment', ans);
      }
      const next = x.receivedRange(ans, total);
      if (ans.status === 416) {
        o.log(`${f.localPath}: the server expects byte ${next}, not ${start} (416); continuing from there.`);
      }
      if (next > offset) {
        idle = 0;
      } else if (++idle > MAX_IDLE_ANSWERS) {
        throw new DownloadError('HTTP_' + ans.status, `The upload server ${redactUrl(f.remoteUrl)} keeps acknowledging byte ${next} without taking more ([MC-BUP] Fragment Acks make no progress).`, {
          hresult: 0x80190000 + ans.status,
          transient: true,
          context: 'REMOTE_FILE',
        });
      }
      offset = next;
      probe = false;
      f.durableBytes = offset;
      o.onProgress(offset);
      o.onCheckpoint();
    }
    // A change during the last fragment still counts: the server must not keep a mix of two versions.
    assertUnchanged(f, await statSource(f));
    f.bytesTotal = total;
    f.durableBytes = total;
    f.transferred = true;
    o.onProgress(total);
    o.onCheckpoint();
    o.log(`${f.localPath}: the server acknowledged all ${total} bytes (session ${state.sessionId}); Complete closes the session.`);
  } finally {
    conn.close();
    await fh.close().catch(() => undefined);
  }
}

/**
 * complete(): Close-Session asks the server to put the uploaded file at its destination ([MC-BUP] 2.2.8, 3.2.5.2.7).
 * Retried on 5xx and network errors (the Ack for Close-Session page); a 4xx is returned as is. If the server no longer
 * knows the session, the upload state is reset so that it runs again, and BG_E_SESSION_NOT_FOUND is thrown.
 */
export async function closeUploadSession(o: SessionCallOptions): Promise<void> {
  const f = o.file;
  const sid = f.upload?.sessionId;
  if (!sid) {
    // Nothing to close: a session-less TRANSFERRED upload would be a bug; say so rather than pretend.
    resetUpload(f);
    throw new DownloadError('BG_E_SESSION_NOT_FOUND', `There is no upload session to close for ${f.localPath}; it will be uploaded again.`, {
      hresult: BITS_HRESULTS.BG_E_SESSION_NOT_FOUND,
      context: 'REMOTE_FILE',
    });
  }
  let ambiguous = false;
  let last: DownloadError | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (attempt > 0) {
      await sleep(250 * 4 ** (attempt - 1));
    }
    if (o.signal?.aborted) {
      throw closeInterrupted(f);
    }
    const conn = new BitsConnection({ network: o.network, timeouts: o.timeouts, signal: o.signal });
    try {
      const x = new Exchange(f, conn, o);
      let ans: BitsAnswer;
      try {
        ans = await x.send('Close-Session', { 'BITS-Session-Id': sid, ...contentName(f.localPath) });
      } catch (e) {
        if (o.signal?.aborted) {
          throw closeInterrupted(f);
        }
        last = e instanceof DownloadError ? e : networkError(e, f.remoteUrl);
        // The request may have reached the server and only its Ack was lost.
        ambiguous = true;
        continue;
      }
      if (bitsError(ans.headers).code === BITS_HRESULTS.BG_E_SESSION_NOT_FOUND) {
        if (ambiguous) {
          o.log(`${f.localPath}: the server no longer knows session ${sid} after a Close-Session whose answer was lost; taking it as closed.`);
          return;
        }
        o.log(`${f.localPath}: the server no longer knows session ${sid}; the file will be uploaded again.`);
        resetUpload(f);
        throw new DownloadError('BG_E_SESSION_NOT_FOUND', `The upload server ${redactUrl(f.remoteUrl)} no longer knows the upload session of ${path.basename(f.localPath)} (BG_E_SESSION_NOT_FOUND); the file will be uploaded again, then Complete can close it.`, {
          hresult: BITS_HRESULTS.BG_E_SESSION_NOT_FOUND,
          context: 'REMOTE_FILE',
        });
      }
      if (isSuccess(ans.status)) {
        x.assertAck('Close-Session', ans);
        o.log(`${f.localPath}: session ${sid} closed; the server put the file in place.`);
        f.upload!.sessionId = undefined;
        return;
      }
      last = x.failure('Close-Session', ans);
      if (ans.status < 500) {
        throw last;
      }
    } finally {
      conn.close();
    }
  }
  throw last!;
}

/** cancel(): Cancel-Session, best effort and bounded; the server deletes the partial upload ([MC-BUP] 2.2.10, 3.2.5.2.8). */
export async function cancelUploadSession(o: SessionCallOptions): Promise<void> {
  const f = o.file;
  const sid = f.upload?.sessionId;
  if (!sid || f.completed) {
    return;
  }
  const bound = Math.min(o.timeouts.headersMs, CANCEL_BOUND_MS);
  const conn = new BitsConnection({ network: o.network, timeouts: { ...o.timeouts, headersMs: bound, bodyIdleMs: 0 }, signal: AbortSignal.timeout(bound) });
  try {
    const x = new Exchange(f, conn, o);
    const ans = await x.send('Cancel-Session', { 'BITS-Session-Id': sid, ...contentName(f.localPath) });
    const bits = bitsError(ans.headers);
    if (isSuccess(ans.status) || bits.code === BITS_HRESULTS.BG_E_SESSION_NOT_FOUND) {
      o.log(`${f.localPath}: session ${sid} cancelled; the server dropped the partial upload.`);
    } else {
      o.log(`${f.localPath}: Cancel-Session was refused (${x.failure('Cancel-Session', ans).message}); the server keeps the partial upload until its session times out.`);
    }
  } catch (e) {
    o.log(`${f.localPath}: Cancel-Session could not reach the server (${(e as Error).message}); it keeps the partial upload until its session times out.`);
  } finally {
    conn.close();
    f.upload!.sessionId = undefined;
    f.upload!.hostId = undefined;
  }
}

/** cancel() stopped a Close-Session in flight: the server may or may not have put the file in place. */
function closeInterrupted(f: FileRecord): DownloadError {
  return new DownloadError('E_ABORT', `Close-Session for ${path.basename(f.localPath)} was interrupted by a cancel.`, { hresult: 0x80004004, context: 'REMOTE_FILE' });
}

/** Forgets the session: the next run uploads the file again from byte 0 (the local file must still be the same). */
export function resetUpload(f: FileRecord): void {
  const state = (f.upload ??= {});
  state.sessionId = undefined;
  state.hostId = undefined;
  state.hostIdFallbackSeconds = undefined;
  state.hostIdFailingSince = undefined;
  f.durableBytes = 0;
  f.transferred = false;
  f.restarts++;
}

// ------------------------------------------------------------------------------------------------ the exchange

/** The packets of one upload, sent to the origin or to the server's BITS-Host-Id. */
class Exchange {
  constructor(
    private readonly f: FileRecord,
    private readonly conn: BitsConnection,
    private readonly o: SessionCallOptions & { signal?: AbortSignal },
  ) {}

  /**
   * The upload URL. [MC-BUP] 2.2.3.2 has the client replace its host with the server's BITS-Host-Id; we do not
   * follow one that names another host (createSession drops it): the server's say would send the file and the job's
   * headers (credentials) to any machine. A stored one is ignored as well (the job store is not trusted either).
   */
  private get target(): URL {
    return new URL(this.f.remoteUrl);
  }

  async send(packet: Packet, extra: Record<string, string>, body: Buffer = Buffer.alloc(0)): Promise<BitsAnswer> {
    const url = this.target;
    try {
      const ans = await this.conn.post(url, packetHeaders(this.o.headers, packet, extra), body);
      if (this.f.upload?.hostIdFailingSince !== undefined) {
        this.f.upload.hostIdFailingSince = undefined;
      }
      return ans;
    } catch (e) {
      if (this.o.signal?.aborted) {
        throw new TransferStopped();
      }
      this.hostIdFailed();
      throw networkError(e, url.href);
    }
  }

  /** [MC-BUP] 1.3.4.2: no progress with the BITS-Host-Id server for its fallback time-out: go back to the origin. */
  private hostIdFailed(): void {
    const s = this.f.upload;
    if (!s?.hostId) {
      return;
    }
    const now = this.o.now();
    s.hostIdFailingSince ??= now;
    if (s.hostIdFallbackSeconds !== undefined && now - s.hostIdFailingSince >= s.hostIdFallbackSeconds * 1000) {
      this.o.log(`${this.f.localPath}: no answer from ${s.hostId} for its fallback time-out; going back to ${new URL(this.f.remoteUrl).host}.`);
      s.hostId = undefined;
      s.hostIdFailingSince = undefined;
    }
  }

  async ping(): Promise<void> {
    const ans = await this.send('Ping', {});
    if (!isSuccess(ans.status)) {
      throw this.failure('Ping', ans);
    }
    this.assertAck('Ping', ans);
  }

  /** Create-Session ([MC-BUP] 2.2.2, 3.1.5.1.2): a new session whose bytes start at 0. */
  async createSession(): Promise<void> {
    const f = this.f;
    const ans = await this.send('Create-Session', { 'BITS-Supported-Protocols': BITS_UPLOAD_PROTOCOL, ...contentName(f.localPath) });
    if (!isSuccess(ans.status)) {
      throw this.failure('Create-Session', ans);
    }
    this.assertAck('Create-Session', ans);
    const sid = sessionIdOf(ans.headers);
    if (typeof sid !== 'string') {
      throw this.invalid('Create-Session', ans, sid);
    }
    const protocol = header(ans.headers, 'bits-protocol');
    if (protocol && protocol.toLowerCase() !== BITS_UPLOAD_PROTOCOL) {
      throw new DownloadError('BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH', `The upload server ${redactUrl(f.remoteUrl)} chose protocol ${protocol}, which is not the one offered (${BITS_UPLOAD_PROTOCOL}, BITS 1.5 Upload Protocol).`, {
        hresult: BITS_HRESULTS.BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH,
        context: 'REMOTE_FILE',
      });
    }
    const state = (f.upload ??= {});
    if (state.sessionId !== undefined) {
      f.restarts++;
    }
    state.sessionId = sid;
    const origin = new URL(f.remoteUrl).hostname;
    const host = hostIdOf(ans.headers, origin);
    if (host.ignored) {
      this.o.log(`${f.localPath}: the server names host ${host.ignored} (BITS-Host-Id) for the session; ignored: the file and the job's headers go only to the upload URL's host ${origin}.`);
    }
    state.hostId = host.hostId;
    state.hostIdFallbackSeconds = host.fallbackSeconds;
    state.hostIdFailingSince = undefined;
    f.durableBytes = 0;
    f.transferred = false;
    this.o.log(`${f.localPath}: BITS session ${sid} created at ${redactUrl(f.remoteUrl)}${state.hostId ? ` (continuing on host ${state.hostId})` : ''}.`);
  }

  /** BITS-Received-Content-Range of a Fragment Ack: the next byte the server wants ([MC-BUP] 2.2.7.2). */
  receivedRange(ans: BitsAnswer, total: number): number {
    if (isSuccess(ans.status)) {
      this.assertAck('Fragment', ans);
    }
    const next = receivedRangeOf(ans.headers, total);
    if (typeof next !== 'number') {
      throw this.invalid('Fragment', ans, next);
    }
    return next;
  }

  /** A 2xx must be a BITS Ack ([MC-BUP] 2.2.1); otherwise this is not a BITS upload server. */
  assertAck(packet: Packet, ans: BitsAnswer): void {
    if (!isAck(ans.headers)) {
      throw this.invalid(packet, ans, { problem: 'no "BITS-Packet-Type: Ack" (it is not a BITS upload server, or something in between changed the answer)' });
    }
  }

  private invalid(packet: Packet, ans: BitsAnswer, bad: BadHeader): DownloadError {
    return new DownloadError(`HTTP_${ans.status}`, `The server ${redactUrl(this.f.remoteUrl)} answered the BITS ${packet} packet with ${ans.status} but ${bad.problem}.`, {
      hresult: (0x80190000 + ans.status) >>> 0,
      context: 'REMOTE_FILE',
    });
  }

  /** An HTTP error answer, classified as for downloads, with the server's BITS-Error-Code in the message. */
  failure(packet: Packet, ans: BitsAnswer): DownloadError {
    const f = this.f;
    const status = ans.status;
    const bits = bitsError(ans.headers);
    if (status >= 300 && status < 400) {
      const location = header(ans.headers, 'location');
      return new DownloadError(`HTTP_${status}`, `The upload server ${redactUrl(f.remoteUrl)} redirected the BITS ${packet} packet (${status}${location ? ' to ' + redactUrl(safeUrl(location, f.remoteUrl)) : ''}); redirects are not followed for uploads (a BITS session lives on one server), so use the final upload URL.`, {
        hresult: (0x80190000 + status) >>> 0,
        context: 'REMOTE_FILE',
      });
    }
    if (bits.code === BITS_HRESULTS.BG_E_TOO_LARGE) {
      return new DownloadError('BG_E_TOO_LARGE', `The upload server ${redactUrl(f.remoteUrl)} refuses ${path.basename(f.localPath)}: it is larger than the server's maximum upload size (HTTP ${status}, BG_E_TOO_LARGE).`, {
        hresult: BITS_HRESULTS.BG_E_TOO_LARGE,
        context: 'REMOTE_FILE',
      });
    }
    const e = httpError(status, f.remoteUrl, parseRetryAfter(ans.headers['retry-after'], this.o.now(), this.o.maxRetryAfterSeconds));
    const context: ErrorContext = bits.context === 7 ? 'REMOTE_APPLICATION' : 'REMOTE_FILE';
    return new DownloadError(e.code, `${e.message.replace(/\.$/, '')} to the BITS ${packet} packet${describeBitsError(bits)}.`, {
      hresult: e.hresult,
      transient: e.transient,
      context,
      retryAfterSeconds: e.retryAfterSeconds,
    });
  }
}

// ------------------------------------------------------------------------------------------------ helpers

function clampFragment(n: number | undefined): number {
  if (n === undefined || !Number.isFinite(n)) {
    return DEFAULT_FRAGMENT_BYTES;
  }
  return Math.min(MAX_FRAGMENT_BYTES, Math.max(1024, Math.floor(n)));
}

function safeUrl(location: string, base: string): string {
  try {
    return new URL(location, base).href;
  } catch {
    return location;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

