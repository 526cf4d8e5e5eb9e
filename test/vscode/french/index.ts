// Entry point of the French-window suite (scripts/run-vscode-tests.js --locale fr --tests out/test/vscode/french/index.js):
// the in-editor runner over the tests of this folder only, which assert the French strings and so have no
// meaning in an English window (they are not part of the English run rather than skipped in it).
import { runTestsIn } from '../suite/index';

export function run(): Promise<void> {
  return runTestsIn(__dirname);
}
