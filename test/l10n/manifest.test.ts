// The manifest's links and walkthrough: a command link that names no command, or a step whose page is missing,
// is a dead button for the user; both are checked here in English and in French.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..');
const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  contributes: { commands: { command: string }[]; views: Record<string, { id: string }[]>; walkthroughs: { steps: { id: string; media: { markdown?: string; image?: string } }[] }[] };
};
/** VS Code's own commands that our texts may link to. */
const BUILT_IN = new Set(['workbench.action.openSettings', 'workbench.action.tasks.runTask']);

function knownCommands(): Set<string> {
  const ours = manifest.contributes.commands.map((c) => c.command);
  // Every view gets a `<view id>.focus` command.
  const focus = Object.values(manifest.contributes.views).flat().map((v) => `${v.id}.focus`);
  return new Set([...ours, ...focus, ...BUILT_IN]);
}

describe('manifest', () => {
  for (const file of ['package.nls.json', 'package.nls.fr.json']) {
    it(`every command link in ${file} names a command that exists`, () => {
      const strings = Object.values(JSON.parse(fs.readFileSync(path.join(root, file), 'utf8')) as Record<string, string>);
      const linked = strings.flatMap((s) => [...s.matchAll(/\(command:([\w.]+)/g)].map((m) => m[1]));
      assert.ok(linked.length > 0);
      const known = knownCommands();
      assert.deepEqual(linked.filter((c) => !known.has(c)), [], 'links to unknown commands');
    });
  }

  it('each walkthrough step has its page, shipped in media/', () => {
    const steps = manifest.contributes.walkthroughs.flatMap((w) => w.steps);
    assert.ok(steps.length >= 3);
    for (const s of steps) {
      const page = s.media.markdown ?? s.media.image;
      assert.ok(page, `step ${s.id} has no media`);
      assert.match(page, /^media\/[\w.-]+$/, `step ${s.id}: ${page} is not shipped (.vscodeignore keeps media/ only)`);
      assert.ok(fs.existsSync(path.join(root, page)), `step ${s.id}: ${page} is missing`);
    }
  });

  it('each walkthrough page has its French version (VS Code picks <page>.nls.fr.md), with the same pictures', () => {
    const pages = manifest.contributes.walkthroughs.flatMap((w) => w.steps).flatMap((s) => (s.media.markdown ? [s.media.markdown] : []));
    const pictures = (file: string): string[] => [...fs.readFileSync(path.join(root, file), 'utf8').matchAll(/!\[[^\]]*\]\(([^)]+)\)/g)].map((m) => m[1]);
    for (const page of pages) {
      const french = page.replace(/\.md$/, '.nls.fr.md');
      assert.ok(fs.existsSync(path.join(root, french)), `${french} is missing: a French window would show ${page} in English`);
      assert.deepEqual(pictures(french), pictures(page), `${french} shows the pictures ${page} shows`);
      for (const picture of pictures(page)) {
        assert.ok(fs.existsSync(path.join(root, path.dirname(page), picture)), `${page} shows ${picture}, which is missing`);
      }
    }
  });
});

describe('settings texts', () => {
  const settings = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    contributes: { configuration: { properties: Record<string, { default?: unknown; markdownDescription?: string }> } };
  }).contributes.configuration.properties;

  for (const file of ['package.nls.json', 'package.nls.fr.json']) {
    it(`a setting in seconds names its default as a duration, and no text speaks of one machine (${file})`, () => {
      const nls = JSON.parse(fs.readFileSync(path.join(root, file), 'utf8')) as Record<string, string>;
      const text = (key: string): string => nls[/^%(.+)%$/.exec(settings[key].markdownDescription ?? '')?.[1] ?? ''] ?? '';
      const inSeconds = Object.keys(settings).filter((k) => k.endsWith('Seconds'));
      assert.ok(inSeconds.length >= 2);
      for (const key of inSeconds) {
        const seconds = settings[key].default as number;
        // "10 minutes (`600`)", "14 days (`1209600`)": the duration first, the number to type after it.
        assert.match(text(key), new RegExp(`\\d+ (minutes?|hours?|days?|heures?|jours?) \\(\`${seconds}\`\\)`), `${key}: ${text(key)}`);
      }
      for (const [key, value] of Object.entries(nls)) {
        assert.doesNotMatch(value, /core machine|machine à \d+ cœurs/, `${key} speaks of one machine`);
      }
    });
  }
});
