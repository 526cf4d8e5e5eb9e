// The job store (issue 16): a snapshot plus a log of changed jobs, group commit, compaction, old and newer stores.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DownloadError } from '../../src/engine';
import { nodeIo, useIo, type IoBackend } from '../../src/engine/io';
import type { JobRecord } from '../../src/engine/records';
import { JobStore } from '../../src/engine/store';
import { logFileName, logGeneration, parseSnapshot, putLine } from '../../src/engine/storeFormat';
import { openEngine, tempDir, waitUntil } from '../support/engineHarness';
import { readStoredJobs } from '../support/storeFiles';

function record(i: number, o: Partial<JobRecord> = {}): JobRecord {
  return {
    id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    displayName: `job ${i}`,
    description: '',
    type: 'download',
    priority: 'NORMAL',
    state: 'SUSPENDED',
    errorCount: 0,
    created: Date.now() + i,
    modified: Date.now() + i,
    minimumRetryDelaySeconds: 600,
    noProgressTimeoutSeconds: 1_209_600,
    headerNames: [],
    files: [{ remoteUrl: `http://example.test/${i}`, localPath: `/tmp/f${i}`, temporaryPath: `/tmp/.f${i}.mdpart`, durableBytes: 0, transferred: false, completed: false, restarts: 0 }],
    ...o,
  };
}

/** A store over `records` (the engine's list), loaded. */
async function openStore(dir: string, records: JobRecord[] = []): Promise<{ store: JobStore; loaded: JobRecord[]; problems: string[] }> {
  const store = new JobStore(dir, () => records, 5);
  const { jobs, problems } = await store.load();
  return { store, loaded: jobs, problems };
}

/** As a crash leaves it: nothing more is written (the log's file handle is closed, nothing else happens). */
async function abandon(store: JobStore): Promise<void> {
  await (store as unknown as { log?: { close(): Promise<void> } }).log?.close();
}

function logFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => logGeneration(n) !== undefined).sort();
}

/** Counts fsync and fdatasync calls on every file the engine opens while installed. */
function countSyncs(): { syncs: () => number; restore: () => void } {
  let n = 0;
  const restore = useIo({
    ...nodeIo,
    open: (async (...a: Parameters<IoBackend['open']>) => {
      const fh = await nodeIo.open(...a);
      const sync = fh.sync.bind(fh);
      const datasync = fh.datasync.bind(fh);
      fh.sync = () => (n++, sync());
      fh.datasync = () => (n++, datasync());
      return fh;
    }),
  });
  return { syncs: () => n, restore };
}

