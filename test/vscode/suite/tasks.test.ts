// `"type": "download"` tasks from tasks.json, run through VS Code's task system against a local server.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { makeZip } from '../../support/archives';
import { randomBody, sha256Hex, TestServer } from '../../support/testServer';
import { activate, sleep, tempDir, waitFor, type TestApi } from './util';

interface TaskRun {
  exitCode: number | undefined;
  output: string;
}

describe('download tasks', () => {
  let api: TestApi;
  let server: TestServer;
  let folder: vscode.WorkspaceFolder;
  let root: string;
  const one = randomBody(200_000, 91);
  const two = randomBody(150_000, 92);

  before(async function () {
    this.timeout(60_000);
    api = await activate();
    server = await TestServer.start();
    const f = vscode.workspace.workspaceFolders?.[0];
    assert.ok(f, 'the test workspace has a folder');
    folder = f;
    root = folder.uri.fsPath;
  });
  after(async () => {
    await vscode.workspace.getConfiguration('tasks', folder.uri).update('tasks', undefined, vscode.ConfigurationTarget.WorkspaceFolder);
    await server.close();
  });
  beforeEach(() => {
    server.reset();
    server.route('/one.bin', { body: one });
    server.route('/two.bin', { body: two });
    server.route('/slow.bin', { body: randomBody(4_000_000, 93), throttleBytesPerSec: 300_000 });
    server.route('/missing.bin', { status: 404 });
    fs.rmSync(path.join(root, 'out'), { recursive: true, force: true });
  });

  /** Writes the tasks into the folder's tasks.json (through the configuration service, as a user edit would). */
  async function defineTasks(tasks: object[]): Promise<void> {
    const cfg = vscode.workspace.getConfiguration('tasks', folder.uri);
    await cfg.update('version', '2.0.0', vscode.ConfigurationTarget.WorkspaceFolder);
    await cfg.update('tasks', tasks, vscode.ConfigurationTarget.WorkspaceFolder);
    // Give the task service a moment to read the new configuration.
    await waitFor(() => {
      const t = vscode.workspace.getConfiguration('tasks', folder.uri).get<object[]>('tasks');
      return JSON.stringify(t) === JSON.stringify(tasks);
    }, 'tasks.json to be written');
    await sleep(300);
  }

  async function fetchTask(label: string): Promise<vscode.Task> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const tasks = await vscode.tasks.fetchTasks();
      const t = tasks.find((x) => x.name === label);
      if (t) {
        return t;
      }
      if (Date.now() > deadline) {
        throw new Error(`task '${label}' not found among ${tasks.map((x) => `${x.source}:${x.name}`).join(', ')}`);
      }
      await sleep(200);
    }
  }

  /** Runs a task and collects its exit code and the text its terminal showed. */
  async function runTask(label: string, o: { stopAfterMs?: number } = {}): Promise<TaskRun> {
    const task = await fetchTask(label);
    api._test.taskTranscripts.delete(label);
    const ended = new Promise<number | undefined>((resolve) => {
      const sub = vscode.tasks.onDidEndTaskProcess((e) => {
        if (e.execution.task.name === label) {
          sub.dispose();
          resolve(e.exitCode);
        }
      });
    });
    const execution = await vscode.tasks.executeTask(task);
    if (o.stopAfterMs !== undefined) {
      await sleep(o.stopAfterMs);
      execution.terminate();
    }
    const exitCode = await Promise.race([ended, sleep(60_000).then(() => -999)]);
    await sleep(100);
    // What the pseudo-terminal wrote, without colours.
    const output = (api._test.taskTranscripts.get(label) ?? '').replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
    return { exitCode, output };
  }

  function jobsNamed(name: string) {
    return api._test.engine.enumJobs({ includeFinal: true }).filter((j) => j.displayName === name);
  }

  it('a one-file task exits 0 and the file has the right sha256; the job is named after the task', async () => {
    await defineTasks([{ label: 'get one', type: 'download', url: server.url('/one.bin'), path: 'out/one.bin' }]);
    const run = await runTask('get one');
    assert.equal(run.exitCode, 0, run.output);
    assert.match(run.output, /✓ one\.bin/);
    assert.match(run.output, /Done: 1 file/);
    assert.equal(sha256Hex(fs.readFileSync(path.join(root, 'out', 'one.bin'))), sha256Hex(one));
    const jobs = jobsNamed('get one');
    assert.equal(jobs.length, 1);
    assert.equal(jobs[0].state, 'ACKNOWLEDGED');
  });

  it('a multi-file task downloads every file in one job', async () => {
    await defineTasks([
      {
        label: 'get both',
        type: 'download',
        files: [
          { url: server.url('/one.bin'), path: 'out/a/one.bin', sha256: sha256Hex(one) },
          { url: server.url('/two.bin'), path: '${workspaceFolder}/out/a/two.bin' },
        ],
      },
    ]);
    fs.mkdirSync(path.join(root, 'out', 'a'), { recursive: true });
    const run = await runTask('get both');
    assert.equal(run.exitCode, 0, run.output);
    assert.equal(sha256Hex(fs.readFileSync(path.join(root, 'out', 'a', 'one.bin'))), sha256Hex(one));
    assert.equal(sha256Hex(fs.readFileSync(path.join(root, 'out', 'a', 'two.bin'))), sha256Hex(two), '${workspaceFolder} was resolved');
    const job = jobsNamed('get both')[0];
    assert.equal(job.getFiles().length, 2);
  });

  it('a wrong sha256 exits non-zero and leaves no destination and no temporary', async () => {
    await defineTasks([{ label: 'bad sum', type: 'download', url: server.url('/one.bin'), path: 'out/bad.bin', sha256: '0'.repeat(64) }]);
    fs.mkdirSync(path.join(root, 'out'), { recursive: true });
    const run = await runTask('bad sum');
    assert.notEqual(run.exitCode, 0);
    assert.deepEqual(fs.readdirSync(path.join(root, 'out')), [], 'no destination, no temporary');
    const job = jobsNamed('bad sum')[0];
    assert.equal(job.state, 'CANCELLED');
    assert.match(run.output, /BG_E_VALIDATION_FAILED/);
  });

  it('a 404 exits non-zero with 0x80190194 in the output', async () => {
    await defineTasks([{ label: 'missing', type: 'download', url: server.url('/missing.bin'), path: 'out/missing.bin' }]);
    fs.mkdirSync(path.join(root, 'out'), { recursive: true });
    const run = await runTask('missing');
    assert.notEqual(run.exitCode, 0);
    assert.equal(jobsNamed('missing')[0].state, 'CANCELLED', 'a failed task leaves nothing behind');
    assert.match(run.output, /HTTP_404, 0x80190194/);
  });

  it("a failed task's notification offers Run Task Again (its job is cancelled: no Retry), which runs the task again", async () => {
    await defineTasks([{ label: 'missing again', type: 'download', url: server.url('/missing.bin'), path: 'out/missing.bin' }]);
    fs.mkdirSync(path.join(root, 'out'), { recursive: true });
    const before = api._test.notifier.history.length;
    assert.notEqual((await runTask('missing again')).exitCode, 0);
    const [job] = jobsNamed('missing again');
    const toast = await waitFor(() => api._test.notifier.history.slice(before).find((n) => n.jobId === job.id && n.severity === 'error'), 'the failure notification');
    assert.deepEqual(toast.actions.slice(0, 2), ['Run Task Again', 'Show Download']);
    const started = new Promise<string>((resolve) => {
      const sub = vscode.tasks.onDidStartTask((e) => {
        sub.dispose();
        resolve(e.execution.task.name);
      });
    });
    await toast.choose('Run Task Again');
    assert.equal(await started, 'missing again');
    await waitFor(() => jobsNamed('missing again').length === 2 && jobsNamed('missing again').every((j) => j.state === 'CANCELLED'), 'the second run to fail as well');
  });

  it('terminating a running task cancels its job (temporaries gone)', async () => {
    await defineTasks([{ label: 'stop me', type: 'download', url: server.url('/slow.bin'), path: 'out/slow.bin' }]);
    fs.mkdirSync(path.join(root, 'out'), { recursive: true });
    const runP = runTask('stop me', { stopAfterMs: 1500 });
    const job = await waitFor(() => jobsNamed('stop me')[0], 'the task job');
    await waitFor(() => job.getProgress().bytesTransferred > 0, 'bytes');
    await runP;
    await waitFor(() => job.state === 'CANCELLED', 'the job to be cancelled', 10_000);
    assert.deepEqual(fs.readdirSync(path.join(root, 'out')), []);
  });

  it('a second run with a matching sha256 makes no request', async () => {
    await defineTasks([{ label: 'cached', type: 'download', url: server.url('/one.bin'), path: 'out/cached.bin', sha256: sha256Hex(one) }]);
    fs.mkdirSync(path.join(root, 'out'), { recursive: true });
    assert.equal((await runTask('cached')).exitCode, 0);
    // (The first run may itself be served by the content cache, filled by an earlier test of the same bytes.)
    const requests = server.requestsFor('/one.bin').length;
    const second = await runTask('cached');
    assert.equal(second.exitCode, 0);
    assert.match(second.output, /up to date/);
    assert.equal(server.requestsFor('/one.bin').length, requests, 'no request the second time');
    assert.equal(jobsNamed('cached').length, 1, 'no job either');
  });

  it('without a sha256, an existing destination is downloaded again', async () => {
    await defineTasks([{ label: 'again', type: 'download', url: server.url('/two.bin'), path: 'out/again.bin' }]);
    fs.mkdirSync(path.join(root, 'out'), { recursive: true });
    fs.writeFileSync(path.join(root, 'out', 'again.bin'), 'old content');
    const run = await runTask('again');
    assert.equal(run.exitCode, 0, run.output);
    assert.match(run.output, /downloading it again/);
    assert.equal(sha256Hex(fs.readFileSync(path.join(root, 'out', 'again.bin'))), sha256Hex(two));
  });

  it('dependsOn: a build task that depends on a download task waits for the file', async () => {
    const marker = path.join(root, 'out', 'built.txt');
    await defineTasks([
      { label: 'fetch input', type: 'download', url: server.url('/slow.bin'), path: 'out/input.bin' },
      {
        label: 'build',
        type: 'shell',
        command: `test -f "${path.join(root, 'out', 'input.bin')}" && wc -c < "${path.join(root, 'out', 'input.bin')}" > "${marker}"`,
        dependsOn: ['fetch input'],
      },
    ]);
    server.route('/slow.bin', { body: randomBody(1_000_000, 93), throttleBytesPerSec: 2_000_000 });
    fs.mkdirSync(path.join(root, 'out'), { recursive: true });
    const run = await runTask('build');
    assert.equal(run.exitCode, 0);
    assert.equal(fs.readFileSync(marker, 'utf8').trim(), '1000000', 'the build ran after the download finished');
  });

  it('"extract": true unpacks the downloaded zip beside it, named after it; a second run finds it extracted', async () => {
    const tool = randomBody(20_000, 94);
    server.route('/tools.zip', { body: makeZip([{ name: 'bin/tool', data: tool }, { name: 'README.txt', data: 'read me\n' }]) });
    await defineTasks([{ label: 'get tools', type: 'download', url: server.url('/tools.zip'), path: 'out/tools.zip', extract: true }]);
    const run = await runTask('get tools');
    assert.equal(run.exitCode, 0, run.output);
    assert.match(run.output, /Extracted 2 files \(/);
    assert.equal(sha256Hex(fs.readFileSync(path.join(root, 'out', 'tools', 'bin', 'tool'))), sha256Hex(tool));
    assert.equal(fs.readFileSync(path.join(root, 'out', 'tools', 'README.txt'), 'utf8'), 'read me\n');
    assert.ok(fs.existsSync(path.join(root, 'out', 'tools.zip')), 'the archive stays in place');
    const again = await runTask('get tools');
    assert.equal(again.exitCode, 0, again.output);
    assert.match(again.output, /already holds the contents of tools\.zip/);
  });

  it('a bad definition fails with a message naming the field', async () => {
    await defineTasks([{ label: 'no path', type: 'download', url: server.url('/one.bin') }]);
    const run = await runTask('no path');
    assert.notEqual(run.exitCode, 0);
    assert.match(run.output, /'path' is missing/);
  });
});

describe('download tasks in an untrusted workspace', () => {
  it('do not run: the terminal says why, exits non-zero, creates no job and writes nothing', async () => {
    const api = await activate();
    const { DownloadTerminal } = await import('../../../src/tasks/downloadTerminal');
    const dir = tempDir('md-untrusted-');
    const outside = path.join(dir, 'outside.bin');
    const before = api._test.engine.enumJobs({ includeFinal: true }).length;
    const log = vscode.window.createOutputChannel('md-untrusted-test', { log: true });
    const term = new DownloadTerminal(api._test.host, 'untrusted', { type: 'download', url: 'http://127.0.0.1:9/x', path: outside }, dir, log, () => false);
    let output = '';
    term.onDidWrite((t) => (output += t));
    const code = await new Promise<number>((resolve) => {
      term.onDidClose((c) => resolve(c ?? 0));
      term.open();
    });
    log.dispose();
    assert.notEqual(code, 0);
    assert.match(output, /not trusted/);
    assert.equal(api._test.engine.enumJobs({ includeFinal: true }).length, before, 'no job was created');
    assert.ok(!fs.existsSync(outside));
  });
});
