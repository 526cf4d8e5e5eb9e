// One large file over several connections: each segment is a ranged GET guarded by If-Range (and If-Match when
// there is an ETag), written at its offset into the one temporary file. Checkpoints fdatasync the file, then
// record in the journal how far each segment is durable, so a restart fetches only what is missing. A changed
// entity (200 to If-Range, 412, another ETag, size or Content-Range) is never spliced: the file starts over.
import { constants as FS } from './io';
import * as fs from './io';
import type { Dispatcher } from 'undici';
import { DownloadError, HRESULTS, httpError, osError, redactUrl } from './errors';
import { bootId } from './io';
import { digestMatches, validationFailed } from './integrity';
import { PrefixHasher, type HashMode } from './prefixHasher';
import { parseRetryAfter } from './retryAfter';
import { noteRestart } from './restarts';
import { assertRoomFor } from './diskRoom';
import {
  requestFollowingRedirects,
  stopOr,
  TransferStopped,
  WriteBatch,
  type TransferOptions,
} from './transfer';
import { WriteMarks, type MarksKey } from './writeMarks';
import { describeVerdict, judgeResumeResponse } from './resumeJudge';
import { KeptBytesMismatch, pastOverlap, readKept } from './keptBytes';
import { SegmentSources, type OtherSources, type SegmentSource } from './segmentSources';
import {
  bytesHeld,
  checkpointedDone,
  connectionCount,
  durablePrefix,
  forgetKept,
  keptAfterCrash,
  needsRequest,
  overlapToCheck,
  trusted,
  trustedPrefix,
  type LaneState,
} from './segmentPlan';

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

/** Consecutive failures of one segment without progress before the whole transfer gives up (the engine retries later). */
const MAX_SEGMENT_RETRIES = 3;

