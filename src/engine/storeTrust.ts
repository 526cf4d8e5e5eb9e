// The job store is input like any other: jobs.json may have been edited or planted by someone else, and the engine
// truncates, deletes and renames the paths it names. So each loaded record passes the checks addFile applies, and
// the paths the engine itself derives (temporaries) are derived again rather than read.
import * as fs from './io';
import * as path from 'node:path';
import type { FileRecord, JobRecord } from './records';
import { retryDelaysProblem } from './retrySchedule';
import { checkUploadPathSyntax } from './uploadSource';
import { checkLocalPathSyntax, checkRemoteUrl, isInside, temporaryPathFor, urlCredentials } from './validation';

/** What createJob makes (crypto.randomUUID); the id also names files (marks, the temporary's suffix). */
const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_FILES_IN_FLIGHT = 64;

/** What loading a record decided: why it is set aside, or that it loads (`repaired` when it was changed to be safe). */
export type TrustVerdict = { why: string } | { why?: undefined; repaired: boolean };

/** The safe values of a file's derived fields, applied once every file of its job passed. */
interface FileRepair {
  remoteUrl: string;
  temporaryPath: string;
  note?: string;
}

/**
 * Why a loaded record cannot be trusted, or that it loads once made safe: temporary paths recomputed from the
 * destination, credentials dropped from URLs (each such repair is added to `notes`). A record set aside is left
 * exactly as it was read (it is kept for a person to look at).
 */
export async function trustVerdict(r: JobRecord, allowedRoots: readonly string[] | undefined, notes: string[]): Promise<TrustVerdict> {
  if (!JOB_ID.test(r.id)) {
    return { why: `its id '${shorten(r.id)}' is not a GUID` };
  }
  if (!Array.isArray(r.headerNames) || !r.headerNames.every((h) => typeof h === 'string')) {
    return { why: 'its header names are not a list of names' };
  }
  if (r.filesInFlight !== undefined && !(Number.isSafeInteger(r.filesInFlight) && r.filesInFlight >= 1 && r.filesInFlight <= MAX_FILES_IN_FLIGHT)) {
    return { why: `its files-in-flight count (${String(r.filesInFlight)}) is out of range` };
  }
  if (r.type === 'upload' && r.files.length > 1) {
    return { why: 'it is an upload job with more than one file' };
  }
  const repairs: FileRepair[] = [];
  for (const [i, f] of r.files.entries()) {
    const checked = await fileVerdict(r, f, allowedRoots);
    if (typeof checked === 'string') {
      return { why: `file ${i + 1}: ${checked}` };
    }
    repairs.push(checked);
  }
  let repaired = dropOddRetryFields(r, (n) => notes.push(`Job '${shorten(r.displayName)}' (${r.id}): ${n}`));
  for (const [i, f] of r.files.entries()) {
    const { remoteUrl, temporaryPath, note } = repairs[i];
    repaired ||= f.remoteUrl !== remoteUrl || f.temporaryPath !== temporaryPath;
    f.remoteUrl = remoteUrl;
    f.temporaryPath = temporaryPath;
    if (note) {
      notes.push(`Job '${shorten(r.displayName)}' (${r.id}), file ${i + 1}: ${note}`);
    }
  }
  return { repaired };
}

async function fileVerdict(r: JobRecord, f: FileRecord, allowedRoots: readonly string[] | undefined): Promise<string | FileRepair> {
  try {
    if (r.type === 'upload') {
      checkUploadPathSyntax(f.localPath);
    } else {
      checkLocalPathSyntax(f.localPath);
    }
  } catch (e) {
    return (e as Error).message;
  }
  if (allowedRoots && allowedRoots.length > 0 && !(await insideRoots(f.localPath, allowedRoots))) {
    return `'${shorten(f.localPath)}' is outside the allowed folders (${allowedRoots.join(', ')})`;
  }
  const url = storedUrl(f.remoteUrl);
  if (url.why !== undefined) {
    return url.why;
  }
  if (!isCount(f.durableBytes) || (f.bytesTotal !== undefined && !isCount(f.bytesTotal)) || !isCount(f.restarts)) {
    return 'its byte counts are not whole non-negative numbers';
  }
  if (f.segments !== undefined && !(Array.isArray(f.segments) && f.segments.every((s) => isCount(s?.start) && isCount(s.end) && isCount(s.done) && s.start <= s.end && (s.written === undefined || isCount(s.written))))) {
    return 'its segments are damaged';
  }
  // Never read from the store: an upload has none, a download's is derived from its destination and the job id.
  const temporaryPath = r.type === 'upload' ? '' : temporaryPathFor(f.localPath, r.id);
  return { remoteUrl: url.href, temporaryPath, note: url.note };
}

/** A retry schedule or wait that is not what the engine writes is dropped: the job then waits its minimum delay. */
function dropOddRetryFields(r: JobRecord, note: (n: string) => void): boolean {
  let dropped = false;
  if (r.retryDelaysSeconds !== undefined) {
    const why = retryDelaysProblem(r.retryDelaysSeconds);
    if (why) {
      r.retryDelaysSeconds = undefined;
      dropped = true;
      note(`its stored retry delays were ignored: they ${why}.`);
    }
  }
  for (const key of ['retriesWithoutProgress', 'retryWaitStarted', 'serverRetryAfterSeconds'] as const) {
    if (r[key] !== undefined && !isCount(r[key])) {
      r[key] = undefined;
      dropped = true;
    }
  }
  return dropped;
}

/** The URL must pass addFile's check; user info (refused at addFile since, never sent) is dropped from the store. */
function storedUrl(remoteUrl: string): { why: string } | { why?: undefined; href: string; note?: string } {
  try {
    // Most stored URLs are as addFile accepted them: only one with user info is taken apart and rebuilt.
    if (!remoteUrl.includes('@')) {
      checkRemoteUrl(remoteUrl);
      return { href: remoteUrl };
    }
    const u = new URL(remoteUrl);
    if (!urlCredentials(u)) {
      checkRemoteUrl(remoteUrl);
      return { href: remoteUrl };
    }
    u.username = '';
    u.password = '';
    checkRemoteUrl(u.href);
    return {
      href: u.href,
      note: 'the user name and password in its URL were removed from the job store (credentials in URLs are not used; set an Authorization header instead).',
    };
  } catch (e) {
    return { why: e instanceof TypeError ? 'its remote URL is not a URL' : (e as Error).message };
  }
}

/** The destination's folder, resolved as far as it exists, lies inside one of the roots (resolved too). */
async function insideRoots(p: string, roots: readonly string[]): Promise<boolean> {
  const dir = await fs.realpath(path.dirname(p)).catch(() => path.dirname(p));
  const target = path.join(dir, path.basename(p));
  const real = await Promise.all(roots.map((root) => fs.realpath(root).catch(() => path.resolve(root))));
  return real.some((root) => isInside(target, root));
}

function isCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function shorten(s: string): string {
  return s.length > 80 ? s.slice(0, 77) + '…' : s;
}
