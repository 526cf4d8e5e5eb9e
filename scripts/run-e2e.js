#!/usr/bin/env node
// Browser end-to-end journey (issue 6): the real VS Code UI (code-server 4.100.3) with this extension under
// development, driven in headless Debian Chromium through playwright-core. The steps are in test/e2e/
// (compiled to out/test/e2e/ by `npx tsc -p tsconfig.test.json`); `npm run test:e2e` builds and runs.
//
//   node scripts/run-e2e.js [--locale en|fr|all] [--steps 1,2,5] [--update-media] [--keep-tmp]
//        [--load-timeout <s>] [--timeout <s>] [--verbose]
//
// --locale all (default) runs every step in English, then steps 1, 2, 5, 10 and 13 in French.
// Screenshots go to test-results/e2e/; --update-media copies the curated ones to media/.
// Exit codes: N = N steps failed (capped at 100), 101 = the run itself failed (install, server, workbench
// not loaded within --load-timeout, --timeout exceeded), 129/130/143 = interrupted.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const cs = require('./lib/code-server');
const { trackRun } = require('./lib/run-cleanup');

const INFRA_FAILURE = 101;
const repoRoot = cs.repoRoot;
const resultsDir = path.join(repoRoot, 'test-results', 'e2e');
const compiled = path.join(repoRoot, 'out', 'test', 'e2e', 'index.js');

function usage(msg) {
  if (msg) {
    console.error(`run-e2e: ${msg}`);
  }
  console.error(
    'usage: node scripts/run-e2e.js [--locale en|fr|all] [--steps 1,2,5] [--update-media] [--keep-tmp]\n' +
      '         [--load-timeout <s>] [--timeout <s>] [--verbose]',
  );
  process.exit(msg ? 2 : 0);
}

