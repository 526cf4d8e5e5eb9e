// Downloads one file into its temporary file: resume behind If-Range, follow redirects ourselves,
// hash while writing, checkpoint durably, and turn every failure into a DownloadError.
import type { Hash } from 'node:crypto';
import * as fs from './io';
import { constants as FS } from './io';
import type { Dispatcher } from 'undici';
import { bootId } from './io';
import { connectionCut, DownloadError, HRESULTS, httpError, networkError, osError, redactUrl } from './errors';
import { digestMatches, hashPrefix, newHash, validationFailed } from './integrity';
import type { FileRecord } from './records';
import { parseRetryAfter } from './retryAfter';
import { noteRestart } from './restarts';
import { assertBodyWithinBounds, assertRoomFor } from './diskRoom';
import { KeptBytesMismatch, OVERLAP_BYTES, pastOverlap, readKept } from './keptBytes';
import { describeVerdict, judgeResumeResponse, parseContentRange, strongEtag } from './resumeJudge';
import { PacedRanges, PieceRefused } from './pacedRanges';

export interface TransferTimeouts {
  /** Longest wait for the response headers. */
  headersMs: number;
  /** Longest gap between two body chunks. */
  bodyIdleMs: number;
  /** Low-speed rule: fewer than this many bytes per second, averaged over the window, is a stall. */
  lowSpeedBytesPerSecond: number;
  lowSpeedWindowMs: number;
}

export interface TransferOptions {
  file: FileRecord;
  headers: Record<string, string>;
  dispatcher: Dispatcher;
  signal: AbortSignal;
  allowInsecureRedirects: boolean;
  maxRedirects: number;
  timeouts: TransferTimeouts;
  /** Durable checkpoints every this many ms or bytes, whichever comes first. */
  checkpointIntervalMs: number;
  checkpointBytes: number;
  maxRetryAfterSeconds: number;
  now: () => number;
  log: (message: string) => void;
  /** No file grows past this many bytes (ERROR_FILE_TOO_LARGE); undefined: no limit but the disk's free space. */
  maxFileSizeBytes?: number;
  /** Called with the bytes now in the temporary file (live, not yet durable). Must be cheap. */
  onProgress: (bytes: number) => void;
  /** Called when the file holds more bytes than it ever did (restarts.ts): progress, for the no-progress timeout. */
  onNewBytes?: () => void;
  /** Called once the server answered and body bytes are about to flow. */
  onConnected: () => void;
  /** Called after file.durableBytes (and validators) changed: the caller persists the store. */
  onCheckpoint: () => void;
  /**
   * Asked after a 200 to a fresh request, once size and validators are recorded: true stops here (the body
   * is left unread: transferFile resolves `{ split: body }`) so the caller can fetch the file in segments,
   * reading that body as the first segment.
   */
  splitLargeFile?: (headers: Dispatcher.ResponseData['headers']) => boolean;
  /** Writes the journal durably now: called after forgetting durable bytes and before destroying them. */
  persistNow?: () => Promise<void>;
  /** Speed limits (rateLimiter.ts): told of each chunk read; the body is read on when it resolves. */
  pace?: (bytes: number) => Promise<void> | undefined;
  /**
   * How many bytes a response body buffers ahead of the reader (undici's default: 64 KiB). Under a speed limit,
   * less: what sits in buffers was already sent, so the server's rate follows the limit in smaller steps.
   */
  bodyHighWaterMark?: number;
  /**
   * Under a low speed limit, the size of the ranges to ask for one at a time (pacedRanges.ts); undefined: stream
   * the body. Read before each request, as the limit may change.
   */
  rangePieceBytes?: (roundTripMs?: number) => number | undefined;
}

