// The Job objects of the exported API (contract §4): live views that follow the job across take-overs, and
// nothing of the engine's inside reachable through them.
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { JobHandles } from '../../src/api/jobHandles';
import type { Job, NewFile } from '../../src/engine';
import { SharedEngine } from '../../src/engine/remote/sharedEngine';
import { fastOptions, useServerFixture, waitUntil } from '../support/engineHarness';
import { randomBody, sha256Hex, TestServer } from '../support/testServer';

const OWNER_CHILD = path.join(__dirname, '..', 'support', 'sharedOwnerChild.js');

/** Contract §4's Job, member for member, with §8's URL changes and §10's speed limit. */
const CONTRACT_MEMBERS = [
  'id', 'displayName', 'description', 'type', 'priority', 'state', 'errorCount',
  'getFiles', 'getProgress', 'getTimes', 'getError',
  'addFile', 'addFileSet', 'resume', 'suspend', 'complete', 'cancel',
  'setPriority', 'setDisplayName', 'setMinimumRetryDelay', 'setNoProgressTimeout', 'setHttpHeaders',
  'maxBytesPerSecond', 'setMaxBytesPerSecond', 'setRemoteUrl', 'replaceRemotePrefix',
];

describe('API job handles (contract §4)', () => {
  let server: TestServer;
  let dir: string;
  let store: string;
  const opened: SharedEngine[] = [];
  const children: ChildProcess[] = [];
  const body = randomBody(2_000_000, 81);

  afterEach(async () => {
    for (const c of children.splice(0)) {
      c.kill('SIGKILL');
    }
    for (const s of opened.splice(0)) {
      await s.dispose();
    }
  });
  useServerFixture((f) => ({ server, dir } = f));
  beforeEach(() => {
    server.route('/f', { body });
    store = path.join(dir, 'store');
  });

  async function open(): Promise<{ shared: SharedEngine; handles: JobHandles }> {
    const shared = await SharedEngine.open(fastOptions(store));
    opened.push(shared);
    return { shared, handles: new JobHandles(() => shared.service, () => shared.settled()) };
  }

  /** An owner window in its own process, so that it can be SIGKILLed. */
  async function ownerProcess(): Promise<ChildProcess> {
    const child = spawn(process.execPath, [OWNER_CHILD, store], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    const role = await new Promise<string>((resolve) => readline.createInterface({ input: child.stdout }).once('line', (l) => resolve((JSON.parse(l) as { role: string }).role)));
    assert.equal(role, 'owner');
    return child;
  }

  it('a handle got through a client follows the job after the owner is killed and this window takes over', async () => {
    server.route('/f', { body, throttleBytesPerSec: 1_000_000 });
    const owner = await ownerProcess();
    const { shared: client, handles } = await open();
    assert.equal(client.role, 'client');
    const job = handles.of(await client.service.createJob({ displayName: 'followed' }));
    await job.addFile(server.url('/f'), path.join(dir, 'f.bin'));
    await job.resume();
    await waitUntil(() => job.getProgress().bytesTransferred > 0, 10_000, 'progress seen through the handle');
    const tookOver = new Promise<void>((r) => client.onDidChangeService(() => r()));
    owner.kill('SIGKILL');
    await tookOver;
    assert.equal(client.role, 'owner');
    server.route('/f', { body });
    await waitUntil(() => job.state === 'TRANSFERRED', 15_000, `the old handle to read TRANSFERRED (reads ${job.state})`);
    assert.equal(job.getProgress().bytesTransferred, body.length);
    assert.equal(await job.complete(), 'S_OK');
    assert.equal(job.state, 'ACKNOWLEDGED');
    assert.equal(sha256Hex(fs.readFileSync(path.join(dir, 'f.bin'))), sha256Hex(body));
  });

  it('has exactly the contract\'s members, frozen: no record, no runtime, writes refused', async () => {
    const { shared, handles } = await open();
    const job = handles.of(await shared.service.createJob({ displayName: 'sealed' }));
    assert.deepEqual(Object.keys(job).sort(), [...CONTRACT_MEMBERS].sort());
    assert.deepEqual(Object.getOwnPropertyNames(job).sort(), [...CONTRACT_MEMBERS].sort());
    const loose = job as unknown as Record<string, unknown>;
    for (const internal of ['record', 'rt', 'host', 'isFinal', 'setAutoComplete', 'setFilesInFlight', 'setReplaceExisting', 'exclusive']) {
      assert.equal(loose[internal], undefined, `${internal} is not reachable`);
    }
    assert.ok(Object.isFrozen(job));
    assert.throws(() => (loose.state = 'TRANSFERRED'), TypeError);
    assert.throws(() => (loose.record = {}), TypeError);
    assert.throws(() => (loose.resume = () => undefined), TypeError);
    assert.equal(job.state, 'SUSPENDED');
    assert.equal(handles.of(shared.service.getJob(job.id)), job, 'one handle per job');
    await job.addFile(server.url('/f'), path.join(dir, 'g.bin'));
    const [file] = job.getFiles();
    assert.ok(Object.isFrozen(file));
    assert.throws(() => ((file as unknown as Record<string, unknown>).localPath = '/etc/passwd'), TypeError);
  });

  it('addFile / addFileSet with an option the contract does not have (replaceExisting) do not replace an existing file', async () => {
    const { shared, handles } = await open();
    const dest = path.join(dir, 'theirs.bin');
    const dest2 = path.join(dir, 'theirs2.bin');
    fs.writeFileSync(dest, 'not yours');
    fs.writeFileSync(dest2, 'not yours either');
    const job = handles.of(await shared.service.createJob({ displayName: 'no replacing' }));
    await job.addFile(server.url('/f'), dest, { replaceExisting: true } as { sha256?: string });
    const job2 = handles.of(await shared.service.createJob({ displayName: 'no replacing either' }));
    await job2.addFileSet([{ remoteUrl: server.url('/f'), localPath: dest2, replaceExisting: true } as NewFile]);
    for (const j of [job, job2]) {
      await j.resume();
    }
    await waitUntil(() => job.state === 'TRANSFERRED' && job2.state === 'TRANSFERRED', 15_000, 'both transferred');
    for (const j of [job, job2] as Job[]) {
      await assert.rejects(j.complete(), (e: Error & { code?: string }) => e.code === 'EEXIST');
      assert.equal(j.state, 'TRANSFERRED');
    }
    assert.equal(fs.readFileSync(dest, 'utf8'), 'not yours');
    assert.equal(fs.readFileSync(dest2, 'utf8'), 'not yours either');
  });
});
