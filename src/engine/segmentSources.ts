// The sources one segmented transfer draws from at once (contract §8, aria2-style): each segment request goes to
// the usable source with the fewest failures in a row, then the fewest connections, then the fewest bytes served. Bytes of a mirror are only
// written next to the others' once its first 206 shows the same entity, by the rule sources.ts applies to
// failover: the same size, and identical strong validators or a sha256 that checks the whole file at the end.
// A source that serves another entity is dropped at once; one that keeps failing (TRANSIENT_SHARE in a row, or
// a fatal error) is dropped while another source is left; after one transient failure it is asked last. Dropped sources are set aside for the file (the log
// says why) and their segments go to the others.
import type { DownloadError } from './errors';
import { redactUrl } from './errors';
import type { RecordedEntity } from './resumeJudge';
import { parseContentRange, strongEtag } from './resumeJudge';
import { TRANSIENT_SHARE } from './sources';
import { strongLastModified } from './transfer';

/** What the caller (sources.ts) lends a transfer: the file's other usable sources, and how to set one aside. */
export interface OtherSources {
  urls: string[];
  setAside: (url: string, why: string) => void;
  /** Told the sources serving segments whenever that set changes (for the view). */
  inUse?: (urls: string[]) => void;
}

export interface SegmentSource {
  url: string;
  /** The entity this source was shown to serve: what its ranged answers are checked against. None: not yet vetted. */
  entity?: RecordedEntity;
  /** Requests in flight. */
  active: number;
  failures: number;
  bytes: number;
  /** Why it was dropped, once it is. */
  dropped?: string;
}

type Headers = Record<string, string | string[] | undefined>;

export class SegmentSources {
  private readonly list: SegmentSource[];

  /** `primary`: the source whose entity the file records (file.remoteUrl as the transfer sees it). */
  constructor(
    primary: string,
    private readonly file: RecordedEntity & { sha256?: string },
    private readonly others: OtherSources | undefined,
    private readonly log: (message: string) => void,
  ) {
    this.list = [{ url: primary, entity: file, active: 0, failures: 0, bytes: 0 }];
    for (const url of others?.urls ?? []) {
      if (url !== primary) {
        this.list.push({ url, active: 0, failures: 0, bytes: 0 });
      }
    }
  }

  /** The file's own source: its bytes, and a 200 or another entity from it, concern the file itself. */
  get primary(): SegmentSource {
    return this.list[0];
  }

  get several(): boolean {
    return this.list.length > 1;
  }

  /** The source for the next request, counted as in use until release(); undefined when every one was dropped. */
  take(): SegmentSource | undefined {
    const usable = this.list.filter((s) => !s.dropped);
    if (usable.length === 0) {
      return undefined;
    }
    const rank = (x: SegmentSource): [number, number, number] => [x.failures, x.active, x.bytes];
    const before = (x: SegmentSource, y: SegmentSource): boolean => {
      const [a, b] = [rank(x), rank(y)];
      return a[0] !== b[0] ? a[0] < b[0] : a[1] !== b[1] ? a[1] < b[1] : a[2] < b[2];
    };
    const best = usable.reduce((a, b) => (before(b, a) ? b : a));
    best.active++;
    this.reportInUse();
    return best;
  }

  release(s: SegmentSource): void {
    s.active--;
  }

  /** Whether a failure of `s` can be left to the other sources (it is not the last one standing). */
  private othersLeft(s: SegmentSource): boolean {
    return this.list.some((x) => x !== s && !x.dropped);
  }

  /**
   * The first 206 of a mirror not yet vetted: undefined when its entity is provably the file's (it is then
   * recorded for the checks of its later answers), else why not (the source is dropped).
   */
  vet(s: SegmentSource, headers: Headers): string | undefined {
    const size = parseContentRange(headers['content-range'])?.total;
    const etag = strongEtag(headers['etag']);
    const lastModified = strongLastModified(headers);
    if (size === undefined || size !== this.file.bytesTotal) {
      return this.drop(s, `it serves another entity (${size ?? 'unknown'} bytes, not ${this.file.bytesTotal})`);
    }
    if (!etag && !lastModified) {
      return this.drop(s, 'its ranged answers carry no strong validator to check them by');
    }
    const sameValidators = this.file.etag !== undefined ? etag === this.file.etag : lastModified !== undefined && lastModified === this.file.lastModified;
    if (!sameValidators && this.file.sha256 === undefined) {
      return this.drop(s, `it serves another entity (ETag ${etag ?? 'none'}, Last-Modified ${lastModified ?? 'none'}) and no sha256 can show the bytes are the same`);
    }
    s.entity = { bytesTotal: size, etag, lastModified: etag ? undefined : lastModified };
    return undefined;
  }

  /** `s` answered a segment request as asked. */
  succeeded(s: SegmentSource): void {
    s.failures = 0;
  }

  /**
   * `s` failed a request. True when the failure stays with the source (set aside, or its share not used up, and
   * another source can take the segment); false when it is the last source: the segment's own retries decide.
   */
  failed(s: SegmentSource, e: DownloadError): boolean {
    if (!this.othersLeft(s)) {
      return false;
    }
    const why = `${e.message.replace(/\.$/, '')} (${e.codeAndHresult})`;
    if (!e.transient || ++s.failures >= TRANSIENT_SHARE) {
      this.drop(s, why);
    } else {
      // Ranked after the sources that did not fail: it gets a segment again only when they are all busy.
      this.log(`${redactUrl(s.url)} failed a segment request: ${why}; another source takes the segment.`);
    }
    return true;
  }

  /** Stops using `s` for this file and sets it aside; returns why. */
  drop(s: SegmentSource, why: string): string {
    if (!s.dropped) {
      s.dropped = why;
      this.others?.setAside(s.url, why);
      this.reportInUse();
      this.log(`${redactUrl(s.url)}: ${this.othersLeft(s) ? 'its segments go to the other sources' : 'no other source is left for the segments'}.`);
    }
    return why;
  }

  private reported = '';

  /** The sources that served or are serving segments and are not dropped, when they change. */
  private reportInUse(): void {
    const urls = this.list.filter((s) => !s.dropped && (s.active > 0 || s.bytes > 0)).map((s) => s.url);
    const key = urls.join('\n');
    if (key !== this.reported) {
      this.reported = key;
      this.others?.inUse?.(urls);
    }
  }

  /** For the error when none is left: each source and why it was dropped. */
  summaryOfDropped(): string {
    return this.list.map((s) => `${redactUrl(s.url)}: ${s.dropped ?? 'in use'}`).join('; ');
  }

  /** For the log: how many bytes each source served. */
  summary(): string {
    return this.list
      .filter((s) => s.bytes > 0)
      .map((s) => `${redactUrl(s.url)} ${s.bytes} bytes`)
      .join(', ');
  }
}