/** Thrown (as the cause is the engine's own abort) when the engine stopped the transfer on purpose. */
export class TransferStopped extends Error {
  constructor() {
    super('transfer stopped');
  }
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Dropped on a change of origin even when the job did not set them itself. */
const CROSS_ORIGIN_DROPPED = new Set(['authorization', 'cookie', 'proxy-authorization', 'referer']);
const WRITE_BATCH_BYTES = 512 * 1024;
/** A file finished this soon after it was opened gets the one-call check of its path (see finish()). */
const QUICK_FILE_MS = 1_000;

export async function transferFile(o: TransferOptions): Promise<void | { split: Dispatcher.ResponseData['body'] }> {
  const { file } = o;
  const fh = await openTemporary(o);
  const openedAt = performance.now();
  // Bytes this boot writes survive a crash of the process (recovery.ts keeps them on the next start).
  file.bootId = bootId();
  try {
    let offset = file.durableBytes;
    if (file.keptFrom !== undefined && !(Number.isSafeInteger(file.keptFrom) && file.keptFrom >= 0 && file.keptFrom <= offset)) {
      file.keptFrom = 0; // a journal that says nonsense: none of the bytes is taken on trust
    }
    let hash: Hash | undefined;
    if (file.sha256) {
      hash = offset > 0 ? await hashPrefix(fh, offset, file.sha256) : newHash(file.sha256);
    }
    const restart = async (why: string): Promise<void> => {
      noteRestart(file, why);
      o.log(`${file.localPath}: restarting from byte 0 because ${why}.`);
      offset = 0;
      file.durableBytes = 0;
      file.keptFrom = undefined;
      file.bytesTotal = undefined;
      file.etag = undefined;
      file.lastModified = undefined;
      // The journal must stop counting the old bytes before they go (a crash in between would leave it
      // claiming more durable bytes than the file holds).
      await o.persistNow?.();
      await fh.truncate(0);
      hash = file.sha256 ? newHash(file.sha256) : undefined;
      o.onProgress(0);
      o.onCheckpoint();
    };
    // Bytes kept from before a crash of the process (recovery.ts keepWrittenBytes) are checked before use: an
    // overlap with the server's bytes first, and the checksum fails over to fetching them again (keptBytes.ts).
    let keptChecked = false;
    const dropKept = async (e: KeptBytesMismatch): Promise<void> => {
      const from = file.keptFrom ?? 0;
      o.log(`${file.localPath}: ${e.message}; fetching again from byte ${from}.`);
      offset = from;
      file.durableBytes = from;
      file.keptFrom = undefined;
      await o.persistNow?.();
      await fh.truncate(from);
      if (file.sha256) {
        hash = await hashPrefix(fh, from, file.sha256);
      }
      o.onProgress(from);
      o.onCheckpoint();
    };
    /** finish(), or false when the checksum failed with kept bytes in the file: they were dropped, fetch again. */
    const finishOrDropKept = async (): Promise<boolean> => {
      try {
        await finish(fh, o, offset, hash, performance.now() - openedAt < QUICK_FILE_MS);
        return true;
      } catch (e) {
        if (!(e instanceof KeptBytesMismatch)) {
          throw e;
        }
        await dropKept(e);
        return false;
      }
    };

    // Set once the server showed it cannot serve this file in validated pieces: streamed from then on.
    let noPieces = o.splitLargeFile !== undefined;
    for (;;) {
      const validator = file.etag ?? file.lastModified;
      if (offset > 0 && !validator) {
        await restart('the server gave no strong validator (ETag or Last-Modified) to resume safely');
      }
      const overlap = !keptChecked && file.keptFrom !== undefined && offset > file.keptFrom ? Math.min(OVERLAP_BYTES, offset - file.keptFrom) : 0;
      let expect: Buffer | undefined;
      if (overlap > 0) {
        try {
          expect = await readKept(fh, offset - overlap, overlap);
        } catch (e) {
          await dropKept(e as KeptBytesMismatch);
          continue;
        }
      }
      const headers: Record<string, string> = { ...o.headers };
      // Under a low limit, the first range of the file in pieces (pacedRanges.ts), paid for before it is asked.
      const piece = noPieces || (offset > 0 && !(file.bytesTotal !== undefined && offset < file.bytesTotal)) ? undefined : o.rangePieceBytes?.();
      const pieceEnd = piece === undefined ? undefined : Math.min(offset + piece, offset > 0 ? file.bytesTotal! : Infinity) - 1;
      if (offset > 0 && validator) {
        headers['range'] = `bytes=${offset - overlap}-${pieceEnd ?? ''}`;
        headers['if-range'] = validator;
        o.log(`${file.localPath}: resuming at byte ${offset} with If-Range ${validator}.`);
      } else if (pieceEnd !== undefined) {
        headers['range'] = `bytes=0-${pieceEnd}`;
      }
      if (pieceEnd !== undefined) {
        await o.pace?.(pieceEnd - offset + 1);
      }
      const res = await requestFollowingRedirects(file.remoteUrl, headers, o);
      const status = res.statusCode;

      if (status === 206 && offset === 0 && pieceEnd !== undefined) {
        // The first piece: it records the entity, which every later piece must then match.
        const cr = parseContentRange(res.headers['content-range']);
        const etag = strongEtag(res.headers['etag']);
        const lastModified = strongLastModified(res.headers);
        if (cr?.total === undefined || cr.start !== 0 || cr.end !== Math.min(pieceEnd, cr.total - 1) || (etag ?? lastModified) === undefined) {
          await res.body.dump().catch(() => undefined);
          o.log(`${file.localPath}: the server's 206 answer to the first range cannot start a transfer in validated pieces (${describeVerdict('unvalidated', res.headers)}); asking for the whole file.`);
          noPieces = true;
          continue;
        }
        file.bytesTotal = cr.total;
        file.etag = etag;
        file.lastModified = lastModified;
        file.serverCannotResume = false;
        o.onCheckpoint();
        await assertRoomOrDrop(res, file, 0, o);
      } else if (status === 416 && offset === 0 && pieceEnd !== undefined) {
        // An empty file has no byte 0 to ask for.
        await res.body.dump().catch(() => undefined);
        noPieces = true;
        continue;
      } else if (status === 206 && offset > 0) {
        const verdict = judgeResumeResponse(file, { start: offset - overlap, end: pieceEnd }, res.headers);
        if (verdict !== 'append') {
          await res.body.dump().catch(() => undefined);
          await restart(describeVerdict(verdict, res.headers));
          continue;
        }
        file.bytesTotal = parseContentRange(res.headers['content-range'])?.total ?? file.bytesTotal;
        await assertRoomOrDrop(res, file, offset, o);
      } else if (status === 200) {
        if (offset > 0) {
          await restart('the server sent the whole file (it ignored the range, or the file changed)');
        }
        file.bytesTotal = contentLength(res.headers);
        file.etag = strongEtag(res.headers['etag']);
        // Both, when both are strong: a resumed 206 must then match each one it carries (resumeJudge.ts).
        file.lastModified = strongLastModified(res.headers);
        // Told before a pause (the UI warns): without ranges and a validator, a pause means starting again at byte 0.
        file.serverCannotResume = !acceptsByteRanges(res.headers) || (file.etag ?? file.lastModified) === undefined;
        o.onCheckpoint();
        await assertRoomOrDrop(res, file, 0, o);
        if (o.splitLargeFile?.(res.headers)) {
          // Hand over to a segmented transfer, body unread: it becomes the first segment. (Its boot id goes with
          // the segment plan: until that is journaled, nothing here may pass for bytes written in this boot.)
          file.bootId = undefined;
          return { split: res.body };
        }
      } else if (status === 416 && offset > 0) {
        const cr = parseContentRange(res.headers['content-range']);
        await res.body.dump().catch(() => undefined);
        if (cr?.total !== undefined && cr.total === offset && file.bytesTotal === offset) {
          o.log(`${file.localPath}: the server says every byte is already here (416 with size ${offset}).`);
          if (await finishOrDropKept()) {
            return;
          }
          continue;
        }
        await restart(`the server refused the range (416, size now ${cr?.total ?? 'unknown'})`);
        continue;
      } else if (status === 412) {
        await res.body.dump().catch(() => undefined);
        await restart('the file changed on the server (412)');
        continue;
      } else {
        await res.body.dump().catch(() => undefined);
        if (status === 206) {
          await restart('the server answered a plain request with 206');
          continue;
        }
        const retryAfter = parseRetryAfter(res.headers['retry-after'], o.now(), o.maxRetryAfterSeconds);
        throw httpError(status, file.remoteUrl, retryAfter);
      }
      const encoding = res.headers['content-encoding'];
      if (encoding && encoding !== 'identity') {
        o.log(`${file.localPath}: the server sent Content-Encoding ${String(encoding)} unasked; storing the bytes as sent.`);
      }

      o.onConnected();
      try {
        const overlapAt = offset - overlap;
        const inPieces = status === 206 && pieceEnd !== undefined;
        const body = inPieces ? piecesAfter(res, { start: overlapAt, end: Math.min(pieceEnd, file.bytesTotal! - 1) }, file.bytesTotal!, o) : res.body;
        const chunks = expect && status === 206 ? pastOverlap(body, expect, overlapAt, () => (keptChecked = true)) : undefined;
        // Pieces are paid for before they are asked for, not again as they are read.
        offset = await receiveBody(body, fh, offset, hash, inPieces ? { ...o, pace: undefined } : o, chunks);
      } catch (e) {
        if (e instanceof PieceRefused) {
          await restart(e.message);
          continue;
        }
        if (!(e instanceof KeptBytesMismatch)) {
          throw e;
        }
        await dropKept(e);
        continue;
      }
      if (file.bytesTotal !== undefined && offset !== file.bytesTotal) {
        throw connectionCut(`The connection to ${redactUrl(file.remoteUrl)} ended after ${offset} of ${file.bytesTotal} bytes.`);
      }
      if (await finishOrDropKept()) {
        return;
      }
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** The rest of the file in pieces after the first one (`res`, a 206 to `first` judged as a resume). */
function piecesAfter(res: Dispatcher.ResponseData, first: { start: number; end: number }, total: number, o: TransferOptions): PacedRanges {
  const { file } = o;
  const validator = (file.etag ?? file.lastModified)!;
  return new PacedRanges({
    firstBody: res.body,
    first,
    total,
    url: file.remoteUrl,
    pieceBytes: (roundTripMs) => o.rangePieceBytes?.(roundTripMs),
    request: (asked) => requestFollowingRedirects(file.remoteUrl, { ...o.headers, range: `bytes=${asked.start}-${asked.end ?? ''}`, 'if-range': validator }, o),
    judge: (asked, headers) => judgeResumeResponse(file, asked, headers),
    pace: o.pace,
    now: o.now,
    maxRetryAfterSeconds: o.maxRetryAfterSeconds,
    signal: o.signal,
  });
}

/** Refuses (before a byte is written) a size past the maximum or the disk's free space; the body is dropped. */
async function assertRoomOrDrop(res: Dispatcher.ResponseData, file: FileRecord, offset: number, o: TransferOptions): Promise<void> {
  try {
    await assertRoomFor(file, file.bytesTotal, (file.bytesTotal ?? 0) - offset, o.maxFileSizeBytes);
  } catch (e) {
    res.body.destroy();
    throw e;
  }
}

/** Opens the temporary file: created exclusively for a fresh start, reconciled with the journal for a resume. */
async function openTemporary(o: TransferOptions): Promise<fs.FileHandle> {
  const { file } = o;
  const noFollow = FS.O_NOFOLLOW ?? 0;
  try {
    if (file.durableBytes > 0) {
      try {
        const fh = await fs.open(file.temporaryPath, FS.O_RDWR | noFollow);
        const st = await fh.stat();
        if (!st.isFile() || st.size < file.durableBytes) {
          await fh.close();
          o.log(`${file.localPath}: the temporary file is shorter than the journal says (${st.size} < ${file.durableBytes}); starting again.`);
        } else {
          if (st.size > file.durableBytes) {
            // Bytes past the last checkpoint may not have reached the disk intact: drop them.
            await fh.truncate(file.durableBytes);
          }
          return fh;
        }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
          throw e;
        }
        o.log(`${file.localPath}: the temporary file is gone; starting again.`);
      }
      file.durableBytes = 0;
      file.keptFrom = undefined;
      file.restarts++;
      file.etag = undefined;
      file.lastModified = undefined;
      await o.persistNow?.();
    }
    // Create exclusively; on a leftover of ours, remove it (never followed: unlink acts on a symlink itself)
    // and create again. (Trying first saves a file-system call per file when there is none: most of the time.)
    const create = (): Promise<fs.FileHandle> => fs.open(file.temporaryPath, FS.O_RDWR | FS.O_CREAT | FS.O_EXCL | noFollow, 0o644);
    try {
      return await create();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw e;
      }
    }
    await fs.unlink(file.temporaryPath).catch(() => undefined);
    return await create();
  } catch (e) {
    throw osError(e, `Cannot open the temporary file ${file.temporaryPath}`);
  }
}

export async function requestFollowingRedirects(originalUrl: string, headers: Record<string, string>, o: TransferOptions): Promise<Dispatcher.ResponseData> {
  let url = new URL(originalUrl);
  const seen = new Set([url.href]);
  let hdrs = { ...headers };
  for (let hops = 0; ; hops++) {
    let res: Dispatcher.ResponseData;
    try {
      res = await o.dispatcher.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: 'GET',
        headers: hdrs,
        signal: o.signal,
        headersTimeout: o.timeouts.headersMs,
        bodyTimeout: o.timeouts.bodyIdleMs,
        ...(o.bodyHighWaterMark ? { highWaterMark: o.bodyHighWaterMark } : {}),
      });
    } catch (e) {
      throw stopOr(e, o, url.href);
    }
    const location = res.headers['location'];
    if (!REDIRECT_STATUSES.has(res.statusCode) || typeof location !== 'string') {
      return res;
    }
    await res.body.dump().catch(() => undefined);
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw redirectError(`The server redirected ${redactUrl(url.href)} to an invalid location.`);
    }
    if (hops + 1 > o.maxRedirects) {
      throw redirectError(`Too many redirects (more than ${o.maxRedirects}) starting at ${redactUrl(originalUrl)}.`, 'TOO_MANY_REDIRECTS');
    }
    if (seen.has(next.href)) {
      throw redirectError(`The redirects starting at ${redactUrl(originalUrl)} loop back to ${redactUrl(next.href)}.`, 'REDIRECT_LOOP');
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw redirectError(`The server redirected to a ${next.protocol} URL, which cannot be downloaded.`);
    }
    if (url.protocol === 'https:' && next.protocol === 'http:' && !o.allowInsecureRedirects) {
      throw redirectError(`The server redirected from https to insecure http (${redactUrl(next.href)}); allow insecure redirects to follow it.`, 'INSECURE_REDIRECT');
    }
    if (next.origin !== url.origin) {
      // Any header of the job may be a secret meant for its own server (API keys come under every name): none
      // goes to another origin, nor a Referer. Only the engine's own range/validator headers follow.
      const jobHeaders = new Set(Object.keys(o.headers).map((k) => k.toLowerCase()));
      hdrs = Object.fromEntries(Object.entries(hdrs).filter(([k]) => !jobHeaders.has(k.toLowerCase()) && !CROSS_ORIGIN_DROPPED.has(k.toLowerCase())));
    }
    o.log(`${redactUrl(url.href)} redirected (${res.statusCode}) to ${redactUrl(next.href)}.`);
    seen.add(next.href);
    url = next;
  }
}

