// One large file over several connections: each segment is a ranged GET guarded by If-Range (and If-Match when
// there is an ETag), written at its offset into the one temporary file. Checkpoints fdatasync the file, then
// record in the journal how far each segment is durable, so a restart fetches only what is missing. A changed
// entity (200 to If-Range, 412, another ETag, size or Content-Range) is never spliced: the file starts over.
// The segments' decisions are segmentPlan.ts, each connection is a SegmentLane, the checksum a PrefixHasher;
// SegmentedTransfer holds what they share for one call and decides how the call ends.
import { constants as FS } from './io';
import * as fs from './io';
import type { Dispatcher } from 'undici';
import { DownloadError, HRESULTS, osError, redactUrl } from './errors';
import type { FileRecord, SegmentRecord } from './records';
import { bootId } from './io';
import { digestMatches, validationFailed } from './integrity';
import { noteRestart } from './restarts';
import { assertRoomFor } from './diskRoom';
import { stopOr, TransferStopped, type TransferOptions } from './transfer';
import { WriteMarks, type MarksKey } from './writeMarks';
import { SegmentSources, type OtherSources } from './segmentSources';
import { bytesHeld, checkpointedDone, connectionCount, durablePrefix, forgetKept, keptAfterCrash, needsRequest, trusted, trustedPrefix, type LaneState } from './segmentPlan';
import { SegmentLane, type LaneHost } from './segmentLane';
import { PrefixHasher, type HashMode } from './prefixHasher';

export interface SegmentedOptions extends TransferOptions {
  segmentsPerFile: number;
  minSegmentBytes: number;
  /**
   * How the checksum is computed: along the contiguous frontier on a worker thread (default), along the frontier
   * on this thread, or by re-reading the file once at the end (see bench/README.md for the measurements).
   */
  hashMode?: HashMode;
  /**
   * The body of the plain GET that revealed the file (a 200 from byte 0): the first segment reads it instead
   * of asking again, and cuts it at its end. Nothing the server sent before the split is thrown away.
   */
  firstBody?: Dispatcher.ResponseData['body'];
  /** Where to note written offsets after every write (see writeMarks.ts); none: only the journal's. */
  marksPath?: string;
  /** The file's other usable sources (sources.ts): segments are then spread over them, segmentsPerFile at a time. */
  otherSources?: OtherSources;
}

type Outcome = 'done' | 'restart' | 'unsplittable' | 'again';

/**
 * Runs (or resumes) the segmented transfer recorded in `file.segments`. Resolves 'done' when the file is
 * transferred and verified, or 'restart' when the entity changed and the file was reset to fetch anew
 * ('unsplittable': reset because a 206 could not be checked; fetch it over one connection), or 'again' when the
 * checksum failed after bytes kept from before a crash: those ranges were set to be fetched again (once).
 */
export async function segmentedTransfer(o: SegmentedOptions): Promise<'done' | 'restart' | 'unsplittable' | 'again'> {
  const { file } = o;
  const size = file.bytesTotal;
  const validator = file.etag ?? file.lastModified;
  if (!file.segments || size === undefined || !validator) {
    o.firstBody?.destroy();
    resetFile(o, 'the segment plan lost its size or validator');
    return 'restart';
  }
  const fh = await openTemporary(o);
  if (!fh) {
    return 'restart';
  }
  const transfer = new SegmentedTransfer(o, fh, file.segments, { temporaryPath: file.temporaryPath, size, validator, starts: file.segments.map((x) => x.start) });
  try {
    return await transfer.run();
  } finally {
    await transfer.close();
  }
}

/** The temporary file, opened for positional writes; undefined when it is gone (the file was reset). */
async function openTemporary(o: SegmentedOptions): Promise<fs.FileHandle | undefined> {
  const { file } = o;
  try {
    return await fs.open(file.temporaryPath, FS.O_RDWR | (FS.O_NOFOLLOW ?? 0));
  } catch (e) {
    o.firstBody?.destroy();
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      resetFile(o, 'its temporary file is gone');
      return undefined;
    }
    throw osError(e, `Cannot open the temporary file ${file.temporaryPath}`);
  }
}

