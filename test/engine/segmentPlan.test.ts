// The pure decisions of a segmented transfer (segmentPlan.ts): how a file is cut, how far its bytes are
// contiguous, and which bytes kept from before a crash are trusted, made durable or fetched again.
import * as assert from 'node:assert/strict';
import { OVERLAP_BYTES } from '../../src/engine/keptBytes';
import type { SegmentRecord } from '../../src/engine/records';
import {
  bytesHeld,
  canSplit,
  checkpointedDone,
  connectionCount,
  contiguousPrefix,
  durablePrefix,
  forgetKept,
  keptAfterCrash,
  needsRequest,
  overlapToCheck,
  planSegments,
  trusted,
  trustedPrefix,
  unchecked,
  type LaneState,
} from '../../src/engine/segmentPlan';

const MiB = 1024 * 1024;

/** Three segments of 100 bytes tiling [0, 300). */
function segs(done: number[], written?: (number | undefined)[]): SegmentRecord[] {
  return done.map((d, i) => ({ start: 100 * i, end: 100 * (i + 1), done: d, written: written?.[i] }));
}

function lane(rec: SegmentRecord, written: number, kept?: { from: number; checked?: boolean }): LaneState {
  return { rec, written, keptFrom: kept?.from, keptChecked: kept?.checked };
}