interface Lane extends LaneState {
  failures: number;
}

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
  const segs = file.segments;
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file.temporaryPath, FS.O_RDWR | (FS.O_NOFOLLOW ?? 0));
  } catch (e) {
    o.firstBody?.destroy();
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      resetFile(o, 'its temporary file is gone');
      return 'restart';
    }
    throw osError(e, `Cannot open the temporary file ${file.temporaryPath}`);
  }
  const inner = new AbortController();
  const onOuterAbort = (): void => inner.abort();
  o.signal.addEventListener('abort', onOuterAbort, { once: true });
  if (o.signal.aborted) {
    inner.abort();
  }
  const io = { ...o, signal: inner.signal };
  const lanes: Lane[] = segs.map((rec) => ({ rec, written: rec.start + rec.done, failures: 0 }));
  let received = bytesHeld(lanes);
  let sinceCheckpoint = 0;
  let lastCheckpointAt = o.now();
  let checkpointing: Promise<void> | undefined;
  let failure: unknown;
  let changed: string | undefined;
  /** A 206 came back without the recorded validators: ranged answers of this server cannot be checked. */
  let unvalidated = false;
  let hasher: PrefixHasher | undefined;
  let connected = false;
  const marksKey: MarksKey = { temporaryPath: file.temporaryPath, size, validator, starts: segs.map((x) => x.start) };
  let marks: WriteMarks | undefined;
  let firstBody = o.firstBody;
  const pool = new SegmentSources(file.remoteUrl, file, o.otherSources, o.log);

  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      throw osError(Object.assign(new Error('not a regular file'), { code: 'EISDIR' }), `The temporary file ${file.temporaryPath} is not a file`);
    }
    await assertRoomFor(file, size, size - segs.reduce((n, x) => n + x.done, 0), o.maxFileSizeBytes);
    if (st.size !== size) {
      if (st.size < size && segs.some((s) => s.done > 0)) {
        o.log(`${file.localPath}: the temporary file is shorter than its segments say; fetching every segment again.`);
        for (const l of lanes) {
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
    }
    // The process died, not the machine: what it had written is in the page cache. Make it durable and keep it,
    // as written but not yet trusted: each kept range is checked against the server first (keptBytes.ts).
    // The journal's `written` is as old as its last save; the marks are as recent as the last write.
    const noted = st.size === size ? WriteMarks.read(o.marksPath, marksKey) : undefined;
    const kept = keptAfterCrash(segs, file.bootId === bootId(), noted);
    const recovered = kept.flatMap((k, i) => (k !== undefined ? [i] : []));
    if (bootId() !== undefined && recovered.length > 0 && st.size === size) {
      try {
        await fh.datasync();
        for (const i of recovered) {
          const l = lanes[i];
          l.keptFrom = l.written;
          l.written = l.rec.start + kept[i]!;
        }
        o.log(`${file.localPath}: kept ${recovered.length} segment(s) written before the process stopped (same boot, now flushed to disk; checked against the server before use).`);
      } catch {
        // Not flushable: fall back to what was known durable.
      }
    }
    for (const l of lanes) {
      l.rec.written = bootId() === undefined ? undefined : l.written - l.rec.start;
    }
    file.bootId = bootId();
    received = bytesHeld(lanes);
    o.onProgress(received);
    marks = WriteMarks.open(o.marksPath, marksKey);
    const noteWritten = (): void => marks?.note(lanes.map((l) => l.written - l.rec.start));
    noteWritten();

    const checkpoint = (): Promise<void> => {
      if (checkpointing) {
        return checkpointing;
      }
      const snapshot = lanes.map(trusted);
      sinceCheckpoint = 0;
      lastCheckpointAt = o.now();
      checkpointing = (async () => {
        try {
          await fh.datasync();
        } catch (e) {
          throw osError(e, `Cannot flush ${file.temporaryPath} to disk`);
        }
        let moved = false;
        lanes.forEach((l, i) => {
          // (Kept bytes found bad meanwhile moved `written` back: never past it.)
          const done = checkpointedDone(l, snapshot[i]);
          if (done > l.rec.done) {
            l.rec.done = done;
            moved = true;
          }
        });
        if (moved) {
          file.durableBytes = durablePrefix(segs);
          o.onCheckpoint();
        }
      })().finally(() => {
        checkpointing = undefined;
      });
      return checkpointing;
    };
    const maybeCheckpoint = (): void => {
      if (!checkpointing && (sinceCheckpoint >= o.checkpointBytes || o.now() - lastCheckpointAt >= o.checkpointIntervalMs)) {
        checkpoint().catch((e) => fail(e));
      }
    };
    const fail = (e: unknown): void => {
      if (failure === undefined && changed === undefined) {
        failure = e;
        inner.abort();
      }
    };
    const entityChanged = (why: string): void => {
      if (changed === undefined && failure === undefined) {
        changed = why;
        inner.abort();
      }
    };

    hasher = PrefixHasher.start({
      sha256: file.sha256,
      hashMode: o.hashMode,
      temporaryPath: file.temporaryPath,
      localPath: file.localPath,
      fh,
      size,
      frontier: () => trustedPrefix(lanes),
      signal: inner.signal,
      onError: (e) => fail(e),
      log: o.log,
    });

    // Low-speed rule over the whole file, as for one connection.
    const windowStart = { at: o.now(), received };
    let stalled = false;
    const speedTimer = setInterval(() => {
      const now = o.now();
      if (now - windowStart.at >= o.timeouts.lowSpeedWindowMs) {
        const rate = ((received - windowStart.received) * 1000) / (now - windowStart.at);
        if (rate < o.timeouts.lowSpeedBytesPerSecond) {
          stalled = true;
          fail(
            new DownloadError('STALLED', `The transfer from ${redactUrl(file.remoteUrl)} went slower than ${o.timeouts.lowSpeedBytesPerSecond} bytes/s for ${Math.round(o.timeouts.lowSpeedWindowMs / 1000)} s.`, {
              hresult: HRESULTS.WINHTTP_TIMEOUT,
              transient: true,
              context: 'GENERAL_TRANSPORT',
            }),
          );
        }
        windowStart.at = now;
        windowStart.received = received;
      }
      maybeCheckpoint();
    }, Math.min(1000, o.timeouts.lowSpeedWindowMs, Math.max(50, o.checkpointIntervalMs)));
    speedTimer.unref?.();

    const runLane = async (lane: Lane): Promise<void> => {
      while (needsRequest(lane) && !inner.signal.aborted) {
        const from = lane.written;
        if (firstBody && from === 0) {
          // The response that revealed the file is this segment's first request: read it up to the segment's end.
          // It was asked under the caller's signal, not this transfer's: stop it too when the transfer stops.
          const body = firstBody;
          firstBody = undefined;
          const stop = (): void => void body.destroy();
          inner.signal.addEventListener('abort', stop, { once: true });
          if (!connected) {
            connected = true;
            o.onConnected();
          }
          try {
            if (inner.signal.aborted) {
              stop();
            }
            const before = lane.written;
            pool.primary.active++;
            await receiveSegment(body, lane, true).finally(() => {
              pool.primary.bytes += lane.written - before;
              pool.release(pool.primary);
            });
          } catch (e) {
            if (!(await retryable(lane, e))) {
              return;
            }
          } finally {
            inner.signal.removeEventListener('abort', stop);
          }
          continue;
        }
        // Kept bytes not yet checked: ask again a few KiB before their end, to compare (keptBytes.ts).
        const overlap = overlapToCheck(lane);
        let expect: Buffer | undefined;
        if (overlap > 0) {
          try {
            expect = await readKept(fh, from - overlap, overlap);
          } catch (e) {
            dropKept(lane, e as KeptBytesMismatch);
            continue;
          }
        }
        const source = pool.take();
        if (source === undefined) {
          fail(noSourceLeft(file.localPath, pool.summaryOfDropped()));
          return;
        }
        try {
          if (!(await requestSegment(lane, source, from, overlap, expect))) {
            return;
          }
        } finally {
          pool.release(source);
        }
      }
    };

    /**
     * One ranged request of `lane` to `source`, and its body written. False when the lane must stop (the run is
     * over); true to go on with the lane's rest. The file's own source (the primary) answering with another
     * entity restarts the file; a mirror doing so is only dropped, and its segment goes to another source.
     */
    const requestSegment = async (lane: Lane, source: SegmentSource, from: number, overlap: number, expect: Buffer | undefined): Promise<boolean> => {
      const end = lane.rec.end;
      const url = source.url;
      const primary = source.entity === file;
      const headers: Record<string, string> = { ...o.headers, range: `bytes=${from - overlap}-${end - 1}` };
      // A mirror not vetted yet is asked without validators: its first answer is judged before a byte is written.
      const guard = source.entity;
      if (guard?.etag ?? guard?.lastModified) {
        headers['if-range'] = (guard.etag ?? guard.lastModified)!;
      }
      if (guard?.etag) {
        headers['if-match'] = guard.etag;
      }
      /** A failure of the source, not of the segment: with other sources left, another one takes the segment. */
      const sourceFailed = async (e: unknown): Promise<boolean> => {
        const err = e instanceof DownloadError || e instanceof TransferStopped ? e : stopOr(e, io, url);
        if (err instanceof DownloadError && !inner.signal.aborted && pool.failed(source, err)) {
          return true;
        }
        return retryable(lane, err);
      };
      let res: Dispatcher.ResponseData;
      try {
        res = await requestFollowingRedirects(url, headers, io);
      } catch (e) {
        return sourceFailed(e);
      }
      const status = res.statusCode;
      if (status !== 206) {
        if (status === 200 || status === 412 || status === 416) {
          res.body.destroy();
          const why = status === 200 ? 'the server sent the whole file to a segment request (it changed, or no longer takes ranges)' : `the server answered ${status} to a segment request (the file changed)`;
          if (!primary) {
            pool.drop(source, why.replace('the server', 'it'));
            return true;
          }
          entityChanged(why);
          return false;
        }
        await res.body.dump().catch(() => undefined);
        const err = httpError(status, url, parseRetryAfter(res.headers['retry-after'], o.now(), o.maxRetryAfterSeconds));
        if (!err.transient && !pool.several) {
          fail(err);
          return false;
        }
        return sourceFailed(err);
      }
      if (source.entity === undefined && pool.vet(source, res.headers) !== undefined) {
        res.body.destroy();
        return true;
      }
      const verdict = judgeResumeResponse(source.entity!, { start: from - overlap, end: end - 1 }, res.headers);
      if (verdict !== 'append') {
        res.body.destroy();
        if (!primary) {
          pool.drop(source, `a segment: ${describeVerdict(verdict, res.headers).replace("the server's", 'its')}`);
          return true;
        }
        unvalidated ||= verdict === 'unvalidated';
        entityChanged(`a segment: ${describeVerdict(verdict, res.headers)}`);
        return false;
      }
      if (!connected) {
        connected = true;
        o.onConnected();
      }
      const before = lane.written;
      try {
        await receiveSegment(res.body, lane, false, expect && { bytes: expect, at: from - overlap });
      } catch (e) {
        source.bytes += lane.written - before;
        if (e instanceof KeptBytesMismatch) {
          dropKept(lane, e);
          return true;
        }
        if (lane.written > before) {
          lane.failures = 0;
          pool.succeeded(source);
        }
        return sourceFailed(e);
      }
      source.bytes += lane.written - before;
      pool.succeeded(source);
      if (lane.written < end) {
        // A clean end before the range's last byte: resume the rest of this segment.
        return sourceFailed(
          new DownloadError('ECONNRESET', `A segment of ${redactUrl(url)} ended early at byte ${lane.written}.`, {
            hresult: HRESULTS.WINHTTP_CONNECTION_ERROR,
            transient: true,
            context: 'GENERAL_TRANSPORT',
          }),
        );
      }
      return true;
    };

    /** Kept bytes found unlike the server's (or unreadable): the lane goes back to its durable offset. */
    const dropKept = (lane: Lane, e: KeptBytesMismatch): void => {
      o.log(`${file.localPath}: ${e.message}; fetching the segment at ${lane.rec.start} again from byte ${lane.keptFrom}.`);
      received -= lane.written - lane.keptFrom!;
      lane.written = lane.keptFrom!;
      lane.keptChecked = true;
      lane.rec.written = bootId() === undefined ? undefined : lane.written - lane.rec.start;
      noteWritten();
      o.onProgress(received);
    };

    /** After a failure of one segment: try it again (only it) unless the run is over or it keeps failing. */
    const retryable = async (lane: Lane, e: unknown): Promise<boolean> => {
      if (inner.signal.aborted) {
        return false;
      }
      const err = e instanceof DownloadError || e instanceof TransferStopped ? e : stopOr(e, io, file.remoteUrl);
      if (err instanceof TransferStopped) {
        return false;
      }
      if (!(err instanceof DownloadError) || !err.transient || ++lane.failures > MAX_SEGMENT_RETRIES) {
        fail(err);
        return false;
      }
      o.log(`${file.localPath}: segment at ${lane.rec.start} failed at byte ${lane.written} (${err.code}); fetching its rest again.`);
      await new Promise((r) => setTimeout(r, 100 * lane.failures));
      return !inner.signal.aborted;
    };

    /**
     * `cut`: the body runs past the segment (a whole-file 200); stop at the segment's end instead of failing.
     * `overlap`: the body starts with these bytes, already in the file at `at`: compared, not written.
     */
    const receiveSegment = async (body: Dispatcher.ResponseData['body'], lane: Lane, cut = false, overlap?: { bytes: Buffer; at: number }): Promise<void> => {
      const batch = new WriteBatch();
      const flush = async (): Promise<void> => {
        if (batch.bytes === 0) {
          return;
        }
        try {
          await batch.writeTo(fh, lane.written, file.temporaryPath, (k) => {
            lane.written += k;
            sinceCheckpoint += k;
          });
        } catch (e) {
          fail(e);
          throw e;
        }
        noteWritten();
        if (bootId() !== undefined) {
          // Also journaled with the next save (the store batches), for a store without marks.
          lane.rec.written = lane.written - lane.rec.start;
          o.onCheckpoint();
        }
        hasher?.frontierMoved();
        maybeCheckpoint();
      };
      const verified = (): void => {
        lane.keptChecked = true;
        hasher?.frontierMoved();
      };
      const chunks = overlap ? pastOverlap(body as AsyncIterable<Buffer>, overlap.bytes, overlap.at, verified) : (body as AsyncIterable<Buffer>);
      try {
        for await (const chunk of chunks) {
          if (lane.written + batch.bytes + chunk.length > lane.rec.end) {
            if (cut) {
              const keep = lane.rec.end - lane.written - batch.bytes;
              batch.add(chunk.subarray(0, keep));
              received += keep;
              o.onProgress(received);
              break;
            }
            throw new DownloadError('WINHTTP_INVALID_SERVER_RESPONSE', `A segment of ${redactUrl(file.remoteUrl)} sent more bytes than asked.`, {
              hresult: HRESULTS.WINHTTP_INVALID_SERVER_RESPONSE,
              transient: true,
              context: 'REMOTE_FILE',
            });
          }
          batch.add(chunk);
          received += chunk.length;
          o.onProgress(received);
          await o.pace?.(chunk.length);
          if (batch.full) {
            await flush();
          }
        }
      } finally {
        // Keep what arrived, whatever happened: the next checkpoint makes it durable.
        await flush().catch(() => undefined);
        if (!body.destroyed) {
          body.destroy();
        }
      }
    };

    try {
      const pending = lanes.filter(needsRequest);
      if (pool.several) {
        // More segments than connections: each connection takes the next segment, so a slow or failing source
        // ends up with fewer of them.
        let next = 0;
        const connection = async (): Promise<void> => {
          while (next < pending.length && !inner.signal.aborted) {
            await runLane(pending[next++]);
          }
        };
        await Promise.all(Array.from({ length: connectionCount(o.segmentsPerFile, pending.length) }, connection));
      } else {
        await Promise.all(pending.map(runLane));
      }
    } finally {
      clearInterval(speedTimer);
    }
    await checkpointing?.catch(() => undefined);

    if (changed !== undefined) {
      await hasher?.settle();
      await fh.close().catch(() => undefined);
      marks?.close();
      resetFile(o, changed);
      return unvalidated ? 'unsplittable' : 'restart';
    }
    if (failure !== undefined || o.signal.aborted) {
      // Make what arrived durable, so a resume starts after it.
      await checkpoint().catch(() => undefined);
      await hasher?.settle();
      if (o.signal.aborted) {
        throw new TransferStopped();
      }
      if (stalled || failure instanceof DownloadError) {
        throw failure;
      }
      throw stopOr(failure, o, file.remoteUrl);
    }

    if (pool.several) {
      o.log(`${file.localPath}: segments served by ${pool.summary() || 'no source this time (every byte was on disk)'}.`);
    }
    // Every byte is written: verify, make it durable, and mark it transferred.
    const digest = await hasher?.digest();
    if (digest !== undefined && !digestMatches(file.sha256!, digest)) {
      // Bytes kept from before the crash were only checked at their end: fetch them again (next call, without
      // any kept bytes) before calling the file bad.
      const refetched = forgetKept(lanes);
      if (refetched > 0) {
        marks?.close();
        WriteMarks.remove(o.marksPath);
        file.durableBytes = durablePrefix(segs);
        o.log(`${file.localPath}: the checksum failed after a resume that kept unsynced bytes; fetching those ${refetched} range(s) again.`);
        o.onProgress(lanes.reduce((n, l) => n + l.rec.done, 0));
        o.onCheckpoint();
        await o.persistNow?.();
        return 'again';
      }
      await fh.close().catch(() => undefined);
      await fs.unlink(file.temporaryPath).catch(() => undefined);
      resetFile(o, undefined); // a validation failure is not a restart
      throw validationFailed(file.localPath, file.sha256!, digest);
    }
    try {
      await fh.sync();
    } catch (e) {
      throw osError(e, `Cannot flush ${file.temporaryPath} to disk`);
    }
    marks?.close();
    WriteMarks.remove(o.marksPath);
    file.segments = undefined;
    file.bootId = undefined;
    file.durableBytes = size;
    file.transferred = true;
    o.onProgress(size);
    o.onCheckpoint();
    return 'done';
  } finally {
    marks?.close();
    firstBody?.destroy();
    o.signal.removeEventListener('abort', onOuterAbort);
    inner.abort();
    hasher?.close();
    await fh.close().catch(() => undefined);
  }
}

function noSourceLeft(localPath: string, dropped: string): DownloadError {
  return new DownloadError('WINHTTP_INVALID_SERVER_RESPONSE', `No source of ${localPath} is left for its segments (${dropped}).`, {
    hresult: HRESULTS.WINHTTP_INVALID_SERVER_RESPONSE,
    context: 'REMOTE_FILE',
  });
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
