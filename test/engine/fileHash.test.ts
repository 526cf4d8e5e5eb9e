// The one file-hashing loop (src/engine/fileHash.ts): whole files, prefixes, chunk boundaries, links not followed.
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileChunks, hashFile, hashOpenFile } from '../../src/engine/fileHash';
import { hashPrefix } from '../../src/engine/integrity';
import { tempDir } from '../support/engineHarness';
import { randomBody, sha256Hex } from '../support/testServer';

describe('hashing files', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function write(name: string, body: Buffer): string {
    const p = path.join(dir, name);
    fs.writeFileSync(p, body);
    return p;
  }

  // Sizes around the 1 MiB chunk: empty, one byte, a chunk less one, exactly one, one more, several and a bit.
  for (const size of [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 12345]) {
    it(`a whole file of ${size} bytes, and each of its prefixes at the chunk edges`, async () => {
      const body = randomBody(size, size % 97);
      const p = write('f.bin', body);
      assert.equal(await hashFile(p), sha256Hex(body));
      assert.equal(await hashFile(p, 'sha512'), createHash('sha512').update(body).digest('hex'));
      const fh = await fs.promises.open(p, 'r');
      try {
        for (const length of [0, 1, size >> 1, size - 1, size].filter((n) => n >= 0 && n <= size)) {
          assert.equal((await hashPrefix(fh, length)).digest('hex'), sha256Hex(body.subarray(0, length)), `prefix of ${length}`);
        }
        // Asking for more than the file holds stops at its end.
        assert.equal((await hashOpenFile(fh, createHash('sha256'), size + 10)).digest('hex'), sha256Hex(body));
        let total = 0;
        for await (const chunk of fileChunks(fh)) {
          assert.ok(chunk.length > 0 && chunk.length <= 1 << 20, `chunk of ${chunk.length} bytes`);
          total += chunk.length;
        }
        assert.equal(total, size);
      } finally {
        await fh.close();
      }
    });
  }

  it('does not follow a symbolic link (ELOOP), and names a missing file (ENOENT)', async () => {
    const target = write('target.bin', Buffer.from('secret'));
    fs.symlinkSync(target, path.join(dir, 'link.bin'));
    await assert.rejects(hashFile(path.join(dir, 'link.bin')), { code: 'ELOOP' });
    await assert.rejects(hashFile(path.join(dir, 'missing.bin')), { code: 'ENOENT' });
  });
});
