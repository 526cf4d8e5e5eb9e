// Metalink (§8): RFC 5854 .meta4 and Metalink 3, read as hostile input; an imported Metalink is one job.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DownloadEngine } from '../../src/engine';
import { createMetalinkJob, METALINK_MAX_FILES, parseMetalink } from '../../src/engine/metalink';
import { useEngineFixture, waitForState } from '../support/engineHarness';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';

const SHA256 = 'a'.repeat(64);
const SHA512 = 'b'.repeat(128);

function meta4(files: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<metalink xmlns="urn:ietf:params:xml:ns:metalink">${files}</metalink>`;
}

function file4(name: string, inner = '<url>https://a.example/x</url>'): string {
  return `<file name="${name}">${inner}</file>`;
}

describe('Metalink', () => {
  it('reads an RFC 5854 .meta4: name, size, sha-256, the strongest hash as SRI, http(s) URLs by priority then location', () => {
    const files = parseMetalink(
      meta4(`
      <published>2026-01-01T00:00:00Z</published>
      <file name="dir/tool.iso">
        <size>14471447</size>
        <identity>Tool</identity>
        <hash type="sha-256">${SHA256.toUpperCase()}</hash>
        <hash type="sha-512">${SHA512}</hash>
        <pieces length="262144" type="sha-1"><hash>${'c'.repeat(40)}</hash></pieces>
        <url location="us" priority="2">https://us.example/tool.iso</url>
        <url location="de" priority="2">https://de.example/tool.iso</url>
        <url priority="1">http://best.example/tool.iso</url>
        <url>https://unranked.example/tool.iso</url>
        <url priority="1">ftp://ftp.example/tool.iso</url>
        <metaurl mediatype="torrent">https://t.example/tool.torrent</metaurl>
      </file>`),
      { location: 'de' },
    );
    assert.deepEqual(files, [
      {
        name: 'dir/tool.iso',
        size: 14471447,
        sha256: SHA256,
        integrity: `sha512-${Buffer.from(SHA512, 'hex').toString('base64')}`,
        urls: ['http://best.example/tool.iso', 'https://de.example/tool.iso', 'https://us.example/tool.iso', 'https://unranked.example/tool.iso'],
      },
    ]);
  });

  it('reads a Metalink 3 .metalink: preference (higher is better), verification hashes', () => {
    const xml = `<?xml version="1.0" encoding="utf-8"?>
      <metalink version="3.0" xmlns="http://www.metalinker.org/">
        <files>
          <file name="a.bin">
            <size>10</size>
            <verification><hash type="sha384">${'d'.repeat(96)}</hash><hash type="md5">${'e'.repeat(32)}</hash></verification>
            <resources>
              <url type="http" location="fr" preference="10">http://low.example/a.bin</url>
              <url type="http" preference="90">https://high.example/a.bin</url>
              <url type="ftp" preference="100">ftp://ftp.example/a.bin</url>
            </resources>
          </file>
        </files>
      </metalink>`;
    assert.deepEqual(parseMetalink(xml), [
      { name: 'a.bin', size: 10, sha256: undefined, integrity: `sha384-${Buffer.from('d'.repeat(96), 'hex').toString('base64')}`, urls: ['https://high.example/a.bin', 'http://low.example/a.bin'] },
    ]);
  });

  it('refuses unsafe names with E_INVALIDARG naming the entry', () => {
    for (const name of ['/etc/passwd', '../up.bin', 'a/../../b', 'C:\\Windows\\x', '\\\\server\\share', 'a/./b', 'a//b', '']) {
      assert.throws(
        () => parseMetalink(meta4(file4('ok.bin') + file4(name))),
        (e: Error & { code?: string }) => e.code === 'E_INVALIDARG' && e.message.includes('entry 2') && e.message.includes(JSON.stringify(name)),
        `name ${JSON.stringify(name)}`,
      );
    }
    assert.throws(() => parseMetalink(meta4(file4('a&#10;b'))), { code: 'E_INVALIDARG', message: /entry 1 .*control characters/ });
    assert.throws(() => parseMetalink(meta4(file4('same') + file4('same'))), { code: 'E_INVALIDARG', message: /entry 2/ });
  });

  it('refuses a DOCTYPE (no entity is ever expanded), bad sizes and hashes, files without an http(s) URL, non-Metalink XML', () => {
    const bomb = `<?xml version="1.0"?><!DOCTYPE metalink [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
      <metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="&b;"><url>https://a.example/x</url></file></metalink>`;
    assert.throws(() => parseMetalink(bomb), { code: 'E_INVALIDARG', message: /DOCTYPE/ });
    for (const size of ['-1', '1.5', '1e3', '', '99999999999999999']) {
      assert.throws(() => parseMetalink(meta4(file4('s.bin', `<size>${size}</size><url>https://a.example/x</url>`))), { code: 'E_INVALIDARG', message: /size/ }, size);
    }
    assert.throws(() => parseMetalink(meta4(file4('h.bin', `<hash type="sha-256">abc</hash><url>https://a.example/x</url>`))), { code: 'E_INVALIDARG', message: /hash/ });
    assert.throws(() => parseMetalink(meta4(file4('f.bin', '<url>ftp://a.example/x</url><url>file:///etc/passwd</url>'))), { code: 'E_INVALIDARG', message: /no http or https URL/ });
    assert.throws(() => parseMetalink('<rss><file name="x"/></rss>'), { code: 'E_INVALIDARG', message: /not a Metalink/ });
    assert.throws(() => parseMetalink('<metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="x">'), { code: 'E_INVALIDARG' });
    assert.throws(() => parseMetalink(meta4('')), { code: 'E_INVALIDARG', message: /no files/ });
  });

  it('bounds the Metalink file (16 MiB) and its number of files (100,000)', () => {
    assert.throws(() => parseMetalink(meta4(`<!--${' '.repeat(17 * 1024 * 1024)}-->`)), { code: 'E_INVALIDARG', message: /16 MiB/ });
    const many = Array.from({ length: METALINK_MAX_FILES + 1 }, (_, i) => `<file name="f${i}"><url>http://a/${i}</url></file>`).join('');
    assert.throws(() => parseMetalink(meta4(many)), { code: 'E_INVALIDARG', message: /more than 100000 files/ });
  });

  describe('import', () => {
    let server: TestServer;
    let dir: string;
    let engine: DownloadEngine;
    const body = randomBody(200_000, 95);
    useEngineFixture((f) => ({ server, dir, engine } = f));

    it('makes one SUSPENDED job: first URL as remoteUrl, the others as mirrors, sha-256 checked; the job goes on past a dead URL', async () => {
      server.route('/good', { body });
      const ml = path.join(dir, 'set.meta4');
      fs.writeFileSync(
        ml,
        meta4(`<file name="sub/one.bin"><size>${body.length}</size><hash type="sha-256">${sha256Hex(body)}</hash>
          <url priority="1">${server.url('/dead')}</url><url priority="2">${server.url('/good')}</url></file>`),
      );
      const out = path.join(dir, 'out');
      fs.mkdirSync(out);
      const job = await createMetalinkJob(engine, ml, out);
      assert.equal(job.state, 'SUSPENDED');
      const [f] = job.getFiles();
      assert.equal(f.localPath, path.join(out, 'sub', 'one.bin'));
      assert.equal(f.remoteUrl, server.url('/dead'));
      assert.deepEqual(f.mirrors, [server.url('/good')]);
      assert.equal(f.sha256, sha256Hex(body));
      await job.setMinimumRetryDelay(0);
      await job.resume();
      await waitForState(engine, job as never, 'TRANSFERRED');
      await job.complete();
      assert.equal(sha256Hex(fs.readFileSync(path.join(out, 'sub', 'one.bin'))), sha256Hex(body));
    });
  });
});
