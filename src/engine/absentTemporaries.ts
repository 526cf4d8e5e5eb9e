// At start-up every unfinished file's temporary is looked at (it may hold bytes past the last checkpoint). With
// thousands of jobs most have none yet: a folder that should hold many of them is listed once (readdir), and a
// temporary its listing lacks needs no lstat of its own (an lstat that fails costs as much as one that finds).
import * as path from 'node:path';
import * as fs from './io';
import type { JobRecord } from './records';

/** From this many temporaries in one folder, one listing of it is cheaper than an lstat each. */
const LIST_FOLDER_FROM = 64;

/**
 * A test that says true only for a path known not to exist when this was called: its folder was listed and did
 * not hold it. Anything else (a folder not listed, or that could not be) says false, and is looked at as before.
 */
export async function absentTemporaries(paths: readonly string[]): Promise<(p: string) => boolean> {
  // Linux only: elsewhere names in a folder may match without being equal (case, Unicode normalisation).
  if (process.platform !== 'linux') {
    return () => false;
  }
  const perDir = new Map<string, number>();
  for (const p of paths) {
    const d = path.dirname(p);
    perDir.set(d, (perDir.get(d) ?? 0) + 1);
  }
  const listed = new Map<string, Set<string>>();
  await Promise.all(
    [...perDir].filter(([, n]) => n >= LIST_FOLDER_FROM).map(async ([d]) => {
      const names = await fs.readdir(d).catch(() => undefined);
      if (names) {
        listed.set(d, new Set(names));
      }
    }),
  );
  return (p) => {
    const names = listed.get(path.dirname(p));
    return names !== undefined && !names.has(path.basename(p));
  };
}

/**
 * An unfinished download that reconcile (recovery.ts) would leave exactly as it is: not interrupted mid-run, and
 * each file not transferred, with no journaled bytes and no temporary on disk. Its start-up check is skipped
 * and the store is not asked to compare it with what it holds (a serialisation each, thousands at start-up).
 */
export function nothingToReconcile(r: JobRecord, absent: (p: string) => boolean): boolean {
  return (
    r.type === 'download' && r.state !== 'CONNECTING' && r.state !== 'TRANSFERRING' && r.leftoverTemporaries === undefined &&
    r.files.every((f) => !f.transferred && !f.completed && f.durableBytes === 0 && f.segments === undefined && absent(f.temporaryPath))
  );
}
