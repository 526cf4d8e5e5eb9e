// Checksums: accept hex sha256 or SRI ("sha256-<base64>", "sha384-…", "sha512-…"), keep lower-case hex; re-hash a
// prefix after a restart. The file record's `sha256` holds the expected digest: plain hex for sha256 (as stores
// always had it), "sha384:<hex>" or "sha512:<hex>" when an SRI string named a stronger algorithm.
import { createHash, type Hash } from 'node:crypto';
import * as fs from './io';
import { DownloadError, invalidArg } from './errors';
import { hashOpenFile } from './fileHash';

export type DigestAlgorithm = 'sha256' | 'sha384' | 'sha512';

/** Strongest last: SRI verifies with the strongest algorithm present (W3C SRI §3.3.3). */
const ALGORITHMS: readonly DigestAlgorithm[] = ['sha256', 'sha384', 'sha512'];
const DIGEST_BYTES: Record<DigestAlgorithm, number> = { sha256: 32, sha384: 48, sha512: 64 };

export interface ExpectedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

/**
 * Normalises an expected checksum given as 64 hex digits (sha256) or an SRI string. Of the SRI tokens, the
 * strongest algorithm present wins (sha512 > sha384 > sha256), the first token of that algorithm; tokens of
 * other algorithms are ignored, a malformed one of these three is refused (never a quiet fall back to a weaker one).
 */
export function parseSha256(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') {
    return undefined;
  }
  if (typeof value !== 'string') {
    throw invalidArg('The sha256 must be text: 64 hex digits or an SRI value such as sha256-<base64>.');
  }
  const v = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(v)) {
    return v.toLowerCase();
  }
  let best: ExpectedDigest | undefined;
  for (const token of v.split(/\s+/)) {
    const m = /^(sha256|sha384|sha512)-([^?]*)(\?.*)?$/.exec(token);
    if (!m) {
      continue;
    }
    const algorithm = m[1] as DigestAlgorithm;
    const bytes = Buffer.from(m[2], 'base64');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(m[2]) || bytes.length !== DIGEST_BYTES[algorithm] || bytes.toString('base64').replace(/=+$/, '') !== m[2].replace(/=+$/, '')) {
      throw invalidArg(`'${shorten(token)}' is not a valid ${algorithm} SRI value (${algorithm}-<base64 of ${DIGEST_BYTES[algorithm]} bytes>).`);
    }
    if (!best || ALGORITHMS.indexOf(algorithm) > ALGORITHMS.indexOf(best.algorithm)) {
      best = { algorithm, hex: bytes.toString('hex') };
    }
  }
  if (!best) {
    throw invalidArg(`'${shorten(v)}' is not a sha256 or SRI checksum: give 64 hex digits or an SRI value such as sha256-<base64> or sha512-<base64>.`);
  }
  return best.algorithm === 'sha256' ? best.hex : `${best.algorithm}:${best.hex}`;
}

/** The algorithm and hex digest of a normalised checksum (parseSha256's result, as the file record keeps it). */
export function expectedDigest(normalised: string): ExpectedDigest {
  const m = /^(sha384|sha512):([0-9a-f]+)$/.exec(normalised);
  return m ? { algorithm: m[1] as DigestAlgorithm, hex: m[2] } : { algorithm: 'sha256', hex: normalised };
}

/** A new hash of the file's expected algorithm. */
export function newHash(normalised: string | undefined): Hash {
  return createHash(normalised === undefined ? 'sha256' : expectedDigest(normalised).algorithm);
}

/** BG_E_VALIDATION_FAILED when `actualHex` is not the expected digest (the caller has deleted the bytes first). */
export function validationFailed(localPath: string, normalised: string, actualHex: string): DownloadError {
  const { algorithm, hex } = expectedDigest(normalised);
  return new DownloadError('BG_E_VALIDATION_FAILED', `The ${algorithm} of ${localPath} is ${actualHex}, not the expected ${hex}; the downloaded bytes were deleted.`, {
    context: 'REMOTE_FILE',
  });
}

/** Whether `actualHex` (of the expected algorithm) is the expected digest. */
export function digestMatches(normalised: string, actualHex: string): boolean {
  return expectedDigest(normalised).hex === actualHex;
}

/**
 * Hashes the first `length` bytes of a file (after an engine restart the in-memory hash state is gone), with the
 * algorithm of the expected checksum `normalised` (sha256 when none is given).
 */
export async function hashPrefix(file: fs.FileHandle, length: number, normalised?: string): Promise<Hash> {
  return hashOpenFile(file, newHash(normalised), length);
}

function shorten(s: string): string {
  return s.length > 80 ? s.slice(0, 77) + '…' : s;
}

/**
 * Whether the file at `p` holds exactly the bytes of this checksum (a normalised one, parseSha256's result).
 * False when it cannot be read, is not a regular file, or is a symbolic link (never followed).
 */
export async function fileMatchesDigest(p: string, normalised: string): Promise<boolean> {
  try {
    const fh = await fs.open(p, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0));
    try {
      const st = await fh.stat();
      return st.isFile() && digestMatches(normalised, (await hashPrefix(fh, st.size, normalised)).digest('hex'));
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
}
