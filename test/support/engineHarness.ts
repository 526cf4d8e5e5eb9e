// Helpers for engine tests: a temporary folder, an engine with fast timings, and waits on job states.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DownloadEngine, type EngineOptions, type JobImpl, type JobState } from '../../src/engine';
import { TestServer } from './testServer';

export function tempDir(prefix = 'md-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Options that make retries, checkpoints and events quick enough for tests. */
export function fastOptions(storeDir: string, extra: Partial<EngineOptions> = {}): EngineOptions {
  return {
    storeDir,
    retryDelayFloorSeconds: 0,
    checkpointIntervalMs: 50,
    checkpointBytes: 64 * 1024,
    progressThrottleMs: 20,
    storeBatchMs: 10,
    timeouts: { headersMs: 5_000, bodyIdleMs: 5_000, lowSpeedBytesPerSecond: 1, lowSpeedWindowMs: 60_000 },
    ...extra,
  };
}

export async function openEngine(storeDir: string, extra: Partial<EngineOptions> = {}): Promise<DownloadEngine> {
  return DownloadEngine.open(fastOptions(storeDir, extra));
}

/** Resolves when the job reaches one of `states` (checked on every change event and at once). */
export function waitForState(engine: DownloadEngine, job: JobImpl, states: JobState | JobState[], timeoutMs = 15_000): Promise<void> {
  const want = Array.isArray(states) ? states : [states];
  return new Promise((resolve, reject) => {
    if (want.includes(job.state)) {
      resolve();
      return;
    }
    const timer = setTimeout(() => {
      sub.dispose();
      reject(new Error(`job '${job.displayName}' is ${job.state}, still not ${want.join('/')} after ${timeoutMs} ms (error: ${job.record.error?.message ?? 'none'})`));
    }, timeoutMs);
    const sub = engine.onDidChangeJob((j) => {
      if (j === job && want.includes(job.state)) {
        clearTimeout(timer);
        sub.dispose();
        resolve();
      }
    });
  });
}

/** Resolves once `predicate` holds, polling (for live byte counts, which are throttled in events). */
export async function waitUntil(predicate: () => boolean, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function listDir(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

/**
 * The usual set-up of a test against a local server, as mocha hooks: one test server for the suite (reset before
 * each test) and a fresh folder for each test, deleted afterwards (made writable first, for tests that lock it).
 * `use` receives them before each test. Mocha runs hooks in the order they are added: a suite's own beforeEach
 * added after this call sees the folder; its own afterEach must be added before this call to run before the
 * folder goes (to dispose what it opened there).
 */
export function useServerFixture(use: (f: { server: TestServer; dir: string }) => void, o: { prefix?: string } = {}): void {
  let server: TestServer;
  let dir: string;
  before(async () => {
    server = await TestServer.start();
  });
  after(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.reset();
    dir = tempDir(o.prefix);
    use({ server, dir });
  });
  afterEach(() => {
    if (fs.existsSync(dir)) {
      fs.chmodSync(dir, 0o755);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

/** What useEngineFixture() hands each test. */
export interface EngineFixture {
  server: TestServer;
  dir: string;
  engine: DownloadEngine;
  /** Disposes the engine (if the test has not) and opens a new one over the same store, disposed after the test. */
  reopen: (extra?: Partial<EngineOptions>) => Promise<DownloadEngine>;
}

/** useServerFixture() plus an engine over `<dir>/store` (with `extra` options) for each test, disposed after it. */
export function useEngineFixture(use: (f: EngineFixture) => void, extra: Partial<EngineOptions> = {}): void {
  let engine: DownloadEngine | undefined;
  let fixture: { server: TestServer; dir: string };
  afterEach(async () => {
    await engine?.dispose();
    engine = undefined;
  });
  useServerFixture((f) => (fixture = f));
  beforeEach(async () => {
    const store = path.join(fixture.dir, 'store');
    engine = await openEngine(store, extra);
    const reopen = async (more: Partial<EngineOptions> = {}): Promise<DownloadEngine> => {
      await engine?.dispose();
      engine = await openEngine(store, { ...extra, ...more });
      return engine;
    };
    use({ ...fixture, engine, reopen });
  });
}
