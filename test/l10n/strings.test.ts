// Every string the extension shows must be translated, and every translation must still be used: the strings are
// exported from the sources with @vscode/l10n-dev (as `npm run l10n:export` does) and compared with the French
// bundle; the manifest's %keys% with package.nls.json and package.nls.fr.json.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { getL10nJson } from '@vscode/l10n-dev';

const root = path.resolve(__dirname, '..', '..', '..');
const readJson = (p: string): Record<string, unknown> => JSON.parse(fs.readFileSync(path.join(root, p), 'utf8')) as Record<string, unknown>;
const placeholders = (s: string): string[] => (s.match(/\{\d+\}/g) ?? []).sort();
const text = (v: unknown): string => (typeof v === 'string' ? v : ((v as { message?: string }).message ?? ''));

function sourceFiles(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => path.join(dir, f));
}

/** Differences between the keys of `wanted` (what the code or manifest uses) and `translated`. */
function compare(wanted: Record<string, unknown>, translated: Record<string, unknown>, what: string): void {
  const missing = Object.keys(wanted).filter((k) => !(k in translated));
  const unused = Object.keys(translated).filter((k) => !(k in wanted));
  assert.deepEqual(missing, [], `${what}: not translated into French`);
  assert.deepEqual(unused, [], `${what}: French strings nothing uses any more`);
  for (const [k, v] of Object.entries(translated)) {
    assert.ok(text(v).trim().length > 0, `${what}: empty French string for ${JSON.stringify(k)}`);
    assert.deepEqual(placeholders(text(v)), placeholders(text(wanted[k]) || k), `${what}: placeholders differ for ${JSON.stringify(k)}`);
  }
}

describe('translations', () => {
  it('every vscode.l10n.t string of src/ has a French translation, and every French string is used', async function () {
    this.timeout(60_000);
    const files = sourceFiles(path.join(root, 'src')).map((f) => ({ contents: fs.readFileSync(f, 'utf8'), extension: '.ts' }));
    const english = await getL10nJson(files);
    assert.ok(Object.keys(english).length > 50, `only ${Object.keys(english).length} strings found: is the export broken?`);
    compare(english, readJson('l10n/bundle.l10n.fr.json'), 'l10n/bundle.l10n.fr.json');
  });

  it("every %key% of package.json is in package.nls.json, and package.nls.fr.json has exactly the same keys", () => {
    const manifest = fs.readFileSync(path.join(root, 'package.json'), 'utf8');
    const used = new Set([...manifest.matchAll(/"%([^%"]+)%"/g)].map((m) => m[1]));
    const nls = readJson('package.nls.json');
    assert.deepEqual([...used].filter((k) => !(k in nls)), [], 'package.json names keys that package.nls.json lacks');
    assert.deepEqual(Object.keys(nls).filter((k) => !used.has(k)), [], 'package.nls.json keys nothing uses');
    compare(nls, readJson('package.nls.fr.json'), 'package.nls.fr.json');
  });
});
