import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDuration } from '../../src/common/durationSetting';

describe('duration settings ("10 minutes", not 600)', () => {
  const cases: [string, number][] = [
    ['10 minutes', 600],
    ['14 days', 1_209_600],
    ['1h 30m', 5400],
    ['1h30m', 5400],
    ['90s', 90],
    ['2 weeks', 1_209_600],
    ['1,5 h', 5400],
    ['1.5 hours', 5400],
    ['14 jours', 1_209_600],
    ['1 heure, 5 secondes', 3605],
    ['  7 d ', 604_800],
    ['600', 600],
    ['0', 0],
  ];
  for (const [text, seconds] of cases) {
    it(`'${text}' is ${seconds} s`, () => assert.equal(parseDuration(text), seconds));
  }

  for (const [text, names] of [
    ['10 parsecs', "'parsecs'"],
    ['ten minutes', 'not a duration'],
    ['', 'empty'],
    ['5 minutes later', "'later'"],
    ['-5 minutes', 'not a duration'],
  ] as const) {
    it(`'${text}' is refused, naming the problem`, () => {
      const r = parseDuration(text);
      assert.ok(r instanceof Error, `got ${String(r)}`);
      assert.match(r.message, new RegExp(names));
    });
  }

  it("the manifest's pattern accepts exactly what the parser accepts (the Settings editor flags the rest)", () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '../../../package.json'), 'utf8')) as {
      contributes: { configuration: { properties: Record<string, { pattern?: string; default?: unknown }> } };
    };
    const props = manifest.contributes.configuration.properties;
    for (const key of ['managedDownloads.retryDelay', 'managedDownloads.noProgressTimeout']) {
      const pattern = new RegExp(props[key].pattern ?? '(missing)', 'u');
      assert.equal(typeof parseDuration(String(props[key].default)), 'number', `${key}'s default is a duration`);
      for (const [text] of cases) {
        assert.ok(pattern.test(text), `${key}'s pattern accepts '${text}'`);
      }
      for (const text of ['10 parsecs', 'ten minutes', '', '5 minutes later', '-5 minutes']) {
        assert.ok(!pattern.test(text), `${key}'s pattern refuses '${text}'`);
      }
    }
  });
});
