// Upload jobs: the client side of the BITS Upload Protocol (Microsoft's "BITS Upload Protocol" pages and the open
// specification [MC-BUP]). Every packet is an HTTP/1.1 request with the extension method BITS_POST and a
// `BITS-Packet-Type` header; every answer is an Ack:
//   Ping            establishes the connection ([MC-BUP] 2.2.4; Windows sends it for a new session and whenever an
//                   interrupted session resumes, <9>)
//   Create-Session  offers the protocols we speak (BITS-Supported-Protocols) and gets a BITS-Session-Id (2.2.2/2.2.3)
//   Fragment        sends bytes a-b of the file (Content-Range: bytes a-b/total); the Ack's BITS-Received-Content-Range
//                   is the next byte the server wants, also on a 416 when client and server disagree (2.2.6/2.2.7,
//                   3.1.5.1.4, 3.2.5.2.6)
//   Close-Session   the upload is complete: the server puts the file at its destination (2.2.8, 3.2.5.2.7)
//   Cancel-Session  the server deletes the partial upload (2.2.10, 3.2.5.2.8)
// Errors come as HTTP statuses with BITS-Error-Code (MC-BUP calls it BITS-Error) and BITS-Error-Context.
//
// Why node:http rather than undici here: every BITS request MUST carry Content-Length ([MC-BUP] 2.2.1.1; the Windows
// server answers 400 without it, <23>), but undici omits "Content-Length: 0" on a body-less request whose method is not
// POST/PUT/PATCH/... (client-h1 writeH1, `expectsPayload`), which is every BITS packet except Fragment, and it closes
// the connection after each Fragment. node:http sends the header we give it and keeps the connection. Proxy and TLS
// settings follow the same rules as dispatcher.ts (NetworkSettings, then HTTP(S)_PROXY / NO_PROXY).
import * as fs from './io';
import { constants as FS } from './io';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import type { NetworkSettings } from './dispatcher';
import { DownloadError, formatHresult, httpError, invalidArg, networkError, osError, redactUrl, type ErrorContext } from './errors';
import type { FileRecord, UploadState } from './records';
import { parseRetryAfter } from './retryAfter';
import { TransferStopped, type TransferTimeouts } from './transfer';
import { checkRemoteUrl, isInside } from './validation';

/** The one protocol [MC-BUP] 1.7.1 defines ("BITS 1.5 Upload Protocol"). */
export const BITS_UPLOAD_PROTOCOL = '{7df0354d-249b-430f-820d-3d2a9bef4931}';

export const BITS_HRESULTS = {
  BG_E_LOCAL_FILE_CHANGED: 0x8020001d,
  BG_E_SESSION_NOT_FOUND: 0x8020001f,
  BG_E_TOO_LARGE: 0x80200020,
  BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH: 0x80200022,
} as const;

/** Names for the BITS-Error-Code values [MC-BUP] 2.2.1.2 lists, to make messages readable. */
const BITS_ERROR_NAMES: Record<number, string> = {
  0x8020001f: 'BG_E_SESSION_NOT_FOUND',
  0x80200020: 'BG_E_TOO_LARGE',
  0x80070005: 'E_ACCESSDENIED',
  0x80070057: 'E_INVALIDARG',
  0x80070070: 'ERROR_DISK_FULL',
};

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
/** Headers the protocol owns; a job's custom headers cannot replace them. */
const PROTOCOL_HEADERS = /^(bits-.*|content-(range|name|length|encoding)|host|transfer-encoding|connection)$/i;

type Packet = 'Ping' | 'Create-Session' | 'Fragment' | 'Close-Session' | 'Cancel-Session';

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

/**
 * Every packet's exchange must end: an answer within the header time-out plus the body idle time-out (90 s by
 * default), plus 1 ms per byte sent (a Fragment on a slow link). The socket idle time-out alone never fires on a
 * server that trickles its answer.
 */
function requestDeadlineMs(t: TransferTimeouts, bodyBytes: number): number {
  return t.headersMs + t.bodyIdleMs + bodyBytes;
}

// ------------------------------------------------------------------------------------------------ adding the file

