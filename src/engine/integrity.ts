// Checksums: accept hex or SRI ("sha256-<base64>"), keep lower-case hex; re-hash a prefix after a restart.
import { createHash, type Hash } from 'node:crypto';
import * as fs from './io';
import { invalidArg } from './errors';

/** Normalises a sha256 given as 64 hex digits or an SRI string (the strongest sha256 entry is used). */
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
  for (const token of v.split(/\s+/)) {
    const m = /^sha256-([A-Za-z0-9+/]{43}=)(\?.*)?$/.exec(token);
    if (m) {
      return Buffer.from(m[1], 'base64').toString('hex');
    }
  }
  throw invalidArg(`'${v.length > 80 ? v.slice(0, 77) + '…' : v}' is not a sha256: give 64 hex digits or an SRI value such as sha256-<base64>.`);
}

/** Hashes the first `length` bytes of a file (after an engine restart the in-memory hash state is gone). */
export async function hashPrefix(file: fs.FileHandle, length: number): Promise<Hash> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  let pos = 0;
  while (pos < length) {
    const { bytesRead } = await file.read(buf, 0, Math.min(buf.length, length - pos), pos);
    if (bytesRead === 0) {
      break;
    }
    hash.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return hash;
}
