#!/usr/bin/env node
// `npm run bench:scale`: how the engine's cost grows with the number of jobs (issue 16). Prints numbers, asserts
// nothing. Runs the engine in this process (event-loop delay and peak RSS are this process's) against a file
// server in another process (bench/scaleServer.js).
//
//   node bench/scale.js [--jobs N] [--small N] [--callers N] [--parallel N] [--phases create,run,reopen] [--json FILE]
//                       [--engine DIR] [--dir DIR]
//
// create:  createJob + addFile, N jobs and --small jobs, awaited one after another and by --callers at once.
// run:     N one-file jobs (16 KiB each, --parallel jobs at a time) to TRANSFERRED, then complete() each;
//          against the same N files as one job (--parallel files in flight).
// reopen:  opening the store of N jobs (all ACKNOWLEDGED after run; all SUSPENDED after create), and the
//          retention sweep that removes all N at once.
// bigjob:  (not in the default set) one job of --files files (100,000): addFileSet, then the transfer and
//          Complete, per file, against one job of 2,000 files.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { monitorEventLoopDelay, performance } = require('node:perf_hooks');
const { parseArgs } = require('node:util');

const ROOT = path.resolve(__dirname, '..');

const USAGE =
  'usage: node bench/scale.js [--jobs N] [--small N] [--callers N] [--parallel N] [--phases create,run,reopen,bigjob] [--json FILE]\n' +
  '                           [--files N] [--engine DIR] [--dir DIR]';
let opt;
try {
  ({ values: opt } = parseArgs({
    options: {
      engine: { type: 'string' },
      jobs: { type: 'string' },
      small: { type: 'string' },
      callers: { type: 'string' },
      parallel: { type: 'string' },
      phases: { type: 'string' },
      json: { type: 'string' },
      dir: { type: 'string' },
      files: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (e) {
  console.error(`bench/scale.js: ${e.message}\n${USAGE}`);
  process.exit(2);
}
if (opt.help) {
  console.log(USAGE);
  process.exit(0);
}
for (const k of ['jobs', 'small', 'callers', 'parallel', 'files']) {
  if (opt[k] !== undefined && !(Number.isInteger(Number(opt[k])) && Number(opt[k]) > 0)) {
    console.error(`bench/scale.js: --${k} takes a whole number above 0, not '${opt[k]}'\n${USAGE}`);
    process.exit(2);
  }
}
// --engine: another build's out/src/engine (e.g. a worktree of an older commit), for before/after tables.
const { DownloadEngine } = require(path.resolve(opt.engine ?? path.join(ROOT, 'out', 'src', 'engine')));
const N = Number(opt.jobs ?? 1000);
const SMALL = Number(opt.small ?? 100);
const CALLERS = Number(opt.callers ?? 64);
const PARALLEL = Number(opt.parallel ?? 16);
// bigjob: one job of this many files, against one of BIG_REFERENCE files (per-file cost at both sizes).
const FILES = Number(opt.files ?? 100_000);
const BIG_REFERENCE = 2000;
const PHASES = new Set((opt.phases ?? 'create,run,reopen').split(','));
const DAY = 86_400_000;

const results = { jobs: N, small: SMALL, callers: CALLERS, parallel: PARALLEL, node: process.version, cpus: os.cpus().length, loadAverageAtStart: os.loadavg(), phases: {} };

function log(...a) {
  process.stderr.write(a.join(' ') + '\n');
}

/** Event-loop delay of this process while `fn` runs, with its wall time. */
async function measured(name, fn) {
  const h = monitorEventLoopDelay({ resolution: 1 }); // as the CLI's: each sample includes this 1 ms
  h.enable();
  const t0 = performance.now();
  let extra;
  try {
    extra = await fn();
  } finally {
    h.disable();
  }
  const ms = performance.now() - t0;
  const r = { ms: round(ms), eldP50: round(h.percentile(50) / 1e6), eldP99: round(h.percentile(99) / 1e6), eldMax: round(h.max / 1e6), rssMB: round(process.memoryUsage().rss / 2 ** 20), ...extra };
  results.phases[name] = r;
  log(`${name.padEnd(34)} ${String(r.ms).padStart(9)} ms   loop p99 ${r.eldP99} ms, max ${r.eldMax} ms   ${extra ? JSON.stringify(extra) : ''}`);
  return r;
}

function round(x) {
  return Math.round(x * 100) / 100;
}

/** Runs `count` tasks with at most `width` in flight. */
async function pool(count, width, task) {
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < count; i = next++) {
      await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, count) }, lane));
}

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'scaleServer.js'), String(16 * 1024)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    child.stdout.once('data', (d) => resolve({ child, port: Number(String(d).trim()) }));
    child.once('error', reject);
  });
}

