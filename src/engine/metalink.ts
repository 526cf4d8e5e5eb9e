// Metalink (contract §8): RFC 5854 `.meta4` (urn:ietf:params:xml:ns:metalink) and the older Metalink 3
// `.metalink` (http://www.metalinker.org/). Each <file> gives a name, a size, hashes and URLs; we keep the
// http(s) URLs best first, the sha-256 and an SRI string of the strongest hash. The file is hostile input: a
// DOCTYPE is refused outright (saxes would not expand its entities anyway), the file and its number of entries
// are bounded, and a name that could leave the destination folder is refused with E_INVALIDARG naming the entry.
import * as path from 'node:path';
import { SaxesParser, type SaxesTagNS } from 'saxes';
import * as fs from './io';
import { invalidArg } from './errors';
import { parseSha256 } from './integrity';
import type { CreateJobOptions, Job, NewFile } from './types';

export const METALINK_MAX_BYTES = 16 * 1024 * 1024;
export const METALINK_MAX_FILES = 100_000;
const MAX_URLS_PER_FILE = 1_000;
const NS_META4 = 'urn:ietf:params:xml:ns:metalink';
const NS_V3 = 'http://www.metalinker.org/';

export interface MetalinkFile {
  /** Relative path (folders separated by '/'), checked: it stays inside the destination folder. */
  name: string;
  size?: number;
  /** Lower-case hex, when the Metalink gives a sha-256. */
  sha256?: string;
  /** The strongest hash given (sha-512 > sha-384 > sha-256) as an SRI string, e.g. `sha512-<base64>`. */
  integrity?: string;
  /** http(s) URLs, best first. */
  urls: string[];
}

const HASH_STRENGTH: Record<string, { rank: number; hexLength: number }> = {
  sha256: { rank: 1, hexLength: 64 },
  sha384: { rank: 2, hexLength: 96 },
  sha512: { rank: 3, hexLength: 128 },
};

interface Building {
  name: string;
  index: number;
  size?: number;
  hashes: Map<string, string>;
  urls: { url: string; rank: number; location?: string; order: number }[];
}

/** Parses a Metalink document; `location` (e.g. "de") puts that country's URLs first among equal priorities. */
export function parseMetalink(xml: string, o: { location?: string } = {}): MetalinkFile[] {
  if (Buffer.byteLength(xml) > METALINK_MAX_BYTES) {
    throw invalidArg(`The Metalink file is larger than ${METALINK_MAX_BYTES / 1024 / 1024} MiB.`);
  }
  const parser = new SaxesParser({ xmlns: true });
  const files: MetalinkFile[] = [];
  const names = new Set<string>();
  let ns: string | undefined;
  let current: Building | undefined;
  let text = '';
  let hashType: string | undefined;
  let urlAttrs: { rank: number; location?: string } | undefined;
  let depth = 0;
  let failure: Error | undefined;

  const attr = (tag: SaxesTagNS, name: string): string | undefined => tag.attributes[name]?.value;
  const entry = (b: Building): string => `Metalink entry ${b.index + 1} (${JSON.stringify(b.name)})`;

  parser.on('doctype', () => {
    throw invalidArg('The Metalink file declares a DOCTYPE; it is refused (entities are never expanded).');
  });
  parser.on('error', (e) => {
    throw invalidArg(`The Metalink file is not well-formed XML: ${e.message}`);
  });
  parser.on('opentag', (tag) => {
    depth++;
    text = '';
    if (depth === 1) {
      if (tag.local !== 'metalink' || (tag.uri !== NS_META4 && tag.uri !== NS_V3)) {
        throw invalidArg(`This is not a Metalink file: its root is <${tag.name}> in namespace '${tag.uri}'.`);
      }
      ns = tag.uri;
      return;
    }
    if (tag.uri !== ns) {
      return;
    }
    if (tag.local === 'file') {
      if (current) {
        throw invalidArg(`${entry(current)} holds another <file>.`);
      }
      if (files.length >= METALINK_MAX_FILES) {
        throw invalidArg(`The Metalink file lists more than ${METALINK_MAX_FILES} files.`);
      }
      current = { name: attr(tag, 'name') ?? '', index: files.length, hashes: new Map(), urls: [] };
      checkName(current.name, entry(current));
      if (names.has(current.name)) {
        throw invalidArg(`${entry(current)} names the same file as an earlier entry.`);
      }
      names.add(current.name);
    } else if (current && tag.local === 'hash') {
      hashType = (attr(tag, 'type') ?? '').toLowerCase().replace(/-/g, '');
    } else if (current && tag.local === 'url') {
      urlAttrs = { rank: urlRank(tag, ns === NS_META4), location: attr(tag, 'location')?.toLowerCase() };
    }
  });
  parser.on('text', (t) => {
    text += t;
  });
  parser.on('cdata', (t) => {
    text += t;
  });
  parser.on('closetag', (tag) => {
    depth--;
    if (!current || tag.uri !== ns) {
      return;
    }
    const value = text.trim();
    if (tag.local === 'size') {
      if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) {
        throw invalidArg(`${entry(current)} has a size that is not a whole number of bytes: ${JSON.stringify(value.slice(0, 40))}.`);
      }
      current.size = Number(value);
    } else if (tag.local === 'hash' && hashType !== undefined) {
      const known = HASH_STRENGTH[hashType];
      // Piece hashes (<pieces><hash>) have no type attribute of their own and are left out.
      if (known && tag.attributes['type'] !== undefined) {
        if (value.length !== known.hexLength || !/^[0-9a-fA-F]+$/.test(value)) {
          throw invalidArg(`${entry(current)} has a ${hashType} hash that is not ${known.hexLength} hex digits.`);
        }
        current.hashes.set(hashType, value.toLowerCase());
      }
      hashType = undefined;
    } else if (tag.local === 'url' && urlAttrs) {
      if (/^https?:\/\//i.test(value) && current.urls.length < MAX_URLS_PER_FILE) {
        current.urls.push({ url: value, ...urlAttrs, order: current.urls.length });
      }
      urlAttrs = undefined;
    } else if (tag.local === 'file') {
      files.push(finish(current, o.location?.toLowerCase(), entry(current)));
      current = undefined;
    }
  });

  try {
    parser.write(xml).close();
  } catch (e) {
    failure = e as Error;
  }
  if (failure) {
    throw failure;
  }
  if (ns === undefined) {
    throw invalidArg('This is not a Metalink file: it has no <metalink> element.');
  }
  if (files.length === 0) {
    throw invalidArg('The Metalink file lists no files.');
  }
  return files;
}

