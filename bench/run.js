#!/usr/bin/env node
// `npm run bench`: the engine's CLI against curl, wget and aria2c, side by side, on nginx over loopback.
// Installs what it needs (Debian packages), generates the files, measures the machine's ceilings, runs every
// case with the tools alternating, checks the sha256 of every output, and writes bench/results/latest.{json,md,svg}.
//
//   node bench/run.js [--runs N] [--quick] [--cases A,B,C,D,E] [--keep]
//
// Not part of `npm test`: it needs root for apt-get (only when a tool is missing) and a few GiB of disk.
'use strict';
const { spawn, spawnSync, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const { parseArgs } = require('node:util');
const { renderMarkdown, renderSvg } = require('./report');

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const FLOOR = path.join(__dirname, 'nodeFloor.js');
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const { values: opt } = parseArgs({
  options: {
    runs: { type: 'string' },
    quick: { type: 'boolean' },
    cases: { type: 'string' },
    keep: { type: 'boolean' },
    out: { type: 'string' },
  },
});
const QUICK = opt.quick === true;
const RUNS = Number(opt.runs ?? (QUICK ? 2 : 5));
const CASES = new Set((opt.cases ?? 'A,B,C,D,E').split(',').map((s) => s.trim().toUpperCase()));
const SIZES = QUICK
  ? { a: 256 * MiB, bCount: 400, c: 16, cSize: 16 * MiB }
  : { a: 1 * GiB, bCount: 2000, c: 16, cSize: 64 * MiB };
const RESULTS_DIR = path.resolve(opt.out ?? path.join(__dirname, 'results'));

function log(...a) {
  process.stderr.write(a.join(' ') + '\n');
}

// ------------------------------------------------------------------------------------------- setup

function ensurePackages() {
  const need = { 'nginx-light': '/usr/sbin/nginx', curl: '/usr/bin/curl', wget: '/usr/bin/wget', aria2: '/usr/bin/aria2c', time: '/usr/bin/time' };
  const missing = Object.keys(need).filter((p) => spawnSync('dpkg', ['-s', p], { stdio: 'ignore' }).status !== 0 || !fs.existsSync(need[p]));
  if (missing.length === 0) {
    return;
  }
  log(`Installing ${missing.join(', ')} (apt-get)…`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  // policy-rc.d-less containers may try to start the packaged nginx on :80; we run our own, so stop nothing of ours.
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Deterministic incompressible bytes (AES-CTR keystream), written in 8 MiB blocks. */
function writeRandomFile(file, size, seed) {
  const key = crypto.createHash('sha256').update(`bench:${seed}`).digest().subarray(0, 16);
  const cipher = crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const fd = fs.openSync(file, 'w');
  const hash = crypto.createHash('sha256');
  const zeros = Buffer.alloc(8 * MiB);
  for (let pos = 0; pos < size; ) {
    const n = Math.min(zeros.length, size - pos);
    const chunk = cipher.update(zeros.subarray(0, n));
    fs.writeSync(fd, chunk);
    hash.update(chunk);
    pos += n;
  }
  fs.closeSync(fd);
  return hash.digest('hex');
}

function sha256File(file) {
  const fd = fs.openSync(file, 'r');
  const hash = crypto.createHash('sha256');
  const buf = Buffer.allocUnsafe(4 * MiB);
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    if (n === 0) {
      break;
    }
    hash.update(buf.subarray(0, n));
  }
  fs.closeSync(fd);
  return hash.digest('hex');
}

function generate(www) {
  const files = { a: null, b: [], c: [] };
  fs.mkdirSync(path.join(www, 'b'), { recursive: true });
  fs.mkdirSync(path.join(www, 'c'), { recursive: true });
  log(`Generating files: A ${SIZES.a / MiB} MiB, B ${SIZES.bCount} × 4–64 KiB, C ${SIZES.c} × ${SIZES.cSize / MiB} MiB…`);
  files.a = { name: 'a.bin', size: SIZES.a, sha256: writeRandomFile(path.join(www, 'a.bin'), SIZES.a, 'a') };
  let rng = 12345;
  const rand = () => ((rng = (rng * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let i = 0; i < SIZES.bCount; i++) {
    const size = Math.round(4096 + rand() * (65536 - 4096));
    const name = `b/f${String(i).padStart(5, '0')}.bin`;
    files.b.push({ name, size, sha256: writeRandomFile(path.join(www, name), size, `b${i}`) });
  }
  for (let i = 0; i < SIZES.c; i++) {
    const name = `c/c${String(i).padStart(2, '0')}.bin`;
    files.c.push({ name, size: SIZES.cSize, sha256: writeRandomFile(path.join(www, name), SIZES.cSize, `c${i}`) });
  }
  return files;
}

async function startNginx(work, www) {
  const port = await freePort();
  const prefix = path.join(work, 'nginx');
  fs.mkdirSync(path.join(prefix, 'logs'), { recursive: true });
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) {
    fs.mkdirSync(path.join(prefix, d), { recursive: true });
  }
  const accessLog = path.join(prefix, 'logs', 'access.log');
  const conf = `
daemon off;
worker_processes auto;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 1024; }
http {
  types { application/octet-stream bin; }
  default_type application/octet-stream;
  log_format bench '$request_uri $status $bytes_sent $body_bytes_sent "$http_range" "$http_if_range" $connection';
  access_log ${accessLog} bench;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  gzip off;
  etag on;
  keepalive_timeout 65;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:${port};
    root ${www};
    location / { }
  }
}
`;
  const confFile = path.join(prefix, 'nginx.conf');
  fs.writeFileSync(confFile, conf);
  const child = spawn('/usr/sbin/nginx', ['-p', prefix, '-c', confFile], { stdio: ['ignore', 'ignore', 'inherit'] });
  child.on('exit', (code) => {
    if (code) {
      log(`nginx exited with ${code}: ${fs.existsSync(path.join(prefix, 'logs', 'error.log')) ? fs.readFileSync(path.join(prefix, 'logs', 'error.log'), 'utf8').slice(-500) : ''}`);
    }
  });
  const origin = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    await sleep(50);
    const r = spawnSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `${origin}/a.bin`, '-r', '0-0']);
    if (String(r.stdout) === '206') {
      return { child, origin, accessLog, port };
    }
  }
  child.kill('SIGTERM');
  throw new Error('nginx did not start');
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function versions() {
  const first = (cmd, args) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return ((r.stdout || '') + (r.stderr || '')).split('\n').find((l) => l.trim()) ?? '?';
  };
  return {
    node: process.version,
    curl: first('curl', ['--version']),
    wget: first('wget', ['--version']),
    aria2c: first('aria2c', ['--version']),
    nginx: first('/usr/sbin/nginx', ['-v']),
  };
}

