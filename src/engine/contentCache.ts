// The content cache (contract §9): a folder of files named by their sha256, shared by several processes and
// machines (a network share). Entries are written under a temporary name, flushed and then linked or renamed
// into place, so a reader never sees half an entry; every read re-hashes the entry, and one that does not match
// its name (truncated, corrupted, edited through a hard link) is deleted, never placed. Least recently used
// entries go first when the folder grows past its size: a use touches the entry's mtime (atime is unreliable
// with noatime/relatime mounts).
import { createHash, randomBytes } from 'node:crypto';
import * as path from 'node:path';
import * as fs from './io';
import { constants as FS } from './io';
import { fileChunks, hashFile } from './fileHash';
import type { FileRecord } from './records';

export interface CacheSettings {
  folder: string;
  maxSizeBytes: number;
  enabled: boolean;
}

/** Temporaries of a writer that died are swept after this long (another machine may still be writing). */
const STALE_TEMPORARY_MS = 24 * 3_600_000;
const SHA256_HEX = /^[0-9a-f]{64}$/;

type Log = (message: string) => void;

export class ContentCache {
  private readonly pending = new Set<Promise<void>>();

  constructor(
    readonly folder: string,
    readonly maxSizeBytes: number,
    private readonly log: Log = () => undefined,
  ) {}

  /** `<folder>/sha256/ab/abcdef…`: two hex digits of fan-out keep folders small on every file system. */
  entryPath(sha256: string): string {
    if (!SHA256_HEX.test(sha256)) {
      throw new Error(`not a lower-case sha256: ${sha256}`);
    }
    return path.join(this.folder, 'sha256', sha256.slice(0, 2), sha256);
  }

  /** The entry's path when it holds exactly the bytes named (re-hashed now), else undefined (a bad entry is deleted). */
  async lookup(sha256: string): Promise<string | undefined> {
    const entry = this.entryPath(sha256);
    const actual = await hashFile(entry).catch(() => undefined);
    if (actual === undefined) {
      return undefined;
    }
    if (actual !== sha256) {
      await this.discard(entry, `its bytes hash to ${actual}`);
      return undefined;
    }
    await this.touch(entry);
    return entry;
  }