/** Checks what addFile got for an upload job and builds its file record (the local file must exist and be readable). */
export async function newUploadFile(f: unknown, allowedRoots?: readonly string[]): Promise<FileRecord> {
  if (!f || typeof f !== 'object') {
    throw invalidArg('An upload needs a remoteUrl (the BITS upload URL) and a localPath (the file to send).');
  }
  const { remoteUrl, localPath, sha256 } = f as { remoteUrl?: unknown; localPath?: unknown; sha256?: unknown };
  checkUploadUrl(remoteUrl);
  if (sha256 !== undefined) {
    throw invalidArg('A sha256 checksum applies to downloads only; an upload sends the local file as it is.');
  }
  const src = await checkUploadSource(localPath, allowedRoots);
  return {
    remoteUrl: remoteUrl as string,
    localPath: src.path,
    // An upload writes nothing locally: there is no temporary file.
    temporaryPath: '',
    bytesTotal: src.size,
    durableBytes: 0,
    transferred: false,
    completed: false,
    restarts: 0,
    upload: {},
  };
}

function checkUploadUrl(url: unknown): void {
  if (typeof url === 'string') {
    let u: URL | undefined;
    try {
      u = new URL(url);
    } catch {
      u = undefined;
    }
    if (u && u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw invalidArg(`'${redactUrl(url)}' uses the ${u.protocol.replace(':', '')} scheme; a BITS upload needs an http or https URL.`);
    }
  }
  checkRemoteUrl(url);
}

/** The local file of an upload as written: an absolute, normalised path without NUL (nothing on disk is looked at). */
export function checkUploadPathSyntax(p: unknown): string {
  if (typeof p !== 'string' || p === '') {
    throw invalidArg('The local file to upload is empty (no path given).');
  }
  if (p.includes('\0')) {
    throw invalidArg(`The local file to upload '${shorten(p.replace(/\0/g, '\\0'))}' contains a NUL character.`);
  }
  if (!path.isAbsolute(p)) {
    throw invalidArg(`The local file to upload '${shorten(p)}' is a relative path; give an absolute path.`);
  }
  if (path.normalize(p) !== p || p.endsWith(path.sep)) {
    throw invalidArg(`The local file to upload '${shorten(p)}' is not normalised (it contains '..', '.', doubled or trailing separators).`);
  }
  return p;
}

