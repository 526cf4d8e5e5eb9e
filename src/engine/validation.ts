// Checks on everything a caller hands the engine, so bad input is refused up front with a message naming it.
import * as fs from './io';
import * as path from 'node:path';
import { DownloadError, invalidArg, osError, redactUrl } from './errors';

export const MAX_URL_LENGTH = 8192;
export const MAX_NAME_LENGTH = 256;
export const MAX_DESCRIPTION_LENGTH = 1024;

const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers the engine owns: a caller setting them would break resume, framing or validation. */
const ENGINE_HEADERS = new Set([
  'host', 'range', 'if-range', 'if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since',
  'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'accept-encoding', 'expect',
  // Proxy credentials belong in the proxy URL (undici's ProxyAgent refuses the header, and it must never reach an origin).
  'proxy-authorization', 'proxy-connection',
]);

export function checkRemoteUrl(url: unknown, allowedSchemes: readonly string[] = ['http:', 'https:']): URL {
  if (typeof url !== 'string' || url.trim() === '') {
    throw invalidArg('The remote URL is empty.');
  }
  if (url.length > MAX_URL_LENGTH) {
    throw invalidArg(`The remote URL is ${url.length} characters long; at most ${MAX_URL_LENGTH} are allowed.`);
  }
  if (/[\0\r\n]/.test(url)) {
    throw invalidArg('The remote URL contains a control character (NUL, CR or LF).');
  }
  // Messages name the URL redacted: it may carry a password or a signature (worked out only for a message).
  const shown = (): string => redactUrl(url);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw invalidArg(`'${shown()}' is not a valid URL.`);
  }
  if (!allowedSchemes.includes(u.protocol)) {
    throw invalidArg(`'${shown()}' uses the ${u.protocol.replace(':', '')} scheme; only ${allowedSchemes.map((s) => s.replace(':', '')).join(' and ')} URLs can be downloaded.`);
  }
  if (!u.hostname) {
    throw invalidArg(`'${shown()}' has no host.`);
  }
  if (urlCredentials(u)) {
    // They would sit in the job store in clear, and are not sent anyway (fetch drops them).
    throw invalidArg(`'${shown()}' contains a user name or password; credentials are not accepted in URLs. Pass them as a custom Authorization header instead (it is kept in the header vault, not in the job list).`);
  }
  return u;
}

