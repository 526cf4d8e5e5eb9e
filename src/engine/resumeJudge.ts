// Whether a 206 answer to a resume request continues the bytes already on disk. Servers and proxies exist that
// honour Range but ignore If-Range (BusyBox httpd, npm http-server): a 206 is then no proof that the entity is
// the one the bytes belong to. It is appended only when it shows so itself: the range asked for, of the recorded
// size, and at least one recorded validator carried and equal, none different. Both transfer paths ask here.

/** What the journal knows of the entity whose bytes are on disk. */
export interface RecordedEntity {
  /** A strong ETag, as received. */
  etag?: string;
  /** A strong Last-Modified date, as received. */
  lastModified?: string;
  /** The entity's size, when it was announced. */
  bytesTotal?: number;
}

/**
 * - append: the 206 is the rest of the recorded entity.
 * - changed: a validator or the size differs: the file changed.
 * - unvalidated: no recorded validator came back (or only a weak ETag): nothing shows it is the same file.
 * - misranged: the Content-Range is missing, malformed, or not the range asked for.
 */
export type ResumeVerdict = 'append' | 'changed' | 'unvalidated' | 'misranged';

type Headers = Record<string, string | string[] | undefined>;

/** `asked`: the first byte requested, and the last one when the range was closed (`bytes=start-end`). */
export function judgeResumeResponse(recorded: RecordedEntity, asked: { start: number; end?: number }, headers: Headers): ResumeVerdict {
  const cr = parseContentRange(headers['content-range']);
  if (!cr || cr.start !== asked.start || cr.end === undefined) {
    return 'misranged';
  }
  if (recorded.bytesTotal !== undefined && cr.total !== recorded.bytesTotal) {
    return 'changed';
  }
  const lastByte = asked.end ?? (cr.total === undefined ? undefined : cr.total - 1);
  if (lastByte !== undefined && cr.end !== lastByte) {
    return 'misranged';
  }
  let vouched = false;
  const etag = single(headers['etag'])?.trim();
  if (etag && recorded.etag) {
    if (opaqueTag(etag) !== opaqueTag(recorded.etag)) {
      return 'changed';
    }
    // A weak ETag may name another byte sequence of "the same" resource: never a basis for splicing bytes.
    vouched = !etag.startsWith('W/');
  }
  const lastModified = single(headers['last-modified'])?.trim();
  if (lastModified && recorded.lastModified) {
    if (!sameDate(lastModified, recorded.lastModified)) {
      return 'changed';
    }
    vouched = true;
  }
  return vouched ? 'append' : 'unvalidated';
}

/** A sentence for the log: why a 206 was not appended. */
export function describeVerdict(verdict: Exclude<ResumeVerdict, 'append'>, headers: Headers): string {
  const shown = `Content-Range ${String(single(headers['content-range']))}, ETag ${String(single(headers['etag']))}, Last-Modified ${String(single(headers['last-modified']))}`;
  switch (verdict) {
    case 'changed':
      return `the server's 206 answer belongs to another version of the file (${shown})`;
    case 'unvalidated':
      return `the server's 206 answer carries none of the recorded validators, so nothing shows the file is unchanged (${shown})`;
    case 'misranged':
      return `the server's 206 answer is not the range asked for (${shown})`;
  }
}

export function parseContentRange(v: string | string[] | undefined): { start?: number; end?: number; total?: number } | undefined {
  const s = single(v);
  if (!s) {
    return undefined;
  }
  const m = /^bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)$/i.exec(s.trim());
  if (!m) {
    return undefined;
  }
  return {
    start: m[1] === undefined ? undefined : Number(m[1]),
    end: m[2] === undefined ? undefined : Number(m[2]),
    total: m[3] === '*' ? undefined : Number(m[3]),
  };
}

/** Only strong ETags may go into If-Range (RFC 9110 §13.1.5). */
export function strongEtag(v: string | string[] | undefined): string | undefined {
  const s = single(v);
  return s && /^"[^"]*"$/.test(s.trim()) ? s.trim() : undefined;
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The quoted part of an ETag, for comparison (a weak one equal to a strong one still says "same tag"). */
function opaqueTag(etag: string): string {
  return etag.startsWith('W/') ? etag.slice(2) : etag;
}

function sameDate(a: string, b: string): boolean {
  const [x, y] = [Date.parse(a), Date.parse(b)];
  return Number.isNaN(x) || Number.isNaN(y) ? a === b : x === y;
}
