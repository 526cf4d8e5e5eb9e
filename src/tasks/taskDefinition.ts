// The `download` task type of tasks.json: its definition, checked and turned into the files of one job.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { archiveFormatOf, defaultExtractFolder, JOB_PRIORITIES, type JobPriority } from '../engine';

export const TASK_TYPE = 'download';

export interface DownloadTaskFile {
  url: string;
  path?: string;
  dest?: string;
  sha256?: string;
  /** Other URLs of the same file, tried in order when one fails (§8). */
  mirrors?: string[];
}

export interface DownloadTaskDefinition extends vscode.TaskDefinition {
  type: typeof TASK_TYPE;
  url?: string;
  path?: string;
  dest?: string;
  sha256?: string;
  mirrors?: string[];
  files?: DownloadTaskFile[];
  priority?: JobPriority;
  displayName?: string;
  headers?: Record<string, string>;
  /** Unpack the archive(s) after Complete: true = beside each archive, named after it; a string = that folder. */
  extract?: boolean | string;
  /** The job's own speed limit, bytes per second (0: only the global limit). */
  maxBytesPerSecond?: number;
}

export interface PlannedFile {
  url: string;
  localPath: string;
  sha256?: string;
  mirrors?: string[];
}

export interface TaskPlan {
  files: PlannedFile[];
  priority: JobPriority;
  displayName?: string;
  headers?: Record<string, string>;
  /** The archives to unpack after Complete, each with its folder. */
  extractions: { archive: string; folder: string }[];
  maxBytesPerSecond?: number;
}

/**
 * Checks a (variable-resolved) definition and resolves relative paths against the workspace folder.
 * Throws an Error whose message names the faulty field.
 */
export function planTask(def: DownloadTaskDefinition, workspaceFolder: string | undefined): TaskPlan {
  const entries: DownloadTaskFile[] = [];
  if (def.files !== undefined) {
    if (!Array.isArray(def.files) || def.files.length === 0) {
      throw new Error(vscode.l10n.t("'files' must be a non-empty list of {0}.", '{ url, path, sha256? }'));
    }
    if (def.url !== undefined) {
      throw new Error(vscode.l10n.t("Give either 'url' + 'path' or 'files', not both."));
    }
    entries.push(...def.files);
  } else if (typeof def.url === 'string') {
    entries.push({ url: def.url, path: def.path, dest: def.dest, sha256: def.sha256, mirrors: def.mirrors });
  } else {
    throw new Error(vscode.l10n.t("A download task needs 'url' and 'path', or 'files'."));
  }
  const files = entries.map((e, i) => {
    const where = def.files ? `files[${i}]` : vscode.l10n.t('the task');
    if (!e || typeof e.url !== 'string' || e.url.trim() === '') {
      throw new Error(vscode.l10n.t("{0}: 'url' is missing.", where));
    }
    const target = e.path ?? e.dest;
    if (typeof target !== 'string' || target.trim() === '') {
      throw new Error(vscode.l10n.t("{0}: 'path' is missing (where to save {1}).", where, e.url));
    }
    let localPath: string;
    if (path.isAbsolute(target)) {
      localPath = path.normalize(target);
    } else if (workspaceFolder) {
      localPath = path.resolve(workspaceFolder, target);
    } else {
      throw new Error(vscode.l10n.t("{0}: the path '{1}' is relative and there is no workspace folder to resolve it against.", where, target));
    }
    if (e.mirrors !== undefined && (!Array.isArray(e.mirrors) || e.mirrors.some((m) => typeof m !== 'string'))) {
      throw new Error(vscode.l10n.t("{0}: 'mirrors' must be a list of URLs.", where));
    }
    return { url: e.url.trim(), localPath, sha256: e.sha256, ...(e.mirrors?.length ? { mirrors: e.mirrors.map((m) => m.trim()) } : {}) };
  });
  const priority = def.priority ?? 'NORMAL';
  if (!(JOB_PRIORITIES as readonly string[]).includes(priority)) {
    throw new Error(vscode.l10n.t("'priority' must be one of {0}.", JOB_PRIORITIES.join(', ')));
  }
  if (def.headers !== undefined && (typeof def.headers !== 'object' || def.headers === null || Array.isArray(def.headers))) {
    throw new Error(vscode.l10n.t("'headers' must be an object of header names to values."));
  }
  const limit = def.maxBytesPerSecond;
  if (limit !== undefined && (typeof limit !== 'number' || !Number.isFinite(limit) || limit < 0)) {
    throw new Error(vscode.l10n.t("'maxBytesPerSecond' must be a number of bytes per second (0 for none)."));
  }
  return {
    files,
    priority,
    displayName: def.displayName,
    headers: def.headers,
    extractions: planExtractions(def.extract, files, workspaceFolder),
    maxBytesPerSecond: limit || undefined,
  };
}

function planExtractions(extract: unknown, files: PlannedFile[], workspaceFolder: string | undefined): { archive: string; folder: string }[] {
  if (extract === undefined || extract === false) {
    return [];
  }
  if (extract !== true && (typeof extract !== 'string' || extract.trim() === '')) {
    throw new Error(vscode.l10n.t("'extract' must be true or the folder to unpack into."));
  }
  const archives = files.filter((f) => archiveFormatOf(f.localPath)).map((f) => f.localPath);
  if (archives.length === 0) {
    throw new Error(vscode.l10n.t("'extract' unpacks .zip, .tar, .tar.gz and .tgz files, and the task downloads none."));
  }
  if (extract === true) {
    return archives.map((archive) => ({ archive, folder: defaultExtractFolder(archive) }));
  }
  if (archives.length > 1) {
    throw new Error(vscode.l10n.t("'extract' names one folder but the task downloads {0} archives: use \"extract\": true to unpack each beside its archive.", archives.length));
  }
  const target = extract.trim();
  if (!path.isAbsolute(target) && !workspaceFolder) {
    throw new Error(vscode.l10n.t("'extract': the folder '{0}' is relative and there is no workspace folder to resolve it against.", target));
  }
  return [{ archive: archives[0], folder: path.isAbsolute(target) ? path.normalize(target) : path.resolve(workspaceFolder!, target) }];
}
