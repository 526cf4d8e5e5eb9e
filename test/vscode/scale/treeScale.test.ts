// Issue 16, in the editor: with 10,000 jobs the tree must open and scroll without a visible pause, and the status
// bar and badge must stay right. A benchmark (`npm run bench:tree`): it prints the figures; it asserts only what
// must be true whatever the machine's speed (the counts the badge and the status bar show).
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import * as vscode from 'vscode';
import type { EngineJob } from '../../../src/engine';
import { randomBody, type TestServer } from '../../support/testServer';
import { createEngineJob, sleep, useSuiteFixture, waitFor, type TestApi } from '../suite/util';

const JOBS = Number(process.env.MD_TREE_JOBS ?? 10_000);
const RUNNING = 10;

/** Wall time and the extension host's event-loop delay while `fn` runs. */
async function measured<T>(what: string, fn: () => Promise<T> | T): Promise<T> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    h.disable();
    const ms = (n: number): string => (n / 1e6).toFixed(1);
    console.log(`      ${what.padEnd(58)} ${(performance.now() - t0).toFixed(0).padStart(7)} ms   event loop p99 ${ms(h.percentile(99))} ms, max ${ms(h.max)} ms`);
  }
}

async function pool(count: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) {
      await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, count) }, lane));
}

describe(`the extension with ${JOBS.toLocaleString('en')} jobs (benchmark)`, function () {
  this.timeout(900_000);
  let api: TestApi;
  let server: TestServer;
  let dir: string;
  let created: Set<string>;
  useSuiteFixture((f) => ({ api, server, dir, created } = f), {
    routes: (s) => {
      s.route('/small.bin', { body: randomBody(16 * 1024, 3) });
      s.route('/slow.bin', { body: randomBody(64 * 1024 * 1024, 4), throttleBytesPerSec: 200_000 });
    },
  });

  it(`opens the view, refreshes rows while ${RUNNING} transfer, and counts them right in the badge and the status bar`, async () => {
    const jobs: EngineJob[] = new Array<EngineJob>(JOBS);
    await measured(`create ${JOBS} one-file jobs (64 callers, through the API)`, () =>
      pool(JOBS, 64, async (i) => {
        const j = await createEngineJob(api, { displayName: `job ${i}` });
        created.add(j.id);
        await j.addFile(server.url(i < RUNNING ? '/slow.bin' : '/small.bin'), path.join(dir, `f${i}.bin`));
        jobs[i] = j;
      }),
    );
    const provider = api._test.provider;
    // What VS Code asks of the provider when the view opens: the root's children and a TreeItem for each.
    const rows = await measured('the root rows and a TreeItem for each (what the view asks)', () => {
      const nodes = provider.getChildren();
      for (const n of nodes) {
        provider.getTreeItem(n);
      }
      return nodes;
    });
    // One row per job up to 200, then pages of 500 built when opened (src/views/nodes/pageNode.ts).
    const pages = rows.filter((n) => n.kind === 'page');
    console.log(`      root: ${rows.length - pages.length} job rows and ${pages.length} pages`);
    await measured('open every page (what expanding each one asks)', () => {
      let n = rows.length - pages.length;
      for (const p of pages) {
        for (const c of provider.getChildren(p)) {
          provider.getTreeItem(c);
          n++;
        }
      }
      assert.equal(n, JOBS, 'every unfinished job is in the tree, at the root or in a page');
    });
    await measured('open the view (managedDownloads.jobs.focus) and let it settle 2 s', async () => {
      await vscode.commands.executeCommand('managedDownloads.jobs.focus');
      await sleep(2000);
    });
    await measured(`resume ${RUNNING} jobs; 10 s of their progress refreshing their rows`, async () => {
      await Promise.all(jobs.slice(0, RUNNING).map((j) => j.resume()));
      await sleep(10_000);
    });
    console.log(`      tree refreshes fired: ${JSON.stringify(provider.stats)}`);
    const view = api._test.view.treeView;
    await waitFor(() => view.badge?.value === RUNNING, `the badge to count ${RUNNING} (it shows ${view.badge?.value})`);
    const status = api._test.statusBar.item;
    assert.match(status.text, new RegExp(`^\\$\\(cloud-download\\) ${RUNNING}( · .+)?$`), `the status bar counts ${RUNNING} (it says ${status.text})`);
    console.log(`      badge ${view.badge?.value} (${view.badge?.tooltip}); status bar "${status.text}"`);
    await measured(`cancel all ${JOBS} (64 callers)`, () => pool(JOBS, 64, (i) => jobs[i].cancel().then(() => undefined)));
  });
});
