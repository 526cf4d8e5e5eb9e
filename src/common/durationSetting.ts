// Durations in settings are written as people say them ("10 minutes", "14 days", "1h 30m"), not as a count of
// seconds: the Settings editor shows the text as it is. No `vscode` import, so it is tested in plain Node.

const UNIT_SECONDS: Record<string, number> = {};
for (const [seconds, names] of [
  [1, ['s', 'sec', 'secs', 'second', 'seconds', 'seconde', 'secondes']],
  [60, ['m', 'min', 'mins', 'minute', 'minutes']],
  [3600, ['h', 'hr', 'hrs', 'hour', 'hours', 'heure', 'heures']],
  [86_400, ['d', 'day', 'days', 'j', 'jour', 'jours']],
  [604_800, ['w', 'week', 'weeks', 'semaine', 'semaines']],
] as const) {
  for (const n of names) {
    UNIT_SECONDS[n] = seconds;
  }
}

/** One or more `<number> <unit>` parts; the package.json `pattern` of the duration settings says the same. */
const PART = /(\d+(?:[.,]\d+)?)\s*([a-z]+)/gy;

/**
 * Seconds in `text` ("10 minutes" → 600, "1h 30m" → 5400, "0" → 0), or an Error naming what is wrong. A bare
 * number is a count of seconds, as the old `…Seconds` settings were.
 */
export function parseDuration(text: string): number | Error {
  const t = text.trim().toLowerCase();
  if (t === '') {
    return new Error('an empty duration: expected e.g. "10 minutes"');
  }
  if (/^\d+$/.test(t)) {
    return Number(t);
  }
  let total = 0;
  let at = 0;
  while (at < t.length) {
    PART.lastIndex = at;
    const m = PART.exec(t);
    if (!m) {
      const where = at === 0 ? '' : ` at '${t.slice(at)}'`;
      return new Error(`'${text}' is not a duration${where}: expected a number and a unit, e.g. "10 minutes", "14 days" or "1h 30m"`);
    }
    const unit = UNIT_SECONDS[m[2]];
    if (unit === undefined) {
      return new Error(`'${m[2]}' in '${text}' is not a unit of time (use s, min, h, d or w)`);
    }
    total += Number(m[1].replace(',', '.')) * unit;
    at = PART.lastIndex;
    while (at < t.length && /[\s,]/.test(t[at])) {
      at++;
    }
  }
  return Math.round(total);
}
