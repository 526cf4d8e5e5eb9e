/**
 * Demo download server for trying the extension by hand (what `npm start` launches).
 *
 *   node out/demo/demoServer.js [--port N]      (default 8787, binds 127.0.0.1 only)
 *
 * stdout gets exactly one line once ready: "Demo server listening on http://127.0.0.1:<port>".
 * Each finished request is logged to stderr. SIGINT / SIGTERM close the server and exit 0.
 * Bodies are generated lazily (on first use) from fixed seeds, so /sha256.json is stable across runs.
 */
import type { RouteOptions } from '../test/support/testServer';
import { randomBody, sha256Hex, TestServer } from '../test/support/testServer';
import { startBitsUploadServer, type BitsUploadServer } from '../test/support/bitsUploadServer';
import { makeZip } from '../test/support/archives';

const KiB = 1024;
const MiB = 1024 * KiB;
const DEFAULT_PORT = 8787;

interface DemoFile {
  path: string;
  description: string;
  /** undefined for files that do not exist (404) */
  size?: number;
  body?: () => Buffer;
  options: Omit<RouteOptions, 'body'>;
}

function lazy(make: () => Buffer): () => Buffer {
  let cached: Buffer | undefined;
  return () => (cached ??= make());
}

const SMALL_TEXT =
  'Hello from the Managed Downloads demo server.\n' +
  'This file is small enough to finish in one request; try the bigger ones for progress, resume and retries.\n';

const FILES: DemoFile[] = [
  {
    path: '/files/small.txt',
    description: 'a short text file',
    size: Buffer.byteLength(SMALL_TEXT),
    body: lazy(() => Buffer.from(SMALL_TEXT, 'utf8')),
    options: { headers: { 'Content-Type': 'text/plain; charset=utf-8' } },
  },
  {
    path: '/files/medium.bin',
    description: '4 MiB, ranges and strong ETag',
    size: 4 * MiB,
    body: lazy(() => randomBody(4 * MiB, 1001)),
    options: {},
  },
  {
    path: '/files/large.bin',
    description: '64 MiB, ranges and strong ETag, throttled to ~2 MiB/s (pause / resume it)',
    size: 64 * MiB,
    body: lazy(() => randomBody(64 * MiB, 1002)),
    options: { throttleBytesPerSec: 2 * MiB },
  },
  {
    path: '/files/no-range.bin',
    description: '8 MiB, no Range support and no ETag, throttled to ~1 MiB/s (cannot resume)',
    size: 8 * MiB,
    body: lazy(() => randomBody(8 * MiB, 1003)),
    options: { ranges: false, etag: null, throttleBytesPerSec: 1 * MiB },
  },
  {
    path: '/files/tools.zip',
    description: 'a small zip (a folder, a script, a readme) to try Extract on',
    body: lazy(() =>
      makeZip([
        { name: 'tools/' },
        { name: 'tools/hello.sh', data: '#!/bin/sh\necho "Hello from the extracted archive"\n', unixMode: 0o100755 },
        { name: 'tools/README.txt', data: 'Unpacked by Managed Downloads.\n'.repeat(50) },
      ]),
    ),
    options: { headers: { 'Content-Type': 'application/zip' } },
  },
  {
    path: '/mirror/files/medium.bin',
    description: 'a mirror of medium.bin: the same bytes under another ETag (a mirrored task and demo.meta4 use it)',
    size: 4 * MiB,
    body: lazy(() => randomBody(4 * MiB, 1001)),
    options: { etag: '"mirror-medium"' },
  },
  {
    path: '/files/missing.bin',
    description: 'always 404 Not Found',
    options: { status: 404 },
  },
  {
    path: '/files/flaky.bin',
    description: '2 MiB, the connection is reset after 512 KiB the first 2 times',
    size: 2 * MiB,
    body: lazy(() => randomBody(2 * MiB, 1004)),
    options: { resetAfterBytes: 512 * KiB, resetTimes: 2 },
  },
];

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function formatSize(n: number): string {
  return n >= MiB ? `${n / MiB} MiB` : n >= KiB ? `${(n / KiB).toFixed(1)} KiB` : `${n} B`;
}

