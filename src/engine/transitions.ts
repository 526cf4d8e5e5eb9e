// Which calls a job allows in each state and where they lead (contract §2, §3). The engine's guards, the tree's
// context values and the palette's pickers all read this one table, so a menu never offers what the engine refuses.
import { ACTION_STATES, FINAL_STATES, type JobState, type JobType } from './types';

/** A caller's call on a job; `modify` is any setter (priority, name, retry delay, timeout, speed limit, headers). */
export type JobAction = 'resume' | 'suspend' | 'complete' | 'cancel' | 'addFile' | 'modify' | 'changeUrl' | 'remove';
export const JOB_ACTIONS: readonly JobAction[] = ['resume', 'suspend', 'complete', 'cancel', 'addFile', 'modify', 'changeUrl', 'remove'];

/** What the table needs to know about a job besides its state. */
export interface JobFacts {
  readonly state: JobState;
  readonly type: JobType;
  readonly files: number;
  /** Files with nothing left to fetch (transferred or already in place). */
  readonly done: number;
  /** Files transferred and not in place yet: what complete() would keep. */
  readonly keepable: number;
}

export function jobFacts(state: JobState, type: JobType, files: readonly { transferred: boolean; completed: boolean }[]): JobFacts {
  return {
    state,
    type,
    files: files.length,
    done: files.filter((f) => f.transferred || f.completed).length,
    keepable: files.filter((f) => f.transferred && !f.completed).length,
  };
}

export type RefusalCode = 'DO_E_INVALID_STATE' | 'DO_E_JOB_EMPTY' | 'BG_E_TOO_MANY_FILES';

/** Allowed (`to`: the state the call moves the job to; absent: it stays where it is) or refused with a code. */
export type Verdict =
  | { readonly allowed: true; readonly to?: JobState }
  | { readonly allowed: false; readonly code: RefusalCode; readonly why?: string };

export type Allowed = Extract<Verdict, { allowed: true }>;

const stay: Verdict = { allowed: true };
const move = (to: JobState): Verdict => ({ allowed: true, to });
const refuse = (code: RefusalCode, why?: string): Verdict => ({ allowed: false, code, ...(why ? { why } : {}) });

/** What the engine does with `action` on a job with these facts. */
export function verdict(action: JobAction, job: JobFacts): Verdict {
  const final = FINAL_STATES.has(job.state);
  if (action === 'remove') {
    return final ? stay : refuse('DO_E_INVALID_STATE', 'only finished jobs can be removed; cancel it first');
  }
  if (final) {
    return refuse('DO_E_INVALID_STATE');
  }
  switch (action) {
    case 'resume':
      if (job.files === 0) {
        return refuse('DO_E_JOB_EMPTY');
      }
      // Already running or waiting to run (a TRANSIENT_ERROR is retried now), or nothing left to fetch.
      if ((ACTION_STATES.has(job.state) && job.state !== 'TRANSIENT_ERROR') || (job.state === 'TRANSFERRED' && job.done === job.files)) {
        return stay;
      }
      return move('QUEUED');
    case 'suspend':
      return job.state === 'SUSPENDED' ? stay : move('SUSPENDED');
    case 'complete':
      // A download keeps what was transferred so far (partial complete); an upload has a session to close first.
      if (job.type === 'upload' && job.state !== 'TRANSFERRED') {
        return refuse('DO_E_INVALID_STATE', 'an upload job can be completed only once TRANSFERRED');
      }
      return move('ACKNOWLEDGED');
    case 'cancel':
      return move('CANCELLED');
    case 'addFile':
      return job.type === 'upload' && job.files > 0 ? refuse('BG_E_TOO_MANY_FILES') : stay;
    case 'changeUrl':
      return job.type === 'upload' ? refuse('DO_E_INVALID_STATE', 'an upload keeps the URL its session lives on') : stay;
    case 'modify':
      return stay;
  }
}

export function allows(action: JobAction, job: JobFacts): boolean {
  return verdict(action, job).allowed;
}

/** Whether the call would move the job to another state (not refused, not a no-op). */
export function moves(action: JobAction, job: JobFacts): boolean {
  const v = verdict(action, job);
  return v.allowed && v.to !== undefined && v.to !== job.state;
}

/** `retry` is resume() offered under its own name on a failed job. */
export type OfferedAction = JobAction | 'retry';

/**
 * Whether a job's context menu (`tree`) or a command's job picker (`palette`) offers `action`: only what the engine
 * would do, and only where it helps. The palette offers complete and cancel on every job, finished ones included,
 * so that DO_E_INVALID_STATE can be seen (contract §5).
 */
export function offers(action: OfferedAction, job: JobFacts, where: 'tree' | 'palette'): boolean {
  const failed = job.state === 'ERROR';
  // On a failed job nothing runs: the tree offers Retry, not Resume or Suspend, and no new file that would wait behind it.
  if (where === 'tree' && failed && (action === 'resume' || action === 'suspend' || action === 'addFile')) {
    return false;
  }
  // A job waiting to retry is not paused: the tree offers Retry Now, not Resume.
  if (where === 'tree' && job.state === 'TRANSIENT_ERROR' && action === 'resume') {
    return false;
  }
  switch (action) {
    case 'retry':
      return failed || job.state === 'TRANSIENT_ERROR';
    case 'resume':
      return moves('resume', job);
    case 'suspend':
      // A transferred job has nothing to pause.
      return moves('suspend', job) && job.state !== 'TRANSFERRED';
    case 'complete':
      return where === 'palette' || (allows('complete', job) && (job.state === 'TRANSFERRED' || job.keepable > 0));
    case 'cancel':
      return where === 'palette' || allows('cancel', job);
    case 'changeUrl':
      return allows('changeUrl', job) && job.done < job.files;
    case 'addFile':
    case 'modify':
    case 'remove':
      return allows(action, job);
  }
}
