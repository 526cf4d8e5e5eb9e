// The tree's context values (what a job's menu offers) against the real engine, for every state: an action the
// menu offers is one the engine takes, and a final job offers none and refuses all of them (DO_E_INVALID_STATE).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DownloadError, JOB_STATES, type DownloadEngine, type JobImpl, type JobState, type JobType } from '../../src/engine';
import { jobContextValue } from '../../src/views/nodes/jobContext';
import { useEngineFixture } from '../support/engineHarness';
import { randomBody, type TestServer } from '../support/testServer';

const STATE_REFUSALS = new Set(['DO_E_INVALID_STATE', 'DO_E_JOB_EMPTY', 'BG_E_TOO_MANY_FILES']);

describe("the tree's job menus and the engine agree in every state", () => {
  let server: TestServer;
  let dir: string;
  let engine: DownloadEngine;
  useEngineFixture((f) => ({ server, dir, engine } = f));
  let n = 0;

  /** A job of `type` with `files` files, put straight into `state` the way the engine itself moves it. */
  async function jobIn(type: JobType, files: number, state: JobState): Promise<JobImpl> {
    const job = await engine.createJob({ displayName: `${type}-${state}-${n++}`, type });
    if (files > 0 && type === 'download') {
      await job.addFile(server.url('/slow'), path.join(dir, `d${n}.bin`));
    } else if (files > 0) {
      const src = path.join(dir, `u${n}.bin`);
      fs.writeFileSync(src, 'hello');
      await job.addFile('http://127.0.0.1:1/upload', src);
    }
    (engine as unknown as { setState(j: JobImpl, s: JobState): void }).setState(job, state);
    return job;
  }

  /** The call's refusal code when the state table refused it (or what it threw that is no DownloadError); undefined when the engine took it. */
  async function refusal(call: Promise<unknown>): Promise<string | undefined> {
    try {
      await call;
      return undefined;
    } catch (e) {
      if (e instanceof DownloadError) {
        // Other codes are the transfer's (an upload's session on a closed port): the state allowed the call.
        return STATE_REFUSALS.has(e.code) ? e.code : undefined;
      }
      return `threw ${String(e)}`;
    }
  }

  for (const type of ['download', 'upload'] as const) {
    for (const files of [0, 1]) {
      it(`${type} job with ${files} file(s): every state`, async () => {
        server.route('/slow', { body: randomBody(2_000_000, 3), throttleBytesPerSec: 100_000 });
        const wrong: string[] = [];
        const expect = (ok: boolean, what: string): void => {
          if (!ok) {
            wrong.push(what);
          }
        };
        for (const state of JOB_STATES) {
          const flags = new Set(jobContextValue(await jobIn(type, files, state)).split(':').slice(2));
          const final = state === 'ACKNOWLEDGED' || state === 'CANCELLED';
          const tryOn = async (act: (j: JobImpl) => Promise<unknown>): Promise<{ code?: string; job: JobImpl }> => {
            const job = await jobIn(type, files, state);
            return { code: await refusal(act(job)), job };
          };

          const resume = await tryOn((j) => j.resume());
          const resumeMoved = resume.code === undefined && resume.job.state !== state;
          expect(!flags.has('resumable') || resumeMoved, `${state}: resumable, but resume() ${resume.code ?? 'left it ' + resume.job.state}`);
          expect(!resumeMoved || flags.has('resumable') || flags.has('retryable'), `${state}: resume() moves it, but the menu offers neither Resume nor Retry`);
          expect(!flags.has('retryable') || state === 'ERROR' || state === 'TRANSIENT_ERROR', `${state}: retryable outside ERROR and TRANSIENT_ERROR`);
          // A job waiting to retry is not paused: Retry Now, never Resume.
          expect(state !== 'TRANSIENT_ERROR' || !flags.has('resumable'), `${state}: offers Resume on a job waiting to retry`);

          const suspend = await tryOn((j) => j.suspend());
          expect(!flags.has('suspendable') || (suspend.code === undefined && suspend.job.state === 'SUSPENDED'), `${state}: suspendable, but suspend() ${suspend.code ?? 'left it ' + suspend.job.state}`);

          const complete = await tryOn((j) => j.complete());
          expect(!flags.has('completable') || complete.code === undefined, `${state}: completable, but complete() refused with ${complete.code}`);

          const add = await tryOn((j) => j.addFile(server.url('/slow'), path.join(dir, `added${n++}.bin`)));
          expect(!flags.has('canAddFile') || add.code === undefined, `${state}: canAddFile, but addFile() refused with ${add.code}`);

          const cancel = await tryOn((j) => j.cancel());
          expect(flags.has('cancellable') === (cancel.code === undefined), `${state}: cancellable=${flags.has('cancellable')}, cancel() ${cancel.code ?? 'took it'}`);

          const modify = await tryOn((j) => j.setPriority('HIGH'));
          expect(flags.has('modifiable') === (modify.code === undefined), `${state}: modifiable=${flags.has('modifiable')}, setPriority() ${modify.code ?? 'took it'}`);

          const remove = await tryOn((j) => engine.removeJob(j.id));
          expect(flags.has('final') === (remove.code === undefined), `${state}: final=${flags.has('final')}, removeJob() ${remove.code ?? 'took it'}`);

          if (final) {
            const offered = ['resumable', 'suspendable', 'completable', 'cancellable', 'modifiable', 'canAddFile', 'retryable'].filter((f) => flags.has(f));
            expect(offered.length === 0, `${state}: a final job offers ${offered.join(', ')}`);
            for (const [name, r] of Object.entries({ resume, suspend, complete, add, cancel, modify })) {
              expect(r.code === 'DO_E_INVALID_STATE', `${state}: ${name} gave ${r.code ?? 'no error'}, not DO_E_INVALID_STATE`);
            }
          }
        }
        assert.deepEqual(wrong, []);
      });
    }
  }
});
