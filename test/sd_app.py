#!/usr/bin/env python3
"""The app hupwatch runs in test/test_systemd.py (inside the systemd-nspawn container), stdlib only.

    python3 sd_app.py [--tag TAG] [--term-default] [--hang-after SECONDS]

Started by hupwatch in a release directory (hupwatch --chdir .../current), it
  - takes its listening sockets from LISTEN_FDS (only when LISTEN_PID is its own pid); none is an error;
  - exits 3 at once when the file BROKEN exists in its directory (a broken release);
  - sleeps for the number of seconds in the file STARTUP, if there is one (a slow release);
  - serves, then says READY=1 to $NOTIFY_SOCKET;
  - with WATCHDOG_USEC (and WATCHDOG_PID its own pid, as sd_watchdog_enabled(3) asks), sends WATCHDOG=1
    every half of it from then on -- with --hang-after, only for that many seconds (then it "hangs":
    it still answers, it no longer pings);
  - answers every request with "release=R gen=N pid=P" (R: the directory's name, N: HUPWATCH_GENERATION);
  - on SIGTERM stops accepting, finishes what it accepted, exits 0 -- or, with --term-default, dies of
    the signal like an app that has no handler (status 143 to whoever waits for it).

--tag is not read: it only marks the command line, so that a test finds the processes of one unit.
"""

import os
import signal
import socket
import sys
import threading
import time

HERE = os.path.realpath(".")
RELEASE = os.path.basename(HERE)
GEN = os.environ.get("HUPWATCH_GENERATION", "?")


def log(msg):
    print("sd_app[%d] gen %s release %s: %s" % (os.getpid(), GEN, RELEASE, msg),
          file=sys.stderr, flush=True)


def listen_fds():
    try:
        ok = int(os.environ.get("LISTEN_PID", "")) == os.getpid()
        n = int(os.environ.get("LISTEN_FDS", "")) if ok else 0
    except ValueError:
        n = 0
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    return [socket.socket(fileno=fd) for fd in range(3, 3 + n)]


def notify(message):
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(message.encode(), path)


def answer(conn):
    with conn:
        conn.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data and b"\n\n" not in data and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            body = "release=%s gen=%s pid=%d\n" % (RELEASE, GEN, os.getpid())
            conn.sendall(("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(body), body)).encode())
        except OSError:
            pass


def serve(sock, stop, inflight):
    # A timeout makes the socket O_NONBLOCK, shared with hupwatch and the other generation (as asyncio
    # servers do): an accept() lost to the other generation then times out instead of blocking.
    sock.settimeout(0.05)
    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except socket.timeout:
            continue
        except OSError:
            if stop.is_set():
                break
            raise
        t = threading.Thread(target=answer, args=(conn,))
        inflight.append(t)
        t.start()


def watchdog_interval():
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
        pid = os.environ.get("WATCHDOG_PID")
        return usec / 1e6 if usec > 0 and (pid is None or int(pid) == os.getpid()) else None
    except ValueError:
        return None


def main():
    term_default = "--term-default" in sys.argv[1:]
    args = sys.argv[1:]
    hang_after = float(args[args.index("--hang-after") + 1]) if "--hang-after" in args else None
    interval = watchdog_interval()
    stop = threading.Event()
    if not term_default:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    socks = listen_fds()
    if os.path.exists("BROKEN"):
        log("this release is broken (BROKEN exists); exiting 3")
        return 3
    if not socks:
        log("no socket passed by LISTEN_FDS; exiting 2")
        return 2
    try:
        with open("STARTUP") as f:
            time.sleep(float(f.read().strip() or 0))
    except FileNotFoundError:
        pass
    inflight = []
    threads = [threading.Thread(target=serve, args=(s, stop, inflight)) for s in socks]
    for t in threads:
        t.start()
    log("serving on %d socket(s)" % len(socks))
    notify("READY=1")
    ready_at = next_ping = time.monotonic()
    while not stop.wait(0.1):
        now = time.monotonic()
        if interval and now >= next_ping and (hang_after is None or now - ready_at < hang_after):
            notify("WATCHDOG=1")
            next_ping = now + interval / 2
    for t in threads + inflight:
        t.join(10)
    log("SIGTERM: drained; exiting 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
