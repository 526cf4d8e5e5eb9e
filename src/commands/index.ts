// Every command of contract §5 (and a few for the view), registered in one place.
import type * as vscode from 'vscode';
import type { CommandContext } from './common';
import { registerFileCommands } from './fileCommands';
import { registerHistoryCommands } from './historyCommands';
import { registerJobCommands } from './jobCommands';
import { registerNewDownloadCommands } from './newDownload';
import { registerNewUploadCommands } from './newUpload';
import { registerSourceCommands } from './sourceCommands';
import { registerViewCommands } from './viewCommands';

export type { CommandContext } from './common';

export function registerCommands(ctx: CommandContext): vscode.Disposable[] {
  return [...registerNewDownloadCommands(ctx), ...registerNewUploadCommands(ctx), ...registerJobCommands(ctx), ...registerFileCommands(ctx), ...registerHistoryCommands(ctx), ...registerSourceCommands(ctx), ...registerViewCommands(ctx)];
}
