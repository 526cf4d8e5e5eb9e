// The store's socket is the door to the user's engine: nobody else may plant it, redirect it or flood it.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { SharedEngine } from '../../src/engine/remote/sharedEngine';
import { claimStore, socketPathFor, type StoreClaim } from '../../src/engine/remote/storeClaim';
import { fastOptions, tempDir } from '../support/engineHarness';

const uid = process.getuid!();

/** A Unix socket someone else listens on; counts who connects to it. */
async function listener(socketPath: string): Promise<{ server: net.Server; connections: () => number }> {
  let n = 0;
  const server = net.createServer((s) => {
    n++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  return { server, connections: () => n };
}

describe('engine socket: a private place, checked before use', () => {
  let dir: string;
  const env = { TMPDIR: process.env.TMPDIR, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR };
  const claims: StoreClaim[] = [];
  const servers: net.Server[] = [];

  beforeEach(() => {
    dir = tempDir('md-sock-');
    // Short folder: the long-store fallback goes into this test's own "tmp".
    process.env.TMPDIR = path.join(dir, 'tmp');
    fs.mkdirSync(process.env.TMPDIR);
    delete process.env.XDG_RUNTIME_DIR;
  });
  afterEach(async () => {
    for (const c of claims.splice(0)) {
      await c.release();
    }
    for (const s of servers.splice(0)) {
      s.close();
    }
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) {
        delete process.env[k];
      } else {
        process.env[k] = v;
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A store whose `engine.sock` would be too long for a Unix socket path. */
  function longStore(): string {
    return path.join(dir, 'x'.repeat(60), 'y'.repeat(60), 'store');
  }

  async function claim(store: string): Promise<StoreClaim | undefined> {
    const c = await claimStore(store);
    if (c) {
      claims.push(c);
    }
    return c;
  }

  it('a long store path: the socket goes into a folder it creates, private to the user (0700)', async () => {
    const store = longStore();
    const c = await claim(store);
    assert.ok(c);
    const folder = path.dirname(c.socketPath);
    assert.equal(folder, path.join(process.env.TMPDIR!, `managed-downloads-${uid}`));
    const st = fs.lstatSync(folder);
    assert.ok(st.isDirectory());
    assert.equal(st.mode & 0o777, 0o700);
  });

  it('$XDG_RUNTIME_DIR is preferred to tmp for a long store path', async () => {
    const runtime = path.join(dir, 'run');
    fs.mkdirSync(runtime, { mode: 0o700 });
    process.env.XDG_RUNTIME_DIR = runtime;
    const store = longStore();
    assert.equal(path.dirname(path.dirname(socketPathFor(store))), runtime);
    const c = await claim(store);
    assert.ok(c);
    assert.equal(fs.lstatSync(path.dirname(c.socketPath)).mode & 0o777, 0o700);
  });

  it('a $XDG_RUNTIME_DIR that does not exist: the private folder in tmp is used', async () => {
    process.env.XDG_RUNTIME_DIR = path.join(dir, 'no-such-run');
    const c = await claim(longStore());
    assert.ok(c);
    assert.equal(path.dirname(c.socketPath), path.join(process.env.TMPDIR!, `managed-downloads-${uid}`));
  });

  it('a folder planted in tmp with mode 0777 is refused, and its socket is not connected to', async () => {
    const store = longStore();
    const planted = path.join(process.env.TMPDIR!, `managed-downloads-${uid}`);
    fs.mkdirSync(planted);
    fs.chmodSync(planted, 0o777);
    const squatter = await listener(socketPathFor(store));
    servers.push(squatter.server);
    await assert.rejects(claim(store), (e: Error & { code?: string }) => e.code === 'E_ACCESSDENIED' && /group or others/.test(e.message) && e.message.includes(planted));
    assert.equal(squatter.connections(), 0);
  });

  it('a folder planted in tmp as a symlink is refused', async () => {
    const store = longStore();
    const elsewhere = path.join(dir, 'elsewhere');
    fs.mkdirSync(elsewhere, { mode: 0o700 });
    fs.symlinkSync(elsewhere, path.join(process.env.TMPDIR!, `managed-downloads-${uid}`));
    await assert.rejects(claim(store), (e: Error & { code?: string }) => e.code === 'E_ACCESSDENIED' && /symbolic link/.test(e.message));
    assert.deepEqual(fs.readdirSync(elsewhere), [], 'nothing created through the link');
  });

  it('a folder planted in tmp owned by another user is refused', async () => {
    const store = longStore();
    const planted = path.join(process.env.TMPDIR!, `managed-downloads-${uid}`);
    fs.mkdirSync(planted, { mode: 0o700 });
    fs.chownSync(planted, uid + 1234, uid + 1234);
    await assert.rejects(claim(store), (e: Error & { code?: string }) => e.code === 'E_ACCESSDENIED' && /owned by another user/.test(e.message));
  });

  it('a socket path that is a symlink to someone else\'s socket is not connected to', async () => {
    const store = path.join(dir, 'store');
    fs.mkdirSync(store);
    const other = await listener(path.join(dir, 'other.sock'));
    servers.push(other.server);
    fs.symlinkSync(path.join(dir, 'other.sock'), socketPathFor(store));
    await assert.rejects(claim(store), (e: Error & { code?: string }) => e.code === 'E_ACCESSDENIED' && /symbolic link/.test(e.message));
    assert.equal(other.connections(), 0);
  });

  it('a socket owned by another user is not connected to', async () => {
    const store = path.join(dir, 'store');
    fs.mkdirSync(store);
    const other = await listener(socketPathFor(store));
    servers.push(other.server);
    fs.chownSync(socketPathFor(store), uid + 1234, uid + 1234);
    await assert.rejects(claim(store), (e: Error & { code?: string }) => e.code === 'E_ACCESSDENIED' && /owned by another user/.test(e.message));
    assert.equal(other.connections(), 0);
  });
});

describe('engine socket: a client cannot make the owner buffer without bound', () => {
  let dir: string;
  let owner: SharedEngine;

  beforeEach(async () => {
    dir = tempDir('md-sock-');
    owner = await SharedEngine.open(fastOptions(path.join(dir, 'store')));
  });
  afterEach(async () => {
    await owner.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Connects a raw socket to the owner, writes `bytes`, and resolves with whether the owner closed it. */
  function sendRaw(bytes: Buffer[]): Promise<{ closedByOwner: boolean }> {
    return new Promise((resolve) => {
      const s = net.connect(socketPathFor(path.join(dir, 'store')));
      let written = false;
      const timer = setTimeout(() => {
        s.destroy();
        resolve({ closedByOwner: false });
      }, 5_000);
      s.on('error', () => undefined);
      s.on('close', () => {
        clearTimeout(timer);
        resolve({ closedByOwner: written });
      });
      s.on('connect', () => {
        for (const b of bytes) {
          s.write(b);
        }
        written = true;
      });
    });
  }

  it('a message announced at 2 GB: the owner closes the connection, and goes on serving the others', async () => {
    const chunk = Buffer.alloc(1 << 20, 0x20);
    const r = await sendRaw([Buffer.from('Content-Length: 2000000000\r\n\r\n{"jsonrpc":"2.0",'), ...Array.from({ length: 16 }, () => chunk)]);
    assert.equal(r.closedByOwner, true, 'the owner kept the connection open (and buffered it)');
    const client = await SharedEngine.open(fastOptions(path.join(dir, 'store')));
    try {
      assert.equal(client.role, 'client');
      const job = await client.service.createJob({ displayName: 'still served' });
      assert.equal(owner.service.getJob(job.id).displayName, 'still served');
    } finally {
      await client.dispose();
    }
  });

  it('headers that never end: the owner closes the connection', async () => {
    const r = await sendRaw([Buffer.from('Content-Type: '), Buffer.alloc(1 << 20, 0x41)]);
    assert.equal(r.closedByOwner, true, 'the owner kept the connection open (and buffered it)');
  });
});
