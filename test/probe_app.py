"""An HTTP server for test/test_probe.py that serves every socket it inherits by LISTEN_FDS.

    probe_app.py SPEC_JSON

SPEC_JSON maps a generation (HUPWATCH_GENERATION) to how that generation behaves; a generation
not named behaves well:

    {"2": {"health": 503, "boot": 3.0, "crash": 1.0, "report": "DIR"}}

health  the status /health answers (default 200); every other path answers 200
boot    seconds to sleep before accepting anything (the sockets are listening all along: they are
        hupwatch's)
crash   exit 3 this many seconds after it began to accept: it stops accepting, finishes the
        answers in progress, then exits (a request a process holds when it dies is lost whatever
        supervises it; the connections still queued on the shared sockets are not)
report  a directory where it writes gen<N>.env: its LISTEN_FDNAMES and HUPWATCH_PROBE_ADDRESS

Every answer's body is "gen=N pid=P", as test/child --serve and test/app.py say it. On SIGTERM it
stops accepting and exits 0 once the answers in progress are done.
"""

import json
import os
import signal
import socket
import sys
import threading
import time

gen = os.environ.get("HUPWATCH_GENERATION", "?")
spec = json.loads(sys.argv[1]).get(gen, {}) if len(sys.argv) > 1 else {}
stop = threading.Event()
busy = threading.Condition()   # guards `inflight`: the answers in progress
inflight = 0


def answer(conn):
    global inflight
    try:
        answer1(conn)
    except OSError:     # a client that hung up: its answer only
        pass
    finally:
        with busy:
            inflight -= 1
            busy.notify_all()


def drain():
    """Wait (at most 5 s) until no answer is in progress."""
    with busy:
        busy.wait_for(lambda: inflight == 0, timeout=5)


def answer1(conn):
    with conn:
        conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            b = conn.recv(4096)
            if not b:
                return
            data += b
        path = data.split(b" ", 2)[1] if data.count(b" ") >= 2 else b"/"
        code = int(spec.get("health", 200)) if path == b"/health" else 200
        body = ("gen=%s pid=%d\n" % (gen, os.getpid())).encode()
        conn.sendall(b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (code, b"OK" if code == 200 else b"Not OK", len(body), body))


def serve(fd):
    global inflight
    s = socket.socket(fileno=fd)
    s.settimeout(0.05)
    while not stop.is_set():
        try:
            conn, _ = s.accept()
        except socket.timeout:
            continue
        except OSError:
            return
        with busy:
            inflight += 1
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


def main():
    n = int(os.environ.get("LISTEN_FDS", "0"))
    if spec.get("report"):
        path = os.path.join(spec["report"], "gen%s.env" % gen)
        with open(path + ".tmp", "w") as f:
            json.dump({"LISTEN_FDS": n, "LISTEN_FDNAMES": os.environ.get("LISTEN_FDNAMES"),
                       "HUPWATCH_PROBE_ADDRESS": os.environ.get("HUPWATCH_PROBE_ADDRESS")}, f)
        os.rename(path + ".tmp", path)
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    time.sleep(float(spec.get("boot", 0)))
    threads = [threading.Thread(target=serve, args=(3 + i,)) for i in range(n)]
    for t in threads:
        t.start()
    crash = spec.get("crash")
    deadline = time.monotonic() + float(crash) if crash is not None else None
    while not stop.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            stop.set()
            for t in threads:
                t.join()
            drain()
            os._exit(3)
        stop.wait(0.05)
    for t in threads:
        t.join()
    drain()
    sys.exit(0)


main()
