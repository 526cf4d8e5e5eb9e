// Under a low speed limit, one body read slowly is not enough to slow the server down evenly: with the reader
// paused the client's receive window closes and the sender moves in steps of its zero-window probes (~128 KiB
// every ~2 s at 64 KiB/s, bench/README.md "Speed limits"), and Node offers no SO_RCVBUF to shrink them. So the
// file is asked for in small closed ranges instead, each paid for before it is requested: the server can then
// never be more than one piece ahead of the budget. Every piece is judged as a resume is (resumeJudge.ts):
// a piece that is not provably the same entity, byte for byte where asked, stops the transfer (PieceRefused)
// and transfer.ts starts again as it does for a refused resume. Nothing is ever spliced.
import type { Dispatcher } from 'undici';
import { connectionCut, DownloadError, httpError, redactUrl } from './errors';
import { describeVerdict, type ResumeVerdict } from './resumeJudge';
import { parseRetryAfter } from './retryAfter';

/** A piece is this long at the limit (a quarter second): small steps, few requests. */
const PIECE_SECONDS = 0.25;
/**
 * ...and at least twice the last request's round trip (request to headers): each piece waits for the one before
 * it, so a far server would otherwise leave part of every piece's time unused and fall short of the limit.
 */
const ROUND_TRIPS_PER_PIECE = 2;
/** ...but never more than this long: the server stays at most this far ahead of the limit. */
const MAX_PIECE_SECONDS = 2;
/** ...but not smaller: below this, requests and headers would cost more than the bytes they carry. */
const MIN_PIECE_BYTES = 16 * 1024;
/**
 * Limits below this are fetched in pieces. At and above it, reading the body slowly already holds the
 * server within the target (bench/README.md: 1 MiB/s within ±5 %, no second above 1.3×), and a file may take
 * several connections (rateLimiter.ts segmentsFor), which this path does not do.
 */
const PACED_RANGES_BELOW_BYTES_PER_SECOND = 1024 * 1024;

/**
 * The size of the next piece under `limit` bytes per second (0: none), when a request takes `roundTripMs` to be
 * answered, or undefined: stream as usual.
 */
export function pieceBytesFor(limit: number, roundTripMs = 0): number | undefined {
  if (!(limit > 0) || limit >= PACED_RANGES_BELOW_BYTES_PER_SECOND) {
    return undefined;
  }
  const seconds = Math.min(MAX_PIECE_SECONDS, Math.max(PIECE_SECONDS, (ROUND_TRIPS_PER_PIECE * roundTripMs) / 1000));
  return Math.max(MIN_PIECE_BYTES, Math.round(limit * seconds));
}

/** A piece's answer is not the bytes asked for, of the same entity: transfer.ts restarts with `message` as why. */
export class PieceRefused extends Error {}

/** A closed or open range: `end` undefined asks for the rest of the entity. */
export interface Asked {
  start: number;
  end?: number;
}

export interface PacedRangesOptions {
  /** The first answer, already judged: its body carries the bytes `first.start` to `first.end`. */
  firstBody: Dispatcher.ResponseData['body'];
  first: Required<Asked>;
  /** The entity's size, as recorded. */
  total: number;
  url: string;
  /**
   * Read before each piece (the limit may change at any time), given the last piece's round trip.
   * undefined: the rest is asked for in one go.
   */
  pieceBytes: (roundTripMs: number) => number | undefined;
  /** Sends the request for `asked` (Range and If-Range). */
  request: (asked: Asked) => Promise<Dispatcher.ResponseData>;
  /** The resume judge's verdict on a 206 answer to `asked`. */
  judge: (asked: Asked, headers: Dispatcher.ResponseData['headers']) => ResumeVerdict;
  /** The speed limit: paid for a whole piece before it is requested, per chunk for the rest in one go. */
  pace?: (bytes: number) => Promise<void> | undefined;
  now: () => number;
  maxRetryAfterSeconds: number;
  signal: AbortSignal;
}

/**
 * The bytes of successive ranges, read as one body (transfer.ts receiveBody writes, hashes, checkpoints and
 * watches for stalls as for any body). destroy() ends the range being read, and requests no more.
 */
export class PacedRanges implements AsyncIterable<Buffer> {
  private current: Dispatcher.ResponseData['body'] | undefined;
  private failure: Error | undefined;
  private roundTripMs = 0;
  destroyed = false;

  constructor(private readonly o: PacedRangesOptions) {
    this.current = o.firstBody;
  }

  destroy(error?: Error): void {
    this.destroyed = true;
    this.failure ??= error;
    this.current?.destroy(error);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    const { o } = this;
    try {
      yield* this.exactly(o.firstBody, o.first);
      let at = o.first.end + 1;
      while (at < o.total) {
        const piece = o.pieceBytes(this.roundTripMs);
        const asked: Asked = piece === undefined ? { start: at } : { start: at, end: Math.min(o.total, at + piece) - 1 };
        if (asked.end !== undefined) {
          await o.pace?.(asked.end - at + 1);
        }
        this.assertGoingOn();
        const sent = performance.now();
        const res = await o.request(asked);
        this.roundTripMs = performance.now() - sent;
        this.current = res.body;
        await this.accept(res, asked);
        yield* this.exactly(res.body, { start: at, end: asked.end ?? o.total - 1 }, asked.end === undefined ? o.pace : undefined);
        at = (asked.end ?? o.total - 1) + 1;
      }
    } finally {
      this.current?.destroy();
    }
  }

  private assertGoingOn(): void {
    if (this.destroyed || this.o.signal.aborted) {
      throw this.failure ?? new Error('aborted');
    }
  }

  /** Throws unless `res` is a 206 the judge lets append; its body is dropped then. */
  private async accept(res: Dispatcher.ResponseData, asked: Asked): Promise<void> {
    const status = res.statusCode;
    const verdict = status === 206 ? this.o.judge(asked, res.headers) : undefined;
    if (verdict === 'append') {
      return;
    }
    await res.body.dump().catch(() => undefined);
    if (verdict !== undefined) {
      throw new PieceRefused(describeVerdict(verdict, res.headers));
    }
    // As transfer.ts answers the same statuses to a resume.
    if (status === 200) {
      throw new PieceRefused('the server sent the whole file (it ignored the range, or the file changed)');
    }
    if (status === 412) {
      throw new PieceRefused('the file changed on the server (412)');
    }
    if (status === 416) {
      throw new PieceRefused('the server refused the range (416)');
    }
    throw httpError(status, this.o.url, parseRetryAfter(res.headers['retry-after'], this.o.now(), this.o.maxRetryAfterSeconds));
  }

  /**
   * The body's chunks, which must be exactly the bytes `range` names: a body that ends short (a server may
   * omit Content-Length) or runs long would shift every later byte of the file.
   */
  private async *exactly(body: Dispatcher.ResponseData['body'], range: Required<Asked>, pace?: (bytes: number) => Promise<void> | undefined): AsyncGenerator<Buffer> {
    const expected = range.end - range.start + 1;
    let got = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      got += chunk.length;
      if (got > expected) {
        throw this.cut(`sent more than the ${expected} bytes asked for at byte ${range.start}`);
      }
      yield chunk;
      await pace?.(chunk.length);
      this.assertGoingOn();
    }
    if (got !== expected) {
      throw this.cut(`ended after ${got} of the ${expected} bytes asked for at byte ${range.start}`);
    }
  }

  private cut(what: string): DownloadError {
    return connectionCut(`The connection to ${redactUrl(this.o.url)} ${what}.`);
  }
}
