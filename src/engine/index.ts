// The engine's public surface, for the extension, the CLI and tests.
export { DownloadEngine, type EngineOptions, type Logger, type LogLevel } from './engine';
export { JobImpl } from './job';
export { DownloadError, formatHresult, HRESULTS } from './errors';
export { createDispatcher, type NetworkSettings } from './dispatcher';
export type { HeaderVault } from './headerVault';
export * from './types';
export { SharedEngine, type EngineRole } from './remote/sharedEngine';
export { parseRate, MIN_BYTES_PER_SECOND } from './rateLimiter';
export { extractArchive, archiveFormatOf, defaultExtractFolder, EXTRACT_MARKER, DEFAULT_MAX_BYTES, DEFAULT_MAX_RATIO, type ExtractOptions, type ExtractResult } from './extract';
