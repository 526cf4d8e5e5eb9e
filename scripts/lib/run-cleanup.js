// What a test runner started (code-server, a browser, a test server, a temporary folder) and the stopping of
// all of it on every way out: normal end, a signal, the parent going away, or process exit as a last resort.
'use strict';

const fs = require('fs');
const cs = require('./code-server');

/**
 * Returns `state` (set state.server = { pid }, state.browser, state.tmp as things start) and `cleanup()`.
 * `stopExtra` stops anything else the runner keeps in `state`; `keepTmp` leaves the temporary folder.
 */
function trackRun({ say, infraFailureCode, keepTmp = false, stopExtra }) {
  const state = { server: undefined, browser: undefined, tmp: undefined, cleaning: undefined, interrupted: false };

  async function cleanup() {
    if (state.cleaning) {
      return state.cleaning;
    }
    state.cleaning = (async () => {
      if (state.browser) {
        const b = state.browser;
        state.browser = undefined;
        await Promise.race([b.close().catch(() => undefined), cs.sleep(5000)]);
      }
      if (state.server) {
        const pid = state.server.pid;
        state.server = undefined;
        await cs.stopProcessTree(pid);
      }
      await stopExtra?.(state);
      // Anything left that we started (a Chromium helper that outlived close(), …), by PID.
      for (const pid of cs.descendants(process.pid)) {
        await cs.stopProcessTree(pid, 2000);
      }
      if (state.tmp) {
        if (keepTmp) {
          say(`temporary files kept in ${state.tmp}`);
        } else {
          fs.rmSync(state.tmp, { recursive: true, force: true });
        }
      }
    })();
    return state.cleaning;
  }

  process.on('exit', () => {
    // Last resort if we exit without the async cleanup having run.
    if (state.server) {
      cs.killProcessTreeSync(state.server.pid);
    }
    for (const pid of cs.descendants(process.pid)) {
      cs.killProcessTreeSync(pid);
    }
  });
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
    process.on(sig, () => {
      if (state.interrupted) {
        return;
      }
      state.interrupted = true;
      say(`${sig}: stopping`);
      void cleanup().finally(() => process.exit(code));
    });
  }
  cs.watchParent(() => {
    if (!state.interrupted) {
      state.interrupted = true;
      say('parent process went away: stopping');
      void cleanup().finally(() => process.exit(infraFailureCode));
    }
  });
  return { state, cleanup };
}

module.exports = { trackRun };
