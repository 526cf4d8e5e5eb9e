// The transition table (src/engine/transitions.ts), cell by cell: every state × action for the kinds of job that
// answer differently. A cell is the state the call moves the job to, '=' (allowed, stays) or the refusal's code.
import * as assert from 'node:assert/strict';
import { JOB_STATES, type JobState, type JobType } from '../../src/engine';
import { JOB_ACTIONS, offers, verdict, type JobAction, type JobFacts, type OfferedAction } from '../../src/engine/transitions';

type Cell = JobState | '=' | 'INVALID' | 'EMPTY' | 'TOO_MANY';
type Row = Record<JobAction, Cell>;

const FINAL: Row = { resume: 'INVALID', suspend: 'INVALID', complete: 'INVALID', cancel: 'INVALID', addFile: 'INVALID', modify: 'INVALID', changeUrl: 'INVALID', remove: '=' };

function row(resume: Cell, suspend: Cell, complete: Cell, addFile: Cell = '=', changeUrl: Cell = '='): Row {
  return { resume, suspend, complete, cancel: 'CANCELLED', addFile, modify: '=', changeUrl, remove: 'INVALID' };
}

/** A download job whose one file is still to fetch. */
const downloadPending: Record<JobState, Row> = {
  SUSPENDED: row('QUEUED', '=', 'ACKNOWLEDGED'),
  QUEUED: row('=', 'SUSPENDED', 'ACKNOWLEDGED'),
  CONNECTING: row('=', 'SUSPENDED', 'ACKNOWLEDGED'),
  TRANSFERRING: row('=', 'SUSPENDED', 'ACKNOWLEDGED'),
  TRANSIENT_ERROR: row('QUEUED', 'SUSPENDED', 'ACKNOWLEDGED'),
  ERROR: row('QUEUED', 'SUSPENDED', 'ACKNOWLEDGED'),
  TRANSFERRED: row('QUEUED', 'SUSPENDED', 'ACKNOWLEDGED'),
  ACKNOWLEDGED: FINAL,
  CANCELLED: FINAL,
};

/** The same with its file transferred: nothing left to fetch, so resume on TRANSFERRED does nothing. */
const downloadDone: Record<JobState, Row> = { ...downloadPending, TRANSFERRED: row('=', 'SUSPENDED', 'ACKNOWLEDGED') };

/** No files yet: resume has nothing to transfer (DO_E_JOB_EMPTY). */
const downloadEmpty: Record<JobState, Row> = Object.fromEntries(
  JOB_STATES.map((s) => [s, s === 'ACKNOWLEDGED' || s === 'CANCELLED' ? FINAL : { ...downloadPending[s], resume: 'EMPTY' }]),
) as Record<JobState, Row>;

/** An upload holding its one file: complete only once TRANSFERRED, no second file, no URL change. */
const uploadPending: Record<JobState, Row> = Object.fromEntries(
  JOB_STATES.map((s) => [
    s,
    s === 'ACKNOWLEDGED' || s === 'CANCELLED'
      ? FINAL
      : { ...downloadPending[s], complete: s === 'TRANSFERRED' ? 'ACKNOWLEDGED' : 'INVALID', addFile: 'TOO_MANY', changeUrl: 'INVALID' },
  ]),
) as Record<JobState, Row>;

const uploadEmpty: Record<JobState, Row> = Object.fromEntries(
  JOB_STATES.map((s) => [s, s === 'ACKNOWLEDGED' || s === 'CANCELLED' ? FINAL : { ...uploadPending[s], resume: 'EMPTY', addFile: '=' }]),
) as Record<JobState, Row>;

const KINDS: { name: string; type: JobType; files: number; done: number; table: Record<JobState, Row> }[] = [
  { name: 'download, one file to fetch', type: 'download', files: 1, done: 0, table: downloadPending },
  { name: 'download, its file transferred', type: 'download', files: 1, done: 1, table: downloadDone },
  { name: 'download, no files', type: 'download', files: 0, done: 0, table: downloadEmpty },
  { name: 'upload, its file to send', type: 'upload', files: 1, done: 0, table: uploadPending },
  { name: 'upload, no file', type: 'upload', files: 0, done: 0, table: uploadEmpty },
];

function cellOf(action: JobAction, facts: JobFacts): Cell {
  const v = verdict(action, facts);
  if (!v.allowed) {
    return v.code === 'DO_E_INVALID_STATE' ? 'INVALID' : v.code === 'DO_E_JOB_EMPTY' ? 'EMPTY' : 'TOO_MANY';
  }
  return v.to ?? '=';
}

