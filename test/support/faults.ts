// Fault injection for the matrix: small tmpfs mounts (disk full, read-only), file hashes, a seeded PRNG, and an
// in-process file-system error injector for machines where mounting is not allowed.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';

/** A tmpfs mounted at `dir` (created if needed), or the reason it could not be. */
export interface Tmpfs {
  dir: string;
  remount(options: string): void;
  unmount(): void;
}

export function tryMountTmpfs(dir: string, sizeBytes: number): Tmpfs | { error: string } {
  fs.mkdirSync(dir, { recursive: true });
  if (process.platform !== 'linux') {
    return { error: `tmpfs needs Linux (this is ${process.platform})` };
  }
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    return { error: `mount -t tmpfs failed: ${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim()}` };
  }
  let mounted = true;
  return {
    dir,
    remount(options: string) {
      execFileSync('mount', ['-o', `remount,${options}`, dir], { stdio: 'pipe' });
    },
    unmount() {
      if (!mounted) {
        return;
      }
      // Lazy unmount: never leave a mount behind, even when a handle is still open somewhere.
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      mounted = false;
    },
  };
}

export function isTmpfs(t: Tmpfs | { error: string }): t is Tmpfs {
  return !('error' in t);
}

export function sha256File(p: string): string {
  return createHash('sha256').update(fs.readFileSync(p)).digest('hex');
}

/** mulberry32: a small seeded PRNG, so a failing random run can be replayed with the printed seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type FileHandleProto = { writev: (...a: unknown[]) => Promise<unknown>; write: (...a: unknown[]) => Promise<unknown> };

/**
 * Fallback when no tmpfs can be mounted: makes writes through file handles opened under `dir` fail with
 * `code` once `afterBytes` bytes were written in total (ENOSPC: disk full). Returns the undo function.
 */
export async function injectWriteError(dir: string, code: string, afterBytes: number): Promise<() => void> {
  const probe = await fsp.open(__filename, 'r');
  const proto = Object.getPrototypeOf(probe) as FileHandleProto;
  await probe.close();
  // The real module object (the namespace import only has getters): replacing `open` reaches the engine.
  const mod = fs.promises as unknown as { open: (p: unknown, ...a: unknown[]) => Promise<fsp.FileHandle> };
  const origOpen = mod.open;
  const origWritev = proto.writev;
  const tracked = new WeakSet<object>();
  let written = 0;
  mod.open = async (p: unknown, ...a: unknown[]) => {
    const fh = await origOpen(p, ...a);
    if (typeof p === 'string' && p.startsWith(dir)) {
      tracked.add(fh);
    }
    return fh;
  };
  const origWrite = proto.write;
  const charge = (fh: object, n: number): void => {
    if (tracked.has(fh)) {
      if (written + n > afterBytes) {
        throw Object.assign(new Error(`${code}: injected file-system error, write`), { code, syscall: 'write' });
      }
      written += n;
    }
  };
  proto.writev = async function (this: object, buffers: unknown, ...rest: unknown[]) {
    charge(this, (buffers as Buffer[]).reduce((s, b) => s + b.length, 0));
    return origWritev.call(this, buffers, ...rest);
  };
  proto.write = async function (this: object, data: unknown, ...rest: unknown[]) {
    charge(this, Buffer.isBuffer(data) ? data.length : String(data).length);
    return origWrite.call(this, data, ...rest);
  };
  return () => {
    mod.open = origOpen;
    proto.writev = origWritev;
    proto.write = origWrite;
  };
}
