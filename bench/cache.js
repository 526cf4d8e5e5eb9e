// How long placing a file from the content cache takes against downloading it from a local server (issue #17).
// `node bench/cache.js [--size-mib N] [--runs N]` after `npx tsc -p tsconfig.test.json` (uses out/src/engine).
// Writes the file in a temporary folder under os.tmpdir() and deletes it all at the end.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { DownloadEngine } = require('../out/src/engine');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const SIZE = arg('--size-mib', 1024) * 1024 * 1024;
const RUNS = arg('--runs', 3);

/** Writes SIZE pseudo-random bytes (AES-CTR keystream) and returns their sha256. */
function writeBody(file) {
  const cipher = crypto.createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16));
  const hash = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'w');
  const zeros = Buffer.alloc(8 << 20);
  for (let done = 0; done < SIZE; done += zeros.length) {
    const chunk = cipher.update(zeros.subarray(0, Math.min(zeros.length, SIZE - done)));
    hash.update(chunk);
    fs.writeSync(fd, chunk);
  }
  fs.closeSync(fd);
  return hash.digest('hex');
}

/** A plain HTTP server for one file: Content-Length, a strong ETag, single ranges. */
function serve(file) {
  const etag = '"bench"';
  const server = http.createServer((req, res) => {
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const ifRangeOk = !req.headers['if-range'] || req.headers['if-range'] === etag;
    if (m && ifRangeOk) {
      const start = Number(m[1]);
      const end = m[2] === '' ? SIZE - 1 : Math.min(SIZE - 1, Number(m[2]));
      res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${SIZE}`, etag, 'accept-ranges': 'bytes' });
      fs.createReadStream(file, { start, end }).pipe(res);
      return;
    }
    res.writeHead(200, { 'content-length': SIZE, etag, 'accept-ranges': 'bytes' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function timeOneJob(storeDir, url, dest, sha256, cache) {
  const engine = await DownloadEngine.open({ storeDir, ...(cache ? { cache } : {}) });
  try {
    const job = await engine.createJob({ displayName: 'bench' });
    await job.addFile(url, dest, { sha256 });
    const t0 = performance.now();
    const done = new Promise((resolve, reject) =>
      engine.onDidChangeJob((j) => {
        if (j === job && j.state === 'TRANSFERRED') {
          resolve();
        } else if (j === job && j.state === 'ERROR') {
          reject(new Error(j.getError()?.message));
        }
      }),
    );
    await job.resume();
    await done;
    await job.complete();
    const seconds = (performance.now() - t0) / 1000;
    return { seconds, fromCache: job.getProgress().bytesFromCache };
  } finally {
    await engine.dispose();
  }
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'md-bench-cache-'));
  let server;
  try {
    const source = path.join(dir, 'origin.bin');
    process.stdout.write(`Writing ${SIZE / 1024 / 1024} MiB… `);
    const sha256 = writeBody(source);
    process.stdout.write('done\n');
    server = await serve(source);
    const url = `http://127.0.0.1:${server.address().port}/origin.bin`;
    const cache = { folder: path.join(dir, 'cache'), maxSizeBytes: 4 * SIZE, enabled: true };
    const rows = [];
    for (let run = 0; run < RUNS; run++) {
      for (const mode of run % 2 === 0 ? ['download', 'cache'] : ['cache', 'download']) {
        const out = path.join(dir, `${mode}-${run}`);
        fs.mkdirSync(out);
        if (mode === 'cache' && !fs.existsSync(path.join(cache.folder, 'sha256', sha256.slice(0, 2), sha256))) {
          // Filled once, by a download that adds its file (the way a first machine would).
          await timeOneJob(path.join(dir, 'fill-store'), url, path.join(dir, 'fill.bin'), sha256, cache);
          fs.rmSync(path.join(dir, 'fill.bin'));
        }
        const r = await timeOneJob(path.join(out, 'store'), url, path.join(out, 'f.bin'), sha256, mode === 'cache' ? cache : undefined);
        rows.push({ mode, ...r });
        console.log(`${mode.padEnd(8)} run ${run + 1}: ${r.seconds.toFixed(2)} s (${(SIZE / 1024 / 1024 / r.seconds).toFixed(0)} MiB/s), ${r.fromCache} bytes from cache`);
        fs.rmSync(out, { recursive: true, force: true });
      }
    }
    const median = (mode) => {
      const s = rows.filter((r) => r.mode === mode).map((r) => r.seconds).sort((a, b) => a - b);
      return s[Math.floor(s.length / 2)];
    };
    console.log(`Median: download ${median('download').toFixed(2)} s, from the cache (same file system: hard link + re-hash) ${median('cache').toFixed(2)} s.`);
  } finally {
    server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
