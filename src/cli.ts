// `managed-downloads get <url>...`: the download engine without VS Code. One durable job per run; running the
// same command again after a crash or Ctrl+C resumes it from the bytes already on disk (validated with If-Range).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { archiveFormatOf, defaultExtractFolder, DownloadEngine, DownloadError, extractArchive, formatHresult, MIN_BYTES_PER_SECOND, parseRate, type JobImpl } from './engine';
import { redactUrl } from './engine/errors';
import { checkRemoteUrl } from './engine/validation';
import { claimStore } from './engine/remote/storeClaim';
import { METALINK_MAX_BYTES, metalinkToFiles, parseMetalink } from './engine/metalink';

// undici's HTTP parser is WebAssembly. V8 compiles it at once with its baseline compiler, then again, optimised,
// on a background thread that the process waits for before it can exit: 0.18 s of every run here, for code that
// measured no faster on a 1 GiB download. A short-lived CLI keeps the baseline code (set before undici loads).
setFlagsFromString('--liftoff-only');

const USAGE = `Usage: managed-downloads get <url>... [options]

Downloads each URL into a file, durably: bytes are flushed to disk before they count, a rerun of the
same command resumes an interrupted download (behind If-Range, so a changed file is never spliced),
and the destination appears only once every byte is there (and verified).

Options:
  -i, --input-file FILE    read more URLs from FILE, one per line ('-' for stdin); mirrors of a URL
                           follow it on its line, separated by tabs
      --mirror URL         another source of the same file; with one URL, repeat it for each mirror;
                           with several, give it once per URL in order (mirrors separated by spaces)
      --metalink FILE      download the files a Metalink (.meta4, .metalink) lists, into -o DIR
      --cache DIR          content cache folder (files with a sha256 are taken from it and added to it;
                           default: a 'cache' folder in the store)
      --no-cache           neither read nor fill the content cache
  -o, --output-dir DIR     folder for the files (default: the current folder); names come from the URLs
      --output FILE        destination file (one URL only)
      --segments N         connections per large file (1 = never split; default: the engine's)
      --min-segment-size B minimum bytes per segment (suffixes k, M, G; default 8M)
      --max-size B         refuse files larger than B (suffixes k, M, G; default: no limit but free space)
      --concurrency N      files in flight at once (default 1: one after another)
      --sha256 HEX         expected sha256 (hex or sha256-<base64>); once per URL, in order
      --store DIR          folder of the job store (default: ${defaultStoreDir()})
      --overwrite          replace existing destination files
      --limit-rate RATE    at most RATE bytes per second for the whole run (suffixes k, M, G: 500k, 2M)
      --extract [DIR]      unpack each .zip, .tar, .tar.gz or .tgz once it is in place, into DIR (one archive)
                           or a folder beside it named after it (use --extract=DIR when a URL follows)
      --retry-delay S      seconds between retries of transient errors (default 5)
      --timeout S          give up after S seconds without progress (default 120)
  -q, --quiet              no progress bar even on a terminal
  -v, --verbose            log what the engine does on stderr
  -h, --help               this text

Exit status: 0 when every file is in place, 1 when the download failed (the error code and HRESULT are
printed on stderr), 2 for bad arguments, 130 when interrupted (rerun the command to resume).`;

interface Args {
  urls: string[];
  outputs: string[];
  sha256: (string | undefined)[];
  mirrors: string[][];
  cache?: string;
  /** Folders the names of a Metalink ask for, created before the download. */
  folders: string[];
  segments?: number;
  minSegmentBytes?: number;
  maxFileSizeBytes?: number;
  concurrency: number;
  store: string;
  overwrite: boolean;
  retryDelay: number;
  timeout: number;
  progress: boolean;
  verbose: boolean;
  /** Bytes per second for all transfers of the run; 0: no limit. */
  limitRate: number;
  /** Unpack the archives among the files: into `folder` when given, else beside each archive. */
  extract?: { folder?: string };
}

class UsageError extends Error {}

export function defaultStoreDir(): string {
  const home = os.homedir();
  if (process.platform === 'win32') {
    return path.join(process.env.LOCALAPPDATA ?? path.join(home, 'AppData', 'Local'), 'managed-downloads', 'cli-store');
  }
  if (process.platform === 'darwin') {
    return path.join(home, 'Library', 'Caches', 'managed-downloads', 'cli-store');
  }
  return path.join(process.env.XDG_CACHE_HOME || path.join(home, '.cache'), 'managed-downloads', 'cli-store');
}

