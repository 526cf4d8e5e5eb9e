// Flat config: typescript-eslint's type-aware rules so un-awaited promises are caught.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['out/**', 'dist/**', 'node_modules/**', '.vscode-test/**', 'test-results/**', 'bench/results/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      curly: 'error',
      eqeqeq: ['error', 'smart'],
    },
  },
  {
    // The engine runs without VS Code (CLI, tests, benchmarks), and reaches the disk only through io.ts so the
    // power-loss test can stand in for it.
    files: ['src/engine/**/*.ts'],
    ignores: ['src/engine/io.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [
          { name: 'vscode', message: 'src/engine must run without VS Code.' },
          { name: 'fs', message: "Use './io' (the power-loss test stands in for it).", allowTypeImports: true },
          { name: 'node:fs', message: "Use './io' (the power-loss test stands in for it).", allowTypeImports: true },
          { name: 'node:fs/promises', message: "Use './io' (the power-loss test stands in for it).", allowTypeImports: true },
        ],
      }],
    },
  },
  // Plain JS (scripts/, bench/, this file) is not in the TS project: no type information, so no type-aware rules.
  { files: ['**/*.js', '**/*.mjs', '**/*.cjs'], ...tseslint.configs.disableTypeChecked },
  {
    // Plain CommonJS Node scripts (run without a build step).
    files: ['scripts/**/*.js', 'bench/**/*.js'],
    languageOptions: { sourceType: 'commonjs' },
    rules: {
      '@typescript-eslint/no-require-imports': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      curly: 'error',
      eqeqeq: ['error', 'smart'],
    },
  },
);