describe('job store', function () {
  this.timeout(30_000);
  let dir: string;

  beforeEach(() => {
    dir = tempDir('md-store-');
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a torn last line of the log (a write cut short) is ignored, and the changes written after it are kept', async () => {
    const a = record(1);
    const b = record(2);
    const { store } = await openStore(dir, [a, b]);
    await store.save(a);
    await store.save(b);
    // As a crash in the middle of the next write leaves it: part of a line, no newline. No close().
    const [log] = logFiles(dir);
    fs.appendFileSync(path.join(dir, log), putLine(JSON.stringify({ ...a, displayName: 'torn' })).slice(0, 60));
    const c = record(3);
    const second = await openStore(dir, [a, b, c]);
    assert.deepEqual(second.problems, []);
    assert.deepEqual(second.loaded.map((r) => r.displayName), ['job 1', 'job 2']);
    await second.store.save(c);
    const third = await openStore(dir);
    assert.deepEqual(third.loaded.map((r) => r.displayName), ['job 1', 'job 2', 'job 3'], 'the change saved after the torn line is read back');
    await Promise.all([store, second.store, third.store].map(abandon));
  });

  it('a log line whose checksum does not match ends the log: it is not applied', async () => {
    const a = record(1);
    const { store } = await openStore(dir, [a]);
    await store.save(a);
    const [log] = logFiles(dir);
    // Valid JSON, wrong bytes: a sector that did not make it to the disk intact.
    fs.appendFileSync(path.join(dir, log), putLine(JSON.stringify({ ...a, displayName: 'AAAA' })).replace('AAAA', 'BBBB'));
    const again = await openStore(dir);
    assert.deepEqual(again.loaded.map((r) => r.displayName), ['job 1']);
    await Promise.all([store, again.store].map(abandon));
  });

  it('createJob and addFile are durable when they resolve (read from disk while the engine runs)', async () => {
    const storeDir = path.join(dir, 'store');
    const engine = await openEngine(storeDir);
    try {
      const job = await engine.createJob({ displayName: 'durable' });
      assert.deepEqual(readStoredJobs(storeDir)?.jobs.map((j) => j.displayName), ['durable']);
      await job.addFile('http://127.0.0.1:1/x', path.join(dir, 'x.bin'));
      assert.deepEqual(readStoredJobs(storeDir)?.jobs[0].files.map((f) => path.basename(f.localPath)), ['x.bin']);
      const other = await openStore(storeDir);
      assert.deepEqual(other.loaded.map((r) => r.files.length), [1], 'a second store opened on the same folder sees it too');
      await abandon(other.store);
    } finally {
      await engine.dispose();
    }
  });

  it('saves from many callers at once share fsyncs (group commit), and each is durable when it resolves', async () => {
    const records = Array.from({ length: 40 }, (_, i) => record(i));
    const { store } = await openStore(dir, records);
    const counter = countSyncs();
    try {
      await Promise.all(records.map(async (r) => {
        await store.save(r);
        assert.ok(readStoredJobs(dir)!.jobs.some((j) => j.id === r.id), `${r.displayName} is on disk when its save resolves`);
      }));
    } finally {
      counter.restore();
    }
    assert.ok(counter.syncs() >= 1 && counter.syncs() < records.length / 4, `${counter.syncs()} fsyncs for ${records.length} saves`);
    assert.equal(readStoredJobs(dir)!.jobs.length, records.length);
    await abandon(store);
  });

  it('the log is compacted into a new snapshot when it outgrows the live jobs; every job is kept, removed ones stay removed', async () => {
    const description = 'd'.repeat(1000);
    const records = Array.from({ length: 300 }, (_, i) => record(i, { description }));
    const { store } = await openStore(dir, records);
    const firstGeneration = (parseSnapshot(fs.readFileSync(path.join(dir, 'jobs.json'), 'utf8')) as { generation: number }).generation;
    for (let round = 1; round <= 4; round++) {
      await Promise.all(records.map((r) => {
        r.modified = round;
        return store.save(r);
      }));
    }
    await store.remove(records[0].id, records[1].id);
    records.splice(0, 2);
    await waitUntil(() => !fs.existsSync(path.join(dir, logFileName(firstGeneration))), 10_000, 'the first log deleted by a compaction');
    const snapshot = parseSnapshot(fs.readFileSync(path.join(dir, 'jobs.json'), 'utf8'));
    assert.ok(snapshot.ok && snapshot.generation > firstGeneration);
    const again = await openStore(dir);
    assert.deepEqual(again.loaded.map((r) => r.id), records.map((r) => r.id));
    assert.ok(again.loaded.every((r) => r.modified === 4));
    await Promise.all([store, again.store].map(abandon));
  });

  it('a compaction that stopped before deleting the old log: the stale log does not bring back older states', async () => {
    const a = record(1);
    const { store } = await openStore(dir, [a]);
    await store.save(a);
    const [oldLog] = logFiles(dir);
    const stale = fs.readFileSync(path.join(dir, oldLog));
    a.displayName = 'newer';
    await store.save(a);
    await store.close(); // writes a snapshot and deletes the log it covers
    fs.writeFileSync(path.join(dir, oldLog), stale); // as if the deletion had not happened
    const again = await openStore(dir);
    assert.deepEqual(again.loaded.map((r) => r.displayName), ['newer']);
    assert.ok(!fs.existsSync(path.join(dir, oldLog)), 'and it is deleted now');
    await abandon(again.store);
  });

  it('a compaction whose snapshot never replaced the old one: the old snapshot and every log after it are read', async () => {
    const a = record(1);
    const b = record(2);
    const { store } = await openStore(dir, [a, b]);
    await store.save(a);
    const restore = useIo({
      ...nodeIo,
      rename: (async (from, to) => {
        if (String(to).endsWith('jobs.json')) {
          throw Object.assign(new Error('injected: power cut before the rename'), { code: 'EIO' });
        }
        return nodeIo.rename(from, to);
      }),
    });
    try {
      await assert.rejects(store.close(), /power cut/);
    } finally {
      restore();
    }
    // The failed compaction started a new log generation: later changes go there.
    await store.save(b);
    const again = await openStore(dir);
    assert.deepEqual(again.loaded.map((r) => r.displayName), ['job 1', 'job 2']);
    await Promise.all([store, again.store].map(abandon));
  });

  it('reads a store of version 1 (the whole journal in jobs.json) and rewrites it as version 2', async () => {
    const storeDir = path.join(dir, 'store');
    fs.mkdirSync(storeDir);
    const v1 = { format: 'managed-downloads/jobs', version: 1, jobs: [record(1), record(2, { state: 'ACKNOWLEDGED' })] };
    fs.writeFileSync(path.join(storeDir, 'jobs.json'), JSON.stringify(v1));
    let engine = await openEngine(storeDir);
    try {
      assert.deepEqual(engine.enumJobs({ includeFinal: true }).map((j) => j.displayName), ['job 1', 'job 2']);
      assert.deepEqual(engine.problems, []);
    } finally {
      await engine.dispose();
    }
    const snapshot = parseSnapshot(fs.readFileSync(path.join(storeDir, 'jobs.json'), 'utf8'));
    assert.ok(snapshot.ok && snapshot.version === 2, 'migrated');
    engine = await openEngine(storeDir);
    try {
      assert.equal(engine.enumJobs({ includeFinal: true }).length, 2);
    } finally {
      await engine.dispose();
    }
  });

  it('a store of a newer version is refused (STORE_NEWER_VERSION); its snapshot and logs are left untouched', async () => {
    const storeDir = path.join(dir, 'store');
    fs.mkdirSync(storeDir);
    const snapshot = JSON.stringify({ format: 'managed-downloads/jobs', version: 3, log: 7, jobs: [] });
    const log = putLine(JSON.stringify(record(1)));
    fs.writeFileSync(path.join(storeDir, 'jobs.json'), snapshot);
    fs.writeFileSync(path.join(storeDir, logFileName(7)), log);
    await assert.rejects(openEngine(storeDir), (e: DownloadError) => e.code === 'STORE_NEWER_VERSION');
    assert.equal(fs.readFileSync(path.join(storeDir, 'jobs.json'), 'utf8'), snapshot);
    assert.equal(fs.readFileSync(path.join(storeDir, logFileName(7)), 'utf8'), log);
    assert.deepEqual(fs.readdirSync(storeDir).sort(), ['jobs.7.log', 'jobs.json']);
  });

  it('the store\'s files are readable by the user alone', async () => {
    const a = record(1);
    const { store } = await openStore(dir, [a]);
    await store.save(a);
    await store.close();
    await store.save(a); // a new log after the snapshot
    for (const f of ['jobs.json', ...logFiles(dir)]) {
      assert.equal(fs.statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
    }
    await abandon(store);
  });

  it('once closed, nothing is written any more: not a late save, a removal, a full save or the orphan list', async () => {
    const records = [record(1)];
    const { store } = await openStore(dir, records);
    await store.save(records[0]);
    await store.close();
    const files = (): Record<string, number> => Object.fromEntries(fs.readdirSync(dir).map((n) => [n, fs.statSync(path.join(dir, n)).mtimeMs]));
    const before = files();
    records[0].displayName = 'changed after close';
    await store.save(records[0]);
    await store.remove(records[0].id);
    await store.saveAll();
    await store.saveOrphans([path.join(dir, '.x.00000000.mdpart')]);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(files(), before);
  });

  it('a damaged entry is kept aside in jobs.rejected-*.json with the distrusted ones, not silently dropped', async () => {
    const v1 = { format: 'managed-downloads/jobs', version: 1, jobs: [record(1), { id: 42, damaged: true }] };
    fs.writeFileSync(path.join(dir, 'jobs.json'), JSON.stringify(v1));
    const { store, loaded, problems } = await openStore(dir);
    assert.deepEqual(loaded.map((r) => r.displayName), ['job 1']);
    const aside = fs.readdirSync(dir).filter((n) => n.startsWith('jobs.rejected-'));
    assert.equal(aside.length, 1, `set aside: ${fs.readdirSync(dir).join(', ')}`);
    assert.deepEqual((JSON.parse(fs.readFileSync(path.join(dir, aside[0]), 'utf8')) as { jobs: unknown[] }).jobs, [{ id: 42, damaged: true }]);
    assert.ok(problems.some((p) => p.includes('kept as')), problems.join(' | '));
    await store.close();
  });
});