function redirectError(message: string, code = 'REDIRECT_FAILED'): DownloadError {
  return new DownloadError(code, message, { hresult: HRESULTS.WINHTTP_REDIRECT_FAILED, context: 'REMOTE_FILE' });
}

/**
 * Writes all of `bufs` at `position`, reporting each count actually written. A short write is not an error
 * (a file system filling up writes what fits and says so): the rest is written again, which then fails
 * with the real error (ENOSPC). Counting the whole batch would leave a hole of zeros that a later
 * checkpoint declares durable.
 */
export async function writeFully(fh: fs.FileHandle, bufs: Buffer[], position: number, advance: (bytes: number) => void): Promise<void> {
  const total = bufs.reduce((n, b) => n + b.length, 0);
  let done = 0;
  while (done < total) {
    const { bytesWritten } = await fh.writev(done === 0 ? bufs : [Buffer.concat(bufs).subarray(done)], position + done);
    if (bytesWritten <= 0) {
      throw Object.assign(new Error('the file system accepted no bytes'), { code: 'EIO' });
    }
    done += bytesWritten;
    advance(bytesWritten);
  }
}

/** Body chunks gathered into one writev of about WRITE_BATCH_BYTES (both the single and the segmented path). */
export class WriteBatch {
  private bufs: Buffer[] = [];
  /** Bytes gathered and not yet written. */
  bytes = 0;

