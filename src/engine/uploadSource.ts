// The local file of an upload job: the checks when it is added, and, once its upload started, the proof that it
// has not changed (BG_E_LOCAL_FILE_CHANGED: the server must not end up with a mix of two versions).
import * as fs from './io';
import { constants as FS } from './io';
import * as path from 'node:path';
import { BITS_HRESULTS } from './bitsPackets';
import { DownloadError, invalidArg, osError, redactUrl } from './errors';
import type { FileRecord, UploadState } from './records';
import { checkRemoteUrl, isInside } from './validation';

// ------------------------------------------------------------------------------------------------ adding the file

/** Checks what addFile got for an upload job and builds its file record (the local file must exist and be readable). */
export async function newUploadFile(f: unknown, allowedRoots?: readonly string[]): Promise<FileRecord> {
  if (!f || typeof f !== 'object') {
    throw invalidArg('An upload needs a remoteUrl (the BITS upload URL) and a localPath (the file to send).');
  }
  const { remoteUrl, localPath, sha256 } = f as { remoteUrl?: unknown; localPath?: unknown; sha256?: unknown };
  checkUploadUrl(remoteUrl);
  if (sha256 !== undefined) {
    throw invalidArg('A sha256 checksum applies to downloads only; an upload sends the local file as it is.');
  }
  const src = await checkUploadSource(localPath, allowedRoots);
  return {
    remoteUrl: remoteUrl as string,
    localPath: src.path,
    // An upload writes nothing locally: there is no temporary file.
    temporaryPath: '',
    bytesTotal: src.size,
    durableBytes: 0,
    transferred: false,
    completed: false,
    restarts: 0,
    upload: {},
  };
}

function checkUploadUrl(url: unknown): void {
  if (typeof url === 'string') {
    let u: URL | undefined;
    try {
      u = new URL(url);
    } catch {
      u = undefined;
    }
    if (u && u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw invalidArg(`'${redactUrl(url)}' uses the ${u.protocol.replace(':', '')} scheme; a BITS upload needs an http or https URL.`);
    }
  }
  checkRemoteUrl(url);
}

/** The local file of an upload as written: an absolute, normalised path without NUL (nothing on disk is looked at). */
export function checkUploadPathSyntax(p: unknown): string {
  if (typeof p !== 'string' || p === '') {
    throw invalidArg('The local file to upload is empty (no path given).');
  }
  if (p.includes('\0')) {
    throw invalidArg(`The local file to upload '${shorten(p.replace(/\0/g, '\\0'))}' contains a NUL character.`);
  }
  if (!path.isAbsolute(p)) {
    throw invalidArg(`The local file to upload '${shorten(p)}' is a relative path; give an absolute path.`);
  }
  if (path.normalize(p) !== p || p.endsWith(path.sep)) {
    throw invalidArg(`The local file to upload '${shorten(p)}' is not normalised (it contains '..', '.', doubled or trailing separators).`);
  }
  return p;
}

/** The local file of an upload: an absolute path to an existing, readable regular file (inside the allowed roots, if any). */
export async function checkUploadSource(given: unknown, allowedRoots?: readonly string[]): Promise<{ path: string; size: number }> {
  const p = checkUploadPathSyntax(given);
  let st;
  try {
    st = await fs.stat(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw osError(e, code === 'ENOENT' || code === 'ENOTDIR' ? `The local file to upload '${p}' does not exist` : `The local file to upload '${p}' cannot be read`);
  }
  if (!st.isFile()) {
    throw invalidArg(`The local path '${p}' is ${st.isDirectory() ? 'a folder' : 'not a regular file'}; an upload sends one regular file.`);
  }
  try {
    await fs.access(p, FS.R_OK);
  } catch (e) {
    throw osError(e, `The local file to upload '${p}' cannot be read`);
  }
  if (allowedRoots && allowedRoots.length > 0) {
    const real = await fs.realpath(p);
    const inside = await Promise.all(allowedRoots.map(async (root) => isInside(real, await fs.realpath(root).catch(() => path.resolve(root)))));
    if (!inside.includes(true)) {
      throw invalidArg(`The local file to upload '${p}' is outside the allowed folders (${allowedRoots.join(', ')}).`);
    }
  }
  return { path: p, size: st.size };
}

function shorten(s: string): string {
  return s.length > 120 ? s.slice(0, 117) + '…' : s;
}

// ------------------------------------------------------------------------------------------------ while it uploads

export interface SourceIdentity {
  size: number;
  mtimeMs: number;
  ino: number;
}

export function identity(st: { size: number; mtimeMs: number; ino: number }): SourceIdentity {
  return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
}

export async function statSource(f: FileRecord): Promise<SourceIdentity> {
  try {
    return identity(await fs.stat(f.localPath));
  } catch (e) {
    throw sourceError(f, e);
  }
}

/** The local file went away or became unreadable: a change if the upload had started, else the OS error. */
export function sourceError(f: FileRecord, e: unknown): DownloadError {
  const code = (e as NodeJS.ErrnoException).code;
  if (f.upload?.source && (code === 'ENOENT' || code === 'ENOTDIR')) {
    return localFileChanged(f, 'it was deleted or moved');
  }
  return osError(e, `Cannot read the local file to upload '${f.localPath}'`);
}

export function assertUnchanged(f: FileRecord, now: SourceIdentity): void {
  const was: UploadState['source'] = f.upload?.source;
  if (!was) {
    return;
  }
  if (now.size !== was.size) {
    throw localFileChanged(f, `its size went from ${was.size} to ${now.size} bytes`);
  }
  if (now.mtimeMs !== was.mtimeMs) {
    throw localFileChanged(f, `it was modified at ${new Date(now.mtimeMs).toISOString()}`);
  }
  if (now.ino !== was.ino) {
    throw localFileChanged(f, 'it was replaced by another file');
  }
}

function localFileChanged(f: FileRecord, why: string): DownloadError {
  return new DownloadError('BG_E_LOCAL_FILE_CHANGED', `The local file '${f.localPath}' changed after its upload started (${why}); the upload cannot continue. Cancel the job and upload the file again.`, {
    hresult: BITS_HRESULTS.BG_E_LOCAL_FILE_CHANGED,
    context: 'LOCAL_FILE',
  });
}

/** Bytes start..start+length-1 of the local file; a file that ends before them has changed. */
export async function readAt(fh: fs.FileHandle, f: FileRecord, start: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(buf, got, length - got, start + got));
    } catch (e) {
      throw osError(e, `Cannot read the local file to upload '${f.localPath}'`);
    }
    if (n === 0) {
      throw localFileChanged(f, `it ends before byte ${start + length}`);
    }
    got += n;
  }
  return buf;
}
