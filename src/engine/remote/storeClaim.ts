// One engine per store: the window that can listen on the store's socket owns it. The kernel frees the
// socket when its process dies, so a crashed owner leaves only a file nobody answers on (stale).
// Whoever can put a socket where we look would receive every request of the user's windows (headers,
// URLs, paths): the socket lives in the store or in a folder only this user can enter, and is checked
// (a socket, not a link, owned by this user) before anything connects to it.
// On Windows the name is a named pipe (\\.\pipe\...), outside any folder: these checks do not apply there, and
// who may open the pipe is left to its default security descriptor (not reviewed yet).
import { createHash } from 'node:crypto';
import * as fs from '../io';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { DownloadError } from '../errors';

/** Unix socket paths are limited to about 104 bytes; longer store paths use a private folder (see below). */
const MAX_SOCKET_PATH = 100;
/** A takeover lock older than this was left by a crash and may be broken. */
const STALE_LOCK_MS = 10_000;

const isWindows = process.platform === 'win32';

function currentUid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined;
}

export function socketPathFor(storeDir: string): string {
  const hash = createHash('sha256').update(path.resolve(storeDir)).digest('hex').slice(0, 24);
  if (isWindows) {
    return `\\\\.\\pipe\\managed-downloads-${hash}`;
  }
  const inStore = path.join(storeDir, 'engine.sock');
  if (Buffer.byteLength(inStore) <= MAX_SOCKET_PATH) {
    return inStore;
  }
  return path.join(privateSocketFolder(), `${hash}.sock`);
}

/**
 * A folder in $XDG_RUNTIME_DIR (the user's own, 0700 by the spec) when it is there and we can create ours in
 * it (an inherited variable may name a missing or foreign folder), else one in tmp. Either is checked
 * before use (preparePrivateFolder).
 */
function privateSocketFolder(): string {
  const runtime = process.env.XDG_RUNTIME_DIR;
  if (runtime && path.isAbsolute(runtime)) {
    const folder = path.join(runtime, 'managed-downloads');
    try {
      fs.mkdirSync(folder, { mode: 0o700 });
      return folder;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        return folder;
      }
    }
  }
  return path.join(os.tmpdir(), `managed-downloads-${currentUid() ?? 'user'}`);
}

function refused(what: string, why: string): DownloadError {
  return new DownloadError('E_ACCESSDENIED', `Refusing to use ${what}: ${why}. Remove it (it may have been planted by someone else) and try again.`);
}

/** Creates the socket's private folder, or checks the one that exists: a real folder of this user's, closed to others. */
async function preparePrivateFolder(folder: string): Promise<void> {
  await fs.mkdir(folder, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') {
      throw e;
    }
  });
  const st = await fs.lstat(folder);
  if (st.isSymbolicLink()) {
    throw refused(`the socket folder ${folder}`, 'it is a symbolic link');
  }
  if (!st.isDirectory()) {
    throw refused(`the socket folder ${folder}`, 'it is not a folder');
  }
  if (st.uid !== currentUid()) {
    throw refused(`the socket folder ${folder}`, `it is owned by another user (uid ${st.uid})`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw refused(`the socket folder ${folder}`, `group or others may use it (mode ${(st.mode & 0o777).toString(8)})`);
  }
}

/**
 * Whether the socket file can be trusted: 'absent' (nothing there), 'ours' (a socket of this user's) or
 * 'stale' (something of ours that is no socket, to be replaced); a link or someone else's file is refused.
 */
export async function checkSocketFile(socketPath: string): Promise<'absent' | 'ours' | 'stale'> {
  if (isWindows) {
    return 'ours';
  }
  const st = await fs.lstat(socketPath).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') {
      return undefined;
    }
    throw e;
  });
  if (!st) {
    return 'absent';
  }
  if (st.isSymbolicLink()) {
    throw refused(`the job engine's socket ${socketPath}`, 'it is a symbolic link');
  }
  if (st.uid !== currentUid()) {
    throw refused(`the job engine's socket ${socketPath}`, `it is owned by another user (uid ${st.uid})`);
  }
  return st.isSocket() ? 'ours' : 'stale';
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
  if (!isWindows) {
    const folder = path.dirname(socketPath);
    if (path.resolve(folder) === path.resolve(storeDir)) {
      await fs.mkdir(folder, { recursive: true, mode: 0o700 }).catch(() => undefined);
    } else {
      await preparePrivateFolder(folder);
    }
  }
  for (let attempt = 0; attempt < 20; attempt++) {
    if ((await checkSocketFile(socketPath)) === 'ours' && (await canConnect(socketPath))) {
      return undefined;
    }
    // Binding happens under a lock, so two windows never both remove a stale socket and both listen.
    const lock = await takeLock(socketPath + '.lock');
    if (!lock) {
      await delay(50 + Math.random() * 100);
      continue;
    }
    try {
      if ((await checkSocketFile(socketPath)) === 'ours' && (await canConnect(socketPath))) {
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
