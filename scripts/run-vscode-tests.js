#!/usr/bin/env node
// Runs the in-editor mocha suite (out/test/vscode/suite/index.js) inside a real VS Code extension
// host and exits with the number of failing tests (0 = all passed).
//
//   node scripts/run-vscode-tests.js [--grep <pattern>] [--locale <lang>] [--keep-open]
//        [--desktop] [--extension <dir>] [--tests <index.js>] [--workspace <dir>]
//        [--timeout <s>] [--load-timeout <s>] [--verbose] [--install-vsix <file>]
//
// --install-vsix installs a packaged extension into the run's fresh extensions folder first (what a user gets
// from `npm run package`); pair it with --extension test/vsix/host --tests out/test/vsix/index.js, a test-only
// host, so the tests exercise the installed copy and not this repository's development path.
//
// Desktop VS Code (env VSCODE_EXECUTABLE, or --desktop to let @vscode/test-electron download
// 1.100.3) when available; otherwise code-server 4.100.3 (scripts/ensure-code-server.sh) driven by
// headless Debian Chromium through playwright-core. See scripts/README-testing.md.
//
// Exit codes: N = N tests failed (capped at 100; a suite that crashed while loading counts as 1),
// 101 = the run itself failed (install, server, workbench, timeout), 130/143 = interrupted.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const cs = require('./lib/code-server');
const { trackRun } = require('./lib/run-cleanup');

const INFRA_FAILURE = 101;
const repoRoot = cs.repoRoot;

function usage(msg) {
  if (msg) {
    console.error(`run-vscode-tests: ${msg}`);
  }
  console.error(
    'usage: node scripts/run-vscode-tests.js [--grep <pattern>] [--locale <lang>] [--keep-open] [--desktop]\n' +
      '         [--extension <dir>] [--tests <index.js>] [--workspace <dir>] [--timeout <s>] [--load-timeout <s>] [--verbose]\n' +
      '         [--install-vsix <file>]',
  );
  process.exit(msg ? 2 : 0);
}

