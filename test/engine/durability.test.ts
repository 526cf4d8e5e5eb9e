// Crash safety and the store: SIGKILL mid-file, reconciling temporaries, corrupt and newer stores, retention.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { DownloadEngine, type DownloadError, type JobImpl } from '../../src/engine';
import { openEngine, useServerFixture, waitForState } from '../support/engineHarness';
import { matrix } from '../support/matrix';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';
import { readStoredJobs } from '../support/storeFiles';

/** The part of the journal (jobs.json) these tests edit by hand. */
type Journal = { jobs: { files: Record<string, unknown>[] }[] };

const CHILD = path.join(__dirname, '..', 'support', 'engineChild.js');

/** Runs the engine in a child process; `until` decides from each JSON line when to SIGKILL it (or never). */
function runChild(args: string[], until: (line: { event: string; durable?: number }) => boolean): Promise<{ killed: boolean; lines: { event: string; durable?: number }[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: { event: string; durable?: number }[] = [];
    let killed = false;
    readline.createInterface({ input: child.stdout }).on('line', (l) => {
      const msg = JSON.parse(l) as { event: string; durable?: number };
      lines.push(msg);
      if (!killed && until(msg)) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', () => resolve({ killed, lines }));
  });
}

describe('durability', () => {
  let server: TestServer;
  let dir: string;
  const big = randomBody(8_000_000, 33);

  useServerFixture((f) => ({ server, dir } = f));

  /** A job of `big` started, suspended part way and its engine closed: the store and the job, for a restart. */
  async function stoppedPartWay(displayName: string, file: string, o?: { sha256: string }): Promise<{ store: string; job: JobImpl }> {
    server.route('/big', { body: big, throttleBytesPerSec: 4_000_000 });
    const store = path.join(dir, 'store');
    const engine = await openEngine(store);
    const job = await engine.createJob({ displayName });
    await job.addFile(server.url('/big'), path.join(dir, file), o);
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRING');
    await new Promise((r) => setTimeout(r, 300));
    await job.suspend();
    await engine.dispose();
    return { store, job };
  }

  it(matrix('process', 'SIGKILL half way through a file, then restart', 'resumes from the durable offset with If-Range, re-fetches < 2 MB; right sha256'), async () => {
    server.route('/big', { body: big, throttleBytesPerSec: 8_000_000 });
    const store = path.join(dir, 'store');
    const dest = path.join(dir, 'big.bin');
    const args = [store, server.url('/big'), dest, sha256Hex(big)];
    const first = await runChild(args, (m) => (m.durable ?? 0) > big.length / 2);
    assert.ok(first.killed, 'killed mid-file');
    const sentBefore = server.bytesSentFor('/big');
    const second = await runChild(args, () => false);
    assert.equal(second.lines.at(-1)?.event, 'transferred');
    const reqs = server.requestsFor('/big');
    assert.equal(reqs.length, 2);
    const resumeAt = Number(/bytes=(\d+)-/.exec(reqs[1].range ?? '')?.[1]);
    assert.ok(resumeAt > big.length / 2, `resumed at ${resumeAt}`);
    assert.ok(reqs[1].ifRange, 'validated with If-Range');
    const refetched = sentBefore - resumeAt;
    assert.ok(refetched < 2_000_000, `re-fetched ${refetched} bytes`);
    const engine = await DownloadEngine.open({ storeDir: store });
    try {
      const job = engine.enumJobs()[0];
      assert.equal(job.state, 'TRANSFERRED');
      assert.equal(await job.complete(), 'S_OK');
    } finally {
      await engine.dispose();
    }
    assert.equal(sha256Hex(fs.readFileSync(dest)), sha256Hex(big));
  });

  it(matrix('process', 'bytes past the last checkpoint (as after a power cut)', 'truncated to the durable offset at start-up; right sha256'), async () => {
    const { store, job } = await stoppedPartWay('reconcile', 'r.bin');
    const durable = job.record.files[0].durableBytes;
    assert.ok(durable > 0);
    // Garbage past the checkpoint, as a power cut could leave it: and a power cut means another boot.
    fs.appendFileSync(job.record.files[0].temporaryPath, Buffer.alloc(12345, 0xee));
    const journal = JSON.parse(fs.readFileSync(path.join(store, 'jobs.json'), 'utf8')) as Journal;
    assert.equal(typeof journal.jobs[0].files[0].bootId, 'string', 'the journal says which boot wrote the bytes');
    journal.jobs[0].files[0].bootId = 'an-earlier-boot';
    fs.writeFileSync(path.join(store, 'jobs.json'), JSON.stringify(journal));
    const engine = await openEngine(store);
    try {
      assert.equal(fs.statSync(job.record.files[0].temporaryPath).size, durable);
      const again = engine.getJob(job.id);
      server.route('/big', { body: big });
      await again.resume();
      await waitForState(engine, again, 'TRANSFERRED');
      await again.complete();
      assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'r.bin'))), sha256Hex(big));
    } finally {
      await engine.dispose();
    }
  });

  it(matrix('process', 'bytes written past the last checkpoint, then the process killed (same boot)', 'kept (flushed at start-up), checked by a 4 KiB overlap; the resume asks only for the rest; right sha256'), async () => {
    const { store, job } = await stoppedPartWay('kept', 'k.bin', { sha256: sha256Hex(big) });
    const durable = job.record.files[0].durableBytes;
    assert.ok(durable > 0 && durable + 100_000 < big.length);
    // What a killed process had handed to write() after its last checkpoint: the next bytes of the same entity,
    // still in the page cache because the machine did not go down.
    fs.appendFileSync(job.record.files[0].temporaryPath, big.subarray(durable, durable + 100_000));
    const before = server.requests.length;
    const engine = await openEngine(store);
    try {
      const again = engine.getJob(job.id);
      assert.equal(again.record.files[0].durableBytes, durable + 100_000, 'the written bytes count as durable now');
      server.route('/big', { body: big });
      await again.resume();
      await waitForState(engine, again, 'TRANSFERRED');
      assert.equal(server.requests[before].range, `bytes=${durable + 100_000 - 4096}-`, 'the resume starts after them, asking again their last 4 KiB to check them');
      assert.equal(server.requests.length, before + 1, 'they matched: one request');
      await again.complete();
      assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'k.bin'))), sha256Hex(big));
    } finally {
      await engine.dispose();
    }
  });

  it(matrix('process', 'bytes written before the first checkpoint, then the process killed (same boot)', 'not kept: the journal may still name an earlier attempt\'s validator; truncated, fetched again; right sha256'), async () => {
    const { store, job } = await stoppedPartWay('early', 'e.bin', { sha256: sha256Hex(big) });
    // As if the process had died before its first checkpoint: the journal counts no byte as durable.
    const journal = JSON.parse(fs.readFileSync(path.join(store, 'jobs.json'), 'utf8')) as Journal;
    journal.jobs[0].files[0].durableBytes = 0;
    fs.writeFileSync(path.join(store, 'jobs.json'), JSON.stringify(journal));
    assert.ok(fs.statSync(job.record.files[0].temporaryPath).size > 0);
    const engine = await openEngine(store);
    try {
      const again = engine.getJob(job.id);
      assert.equal(again.record.files[0].durableBytes, 0);
      assert.equal(fs.statSync(job.record.files[0].temporaryPath).size, 0, 'the unvouched bytes are dropped at start-up');
      server.route('/big', { body: big });
      await again.resume();
      await waitForState(engine, again, 'TRANSFERRED');
      await again.complete();
      assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'e.bin'))), sha256Hex(big));
    } finally {
      await engine.dispose();
    }
  });

  it(matrix('process', 'many jobs with their temporaries in one folder (listed once at start-up), one holding bytes before its first checkpoint', 'that one is still truncated at start-up; the others stay without a temporary'), async () => {
    const store = path.join(dir, 'store');
    let engine = await openEngine(store);
    const jobs: JobImpl[] = [];
    try {
      for (let i = 0; i < 100; i++) {
        const job = await engine.createJob({ displayName: `many ${i}` });
        await job.addFile(server.url('/big'), path.join(dir, `many${i}.bin`));
        jobs.push(job);
      }
    } finally {
      await engine.dispose();
    }
    // Bytes a killed process wrote before its first checkpoint: the journal vouches for none of them.
    const written = jobs[57].record.files[0].temporaryPath;
    fs.writeFileSync(written, Buffer.alloc(5000, 0xee));
    engine = await openEngine(store);
    try {
      assert.equal(fs.statSync(written).size, 0, 'the unvouched bytes are dropped at start-up');
      assert.equal(jobs.filter((j, i) => i !== 57 && fs.existsSync(j.record.files[0].temporaryPath)).length, 0);
      assert.equal(engine.getJob(jobs[57].id).record.files[0].durableBytes, 0);
    } finally {
      await engine.dispose();
    }
  });

  it(matrix('disk', 'a transferred temporary file deleted by someone else', 'fetched again after restart; Complete S_OK'), async () => {
    server.route('/s', { body: big.subarray(0, 100_000) });
    const store = path.join(dir, 'store');
    let engine = await openEngine(store);
    const job = await engine.createJob({ displayName: 'vanished' });
    await job.addFile(server.url('/s'), path.join(dir, 's.bin'));
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    await engine.dispose();
    fs.rmSync(job.record.files[0].temporaryPath);
    engine = await openEngine(store);
    try {
      const again = engine.getJob(job.id);
      await waitForState(engine, again, 'TRANSFERRED');
      assert.equal(server.requestsFor('/s').length, 2);
      assert.equal(await again.complete(), 'S_OK');
    } finally {
      await engine.dispose();
    }
  });

  for (const [what, content] of [
    ['truncated', '{"format":"managed-downloads/jobs","version":1,"jobs":[{"id":"a'],
    ['zero-filled', '\0'.repeat(4096)],
    ['garbage', 'not json at all ✗'],
    ['foreign', '{"hello":"world"}'],
  ] as const) {
    it(matrix('store', `${what} journal file`, 'kept aside byte for byte and reported; the engine starts empty and works'), async () => {
      const store = path.join(dir, 'store');
      fs.mkdirSync(store);
      fs.writeFileSync(path.join(store, 'jobs.json'), content);
      const engine = await openEngine(store);
      try {
        assert.equal(engine.enumJobs().length, 0);
        assert.equal(engine.problems.length, 1);
        assert.match(engine.problems[0], /could not be read.*kept as/);
        const aside = fs.readdirSync(store).find((n) => n.startsWith('jobs.corrupt-'));
        assert.ok(aside);
        assert.equal(fs.readFileSync(path.join(store, aside), 'utf8'), content, 'kept byte for byte');
        const job = await engine.createJob({ displayName: 'fresh' });
        assert.ok(job);
      } finally {
        await engine.dispose();
      }
    });
  }

  it(matrix('store', 'a damaged job entry', 'skipped and reported; the other jobs load'), async () => {
    const store = path.join(dir, 'store');
    let engine = await openEngine(store);
    const good = await engine.createJob({ displayName: 'good' });
    await engine.dispose();
    const j = JSON.parse(fs.readFileSync(path.join(store, 'jobs.json'), 'utf8')) as { jobs: unknown[] };
    j.jobs.push({ id: 42, state: 'WHATEVER' });
    fs.writeFileSync(path.join(store, 'jobs.json'), JSON.stringify(j));
    engine = await openEngine(store);
    try {
      assert.deepEqual(engine.enumJobs().map((x) => x.id), [good.id]);
      assert.match(engine.problems[0], /damaged job entry/);
    } finally {
      await engine.dispose();
    }
  });

  it(matrix('store', 'a store written by a newer version', 'open() rejects STORE_NEWER_VERSION with a clear message; the file is left untouched'), async () => {
    const store = path.join(dir, 'store');
    fs.mkdirSync(store);
    const text = JSON.stringify({ format: 'managed-downloads/jobs', version: 99, jobs: [] });
    fs.writeFileSync(path.join(store, 'jobs.json'), text);
    await assert.rejects(openEngine(store), (e: DownloadError) => {
      assert.equal(e.code, 'STORE_NEWER_VERSION');
      assert.match(e.message, /newer version.*left untouched/);
      return true;
    });
    assert.equal(fs.readFileSync(path.join(store, 'jobs.json'), 'utf8'), text);
  });

  it(matrix('store', 'saves while the engine runs (each one appended to the log)', 'the snapshot stays valid JSON and holds every job with the log; no temp file left'), async () => {
    const store = path.join(dir, 'store');
    const engine = await openEngine(store);
    try {
      for (let i = 0; i < 20; i++) {
        await engine.createJob({ displayName: `j${i}` });
        JSON.parse(fs.readFileSync(path.join(store, 'jobs.json'), 'utf8'));
        assert.equal(readStoredJobs(store)?.jobs.length, i + 1);
      }
      assert.ok(!fs.existsSync(path.join(store, 'jobs.json.tmp')));
    } finally {
      await engine.dispose();
    }
  });

  describe('retention', () => {
    it('jobs older than the retention period are cancelled (temporaries deleted) and removed, at start-up and on each sweep', async () => {
      server.route('/s', { body: big.subarray(0, 50_000) });
      const store = path.join(dir, 'store');
      let now = Date.parse('2026-01-01T00:00:00Z');
      const clock = () => now;
      let engine = await openEngine(store, { now: clock });
      const old = await engine.createJob({ displayName: 'old' });
      await old.addFile(server.url('/s'), path.join(dir, 'old.bin'));
      await old.resume();
      await waitForState(engine, old, 'TRANSFERRED');
      const temp = old.getFiles()[0].temporaryPath;
      now += 20 * 86_400_000;
      const young = await engine.createJob({ displayName: 'young' });
      await engine.dispose();

      now += 11 * 86_400_000; // old is 31 days old, young 11
      const removed: string[] = [];
      engine = await DownloadEngine.open({ storeDir: store, now: clock });
      engine.onDidRemoveJob((j) => removed.push(j.displayName));
      try {
        assert.throws(() => engine.getJob(old.id), /no job/);
        assert.ok(engine.getJob(young.id));
        assert.ok(!fs.existsSync(temp), 'its temporary file is deleted');
        assert.ok(!fs.existsSync(path.join(dir, 'old.bin')));
        // A shorter retention, applied by the periodic sweep.
        engine.updateOptions({ retentionDays: 10 });
        assert.equal(await engine.runRetention(), 1);
        assert.throws(() => engine.getJob(young.id), /no job/);
        assert.deepEqual(removed, ['young']);
      } finally {
        await engine.dispose();
      }
    });

    it('retention is clamped to 1–30 days', async () => {
      let now = Date.parse('2026-01-01T00:00:00Z');
      const engine = await openEngine(path.join(dir, 'store'), { now: () => now, retentionDays: 365 });
      try {
        await engine.createJob({ displayName: 'x' });
        now += 31 * 86_400_000;
        assert.equal(await engine.runRetention(), 1);
      } finally {
        await engine.dispose();
      }
    });
  });
});
