// undici is loaded on first use, not when the engine (or the extension) loads: it is most of the bundle, and
// requiring it blocks the event loop for tens of milliseconds, which every VS Code start would pay before any
// download needs it. Only its dispatcher core is loaded (undiciCore.ts); in the extension it is dist/undici.js.
import type * as UndiciCore from './undiciCore';

let loaded: typeof UndiciCore | undefined;

export function undici(): typeof UndiciCore {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- deliberately lazy (see above)
  return (loaded ??= require('./undiciCore') as typeof UndiciCore);
}