describe('transition table: state × action', () => {
  for (const kind of KINDS) {
    it(`${kind.name}: every state × action`, () => {
      const wrong: string[] = [];
      for (const state of JOB_STATES) {
        const facts: JobFacts = { state, type: kind.type, files: kind.files, done: kind.done, keepable: kind.done };
        for (const action of JOB_ACTIONS) {
          const got = cellOf(action, facts);
          if (got !== kind.table[state][action]) {
            wrong.push(`${state} × ${action}: ${got}, expected ${kind.table[state][action]}`);
          }
        }
      }
      assert.deepEqual(wrong, []);
    });
  }

  it('a final job refuses every call but remove with DO_E_INVALID_STATE, and gives no reason beyond its state', () => {
    for (const state of ['ACKNOWLEDGED', 'CANCELLED'] as const) {
      for (const action of JOB_ACTIONS.filter((a) => a !== 'remove')) {
        assert.deepEqual(verdict(action, { state, type: 'download', files: 1, done: 1, keepable: 0 }), { allowed: false, code: 'DO_E_INVALID_STATE' });
      }
    }
  });

  // What the menus and pickers offer, for a download with two files, one of them transferred (so there is
  // something to keep and something to fetch): what the tree offers, and what the palette offers besides.
  const OFFERED: Record<JobState, { tree: OfferedAction[]; palette: OfferedAction[] }> = {
    SUSPENDED: { tree: ['resume', 'complete', 'cancel', 'addFile', 'modify', 'changeUrl'], palette: [] },
    QUEUED: { tree: ['suspend', 'complete', 'cancel', 'addFile', 'modify', 'changeUrl'], palette: [] },
    CONNECTING: { tree: ['suspend', 'complete', 'cancel', 'addFile', 'modify', 'changeUrl'], palette: [] },
    TRANSFERRING: { tree: ['suspend', 'complete', 'cancel', 'addFile', 'modify', 'changeUrl'], palette: [] },
    TRANSIENT_ERROR: { tree: ['retry', 'suspend', 'complete', 'cancel', 'addFile', 'modify', 'changeUrl'], palette: ['resume'] },
    ERROR: { tree: ['retry', 'complete', 'cancel', 'modify', 'changeUrl'], palette: ['resume', 'suspend', 'addFile'] },
    TRANSFERRED: { tree: ['resume', 'complete', 'cancel', 'addFile', 'modify', 'changeUrl'], palette: [] },
    ACKNOWLEDGED: { tree: ['remove'], palette: ['complete', 'cancel'] },
    CANCELLED: { tree: ['remove'], palette: ['complete', 'cancel'] },
  };
  const ALL: OfferedAction[] = [...JOB_ACTIONS, 'retry'];

  it('what the tree and the palette offer in each state (a download with one of two files transferred)', () => {
    for (const state of JOB_STATES) {
      const facts: JobFacts = { state, type: 'download', files: 2, done: 1, keepable: 1 };
      const tree = ALL.filter((a) => offers(a, facts, 'tree'));
      const palette = ALL.filter((a) => offers(a, facts, 'palette'));
      assert.deepEqual(new Set(tree), new Set(OFFERED[state].tree), `${state} in the tree`);
      assert.deepEqual(new Set(palette), new Set([...OFFERED[state].tree, ...OFFERED[state].palette]), `${state} in the palette`);
    }
  });

  it('the tree offers Complete only when there is something to keep; an upload only once TRANSFERRED', () => {
    const nothing = (state: JobState, type: JobType = 'download'): JobFacts => ({ state, type, files: 1, done: 0, keepable: 0 });
    assert.equal(offers('complete', nothing('TRANSFERRING'), 'tree'), false);
    assert.equal(offers('complete', nothing('TRANSFERRED'), 'tree'), true);
    assert.equal(offers('complete', { ...nothing('TRANSFERRING'), done: 1, keepable: 1, files: 2 }, 'tree'), true);
    assert.equal(offers('complete', { ...nothing('SUSPENDED', 'upload'), done: 1, keepable: 1 }, 'tree'), false);
    assert.equal(offers('complete', nothing('TRANSFERRED', 'upload'), 'tree'), true);
    assert.equal(offers('addFile', nothing('SUSPENDED', 'upload'), 'palette'), false);
    assert.equal(offers('changeUrl', { ...nothing('SUSPENDED'), done: 1 }, 'palette'), false, 'nothing left whose URL could change');
  });
});
