// Where a file's bytes come from when it has mirrors (contract §8): its remoteUrl, then each mirror in order.
// A source that fails fatally, or transiently TRANSIENT_SHARE times in a row, is set aside for that file and
// the next one takes over. The bytes already on disk are kept only when the next source's entity is provably the
// same (same size and a sha256 to check the whole file against, or identical strong validators); otherwise the
// file starts again from 0. A source whose size differs, or whose bytes fail the sha256, serves another entity:
// it is dropped and the log says so. When every source has failed, the error names them all (the job goes to
// ERROR) and the next resume tries them all again.
import type { Dispatcher } from 'undici';
import { DownloadError, invalidArg, redactUrl } from './errors';
import type { FileRecord } from './records';
import type { OtherSources } from './segmentSources';
import { parseContentRange, strongEtag } from './resumeJudge';
import { contentLength, requestFollowingRedirects, strongLastModified, TransferStopped, type TransferOptions } from './transfer';
import { checkRemoteUrl } from './validation';

/** Transient failures in a row after which a source is set aside (when there is another one). */
export const TRANSIENT_SHARE = 2;
const MAX_MIRRORS = 64;

/** Runtime only: the current source's transient failures in a row, and why each source was set aside. */
const streaks = new WeakMap<FileRecord, number>();
const reasons = new WeakMap<FileRecord, Map<string, string>>();
/** Runtime only: the sources a segmented transfer is taking the file's segments from at once. */
const spread = new WeakMap<FileRecord, string[]>();

/** The sources the file's segments come from at once, while there are several (for the view). */
export function sourcesInUse(f: FileRecord): string[] | undefined {
  const urls = spread.get(f);
  return urls && urls.length > 1 ? urls : undefined;
}

/** The `mirrors` of addFile / addFileSet / tasks, checked: http(s) URLs, without duplicates of the remoteUrl. */
export function checkMirrors(value: unknown, remoteUrl: string): string[] | undefined {
  if (value === undefined || value === null) {
    return undefined;
  }
  if (!Array.isArray(value) || value.length > MAX_MIRRORS) {
    throw invalidArg(`Mirrors must be a list of at most ${MAX_MIRRORS} URLs.`);
  }
  const out: string[] = [];
  for (const m of value as unknown[]) {
    checkRemoteUrl(m);
    const url = m as string; // checkRemoteUrl threw unless it is a non-empty string
    if (url !== remoteUrl && !out.includes(url)) {
      out.push(url);
    }
  }
  return out.length > 0 ? out : undefined;
}

export function sourcesOf(f: FileRecord): string[] {
  // (The store is hostile input too: anything but a list of strings counts as no mirrors.)
  const mirrors = Array.isArray(f.mirrors) ? f.mirrors.filter((m): m is string => typeof m === 'string') : [];
  return [f.remoteUrl, ...mirrors];
}

export interface SourceOptions {
  file: FileRecord;
  signal: AbortSignal;
  /**
   * Fetches the file from the record given (the file itself, or a view of it with another remoteUrl); `others`:
   * the file's other usable sources, which a segmented transfer may take segments from at the same time.
   */
  fetch: (file: FileRecord, others?: OtherSources) => Promise<void>;
  /** What a source serves (a one-byte range request), to tell whether the bytes on disk can stay. */
  probe: (url: string) => Promise<Entity | undefined>;
  persistNow: () => Promise<void>;
  onCheckpoint: () => void;
  log: (message: string) => void;
}

export interface Entity {
  size?: number;
  etag?: string;
  lastModified?: string;
}

export async function fetchFromSources(o: SourceOptions): Promise<void> {
  const { file } = o;
  if (sourcesOf(file).length === 1) {
    await o.fetch(file);
    return;
  }
  for (;;) {
    const url = currentSource(file);
    try {
      // Transfers read file.remoteUrl; a mirror is shown to them through a view, so the record keeps the user's URL.
      const others = sourcesOf(file).filter((u) => u !== url && !file.failedSources?.includes(u));
      // (Not journaled: the view reads it with the next progress event.)
      const inUse = (urls: string[]): void => void spread.set(file, urls);
      try {
        await o.fetch(url === file.remoteUrl ? file : withRemoteUrl(file, url), { urls: others, setAside: (u, why) => setAside(file, u, why, o.log), inUse });
      } finally {
        spread.delete(file);
      }
      streaks.delete(file);
      return;
    } catch (e) {
      if (e instanceof TransferStopped || o.signal.aborted || !(e instanceof DownloadError) || e.context === 'LOCAL_FILE') {
        throw e; // not the source's fault
      }
      if (e.transient) {
        const n = (streaks.get(file) ?? 0) + 1;
        streaks.set(file, n);
        if (n < TRANSIENT_SHARE) {
          throw e; // its share is not used up: the scheduler retries it after the retry delay
        }
      }
      const why = e.code === 'BG_E_VALIDATION_FAILED' ? 'it serves another entity (sha256 mismatch)' : `${e.message.replace(/\.$/, '')} (${e.codeAndHresult})`;
      setAside(file, url, why, o.log);
      await nextSource(o, e);
    }
  }
}

