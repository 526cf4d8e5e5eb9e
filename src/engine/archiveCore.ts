// The archive libraries, in one module that src/engine/archiveLibs.ts requires on first use (in the extension
// and the CLI it is dist/archive.js, apart from the main bundle): most users never extract anything, and every
// start would otherwise pay for parsing them.
export * as yauzl from 'yauzl';
export { Parser as TarParser } from 'tar';
