// What an error code means to a person, first in words, then the code: "the server has no such file
// (HTTP 404, 0x80190194)". One table for the tree's short labels and the notifications' sentences.
import * as vscode from 'vscode';
import { formatHresult } from '../engine';

export interface PlainError {
  /** A few words for a tree row: "not found (404)". */
  short: string;
  /** What happened, as the end of a sentence: "the server has no such file". */
  sentence: string;
}

const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

/** The plain words for an error code, when there are some (undefined: show the code as it is). */
export function plainError(code: string): PlainError | undefined {
  const http = /^HTTP_(\d{3})$/.exec(code);
  if (http) {
    const status = Number(http[1]);
    switch (status) {
      case 404:
      case 410:
        return { short: vscode.l10n.t('not found ({0})', status), sentence: vscode.l10n.t('the server has no such file') };
      case 401:
        return { short: vscode.l10n.t('needs sign-in ({0})', status), sentence: vscode.l10n.t('the server asks for credentials (add an Authorization header to the download)') };
      case 407:
        return { short: vscode.l10n.t('proxy sign-in ({0})', status), sentence: vscode.l10n.t('the proxy asks for credentials (check http.proxy)') };
      case 403:
        return { short: vscode.l10n.t('access denied ({0})', status), sentence: vscode.l10n.t('the server refuses access (a signed link may have expired)') };
      case 429:
        return { short: vscode.l10n.t('too many requests ({0})', status), sentence: vscode.l10n.t('the server asks to slow down') };
      default:
        if (status >= 500) {
          return { short: vscode.l10n.t('server error ({0})', status), sentence: vscode.l10n.t('the server had an error') };
        }
        return { short: vscode.l10n.t('refused ({0})', status), sentence: vscode.l10n.t('the server refused the request') };
    }
  }
  if (NETWORK.has(code)) {
    return { short: vscode.l10n.t('cannot connect'), sentence: vscode.l10n.t('the server could not be reached') };
  }
  switch (code) {
    case 'BG_E_VALIDATION_FAILED':
      return { short: vscode.l10n.t('checksum mismatch'), sentence: vscode.l10n.t('the downloaded bytes do not match the expected checksum (they were deleted)') };
    case 'DO_E_DOWNLOAD_NO_PROGRESS':
      return { short: vscode.l10n.t('no progress'), sentence: vscode.l10n.t('it made no progress for too long') };
    case 'ENOSPC':
      return { short: vscode.l10n.t('disk full'), sentence: vscode.l10n.t('there is not enough free space on the disk') };
    case 'EACCES':
    case 'EPERM':
      return { short: vscode.l10n.t('permission denied'), sentence: vscode.l10n.t('the folder cannot be written to') };
    case 'EEXIST':
      return { short: vscode.l10n.t('name taken'), sentence: vscode.l10n.t('a file with that name is already there') };
    case 'ERROR_FILE_TOO_LARGE':
      return { short: vscode.l10n.t('too large'), sentence: vscode.l10n.t('the file is larger than allowed') };
    default:
      return undefined;
  }
}

/** "HTTP 404, 0x80190194" or "ENOSPC, 0x80070070": the code part of a sentence. */
export function codeAndHresult(code: string, hresult: number): string {
  const http = /^HTTP_(\d{3})$/.exec(code);
  return `${http ? `HTTP ${http[1]}` : code}, ${formatHresult(hresult)}`;
}
