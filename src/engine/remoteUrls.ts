// Changing where a file comes from (BITS SetRemoteName / ReplaceRemotePrefix, contract §8). The bytes on disk
// and their validators stay: the next request resumes behind If-Range, so the new URL keeps them when it serves
// the same entity and the transfer starts from 0 when it does not.
import { invalidArg } from './errors';
import type { FileRecord } from './records';
import { checkRemoteUrl } from './validation';

export interface UrlChange {
  index: number;
  remoteUrl: string;
  mirrors?: string[];
}

/** Which files get which URLs; called on the job's files once the job is known not final (it may throw E_INVALIDARG). */
export type UrlPick = (files: readonly FileRecord[]) => UrlChange[];

export function byIndex(fileIndex: unknown, url: unknown): UrlPick {
  return (files) => {
    if (typeof fileIndex !== 'number' || !Number.isInteger(fileIndex) || fileIndex < 0 || fileIndex >= files.length) {
      throw invalidArg(`There is no file ${String(fileIndex)} in this job (it has ${files.length}, numbered from 0).`);
    }
    checkRemoteUrl(url);
    return [{ index: fileIndex, remoteUrl: url as string }];
  };
}

export function byPrefix(oldPrefix: unknown, newPrefix: unknown): UrlPick {
  return (files) => {
    if (typeof oldPrefix !== 'string' || oldPrefix === '' || typeof newPrefix !== 'string' || newPrefix === '') {
      throw invalidArg('Replacing a URL prefix needs the old prefix and the new one, both non-empty.');
    }
    const swap = (u: string): string => (u.startsWith(oldPrefix) ? newPrefix + u.slice(oldPrefix.length) : u);
    const changes: UrlChange[] = [];
    files.forEach((f, index) => {
      if (f.transferred || f.completed) {
        return; // its bytes are here: its URL no longer matters
      }
      const remoteUrl = swap(f.remoteUrl);
      const mirrors = Array.isArray(f.mirrors) ? f.mirrors.map(swap) : undefined;
      if (remoteUrl === f.remoteUrl && (mirrors ?? []).every((m, k) => m === f.mirrors![k])) {
        return;
      }
      for (const u of [remoteUrl, ...(mirrors ?? [])]) {
        checkRemoteUrl(u);
      }
      changes.push({ index, remoteUrl, ...(mirrors ? { mirrors } : {}) });
    });
    return changes;
  };
}

/** Applies checked changes; every source is tried afresh, and the validators of the bytes on disk are kept. */
export function applyUrlChanges(files: FileRecord[], changes: readonly UrlChange[]): void {
  for (const c of changes) {
    const f = files[c.index];
    f.remoteUrl = c.remoteUrl;
    if (c.mirrors) {
      f.mirrors = c.mirrors;
    }
    f.source = undefined;
    f.failedSources = undefined;
  }
}
