// The checksum of a file that segments write out of order: hashed along its trusted contiguous prefix as it
// grows, reading back what the segments wrote (page cache, not the network). On a worker thread (default), on
// this thread, or by re-reading the file once at the end (hashMode; bench/README.md has the measurements).
import type { Hash } from 'node:crypto';
import { osError } from './errors';
import type * as fs from './io';
import { FileHasher } from './hashWorker';
import { expectedDigest, newHash } from './integrity';
import { hashOpenFile } from './fileHash';

const HASH_READ_BYTES = 1024 * 1024;

export type HashMode = 'worker' | 'frontier' | 'end';

export interface PrefixHasherOptions {
  /** The expected digest (integrity.ts); none: nothing to hash. */
  sha256: string | undefined;
  hashMode: HashMode | undefined;
  temporaryPath: string;
  localPath: string;
  fh: fs.FileHandle;
  size: number;
  /** How far the bytes are written, trusted and contiguous from byte 0. */
  frontier: () => number;
  /** The transfer stopped: the hashing on this thread stops waiting for bytes. */
  signal: AbortSignal;
  /** Reading back failed on this thread: the transfer fails with it. */
  onError: (e: unknown) => void;
  log: (message: string) => void;
}

export class PrefixHasher {
  private worker: FileHasher | undefined;
  private hash: Hash | undefined;
  /** The hashing along the frontier on this thread, while it runs. */
  private follower: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private hashed = 0;

  private constructor(private readonly o: PrefixHasherOptions) {}

  /** Starts hashing as the options say; undefined when there is no checksum to compute. */
  static start(o: PrefixHasherOptions): PrefixHasher | undefined {
    if (!o.sha256) {
      return undefined;
    }
    const h = new PrefixHasher(o);
    if ((o.hashMode ?? 'worker') === 'worker') {
      try {
        h.worker = new FileHasher(o.temporaryPath, expectedDigest(o.sha256).algorithm);
      } catch (e) {
        o.log(`${o.localPath}: no hashing thread (${(e as Error).message}); hashing on the main thread.`);
      }
    }
    if (!h.worker) {
      h.hash = newHash(o.sha256);
      if (o.hashMode !== 'end') {
        h.follower = h.follow();
        h.follower.catch((e) => o.onError(e));
      }
    }
    return h;
  }

  /** The frontier may have moved (bytes written, kept bytes checked): hash up to it. */
  frontierMoved(): void {
    this.worker?.advance(this.o.frontier());
    this.wake?.();
  }

  /** The transfer stopped: lets the hashing on this thread finish (its errors are the transfer's already). */
  async settle(): Promise<void> {
    this.wake?.();
    await this.follower?.catch(() => undefined);
  }

  /** Every byte is written: the hex digest of the whole file. */
  async digest(): Promise<string> {
    if (this.worker) {
      const w = this.worker;
      this.worker = undefined; // it ends itself
      return w.digest(this.o.size);
    }
    if (this.follower) {
      this.wake?.();
      await this.follower;
    } else {
      await hashOpenFile(this.o.fh, this.hash!, this.o.size);
    }
    return this.hash!.digest('hex');
  }

  /** Stops the hashing thread, and the hashing on this thread once the signal is aborted. */
  close(): void {
    this.worker?.close();
    this.wake?.();
  }

  private async follow(): Promise<void> {
    const { fh, size, signal } = this.o;
    const buf = Buffer.allocUnsafe(HASH_READ_BYTES);
    for (;;) {
      const frontier = this.o.frontier();
      if (this.hashed >= frontier) {
        if (this.hashed >= size || signal.aborted) {
          return;
        }
        await new Promise<void>((r) => (this.wake = r));
        this.wake = undefined;
        continue;
      }
      const n = Math.min(buf.length, frontier - this.hashed);
      const { bytesRead } = await fh.read(buf, 0, n, this.hashed);
      if (bytesRead === 0) {
        throw osError(Object.assign(new Error('short read'), { code: 'EIO' }), `Cannot read back ${this.o.temporaryPath}`);
      }
      this.hash!.update(buf.subarray(0, bytesRead));
      this.hashed += bytesRead;
    }
  }
}
