#!/usr/bin/env python3
"""demo-client.py - send requests without pause from a few threads and count.

    python3 examples/demo-client.py HOST PORT [--threads N] [--duration S]

Each request is a new connection (GET /), expected to answer 200 with a body
"gen=N pid=P". Runs until SIGTERM/SIGINT (or --duration), then prints a summary
on stdout and exits 0 if no request failed, 1 otherwise.
"""

import argparse
import collections
import http.client
import signal
import sys
import threading
import time


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.failed = 0
        self.errors = []                        # first few, for the summary
        self.per_gen = collections.Counter()    # generation -> answers
        self.pids = {}                          # generation -> pid

    def success(self, gen, pid):
        with self.lock:
            self.ok += 1
            self.per_gen[gen] += 1
            self.pids[gen] = pid

    def failure(self, why):
        with self.lock:
            self.failed += 1
            if len(self.errors) < 10:
                self.errors.append("%.3f %s" % (time.monotonic(), why))


def one_request(host, port, timeout):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
    finally:
        conn.close()
    if resp.status != 200:
        raise RuntimeError("HTTP %d" % resp.status)
    fields = dict(f.split("=", 1) for f in body.split() if "=" in f)
    return int(fields["gen"]), int(fields["pid"])


def worker(host, port, timeout, counter, stop):
    while not stop.is_set():
        try:
            gen, pid = one_request(host, port, timeout)
        except Exception as e:      # every failure counts, whatever its kind
            counter.failure("%s: %s" % (type(e).__name__, e))
        else:
            counter.success(gen, pid)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--duration", type=float, default=0,
                    help="stop after this many seconds (default: at SIGTERM)")
    ap.add_argument("--timeout", type=float, default=5,
                    help="per-request timeout in seconds (default 5)")
    args = ap.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    counter = Counter()
    started = time.monotonic()
    threads = [threading.Thread(target=worker,
                                args=(args.host, args.port, args.timeout, counter, stop))
               for _ in range(args.threads)]
    for t in threads:
        t.start()
    while not stop.wait(0.1):
        if args.duration and time.monotonic() - started >= args.duration:
            stop.set()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started

    total = counter.ok + counter.failed
    gens = sorted(counter.per_gen)
    print("requests:    %d in %.1fs (%.0f/s, %d threads)"
          % (total, elapsed, total / elapsed if elapsed else 0, args.threads))
    print("ok:          %d" % counter.ok)
    print("failed:      %d" % counter.failed)
    print("generations: %s" % " ".join(str(g) for g in gens))
    for g in gens:
        print("  gen %-3d pid %-7d answered %d" % (g, counter.pids[g], counter.per_gen[g]))
    for e in counter.errors:
        print("  error: %s" % e)
    return 0 if counter.failed == 0 and total > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
