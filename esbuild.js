// Bundles the extension (and the CLI) into dist/. `--production` minifies, `--watch` rebuilds.
const esbuild = require('esbuild');

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

/** Prints build start/end in the format the `$esbuild-watch` problem matcher expects. */
const problemMatcherPlugin = {
  name: 'esbuild-problem-matcher',
  setup(build) {
    build.onStart(() => console.log('[watch] build started'));
    build.onEnd((result) => {
      for (const { text, location } of result.errors) {
        console.error(`✘ [ERROR] ${text}`);
        if (location) console.error(`    ${location.file}:${location.line}:${location.column}:`);
      }
      console.log('[watch] build finished');
    });
  },
};

/**
 * undici (the part the engine uses: src/engine/undiciCore.ts) goes into its own file, dist/undici.js, which the
 * engine requires on first use (src/engine/undici.ts):
 * bundled into extension.js it would be parsed at every activation even when not run.
 */
const undiciApartPlugin = {
  name: 'undici-apart',
  setup(build) {
    build.onResolve({ filter: /^\.\/undiciCore$/ }, () => ({ path: './undici.js', external: true }));
  },
};

/** The same for yauzl and tar (src/engine/archiveCore.ts → dist/archive.js), required on the first extraction. */
const archiveApartPlugin = {
  name: 'archive-apart',
  setup(build) {
    build.onResolve({ filter: /^\.\/archiveCore$/ }, () => ({ path: './archive.js', external: true }));
  },
};

async function main() {
  const common = {
    bundle: true,
    format: 'cjs',
    minify: production,
    sourcemap: !production,
    sourcesContent: false,
    platform: 'node',
    target: 'node20',
    logLevel: 'silent',
    plugins: [problemMatcherPlugin],
  };
  const contexts = await Promise.all([
    esbuild.context({
      ...common,
      entryPoints: ['src/extension.ts'],
      outfile: 'dist/extension.js',
      external: ['vscode'],
      plugins: [...common.plugins, undiciApartPlugin, archiveApartPlugin],
    }),
    esbuild.context({ ...common, entryPoints: ['src/engine/undiciCore.ts'], outfile: 'dist/undici.js' }),
    esbuild.context({ ...common, entryPoints: ['src/engine/archiveCore.ts'], outfile: 'dist/archive.js' }),
    esbuild.context({ ...common, entryPoints: ['src/cli.ts'], outfile: 'dist/cli.js' }),
  ]);
  if (watch) {
    await Promise.all(contexts.map((c) => c.watch()));
    return;
  }
  await Promise.all(contexts.map((c) => c.rebuild()));
  await Promise.all(contexts.map((c) => c.dispose()));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
