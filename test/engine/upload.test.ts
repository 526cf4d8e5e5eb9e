// Upload jobs over the BITS Upload Protocol ([MC-BUP]) against the reference server in test/support/bitsUploadServer.ts.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { DownloadEngine, type DownloadError, type JobImpl, type JobState } from '../../src/engine';
import { BITS_PROTOCOL_GUID, BitsUploadServer, type BitsRequestLog } from '../support/bitsUploadServer';
import { openEngine, tempDir, waitForState, waitUntil } from '../support/engineHarness';
import { Squid } from '../support/squid';
import { randomBody, sha256Hex, TEST_TLS, TestServer } from '../support/testServer';

const KiB = 1024;
const FRAGMENT = 64 * KiB;

describe('upload jobs (BITS Upload Protocol)', () => {
  let server: BitsUploadServer;
  let dir: string;
  let src: string;
  let engine: DownloadEngine;
  const body = randomBody(600 * KiB + 123, 77);

  before(async () => {
    server = await BitsUploadServer.start();
  });
  after(async () => {
    await server.close();
  });
  beforeEach(async () => {
    server.reset();
    server.forgetSessions();
    dir = tempDir('md-upload-');
    src = path.join(dir, 'report.bin');
    fs.writeFileSync(src, body);
    engine = await openEngine(path.join(dir, 'store'), { uploadFragmentBytes: FRAGMENT });
  });
  afterEach(async () => {
    await engine.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function newUpload(name: string, o: { url?: string; on?: DownloadEngine } = {}): Promise<JobImpl> {
    const job = await (o.on ?? engine).createJob({ displayName: name, type: 'upload' });
    await job.setMinimumRetryDelay(0);
    await job.addFile(o.url ?? server.url(`/up/${name}`), src);
    return job;
  }
  const destOf = (name: string, s = server): string => path.join(s.destDir, 'up', name);
  const acked = (job: JobImpl): number => job.record.files[0].durableBytes;
  const fragments = (s = server): BitsRequestLog[] => s.requests('Fragment');
  const rangeOf = (e: BitsRequestLog): { start: number; end: number; total: number } => {
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(e.contentRange ?? '');
    assert.ok(m, `a Content-Range on ${JSON.stringify(e.contentRange)}`);
    return { start: Number(m[1]), end: Number(m[2]), total: Number(m[3]) };
  };
  async function rejection(p: Promise<unknown>): Promise<DownloadError> {
    return (await p.then(
      () => assert.fail('expected a rejection'),
      (e: unknown) => e,
    )) as DownloadError;
  }

  it('uploads the whole file: Ping, Create-Session, Fragments; TRANSFERRED on the last Ack; complete() sends Close-Session → ACKNOWLEDGED, server file = local file', async () => {
    const job = await newUpload('whole.bin');
    const states: JobState[] = [];
    const progress: number[] = [];
    engine.onDidChangeJob((j) => {
      if (j === job) {
        states.push(j.state);
        progress.push(j.getProgress().bytesTransferred);
      }
    });
    assert.equal(job.getFiles()[0].bytesTotal, body.length);
    assert.equal(job.getFiles()[0].temporaryPath, '', 'an upload has no temporary file');
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');

    assert.ok(states.includes('TRANSFERRING'), `TRANSFERRING while fragments go (saw ${states.join(', ')})`);
    assert.deepEqual(job.getProgress(), { bytesTotal: body.length, bytesTransferred: body.length, filesTotal: 1, filesTransferred: 1, bytesFromCache: 0 });
    // Progress counts acknowledged bytes only: every value is a fragment boundary (or the end).
    for (const p of progress) {
      assert.ok(p % FRAGMENT === 0 || p === body.length, `progress ${p} is an acknowledged offset`);
    }
    // Not in place before Close-Session.
    assert.ok(!fs.existsSync(destOf('whole.bin')), 'the server keeps the upload aside until Close-Session');
    assert.equal(server.requests('Close-Session').length, 0);

    assert.equal(await job.complete(), 'S_OK');
    assert.equal(job.state, 'ACKNOWLEDGED');
    assert.equal(job.getFiles()[0].completed, true);
    assert.equal(sha256Hex(fs.readFileSync(destOf('whole.bin'))), sha256Hex(body));
    assert.equal(fs.readFileSync(src).length, body.length, 'the local file is untouched');
    assert.deepEqual(server.sessions(), [], 'the session is closed');
    assert.deepEqual(fs.readdirSync(server.sessionDir), []);

    // The wire: the packets in order, all BITS_POST with a Content-Length (0 for body-less packets).
    const log = server.requests();
    const types = log.map((e) => e.packetType);
    const n = Math.ceil(body.length / FRAGMENT);
    assert.deepEqual(types, ['Ping', 'Create-Session', ...Array<string>(n).fill('Fragment'), 'Close-Session']);
    for (const e of log) {
      assert.equal(e.method, 'BITS_POST');
      assert.equal(e.headers['content-length'], String(e.packetType === 'Fragment' ? rangeOf(e).end - rangeOf(e).start + 1 : 0), `${e.packetType} has Content-Length`);
      assert.equal(e.status, 200);
    }
    const create = server.requests('Create-Session')[0];
    assert.ok(create.headers['bits-supported-protocols'].toLowerCase().includes(BITS_PROTOCOL_GUID));
    assert.equal(create.headers['content-name'], 'report.bin');
    const sid = create.sessionId ?? server.requests('Fragment')[0].sessionId;
    let next = 0;
    for (const f of fragments()) {
      const r = rangeOf(f);
      assert.equal(r.start, next, 'fragments are contiguous');
      assert.equal(r.total, body.length);
      assert.ok(r.end - r.start + 1 <= FRAGMENT, 'fragments are bounded');
      assert.equal(f.sessionId, sid);
      next = f.receivedRange!;
      assert.equal(next, r.end + 1);
    }
    assert.equal(server.requests('Close-Session')[0].sessionId, sid);
  });

  it('resumes after a connection reset in the middle of a fragment, from the server\'s BITS-Received-Content-Range', async () => {
    server.faults = { ackDelayMs: 15 };
    const job = await newUpload('reset.bin');
    await job.resume();
    await waitUntil(() => acked(job) >= 2 * FRAGMENT, 10_000, 'two fragments acknowledged');
    server.faults = { ackDelayMs: 15, dropAfterBytes: 40_000, dropKind: 'rst' };
    await waitForState(engine, job, 'TRANSFERRED');
    assert.ok(job.errorCount >= 1, 'the reset went through TRANSIENT_ERROR');

    const frags = fragments();
    const d = frags.findIndex((e) => e.fault === 'drop');
    assert.ok(d > 0, 'a fragment was cut off mid-body');
    const cut = rangeOf(frags[d]);
    // The resumed run asks where the server is with a one-byte fragment at the acknowledged offset ...
    const probe = rangeOf(frags[d + 1]);
    assert.deepEqual([probe.start, probe.end], [cut.start, cut.start]);
    assert.equal(frags[d + 1].receivedRange, cut.start + 40_000, 'the server kept the 40 000 bytes it got');
    // ... and continues after the bytes the server kept: they are not sent again.
    assert.equal(rangeOf(frags[d + 2]).start, cut.start + 40_000);
    assert.equal(server.requests('Create-Session').length, 1, 'same session');

    await job.complete();
    assert.equal(sha256Hex(fs.readFileSync(destOf('reset.bin'))), sha256Hex(body));
  });

  for (const strict of [false, true]) {
    it(`resumes after an engine restart in the same session from the server's received range, sending only one byte twice (${strict ? 'strict server: 416' : 'overlap-tolerant server: 200'})`, async () => {
      const s = strict ? await BitsUploadServer.start({ strictContiguous: true }) : server;
      try {
        const storeDir = path.join(dir, 'store');
        s.faults = { ackDelayMs: 200 };
        const job = await newUpload('restart.bin', { url: s.url('/up/restart.bin') });
        await job.resume();
        // Stop while the server holds a fragment it has not acknowledged yet.
        const sid = () => job.record.files[0].upload?.sessionId;
        await waitUntil(() => acked(job) >= FRAGMENT && sid() !== undefined && (s.session(sid()!)?.received ?? 0) > acked(job), 10_000, 'a fragment received but not yet acknowledged');
        const session = sid()!;
        await engine.dispose();
        const serverHad = s.session(session)!.received;
        const before = fragments(s).length;
        const persisted = (JSON.parse(fs.readFileSync(path.join(storeDir, 'jobs.json'), 'utf8')) as { jobs: { files: { durableBytes: number; upload: { sessionId: string } }[] }[] }).jobs[0].files[0];
        assert.ok(persisted.durableBytes < serverHad, `the store (${persisted.durableBytes}) is behind the server (${serverHad})`);
        assert.equal(persisted.upload.sessionId, session);
        s.faults = {};

        engine = await openEngine(storeDir, { uploadFragmentBytes: FRAGMENT });
        const again = engine.getJob(job.id);
        await waitForState(engine, again, 'TRANSFERRED');

        assert.equal(s.requests('Create-Session').length, 1, 'the session survived the restart');
        const frags = fragments(s);
        const [probe, next] = frags.slice(before);
        // One byte at the acknowledged offset the store kept: the Ack says where the server really is ...
        assert.deepEqual([rangeOf(probe).start, rangeOf(probe).end], [persisted.durableBytes, persisted.durableBytes]);
        assert.equal(probe.status, strict ? 416 : 200);
        assert.equal(probe.receivedRange, serverHad, "the server's received range");
        // ... and the upload goes on from there: the bytes the server had are not sent again.
        assert.equal(rangeOf(next).start, serverHad);
        const sent = frags.reduce((n, e) => n + e.bodyBytes, 0);
        assert.ok(sent <= body.length + 1, `${sent - body.length} bytes sent twice`);
        for (const f of frags) {
          assert.equal(f.sessionId, session);
        }
        assert.equal(await again.complete(), 'S_OK');
        assert.equal(sha256Hex(fs.readFileSync(destOf('restart.bin', s))), sha256Hex(body));
      } finally {
        if (strict) {
          await s.close();
        }
      }
    });
  }

  it('complete() before TRANSFERRED is refused with DO_E_INVALID_STATE (0x80D02013) and sends nothing', async () => {
    server.faults = { ackDelayMs: 40 };
    const job = await newUpload('early.bin');
    let e = await rejection(job.complete());
    assert.equal(e.code, 'DO_E_INVALID_STATE');
    assert.equal(e.hresult, 0x80d02013);
    assert.match(e.message, /it is SUSPENDED.*only once TRANSFERRED/);
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRING');
    e = await rejection(job.complete());
    assert.equal(e.code, 'DO_E_INVALID_STATE');
    assert.match(e.message, /TRANSFERRING/);
    assert.equal(job.state, 'TRANSFERRING', 'the upload goes on');
    assert.equal(server.requests('Close-Session').length, 0);
    await waitForState(engine, job, 'TRANSFERRED');
    assert.equal(await job.complete(), 'S_OK');
  });

  it('cancel() sends Cancel-Session: the server drops the partial upload, the local file stays; unreachable server: still CANCELLED, quickly', async () => {
    server.faults = { ackDelayMs: 20 };
    const job = await newUpload('cancel.bin');
    await job.resume();
    await waitUntil(() => acked(job) >= 2 * FRAGMENT, 10_000, 'two fragments acknowledged');
    const sid = job.record.files[0].upload!.sessionId!;
    const temp = server.session(sid)!.tempPath;
    assert.ok(fs.existsSync(temp));
    await job.cancel();
    assert.equal(job.state, 'CANCELLED');
    const cancel = server.requests('Cancel-Session');
    assert.equal(cancel.length, 1);
    assert.equal(cancel[0].sessionId, sid);
    assert.equal(cancel[0].status, 200);
    assert.equal(server.session(sid), undefined);
    assert.ok(!fs.existsSync(temp), 'the partial upload is deleted');
    assert.ok(!fs.existsSync(destOf('cancel.bin')));
    assert.equal(sha256Hex(fs.readFileSync(src)), sha256Hex(body), 'the local file is the user\'s and stays');

    // Best effort and bounded: a server that went away does not block cancel().
    const gone = await BitsUploadServer.start();
    gone.faults = { ackDelayMs: 20 };
    const job2 = await newUpload('gone.bin', { url: gone.url('/up/gone.bin') });
    await job2.resume();
    await waitUntil(() => acked(job2) >= FRAGMENT, 10_000, 'a fragment acknowledged');
    await job2.suspend();
    await gone.close();
    const t = Date.now();
    await job2.cancel();
    assert.equal(job2.state, 'CANCELLED');
    assert.ok(Date.now() - t < 3_000, `cancel took ${Date.now() - t} ms`);
  });

  it('a local file changed after the upload started → ERROR BG_E_LOCAL_FILE_CHANGED (0x8020001D); resume does not send the changed file', async () => {
    server.faults = { ackDelayMs: 20 };
    const job = await newUpload('changed.bin');
    let failed = 0;
    engine.onDidFailJob((j) => j === job && failed++);
    await job.resume();
    await waitUntil(() => acked(job) >= FRAGMENT, 10_000, 'a fragment acknowledged');
    fs.appendFileSync(src, 'one more line\n');
    await waitForState(engine, job, 'ERROR');
    const err = job.getError()!;
    assert.equal(err.code, 'BG_E_LOCAL_FILE_CHANGED');
    assert.equal(err.hresult, 0x8020001d);
    assert.equal(err.context, 'LOCAL_FILE');
    assert.ok(err.message.includes(src), 'the message names the file');
    assert.equal(failed, 1, 'onDidFailJob');
    const sentBefore = fragments().length;
    await job.resume();
    await waitUntil(() => job.errorCount === 2, 10_000, 'the second failure');
    assert.equal(job.state, 'ERROR');
    assert.equal(fragments().length, sentBefore, 'no byte of the changed file was sent');
    assert.equal(server.requests('Close-Session').length, 0);
    await assert.rejects(job.complete(), (e: DownloadError) => e.code === 'DO_E_INVALID_STATE');
  });

  it('5xx is transient: TRANSIENT_ERROR with the BITS-Error-Code in the message, then the upload completes', async () => {
    server.faults = { failStatus: 503, failTimes: 2, failPackets: ['Fragment'], failBitsError: 0x80070070 };
    const job = await newUpload('flaky.bin');
    const errors: { code: string; hresult: number; message: string }[] = [];
    engine.onDidChangeJob((j) => {
      if (j === job && j.state === 'TRANSIENT_ERROR') {
        errors.push(j.getError()!);
      }
    });
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    assert.equal(job.errorCount, 2);
    assert.ok(errors.length >= 1);
    assert.equal(errors[0].code, 'HTTP_503');
    assert.equal(errors[0].hresult, 0x801901f7);
    assert.match(errors[0].message, /503 .*Fragment.*BITS-Error-Code 0x80070070 ERROR_DISK_FULL/);
    assert.equal(server.requests('Fragment').filter((e) => e.status === 503).length, 2);
    assert.equal(server.requests('Create-Session').length, 1, 'a retry keeps the session');
    await job.complete();
    assert.equal(sha256Hex(fs.readFileSync(destOf('flaky.bin'))), sha256Hex(body));
  });

  it('4xx is fatal: ERROR at once (no retry) with the BITS-Error-Code in the message', async () => {
    server.faults = { failStatus: 403, failTimes: 5, failPackets: ['Create-Session'], failBitsError: 0x80070005 };
    const job = await newUpload('denied.bin');
    await job.resume();
    await waitForState(engine, job, 'ERROR');
    const err = job.getError()!;
    assert.equal(err.code, 'HTTP_403');
    assert.equal(err.hresult, 0x80190193);
    assert.equal(err.context, 'REMOTE_FILE');
    assert.match(err.message, /403 Forbidden.*Create-Session.*0x80070005 E_ACCESSDENIED/);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(job.errorCount, 1);
    assert.equal(server.requests('Create-Session').length, 1, 'not retried');
    assert.equal(job.state, 'ERROR');
  });

  it('a server that forgets the session (BG_E_SESSION_NOT_FOUND) gets a new Create-Session and the whole file ([MC-BUP] 3.1.5.2.1)', async () => {
    server.faults = { ackDelayMs: 15 };
    const job = await newUpload('forgot.bin');
    await job.resume();
    await waitUntil(() => acked(job) >= 2 * FRAGMENT, 10_000, 'two fragments acknowledged');
    const first = job.record.files[0].upload!.sessionId;
    assert.equal(server.forgetSessions(), 1);
    await waitForState(engine, job, 'TRANSFERRED');
    assert.equal(server.requests('Create-Session').length, 2);
    assert.ok(fragments().some((e) => e.status === 500 && e.bitsError === 0x8020001f));
    assert.notEqual(job.record.files[0].upload!.sessionId, first);
    await job.complete();
    assert.equal(sha256Hex(fs.readFileSync(destOf('forgot.bin'))), sha256Hex(body));
  });

  it('complete() when the server lost the session: rejects BG_E_SESSION_NOT_FOUND, uploads again, then completes', async () => {
    const job = await newUpload('lost.bin');
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    server.forgetSessions();
    const e = await rejection(job.complete());
    assert.equal(e.code, 'BG_E_SESSION_NOT_FOUND');
    assert.equal(e.hresult, 0x8020001f);
    assert.match(e.message, /lost\.bin.*uploaded again/);
    await waitForState(engine, job, 'TRANSFERRED');
    assert.equal(server.requests('Create-Session').length, 2);
    assert.equal(await job.complete(), 'S_OK');
    assert.equal(sha256Hex(fs.readFileSync(destOf('lost.bin'))), sha256Hex(body));
  });

  it('sends the job\'s custom headers with every packet, but never lets them replace a protocol header', async () => {
    const job = await newUpload('headers.bin');
    await job.setHttpHeaders({ Authorization: 'Bearer upload-token', 'X-Trace': '7', 'BITS-Session-Id': '{forged}' });
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    await job.complete();
    const log = server.requests();
    assert.ok(log.length > 4);
    for (const e of log) {
      assert.equal(e.headers['authorization'], 'Bearer upload-token', `${e.packetType} carries Authorization`);
      assert.equal(e.headers['x-trace'], '7');
      assert.notEqual(e.sessionId, '{forged}');
    }
    assert.equal(sha256Hex(fs.readFileSync(destOf('headers.bin'))), sha256Hex(body));
  });

  it('does not follow redirects: ERROR with a message that says so', async () => {
    server.faults = { redirectTo: server.url('/elsewhere/x.bin') };
    const job = await newUpload('moved.bin');
    await job.resume();
    await waitForState(engine, job, 'ERROR');
    const err = job.getError()!;
    assert.equal(err.code, 'HTTP_307');
    assert.match(err.message, /redirected .*elsewhere.*not followed for uploads/);
    assert.equal(server.requests().length, 1, 'only the Ping, not followed');
  });

  it('a server that does not speak BITS fails the job (ERROR), it is not retried forever', async () => {
    const plain = await TestServer.start();
    try {
      const job = await newUpload('plain.bin', { url: plain.url('/upload') });
      await job.resume();
      await waitForState(engine, job, 'ERROR');
      assert.match(job.getError()!.code, /^HTTP_4\d\d$/);
    } finally {
      await plain.close();
    }
  });

  it('addFile on an upload job: an existing readable regular file, absolute path; one file only; no checksum', async () => {
    const job = await engine.createJob({ displayName: 'checks', type: 'upload' });
    const url = server.url('/up/checks.bin');
    let e = await rejection(job.addFile(url, 'relative/report.bin'));
    assert.equal(e.code, 'E_INVALIDARG');
    assert.match(e.message, /relative/);
    const missing = path.join(dir, 'missing.bin');
    e = await rejection(job.addFile(url, missing));
    assert.equal(e.code, 'ENOENT');
    assert.equal(e.hresult, 0x80070002);
    assert.ok(e.message.includes(missing), 'names the file');
    e = await rejection(job.addFile(url, dir));
    assert.equal(e.code, 'E_INVALIDARG');
    assert.match(e.message, /folder/);
    e = await rejection(job.addFile('ftp://example.com/x', src));
    assert.equal(e.code, 'E_INVALIDARG');
    assert.match(e.message, /http or https/);
    e = await rejection(job.addFileSet([{ remoteUrl: url, localPath: src, sha256: sha256Hex(body) }]));
    assert.equal(e.code, 'E_INVALIDARG');
    assert.equal(job.getFiles().length, 0);
    await job.addFile(url, src);
    e = await rejection(job.addFile(url, src));
    assert.equal(e.code, 'BG_E_TOO_MANY_FILES');
    assert.equal(e.hresult, 0x8020001c);
    // The same local file can go to two servers at once: it is a source, not a destination.
    const other = await engine.createJob({ displayName: 'twice', type: 'upload' });
    await other.addFile(server.url('/up/twice.bin'), src);
  });

  it('uploads only files inside the allowed roots, when the engine has some', async () => {
    const inside = path.join(dir, 'allowed');
    fs.mkdirSync(inside);
    fs.writeFileSync(path.join(inside, 'ok.bin'), 'ok');
    const rooted = await openEngine(path.join(dir, 'rooted'), { allowedRoots: [inside] });
    try {
      const job = await rooted.createJob({ displayName: 'rooted', type: 'upload' });
      const e = await rejection(job.addFile(server.url('/up/x.bin'), src));
      assert.equal(e.code, 'E_INVALIDARG');
      assert.match(e.message, /outside the allowed folders/);
      await job.addFile(server.url('/up/x.bin'), path.join(inside, 'ok.bin'));
    } finally {
      await rooted.dispose();
    }
  });

  it('a folder URL (ending in /) gets the file under its own name from Content-Name, non-ASCII included', async () => {
    const named = path.join(dir, 'résumé 2024.bin');
    fs.writeFileSync(named, body);
    const job = await engine.createJob({ displayName: 'named', type: 'upload' });
    await job.addFile(server.url('/inbox/'), named);
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    await job.complete();
    assert.equal(server.requests('Create-Session')[0].headers['content-name'], 'r%C3%A9sum%C3%A9 2024.bin');
    assert.equal(sha256Hex(fs.readFileSync(path.join(server.destDir, 'inbox', 'résumé 2024.bin'))), sha256Hex(body));
  });

  it('an empty file uploads too: no Fragment, Close-Session creates an empty file', async () => {
    fs.writeFileSync(src, '');
    const job = await newUpload('empty.bin');
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    assert.equal(fragments().length, 0);
    await job.complete();
    assert.equal(fs.readFileSync(destOf('empty.bin')).length, 0);
  });

  it('goes through the configured HTTP proxy (absolute-form targets), and Close-Session too', async () => {
    const proxied = await DownloadEngine.open({ storeDir: path.join(dir, 'proxied'), retryDelayFloorSeconds: 0, uploadFragmentBytes: FRAGMENT, network: { proxy: server.origin } });
    try {
      // The proxy (our server, which accepts absolute-form) is the only way to this made-up host.
      const job = await newUpload('proxied.bin', { on: proxied, url: 'http://uploads.example.invalid/up/proxied.bin' });
      await job.resume();
      await waitForState(proxied, job, 'TRANSFERRED');
      await job.complete();
      const log = server.requests();
      assert.ok(log.length >= 4);
      assert.ok(log.every((e) => e.absoluteForm && e.headers['host'] === 'uploads.example.invalid'));
      assert.equal(sha256Hex(fs.readFileSync(destOf('proxied.bin'))), sha256Hex(body));
    } finally {
      await proxied.dispose();
    }
  });

  it('complete() against a server that trickles the Close-Session answer: rejects (transient, timed out) once the request deadline passes; the job stays TRANSFERRED and completes later', async () => {
    const fast = await openEngine(path.join(dir, 'store-fast'), {
      uploadFragmentBytes: FRAGMENT,
      timeouts: { headersMs: 300, bodyIdleMs: 300, lowSpeedBytesPerSecond: 1, lowSpeedWindowMs: 60_000 },
    });
    try {
      const job = await newUpload('trickle.bin', { on: fast });
      await job.resume();
      await waitForState(fast, job, 'TRANSFERRED');
      // The Ack's head comes at once; its body one byte every 50 ms: the socket is never idle for 300 ms.
      server.faults = { trickleAnswer: { packets: ['Close-Session'], intervalMs: 50 } };
      const e = await rejection(job.complete());
      assert.equal(e.code, 'ETIMEDOUT');
      assert.equal(e.transient, true);
      assert.match(e.message, /timed out.*stays TRANSFERRED/);
      assert.equal(job.state, 'TRANSFERRED');
      assert.ok(server.requests('Close-Session').every((r) => r.fault === 'trickle'));
      server.faults = {};
      assert.equal(await job.complete(), 'S_OK');
      assert.equal(sha256Hex(fs.readFileSync(destOf('trickle.bin'))), sha256Hex(body));
    } finally {
      await fast.dispose();
    }
  });

  it('cancel() while complete() waits on a Close-Session answer that never ends: returns without waiting for it; CANCELLED, Cancel-Session sent', async () => {
    const job = await newUpload('stuck.bin');
    await job.resume();
    await waitForState(engine, job, 'TRANSFERRED');
    const sid = job.record.files[0].upload!.sessionId!;
    server.faults = { trickleAnswer: { packets: ['Close-Session'], intervalMs: 50 } };
    const completing = rejection(job.complete());
    await waitUntil(() => server.requests('Close-Session').length === 1, 10_000, 'Close-Session sent');
    await job.cancel();
    assert.equal(job.state, 'CANCELLED');
    const e = await completing;
    assert.match(e.message, /interrupted by a cancel/);
    assert.equal(server.requests('Cancel-Session')[0]?.sessionId, sid);
    assert.equal(server.session(sid), undefined, 'the server dropped the partial upload');
  });

  it('a BITS-Host-Id naming another host is ignored (and logged): every packet goes to the upload URL\'s host; the other host receives nothing', async () => {
    const farm = await BitsUploadServer.start({ hostId: '127.0.0.2', hostIdFallbackTimeoutSeconds: 60 });
    // Another machine, as far as the client can tell: a second address, the same port.
    const elsewhere = await BitsUploadServer.start({ host: '127.0.0.2', port: Number(new URL(farm.origin).port) });
    const logs: string[] = [];
    const watched = await openEngine(path.join(dir, 'store-hostid'), { uploadFragmentBytes: FRAGMENT, log: (_l, m) => logs.push(m) });
    try {
      const job = await newUpload('farm.bin', { url: farm.url('/up/farm.bin'), on: watched });
      await watched.getJob(job.id).setHttpHeaders({ Authorization: 'Bearer for-the-upload-host-only' });
      await job.resume();
      await waitForState(watched, job, 'TRANSFERRED');
      await job.complete();
      assert.deepEqual(elsewhere.requests(), [], 'the host the server named got no packet');
      assert.ok(farm.requests().every((e) => e.headers['host'].startsWith('127.0.0.1:')));
      assert.ok(farm.requests('Close-Session').length === 1);
      assert.ok(logs.some((l) => /BITS-Host-Id.*ignored/.test(l)), logs.join('\n'));
      assert.equal(sha256Hex(fs.readFileSync(destOf('farm.bin', farm))), sha256Hex(body));
    } finally {
      await watched.dispose();
      await elsewhere.close();
      await farm.close();
    }
  });
});

describe('upload jobs through a real proxy (squid)', function () {
  // Starting squid takes a moment (and the first run on a machine may install it, see squid.ts).
  this.timeout(120_000);

  it('http goes to squid in absolute form, https through a CONNECT tunnel with TLS to the upload server inside; both complete', async () => {
    const squid = await Squid.start();
    const plain = await BitsUploadServer.start();
    const secure = await BitsUploadServer.start({ tls: TEST_TLS });
    const dir = tempDir('md-upload-proxy-');
    const engine = await openEngine(path.join(dir, 'store'), { uploadFragmentBytes: FRAGMENT, network: { proxy: `http://127.0.0.1:${squid.port}`, ca: TEST_TLS.cert } });
    try {
      const src = path.join(dir, 'a.bin');
      const body = randomBody(300_000, 5);
      fs.writeFileSync(src, body);
      for (const s of [plain, secure]) {
        const job = await engine.createJob({ displayName: `via squid ${s.origin}`, type: 'upload' });
        await job.addFile(s.url('/up/a.bin'), src);
        await job.resume();
        await waitForState(engine, job, 'TRANSFERRED');
        assert.equal(await job.complete(), 'S_OK');
        assert.equal(sha256Hex(fs.readFileSync(path.join(s.destDir, 'up', 'a.bin'))), sha256Hex(body));
        assert.deepEqual(s.requests().map((e) => e.packetType), ['Ping', 'Create-Session', ...Array<string>(5).fill('Fragment'), 'Close-Session']);
      }
      // Through squid, not around it: squid's Via on the plain requests, squid's log for both.
      assert.ok(plain.requests().every((e) => /squid/.test(e.headers['via'] ?? '')));
      const access = fs.readFileSync(path.join(squid.dir, 'access.log'), 'utf8');
      assert.equal((access.match(/ BITS_POST http:\/\/127\.0\.0\.1:\d+\/up\/a\.bin /g) ?? []).length, 8);
      assert.match(access, new RegExp(`TCP_TUNNEL/200 \\d+ CONNECT 127\\.0\\.0\\.1:${new URL(secure.origin).port} `));
    } finally {
      await engine.dispose();
      await plain.close();
      await secure.close();
      await squid.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('BitsUploadServer (test support)', () => {
  let server: BitsUploadServer;
  before(async () => {
    server = await BitsUploadServer.start();
  });
  after(async () => {
    await server.close();
  });

  /** Writes raw bytes, reads until the server closes; returns the answers' status lines and headers. */
  function raw(bytes: string | Buffer): Promise<{ status: number; headers: Record<string, string> }[]> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(Number(new URL(server.origin).port), '127.0.0.1');
      const chunks: Buffer[] = [];
      sock.on('data', (d) => chunks.push(d));
      sock.on('error', reject);
      sock.on('close', () => {
        const text = Buffer.concat(chunks).toString('latin1');
        const answers = text.split(/(?=HTTP\/1\.1 )/).filter(Boolean).map((a) => {
          const [first, ...lines] = a.split('\r\n\r\n')[0].split('\r\n');
          const headers: Record<string, string> = {};
          for (const l of lines) {
            const i = l.indexOf(':');
            headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
          }
          return { status: Number(first.split(' ')[1]), headers };
        });
        resolve(answers);
      });
      sock.end(bytes);
    });
  }
  const post = (type: string, extra = '', body = '', close = true): string =>
    `BITS_POST /t/file.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: ${type}\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n${close ? 'Connection: close\r\n' : ''}\r\n${body}`;

  it('answers keep-alive, pipelined BITS_POST requests with Acks; 411 without Content-Length', async () => {
    const answers = await raw(post('Ping', '', '', false) + post('Ping'));
    assert.deepEqual(answers.map((a) => [a.status, a.headers['bits-packet-type']]), [[200, 'Ack'], [200, 'Ack']]);
    const [noLength] = await raw('BITS_POST /t/file.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Ping\r\nConnection: close\r\n\r\n');
    assert.equal(noLength.status, 411);
    assert.equal(noLength.headers['bits-error-code'], '0x80070057');
  });

  it('Create-Session needs the protocol GUID; Fragment out of order is 416 with the received range; unknown session is 500 BG_E_SESSION_NOT_FOUND', async () => {
    const [bad] = await raw(post('Create-Session', 'BITS-Supported-Protocols: {00000000-0000-0000-0000-000000000000}\r\n'));
    assert.equal(bad.status, 400);
    const [ok] = await raw(post('Create-Session', `BITS-Supported-Protocols: ${BITS_PROTOCOL_GUID}\r\n`));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['bits-protocol'], BITS_PROTOCOL_GUID);
    const sid = ok.headers['bits-session-id'];
    assert.match(sid, /^\{[0-9A-F-]{36}\}$/);
    const [first] = await raw(post('Fragment', `BITS-Session-Id: ${sid}\r\nContent-Range: bytes 0-4/10\r\n`, 'hello'));
    assert.deepEqual([first.status, first.headers['bits-received-content-range']], [200, '5']);
    const [gap] = await raw(post('Fragment', `BITS-Session-Id: ${sid}\r\nContent-Range: bytes 7-9/10\r\n`, 'xyz'));
    assert.deepEqual([gap.status, gap.headers['bits-received-content-range']], [416, '5']);
    const [overlap] = await raw(post('Fragment', `BITS-Session-Id: ${sid}\r\nContent-Range: bytes 3-9/10\r\n`, 'LOworld'));
    assert.deepEqual([overlap.status, overlap.headers['bits-received-content-range']], [200, '10']);
    const [closed] = await raw(post('Close-Session', `BITS-Session-Id: ${sid}\r\n`));
    assert.equal(closed.status, 200);
    assert.equal(fs.readFileSync(path.join(server.destDir, 't', 'file.bin'), 'utf8'), 'helloworld', 'only the new part of an overlapping fragment is written');
    const [unknown] = await raw(post('Fragment', `BITS-Session-Id: ${sid}\r\nContent-Range: bytes 0-0/1\r\n`, 'x'));
    assert.equal(unknown.status, 500);
    assert.equal(unknown.headers['bits-error-code'], '0x8020001F');
  });
});