function machine() {
  const read = (p) => {
    try {
      return fs.readFileSync(p, 'utf8').trim();
    } catch {
      return '?';
    }
  };
  return {
    cpu: os.cpus()[0]?.model ?? '?',
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / GiB),
    kernel: os.release(),
    tcp_rmem: read('/proc/sys/net/ipv4/tcp_rmem').replace(/\s+/g, ' '),
    tcp_wmem: read('/proc/sys/net/ipv4/tcp_wmem').replace(/\s+/g, ' '),
    dirty_ratio: read('/proc/sys/vm/dirty_ratio'),
    dirty_background_ratio: read('/proc/sys/vm/dirty_background_ratio'),
  };
}

// ------------------------------------------------------------------------------------------- measuring

/** Runs argv under /usr/bin/time; returns wall (hrtime), user+sys CPU and peak RSS. */
function timed(argv, o = {}) {
  return new Promise((resolve) => {
    const tf = path.join(os.tmpdir(), `md-bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
    const t0 = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-f', '%U %S %M', '-o', tf, ...argv], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...(o.env ?? {}) } });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    if (o.onSpawn) {
      o.onSpawn(child);
    }
    child.on('close', (code, signal) => {
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      let user = NaN;
      let sys = NaN;
      let rssKiB = NaN;
      try {
        const last = fs.readFileSync(tf, 'utf8').trim().split('\n').pop();
        [user, sys, rssKiB] = last.split(/\s+/).map(Number);
      } catch {
        /* killed */
      }
      fs.rmSync(tf, { force: true });
      resolve({ code, signal, wall, cpu: user + sys, rssMiB: rssKiB / 1024, stderr: stderr.slice(-2000) });
    });
  });
}

function syncAll() {
  spawnSync('sync');
}

function rmrf(p) {
  fs.rmSync(p, { recursive: true, force: true });
}

/** Every output present with the right sha256 (the outputs are named as on the server, flattened). */
function checkOutputs(outDir, files) {
  for (const f of files) {
    const p = path.join(outDir, path.basename(f.name));
    if (!fs.existsSync(p) || fs.statSync(p).size !== f.size || sha256File(p) !== f.sha256) {
      return `${path.basename(f.name)} missing or wrong`;
    }
  }
  return undefined;
}

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) {
    return NaN;
  }
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return s[lo] + (s[hi] - s[lo]) * (i - lo);
}

function summarize(runs) {
  const ok = runs.filter((r) => r.ok);
  const pick = (k) => ok.map((r) => r[k]).filter((x) => Number.isFinite(x));
  const med = (k) => quantile(pick(k), 0.5);
  return {
    runs: runs.length,
    failures: runs.length - ok.length,
    wall: { median: med('wall'), p10: quantile(pick('wall'), 0.1), p90: quantile(pick('wall'), 0.9), min: Math.min(...pick('wall')), max: Math.max(...pick('wall')) },
    cpu: med('cpu'),
    rssMiB: med('rssMiB'),
    eventLoop: ok.some((r) => r.eventLoop)
      ? { p50: quantile(ok.map((r) => r.eventLoop?.p50).filter(Number.isFinite), 0.5), p99: quantile(ok.map((r) => r.eventLoop?.p99).filter(Number.isFinite), 0.5), max: Math.max(...ok.map((r) => r.eventLoop?.max ?? 0)) }
      : undefined,
  };
}

// ------------------------------------------------------------------------------------------- tools

function fsyncCmd(outDir) {
  // coreutils `sync FILE...` fsyncs each named file (what the engine does for each file it finishes).
  return `sync ${shq(outDir)}/* ${shq(outDir)}`;
}

function shq(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

/** A curl config file: one url/output pair per file. */
function curlConfig(work, origin, files, outDir, tag) {
  const p = path.join(work, `curl-${tag}.cfg`);
  fs.writeFileSync(p, files.map((f) => `url = "${origin}/${f.name}"\noutput = "${path.join(outDir, path.basename(f.name))}"\n`).join(''));
  return p;
}

function urlList(work, origin, files, tag) {
  const p = path.join(work, `urls-${tag}.txt`);
  fs.writeFileSync(p, files.map((f) => `${origin}/${f.name}`).join('\n') + '\n');
  return p;
}

function singleFileTools(origin, file, ctx) {
  const url = `${origin}/${file.name}`;
  const out = (d) => path.join(d, file.name);
  const aria = (d, extra) => ['aria2c', '-q', '--file-allocation=none', '--allow-overwrite=true', '--auto-file-renaming=false', '--console-log-level=error', ...extra, '-d', d, '-o', file.name, url];
  return {
    cli: (d) => ({ argv: ['node', CLI, 'get', url, '-o', d, '--store', path.join(ctx.work, 'store-' + path.basename(d))], eventLoop: true }),
    'cli --sha256': (d) => ({ argv: ['node', CLI, 'get', url, '-o', d, '--store', path.join(ctx.work, 'store-' + path.basename(d)), '--sha256', file.sha256], eventLoop: true }),
    'cli --segments 1': (d) => ({ argv: ['node', CLI, 'get', url, '-o', d, '--segments', '1', '--store', path.join(ctx.work, 'store-' + path.basename(d))], eventLoop: true }),
    'node floor': (d) => ({ argv: ['node', FLOOR, '-o', d, url] }),
    curl: (d) => ({ argv: ['curl', '-s', '-o', out(d), url] }),
    'curl + fsync': (d) => ({ argv: ['sh', '-c', `curl -s -o ${shq(out(d))} ${shq(url)} && ${fsyncCmd(d)}`] }),
    wget: (d) => ({ argv: ['wget', '-q', '-O', out(d), url] }),
    'aria2c -x1': (d) => ({ argv: aria(d, ['-x1', '-s1']) }),
    'aria2c -x8 -s8 -k1M': (d) => ({ argv: aria(d, ['-x8', '-s8', '-k1M']) }),
  };
}

function manyFileTools(origin, files, ctx, tag) {
  const list = urlList(ctx.work, origin, files, tag);
  const aria = (d, extra) => ['aria2c', '-q', '--file-allocation=none', '--allow-overwrite=true', '--auto-file-renaming=false', '--console-log-level=error', ...extra, '-d', d, '-i', list];
  return {
    'cli --concurrency 16': (d) => ({ argv: ['node', CLI, 'get', '-i', list, '-o', d, '--concurrency', '16', '--store', path.join(ctx.work, 'store-' + path.basename(d))], eventLoop: true }),
    'node floor --parallel 16': (d) => ({ argv: ['node', FLOOR, '-o', d, '--parallel', '16', '-i', list] }),
    curl: (d) => ({ argv: ['curl', '-s', '-K', curlConfig(ctx.work, origin, files, d, tag)] }),
    'curl + fsync': (d) => ({ argv: ['sh', '-c', `curl -s -K ${shq(curlConfig(ctx.work, origin, files, d, tag))} && ${fsyncCmd(d)}`] }),
    'curl --parallel-max 16': (d) => ({ argv: ['curl', '-s', '-Z', '--parallel-max', '16', '-K', curlConfig(ctx.work, origin, files, d, tag)] }),
    'curl --parallel-max 16 + fsync': (d) => ({ argv: ['sh', '-c', `curl -s -Z --parallel-max 16 -K ${shq(curlConfig(ctx.work, origin, files, d, tag))} && ${fsyncCmd(d)}`] }),
    wget: (d) => ({ argv: ['wget', '-q', '-i', list, '-P', d] }),
    'aria2c -j16 -i list': (d) => ({ argv: aria(d, ['-j16', '-x1', '-s1']) }),
  };
}

/** One case: every tool once per round, in an order that rotates each round. */
async function runCase(name, tools, files, ctx) {
  const names = Object.keys(tools);
  ctx.load[name] = { before: os.loadavg()[0] };
  const results = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < RUNS; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length]);
    for (const tool of order) {
      const outDir = path.join(ctx.work, 'out');
      rmrf(outDir);
      fs.mkdirSync(outDir, { recursive: true });
      rmrf(path.join(ctx.work, 'store-out'));
      syncAll();
      await sleep(200);
      const spec = tools[tool](outDir);
      const elFile = path.join(ctx.work, 'eventloop.json');
      rmrf(elFile);
      const r = await timed(spec.argv, { env: spec.eventLoop ? { MD_CLI_EVENT_LOOP_STATS: elFile } : {} });
      const bad = r.code === 0 ? checkOutputs(outDir, files) : `exit ${r.code ?? r.signal}: ${r.stderr.trim().split('\n').pop()}`;
      const run = { wall: r.wall, cpu: r.cpu, rssMiB: r.rssMiB, ok: !bad, ...(bad ? { error: bad } : {}) };
      if (spec.eventLoop && fs.existsSync(elFile)) {
        run.eventLoop = JSON.parse(fs.readFileSync(elFile, 'utf8'));
      }
      results[tool].push(run);
      log(`  ${name} #${round + 1} ${tool.padEnd(32)} ${r.wall.toFixed(2)} s  cpu ${r.cpu.toFixed(2)} s  rss ${r.rssMiB.toFixed(0)} MiB${run.eventLoop ? `  loop p99 ${run.eventLoop.p99} ms` : ''}${bad ? '  FAILED: ' + bad : ''}`);
      rmrf(outDir);
    }
  }
  syncAll();
  ctx.load[name].after = os.loadavg()[0];
  return Object.fromEntries(names.map((n) => [n, { ...summarize(results[n]), samples: results[n] }]));
}

// ------------------------------------------------------------------------------------------- case D

function logBytesFor(accessLog, from, pathSuffix) {
  const text = fs.readFileSync(accessLog, 'utf8').slice(from);
  let bytes = 0;
  const lines = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+) (\d+) (\d+) (\d+) "([^"]*)" "([^"]*)"/.exec(line);
    if (m && m[1].endsWith(pathSuffix)) {
      bytes += Number(m[4]);
      lines.push({ status: Number(m[2]), body: Number(m[4]), range: m[5], ifRange: m[6] });
    }
  }
  return { bytes, lines };
}

