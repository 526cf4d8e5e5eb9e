// renameIntoPlace and deleteBusyFile (rename.ts) against a real folder, with the link/rename errors of other file
// systems injected through io.ts: FAT and some shares have no hard links, a busy file, a FIFO where a file was.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nodeIo, useIo } from '../../src/engine/io';
import { deleteBusyFile, renameIntoPlace, type PlacePhase } from '../../src/engine/rename';
import { tempDir } from '../support/engineHarness';

const failWith = (code: string) => (): Promise<never> => Promise.reject(Object.assign(new Error(`injected ${code}`), { code }));

describe('putting a finished file in place (rename.ts)', () => {
  let dir: string;
  let tmp: string;
  let dest: string;
  let restoreIo: (() => void) | undefined;
  let phases: PlacePhase[];
  const onPlaced = (p: PlacePhase): Promise<void> => {
    // What the caller journals must be true when it is called: after a link both names are the file.
    if (p === 'linked') {
      assert.equal(fs.statSync(dest).ino, fs.statSync(tmp).ino, 'linked: dest is the finished file');
    } else {
      assert.ok(fs.existsSync(tmp), 'renaming: not yet renamed');
    }
    phases.push(p);
    return Promise.resolve();
  };

  beforeEach(() => {
    dir = tempDir('md-rename-');
    tmp = path.join(dir, '.a.bin.mdpart');
    dest = path.join(dir, 'a.bin');
    fs.writeFileSync(tmp, 'finished');
    phases = [];
  });
  afterEach(() => {
    restoreIo?.();
    restoreIo = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('links the file to its name and leaves the temporary name for the caller to delete', async () => {
    assert.equal(await renameIntoPlace(tmp, dest, false, onPlaced), 'linked');
    assert.deepEqual(phases, ['linked']);
    assert.equal(fs.readFileSync(dest, 'utf8'), 'finished');
    assert.ok(fs.existsSync(tmp), 'the temporary name is still there');
  });

  it("never replaces someone else's file: EEXIST, the file untouched, nothing journaled", async () => {
    fs.writeFileSync(dest, 'theirs');
    await assert.rejects(renameIntoPlace(tmp, dest, false, onPlaced), (e: NodeJS.ErrnoException) => e.code === 'EEXIST' && e.message === `'${dest}' already exists (created by someone else); it was not replaced`);
    assert.equal(fs.readFileSync(dest, 'utf8'), 'theirs');
    assert.deepEqual(phases, []);
  });

  for (const code of ['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']) {
    it(`without hard links (link fails with ${code}) checks the name, then renames`, async () => {
      restoreIo = useIo({ ...nodeIo, link: failWith(code) });
      assert.equal(await renameIntoPlace(tmp, dest, false, onPlaced), 'renamed');
      assert.deepEqual(phases, ['renaming']);
      assert.equal(fs.readFileSync(dest, 'utf8'), 'finished');
      assert.ok(!fs.existsSync(tmp), 'renamed: the temporary name is gone');
    });
  }

  it('without hard links still refuses an existing destination (EEXIST), before anything is journaled', async () => {
    restoreIo = useIo({ ...nodeIo, link: failWith('EXDEV') });
    fs.writeFileSync(dest, 'theirs');
    await assert.rejects(renameIntoPlace(tmp, dest, false, onPlaced), (e: NodeJS.ErrnoException) => e.code === 'EEXIST' && /already exists \(created by someone else\); it was not replaced/.test(e.message));
    assert.equal(fs.readFileSync(dest, 'utf8'), 'theirs');
    assert.ok(fs.existsSync(tmp));
    assert.deepEqual(phases, []);
  });

  it('passes on any other link error (a full disk, a missing folder) as it is', async () => {
    restoreIo = useIo({ ...nodeIo, link: failWith('ENOSPC') });
    await assert.rejects(renameIntoPlace(tmp, dest, false, onPlaced), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC' && e.message === 'injected ENOSPC');
    assert.ok(!fs.existsSync(dest));
    assert.deepEqual(phases, []);
  });

  it('replaces an existing regular file when asked, renaming over it', async () => {
    fs.writeFileSync(dest, 'old');
    assert.equal(await renameIntoPlace(tmp, dest, true, onPlaced), 'renamed');
    assert.deepEqual(phases, ['renaming']);
    assert.equal(fs.readFileSync(dest, 'utf8'), 'finished');
    assert.ok(!fs.existsSync(tmp));
  });

  it('replaces nothing when the name is free, and renames', async () => {
    assert.equal(await renameIntoPlace(tmp, dest, true, onPlaced), 'renamed');
    assert.equal(fs.readFileSync(dest, 'utf8'), 'finished');
  });

  it('never replaces a FIFO, a folder or a link, even when asked to (E_INVALIDARG naming it)', async () => {
    execFileSync('mkfifo', [dest]);
    await assert.rejects(renameIntoPlace(tmp, dest, true, onPlaced), (e: Error & { code?: string }) => e.code === 'E_INVALIDARG' && e.message.includes(dest));
    fs.rmSync(dest);
    fs.mkdirSync(dest);
    await assert.rejects(renameIntoPlace(tmp, dest, true, onPlaced), (e: Error & { code?: string }) => e.code === 'E_INVALIDARG');
    fs.rmdirSync(dest);
    fs.symlinkSync(path.join(dir, 'elsewhere'), dest);
    await assert.rejects(renameIntoPlace(tmp, dest, true, onPlaced), (e: Error & { code?: string }) => e.code === 'E_INVALIDARG');
    assert.deepEqual(phases, [], 'nothing journaled');
    assert.equal(fs.readFileSync(tmp, 'utf8'), 'finished', 'the temporary stays');
  });

  it('on Linux a busy error is not waited for: it fails at once (Windows retries for a minute)', async () => {
    let calls = 0;
    restoreIo = useIo({
      ...nodeIo,
      link: () => {
        calls++;
        return failWith('EBUSY')();
      },
    });
    await assert.rejects(renameIntoPlace(tmp, dest, false, onPlaced), (e: NodeJS.ErrnoException) => e.code === 'EBUSY');
    assert.equal(calls, 1);
  });

  it('works without a journaling callback on each path (link, rename without hard links, replace)', async () => {
    assert.equal(await renameIntoPlace(tmp, dest, false), 'linked');
    fs.rmSync(dest);
    restoreIo = useIo({ ...nodeIo, link: failWith('EXDEV') });
    assert.equal(await renameIntoPlace(tmp, dest, false), 'renamed');
    fs.writeFileSync(tmp, 'second');
    assert.equal(await renameIntoPlace(tmp, dest, true), 'renamed');
    assert.equal(fs.readFileSync(dest, 'utf8'), 'second');
  });

  it('deletes a file, and counts a missing one as deleted; other errors pass', async () => {
    await deleteBusyFile(tmp);
    assert.ok(!fs.existsSync(tmp));
    await deleteBusyFile(tmp);
    restoreIo = useIo({ ...nodeIo, unlink: failWith('EROFS') });
    fs.writeFileSync(tmp, 'x');
    await assert.rejects(deleteBusyFile(tmp), (e: NodeJS.ErrnoException) => e.code === 'EROFS');
    assert.ok(fs.existsSync(tmp));
  });
});
