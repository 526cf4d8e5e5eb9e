// A stand-in for the disk (an IoBackend for src/engine/io.ts) that keeps what is durable apart from what is only
// in the page cache, and can cut the power at any call.
//
// The real file system under `root` is the page cache: every call goes through to it. Beside it the double keeps
// a durable model, pessimistic like ext4 without auto_da_alloc (or btrfs, whose fsync logs only the one inode):
//  - per inode, its content as of its last fsync/fdatasync (read back from the real file at that moment);
//    an inode never synced is empty after the cut;
//  - per folder under `root`, its name -> inode entries as of its last fsync (the engine opens the folder and
//    calls sync() on the handle: syncDir in store.ts). A creation, rename, link or unlink is durable only once its
//    folder is synced.
// With `names: 'at-any-fsync'` metadata goes first, like a journaling file system's metadata log without ordered
// data (ext4 data=writeback, XFS's old "NULL files"): any fsync commits every creation, rename, link, unlink and
// file size made before it, while a file's data is durable only by its own inode's sync; the rest reads as
// zeros. Names and sizes made durable early expose unsynced data; names kept back expose a missing folder fsync.
// What exists when the double starts is durable. `cutAt: k` cuts the power at the k-th call: that call and every
// later one fail with PowerCut (the synchronous ones throw). `materializeDurable()` then rewrites `root` to hold
// only the durable state, as the machine would find it on the next boot; leaving the real files as they are is a
// crash of the process instead (the kernel kept its page cache).
//
// Inodes are told apart by a number of our own, not by st_ino: a file system may give a deleted file's inode
// number to the next file created.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { nodeIo, type IoBackend } from '../../src/engine/io';

export class PowerCut extends Error {
  readonly code = 'EIO';
  constructor(call: string) {
    super(`power cut (${call})`);
  }
}

type Entry = { kind: 'file'; inode: number } | { kind: 'dir' };

export interface PowerLossOptions {
  /** Every file the engine touches is under this folder. */
  root: string;
  /** Cut the power at this call (1 = the first); never when undefined. */
  cutAt?: number;
  /** When a folder's entries become durable: at its own fsync (default), or at any fsync. */
  names?: 'at-folder-fsync' | 'at-any-fsync';
  /** How long a flush takes (ms): other calls go on meanwhile, and a cut before its end makes nothing durable. */
  syncMs?: number;
}

export class PowerLossFs {
  readonly root: string;
  readonly names: 'at-folder-fsync' | 'at-any-fsync';
  readonly syncMs: number;
  /** Calls made so far (the one cut included). */
  calls = 0;
  /** Names of the calls, in order (what the k-th call was, for a failure message). */
  readonly log: string[] = [];
  cutAt: number | undefined;
  private cutHappened = false;
  private resolveCut: () => void = () => undefined;
  /** Resolves when the power is cut. */
  readonly whenCut: Promise<void>;

  private nextInode = 1;
  /** st_dev:st_ino -> our inode number, for the files alive now. */
  private readonly inodes = new Map<string, number>();
  /** Our inode number -> its content at its last fsync/fdatasync. */
  private readonly durableData = new Map<number, Buffer>();
  /** Our inode number -> its size committed with the metadata (at-any-fsync), when later than its data. */
  private readonly durableSize = new Map<number, number>();
  /** Folder (absolute) -> its entries at its last fsync. */
  private readonly durableDirs = new Map<string, Map<string, Entry>>();

  readonly io: IoBackend;

  constructor(o: PowerLossOptions) {
    this.root = path.resolve(o.root);
    this.cutAt = o.cutAt;
    this.names = o.names ?? 'at-folder-fsync';
    this.syncMs = o.syncMs ?? 0;
    this.whenCut = new Promise((r) => (this.resolveCut = r));
    this.snapshotTree(this.root);
    this.io = this.backend();
  }

  get isCut(): boolean {
    return this.cutHappened;
  }

