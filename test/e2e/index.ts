// What scripts/run-e2e.js loads (compiled to out/test/e2e/index.js).
export { E2EServer } from './e2eServer';
export { CURATED, journey, machineSettings, prepareWorkspace, userSettings, type Step, type StepContext } from './journey';
export { Strings, type Locale } from './strings';
export { StepAborted, uiTraceScript, Workbench } from './workbench';
