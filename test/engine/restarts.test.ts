// Bounded restarts (#14.9), as a unit: what counts as progress, when restarting stops, and journal values as
// hostile input. (Cases the mutation run showed untested; the process-level cases are in resumeTrust/httpTransfer.)
import * as assert from 'node:assert/strict';
import type { DownloadError } from '../../src/engine';
import type { FileRecord } from '../../src/engine/records';
import { MAX_FRUITLESS_RESTARTS, noteBytesHeld, noteRestart } from '../../src/engine/restarts';

function file(o: Partial<FileRecord> = {}): FileRecord {
  return { remoteUrl: 'http://example.test/f?sig=secret', localPath: '/tmp/f.bin', temporaryPath: '/tmp/.f.bin.00000000.mdpart', durableBytes: 0, transferred: false, completed: false, restarts: 0, ...o };
}

describe('restarts and progress (unit)', () => {
  it('only bytes past the best offset are progress, and they end a series of fruitless restarts', () => {
    const f = file({ bestOffset: 100, fruitlessRestarts: 3 });
    assert.equal(noteBytesHeld(f, 100), false, 'the same bytes again');
    assert.equal(f.fruitlessRestarts, 3);
    assert.equal(noteBytesHeld(f, 101), true, 'a new byte');
    assert.deepEqual([f.bestOffset, f.fruitlessRestarts], [101, 0]);
  });

  it(`stops after ${MAX_FRUITLESS_RESTARTS} restarts in a row with DO_E_DOWNLOAD_NO_PROGRESS (fatal, REMOTE_FILE, URL redacted), then starts a fresh series`, () => {
    const f = file({ bestOffset: 900 });
    for (let i = 1; i <= MAX_FRUITLESS_RESTARTS; i++) {
      noteRestart(f, 'the connection broke');
      assert.equal(f.fruitlessRestarts, i);
    }
    const err = (() => {
      try {
        noteRestart(f, 'the connection broke');
      } catch (e) {
        return e as DownloadError;
      }
      return assert.fail('the restart after the last one should throw');
    })();
    assert.equal(err.code, 'DO_E_DOWNLOAD_NO_PROGRESS');
    assert.equal(err.transient, false);
    assert.equal(err.context, 'REMOTE_FILE');
    assert.match(err.message, /without getting past byte 900/);
    assert.doesNotMatch(err.message, /secret/);
    assert.equal(f.fruitlessRestarts, 0, 'a Resume by the user gets a fresh series');
    assert.equal(f.restarts, MAX_FRUITLESS_RESTARTS + 1);
  });

  it('journal values that are not whole numbers ≥ 0 count as 0 (hostile store)', () => {
    for (const bad of [-5, 1.5, Number.NaN, '7', null]) {
      const f = file({ bestOffset: bad as unknown as number, fruitlessRestarts: bad as unknown as number });
      assert.equal(noteBytesHeld(f, 0), false, `bestOffset ${String(bad)}: byte 0 is not past it`);
      assert.equal(noteBytesHeld(f, 1), true, `bestOffset ${String(bad)}: byte 1 is`);
      const g = file({ fruitlessRestarts: bad as unknown as number });
      noteRestart(g, 'x');
      assert.equal(g.fruitlessRestarts, 1, `fruitlessRestarts ${String(bad)} counts as 0`);
    }
  });
});
