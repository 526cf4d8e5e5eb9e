// Inputs from outside that must not leak or mislead: credentials in URLs, signed URLs in messages and logs.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main as cliMain } from '../../src/cli';
import { DownloadEngine, type DownloadError } from '../../src/engine';
import { redactUrl } from '../../src/engine/errors';
import { matrix } from '../support/matrix';
import { openEngine, tempDir, waitForState } from '../support/engineHarness';
import { TestServer } from '../support/testServer';

const SECRETS = /pw-s3cret|SIGSECRET|TOKSECRET/;

describe('credentials and signed URLs', () => {
  let dir: string;
  let engine: DownloadEngine;
  const logs: string[] = [];

  beforeEach(async () => {
    dir = tempDir('md-hostile-');
    logs.length = 0;
    engine = await openEngine(path.join(dir, 'store'), { log: (level, m) => logs.push(`[${level}] ${m}`) });
  });
  afterEach(async () => {
    await engine.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function refusal(p: Promise<unknown>): Promise<DownloadError> {
    return (await p.then(
      () => assert.fail('expected a rejection'),
      (e: unknown) => e,
    )) as DownloadError;
  }

  it(matrix('hostile input', 'addFile with https://user:password@host/… (download and upload jobs)', 'E_INVALIDARG that says to use an Authorization header; nothing stored; the password is in no message'), async () => {
    const download = await engine.createJob({ displayName: 'creds' });
    const e = await refusal(download.addFile('https://alice:pw-s3cret@example.com/file.bin', path.join(dir, 'file.bin')));
    assert.equal(e.code, 'E_INVALIDARG');
    assert.match(e.message, /user name or password.*Authorization header/);
    assert.doesNotMatch(e.message, SECRETS);
    const src = path.join(dir, 'up.bin');
    fs.writeFileSync(src, 'x');
    const upload = await engine.createJob({ displayName: 'creds up', type: 'upload' });
    const u = await refusal(upload.addFile('https://alice:pw-s3cret@example.com/up/', src));
    assert.equal(u.code, 'E_INVALIDARG');
    assert.match(u.message, /Authorization header/);
    await engine.dispose();
    assert.doesNotMatch(fs.readFileSync(path.join(dir, 'store', 'jobs.json'), 'utf8'), SECRETS);
  });

  it(matrix('hostile input', 'a refused URL carrying a password and a signature (ftp://user:pw@host/…?X-Amz-Signature=…)', 'the refusal names the URL without either'), async () => {
    const job = await engine.createJob({ displayName: 'ftp' });
    const e = await refusal(job.addFile('ftp://alice:pw-s3cret@example.com/f.bin?X-Amz-Signature=SIGSECRET&token=TOKSECRET', path.join(dir, 'f.bin')));
    assert.equal(e.code, 'E_INVALIDARG');
    assert.match(e.message, /ftp scheme/);
    assert.doesNotMatch(e.message, SECRETS);
  });

  it(matrix('hostile input', 'a signed URL that fails (redirect to a signed URL, then 403)', 'the error message and every log line are free of signature and token values'), async () => {
    const server = await TestServer.start();
    try {
      server.route('/start', { redirect: { location: '/denied?X-Amz-Signature=SIGSECRET&X-Amz-Credential=abc' } });
      server.route('/denied', { status: 403 });
      const job = await engine.createJob({ displayName: 'signed' });
      await job.addFile(server.url('/start?sig=SIGSECRET&token=TOKSECRET'), path.join(dir, 'signed.bin'));
      await job.resume();
      await waitForState(engine, job, 'ERROR');
      const err = job.getError();
      assert.ok(err);
      assert.match(err.message, /403/);
      assert.doesNotMatch(err.message, SECRETS);
      assert.ok(logs.some((l) => /redirected/.test(l)), logs.join('\n'));
      for (const l of logs) {
        assert.doesNotMatch(l, SECRETS);
      }
    } finally {
      await server.close();
    }
  });

  it('redactUrl drops user info, every query value and the fragment, also from text that is not a URL', () => {
    assert.equal(redactUrl('https://u:pw-s3cret@h.example/a/b.zip?X-Amz-Signature=SIGSECRET#frag'), 'https://h.example/a/b.zip?…');
    assert.equal(redactUrl('http://h.example/x'), 'http://h.example/x');
    const broken = redactUrl('https://u:pw-s3cret@[bad/a?sig=SIGSECRET');
    assert.doesNotMatch(broken, SECRETS);
  });

  it(matrix('hostile input', 'CLI: signed URLs in a usage error (two URLs naming the same file), and user:password@ on the command line', 'the CLI prints them redacted; a URL with credentials is refused before anything is stored'), async () => {
    const out = path.join(dir, 'out');
    const stderr = await captureStderr(() =>
      cliMain(['get', '-o', out, '--store', path.join(dir, 'cli-store'), 'https://a.example/1/f.bin?sig=SIGSECRET', 'https://b.example/2/f.bin?token=TOKSECRET']),
    );
    assert.equal(stderr.result, 2);
    assert.match(stderr.text, /Two URLs would write the same file/);
    assert.doesNotMatch(stderr.text, SECRETS);
    const creds = await captureStderr(() => cliMain(['get', '-o', out, '--store', path.join(dir, 'cli-store'), 'https://alice:pw-s3cret@a.example/f.bin']));
    assert.equal(creds.result, 2);
    assert.match(creds.text, /Authorization header/);
    assert.doesNotMatch(creds.text, SECRETS);
    assert.ok(!fs.existsSync(path.join(dir, 'cli-store', 'jobs.json')), 'nothing stored');
  });
});

/** Runs `f` with process.stderr.write captured. */
async function captureStderr<T>(f: () => Promise<T>): Promise<{ result: T; text: string }> {
  const write = process.stderr.write.bind(process.stderr);
  let text = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  });
  try {
    return { result: await f(), text };
  } finally {
    process.stderr.write = write;
  }
}
