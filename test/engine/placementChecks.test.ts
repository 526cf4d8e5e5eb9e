// Unit tests of the placement check (src/engine/placementChecks.ts): Complete puts a temporary in place only if it
// is still the very file the transfer finished. The end-to-end attacks (a symbolic link swapped in before Complete,
// a hard link to a victim file) are in the security suite; here each reason is pinned on its own, with the facts
// that must NOT trigger it beside it, so that the mutation run (npm run test:mutation) sees every condition decide.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkTemporaryUnchanged, recordTemporaryIdentity } from '../../src/engine/placementChecks';
import type { FileRecord } from '../../src/engine/records';
import { DownloadError } from '../../src/engine/errors';

describe('placement checks (the temporary is still the file that was verified)', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'md-placement-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function fileWith(bytes: string, extra: Partial<FileRecord> = {}): FileRecord {
    const localPath = path.join(dir, 'out.bin');
    const temporaryPath = path.join(dir, 'out.bin.mdpart');
    fs.writeFileSync(temporaryPath, bytes);
    return { remoteUrl: 'http://127.0.0.1:1/x', localPath, temporaryPath, durableBytes: bytes.length, transferred: true, completed: false, restarts: 0, bytesTotal: bytes.length, ...extra };
  }

  async function refusal(f: FileRecord): Promise<string> {
    const err = await checkTemporaryUnchanged(f).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof DownloadError, `refused with a DownloadError (got ${String(err)})`);
    assert.equal(err.code, 'BG_E_LOCAL_FILE_CHANGED');
    assert.equal(err.context, 'LOCAL_FILE');
    assert.ok(err.message.includes(f.temporaryPath) && err.message.includes(`'${f.localPath}'`), `the message names both files: ${err.message}`);
    return err.message;
  }

  it('records the device and inode of a regular temporary file, and nothing for a missing one or a directory', async () => {
    const f = fileWith('abc');
    await recordTemporaryIdentity(f);
    const st = fs.lstatSync(f.temporaryPath);
    assert.deepEqual(f.temporaryIdentity, { dev: st.dev, ino: st.ino });

    const gone: FileRecord = { ...fileWith('x'), temporaryPath: path.join(dir, 'nothing-here'), temporaryIdentity: undefined };
    await recordTemporaryIdentity(gone);
    assert.equal(gone.temporaryIdentity, undefined);

    const folder = path.join(dir, 'a-folder');
    fs.mkdirSync(folder);
    const notFile: FileRecord = { ...fileWith('x'), temporaryPath: folder, temporaryIdentity: undefined };
    await recordTemporaryIdentity(notFile);
    assert.equal(notFile.temporaryIdentity, undefined, 'a directory is not recorded as the temporary');
  });

  it('lets an unchanged temporary through (identity recorded, size equal, one name)', async () => {
    const f = fileWith('hello');
    await recordTemporaryIdentity(f);
    await checkTemporaryUnchanged(f);
  });

  it('lets through a temporary of unknown size, or one transferred before identities were recorded', async () => {
    const f = fileWith('hello', { bytesTotal: undefined });
    await checkTemporaryUnchanged(f);
    await recordTemporaryIdentity(f);
    await checkTemporaryUnchanged(f);
  });

  it('refuses a temporary that is gone', async () => {
    const f = fileWith('hello');
    fs.rmSync(f.temporaryPath);
    assert.match(await refusal(f), /\(it is gone\)/);
  });

  it('refuses a temporary replaced by a symbolic link, even to a file of the same size', async () => {
    const f = fileWith('hello');
    await recordTemporaryIdentity(f);
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'HELLO');
    fs.rmSync(f.temporaryPath);
    fs.symlinkSync(victim, f.temporaryPath);
    assert.match(await refusal(f), /\(it was replaced by a symbolic link\)/);
  });

  it('refuses a temporary that became a directory', async () => {
    const f = fileWith('hello');
    fs.rmSync(f.temporaryPath);
    fs.mkdirSync(f.temporaryPath);
    assert.match(await refusal(f), /\(it is no longer a regular file\)/);
  });

  it('refuses another file under the same name (other inode), even with the same size', async () => {
    const f = fileWith('hello');
    await recordTemporaryIdentity(f);
    const other = path.join(dir, 'other');
    fs.writeFileSync(other, 'HELLO');
    fs.renameSync(other, f.temporaryPath);
    assert.match(await refusal(f), /\(it was replaced by another file\)/);
  });

  it('compares the device as well as the inode', async () => {
    const f = fileWith('hello');
    await recordTemporaryIdentity(f);
    const id = f.temporaryIdentity as { dev: number; ino: number };
    f.temporaryIdentity = { dev: id.dev + 1, ino: id.ino };
    assert.match(await refusal(f), /\(it was replaced by another file\)/);
    f.temporaryIdentity = { dev: id.dev, ino: id.ino + 1 };
    assert.match(await refusal(f), /\(it was replaced by another file\)/);
  });

  it('refuses a temporary whose size changed, and says both sizes', async () => {
    const f = fileWith('hello');
    await recordTemporaryIdentity(f);
    fs.appendFileSync(f.temporaryPath, '!!');
    assert.match(await refusal(f), /\(its size changed \(7 bytes, not 5\)\)/);
  });

  it('refuses a temporary with another name elsewhere (a hard link someone made to keep or swap it)', async () => {
    const f = fileWith('hello');
    await recordTemporaryIdentity(f);
    fs.linkSync(f.temporaryPath, path.join(dir, 'elsewhere'));
    assert.match(await refusal(f), /\(it has another name \(a hard link\) somewhere else\)/);
  });

  it('accepts the second name when it is the destination itself (an earlier Complete linked it and could not finish)', async () => {
    const f = fileWith('hello');
    await recordTemporaryIdentity(f);
    fs.linkSync(f.temporaryPath, f.localPath);
    await checkTemporaryUnchanged(f);
  });

  it('refuses when the destination is a different file and the temporary has another name elsewhere', async () => {
    const f = fileWith('hello');
    await recordTemporaryIdentity(f);
    fs.writeFileSync(f.localPath, 'hello');
    fs.linkSync(f.temporaryPath, path.join(dir, 'elsewhere'));
    assert.match(await refusal(f), /hard link/);
  });

  it('refuses when the destination is another file that also has two names (only the inode tells them apart)', async () => {
    const f = fileWith('hello');
    await recordTemporaryIdentity(f);
    fs.linkSync(f.temporaryPath, path.join(dir, 'elsewhere'));
    fs.writeFileSync(f.localPath, 'hello');
    fs.linkSync(f.localPath, path.join(dir, 'its-own-twin'));
    assert.match(await refusal(f), /hard link/);
  });

  it('refuses when the destination is the temporary but a third name exists too (three links)', async () => {
    const f = fileWith('hello');
    await recordTemporaryIdentity(f);
    fs.linkSync(f.temporaryPath, f.localPath);
    fs.linkSync(f.temporaryPath, path.join(dir, 'third'));
    assert.match(await refusal(f), /hard link/);
  });

  it('refuses when the destination is a symbolic link to the temporary (not a second name Complete makes)', async () => {
    const f = fileWith('hello');
    await recordTemporaryIdentity(f);
    fs.linkSync(f.temporaryPath, path.join(dir, 'elsewhere'));
    fs.symlinkSync(f.temporaryPath, f.localPath);
    assert.match(await refusal(f), /hard link/);
  });

  it('accepts the second name of a file placed from the content cache (its cache entry), and only then', async () => {
    const f = fileWith('hello', { bytesFromCache: 5 });
    await recordTemporaryIdentity(f);
    fs.linkSync(f.temporaryPath, path.join(dir, 'cache-entry'));
    await checkTemporaryUnchanged(f);
    f.bytesFromCache = 0;
    assert.match(await refusal(f), /hard link/);
  });
});
