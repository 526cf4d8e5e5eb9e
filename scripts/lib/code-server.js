// Helpers shared by scripts/run-vscode-tests.js and scripts/start.js: install, start and stop a
// local code-server (VS Code 1.100.3 server build) and build its payload URLs.
// Plain CommonJS so it runs without a build step.
'use strict';

const { spawn, spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');

const CODE_SERVER_VERSION = '4.100.3';
const repoRoot = path.resolve(__dirname, '..', '..');

function cacheDir() {
  return process.env.MANAGED_DOWNLOADS_CACHE || path.join(os.homedir(), '.cache', 'managed-downloads');
}

/**
 * Runs scripts/ensure-code-server.sh (fast when already installed) and returns the code-server
 * package directory. Progress goes to stderr; throws with the script's message on failure.
 */
function ensureCodeServer() {
  const script = path.join(repoRoot, 'scripts', 'ensure-code-server.sh');
  const r = spawnSync('bash', [script], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (r.error) {
    throw new Error(`could not run ${script}: ${r.error.message}`);
  }
  if (r.status !== 0) {
    throw new Error(`${path.relative(process.cwd(), script)} failed (exit ${r.status ?? r.signal}); see the messages above`);
  }
  const dir = r.stdout.trim().split('\n').pop();
  const entry = path.join(dir, 'out', 'node', 'entry.js');
  if (!fs.existsSync(entry)) {
    throw new Error(`code-server entry point missing: ${entry}`);
  }
  return dir;
}

/** A free TCP port on 127.0.0.1 (closed again before returning). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves true when something already accepts connections on 127.0.0.1:port. */
function portInUse(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/**
 * Registers an empty language pack for `locale` in the user-data dir, so that `--locale <locale>`
 * switches VS Code's display language (VS Code's own strings stay English; the extension's
 * package.nls.<locale>.json and l10n bundles are used). See docs in offline-vscode.md.
 */
function setupLanguagePack(userDataDir, locale) {
  if (!locale || /^en(-|$)/i.test(locale)) {
    return;
  }
  const lang = locale.toLowerCase();
  const packDir = path.join(userDataDir, 'empty-language-pack', lang);
  fs.mkdirSync(packDir, { recursive: true });
  const translations = path.join(packDir, 'main.i18n.json');
  fs.writeFileSync(translations, JSON.stringify({ contents: {} }) + '\n');
  const hash = crypto.createHash('md5').update(`empty-language-pack-${lang}`).digest('hex');
  const packs = {
    [lang]: {
      hash,
      label: lang,
      translations: { vscode: translations },
      extensions: [{ extensionIdentifier: { id: `managed-downloads.empty-language-pack-${lang}` }, version: '0.0.0' }],
    },
  };
  fs.writeFileSync(path.join(userDataDir, 'languagepacks.json'), JSON.stringify(packs, undefined, 2) + '\n');
}

/** Settings that keep an offline workbench quiet (no gallery checks, no telemetry, no experiments). */
const QUIET_SETTINGS = {
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'workbench.enableExperiments': false,
  'workbench.tips.enabled': false,
};

/** Writes <userDataDir>/User/settings.json unless it exists (a user's own settings win). */
function writeDefaultSettings(userDataDir, settings) {
  const file = path.join(userDataDir, 'User', 'settings.json');
  if (fs.existsSync(file)) {
    return;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify({ ...QUIET_SETTINGS, ...settings }, undefined, 2) + '\n');
}

/** vscode-remote URI path for a local absolute path served by the code-server on `port`. */
function remoteUri(port, absPath) {
  return `vscode-remote://127.0.0.1:${port}${absPath.split(path.sep).map(encodeURIComponent).join('/')}`;
}

/**
 * The workbench URL that opens `folder` with the extension at `extensionDevelopmentPath` loaded
 * and, when `extensionTestsPath` is given, runs that test module in the extension host.
 */
function workbenchUrl({ port, folder, extensionDevelopmentPath, extensionTestsPath }) {
  const payload = [['extensionDevelopmentPath', remoteUri(port, extensionDevelopmentPath)]];
  if (extensionTestsPath) {
    payload.push(['extensionTestsPath', remoteUri(port, extensionTestsPath)]);
  }
  return `http://127.0.0.1:${port}/?folder=${encodeURIComponent(folder)}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

/** Environment for the server: ours, minus anything that would make code-server talk to another VS Code. */
function serverEnv(extra) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (k.startsWith('VSCODE_') || k === 'ELECTRON_RUN_AS_NODE') {
      delete env[k];
    }
  }
  return { ...env, ...extra };
}

/**
 * Starts code-server in its own process group. Output goes to `logFile` (and to `echo` if given).
 * `onSpawn(proc)` is called at once, so a caller interrupted while waiting can still stop it.
 * Resolves { proc, port, pid } once /healthz answers; rejects on exit or after `timeoutMs`.
 */
async function startCodeServer({ codeServerDir, port, userDataDir, extensionsDir, workspace, env, logFile, echo, locale, onSpawn, timeoutMs = 60_000 }) {
  // Our own config file, so code-server does not write ~/.config/code-server/config.yaml.
  const configFile = path.join(userDataDir, 'code-server-config.yaml');
  fs.mkdirSync(userDataDir, { recursive: true });
  fs.writeFileSync(configFile, `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
  const args = [
    path.join(codeServerDir, 'out', 'node', 'entry.js'),
    '--config', configFile,
    '--auth', 'none',
    '--bind-addr', `127.0.0.1:${port}`,
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--user-data-dir', userDataDir,
    '--extensions-dir', extensionsDir,
  ];
  if (locale) {
    args.push('--locale', locale);
  }
  args.push(workspace);
  const log = fs.openSync(logFile, 'a');
  const proc = spawn(process.execPath, args, {
    cwd: workspace,
    env: serverEnv(env),
    detached: true, // own process group: we stop it and its children together
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (onSpawn) {
    onSpawn(proc);
  }
  const onData = (chunk) => {
    fs.writeSync(log, chunk);
    if (echo) {
      echo.write(chunk);
    }
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  proc.once('exit', () => {
    try {
      fs.closeSync(log);
    } catch {
      // already closed
    }
  });

  const deadline = Date.now() + timeoutMs;
  let exited = null;
  proc.once('exit', (code, signal) => {
    exited = code ?? signal;
  });
  while (Date.now() < deadline) {
    if (exited !== null) {
      throw new Error(`code-server exited (${exited}) before it was ready; log: ${logFile}`);
    }
    if (await healthy(port)) {
      return { proc, pid: proc.pid, port };
    }
    await sleep(200);
  }
  await stopProcessTree(proc.pid);
  throw new Error(`code-server did not answer on 127.0.0.1:${port} within ${Math.round(timeoutMs / 1000)} s; log: ${logFile}`);
}

function healthy(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** PIDs of every live descendant of `pid` (read from /proc; empty where /proc is missing). */
function descendants(pid) {
  let entries;
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  const children = new Map();
  for (const e of entries) {
    if (!/^\d+$/.test(e)) {
      continue;
    }
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) {
        children.set(ppid, []);
      }
      children.get(ppid).push(Number(e));
    } catch {
      // process went away
    }
  }
  const out = [];
  const queue = [pid];
  while (queue.length) {
    for (const c of children.get(queue.shift()) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signal(pid, sig) {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}

/**
 * Stops a process we started with `detached: true`: SIGTERM to its process group and to every
 * descendant (some, like terminals, live in their own sessions), SIGKILL after `graceMs`.
 */
async function stopProcessTree(pid, graceMs = 5000) {
  if (!pid) {
    return;
  }
  const tree = [pid, ...descendants(pid)];
  signal(-pid, 'SIGTERM');
  for (const p of tree) {
    signal(p, 'SIGTERM');
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && tree.some(alive)) {
    await sleep(100);
  }
  signal(-pid, 'SIGKILL');
  for (const p of tree) {
    if (alive(p)) {
      signal(p, 'SIGKILL');
    }
  }
}

/** Synchronous last resort (for process 'exit' handlers). */
function killProcessTreeSync(pid) {
  if (!pid) {
    return;
  }
  const tree = [pid, ...descendants(pid)];
  signal(-pid, 'SIGKILL');
  for (const p of tree) {
    signal(p, 'SIGKILL');
  }
}

/**
 * Calls `onOrphaned` once if our parent process goes away. `npm run`/`npm start` do not pass
 * SIGTERM on through `sh -c`, so when npm is killed we are re-parented and must clean up alone.
 */
function watchParent(onOrphaned, intervalMs = 1000) {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(timer);
      onOrphaned();
    }
  }, intervalMs);
  timer.unref();
  return timer;
}

function copyDir(from, to) {
  fs.cpSync(from, to, { recursive: true, errorOnExist: false, force: true });
}

module.exports = {
  CODE_SERVER_VERSION,
  repoRoot,
  cacheDir,
  ensureCodeServer,
  freePort,
  portInUse,
  setupLanguagePack,
  writeDefaultSettings,
  remoteUri,
  workbenchUrl,
  serverEnv,
  startCodeServer,
  stopProcessTree,
  killProcessTreeSync,
  descendants,
  watchParent,
  copyDir,
  sleep,
};
