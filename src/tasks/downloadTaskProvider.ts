// Resolves `"type": "download"` entries of tasks.json into tasks that run a job in a pseudo-terminal.
// provideTasks offers nothing: download tasks come from tasks.json.
import * as vscode from 'vscode';
import type { EngineHost } from '../engineHost';
import { DownloadTerminal } from './downloadTerminal';
import { TASK_TYPE, type DownloadTaskDefinition } from './taskDefinition';

export class DownloadTaskProvider implements vscode.TaskProvider {
  constructor(
    private readonly host: EngineHost,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  provideTasks(): vscode.Task[] {
    return [];
  }

  resolveTask(task: vscode.Task): vscode.Task | undefined {
    const definition = task.definition as DownloadTaskDefinition;
    if (definition.type !== TASK_TYPE) {
      return undefined;
    }
    const folder = typeof task.scope === 'object' ? task.scope : vscode.workspace.workspaceFolders?.[0];
    // The API requires the resolved task to reuse the same definition object.
    return new vscode.Task(
      definition,
      task.scope ?? vscode.TaskScope.Workspace,
      task.name,
      TASK_TYPE,
      new vscode.CustomExecution((resolved) =>
        // `resolved` has ${workspaceFolder} and the other variables substituted.
        Promise.resolve(new DownloadTerminal(this.host, task.name, resolved as DownloadTaskDefinition, folder?.uri.fsPath, this.log, undefined, () => runAgain(task))),
      ),
      [],
    );
  }
}

export function registerDownloadTasks(host: EngineHost, log: vscode.LogOutputChannel): vscode.Disposable {
  return vscode.tasks.registerTaskProvider(TASK_TYPE, new DownloadTaskProvider(host, log));
}

/** The task as tasks.json defines it now (it may have been edited since), else the one that ran. */
async function runAgain(task: vscode.Task): Promise<unknown> {
  const current = (await vscode.tasks.fetchTasks({ type: TASK_TYPE })).find((t) => t.name === task.name && sameScope(t.scope, task.scope));
  return vscode.tasks.executeTask(current ?? task);
}

function sameScope(a: vscode.Task['scope'], b: vscode.Task['scope']): boolean {
  return typeof a === 'object' && typeof b === 'object' ? a.uri.toString() === b.uri.toString() : a === b;
}
