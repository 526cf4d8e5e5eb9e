// The extension's settings (managedDownloads.*) and VS Code's proxy settings (http.*), read fresh each time.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { EngineOptions, NetworkSettings } from './engine';
import type { CacheSettings } from './engine/contentCache';
import { parseDuration } from './common/durationSetting';

export const SECTION = 'managedDownloads';

export const DEFAULTS = {
  maxConcurrentJobs: 4,
  minimumRetryDelaySeconds: 600,
  noProgressTimeoutSeconds: 1_209_600,
  retentionDays: 30,
  showFinishedJobs: true,
  allowInsecureRedirects: false,
} as const;

function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration(SECTION);
}

function clampInt(v: unknown, min: number, max: number, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? Math.min(max, Math.max(min, Math.floor(v))) : fallback;
}

export function maxConcurrentJobs(): number {
  return clampInt(config().get('maxConcurrentJobs'), 1, 64, DEFAULTS.maxConcurrentJobs);
}

export function retentionDays(): number {
  return clampInt(config().get('retentionDays'), 1, 30, DEFAULTS.retentionDays);
}

/** The retry delay's keys: the duration one, and the older one in seconds (a change of either moves the delay). */
export const RETRY_DELAY_KEYS = ['retryDelay', 'minimumRetryDelaySeconds'] as const;

export function minimumRetryDelaySeconds(): number {
  return durationSeconds(...RETRY_DELAY_KEYS, 5, DEFAULTS.minimumRetryDelaySeconds);
}

export function noProgressTimeoutSeconds(): number {
  return durationSeconds('noProgressTimeout', 'noProgressTimeoutSeconds', 0, DEFAULTS.noProgressTimeoutSeconds);
}

/**
 * A duration setting in seconds: the text one ("10 minutes") when the user set it, else the older setting that
 * held seconds (still honoured, deprecated), else the default. A value that is not a duration falls back to the
 * default; the Settings editor already flags it with the setting's pattern.
 */
function durationSeconds(key: string, secondsKey: string, min: number, fallback: number): number {
  const c = config();
  const text = c.inspect(key)?.globalValue;
  if (typeof text === 'string' || typeof text === 'number') {
    const s = parseDuration(String(text));
    return s instanceof Error ? fallback : clampInt(s, min, 0xffffffff, fallback);
  }
  if (c.inspect(secondsKey)?.globalValue !== undefined) {
    return clampInt(c.get(secondsKey), min, 0xffffffff, fallback);
  }
  return fallback;
}

export function showFinishedJobs(): boolean {
  return config().get<boolean>('showFinishedJobs') !== false;
}

export function allowInsecureRedirects(): boolean {
  return config().get<boolean>('allowInsecureRedirects') === true;
}

/** The configured download folder, else ~/Downloads when it exists, else the first workspace folder, else home. */
export function downloadFolder(): string {
  const configured = config().get<string>('downloadFolder')?.trim();
  if (configured) {
    const expanded = configured === '~' || configured.startsWith('~/') || configured.startsWith('~\\') ? path.join(os.homedir(), configured.slice(1)) : configured;
    if (path.isAbsolute(expanded)) {
      return path.normalize(expanded);
    }
    const base = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    if (base) {
      return path.resolve(base, expanded);
    }
  }
  const downloads = path.join(os.homedir(), 'Downloads');
  if (isDirectory(downloads)) {
    return downloads;
  }
  const first = vscode.workspace.workspaceFolders?.find((f) => f.uri.scheme === 'file');
  return first ? first.uri.fsPath : os.homedir();
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** VS Code's http.* settings; an empty http.proxy lets the engine fall back to HTTP(S)_PROXY / NO_PROXY. */
export function networkSettings(): NetworkSettings {
  const http = vscode.workspace.getConfiguration('http');
  const proxy = http.get<string>('proxy')?.trim() || undefined;
  const noProxy = (http.get<unknown>('noProxy') ?? []) as unknown;
  return {
    proxy,
    noProxy: Array.isArray(noProxy) ? noProxy.filter((h): h is string => typeof h === 'string' && h.trim() !== '').map((h) => h.trim()) : undefined,
    strictSSL: http.get<boolean>('proxyStrictSSL') !== false,
  };
}

/** Options the engine takes live (engine.updateOptions). */
/** Connections per large file (segmented download); 1 turns splitting off. */
export function segmentsPerFile(): number {
  return clampInt(config().get('segmentsPerFile'), 1, 16, 2);
}

/** The speed limit of all downloads together, bytes per second; 0: none. */
export function maxBytesPerSecond(): number {
  return clampInt(config().get('maxBytesPerSecond'), 0, Number.MAX_SAFE_INTEGER, 0);
}

export function liveEngineOptions(): Pick<EngineOptions, 'maxConcurrentJobs' | 'retentionDays' | 'allowInsecureRedirects' | 'network' | 'segmentsPerFile' | 'maxBytesPerSecond'> {
  return {
    maxBytesPerSecond: maxBytesPerSecond(),
    segmentsPerFile: segmentsPerFile(),
    maxConcurrentJobs: maxConcurrentJobs(),
    retentionDays: retentionDays(),
    allowInsecureRedirects: allowInsecureRedirects(),
    network: networkSettings(),
  };
}

const DEFAULT_CACHE_MAX_BYTES = 10 * 1024 ** 3;

/** The content cache (§9); `defaultFolder` (in the extension's global storage) when no absolute folder is set. */
export function cacheSettings(defaultFolder: string): CacheSettings {
  const configured = config().get<string>('cache.folder')?.trim();
  const expanded = configured && (configured === '~' || configured.startsWith('~/') || configured.startsWith('~\\')) ? path.join(os.homedir(), configured.slice(1)) : configured;
  return {
    enabled: config().get<boolean>('cache.enabled') !== false,
    folder: expanded && path.isAbsolute(expanded) ? path.normalize(expanded) : defaultFolder,
    maxSizeBytes: clampInt(config().get('cache.maxSize'), 0, Number.MAX_SAFE_INTEGER, DEFAULT_CACHE_MAX_BYTES),
  };
}

export function affectsEngine(e: vscode.ConfigurationChangeEvent): { engine: boolean; network: boolean } {
  const network = e.affectsConfiguration('http.proxy') || e.affectsConfiguration('http.noProxy') || e.affectsConfiguration('http.proxyStrictSSL');
  const engine =
    network ||
    e.affectsConfiguration(`${SECTION}.maxConcurrentJobs`) ||
    e.affectsConfiguration(`${SECTION}.retentionDays`) ||
    e.affectsConfiguration(`${SECTION}.allowInsecureRedirects`) ||
    e.affectsConfiguration(`${SECTION}.segmentsPerFile`) ||
    e.affectsConfiguration(`${SECTION}.maxBytesPerSecond`) ||
    e.affectsConfiguration(`${SECTION}.cache`);
  return { engine, network };
}

/** Bounds of extraction (zip bombs): bytes written at most this many times the archive's size, and at most this many bytes. */
export function extractLimits(): { maxRatio: number; maxBytes: number } {
  const ratio = config().get<unknown>('extract.maxRatio');
  const bytes = config().get<unknown>('extract.maxBytes');
  return {
    maxRatio: typeof ratio === 'number' && ratio >= 1 ? ratio : 200,
    maxBytes: typeof bytes === 'number' && bytes >= 1 ? Math.floor(bytes) : 10 * 1024 ** 3,
  };
}
