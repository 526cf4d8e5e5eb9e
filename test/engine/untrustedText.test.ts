// Server-controlled text (BITS headers, redirect targets, error bodies) and file names reach notifications, tooltips
// and hovers; none of it may become a link, least of all a `command:` link VS Code would run on a click.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { escapeMarkdown, notificationText } from '../../src/common/untrustedText';
import { matrix } from '../support/matrix';

const SRC = path.resolve(__dirname, '..', '..', '..', 'src');

/** VS Code's notification link syntax (src/vs/base/common/linkedText.ts, parseLinkedText). */
const NOTIFICATION_LINK = /\[([^\]]+)\]\(((?:https?:\/\/|command:|file:)[^)\s]+)(?: (["'])(.+?)(\3))?\)/i;

const HOSTILE = [
  '[x](command:workbench.action.terminal.new)',
  'Click [here](command:workbench.action.terminal.new "Open") to fix',
  '[[nested](command:a)](command:workbench.action.terminal.new)',
  '\\[x\\](command:workbench.action.terminal.new)',
  '[x]\\(command:workbench.action.terminal.new)',
  '[x](  command:workbench.action.terminal.new)',
  '<a href="command:workbench.action.terminal.new">x</a>',
  '[x](https://evil.example/?q=1)',
  '$(alert) [x](file:///etc/passwd)',
  'line one\n[x](command:a)\r[y](command:b)',
];

/** Whether every Markdown-significant character of `out` is escaped (preceded by an odd run of backslashes). */
function allEscaped(out: string): boolean {
  for (let i = 0; i < out.length; i++) {
    if (!'[]()<>`*_{}#+-!|~$'.includes(out[i])) {
      continue;
    }
    let slashes = 0;
    for (let j = i - 1; j >= 0 && out[j] === '\\'; j--) {
      slashes++;
    }
    if (slashes % 2 === 0) {
      return false;
    }
  }
  return true;
}

/** The TypeScript files under a folder. */
function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

describe('text from outside on its way into the UI', () => {
  it(matrix('hostile input', 'server text or a file name with [label](command:…), nested, escaped, <a href>, in a notification', 'notificationText leaves no link VS Code would render; the words stay'), () => {
    for (const s of HOSTILE) {
      const out = notificationText(s);
      assert.doesNotMatch(out, NOTIFICATION_LINK, JSON.stringify(s));
      assert.equal(out.replace(/\s/g, ''), s.replace(/\s/g, ''), 'only spaces are added');
    }
    assert.ok(HOSTILE.slice(0, 3).every((s) => NOTIFICATION_LINK.test(s)), 'the pattern does see the raw links');
    const plain = "Cannot complete job 'a (1).bin': it is CANCELLED (DO_E_INVALID_STATE, 0x80D02013).";
    assert.equal(notificationText(plain), plain, 'ordinary messages read as before');
  });

  it(matrix('hostile input', 'the same text in a tooltip or hover (Markdown)', 'escapeMarkdown escapes every link, HTML and theme-icon character; backslashes in the text cannot undo it'), () => {
    for (const s of HOSTILE) {
      const out = escapeMarkdown(s);
      assert.ok(allEscaped(out.replace(/ {2}\n/g, '\n')), `${JSON.stringify(s)} → ${JSON.stringify(out)}`);
      assert.doesNotMatch(out, /\r/, 'a lone CR starts no new Markdown line');
    }
  });

  it(matrix('hostile input', 'every notification the extension shows', 'its text passes through notificationText (in Notifier.show, or at the few direct calls)'), () => {
    const shows = /\bshow(Error|Warning|Information)Message\s*\(/g;
    let direct = 0;
    for (const f of sources(SRC)) {
      const text = fs.readFileSync(f, 'utf8');
      if (path.relative(SRC, f) === 'notifications.ts') {
        continue;
      }
      // A message shown directly (a hint, a modal confirmation) passes its text through notificationText itself.
      for (const m of text.matchAll(/\bshow(?:Error|Warning|Information)Message\s*\(\s*([^\n]{0,40})/g)) {
        direct++;
        assert.match(m[1], /^notificationText\(/, `${path.relative(SRC, f)}: show…Message(${m[1]}…) does not pass its text through notificationText`);
      }
    }
    assert.ok(direct > 0, 'the scan sees the direct calls');
    const notifier = fs.readFileSync(path.join(SRC, 'notifications.ts'), 'utf8');
    const show = /\n {2}show\(severity: Severity, text: string[^\n]*\{\n([^]*?)\n {2}\}\n/.exec(notifier);
    assert.ok(show, 'Notifier.show(severity, text, …) exists');
    const body = show[1];
    assert.match(body, /const message = notificationText\(text\);/);
    const calls = [...body.matchAll(/show(?:Error|Warning|Information)Message\(([^,)]+)/g)].map((m) => m[1]);
    assert.deepEqual(calls, ['message', 'message', 'message']);
    assert.equal([...notifier.matchAll(shows)].length, 3, 'no other notification call in notifications.ts');
  });

  it(matrix('hostile input', 'every tooltip and hover built from job, file or server text', 'each interpolated value is passed through escapeMarkdown'), () => {
    for (const f of sources(SRC)) {
      const text = fs.readFileSync(f, 'utf8');
      for (const m of text.matchAll(/appendMarkdown\(`([^`]*)`\)/g)) {
        for (const [, expr] of m[1].matchAll(/\$\{([^}]*)\}/g)) {
          // Our own strings (localized labels, the icon name) are the only values not escaped.
          const ours = /^(escapeMarkdown\(|vscode\.l10n\.t\(|label$|job\.type === 'upload' \?)/.test(expr.trim());
          assert.ok(ours, `${path.relative(SRC, f)}: \${${expr}} in appendMarkdown is not escaped`);
        }
      }
      assert.doesNotMatch(text, /isTrusted\s*[:=]\s*true|new vscode\.MarkdownString\([^)]*,\s*\{?\s*isTrusted/, `${path.relative(SRC, f)} trusts a MarkdownString`);
    }
  });
});
