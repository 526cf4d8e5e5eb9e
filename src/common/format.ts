// How numbers, states and errors read in the tree, the status bar and notifications.
import * as vscode from 'vscode';
import { formatHresult, type JobState } from '../engine';

export { escapeMarkdown } from './untrustedText';

const formats = new Map<number, Intl.NumberFormat>();

function numberFormat(maxFractionDigits: number): Intl.NumberFormat {
  let f = formats.get(maxFractionDigits);
  if (!f) {
    const o = { maximumFractionDigits: maxFractionDigits, useGrouping: false };
    try {
      f = new Intl.NumberFormat(vscode.env.language, o);
    } catch {
      f = new Intl.NumberFormat('en', o);
    }
    formats.set(maxFractionDigits, f);
  }
  return f;
}

/** 1536 → "1.5 KB" (binary multiples, the way download managers show them). */
export function formatBytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) {
    return vscode.l10n.t('unknown size');
  }
  const units = [
    (v: string) => vscode.l10n.t('{0} B', v),
    (v: string) => vscode.l10n.t('{0} KB', v),
    (v: string) => vscode.l10n.t('{0} MB', v),
    (v: string) => vscode.l10n.t('{0} GB', v),
    (v: string) => vscode.l10n.t('{0} TB', v),
  ];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return units[i](numberFormat(i === 0 || v >= 100 ? 0 : 1).format(v));
}

export function formatSpeed(bytesPerSecond: number): string {
  return vscode.l10n.t('{0}/s', formatBytes(bytesPerSecond));
}

/** Seconds → "5 s", "3 min", "2 h 5 min", "3 d". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) {
    return vscode.l10n.t('{0} s', s);
  }
  const m = Math.round(s / 60);
  if (m < 60) {
    return vscode.l10n.t('{0} min', m);
  }
  const h = Math.floor(s / 3600);
  if (h < 48) {
    const rest = Math.round((s - h * 3600) / 60);
    return rest > 0 ? vscode.l10n.t('{0} h {1} min', h, rest) : vscode.l10n.t('{0} h', h);
  }
  return vscode.l10n.t('{0} d', Math.round(s / 86400));
}

export function formatPercent(done: number, total: number | undefined): string | undefined {
  if (total === undefined || total <= 0) {
    return undefined;
  }
  return `${Math.floor((Math.min(done, total) * 100) / total)}%`;
}

export function formatDate(d: Date): string {
  try {
    return d.toLocaleString(vscode.env.language);
  } catch {
    return d.toLocaleString();
  }
}

/**
 * The human name of a state (the contract's identifier stays in tooltips). TRANSFERRED says what it means for the
 * user: the bytes are here but not saved under their name until Complete (an upload: not yet confirmed).
 */
export function stateLabel(state: JobState, type: 'download' | 'upload' = 'download'): string {
  switch (state) {
    case 'SUSPENDED': return vscode.l10n.t('Suspended');
    case 'QUEUED': return vscode.l10n.t('Queued');
    case 'CONNECTING': return vscode.l10n.t('Connecting');
    case 'TRANSFERRING': return vscode.l10n.t('Transferring');
    case 'TRANSIENT_ERROR': return vscode.l10n.t('Transient error');
    case 'ERROR': return vscode.l10n.t('Error');
    case 'TRANSFERRED': return type === 'upload' ? vscode.l10n.t('Uploaded — not confirmed yet') : vscode.l10n.t('Downloaded — not saved yet');
    case 'ACKNOWLEDGED': return vscode.l10n.t('Completed');
    case 'CANCELLED': return vscode.l10n.t('Cancelled');
  }
}

export interface ErrorLike {
  code: string;
  hresult: number;
  message: string;
}

const E_FAIL = 0x80004005;

/** Reads code / hresult / message off anything thrown (DownloadError, Node errors, strings). */
export function toErrorLike(e: unknown): ErrorLike {
  const any = (e ?? {}) as { code?: unknown; hresult?: unknown; message?: unknown };
  const code = typeof any.code === 'string' && any.code !== '' ? any.code : 'E_FAIL';
  const hresult = typeof any.hresult === 'number' ? any.hresult >>> 0 : E_FAIL;
  const message = typeof any.message === 'string' && any.message !== '' ? any.message : String(e);
  return { code, hresult, message };
}

/** "message (CODE, 0x80D02013)" unless the message already names both. */
export function describeError(e: unknown): string {
  const { code, hresult, message } = toErrorLike(e);
  const hex = formatHresult(hresult);
  if (message.includes(code) && message.toUpperCase().includes(hex.toUpperCase())) {
    return message;
  }
  const sentence = /[.!?…]$/.test(message.trim()) ? message.trim().replace(/[.!?…]$/, '') : message.trim();
  return `${sentence} (${code}, ${hex}).`;
}