function parseArgs(argv) {
  const o = {
    grep: undefined,
    locale: undefined,
    keepOpen: false,
    desktop: false,
    extension: repoRoot,
    tests: path.join(repoRoot, 'out', 'test', 'vscode', 'suite', 'index.js'),
    workspace: path.join(repoRoot, 'test', 'vscode', 'workspace'),
    timeoutS: 600,
    loadTimeoutS: 90,
    verbose: false,
    installVsix: undefined,
  };
  const value = (i, name) => {
    if (i + 1 >= argv.length) {
      usage(`${name} needs a value`);
    }
    return argv[i + 1];
  };
  const seconds = (v, name) => {
    const n = Number(v);
    if (!(n > 0)) {
      usage(`${name} must be a positive number of seconds`);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const [name, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const take = () => (inline !== undefined ? inline : value(i++, name));
    switch (name) {
      case '--grep': o.grep = take(); break;
      case '--locale': o.locale = take(); break;
      case '--keep-open': o.keepOpen = true; break;
      case '--desktop': o.desktop = true; break;
      case '--extension': o.extension = path.resolve(take()); break;
      case '--tests': o.tests = path.resolve(take()); break;
      case '--workspace': o.workspace = path.resolve(take()); break;
      case '--timeout': o.timeoutS = seconds(take(), name); break;
      case '--load-timeout': o.loadTimeoutS = seconds(take(), name); break;
      case '--verbose': o.verbose = true; break;
      case '--install-vsix': o.installVsix = path.resolve(take()); break;
      case '-h': case '--help': usage(); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
const say = (msg) => console.error(`[vscode-tests ${elapsed()}] ${msg}`);

class InfraError extends Error {}

// ---- everything we start, for cleanup ------------------------------------------------------
const { state, cleanup } = trackRun({ say, infraFailureCode: INFRA_FAILURE });

// ---- result file ------------------------------------------------------------------------------
/** Incrementally reads JSON lines appended to `file`. */
function resultReader(file) {
  let offset = 0;
  let partial = '';
  return () => {
    let fd;
    try {
      fd = fs.openSync(file, 'r');
    } catch {
      return [];
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size <= offset) {
        return [];
      }
      const buf = Buffer.alloc(size - offset);
      fs.readSync(fd, buf, 0, buf.length, offset);
      offset = size;
      partial += buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
    const lines = partial.split('\n');
    partial = lines.pop();
    const events = [];
    for (const l of lines) {
      if (!l.trim()) {
        continue;
      }
      try {
        events.push(JSON.parse(l));
      } catch {
        events.push({ event: 'garbage', line: l });
      }
    }
    return events;
  };
}

function exitCodeFor(result) {
  if (result.error) {
    return Math.min(100, Math.max(1, result.failures));
  }
  return Math.min(100, result.failures);
}

// ---- desktop VS Code via @vscode/test-electron -------------------------------------------------
async function runDesktop(env, workspace, userDataDir, extensionsDir, resultFile) {
  const { runTests, downloadAndUnzipVSCode } = require('@vscode/test-electron');
  let exe = process.env.VSCODE_EXECUTABLE;
  if (exe) {
    if (!fs.existsSync(exe)) {
      throw new InfraError(`VSCODE_EXECUTABLE=${exe} does not exist`);
    }
    say(`desktop VS Code: ${exe}`);
  } else {
    say('desktop VS Code: getting 1.100.3 with @vscode/test-electron (needs update.code.visualstudio.com)');
    try {
      exe = await downloadAndUnzipVSCode({ version: '1.100.3', timeout: 60_000 });
    } catch (e) {
      throw new InfraError(`could not download VS Code 1.100.3 (${e && e.message}); drop --desktop to use code-server, or set VSCODE_EXECUTABLE`);
    }
  }
  if (opts.installVsix) {
    installVsix([exe], extensionsDir, userDataDir);
  }
  // With an installed .vsix under test, other extensions must stay enabled (it is one of them).
  const launchArgs = [workspace, ...(opts.installVsix ? [] : ['--disable-extensions']), `--user-data-dir=${userDataDir}`, `--extensions-dir=${extensionsDir}`];
  if (opts.locale) {
    launchArgs.push('--locale', opts.locale);
  }
  let code = 0;
  let timer;
  const timedOut = new Promise((resolve) => {
    timer = setTimeout(() => resolve('timeout'), Math.max(1000, t0 + opts.timeoutS * 1000 - Date.now()));
  });
  // The extension host's console (the reporter's spec lines) goes to VS Code's stdout, which
  // runTests pipes to ours; the result file is read afterwards only for the counts.
  const run = runTests({
    vscodeExecutablePath: exe,
    extensionDevelopmentPath: opts.extension,
    extensionTestsPath: opts.tests,
    launchArgs,
    extensionTestsEnv: env,
  }).then(
    () => 0,
    (e) => (e && typeof e.code === 'number' ? e.code : 1),
  );
  const outcome = await Promise.race([run, timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    // runTests does not hand out its child: stop every process below us (all started by us).
    for (const pid of cs.descendants(process.pid)) {
      await cs.stopProcessTree(pid, 3000);
    }
    throw new InfraError(`VS Code did not finish the suite within ${opts.timeoutS} s (a test or hook hangs?)`);
  }
  code = outcome;
  const events = resultReader(resultFile)();
  const end = events.find((e) => e.event === 'end');
  const error = events.find((e) => e.event === 'error');
  if (!end && !error) {
    throw new InfraError(`VS Code exited (${code}) without reporting results`);
  }
  return { failures: end ? end.stats.failures : 0, error: Boolean(error) };
}

// ---- code-server + headless Chromium -----------------------------------------------------------
async function runInCodeServer(env, workspace, userDataDir, extensionsDir, resultFile) {
  say('ensuring code-server');
  let codeServerDir;
  try {
    codeServerDir = cs.ensureCodeServer();
  } catch (e) {
    throw new InfraError(e.message);
  }
  const logFile = path.join(state.tmp, 'code-server.log');
  if (opts.installVsix) {
    installVsix([process.execPath, path.join(codeServerDir, 'out', 'node', 'entry.js')], extensionsDir, userDataDir);
  }
  const port = await cs.freePort();
  const loadDeadline = Date.now() + opts.loadTimeoutS * 1000;
  say(`starting code-server on 127.0.0.1:${port}`);
  try {
    state.server = await cs.startCodeServer({
      codeServerDir,
      port,
      userDataDir,
      extensionsDir,
      workspace,
      env,
      logFile,
      echo: opts.verbose ? process.stderr : undefined,
      locale: opts.locale,
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

  const url = cs.workbenchUrl({ port, folder: workspace, extensionDevelopmentPath: opts.extension, extensionTestsPath: opts.tests });
  const devUrl = cs.workbenchUrl({ port, folder: workspace, extensionDevelopmentPath: opts.extension });
  if (opts.verbose || opts.keepOpen) {
    say(`test URL: ${url}`);
  }

  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch {
    throw new InfraError('playwright-core is not installed: run npm install');
  }
  const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) {
    throw new InfraError(`no Chromium at ${executablePath} (run scripts/ensure-code-server.sh, or set CHROMIUM_PATH)`);
  }
  say('launching headless Chromium');
  state.browser = await chromium.launch({
    executablePath,
    headless: true,
    // Keeps Chromium's "Crash Reports" folder out of ~/.config.
    env: { ...process.env, XDG_CONFIG_HOME: path.join(state.tmp, 'browser-config') },
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  let browserGone = false;
  state.browser.on('disconnected', () => {
    browserGone = true;
  });
  const page = await state.browser.newPage();
  const consoleLog = [];
  page.on('console', (m) => {
    const line = `[browser ${m.type()}] ${m.text()}`;
    consoleLog.push(line);
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

  try {
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: Math.max(1000, loadDeadline - Date.now()) });
    await page.waitForSelector('.monaco-workbench', { timeout: Math.max(1000, loadDeadline - Date.now()) });
  } catch (e) {
    throw new InfraError(`the workbench did not load within ${opts.loadTimeoutS} s: ${String(e.message).split('\n')[0]}${diagnostics()}`);
  }
  say(`workbench loaded; waiting for the suite (results: ${resultFile})`);

  const read = resultReader(resultFile);
  const overall = t0 + opts.timeoutS * 1000;
  const startDeadline = Date.now() + opts.loadTimeoutS * 1000;
  let started = false;
  let suiteStart = 0;
  let current;
  for (;;) {
    for (const ev of read()) {
      if (!started) {
        started = true;
        suiteStart = Date.now();
        say('suite started');
      }
      if (ev.event === 'test') {
        current = ev.fullTitle;
      }
      if (typeof ev.line === 'string') {
        process.stdout.write(ev.line + '\n');
      }
      if (ev.event === 'end') {
        say(`suite finished in ${((Date.now() - suiteStart) / 1000).toFixed(1)}s: ${ev.stats.passes} passing, ${ev.stats.failures} failing, ${ev.stats.pending} pending`);
        return { failures: ev.stats.failures, error: false, url: devUrl };
      }
      if (ev.event === 'error') {
        return { failures: 0, error: true, url: devUrl };
      }
    }
    if (Date.now() > overall) {
      if (!started) {
        throw new InfraError(`the suite had not started when the ${opts.timeoutS} s limit was reached${diagnostics()}`);
      }
      const where = current ? `; last test started: "${current}"` : '';
      throw new InfraError(`the suite did not finish within ${opts.timeoutS} s (a test or hook hangs?)${where}${diagnostics()}`);
    }
    if (!started && Date.now() > startDeadline) {
      throw new InfraError(
        `the suite did not start within ${opts.loadTimeoutS} s of the workbench loading (extension host failed, or ${opts.tests} missing?)${diagnostics()}`,
      );
    }
    if (serverExit !== undefined) {
      throw new InfraError(`code-server exited (${serverExit}) during the run${diagnostics()}`);
    }
    if (browserGone || pageCrashed) {
      throw new InfraError(`the browser ${pageCrashed ? 'page crashed' : 'went away'} during the run${diagnostics()}`);
    }
    await cs.sleep(200);
  }
}

/** Installs opts.installVsix with the editor's own command line (`--install-extension`), as a user would. */
function installVsix(command, extensionsDir, userDataDir) {
  if (!fs.existsSync(opts.installVsix)) {
    throw new InfraError(`${opts.installVsix} does not exist: run \`npm run package\` first`);
  }
  say(`installing ${path.basename(opts.installVsix)}`);
  const { execFileSync } = require('node:child_process');
  try {
    execFileSync(command[0], [...command.slice(1), '--extensions-dir', extensionsDir, '--user-data-dir', userDataDir, '--install-extension', opts.installVsix], {
      stdio: opts.verbose ? 'inherit' : 'pipe',
      timeout: 120_000,
    });
  } catch (e) {
    throw new InfraError(`installing ${opts.installVsix} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

function tail(file, n = 40) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

async function main() {
  if (!fs.existsSync(opts.tests)) {
    throw new InfraError(`${opts.tests} does not exist: run \`npm run compile-tests\` (tsc -p tsconfig.test.json) first`);
  }
  if (!fs.existsSync(path.join(opts.extension, 'package.json'))) {
    throw new InfraError(`no package.json in the extension under test (${opts.extension})`);
  }
  if (!fs.existsSync(opts.workspace)) {
    throw new InfraError(`fixture workspace ${opts.workspace} does not exist`);
  }

  state.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'md-vscode-test-'));
  const workspace = path.join(state.tmp, 'workspace');
  const userDataDir = path.join(state.tmp, 'user-data');
  const extensionsDir = path.join(state.tmp, 'extensions');
  const resultFile = path.join(state.tmp, 'results.jsonl');
  cs.copyDir(opts.workspace, workspace);
  fs.mkdirSync(userDataDir, { recursive: true });
  fs.mkdirSync(extensionsDir, { recursive: true });
  cs.setupLanguagePack(userDataDir, opts.locale);
  cs.writeDefaultSettings(userDataDir, { 'workbench.startupEditor': 'none' });

  const env = {
    MD_TEST_MODE: '1',
    MD_TEST_RESULT_FILE: resultFile,
    MD_REPO_ROOT: repoRoot,
    ...(opts.grep ? { MD_TEST_GREP: opts.grep } : {}),
  };

  const desktop = opts.desktop || Boolean(process.env.VSCODE_EXECUTABLE);
  const result = desktop
    ? await runDesktop(env, workspace, userDataDir, extensionsDir, resultFile)
    : await runInCodeServer(env, workspace, userDataDir, extensionsDir, resultFile);
  const code = exitCodeFor(result);
  if (result.error) {
    say('the suite crashed before finishing (see above)');
  }
  if (opts.keepOpen && !desktop) {
    say(`--keep-open: code-server (pid ${state.server.pid}) and the browser keep running; Ctrl+C stops them and deletes the temporary files.`);
    say(`open the workbench with the extension loaded: ${result.url}`);
    say(`temporary files: ${state.tmp}`);
    return new Promise(() => undefined); // until a signal
  }
  return code;
}

main()
  .then(async (code) => {
    if (state.interrupted) {
      return;
    }
    await cleanup();
    process.exit(code);
  })
  .catch(async (e) => {
    if (state.interrupted) {
      return; // the signal handler cleans up and exits
    }
    console.error(`\nrun-vscode-tests: ${e instanceof InfraError ? e.message : (e && e.stack) || e}`);
    if (opts.keepOpen && state.server) {
      say(`--keep-open: leaving code-server (pid ${state.server.pid}) running; Ctrl+C stops it. Temporary files: ${state.tmp}`);
      return;
    }
    await cleanup();
    process.exit(INFRA_FAILURE);
  });