/** Kills `argv` once `progress()` reaches half the file, then runs `again` to the end; bytes fetched twice from nginx's log. */
async function killAndResume(label, argv, again, progress, file, ctx) {
  const outDir = path.join(ctx.work, 'out');
  rmrf(outDir);
  fs.mkdirSync(outDir, { recursive: true });
  rmrf(path.join(ctx.work, 'store-d'));
  syncAll();
  const mark = fs.statSync(ctx.accessLog).size;
  let killedAt = 0;
  const first = await timed(argv(outDir), {
    onSpawn: (child) => {
      const t = setInterval(() => {
        const p = progress(outDir);
        if (p >= file.size / 2) {
          killedAt = p;
          clearInterval(t);
          // /usr/bin/time's child is the tool: SIGKILL it by pid (time then reports the signal).
          for (const pid of childPids(child.pid)) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              /* already gone */
            }
          }
        }
      }, 5);
      child.on('close', () => clearInterval(t));
    },
  });
  await sleep(300); // let nginx log the aborted responses
  const second = await timed(again(outDir));
  await sleep(300);
  const { bytes, lines } = logBytesFor(ctx.accessLog, mark, file.name);
  const bad = second.code === 0 ? checkOutputs(outDir, [file]) : `exit ${second.code}: ${second.stderr.trim().split('\n').pop()}`;
  rmrf(outDir);
  const wasted = bytes - file.size;
  log(`  D ${label.padEnd(20)} killed at ${(killedAt / MiB).toFixed(0)} MiB (first exit ${first.signal ?? first.code}), fetched ${bytes} bytes for ${file.size}: ${wasted} twice (${((wasted / file.size) * 100).toFixed(2)} %)${bad ? '  FAILED: ' + bad : ''}`);
  return {
    killedAtBytes: killedAt,
    bytesFetched: bytes,
    bytesFetchedTwice: wasted,
    wastePercent: (wasted / file.size) * 100,
    // Every ranged request (segments of the first run, resumes of the second) carried If-Range. (Log lines come
    // in the order responses ended, so the first run's plain GET is not necessarily the first line.)
    resumeValidated: lines.some(isRanged) && lines.filter(isRanged).every((l) => l.ifRange !== '-' && l.ifRange !== ''),
    requests: lines.length,
    ranges: lines.map((l) => `${l.status} ${l.range} ${l.body}`),
    ok: !bad,
    ...(bad ? { error: bad } : {}),
  };
}