function parseSize(v: string, what: string): number {
  const m = /^(\d+)([kKmMgG]?)$/.exec(v.trim());
  if (!m) {
    throw new UsageError(`${what} must be a number of bytes (optionally with k, M or G), not '${v}'.`);
  }
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * mult;
}

function parseLimitRate(v: string): number {
  const n = parseRate(v);
  if (n === undefined || (n > 0 && n < MIN_BYTES_PER_SECOND)) {
    throw new UsageError(`--limit-rate must be a number of bytes per second (optionally with k, M or G), at least ${MIN_BYTES_PER_SECOND} or 0, not '${v}'.`);
  }
  return n;
}

function parseCount(v: string | undefined, what: string, min: number, max: number): number | undefined {
  if (v === undefined) {
    return undefined;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${what} must be a whole number from ${min} to ${max}, not '${v}'.`);
  }
  return n;
}

/** The file name a URL gives: the last path segment, decoded, or index.html. */
export function nameFromUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`'${redactUrl(url)}' is not a URL.`);
  }
  const last = u.pathname.split('/').filter(Boolean).pop() ?? '';
  let name: string;
  try {
    name = decodeURIComponent(last);
  } catch {
    name = last;
  }
  name = name.replace(/[/\\\0]/g, '_');
  return name === '' || name === '.' || name === '..' ? 'index.html' : name;
}

/** `--extract` takes an optional folder, which parseArgs cannot say: the next word is the folder unless it is an option or a URL. */
function optionalExtractValue(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] !== '--extract') {
      out.push(argv[i]);
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith('-') && !/^[a-z][a-z0-9+.-]*:/i.test(argv[i + 1])) {
      out.push(`--extract=${argv[++i]}`);
    } else {
      out.push('--extract=');
    }
  }
  return out;
}

function parse(argv: string[]): Args | 'help' {
  const { values, positionals } = parseArgs({
    args: optionalExtractValue(argv),
    allowPositionals: true,
    strict: true,
    options: {
      'output-dir': { type: 'string', short: 'o' },
      'input-file': { type: 'string', short: 'i' },
      output: { type: 'string' },
      segments: { type: 'string' },
      'min-segment-size': { type: 'string' },
      'max-size': { type: 'string' },
      concurrency: { type: 'string' },
      sha256: { type: 'string', multiple: true },
      mirror: { type: 'string', multiple: true },
      metalink: { type: 'string' },
      cache: { type: 'string' },
      'no-cache': { type: 'boolean' },
      store: { type: 'string' },
      overwrite: { type: 'boolean' },
      extract: { type: 'string' },
      'limit-rate': { type: 'string' },
      'retry-delay': { type: 'string' },
      timeout: { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
      verbose: { type: 'boolean', short: 'v' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals[0] === 'help') {
    return 'help';
  }
  const [command, ...urls] = positionals;
  if (command !== 'get') {
    throw new UsageError(command === undefined ? 'Missing the command (get).' : `Unknown command '${command}'; the only command is 'get'.`);
  }
  if (values['input-file'] !== undefined) {
    const f = values['input-file'];
    let text: string;
    try {
      text = fs.readFileSync(f === '-' ? 0 : f, 'utf8');
    } catch (e) {
      throw new UsageError(`Cannot read the URL list ${f}: ${(e as Error).message}`);
    }
    urls.push(...text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')));
  }
  // Mirrors: tab-separated after a URL of the input file, or --mirror (see USAGE).
  const mirrors = urls.map((u) => u.split('\t').slice(1).map((m) => m.trim()).filter(Boolean));
  urls.forEach((u, i) => (urls[i] = u.split('\t')[0].trim()));
  const given = values.mirror ?? [];
  if (given.length > 0 && urls.length === 1) {
    mirrors[0].push(...given.flatMap((m) => m.split(/\s+/).filter(Boolean)));
  } else if (given.length > 0) {
    if (given.length !== urls.length) {
      throw new UsageError(`With several URLs, give --mirror once per URL (${urls.length}), in the same order.`);
    }
    given.forEach((m, i) => mirrors[i].push(...m.split(/\s+/).filter(Boolean)));
  }
  const fromMetalink = values.metalink === undefined ? [] : readMetalinkArg(values.metalink, path.resolve(values['output-dir'] ?? '.'));
  if (values.metalink !== undefined && values.output !== undefined) {
    throw new UsageError('--metalink names its files itself: use -o DIR, not --output.');
  }
  if (urls.length === 0 && fromMetalink.length === 0) {
    throw new UsageError('Give at least one URL.');
  }
  if (values.output !== undefined && values['output-dir'] !== undefined) {
    throw new UsageError('Use either --output FILE or -o DIR, not both.');
  }
  if (values.output !== undefined && urls.length !== 1) {
    throw new UsageError('--output names one file: give exactly one URL with it (or use -o DIR).');
  }
  const dir = path.resolve(values['output-dir'] ?? '.');
  const outputs = values.output !== undefined ? [path.resolve(values.output)] : urls.map((u) => path.join(dir, nameFromUrl(u)));
  const sumsGiven = values.sha256 ?? [];
  for (const f of fromMetalink) {
    urls.push(f.remoteUrl);
    outputs.push(f.localPath);
    mirrors.push(f.mirrors ?? []);
  }
  // Every URL, mirrors and the Metalink's included, is refused before anything is stored (user:password@ among
  // others: exit 2, not a job left behind that fails every rerun); the message shows the URL redacted.
  for (const u of [...urls, ...mirrors.flat()]) {
    try {
      checkRemoteUrl(u);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const seen = new Set<string>();
  for (const [i, o] of outputs.entries()) {
    if (seen.has(o)) {
      throw new UsageError(`Two URLs would write the same file ${o} (${redactUrl(urls[i])}); download them into different folders.`);
    }
    seen.add(o);
  }
  if (values.extract !== undefined) {
    const archives = outputs.filter((o) => archiveFormatOf(o));
    if (archives.length === 0) {
      throw new UsageError('--extract unpacks .zip, .tar, .tar.gz and .tgz files, and none of the files is one.');
    }
    if (values.extract !== '' && archives.length > 1) {
      throw new UsageError('--extract DIR names one folder: give it with one archive, or use --extract alone (each beside its archive).');
    }
  }
  const plain = urls.length - fromMetalink.length;
  if (sumsGiven.length > 0 && sumsGiven.length !== plain) {
    throw new UsageError(`Give --sha256 once per URL (${plain}), in the same order, or not at all.`);
  }
  const store = path.resolve(values.store ?? defaultStoreDir());
  return {
    urls,
    outputs,
    sha256: urls.map((_, i) => (i < plain ? sumsGiven[i] : fromMetalink[i - plain].sha256)),
    mirrors,
    folders: [...new Set(fromMetalink.map((f) => path.dirname(f.localPath)))],
    cache: values['no-cache'] ? undefined : path.resolve(values.cache ?? path.join(store, 'cache')),
    segments: parseCount(values.segments, '--segments', 1, 16),
    minSegmentBytes: values['min-segment-size'] === undefined ? undefined : parseSize(values['min-segment-size'], '--min-segment-size'),
    maxFileSizeBytes: values['max-size'] === undefined ? undefined : parseSize(values['max-size'], '--max-size'),
    concurrency: parseCount(values.concurrency, '--concurrency', 1, 64) ?? 1,
    store,
    overwrite: values.overwrite === true,
    retryDelay: parseCount(values['retry-delay'], '--retry-delay', 0, 86_400) ?? 5,
    timeout: parseCount(values.timeout, '--timeout', 0, 14 * 86_400) ?? 120,
    progress: !values.quiet && process.stderr.isTTY === true,
    verbose: values.verbose === true,
    limitRate: values['limit-rate'] === undefined ? 0 : parseLimitRate(values['limit-rate']),
    extract: values.extract === undefined ? undefined : { folder: values.extract === '' ? undefined : path.resolve(values.extract) },
  };
}

/** The files of a Metalink (--metalink FILE), into `dir`; its problems are bad arguments (exit 2). */
function readMetalinkArg(file: string, dir: string): ReturnType<typeof metalinkToFiles> {
  try {
    if (fs.statSync(file).size > METALINK_MAX_BYTES) {
      throw new Error(`it is larger than ${METALINK_MAX_BYTES / 1024 / 1024} MiB`);
    }
    return metalinkToFiles(parseMetalink(fs.readFileSync(file, 'utf8')), dir);
  } catch (e) {
    throw new UsageError(`Cannot use the Metalink ${file}: ${(e as Error).message}`);
  }
}

/**
 * One CLI at a time per store: the engine owns its journal. The claim is the store's socket (the one the
 * editor's windows use), which the kernel releases when its process dies however it dies: a rerun after a
 * crash never waits for a dead process, whose pid may meanwhile belong to another one.
 */
async function lockStore(dir: string): Promise<() => Promise<void>> {
  fs.mkdirSync(dir, { recursive: true });
  const claim = await claimStore(dir);
  if (!claim) {
    throw new DownloadError('E_ACCESSDENIED', `Another managed-downloads process is using the store ${dir}; wait for it or pass --store DIR.`);
  }
  // Nothing is served to whoever connects: the socket only says the store is taken.
  claim.server.on('connection', (socket) => socket.destroy());
  // The pid lock file of earlier versions: the claim replaces it.
  fs.rmSync(path.join(dir, 'cli.lock'), { force: true });
  return () => claim.release();
}

/** Identifies "the same command": same URLs, destinations and checksums, in the same order. */
function runKey(a: Args): string {
  const h = createHash('sha256');
  for (let i = 0; i < a.urls.length; i++) {
    h.update(`${a.urls[i]}\n${a.outputs[i]}\n${a.sha256[i] ?? ''}\n${a.mirrors[i].join('\t')}\n`);
  }
  return `cli:${h.digest('hex')}`;
}

function human(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n.toFixed(0) : n.toFixed(1)} ${units[i]}`;
}

function duration(s: number): string {
  if (s < 60) {
    return `${Math.ceil(s)}s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, '0')}s`;
  }
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** A single-line progress bar on stderr, redrawn at most 10 times a second. */
function progressBar(job: JobImpl): { stop(final: boolean): void } {
  const started = Date.now();
  const draw = (): void => {
    const p = job.getProgress();
    const width = Math.max(10, Math.min(30, (process.stderr.columns ?? 80) - 60));
    const frac = p.bytesTotal ? Math.min(1, p.bytesTransferred / p.bytesTotal) : 0;
    const filled = Math.round(frac * width);
    const bar = p.bytesTotal ? '#'.repeat(filled) + '-'.repeat(width - filled) : '?'.repeat(width);
    const speed = job.getSpeed();
    const eta = job.getEta();
    const parts = [
      `[${bar}]`,
      p.bytesTotal ? `${(frac * 100).toFixed(0).padStart(3)}%` : '',
      `${human(p.bytesTransferred)}${p.bytesTotal ? ' / ' + human(p.bytesTotal) : ''}`,
      speed > 0 ? `${human(speed)}/s${job.speedLimited ? ', limited' : ''}` : '',
      eta !== undefined ? `ETA ${duration(eta)}` : '',
      p.filesTotal > 1 ? `${p.filesTransferred}/${p.filesTotal} files` : '',
      job.state === 'TRANSIENT_ERROR' ? '(retrying)' : '',
    ].filter(Boolean);
    const line = parts.join('  ');
    process.stderr.write(`\r${line}\x1b[K`);
  };
  const timer = setInterval(draw, 100);
  draw();
  return {
    stop(final: boolean) {
      clearInterval(timer);
      if (final) {
        const p = job.getProgress();
        const secs = (Date.now() - started) / 1000;
        process.stderr.write(`\r\x1b[KDownloaded ${p.filesTotal} file${p.filesTotal === 1 ? '' : 's'}, ${human(p.bytesTransferred)} in ${secs.toFixed(1)}s (${human(p.bytesTransferred / Math.max(secs, 0.001))}/s)\n`);
      } else {
        process.stderr.write('\n');
      }
    },
  };
}

function describe(e: unknown): string {
  if (e instanceof DownloadError) {
    return `${e.code} (${formatHresult(e.hresult)}): ${e.message}`;
  }
  const err = e as NodeJS.ErrnoException;
  return `${err?.code ?? 'E_FAIL'} (${formatHresult(0x80004005)}): ${err?.message ?? String(e)}`;
}

/**
 * Refuses to replace an existing destination without --overwrite, unless the journal says it is ours: the
 * engine's start-up finished a Complete that a crash interrupted (the destination was our temporary, or
 * holds the verified bytes) and the resumed job counts that file completed.
 */
function checkDestinations(a: Args, resumed: JobImpl | undefined): void {
  if (a.overwrite) {
    return;
  }
  const placed = new Set(resumed?.getFiles().filter((f) => f.completed).map((f) => f.localPath));
  for (const [i, out] of a.outputs.entries()) {
    if (!placed.has(out) && fs.existsSync(out)) {
      throw new UsageError(`${out} already exists (from ${redactUrl(a.urls[i])}); pass --overwrite to replace it.`);
    }
  }
}

async function get(a: Args): Promise<number> {
  for (const folder of a.folders) {
    fs.mkdirSync(folder, { recursive: true });
  }
  const unlock = await lockStore(a.store);
  let engine: DownloadEngine | undefined;
  let bar: { stop(final: boolean): void } | undefined;
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
  };
  try {
    engine = await DownloadEngine.open({
      storeDir: a.store,
      maxConcurrentJobs: 1,
      network: { connectionsPerOrigin: Math.max(16, a.concurrency * (a.segments ?? 1)) },
      // Several files in flight already fill the pipe: split files only when asked to, then.
      ...(a.segments !== undefined ? { segmentsPerFile: a.segments } : a.concurrency > 1 ? { segmentsPerFile: 1 } : {}),
      ...(a.minSegmentBytes !== undefined ? { minSegmentBytes: a.minSegmentBytes } : {}),
      ...(a.maxFileSizeBytes !== undefined ? { maxFileSizeBytes: a.maxFileSizeBytes } : {}),
      maxBytesPerSecond: a.limitRate,
      retryDelayFloorSeconds: 0,
      ...(a.cache !== undefined ? { cache: { folder: a.cache, maxSizeBytes: 10 * 1024 ** 3, enabled: true } } : {}),
      // Frequent checkpoints (they run beside the transfer) and, for a few files, a journal written every 50 ms
      // (5 ms measured 10–25 % slower on a 1 GiB file): a crash fetches again about the last 50 ms of bytes.
      // Thousands of files make the journal large: it is then written at most 4 times a second.
      checkpointIntervalMs: 250,
      checkpointBytes: 4 * 1024 * 1024,
      storeBatchMs: a.urls.length <= 64 ? 50 : 250,
      log: a.verbose ? (level, m) => process.stderr.write(`[${level}] ${m}\n`) : undefined,
    });
    const key = runKey(a);
    const mine = new Set(a.outputs);
    let job = engine.enumJobs().find((j) => j.description === key);
    checkDestinations(a, job);
    for (const j of engine.enumJobs({ includeFinal: true })) {
      if (j.isFinal) {
        await engine.removeJob(j.id);
      } else if (j === job) {
        continue;
      } else if (j.record.files.some((f) => mine.has(f.localPath))) {
        // An unfinished run with other arguments for the same files: it is superseded.
        await j.cancel();
        await engine.removeJob(j.id);
      }
    }
    if (job) {
      if (a.verbose) {
        process.stderr.write(`Resuming the unfinished download of ${job.displayName}.\n`);
      }
      if (a.overwrite) {
        // Started without --overwrite: now the user allows Complete to replace what is there.
        await job.setReplaceExisting(true);
      }
    } else {
      const first = path.basename(a.outputs[0]);
      job = await engine.createJob({ displayName: a.urls.length > 1 ? `${first} (+${a.urls.length - 1})` : first, description: key });
      await engine.addFiles(
        job,
        a.urls.map((u, i) => ({
          remoteUrl: u,
          localPath: a.outputs[i],
          sha256: a.sha256[i],
          ...(a.mirrors[i].length > 0 ? { mirrors: a.mirrors[i] } : {}),
          ...(a.overwrite ? { replaceExisting: true } : {}),
        })),
      );
    }
    await job.setMinimumRetryDelay(a.retryDelay);
    await job.setNoProgressTimeout(a.timeout);
    if (a.concurrency > 1 || (job.record.filesInFlight ?? 1) > 1) {
      await job.setFilesInFlight(a.concurrency);
    }
    const theJob = job;
    const outcome = new Promise<'TRANSFERRED' | 'ERROR' | 'STOPPED'>((resolve) => {
      const check = (): void => {
        if (interrupted) {
          resolve('STOPPED');
        } else if (theJob.state === 'TRANSFERRED') {
          resolve('TRANSFERRED');
        } else if (theJob.state === 'ERROR' || theJob.isFinal) {
          resolve('ERROR');
        }
      };
      let lastNotice = '';
      engine!.onDidChangeJob((j) => {
        if (j !== theJob) {
          return;
        }
        if (j.state === 'TRANSIENT_ERROR' && (a.verbose || a.progress)) {
          const err = j.getError();
          const notice = err ? `${err.code}: ${err.message}` : '';
          if (notice && notice !== lastNotice) {
            lastNotice = notice;
            process.stderr.write(`\r\x1b[K${notice} Retrying in ${a.retryDelay}s.\n`);
          }
        }
        check();
      });
      process.once('SIGINT', () => {
        onSignal();
        check();
      });
      process.once('SIGTERM', () => {
        onSignal();
        check();
      });
      check();
    });
    if (a.progress) {
      bar = progressBar(job);
    }
    await job.resume();
    // The engine's timers (retry, no-progress deadline) are unref'd so that an editor can close at any time;
    // between a transient error and its retry nothing else holds the event loop, and Node would exit 0
    // with the file not there. The CLI exits only on a final outcome (contract §7).
    const keepAlive = setInterval(() => undefined, 60_000);
    const result = await outcome.finally(() => clearInterval(keepAlive));
    if (result === 'STOPPED') {
      bar?.stop(false);
      bar = undefined;
      await job.suspend();
      process.stderr.write(`Interrupted; run the same command again to resume (${human(job.getProgress().bytesTransferred)} kept).\n`);
      return 130;
    }
    if (result === 'ERROR') {
      bar?.stop(false);
      bar = undefined;
      const err = job.getError();
      const saved = job.record.files.some((f) => f.transferred || f.durableBytes > 0);
      process.stderr.write(err ? `${err.code} (${formatHresult(err.hresult)}): ${err.message}\n` : `The download failed (${job.state}).\n`);
      if (saved) {
        process.stderr.write('The bytes already downloaded are kept; run the same command again to resume.\n');
      } else if (!job.isFinal) {
        await job.cancel();
      }
      return 1;
    }
    const r = await job.complete();
    bar?.stop(true);
    bar = undefined;
    const fromCache = job.getProgress().bytesFromCache;
    if (fromCache > 0) {
      process.stderr.write(`${human(fromCache)} from cache.\n`);
    }
    if (r === 'BG_S_UNABLE_TO_DELETE_FILES') {
      // Success for what was kept; the engine retries deleting the rest at its next start.
      process.stderr.write(`BG_S_UNABLE_TO_DELETE_FILES (0x0020001A): some temporary files could not be deleted yet: ${job.leftoverTemporaries.join(', ')}\n`);
    }
    if (!job.getFiles().every((f) => f.completed)) {
      process.stderr.write('BG_S_PARTIAL_COMPLETE (0x00200017): not every file could be kept.\n');
      return 1;
    }
    return a.extract ? await extractAll(a, a.extract.folder) : 0;
  } finally {
    bar?.stop(false);
    await engine?.dispose();
    await unlock();
  }
}

/** Unpacks the archives among the downloaded files; a failure leaves the archive in place and exits 1. */
async function extractAll(a: Args, folder: string | undefined): Promise<number> {
  for (const archive of a.outputs.filter((o) => archiveFormatOf(o))) {
    const into = folder ?? defaultExtractFolder(archive);
    let last = 0;
    const result = await extractArchive(archive, into, {
      onProgress: (read, total) => {
        const now = Date.now();
        if (a.progress && now - last >= 100) {
          last = now;
          process.stderr.write(`\r\x1b[KExtracting ${path.basename(archive)}: ${total ? ((read / total) * 100).toFixed(0) : 100}%`);
        }
      },
    });
    if (a.progress || a.verbose) {
      process.stderr.write(
        result.alreadyExtracted
          ? `\r\x1b[K${result.folder} already holds ${path.basename(archive)}'s contents.\n`
          : `\r\x1b[KExtracted ${result.files} file${result.files === 1 ? '' : 's'} (${human(result.bytes)}) into ${result.folder}\n`,
      );
    }
  }
  return 0;
}

/** MD_CLI_EVENT_LOOP_STATS=file: the benchmark's probe of how responsive the engine's thread stays. */
function eventLoopProbe(): (() => void) | undefined {
  const out = process.env.MD_CLI_EVENT_LOOP_STATS;
  if (!out) {
    return undefined;
  }
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  return () => {
    h.disable();
    const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
    fs.writeFileSync(out, JSON.stringify({ p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), mean: ms(h.mean), samples: h.count }));
  };
}

export async function main(argv: string[]): Promise<number> {
  let args: Args | 'help';
  try {
    args = parse(argv);
  } catch (e) {
    process.stderr.write(`E_INVALIDARG (0x80070057): ${(e as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (args === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const probe = eventLoopProbe();
  try {
    return await get(args);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`E_INVALIDARG (0x80070057): ${e.message}\n`);
      return 2;
    }
    process.stderr.write(describe(e) + '\n');
    return 1;
  } finally {
    probe?.();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(describe(e) + '\n');
      process.exitCode = 1;
    },
  );
}