  /** Rewrites `root` to hold only what was durable: each durable name with its inode's durable content. */
  materializeDurable(): void {
    for (const name of fs.readdirSync(this.root)) {
      fs.rmSync(path.join(this.root, name), { recursive: true, force: true });
    }
    const placed = new Map<number, string>();
    const build = (dir: string): void => {
      for (const [name, e] of this.durableDirs.get(dir) ?? new Map<string, Entry>()) {
        const p = path.join(dir, name);
        if (e.kind === 'dir') {
          fs.mkdirSync(p);
          build(p);
        } else if (placed.has(e.inode)) {
          // Two durable names of one inode stay one inode (the engine tells its own hard links by st_ino).
          fs.linkSync(placed.get(e.inode)!, p);
        } else {
          const data = this.durableData.get(e.inode) ?? Buffer.alloc(0);
          const size = this.durableSize.get(e.inode) ?? data.length;
          // A size committed ahead of the data: the bytes not synced read as zeros.
          fs.writeFileSync(p, size <= data.length ? data.subarray(0, size) : Buffer.concat([data, Buffer.alloc(size - data.length)]));
          placed.set(e.inode, p);
        }
      }
    };
    build(this.root);
  }

  // ------------------------------------------------------------------------------------------ the model

  /** Everything under `dir` as it is now becomes durable (the start state). */
  private snapshotTree(dir: string): void {
    this.recordDir(dir);
    for (const [name, e] of this.durableDirs.get(dir)!) {
      const p = path.join(dir, name);
      if (e.kind === 'dir') {
        this.snapshotTree(p);
      } else {
        this.durableData.set(e.inode, fs.readFileSync(p));
      }
    }
  }

  /** Every folder's entries and every file's size under `dir` as they are now (metadata: no file's data). */
  private metadataOf(dir: string, out: { dirs: [string, Map<string, Entry>][]; sizes: [number, number][] }): void {
    const entries = this.entriesOf(dir);
    out.dirs.push([dir, entries]);
    for (const [name, e] of entries) {
      if (e.kind === 'dir') {
        this.metadataOf(path.join(dir, name), out);
      } else {
        out.sizes.push([e.inode, fs.lstatSync(path.join(dir, name)).size]);
      }
    }
  }

  private inodeOf(st: fs.Stats): number {
    const key = `${st.dev}:${st.ino}`;
    let n = this.inodes.get(key);
    if (n === undefined) {
      n = this.nextInode++;
      this.inodes.set(key, n);
    }
    return n;
  }

  /** A file was just created at `p`: a new inode, whatever number the file system reused. */
  private created(p: string): void {
    try {
      const st = fs.lstatSync(p);
      this.inodes.set(`${st.dev}:${st.ino}`, this.nextInode++);
    } catch {
      // Gone already: nothing to track.
    }
  }