function isRanged(l) {
  return Boolean(l.range) && l.range !== '-';
}

/** Bytes the CLI has in its temporary file (sparse for segments: count allocated blocks). */
function cliProgress(outDir) {
  try {
    const f = fs.readdirSync(outDir).find((n) => n.endsWith('.mdpart'));
    if (!f) {
      return 0;
    }
    const st = fs.statSync(path.join(outDir, f));
    return Math.min(st.size, st.blocks * 512);
  } catch {
    return 0;
  }
}

function childPids(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function fileSize(p) {
  try {
    return fs.statSync(p).size;
  } catch {
    return 0;
  }
}

// ------------------------------------------------------------------------------------------- main

async function main() {
  if (!fs.existsSync(CLI)) {
    throw new Error(`${CLI} is missing; run npm run build first.`);
  }
  ensurePackages();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'md-bench-'));
  fs.chmodSync(work, 0o755); // nginx's workers run as www-data
  const www = path.join(work, 'www');
  log(`Work folder ${work} (disk: ${spawnSync('df', ['-h', '--output=avail', work], { encoding: 'utf8' }).stdout.trim().split('\n').pop()} free)`);
  let nginx;
  const started = new Date();
  try {
    const files = generate(www);
    nginx = await startNginx(work, www);
    // Other work on the machine shows in the 1-minute load average (recorded before and after each case).
    const ctx = { work, origin: nginx.origin, accessLog: nginx.accessLog, load: {} };
    log(`nginx ${nginx.origin} (pid ${nginx.child.pid})`);

    // Ceilings.
    log('Ceilings…');
    const loop = [];
    for (let i = 0; i < 3; i++) {
      const r = spawnSync('curl', ['-s', '-o', '/dev/null', '-w', '%{speed_download}', `${nginx.origin}/a.bin`], { encoding: 'utf8' });
      loop.push(Number(r.stdout));
    }
    const ddFile = path.join(work, 'dd.tmp');
    const dd = [];
    for (let i = 0; i < 2; i++) {
      const r = spawnSync('dd', ['if=/dev/zero', `of=${ddFile}`, 'bs=1M', `count=${QUICK ? 256 : 1024}`, 'conv=fdatasync'], { encoding: 'utf8' });
      const m = /(\d+) bytes .* s, /.exec(r.stderr);
      const secs = /, ([\d.]+) s,/.exec(r.stderr);
      if (m && secs) {
        dd.push(Number(m[1]) / Number(secs[1]));
      }
      rmrf(ddFile);
    }
    const hashBuf = crypto.randomBytes(256 * MiB);
    const h0 = process.hrtime.bigint();
    crypto.createHash('sha256').update(hashBuf).digest();
    const sha = (hashBuf.length / Number(process.hrtime.bigint() - h0)) * 1e9;
    const ceilings = {
      loopbackCurlDevNullMBps: quantile(loop, 0.5) / 1e6,
      diskDdFdatasyncMBps: quantile(dd, 0.5) / 1e6,
      sha256OneCoreMBps: sha / 1e6,
    };
    log(`  loopback (curl → /dev/null) ${ceilings.loopbackCurlDevNullMBps.toFixed(0)} MB/s, disk (dd conv=fdatasync) ${ceilings.diskDdFdatasyncMBps.toFixed(0)} MB/s, sha256 ${ceilings.sha256OneCoreMBps.toFixed(0)} MB/s`);

    const cases = {};
    if (CASES.has('A') || CASES.has('E')) {
      log(`Case A: one ${SIZES.a / MiB} MiB file`);
      cases.A = await runCase('A', singleFileTools(nginx.origin, files.a, ctx), [files.a], ctx);
    }
    if (CASES.has('B')) {
      log(`Case B: ${SIZES.bCount} files of 4–64 KiB`);
      cases.B = await runCase('B', manyFileTools(nginx.origin, files.b, ctx, 'b'), files.b, ctx);
    }
    if (CASES.has('C')) {
      log(`Case C: ${SIZES.c} files of ${SIZES.cSize / MiB} MiB at once`);
      const t = manyFileTools(nginx.origin, files.c, ctx, 'c');
      delete t.wget;
      delete t.curl;
      delete t['curl + fsync'];
      cases.C = await runCase('C', t, files.c, ctx);
    }
    if (CASES.has('D')) {
      log('Case D: SIGKILL at 50 %, then resume');
      const url = `${nginx.origin}/${files.a.name}`;
      const store = path.join(work, 'store-d');
      const cliArgs = (d) => ['node', CLI, 'get', url, '-o', d, '--store', store];
      const d = { cli: [], 'curl -C -': [] };
      for (let i = 0; i < Math.min(RUNS, 3); i++) {
        d.cli.push(await killAndResume('cli', cliArgs, cliArgs, cliProgress, files.a, ctx));
        const out = (dir) => path.join(dir, files.a.name);
        d['curl -C -'].push(
          await killAndResume('curl -C -', (dir) => ['curl', '-s', '-o', out(dir), url], (dir) => ['curl', '-s', '-C', '-', '-o', out(dir), url], (dir) => fileSize(out(dir)), files.a, ctx),
        );
      }
      cases.D = Object.fromEntries(
        Object.entries(d).map(([k, runs]) => [k, { wastePercentMedian: quantile(runs.map((r) => r.wastePercent), 0.5), wastePercentMax: Math.max(...runs.map((r) => r.wastePercent)), runs }]),
      );
    }
    const result = {
      started: started.toISOString(),
      finished: new Date().toISOString(),
      quick: QUICK,
      runsPerCell: RUNS,
      sizes: SIZES,
      machine: machine(),
      versions: versions(),
      ceilings,
      loadAverage: ctx.load,
      cases,
    };
    result.targets = targets(result);
    fs.mkdirSync(RESULTS_DIR, { recursive: true });
    const stem = QUICK ? 'quick' : 'latest';
    fs.writeFileSync(path.join(RESULTS_DIR, `${stem}.json`), JSON.stringify(result, null, 2) + '\n');
    fs.writeFileSync(path.join(RESULTS_DIR, `${stem}.md`), renderMarkdown(result));
    fs.writeFileSync(path.join(RESULTS_DIR, `${stem}.svg`), renderSvg(result));
    log(`\nWrote ${path.join(RESULTS_DIR, stem)}.{json,md,svg}\n`);
    process.stdout.write(renderMarkdown(result));
  } finally {
    if (nginx) {
      nginx.child.kill('SIGTERM');
      await new Promise((r) => (nginx.child.exitCode !== null ? r() : nginx.child.once('exit', r)));
    }
    if (!opt.keep) {
      rmrf(work);
    }
  }
}

