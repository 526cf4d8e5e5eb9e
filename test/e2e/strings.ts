// The strings the extension shows, in the display language of a run, read from the same files VS Code
// reads (package.nls[.<lang>].json for contributed titles, l10n/bundle.l10n.<lang>.json for vscode.l10n.t),
// so the suite follows wording changes and checks that a French run really shows the French text.
import * as fs from 'node:fs';
import * as path from 'node:path';

export type Locale = 'en' | 'fr';

/** The repository root (this file runs from out/test/e2e/). */
export const repoRoot = path.resolve(__dirname, '..', '..', '..');

function readJson(file: string): Record<string, string> {
  return JSON.parse(fs.readFileSync(path.join(repoRoot, file), 'utf8')) as Record<string, string>;
}

function format(template: string, args: (string | number)[]): string {
  return template.replace(/\{(\d+)\}/g, (m, i: string) => (Number(i) < args.length ? String(args[Number(i)]) : m));
}

export class Strings {
  private readonly nlsTable: Record<string, string>;
  private readonly bundle: Record<string, string>;
  private readonly englishNls: Record<string, string>;

  constructor(readonly locale: Locale) {
    this.englishNls = readJson('package.nls.json');
    this.nlsTable = locale === 'en' ? this.englishNls : { ...this.englishNls, ...readJson(`package.nls.${locale}.json`) };
    this.bundle = locale === 'en' ? {} : readJson(`l10n/bundle.l10n.${locale}.json`);
  }

  /** A contributed string (package.nls key), e.g. nls('command.newDownload') → "New Download…". */
  nls(key: string): string {
    const v = this.nlsTable[key];
    if (v === undefined) {
      throw new Error(`package.nls.json has no key '${key}'`);
    }
    return v;
  }

  /** The same key in English (to check that a translated run does not show it). */
  englishNlsOf(key: string): string {
    return this.englishNls[key];
  }

  /** vscode.l10n.t(message, ...args) as the extension renders it in this locale. */
  t(message: string, ...args: (string | number)[]): string {
    if (this.locale !== 'en' && this.bundle[message] === undefined) {
      throw new Error(`l10n/bundle.l10n.${this.locale}.json has no translation for ${JSON.stringify(message)}`);
    }
    return format(this.bundle[message] ?? message, args);
  }

  /** Whether l10n message `message` has a translation that differs from the English text. */
  translated(message: string): boolean {
    return this.locale === 'en' || (this.bundle[message] !== undefined && this.bundle[message] !== message);
  }

  /** "Managed Downloads: New Download…": how a contributed command reads in the Command Palette. */
  command(key: string): string {
    return `${this.nls('category')}: ${this.nls(key)}`;
  }
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
