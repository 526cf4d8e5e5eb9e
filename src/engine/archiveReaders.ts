// Reads a .zip (yauzl) or a .tar / .tar.gz (tar's parser) entry by entry and hands each to a sink, which
// decides what is written. Streaming: neither the archive nor an entry is ever held in memory whole.
import { Readable } from 'node:stream';
import type { Entry, ZipFile } from 'yauzl';
import type { ReadEntry } from 'tar';
import type { FileHandle } from './io';
import { archiveLibs } from './archiveLibs';

export type ArchiveFormat = 'zip' | 'tar';

/** What a reader reports; every call may throw to stop the extraction. */
export interface ArchiveSink {
  directory(name: string): Promise<void>;
  file(name: string, executable: boolean, body: AsyncIterable<Buffer>): Promise<void>;
  symlink(name: string, target: string): void;
  hardLink(name: string, target: string): void;
  /** An entry that is not a file, folder or link (device, FIFO, socket, ...): refused. */
  unsupported(name: string, what: string): never;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const MAX_LINK_TARGET = 4096;
const READ_CHUNK = 64 * 1024;

/** Reads the archive in `handle` into `sink`; `onRead` gets the number of archive bytes each read consumed. */
export async function readArchive(format: ArchiveFormat, handle: FileHandle, size: number, sink: ArchiveSink, onRead: (bytes: number) => void): Promise<void> {
  if (format === 'zip') {
    await readZip(handle, size, sink, onRead);
  } else {
    await readTar(handle, size, sink, onRead);
  }
}

async function* readRange(handle: FileHandle, start: number, end: number, onRead: (bytes: number) => void): AsyncGenerator<Buffer> {
  for (let pos = start; pos < end; ) {
    const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, end - pos));
    const { bytesRead } = await handle.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) {
      throw new Error('unexpected end of file');
    }
    onRead(bytesRead);
    pos += bytesRead;
    yield buf.subarray(0, bytesRead);
  }
}

async function readZip(handle: FileHandle, size: number, sink: ArchiveSink, onRead: (bytes: number) => void): Promise<void> {
  const { yauzl } = archiveLibs();
  // Reads through our own file handle (io.ts), and leaves closing it to the caller.
  class HandleReader extends yauzl.RandomAccessReader {
    _readStreamForRange(start: number, end: number): Readable {
      return Readable.from(readRange(handle, start, end, onRead), { objectMode: false });
    }
    close(callback: (err: Error | null) => void): void {
      callback(null);
    }
  }
  // decodeStrings off: yauzl would reject unsafe names with its own message; EntryNames names them instead.
  const zip = await yauzl.fromRandomAccessReaderPromise(new HandleReader(), size, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true });
  try {
    await new Promise<void>((resolve, reject) => {
      zip.on('error', reject);
      zip.on('end', () => resolve());
      zip.on('entry', (entry: Entry) => {
        zipEntry(zip, entry, sink).then(() => zip.readEntry(), reject);
      });
      zip.readEntry();
    });
  } finally {
    zip.close();
  }
}

async function zipEntry(zip: ZipFile, entry: Entry, sink: ArchiveSink): Promise<void> {
  const { yauzl } = archiveLibs();
  // Backslashes become '/' here (strictFileNames off), so '..\\x' is seen as leaving the folder.
  const name = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, false);
  const madeOnUnix = entry.versionMadeBy >> 8 === 3;
  const mode = madeOnUnix ? entry.externalFileAttributes >>> 16 : 0;
  const type = mode & S_IFMT;
  if (name.endsWith('/') || type === S_IFDIR) {
    await sink.directory(name);
  } else if (type === S_IFLNK) {
    sink.symlink(name, await smallText(await zip.openReadStreamPromise(entry)));
  } else if (type !== 0 && type !== S_IFREG) {
    sink.unsupported(name, 'is a device, FIFO or socket entry');
  } else {
    await sink.file(name, (mode & 0o111) !== 0, await zip.openReadStreamPromise(entry));
  }
}

/** A link target stored as an entry's content; bounded, a hostile archive could make it endless. */
async function smallText(body: Readable): Promise<string> {
  const parts: Buffer[] = [];
  let length = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > MAX_LINK_TARGET) {
      body.destroy();
      throw new Error('a link target is longer than 4096 bytes');
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts).toString('utf8');
}

async function readTar(handle: FileHandle, size: number, sink: ArchiveSink, onRead: (bytes: number) => void): Promise<void> {
  const { TarParser } = archiveLibs();
  // strict: a truncated or malformed archive is an error, not a warning. gzip is recognised by its header.
  // Its own ratio check is off: the sink counts the bytes actually written against the caller's bounds.
  const parser = new TarParser({ strict: true, maxDecompressionRatio: Infinity });
  let failure: Error | undefined;
  let stop!: (e: unknown) => void;
  const stopped = new Promise<never>((_, reject) => {
    stop = (e) => {
      failure ??= e instanceof Error ? e : new Error(String(e));
      reject(failure);
    };
  });
  stopped.catch(() => undefined);
  let entries = Promise.resolve();
  parser.on('entry', (entry: ReadEntry) => {
    // One entry at a time: the parser waits (write() returns false) while an entry's body is not read.
    entries = entries.then(async () => {
      if (failure !== undefined) {
        entry.resume();
        return;
      }
      try {
        await tarEntry(entry, sink, stopped);
      } catch (e) {
        entry.resume();
        stop(e);
      }
    });
  });
  parser.on('error', stop);
  const ended = new Promise<void>((resolve) => parser.on('end', () => resolve()));
  for await (const chunk of readRange(handle, 0, size, onRead)) {
    if (failure !== undefined) {
      break;
    }
    if (!parser.write(chunk)) {
      await Promise.race([new Promise((resolve) => parser.once('drain', resolve)), stopped]);
    }
  }
  if (failure === undefined) {
    parser.end();
    await Promise.race([ended, stopped]);
    await entries;
  }
  if (failure !== undefined) {
    // The entry being written has let go of its file once this settles.
    await entries;
    throw failure;
  }
}

/**
 * An entry's body that ends with an error when the parser stops: a truncated archive never ends the entry being
 * read, and its writer would wait for ever with its file open.
 */
async function* untilStopped(entry: ReadEntry, stopped: Promise<never>): AsyncGenerator<Buffer> {
  const chunks = (entry as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  for (;;) {
    const next = await Promise.race([chunks.next(), stopped]);
    if (next.done) {
      return;
    }
    yield next.value;
  }
}

async function tarEntry(entry: ReadEntry, sink: ArchiveSink, stopped: Promise<never>): Promise<void> {
  const name = entry.path;
  switch (entry.type) {
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
      await sink.file(name, ((entry.mode ?? 0) & 0o111) !== 0, untilStopped(entry, stopped));
      return;
    case 'Directory':
    case 'GNUDumpDir':
      entry.resume();
      await sink.directory(name);
      return;
    case 'SymbolicLink':
      entry.resume();
      sink.symlink(name, entry.linkpath ?? '');
      return;
    case 'Link':
      entry.resume();
      sink.hardLink(name, entry.linkpath ?? '');
      return;
    case 'CharacterDevice':
    case 'BlockDevice':
    case 'FIFO':
      sink.unsupported(name, 'is a device or FIFO entry');
      return;
    default:
      sink.unsupported(name, `is an entry of a kind that is not extracted (${entry.type})`);
  }
}
