// One engine per store: the window that can listen on the store's socket owns it. The kernel frees the
// socket when its process dies, so a crashed owner leaves only a file nobody answers on (stale).
import { createHash } from 'node:crypto';
import * as fs from '../io';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/** Unix socket paths are limited to about 104 bytes; longer store paths use a private folder in tmp. */
const MAX_SOCKET_PATH = 100;
/** A takeover lock older than this was left by a crash and may be broken. */
const STALE_LOCK_MS = 10_000;

export function socketPathFor(storeDir: string): string {
  const hash = createHash('sha256').update(path.resolve(storeDir)).digest('hex').slice(0, 24);
  if (process.platform === 'win32') {
    return `\\\\.\\pipe\\managed-downloads-${hash}`;
  }
  const inStore = path.join(storeDir, 'engine.sock');
  if (Buffer.byteLength(inStore) <= MAX_SOCKET_PATH) {
    return inStore;
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return path.join(os.tmpdir(), `managed-downloads-${uid}`, `${hash}.sock`);
}

export interface StoreClaim {
  readonly socketPath: string;
  readonly server: net.Server;
  /** Stops listening and removes the socket file (on exit; a crash leaves it stale, which is fine). */
  release(): Promise<void>;
}

/**
 * Tries to become the owner of the store. Resolves with the listening server when this process owns it,
 * or undefined when another live process does (then connect to `socketPathFor(storeDir)`).
 */
export async function claimStore(storeDir: string): Promise<StoreClaim | undefined> {
  const socketPath = socketPathFor(storeDir);
  await fs.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o700 }).catch(() => undefined);
  for (let attempt = 0; attempt < 20; attempt++) {
    if (await canConnect(socketPath)) {
      return undefined;
    }
    // Binding happens under a lock, so two windows never both remove a stale socket and both listen.
    const lock = await takeLock(socketPath + '.lock');
    if (!lock) {
      await delay(50 + Math.random() * 100);
      continue;
    }
    try {
      if (await canConnect(socketPath)) {
        return undefined;
      }
      if (process.platform !== 'win32') {
        await fs.unlink(socketPath).catch(() => undefined);
      }
      const server = net.createServer();
      try {
        await listen(server, socketPath);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') {
          continue;
        }
        throw e;
      }
      if (process.platform !== 'win32') {
        await fs.chmod(socketPath, 0o600).catch(() => undefined);
      }
      return {
        socketPath,
        server,
        release: async () => {
          // Client connections are destroyed by the engine server; don't wait on stragglers forever.
          await new Promise<void>((r) => {
            const t = setTimeout(r, 2_000);
            server.close(() => {
              clearTimeout(t);
              r();
            });
          });
          if (process.platform !== 'win32') {
            await fs.unlink(socketPath).catch(() => undefined);
          }
        },
      };
    } finally {
      await fs.rmdir(lock).catch(() => undefined);
    }
  }
  throw new Error(`Could not claim or reach the owner of the job store at ${storeDir} (socket ${socketPath}).`);
}

export function canConnect(socketPath: string, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

async function takeLock(lockDir: string): Promise<string | undefined> {
  try {
    await fs.mkdir(lockDir);
    return lockDir;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw e;
    }
    const st = await fs.stat(lockDir).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > STALE_LOCK_MS) {
      await fs.rmdir(lockDir).catch(() => undefined);
    }
    return undefined;
  }
}

function listen(server: net.Server, socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
