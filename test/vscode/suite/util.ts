// Helpers for the in-editor tests: the extension's API and its internal test hook, waiting, temp folders.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ManagedDownloadsApi } from '../../../src/api/api.d';
import type { CreateJobOptions, EngineJob, JobState } from '../../../src/engine';
import type { NotificationRecord } from '../../../src/notifications';
import type { TestHook } from '../../../src/testHook';
import { TestServer } from '../../support/testServer';

export const EXTENSION_ID = 'dojobs.managed-downloads';

export type TestApi = ManagedDownloadsApi & { readonly _test: TestHook };

export async function activate(): Promise<TestApi> {
  const ext = vscode.extensions.getExtension<ManagedDownloadsApi>(EXTENSION_ID);
  assert.ok(ext, `${EXTENSION_ID} is not loaded`);
  const api = (await ext.activate()) as TestApi;
  assert.ok(api._test, 'the test hook is missing: is MD_TEST_MODE=1 set?');
  return api;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until `fn` returns something truthy. */
export async function waitFor<T>(fn: () => T | undefined | null | false, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) {
      return v;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(20);
  }
}

/** The live job (looked up again each time, so it follows an engine re-open). */
export function jobState(api: TestApi, id: string): JobState {
  return api.getJob(id).state;
}

/**
 * Creates a job through the API and returns the engine's own object for it, for tests that look at what only
 * the extension sees (speed, settings, replaceExisting); the API's handles have the contract's members only.
 */
export async function createEngineJob(api: TestApi, o: CreateJobOptions): Promise<EngineJob> {
  return api._test.engine.getJob((await api.createJob(o)).id);
}

export function waitForState(api: TestApi, id: string, states: JobState | JobState[], timeoutMs = 20_000): Promise<EngineJob> {
  const wanted = Array.isArray(states) ? states : [states];
  return waitFor(
    () => {
      const job = api._test.engine.getJob(id);
      return wanted.includes(job.state) ? job : undefined;
    },
    `job ${id} to reach ${wanted.join('/')} (it is ${api._test.engine.getJob(id).state})`,
    timeoutMs,
  );
}

export function tempDir(prefix = 'md-vsc-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Notifications shown since `from` (an index into the history). */
export function notificationsSince(api: TestApi, from: number): NotificationRecord[] {
  return api._test.notifier.history.slice(from);
}

/** Cancels (best effort) and forgets the jobs a test created, so tests do not see each other's jobs. */
export async function cleanupJobs(api: TestApi, ids: Iterable<string>): Promise<void> {
  // All at once: the store writes concurrent changes together (hundreds of jobs one by one took a minute).
  await Promise.all(
    [...ids].map(async (id) => {
      try {
        const job = api._test.engine.getJob(id);
        if (!job.isFinal) {
          await job.cancel();
        }
        await api._test.engine.removeJob(id);
      } catch {
        // already gone
      }
    }),
  );
}

export async function setSetting(key: string, value: unknown): Promise<void> {
  await vscode.workspace.getConfiguration('managedDownloads').update(key, value, vscode.ConfigurationTarget.Global);
}

export function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

/** What useSuiteFixture() hands each test. */
export interface SuiteFixture {
  api: TestApi;
  server: TestServer;
  dir: string;
  /** Ids of the jobs the test created: cancelled and removed after it. */
  created: Set<string>;
}

/**
 * The usual set-up of an in-editor suite, as mocha hooks: the extension activated and one local test server for
 * the suite (`routes` adds its routes once), a fresh folder for each test, the test's jobs cleaned up after it,
 * and the settings named in `resetSettings` back to their defaults after the suite.
 */
export function useSuiteFixture(use: (f: SuiteFixture) => void, o: { routes?: (server: TestServer) => void; resetSettings?: string[] } = {}): void {
  let fixture: SuiteFixture;
  before(async () => {
    const api = await activate();
    const server = await TestServer.start();
    o.routes?.(server);
    fixture = { api, server, dir: '', created: new Set() };
  });
  after(async () => {
    for (const key of o.resetSettings ?? []) {
      await setSetting(key, undefined);
    }
    await fixture.server.close();
  });
  beforeEach(() => {
    fixture.dir = tempDir();
    use(fixture);
  });
  afterEach(async () => {
    await cleanupJobs(fixture.api, fixture.created);
    fixture.created.clear();
    fs.rmSync(fixture.dir, { recursive: true, force: true });
  });
}
