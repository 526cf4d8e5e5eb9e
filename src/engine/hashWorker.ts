// The checksum (sha256, sha384 or sha512) of a growing file on a worker thread: the main thread (the extension host's, shared with every other
// extension) only says how far the bytes are contiguous; the worker reads them back (page cache) and hashes.
import { Worker } from 'node:worker_threads';

// Inline source: works the same bundled (dist/extension.js, dist/cli.js) and compiled (out/).
const SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { createHash } = require('node:crypto');
const fd = fs.openSync(workerData.path, 'r');
const hash = createHash(workerData.algorithm);
const buf = Buffer.allocUnsafe(1 << 20);
let pos = 0;
parentPort.on('message', (m) => {
  try {
    while (pos < m.upTo) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, m.upTo - pos), pos);
      if (n === 0) {
        throw new Error('the file is shorter than expected at byte ' + pos);
      }
      hash.update(buf.subarray(0, n));
      pos += n;
    }
    if (m.digest) {
      fs.closeSync(fd);
      parentPort.postMessage({ digest: hash.digest('hex') });
    }
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message || e) });
  }
});
`;

export class FileHasher {
  private readonly worker: Worker;
  private posted = 0;
  private result: Promise<string>;

  constructor(path: string, algorithm: 'sha256' | 'sha384' | 'sha512' = 'sha256') {
    this.worker = new Worker(SOURCE, { eval: true, workerData: { path, algorithm } });
    this.worker.unref();
    this.result = new Promise<string>((resolve, reject) => {
      this.worker.on('message', (m: { digest?: string; error?: string }) => {
        if (m.error !== undefined) {
          reject(new Error(`Hashing failed: ${m.error}`));
        } else if (m.digest !== undefined) {
          resolve(m.digest);
        }
      });
      this.worker.on('error', reject);
      this.worker.on('exit', (code) => reject(new Error(`The hashing thread stopped (${code}).`)));
    });
    this.result.catch(() => undefined);
  }

  /** The bytes [0, upTo) are written: hash them (in the background). */
  advance(upTo: number): void {
    if (upTo > this.posted) {
      this.posted = upTo;
      this.worker.postMessage({ upTo });
    }
  }

  /** Hashes up to `size` and resolves with the hex digest. */
  async digest(size: number): Promise<string> {
    this.posted = Math.max(this.posted, size);
    this.worker.postMessage({ upTo: size, digest: true });
    try {
      return await this.result;
    } finally {
      void this.worker.terminate();
    }
  }

  close(): void {
    void this.worker.terminate();
  }
}
