// Error codes and HRESULTs of the contract (§3), and the one Error class every failure uses.

export const HRESULTS = {
  S_OK: 0x00000000,
  BG_S_PARTIAL_COMPLETE: 0x00200017,
  /** complete()/cancel() reached their state, but some temporary files could not be deleted yet (retried later). */
  BG_S_UNABLE_TO_DELETE_FILES: 0x0020001a,
  DO_E_INVALID_STATE: 0x80d02013,
  DO_E_JOB_NOT_FOUND: 0x80d02003,
  DO_E_JOB_EMPTY: 0x80d02004,
  DO_E_ERROR_INFORMATION_UNAVAILABLE: 0x80d02014,
  DO_E_DOWNLOAD_NO_PROGRESS: 0x80d02002,
  DO_E_INSUFFICIENT_RANGE_SUPPORT: 0x80d05011,
  BG_E_VALIDATION_FAILED: 0x80200053,
  BG_E_TOO_MANY_FILES: 0x8020001c,
  BG_E_LOCAL_FILE_CHANGED: 0x8020001d,
  BG_E_STRING_TOO_LONG: 0x80200021,
  E_NOTIMPL: 0x80004001,
  E_INVALIDARG: 0x80070057,
  E_ACCESSDENIED: 0x80070005,
  E_FAIL: 0x80004005,
  // WinHTTP codes BITS reports for transport failures.
  WINHTTP_TIMEOUT: 0x80072ee2,
  WINHTTP_NAME_NOT_RESOLVED: 0x80072ee7,
  WINHTTP_CANNOT_CONNECT: 0x80072efd,
  WINHTTP_CONNECTION_ERROR: 0x80072efe,
  WINHTTP_REDIRECT_FAILED: 0x80072f7a,
  WINHTTP_INVALID_SERVER_RESPONSE: 0x80072f78,
  WINHTTP_SECURE_FAILURE: 0x80072f8f,
  STORE_NEWER_VERSION: 0x8020000b,
} as const;

export type KnownCode = keyof typeof HRESULTS;

/** Where an error happened, after BG_ERROR_CONTEXT. */
export type ErrorContext =
  | 'NONE'
  | 'GENERAL_QUEUE_MANAGER'
  | 'LOCAL_FILE'
  | 'REMOTE_FILE'
  | 'GENERAL_TRANSPORT'
  | 'REMOTE_APPLICATION';

/** The Error every API failure is: a symbolic code, an unsigned HRESULT and a readable sentence. */
export class DownloadError extends Error {
  readonly code: string;
  readonly hresult: number;
  /** Transient errors are retried by the scheduler; the others move the job to ERROR. */
  readonly transient: boolean;
  readonly context: ErrorContext;
  /** Seconds the server asked us to wait (Retry-After), already bounded. */
  readonly retryAfterSeconds?: number;
  /** The facts behind the sentence, so a UI can say it in the user's language (e.g. verb, job, state). */
  readonly details?: Readonly<Record<string, string>>;

  constructor(
    code: string,
    message: string,
    o: { hresult?: number; transient?: boolean; context?: ErrorContext; retryAfterSeconds?: number; cause?: unknown; details?: Record<string, string> } = {},
  ) {
    super(message, o.cause === undefined ? undefined : { cause: o.cause });
    this.name = 'DownloadError';
    this.code = code;
    this.hresult = (o.hresult ?? (HRESULTS as Record<string, number>)[code] ?? HRESULTS.E_FAIL) >>> 0;
    this.transient = o.transient ?? false;
    this.context = o.context ?? 'NONE';
    this.retryAfterSeconds = o.retryAfterSeconds;
    this.details = o.details;
  }

  /** "DO_E_INVALID_STATE, 0x80D02013": the form notifications and logs show. */
  get codeAndHresult(): string {
    return `${this.code}, ${formatHresult(this.hresult)}`;
  }
}

export function formatHresult(h: number): string {
  return '0x' + (h >>> 0).toString(16).toUpperCase().padStart(8, '0');
}

export function invalidArg(message: string): DownloadError {
  return new DownloadError('E_INVALIDARG', message);
}

/**
 * HTTP statuses map to 0x80190000 + status; 4xx are fatal except 408, 409, 429; 5xx transient except 501, 505;
 * 1xx, 204 and 3xx (a redirect the engine could not follow) fatal.
 */
export function httpError(status: number, url: string, retryAfterSeconds?: number): DownloadError {
  const transient = isTransientHttpStatus(status);
  const reason = HTTP_REASONS[status] ?? '';
  return new DownloadError(`HTTP_${status}`, `The server answered ${status}${reason ? ' ' + reason : ''} for ${redactUrl(url)}.`, {
    hresult: 0x80190000 + status,
    transient,
    context: 'REMOTE_FILE',
    retryAfterSeconds,
  });
}

export function isTransientHttpStatus(status: number): boolean {
  if (status < 200 || status === 204 || (status >= 300 && status < 400)) {
    // Not an error the server may get over: an informational or empty answer, or a redirect that cannot be
    // followed (no Location, 300/304/305). Retrying it for the no-progress timeout only hides it (BITS: fatal).
    return false;
  }
  if (status >= 500) {
    return status !== 501 && status !== 505;
  }
  if (status >= 400) {
    return status === 408 || status === 409 || status === 429;
  }
  return true;
}

