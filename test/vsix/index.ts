// Entry point of the smoke test against the installed .vsix (scripts/run-vscode-tests.js --install-vsix): the same
// runner as the in-editor suite, over the tests of this folder only.
import { runTestsIn } from '../vscode/suite/index';

export function run(): Promise<void> {
  return runTestsIn(__dirname);
}
