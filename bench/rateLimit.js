#!/usr/bin/env node
// Speed-limit accuracy (contract §10): for each limit × (1 connection, 8 segments), runs one download under
// the engine's global limit for --seconds and prints the average, the worst 10 s window (its deviation from
// the limit) and the worst second, all measured from the bytes the SERVER handed to its sockets over time
// (each write of --piece bytes timestamped when the socket took it), not from the engine's counters.
//
//   npx tsc -p tsconfig.test.json && npm run bench:rate -- [--seconds 25] [--limits 64k,256k,1M,10M] [--segments 1,8]
//                                                          [--warm-up 2] [--skip-unlimited] [--server-delay MS]
//
// Target: over any 10 s window of a transfer longer than 20 s, within ±5 % of the limit when the network
// could go faster (the "unlimited" line shows how fast it could go here); no second above 2× the limit.
// The first --warm-up seconds are left out of the windows: when a connection opens, the server's kernel
// takes a send buffer's worth (loopback: up to a few MB) before the client has read a byte, whatever the
// client does. That head start is printed on its own ("start burst": what the server sent in the warm-up,
// as seconds of the limit).
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');

const engineArg = process.argv.indexOf('--engine');
// --engine DIR: another build's out/src/engine (before/after).
const out = engineArg > 0 ? path.resolve(process.argv[engineArg + 1]) : path.join(__dirname, '..', 'out', 'src', 'engine');
if (!fs.existsSync(path.join(out, 'index.js'))) {
  console.error('Build first: npx tsc -p tsconfig.test.json');
  process.exit(2);
}
const { DownloadEngine, parseRate } = require(out);

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '25' },
    limits: { type: 'string', default: '64k,256k,1M,10M,100M,500M' },
    segments: { type: 'string', default: '1,8' },
    'warm-up': { type: 'string', default: '2' },
    piece: { type: 'string', default: '16k' },
    'skip-unlimited': { type: 'boolean', default: false },
    timeline: { type: 'boolean', default: false },
    server: { type: 'string', default: 'ethernet' },
    engine: { type: 'string' },
    // Python server only: it waits this long before answering each request (a far server's round trip).
    'server-delay': { type: 'string', default: '0' },
  },
});
const seconds = Number(values.seconds);
const warmUpMs = Number(values['warm-up']) * 1000;
const pieceBytes = parseRate(values.piece);
const limits = values.limits.split(',').map((s) => parseRate(s));
const segmentCounts = values.segments.split(',').map(Number);

/**
 * A server of one large entity (ranges, strong ETag). It writes `pieceBytes` at a time, only when the
 * socket takes more, and timestamps each piece when the socket took it: `sent` is [ms, bytes] of every piece.
 */
function startNodeServer(size) {
  const piece = Buffer.alloc(pieceBytes, 0x61);
  const sent = [];
  let requests = 0;
  let connections = 0;
  const server = http.createServer((req, res) => {
    requests++;
    let start = 0;
    let end = size - 1;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const headers = { 'Accept-Ranges': 'bytes', ETag: '"bench-entity"', 'Content-Type': 'application/octet-stream' };
    if (m) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      res.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${size}`, 'Content-Length': end - start + 1 });
    } else {
      res.writeHead(200, { ...headers, 'Content-Length': size });
    }
    let left = end - start + 1;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, piece.length);
        left -= n;
        const ok = res.write(n === piece.length ? piece : piece.subarray(0, n), (err) => err || sent.push([performance.now(), n]));
        if (!ok) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    res.on('close', () => (left = 0));
    pump();
  });
  server.on('connection', () => connections++);
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${server.address().port}/file`,
        requests: () => requests,
        connections: () => connections,
        timeline: async () => sent,
        close: () => {
          server.closeAllConnections();
          server.close();
        },
      }),
    ),
  );
}

/** bench/rateServer.py: the same entity, over segments of an Ethernet path (see there); or loopback's own. */
function startPythonServer(size, loopbackDefaults) {
  const args = [path.join(__dirname, 'rateServer.py'), String(size), String(pieceBytes), ...(loopbackDefaults ? ['--loopback-defaults'] : [])];
  const env = { ...process.env, RATE_SERVER_DELAY_MS: values['server-delay'] };
  const child = require('node:child_process').spawn('python3', args, { stdio: ['pipe', 'pipe', 'inherit'], env });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', (d) => {
      const base = `http://127.0.0.1:${Number(String(d).trim())}`;
      let requests = 0;
      let connections = 0;
      resolve({
        url: `${base}/file`,
        requests: () => requests,
        connections: () => connections,
        timeline: async () => {
          const answer = await (await fetch(`${base}/sent`)).json();
          const now = performance.now();
          requests = answer.requests;
          connections = answer.connections - 1; // not the one asking for the timeline
          return answer.sent.map(([ago, n]) => [now - ago * 1000, n]);
        },
        close: () => child.stdin.end(),
      });
    });
  });
}

/** Bytes sent up to each time of `grid` (ms), from the [ms, bytes] pieces (sorted by time). */
function cumulativeAt(sent, grid) {
  const result = [];
  let i = 0;
  let cum = 0;
  for (const t of grid) {
    while (i < sent.length && sent[i][0] <= t) {
      cum += sent[i][1];
      i++;
    }
    result.push(cum);
  }
  return result;
}

