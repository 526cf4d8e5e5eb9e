// The checksum of a segmented file (src/engine/prefixHasher.ts): it reads only the trusted contiguous prefix
// while segments write, whatever the mode, and its digest is the whole file's.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as io from '../../src/engine/io';
import { PrefixHasher, type HashMode } from '../../src/engine/prefixHasher';
import { tempDir } from '../support/engineHarness';
import { randomBody, sha256Hex } from '../support/testServer';

const MiB = 1024 * 1024;

describe('hashing the trusted prefix', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A file of `body`'s size whose second half is still zeros (not yet written), and a hasher over it. */
  async function halfWritten(body: Buffer, hashMode: HashMode, signal = new AbortController().signal) {
    const p = path.join(dir, 'f.bin');
    fs.writeFileSync(p, Buffer.concat([body.subarray(0, body.length / 2), Buffer.alloc(body.length / 2)]));
    const fh = await io.open(p, io.constants.O_RDWR);
    let frontier = body.length / 2;
    const errors: unknown[] = [];
    const hasher = PrefixHasher.start({
      sha256: '00'.repeat(32),
      hashMode,
      temporaryPath: p,
      localPath: p,
      fh,
      size: body.length,
      frontier: () => frontier,
      signal,
      onError: (e) => errors.push(e),
      log: () => undefined,
    })!;
    hasher.frontierMoved();
    /** The second half is written and trusted. */
    const finish = (): void => {
      fs.writeFileSync(p, body);
      frontier = body.length;
      hasher.frontierMoved();
    };
    return { hasher, fh, finish, errors };
  }

  for (const hashMode of ['worker', 'frontier', 'end'] as const) {
    it(`'${hashMode}': never reads past the frontier, and digests the whole file`, async () => {
      const body = randomBody(4 * MiB, 7);
      const { hasher, fh, finish, errors } = await halfWritten(body, hashMode);
      try {
        // Time to read on past the frontier, if it did: those bytes would be the zeros.
        await new Promise((r) => setTimeout(r, 100));
        finish();
        assert.equal(await hasher.digest(), sha256Hex(body));
        assert.deepEqual(errors, []);
      } finally {
        hasher.close();
        await fh.close();
      }
    });
  }

  it('a stopped transfer: settle() returns without waiting for bytes that will not come', async function () {
    this.timeout(5_000);
    const stop = new AbortController();
    const { hasher, fh } = await halfWritten(randomBody(2 * MiB, 8), 'frontier', stop.signal);
    try {
      await new Promise((r) => setTimeout(r, 50)); // the first half is hashed; it waits for more
      stop.abort();
      await hasher.settle();
    } finally {
      hasher.close();
      await fh.close();
    }
  });

  it('no checksum: no hasher', async () => {
    const fh = await io.open(path.join(dir, 'none.bin'), io.constants.O_RDWR | io.constants.O_CREAT);
    try {
      const none = PrefixHasher.start({ sha256: undefined, hashMode: 'frontier', temporaryPath: '', localPath: '', fh, size: 0, frontier: () => 0, signal: new AbortController().signal, onError: () => undefined, log: () => undefined });
      assert.equal(none, undefined);
    } finally {
      await fh.close();
    }
  });
});