/** One call of segmentedTransfer: the state its lanes share, and how the call ends. */
class SegmentedTransfer implements LaneHost {
  readonly file: FileRecord;
  readonly io: SegmentedOptions;
  readonly pool: SegmentSources;
  private readonly lanes: SegmentLane[];
  private readonly size: number;
  /** Aborted when the run is over for every lane: stopped by the caller, failed, or the entity changed. */
  private readonly inner = new AbortController();
  private readonly onOuterAbort = (): void => this.inner.abort();
  private marks: WriteMarks | undefined;
  private firstBody: Dispatcher.ResponseData['body'] | undefined;
  private hasher: PrefixHasher | undefined;
  /** Bytes held over all segments, as progress reports them. */
  private receivedBytes: number;
  private sinceCheckpoint = 0;
  private lastCheckpointAt: number;
  private checkpointing: Promise<void> | undefined;
  private isConnected = false;
  private failure: unknown;
  private changed: string | undefined;
  /** A 206 came back without the recorded validators: ranged answers of this server cannot be checked. */
  private unvalidated = false;
  /** The low-speed rule ended the run (its error is thrown as is). */
  private stalled = false;

  constructor(
    private readonly o: SegmentedOptions,
    readonly fh: fs.FileHandle,
    private readonly segs: SegmentRecord[],
    private readonly marksKey: MarksKey,
  ) {
    this.file = o.file;
    this.size = marksKey.size;
    o.signal.addEventListener('abort', this.onOuterAbort, { once: true });
    if (o.signal.aborted) {
      this.inner.abort();
    }
    this.io = { ...o, signal: this.inner.signal };
    this.lanes = segs.map((rec) => new SegmentLane(rec, this));
    this.receivedBytes = bytesHeld(this.lanes);
    this.lastCheckpointAt = o.now();
    this.firstBody = o.firstBody;
    this.pool = new SegmentSources(this.file.remoteUrl, this.file, o.otherSources, o.log);
  }

  async run(): Promise<Outcome> {
    const wasFullSize = await this.prepareFile();
    await this.keepCrashBytes(wasFullSize);
    this.startNoting();
    this.hasher = PrefixHasher.start({
      sha256: this.file.sha256,
      hashMode: this.o.hashMode,
      temporaryPath: this.file.temporaryPath,
      localPath: this.file.localPath,
      fh: this.fh,
      size: this.size,
      frontier: () => trustedPrefix(this.lanes),
      signal: this.inner.signal,
      onError: (e) => this.fail(e),
      log: this.o.log,
    });
    const speedTimer = this.watchSpeed();
    try {
      await this.runLanes();
    } finally {
      clearInterval(speedTimer);
    }
    await this.checkpointing?.catch(() => undefined);
    if (this.changed !== undefined) {
      return this.restart(this.changed);
    }
    if (this.failure !== undefined || this.o.signal.aborted) {
      throw await this.stopped();
    }
    if (this.pool.several) {
      this.o.log(`${this.file.localPath}: segments served by ${this.pool.summary() || 'no source this time (every byte was on disk)'}.`);
    }
    return (await this.verify()) ?? (await this.finish());
  }

  /** Ends the call whichever way it went: nothing it opened stays open, and the lanes stop. */
  async close(): Promise<void> {
    this.marks?.close();
    this.firstBody?.destroy();
    this.o.signal.removeEventListener('abort', this.onOuterAbort);
    this.inner.abort();
    this.hasher?.close();
    await this.fh.close().catch(() => undefined);
  }

  /** Checks the temporary file, and brings it to the entity's size. Returns whether it was that size already. */
  private async prepareFile(): Promise<boolean> {
    const { o, file, fh, size, segs } = this;
    const st = await fh.stat();
    if (!st.isFile()) {
      throw osError(Object.assign(new Error('not a regular file'), { code: 'EISDIR' }), `The temporary file ${file.temporaryPath} is not a file`);
    }
    await assertRoomFor(file, size, size - segs.reduce((n, x) => n + x.done, 0), o.maxFileSizeBytes);
    if (st.size === size) {
      return true;
    }
    if (st.size < size && segs.some((s) => s.done > 0)) {
      o.log(`${file.localPath}: the temporary file is shorter than its segments say; fetching every segment again.`);
      for (const l of this.lanes) {
        l.rec.done = 0;
        l.rec.written = undefined;
        l.written = l.rec.start;
      }
      file.durableBytes = 0;
      WriteMarks.remove(o.marksPath); // they describe bytes that are gone
    }
    // Sparse: the journal's segments, not the file's size, say which bytes are real. The journal must say
    // so (list the segments) before the holes exist: a crash in between would otherwise leave a file of the
    // entity's size that a restart could take for written bytes.
    await o.persistNow?.();
    await fh.truncate(size);
    await fh.datasync();
    return false;
  }