/** The issue's targets, as ratios of medians in this run. */
function targets(r) {
  const A = r.cases.A;
  const B = r.cases.B;
  const C = r.cases.C;
  const D = r.cases.D;
  const t = [];
  const ratio = (c, a, b) => (c && c[a] && c[b] ? c[a].wall.median / c[b].wall.median : NaN);
  if (A) {
    t.push({ id: 'A1', what: 'A: CLI ≤ 1.0× (curl + fsync)', value: ratio(A, 'cli', 'curl + fsync'), limit: 1 });
    t.push({ id: 'A2', what: 'A: CLI ≤ 1.0× aria2c -x8', value: ratio(A, 'cli', 'aria2c -x8 -s8 -k1M'), limit: 1 });
    t.push({ id: 'A3', what: 'A: CLI peak RSS ≤ 150 MB', value: A.cli.rssMiB * 1.048576, limit: 150, unit: 'MB' });
  }
  if (B) {
    t.push({ id: 'B', what: 'B: CLI ≤ 1.0× (curl --parallel-max 16 + fsync)', value: ratio(B, 'cli --concurrency 16', 'curl --parallel-max 16 + fsync'), limit: 1 });
  }
  if (C) {
    t.push({ id: 'C', what: 'C: CLI ≤ 1.0× (curl --parallel-max 16 + fsync)', value: ratio(C, 'cli --concurrency 16', 'curl --parallel-max 16 + fsync'), limit: 1 });
  }
  if (D) {
    t.push({ id: 'D', what: 'D: bytes fetched twice ≤ 1 % (resume behind If-Range)', value: D.cli.wastePercentMedian, limit: 1, unit: '%' });
  }
  if (A?.cli?.eventLoop) {
    t.push({ id: 'E', what: 'E: event-loop delay p99 < 20 ms during A', value: A.cli.eventLoop.p99, limit: 20, unit: 'ms' });
  }
  return t.map((x) => ({ ...x, met: Number.isFinite(x.value) && x.value <= x.limit }));
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