  add(chunk: Buffer): void {
    this.bufs.push(chunk);
    this.bytes += chunk.length;
  }

  get full(): boolean {
    return this.bytes >= WRITE_BATCH_BYTES;
  }

  /** Writes what was gathered at `position` (writeFully), as an OS error naming `path` if it fails. */
  async writeTo(fh: fs.FileHandle, position: number, path: string, advance: (bytes: number) => void): Promise<void> {
    if (this.bytes === 0) {
      return;
    }
    const bufs = this.bufs;
    this.bufs = [];
    this.bytes = 0;
    try {
      await writeFully(fh, bufs, position, advance);
    } catch (e) {
      throw osError(e, `Cannot write to ${path}`);
    }
  }
}

/** A response body, or the successive ranges of pacedRanges.ts read as one. */
type Body = AsyncIterable<Buffer> & { destroy(error?: Error): unknown; readonly destroyed: boolean };

/** Reads the body into the file at `offset`, hashing and counting as it goes; returns the new end. */
/** `chunks`: the body as read (default: the body itself; pastOverlap() when its start is compared, not written). */
async function receiveBody(body: Body, fh: fs.FileHandle, offset: number, hash: Hash | undefined, o: TransferOptions, chunks?: AsyncIterable<Buffer>): Promise<number> {
  const { file } = o;
  let written = offset;
  const batch = new WriteBatch();
  let lastCheckpoint = o.now();
  let received = 0;
  const flush = (): Promise<void> => batch.writeTo(fh, written, file.temporaryPath, (k) => (written += k));
  /** fdatasync, then record as durable the bytes that were written when it started. */
  const syncUpTo = async (target: number): Promise<void> => {
    try {
      await fh.datasync();
    } catch (e) {
      throw osError(e, `Cannot flush ${file.temporaryPath} to disk`);
    }
    await assertStillLinked(fh, file.temporaryPath);
    if (target > file.durableBytes) {
      file.durableBytes = target;
      o.onCheckpoint();
    }
  };
  // Checkpoints run beside the transfer (the stream keeps flowing while the disk catches up); one at a time.
  let syncing: Promise<void> | undefined;
  // Boxed, so that "failed" and "not failed" differ whatever the rejection value was.
  let syncError: { error: unknown } | undefined;
  const checkpointInBackground = (): void => {
    lastCheckpoint = o.now();
    syncing = syncUpTo(written)
      .catch((e: unknown) => {
        syncError ??= { error: e };
      })
      .finally(() => {
        syncing = undefined;
      });
  };
  const checkpoint = async (): Promise<void> => {
    await syncing;
    await flush();
    if (written === file.durableBytes) {
      return;
    }
    await syncUpTo(written);
    lastCheckpoint = o.now();
  };

  // Low-speed rule: a window with too few bytes is a stall, whatever the socket says.
  const windowStart = { at: o.now(), received: 0 };
  let stalled = false;
  const speedTimer = setInterval(() => {
    const now = o.now();
    if (now - windowStart.at >= o.timeouts.lowSpeedWindowMs) {
      const rate = ((received - windowStart.received) * 1000) / (now - windowStart.at);
      if (rate < o.timeouts.lowSpeedBytesPerSecond) {
        stalled = true;
        body.destroy(new Error('low speed'));
      }
      windowStart.at = now;
      windowStart.received = received;
    }
  }, Math.min(1000, o.timeouts.lowSpeedWindowMs));
  speedTimer.unref?.();

  try {
    for await (const chunk of chunks ?? body) {
      assertBodyWithinBounds(file, written + batch.bytes + chunk.length, o.maxFileSizeBytes);
      hash?.update(chunk);
      batch.add(chunk);
      received += chunk.length;
      o.onProgress(written + batch.bytes);
      await o.pace?.(chunk.length);
      if (batch.full) {
        await flush();
        if (syncError !== undefined) {
          throw syncError.error;
        }
        if (!syncing && (written - file.durableBytes >= o.checkpointBytes || o.now() - lastCheckpoint >= o.checkpointIntervalMs)) {
          checkpointInBackground();
        }
      }
    }
    await flush();
    await syncing;
    if (syncError !== undefined) {
      throw syncError.error;
    }
    return written;
  } catch (e) {
    // Keep what arrived: write it and make it durable, so a resume starts after it.
    await checkpoint().catch(() => undefined);
    if (e instanceof KeptBytesMismatch || e instanceof PieceRefused) {
      throw e;
    }
    if (stalled) {
      throw new DownloadError('STALLED', `The transfer from ${redactUrl(file.remoteUrl)} went slower than ${o.timeouts.lowSpeedBytesPerSecond} bytes/s for ${Math.round(o.timeouts.lowSpeedWindowMs / 1000)} s.`, {
        hresult: HRESULTS.WINHTTP_TIMEOUT,
        transient: true,
        context: 'GENERAL_TRANSPORT',
      });
    }
    throw stopOr(e, o, file.remoteUrl);
  } finally {
    clearInterval(speedTimer);
    if (!body.destroyed) {
      body.destroy();
    }
  }
}

