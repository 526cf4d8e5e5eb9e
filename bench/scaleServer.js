#!/usr/bin/env node
// The scale bench's file server, in its own process so that its work does not count as the engine's: every
// GET /f/<n> answers the same 16 KiB (or --size bytes) with a strong ETag. Prints its port on stdout.
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');

const size = Number(process.argv[2] ?? 16 * 1024);
const body = crypto.createHash('sha256').update('scale').digest().toString('hex').repeat(Math.ceil(size / 64)).slice(0, size);
const bytes = Buffer.from(body);
const etag = `"${crypto.createHash('sha256').update(bytes).digest('hex').slice(0, 16)}"`;

const server = http.createServer((req, res) => {
  if (!req.url.startsWith('/f/')) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-length': bytes.length, etag, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' });
  res.end(req.method === 'HEAD' ? undefined : bytes);
});
server.keepAliveTimeout = 10_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
process.on('disconnect', () => process.exit(0));
