/**
 * The reliability fault matrix (issue 8) as data. A test that is a row of the matrix takes its title from
 * `matrix(area, case, expected)`; the root-hook plugin `matrixReport.ts` (loaded with `--require` from
 * `.mocharc.engine.json`) finds those tests after the run and writes `docs/reliability.md` with each row's
 * result.
 *
 *   it(matrix('network', 'reset mid-body, many times', 'resumes with Range + If-Range; right sha256'), async () => { … });
 *
 * Rows of the issue that the engine suite cannot exercise are declared with `matrixNotCovered()`, so the
 * table says so instead of leaving them out. Facts worth printing next to the table (a PRNG seed, the squid
 * version, whether tmpfs could be mounted) go through `matrixNote()`.
 */

export const AREAS = ['network', 'disk', 'process', 'store', 'concurrency', 'hostile input', 'proxy'] as const;
export type Area = (typeof AREAS)[number];

export interface MatrixRow {
  area: Area;
  case: string;
  expected: string;
  /** The mocha test title the row was registered under (absent for rows not covered by this suite). */
  title?: string;
  /** Why a row has no test in this suite, and where it is (or should be) covered. */
  notCovered?: string;
}

const rows: MatrixRow[] = [];
const byTitle = new Map<string, MatrixRow>();
const notes = new Map<string, string>();

/** Registers a matrix row and returns the test title to use for it: "[area] case → expected". */
export function matrix(area: Area, caseName: string, expected: string): string {
  if (!(AREAS as readonly string[]).includes(area)) {
    throw new Error(`matrix(): unknown area '${area}' (use one of ${AREAS.join(', ')})`);
  }
  const title = `[${area}] ${caseName} → ${expected}`;
  if (byTitle.has(title)) {
    throw new Error(`matrix(): the row "${title}" is registered twice; each row must be one test`);
  }
  const row: MatrixRow = { area, case: caseName, expected, title };
  rows.push(row);
  byTitle.set(title, row);
  return title;
}

/** Declares a row of the matrix that no engine test covers (reported as "not covered", never as a pass). */
export function matrixNotCovered(area: Area, caseName: string, expected: string, why: string): void {
  rows.push({ area, case: caseName, expected, notCovered: why });
}

/** A fact to print with the report (seeds, tool versions, fallbacks taken). Later values for a key replace earlier ones. */
export function matrixNote(key: string, value: string): void {
  notes.set(key, value);
}

export function matrixRows(): readonly MatrixRow[] {
  return rows;
}

export function matrixRowForTitle(title: string): MatrixRow | undefined {
  return byTitle.get(title);
}

export function matrixNotes(): ReadonlyMap<string, string> {
  return notes;
}
