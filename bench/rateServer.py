#!/usr/bin/env python3
# The server of bench/rateLimit.js: one large entity (ranges, strong ETag) sent in pieces, each piece
# timestamped when the kernel took it. Python because it can set what Node cannot on a TCP socket:
#   TCP_MAXSEG 1460   segments of an Ethernet path, not loopback's 64 KiB (a receive window that opens by
#                     one 64 KiB segment at a time moves the server's bytes in 64 KiB steps);
#   TCP_NOTSENT_LOWAT the kernel takes a piece only when less than this is waiting unsent, so a timestamp is
#                     close to when the bytes left, not when they entered a send buffer of several MB.
# Both with --loopback-defaults off; RATE_SERVER_MSS=N sets another segment size (0: loopback's own). GET /sent
# answers the requests served, the connections opened and the timeline as JSON:
# {requests, connections, sent: [[seconds before now, bytes], ...]}. Connections are kept alive between
# requests (as real servers do), so a client fetching successive ranges can reuse one. RATE_SERVER_DELAY_MS=N
# waits N ms before answering each request: a far server's round trip, for a client that waits for each answer.
import json, os, re, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

size = int(sys.argv[1])
piece = int(sys.argv[2])
realistic = '--loopback-defaults' not in sys.argv
delay = int(os.environ.get('RATE_SERVER_DELAY_MS', '0')) / 1000
sent = []
requests = 0
connections = 0
lock = threading.Lock()

class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def setup(self):
        global connections
        super().setup()
        with lock:
            connections += 1

    def do_GET(self):
        global requests
        if self.path == '/sent':
            now = time.monotonic()
            with lock:
                body = json.dumps({'requests': requests, 'connections': connections, 'sent': [[now - t, n] for t, n in sent]}).encode()
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        with lock:
            requests += 1
        time.sleep(delay)
        if realistic:
            self.connection.setsockopt(socket.IPPROTO_TCP, 25, piece)  # TCP_NOTSENT_LOWAT
        start, end = 0, size - 1
        m = re.match(r'^bytes=(\d+)-(\d*)$', self.headers.get('Range') or '')
        if m:
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            self.send_response(206)
            self.send_header('Content-Range', f'bytes {start}-{end}/{size}')
        else:
            self.send_response(200)
        self.send_header('Accept-Ranges', 'bytes')
        self.send_header('ETag', '"bench-entity"')
        self.send_header('Content-Length', str(end - start + 1))
        self.end_headers()
        self.wfile.flush()
        block = b'a' * piece
        left = end - start + 1
        sock = self.connection
        try:
            while left > 0:
                n = sock.send(block[: min(left, piece)])
                left -= n
                with lock:
                    sent.append((time.monotonic(), n))
        except OSError:
            self.close_connection = True

class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client closing a kept-alive connection at the end of a run (the bench cancels the job)

    def server_bind(self):
        mss = int(os.environ.get('RATE_SERVER_MSS', '1460'))
        if realistic and mss:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        super().server_bind()

def exit_with_parent():
    sys.stdin.read()  # EOF: the bench is gone, whatever way it ended
    server.shutdown()

server = Server(('127.0.0.1', 0), Handler)
threading.Thread(target=exit_with_parent, daemon=True).start()
print(server.server_address[1], flush=True)
server.serve_forever()
