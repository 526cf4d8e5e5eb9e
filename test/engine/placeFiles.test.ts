// placeInOrder (placeFiles.ts): Complete for many files, against real files, with link errors injected through
// io.ts. What is in place must always be a prefix, journaled before any temporary name goes.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nodeIo, useIo } from '../../src/engine/io';
import { placeInOrder, type PlaceOptions } from '../../src/engine/placeFiles';
import type { FileRecord } from '../../src/engine/records';
import { tempDir } from '../support/engineHarness';

describe('placing many files in order (placeFiles.ts)', () => {
  let dir: string;
  let restoreIo: (() => void) | undefined;
  let events: string[];
  let links: string[];

  beforeEach(() => {
    dir = tempDir('md-place-');
    events = [];
    links = [];
  });
  afterEach(() => {
    restoreIo?.();
    restoreIo = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function files(n: number, over: (i: number) => Partial<FileRecord> = () => ({})): FileRecord[] {
    return Array.from({ length: n }, (_, i) => {
      const temporaryPath = path.join(dir, `.f${i + 1}.mdpart`);
      fs.writeFileSync(temporaryPath, `file ${i + 1}`);
      return { remoteUrl: `https://e/f${i + 1}`, localPath: path.join(dir, `f${i + 1}`), temporaryPath, durableBytes: 6, transferred: true, completed: false, ...over(i) } as FileRecord;
    });
  }
  const name = (f: FileRecord): string => path.basename(f.localPath);

  /** Link calls are recorded; `fail` names the destination whose link fails and with what code. */
  function injectLinks(fail?: { dest: string; code: string }): void {
    restoreIo = useIo({
      ...nodeIo,
      link: async (from, to) => {
        links.push(path.basename(String(to)));
        if (fail && path.basename(String(to)) === fail.dest) {
          throw Object.assign(new Error(`injected ${fail.code}`), { code: fail.code });
        }
        return nodeIo.link(from, to);
      },
    });
  }

  function options(over: Partial<PlaceOptions> = {}): PlaceOptions {
    return {
      placeOne: async (f) => {
        events.push(`one ${name(f)}`);
        await fs.promises.rename(f.temporaryPath, f.localPath);
        f.completed = true;
      },
      save: () => {
        events.push('save');
        return Promise.resolve();
      },
      placed: (f) => events.push(`placed ${name(f)}`),
      failed: (f, e) => {
        assert.ok(e instanceof Error, 'placeInOrder fails with Errors');
        events.push(`failed ${name(f)} ${(e as NodeJS.ErrnoException).code ?? e.message}`);
        return Promise.reject(e);
      },
      check: () => Promise.resolve(),
      removeTemporary: (f) => {
        events.push(`remove ${name(f)}`);
        return fs.promises.unlink(f.temporaryPath);
      },
      ...over,
    };
  }
  const inPlace = (list: FileRecord[]): string[] => list.filter((f) => fs.existsSync(f.localPath)).map(name);

  it('links a batch, journals it once, then removes the temporary names, then reports each file in order', async () => {
    injectLinks();
    const batch = files(5);
    await placeInOrder(batch, options());
    assert.deepEqual(inPlace(batch), ['f1', 'f2', 'f3', 'f4', 'f5']);
    assert.deepEqual(events, ['save', 'remove f1', 'remove f2', 'remove f3', 'remove f4', 'remove f5', 'placed f1', 'placed f2', 'placed f3', 'placed f4', 'placed f5']);
    assert.ok(batch.every((f) => f.completed));
    assert.equal(links.length, 5);
    assert.ok(batch.every((f) => !fs.existsSync(f.temporaryPath)));
  });

  for (const code of ['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']) {
    it(`a file system without hard links (${code} on file 3): files 1–2 linked, the rest one by one, links not tried again`, async () => {
      injectLinks({ dest: 'f3', code });
      const batch = files(6);
      await placeInOrder(batch, options());
      assert.deepEqual(inPlace(batch), ['f1', 'f2', 'f3', 'f4', 'f5', 'f6']);
      assert.deepEqual(events.slice(0, 5), ['save', 'remove f1', 'remove f2', 'placed f1', 'placed f2']);
      assert.deepEqual(events.slice(5), ['one f3', 'one f4', 'one f5', 'one f6'], 'the rest one by one, in order');
      assert.ok(!events.some((e) => e.startsWith('failed')));
      // Links made in flight after f3 were undone before the one-by-one path renamed over their names.
      assert.ok(links.filter((l) => l === 'f3').length === 1);
      assert.ok(batch.every((f) => f.completed));
    });
  }

  it("someone else's file at a destination: the files before it are in place, the ones after are not, and it fails with EEXIST", async () => {
    injectLinks();
    const batch = files(6);
    fs.writeFileSync(batch[2].localPath, 'theirs');
    await assert.rejects(placeInOrder(batch, options()), (e: NodeJS.ErrnoException) => e.code === 'EEXIST' && e.message === `'${batch[2].localPath}' already exists (created by someone else); it was not replaced`);
    assert.deepEqual(inPlace(batch), ['f1', 'f2', 'f3']);
    assert.equal(fs.readFileSync(batch[2].localPath, 'utf8'), 'theirs');
    assert.deepEqual(batch.map((f) => f.completed), [true, true, false, false, false, false]);
    for (const f of batch.slice(3)) {
      assert.ok(fs.existsSync(f.temporaryPath), `${name(f)}: its temporary stays`);
    }
    assert.deepEqual(events, ['save', 'remove f1', 'remove f2', 'placed f1', 'placed f2', 'failed f3 EEXIST']);
  });

  it('any other link error fails the file as it is, after the files before it', async () => {
    injectLinks({ dest: 'f2', code: 'ENOSPC' });
    const batch = files(3);
    await assert.rejects(placeInOrder(batch, options()), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC');
    assert.deepEqual(inPlace(batch), ['f1']);
    assert.deepEqual(events, ['save', 'remove f1', 'placed f1', 'failed f2 ENOSPC']);
  });

  it('a refused check fails that file: nothing after it is linked or left in place', async () => {
    injectLinks();
    const batch = files(4);
    const refusal = new Error('the temporary is not the file that was verified');
    await assert.rejects(placeInOrder(batch, options({ check: (f) => (name(f) === 'f2' ? Promise.reject(refusal) : Promise.resolve()) })), (e) => e === refusal);
    assert.deepEqual(inPlace(batch), ['f1']);
    assert.ok(events.includes('failed f2 the temporary is not the file that was verified'));
  });

  it('nothing linked before the failure: no journal save', async () => {
    injectLinks({ dest: 'f1', code: 'ENOSPC' });
    await assert.rejects(placeInOrder(files(2), options()));
    assert.deepEqual(events, ['failed f1 ENOSPC']);
  });

  it('a destination that is already our own link to the temporary (an earlier Complete) counts as linked', async () => {
    injectLinks();
    const batch = files(3);
    fs.linkSync(batch[1].temporaryPath, batch[1].localPath);
    await placeInOrder(batch, options());
    assert.deepEqual(inPlace(batch), ['f1', 'f2', 'f3']);
    assert.deepEqual(events.filter((e) => e !== 'save').filter((e) => e.startsWith('failed') || e.startsWith('one')), []);
    assert.equal(fs.readFileSync(batch[1].localPath, 'utf8'), 'file 2');
  });

  it('a file that replaces its destination goes the one-file way, between the batches before and after it', async () => {
    injectLinks();
    const batch = files(4, (i) => (i === 1 ? { replaceExisting: true } : {}));
    fs.writeFileSync(batch[1].localPath, 'old');
    await placeInOrder(batch, options());
    assert.deepEqual(events, ['save', 'remove f1', 'placed f1', 'one f2', 'save', 'remove f3', 'remove f4', 'placed f3', 'placed f4']);
    assert.equal(fs.readFileSync(batch[1].localPath, 'utf8'), 'file 2');
    assert.deepEqual(links, ['f1', 'f3', 'f4']);
  });
});
