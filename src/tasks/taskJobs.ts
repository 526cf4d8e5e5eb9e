// The jobs a running download task drives: its terminal completes them, so nobody else offers to.
/** Ids of jobs whose task terminal is running (added at creation; a reload forgets them with their terminals). */
export const jobsCompletedByTasks = new Set<string>();
