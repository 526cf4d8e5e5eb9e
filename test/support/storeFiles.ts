// Reads a job store from disk the way the engine does (snapshot, then the logs after it), without an engine:
// for tests that look at what is durable while an engine or a CLI is running, or after it was killed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SNAPSHOT_FILE, logFileName, logGeneration, parseLog, parseSnapshot } from '../../src/engine/storeFormat';
import type { JobRecord } from '../../src/engine/records';

/** The jobs in the store, in order; undefined when there is no store yet. Throws when the snapshot does not parse. */
export function readStoredJobs(storeDir: string): { jobs: JobRecord[] } | undefined {
  const snapshotFile = path.join(storeDir, SNAPSHOT_FILE);
  for (;;) {
    if (!fs.existsSync(snapshotFile)) {
      return undefined;
    }
    const text = fs.readFileSync(snapshotFile, 'utf8');
    const jobs = readFrom(storeDir, text);
    // A compaction between reading the snapshot and its logs (which it deletes) means: read again.
    if (fs.readFileSync(snapshotFile, 'utf8') === text) {
      return jobs;
    }
  }
}

function readFrom(storeDir: string, text: string): { jobs: JobRecord[] } {
  const snapshot = parseSnapshot(text);
  if (!snapshot.ok) {
    throw new Error(`the job store's snapshot does not parse (${snapshot.why}): ${text.slice(0, 200)}`);
  }
  const jobs = new Map<string, JobRecord>();
  for (const j of snapshot.jobs as JobRecord[]) {
    jobs.set(j.id, j);
  }
  const generations = fs.readdirSync(storeDir).map(logGeneration).filter((g): g is number => g !== undefined && g >= snapshot.generation);
  for (const g of generations.sort((a, b) => a - b)) {
    for (const change of parseLog(fs.readFileSync(path.join(storeDir, logFileName(g)), 'utf8')).changes) {
      if ('put' in change) {
        const r = change.put as JobRecord;
        jobs.set(r.id, r);
      } else {
        jobs.delete(change.remove);
      }
    }
  }
  return { jobs: [...jobs.values()] };
}