/** The local file of an upload: an absolute path to an existing, readable regular file (inside the allowed roots, if any). */
export async function checkUploadSource(given: unknown, allowedRoots?: readonly string[]): Promise<{ path: string; size: number }> {
  const p = checkUploadPathSyntax(given);
  let st;
  try {
    st = await fs.stat(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw osError(e, code === 'ENOENT' || code === 'ENOTDIR' ? `The local file to upload '${p}' does not exist` : `The local file to upload '${p}' cannot be read`);
  }
  if (!st.isFile()) {
    throw invalidArg(`The local path '${p}' is ${st.isDirectory() ? 'a folder' : 'not a regular file'}; an upload sends one regular file.`);
  }
  try {
    await fs.access(p, FS.R_OK);
  } catch (e) {
    throw osError(e, `The local file to upload '${p}' cannot be read`);
  }
  if (allowedRoots && allowedRoots.length > 0) {
    const real = await fs.realpath(p);
    const inside = await Promise.all(allowedRoots.map(async (root) => isInside(real, await fs.realpath(root).catch(() => path.resolve(root)))));
    if (!inside.includes(true)) {
      throw invalidArg(`The local file to upload '${p}' is outside the allowed folders (${allowedRoots.join(', ')}).`);
    }
  }
  return { path: p, size: st.size };
}

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
        ...contentName(f),
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
        ans = await x.send('Close-Session', { 'BITS-Session-Id': sid, ...contentName(f) });
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
    const ans = await x.send('Cancel-Session', { 'BITS-Session-Id': sid, ...contentName(f) });
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

// ------------------------------------------------------------------------------------------------ packets

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

  async send(packet: Packet, extra: Record<string, string>, body: Buffer = EMPTY): Promise<BitsAnswer> {
    const url = this.target;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.o.headers)) {
      if (!PROTOCOL_HEADERS.test(k)) {
        headers[k] = v;
      }
    }
    Object.assign(headers, { 'BITS-Packet-Type': packet }, extra);
    try {
      const ans = await this.conn.post(url, headers, body);
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
    const ans = await this.send('Create-Session', { 'BITS-Supported-Protocols': BITS_UPLOAD_PROTOCOL, ...contentName(f) });
    if (!isSuccess(ans.status)) {
      throw this.failure('Create-Session', ans);
    }
    this.assertAck('Create-Session', ans);
    const sid = header(ans.headers, 'bits-session-id');
    if (!sid || sid.length > 100 || !/^[\x21-\x7e]+$/.test(sid)) {
      throw this.invalid('Create-Session', ans, sid ? 'an unusable BITS-Session-Id' : 'no BITS-Session-Id');
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
    const hostId = header(ans.headers, 'bits-host-id');
    const fallback = Number(header(ans.headers, 'bits-host-id-fallback-timeout'));
    state.hostId = hostId && /^[A-Za-z0-9.:[\]-]+$/.test(hostId) ? hostId : undefined;
    const origin = new URL(f.remoteUrl).hostname;
    if (state.hostId && bare(state.hostId).toLowerCase() !== bare(origin).toLowerCase()) {
      this.o.log(`${f.localPath}: the server names host ${state.hostId} (BITS-Host-Id) for the session; ignored: the file and the job's headers go only to the upload URL's host ${origin}.`);
      state.hostId = undefined;
    }
    state.hostIdFallbackSeconds = state.hostId && Number.isFinite(fallback) && fallback >= 0 ? fallback : undefined;
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
    const v = header(ans.headers, 'bits-received-content-range');
    if (v === undefined || !/^\d{1,16}$/.test(v.trim())) {
      throw this.invalid('Fragment', ans, v === undefined ? 'no BITS-Received-Content-Range' : `a BITS-Received-Content-Range of '${v}'`);
    }
    const next = Number(v.trim());
    if (next > total) {
      throw this.invalid('Fragment', ans, `a BITS-Received-Content-Range of ${next}, past the end of the ${total}-byte file`);
    }
    return next;
  }

  /** A 2xx must be a BITS Ack ([MC-BUP] 2.2.1); otherwise this is not a BITS upload server. */
  assertAck(packet: Packet, ans: BitsAnswer): void {
    if ((header(ans.headers, 'bits-packet-type') ?? '').toLowerCase() !== 'ack') {
      throw this.invalid(packet, ans, 'no "BITS-Packet-Type: Ack" (it is not a BITS upload server, or something in between changed the answer)');
    }
  }

  private invalid(packet: Packet, ans: BitsAnswer, what: string): DownloadError {
    return new DownloadError(`HTTP_${ans.status}`, `The server ${redactUrl(this.f.remoteUrl)} answered the BITS ${packet} packet with ${ans.status} but ${what}.`, {
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

// ------------------------------------------------------------------------------------------------ transport

interface BitsAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
}

const EMPTY = Buffer.alloc(0);

/** A keep-alive connection for the packets of one upload: the protocol allows one outstanding request at a time. */
class BitsConnection {
  private readonly agents = new Map<string, http.Agent>();

  constructor(
    private readonly o: {
      network?: NetworkSettings;
      timeouts: TransferTimeouts;
      signal?: AbortSignal;
      env?: NodeJS.ProcessEnv;
      pace?: (bytes: number) => Promise<void> | undefined;
    },
  ) {}

  private get timeoutMs(): number {
    return this.o.timeouts.headersMs;
  }

  post(url: URL, headers: Record<string, string>, body: Buffer): Promise<BitsAnswer> {
    const secure = url.protocol === 'https:';
    const proxy = proxyFor(url, this.o.network, this.o.env ?? process.env);
    const tlsOptions: tls.ConnectionOptions = {
      rejectUnauthorized: this.o.network?.strictSSL ?? true,
      ...(this.o.network?.ca ? { ca: this.o.network.ca } : {}),
    };
    // [MC-BUP] 2.2.1.1: Content-Length MUST be present on every request, 0 included.
    const all: Record<string, string> = { ...headers, 'Content-Length': String(body.length) };
    let opts: https.RequestOptions;
    if (proxy && !secure) {
      // Plain http through a proxy: the request goes to the proxy with the absolute URL as target.
      opts = {
        protocol: proxy.protocol,
        hostname: bare(proxy.hostname),
        port: proxy.port || (proxy.protocol === 'https:' ? 443 : 80),
        path: url.href,
        headers: { ...all, Host: url.host, ...proxyAuthorization(proxy) },
        agent: this.agent(`proxy ${proxy.href}`, () =>
          proxy.protocol === 'https:' ? new https.Agent({ keepAlive: true, maxSockets: 1, ...tlsOptions }) : new http.Agent({ keepAlive: true, maxSockets: 1 })),
      };
    } else {
      opts = {
        protocol: url.protocol,
        hostname: bare(url.hostname),
        port: url.port || (secure ? 443 : 80),
        path: url.pathname + url.search,
        headers: all,
        agent: this.agent(secure ? `tls ${proxy?.href ?? ''}` : 'plain', () => {
          if (!secure) {
            return new http.Agent({ keepAlive: true, maxSockets: 1 });
          }
          return proxy ? new TunnelAgent(proxy, this.timeoutMs, { keepAlive: true, maxSockets: 1, ...tlsOptions }) : new https.Agent({ keepAlive: true, maxSockets: 1, ...tlsOptions });
        }),
      };
    }
    opts.method = 'BITS_POST';
    if (this.o.signal) {
      opts.signal = this.o.signal;
    }
    const deadline = requestDeadlineMs(this.o.timeouts, body.length);
    return new Promise<BitsAnswer>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (f: () => void): void => {
        clearTimeout(timer);
        timer = undefined;
        f();
      };
      const req = (opts.protocol === 'https:' ? https : http).request(opts, (res) => {
        res.on('data', () => undefined);
        res.once('end', () => settle(() => resolve({ status: res.statusCode ?? 0, headers: res.headers })));
        res.once('error', (e) => settle(() => reject(e)));
        res.once('close', () => {
          if (!res.complete) {
            settle(() => reject(Object.assign(new Error('the connection closed in the middle of the answer'), { code: 'ECONNRESET' })));
          }
        });
      });
      timer = setTimeout(() => {
        // Rejected first: once the answer has begun, destroying the request only closes the response.
        settle(() => reject(Object.assign(new Error(`no complete answer within ${deadline} ms`), { code: 'ETIMEDOUT' })));
        req.destroy();
      }, deadline);
      req.setTimeout(this.timeoutMs, () => {
        req.destroy(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      });
      req.once('error', (e) => settle(() => reject(e)));
      if (this.o.pace && body.length > 0) {
        void writePaced(req, body, this.o.pace);
      } else {
        req.end(body);
      }
    });
  }

  private agent(key: string, make: () => http.Agent): http.Agent {
    let a = this.agents.get(key);
    if (!a) {
      a = make();
      this.agents.set(key, a);
    }
    return a;
  }

  close(): void {
    for (const a of this.agents.values()) {
      a.destroy();
    }
    this.agents.clear();
  }
}

/** Under a speed limit a fragment goes in pieces this large, each paid for before it is written. */
const PACED_PIECE_BYTES = 16 * 1024;

/**
 * Writes `body` piece by piece, each once `pace` lets it go, and waits for the socket to take each piece (so
 * the limit paces what leaves, not what waits in Node's buffers). Ends early, quietly, when the request is
 * destroyed: its error or time-out is what post() reports.
 */
async function writePaced(req: http.ClientRequest, body: Buffer, pace: (bytes: number) => Promise<void> | undefined): Promise<void> {
  let wake: (() => void) | undefined;
  req.once('close', () => wake?.());
  for (let at = 0; at < body.length; at += PACED_PIECE_BYTES) {
    const piece = body.subarray(at, at + PACED_PIECE_BYTES);
    await pace(piece.length);
    if (req.destroyed) {
      return;
    }
    await new Promise<void>((resolve) => {
      wake = resolve;
      req.write(piece, () => resolve());
    });
    if (req.destroyed) {
      return;
    }
  }
  req.end();
}

/** https through an http(s) proxy: a CONNECT tunnel, then TLS to the upload server inside it. */
class TunnelAgent extends https.Agent {
  constructor(
    private readonly proxy: URL,
    private readonly timeoutMs: number,
    opts: https.AgentOptions,
  ) {
    super(opts);
  }

  override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const done = callback ?? (() => undefined);
    const target = `${options.hostname ?? options.host}:${options.port ?? 443}`;
    const req = (this.proxy.protocol === 'https:' ? https : http).request({
      hostname: bare(this.proxy.hostname),
      port: this.proxy.port || (this.proxy.protocol === 'https:' ? 443 : 80),
      method: 'CONNECT',
      path: target,
      headers: { Host: target, ...proxyAuthorization(this.proxy) },
      agent: false,
      timeout: this.timeoutMs,
    });
    req.once('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        // Worded as undici words it, so that networkError() classifies the proxy's answer like any HTTP status.
        done(new Error(`Proxy response (${res.statusCode}) !== 200 when HTTP Tunneling`), undefined as unknown as Duplex);
        return;
      }
      const host = bare(String(options.hostname ?? options.host ?? ''));
      // No SNI for an IP literal (RFC 6066), as https.Agent does.
      const servername = options.servername || (net.isIP(host) ? undefined : host);
      done(null, tls.connect({ socket, ...(servername ? { servername } : {}), rejectUnauthorized: this.options.rejectUnauthorized, ...(this.options.ca ? { ca: this.options.ca } : {}) }));
    });
    req.once('timeout', () => req.destroy(Object.assign(new Error('the proxy did not answer CONNECT in time'), { code: 'ETIMEDOUT' })));
    req.once('error', (e) => done(e, undefined as unknown as Duplex));
    req.end();
    return undefined;
  }
}

