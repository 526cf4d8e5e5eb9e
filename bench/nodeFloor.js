#!/usr/bin/env node
// The bare-runtime reference for the benchmark: what Node + undici + fs/promises do with no engine around them.
//
//   node bench/nodeFloor.js -o DIR [--parallel N] URL... | -i URLS.txt
//
// Each URL: one GET over a shared undici Agent (N keep-alive connections, N files at once), the body gathered
// into 512 KiB writev batches (as the engine does) into DIR/.NAME.part, fsync, close; then, in order, each part
// renamed to DIR/NAME and the folder fsynced once. No journal, no validation, no resume, no hashing, no events,
// no segments. The CLI's time over this is what the engine costs; this over curl is what the runtime costs.
'use strict';
const fs = require('node:fs');
const fsp = require('node:fs/promises');
const path = require('node:path');
const { Agent, request } = require('undici');

const BATCH = 512 * 1024;

function parseArgs(argv) {
  const a = { out: undefined, parallel: 1, urls: [] };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i];
    if (x === '-o') {
      a.out = argv[++i];
    } else if (x === '--parallel') {
      a.parallel = Number(argv[++i]);
    } else if (x === '-i') {
      a.urls.push(...fs.readFileSync(argv[++i], 'utf8').split('\n').map((l) => l.trim()).filter(Boolean));
    } else {
      a.urls.push(x);
    }
  }
  if (!a.out || a.urls.length === 0 || !(a.parallel >= 1)) {
    throw new Error('usage: nodeFloor.js -o DIR [--parallel N] URL... | -i URLS.txt');
  }
  return a;
}

async function fetchOne(url, part, dispatcher) {
  const res = await request(url, { dispatcher });
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new Error(`${url}: HTTP ${res.statusCode}`);
  }
  const fh = await fsp.open(part, 'wx');
  try {
    let bufs = [];
    let bytes = 0;
    for await (const chunk of res.body) {
      bufs.push(chunk);
      bytes += chunk.length;
      if (bytes >= BATCH) {
        await fh.writev(bufs);
        bufs = [];
        bytes = 0;
      }
    }
    if (bytes > 0) {
      await fh.writev(bufs);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const dispatcher = new Agent({ connections: a.parallel, keepAliveTimeout: 4_000 });
  const names = a.urls.map((u) => path.basename(new URL(u).pathname));
  const parts = names.map((n) => path.join(a.out, `.${n}.part`));
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < a.urls.length; i = next++) {
      await fetchOne(a.urls[i], parts[i], dispatcher);
    }
  };
  await Promise.all(Array.from({ length: Math.min(a.parallel, a.urls.length) }, lane));
  for (let i = 0; i < names.length; i++) {
    await fsp.rename(parts[i], path.join(a.out, names[i]));
  }
  const dir = await fsp.open(a.out, 'r');
  await dir.sync();
  await dir.close();
  await dispatcher.close();
}

main().catch((e) => {
  process.stderr.write(`${e.message}\n`);
  process.exitCode = 1;
});
