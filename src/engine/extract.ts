// Unpacks a downloaded .zip, .tar, .tar.gz or .tgz into a folder, all or nothing: entries go to a hidden
// folder beside the destination, which is renamed into place only once the whole archive was read and
// checked. A refused entry, a damaged archive or a zip bomb leaves no folder behind and the archive in place.
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import * as fs from './io';
import { DownloadError, invalidArg, osError } from './errors';
import { EntryNames, EXTRACT_MARKER } from './archiveEntries';
import { readArchive, type ArchiveFormat, type ArchiveSink } from './archiveReaders';
import { hashPrefix } from './integrity';

export { EXTRACT_MARKER } from './archiveEntries';

export const DEFAULT_MAX_RATIO = 200;
export const DEFAULT_MAX_BYTES = 10 * 1024 ** 3;
/** Below this many bytes written the ratio is not applied: a small archive of text legitimately packs well. */
const RATIO_FLOOR_BYTES = 1024 * 1024;

export interface ExtractOptions {
  /** Stop when the bytes written pass this many times the archive's size (default 200). */
  maxRatio?: number;
  /** Stop when the bytes written pass this many bytes (default 10 GiB). */
  maxBytes?: number;
  /** Archive bytes read so far, and the archive's size. */
  onProgress?: (bytesRead: number, bytesTotal: number) => void;
  signal?: AbortSignal;
}

export interface ExtractResult {
  folder: string;
  /** True when the folder already held this archive's contents (same sha256): nothing was done. */
  alreadyExtracted: boolean;
  files: number;
  bytes: number;
}

interface Marker {
  archive: string;
  sha256: string;
  extractedAt: string;
  files: number;
  bytes: number;
}

const FORMATS: [suffix: string, format: ArchiveFormat][] = [
  ['.tar.gz', 'tar'],
  ['.tgz', 'tar'],
  ['.tar', 'tar'],
  ['.zip', 'zip'],
];

/** The archive format a file name announces, or undefined when it is not one extractArchive() reads. */
export function archiveFormatOf(file: string): ArchiveFormat | undefined {
  const lower = file.toLowerCase();
  return FORMATS.find(([suffix]) => lower.endsWith(suffix))?.[1];
}

/** Beside the archive, named after it: /dl/tools-1.2.tar.gz → /dl/tools-1.2. */
export function defaultExtractFolder(archivePath: string): string {
  const lower = archivePath.toLowerCase();
  const suffix = FORMATS.find(([s]) => lower.endsWith(s))?.[0] ?? path.extname(archivePath);
  const base = path.basename(archivePath).slice(0, path.basename(archivePath).length - suffix.length);
  return path.join(path.dirname(archivePath), base || path.basename(archivePath) + '.contents');
}