  /**
   * Puts the entry's bytes at `target` (replacing what is there): a hard link when the cache is on the same file
   * system, else a copy. Either way the bytes placed are hashed again before they replace `target`, so an entry
   * changed between the check and the link is never placed. Returns the size placed, or undefined on a miss.
   */
  async placeInto(sha256: string, target: string): Promise<number | undefined> {
    const entry = this.entryPath(sha256);
    const side = `${target}.${randomBytes(4).toString('hex')}.fromcache`;
    try {
      let linked = true;
      try {
        await fs.link(entry, side);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          return undefined;
        }
        if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') {
          throw e;
        }
        linked = false;
      }
      const copied = linked ? await hashFile(side) : await copyHashing(entry, side).catch(() => undefined);
      if (copied === undefined) {
        return undefined;
      }
      if (copied !== sha256) {
        await this.discard(entry, `its bytes hash to ${copied}`);
        return undefined;
      }
      const size = (await fs.stat(side)).size;
      await fs.rename(side, target);
      await this.touch(entry);
      return size;
    } finally {
      await fs.unlink(side).catch(() => undefined);
    }
  }

  /**
   * Adds `file` as the entry `sha256` (in the background: `idle()` waits for it). Best effort: a failure is only
   * logged. An existing entry is left alone; a file whose bytes do not hash to `sha256` is not added.
   */
  add(sha256: string, file: string): void {
    const p = this.addNow(sha256, file)
      .catch((e) => this.log(`The content cache could not keep ${file}: ${(e as Error).message}`))
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Resolves when every add() started so far has finished. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) {
      await Promise.all([...this.pending]);
    }
  }

  async addNow(sha256: string, file: string): Promise<void> {
    const entry = this.entryPath(sha256);
    if (await exists(entry)) {
      await this.touch(entry);
      return;
    }
    await fs.mkdir(path.dirname(entry), { recursive: true });
    const temporary = path.join(path.dirname(entry), `.${sha256}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const actual = await copyHashing(file, temporary);
      if (actual !== sha256) {
        this.log(`The content cache did not keep ${file}: its bytes hash to ${actual}, not ${sha256}.`);
        return;
      }
      // link() refuses to replace an entry another writer put there meanwhile; rename is the fallback where a
      // file system has no hard links (its replacement is atomic, and both hold the same bytes).
      try {
        await fs.link(temporary, entry);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EEXIST') {
          await fs.rename(temporary, entry);
        }
      }
    } finally {
      await fs.unlink(temporary).catch(() => undefined);
    }
    await this.evict().catch((e) => this.log(`The content cache could not evict old entries: ${(e as Error).message}`));
  }

  /** Deletes least recently used entries until the cache fits in maxSizeBytes; sweeps dead writers' temporaries. */
  async evict(): Promise<void> {
    const entries: { file: string; size: number; used: number }[] = [];
    const root = path.join(this.folder, 'sha256');
    const now = Date.now();
    for (const fan of await fs.readdir(root).catch(() => [] as string[])) {
      const dir = path.join(root, fan);
      for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
        const file = path.join(dir, name);
        const st = await fs.lstat(file).catch(() => undefined);
        if (!st?.isFile()) {
          continue;
        }
        if (SHA256_HEX.test(name)) {
          entries.push({ file, size: st.size, used: st.mtimeMs });
        } else if (name.endsWith('.tmp') && now - st.mtimeMs > STALE_TEMPORARY_MS) {
          await fs.unlink(file).catch(() => undefined);
        }
      }
    }
    let total = entries.reduce((n, e) => n + e.size, 0);
    entries.sort((a, b) => a.used - b.used);
    for (const e of entries) {
      if (total <= this.maxSizeBytes) {
        break;
      }
      await fs.unlink(e.file).catch(() => undefined);
      total -= e.size;
      this.log(`The content cache evicted ${path.basename(e.file)} (${e.size} bytes, least recently used).`);
    }
  }

  private async touch(entry: string): Promise<void> {
    const t = new Date();
    await fs.utimes(entry, t, t).catch(() => undefined);
  }

  private async discard(entry: string, why: string): Promise<void> {
    this.log(`The content cache entry ${path.basename(entry)} is corrupt (${why}); it was deleted.`);
    await fs.unlink(entry).catch(() => undefined);
  }
}

async function exists(p: string): Promise<boolean> {
  return (await fs.lstat(p).catch(() => undefined)) !== undefined;
}

/** Copies `from` to a new file `to` (flushed to disk), hashing the bytes as they go; returns their sha256. */
async function copyHashing(from: string, to: string): Promise<string> {
  const src = await fs.open(from, FS.O_RDONLY | (FS.O_NOFOLLOW ?? 0));
  try {
    const dst = await fs.open(to, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL | (FS.O_NOFOLLOW ?? 0), 0o644);
    try {
      const hash = createHash('sha256');
      for await (const chunk of fileChunks(src)) {
        hash.update(chunk);
        let done = 0;
        while (done < chunk.length) {
          done += (await dst.write(chunk, done, chunk.length - done)).bytesWritten;
        }
      }
      await dst.sync();
      return hash.digest('hex');
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}

/**
 * Before a file with a known sha256 is requested: a cache hit becomes its transferred bytes (the temporary file),
 * without any request. Returns whether it did. A cache that cannot be read is a miss, never a failure.
 */
export async function fillFromCache(cache: ContentCache, file: FileRecord, log: Log): Promise<boolean> {
  if (!file.sha256 || file.transferred || file.completed) {
    return false;
  }
  const size = await cache.placeInto(file.sha256, file.temporaryPath).catch((e) => {
    log(`${file.localPath}: the content cache could not be read (${(e as Error).message}); downloading instead.`);
    return undefined;
  });
  if (size === undefined) {
    return false;
  }
  Object.assign(file, { bytesTotal: size, durableBytes: size, transferred: true, bytesFromCache: size });
  Object.assign(file, { segments: undefined, bootId: undefined, etag: undefined, lastModified: undefined });
  log(`${file.localPath}: ${size} bytes placed from the content cache, nothing downloaded.`);
  return true;
}