const HTTP_REASONS: Record<number, string> = {
  204: 'No Content', 300: 'Multiple Choices', 301: 'Moved Permanently (without a Location)', 302: 'Found (without a Location)',
  303: 'See Other (without a Location)', 304: 'Not Modified', 305: 'Use Proxy', 307: 'Temporary Redirect (without a Location)',
  308: 'Permanent Redirect (without a Location)',
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 407: 'Proxy Authentication Required',
  408: 'Request Timeout', 409: 'Conflict', 410: 'Gone', 429: 'Too Many Requests', 500: 'Internal Server Error',
  501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout', 505: 'HTTP Version Not Supported',
};

const OS_HRESULTS: Record<string, number> = {
  ENOENT: 0x80070002, EACCES: 0x80070005, EPERM: 0x80070005, EEXIST: 0x800700b7, ENOSPC: 0x80070070,
  EBUSY: 0x800700aa, EROFS: 0x80070013, EISDIR: 0x80070010, ENOTDIR: 0x8007010b, EXDEV: 0x80070011,
  EMFILE: 0x80070004, ENAMETOOLONG: 0x800700ce, ELOOP: 0x80070780, EIO: 0x8007045d,
};

/** Wraps a Node file-system error; disk full and busy files are worth a retry, the rest is the user's to fix. */
export function osError(e: unknown, what: string): DownloadError {
  if (e instanceof DownloadError) {
    return e;
  }
  const code = (e as NodeJS.ErrnoException)?.code ?? 'E_FAIL';
  const detail = (e as Error)?.message ?? String(e);
  return new DownloadError(code, `${what}: ${detail}`, {
    hresult: OS_HRESULTS[code] ?? HRESULTS.E_FAIL,
    transient: code === 'ENOSPC' || code === 'EBUSY' || code === 'EMFILE' || code === 'EIO',
    context: 'LOCAL_FILE',
    cause: e,
  });
}

/** A connection that ended before the bytes it owed (transient: the next attempt resumes). */
export function connectionCut(message: string): DownloadError {
  return new DownloadError('ECONNRESET', message, { hresult: HRESULTS.WINHTTP_CONNECTION_ERROR, transient: true, context: 'GENERAL_TRANSPORT' });
}

/** Maps undici / socket errors to transient transport errors with WinHTTP HRESULTs. */
export function networkError(e: unknown, url: string): DownloadError {
  if (e instanceof DownloadError) {
    return e;
  }
  const err = e as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  // A proxy's own answer (undici reports it as an error, not a response): classified like any HTTP status.
  const proxyStatus = /^Proxy Authentication Required \((\d{3})\)$|^Proxy response \((\d{3})\) !== 200 when HTTP Tunneling$/.exec(err?.message ?? '');
  if (proxyStatus) {
    const status = Number(proxyStatus[1] ?? proxyStatus[2]);
    const reason = HTTP_REASONS[status] ?? '';
    return new DownloadError(`HTTP_${status}`, `The proxy answered ${status}${reason ? ' ' + reason : ''} for ${redactUrl(url)}${status === 407 ? ' (check the proxy credentials)' : ''}.`, {
      hresult: 0x80190000 + status,
      transient: isTransientHttpStatus(status),
      context: 'GENERAL_TRANSPORT',
      cause: e,
    });
  }
  const code = err?.code ?? err?.cause?.code ?? 'ECONNRESET';
  const where = redactUrl(url);
  const table: Record<string, [number, string]> = {
    ECONNREFUSED: [HRESULTS.WINHTTP_CANNOT_CONNECT, `The connection to ${where} was refused.`],
    ENOTFOUND: [HRESULTS.WINHTTP_NAME_NOT_RESOLVED, `The host of ${where} could not be resolved.`],
    EAI_AGAIN: [HRESULTS.WINHTTP_NAME_NOT_RESOLVED, `The host of ${where} could not be resolved.`],
    UND_ERR_CONNECT_TIMEOUT: [HRESULTS.WINHTTP_TIMEOUT, `Connecting to ${where} timed out.`],
    UND_ERR_HEADERS_TIMEOUT: [HRESULTS.WINHTTP_TIMEOUT, `The server did not answer ${where} in time.`],
    UND_ERR_BODY_TIMEOUT: [HRESULTS.WINHTTP_TIMEOUT, `The transfer from ${where} stalled.`],
    ETIMEDOUT: [HRESULTS.WINHTTP_TIMEOUT, `The connection to ${where} timed out.`],
  };
  const [hresult, message] = table[code] ?? [
    HRESULTS.WINHTTP_CONNECTION_ERROR,
    `The connection to ${where} was interrupted (${code}${err?.message ? ': ' + redactUrlsIn(err.message) : ''}).`,
  ];
  const tls = /CERT|SSL|TLS/i.test(code);
  return new DownloadError(code, tls ? `The secure connection to ${where} failed (${code}).` : message, {
    hresult: tls ? HRESULTS.WINHTTP_SECURE_FAILURE : hresult,
    transient: !tls,
    context: 'GENERAL_TRANSPORT',
    cause: e,
  });
}

/**
 * The one way a URL goes into a message or a log: user info and the whole query are dropped (signed URLs carry
 * their signature, token or key there under many names, so no value of the query is shown), and the fragment too.
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    const hadQuery = u.search !== '';
    u.search = '';
    u.hash = '';
    return u.toString() + (hadQuery ? '?…' : '');
  } catch {
    // Not parseable: cut what looks like user info and everything from '?' or '#' all the same.
    const cut = url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/*)[^/?#]*@/, '$1').replace(/[?#][^]*$/, (m) => (m.startsWith('?') ? '?…' : ''));
    return cut.length > 100 ? cut.slice(0, 100) + '…' : cut;
  }
}

/** Free text (an OS or library error message) with every URL in it redacted as redactUrl does. */
export function redactUrlsIn(text: string): string {
  return text.replace(/\b[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s'"<>]+/g, (u) => redactUrl(u));
}
