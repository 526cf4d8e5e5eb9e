// Entry point of the in-editor test suite: VS Code's extension host loads this module (the
// `extensionTestsPath`) and awaits `run()`. It runs mocha over every `*.test.js` next to it and
// reports each result twice: spec-style lines on the extension host's console, and JSON lines
// appended to the file named by MD_TEST_RESULT_FILE, which scripts/run-vscode-tests.js tails to
// print the run and compute its exit code.
//
// Environment (set by the runner on the server / VS Code process; the extension host inherits it):
//   MD_TEST_RESULT_FILE  JSON-lines result file (optional: without it only the console is used)
//   MD_TEST_GREP         mocha --grep pattern (optional)
//   MD_REPO_ROOT         where node_modules/mocha lives (default: four levels above this file)
import * as fs from 'fs';
import * as path from 'path';
import * as util from 'util';
import type MochaType from 'mocha';

/** One line of the result file. `line` is the ready-to-print spec-style text. */
export interface ResultEvent {
  event: 'start' | 'suite' | 'test' | 'pass' | 'fail' | 'pending' | 'log' | 'end' | 'error';
  line?: string;
  title?: string;
  fullTitle?: string;
  durationMs?: number;
  err?: { message: string; stack?: string; actual?: string; expected?: string; diff?: string };
  stats?: { tests: number; passes: number; failures: number; pending: number; durationMs: number };
}

const repoRoot = process.env.MD_REPO_ROOT ?? path.resolve(__dirname, '..', '..', '..', '..');
const resultFile = process.env.MD_TEST_RESULT_FILE;

const originalLog = console.log.bind(console);

function emit(ev: ResultEvent): void {
  if (ev.line !== undefined && ev.event !== 'log') {
    originalLog(ev.line);
  }
  if (resultFile) {
    fs.appendFileSync(resultFile, JSON.stringify(ev) + '\n');
  }
}

/**
 * While the suite runs, console output of tests (and of the extension, which shares the host) is
 * also sent to the result file, so the runner shows it where the host's console is not visible.
 * Returns the function that undoes it.
 */
function teeConsole(): () => void {
  if (!resultFile) {
    return () => undefined;
  }
  const methods = ['log', 'info', 'warn', 'error', 'debug'] as const;
  // The extension host replaces these with getter/no-op-setter pairs (its console forwarder), so
  // plain assignment is silently ignored: redefine the properties, and restore them afterwards.
  const saved = methods.map((m) => Object.getOwnPropertyDescriptor(console, m));
  for (const m of methods) {
    const orig = console[m].bind(console);
    Object.defineProperty(console, m, {
      configurable: true,
      writable: true,
      value: (...args: unknown[]) => {
        orig(...args);
        try {
          emit({ event: 'log', line: util.format(...args) });
        } catch {
          // never let logging break a test
        }
      },
    });
  }
  return () =>
    methods.forEach((m, i) => {
      const d = saved[i];
      if (d) {
        Object.defineProperty(console, m, d);
      }
    });
}

function errorInfo(err: unknown): NonNullable<ResultEvent['err']> {
  if (err instanceof Error) {
    const e = err as Error & { actual?: unknown; expected?: unknown; showDiff?: boolean };
    // Like mocha: the head of the stack ("TypeError: …", "AssertionError [ERR_ASSERTION]: …").
    const head = e.stack?.split(/\n\s+at /)[0];
    const message = head?.includes(e.message) ? head : `${e.name}: ${e.message}`;
    const info: NonNullable<ResultEvent['err']> = { message, stack: e.stack };
    // mocha's Base reporter (whose listener runs before ours) stringifies actual/expected exactly
    // when a diff is worth showing (same types, showDiff not false); follow its decision.
    if (e.showDiff !== false && typeof e.actual === 'string' && typeof e.expected === 'string') {
      info.actual = e.actual;
      info.expected = e.expected;
    }
    return info;
  }
  return { message: String(err) };
}

/** Mocha-like failure text: message, optional diff, then only the stack frames. */
function formatError(err: NonNullable<ResultEvent['err']>): string {
  const parts = [err.message.trimEnd()];
  if (err.diff) {
    const diff = err.diff
      .replace(/^\n+|\s+$/g, '')
      .split('\n')
      .map((l) => l.replace(/^ {1,6}/, ''));
    parts.push('', ...diff, '');
  } else if (err.actual !== undefined && err.expected !== undefined) {
    parts.push('', '+ expected - actual', '', `- ${err.actual}`, `+ ${err.expected}`, '');
  }
  const frames = (err.stack ?? '')
    .split('\n')
    .filter((l) => /^\s*at /.test(l))
    .map((l) => '  ' + l.trim());
  return [...parts, ...frames].join('\n');
}

function indent(text: string, by: string): string {
  return text
    .split('\n')
    .map((l) => by + l)
    .join('\n');
}