function parseArgs(argv) {
  const o = { locales: ['en', 'fr'], steps: undefined, updateMedia: false, keepTmp: false, loadTimeoutS: 90, timeoutS: 600, verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const [name, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const take = () => {
      if (inline !== undefined) {
        return inline;
      }
      if (i + 1 >= argv.length) {
        usage(`${name} needs a value`);
      }
      return argv[++i];
    };
    const seconds = (v) => {
      const n = Number(v);
      if (!(n > 0)) {
        usage(`${name} must be a positive number of seconds`);
      }
      return n;
    };
    switch (name) {
      case '--locale': {
        const v = take();
        if (!['en', 'fr', 'all'].includes(v)) {
          usage('--locale is en, fr or all');
        }
        o.locales = v === 'all' ? ['en', 'fr'] : [v];
        break;
      }
      case '--steps':
        o.steps = take().split(',').map((x) => Number(x.trim()));
        if (o.steps.some((n) => !Number.isInteger(n) || n < 1 || n > 15)) {
          usage('--steps takes step numbers from 1 to 15, e.g. --steps 1,2,5');
        }
        break;
      case '--update-media': o.updateMedia = true; break;
      case '--keep-tmp': o.keepTmp = true; break;
      case '--load-timeout': o.loadTimeoutS = seconds(take()); break;
      case '--timeout': o.timeoutS = seconds(take()); break;
      case '--verbose': o.verbose = true; break;
      case '-h': case '--help': usage(); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
const say = (msg) => console.error(`[e2e ${elapsed()}] ${msg}`);

class InfraError extends Error {}

// ---- everything we start, for cleanup ----------------------------------------------------------------
const { state, cleanup } = trackRun({
  say,
  infraFailureCode: INFRA_FAILURE,
  keepTmp: opts.keepTmp,
  stopExtra: async (st) => {
    if (st.e2eServer) {
      const s = st.e2eServer;
      st.e2eServer = undefined;
      await Promise.race([s.close().catch(() => undefined), cs.sleep(3000)]);
    }
  },
});

function tail(file, n = 40) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---- one session: a code-server in one display language, its steps ---------------------------------------

async function runSession(e2e, locale, codeServerDir, browser) {
  const server = state.e2eServer;
  server.reset();
  const dir = path.join(state.tmp, locale);
  const workspace = path.join(dir, 'workspace');
  const userDataDir = path.join(dir, 'user-data');
  const extensionsDir = path.join(dir, 'extensions');
  const logFile = path.join(dir, 'code-server.log');
  cs.copyDir(path.join(repoRoot, 'demo', 'workspace'), workspace);
  e2e.prepareWorkspace(workspace, server);
  fs.mkdirSync(path.join(userDataDir, 'Machine'), { recursive: true });
  fs.mkdirSync(extensionsDir, { recursive: true });
  cs.setupLanguagePack(userDataDir, locale === 'en' ? undefined : locale);
  cs.writeDefaultSettings(userDataDir, e2e.userSettings());
  fs.writeFileSync(path.join(userDataDir, 'Machine', 'settings.json'), JSON.stringify(e2e.machineSettings(workspace), undefined, 2) + '\n');

  const loadMs = opts.loadTimeoutS * 1000;
  const loadDeadline = Date.now() + loadMs;
  const port = await cs.freePort();
  say(`[${locale}] starting code-server on 127.0.0.1:${port}${locale === 'en' ? '' : ` --locale ${locale}`}`);
  try {
    state.server = await cs.startCodeServer({
      codeServerDir,
      port,
      userDataDir,
      extensionsDir,
      workspace,
      env: {},
      logFile,
      echo: opts.verbose ? process.stderr : undefined,
      locale: locale === 'en' ? undefined : locale,
      onSpawn: (proc) => {
        state.server = { proc, pid: proc.pid };
      },
      timeoutMs: Math.max(1000, loadDeadline - Date.now()),
    });
  } catch (e) {
    throw new InfraError(`${e.message}\n${tail(logFile)}`);
  }
  let serverExit;
  state.server.proc.once('exit', (code, sig) => {
    serverExit = code ?? sig;
  });

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: locale === 'fr' ? 'fr-FR' : 'en-US' });
  await context.addInitScript(e2e.uiTraceScript);
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const consoleLog = [];
  page.on('console', (m) => {
    const line = `[browser ${m.type()}] ${m.text()}`;
    consoleLog.push(line);
    if (consoleLog.length > 200) {
      consoleLog.shift();
    }
    if (opts.verbose) {
      console.error(line);
    }
  });
  page.on('pageerror', (e) => consoleLog.push(`[page error] ${e.message}`));
  let pageCrashed = false;
  page.on('crash', () => {
    pageCrashed = true;
  });
  const diagnostics = () => `\n--- code-server log (tail) ---\n${tail(logFile)}\n--- browser console (tail) ---\n${consoleLog.slice(-30).join('\n')}`;

  const strings = new e2e.Strings(locale);
  const wb = new e2e.Workbench(page, strings, resultsDir, `${locale}-`, (m) => say(`[${locale}]     ${m}`));
  const url = cs.workbenchUrl({ port, folder: workspace, extensionDevelopmentPath: repoRoot });
  try {
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: Math.max(1000, loadDeadline - Date.now()) });
    await wb.waitForWorkbench(Math.max(1000, loadDeadline - Date.now()));
  } catch (e) {
    await page.screenshot({ path: path.join(resultsDir, `${locale}-0-workbench-not-loaded.png`) }).catch(() => undefined);
    throw new InfraError(`[${locale}] the workbench (with the Managed Downloads activity bar entry) did not load within ${opts.loadTimeoutS} s: ${String(e.message).split('\n')[0]}${diagnostics()}`);
  }
  say(`[${locale}] workbench loaded`);

  const notes = [];
  wb.note = (message) => ctx.note(message);
  const ctx = {
    wb,
    s: strings,
    server,
    workspace,
    downloads: path.join(workspace, 'downloads'),
    waitForWorkbench: () => wb.waitForWorkbench(loadMs),
    shared: new Map(),
    note: (message) => {
      notes.push({ n: wb.step, message });
      say(`[${locale}]     note: ${message}`);
    },
  };
  const results = [];
  const passed = new Set();
  for (const step of e2e.journey(locale)) {
    if (opts.steps && !opts.steps.includes(step.n)) {
      continue;
    }
    if (state.interrupted) {
      break;
    }
    const label = `[${locale}] step ${step.n}`;
    const missing = (step.needs ?? []).filter((n) => !passed.has(n));
    if (missing.length) {
      say(`${label} SKIP: needs step ${missing.join(', ')}`);
      results.push({ locale, n: step.n, title: step.title, status: 'skip', ms: 0, error: `needs step ${missing.join(', ')}` });
      continue;
    }
    if (serverExit !== undefined || pageCrashed) {
      const why = serverExit !== undefined ? `code-server exited (${serverExit})` : 'the browser page crashed';
      results.push({ locale, n: step.n, title: step.title, status: 'fail', ms: 0, error: why });
      say(`${label} FAIL: ${why}`);
      continue;
    }
    say(`${label}: ${step.title}`);
    const started = Date.now();
    wb.aborted = false;
    wb.step = step.n;
    let timer;
    const run = step.run(ctx);
    run.catch(() => undefined); // a timed-out step may still reject later
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => {
        wb.aborted = true;
        reject(new Error(`step ${step.n} did not finish within ${step.timeoutMs / 1000} s`));
      }, step.timeoutMs);
    });
    try {
      await Promise.race([run, timeout]);
      clearTimeout(timer);
      passed.add(step.n);
      const ms = Date.now() - started;
      results.push({ locale, n: step.n, title: step.title, status: 'pass', ms, notes: notes.filter((x) => x.n === step.n).map((x) => x.message) });
      say(`${label} PASS (${(ms / 1000).toFixed(1)} s)`);
    } catch (e) {
      clearTimeout(timer);
      wb.aborted = true;
      const ms = Date.now() - started;
      const message = (e && e.message) || String(e);
      results.push({ locale, n: step.n, title: step.title, status: 'fail', ms, error: message });
      say(`${label} FAIL (${(ms / 1000).toFixed(1)} s): ${message}`);
      if (opts.verbose && e && e.stack) {
        console.error(e.stack);
      }
      await page.screenshot({ path: path.join(resultsDir, `${locale}-${step.n}-FAILED.png`) }).catch(() => undefined);
      const trace = await wb.trace().catch(() => []);
      fs.writeFileSync(path.join(resultsDir, `${locale}-${step.n}-ui-trace.txt`), trace.join('\n') + '\n');
      say(`${label}     jobs tree: ${await wb.treeLabels().catch(() => '?')}`);
      say(`${label}     notifications: ${await wb.toastLabels().catch(() => '?')}`);
      // Leave the UI usable for the next step: close menus, quick inputs and dialogs.
      for (let i = 0; i < 3; i++) {
        await page.keyboard.press('Escape').catch(() => undefined);
      }
      await wb.sleep(300).catch(() => undefined);
    }
  }

  await context.close().catch(() => undefined);
  if (state.server) {
    const pid = state.server.pid;
    state.server = undefined;
    await cs.stopProcessTree(pid);
  }
  if (results.some((r) => r.status === 'fail')) {
    keepLogs(locale, logFile, userDataDir, consoleLog);
  }
  return results;
}

