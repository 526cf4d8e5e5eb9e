// undici is loaded on first use, not when the engine (or the extension) loads: it is most of the bundle, and
// requiring it costs about 65 ms, which every VS Code start would pay before any download needs it.
import type * as Undici from 'undici';

let loaded: typeof Undici | undefined;

export function undici(): typeof Undici {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- deliberately lazy (see above)
  return (loaded ??= require('undici') as typeof Undici);
}
