#!/usr/bin/env python3
"""A service that speaks sd_notify by hand, for test/sd_facts.py (which checks what systemd does with it).

    python3 sd_probe.py ACTION...

It logs its pid and the variables systemd gave it, every fd it got by LISTEN_FDS (name, address),
then runs the actions in order and sleeps forever:

  store NAME PORT        bind 127.0.0.1:PORT, send FDSTORE=1 FDNAME=NAME with it (not if fds were passed)
  store-noname PORT      the same without FDNAME=
  store-two NAME P1 P2   two sockets in one FDSTORE=1 message (not if fds were passed)
  store-received NAME    every fd passed by LISTEN_FDS, stored again under NAME (not if NAME was passed)
  store-dup              a dup() of fd 3, stored under 'dup'
  store-pipe NAME        the read end of a new pipe (the write end kept open)
  close-pipe             close the write end of the last pipe
  send TEXT              one datagram: TEXT, with '\\n' turned into newlines
  hup-reload SECONDS     from now on, a SIGHUP sends RELOADING=1, then READY=1 SECONDS later
  sleep SECONDS          exit CODE          env (log the whole environment)
"""

import array
import os
import signal
import socket
import sys
import time

VARS = ("WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "JOURNAL_STREAM",
        "SYSTEMD_EXEC_PID", "FDSTORE")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def notify(msg, fds=()):
    addr = os.environ["NOTIFY_SOCKET"]
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendmsg([msg.encode()], anc, 0, addr)
    log("sent %r with %d fd(s)" % (msg, len(fds)))


def main():
    log("pid=%d %s" % (os.getpid(), " ".join("%s=%s" % (k, os.environ.get(k, "-")) for k in VARS)))
    st = os.fstat(2)
    log("stderr=%d:%d" % (st.st_dev, st.st_ino))
    n = int(os.environ.get("LISTEN_FDS") or 0) if os.environ.get("LISTEN_PID") == str(os.getpid()) else 0
    names = (os.environ.get("LISTEN_FDNAMES") or "").split(":")
    for fd in range(3, 3 + n):
        s = socket.socket(fileno=fd)
        log("fd %d name=%s addr=%s:%d ino=%d" % ((fd, names[fd - 3]) + s.getsockname()
                                                  + (os.fstat(fd).st_ino,)))
        s.detach()
    keep = []
    hups = []
    reload_delay = None
    a = sys.argv[1:]
    while a:
        x = a.pop(0)
        if x == "store":
            name, port = a.pop(0), int(a.pop(0))
            if n == 0:
                keep.append(socket.create_server(("127.0.0.1", port)))
                notify("FDSTORE=1\nFDNAME=" + name, [keep[-1].fileno()])
        elif x == "store-noname":
            port = int(a.pop(0))
            if n == 0:
                keep.append(socket.create_server(("127.0.0.1", port)))
                notify("FDSTORE=1", [keep[-1].fileno()])
        elif x == "store-two":
            name, p1, p2 = a.pop(0), int(a.pop(0)), int(a.pop(0))
            if n == 0:
                keep += [socket.create_server(("127.0.0.1", p)) for p in (p1, p2)]
                notify("FDSTORE=1\nFDNAME=" + name, [keep[-2].fileno(), keep[-1].fileno()])
        elif x == "store-received":
            name = a.pop(0)
            if name not in names:
                notify("FDSTORE=1\nFDNAME=" + name, list(range(3, 3 + n)))
        elif x == "store-dup":
            notify("FDSTORE=1\nFDNAME=dup", [os.dup(3)])
        elif x == "store-pipe":
            r, w = os.pipe()
            keep.append(w)
            notify("FDSTORE=1\nFDNAME=" + a.pop(0), [r])
            os.close(r)
        elif x == "close-pipe":
            os.close(keep.pop())
        elif x == "send":
            notify(a.pop(0).replace("\\n", "\n"))
        elif x == "hup-reload":
            reload_delay = float(a.pop(0))
            signal.signal(signal.SIGHUP, lambda *_: hups.append(1))
        elif x == "sleep":
            time.sleep(float(a.pop(0)))
        elif x == "exit":
            return int(a.pop(0))
        elif x == "env":
            log("env " + " ".join("%s=%s" % kv for kv in sorted(os.environ.items())))
        else:
            log("unknown action %r" % x)
            return 64
    while True:
        time.sleep(0.02)
        if hups and reload_delay is not None:
            hups.clear()
            notify("RELOADING=1")
            time.sleep(reload_delay)
            notify("READY=1")


if __name__ == "__main__":
    sys.exit(main())