let clockOffset = 0;
const open = (storeDir) =>
  DownloadEngine.open({ storeDir, maxConcurrentJobs: PARALLEL, now: () => Date.now() + clockOffset, network: { connectionsPerOrigin: PARALLEL } });

async function createJobs(engine, count, width, url, destDir) {
  const jobs = new Array(count);
  await pool(count, width, async (i) => {
    const job = await engine.createJob({ displayName: `job ${i}` });
    await job.addFile(url(i), path.join(destDir, `f${i}.bin`));
    jobs[i] = job;
  });
  return jobs;
}

/** Resolves when every job of `ids` is TRANSFERRED; rejects at the first failure. */
function allTransferred(engine, ids) {
  const left = new Set(ids);
  return new Promise((resolve, reject) => {
    const subs = [
      engine.onDidTransferJob((j) => {
        if (left.delete(j.id) && left.size === 0) {
          subs.forEach((s) => s.dispose());
          resolve();
        }
      }),
      engine.onDidFailJob((j) => reject(new Error(`job ${j.displayName} failed: ${j.getError()?.message}`))),
    ];
  });
}

async function main() {
  const work = fs.mkdtempSync(path.join(opt.dir ?? os.tmpdir(), 'md-scale-'));
  const server = await startServer();
  const url = (i) => `http://127.0.0.1:${server.port}/f/${i}`;
  log(`scale bench: ${N} jobs (and ${SMALL}), ${CALLERS} concurrent callers, ${PARALLEL} in parallel; node ${process.version}, ${os.cpus().length} CPUs; in ${work}`);
  let n = 0;
  const fresh = () => {
    const d = path.join(work, `run${n++}`);
    fs.mkdirSync(path.join(d, 'dest'), { recursive: true });
    return { store: path.join(d, 'store'), dest: path.join(d, 'dest') };
  };
  /** One job of `count` files (--parallel in flight) run to TRANSFERRED and completed, in a store of its own. */
  const oneJobOf = async (count, o = {}) => {
    const d = fresh();
    const engine = await open(d.store);
    const job = await engine.createJob({ displayName: `${count} files` });
    const files = Array.from({ length: count }, (_, i) => ({ remoteUrl: url(i), localPath: path.join(d.dest, `f${i}.bin`) }));
    await (o.measureAdd ? measured(`addFileSet of ${count} files`, () => job.addFileSet(files).then(() => undefined)) : job.addFileSet(files));
    await job.setFilesInFlight(PARALLEL);
    const run = await measured(`1 job of ${count} files: to TRANSFERRED`, async () => {
      const done = allTransferred(engine, [job.id]);
      await job.resume();
      await done;
    });
    const complete = await measured(`1 job of ${count} files: complete`, async () => ({ result: await job.complete() }));
    await engine.dispose();
    fs.rmSync(path.dirname(d.store), { recursive: true, force: true });
    return { run, complete };
  };
  try {
    if (PHASES.has('create')) {
      for (const [mode, width] of [['sequential', 1], ['concurrent', CALLERS]]) {
        for (const count of [SMALL, N]) {
          const d = fresh();
          const engine = await open(d.store);
          const r = await measured(`create ${count} (${mode})`, async () => {
            await createJobs(engine, count, width, url, d.dest);
          });
          r.msPerJob = round(r.ms / count);
          await engine.dispose();
          if (mode === 'sequential' && count === N && PHASES.has('reopen')) {
            await measured(`reopen ${count} SUSPENDED jobs`, async () => {
              const again = await open(d.store);
              const loaded = again.enumJobs().length;
              await again.dispose();
              return { loaded };
            });
          }
          fs.rmSync(path.dirname(d.store), { recursive: true, force: true });
        }
        const perSmall = results.phases[`create ${SMALL} (${mode})`].msPerJob;
        const perBig = results.phases[`create ${N} (${mode})`].msPerJob;
        results.phases[`create ${mode}: per-job ratio ${N}/${SMALL}`] = { ratio: round(perBig / perSmall) };
        log(`  ${mode}: ${perBig} ms a job at ${N}, ${perSmall} at ${SMALL}: ${round(perBig / perSmall)}×`);
      }
    }
    if (PHASES.has('run')) {
      const d = fresh();
      let engine = await open(d.store);
      const jobs = await createJobs(engine, N, CALLERS, url, d.dest);
      const run = await measured(`${N} one-file jobs: to TRANSFERRED`, async () => {
        const done = allTransferred(engine, jobs.map((j) => j.id));
        await pool(N, CALLERS, (i) => jobs[i].resume());
        await done;
      });
      const complete = await measured(`${N} one-file jobs: complete`, async () => {
        await pool(N, CALLERS, (i) => jobs[i].complete());
      });
      const total = run.ms + complete.ms;
      const missing = jobs.filter((j) => j.state !== 'ACKNOWLEDGED').length + (fs.readdirSync(d.dest).length === N ? 0 : 1);
      if (missing > 0) {
        throw new Error(`${missing} jobs did not end ACKNOWLEDGED (or files are missing)`);
      }
      await measured(`dispose ${N} jobs`, () => engine.dispose());
      if (PHASES.has('reopen')) {
        await measured(`reopen ${N} ACKNOWLEDGED jobs`, async () => {
          engine = await open(d.store);
          return { loaded: engine.enumJobs({ includeFinal: true }).length };
        });
        clockOffset = 31 * DAY;
        await measured(`retention sweep of ${N} jobs`, async () => ({ removed: await engine.runRetention() }));
        clockOffset = 0;
        await engine.dispose();
      }
      results.peakRssMBOfJobs = round(process.resourceUsage().maxRSS / 1024);
      // The same files as one job: the reference (after, so that its one large record does not count in the RSS of N jobs).
      {
        const { run, complete } = await oneJobOf(N);
        results.phases[`1 job of ${N} files: total`] = { ms: round(run.ms + complete.ms) };
      }
      const one = results.phases[`1 job of ${N} files: total`].ms;
      results.phases[`${N} one-file jobs: total`] = { ms: round(total), ratioToOneJob: round(total / one) };
      log(`  ${N} jobs ${round(total)} ms against one job ${one} ms: ${round(total / one)}×; peak RSS until then ${results.peakRssMBOfJobs} MB`);
    }
    if (PHASES.has('bigjob')) {
      for (const count of [BIG_REFERENCE, FILES]) {
        const { run, complete } = await oneJobOf(count, { measureAdd: true });
        const perFile = round((run.ms + complete.ms) / count);
        results.phases[`1 job of ${count} files: per file`] = { ms: perFile };
        log(`  ${count} files in one job: ${perFile} ms a file (transfer and Complete)`);
      }
      const ratio = round(results.phases[`1 job of ${FILES} files: per file`].ms / results.phases[`1 job of ${BIG_REFERENCE} files: per file`].ms);
      results.phases[`per-file cost ${FILES} / ${BIG_REFERENCE}`] = { ratio };
      log(`  per file: ${FILES} files cost ${ratio}× what ${BIG_REFERENCE} do`);
    }
  } finally {
    server.child.kill();
    fs.rmSync(work, { recursive: true, force: true });
  }
  results.peakRssMB = round(process.resourceUsage().maxRSS / 1024);
  results.loadAverageAtEnd = os.loadavg();
  log(`peak RSS ${results.peakRssMB} MB; load average ${results.loadAverageAtStart.map(round).join(' ')} at the start, ${results.loadAverageAtEnd.map(round).join(' ')} at the end (${os.cpus().length} CPUs)`);
  if (opt.json) {
    fs.writeFileSync(opt.json, JSON.stringify(results, null, 2) + '\n');
  }
  process.stdout.write(JSON.stringify(results) + '\n');
}

main().catch((e) => {
  log(e.stack ?? String(e));
  process.exit(1);
});