export async function extractArchive(archivePath: string, folder?: string, options: ExtractOptions = {}): Promise<ExtractResult> {
  const label = path.basename(archivePath);
  const format = archiveFormatOf(archivePath);
  if (!format) {
    throw invalidArg(`'${label}' is not an archive that can be extracted: only .zip, .tar, .tar.gz and .tgz are (not .tar.xz, .tar.bz2 or .7z).`);
  }
  const target = path.resolve(folder ?? defaultExtractFolder(archivePath));
  const maxRatio = positiveOr(options.maxRatio, DEFAULT_MAX_RATIO, 'maxRatio');
  const maxBytes = positiveOr(options.maxBytes, DEFAULT_MAX_BYTES, 'maxBytes');

  const archive = await fs.open(archivePath, 'r').catch((e: unknown) => {
    throw osError(e, `Cannot open the archive '${label}'`);
  });
  let staging: string | undefined;
  try {
    const size = (await archive.stat()).size;
    const sha256 = (await hashPrefix(archive, size)).digest('hex');
    const existing = await readMarker(target);
    if (existing?.sha256 === sha256) {
      return { folder: target, alreadyExtracted: true, files: existing.files, bytes: existing.bytes };
    }
    // Our own earlier extraction of this archive (an older version of it) is replaced; anything else is not.
    const replacing = existing !== undefined && existing.archive === label;
    if (existing && !replacing) {
      throw new DownloadError('EEXIST', `Cannot extract '${label}' into '${target}': that folder holds the contents of '${existing.archive}'.`, {
        hresult: 0x800700b7,
        context: 'LOCAL_FILE',
      });
    }
    await checkReplaceable(target, replacing);
    options.signal?.throwIfAborted();

    await fs.mkdir(path.dirname(target), { recursive: true });
    staging = path.join(path.dirname(target), `.${path.basename(target)}.extract-${randomBytes(4).toString('hex')}`);
    await fs.mkdir(staging);
    const writer = new StagingWriter(staging, new EntryNames(label), Math.min(maxBytes, Math.max(maxRatio * size, RATIO_FLOOR_BYTES)), { label, maxRatio, maxBytes }, options.signal);
    let read = 0;
    try {
      await readArchive(format, archive, size, writer, (n) => {
        read = Math.min(size, read + n);
        options.onProgress?.(read, size);
      });
    } catch (e) {
      throw e instanceof DownloadError || options.signal?.aborted ? e : damaged(label, e);
    }
    await writer.createLinks();
    const marker: Marker = { archive: label, sha256, extractedAt: new Date().toISOString(), files: writer.files, bytes: writer.bytes };
    await fs.writeFile(path.join(staging, EXTRACT_MARKER), JSON.stringify(marker, null, 2) + '\n');
    options.onProgress?.(size, size);
    await putInPlace(staging, target, replacing);
    staging = undefined;
    return { folder: target, alreadyExtracted: false, files: writer.files, bytes: writer.bytes };
  } catch (e) {
    if (options.signal?.aborted && !(e instanceof DownloadError)) {
      throw new DownloadError('E_ABORT', `Extracting '${label}' was cancelled; nothing was extracted.`, { hresult: 0x80004004, context: 'LOCAL_FILE' });
    }
    throw e instanceof DownloadError ? e : osError(e, `Cannot extract '${label}'`);
  } finally {
    await archive.close().catch(() => undefined);
    if (staging) {
      await fs.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

function positiveOr(value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) {
    return fallback;
  }
  if (!(value > 0)) {
    throw invalidArg(`The extraction's ${what} must be a positive number, not ${value}.`);
  }
  return value;
}

function damaged(label: string, cause: unknown): DownloadError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new DownloadError('ERROR_INVALID_DATA', `Cannot extract '${label}': the archive is damaged or incomplete (${detail}). Nothing was extracted.`, {
    hresult: 0x8007000d,
    context: 'LOCAL_FILE',
    cause,
  });
}

async function readMarker(folder: string): Promise<Marker | undefined> {
  try {
    const m = JSON.parse(await fs.readFile(path.join(folder, EXTRACT_MARKER), 'utf8')) as Partial<Marker>;
    return typeof m.sha256 === 'string' ? { archive: String(m.archive), sha256: m.sha256, extractedAt: String(m.extractedAt), files: Number(m.files) || 0, bytes: Number(m.bytes) || 0 } : undefined;
  } catch {
    return undefined;
  }
}

/** A folder this extension filled (it has our marker) may be replaced; an empty one too; anything else is the user's. */
async function checkReplaceable(target: string, ours: boolean): Promise<void> {
  if (ours) {
    return;
  }
  const entries = await fs.readdir(target).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') {
      return [];
    }
    if (e.code === 'ENOTDIR') {
      throw new DownloadError('EEXIST', `Cannot extract into '${target}': a file of that name exists.`, { hresult: 0x800700b7, context: 'LOCAL_FILE' });
    }
    throw osError(e, `Cannot read the folder '${target}'`);
  });
  if (entries.length > 0) {
    throw new DownloadError('EEXIST', `Cannot extract into '${target}': the folder exists and holds files that were not extracted by Managed Downloads.`, {
      hresult: 0x800700b7,
      context: 'LOCAL_FILE',
    });
  }
}

