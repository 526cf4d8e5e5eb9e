// How far each segment of a segmented transfer has been written (handed to the OS, not yet fdatasync'd),
// noted after every write in a small file of the store, outside the journal. The journal is batched (tens of
// milliseconds: megabytes at full speed); these marks are current to the last write, so after a crash of
// the process within the same boot a resume keeps every byte it wrote. Never trusted across a reboot.
import { createHash } from 'node:crypto';
import * as fsSync from './io';
import * as path from 'node:path';
import { bootId } from './io';

/** What the marks belong to: any difference (another entity, another plan, another boot) voids them. */
export interface MarksKey {
  temporaryPath: string;
  size: number;
  validator: string;
  starts: number[];
}

const RECORD_BYTES = 2048;

function keyDigest(key: MarksKey): string {
  return createHash('sha256').update(JSON.stringify({ boot: bootId(), ...key })).digest('hex');
}

export class WriteMarks {
  private fd: number | undefined;
  private readonly header: string;

  private constructor(key: MarksKey) {
    this.header = keyDigest(key);
  }

  /** Opens the marks of `file` for writing; undefined where a boot cannot be told apart or the file cannot be made. */
  static open(file: string | undefined, key: MarksKey): WriteMarks | undefined {
    if (!file || bootId() === undefined || key.starts.length > 64) {
      return undefined;
    }
    const marks = new WriteMarks(key);
    try {
      fsSync.mkdirSync(path.dirname(file), { recursive: true });
      marks.fd = fsSync.openSync(file, fsSync.constants.O_RDWR | fsSync.constants.O_CREAT | (fsSync.constants.O_NOFOLLOW ?? 0), 0o600);
    } catch {
      return undefined;
    }
    return marks;
  }

  /** The written offsets (bytes from each segment's start) noted for `key` during this boot, if any. */
  static read(file: string | undefined, key: MarksKey): number[] | undefined {
    if (!file || bootId() === undefined) {
      return undefined;
    }
    try {
      const text = fsSync.readFileSync(file, 'utf8').replace(/\s+$/, '');
      const rec = JSON.parse(text) as { h?: unknown; w?: unknown };
      if (rec.h !== keyDigest(key) || !Array.isArray(rec.w) || rec.w.length !== key.starts.length || !rec.w.every((n) => Number.isSafeInteger(n) && n >= 0)) {
        return undefined;
      }
      return rec.w as number[];
    } catch {
      return undefined;
    }
  }

  /**
   * Notes the offsets: one write of one block at the file's start, synchronous because it only copies into
   * the page cache (microseconds) and must never be reordered with the next one. Padded, so a shorter record
   * never leaves the tail of a longer one behind.
   */
  note(written: number[]): void {
    if (this.fd === undefined) {
      return;
    }
    const text = JSON.stringify({ h: this.header, w: written });
    if (text.length >= RECORD_BYTES) {
      return;
    }
    try {
      fsSync.writeSync(this.fd, text.padEnd(RECORD_BYTES, ' '), 0, 'utf8');
    } catch {
      // Marks only save refetching after a crash; without them the journal's checkpoints still hold.
      this.close();
    }
  }

  close(): void {
    if (this.fd !== undefined) {
      fsSync.closeSync(this.fd);
      this.fd = undefined;
    }
  }

  /** Deletes the marks (the transfer finished, or its bytes were forgotten); close() the writer first. */
  static remove(file: string | undefined): void {
    if (file) {
      try {
        fsSync.rmSync(file, { force: true });
      } catch {
        // Left behind, it is swept at the next start; its key no longer matches a transfer that started over.
      }
    }
  }
}
