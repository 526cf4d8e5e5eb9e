// A job's compound contextValue (`job:TRANSFERRING:download:suspendable:cancellable:…`), matched by the menus with
// `viewItem =~`. No `vscode` here, so the engine tests can check it against the engine for every state.
import { FINAL_STATES, type EngineJob } from '../../engine';
import { jobFacts, offers } from '../../engine/transitions';
import { archiveFormatOf } from '../../engine/extract';

/** `job:<STATE>:<type>` followed by what can be done to it now. */
export function jobContextValue(job: Pick<EngineJob, 'state' | 'type' | 'getFiles'>): string {
  const s = job.state;
  const files = job.getFiles();
  const final = FINAL_STATES.has(s);
  const facts = jobFacts(s, job.type, files);
  const flags: string[] = [job.type];
  const offer = (flag: string, yes: boolean): void => {
    if (yes) {
      flags.push(flag);
    }
  };
  offer('resumable', offers('resume', facts, 'tree'));
  offer('suspendable', offers('suspend', facts, 'tree'));
  offer('cancellable', offers('cancel', facts, 'tree'));
  offer('modifiable', offers('modify', facts, 'tree'));
  offer('completable', offers('complete', facts, 'tree'));
  offer('retryable', offers('retry', facts, 'tree'));
  offer('hasError', s === 'ERROR' || s === 'TRANSIENT_ERROR');
  offer('canAddFile', offers('addFile', facts, 'tree'));
  offer('empty', files.length === 0);
  offer('openable', files.some((f) => f.completed));
  offer('linked', files.length > 0);
  offer('again', job.type === 'download' && files.length > 0 && (final || s === 'ERROR'));
  offer('final', final);
  // A one-file job is one row (jobNode.ts): it offers what its file's row would, Change URL… and Extract.
  const only = files.length === 1 ? files[0] : undefined;
  offer('changeUrl', only !== undefined && offers('changeUrl', facts, 'tree'));
  offer('archive', only !== undefined && job.type === 'download' && only.completed && archiveFormatOf(only.localPath) !== undefined);
  return ['job', s, ...flags].join(':');
}