describe('segment plan', () => {
  it('plans segments on 1 MiB boundaries, never below the minimum size', () => {
    assert.deepEqual(planSegments(10 * MiB, 4, MiB).map((s) => [s.start, s.end]), [
      [0, 3 * MiB],
      [3 * MiB, 6 * MiB],
      [6 * MiB, 9 * MiB],
      [9 * MiB, 10 * MiB],
    ]);
    assert.equal(planSegments(3 * MiB, 8, 2 * MiB).length, 1);
    assert.equal(planSegments(5 * MiB, 8, 2 * MiB).length, 2);
    assert.ok(planSegments(10 * MiB, 4, MiB).every((s) => s.done === 0), 'nothing done yet');
  });

  it('splits only a large, rangeable, validated, unencoded entity', () => {
    const f = { remoteUrl: '', localPath: '', temporaryPath: '', durableBytes: 0, transferred: false, completed: false, restarts: 0, bytesTotal: 64 * MiB, etag: '"x"' };
    assert.equal(canSplit(f, { 'accept-ranges': 'bytes' }, 4, MiB), true);
    assert.equal(canSplit(f, {}, 4, MiB), false, 'no Accept-Ranges');
    assert.equal(canSplit(f, { 'accept-ranges': 'bytes', 'content-encoding': 'gzip' }, 4, MiB), false, 'encoded');
    assert.equal(canSplit({ ...f, etag: undefined }, { 'accept-ranges': 'bytes' }, 4, MiB), false, 'no strong validator');
    assert.equal(canSplit(f, { 'accept-ranges': 'bytes' }, 1, MiB), false, 'segmenting off');
    assert.equal(canSplit({ ...f, bytesTotal: 2 * MiB - 1 }, { 'accept-ranges': 'bytes' }, 4, MiB), false, 'smaller than two segments');
  });

  it('the contiguous prefix ends at the first segment not reached to its end, or at a hole', () => {
    const s = segs([0, 0, 0]);
    assert.equal(contiguousPrefix(s, (i) => [100, 150, 300][i]), 150);
    assert.equal(contiguousPrefix(s, (i) => [100, 200, 300][i]), 300);
    assert.equal(contiguousPrefix(s, (i) => [40, 200, 300][i]), 40, 'later segments do not count past a gap');
    assert.equal(contiguousPrefix([s[0], s[2]], (i) => [100, 300][i]), 100, 'a hole between segments');
    assert.equal(durablePrefix(segs([100, 60, 100])), 160, "the journal's durable prefix follows `done`");
  });

  it('kept bytes are written but not trusted until an overlap checked them', () => {
    const [a] = segs([20]);
    const kept = lane(a, 80, { from: 20 });
    assert.equal(unchecked(kept), true);
    assert.equal(trusted(kept), 20, 'only up to where the kept bytes start');
    assert.equal(trusted({ ...kept, keptChecked: true }), 80, 'checked: up to what is written');
    assert.equal(unchecked({ ...kept, keptChecked: true }), false);
    assert.equal(unchecked(lane(a, 20, { from: 20 })), false, 'no byte past the durable offset: nothing to check');
    assert.equal(trusted(lane(a, 50)), 50, 'bytes this run wrote are trusted');
  });

  it('a lane asks the server while bytes are missing or kept bytes are unchecked, even at its end', () => {
    const [a] = segs([0]);
    assert.equal(needsRequest(lane(a, 50)), true);
    assert.equal(needsRequest(lane(a, 100)), false);
    assert.equal(needsRequest(lane(a, 100, { from: 30 })), true, 'written to its end from kept bytes');
    assert.equal(needsRequest(lane(a, 100, { from: 30, checked: true })), false);
  });

  it('the hash follows the trusted prefix: unchecked kept bytes stop it where they start', () => {
    const s = segs([100, 0, 0]);
    const lanes = [lane(s[0], 100), lane(s[1], 190, { from: 120 }), lane(s[2], 300)];
    assert.equal(trustedPrefix(lanes), 120);
    lanes[1].keptChecked = true;
    assert.equal(trustedPrefix(lanes), 190);
    assert.equal(bytesHeld(lanes), 100 + 90 + 100, 'progress counts every written byte');
  });

  it("a checkpoint makes durable what was trusted when its fdatasync began, never past what is trusted now", () => {
    const [, b] = segs([0, 0]);
    assert.equal(checkpointedDone(lane(b, 170), 150), 50, 'bytes written during the fdatasync wait for the next one');
    // Kept bytes found bad during the fdatasync moved the lane back to its durable offset.
    assert.equal(checkpointedDone(lane(b, 120, { from: 120, checked: true }), 160), 20);
  });

  it('after a crash of the process, keeps what the journal (same boot) or the marks say was written, within the segment', () => {
    const s = segs([10, 10, 50], [40, 30, 20]);
    assert.deepEqual(keptAfterCrash(s, true, undefined), [40, 30, undefined], "the journal's `written`, where past `done`");
    assert.deepEqual(keptAfterCrash(s, true, [60, 5, 70]), [60, 30, 70], 'the marks where they are further');
    assert.deepEqual(keptAfterCrash(s, false, [60, 5, 70]), [60, undefined, 70], "another boot: only the marks (which carry their boot)");
    assert.deepEqual(keptAfterCrash(s, false, undefined), [undefined, undefined, undefined]);
    assert.deepEqual(keptAfterCrash(segs([0], [500]), true, undefined), [100], 'never past the segment');
  });

  it('kept bytes are checked by an overlap of at most OVERLAP_BYTES before the resume offset', () => {
    const rec = { start: 0, end: 10 * OVERLAP_BYTES, done: 0 };
    assert.equal(overlapToCheck(lane(rec, 3 * OVERLAP_BYTES, { from: OVERLAP_BYTES })), OVERLAP_BYTES);
    assert.equal(overlapToCheck(lane(rec, OVERLAP_BYTES + 10, { from: OVERLAP_BYTES })), 10, 'fewer kept bytes than that');
    assert.equal(overlapToCheck(lane(rec, 3 * OVERLAP_BYTES, { from: OVERLAP_BYTES, checked: true })), 0, 'checked already');
    assert.equal(overlapToCheck(lane(rec, 3 * OVERLAP_BYTES)), 0, 'nothing kept');
  });

  it('a failed checksum after kept bytes sends each kept range back to where its kept bytes start', () => {
    // (A durable offset behind the kept bytes' start is not moved forward to it.)
    const s = segs([70, 30, 100], [90, 80, undefined]);
    const lanes = [lane(s[0], 90, { from: 40, checked: true }), lane(s[1], 180, { from: 140 }), lane(s[2], 300)];
    assert.equal(forgetKept(lanes), 2);
    assert.deepEqual(
      s.map((x) => [x.done, x.written]),
      [
        [40, undefined],
        [30, undefined],
        [100, undefined],
      ],
      'durable offsets moved back (never forward), their written offsets forgotten; other segments untouched',
    );
  });

  it('several sources: one connection per segment up to segmentsPerFile, and at least one', () => {
    assert.equal(connectionCount(4, 10), 4);
    assert.equal(connectionCount(4, 2), 2);
    assert.equal(connectionCount(4, 0), 1);
  });
});