/** The proxy for a URL, by the rules of dispatcher.ts: the setting, else HTTP(S)_PROXY, unless NO_PROXY matches. */
export function proxyFor(url: URL, s: NetworkSettings | undefined, env: NodeJS.ProcessEnv): URL | undefined {
  const httpProxy = s?.proxy || env.http_proxy || env.HTTP_PROXY;
  const chosen = url.protocol === 'https:' ? s?.proxy || env.https_proxy || env.HTTPS_PROXY || httpProxy : httpProxy;
  if (!chosen) {
    return undefined;
  }
  const noProxy = s?.noProxy && s.noProxy.length > 0 ? s.noProxy.join(',') : (env.no_proxy ?? env.NO_PROXY ?? '');
  const host = bare(url.hostname).toLowerCase();
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  for (const raw of noProxy.split(/[,\s]+/)) {
    const entry = raw.trim().toLowerCase();
    if (!entry) {
      continue;
    }
    if (entry === '*') {
      return undefined;
    }
    const m = /^(.*?)(?::(\d+))?$/.exec(entry)!;
    const name = bare(m[1]).replace(/^\*?\./, '');
    if (m[2] && m[2] !== port) {
      continue;
    }
    if (host === name || host.endsWith('.' + name)) {
      return undefined;
    }
  }
  try {
    return new URL(chosen.includes('://') ? chosen : `http://${chosen}`);
  } catch {
    return undefined;
  }
}