function indexHtml(): Buffer {
  const rows = FILES.map(
    (f) =>
      `      <li><a href="${escapeHtml(f.path)}">${escapeHtml(f.path)}</a>` +
      `${f.size !== undefined ? ` (${formatSize(f.size)})` : ''} — ${escapeHtml(f.description)}</li>`,
  ).join('\n');
  return Buffer.from(
    `<!doctype html>
<html lang="en">
  <head><meta charset="utf-8"><title>Managed Downloads demo server</title></head>
  <body>
    <h1>Managed Downloads demo server</h1>
    <ul>
${rows}
    </ul>
    <p>SHA-256 of every file: <a href="/sha256.json">/sha256.json</a></p>
  </body>
</html>
`,
    'utf8',
  );
}

/** { "/files/small.txt": { "size": 151, "sha256": "…" }, … } for every file that exists. */
function sha256Json(): Buffer {
  const out: Record<string, { size: number; sha256: string }> = {};
  for (const f of FILES) {
    if (f.body) {
      const b = f.body();
      out[f.path] = { size: b.length, sha256: sha256Hex(b) };
    }
  }
  return Buffer.from(JSON.stringify(out, null, 2) + '\n', 'utf8');
}

function parsePort(argv: string[]): number {
  let port = DEFAULT_PORT;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    let value: string | undefined;
    if (a === '--port') {
      value = argv[++i];
    } else if (a.startsWith('--port=')) {
      value = a.slice('--port='.length);
    } else if (a === '--help' || a === '-h') {
      process.stdout.write('Usage: node out/demo/demoServer.js [--port N]   (default 8787)\n');
      process.exit(0);
    } else {
      fail(`unknown argument ${JSON.stringify(a)}. Usage: node out/demo/demoServer.js [--port N]`, 2);
    }
    if (value === undefined || !/^\d+$/.test(value) || Number(value) > 65535) {
      fail(`--port needs a number between 0 and 65535, got ${JSON.stringify(value ?? '')}`, 2);
    }
    port = Number(value);
  }
  return port;
}

function fail(message: string, code = 1): never {
  process.stderr.write(`Demo server: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  const port = parsePort(process.argv.slice(2));

  let server: TestServer;
  try {
    server = await TestServer.start({ port });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      fail(`port ${port} on 127.0.0.1 is already in use. Stop whatever uses it or pick another port with --port N.`);
    }
    if (code === 'EACCES') {
      fail(`no permission to listen on port ${port}. Pick another port with --port N.`);
    }
    fail(`could not start: ${err instanceof Error ? err.message : String(err)}`);
  }

  for (const f of FILES) {
    server.route(f.path, f.body ? { ...f.options, body: f.body } : f.options);
  }
  server.route('/', { body: indexHtml(), headers: { 'Content-Type': 'text/html; charset=utf-8' } });
  server.route('/sha256.json', { body: sha256Json, headers: { 'Content-Type': 'application/json; charset=utf-8' } });

  server.onRequestDone = (e) => {
    const ms = Date.now() - e.time;
    const range = e.range !== undefined ? ` [${e.range}]` : '';
    const status = e.status === 0 ? 'aborted' : String(e.status);
    process.stderr.write(`${e.method} ${e.path}${range} -> ${status}, ${e.bytesSent} bytes, ${ms} ms\n`);
    // The demo runs for a long time: do not keep the request log growing.
    const i = server.requests.indexOf(e);
    if (i >= 0) {
      server.requests.splice(i, 1);
    }
  };

  // A BITS upload server one port up, for upload jobs (finished uploads land in a temporary folder).
  let uploads: BitsUploadServer | undefined;
  try {
    uploads = await startBitsUploadServer({
      port: port === 0 ? 0 : port + 1,
      onRequest: (e) => process.stderr.write(`upload ${JSON.stringify(e).slice(0, 200)}\n`),
    });
    process.stderr.write(`BITS upload server on ${uploads.url('/uploads/')} (files land in ${uploads.destDir})\n`);
  } catch (err) {
    process.stderr.write(`The BITS upload server could not start (${String(err)}); upload jobs are not available in the demo.\n`);
  }

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      process.exit(130); // second signal: give up waiting
    }
    stopping = true;
    process.stderr.write(`Demo server: ${signal} received, shutting down\n`);
    Promise.all([server.close(), uploads?.close()]).then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`Demo server: error while closing: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  process.stdout.write(`Demo server listening on ${server.origin}\n`);
}

main().catch((err: unknown) => {
  fail(err instanceof Error ? (err.stack ?? err.message) : String(err));
});
