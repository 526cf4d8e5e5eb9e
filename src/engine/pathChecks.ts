// checkLocalPathOnDisk for many files at once (addFileSet with thousands of files): each folder is checked
// once, the files' own checks run in parallel, and the error reported is the one of the earliest file.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { invalidArg } from './errors';
import { checkLocalPathOnDisk } from './validation';

const PARALLEL = 64;

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
  paths.forEach((p, i) => {
    const d = path.dirname(p);
    if (!firstOfDir.has(d)) {
      firstOfDir.set(d, i);
    }
  });
  const errors: unknown[] = new Array(paths.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    for (let i = next++; i < paths.length; i = next++) {
      const p = paths[i];
      try {
        if (firstOfDir.get(path.dirname(p)) === i) {
          await checkLocalPathOnDisk(p, allowedRoots);
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

/** The file's own part of checkLocalPathOnDisk: not an existing folder, not a symbolic link. */
async function checkFileItself(p: string): Promise<void> {
  let st;
  try {
    st = await fs.lstat(p);
  } catch {
    return;
  }
  if (st.isDirectory()) {
    throw invalidArg(`The local path '${p}' is an existing folder.`);
  }
  if (st.isSymbolicLink()) {
    throw invalidArg(`The local path '${p}' is a symbolic link; the engine will not write through it.`);
  }
}
