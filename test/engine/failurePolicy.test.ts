// The failure policy on its own (failurePolicy.ts): which failures are fatal, when a transient one gives up for
// lack of progress, which delay and retry time it gets, and when a waiting job is due. Each case pins one decision
// (a boundary, a reset, an operand), so a mutated decision fails at least one of them.
import * as assert from 'node:assert/strict';
import { judgeFailure, judgeRetryWait, rescheduledRetryAt, type RetrySettings } from '../../src/engine/failurePolicy';

const NOW = 1_000_000;
const transient = { transient: true };

function settings(o: Partial<RetrySettings> = {}): RetrySettings {
  return { minimumRetryDelaySeconds: 600, noProgressTimeoutSeconds: 1_209_600, ...o };
}

describe('failure policy', () => {
  describe('judgeFailure', () => {
    it('a fatal error is ERROR whatever the retry settings', () => {
      assert.deepEqual(judgeFailure({ transient: false, retryAfterSeconds: 5 }, settings({ noProgressSince: NOW - 1 }), NOW), { kind: 'fatal' });
    });

    it('the first transient failure of a stretch starts it now and waits the first delay', () => {
      assert.deepEqual(judgeFailure(transient, settings({ retryDelaysSeconds: [5, 15] }), NOW), {
        kind: 'retry',
        noProgressSince: NOW,
        retriesWithoutProgress: 1,
        delaySeconds: 5,
        retryAt: NOW + 5_000,
      });
    });

    it('a later failure of the same stretch keeps its start and takes the next delay', () => {
      const v = judgeFailure(transient, settings({ retryDelaysSeconds: [5, 15], noProgressSince: NOW - 20_000, retriesWithoutProgress: 1 }), NOW);
      assert.deepEqual(v, { kind: 'retry', noProgressSince: NOW - 20_000, retriesWithoutProgress: 2, delaySeconds: 15, retryAt: NOW + 15_000 });
    });

    it('a stretch with no count yet counts from the first delay', () => {
      const v = judgeFailure(transient, settings({ retryDelaysSeconds: [5, 15], noProgressSince: NOW - 1_000 }), NOW);
      assert.deepEqual(v, { kind: 'retry', noProgressSince: NOW - 1_000, retriesWithoutProgress: 1, delaySeconds: 5, retryAt: NOW + 5_000 });
    });

    it('progress (no noProgressSince) starts the schedule over, whatever the old count', () => {
      const v = judgeFailure(transient, settings({ retryDelaysSeconds: [5, 15], retriesWithoutProgress: 1 }), NOW);
      assert.equal(v.kind, 'retry');
      assert.equal(v.kind === 'retry' && v.delaySeconds, 5);
      assert.equal(v.kind === 'retry' && v.retriesWithoutProgress, 1);
    });

    it("the server's Retry-After is never undercut", () => {
      const v = judgeFailure({ transient: true, retryAfterSeconds: 90 }, settings({ retryDelaysSeconds: [5] }), NOW);
      assert.equal(v.kind === 'retry' && v.retryAt, NOW + 90_000);
    });

    it('a no-progress timeout of 0 gives up at the first transient failure, even with the clock set back', () => {
      assert.deepEqual(judgeFailure(transient, settings({ noProgressTimeoutSeconds: 0, minimumRetryDelaySeconds: 0 }), NOW), { kind: 'noProgress', noProgressSince: NOW });
      const later = NOW + 60_000;
      assert.deepEqual(judgeFailure(transient, settings({ noProgressTimeoutSeconds: 0, minimumRetryDelaySeconds: 0, noProgressSince: later }), NOW), { kind: 'noProgress', noProgressSince: later });
    });

    it('a delay longer than the timeout gives up; one exactly as long waits', () => {
      assert.equal(judgeFailure(transient, settings({ noProgressTimeoutSeconds: 59, minimumRetryDelaySeconds: 60 }), NOW).kind, 'noProgress');
      assert.equal(judgeFailure(transient, settings({ noProgressTimeoutSeconds: 60, minimumRetryDelaySeconds: 60 }), NOW).kind, 'retry');
    });

    it('gives up once the stretch is as old as the timeout, not a millisecond before', () => {
      const at = (ago: number) => judgeFailure(transient, settings({ noProgressTimeoutSeconds: 100, minimumRetryDelaySeconds: 5, noProgressSince: NOW - ago }), NOW);
      assert.deepEqual(at(100_000), { kind: 'noProgress', noProgressSince: NOW - 100_000 });
      assert.equal(at(99_999).kind, 'retry');
    });
  });

  describe('judgeRetryWait', () => {
    it('waits until the retry time, capped by the no-progress deadline', () => {
      assert.deepEqual(judgeRetryWait({ noProgressTimeoutSeconds: 100, retryAt: NOW + 30_000, noProgressSince: NOW - 10_000 }, NOW), { kind: 'wait', ms: 30_000 });
      assert.deepEqual(judgeRetryWait({ noProgressTimeoutSeconds: 100, retryAt: NOW + 300_000, noProgressSince: NOW - 10_000 }, NOW), { kind: 'wait', ms: 90_000 });
    });

    it('is due at the retry time, or at once without one', () => {
      assert.deepEqual(judgeRetryWait({ noProgressTimeoutSeconds: 100, retryAt: NOW, noProgressSince: NOW - 10_000 }, NOW), { kind: 'retryNow' });
      assert.deepEqual(judgeRetryWait({ noProgressTimeoutSeconds: 100, retryAt: NOW + 1, noProgressSince: NOW - 10_000 }, NOW), { kind: 'wait', ms: 1 });
      assert.deepEqual(judgeRetryWait({ noProgressTimeoutSeconds: 100 }, NOW), { kind: 'retryNow' });
    });

    it('gives up at the no-progress deadline, even with a retry due', () => {
      assert.deepEqual(judgeRetryWait({ noProgressTimeoutSeconds: 100, retryAt: NOW - 1, noProgressSince: NOW - 100_000 }, NOW), { kind: 'giveUp' });
      assert.deepEqual(judgeRetryWait({ noProgressTimeoutSeconds: 100, retryAt: NOW - 1, noProgressSince: NOW - 99_999 }, NOW), { kind: 'retryNow' });
    });

    it('has no deadline while the job has made progress', () => {
      assert.deepEqual(judgeRetryWait({ noProgressTimeoutSeconds: 0, retryAt: NOW + 5_000 }, NOW), { kind: 'wait', ms: 5_000 });
    });
  });

  describe('rescheduledRetryAt', () => {
    const waiting = {
      state: 'TRANSIENT_ERROR' as const,
      retryAt: NOW + 600_000,
      retryWaitStarted: NOW,
      retriesWithoutProgress: 2,
      minimumRetryDelaySeconds: 600,
    };

    it('counts the wait under way from its start with the delay of its own retry', () => {
      assert.equal(rescheduledRetryAt({ ...waiting, retryDelaysSeconds: [5, 15, 60] }), NOW + 15_000);
      assert.equal(rescheduledRetryAt({ ...waiting, retriesWithoutProgress: undefined, retryDelaysSeconds: [5, 15] }), NOW + 5_000);
    });

    it("keeps the server's Retry-After", () => {
      assert.equal(rescheduledRetryAt({ ...waiting, retryDelaysSeconds: [5, 15], serverRetryAfterSeconds: 40 }), NOW + 40_000);
    });

    it('leaves a job alone that is not waiting for a retry', () => {
      assert.equal(rescheduledRetryAt({ ...waiting, state: 'QUEUED' }), undefined);
      assert.equal(rescheduledRetryAt({ ...waiting, retryAt: undefined }), undefined);
      assert.equal(rescheduledRetryAt({ ...waiting, retryWaitStarted: undefined }), undefined);
    });
  });
});
