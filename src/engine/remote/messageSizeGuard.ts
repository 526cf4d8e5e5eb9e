// vscode-jsonrpc buffers whatever a message's Content-Length announces (and header lines until the blank one),
// with no limit: a client announcing 2 GB would make the owner hold 2 GB. This guard reads the same framing
// (header lines, a blank line, Content-Length bytes) as the bytes go by, and closes the connection as soon as
// a message or its headers would pass the limit; the bytes themselves are passed on unchanged.
import type * as net from 'node:net';
import { PassThrough, type Readable } from 'node:stream';

/** Header lines of a JSON-RPC message are a few dozen bytes. */
const MAX_HEADER_BYTES = 8 * 1024;
const HEADER_END = Buffer.from('\r\n\r\n');

/** The socket's bytes, ending (and the socket destroyed) at the first message larger than `maxMessageBytes`. */
export function guardMessageSize(socket: net.Socket, maxMessageBytes: number, onRefused: (why: string) => void = () => undefined): Readable {
  const out = new PassThrough();
  let header: Buffer = Buffer.alloc(0);
  let bodyLeft = 0;
  const refuse = (why: string): void => {
    onRefused(why);
    socket.destroy();
    out.end();
  };
  socket.on('data', (chunk: Buffer) => {
    let at = 0;
    while (at < chunk.length) {
      if (bodyLeft > 0) {
        const n = Math.min(bodyLeft, chunk.length - at);
        bodyLeft -= n;
        at += n;
        continue;
      }
      // Looks for the blank line in what is kept of the headers plus this chunk (at most the limit).
      const seen = header.length;
      header = Buffer.concat([header, chunk.subarray(at, at + MAX_HEADER_BYTES + HEADER_END.length - seen)]);
      const end = header.indexOf(HEADER_END);
      if (end < 0) {
        if (header.length > MAX_HEADER_BYTES) {
          refuse(`headers longer than ${MAX_HEADER_BYTES} bytes`);
          return;
        }
        at = chunk.length;
        break;
      }
      const length = /^content-length:[ \t]*(\d+)[ \t]*$/im.exec(header.subarray(0, end).toString('latin1'))?.[1];
      if (length === undefined || Number(length) > maxMessageBytes) {
        refuse(length === undefined ? 'a message without Content-Length' : `a message of ${length} bytes (at most ${maxMessageBytes})`);
        return;
      }
      at += end + HEADER_END.length - seen;
      header = Buffer.alloc(0);
      bodyLeft = Number(length);
    }
    out.write(chunk);
  });
  socket.on('end', () => out.end());
  socket.on('close', () => out.end());
  socket.on('error', (e) => out.destroy(e));
  return out;
}
