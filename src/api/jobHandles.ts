// The Job objects other extensions get (contract §4): a frozen handle per job id with exactly the contract's
// members. It holds no engine object: every read and call looks the job up by id in whichever engine runs
// now, so a handle stays live across a take-over by this window, a reconnection to another owner and a
// reload of the engine. Nothing of the engine (its record, runtime state, internal options) is reachable.
// No vscode import: tested in plain Node against SharedEngine.
import type { EngineJob, Job, JobErrorInfo, JobFile, JobPriority, JobService, NewFile } from '../engine/types';

export class JobHandles {
  private readonly handles = new Map<string, Job>();

  /**
   * @param service the engine in use now (it changes on take-over or reload).
   * @param settled resolves once a take-over in progress is over (calls wait for it rather than fail).
   */
  constructor(
    private readonly service: () => JobService,
    private readonly settled: () => Promise<void> = () => Promise.resolve(),
  ) {}

  /** The handle of an engine job (the same object for the same id). */
  of(job: EngineJob): Job {
    let handle = this.handles.get(job.id);
    if (!handle) {
      handle = jobHandle(job, this.service, this.settled);
      this.handles.set(job.id, handle);
    }
    return handle;
  }

  /** The job was removed from the store: its handle (still held by whoever got it) keeps its last view. */
  forget(id: string): void {
    this.handles.delete(id);
  }
}

export function frozenFile(f: JobFile): JobFile {
  return Object.freeze({
    remoteUrl: f.remoteUrl,
    localPath: f.localPath,
    temporaryPath: f.temporaryPath,
    bytesTotal: f.bytesTotal,
    bytesTransferred: f.bytesTransferred,
    completed: f.completed,
    transferred: f.transferred,
    sha256: f.sha256,
  });
}

/** Only the fields the contract gives a new file: options the engine knows beyond them never come from outside. */
function contractFile(f: NewFile): NewFile {
  return f && typeof f === 'object' ? { remoteUrl: f.remoteUrl, localPath: f.localPath, sha256: f.sha256, mirrors: f.mirrors } : f;
}

function jobHandle(first: EngineJob, service: () => JobService, settled: () => Promise<void>): Job {
  const id = first.id;
  let last = first;
  /** The job in the engine of now; between engines or once removed, the last view of it (getters never fail). */
  const view = (): EngineJob => {
    try {
      last = service().getJob(id);
    } catch {
      // removed, or a take-over in progress: keep the last view
    }
    return last;
  };
  const act = async <T>(call: (job: EngineJob) => Promise<T>): Promise<T> => {
    await settled();
    return call(service().getJob(id));
  };
  const handle: Job = {
    get id() { return id; },
    get displayName() { return view().displayName; },
    get description() { return view().description; },
    get type() { return view().type; },
    get priority() { return view().priority; },
    get state() { return view().state; },
    get errorCount() { return view().errorCount; },
    get maxBytesPerSecond() { return view().maxBytesPerSecond; },
    getFiles: () => view().getFiles().map(frozenFile),
    getProgress: () => ({ ...view().getProgress() }),
    getTimes: () => ({ ...view().getTimes() }),
    getError: (): JobErrorInfo | undefined => {
      const e = view().getError();
      return e && { code: e.code, hresult: e.hresult, message: e.message, context: e.context, file: e.file && frozenFile(e.file) };
    },
    addFile: (remoteUrl: string, localPath: string, o?: { sha256?: string; mirrors?: string[] }) =>
      act((j) => j.addFile(remoteUrl, localPath, { sha256: o?.sha256, mirrors: o?.mirrors })),
    addFileSet: (files: NewFile[]) => act((j) => j.addFileSet(Array.isArray(files) ? files.map(contractFile) : files)),
    resume: () => act((j) => j.resume()),
    suspend: () => act((j) => j.suspend()),
    complete: () => act((j) => j.complete()),
    cancel: () => act((j) => j.cancel()),
    setPriority: (p: JobPriority) => act((j) => j.setPriority(p)),
    setDisplayName: (name: string) => act((j) => j.setDisplayName(name)),
    setMinimumRetryDelay: (seconds: number) => act((j) => j.setMinimumRetryDelay(seconds)),
    setNoProgressTimeout: (seconds: number) => act((j) => j.setNoProgressTimeout(seconds)),
    setHttpHeaders: (headers: Record<string, string>) => act((j) => j.setHttpHeaders(headers)),
    setMaxBytesPerSecond: (bytesPerSecond: number) => act((j) => j.setMaxBytesPerSecond(bytesPerSecond)),
    setRemoteUrl: (fileIndex: number, url: string) => act((j) => j.setRemoteUrl(fileIndex, url)),
    replaceRemotePrefix: (oldPrefix: string, newPrefix: string) => act((j) => j.replaceRemotePrefix(oldPrefix, newPrefix)),
  };
  return Object.freeze(handle);
}
