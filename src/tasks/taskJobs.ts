// Which jobs download tasks run, and how to run each task again. A task cancels its job when it fails, so the
// failure's notification offers "Run Task Again" instead of a Retry that could only fail on a cancelled job.
const rerunByJob = new Map<string, () => Thenable<unknown>>();
/** Tasks of a session, not of a lifetime: the oldest are forgotten past this. */
const KEPT = 200;

export function rememberTaskJob(jobId: string, runAgain: () => Thenable<unknown>): void {
  rerunByJob.set(jobId, runAgain);
  for (const oldest of rerunByJob.keys()) {
    if (rerunByJob.size <= KEPT) {
      break;
    }
    rerunByJob.delete(oldest);
  }
}

/** How to run again the task that ran this job, if a task did. */
export function taskRerun(jobId: string): (() => Thenable<unknown>) | undefined {
  return rerunByJob.get(jobId);
}

// The jobs a running download task drives: its terminal completes them, so nobody else offers to.
/** Ids of jobs whose task terminal is running (added at creation; a reload forgets them with their terminals). */
export const jobsCompletedByTasks = new Set<string>();
