// Every file-system call of the engine goes through here, so that a test can stand in for the disk: the
// crash-consistency test (test/support/powerLossFs.ts) keeps what is durable apart from what is only in the
// page cache and cuts the power at any call. Same names and signatures as node:fs/promises (and the few
// synchronous calls the engine makes); in production each is the Node function itself.
import * as fsp from 'node:fs/promises';
import * as fsSync from 'node:fs';

export type FileHandle = fsp.FileHandle;
export const constants = fsSync.constants;

/** The calls the engine makes; a test replaces the whole set with `useIo()`. */
export interface IoBackend {
  open: typeof fsp.open;
  readFile: typeof fsp.readFile;
  writeFile: typeof fsp.writeFile;
  rename: typeof fsp.rename;
  link: typeof fsp.link;
  symlink: typeof fsp.symlink;
  unlink: typeof fsp.unlink;
  rm: typeof fsp.rm;
  rmdir: typeof fsp.rmdir;
  mkdir: typeof fsp.mkdir;
  readdir: typeof fsp.readdir;
  stat: typeof fsp.stat;
  lstat: typeof fsp.lstat;
  realpath: typeof fsp.realpath;
  access: typeof fsp.access;
  truncate: typeof fsp.truncate;
  chmod: typeof fsp.chmod;
  statfs: typeof fsp.statfs;
  utimes: typeof fsp.utimes;
  openSync: typeof fsSync.openSync;
  writeSync: typeof fsSync.writeSync;
  closeSync: typeof fsSync.closeSync;
  readFileSync: typeof fsSync.readFileSync;
  mkdirSync: typeof fsSync.mkdirSync;
  rmSync: typeof fsSync.rmSync;
  /** Linux's boot id: tells a crash of the process (page cache kept) from a power cut (it is lost). */
  bootId(): string | undefined;
}

function readBootId(): string | undefined {
  if (process.platform !== 'linux') {
    return undefined;
  }
  try {
    return fsSync.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

const realBootId = readBootId();

export const nodeIo: IoBackend = {
  open: fsp.open,
  readFile: fsp.readFile,
  writeFile: fsp.writeFile,
  rename: fsp.rename,
  link: fsp.link,
  symlink: fsp.symlink,
  unlink: fsp.unlink,
  rm: fsp.rm,
  rmdir: fsp.rmdir,
  mkdir: fsp.mkdir,
  readdir: fsp.readdir,
  stat: fsp.stat,
  lstat: fsp.lstat,
  realpath: fsp.realpath,
  access: fsp.access,
  truncate: fsp.truncate,
  chmod: fsp.chmod,
  statfs: fsp.statfs,
  utimes: fsp.utimes,
  openSync: fsSync.openSync,
  writeSync: fsSync.writeSync,
  closeSync: fsSync.closeSync,
  readFileSync: fsSync.readFileSync,
  mkdirSync: fsSync.mkdirSync,
  rmSync: fsSync.rmSync,
  bootId: () => realBootId,
};

let backend: IoBackend = nodeIo;

/** For tests: route the engine's file-system calls to `io` until the returned function is called. */
export function useIo(io: IoBackend): () => void {
  const before = backend;
  backend = io;
  return () => {
    backend = before;
  };
}

// The engine calls these (import * as fs from './io'); each looks the backend up at call time.
export const open: typeof fsp.open = (...a) => backend.open(...a);
export const readFile = ((...a: Parameters<typeof fsp.readFile>) => backend.readFile(...a)) as typeof fsp.readFile;
export const writeFile: typeof fsp.writeFile = (...a) => backend.writeFile(...a);
export const rename: typeof fsp.rename = (...a) => backend.rename(...a);
export const link: typeof fsp.link = (...a) => backend.link(...a);
export const symlink: typeof fsp.symlink = (...a) => backend.symlink(...a);
export const unlink: typeof fsp.unlink = (...a) => backend.unlink(...a);
export const rm: typeof fsp.rm = (...a) => backend.rm(...a);
export const rmdir: typeof fsp.rmdir = (...a) => backend.rmdir(...a);
export const mkdir = ((...a: Parameters<typeof fsp.mkdir>) => backend.mkdir(...a)) as typeof fsp.mkdir;
export const readdir = ((...a: Parameters<typeof fsp.readdir>) => (backend.readdir as (...x: unknown[]) => unknown)(...a)) as typeof fsp.readdir;
export const stat = ((...a: Parameters<typeof fsp.stat>) => backend.stat(...a)) as typeof fsp.stat;
export const lstat = ((...a: Parameters<typeof fsp.lstat>) => backend.lstat(...a)) as typeof fsp.lstat;
export const realpath = ((...a: Parameters<typeof fsp.realpath>) => backend.realpath(...a)) as typeof fsp.realpath;
export const access: typeof fsp.access = (...a) => backend.access(...a);
export const truncate: typeof fsp.truncate = (...a) => backend.truncate(...a);
export const chmod: typeof fsp.chmod = (...a) => backend.chmod(...a);
export const statfs = ((...a: Parameters<typeof fsp.statfs>) => backend.statfs(...a)) as typeof fsp.statfs;
export const utimes: typeof fsp.utimes = (...a) => backend.utimes(...a);
export const openSync: typeof fsSync.openSync = (...a) => backend.openSync(...a);
export const writeSync = ((...a: Parameters<typeof fsSync.writeSync>) => (backend.writeSync as (...x: unknown[]) => number)(...a)) as typeof fsSync.writeSync;
export const closeSync: typeof fsSync.closeSync = (...a) => backend.closeSync(...a);
export const readFileSync = ((...a: Parameters<typeof fsSync.readFileSync>) => (backend.readFileSync as (...x: unknown[]) => unknown)(...a)) as typeof fsSync.readFileSync;
export const mkdirSync = ((...a: Parameters<typeof fsSync.mkdirSync>) => backend.mkdirSync(...a)) as typeof fsSync.mkdirSync;
export const rmSync: typeof fsSync.rmSync = (...a) => backend.rmSync(...a);

/** This boot's id (Linux `boot_id`); undefined elsewhere, where written-but-unsynced bytes are never trusted. */
export function bootId(): string | undefined {
  return backend.bootId();
}
