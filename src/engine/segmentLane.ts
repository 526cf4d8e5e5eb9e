// One segment of a segmented transfer, fetched over one connection at a time: ranged requests guarded by
// If-Range (and If-Match when there is an ETag), each answer judged before a byte of it is written (a changed
// entity is never spliced), and the body written at the segment's offset. What the lanes of a file share (its
// sources, progress, write marks, checkpoints, checksum, and how the run ends) is the transfer's (LaneHost).
import type { Dispatcher } from 'undici';
import { bootId } from './io';
import type * as fs from './io';
import { connectionCut, DownloadError, HRESULTS, httpError, redactUrl } from './errors';
import type { FileRecord, SegmentRecord } from './records';
import { parseRetryAfter } from './retryAfter';
import { requestFollowingRedirects, stopOr, TransferStopped, WriteBatch, type TransferOptions } from './transfer';
import { describeVerdict, judgeResumeResponse } from './resumeJudge';
import { KeptBytesMismatch, pastOverlap, readKept } from './keptBytes';
import type { SegmentSource, SegmentSources } from './segmentSources';
import { needsRequest, overlapToCheck, type LaneState } from './segmentPlan';

type Body = Dispatcher.ResponseData['body'];

/** Consecutive failures of one segment without progress before the whole transfer gives up (the engine retries later). */
const MAX_SEGMENT_RETRIES = 3;

/** What the lanes of one file share: the transfer they run in (segmentedTransfer.ts). */
export interface LaneHost {
  readonly file: FileRecord;
  /** The transfer's options under its own signal, aborted once the run is over for every lane. */
  readonly io: TransferOptions;
  readonly fh: fs.FileHandle;
  readonly pool: SegmentSources;
  /** The body of the plain GET that revealed the file, once: the lane at byte 0 reads it as its first answer. */
  takeFirstBody(): Body | undefined;
  /** An answer's bytes are about to flow. */
  connected(): void;
  /** Bytes of an answer arrived (progress). */
  received(bytes: number): void;
  /** Kept bytes were found bad: this many written bytes are no longer held. */
  movedBack(bytes: number): void;
  /** Bytes were handed to the OS (counted toward the next checkpoint). */
  wrote(bytes: number): void;
  /** A lane's batch is written: note it, hash and checkpoint as due. */
  afterWrite(lane: LaneState): void;
  /** The trusted contiguous prefix may have grown (kept bytes were checked). */
  frontierMoved(): void;
  fail(e: unknown): void;
  /** The file's own source serves another entity (`unvalidated`: its 206 could not be checked). */
  entityChanged(why: string, unvalidated: boolean): void;
}

export class SegmentLane implements LaneState {
  written: number;
  /** Failures in a row without progress. */
  failures = 0;
  keptFrom?: number;
  keptChecked?: boolean;

  constructor(
    readonly rec: SegmentRecord,
    private readonly host: LaneHost,
  ) {
    this.written = rec.start + rec.done;
  }

  /** Requests the segment's missing bytes until it is written and checked, or the run is over. */
  async run(): Promise<void> {
    const { pool, io } = this.host;
    while (needsRequest(this) && !io.signal.aborted) {
      const first = this.written === 0 ? this.host.takeFirstBody() : undefined;
      if (first) {
        if (!(await this.readFirstBody(first))) {
          return;
        }
        continue;
      }
      // Kept bytes not yet checked: ask again a few KiB before their end, to compare (keptBytes.ts).
      const overlap = overlapToCheck(this);
      let expect: Buffer | undefined;
      if (overlap > 0) {
        try {
          expect = await readKept(this.host.fh, this.written - overlap, overlap);
        } catch (e) {
          this.dropKept(e as KeptBytesMismatch);
          continue;
        }
      }
      const source = pool.take();
      if (source === undefined) {
        this.host.fail(noSourceLeft(this.host.file.localPath, pool.summaryOfDropped()));
        return;
      }
      try {
        if (!(await this.request(source, this.written - overlap, expect))) {
          return;
        }
      } finally {
        pool.release(source);
      }
    }
  }

  /** The response that revealed the file is this segment's first answer: read up to the segment's end. False: stop. */
  private async readFirstBody(body: Body): Promise<boolean> {
    const { pool, io } = this.host;
    // It was asked under the caller's signal, not this transfer's: stop it too when the transfer stops.
    const stop = (): void => void body.destroy();
    io.signal.addEventListener('abort', stop, { once: true });
    this.host.connected();
    try {
      if (io.signal.aborted) {
        stop();
      }
      const before = this.written;
      pool.primary.active++;
      await this.receive(body, true).finally(() => {
        pool.primary.bytes += this.written - before;
        pool.release(pool.primary);
      });
    } catch (e) {
      if (!(await this.retryable(e))) {
        return false;
      }
    } finally {
      io.signal.removeEventListener('abort', stop);
    }
    return true;
  }

