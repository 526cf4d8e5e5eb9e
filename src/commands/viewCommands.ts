// Commands of the view itself: refresh, show or hide finished jobs, the log.
import * as vscode from 'vscode';
import * as settings from '../settings';
import { registerCommand, type CommandContext } from './common';

export function registerViewCommands(ctx: CommandContext): vscode.Disposable[] {
  const setShowFinished = async (on: boolean): Promise<boolean> => {
    await vscode.workspace.getConfiguration(settings.SECTION).update('showFinishedJobs', on, vscode.ConfigurationTarget.Global);
    return on;
  };
  return [
    registerCommand(ctx, 'managedDownloads.refresh', () => ctx.view.provider.refresh()),
    registerCommand(ctx, 'managedDownloads.showFinishedJobs', () => setShowFinished(true)),
    registerCommand(ctx, 'managedDownloads.hideFinishedJobs', () => setShowFinished(false)),
    registerCommand(ctx, 'managedDownloads.showLog', () => ctx.log.show(true)),
  ];
}