  private entriesOf(dir: string): Map<string, Entry> {
    const entries = new Map<string, Entry>();
    for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
      if (d.isDirectory()) {
        entries.set(d.name, { kind: 'dir' });
      } else if (d.isFile()) {
        entries.set(d.name, { kind: 'file', inode: this.inodeOf(fs.lstatSync(path.join(dir, d.name))) });
      }
    }
    return entries;
  }

  private recordDir(dir: string): void {
    this.durableDirs.set(dir, this.entriesOf(dir));
  }

  /**
   * What an fsync/fdatasync of a handle, starting now, makes durable once it ends: a folder's entries or a
   * file's content (read through /proc: the handle may be write-only, the file renamed since), and with
   * metadata first every name and size. Returned as the change to apply at the end.
   */
  private snapshotOf(fd: number, p: string): () => void {
    const meta = { dirs: [] as [string, Map<string, Entry>][], sizes: [] as [number, number][] };
    if (this.names === 'at-any-fsync') {
      this.metadataOf(this.root, meta);
    }
    const st = fs.fstatSync(fd);
    const dir = st.isDirectory() && this.isUnderRoot(p) ? this.entriesOf(p) : undefined;
    const content = st.isDirectory() ? undefined : fs.readFileSync(`/proc/self/fd/${fd}`);
    const inode = this.inodeOf(st);
    return () => {
      for (const [d, entries] of meta.dirs) {
        this.durableDirs.set(d, entries);
      }
      for (const [n, size] of meta.sizes) {
        this.durableSize.set(n, size);
      }
      if (dir) {
        this.durableDirs.set(p, dir);
      }
      if (content) {
        this.durableData.set(inode, content);
        this.durableSize.delete(inode);
      }
    };
  }

  private isUnderRoot(p: string): boolean {
    return p === this.root || p.startsWith(this.root + path.sep);
  }

  // ------------------------------------------------------------------------------------------ the calls

  /** Counts a call; throws PowerCut when it is the cut one or later. */
  private gate(call: string): void {
    this.calls++;
    this.log.push(call);
    if (this.cutHappened || (this.cutAt !== undefined && this.calls >= this.cutAt)) {
      if (!this.cutHappened) {
        this.cutHappened = true;
        this.resolveCut();
      }
      throw new PowerCut(call);
    }
  }

  /** An async call: counted, then passed to the real one (a cut rejects). */
  private async pass<T>(call: string, run: () => Promise<T>): Promise<T> {
    this.gate(call);
    return run();
  }

  private wrapHandle(fh: fsp.FileHandle, p: string, flags?: string | number): fsp.FileHandle {
    // Opened with O_DSYNC: each write is also a data sync of the file, durable once it ends (as on Linux).
    const syncedWrites = typeof flags === 'number' && (flags & (fs.constants.O_DSYNC ?? 0)) !== 0;
    return new Proxy(fh, {
      get: (target, prop) => {
        const v = Reflect.get(target, prop, target) as unknown;
        if (typeof v !== 'function') {
          return v;
        }
        const method = v as (...a: unknown[]) => unknown;
        if (prop === 'close') {
          // No durable effect; always done, so hundreds of cut runs leak no descriptors.
          return () => target.close();
        }
        if (prop === 'sync' || prop === 'datasync') {
          return async () => {
            this.gate(`fh.${prop} ${path.basename(p)}`);
            // The model says what a sync made durable, not the real disk's flush; a flush still takes a while
            // (other calls go on meanwhile), and what it makes durable is what was written when it started.
            const commit = this.snapshotOf(target.fd, p);
            await new Promise((r) => setTimeout(r, this.syncMs));
            if (this.cutHappened) {
              throw new PowerCut(`fh.${prop} ${path.basename(p)}, cut before it ended`);
            }
            commit();
          };
        }
        if (syncedWrites && (prop === 'write' || prop === 'writev')) {
          return async (...a: unknown[]) => {
            this.gate(`fh.${prop} ${path.basename(p)} (O_DSYNC)`);
            const written = await (method.apply(target, a) as Promise<unknown>);
            const commit = this.snapshotOf(target.fd, p);
            await new Promise((r) => setTimeout(r, this.syncMs));
            if (this.cutHappened) {
              throw new PowerCut(`fh.${prop} ${path.basename(p)} (O_DSYNC), cut before its flush ended`);
            }
            commit();
            return written;
          };
        }
        // Like an async function: a throwing gate comes back as a rejection, not a synchronous throw.
        return (...a: unknown[]) =>
          new Promise<unknown>((resolve) => {
            this.gate(`fh.${String(prop)} ${path.basename(p)}`);
            resolve(method.apply(target, a));
          });
      },
    });
  }

  private backend(): IoBackend {
    const exists = (p: fs.PathLike): boolean => {
      try {
        fs.lstatSync(p);
        return true;
      } catch {
        return false;
      }
    };
    /** Runs a call that may create the file at `p`; a new file gets a new inode number. */
    const creating = async <T>(call: string, p: fs.PathLike, run: () => Promise<T>): Promise<T> => {
      this.gate(`${call} ${path.basename(String(p))}`);
      const before = exists(p);
      const r = await run();
      if (!before) {
        this.created(String(p));
      }
      return r;
    };
    const name = (p: unknown): string => path.basename(String(p));
    const io: IoBackend = {
      open: ((p: fs.PathLike, flags?: string | number, mode?: fs.Mode) =>
        creating('open', p, () => fsp.open(p, flags, mode)).then((fh) => this.wrapHandle(fh, path.resolve(String(p)), flags))),
      readFile: ((p: fs.PathLike, o?: unknown) => this.pass(`readFile ${name(p)}`, () => nodeIo.readFile(p, o as BufferEncoding))) as IoBackend['readFile'],
      writeFile: ((p: fs.PathLike, data: string | Uint8Array, o?: fs.WriteFileOptions) =>
        creating('writeFile', p, () => fsp.writeFile(p, data, o))) as IoBackend['writeFile'],
      rename: (a, b) => this.pass(`rename ${name(a)} ${name(b)}`, () => fsp.rename(a, b)),
      link: (a, b) => this.pass(`link ${name(a)} ${name(b)}`, () => fsp.link(a, b)),
      unlink: (p) => this.pass(`unlink ${name(p)}`, () => fsp.unlink(p)),
      rm: (p, o) => this.pass(`rm ${name(p)}`, () => fsp.rm(p, o)),
      rmdir: (p, o) => this.pass(`rmdir ${name(p)}`, () => fsp.rmdir(p, o)),
      mkdir: ((p: fs.PathLike, o?: fs.MakeDirectoryOptions) => this.pass(`mkdir ${name(p)}`, () => fsp.mkdir(p, o))) as IoBackend['mkdir'],
      readdir: ((p: fs.PathLike, o?: unknown) => this.pass(`readdir ${name(p)}`, () => (fsp.readdir as (...x: unknown[]) => Promise<unknown>)(p, o))) as IoBackend['readdir'],
      stat: ((p: fs.PathLike, o?: fs.StatOptions) => this.pass(`stat ${name(p)}`, () => fsp.stat(p, o))) as IoBackend['stat'],
      lstat: ((p: fs.PathLike, o?: fs.StatOptions) => this.pass(`lstat ${name(p)}`, () => fsp.lstat(p, o))) as IoBackend['lstat'],
      realpath: ((p: fs.PathLike, o?: unknown) => this.pass(`realpath ${name(p)}`, () => fsp.realpath(p, o as BufferEncoding))) as IoBackend['realpath'],
      access: (p, m) => this.pass(`access ${name(p)}`, () => fsp.access(p, m)),
      truncate: (p, len) => this.pass(`truncate ${name(p)}`, () => fsp.truncate(p, len)),
      chmod: (p, m) => this.pass(`chmod ${name(p)}`, () => fsp.chmod(p, m)),
      symlink: (target, p, type) => creating('symlink', p, () => fsp.symlink(target, p, type)),
      statfs: ((p: fs.PathLike, o?: fs.StatFsOptions) => this.pass(`statfs ${name(p)}`, () => fsp.statfs(p, o))) as IoBackend['statfs'],
      utimes: (p, a, m) => this.pass(`utimes ${name(p)}`, () => fsp.utimes(p, a, m)),
      openSync: (p, flags, mode) => {
        this.gate(`openSync ${name(p)}`);
        const before = exists(p);
        const fd = fs.openSync(p, flags, mode);
        if (!before) {
          this.created(String(p));
        }
        return fd;
      },
      writeSync: ((...a: unknown[]) => {
        this.gate('writeSync');
        return (fs.writeSync as (...x: unknown[]) => number)(...a);
      }),
      // No durable effect; always done (see the handles' close).
      closeSync: (fd) => fs.closeSync(fd),
      readFileSync: ((...a: unknown[]) => {
        this.gate(`readFileSync ${name(a[0])}`);
        return (fs.readFileSync as (...x: unknown[]) => unknown)(...a);
      }) as IoBackend['readFileSync'],
      mkdirSync: ((p: fs.PathLike, o?: fs.MakeDirectoryOptions) => {
        this.gate(`mkdirSync ${name(p)}`);
        return fs.mkdirSync(p, o);
      }) as IoBackend['mkdirSync'],
      rmSync: (p, o) => {
        this.gate(`rmSync ${name(p)}`);
        fs.rmSync(p, o);
      },
      bootId: () => nodeIo.bootId(),
    };
    return io;
  }
}
