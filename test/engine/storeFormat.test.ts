// The job store's text formats (storeFormat.ts) as pure functions: what is read back, and what is refused.
// The store's own tests go through files and crashes; these pin each decision of the reader, so that a
// mutation of one check (a field no longer validated, a torn line counted as whole) fails here.
import * as assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import {
  isJobRecord,
  logFileName,
  logGeneration,
  parseLog,
  parseSnapshot,
  putLine,
  removeLine,
  snapshotLines,
  snapshotText,
  STORE_FORMAT,
  STORE_VERSION,
  validateLoadedRecord,
} from '../../src/engine/storeFormat';

const ID = '0f8fad5b-d9cb-469f-a165-70867728950e';

function record(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: ID,
    displayName: 'été.bin',
    state: 'SUSPENDED',
    priority: 'NORMAL',
    type: 'download',
    created: 1,
    files: [{ remoteUrl: 'https://example.com/a', localPath: '/tmp/a', temporaryPath: '/tmp/.a.mdpart', durableBytes: 0 }],
    ...over,
  };
}

/** A log line with a good checksum around any payload (even one that is not a change). */
const line = (payload: string): string => `${crc32(payload).toString(16).padStart(8, '0')} ${payload}\n`;

describe('job store format', () => {
  it('names logs by generation and recognises only those names', () => {
    assert.equal(logFileName(7), 'jobs.7.log');
    assert.equal(logGeneration('jobs.7.log'), 7);
    assert.equal(logGeneration('jobs.0.log'), 0);
    for (const other of ['jobs.json', 'jobs..log', 'jobs.x.log', 'xjobs.7.log', 'jobs.7.log.tmp', 'jobs.1234567890123456.log']) {
      assert.equal(logGeneration(other), undefined, other);
    }
  });

  describe('job records', () => {
    it('accepts a well-formed record of each type, state and priority', () => {
      assert.ok(isJobRecord(record()));
      assert.ok(isJobRecord(record({ type: 'upload' })));
      assert.ok(isJobRecord(record({ state: 'ACKNOWLEDGED', priority: 'FOREGROUND', files: [] })));
    });

    const damaged: [string, unknown][] = [
      ['not an object', 'a string'],
      ['null', null],
      ['an id that is not a string', record({ id: 42 })],
      ['a name that is not a string', record({ displayName: undefined })],
      ['an unknown state', record({ state: 'DONE' })],
      ['an unknown priority', record({ priority: 'URGENT' })],
      ['an unknown type', record({ type: '' })],
      ['another unknown type', record({ type: 'mirror' })],
      ['a creation time that is not a number', record({ created: '1' })],
      ['files that are not a list', record({ files: {} })],
      ['a file that is null', record({ files: [null] })],
      ['a file that is not an object', record({ files: ['a'] })],
      ['a file without a URL', record({ files: [{ localPath: '/a', temporaryPath: '/b', durableBytes: 0 }] })],
      ['a file without a destination', record({ files: [{ remoteUrl: 'https://e/a', temporaryPath: '/b', durableBytes: 0 }] })],
      ['a file without a temporary path', record({ files: [{ remoteUrl: 'https://e/a', localPath: '/a', durableBytes: 0 }] })],
      ['a file whose durable count is not a number', record({ files: [{ remoteUrl: 'https://e/a', localPath: '/a', temporaryPath: '/b', durableBytes: '0' }] })],
    ];
    for (const [what, value] of damaged) {
      it(`refuses ${what}`, () => {
        assert.equal(isJobRecord(value), false);
        const why = validateLoadedRecord(value);
        assert.equal(typeof why, 'string');
        assert.ok((why as string).startsWith('A damaged job entry was skipped: '), why as string);
      });
    }

    it('says what it skipped, cut to 120 characters, even for a value JSON cannot write', () => {
      const long = record({ state: 'X', displayName: 'n'.repeat(500) });
      assert.equal(validateLoadedRecord(long), `A damaged job entry was skipped: ${JSON.stringify(long).slice(0, 120)}`);
      assert.equal(validateLoadedRecord(undefined), 'A damaged job entry was skipped: undefined');
      const good = record();
      assert.equal(validateLoadedRecord(good), good);
    });
  });

  describe('snapshot', () => {
    const head = `{"format":"${STORE_FORMAT}","version":${STORE_VERSION},"log":3,"jobs":[`;

    it('writes one job a line, and an empty store on one line', () => {
      assert.equal(snapshotText(3, []), `${head}]}\n`);
      assert.equal(snapshotText(3, ['{"a":1}', '{"b":2}']), `${head}\n{"a":1},\n{"b":2}\n]}\n`);
    });

    it('cuts its own layout into a head and one text per job, and reads back what it wrote', () => {
      const jobs = [JSON.stringify(record()), JSON.stringify(record({ displayName: 'b' }))];
      const text = snapshotText(3, jobs);
      const cut = snapshotLines(text);
      assert.deepEqual(cut, { head: `${head}]}`, jobs });
      const parsed = parseSnapshot(text);
      assert.ok(parsed.ok);
      assert.deepEqual(parsed, { ok: true, version: STORE_VERSION, generation: 3, jobs: jobs.map((j) => JSON.parse(j) as unknown) });
      assert.deepEqual(snapshotLines(snapshotText(3, [jobs[0]])), { head: `${head}]}`, jobs: [jobs[0]] });
    });

    it('leaves any other layout to a whole parse', () => {
      const good = snapshotText(3, ['{"a":1}', '{"b":2}']);
      assert.ok(snapshotLines(good));
      const others = [
        snapshotText(3, []), // one line
        good.replace('{"a":1},', '{"a":1}'), // a job line without its comma
        good.replace('"jobs":[\n', '"jobs": [\n'), // another head
        good.replace('\n]}\n', '\n]\n}\n'), // another tail
        good.slice(0, -1), // no final newline
      ];
      for (const text of others) {
        assert.equal(snapshotLines(text), undefined, JSON.stringify(text));
      }
    });

    it('refuses what is not a store of this or an older version, saying why', () => {
      const cases: [string, string][] = [
        ['{"format":', 'it is not valid JSON (truncated or overwritten)'],
        ['null', 'it is not a Managed Downloads job store'],
        ['5', 'it is not a Managed Downloads job store'],
        [`{"format":"other","version":2,"jobs":[]}`, 'it is not a Managed Downloads job store'],
        [`{"format":"${STORE_FORMAT}","version":"2","jobs":[]}`, 'it is not a Managed Downloads job store'],
        [`{"format":"${STORE_FORMAT}","version":2}`, 'its job list is missing'],
        [`{"format":"${STORE_FORMAT}","version":2,"jobs":{}}`, 'its job list is missing'],
      ];
      for (const [text, why] of cases) {
        assert.deepEqual(parseSnapshot(text), { ok: false, why }, text);
      }
      assert.deepEqual(parseSnapshot(`{"format":"${STORE_FORMAT}","version":${STORE_VERSION + 1},"jobs":[]}`), {
        ok: false,
        newerVersion: STORE_VERSION + 1,
        why: 'it was written by a newer version',
      });
    });

    it('reads the log generation of version 2 only when it is a whole number ≥ 0, and none for version 1', () => {
      const gen = (version: number, log: unknown): number | undefined => {
        const p = parseSnapshot(JSON.stringify({ format: STORE_FORMAT, version, log, jobs: [] }));
        return p.ok ? p.generation : undefined;
      };
      assert.equal(gen(2, 5), 5);
      assert.equal(gen(2, 0), 0);
      assert.equal(gen(1, 5), 0, 'version 1 has no log');
      assert.equal(gen(2, -1), 0);
      assert.equal(gen(2, 1.5), 0);
      assert.equal(gen(2, '5'), 0);
      assert.equal(gen(2, 2 ** 60), 0);
    });
  });

  describe('log', () => {
    it('writes a checksum, a space and the change on each line, and reads them back in order', () => {
      const put = putLine('{"id":"a"}');
      assert.equal(put, line('{"put":{"id":"a"}}'));
      assert.equal(removeLine(ID), line(`{"remove":"${ID}"}`));
      const text = put + removeLine(ID) + putLine('{"id":"b"}');
      assert.deepEqual(parseLog(text), {
        changes: [{ put: { id: 'a' } }, { remove: ID }, { put: { id: 'b' } }],
        validBytes: Buffer.byteLength(text),
        intact: true,
        linesAfterDamage: 0,
      });
      assert.deepEqual(parseLog(''), { changes: [], validBytes: 0, intact: true, linesAfterDamage: 0 });
    });

    it('counts bytes, not characters, so a torn tail is cut at the right offset', () => {
      const first = putLine(JSON.stringify(record()));
      const torn = putLine('{"id":"b"}').slice(0, 12);
      const p = parseLog(first + torn);
      assert.equal(p.changes.length, 1);
      assert.equal(p.validBytes, Buffer.byteLength(first));
      assert.ok(Buffer.byteLength(first) > first.length, 'the record has a character of two bytes');
      assert.equal(p.intact, false, 'a torn tail is not intact');
      assert.equal(p.linesAfterDamage, 0, 'a torn tail has no whole line after it');
    });

    it('stops at the first damaged line and says how many whole lines follow it', () => {
      const a = putLine('{"id":"a"}');
      const bad = putLine('{"id":"b"}').replace('"b"', '"c"'); // checksum no longer matches
      const after = putLine('{"id":"d"}') + putLine('{"id":"e"}');
      const p = parseLog(a + bad + after);
      assert.deepEqual(p.changes, [{ put: { id: 'a' } }]);
      assert.equal(p.validBytes, Buffer.byteLength(a));
      assert.equal(p.intact, false);
      assert.equal(p.linesAfterDamage, 2);
      assert.equal(parseLog(a + bad).linesAfterDamage, 0);
      assert.equal(parseLog(bad + after + putLine('{"id":"f"}')).linesAfterDamage, 3);
    });

    it('refuses each kind of damaged line', () => {
      const good = putLine('{"id":"a"}');
      const damaged: [string, string][] = [
        ['too short', '1234567 \n'],
        ['no space after the checksum', good.replace(' ', '_')],
        ['a checksum of other bytes', good.replace('{"put"', '{"Put"')],
        ['not JSON, with a good checksum', line('{"put":')],
        ['JSON that is not an object', line('5')],
        ['null', line('null')],
        ['neither put nor remove', line('{"other":1}')],
        ['a removal of something that is not an id', line('{"remove":5}')],
      ];
      for (const [what, text] of damaged) {
        const p = parseLog(good + text);
        assert.equal(p.changes.length, 1, what);
        assert.equal(p.intact, false, what);
        assert.equal(p.validBytes, good.length, what);
      }
      // "put" holds whatever it holds: the record is judged by the loader, not by the log.
      assert.deepEqual(parseLog(line('{"put":null}')).changes, [{ put: null }]);
    });
  });
});
