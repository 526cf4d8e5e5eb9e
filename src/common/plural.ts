// Which of a string's two forms a count takes in the display language: French says "0 fichier", English "0 files".
// Each caller keeps both forms as literal vscode.l10n.t strings, so the export (and the French bundle) sees them.
import * as vscode from 'vscode';

let rules: Intl.PluralRules | undefined;

/** True when `n` takes the singular form ("1 file"; "0 fichier", "1,5 fichier" in French). */
export function isSingular(n: number): boolean {
  if (!rules) {
    try {
      rules = new Intl.PluralRules(vscode.env.language);
    } catch {
      rules = new Intl.PluralRules('en');
    }
  }
  return rules.select(n) === 'one';
}

/** "1 active download" / "2 active downloads" (the status bar, the view's badge). */
export function activeDownloads(n: number): string {
  return isSingular(n) ? vscode.l10n.t('{0} active download', n) : vscode.l10n.t('{0} active downloads', n);
}
