// INTERNAL, for the in-editor tests only: when the extension host runs with MD_TEST_MODE=1 the API object
// gets a non-enumerable `_test` property with the live pieces below. Not part of the API; do not use it.
import type { EngineOptions, JobService } from './engine';
import type { EngineHost } from './engineHost';
import type { Notifier } from './notifications';
import type { DownloadsStatusBar } from './statusBar';
import type { JobsTreeProvider } from './views/jobsTreeProvider';
import type { JobsView } from './views/jobsView';

export interface TestHook {
  /** How long activate() took, in milliseconds. */
  readonly activationMs: number;
  /** How long the bundle's modules took to run (after V8 compiled it; before VS Code called activate()). */
  readonly codeLoadMs: number;
  readonly storeDir: string;
  readonly host: EngineHost;
  readonly engine: JobService;
  readonly view: JobsView;
  readonly provider: JobsTreeProvider;
  readonly notifier: Notifier;
  readonly statusBar: DownloadsStatusBar;
  /** What each download task's terminal showed, by task name. */
  readonly taskTranscripts: Map<string, string>;
  /** Disposes the engine and opens a new one over the same store, as a window reload does. */
  reopenEngine(extra?: Partial<EngineOptions>): Promise<JobService>;
}

export const TEST_MODE = process.env.MD_TEST_MODE === '1';

export function attachTestHook(api: object, hook: Omit<TestHook, 'engine' | 'reopenEngine'>): void {
  const full: TestHook = {
    ...hook,
    get engine() {
      return hook.host.engine;
    },
    reopenEngine: (extra) => hook.host.reopen(extra),
  };
  Object.defineProperty(api, '_test', { value: full, enumerable: false, configurable: false, writable: false });
}
