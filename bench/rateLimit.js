#!/usr/bin/env node
// Speed-limit accuracy (contract §10): for each limit × (1 connection, 8 segments), runs one download under
// the engine's global limit for --seconds and prints the measured average, the worst 10 s window (its
// deviation from the limit) and the worst second, measured as the bytes the transfer read (what the limiter
// paces, sampled every 100 ms). The server's count (bytes its socket took) is printed too: on loopback the
// kernel's socket buffers take several MB at once, so it runs ahead of the reader by that much.
//
//   npx tsc -p tsconfig.test.json && npm run bench:rate -- [--seconds 20] [--limits 64k,1M,10M,100M,500M] [--segments 1,8] [--skip-unlimited]
//
// Target: over any 10 s window of a transfer longer than 20 s, within ±5 % of the limit when the network
// could go faster (the "unlimited" line shows how fast it could go here); no second above 2× the limit.
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');

const out = path.join(__dirname, '..', 'out', 'src', 'engine');
if (!fs.existsSync(path.join(out, 'index.js'))) {
  console.error('Build first: npx tsc -p tsconfig.test.json');
  process.exit(2);
}
const { DownloadEngine, parseRate } = require(out);

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    limits: { type: 'string', default: '64k,1M,10M,100M,500M' },
    segments: { type: 'string', default: '1,8' },
    'skip-unlimited': { type: 'boolean', default: false },
  },
});
const seconds = Number(values.seconds);
const limits = values.limits.split(',').map((s) => parseRate(s));
const segmentCounts = values.segments.split(',').map(Number);

/** A server of one endless-looking entity (ranges, strong ETag), counting what its sockets take per 100 ms. */
function startServer(size) {
  const block = Buffer.alloc(1024 * 1024, 0x61);
  const sent = [];
  const server = http.createServer((req, res) => {
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
        const n = Math.min(left, block.length);
        left -= n;
        const ok = res.write(n === block.length ? block : block.subarray(0, n), () => sent.push([performance.now(), n]));
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
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, sent, url: `http://127.0.0.1:${server.address().port}/file` })));
}

function stats(samples, limit, fromMs) {
  // samples: [t, cumulativeBytes] every ~100 ms; rates over windows that start after the warm-up.
  const rateBetween = (a, b) => ((b[1] - a[1]) * 1000) / (b[0] - a[0]);
  const after = samples.filter(([t]) => t >= fromMs);
  const first = after[0];
  const last = after[after.length - 1];
  const average = rateBetween(first, last);
  let worstWindow = average;
  let worstSecond = 0;
  for (let i = 0; i < after.length; i++) {
    const j10 = after.findIndex(([t]) => t >= after[i][0] + 10_000);
    if (j10 > 0) {
      const r = rateBetween(after[i], after[j10]);
      if (Math.abs(r - limit) > Math.abs(worstWindow - limit)) {
        worstWindow = r;
      }
    }
    const j1 = after.findIndex(([t]) => t >= after[i][0] + 1_000);
    if (j1 > 0) {
      worstSecond = Math.max(worstSecond, rateBetween(after[i], after[j1]));
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
  const { server, sent, url } = await startServer(size);
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
  const samples = [];
  const timer = setInterval(() => samples.push([performance.now() - t0, job.getProgress().bytesTransferred]), 100);
  await job.resume();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  clearInterval(timer);
  const limited = job.speedLimited;
  await job.cancel();
  await engine.dispose();
  server.closeAllConnections?.();
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
  const warmUpMs = 1_000;
  const client = stats(samples, limit, warmUpMs);
  let cum = 0;
  const serverSamples = sent.map(([t, n]) => [t - t0, (cum += n)]);
  const serverAvg = serverSamples.length > 1 ? stats(serverSamples, limit, warmUpMs).average : 0;
  return { ...client, serverAvg, limited };
}

(async () => {
  console.log(`Speed limits: ${seconds} s per run, first second left out (warm-up); ${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(1)}`);
  console.log('| limit | segments | average | worst 10 s window (deviation) | worst second (× limit) | server avg | limited |');
  console.log('|---|---|---|---|---|---|---|');
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
    const dev = limit ? `${(((r.worstWindow - limit) / limit) * 100).toFixed(1)} %` : '';
    const window = seconds >= 11 ? `${fmt(r.worstWindow)} ${dev ? `(${dev})` : ''}` : 'run too short';
    const second = limit ? `${fmt(r.worstSecond)} (${(r.worstSecond / limit).toFixed(2)}×)` : fmt(r.worstSecond);
    console.log(`| ${limit ? fmt(limit) : 'unlimited'} | ${segments} | ${fmt(r.average)} | ${window} | ${second} | ${fmt(r.serverAvg)} | ${limit ? r.limited : ''} |`);
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
