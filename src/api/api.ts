// Contract §4: the object activate() returns. Jobs are handles (jobHandles.ts) that look the job up in whichever
// engine runs now; events are relayed from that engine and carry the same handles, never the engine's objects.
import type { EngineHost } from '../engineHost';
import type { CreateJobOptions, Event, Job, ManagedDownloadsApi } from './api.d';
import { frozenFile, JobHandles } from './jobHandles';

/** The same event with each value mapped (the listener's `this` and disposables kept). */
function mapEvent<A, B>(event: Event<A>, map: (a: A) => B): Event<B> {
  return (listener, thisArgs, disposables) => event((a) => listener.call(thisArgs, map(a)), undefined, disposables);
}

export function createApi(host: EngineHost): ManagedDownloadsApi {
  const handles = new JobHandles(() => host.engine, () => host.settled());
  host.onDidRemoveJob((j) => handles.forget(j.id));
  return {
    apiVersion: 1,
    // Only the contract's options reach the engine.
    createJob: async (o: CreateJobOptions): Promise<Job> =>
      handles.of(await host.createJob(o && typeof o === 'object' ? { displayName: o.displayName, type: o.type, priority: o.priority, description: o.description } : o)),
    getJob: (id: string): Job => handles.of(host.engine.getJob(id)),
    enumJobs: (o?: { includeFinal?: boolean }): Job[] => host.engine.enumJobs(o).map((j) => handles.of(j)),
    onDidChangeJob: mapEvent(host.onDidChangeJob, (j) => handles.of(j)),
    onDidTransferJob: mapEvent(host.onDidTransferJob, (j) => handles.of(j)),
    onDidFailJob: mapEvent(host.onDidFailJob, (j) => handles.of(j)),
    onDidTransferFile: mapEvent(host.onDidTransferFile, (e) => ({ job: handles.of(e.job), file: frozenFile(e.file) })),
  };
}
