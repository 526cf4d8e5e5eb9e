// The power-loss double itself (test/support/powerLossFs.ts): what survives a cut is exactly what was synced.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PowerCut, PowerLossFs } from '../support/powerLossFs';
import { tempDir } from '../support/engineHarness';

describe('power-loss double', () => {
  let root: string;
  beforeEach(() => {
    root = tempDir('md-plfs-');
    fs.writeFileSync(path.join(root, 'old.txt'), 'there before');
  });
  afterEach(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  async function syncDir(d: PowerLossFs, dir = root): Promise<void> {
    const fh = await d.io.open(dir, 'r');
    await fh.sync();
    await fh.close();
  }

  async function writeSynced(d: PowerLossFs, name: string, text: string, sync: boolean): Promise<void> {
    const fh = await d.io.open(path.join(root, name), 'w');
    await fh.writeFile(text);
    if (sync) {
      await fh.datasync();
    }
    await fh.close();
  }

  it('keeps what existed at the start', () => {
    const d = new PowerLossFs({ root });
    fs.writeFileSync(path.join(root, 'old.txt'), 'changed behind its back, never synced');
    d.materializeDurable();
    assert.deepEqual(fs.readdirSync(root), ['old.txt']);
    assert.equal(fs.readFileSync(path.join(root, 'old.txt'), 'utf8'), 'there before');
  });

  it('a new file is lost until its folder is synced, and empty until its data is', async () => {
    const d = new PowerLossFs({ root });
    await writeSynced(d, 'synced-data.txt', 'data', true);
    d.materializeDurable();
    assert.deepEqual(fs.readdirSync(root), ['old.txt'], 'data synced, folder not: the name is gone');

    const e = new PowerLossFs({ root });
    await writeSynced(e, 'a.txt', 'never synced', false);
    await writeSynced(e, 'b.txt', 'synced', true);
    await syncDir(e);
    fs.appendFileSync(path.join(root, 'b.txt'), ' and more, not synced');
    e.materializeDurable();
    assert.deepEqual(fs.readdirSync(root).sort(), ['a.txt', 'b.txt', 'old.txt']);
    assert.equal(fs.readFileSync(path.join(root, 'a.txt'), 'utf8'), '');
    assert.equal(fs.readFileSync(path.join(root, 'b.txt'), 'utf8'), 'synced');
  });

  it('a write through a handle opened with O_DSYNC is durable once it ends, and only what it wrote', async () => {
    const d = new PowerLossFs({ root });
    const fh = await d.io.open(path.join(root, 'log'), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND | fs.constants.O_DSYNC, 0o600);
    await fh.write('first line\n');
    await syncDir(d);
    fs.appendFileSync(path.join(root, 'log'), 'written behind its back, never synced');
    await fh.close();
    d.materializeDurable();
    assert.equal(fs.readFileSync(path.join(root, 'log'), 'utf8'), 'first line\n');
  });

  it("with metadata first, a file's sync commits every name and size made before it, not other files' data", async () => {
    const d = new PowerLossFs({ root, names: 'at-any-fsync' });
    await writeSynced(d, 'unsynced.txt', 'lost data', false);
    await writeSynced(d, 'synced.txt', 'kept', true);
    d.materializeDurable();
    assert.deepEqual(fs.readdirSync(root).sort(), ['old.txt', 'synced.txt', 'unsynced.txt']);
    assert.equal(fs.readFileSync(path.join(root, 'unsynced.txt'), 'utf8'), '\0'.repeat(9), 'its size, not its data');
    assert.equal(fs.readFileSync(path.join(root, 'synced.txt'), 'utf8'), 'kept');
  });

  it('a rename or an unlink counts once the folder is synced; hard links stay one inode', async () => {
    const d = new PowerLossFs({ root });
    await d.io.rename(path.join(root, 'old.txt'), path.join(root, 'new.txt'));
    d.materializeDurable();
    assert.deepEqual(fs.readdirSync(root), ['old.txt'], 'rename not durable yet');

    const e = new PowerLossFs({ root });
    await e.io.link(path.join(root, 'old.txt'), path.join(root, 'twin.txt'));
    await e.io.rename(path.join(root, 'old.txt'), path.join(root, 'new.txt'));
    await syncDir(e);
    await e.io.unlink(path.join(root, 'twin.txt'));
    e.materializeDurable();
    assert.deepEqual(fs.readdirSync(root).sort(), ['new.txt', 'twin.txt'], 'the unlink after the sync is lost');
    assert.equal(fs.statSync(path.join(root, 'new.txt')).ino, fs.statSync(path.join(root, 'twin.txt')).ino);
    assert.equal(fs.readFileSync(path.join(root, 'twin.txt'), 'utf8'), 'there before');
  });

  it('a deleted inode number reused by a new file is a new inode', async () => {
    const d = new PowerLossFs({ root });
    await d.io.unlink(path.join(root, 'old.txt'));
    await writeSynced(d, 'other.txt', 'not the old content', false);
    d.materializeDurable();
    assert.deepEqual(fs.readdirSync(root), ['old.txt']);
    assert.equal(fs.readFileSync(path.join(root, 'old.txt'), 'utf8'), 'there before');
  });

  it('cuts the power at call k: that call and every later one fail, the real files stay as they were', async () => {
    const d = new PowerLossFs({ root, cutAt: 3 });
    await d.io.stat(path.join(root, 'old.txt'));
    await d.io.writeFile(path.join(root, 'x.txt'), 'x');
    assert.equal(d.isCut, false);
    await assert.rejects(d.io.writeFile(path.join(root, 'y.txt'), 'y'), PowerCut);
    assert.equal(d.isCut, true);
    await d.whenCut;
    await assert.rejects(d.io.stat(root), PowerCut);
    assert.throws(() => d.io.mkdirSync(path.join(root, 'm')), PowerCut);
    assert.deepEqual(fs.readdirSync(root).sort(), ['old.txt', 'x.txt']);
    assert.equal(d.calls, 5);
  });

  it('counts handle calls and cuts them too', async () => {
    const d = new PowerLossFs({ root, cutAt: 3 });
    const fh = await d.io.open(path.join(root, 'old.txt'), 'r+');
    await fh.write(Buffer.from('T'), 0, 1, 0);
    await assert.rejects(fh.datasync(), PowerCut);
    await fh.close();
    d.materializeDurable();
    assert.equal(fs.readFileSync(path.join(root, 'old.txt'), 'utf8'), 'there before');
  });
});
