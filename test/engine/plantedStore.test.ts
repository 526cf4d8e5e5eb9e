// The job store and the header vault as hostile input: a planted jobs.json must not make the engine truncate,
// delete or replace files it did not create; leftover or planted temporaries must not decide the files' modes.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DownloadEngine } from '../../src/engine';
import { matrix } from '../support/matrix';
import { openEngine, tempDir } from '../support/engineHarness';

const DAY = 24 * 3_600_000;

describe('a planted job store', () => {
  let dir: string;
  let store: string;
  let victim: string;
  const precious = 'precious bytes the engine never wrote\n';

  beforeEach(() => {
    dir = tempDir('md-planted-');
    store = path.join(dir, 'store');
    victim = path.join(dir, 'victim.txt');
    fs.writeFileSync(victim, precious);
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A real job written by the engine (one file, SUSPENDED), then edited by `plant` in jobs.json. */
  async function plantedJob(plant: (job: Record<string, unknown>, file: Record<string, unknown>) => void, o: { allowedRoots?: string[] } = {}): Promise<string> {
    const engine = await openEngine(store, o);
    const job = await engine.createJob({ displayName: 'planted' });
    await job.addFile('http://127.0.0.1:9/file.bin', path.join(dir, 'file.bin'));
    await engine.dispose();
    const journal = JSON.parse(fs.readFileSync(path.join(store, 'jobs.json'), 'utf8')) as { jobs: Record<string, unknown>[] };
    const record = journal.jobs[0];
    plant(record, (record.files as Record<string, unknown>[])[0]);
    fs.writeFileSync(path.join(store, 'jobs.json'), JSON.stringify(journal));
    return job.id;
  }

  /** What the side file kept, by id. */
  function rejectedIds(): unknown[] {
    const name = fs.readdirSync(store).find((n) => n.startsWith('jobs.rejected-'));
    assert.ok(name, `a jobs.rejected-*.json beside the store (found ${fs.readdirSync(store).join(', ')})`);
    assert.equal(fs.statSync(path.join(store, name)).mode & 0o777, 0o600);
    return (JSON.parse(fs.readFileSync(path.join(store, name), 'utf8')) as { jobs: { id: unknown }[] }).jobs.map((j) => j.id);
  }

  it(matrix('hostile input', 'planted jobs.json whose temporaryPath names a victim file, job past retention', 'the victim is untouched (no truncate at start-up, no delete by retention); the temporary path is recomputed'), async () => {
    await plantedJob((job, file) => {
      job.created = Date.now() - 60 * DAY;
      file.temporaryPath = victim;
    });
    const engine = await openEngine(store);
    try {
      assert.equal(engine.enumJobs({ includeFinal: true }).length, 0, 'retention removed the job');
    } finally {
      await engine.dispose();
    }
    assert.equal(fs.readFileSync(victim, 'utf8'), precious);
  });

  it(matrix('hostile input', 'planted jobs.json whose temporaryPath names a victim file, then cancel()', 'the victim is untouched; getFiles() shows the recomputed temporary beside the destination'), async () => {
    const id = await plantedJob((_job, file) => {
      file.temporaryPath = victim;
    });
    const engine = await openEngine(store);
    try {
      const job = engine.getJob(id);
      const temp = job.getFiles()[0].temporaryPath;
      assert.notEqual(temp, victim);
      assert.equal(path.dirname(temp), dir);
      assert.match(path.basename(temp), /^\.file\.bin\.[0-9a-f]{8}\.mdpart$/);
      await job.cancel();
    } finally {
      await engine.dispose();
    }
    assert.equal(fs.readFileSync(victim, 'utf8'), precious);
  });

  it(matrix('hostile input', "planted jobs.json with a job id that is not a GUID ('../../x')", 'set aside: not loaded, reported in problems, kept in jobs.rejected-*.json'), async () => {
    await plantedJob((job) => {
      job.id = '../../x';
    });
    const engine = await openEngine(store);
    try {
      assert.deepEqual(engine.enumJobs({ includeFinal: true }).map((j) => j.id), []);
      assert.ok(engine.problems.some((p) => /set aside.*not a GUID/.test(p)), engine.problems.join('\n'));
    } finally {
      await engine.dispose();
    }
    assert.deepEqual(rejectedIds(), ['../../x']);
    const journal = JSON.parse(fs.readFileSync(path.join(store, 'jobs.json'), 'utf8')) as { jobs: unknown[] };
    assert.equal(journal.jobs.length, 0, 'the set-aside entry leaves the journal');
  });

  it(matrix('hostile input', 'planted jobs.json with a relative localPath', 'set aside: not loaded, reported, kept; nothing deleted'), async () => {
    const id = await plantedJob((_job, file) => {
      file.localPath = 'victim.txt';
      file.temporaryPath = victim;
    });
    const engine = await openEngine(store);
    try {
      assert.equal(engine.enumJobs().length, 0);
      assert.ok(engine.problems.some((p) => /set aside.*relative/.test(p)), engine.problems.join('\n'));
    } finally {
      await engine.dispose();
    }
    assert.deepEqual(rejectedIds(), [id]);
    assert.equal(fs.readFileSync(victim, 'utf8'), precious);
  });

  it(matrix('hostile input', 'planted jobs.json with a destination outside the engine\'s allowed roots', 'set aside, like addFile would refuse it'), async () => {
    const allowed = path.join(dir, 'allowed');
    fs.mkdirSync(allowed);
    const id = await plantedJob((_job, file) => {
      file.localPath = path.join(dir, 'elsewhere.bin');
    });
    const engine = await openEngine(store, { allowedRoots: [allowed] });
    try {
      assert.equal(engine.enumJobs().length, 0);
      assert.ok(engine.problems.some((p) => /set aside.*outside the allowed folders/.test(p)), engine.problems.join('\n'));
    } finally {
      await engine.dispose();
    }
    assert.deepEqual(rejectedIds(), [id]);
  });

  it(matrix('hostile input', 'a stored URL with user:password@ (written by an older version)', 'the credentials are removed from the job store and reported; the job loads'), async () => {
    const id = await plantedJob((_job, file) => {
      file.remoteUrl = 'http://alice:s3cret-pw@127.0.0.1:9/file.bin';
    });
    const engine = await openEngine(store);
    try {
      assert.equal(engine.getJob(id).getFiles()[0].remoteUrl, 'http://127.0.0.1:9/file.bin');
      assert.ok(engine.problems.some((p) => /user name and password.*removed/.test(p)), engine.problems.join('\n'));
    } finally {
      await engine.dispose();
    }
    assert.doesNotMatch(fs.readFileSync(path.join(store, 'jobs.json'), 'utf8'), /s3cret-pw/);
  });
});

describe('private files of the store (jobs.json, the header vault)', () => {
  let dir: string;
  let store: string;

  beforeEach(() => {
    dir = tempDir('md-modes-');
    store = path.join(dir, 'store');
    fs.mkdirSync(store);
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function writeBoth(): Promise<void> {
    const engine: DownloadEngine = await openEngine(store);
    try {
      const job = await engine.createJob({ displayName: 'modes' });
      await job.setHttpHeaders({ Authorization: 'Bearer very-secret' });
    } finally {
      await engine.dispose();
    }
  }

  it(matrix('hostile input', 'a leftover 0666 jobs.json.tmp and headers.secret.json.tmp', 'jobs.json and the vault are written 0600 all the same'), async () => {
    for (const name of ['jobs.json.tmp', 'headers.secret.json.tmp']) {
      fs.writeFileSync(path.join(store, name), 'left over');
      fs.chmodSync(path.join(store, name), 0o666);
    }
    await writeBoth();
    assert.equal(fs.statSync(path.join(store, 'jobs.json')).mode & 0o777, 0o600, 'jobs.json');
    assert.equal(fs.statSync(path.join(store, 'headers.secret.json')).mode & 0o777, 0o600, 'the header vault');
  });

  it(matrix('hostile input', 'a symbolic link planted at jobs.json.tmp and headers.secret.json.tmp, pointing at a victim file', 'the victim is untouched; the link is removed, not written through'), async () => {
    const victim = path.join(dir, 'victim.txt');
    fs.writeFileSync(victim, 'precious');
    fs.chmodSync(victim, 0o644);
    for (const name of ['jobs.json.tmp', 'headers.secret.json.tmp']) {
      fs.symlinkSync(victim, path.join(store, name));
    }
    await writeBoth();
    assert.equal(fs.readFileSync(victim, 'utf8'), 'precious');
    assert.equal(fs.statSync(victim).mode & 0o777, 0o644);
    for (const name of ['jobs.json', 'headers.secret.json']) {
      const st = fs.lstatSync(path.join(store, name));
      assert.ok(st.isFile() && !st.isSymbolicLink(), `${name} is a file of its own`);
      assert.equal(st.mode & 0o777, 0o600, name);
    }
  });
});