  /**
   * The process died, not the machine: what it had written is in the page cache. Make it durable and keep it,
   * as written but not yet trusted: each kept range is checked against the server first (keptBytes.ts).
   * The journal's `written` is as old as its last save; the marks are as recent as the last write.
   */
  private async keepCrashBytes(wasFullSize: boolean): Promise<void> {
    const noted = wasFullSize ? WriteMarks.read(this.o.marksPath, this.marksKey) : undefined;
    const kept = keptAfterCrash(this.segs, this.file.bootId === bootId(), noted);
    const recovered = kept.flatMap((k, i) => (k !== undefined ? [i] : []));
    if (bootId() === undefined || recovered.length === 0 || !wasFullSize) {
      return;
    }
    try {
      await this.fh.datasync();
      for (const i of recovered) {
        const l = this.lanes[i];
        l.keptFrom = l.written;
        l.written = l.rec.start + kept[i]!;
      }
      this.o.log(`${this.file.localPath}: kept ${recovered.length} segment(s) written before the process stopped (same boot, now flushed to disk; checked against the server before use).`);
    } catch {
      // Not flushable: fall back to what was known durable.
    }
  }

  /** From here on, this boot's writes are recorded (journal and marks) as written, not yet durable. */
  private startNoting(): void {
    for (const l of this.lanes) {
      l.rec.written = bootId() === undefined ? undefined : l.written - l.rec.start;
    }
    this.file.bootId = bootId();
    this.receivedBytes = bytesHeld(this.lanes);
    this.o.onProgress(this.receivedBytes);
    this.marks = WriteMarks.open(this.o.marksPath, this.marksKey);
    this.noteWritten();
  }

  private noteWritten(): void {
    this.marks?.note(this.lanes.map((l) => l.written - l.rec.start));
  }

  /** Low-speed rule over the whole file, as for one connection; also checkpoints by time while bytes trickle. */
  private watchSpeed(): NodeJS.Timeout {
    const { o } = this;
    const windowStart = { at: o.now(), received: this.receivedBytes };
    const timer = setInterval(
      () => {
        const now = o.now();
        const { lowSpeedWindowMs, lowSpeedBytesPerSecond } = o.timeouts;
        if (now - windowStart.at >= lowSpeedWindowMs) {
          const rate = ((this.receivedBytes - windowStart.received) * 1000) / (now - windowStart.at);
          if (rate < lowSpeedBytesPerSecond) {
            this.stalled = true;
            this.fail(
              new DownloadError('STALLED', `The transfer from ${redactUrl(this.file.remoteUrl)} went slower than ${lowSpeedBytesPerSecond} bytes/s for ${Math.round(lowSpeedWindowMs / 1000)} s.`, {
                hresult: HRESULTS.WINHTTP_TIMEOUT,
                transient: true,
                context: 'GENERAL_TRANSPORT',
              }),
            );
          }
          windowStart.at = now;
          windowStart.received = this.receivedBytes;
        }
        this.maybeCheckpoint();
      },
      Math.min(1000, o.timeouts.lowSpeedWindowMs, Math.max(50, o.checkpointIntervalMs)),
    );
    timer.unref?.();
    return timer;
  }

  private async runLanes(): Promise<void> {
    const pending = this.lanes.filter(needsRequest);
    if (!this.pool.several) {
      await Promise.all(pending.map((l) => l.run()));
      return;
    }
    // More segments than connections: each connection takes the next segment, so a slow or failing source
    // ends up with fewer of them.
    let next = 0;
    const connection = async (): Promise<void> => {
      while (next < pending.length && !this.inner.signal.aborted) {
        await pending[next++].run();
      }
    };
    await Promise.all(Array.from({ length: connectionCount(this.o.segmentsPerFile, pending.length) }, connection));
  }

  /** The entity changed: the file starts over ('unsplittable': over one connection). */
  private async restart(why: string): Promise<Outcome> {
    await this.hasher?.settle();
    await this.fh.close().catch(() => undefined);
    this.marks?.close();
    resetFile(this.o, why);
    return this.unvalidated ? 'unsplittable' : 'restart';
  }

  /** Stopped or failed: makes what arrived durable, so a resume starts after it; returns what to throw. */
  private async stopped(): Promise<Error> {
    await this.checkpoint().catch(() => undefined);
    await this.hasher?.settle();
    if (this.o.signal.aborted) {
      return new TransferStopped();
    }
    if (this.stalled || this.failure instanceof DownloadError) {
      return this.failure as Error;
    }
    return stopOr(this.failure, this.o, this.file.remoteUrl);
  }

