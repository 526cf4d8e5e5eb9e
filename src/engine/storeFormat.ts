// What the job store's files hold, as text: the snapshot (jobs.json) and the change log (jobs.<generation>.log).
// Pure functions, shared by the store and by tests that read a store from disk.
//
// jobs.json   {"format":"managed-downloads/jobs","version":2,"log":G,"jobs":[record,…]}: every job as of the
//             last compaction; logs from generation G on hold the changes since. Version 1 (no "log") is the
//             old whole journal, read as a snapshot with no log.
// jobs.G.log  one line per change: 8 hex digits of CRC-32 of the rest, a space, then {"put":record} or
//             {"remove":"<id>"}. A line whose checksum does not match ends the log: it is the torn tail of a
//             write that never became durable (nothing after it was acknowledged either).
import { crc32 } from 'node:zlib';
import { JOB_PRIORITIES, JOB_STATES } from './types';
import type { JobRecord } from './records';

export const STORE_FORMAT = 'managed-downloads/jobs';
/** 2: a snapshot plus change logs (1: the whole journal in jobs.json, rewritten on each save). */
export const STORE_VERSION = 2;
export const SNAPSHOT_FILE = 'jobs.json';
const LOG_NAME = /^jobs\.(\d{1,15})\.log$/;

export function logFileName(generation: number): string {
  return `jobs.${generation}.log`;
}

/** The generation of a log file's name, or undefined for any other file. */
export function logGeneration(name: string): number | undefined {
  const m = LOG_NAME.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** A job record the loader keeps, or why it was skipped. Stricter checks plug in here. */
export function validateLoadedRecord(record: unknown): JobRecord | string {
  return isJobRecord(record) ? record : `A damaged job entry was skipped: ${(JSON.stringify(record) ?? String(record)).slice(0, 120)}`;
}

export function isJobRecord(j: unknown): j is JobRecord {
  const r = j as JobRecord;
  return (
    typeof r === 'object' && r !== null &&
    typeof r.id === 'string' && typeof r.displayName === 'string' &&
    (JOB_STATES as readonly string[]).includes(r.state) &&
    (JOB_PRIORITIES as readonly string[]).includes(r.priority) &&
    (r.type === 'download' || r.type === 'upload') &&
    typeof r.created === 'number' && Array.isArray(r.files) &&
    r.files.every((f) => typeof f === 'object' && f !== null && typeof f.remoteUrl === 'string' && typeof f.localPath === 'string' &&
      typeof f.temporaryPath === 'string' && typeof f.durableBytes === 'number')
  );
}

/** The snapshot's text from each job's JSON: one job a line, so that a person can read and diff it. */
export function snapshotText(generation: number, jobTexts: readonly string[]): string {
  const head = `{"format":"${STORE_FORMAT}","version":${STORE_VERSION},"log":${generation},"jobs":[`;
  return jobTexts.length === 0 ? `${head}]}\n` : `${head}\n${jobTexts.join(',\n')}\n]}\n`;
}

/**
 * A snapshot in the layout snapshotText() writes, cut into its head (parsed as a snapshot without jobs) and
 * one JSON text per job, so that a large store can be parsed a part at a time; undefined for any other layout
 * (an old or hand-edited file), which is parsed whole.
 */
export function snapshotLines(text: string): { head: string; jobs: string[] } | undefined {
  const lines = text.split('\n');
  if (lines.length < 4 || !lines[0].endsWith('"jobs":[') || lines[lines.length - 2] !== ']}' || lines[lines.length - 1] !== '') {
    return undefined;
  }
  const jobs = lines.slice(1, -2);
  for (let i = 0; i < jobs.length - 1; i++) {
    if (!jobs[i].endsWith(',')) {
      return undefined;
    }
    jobs[i] = jobs[i].slice(0, -1);
  }
  return { head: `${lines[0]}]}`, jobs };
}

export type ParsedSnapshot =
  | { ok: true; version: number; generation: number; jobs: unknown[] }
  | { ok: false; newerVersion?: number; why: string };

export function parseSnapshot(text: string): ParsedSnapshot {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return { ok: false, why: 'it is not valid JSON (truncated or overwritten)' };
  }
  const d = data as { format?: unknown; version?: unknown; log?: unknown; jobs?: unknown };
  if (typeof d !== 'object' || d === null || d.format !== STORE_FORMAT || typeof d.version !== 'number') {
    return { ok: false, why: 'it is not a Managed Downloads job store' };
  }
  if (d.version > STORE_VERSION) {
    return { ok: false, newerVersion: d.version, why: 'it was written by a newer version' };
  }
  if (!Array.isArray(d.jobs)) {
    return { ok: false, why: 'its job list is missing' };
  }
  // Version 1 had no log: its jobs are the whole store.
  const generation = d.version >= 2 && Number.isSafeInteger(d.log) && (d.log as number) >= 0 ? (d.log as number) : 0;
  return { ok: true, version: d.version, generation, jobs: d.jobs };
}

export type LogChange = { put: unknown } | { remove: string };

/** One log line (with its newline) for a job's JSON, or for its removal. */
export function putLine(jobText: string): string {
  return checked(`{"put":${jobText}}`);
}

export function removeLine(id: string): string {
  return checked(JSON.stringify({ remove: id }));
}

function checked(payload: string): string {
  return `${crc32(payload).toString(16).padStart(8, '0')} ${payload}\n`;
}

export interface ParsedLog {
  changes: LogChange[];
  /** Bytes of the intact lines, from the start. */
  validBytes: number;
  /** Whether every byte belongs to an intact line (no torn tail, no damage). */
  intact: boolean;
  /** Whole lines after the first damaged one (a torn tail has none). */
  linesAfterDamage: number;
}

/** The intact changes of a log, up to the first line that is torn or damaged. */
export function parseLog(text: string): ParsedLog {
  const changes: LogChange[] = [];
  let pos = 0;
  for (;;) {
    const end = text.indexOf('\n', pos);
    if (end < 0) {
      break; // no newline: a torn tail (or the end)
    }
    const change = parseLine(text.slice(pos, end));
    if (!change) {
      let after = 0;
      for (let i = text.indexOf('\n', end + 1); i >= 0; i = text.indexOf('\n', i + 1)) {
        after++;
      }
      return { changes, validBytes: Buffer.byteLength(text.slice(0, pos)), intact: false, linesAfterDamage: after };
    }
    changes.push(change);
    pos = end + 1;
  }
  return { changes, validBytes: Buffer.byteLength(text.slice(0, pos)), intact: pos === text.length, linesAfterDamage: 0 };
}

function parseLine(line: string): LogChange | undefined {
  if (line.length < 10 || line[8] !== ' ') {
    return undefined;
  }
  const payload = line.slice(9);
  if (crc32(payload).toString(16).padStart(8, '0') !== line.slice(0, 8)) {
    return undefined;
  }
  let data: unknown;
  try {
    data = JSON.parse(payload);
  } catch {
    return undefined;
  }
  const d = data as { put?: unknown; remove?: unknown };
  if (typeof d !== 'object' || d === null) {
    return undefined;
  }
  if ('put' in d) {
    return { put: d.put };
  }
  return typeof d.remove === 'string' ? { remove: d.remove } : undefined;
}
