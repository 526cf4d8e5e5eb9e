#!/usr/bin/env node
// `npm run package`: builds managed-downloads-<version>.vsix with @vscode/vsce (which runs vscode:prepublish, the
// minified build), then checks what went in: only dist/*.js, media/, l10n/, package*.json, README and LICENSE
// (.vscodeignore says so; this makes a slip in it fail loudly instead of shipping tests or sources).
//
//   node scripts/package-vsix.js [--out FILE]
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const pkg = require(path.join(root, 'package.json'));
const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
const out = path.resolve(root, outIndex >= 0 ? args[outIndex + 1] : `${pkg.name}-${pkg.version}.vsix`);

const ALLOWED = [
  /^extension\/dist\/[\w.-]+\.js$/,
  /^extension\/media\/[\w.-]+$/,
  /^extension\/l10n\/bundle\.l10n(\.[\w-]+)?\.json$/,
  /^extension\/package(\.nls(\.[\w-]+)?)?\.json$/,
  /^extension\/(readme|README)\.md$/,
  /^extension\/(LICENSE|LICENSE\.txt|changelog\.md|CHANGELOG\.md)$/,
  /^extension\.vsixmanifest$/,
  /^\[Content_Types\]\.xml$/,
];
const REQUIRED = ['extension/dist/extension.js', 'extension/dist/undici.js', 'extension/package.json', 'extension/readme.md', 'extension/LICENSE.txt'];

const vsce = path.join(root, 'node_modules', '@vscode', 'vsce', 'vsce');
execFileSync(
  process.execPath,
  // Bundled: no node_modules in the package. No repository to point README images at: they stay relative
  // (shown from the package in VS Code's extension page).
  [vsce, 'package', '--no-dependencies', '--no-rewrite-relative-links', '--allow-missing-repository', '--out', out],
  { cwd: root, stdio: 'inherit' },
);

listZip(out)
  .then((names) => {
    const unexpected = names.filter((n) => !n.endsWith('/') && !ALLOWED.some((re) => re.test(n)));
    const missing = REQUIRED.filter((n) => !names.includes(n));
    if (unexpected.length > 0 || missing.length > 0) {
      console.error(`package-vsix: ${path.basename(out)} is not what it should be.`);
      for (const n of unexpected) {
        console.error(`  should not ship: ${n}`);
      }
      for (const n of missing) {
        console.error(`  missing: ${n}`);
      }
      process.exit(1);
    }
    const kb = Math.round(fs.statSync(out).size / 1024);
    console.log(`package-vsix: ${path.relative(process.cwd(), out)} (${kb} KB, ${names.length} entries) checked.`);
  })
  .catch((e) => {
    console.error(`package-vsix: cannot read ${out}: ${e.message}`);
    process.exit(1);
  });

/** Entry names of a zip (a .vsix is one), read with yauzl, which the extension already uses for archives. */
function listZip(file) {
  const yauzl = require('yauzl');
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true }, (err, zip) => {
      if (err) {
        reject(err);
        return;
      }
      const names = [];
      zip.on('entry', (e) => {
        names.push(e.fileName);
        zip.readEntry();
      });
      zip.on('end', () => resolve(names));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}