/** On failure: code-server's log, the browser console and the extension's own log(s) next to the screenshots. */
function keepLogs(locale, logFile, userDataDir, consoleLog) {
  try {
    fs.copyFileSync(logFile, path.join(resultsDir, `${locale}-code-server.log`));
    fs.writeFileSync(path.join(resultsDir, `${locale}-browser-console.log`), consoleLog.join('\n') + '\n');
    const logs = path.join(userDataDir, 'logs');
    for (const session of fs.existsSync(logs) ? fs.readdirSync(logs) : []) {
      for (const host of fs.readdirSync(path.join(logs, session)).filter((d) => d.startsWith('exthost'))) {
        const f = path.join(logs, session, host, 'dojobs.managed-downloads', 'Managed Downloads.log');
        if (fs.existsSync(f)) {
          fs.copyFileSync(f, path.join(resultsDir, `${locale}-extension-${host}.log`));
        }
      }
    }
  } catch (e) {
    say(`could not keep the logs: ${e.message}`);
  }
}

// ---- main ---------------------------------------------------------------------------------------------------

async function main() {
  if (!fs.existsSync(compiled)) {
    throw new InfraError(`${path.relative(repoRoot, compiled)} is missing: run \`npx tsc -p tsconfig.test.json\` first (or \`npm run test:e2e\`)`);
  }
  if (!fs.existsSync(path.join(repoRoot, 'dist', 'extension.js'))) {
    throw new InfraError('dist/extension.js is missing: run `npm run build` first (or `npm run test:e2e`)');
  }
  const e2e = require(compiled);

  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch {
    throw new InfraError('playwright-core is not installed: run npm install');
  }
  const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

  say('ensuring code-server');
  let codeServerDir;
  try {
    codeServerDir = cs.ensureCodeServer();
  } catch (e) {
    throw new InfraError(e.message);
  }
  if (!fs.existsSync(executablePath)) {
    throw new InfraError(`no Chromium at ${executablePath} (run scripts/ensure-code-server.sh, or set CHROMIUM_PATH)`);
  }

  fs.rmSync(resultsDir, { recursive: true, force: true });
  fs.mkdirSync(resultsDir, { recursive: true });
  state.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'md-e2e-'));

  state.e2eServer = await e2e.E2EServer.start();
  say(`download server on ${state.e2eServer.server.origin}`);

  say('launching headless Chromium');
  state.browser = await chromium.launch({
    executablePath,
    headless: true,
    env: { ...process.env, XDG_CONFIG_HOME: path.join(state.tmp, 'browser-config') },
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });

  const results = [];
  for (const locale of opts.locales) {
    if (!state.interrupted) {
      results.push(...(await runSession(e2e, locale, codeServerDir, state.browser)));
    }
  }

  // ---- report
  const pass = results.filter((r) => r.status === 'pass').length;
  const fail = results.filter((r) => r.status === 'fail');
  const skip = results.filter((r) => r.status === 'skip').length;
  console.log('');
  console.log('Managed Downloads — browser end-to-end journey');
  for (const r of results) {
    const mark = r.status === 'pass' ? '✓' : r.status === 'skip' ? '-' : '✗';
    console.log(`  ${mark} [${r.locale}] ${r.n}. ${r.title}${r.status === 'pass' ? ` (${(r.ms / 1000).toFixed(1)} s)` : ''}`);
    if (r.error) {
      console.log(`      ${r.status === 'skip' ? 'skipped' : 'failed'}: ${r.error.split('\n').join('\n      ')}`);
    }
    for (const n of r.notes ?? []) {
      console.log(`      note: ${n}`);
    }
  }
  console.log(`  ${pass} passed, ${fail.length} failed, ${skip} skipped in ${elapsed()}; screenshots in ${path.relative(process.cwd(), resultsDir) || resultsDir}`);
  fs.writeFileSync(path.join(resultsDir, 'results.json'), JSON.stringify({ seconds: (Date.now() - t0) / 1000, results }, undefined, 2) + '\n');

  if (opts.updateMedia) {
    for (const c of e2e.CURATED) {
      const from = path.join(resultsDir, `${c.shot}.png`);
      const locale = c.shot.slice(0, 2);
      const ok = results.some((r) => r.locale === locale && r.n === c.step && r.status === 'pass');
      if (ok && fs.existsSync(from)) {
        fs.copyFileSync(from, path.join(repoRoot, 'media', c.media));
        say(`media/${c.media} ← ${path.basename(from)}`);
      } else {
        say(`media/${c.media} not updated (step ${c.step} did not pass in ${locale === 'fr' ? 'French' : 'English'})`);
      }
    }
  }
  return Math.min(100, fail.length);
}

const overall = setTimeout(() => {
  if (state.interrupted) {
    return;
  }
  state.interrupted = true;
  console.error(`\nrun-e2e: the run did not finish within ${opts.timeoutS} s (--timeout); stopping everything`);
  void cleanup().finally(() => process.exit(INFRA_FAILURE));
}, opts.timeoutS * 1000);

main()
  .then(async (code) => {
    clearTimeout(overall);
    if (state.interrupted) {
      return;
    }
    await cleanup();
    process.exit(code);
  })
  .catch(async (e) => {
    clearTimeout(overall);
    if (state.interrupted) {
      return; // the signal handler cleans up and exits
    }
    console.error(`\nrun-e2e: ${e instanceof InfraError ? e.message : (e && e.stack) || e}`);
    await cleanup();
    process.exit(INFRA_FAILURE);
  });