async function putInPlace(staging: string, target: string, replacingOurs: boolean): Promise<void> {
  if (!replacingOurs) {
    await fs.rmdir(target).catch(() => undefined); // an empty folder left there
    await fs.rename(staging, target);
    return;
  }
  // The previous extraction moves aside first, so the folder is always either the old contents or the new.
  const old = path.join(path.dirname(target), `.${path.basename(target)}.old-${randomBytes(4).toString('hex')}`);
  await fs.rename(target, old);
  try {
    await fs.rename(staging, target);
  } catch (e) {
    await fs.rename(old, target).catch(() => undefined);
    throw e;
  }
  await fs.rm(old, { recursive: true, force: true }).catch(() => undefined);
}

/** Writes checked entries under the staging folder; links are made last, after every name is known. */
class StagingWriter implements ArchiveSink {
  files = 0;
  bytes = 0;
  private readonly symlinks: { name: string; segments: string[]; target: string }[] = [];
  private readonly hardLinks: { segments: string[]; source: string[] }[] = [];

  constructor(
    private readonly root: string,
    private readonly names: EntryNames,
    private readonly byteLimit: number,
    private readonly bounds: { label: string; maxRatio: number; maxBytes: number },
    private readonly signal: AbortSignal | undefined,
  ) {}

  private at(segments: readonly string[]): string {
    return path.join(this.root, ...segments);
  }

  async directory(name: string): Promise<void> {
    const segments = this.names.register(name, 'directory');
    await fs.mkdir(this.at(segments), { recursive: true }).catch((e: unknown) => {
      throw osError(e, `Cannot create the folder '${name}'`);
    });
  }

  async file(name: string, executable: boolean, body: AsyncIterable<Buffer>): Promise<void> {
    const segments = this.names.register(name, 'file');
    // A disk error is the disk's, not a damaged archive's: it is reported as such.
    await this.writeFile(segments, executable, body).catch((e: unknown) => {
      throw e instanceof DownloadError || !(e as NodeJS.ErrnoException).syscall ? e : osError(e, `Cannot write '${name}'`);
    });
    this.files++;
  }

  private async writeFile(segments: string[], executable: boolean, body: AsyncIterable<Buffer>): Promise<void> {
    const dest = this.at(segments);
    // No link exists yet in the staging folder (they come last), so these folders are real ones.
    await fs.mkdir(path.dirname(dest), { recursive: true });
    const out = await fs.open(dest, 'wx', executable ? 0o755 : 0o644);
    try {
      for await (const chunk of body) {
        this.signal?.throwIfAborted();
        // What is written counts, not what the archive declares: a bomb lies about its sizes.
        this.bytes += chunk.length;
        if (this.bytes > this.byteLimit) {
          throw this.tooLarge();
        }
        await out.write(chunk);
      }
    } finally {
      await out.close();
    }
  }

  symlink(name: string, target: string): void {
    this.symlinks.push({ name, segments: this.names.register(name, 'symlink'), target });
  }

  hardLink(name: string, target: string): void {
    const source = this.names.hardLinkSource(name, target);
    this.hardLinks.push({ segments: this.names.register(name, 'file'), source });
  }

  unsupported(name: string, what: string): never {
    throw this.names.refuse(name, what);
  }

  async createLinks(): Promise<void> {
    for (const link of this.symlinks) {
      this.names.checkSymlinkTarget(link.name, link.segments, link.target);
    }
    for (const link of this.hardLinks) {
      await fs.mkdir(path.dirname(this.at(link.segments)), { recursive: true });
      await fs.link(this.at(link.source), this.at(link.segments));
      this.files++;
    }
    for (const link of this.symlinks) {
      await fs.mkdir(path.dirname(this.at(link.segments)), { recursive: true });
      await fs.symlink(link.target, this.at(link.segments));
      this.files++;
    }
  }

  private tooLarge(): DownloadError {
    const { label, maxRatio, maxBytes } = this.bounds;
    return new DownloadError(
      'ERROR_FILE_TOO_LARGE',
      `Stopped extracting '${label}': it expands to more than ${formatBytes(this.byteLimit)} (the bounds are ${maxRatio}× the archive's size and ${formatBytes(maxBytes)}), which looks like a zip bomb. Nothing was extracted.`,
      { hresult: 0x800700df, context: 'LOCAL_FILE' },
    );
  }
}

function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${n.toFixed(1)} ${units[i]}`;
}