/** meta4: priority 1 (best) … 999999, none = last; v3: preference 100 (best) … 0, none = 0. Lower rank = better. */
function urlRank(tag: SaxesTagNS, meta4: boolean): number {
  if (meta4) {
    const p = Number(tag.attributes['priority']?.value);
    return Number.isInteger(p) && p >= 1 ? p : 1_000_000;
  }
  const p = Number(tag.attributes['preference']?.value);
  return Number.isFinite(p) ? 1_000 - Math.max(0, Math.min(100, p)) : 1_000;
}

function finish(b: Building, location: string | undefined, what: string): MetalinkFile {
  if (b.urls.length === 0) {
    throw invalidArg(`${what} has no http or https URL.`);
  }
  const urls = [...b.urls]
    .sort((x, y) => x.rank - y.rank || Number(y.location === location && location !== undefined) - Number(x.location === location && location !== undefined) || x.order - y.order)
    .map((u) => u.url)
    .filter((u, i, all) => all.indexOf(u) === i);
  const strongest = [...b.hashes.keys()].sort((x, y) => HASH_STRENGTH[y].rank - HASH_STRENGTH[x].rank)[0];
  const integrity = strongest ? `${strongest}-${Buffer.from(b.hashes.get(strongest)!, 'hex').toString('base64')}` : undefined;
  return { name: b.name, size: b.size, sha256: b.hashes.get('sha256'), integrity, urls };
}

/** A relative path of plain names: no absolute path, drive, '..', '.', empty part or control character. */
function checkName(name: string, what: string): void {
  if (name === '' || /[\u0000-\u001f\u007f]/.test(name)) {
    throw invalidArg(`${what} has an empty name or one with control characters.`);
  }
  if (name.startsWith('/') || name.startsWith('\\') || /^[A-Za-z]:/.test(name) || path.isAbsolute(name)) {
    throw invalidArg(`${what} has an absolute name; only names inside the destination folder are allowed.`);
  }
  if (name.split(/[\\/]/).some((part) => part === '' || part === '.' || part === '..')) {
    throw invalidArg(`${what} has a name with '..', '.' or an empty part; only names inside the destination folder are allowed.`);
  }
}

/** Reads a Metalink file from disk, refusing one larger than METALINK_MAX_BYTES before reading it. */
export async function readMetalinkFile(file: string, o: { location?: string } = {}): Promise<MetalinkFile[]> {
  const st = await fs.stat(file);
  if (st.size > METALINK_MAX_BYTES) {
    throw invalidArg(`The Metalink file ${file} is larger than ${METALINK_MAX_BYTES / 1024 / 1024} MiB.`);
  }
  return parseMetalink(await fs.readFile(file, 'utf8'), o);
}

/**
 * The job's files for a Metalink: first URL as remoteUrl, the others as mirrors, into `folder`. The checksum is the
 * sha-256 when there is one, else the strongest hash as SRI when the engine can check it (parseSha256 decides).
 */
export function metalinkToFiles(files: readonly MetalinkFile[], folder: string): NewFile[] {
  return files.map((f) => ({
    remoteUrl: f.urls[0],
    localPath: path.join(folder, ...f.name.split(/[\\/]/)),
    sha256: f.sha256 ?? checkable(f.integrity),
    ...(f.urls.length > 1 ? { mirrors: f.urls.slice(1) } : {}),
  }));
}

function checkable(integrity: string | undefined): string | undefined {
  try {
    return parseSha256(integrity) === undefined ? undefined : integrity;
  } catch {
    return undefined;
  }
}

/**
 * One job for a Metalink file (command importMetalink, CLI --metalink): its files into `folder` (sub-folders the
 * names ask for are created), every URL by priority, the size and strongest hash. The job is left SUSPENDED.
 */
export async function createMetalinkJob(
  engine: { createJob(o: CreateJobOptions): Promise<Job> },
  metalinkPath: string,
  folder: string,
  o: { displayName?: string; location?: string } = {},
): Promise<Job> {
  const entries = metalinkToFiles(await readMetalinkFile(metalinkPath, o), folder);
  for (const dir of new Set(entries.map((e) => path.dirname(e.localPath)))) {
    if (dir !== folder) {
      await fs.mkdir(dir, { recursive: true });
    }
  }
  const job = await engine.createJob({ displayName: o.displayName ?? path.basename(metalinkPath), description: `Metalink: ${metalinkPath}` });
  try {
    await job.addFileSet(entries);
  } catch (e) {
    await job.cancel().catch(() => undefined);
    throw e;
  }
  return job;
}
