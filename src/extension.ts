// Wiring only: open the engine over global storage, create the view, status bar, notifications and
// commands, and return the API of contract §4.
import { codeLoadStarted } from './loadClock';
import * as vscode from 'vscode';
import { createApi } from './api/api';
import type { ManagedDownloadsApi } from './api/api.d';
import { registerCommands } from './commands';
import { EngineHost } from './engineHost';
import { Notifier } from './notifications';
import { SecretHeaderVault } from './secrets';
import { DownloadsStatusBar } from './statusBar';
import { registerDownloadTasks } from './tasks/downloadTaskProvider';
import { taskTranscripts } from './tasks/downloadTerminal';
import { attachTestHook, TEST_MODE } from './testHook';
import { JobsView } from './views/jobsView';

let host: EngineHost | undefined;
/** Every module of the bundle has run by now (imports evaluate first). */
const codeLoaded = performance.now();

export async function activate(context: vscode.ExtensionContext): Promise<ManagedDownloadsApi> {
  const started = performance.now();
  const log = vscode.window.createOutputChannel(vscode.l10n.t('Managed Downloads'), { log: true });
  context.subscriptions.push(log);

  const storeDir = context.globalStorageUri.fsPath;
  host = await EngineHost.open({ storeDir, headerVault: new SecretHeaderVault(context.secrets), log });
  const notifier = new Notifier(host, log);
  const view = new JobsView(host);
  const statusBar = new DownloadsStatusBar(host);
  context.subscriptions.push(host, notifier, view, statusBar, ...registerCommands({ host, view, notifier, log }), registerDownloadTasks(host, log));

  // Store problems (a corrupt journal, newer format…) are worth one warning, after activation.
  const problems = host.engine.problems;
  setTimeout(() => notifier.storeProblems(problems), 0);

  const api = createApi(host);
  const activationMs = performance.now() - started;
  const codeLoadMs = codeLoaded - codeLoadStarted;
  log.info(`Activated in ${activationMs.toFixed(1)} ms (the bundle's modules ran in ${codeLoadMs.toFixed(1)} ms, ${(started - codeLoaded).toFixed(1)} ms before activate() was called); ${host.engine.enumJobs({ includeFinal: true }).length} jobs in ${storeDir}.`);
  if (TEST_MODE) {
    attachTestHook(api, { activationMs, codeLoadMs, storeDir, host, view, provider: view.provider, notifier, statusBar, taskTranscripts });
  }
  return api;
}

/** Stops transfers at a checkpoint and flushes the job store; they resume on the next activation. */
export async function deactivate(): Promise<void> {
  const h = host;
  host = undefined;
  await h?.disposeEngine();
}
