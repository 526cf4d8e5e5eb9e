// The CLI's sources (§7–§9): --mirror, tab-separated mirrors in --input-file, --metalink, --cache / --no-cache.
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { useServerFixture } from '../support/engineHarness';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';

const CLI = path.resolve(__dirname, '..', '..', '..', 'dist', 'cli.js');

function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], (e, _stdout, stderr) => resolve({ code: e ? Number(e.code) : 0, stderr }));
  });
}

describe('CLI: mirrors, Metalink, content cache', function () {
  this.timeout(30_000);
  let server: TestServer;
  let dir: string;
  const body = randomBody(500_000, 97);
  const sha = sha256Hex(body);

  useServerFixture((f) => ({ server, dir } = f), { prefix: 'md-cli-sources-' });

  const mk = (name: string): string => {
    fs.mkdirSync(path.join(dir, name));
    return path.join(dir, name);
  };
  const read = (...p: string[]): string => sha256Hex(fs.readFileSync(path.join(dir, ...p)));

  it('--mirror: the next source serves the file when the first one is gone', async () => {
    server.route('/gone/f.bin', { status: 404 });
    server.route('/m/f.bin', { body });
    const r = await cli(['get', server.url('/gone/f.bin'), '--mirror', server.url('/m/f.bin'), '-o', dir, '--store', path.join(dir, 's'), '--retry-delay', '0']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(read('f.bin'), sha);
  });

  it('--input-file: mirrors follow their URL on its line, separated by tabs', async () => {
    server.route('/gone/f.bin', { status: 410 });
    server.route('/m/f.bin', { body });
    const list = path.join(dir, 'list.txt');
    fs.writeFileSync(list, `${server.url('/gone/f.bin')}\t${server.url('/m/f.bin')}\n`);
    const r = await cli(['get', '-i', list, '-o', mk('out'), '--store', path.join(dir, 's'), '--retry-delay', '0']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(read('out', 'f.bin'), sha);
  });

  it('--metalink: every file of the Metalink, into -o DIR (sub-folders made), past a dead URL', async () => {
    const other = randomBody(1000, 98);
    server.route('/m/a', { body });
    server.route('/m/b', { body: other });
    const ml = path.join(dir, 'set.meta4');
    fs.writeFileSync(
      ml,
      `<metalink xmlns="urn:ietf:params:xml:ns:metalink">
        <file name="a.bin"><hash type="sha-256">${sha}</hash><url priority="1">${server.url('/dead')}</url><url priority="2">${server.url('/m/a')}</url></file>
        <file name="sub/b.bin"><size>1000</size><url>${server.url('/m/b')}</url></file>
      </metalink>`,
    );
    const r = await cli(['get', '--metalink', ml, '-o', path.join(dir, 'out'), '--store', path.join(dir, 's'), '--retry-delay', '0']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(read('out', 'a.bin'), sha);
    assert.equal(read('out', 'sub', 'b.bin'), sha256Hex(other));
    fs.writeFileSync(ml, `<metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="../evil"><url>${server.url('/m/a')}</url></file></metalink>`);
    const bad = await cli(['get', '--metalink', ml, '-o', path.join(dir, 'out2'), '--store', path.join(dir, 's')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /E_INVALIDARG.*entry 1 \("\.\.\/evil"\)/);
  });

  it('--cache: a second run with another store fetches nothing and says how much came from the cache; --no-cache fetches', async () => {
    server.route('/f.bin', { body });
    const cache = path.join(dir, 'cache');
    const common = [server.url('/f.bin'), '--sha256', sha, '--cache', cache];
    assert.equal((await cli(['get', ...common, '-o', mk('one'), '--store', path.join(dir, 's1')])).code, 0);
    server.requests.length = 0;
    const second = await cli(['get', ...common, '-o', mk('two'), '--store', path.join(dir, 's2')]);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(server.requests, []);
    assert.match(second.stderr, /488\.3 KiB from cache/);
    assert.equal(read('two', 'f.bin'), sha);
    const third = await cli(['get', server.url('/f.bin'), '--sha256', sha, '--no-cache', '-o', mk('three'), '--store', path.join(dir, 's3')]);
    assert.equal(third.code, 0, third.stderr);
    assert.equal(server.requests.length, 1);
  });
});
