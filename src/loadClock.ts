// Imported first by extension.ts, so the bundle evaluates it first: when loading the extension's code began.
// (Loading plus activate() is what VS Code counts as activation time.)
export const codeLoadStarted = performance.now();