/**
 * On POSIX a deleted file (or folder) stays writable through an open handle, so bytes would pile up in a
 * file nobody can reach. Checked at each checkpoint: the path must still name the file we write.
 */
async function assertStillLinked(fh: fs.FileHandle, p: string): Promise<void> {
  if (process.platform === 'win32') {
    return; // Windows refuses to delete an open file.
  }
  const [mine, named] = await Promise.all([fh.stat(), fs.stat(p).catch(() => undefined)]);
  if (!named || named.ino !== mine.ino || named.dev !== mine.dev) {
    throw vanished(p);
  }
}

function vanished(p: string): DownloadError {
  return new DownloadError('ENOENT', `The temporary file ${p} was deleted or replaced while downloading (was its folder removed?).`, {
    hresult: 0x80070002,
    context: 'LOCAL_FILE',
  });
}

/**
 * `quick`: the file was opened moments ago (a small file in one go). Its path is then only checked to still name
 * a file of the right size, with one call instead of two: thousands of small files pay per file-system call.
 */
async function finish(fh: fs.FileHandle, o: TransferOptions, size: number, hash: Hash | undefined, quick: boolean): Promise<void> {
  const { file } = o;
  if (hash && file.sha256) {
    const actual = hash.digest('hex');
    if (!digestMatches(file.sha256, actual) && file.keptFrom !== undefined) {
      // The bytes kept from before a crash may hide a lost range: fetched again once before failing.
      throw new KeptBytesMismatch(file.keptFrom);
    }
    if (!digestMatches(file.sha256, actual)) {
      await fh.truncate(0).catch(() => undefined);
      await fs.unlink(file.temporaryPath).catch(() => undefined);
      file.durableBytes = 0;
      file.bytesTotal = undefined;
      file.etag = undefined;
      file.lastModified = undefined;
      o.onProgress(0);
      o.onCheckpoint();
      throw validationFailed(file.localPath, file.sha256, actual);
    }
  }
  const named = quick ? fs.stat(file.temporaryPath).catch(() => undefined) : undefined;
  try {
    await fh.sync();
  } catch (e) {
    throw osError(e, `Cannot flush ${file.temporaryPath} to disk`);
  }
  if (named) {
    const st = await named;
    if (!st?.isFile() || st.size !== size) {
      throw vanished(file.temporaryPath);
    }
  } else {
    await assertStillLinked(fh, file.temporaryPath);
  }
  file.bytesTotal = size;
  file.durableBytes = size;
  file.keptFrom = undefined;
  file.bootId = undefined;
  file.transferred = true;
  o.onProgress(size);
  o.onCheckpoint();
}