/** The source in use: the recorded one while it is still a source and not set aside, else the first usable one. */
function currentSource(f: FileRecord): string {
  const usable = sourcesOf(f).filter((u) => !f.failedSources?.includes(u));
  const url = f.source !== undefined && usable.includes(f.source) ? f.source : usable[0];
  f.source = url === f.remoteUrl ? undefined : url;
  return url;
}

function setAside(f: FileRecord, url: string, why: string, log: (m: string) => void): void {
  streaks.delete(f);
  // (A source already set aside by a segmented transfer may fail the whole attempt too: listed once.)
  f.failedSources = [...(f.failedSources ?? []).filter((u) => u !== url), url];
  const r = reasons.get(f) ?? new Map<string, string>();
  r.set(url, why);
  reasons.set(f, r);
  log(`${f.localPath}: source ${redactUrl(url)} set aside: ${why}.`);
}

/** Moves to the next usable source, deciding whether the bytes on disk stay; throws when none is left. */
async function nextSource(o: SourceOptions, last: DownloadError): Promise<void> {
  const { file } = o;
  for (;;) {
    const next = sourcesOf(file).find((u) => !file.failedSources?.includes(u));
    if (next === undefined) {
      const why = reasons.get(file);
      const list = sourcesOf(file).map((u) => `${redactUrl(u)}: ${why?.get(u) ?? 'failed'}`);
      Object.assign(file, { failedSources: undefined, source: undefined });
      reasons.delete(file);
      o.onCheckpoint();
      throw new DownloadError(last.code, `Every source of ${file.localPath} failed — ${list.join('; ')}.`, { hresult: last.hresult, context: last.context, cause: last });
    }
    file.source = next === file.remoteUrl ? undefined : next;
    const atStake = file.durableBytes > 0 || file.segments !== undefined;
    if (!atStake) {
      o.onCheckpoint();
      return;
    }
    const entity = await o.probe(next).catch(() => undefined);
    if (entity?.size !== undefined && file.bytesTotal !== undefined && entity.size !== file.bytesTotal) {
      setAside(file, next, `it serves another entity (${entity.size} bytes, not ${file.bytesTotal})`, o.log);
      continue;
    }
    const sameBySha = file.sha256 !== undefined && file.bytesTotal !== undefined && entity?.size === file.bytesTotal;
    const sameByValidator = entity !== undefined && ((file.etag !== undefined && entity.etag === file.etag) || (!file.etag && file.lastModified !== undefined && entity.lastModified === file.lastModified));
    if (entity && (sameBySha || sameByValidator) && (entity.etag ?? entity.lastModified)) {
      // Resumed behind the new source's own validator; the sha256 checks the whole file at the end.
      file.etag = entity.etag;
      file.lastModified = entity.etag ? undefined : entity.lastModified;
      o.log(`${file.localPath}: ${redactUrl(next)} serves the same entity; keeping the ${file.durableBytes} bytes on disk.`);
    } else {
      o.log(`${file.localPath}: ${redactUrl(next)} cannot be shown to serve the same entity; starting the file again from 0.`);
      Object.assign(file, { durableBytes: 0, bytesTotal: undefined, etag: undefined, lastModified: undefined, segments: undefined, bootId: undefined });
      file.restarts++;
      await o.persistNow();
    }
    o.onCheckpoint();
    return;
  }
}

/** The file record as a transfer should see it: every field its own, but the remoteUrl of another source. */
function withRemoteUrl(file: FileRecord, url: string): FileRecord {
  return new Proxy(file, {
    get: (target, key): unknown => (key === 'remoteUrl' ? url : Reflect.get(target, key)),
  });
}

/** Asks a source for one byte: its size and validators, without downloading the entity. */
export async function probeEntity(url: string, o: TransferOptions): Promise<Entity | undefined> {
  const res: Dispatcher.ResponseData = await requestFollowingRedirects(url, { ...o.headers, range: 'bytes=0-0' }, o);
  try {
    if (res.statusCode === 206) {
      const cr = parseContentRange(res.headers['content-range']);
      return { size: cr?.total, etag: strongEtag(res.headers['etag']), lastModified: strongLastModified(res.headers) };
    }
    if (res.statusCode === 200) {
      return { size: contentLength(res.headers), etag: strongEtag(res.headers['etag']), lastModified: strongLastModified(res.headers) };
    }
    return undefined;
  } finally {
    await res.body.dump().catch(() => undefined); // at most undici's small dump limit, then the connection is closed
  }
}
