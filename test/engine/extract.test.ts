// Extraction: archives built by the tests (good ones and hostile ones) are unpacked all or nothing, and no
// entry can write outside the folder.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { extractArchive, EXTRACT_MARKER, type DownloadError } from '../../src/engine';
import { gzip, makeTar, makeZip, type TarEntrySpec, type ZipEntrySpec } from '../support/archives';
import { tempDir } from '../support/engineHarness';

describe('extractArchive', () => {
  let dir: string;

  beforeEach(() => {
    dir = tempDir('md-extract-');
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function write(name: string, bytes: Buffer): string {
    const p = path.join(dir, name);
    fs.writeFileSync(p, bytes);
    return p;
  }

  /** Extracts and expects a refusal: the error, then that nothing was left (no folder, no staging) and the archive is intact. */
  async function refused(archive: string, code: string, mentions: string, folder = path.join(dir, 'out')): Promise<DownloadError> {
    const before = fs.readFileSync(archive);
    const err = (await extractArchive(archive, folder).then(
      () => assert.fail('extraction should have been refused'),
      (e: unknown) => e,
    )) as DownloadError;
    assert.equal(err.code, code, err.message);
    assert.ok(err.message.includes(mentions), `'${err.message}' should mention '${mentions}'`);
    assert.deepEqual(fs.readdirSync(dir).sort(), [path.basename(archive)], 'nothing but the archive is left');
    assert.deepEqual(fs.readFileSync(archive), before, 'the archive is untouched');
    return err;
  }

  const zipOf = (name: string, entries: ZipEntrySpec[]): string => write(name, makeZip(entries));
  const tarOf = (name: string, entries: TarEntrySpec[]): string => write(name, name.endsWith('gz') ? gzip(makeTar(entries)) : makeTar(entries));

  it('unpacks a zip beside the archive, named after it, with its folders, contents and executable bits', async () => {
    const archive = zipOf('tools-1.2.zip', [
      { name: 'bin/' },
      { name: 'bin/run.sh', data: '#!/bin/sh\necho hi\n', unixMode: 0o100755 },
      { name: 'docs/readme.txt', data: 'hello '.repeat(1000) },
      { name: 'empty.txt', data: '', store: true },
    ]);
    const progress: number[] = [];
    const result = await extractArchive(archive, undefined, { onProgress: (read) => progress.push(read) });
    const out = path.join(dir, 'tools-1.2');
    assert.equal(result.folder, out);
    assert.equal(result.alreadyExtracted, false);
    assert.equal(result.files, 3);
    assert.equal(fs.readFileSync(path.join(out, 'docs/readme.txt'), 'utf8'), 'hello '.repeat(1000));
    assert.equal(fs.readFileSync(path.join(out, 'empty.txt'), 'utf8'), '');
    if (process.platform !== 'win32') {
      assert.equal(fs.statSync(path.join(out, 'bin/run.sh')).mode & 0o100, 0o100);
    }
    assert.equal(progress.at(-1), fs.statSync(archive).size);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['tools-1.2', 'tools-1.2.zip'], 'no staging folder is left');
  });

  it('unpacks a .tar.gz with links that stay inside the folder', async () => {
    const archive = tarOf('pkg.tar.gz', [
      { name: 'lib/', type: '5' },
      { name: 'lib/libx.so.1.2', data: 'binary' },
      { name: 'lib/libx.so', type: '2', linkName: 'libx.so.1.2' },
      { name: 'lib/again', type: '1', linkName: 'lib/libx.so.1.2' },
      { name: 'top', type: '2', linkName: 'lib/../lib/libx.so' },
    ]);
    const result = await extractArchive(archive, path.join(dir, 'unpacked'));
    const out = path.join(dir, 'unpacked');
    assert.equal(result.files, 4);
    assert.equal(fs.readFileSync(path.join(out, 'top'), 'utf8'), 'binary');
    assert.equal(fs.readlinkSync(path.join(out, 'lib/libx.so')), 'libx.so.1.2');
    assert.equal(fs.readFileSync(path.join(out, 'lib/again'), 'utf8'), 'binary');
  });

  it('refuses a zip entry that climbs out of the folder (zip-slip), with / or \\', async () => {
    await refused(zipOf('slip.zip', [{ name: 'ok.txt', data: 'fine' }, { name: '../evil.txt', data: 'pwned' }]), 'E_INVALIDARG', "'../evil.txt'");
    fs.rmSync(path.join(dir, 'slip.zip'));
    await refused(zipOf('slip2.zip', [{ name: 'a\\..\\..\\evil.txt', data: 'pwned' }]), 'E_INVALIDARG', 'leaves the destination folder');
  });

  it('refuses absolute names and drive letters', async () => {
    await refused(tarOf('abs.tar', [{ name: '/tmp/md-evil.txt', data: 'pwned' }]), 'E_INVALIDARG', 'is an absolute path');
    fs.rmSync(path.join(dir, 'abs.tar'));
    await refused(zipOf('drive.zip', [{ name: 'C:/Windows/evil.txt', data: 'pwned' }]), 'E_INVALIDARG', "'C:/Windows/evil.txt' is an absolute path");
  });

  it('refuses a symbolic link pointing outside the folder (tar and zip), and one climbing through another link', async () => {
    await refused(tarOf('sym.tar', [{ name: 'etc', type: '2', linkName: '../../etc' }]), 'E_INVALIDARG', "'etc' is a link pointing outside");
    fs.rmSync(path.join(dir, 'sym.tar'));
    await refused(zipOf('sym.zip', [{ name: 'x', data: '/etc/passwd', unixMode: 0o120777 }]), 'E_INVALIDARG', "'x' is a link to an absolute path");
    fs.rmSync(path.join(dir, 'sym.zip'));
    // 'up' looks inside when read as text (a/b/c/../.. is a), but 'c' is a link to the top: physically it climbs out.
    await refused(
      tarOf('chain.tar', [
        { name: 'a/b/c', type: '2', linkName: '../..' },
        { name: 'a/b/up', type: '2', linkName: 'c/../..' },
      ]),
      'E_INVALIDARG',
      "'a/b/up' is a link through another link",
    );
  });

  it('refuses an entry written through a link of the same archive', async () => {
    await refused(
      tarOf('through.tar', [
        { name: 'd', type: '2', linkName: '.' },
        { name: 'd/file', data: 'x' },
      ]),
      'E_INVALIDARG',
      "'d/file' goes through 'd'",
    );
  });

  it('refuses a hard link to a file outside the folder', async () => {
    fs.writeFileSync(path.join(dir, 'secret'), 'secret');
    const archive = tarOf('hard.tar', [{ name: 'h', type: '1', linkName: '../secret' }]);
    const err = (await extractArchive(archive, path.join(dir, 'out')).catch((e: unknown) => e)) as DownloadError;
    assert.equal(err.code, 'E_INVALIDARG');
    assert.match(err.message, /'h' is a hard link to '\.\.\/secret'/);
    assert.equal(fs.existsSync(path.join(dir, 'out')), false);
  });

  for (const [type, what] of [['3', 'character device'], ['4', 'block device'], ['6', 'FIFO']] as const) {
    it(`refuses a ${what} entry`, async () => {
      await refused(tarOf('dev.tar', [{ name: 'ok', data: 'x' }, { name: 'dev/thing', type }]), 'E_INVALIDARG', "'dev/thing' is a device or FIFO entry");
    });
  }

  it('refuses a zip device entry', async () => {
    await refused(zipOf('dev.zip', [{ name: 'fifo', unixMode: 0o010644 }]), 'E_INVALIDARG', "'fifo' is a device, FIFO or socket entry");
  });

  it('refuses two names that are the same file on a disk that ignores case, and an entry given twice', async () => {
    await refused(zipOf('case.zip', [{ name: 'README.txt', data: 'a' }, { name: 'Readme.txt', data: 'b' }]), 'E_INVALIDARG', "'Readme.txt' names the same file as 'README.txt'");
    fs.rmSync(path.join(dir, 'case.zip'));
    await refused(zipOf('case2.zip', [{ name: 'Docs/a', data: 'a' }, { name: 'docs/b', data: 'b' }]), 'E_INVALIDARG', "'docs/b' names the same folder as 'Docs'");
    fs.rmSync(path.join(dir, 'case2.zip'));
    await refused(tarOf('twice.tar', [{ name: 'a', data: 'a' }, { name: 'a', data: 'b' }]), 'E_INVALIDARG', "'a' appears twice");
  });

  it('stops a zip bomb: bytes written beyond the ratio, or beyond the absolute bound', async () => {
    const zeros = Buffer.alloc(8 * 1024 * 1024);
    const bomb = zipOf('bomb.zip', [{ name: 'zeros.bin', data: zeros }]);
    assert.ok(fs.statSync(bomb).size * 200 < zeros.length, 'the test archive packs better than 200:1');
    await refused(bomb, 'ERROR_FILE_TOO_LARGE', 'looks like a zip bomb');
    fs.rmSync(bomb);
    const random = Buffer.from(Array.from({ length: 3 * 1024 * 1024 }, (_, i) => (i * 7919) % 251));
    const big = tarOf('big.tgz', [{ name: 'data.bin', data: random }]);
    const err = (await extractArchive(big, path.join(dir, 'out'), { maxBytes: 2 * 1024 * 1024, maxRatio: 1e9 }).catch((e: unknown) => e)) as DownloadError;
    assert.equal(err.code, 'ERROR_FILE_TOO_LARGE', err.message);
    assert.deepEqual(fs.readdirSync(dir), ['big.tgz']);
  });

  it('refuses a truncated archive, zip or tar.gz, leaving nothing', async () => {
    const zip = makeZip([{ name: 'a.txt', data: 'a'.repeat(5000) }, { name: 'b.txt', data: 'b'.repeat(5000) }]);
    await refused(write('cut.zip', zip.subarray(0, zip.length - 30)), 'ERROR_INVALID_DATA', 'damaged or incomplete');
    fs.rmSync(path.join(dir, 'cut.zip'));
    const tgz = gzip(makeTar([{ name: 'a.bin', data: Buffer.from(Array.from({ length: 20000 }, (_, i) => i % 256)) }]));
    await refused(write('cut.tgz', tgz.subarray(0, Math.floor(tgz.length / 2))), 'ERROR_INVALID_DATA', 'damaged or incomplete');
  });

  // The entry being written when a .tar.gz ends early never ends: its file stayed open until garbage collection.
  (process.platform === 'linux' ? it : it.skip)('closes every file it opened when a compressed archive ends mid-entry', async () => {
    const openFiles = (): string[] => fs.readdirSync('/proc/self/fd').map((fd) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    }).filter((target) => target.startsWith(dir));
    const tgz = gzip(makeTar([{ name: 'big.bin', data: Buffer.alloc(200_000, 7) }]));
    await refused(write('cut.tgz', tgz.subarray(0, Math.floor(tgz.length / 2))), 'ERROR_INVALID_DATA', 'damaged or incomplete');
    assert.deepEqual(openFiles(), [], 'no file of the extraction is still open');
  });

  it('leaves nothing when a bad entry comes after good ones, and keeps the archive', async () => {
    const archive = tarOf('late.tar', [
      { name: 'a/one.txt', data: '1' },
      { name: 'a/two.txt', data: '2' },
      { name: 'a/../../escape.txt', data: 'pwned' },
    ]);
    await refused(archive, 'E_INVALIDARG', "'a/../../escape.txt' leaves the destination folder");
  });

  it('does nothing the second time (marker with the archive sha256); a new archive replaces its own earlier extraction', async () => {
    const archive = zipOf('app.zip', [{ name: 'v.txt', data: 'v1' }]);
    const out = path.join(dir, 'app');
    assert.equal((await extractArchive(archive)).alreadyExtracted, false);
    const marker = JSON.parse(fs.readFileSync(path.join(out, EXTRACT_MARKER), 'utf8')) as { sha256: string };
    assert.match(marker.sha256, /^[0-9a-f]{64}$/);
    fs.writeFileSync(path.join(out, 'v.txt'), 'edited by the user');
    const again = await extractArchive(archive);
    assert.equal(again.alreadyExtracted, true);
    assert.equal(fs.readFileSync(path.join(out, 'v.txt'), 'utf8'), 'edited by the user', 'the second run wrote nothing');

    fs.writeFileSync(archive, makeZip([{ name: 'v.txt', data: 'v2' }]));
    assert.equal((await extractArchive(archive)).alreadyExtracted, false);
    assert.equal(fs.readFileSync(path.join(out, 'v.txt'), 'utf8'), 'v2');
    assert.deepEqual(fs.readdirSync(dir).sort(), ['app', 'app.zip']);

    // Another archive that would unpack into the same folder does not replace it.
    const other = tarOf('app.tgz', [{ name: 'v.txt', data: 'other' }]);
    const err = (await extractArchive(other).catch((e: unknown) => e)) as DownloadError;
    assert.equal(err.code, 'EEXIST');
    assert.match(err.message, /holds the contents of 'app\.zip'/);
    assert.equal(fs.readFileSync(path.join(out, 'v.txt'), 'utf8'), 'v2');
  });

  it('stops when cancelled part-way (E_ABORT), leaving nothing', async () => {
    const archive = zipOf('many.zip', Array.from({ length: 20 }, (_, i) => ({ name: `f${i}.bin`, data: Buffer.alloc(100_000, i), store: true })));
    const abort = new AbortController();
    const err = (await extractArchive(archive, undefined, { signal: abort.signal, onProgress: (read, total) => read > total / 3 && abort.abort() }).catch((e: unknown) => e)) as DownloadError;
    assert.equal(err.code, 'E_ABORT', err.message);
    assert.deepEqual(fs.readdirSync(dir), ['many.zip']);
  });

  it("does not replace a folder of the user's own files", async () => {
    const archive = zipOf('app.zip', [{ name: 'v.txt', data: 'v1' }]);
    fs.mkdirSync(path.join(dir, 'app'));
    fs.writeFileSync(path.join(dir, 'app', 'mine.txt'), 'mine');
    const err = (await extractArchive(archive).catch((e: unknown) => e)) as DownloadError;
    assert.equal(err.code, 'EEXIST');
    assert.deepEqual(fs.readdirSync(path.join(dir, 'app')), ['mine.txt']);
  });

  it('refuses a name that is not an archive it reads', async () => {
    const p = write('data.tar.xz', zlib.gzipSync(Buffer.from('x')));
    const err = (await extractArchive(p).catch((e: unknown) => e)) as DownloadError;
    assert.equal(err.code, 'E_INVALIDARG');
    assert.match(err.message, /\.tar\.xz/);
  });
});
