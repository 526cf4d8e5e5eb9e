// The decisions of a segmented transfer that are functions of data alone: whether and how a file is cut into
// segments, how far its bytes are contiguous from byte 0, and which written bytes are trusted. Bytes kept from
// before a crash of the process are written but not trusted (hashed, made durable) until an overlap with the
// server's bytes matched them (keptBytes.ts). No I/O here: segmentedTransfer.ts and segmentLane.ts act on these.
import type { Dispatcher } from 'undici';
import { OVERLAP_BYTES } from './keptBytes';
import type { FileRecord, SegmentRecord } from './records';

const ALIGN = 1024 * 1024;

/** Whether a fresh 200 response describes a file worth splitting. */
export function canSplit(file: FileRecord, headers: Dispatcher.ResponseData['headers'], segments: number, minSegmentBytes: number): boolean {
  const ranges = String(headers['accept-ranges'] ?? '').toLowerCase();
  const encoding = headers['content-encoding'];
  return (
    segments > 1 &&
    file.bytesTotal !== undefined &&
    file.bytesTotal >= 2 * minSegmentBytes &&
    (file.etag !== undefined || file.lastModified !== undefined) &&
    ranges.split(',').some((r) => r.trim() === 'bytes') &&
    (encoding === undefined || encoding === 'identity')
  );
}

/** Splits [0, size) into at most `n` segments of at least `minSegmentBytes`, on 1 MiB boundaries. */
export function planSegments(size: number, n: number, minSegmentBytes: number): SegmentRecord[] {
  const count = Math.max(1, Math.min(n, Math.floor(size / Math.max(1, minSegmentBytes))));
  const step = Math.max(ALIGN, Math.ceil(size / count / ALIGN) * ALIGN);
  const out: SegmentRecord[] = [];
  for (let start = 0; start < size; start += step) {
    out.push({ start, end: Math.min(size, start + step), done: 0 });
  }
  return out;
}

/** Bytes from 0 that are contiguous, given how far each segment got (segments tile the file in order). */
export function contiguousPrefix(segs: readonly { start: number; end: number }[], reached: (i: number) => number): number {
  let pos = 0;
  for (let i = 0; i < segs.length; i++) {
    if (segs[i].start > pos) {
      break;
    }
    pos = reached(i);
    if (pos < segs[i].end) {
      break;
    }
  }
  return pos;
}

/** Bytes from 0 that the journal holds durable (each segment's `done`). */
export function durablePrefix(segs: readonly SegmentRecord[]): number {
  return contiguousPrefix(segs, (i) => segs[i].start + segs[i].done);
}

/** Where one segment stands while it runs (the journal's record, and what this run wrote on top of it). */
export interface LaneState {
  rec: SegmentRecord;
  /** Absolute offset up to which bytes are written to the file (not necessarily durable). */
  written: number;
  /**
   * Set when the lane kept bytes written before a crash of the process (same boot): where they start (the
   * durable offset). They are not trusted (hashed, checkpointed) until an overlap with the server's bytes matched.
   */
  keptFrom?: number;
  keptChecked?: boolean;
}

/** Kept bytes are written that no overlap has checked yet. */
export function unchecked(l: LaneState): boolean {
  return l.keptFrom !== undefined && !l.keptChecked && l.written > l.keptFrom;
}

/** How far a lane's bytes can be built on: its written offset, or the start of its kept bytes until they are checked. */
export function trusted(l: LaneState): number {
  return l.keptFrom !== undefined && !l.keptChecked ? l.keptFrom : l.written;
}

/** Whether the lane still has to ask the server: bytes are missing, or kept ones are unchecked. */
export function needsRequest(l: LaneState): boolean {
  return l.written < l.rec.end || unchecked(l);
}

/** Bytes from 0 that are written and trusted: how far the checksum may read. */
export function trustedPrefix(lanes: readonly LaneState[]): number {
  return contiguousPrefix(
    lanes.map((l) => l.rec),
    (i) => trusted(lanes[i]),
  );
}

/** Bytes written over all segments (progress). */
export function bytesHeld(lanes: readonly LaneState[]): number {
  return lanes.reduce((n, l) => n + (l.written - l.rec.start), 0);
}

/**
 * A checkpoint's new `done` for a lane (bytes from its start), from what was trusted when its fdatasync began:
 * never past what is trusted now (kept bytes found bad meanwhile moved `written` back).
 */
export function checkpointedDone(l: LaneState, trustedAtSync: number): number {
  return Math.min(trustedAtSync, trusted(l)) - l.rec.start;
}

/**
 * After a crash of the process within the same boot, how far each segment's written bytes reach (from its
 * start), where that is past its durable `done`: the journal's `written` (as old as its last save, and only
 * from this boot) or the marks noted after every write, whichever is further, within the segment. Undefined:
 * nothing to keep.
 */
export function keptAfterCrash(segs: readonly SegmentRecord[], sameBoot: boolean, noted: readonly number[] | undefined): (number | undefined)[] {
  return segs.map((s, i) => {
    const wrote = Math.max(sameBoot ? (s.written ?? 0) : 0, noted?.[i] ?? 0);
    return wrote > s.done ? Math.min(wrote, s.end - s.start) : undefined;
  });
}

/** The bytes of overlap to ask again before the lane's resume offset, to check its kept bytes (0: none to check). */
export function overlapToCheck(l: LaneState): number {
  return unchecked(l) ? Math.min(OVERLAP_BYTES, l.written - l.keptFrom!) : 0;
}

/**
 * The checksum failed after a resume that kept bytes from before a crash: those were only checked at their end
 * and may hide a lost range. Each such segment's durable offset goes back to where its kept bytes start, so the
 * next call fetches them again. Returns how many segments that touched.
 */
export function forgetKept(lanes: readonly LaneState[]): number {
  const kept = lanes.filter((l) => l.keptFrom !== undefined);
  for (const l of kept) {
    l.rec.done = Math.min(l.rec.done, l.keptFrom! - l.rec.start);
    l.rec.written = undefined;
  }
  return kept.length;
}

/** With several sources, the connections that take the pending segments one after another. */
export function connectionCount(segmentsPerFile: number, pending: number): number {
  return Math.max(1, Math.min(segmentsPerFile, pending));
}
