// The six job events, declared once: what each one carries, the interface a job service exposes, and the base
// class that fires them (the engine, the client of another window's engine, the extension's host).
import { Emitter } from './emitter';
import type { Disposable, Event, JobFile } from './types';

/** Each job event and what it carries, for jobs of type J. */
export interface JobEventPayloads<J> {
  onDidChangeJob: J;
  onDidTransferJob: J;
  onDidFailJob: J;
  onDidTransferFile: { job: J; file: JobFile };
  onDidAddJob: J;
  onDidRemoveJob: J;
}
export type JobEventName = keyof JobEventPayloads<unknown>;

/** The compiler checks this list against the interface above: one entry per event, none missing. */
const EVENT_NAMES: Record<JobEventName, true> = {
  onDidChangeJob: true,
  onDidTransferJob: true,
  onDidFailJob: true,
  onDidTransferFile: true,
  onDidAddJob: true,
  onDidRemoveJob: true,
};
export const JOB_EVENT_NAMES = Object.keys(EVENT_NAMES) as readonly JobEventName[];

export type JobEvents<J> = { readonly [K in JobEventName]: Event<JobEventPayloads<J>[K]> };

type Emitters<J> = { [K in JobEventName]: Emitter<JobEventPayloads<J>[K]> };

/** Owns an emitter per job event and exposes its event under the event's name. */
export abstract class JobEventSource<J> implements JobEvents<J> {
  private readonly emitters = Object.fromEntries(JOB_EVENT_NAMES.map((n) => [n, new Emitter()])) as Emitters<J>;
  readonly onDidChangeJob = this.emitters.onDidChangeJob.event;
  readonly onDidTransferJob = this.emitters.onDidTransferJob.event;
  readonly onDidFailJob = this.emitters.onDidFailJob.event;
  readonly onDidTransferFile = this.emitters.onDidTransferFile.event;
  readonly onDidAddJob = this.emitters.onDidAddJob.event;
  readonly onDidRemoveJob = this.emitters.onDidRemoveJob.event;

  protected fireJobEvent<K extends JobEventName>(name: K, e: JobEventPayloads<J>[K]): void {
    this.emitters[name].fire(e);
  }

  /** Fires every job event of `source` again from here (listeners here outlive a replaced source). */
  protected relayJobEvents(source: JobEvents<J>): Disposable[] {
    return JOB_EVENT_NAMES.map((n) => (source[n] as Event<unknown>)((e) => (this.emitters[n] as Emitter<unknown>).fire(e)));
  }

  protected disposeJobEvents(): void {
    for (const n of JOB_EVENT_NAMES) {
      this.emitters[n].dispose();
    }
  }
}
