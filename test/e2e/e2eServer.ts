// The download server of the end-to-end journey: a TestServer (127.0.0.1, real HTTP, ranges, ETags) with
// the few files the steps need. Bodies are deterministic, so their sha256 is known in advance.
import { BitsUploadServer } from '../support/bitsUploadServer';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';

const KiB = 1024;
const MiB = 1024 * KiB;

export interface E2EFile {
  /** URL path, e.g. /files/throttled.bin */
  path: string;
  /** File name (the default destination name the save dialog proposes). */
  name: string;
  size: number;
  sha256: string;
}

interface Spec {
  name: string;
  size: number;
  seed: number;
  throttle?: number;
  /** The status the file answers with until publish() (404: missing; 503: the server is down for a while). */
  until?: 404 | 503;
  /** false: the server ignores Range and says nothing of ranges (a download that cannot be resumed). */
  ranges?: boolean;
}

/**
 * Sizes and rates are chosen for a loaded 2-core machine: under 32 MiB (the engine's threshold for
 * segmented transfers, which would multiply the throttle), slow enough to act on while they run, short
 * enough to keep the whole run within a few minutes.
 */
const SPECS: Spec[] = [
  // Steps 2, 3, 5: suspended, resumed and cancelled while it runs (≈ 110 s at full speed).
  { name: 'throttled.bin', size: 24 * MiB, seed: 601, throttle: 224 * KiB },
  // Step 4: three files of one job; the third is still transferring when the job is completed.
  { name: 'part-1.bin', size: 256 * KiB, seed: 611 },
  { name: 'part-2.bin', size: 384 * KiB, seed: 612 },
  { name: 'part-3.bin', size: 16 * MiB, seed: 613, throttle: 256 * KiB },
  // Step 6: 404 until publish('missing.bin').
  { name: 'missing.bin', size: 96 * KiB, seed: 621, until: 404 },
  // Step 7: the download task (≈ 4 s, so the terminal shows progress).
  { name: 'task.bin', size: 4 * MiB, seed: 631, throttle: 1 * MiB },
  // Steps 8, 9: the status bar while it runs, and a window reload in the middle (≈ 16 s of transfer).
  { name: 'reload.bin', size: 8 * MiB, seed: 641, throttle: 512 * KiB },
  // Step 10: 503 until publish('flaky.bin'): the job waits to retry, counting down.
  { name: 'flaky.bin', size: 96 * KiB, seed: 651, until: 503 },
  // Step 11: the second task's file, 404 until publish('late.bin'): the task fails, then Run Task Again.
  { name: 'late.bin', size: 512 * KiB, seed: 661, until: 404 },
  // Step 12: a server that cannot resume (no ranges): Pause asks first (≈ 100 s at full speed).
  { name: 'no-range.bin', size: 12 * MiB, seed: 671, throttle: 128 * KiB, ranges: false },
  // Step 14: the two files of a job that waits for Save.
  { name: 'pair-1.bin', size: 128 * KiB, seed: 681 },
  { name: 'pair-2.bin', size: 192 * KiB, seed: 682 },
];

export class E2EServer {
  private readonly bodies = new Map<string, Buffer>();
  readonly files = new Map<string, E2EFile>();

  /**
   * @param uploads a BITS upload server (step 15's New Upload), on 127.0.0.1 too.
   */
  private constructor(
    readonly server: TestServer,
    readonly uploads: BitsUploadServer,
  ) {}

  static async start(): Promise<E2EServer> {
    const s = new E2EServer(await TestServer.start(), await BitsUploadServer.start());
    for (const spec of SPECS) {
      const body = randomBody(spec.size, spec.seed);
      const p = `/files/${spec.name}`;
      s.bodies.set(spec.name, body);
      s.files.set(spec.name, { path: p, name: spec.name, size: spec.size, sha256: sha256Hex(body) });
    }
    s.reset();
    return s;
  }

  /** Every route back to its initial state (missing.bin answers 404 again, flaky.bin 503), request log emptied. */
  reset(): void {
    this.server.reset();
    for (const spec of SPECS) {
      if (spec.until) {
        this.server.route(`/files/${spec.name}`, { status: spec.until });
      } else {
        this.publish(spec.name);
      }
    }
  }

  /** Serves the file (for missing.bin and flaky.bin: it "appears" on the server, so Retry can succeed). */
  publish(name: string): void {
    const spec = SPECS.find((s) => s.name === name);
    const body = this.bodies.get(name);
    if (!spec || !body) {
      throw new Error(`no e2e file ${name}`);
    }
    this.server.route(`/files/${name}`, { body, throttleBytesPerSec: spec.throttle, ...(spec.ranges === false ? { ranges: false } : {}) });
  }

  file(name: string): E2EFile {
    const f = this.files.get(name);
    if (!f) {
      throw new Error(`no e2e file ${name}`);
    }
    return f;
  }

  url(name: string): string {
    return this.server.url(this.file(name).path);
  }

  /** Requests for a file: status, Range header and when they arrived. */
  requestsFor(name: string): { status: number; range?: string; time: number; bytesSent: number }[] {
    return this.server.requestsFor(this.file(name).path).map((r) => ({ status: r.status, range: r.range, time: r.time, bytesSent: r.bytesSent }));
  }

  async close(): Promise<void> {
    await Promise.all([this.server.close(), this.uploads.close()]);
  }
}
