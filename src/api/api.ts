// Contract §4: the object activate() returns. A thin adapter: jobs are the engine's live objects, events are
// relayed from whichever engine currently owns the store.
import type { EngineHost } from '../engineHost';
import type { CreateJobOptions, Job, ManagedDownloadsApi } from './api.d';

export function createApi(host: EngineHost): ManagedDownloadsApi {
  return {
    apiVersion: 1,
    createJob: (o: CreateJobOptions): Promise<Job> => host.createJob(o),
    getJob: (id: string): Job => host.engine.getJob(id),
    enumJobs: (o?: { includeFinal?: boolean }): Job[] => host.engine.enumJobs(o),
    onDidChangeJob: host.onDidChangeJob,
    onDidTransferJob: host.onDidTransferJob,
    onDidFailJob: host.onDidFailJob,
    onDidTransferFile: host.onDidTransferFile,
  };
}