/** Average, worst 10 s window (farthest from the limit) and worst second, on a 50 ms grid from `fromMs` to `toMs`. */
function stats(sent, limit, fromMs, toMs) {
  const stepMs = 50;
  const grid = [];
  for (let t = fromMs; t <= toMs + 1e-9; t += stepMs) {
    grid.push(t);
  }
  const cum = cumulativeAt(sent, grid);
  const rate = (i, j) => ((cum[j] - cum[i]) * 1000) / (grid[j] - grid[i]);
  const average = rate(0, grid.length - 1);
  const w10 = 10_000 / stepMs;
  const w1 = 1_000 / stepMs;
  let worstWindow;
  let worstSecond = 0;
  for (let i = 0; i + w1 < grid.length; i++) {
    worstSecond = Math.max(worstSecond, rate(i, i + w1));
    if (i + w10 < grid.length) {
      const r = rate(i, i + w10);
      if (worstWindow === undefined || Math.abs(r - limit) > Math.abs(worstWindow - limit)) {
        worstWindow = r;
      }
    }
  }
  return { average, worstWindow, worstSecond };
}

function fmt(bps) {
  if (bps >= 1024 * 1024) {
    return `${(bps / 1024 / 1024).toFixed(2)} MiB/s`;
  }
  return `${(bps / 1024).toFixed(1)} KiB/s`;
}

async function runCase(limit, segments) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'md-bench-rate-'));
  // Big enough that it is still transferring at the end (the unlimited case is stopped by the clock anyway).
  const size = Math.max(64 * 1024 * 1024, Math.ceil((limit || 400 * 1024 * 1024) * (seconds + 5) * 1.2));
  const server = values.server === 'node' ? await startNodeServer(size) : await startPythonServer(size, values.server === 'loopback');
  const { requests, connections, url } = server;
  const engine = await DownloadEngine.open({
    storeDir: path.join(dir, 'store'),
    maxBytesPerSecond: limit,
    segmentsPerFile: segments,
    minSegmentBytes: 1024 * 1024,
    checkpointIntervalMs: 2_000,
    retryDelayFloorSeconds: 0,
  });
  const job = await engine.createJob({ displayName: 'bench' });
  await job.addFile(url, path.join(dir, 'file.bin'));
  const t0 = performance.now();
  await job.resume();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const endMs = performance.now() - t0;
  const readByEngine = job.getProgress().bytesTransferred;
  const sent = await server.timeline();
  const served = `${connections()}/${requests()}`;
  const limited = job.speedLimited;
  await job.cancel();
  await engine.dispose();
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
  const pieces = sent.map(([t, n]) => [t - t0, n]).sort((a, b) => a[0] - b[0]);
  if (values.timeline) {
    const perSecond = [];
    for (const [t, n] of pieces) {
      perSecond[Math.floor(t / 1000)] = (perSecond[Math.floor(t / 1000)] ?? 0) + n;
    }
    console.log(`  KiB sent per second: ${Array.from(perSecond, (b) => Math.round((b ?? 0) / 1024)).join(' ')}`);
  }
  const server_ = stats(pieces, limit, Math.min(warmUpMs, endMs - 1_000), endMs);
  const startBurst = pieces.filter(([t]) => t <= warmUpMs).reduce((s, [, n]) => s + n, 0);
  return { ...server_, startBurst, readByEngine: (readByEngine * 1000) / endMs, served, limited };
}

(async () => {
  console.log(
    `Speed limits, measured at the server (${values.piece} pieces): ${seconds} s per run, windows from ${warmUpMs / 1000} s on; ` +
      `${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(1)}, node ${process.version}` +
      (values['server-delay'] !== '0' ? `, server answers each request after ${values['server-delay']} ms` : ''),
  );
  console.log('| limit | segments (connections/requests) | average | worst 10 s window (deviation) | worst second (× limit) | start burst | engine read avg | limited |');
  console.log('|---|---|---|---|---|---|---|---|');
  const cases = [];
  if (!values['skip-unlimited']) {
    for (const s of segmentCounts) {
      cases.push([0, s]);
    }
  }
  for (const l of limits) {
    for (const s of segmentCounts) {
      cases.push([l, s]);
    }
  }
  for (const [limit, segments] of cases) {
    const r = await runCase(limit, segments);
    const dev = limit && r.worstWindow !== undefined ? ` (${(((r.worstWindow - limit) / limit) * 100).toFixed(1)} %)` : '';
    const window = r.worstWindow !== undefined ? `${fmt(r.worstWindow)}${dev}` : 'run too short';
    const second = limit ? `${fmt(r.worstSecond)} (${(r.worstSecond / limit).toFixed(2)}×)` : fmt(r.worstSecond);
    const burst = limit ? `${(r.startBurst / 1024).toFixed(0)} KiB (${(r.startBurst / limit).toFixed(1)} s)` : '';
    console.log(
      `| ${limit ? fmt(limit) : 'unlimited'} | ${segments} (${r.served}) | ${fmt(r.average)} | ${window} | ${second} | ${burst} | ${fmt(r.readByEngine)} | ${limit ? r.limited : ''} |`,
    );
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