  /** Every byte is written: checks the checksum. Undefined when it matches (or there is none). */
  private async verify(): Promise<'again' | undefined> {
    const { o, file } = this;
    const digest = await this.hasher?.digest();
    if (digest === undefined || digestMatches(file.sha256!, digest)) {
      return undefined;
    }
    // Bytes kept from before the crash were only checked at their end: they may hide a lost range. Fetch them
    // again (next call, without any kept bytes) before calling the file bad.
    const refetched = forgetKept(this.lanes);
    if (refetched > 0) {
      this.marks?.close();
      WriteMarks.remove(o.marksPath);
      file.durableBytes = durablePrefix(this.segs);
      o.log(`${file.localPath}: the checksum failed after a resume that kept unsynced bytes; fetching those ${refetched} range(s) again.`);
      o.onProgress(this.lanes.reduce((n, l) => n + l.rec.done, 0));
      o.onCheckpoint();
      await o.persistNow?.();
      return 'again';
    }
    await this.fh.close().catch(() => undefined);
    await fs.unlink(file.temporaryPath).catch(() => undefined);
    resetFile(o, undefined); // a validation failure is not a restart
    throw validationFailed(file.localPath, file.sha256!, digest);
  }

  /** Verified: makes the file durable and marks it transferred. */
  private async finish(): Promise<'done'> {
    const { o, file } = this;
    try {
      await this.fh.sync();
    } catch (e) {
      throw osError(e, `Cannot flush ${file.temporaryPath} to disk`);
    }
    this.marks?.close();
    WriteMarks.remove(o.marksPath);
    file.segments = undefined;
    file.bootId = undefined;
    file.durableBytes = this.size;
    file.transferred = true;
    o.onProgress(this.size);
    o.onCheckpoint();
    return 'done';
  }

  /** fdatasync, then records as durable what each lane had written and trusted when it began. */
  private checkpoint(): Promise<void> {
    if (this.checkpointing) {
      return this.checkpointing;
    }
    const snapshot = this.lanes.map(trusted);
    this.sinceCheckpoint = 0;
    this.lastCheckpointAt = this.o.now();
    this.checkpointing = this.syncAndRecord(snapshot).finally(() => {
      this.checkpointing = undefined;
    });
    return this.checkpointing;
  }

  private async syncAndRecord(snapshot: number[]): Promise<void> {
    try {
      await this.fh.datasync();
    } catch (e) {
      throw osError(e, `Cannot flush ${this.file.temporaryPath} to disk`);
    }
    let moved = false;
    this.lanes.forEach((l, i) => {
      const done = checkpointedDone(l, snapshot[i]);
      if (done > l.rec.done) {
        l.rec.done = done;
        moved = true;
      }
    });
    if (moved) {
      this.file.durableBytes = durablePrefix(this.segs);
      this.o.onCheckpoint();
    }
  }

  private maybeCheckpoint(): void {
    if (!this.checkpointing && (this.sinceCheckpoint >= this.o.checkpointBytes || this.o.now() - this.lastCheckpointAt >= this.o.checkpointIntervalMs)) {
      this.checkpoint().catch((e) => this.fail(e));
    }
  }

  // What the lanes share (LaneHost).

  takeFirstBody(): Dispatcher.ResponseData['body'] | undefined {
    const body = this.firstBody;
    this.firstBody = undefined;
    return body;
  }

  connected(): void {
    if (!this.isConnected) {
      this.isConnected = true;
      this.o.onConnected();
    }
  }

  received(bytes: number): void {
    this.receivedBytes += bytes;
    this.o.onProgress(this.receivedBytes);
  }

  movedBack(bytes: number): void {
    this.receivedBytes -= bytes;
    this.noteWritten();
    this.o.onProgress(this.receivedBytes);
  }

  wrote(bytes: number): void {
    this.sinceCheckpoint += bytes;
  }

  afterWrite(lane: LaneState): void {
    this.noteWritten();
    if (bootId() !== undefined) {
      // Also journaled with the next save (the store batches), for a store without marks.
      lane.rec.written = lane.written - lane.rec.start;
      this.o.onCheckpoint();
    }
    this.hasher?.frontierMoved();
    this.maybeCheckpoint();
  }

  frontierMoved(): void {
    this.hasher?.frontierMoved();
  }

  fail(e: unknown): void {
    if (this.failure === undefined && this.changed === undefined) {
      this.failure = e;
      this.inner.abort();
    }
  }

  entityChanged(why: string, unvalidated: boolean): void {
    this.unvalidated ||= unvalidated;
    if (this.changed === undefined && this.failure === undefined) {
      this.changed = why;
      this.inner.abort();
    }
  }
}

/** Forgets the segments and validators: the next request starts the file from byte 0 (`why`: a restart, counted). */
function resetFile(o: SegmentedOptions, why: string | undefined): void {
  const { file } = o;
  WriteMarks.remove(o.marksPath);
  if (why) {
    noteRestart(file, why);
    o.log(`${file.localPath}: restarting from byte 0 because ${why}.`);
  }
  file.segments = undefined;
  file.bootId = undefined;
  file.durableBytes = 0;
  file.bytesTotal = undefined;
  file.etag = undefined;
  file.lastModified = undefined;
  o.onProgress(0);
  o.onCheckpoint();
}
