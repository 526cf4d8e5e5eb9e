// yauzl and tar are loaded on the first extraction, not when the engine loads (see archiveCore.ts).
import type * as ArchiveCore from './archiveCore';

let loaded: typeof ArchiveCore | undefined;

export function archiveLibs(): typeof ArchiveCore {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- deliberately lazy (see archiveCore.ts)
  return (loaded ??= require('./archiveCore') as typeof ArchiveCore);
}