export function stopOr(e: unknown, o: TransferOptions, url: string): Error {
  if (o.signal.aborted) {
    return new TransferStopped();
  }
  return networkError(e, url);
}

export function contentLength(h: Record<string, string | string[] | undefined>): number | undefined {
  const v = h['content-length'];
  const s = Array.isArray(v) ? v[0] : v;
  return s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined;
}

/** A Last-Modified is strong when the response's Date is at least a second later (RFC 9110 §8.8.2.2). */
export function strongLastModified(h: Record<string, string | string[] | undefined>): string | undefined {
  const lm = h['last-modified'];
  const date = h['date'];
  const l = Array.isArray(lm) ? lm[0] : lm;
  const d = Array.isArray(date) ? date[0] : date;
  if (!l) {
    return undefined;
  }
  const lt = Date.parse(l);
  const dt = d ? Date.parse(d) : NaN;
  return !Number.isNaN(lt) && !Number.isNaN(dt) && dt - lt >= 1000 ? l : undefined;
}

/** `Accept-Ranges: bytes` (a list may name other units too). */
function acceptsByteRanges(headers: Record<string, string | string[] | undefined>): boolean {
  const v = headers['accept-ranges'];
  return (Array.isArray(v) ? v.join(',') : (v ?? '')).toLowerCase().split(',').some((u) => u.trim() === 'bytes');
}
