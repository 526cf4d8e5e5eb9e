// The packets of the BITS Upload Protocol (Microsoft's "BITS Upload Protocol" pages and the open specification
// [MC-BUP]): the headers a request carries and what an answer's headers say. Pure: no I/O, no session state, so
// each parsing decision can be tested on hostile headers alone (uploadSession.ts turns a problem into an error).
// Every packet is an HTTP/1.1 request with the extension method BITS_POST and a `BITS-Packet-Type` header; every
// answer is an Ack:
//   Ping            establishes the connection ([MC-BUP] 2.2.4; Windows sends it for a new session and whenever an
//                   interrupted session resumes, <9>)
//   Create-Session  offers the protocols we speak (BITS-Supported-Protocols) and gets a BITS-Session-Id (2.2.2/2.2.3)
//   Fragment        sends bytes a-b of the file (Content-Range: bytes a-b/total); the Ack's BITS-Received-Content-Range
//                   is the next byte the server wants, also on a 416 when client and server disagree (2.2.6/2.2.7,
//                   3.1.5.1.4, 3.2.5.2.6)
//   Close-Session   the upload is complete: the server puts the file at its destination (2.2.8, 3.2.5.2.7)
//   Cancel-Session  the server deletes the partial upload (2.2.10, 3.2.5.2.8)
// Errors come as HTTP statuses with BITS-Error-Code (MC-BUP calls it BITS-Error) and BITS-Error-Context.
import type { IncomingHttpHeaders } from 'node:http';
import * as path from 'node:path';
import { formatHresult } from './errors';
import { bareHostname } from './validation';

/** The one protocol [MC-BUP] 1.7.1 defines ("BITS 1.5 Upload Protocol"). */
export const BITS_UPLOAD_PROTOCOL = '{7df0354d-249b-430f-820d-3d2a9bef4931}';

export const BITS_HRESULTS = {
  BG_E_LOCAL_FILE_CHANGED: 0x8020001d,
  BG_E_SESSION_NOT_FOUND: 0x8020001f,
  BG_E_TOO_LARGE: 0x80200020,
  BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH: 0x80200022,
} as const;

/** Names for the BITS-Error-Code values [MC-BUP] 2.2.1.2 lists, to make messages readable. */
const BITS_ERROR_NAMES: Record<number, string> = {
  0x8020001f: 'BG_E_SESSION_NOT_FOUND',
  0x80200020: 'BG_E_TOO_LARGE',
  0x80070005: 'E_ACCESSDENIED',
  0x80070057: 'E_INVALIDARG',
  0x80070070: 'ERROR_DISK_FULL',
};

/** Headers the protocol owns; a job's custom headers cannot replace them. */
const PROTOCOL_HEADERS = /^(bits-.*|content-(range|name|length|encoding)|host|transfer-encoding|connection)$/i;

export type Packet = 'Ping' | 'Create-Session' | 'Fragment' | 'Close-Session' | 'Cancel-Session';

export interface BitsAnswer {
  status: number;
  headers: IncomingHttpHeaders;
}

/** A header that cannot be used: what was wrong with it, worded to follow "answered … with <status> but". */
export interface BadHeader {
  problem: string;
}

export function isSuccess(status: number): boolean {
  return status >= 200 && status < 300;
}

/** The headers of one packet: the job's custom headers, except those the protocol owns, then the packet's own. */
export function packetHeaders(jobHeaders: Record<string, string>, packet: Packet, extra: Record<string, string>): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(jobHeaders)) {
    if (!PROTOCOL_HEADERS.test(k)) {
      headers[k] = v;
    }
  }
  return Object.assign(headers, { 'BITS-Packet-Type': packet }, extra);
}

