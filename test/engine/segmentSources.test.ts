// Segments of one large file from several sources at once (§8, aria2-style), against three real local servers:
// each server's own request log says which ranges it served.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DownloadEngine, EngineOptions, JobImpl } from '../../src/engine';
import { openEngine, tempDir, waitForState, waitUntil } from '../support/engineHarness';
import { randomBody, sha256Hex, TestServer, type RequestLog } from '../support/testServer';

const MiB = 1024 * 1024;

describe('segments from several sources at once', () => {
  const servers: TestServer[] = [];
  let [origin, mirror, third]: TestServer[] = [];
  let dir: string;
  let engine: DownloadEngine | undefined;
  let logLines: string[];
  const body = randomBody(8 * MiB, 171);
  const sha = sha256Hex(body);

  before(async () => {
    for (let i = 0; i < 3; i++) {
      servers.push(await TestServer.start());
    }
    [origin, mirror, third] = servers;
  });
  after(async () => {
    for (const s of servers) {
      await s.close();
    }
  });
  beforeEach(() => {
    servers.forEach((s) => s.reset());
    dir = tempDir();
    logLines = [];
  });
  afterEach(async () => {
    await engine?.dispose();
    engine = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function run(mirrors: string[], o: { sha256?: string; engine?: Partial<EngineOptions> } = {}): Promise<JobImpl> {
    engine = await openEngine(path.join(dir, 'store'), { log: (_l, m) => logLines.push(m), segmentsPerFile: 2, minSegmentBytes: MiB, ...o.engine });
    const job = await engine.createJob({ displayName: 'spread' });
    await job.setMinimumRetryDelay(0);
    await job.addFile(origin.url('/f'), path.join(dir, 'f.bin'), { sha256: o.sha256, mirrors });
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED', 30_000);
    assert.equal(await job.complete(), 'S_OK');
    return job;
  }

  const placedSha = (): string => sha256Hex(fs.readFileSync(path.join(dir, 'f.bin')));
  /** Ranged answers that carried bytes, from one server's own log. */
  const servedRanges = (s: TestServer): RequestLog[] => s.requestsFor('/f').filter((r) => r.status === 206 && r.bytesSent > 0);
  const log = (): string => logLines.join('\n');

  it('takes segments from the origin and a mirror of the same entity at once', async () => {
    origin.route('/f', { body });
    mirror.route('/f', { body }); // the same default ETag: provably the same entity
    await run([mirror.url('/f')]);
    assert.ok(servedRanges(mirror).length > 0, `the mirror served ranges of the file:\n${log()}`);
    assert.ok(servedRanges(origin).length > 0, `the origin served ranges of the file too:\n${log()}`);
    assert.equal(placedSha(), sha);
    assert.match(log(), /segments served by .*127\.0\.0\.1.* bytes, .*127\.0\.0\.1.* bytes/);
  });

  it('combines a mirror with other validators when a sha256 checks the whole file at the end', async () => {
    origin.route('/f', { body });
    mirror.route('/f', { body, etag: '"another-server"' });
    await run([mirror.url('/f')], { sha256: sha });
    assert.ok(servedRanges(mirror).length > 0, `the mirror served ranges:\n${log()}`);
    assert.equal(placedSha(), sha);
  });

  it('drops a mirror serving another version (and says so); the file is still right', async () => {
    origin.route('/f', { body });
    mirror.route('/f', { body: randomBody(8 * MiB, 172) }); // same size, other bytes, other ETag, no sha256
    const job = await run([mirror.url('/f')]);
    assert.ok(
      logLines.some((l) => l.includes(mirror.url('/f')) && l.includes('another entity')),
      `the log says the mirror serves another entity:\n${log()}`,
    );
    assert.ok(mirror.requestsFor('/f').length > 0, 'the mirror was asked');
    assert.deepEqual(job.record.files[0].failedSources, [mirror.url('/f')], 'it is set aside for the file');
    assert.equal(placedSha(), sha);
  });

  it('drops a mirror of another size even with a sha256, before writing any of its bytes', async () => {
    origin.route('/f', { body });
    mirror.route('/f', { body: randomBody(8 * MiB + 1, 173) });
    await run([mirror.url('/f')], { sha256: sha });
    assert.ok(logLines.some((l) => l.includes(mirror.url('/f')) && l.includes(`not ${8 * MiB}`)), log());
    assert.equal(placedSha(), sha);
  });

  it('a dead mirror does not stall the file: its segments go to the live sources', async () => {
    const dead = await TestServer.start();
    const deadUrl = dead.url('/f');
    await dead.close(); // nothing listens there any more: connection refused
    origin.route('/f', { body });
    third.route('/f', { body });
    await run([deadUrl, third.url('/f')], { engine: { segmentsPerFile: 3 } });
    assert.ok(logLines.some((l) => l.includes(deadUrl) && /failed a segment request|set aside/.test(l)), `the dead mirror's failure is logged:\n${log()}`);
    assert.ok(servedRanges(third).length > 0, 'the live mirror served ranges');
    assert.ok(servedRanges(origin).length > 0, 'the origin served ranges');
    assert.equal(placedSha(), sha);
  });

  it('a mirror that cuts its answers gives its segment to the origin; the bytes it sent stay', async () => {
    origin.route('/f', { body });
    mirror.route('/f', { body, resetAfterBytes: 300_000 });
    const job = await run([mirror.url('/f')]);
    assert.ok(logLines.some((l) => l.includes(mirror.url('/f')) && l.includes('another source takes the segment')), log());
    assert.ok(servedRanges(mirror).length >= 1, 'the mirror sent bytes before it was dropped');
    assert.equal(job.record.files[0].restarts, 0, 'nothing was fetched again from 0');
    assert.equal(placedSha(), sha);
  });

  it('the file says which sources its segments come from while several serve it', async () => {
    origin.route('/f', { body, throttleBytesPerSec: 2 * MiB });
    mirror.route('/f', { body, throttleBytesPerSec: 2 * MiB });
    engine = await openEngine(path.join(dir, 'store'), { segmentsPerFile: 2, minSegmentBytes: MiB });
    const job = await engine.createJob({ displayName: 'shown' });
    await job.addFile(origin.url('/f'), path.join(dir, 'f.bin'), { mirrors: [mirror.url('/f')] });
    await job.resume();
    await waitUntil(() => (job.getFiles()[0].sourcesInUse?.length ?? 0) === 2, 15_000, 'two sources in use');
    assert.deepEqual([...job.getFiles()[0].sourcesInUse!].sort(), [origin.url('/f'), mirror.url('/f')].sort());
    await waitForState(engine, job, 'TRANSFERRED', 30_000);
    assert.equal(job.getFiles()[0].sourcesInUse, undefined, 'only while the transfer runs');
  });

  it('a slow mirror ends up with fewer segments than the fast origin', async () => {
    origin.route('/f', { body });
    mirror.route('/f', { body, throttleBytesPerSec: 512 * 1024 });
    await run([mirror.url('/f')]);
    assert.ok(servedRanges(mirror).length >= 1, 'the slow mirror took part');
    assert.ok(servedRanges(mirror).length < servedRanges(origin).length, `fewer segments from the slow mirror:\n${log()}`);
    assert.equal(placedSha(), sha);
  });
});
