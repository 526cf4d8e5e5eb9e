// checkLocalPathOnDisk for many files at once (addFileSet with thousands of files): each folder is checked
// once, the files' own checks run in parallel, and the error reported is the one of the earliest file. A
// folder receiving many files is listed once (readdir) instead of an lstat per file.
import type { Dirent } from 'node:fs';
import * as fs from './io';
import * as path from 'node:path';
import { checkExistingKind, checkLocalPathOnDisk } from './validation';

const PARALLEL = 64;
/** From this many files into one folder, one listing of it is cheaper than an lstat each. */
const LIST_FOLDER_FROM = 256;

export async function checkLocalPathsOnDisk(paths: readonly string[], allowedRoots?: readonly string[]): Promise<void> {
  if (paths.length <= 1) {
    for (const p of paths) {
      await checkLocalPathOnDisk(p, allowedRoots);
    }
    return;
  }
  // The full check (folder, permissions, allowed roots) for the first file of each folder: a base name cannot
  // leave its folder, so the others only need their own lstat.
  const firstOfDir = new Map<string, number>();
  const perDir = new Map<string, number>();
  paths.forEach((p, i) => {
    const d = path.dirname(p);
    if (!firstOfDir.has(d)) {
      firstOfDir.set(d, i);
    }
    perDir.set(d, (perDir.get(d) ?? 0) + 1);
  });
  const listings = new Map<string, Promise<Map<string, Dirent> | undefined>>();
  const listing = (d: string): Promise<Map<string, Dirent> | undefined> | undefined => {
    // Linux only: elsewhere names in a folder may match without being equal (case, Unicode normalisation).
    if (process.platform !== 'linux' || (perDir.get(d) ?? 0) < LIST_FOLDER_FROM) {
      return undefined;
    }
    let l = listings.get(d);
    if (!l) {
      // undefined when it cannot be listed (then each file is checked on its own, as below).
      l = fs.readdir(d, { withFileTypes: true }).then((entries) => new Map(entries.map((e) => [e.name, e])), () => undefined);
      listings.set(d, l);
    }
    return l;
  };
  const errors: unknown[] = new Array(paths.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    for (let i = next++; i < paths.length; i = next++) {
      const p = paths[i];
      try {
        const d = path.dirname(p);
        if (firstOfDir.get(d) === i) {
          await checkLocalPathOnDisk(p, allowedRoots);
          continue;
        }
        const entries = await listing(d);
        if (entries) {
          const entry = entries.get(path.basename(p));
          if (entry) {
            checkExistingKind(p, entry);
          }
        } else {
          await checkFileItself(p);
        }
      } catch (e) {
        errors[i] = e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, paths.length) }, lane));
  const first = errors.findIndex((e) => e !== undefined);
  if (first >= 0) {
    throw errors[first];
  }
}

/** The file's own part of checkLocalPathOnDisk: if something is there, a regular file (not a folder, link, device). */
async function checkFileItself(p: string): Promise<void> {
  const st = await fs.lstat(p).catch(() => undefined);
  if (st) {
    checkExistingKind(p, st);
  }
}
