// The names inside an archive are hostile: each entry is checked before anything is written, so that nothing
// can land outside the extraction folder (absolute names, '..', drive letters, backslashes), be written
// through a link, or overwrite another entry on a disk that ignores letter case.
import { invalidArg, type DownloadError } from './errors';

/** The file extractArchive() leaves in the folder it filled (extract.ts); an archive may not bring its own. */
export const EXTRACT_MARKER = '.managed-downloads-extract.json';

export type EntryKind = 'file' | 'directory' | 'symlink';

interface Known {
  /** The path with the letter case the archive used (segments joined by '/'). */
  exact: string;
  kind: EntryKind;
}

/** Splits an entry name into folder segments, or says why it cannot be extracted. */
export function splitEntryName(name: string): string[] | string {
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    return 'contains a control character';
  }
  const slashed = name.replace(/\\/g, '/');
  if (slashed.startsWith('/') || /^[a-zA-Z]:/.test(slashed)) {
    return 'is an absolute path';
  }
  const segments = slashed.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) {
    return 'leaves the destination folder (..)';
  }
  // Windows would read 'a:b' as a stream of 'a', and drop a trailing dot or space (two names, one file).
  if (process.platform === 'win32' && segments.some((s) => /[:<>"|?*]/.test(s) || /[. ]$/.test(s))) {
    return 'is not a valid file name on Windows';
  }
  return segments;
}

/** How two names compare on a disk that ignores letter case (Windows, macOS by default). */
function fold(p: string): string {
  return p.normalize('NFC').toLowerCase();
}

/** Shows an entry name in a message without letting its control characters reach a terminal. */
export function printableName(name: string): string {
  const shown = name.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return shown.length > 200 ? shown.slice(0, 197) + '…' : shown;
}

/** Every name of one archive, as they are met: refuses the first entry that is unsafe. */
export class EntryNames {
  private readonly known = new Map<string, Known>();

  constructor(private readonly archiveLabel: string) {}

  refuse(name: string, why: string): DownloadError {
    return invalidArg(`Cannot extract '${this.archiveLabel}': its entry '${printableName(name)}' ${why}. Nothing was extracted.`);
  }

  /** Records an entry and returns its segments (empty for the folder itself), or throws E_INVALIDARG. */
  register(name: string, kind: EntryKind): string[] {
    const segments = splitEntryName(name);
    if (typeof segments === 'string') {
      throw this.refuse(name, segments);
    }
    if (segments.length === 0) {
      if (kind === 'directory') {
        return segments;
      }
      throw this.refuse(name, 'has no name');
    }
    if (segments.length === 1 && fold(segments[0]) === fold(EXTRACT_MARKER)) {
      throw this.refuse(name, 'uses the name Managed Downloads keeps for its own marker file');
    }
    for (let i = 1; i < segments.length; i++) {
      const prefix = segments.slice(0, i).join('/');
      const before = this.known.get(fold(prefix));
      if (!before) {
        this.known.set(fold(prefix), { exact: prefix, kind: 'directory' });
      } else if (before.kind !== 'directory') {
        throw this.refuse(name, `goes through '${printableName(before.exact)}', which is not a folder`);
      } else if (before.exact !== prefix) {
        throw this.refuse(name, `names the same folder as '${printableName(before.exact)}' on a disk that ignores letter case`);
      }
    }
    const full = segments.join('/');
    const before = this.known.get(fold(full));
    if (before) {
      if (before.exact !== full) {
        throw this.refuse(name, `names the same file as '${printableName(before.exact)}' on a disk that ignores letter case`);
      }
      if (before.kind !== 'directory' || kind !== 'directory') {
        throw this.refuse(name, 'appears twice in the archive');
      }
      return segments;
    }
    this.known.set(fold(full), { exact: full, kind });
    return segments;
  }

  /**
   * A symbolic link must stay inside the folder. Checked once every entry is known, and walking only through
   * real folders of the archive: through another link, '..' would climb from wherever that link points.
   */
  checkSymlinkTarget(name: string, linkSegments: readonly string[], target: string): void {
    if (target === '' || /[\u0000]/.test(target)) {
      throw this.refuse(name, 'is a link without a valid target');
    }
    const slashed = target.replace(/\\/g, '/');
    if (slashed.startsWith('/') || /^[a-zA-Z]:/.test(slashed)) {
      throw this.refuse(name, `is a link to an absolute path ('${printableName(target)}')`);
    }
    const at = linkSegments.slice(0, -1);
    for (const part of slashed.split('/')) {
      if (part === '' || part === '.') {
        continue;
      }
      const here = this.known.get(fold(at.join('/')));
      if (at.length > 0 && here?.kind === 'symlink') {
        throw this.refuse(name, `is a link through another link ('${printableName(here.exact)}')`);
      }
      if (part === '..') {
        if (at.length === 0) {
          throw this.refuse(name, `is a link pointing outside the destination folder ('${printableName(target)}')`);
        }
        at.pop();
      } else {
        at.push(part);
      }
    }
  }

  /** A hard link may only repeat a regular file the archive already extracted; returns that file's segments. */
  hardLinkSource(name: string, target: string): string[] {
    const segments = splitEntryName(target);
    const before = typeof segments === 'string' ? undefined : this.known.get(fold(segments.join('/')));
    if (typeof segments === 'string' || !before || before.kind !== 'file' || before.exact !== segments.join('/')) {
      throw this.refuse(name, `is a hard link to '${printableName(target)}', which is not a file extracted before it in this folder`);
    }
    return segments;
  }
}
