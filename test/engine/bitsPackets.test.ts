// The BITS upload packets (bitsPackets.ts) as pure functions: what an answer's headers are taken to say, and what is
// refused. upload.test.ts drives whole sessions against a server that behaves; these pin each parsing decision on
// headers a hostile or broken server could send, so that a mutation of one check fails here.
import * as assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import {
  BITS_UPLOAD_PROTOCOL,
  bitsError,
  contentName,
  describeBitsError,
  hostIdOf,
  isAck,
  packetHeaders,
  receivedRangeOf,
  sessionIdOf,
} from '../../src/engine/bitsPackets';

const h = (headers: IncomingHttpHeaders): IncomingHttpHeaders => headers;

describe('BITS packets (bitsPackets.ts)', () => {
  describe('BITS-Received-Content-Range of a Fragment Ack', () => {
    it('is the next byte the server wants, from 0 to the file size inclusive, spaces trimmed', () => {
      assert.equal(receivedRangeOf(h({ 'bits-received-content-range': '0' }), 10), 0);
      assert.equal(receivedRangeOf(h({ 'bits-received-content-range': ' 7 ' }), 10), 7);
      assert.equal(receivedRangeOf(h({ 'bits-received-content-range': '10' }), 10), 10, 'the whole file acknowledged');
    });

    it('past the end of the file is refused, not taken as "done"', () => {
      assert.deepEqual(receivedRangeOf(h({ 'bits-received-content-range': '11' }), 10), { problem: 'a BITS-Received-Content-Range of 11, past the end of the 10-byte file' });
    });

    it('missing, negative, fractional, a range, hex, or longer than 16 digits is refused (never read as a number)', () => {
      assert.deepEqual(receivedRangeOf(h({}), 10), { problem: 'no BITS-Received-Content-Range' });
      for (const v of ['-1', '1.5', '0-4', '0x5', '5 bytes', '', '1e3', '12345678901234567']) {
        assert.deepEqual(receivedRangeOf(h({ 'bits-received-content-range': v }), 1e18), { problem: `a BITS-Received-Content-Range of '${v}'` }, v);
      }
      assert.equal(receivedRangeOf(h({ 'bits-received-content-range': '1234567890123456' }), 1e18), 1234567890123456, '16 digits still count');
    });

    it('a repeated header counts once: the first value', () => {
      assert.equal(receivedRangeOf({ 'bits-received-content-range': ['4', '9'] }, 10), 4);
    });
  });

  describe('BITS-Session-Id of a Create-Session Ack', () => {
    it('printable ASCII without spaces, up to 100 characters, is the session', () => {
      assert.equal(sessionIdOf(h({ 'bits-session-id': '{0A1B2C3D-0000-0000-0000-000000000000}' })), '{0A1B2C3D-0000-0000-0000-000000000000}');
      assert.equal(sessionIdOf(h({ 'bits-session-id': 'x'.repeat(100) })), 'x'.repeat(100));
    });

    it('missing or empty: "no BITS-Session-Id"', () => {
      assert.deepEqual(sessionIdOf(h({})), { problem: 'no BITS-Session-Id' });
      assert.deepEqual(sessionIdOf(h({ 'bits-session-id': '' })), { problem: 'no BITS-Session-Id' });
    });

    it('longer than 100 characters, or with a space, control or non-ASCII character (it goes back in every header): unusable', () => {
      for (const v of ['x'.repeat(101), 'a b', 'a\tb', 'sé', 'a\x7fb']) {
        assert.deepEqual(sessionIdOf(h({ 'bits-session-id': v })), { problem: 'an unusable BITS-Session-Id' }, JSON.stringify(v));
      }
    });
  });

  describe('BITS-Host-Id of a Create-Session Ack', () => {
    it("the upload URL's own host is kept, with its fallback time-out (case and IPv6 brackets aside)", () => {
      assert.deepEqual(hostIdOf(h({ 'bits-host-id': 'Upload.Example', 'bits-host-id-fallback-timeout': '60' }), 'upload.example'), { hostId: 'Upload.Example', fallbackSeconds: 60 });
      assert.deepEqual(hostIdOf(h({ 'bits-host-id': '::1' }), '[::1]'), { hostId: '::1', fallbackSeconds: undefined });
    });

    it('another host is ignored, whatever its fallback time-out (the file and the credentials go to the URL\'s host only)', () => {
      assert.deepEqual(hostIdOf(h({ 'bits-host-id': '127.0.0.2', 'bits-host-id-fallback-timeout': '60' }), '127.0.0.1'), { ignored: '127.0.0.2' });
      assert.deepEqual(hostIdOf(h({ 'bits-host-id': 'upload.example.evil' }), 'upload.example'), { ignored: 'upload.example.evil' });
    });

    it('a host id with other characters than a host name (a URL, a path, a user) is no host id', () => {
      for (const v of ['http://upload.example', 'upload.example/x', 'me@upload.example', 'upload example']) {
        assert.deepEqual(hostIdOf(h({ 'bits-host-id': v, 'bits-host-id-fallback-timeout': '60' }), 'upload.example'), { hostId: undefined, fallbackSeconds: undefined }, v);
      }
    });

    it('a fallback time-out that is negative or not a number is dropped', () => {
      for (const v of ['-1', 'soon', 'Infinity']) {
        assert.deepEqual(hostIdOf(h({ 'bits-host-id': 'upload.example', 'bits-host-id-fallback-timeout': v }), 'upload.example'), { hostId: 'upload.example', fallbackSeconds: undefined }, v);
      }
    });
  });

  describe('BITS-Error-Code / BITS-Error and BITS-Error-Context', () => {
    it('an HRESULT in hex, with or without 0x, any case; BITS-Error when BITS-Error-Code is absent', () => {
      assert.deepEqual(bitsError(h({ 'bits-error-code': '0x8020001F', 'bits-error-context': '0x7' })), { code: 0x8020001f, context: 7 });
      assert.deepEqual(bitsError(h({ 'bits-error-code': '8020001f' })), { code: 0x8020001f, context: undefined });
      assert.deepEqual(bitsError(h({ 'bits-error': 'x80070005', 'bits-error-context': '5' })), { code: 0x80070005, context: 5 });
      assert.deepEqual(bitsError(h({ 'bits-error-code': '0x8020001F', 'bits-error': '0x80070005' })), { code: 0x8020001f, context: undefined }, 'BITS-Error-Code wins');
    });

    it('more than 8 hex digits, or anything not hex, is no code (never a number wrapped into another HRESULT)', () => {
      for (const v of ['0x18020001F', 'E_FAIL', '0x', '-0x1', '0x8020001F; drop']) {
        assert.deepEqual(bitsError(h({ 'bits-error-code': v })), { code: undefined, context: undefined }, v);
      }
    });

    it('is named in messages when known, with where it happened', () => {
      assert.equal(describeBitsError({ code: 0x8020001f, context: 7 }), ' (BITS-Error-Code 0x8020001F BG_E_SESSION_NOT_FOUND, in the server application)');
      assert.equal(describeBitsError({ code: 0x80070070, context: 5 }), ' (BITS-Error-Code 0x80070070 ERROR_DISK_FULL, on the server)');
      assert.equal(describeBitsError({ code: 0x12345678 }), ' (BITS-Error-Code 0x12345678)');
      assert.equal(describeBitsError({}), '');
    });
  });

  it('an Ack is "BITS-Packet-Type: Ack" in any case; anything else is not', () => {
    assert.equal(isAck(h({ 'bits-packet-type': 'Ack' })), true);
    assert.equal(isAck(h({ 'bits-packet-type': ' ACK ' })), true);
    for (const v of [undefined, '', 'Ping', 'Acknowledged']) {
      assert.equal(isAck(h(v === undefined ? {} : { 'bits-packet-type': v })), false, String(v));
    }
  });

  describe('request headers', () => {
    it("a packet carries the job's custom headers, but none may replace a header the protocol owns", () => {
      const job = {
        Authorization: 'Bearer t',
        'BITS-Packet-Type': 'Cancel-Session',
        'bits-session-id': 'theirs',
        'Content-Range': 'bytes 0-0/1',
        'Content-Length': '0',
        'content-name': 'evil.exe',
        'Content-Encoding': 'gzip',
        Host: 'elsewhere',
        'Transfer-Encoding': 'chunked',
        Connection: 'close',
        'Content-Type': 'application/octet-stream',
      };
      assert.deepEqual(packetHeaders(job, 'Create-Session', { 'BITS-Supported-Protocols': BITS_UPLOAD_PROTOCOL }), {
        Authorization: 'Bearer t',
        'Content-Type': 'application/octet-stream',
        'BITS-Packet-Type': 'Create-Session',
        'BITS-Supported-Protocols': BITS_UPLOAD_PROTOCOL,
      });
    });

    it('Content-Name: the file name alone, percent-encoding what a header or Windows cannot take; none past 260 characters', () => {
      assert.deepEqual(contentName('/data/report 2026.pdf'), { 'Content-Name': 'report 2026.pdf' });
      assert.deepEqual(contentName('/data/été:"x"?.txt'), { 'Content-Name': '%C3%A9t%C3%A9%3A%22x%22%3F.txt' });
      assert.deepEqual(contentName('/data/a\r\nX-Evil: 1'), { 'Content-Name': 'a%0D%0AX-Evil%3A 1' });
      assert.deepEqual(contentName('/data/' + 'a'.repeat(260)), { 'Content-Name': 'a'.repeat(260) });
      assert.deepEqual(contentName('/data/' + 'a'.repeat(261)), {});
      assert.deepEqual(contentName('/data/' + 'é'.repeat(44)), {}, '44 × 6 encoded characters');
    });
  });
});
