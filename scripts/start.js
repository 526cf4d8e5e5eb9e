#!/usr/bin/env node
// `npm start`: try the extension by hand, offline, in a browser.
//
//   npm start [-- --reset-demo]        PORT=8081 npm start
//
// 1. installs code-server 4.100.3 if needed (scripts/ensure-code-server.sh),
// 2. builds the extension (`npm run build`) and the demo server (`tsc -p tsconfig.test.json`),
// 3. starts the demo download server on http://127.0.0.1:8787/,
// 4. copies demo/workspace/ to <cache>/demo-workspace (once; --reset-demo copies it again),
// 5. starts code-server on 127.0.0.1:$PORT (default 8080) with a persistent user-data dir in the
//    cache (jobs survive restarts) and prints the URL that loads this repo as the extension under
//    development.
// Ctrl+C (SIGINT) or SIGTERM stops everything it started.
'use strict';

const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const readline = require('readline');
const cs = require('./lib/code-server');

const repoRoot = cs.repoRoot;
const DEMO_PORT = 8787;

const argv = process.argv.slice(2);
if (argv.includes('-h') || argv.includes('--help')) {
  console.log('usage: npm start [-- --reset-demo]   (PORT=<n> to serve VS Code on another port than 8080)');
  process.exit(0);
}
for (const a of argv) {
  if (a !== '--reset-demo') {
    console.error(`start: unknown argument ${a} (try --help)`);
    process.exit(2);
  }
}
const resetDemo = argv.includes('--reset-demo');
const port = Number(process.env.PORT || 8080);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`start: PORT must be a port number, got ${JSON.stringify(process.env.PORT)}`);
  process.exit(2);
}

const say = (msg) => console.error(`[start] ${msg}`);
const cache = cs.cacheDir();
const children = []; // { name, proc }
let stopping = false;

async function stopAll(code) {
  if (stopping) {
    return;
  }
  stopping = true;
  for (const c of children.reverse()) {
    say(`stopping ${c.name} (pid ${c.proc.pid})`);
    await cs.stopProcessTree(c.proc.pid);
  }
  process.exit(code);
}
process.on('exit', () => {
  if (!stopping) {
    for (const c of children) {
      cs.killProcessTreeSync(c.proc.pid);
    }
  }
});
for (const [sig, code] of [['SIGINT', 0], ['SIGTERM', 0], ['SIGHUP', 129]]) {
  process.on(sig, () => {
    if (!stopping) {
      say(`${sig}: stopping`);
    }
    void stopAll(code);
  });
}

cs.watchParent(() => {
  say('parent process went away: stopping');
  void stopAll(1);
});

function fail(msg) {
  console.error(`start: ${msg}`);
  void stopAll(1);
}

function run(cmd, args, what) {
  say(what);
  const r = spawnSync(cmd, args, { cwd: repoRoot, stdio: 'inherit' });
  return r.status === 0;
}

/** Starts the demo server; resolves once it prints its "listening" line. */
function startDemoServer() {
  const script = path.join(repoRoot, 'out', 'demo', 'demoServer.js');
  if (!fs.existsSync(script)) {
    throw new Error(`${script} is missing (the demo server did not compile)`);
  }
  const proc = spawn(process.execPath, [script, '--port', String(DEMO_PORT)], {
    cwd: repoRoot,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push({ name: 'demo server', proc });
  readline.createInterface({ input: proc.stderr }).on('line', (l) => console.error(`[demo] ${l}`));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the demo server did not report ready within 20 s')), 20_000);
    readline.createInterface({ input: proc.stdout }).on('line', (l) => {
      const m = /^Demo server listening on (http:\/\/\S+)/.exec(l);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      } else {
        console.error(`[demo] ${l}`);
      }
    });
    proc.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`the demo server exited (${code ?? sig})`));
    });
  });
}

function prepareWorkspace() {
  const src = path.join(repoRoot, 'demo', 'workspace');
  const dest = path.join(cache, 'demo-workspace');
  if (resetDemo && fs.existsSync(dest)) {
    say(`--reset-demo: replacing ${dest}`);
    fs.rmSync(dest, { recursive: true, force: true });
  }
  if (!fs.existsSync(dest)) {
    fs.mkdirSync(cache, { recursive: true });
    cs.copyDir(src, dest);
    say(`demo workspace copied to ${dest}`);
  } else {
    say(`using the existing demo workspace ${dest} (--reset-demo to start over)`);
  }
  return dest;
}

async function main() {
  if (await cs.portInUse(port)) {
    throw new Error(`port ${port} on 127.0.0.1 is busy (a previous \`npm start\`?). Stop it, or choose another: PORT=${port + 1} npm start`);
  }
  if (await cs.portInUse(DEMO_PORT)) {
    throw new Error(`port ${DEMO_PORT} on 127.0.0.1 (the demo server's) is busy: stop whatever uses it (a previous \`npm start\`?)`);
  }

  let codeServerDir;
  try {
    codeServerDir = cs.ensureCodeServer();
  } catch (e) {
    throw new Error(e.message);
  }

  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  if (!run(npm, ['run', 'build'], 'building the extension (npm run build)')) {
    throw new Error('`npm run build` failed (see above)');
  }
  const tsc = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!run(process.execPath, [tsc, '-p', 'tsconfig.test.json'], 'compiling the demo server (tsc -p tsconfig.test.json)')) {
    // tsc still emits JavaScript on type errors; carry on if the demo server came out.
    say('tsc reported errors (see above); continuing with what it emitted');
  }

  const demoUrl = await startDemoServer();
  say(`demo server: ${demoUrl}/`);

  const workspace = prepareWorkspace();
  const userDataDir = path.join(cache, 'user-data');
  const extensionsDir = path.join(cache, 'extensions');
  fs.mkdirSync(userDataDir, { recursive: true });
  fs.mkdirSync(extensionsDir, { recursive: true });
  cs.writeDefaultSettings(userDataDir, { 'workbench.startupEditor': 'readme' });

  say(`starting code-server on 127.0.0.1:${port} (log: ${path.join(cache, 'code-server.log')})`);
  await cs.startCodeServer({
    codeServerDir,
    port,
    userDataDir,
    extensionsDir,
    workspace,
    env: {},
    logFile: path.join(cache, 'code-server.log'),
    onSpawn: (proc) => children.push({ name: 'code-server', proc }),
    timeoutMs: 60_000,
  });

  for (const c of children) {
    c.proc.once('exit', (code, sig) => {
      if (!stopping) {
        fail(`${c.name} exited unexpectedly (${code ?? sig})`);
      }
    });
  }

  const url = cs.workbenchUrl({ port, folder: workspace, extensionDevelopmentPath: repoRoot });
  console.log('');
  console.log('Managed Downloads is running. Open this URL in a browser:');
  console.log('');
  console.log(`  ${url}`);
  console.log('');
  console.log(`Demo download server: ${demoUrl}/   Workspace: ${workspace}`);
  console.log('Press Ctrl+C to stop.');
}

main().catch((e) => fail(e.message));
