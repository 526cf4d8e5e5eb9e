// The question before an action that throws downloaded bytes away (Cancel, Pause on a server that cannot resume).
// A quick pick rather than a modal: a modal's Enter presses its first button (the close affordance only takes
// Escape, and without one VS Code adds a "Cancel" of its own). Here the safe answer comes first, so Enter, Escape
// and a click elsewhere all keep the download.
import * as vscode from 'vscode';

/**
 * True when the user picked `go`. `question` is read again while it is open, so an amount it names follows the
 * transfer as the tree's does.
 */
export async function askBeforeLoss(question: () => string, keep: string, go: string): Promise<boolean> {
  const keepItem: vscode.QuickPickItem = { label: `$(debug-continue) ${keep}` };
  const goItem: vscode.QuickPickItem = { label: `$(trash) ${go}` };
  const pick = vscode.window.createQuickPick();
  pick.title = question();
  pick.items = [keepItem, goItem];
  const follow = setInterval(() => (pick.title = question()), 500);
  try {
    return await new Promise<boolean>((resolve) => {
      pick.onDidAccept(() => {
        resolve(pick.selectedItems[0] === goItem);
        pick.hide();
      });
      pick.onDidHide(() => resolve(false));
      pick.show();
    });
  } finally {
    clearInterval(follow);
    pick.dispose();
  }
}