  /**
   * One ranged request to `source` from byte `from` (`expect`: the kept bytes it starts with), and its body
   * written. False when the lane must stop (the run is over); true to go on with the lane's rest. The file's own
   * source (the primary) answering with another entity restarts the file; a mirror doing so is only dropped, and
   * its segment goes to another source.
   */
  private async request(source: SegmentSource, from: number, expect: Buffer | undefined): Promise<boolean> {
    const primary = source.entity === this.host.file;
    let res: Dispatcher.ResponseData;
    try {
      res = await requestFollowingRedirects(source.url, this.rangeHeaders(source, from), this.host.io);
    } catch (e) {
      return this.sourceFailed(source, e);
    }
    const refused = res.statusCode === 206 ? this.judgePartial(res, source, from, primary) : await this.notPartial(res, source, primary);
    if (refused !== undefined) {
      return refused;
    }
    this.host.connected();
    return this.receiveFrom(res.body, source, expect && { bytes: expect, at: from });
  }

  private rangeHeaders(source: SegmentSource, from: number): Record<string, string> {
    const headers: Record<string, string> = { ...this.host.io.headers, range: `bytes=${from}-${this.rec.end - 1}` };
    // A mirror not vetted yet is asked without validators: its first answer is judged before a byte is written.
    const guard = source.entity;
    if (guard?.etag ?? guard?.lastModified) {
      headers['if-range'] = (guard.etag ?? guard.lastModified)!;
    }
    if (guard?.etag) {
      headers['if-match'] = guard.etag;
    }
    return headers;
  }

  /** A 206: undefined when it is this segment's bytes of the file's entity, else what request() returns. */
  private judgePartial(res: Dispatcher.ResponseData, source: SegmentSource, from: number, primary: boolean): boolean | undefined {
    const { pool } = this.host;
    if (source.entity === undefined && pool.vet(source, res.headers) !== undefined) {
      res.body.destroy();
      return true;
    }
    const verdict = judgeResumeResponse(source.entity!, { start: from, end: this.rec.end - 1 }, res.headers);
    if (verdict === 'append') {
      return undefined;
    }
    res.body.destroy();
    if (!primary) {
      pool.drop(source, `a segment: ${describeVerdict(verdict, res.headers).replace("the server's", 'its')}`);
      return true;
    }
    this.host.entityChanged(`a segment: ${describeVerdict(verdict, res.headers)}`, verdict === 'unvalidated');
    return false;
  }

  /** Any answer but a 206: what request() returns. */
  private async notPartial(res: Dispatcher.ResponseData, source: SegmentSource, primary: boolean): Promise<boolean> {
    const { pool, io } = this.host;
    const status = res.statusCode;
    if (status === 200 || status === 412 || status === 416) {
      res.body.destroy();
      const why = status === 200 ? 'the server sent the whole file to a segment request (it changed, or no longer takes ranges)' : `the server answered ${status} to a segment request (the file changed)`;
      if (!primary) {
        pool.drop(source, why.replace('the server', 'it'));
        return true;
      }
      this.host.entityChanged(why, false);
      return false;
    }
    await res.body.dump().catch(() => undefined);
    const err = httpError(status, source.url, parseRetryAfter(res.headers['retry-after'], io.now(), io.maxRetryAfterSeconds));
    if (!err.transient && !pool.several) {
      this.host.fail(err);
      return false;
    }
    return this.sourceFailed(source, err);
  }

  /** Writes a judged 206's body; what request() returns. */
  private async receiveFrom(body: Body, source: SegmentSource, overlap: { bytes: Buffer; at: number } | undefined): Promise<boolean> {
    const { pool } = this.host;
    const before = this.written;
    try {
      await this.receive(body, false, overlap);
    } catch (e) {
      source.bytes += this.written - before;
      if (e instanceof KeptBytesMismatch) {
        this.dropKept(e);
        return true;
      }
      if (this.written > before) {
        this.failures = 0;
        pool.succeeded(source);
      }
      return this.sourceFailed(source, e);
    }
    source.bytes += this.written - before;
    pool.succeeded(source);
    if (this.written < this.rec.end) {
      // A clean end before the range's last byte: resume the rest of this segment.
      return this.sourceFailed(source, endedEarly(source.url, this.written));
    }
    return true;
  }