/** Content-Name: the local file's name without its path ([MC-BUP] 2.2.1.1; Windows sends it with every fragment, <11>). */
export function contentName(localPath: string): Record<string, string> {
  const name = path.basename(localPath);
  // Header-safe and free of the characters Windows refuses (\ / : * ? " < > |, <3>): percent-encode the rest.
  const safe = [...name].map((c) => (/[A-Za-z0-9._ ~!$&'()+,;=@^`{}[\]#%-]/.test(c) ? c : [...Buffer.from(c, 'utf8')].map((b) => '%' + b.toString(16).toUpperCase().padStart(2, '0')).join(''))).join('');
  return safe.length > 0 && safe.length <= 260 ? { 'Content-Name': safe } : {};
}

/** One header's value, trimmed; the first if the answer repeats it. */
export function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined ? undefined : s.trim();
}

/** A 2xx must be a BITS Ack ([MC-BUP] 2.2.1); otherwise this is not a BITS upload server. */
export function isAck(h: IncomingHttpHeaders): boolean {
  return (header(h, 'bits-packet-type') ?? '').toLowerCase() === 'ack';
}

/** BITS-Error-Code (the Windows pages) or BITS-Error ([MC-BUP] 2.2.1.2): an HRESULT in hex; BITS-Error-Context: 0x5 or 0x7. */
export function bitsError(h: IncomingHttpHeaders): { code?: number; context?: number } {
  const hex = (v: string | undefined): number | undefined => {
    const m = v === undefined ? null : /^(?:0?x)?([0-9a-f]{1,8})$/i.exec(v);
    return m ? Number.parseInt(m[1], 16) >>> 0 : undefined;
  };
  return { code: hex(header(h, 'bits-error-code') ?? header(h, 'bits-error')), context: hex(header(h, 'bits-error-context')) };
}

/** The server's BITS error for a message: ` (BITS-Error-Code 0x…, NAME, where)`, or nothing. */
export function describeBitsError(b: { code?: number; context?: number }): string {
  if (b.code === undefined) {
    return '';
  }
  const name = BITS_ERROR_NAMES[b.code];
  const ctx = b.context === 7 ? ', in the server application' : b.context === 5 ? ', on the server' : '';
  return ` (BITS-Error-Code ${formatHresult(b.code)}${name ? ' ' + name : ''}${ctx})`;
}

/** BITS-Session-Id of a Create-Session Ack: printable ASCII without spaces, at most 100 characters (it goes back in every header). */
export function sessionIdOf(h: IncomingHttpHeaders): string | BadHeader {
  const sid = header(h, 'bits-session-id');
  if (!sid || sid.length > 100 || !/^[\x21-\x7e]+$/.test(sid)) {
    return { problem: sid ? 'an unusable BITS-Session-Id' : 'no BITS-Session-Id' };
  }
  return sid;
}

/**
 * BITS-Host-Id of a Create-Session Ack ([MC-BUP] 2.2.3.2) and its fallback time-out. One naming another host than
 * the upload URL's is `ignored`: the server's say would send the file and the job's headers (credentials) to any
 * machine.
 */
export function hostIdOf(h: IncomingHttpHeaders, originHostname: string): { hostId?: string; fallbackSeconds?: number; ignored?: string } {
  const given = header(h, 'bits-host-id');
  const fallback = Number(header(h, 'bits-host-id-fallback-timeout'));
  const hostId = given && /^[A-Za-z0-9.:[\]-]+$/.test(given) ? given : undefined;
  if (hostId && bareHostname(hostId).toLowerCase() !== bareHostname(originHostname).toLowerCase()) {
    return { ignored: hostId };
  }
  return { hostId, fallbackSeconds: hostId && Number.isFinite(fallback) && fallback >= 0 ? fallback : undefined };
}

/** BITS-Received-Content-Range of a Fragment Ack: the next byte the server wants ([MC-BUP] 2.2.7.2), never past the end. */
export function receivedRangeOf(h: IncomingHttpHeaders, total: number): number | BadHeader {
  const v = header(h, 'bits-received-content-range');
  if (v === undefined || !/^\d{1,16}$/.test(v.trim())) {
    return { problem: v === undefined ? 'no BITS-Received-Content-Range' : `a BITS-Received-Content-Range of '${v}'` };
  }
  const next = Number(v.trim());
  if (next > total) {
    return { problem: `a BITS-Received-Content-Range of ${next}, past the end of the ${total}-byte file` };
  }
  return next;
}
