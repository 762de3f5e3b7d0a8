#!/usr/bin/env python3
"""https.py - a test HTTPS server for the MTA-STS tests: serves files per Host.

    https.py --listen IP:PORT [--listen ...] --cert CERT --key KEY --dir DIR --stats FILE

Listens on every IP:PORT (port 0: one port free on all of them, picked at start)
and prints "READY port=N" once it accepts connections.  A GET for PATH with
"Host: NAME[:port]" is answered from DIR/NAME/PATH (NAME lower-cased), so one
server is the policy host of many domains (DIR/mta-sts.a.test/.well-known/
mta-sts.txt).  Per host, optional files change the answer; each is read on every
request, so a test changes behaviour by writing a file:

    DIR/NAME/.delay         seconds to wait before answering (a slow server)
    DIR/NAME/.status        the HTTP status to send instead (e.g. "301")
    DIR/NAME/.content-type  the Content-Type to send (default "text/plain")
    DIR/NAME/.location      a Location header (for redirects)

A missing file is a 404.  FILE (JSON, rewritten atomically after each request):
{"requests": {NAME: count}, "paths": {NAME: [path, ...]}, "times": {NAME: [epoch
seconds the request arrived, ...]}, "tls_errors": count (handshakes that failed)}.
Each connection is served on its own thread, so a delayed host holds no other.
The certificate is one for every host (issue it for all names: ca_issue NAME
mta-sts.a.test mta-sts.b.test).  SIGTERM ends it.
"""
import argparse
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Stats:
    """Request counts per host, written to a JSON file."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.d = {"requests": {}, "paths": {}, "times": {}, "tls_errors": 0}
        self.write()

    def count(self, host, path):
        with self.lock:
            self.d["requests"][host] = self.d["requests"].get(host, 0) + 1
            self.d["paths"].setdefault(host, []).append(path)
            self.d["times"].setdefault(host, []).append(time.time())
            self.write()

    def tls_error(self):
        with self.lock:
            self.d["tls_errors"] += 1
            self.write()

    def write(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.d, f)
        os.replace(tmp, self.path)


def read_opt(base, name):
    try:
        with open(os.path.join(base, name)) as f:
            return f.read().strip()
    except OSError:
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sluice-test-https"

    def log_message(self, fmt, *args):
        sys.stderr.write("https.py: " + (fmt % args) + "\n")

    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0].lower().rstrip(".")
        path = self.path.split("?")[0]
        self.server.stats.count(host, path)
        base = os.path.join(self.server.root, host)
        if not host or "/" in host or host.startswith(".") or ".." in path:
            self.answer(400, b"bad request\n", "text/plain")
            return
        delay = read_opt(base, ".delay")
        if delay:
            time.sleep(float(delay))
        try:
            with open(os.path.join(base, path.lstrip("/")), "rb") as f:
                body = f.read()
            status = 200
        except OSError:
            body, status = b"not found\n", 404
        status = int(read_opt(base, ".status") or status)
        ctype = read_opt(base, ".content-type")
        self.answer(status, body, "text/plain" if ctype is None else ctype,
                    read_opt(base, ".location"))

    def answer(self, status, body, ctype, location=None):
        try:
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (a timeout): nothing to tell it


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, ctx, root, stats):
        super().__init__(addr, Handler)
        self.ctx, self.root, self.stats = ctx, root, stats

    def finish_request(self, request, client_address):
        # the handshake on the connection's own thread: a slow client holds no other
        request.settimeout(30)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            self.stats.tls_error()
            return
        super().finish_request(tls, client_address)


def free_port(ips):
    """A TCP port free on every address."""
    for _ in range(100):
        probe = socket.socket()
        probe.bind((ips[0], 0))
        port = probe.getsockname()[1]
        socks = [probe]
        try:
            for ip in ips[1:]:
                s = socket.socket()
                socks.append(s)
                s.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    sys.exit("https.py: no port free on every address")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", action="append", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--stats", required=True)
    a = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    stats = Stats(a.stats)
    addrs = [l.rsplit(":", 1) for l in a.listen]
    port = int(addrs[0][1])
    if port == 0:
        port = free_port([ip for ip, _ in addrs])
    servers = [Server((ip, port), ctx, a.dir, stats) for ip, _ in addrs]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"READY port={port}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