function proxyAuthorization(proxy: URL): Record<string, string> {
  if (!proxy.username) {
    return {};
  }
  const cred = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return { 'Proxy-Authorization': 'Basic ' + Buffer.from(cred).toString('base64') };
}

// ------------------------------------------------------------------------------------------------ helpers

function isSuccess(status: number): boolean {
  return status >= 200 && status < 300;
}

function header(h: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined ? undefined : s.trim();
}

/** BITS-Error-Code (the Windows pages) or BITS-Error ([MC-BUP] 2.2.1.2): an HRESULT in hex; BITS-Error-Context: 0x5 or 0x7. */
function bitsError(h: http.IncomingHttpHeaders): { code?: number; context?: number } {
  const hex = (v: string | undefined): number | undefined => {
    const m = v === undefined ? null : /^(?:0?x)?([0-9a-f]{1,8})$/i.exec(v);
    return m ? Number.parseInt(m[1], 16) >>> 0 : undefined;
  };
  return { code: hex(header(h, 'bits-error-code') ?? header(h, 'bits-error')), context: hex(header(h, 'bits-error-context')) };
}

function describeBitsError(b: { code?: number; context?: number }): string {
  if (b.code === undefined) {
    return '';
  }
  const name = BITS_ERROR_NAMES[b.code];
  const ctx = b.context === 7 ? ', in the server application' : b.context === 5 ? ', on the server' : '';
  return ` (BITS-Error-Code ${formatHresult(b.code)}${name ? ' ' + name : ''}${ctx})`;
}