  /** A failure of the source, not of the segment: with other sources left, another one takes the segment. */
  private async sourceFailed(source: SegmentSource, e: unknown): Promise<boolean> {
    const { pool, io } = this.host;
    const err = e instanceof DownloadError || e instanceof TransferStopped ? e : stopOr(e, io, source.url);
    if (err instanceof DownloadError && !io.signal.aborted && pool.failed(source, err)) {
      return true;
    }
    return this.retryable(err);
  }

  /** After a failure of this segment: try it again (only it) unless the run is over or it keeps failing. */
  private async retryable(e: unknown): Promise<boolean> {
    const { io, file } = this.host;
    if (io.signal.aborted) {
      return false;
    }
    const err = e instanceof DownloadError || e instanceof TransferStopped ? e : stopOr(e, io, file.remoteUrl);
    if (err instanceof TransferStopped) {
      return false;
    }
    if (!(err instanceof DownloadError) || !err.transient || ++this.failures > MAX_SEGMENT_RETRIES) {
      this.host.fail(err);
      return false;
    }
    io.log(`${file.localPath}: segment at ${this.rec.start} failed at byte ${this.written} (${err.code}); fetching its rest again.`);
    await new Promise((r) => setTimeout(r, 100 * this.failures));
    return !io.signal.aborted;
  }

  /** Kept bytes found unlike the server's (or unreadable): the lane goes back to its durable offset. */
  private dropKept(e: KeptBytesMismatch): void {
    this.host.io.log(`${this.host.file.localPath}: ${e.message}; fetching the segment at ${this.rec.start} again from byte ${this.keptFrom}.`);
    const lost = this.written - this.keptFrom!;
    this.written = this.keptFrom!;
    this.keptChecked = true;
    this.rec.written = bootId() === undefined ? undefined : this.written - this.rec.start;
    this.host.movedBack(lost);
  }

  /**
   * `cut`: the body runs past the segment (a whole-file 200); stop at the segment's end instead of failing.
   * `overlap`: the body starts with these bytes, already in the file at `at`: compared, not written.
   */
  private async receive(body: Body, cut: boolean, overlap?: { bytes: Buffer; at: number }): Promise<void> {
    const { io, file } = this.host;
    const batch = new WriteBatch();
    const verified = (): void => {
      this.keptChecked = true;
      this.host.frontierMoved();
    };
    const chunks = overlap ? pastOverlap(body as AsyncIterable<Buffer>, overlap.bytes, overlap.at, verified) : (body as AsyncIterable<Buffer>);
    try {
      for await (const chunk of chunks) {
        if (this.written + batch.bytes + chunk.length > this.rec.end) {
          if (!cut) {
            throw tooManyBytes(file.remoteUrl);
          }
          const keep = this.rec.end - this.written - batch.bytes;
          batch.add(chunk.subarray(0, keep));
          this.host.received(keep);
          break;
        }
        batch.add(chunk);
        this.host.received(chunk.length);
        await io.pace?.(chunk.length);
        if (batch.full) {
          await this.flush(batch);
        }
      }
    } finally {
      // Keep what arrived, whatever happened: the next checkpoint makes it durable.
      await this.flush(batch).catch(() => undefined);
      if (!body.destroyed) {
        body.destroy();
      }
    }
  }

  private async flush(batch: WriteBatch): Promise<void> {
    if (batch.bytes === 0) {
      return;
    }
    try {
      await batch.writeTo(this.host.fh, this.written, this.host.file.temporaryPath, (k) => {
        this.written += k;
        this.host.wrote(k);
      });
    } catch (e) {
      this.host.fail(e);
      throw e;
    }
    this.host.afterWrite(this);
  }
}

function noSourceLeft(localPath: string, dropped: string): DownloadError {
  return new DownloadError('WINHTTP_INVALID_SERVER_RESPONSE', `No source of ${localPath} is left for its segments (${dropped}).`, {
    hresult: HRESULTS.WINHTTP_INVALID_SERVER_RESPONSE,
    context: 'REMOTE_FILE',
  });
}

function endedEarly(url: string, at: number): DownloadError {
  return connectionCut(`A segment of ${redactUrl(url)} ended early at byte ${at}.`);
}

function tooManyBytes(url: string): DownloadError {
  return new DownloadError('WINHTTP_INVALID_SERVER_RESPONSE', `A segment of ${redactUrl(url)} sent more bytes than asked.`, {
    hresult: HRESULTS.WINHTTP_INVALID_SERVER_RESPONSE,
    transient: true,
    context: 'REMOTE_FILE',
  });
}