/** Builds a mocha reporter class (mocha itself is only known at run time). */
function makeReporter(mocha: typeof MochaType): typeof MochaType.reporters.Base {
  const { EVENT_RUN_BEGIN, EVENT_RUN_END, EVENT_SUITE_BEGIN, EVENT_SUITE_END, EVENT_TEST_BEGIN, EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING } =
    mocha.Runner.constants;

  return class ResultFileReporter extends mocha.reporters.Base {
    constructor(runner: MochaType.Runner, options?: MochaType.MochaOptions) {
      super(runner, options);
      let depth = 0;
      let n = 0;
      const failures: { title: string; err: NonNullable<ResultEvent['err']> }[] = [];
      const started = Date.now();
      const pad = (): string => '  '.repeat(depth);

      runner.once(EVENT_RUN_BEGIN, () => emit({ event: 'start', line: '' }));
      runner.on(EVENT_SUITE_BEGIN, (suite: MochaType.Suite) => {
        depth++;
        if (suite.title) {
          emit({ event: 'suite', title: suite.title, line: pad() + suite.title });
        }
      });
      runner.on(EVENT_SUITE_END, () => {
        depth--;
      });
      // No `line`: only tells the runner which test is running, should the run time out.
      runner.on(EVENT_TEST_BEGIN, (test: MochaType.Test) => emit({ event: 'test', title: test.title, fullTitle: test.fullTitle() }));
      runner.on(EVENT_TEST_PASS, (test: MochaType.Test) => {
        const ms = test.duration ?? 0;
        const slow = ms > test.slow() ? ` (${ms}ms)` : '';
        emit({ event: 'pass', title: test.title, fullTitle: test.fullTitle(), durationMs: ms, line: `${pad()}  ✔ ${test.title}${slow}` });
      });
      runner.on(EVENT_TEST_PENDING, (test: MochaType.Test) => {
        emit({ event: 'pending', title: test.title, fullTitle: test.fullTitle(), line: `${pad()}  - ${test.title}` });
      });
      runner.on(EVENT_TEST_FAIL, (test: MochaType.Test, err: unknown) => {
        n++;
        const info = errorInfo(err);
        if (info.actual !== undefined && info.expected !== undefined) {
          try {
            info.diff = mocha.reporters.Base.generateDiff(info.actual, info.expected);
          } catch {
            // fall back to the plain actual/expected lines
          }
        }
        failures.push({ title: test.fullTitle(), err: info });
        emit({ event: 'fail', title: test.title, fullTitle: test.fullTitle(), err: info, line: `${pad()}  ${n}) ${test.title}` });
      });
      runner.once(EVENT_RUN_END, () => {
        const stats = runner.stats;
        const lines = ['', `  ${stats?.passes ?? 0} passing (${Date.now() - started}ms)`];
        if (stats?.pending) {
          lines.push(`  ${stats.pending} pending`);
        }
        if (failures.length) {
          lines.push(`  ${failures.length} failing`);
          failures.forEach((f, i) => {
            lines.push('', `  ${i + 1}) ${f.title}:`);
            lines.push(indent(formatError(f.err), '     '));
          });
        }
        lines.push('');
        emit({
          event: 'end',
          line: lines.join('\n'),
          stats: {
            tests: stats?.tests ?? 0,
            passes: stats?.passes ?? 0,
            failures: failures.length,
            pending: stats?.pending ?? 0,
            durationMs: Date.now() - started,
          },
        });
      });
    }
  };
}

function findTests(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.test.js'))
    .sort()
    .map((f) => path.join(dir, f));
}

export function run(): Promise<void> {
  return runTestsIn(__dirname);
}

/** Runs every `*.test.js` under `dir` (another suite, such as the installed-.vsix smoke test, passes its own). */
export async function runTestsIn(dir: string): Promise<void> {
  const untee = teeConsole();
  try {
    // Required by absolute path: the extension host resolves modules from the extension under
    // development, which need not be this repo.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const Mocha = require(path.join(repoRoot, 'node_modules', 'mocha')) as typeof MochaType;
    const grep = process.env.MD_TEST_GREP;
    const mocha = new Mocha({ ui: 'bdd', timeout: 60_000, color: false, reporter: makeReporter(Mocha), ...(grep ? { grep } : {}) });
    for (const file of findTests(dir)) {
      mocha.addFile(file);
    }
    // A throw inside the executor rejects the promise with it.
    const failures = await new Promise<number>((resolve) => {
      mocha.run((f) => resolve(f));
    });
    if (failures > 0) {
      throw new Error(`${failures} test${failures === 1 ? '' : 's'} failed.`);
    }
  } catch (e) {
    // A failure outside any test (loading a test file, mocha itself): report it, then rethrow so
    // VS Code's test host also sees it.
    if (!(e instanceof Error && /^\d+ tests? failed\.$/.test(e.message))) {
      emit({ event: 'error', err: errorInfo(e), line: `Test suite crashed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}` });
    }
    throw e;
  } finally {
    untee();
  }
}