/** Content-Name: the local file's name without its path ([MC-BUP] 2.2.1.1; Windows sends it with every fragment, <11>). */
function contentName(f: FileRecord): Record<string, string> {
  const name = path.basename(f.localPath);
  // Header-safe and free of the characters Windows refuses (\ / : * ? " < > |, <3>): percent-encode the rest.
  const safe = [...name].map((c) => (/[A-Za-z0-9._ ~!$&'()+,;=@^`{}[\]#%-]/.test(c) ? c : [...Buffer.from(c, 'utf8')].map((b) => '%' + b.toString(16).toUpperCase().padStart(2, '0')).join(''))).join('');
  return safe.length > 0 && safe.length <= 260 ? { 'Content-Name': safe } : {};
}

function clampFragment(n: number | undefined): number {
  if (n === undefined || !Number.isFinite(n)) {
    return DEFAULT_FRAGMENT_BYTES;
  }
  return Math.min(MAX_FRAGMENT_BYTES, Math.max(1024, Math.floor(n)));
}

interface SourceIdentity {
  size: number;
  mtimeMs: number;
  ino: number;
}

function identity(st: { size: number; mtimeMs: number; ino: number }): SourceIdentity {
  return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
}

async function statSource(f: FileRecord): Promise<SourceIdentity> {
  try {
    return identity(await fs.stat(f.localPath));
  } catch (e) {
    throw sourceError(f, e);
  }
}

/** The local file went away or became unreadable: a change if the upload had started, else the OS error. */
function sourceError(f: FileRecord, e: unknown): DownloadError {
  const code = (e as NodeJS.ErrnoException).code;
  if (f.upload?.source && (code === 'ENOENT' || code === 'ENOTDIR')) {
    return localFileChanged(f, 'it was deleted or moved');
  }
  return osError(e, `Cannot read the local file to upload '${f.localPath}'`);
}

function assertUnchanged(f: FileRecord, now: SourceIdentity): void {
  const was: UploadState['source'] = f.upload?.source;
  if (!was) {
    return;
  }
  if (now.size !== was.size) {
    throw localFileChanged(f, `its size went from ${was.size} to ${now.size} bytes`);
  }
  if (now.mtimeMs !== was.mtimeMs) {
    throw localFileChanged(f, `it was modified at ${new Date(now.mtimeMs).toISOString()}`);
  }
  if (now.ino !== was.ino) {
    throw localFileChanged(f, 'it was replaced by another file');
  }
}

function localFileChanged(f: FileRecord, why: string): DownloadError {
  return new DownloadError('BG_E_LOCAL_FILE_CHANGED', `The local file '${f.localPath}' changed after its upload started (${why}); the upload cannot continue. Cancel the job and upload the file again.`, {
    hresult: BITS_HRESULTS.BG_E_LOCAL_FILE_CHANGED,
    context: 'LOCAL_FILE',
  });
}

async function readAt(fh: fs.FileHandle, f: FileRecord, start: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(buf, got, length - got, start + got));
    } catch (e) {
      throw osError(e, `Cannot read the local file to upload '${f.localPath}'`);
    }
    if (n === 0) {
      throw localFileChanged(f, `it ends before byte ${start + length}`);
    }
    got += n;
  }
  return buf;
}

/** IPv6 literals come bracketed from URL.hostname; node:http wants them bare. */
function bare(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
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

function shorten(s: string): string {
  return s.length > 120 ? s.slice(0, 117) + '…' : s;
}
