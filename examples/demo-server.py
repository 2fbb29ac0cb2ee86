#!/usr/bin/env python3
"""demo-server.py - a tiny HTTP server that behaves the way hupwatch wants.

Standard library only. It
  - takes its listening socket(s) from the systemd protocol (LISTEN_FDS, fds
    3.., honoured only when LISTEN_PID is its own pid), or binds --bind
    HOST:PORT itself when run on its own;
  - pretends to load for --startup seconds, starts serving, then tells
    NOTIFY_SOCKET "READY=1" (abstract names start with '@');
  - answers every request with "gen=N pid=P" (N from HUPWATCH_GENERATION);
  - on SIGTERM stops accepting, finishes the requests in flight, exits 0.

    hupwatch --listen 127.0.0.1:8080 --notify -- python3 examples/demo-server.py
"""

import argparse
import http.server
import os
import signal
import socket
import sys
import threading
import time

SD_LISTEN_FDS_START = 3


def log(msg):
    gen = os.environ.get("HUPWATCH_GENERATION", "-")
    print("demo-server[%d] gen %s: %s" % (os.getpid(), gen, msg),
          file=sys.stderr, flush=True)


def listen_fds():
    """Sockets passed by sd_listen_fds(3) rules; the variables are unset so
    that nothing this process starts mistakes them for its own."""
    try:
        pid = int(os.environ.get("LISTEN_PID", ""))
        n = int(os.environ.get("LISTEN_FDS", ""))
    except ValueError:
        return []
    finally:
        for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(var, None)
    if pid != os.getpid() or n <= 0:
        return []
    socks = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + n):
        os.set_inheritable(fd, False)
        socks.append(socket.socket(fileno=fd))
    return socks


def notify(message):
    """sd_notify(3): one datagram to $NOTIFY_SOCKET; a no-op without it."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(path)
        s.sendall(message.encode())


class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no idle keep-alive connection
    # is cut when this generation drains.
    protocol_version = "HTTP/1.0"
    work_seconds = 0.0

    def do_GET(self):
        if self.work_seconds:
            time.sleep(self.work_seconds)
        body = ("gen=%s pid=%d\n" % (os.environ.get("HUPWATCH_GENERATION", "0"),
                                    os.getpid())).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = False      # server_close() joins the requests in flight
    block_on_close = True


def make_server(sock):
    server = Server(sock.getsockname(), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    return server


def bind(text):
    """--bind HOST:PORT or [IPV6]:PORT, for running without hupwatch."""
    host, _, port = text.rpartition(":")
    family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
    return socket.create_server((host.strip("[]") or "127.0.0.1", int(port)),
                                family=family)


def describe(sock):
    name = sock.getsockname()
    return "%s:%s" % name[:2] if isinstance(name, tuple) else "unix:%s" % name


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bind", metavar="HOST:PORT",
                    help="bind this address when no LISTEN_FDS socket is passed")
    ap.add_argument("--startup", type=float, default=0.5, metavar="SECONDS",
                    help="time spent 'loading' before serving (default 0.5)")
    ap.add_argument("--work", type=float, default=0.01, metavar="SECONDS",
                    help="time spent on each request (default 0.01)")
    args = ap.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    socks = listen_fds()
    if not socks:
        if not args.bind:
            log("no socket passed (LISTEN_FDS/LISTEN_PID) and no --bind; exiting")
            return 2
        socks = [bind(args.bind)]

    time.sleep(args.startup)
    if stop.is_set():
        return 0
    Handler.work_seconds = args.work
    servers = [make_server(s) for s in socks]
    threads = [threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
               for srv in servers]
    for t in threads:
        t.start()
    names = ", ".join(describe(s) for s in socks)
    log("serving on %s" % names)
    notify("READY=1\nSTATUS=serving gen %s on %s"
           % (os.environ.get("HUPWATCH_GENERATION", "0"), names))

    while not stop.wait(0.2):
        pass

    t0 = time.monotonic()
    for srv in servers:
        srv.shutdown()          # stop accepting; queued connections stay
    for srv in servers:         # in hupwatch's socket for the next generation
        srv.server_close()      # joins the requests in flight
    log("SIGTERM: drained in %.2fs; exiting" % (time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
