// Entry point of the in-editor scale benchmark (`npm run bench:tree`; not part of `npm test`): the runner over
// this folder only.
import { runTestsIn } from '../suite/index';

export function run(): Promise<void> {
  return runTestsIn(__dirname);
}