/** A hostname without the brackets URL.hostname puts around an IPv6 literal (node:http and NO_PROXY entries want it bare). */
export function bareHostname(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** Whether a URL carries user info (user:password@host). */
export function urlCredentials(u: URL): boolean {
  return u.username !== '' || u.password !== '';
}

export function checkDisplayName(name: unknown, what = 'display name'): string {
  if (typeof name !== 'string' || name.trim() === '') {
    throw invalidArg(`The ${what} is empty.`);
  }
  if (name.length > MAX_NAME_LENGTH) {
    throw invalidArg(`The ${what} is ${name.length} characters long; at most ${MAX_NAME_LENGTH} are allowed.`);
  }
  if (name.includes('\0')) {
    throw invalidArg(`The ${what} contains a NUL character.`);
  }
  return name;
}

export function checkDescription(d: unknown): string {
  if (d === undefined) {
    return '';
  }
  if (typeof d !== 'string' || d.length > MAX_DESCRIPTION_LENGTH || d.includes('\0')) {
    throw invalidArg(`The description must be text of at most ${MAX_DESCRIPTION_LENGTH} characters.`);
  }
  return d;
}

/** A local path must be absolute, normalised, free of NULs and name a file (not a folder) with a portable name. */
export function checkLocalPathSyntax(p: unknown): string {
  if (typeof p !== 'string' || p === '') {
    throw invalidArg('The local path is empty.');
  }
  if (p.includes('\0')) {
    throw invalidArg(`The local path '${shorten(p.replace(/\0/g, '\\0'))}' contains a NUL character.`);
  }
  if (!path.isAbsolute(p)) {
    throw invalidArg(`The local path '${shorten(p)}' is relative; give an absolute path.`);
  }
  if (path.normalize(p) !== p || p.endsWith(path.sep)) {
    throw invalidArg(`The local path '${shorten(p)}' is not normalised (it contains '..', '.', doubled or trailing separators).`);
  }
  const base = path.basename(p);
  if (base === '' || base === '.' || base === '..') {
    throw invalidArg(`The local path '${shorten(p)}' does not name a file.`);
  }
  if (Buffer.byteLength(base) > 255 - 20) {
    throw invalidArg(`The file name '${shorten(base)}' is too long (leave room for the temporary file's name).`);
  }
  if (WINDOWS_RESERVED.test(base) || /[<>:"|?*\\]/.test(base) || /[. ]$/.test(base) || /[\x01-\x1f]/.test(base)) {
    throw invalidArg(`The file name '${shorten(base)}' is not portable (reserved on Windows, or it contains < > : " | ? * \\ or control characters, or ends with a dot or space).`);
  }
  return p;
}

/** Checks the destination folder on disk: it exists, is a folder we may write, and stays inside the allowed roots. */
export async function checkLocalPathOnDisk(p: string, allowedRoots?: readonly string[]): Promise<void> {
  const dir = path.dirname(p);
  // The four look-ups are independent (stat and access follow links as realpath does): they overlap, and their
  // answers are judged in the order below, so the error is the same as when they ran one after another.
  const settled = <T>(q: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> =>
    q.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));
  const [real, dirStat, writable, existing] = await Promise.all([
    settled(fs.realpath(dir)),
    settled(fs.stat(dir)),
    settled(fs.access(dir, fs.constants.W_OK)),
    fs.lstat(p).catch(() => undefined),
  ]);
  let realDir: string;
  try {
    realDir = valueOf(real);
    if (!valueOf(dirStat).isDirectory()) {
      throw invalidArg(`The folder '${dir}' of '${p}' is not a folder.`);
    }
    valueOf(writable);
  } catch (e) {
    if (e instanceof DownloadError) {
      throw e;
    }
    const code = (e as NodeJS.ErrnoException).code;
    throw osError(e, code === 'ENOENT' ? `The folder '${dir}' of '${p}' does not exist` : `The folder '${dir}' of '${p}' cannot be written`);
  }
  if (existing) {
    checkExistingKind(p, existing);
  }
  if (!(await insideRoots(realDir, p, allowedRoots))) {
    throw invalidArg(`The local path '${p}' is outside the allowed folders (${allowedRoots!.join(', ')}).`);
  }
}

function valueOf<T>(r: { ok: true; value: T } | { ok: false; error: unknown }): T {
  if (!r.ok) {
    throw r.error;
  }
  return r.value;
}

/** What may already be at a destination: only a regular file (then Complete refuses, or replaces it when allowed). */
export function checkExistingKind(p: string, what: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): void {
  if (what.isDirectory()) {
    throw invalidArg(`The local path '${p}' is an existing folder.`);
  }
  if (what.isSymbolicLink()) {
    throw invalidArg(`The local path '${p}' is a symbolic link; the engine will not write through it.`);
  }
  if (!what.isFile()) {
    throw invalidArg(`The local path '${p}' is a device, FIFO or socket, not a regular file; the engine will not replace it.`);
  }
}

/** Whether `p`, whose folder resolves to `realDir`, is inside one of the allowed roots (also resolved); true without roots. */
async function insideRoots(realDir: string, p: string, allowedRoots?: readonly string[]): Promise<boolean> {
  if (!allowedRoots || allowedRoots.length === 0) {
    return true;
  }
  const target = path.join(realDir, path.basename(p));
  const inside = await Promise.all(allowedRoots.map(async (root) => isInside(target, await fs.realpath(root).catch(() => path.resolve(root)))));
  return inside.includes(true);
}

/**
 * The allowed roots again, just before the engine writes in `p`'s folder (a transfer starting, Complete):
 * checked at addFile, they could since have been escaped by swapping a folder on the way for a symbolic link.
 */
export async function checkStillInsideRoots(p: string, allowedRoots?: readonly string[]): Promise<void> {
  if (!allowedRoots || allowedRoots.length === 0) {
    return;
  }
  const dir = path.dirname(p);
  const realDir = await fs.realpath(dir).catch((e: unknown) => {
    throw osError(e, `The folder '${dir}' of '${p}' cannot be resolved`);
  });
  if (!(await insideRoots(realDir, p, allowedRoots))) {
    throw invalidArg(`The folder of '${p}' now leads to '${realDir}', outside the allowed folders (${allowedRoots.join(', ')}): was a folder on the way replaced by a link? Nothing was written there.`);
  }
}

export function isInside(target: string, root: string): boolean {
  const rel = path.relative(root, target);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

export function checkHeaders(headers: unknown): Record<string, string> {
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) {
    throw invalidArg('HTTP headers must be an object of names to values.');
  }
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers as Record<string, unknown>)) {
    if (!HEADER_NAME.test(name)) {
      throw invalidArg(`'${shorten(name)}' is not a valid HTTP header name.`);
    }
    if (ENGINE_HEADERS.has(name.toLowerCase())) {
      throw invalidArg(`The header '${name}' is managed by the engine and cannot be set.`);
    }
    if (typeof value !== 'string') {
      throw invalidArg(`The value of header '${name}' must be text.`);
    }
    if (/[\0\r\n]/.test(value)) {
      throw invalidArg(`The value of header '${name}' contains CR, LF or NUL (header injection refused).`);
    }
    if (value.length > 8192) {
      throw invalidArg(`The value of header '${name}' is longer than 8192 characters.`);
    }
    out[name] = value;
  }
  return out;
}

export function checkSeconds(value: unknown, what: string, floor: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 0xffffffff) {
    throw invalidArg(`The ${what} must be a number of seconds between 0 and 4294967295.`);
  }
  return Math.max(floor, Math.floor(value));
}

/** `.<name>.<jobid-prefix>.mdpart` beside the destination: hidden, recognisable and on the same file system. */
export function temporaryPathFor(localPath: string, jobId: string): string {
  return path.join(path.dirname(localPath), `.${path.basename(localPath)}.${jobId.slice(0, 8)}.mdpart`);
}

function shorten(s: string): string {
  return s.length > 120 ? s.slice(0, 117) + '…' : s;
}
