#!/usr/bin/env python3
"""hupwatch benchmark driver, run by bench/run.sh (see BENCHMARKS.md).

Python 3 standard library only. Everything it starts runs in a session of its
own and is killed, session by session, when a part ends or the driver is
interrupted. Every wait has a time limit, and every load run has a duration.
Traffic goes only to 127.0.0.1.
"""
import bisect
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")


def env_num(name, default, kind=float):
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        sys.exit("bench: %s: not a number: %r" % (name, raw))
    if value < 0:
        sys.exit("bench: %s: negative: %r" % (name, raw))
    return value


QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
RELOADS = env_num("BENCH_RELOADS", 5 if QUICK else 50, int)
IDLE = env_num("BENCH_IDLE", 5 if QUICK else 60)
SWAPS = env_num("BENCH_SWAPS", 20 if QUICK else 200, int)
EXEC_RUNS = env_num("BENCH_EXEC_RUNS", 100 if QUICK else 1000, int)
BROKEN_REPS = env_num("BENCH_BROKEN", 1 if QUICK else 3, int)
CONNS = env_num("BENCH_CONNECTIONS", 8, int)
GAP = env_num("BENCH_GAP", 2.0)           # steady time after each reload settled
GRACE = env_num("BENCH_GRACE", 0.5)       # reload window extends this far past "settled"
BROKEN_WINDOW = env_num("BENCH_BROKEN_WINDOW", 5.0)
WORKERS = env_num("BENCH_WORKERS", 2, int)
SCENARIOS = [s for s in os.environ.get("BENCH_SCENARIOS", "").replace(",", " ").split() if s]
PARTS = [s for s in os.environ.get("BENCH_PARTS", "").replace(",", " ").split() if s]

HUPWATCH = os.path.abspath(os.environ.get("HUPWATCH", os.path.join(ROOT, "hupwatch")))
WORK = os.environ.get("BENCH_WORK") or sys.exit("bench: BENCH_WORK not set (run bench/run.sh)")
HELPERS = os.environ.get("BENCH_HELPERS", WORK)
SWAPCHILD = os.path.join(HELPERS, "swapchild")
STAMP = os.path.join(HELPERS, "stamp")
EXECLAT = os.path.join(HELPERS, "execlat")
GUNICORN = shutil.which("gunicorn") or "/usr/bin/gunicorn"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
TINI = shutil.which("tini")
HYPERFINE = shutil.which("hyperfine")
PERF = shutil.which("perf")

COMMANDS = []      # (part, command line) for the report
with open("/proc/loadavg") as _f:
    LOADAVG_START = " ".join(_f.read().split()[:3])
NOTES = []         # discrepancies and observations for the report
PROCS = []         # every Proc started, for cleanup


def note(text):
    NOTES.append(text)
    log("NOTE: " + text)


def log(text):
    sys.stderr.write("bench: %s\n" % text)
    sys.stderr.flush()


def now():
    return time.monotonic()


def quote(argv):
    return " ".join(shlex.quote(str(a)) for a in argv)


def record(part, argv, extra=""):
    line = quote(argv) + extra
    if (part, line) not in COMMANDS:
        COMMANDS.append((part, line))


# --------------------------------------------------------------------------
# processes

def session_members(sid):
    """Pids of every process whose session id is sid (read from /proc)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 3 and int(fields[3]) == sid:
            pids.append(int(name))
    return pids


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()[0]


def alive(pid):
    state = proc_state(pid)
    return state is not None and state != "Z"


def children_of(pid):
    out = []
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            out = [int(x) for x in f.read().split()]
    except OSError:
        pass
    return [c for c in out if alive(c)]


def wait_until(pred, timeout, step=0.01):
    """pred() value once true, or None after timeout seconds."""
    deadline = now() + timeout
    while True:
        value = pred()
        if value:
            return value
        if now() >= deadline:
            return None
        time.sleep(step)


class Proc:
    """A process started in a new session; output lines timestamped on arrival."""

    def __init__(self, argv, part, env=None, cwd=None, stdout=True, show=True):
        if show:
            record(part, argv)
        self.argv = argv
        self.lines = []            # (monotonic seconds, text)
        self.cond = threading.Condition()
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if stdout else subprocess.PIPE,
            env=env, cwd=cwd, start_new_session=True)
        self.pid = self.popen.pid
        PROCS.append(self)
        stream = self.popen.stdout if stdout else self.popen.stderr
        self.reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.reader.start()

    def _read(self, stream):
        for raw in iter(stream.readline, b""):
            t = now()
            with self.cond:
                self.lines.append((t, raw.decode("utf-8", "replace").rstrip("\n")))
                self.cond.notify_all()
        stream.close()

    def mark(self):
        with self.cond:
            return len(self.lines)

    def find(self, regex, since=0):
        rx = re.compile(regex)
        with self.cond:
            for t, text in self.lines[since:]:
                m = rx.search(text)
                if m:
                    return t, m
        return None

    def find_all(self, regex, since=0):
        rx = re.compile(regex)
        with self.cond:
            return [(t, m) for t, text in self.lines[since:] for m in [rx.search(text)] if m]

    def wait_line(self, regex, since=0, timeout=10.0):
        deadline = now() + timeout
        rx = re.compile(regex)
        with self.cond:
            i = since
            while True:
                while i < len(self.lines):
                    t, text = self.lines[i]
                    i += 1
                    m = rx.search(text)
                    if m:
                        return t, m
                left = deadline - now()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.1))

    def exited(self):
        return self.popen.poll() is not None

    def wait_exit(self, timeout):
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def text(self):
        with self.cond:
            return "\n".join(text for _, text in self.lines)

    def save(self):
        """Keep the timestamped output in $BENCH_WORK/logs/ for a post-mortem."""
        d = os.path.join(WORK, "logs")
        os.makedirs(d, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.basename(self.argv[0]))
        with self.cond, open(os.path.join(d, "%s.%d.log" % (name, self.pid)), "w") as f:
            f.write("# %s\n" % quote(self.argv))
            for t, text in self.lines:
                f.write("%.6f %s\n" % (t, text))

    def kill(self):
        """SIGKILL every process of this session; wait (bounded) until they are gone."""
        for _ in range(50):
            members = session_members(self.pid)
            if self.popen.poll() is None and self.pid not in members:
                members.append(self.pid)
            members = [p for p in members if alive(p)]
            if not members:
                break
            for pid in members:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        self.wait_exit(5)
        self.reader.join(2)
        self.save()
        left = [p for p in session_members(self.pid) if alive(p)]
        if left:
            note("processes of session %d still alive after cleanup: %s" % (self.pid, left))


def cleanup_all():
    for p in PROCS:
        try:
            p.kill()
        except Exception as e:  # cleanup must go on
            log("cleanup of %d: %s" % (p.pid, e))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def exchange(s, timeout):
    """GET / on connected socket s (closed after): the whole answer, as bytes; raises OSError."""
    try:
        s.settimeout(timeout)
        s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


def http_get(port, timeout=2.0):
    """(status, body) of GET / on 127.0.0.1:port, or (None, error text)."""
    try:
        data = exchange(socket.create_connection(("127.0.0.1", port), timeout=timeout), timeout)
    except OSError as e:
        return None, str(e)
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d+)", head)
    if not m:
        return None, "bad answer %r" % data[:60]
    return int(m.group(1)), body.decode("utf-8", "replace").strip()


def wait_serving(port, timeout=30.0):
    def ok():
        status, body = http_get(port, 1.0)
        return body if status == 200 else None
    return wait_until(ok, timeout, 0.05)


# --------------------------------------------------------------------------
# statistics

def pct(values, p):
    """Nearest-rank percentile of a list (None when empty)."""
    if not values:
        return None
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(-(-p * len(values) // 100)) - 1))
    return values[k]


def fmt_ms(us, digits=1):
    return "-" if us is None else ("%.*f ms" % (digits, us / 1000.0))


def fmt_s(sec):
    return "-" if sec is None else "%.2f s" % sec


# --------------------------------------------------------------------------
# releases and commands

def make_releases(base):
    rel = os.path.join(base, "releases")
    for name, src in (("good", "app.py"), ("broken", "broken_app.py")):
        d = os.path.join(rel, name)
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(BENCH, src), os.path.join(d, "app.py"))
    current = os.path.join(base, "current")
    point(current, "good")
    return current


def point(current, release):
    """Swap the `current` symlink atomically (rename over it), as a deploy does."""
    tmp = current + ".new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.join("releases", release), tmp)
    os.rename(tmp, current)


def gunicorn_argv(current, extra=(), preload=False):
    argv = [GUNICORN, "--workers", str(WORKERS), "--worker-class", "sync",
            "--chdir", current, "--log-level", "info", "--graceful-timeout", "30"]
    if preload:
        argv.append("--preload")
    return argv + list(extra) + ["app:application"]


def child_env(current):
    env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        env.pop(k, None)
    env["PWD"] = current
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


# --------------------------------------------------------------------------
# servers under test: start, reload, wait until the reload settled

class Server:
    """A way of running gunicorn, and of reloading it."""
    name = ""
    label = ""

    def __init__(self, base, current, port):
        self.base, self.current, self.port = base, current, port
        self.proc = None
        self.status_file = os.path.join(base, "hupwatch.status")

    def start(self):
        raise NotImplementedError

    def trigger(self):
        """Start one reload; return a token for settled()."""
        raise NotImplementedError

    def settled(self, token):
        """None while the reload is in progress; else (ok, text)."""
        raise NotImplementedError

    def stop(self):
        if self.proc:
            self.proc.kill()

    def alive(self):
        return self.proc is not None and not self.proc.exited()


class HupwatchServer(Server):
    """gunicorn behind hupwatch; a reload is `kill -HUP hupwatch`."""

    def hupwatch_args(self):
        raise NotImplementedError

    def gunicorn_extra(self):
        return []

    preload = False

    def start(self):
        argv = [HUPWATCH] + self.hupwatch_args() + ["-S", self.status_file, "--"] + \
            gunicorn_argv(self.current, self.gunicorn_extra(), self.preload)
        self.proc = Proc(argv, self.label, env=child_env(self.current), cwd=self.current)
        hit = self.proc.wait_line(r"gen (\d+) pid (\d+) ready after", timeout=60)
        if not hit:
            raise RuntimeError("hupwatch did not report gen 1 ready:\n" + self.proc.text()[-2000:])
        self.current_gen = int(hit[1].group(1))

    def trigger(self):
        mark = self.proc.mark()
        record(self.label, ["kill", "-HUP", "HUPWATCH_PID"])
        os.kill(self.proc.pid, signal.SIGHUP)
        return mark, self.current_gen

    def settled(self, token):
        mark, old = token
        failed = self.proc.find(r"error: gen (\d+) failed: (.*)", mark)
        if failed:
            return False, failed[1].group(0)
        ready = self.proc.find(r"gen (\d+) pid (\d+) ready after ([0-9.]+)s", mark)
        if not ready:
            return None
        gone = self.proc.find(r"gen %d pid \d+ (exited with status \d+|killed by \S+) after draining" % old, mark)
        if not gone:
            if self.proc.exited():
                return False, "hupwatch exited (%s)" % self.proc.popen.returncode
            return None
        self.current_gen = int(ready[1].group(1))
        return True, ""

    def stop(self):
        try:
            self.cpu_ms = cpu_ns(self.proc.pid) / 1e6
            status = read_kv("/proc/%d/status" % self.proc.pid)
            self.ctxt = int(status.get("voluntary_ctxt_switches", 0)) + int(status.get("nonvoluntary_ctxt_switches", 0))
        except (OSError, ValueError):
            pass
        Server.stop(self)

    def swap_time(self, token):
        """SIGHUP sent -> 'stopping' line read, for this reload (seconds)."""
        mark, old = token
        hit = self.proc.find(r"gen %d pid \d+ stopping" % old, mark)
        return hit[0] if hit else None


class HupwatchListenNotify(HupwatchServer):
    name = "hupwatch-listen-notify"
    label = "(a) hupwatch --listen --notify"

    def hupwatch_args(self):
        return ["--listen", "127.0.0.1:%d" % self.port, "--notify"]


class HupwatchListenNotifyPreload(HupwatchListenNotify):
    name = "hupwatch-listen-notify-preload"
    label = "(a') hupwatch --listen --notify, gunicorn --preload"
    preload = True


class HupwatchReusePort(HupwatchServer):
    name = "hupwatch-reuse-port"
    label = "(b) hupwatch -w 1, gunicorn --reuse-port"

    def hupwatch_args(self):
        return ["-w", "1"]

    def gunicorn_extra(self):
        return ["--reuse-port", "--bind", "127.0.0.1:%d" % self.port]


class GunicornHup(Server):
    name = "gunicorn-hup"
    label = "(c) gunicorn's own SIGHUP"

    def start(self):
        argv = gunicorn_argv(self.current, ["--bind", "127.0.0.1:%d" % self.port])
        self.proc = Proc(argv, self.label, env=child_env(self.current), cwd=self.current)
        if not self.proc.wait_line(r"Booting worker", timeout=60):
            raise RuntimeError("gunicorn did not start:\n" + self.proc.text()[-2000:])

    def trigger(self):
        old = set(children_of(self.proc.pid))
        mark = self.proc.mark()
        record(self.label, ["kill", "-HUP", "GUNICORN_PID"])
        os.kill(self.proc.pid, signal.SIGHUP)
        return mark, old

    def settled(self, token):
        mark, old = token
        if self.proc.exited():
            return False, "gunicorn exited (%s)" % self.proc.popen.returncode
        if any(alive(p) for p in old):
            return None
        booted = self.proc.find_all(r"Booting worker with pid: (\d+)", mark)
        if len(booted) < WORKERS:
            return None
        return True, ""


class StopStart(Server):
    name = "stop-start"
    label = "(d) stop and start"

    def argv(self):
        return gunicorn_argv(self.current, ["--bind", "127.0.0.1:%d" % self.port])

    def start(self):
        self.proc = Proc(self.argv(), self.label, env=child_env(self.current), cwd=self.current)
        if len(self.proc.find_all(r"Booting worker")) < WORKERS and \
                not wait_until(lambda: len(self.proc.find_all(r"Booting worker")) >= WORKERS, 60):
            raise RuntimeError("gunicorn did not start:\n" + self.proc.text()[-2000:])

    def trigger(self):
        record(self.label, ["kill", "-TERM", "GUNICORN_PID"], "; wait for it to exit; start it again")
        os.kill(self.proc.pid, signal.SIGTERM)
        if self.proc.wait_exit(40) is None:
            note("stop-start: gunicorn still running 40 s after SIGTERM; killed")
        self.proc.kill()
        self.proc = Proc(self.argv(), self.label, env=child_env(self.current), cwd=self.current)
        return None

    def settled(self, token):
        if self.proc.exited():
            return False, "gunicorn exited (%s)" % self.proc.popen.returncode
        if len(self.proc.find_all(r"Booting worker with pid")) >= WORKERS:
            return True, ""
        return None


class HupwatchReadyHttp(HupwatchServer):
    """Issue 9: readiness from the new generation's own probe socket, so no --preload is needed."""
    name = "hupwatch-ready-http"
    label = "(f) hupwatch --listen --ready-http /, gunicorn without --preload"

    def hupwatch_args(self):
        return ["--listen", "127.0.0.1:%d" % self.port, "--ready-http", "/"]


SERVERS = [HupwatchListenNotify, HupwatchListenNotifyPreload, HupwatchReusePort, GunicornHup, StopStart,
           HupwatchReadyHttp]


class NewCodeWatcher:
    """After a reload of hupwatch, GET / every 20 ms on the public port until an answer comes from a
    generation newer than `old` (bench/app.py names it); the time from the trigger to that answer is
    "SIGHUP to new code answering". Bounded by `limit` seconds; stop() ends it early."""

    def __init__(self, port, old, t0, limit=90.0):
        self.port, self.old, self.t0, self.limit = port, old, t0, limit
        self.seen = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        rx = re.compile(r"gen=(\d+)")
        while not self.done.is_set() and now() - self.t0 < self.limit:
            st, body = http_get(self.port, 2.0)
            m = rx.search(body or "") if st == 200 else None
            if m and int(m.group(1)) > self.old:
                self.seen = now() - self.t0
                return
            self.done.wait(0.02)

    def stop(self, wait=5.0):
        """Let it look on for up to `wait` s more, then end it; the time, or None."""
        self.thread.join(wait)
        self.done.set()
        self.thread.join(3)
        return self.seen


# --------------------------------------------------------------------------
# load

class Load:
    """wrk with one connection per thread and the per-request log script."""

    def __init__(self, port, logdir, part, max_seconds):
        os.makedirs(logdir, exist_ok=True)
        self.logdir = logdir
        env = dict(os.environ, BENCH_WRK_LOG=logdir)
        argv = [WRK, "-t", str(CONNS), "-c", str(CONNS), "-d", "%ds" % int(max_seconds),
                "-T", "30s", "-s", os.path.join(BENCH, "wrk_log.lua"), "http://127.0.0.1:%d/" % port]
        record(part, argv, "   # stopped with SIGINT when the reloads are done; env BENCH_WRK_LOG=DIR")
        self.proc = Proc(argv, part, env=env, show=False)

    def stop(self):
        if not self.proc.exited():
            os.kill(self.proc.pid, signal.SIGINT)
        if self.proc.wait_exit(20) is None:
            note("wrk did not stop within 20 s of SIGINT; killed (its logs may be incomplete)")
        self.proc.kill()
        hit = self.proc.find(r"BENCHWRK (.*)")
        self.summary = dict(kv.split("=") for kv in hit[1].group(1).split()) if hit else {}
        self.summary = {k: int(v) for k, v in self.summary.items()}
        if not hit:
            note("wrk printed no summary:\n" + self.proc.text()[-1000:])
        return self.summary

    def records(self):
        """Sorted list of (start_us, latency_us or -1, status)."""
        out = []
        for name in sorted(os.listdir(self.logdir)):
            if not name.startswith("wrk."):
                continue
            with open(os.path.join(self.logdir, name)) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3:
                        out.append((int(parts[0]), int(parts[1]), int(parts[2])))
        out.sort()
        return out


def classify(records, windows, exclude, t_begin_us, t_end_us):
    """Split records into steady and per-window lists.

    windows: list of (start_us, end_us). exclude: list of (start_us, end_us)
    ignored entirely. A request belongs to the window its start falls in."""
    steady = []
    per = [[] for _ in windows]
    for rec in records:
        t = rec[0]
        if t < t_begin_us or t > t_end_us:
            continue
        if any(a <= t < b for a, b in exclude):
            continue
        for i, (a, b) in enumerate(windows):
            if a <= t < b:
                per[i].append(rec)
                break
        else:
            steady.append(rec)
    return steady, per


def is_ok(rec):
    return rec[1] >= 0 and 200 <= rec[2] < 300


def max_gap_us(recs, start_us, end_us):
    """Longest time within [start, end] with no successful response completing."""
    done = sorted(r[0] + r[1] for r in recs if is_ok(r))
    return max_gap_sorted(done, start_us, end_us)


def max_gap_sorted(done, start_us, end_us):
    """max_gap_us on a sorted list of completion times."""
    lo, hi = bisect.bisect_left(done, start_us), bisect.bisect_right(done, end_us)
    points = [start_us] + done[lo:hi] + [end_us]
    return max(b - a for a, b in zip(points, points[1:])) if len(points) > 1 else 0


# --------------------------------------------------------------------------
# part 1: reload under load

def run_reload_scenario(cls, base):
    port = free_port()
    sdir = os.path.join(base, cls.name)
    os.makedirs(sdir, exist_ok=True)
    current = make_releases(sdir)
    server = cls(sdir, current, port)
    load = None
    result = {"name": cls.name, "label": cls.label, "reloads": RELOADS}
    try:
        server.start()
        if not wait_serving(port):
            raise RuntimeError("not serving on port %d" % port)
        max_seconds = min(7200, 30 + RELOADS * 40)
        load = Load(port, os.path.join(sdir, "wrk"), cls.label, max_seconds)
        t_begin = now() + 1.0          # ignore wrk's first second (connections opening)
        time.sleep(GAP + 1.0)
        windows, durations, swaps, failures = [], [], [], []
        newcode, newcode_missed = [], 0
        for i in range(RELOADS):
            if load.proc.exited():
                note("%s: wrk ended early (reload %d)" % (cls.label, i + 1))
                break
            t0 = now()
            watcher = None
            if isinstance(server, HupwatchServer):
                old_gen = server.current_gen
            token = server.trigger()
            if isinstance(server, HupwatchServer):
                watcher = NewCodeWatcher(server.port, old_gen, t0)
            res = wait_until(lambda: server.settled(token), 90)
            t1 = now()
            if watcher:
                seen = watcher.stop()
                if seen is not None:
                    newcode.append(seen)
                else:
                    newcode_missed += 1
            if res is None:
                failures.append("reload %d did not settle within 90 s" % (i + 1))
                windows.append((t0, t1 + GRACE))
                note("%s: reload %d did not settle within 90 s" % (cls.label, i + 1))
                break
            ok, why = res
            if not ok:
                failures.append("reload %d: %s" % (i + 1, why))
                note("%s: reload %d failed: %s" % (cls.label, i + 1, why))
            windows.append((t0, t1 + GRACE))
            durations.append(t1 - t0)
            if isinstance(server, HupwatchServer):
                ts = server.swap_time(token)
                if ts:
                    swaps.append(ts - t0)
            if not server.alive():
                note("%s: server gone after reload %d" % (cls.label, i + 1))
                break
            time.sleep(GAP)
        t_end = now()
        time.sleep(0.5)
        summary = load.stop()
        recs = load.records()
        result.update(analyse_reloads(recs, windows, t_begin, t_end, summary))
        result["done_reloads"] = len(windows)
        result["reload_failures"] = failures
        result["settle_median_s"] = statistics.median(durations) if durations else None
        result["swap_median_s"] = statistics.median(swaps) if swaps else None
        result["newcode_median_s"] = statistics.median(newcode) if newcode else None
        result["newcode_max_s"] = max(newcode) if newcode else None
        result["newcode_missed"] = newcode_missed
        result["wrk"] = summary
    finally:
        if load and not load.proc.exited():
            load.stop()
        server.stop()
    if getattr(server, "cpu_ms", None) is not None:
        result["hupwatch_cpu"] = "hupwatch's own CPU time over the whole run %.1f ms, %d context switches" % (
            server.cpu_ms, server.ctxt)
    return result


def analyse_reloads(recs, windows, t_begin, t_end, summary):
    us = lambda s: int(s * 1e6)
    wins = [(us(a - 0.2), us(b)) for a, b in windows]     # requests sent just before the trigger too
    steady, per = classify(recs, wins, [], us(t_begin), us(t_end))
    steady_ok = [r[1] for r in steady if is_ok(r)]
    reload_ok = [r[1] for p in per for r in p if is_ok(r)]
    fails_per = [sum(1 for r in p if not is_ok(r)) for p in per]
    gaps = [max_gap_us(p, a, b) for p, (a, b) in zip(per, wins)]
    # The same measure over the steady periods between reloads: the control.
    done = sorted(r[0] + r[1] for r in recs if is_ok(r))
    bounds = [us(t_begin)] + [x for w in wins for x in w] + [us(t_end)]
    steady_gaps = [max_gap_sorted(done, a, b) for a, b in zip(bounds[::2], bounds[1::2]) if b > a]
    span = max(1e-9, t_end - t_begin)
    n = max(1, len(windows))
    wrk_errors = sum(summary.get(k, 0) for k in ("connect", "read", "write", "timeout")) + \
        summary.get("non2xx", 0)
    return {
        "requests_ok": sum(1 for r in recs if is_ok(r)),
        "responses_logged": sum(1 for r in recs if r[1] >= 0),
        "rps": sum(1 for r in recs if is_ok(r) and us(t_begin) <= r[0] <= us(t_end)) / span,
        "steady_failed": sum(1 for r in steady if not is_ok(r)),
        "steady_n": len(steady),
        "reload_n": sum(len(p) for p in per),
        "failed_total": sum(fails_per),
        "failed_per_reload": sum(fails_per) / n,
        "failed_max": max(fails_per) if fails_per else 0,
        "reloads_with_failures": sum(1 for f in fails_per if f),
        "wrk_errors_per_reload": wrk_errors / n,
        "p50_steady_us": pct(steady_ok, 50),
        "p99_steady_us": pct(steady_ok, 99),
        "p50_reload_us": pct(reload_ok, 50),
        "p99_reload_us": pct(reload_ok, 99),
        "max_reload_us": max(reload_ok) if reload_ok else None,
        "per_reload_failed": fails_per,
        "per_reload_stall_us": gaps,
        "windows": windows,
        "steady_gap_median_us": statistics.median(steady_gaps) if steady_gaps else None,
        "steady_gap_max_us": max(steady_gaps) if steady_gaps else None,
        "gap_median_us": statistics.median(gaps) if gaps else None,
        "gap_max_us": max(gaps) if gaps else None,
    }


# --------------------------------------------------------------------------
# part 2: a broken release

class BrokenVariant:
    def __init__(self, name, label, kind, preload=False):
        self.name, self.label, self.kind, self.preload = name, label, kind, preload


BROKEN_VARIANTS = [
    BrokenVariant("broken-hupwatch-preload",
                  "hupwatch --listen --notify, gunicorn --preload; `hupwatch --reload`", "hupwatch", True),
    BrokenVariant("broken-hupwatch",
                  "hupwatch --listen --notify, gunicorn without --preload; `hupwatch --reload`", "hupwatch"),
    BrokenVariant("broken-gunicorn-hup", "gunicorn's own SIGHUP", "gunicorn"),
]


def broken_start(v, sdir, current, port):
    if v.kind == "hupwatch":
        status = os.path.join(sdir, "hupwatch.status")
        argv = [HUPWATCH, "--listen", "127.0.0.1:%d" % port, "--notify", "-S", status, "--"] + \
            gunicorn_argv(current, preload=v.preload)
    else:
        argv = gunicorn_argv(current, ["--bind", "127.0.0.1:%d" % port])
    proc = Proc(argv, "(e) " + v.label, env=child_env(current), cwd=current)
    if not wait_serving(port, 60):
        raise RuntimeError("%s: not serving:\n%s" % (v.name, proc.text()[-2000:]))
    return proc


def run_broken_variant(v, base):
    port = free_port()
    sdir = os.path.join(base, v.name)
    os.makedirs(sdir, exist_ok=True)
    current = make_releases(sdir)
    status = os.path.join(sdir, "hupwatch.status")
    part = "(e) " + v.label
    proc = broken_start(v, sdir, current, port)
    load = Load(port, os.path.join(sdir, "wrk"), part, 60 + BROKEN_REPS * (BROKEN_WINDOW + 90))
    reps = []
    exclude = []
    t_begin = now() + 1.0
    try:
        time.sleep(GAP + 1.0)
        for i in range(BROKEN_REPS):
            rep = {}
            point(current, "broken")
            mark = proc.mark()
            t0 = now()
            if v.kind == "hupwatch":
                cmd = [HUPWATCH, "--reload", "-S", status, "-t", "60"]
                record(part, ["ln", "-sfn", "releases/broken", "current"], "   # (atomically: symlink + rename)")
                record(part, cmd)
                try:
                    r = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
                    rep["tool"] = "`hupwatch --reload` exit %d" % r.returncode
                    rep["tool_out"] = (r.stdout + r.stderr).strip()
                except subprocess.TimeoutExpired:
                    rep["tool"] = "`hupwatch --reload` did not return within 90 s"
                    rep["tool_out"] = ""
            else:
                record(part, ["ln", "-sfn", "releases/broken", "current"], "   # (atomically: symlink + rename)")
                record(part, ["kill", "-HUP", "GUNICORN_PID"])
                os.kill(proc.pid, signal.SIGHUP)
                rep["tool"] = "`kill -HUP` (no outcome reported)"
                rep["tool_out"] = ""
            left = t0 + BROKEN_WINDOW - now()
            if left > 0:
                time.sleep(left)
            t1 = now()
            rep["window"] = (t0, t1)
            st, body = http_get(port, 2.0)
            rep["after"] = ("%s %s" % (st, body)) if st else "no answer (%s)" % body
            rep["serving"] = st == 200
            rep["main_alive"] = not proc.exited()
            rep["main_status"] = proc.popen.returncode
            rep["log"] = " | ".join(m.group(1) for _, m in proc.find_all(
                r"(hupwatch\[\d+\]: (?:error|warning): .*|Reason: .*|Shutting down: Master)", mark))[:400]
            # recovery: back to the good release, restart the server if it died
            point(current, "good")
            if proc.exited() or not rep["serving"]:
                proc.kill()
                proc = broken_start(v, sdir, current, port)
            t2 = now()
            exclude.append((t1, t2 + 1.0))
            reps.append(rep)
            time.sleep(GAP)
        t_end = now()
    finally:
        summary = load.stop()
        proc.kill()
    recs = load.records()
    us = lambda s: int(s * 1e6)
    wins = [(us(r["window"][0]), us(r["window"][1])) for r in reps]
    steady, per = classify(recs, wins, [(us(a), us(b)) for a, b in exclude], us(t_begin), us(t_end))
    for rep, p, (a, b) in zip(reps, per, wins):
        rep["failed"] = sum(1 for r in p if not is_ok(r))
        rep["ok"] = sum(1 for r in p if is_ok(r))
        done = [r[0] + r[1] for r in p if is_ok(r)]
        rep["last_ok_s"] = (max(done) - a) / 1e6 if done else None
        rep["gap_us"] = max_gap_us(p, a, b)
    return {"name": v.name, "label": v.label, "reps": reps, "wrk": summary,
            "steady_failed": sum(1 for r in steady if not is_ok(r))}


# --------------------------------------------------------------------------
# part 2b: the app crashes under load (issue 11): hupwatch --respawn against a supervisord restart

SUPERVISORD = shutil.which("supervisord")
CRASHES = env_num("BENCH_CRASHES", 5 if QUICK else 20, int)
CRASH_EVERY = env_num("BENCH_CRASH_EVERY", 3.0)   # at least this long from one kill to the next
EXAMPLE_SUPERVISORD = os.path.join(ROOT, "examples", "supervisord.conf")


class CrashVariant:
    def __init__(self, name, label, respawn):
        self.name, self.label, self.respawn = name, label, respawn


CRASH_VARIANTS = [
    CrashVariant("crash-respawn", "(g) supervisord > hupwatch --respawn > gunicorn --preload", True),
    CrashVariant("crash-supervisord", "(g) supervisord > hupwatch (no --respawn) > gunicorn --preload; "
                 "supervisord restarts it", False),
]


def supervisord_conf(sdir, port, respawn):
    """examples/supervisord.conf itself (as test/test_supervisord.py runs it), paths and port
    substituted, user = whoever runs the benchmark; with `respawn`, --respawn added to hupwatch."""
    with open(EXAMPLE_SUPERVISORD) as f:
        program = f.read()
    program = program[program.index("[program:app]"):]
    subs = [("/usr/local/bin/hupwatch", HUPWATCH), ("127.0.0.1:8000", "127.0.0.1:%d" % port),
            ("/srv/app", sdir), ("/var/log/app", os.path.join(sdir, "log")),
            ("\nuser=app\n", "\nuser=%s\n" % pwd_name())]
    if respawn:
        subs.append((" --listen ", " --respawn --listen "))
    for old, new in subs:
        if old not in program:
            raise RuntimeError("examples/supervisord.conf: %r not found" % old)
        program = program.replace(old, new)
    for d in ("shared", "log"):
        os.makedirs(os.path.join(sdir, d), exist_ok=True)
    sock = os.path.join(sdir, "supervisor.sock")
    conf = os.path.join(sdir, "supervisord.conf")
    with open(conf, "w") as f:
        f.write("[unix_http_server]\nfile=%s\nchmod=0700\n\n" % sock)
        f.write("[supervisord]\nnodaemon=true\nlogfile=%s\npidfile=%s\nchildlogdir=%s\nloglevel=info\n\n" % (
            os.path.join(sdir, "supervisord.log"), os.path.join(sdir, "supervisord.pid"), sdir))
        f.write("[rpcinterface:supervisor]\n"
                "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n")
        f.write("[supervisorctl]\nserverurl=unix://%s\n\n" % sock)
        f.write(program)
    cmd = re.search(r"^command=(.*)$", program, re.M).group(1)
    return conf, cmd


def pwd_name():
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


def read_file(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def read_pid(path):
    try:
        return int(read_file(path).split()[0])
    except (IndexError, ValueError):
        return None


class Outage:
    """After a kill: connect + GET / as fast as it answers (10 ms apart), until a 200. Each attempt is
    classified: refused (ECONNREFUSED at connect), failed after connecting (reset, closed without an
    answer, time-out), or answered. The time to the first 200 is "kill to serving again"."""

    def __init__(self, port, t0, limit=60.0):
        self.port, self.t0, self.limit = port, t0, limit
        self.refused = self.lost = 0
        self.serving = None

    def run(self):
        while now() - self.t0 < self.limit:
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=1.0)
            except ConnectionRefusedError:
                self.refused += 1
                time.sleep(0.01)
                continue
            except OSError:
                self.lost += 1
                time.sleep(0.01)
                continue
            try:
                data = exchange(s, 10.0)
            except OSError:
                data = b""
            if re.match(rb"HTTP/1\.[01] 200", data):
                self.serving = now() - self.t0
                return self
            self.lost += 1
            time.sleep(0.01)
        return self


def run_crash_variant(v, base):
    if not SUPERVISORD:
        raise RuntimeError("supervisord is not installed (apt-get install supervisor)")
    port = free_port()
    sdir = os.path.join(base, v.name)
    os.makedirs(sdir, exist_ok=True)
    make_releases(sdir)
    conf, cmd = supervisord_conf(sdir, port, v.respawn)
    part = v.label
    record(part, ["supervisord", "-n", "-c", "supervisord.conf"], "   # [program:app] of examples/supervisord.conf, "
           "command=" + cmd.replace(sdir, "$SDIR"))
    sup = Proc([SUPERVISORD, "-n", "-c", conf], part, env=child_env(sdir), cwd=sdir, show=False)
    sup_log = os.path.join(sdir, "supervisord.log")
    pidfile = os.path.join(sdir, "shared", "hupwatch.pid")
    running = lambda: read_file(sup_log).count("success: app entered RUNNING state")
    load = None
    reps = []
    result = {"name": v.name, "label": v.label, "crashes": CRASHES}
    try:
        if not wait_serving(port, 60) or not wait_until(lambda: running() >= 1, 30):
            raise RuntimeError("not serving under supervisord:\n" + read_file(sup_log)[-1500:] +
                               read_file(os.path.join(sdir, "log", "hupwatch.log"))[-1500:])
        load = Load(port, os.path.join(sdir, "wrk"), part, 60 + CRASHES * (CRASH_EVERY + 70))
        t_begin = now() + 1.0
        time.sleep(GAP + 1.0)
        record(part, ["kill", "-KILL", "--", "-GENERATION_PID"],
               "   # the app's whole process group (gunicorn master and workers); %d times, "
               "at least %g s apart, each once it serves again" % (CRASHES, CRASH_EVERY))
        last_kill = 0.0
        for i in range(CRASHES):
            if load.proc.exited():
                note("%s: wrk ended early (crash %d)" % (v.label, i + 1))
                break
            hw = read_pid(pidfile)
            gens = children_of(hw) if hw else []
            if len(gens) != 1:
                note("%s: crash %d: hupwatch %s has generations %s; stopped" % (v.label, i + 1, hw, gens))
                break
            gen = gens[0]
            n_running = running()
            left = last_kill + CRASH_EVERY - now()
            if left > 0:
                time.sleep(left)
            t0 = now()
            try:
                if os.getpgid(gen) == gen:
                    os.killpg(gen, signal.SIGKILL)
                else:
                    note("%s: generation %d is not a process group leader; killed alone" % (v.label, gen))
                    os.kill(gen, signal.SIGKILL)
            except ProcessLookupError:
                note("%s: crash %d: generation %d already gone" % (v.label, i + 1, gen))
            last_kill = t0
            out = Outage(port, t0).run()
            t1 = now()
            rep = {"window": (t0, t1), "refused": out.refused, "probe_lost": out.lost,
                   "serving_s": out.serving, "hupwatch_pid": hw}
            if out.serving is None:
                note("%s: crash %d: not serving again within 60 s" % (v.label, i + 1))
                reps.append(rep)
                break
            if not v.respawn:
                # supervisord counts an exit within startsecs as a failed start: wait for RUNNING first
                if not wait_until(lambda: running() > n_running, 30):
                    note("%s: crash %d: supervisord did not report RUNNING again" % (v.label, i + 1))
            rep["new_hupwatch_pid"] = read_pid(pidfile)
            reps.append(rep)
            time.sleep(1.0)
        t_end = now()
        time.sleep(0.5)
        summary = load.stop()
    finally:
        if load and not load.proc.exited():
            load.stop()
        hw = read_pid(pidfile)
        sup.kill()
        if hw and alive(hw):
            note("%s: hupwatch %d outlived supervisord's session; killed" % (v.label, hw))
            os.kill(hw, signal.SIGKILL)
        hlog = os.path.join(sdir, "log", "hupwatch.log")
        result["log_tail"] = read_file(hlog)[-3000:]
        result["respawn_lines"] = len(re.findall(r"respawning in", read_file(hlog)))
        result["crash_loop"] = "crash loop" in read_file(hlog)
        result["sup_running"] = running()
        result["sup_exits"] = len(re.findall(r"exited: app \(", read_file(sup_log)))
    recs = load.records()
    us = lambda s: int(s * 1e6)
    wins = [(us(r["window"][0] - 0.2), us(r["window"][1] + GRACE)) for r in reps]
    steady, per = classify(recs, wins, [], us(t_begin), us(t_end))
    for rep, p, (a, b) in zip(reps, per, wins):
        rep["failed"] = sum(1 for r in p if not is_ok(r))
        rep["gap_us"] = max_gap_us(p, a, b)
    result.update({"reps": reps, "wrk": summary, "steady_failed": sum(1 for r in steady if not is_ok(r)),
                   "responses_logged": sum(1 for r in recs if r[1] >= 0)})
    return result


# --------------------------------------------------------------------------
# part 2c: what readiness costs hupwatch (issue 9): CPU time per reload, no load

PROBE_RELOADS = env_num("BENCH_PROBE_RELOADS", 5 if QUICK else 20, int)
CURL = shutil.which("curl") or "/usr/bin/curl"


class ProbeVariant:
    def __init__(self, name, label, args, preload):
        self.name, self.label, self.args, self.preload = name, label, args, preload


PROBE_VARIANTS = [
    ProbeVariant("cost-notify", "--notify, gunicorn --preload", ["--notify"], True),
    ProbeVariant("cost-ready-cmd", "--probe-socket --ready-cmd 'curl ... $HUPWATCH_PROBE_ADDRESS', gunicorn "
                 "without --preload",
                 ["--probe-socket", "-c", CURL + ' -sf -o /dev/null "http://$HUPWATCH_PROBE_ADDRESS/"'], False),
    ProbeVariant("cost-ready-http", "--ready-http /, gunicorn without --preload", ["--ready-http", "/"], False),
]

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """(utime + stime in ms from /proc/PID/stat, schedstat ns of the main thread)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])          # utime, stime (fields 14, 15)
    return ticks * 1000.0 / CLK_TCK, cpu_ns(pid)


def run_probe_cost(v, base):
    part = "(h) readiness cost: " + v.label
    sdir = os.path.join(base, v.name)
    os.makedirs(sdir, exist_ok=True)
    current = make_releases(sdir)
    argv = [HUPWATCH, "--listen", "127.0.0.1:0"] + v.args + ["--"] + gunicorn_argv(current, preload=v.preload)
    proc = Proc(argv, part, env=child_env(current), cwd=current)
    record(part, ["kill", "-HUP", "HUPWATCH_PID"], "   # then wait until the new generation is ready and the "
           "old one has exited, 0.5 s pause; %d times; utime+stime of hupwatch from /proc/PID/stat before/after"
           % PROBE_RELOADS)
    try:
        hit = proc.wait_line(r"gen (\d+) pid (\d+) ready after", timeout=60)
        if not hit:
            raise RuntimeError("gen 1 not ready:\n" + proc.text()[-2000:])
        gen = int(hit[1].group(1))
        time.sleep(1.0)
        cpu0, ns0 = proc_cpu(proc.pid)
        ready_s, done, fails = [], 0, 0
        for i in range(PROBE_RELOADS):
            mark = proc.mark()
            t0 = now()
            os.kill(proc.pid, signal.SIGHUP)
            gone = proc.wait_line(r"gen %d pid \d+ (exited|killed)" % gen, mark, timeout=90)
            ready = proc.find(r"gen (\d+) pid \d+ ready after ([0-9.]+)s", mark)
            if not gone or not ready:
                fails += 1
                note("%s: reload %d did not complete: %s" % (v.label, i + 1, proc.text()[-300:]))
                break
            ready_s.append(ready[0] - t0)
            gen = int(ready[1].group(1))
            done += 1
            time.sleep(0.5)
        cpu1, ns1 = proc_cpu(proc.pid)
        tries = len(proc.find_all(r"GET /: "))
        return {"name": v.name, "label": v.label, "reloads": done, "fails": fails,
                "cpu_ms": cpu1 - cpu0, "sched_ms": (ns1 - ns0) / 1e6,
                "ready_median_s": statistics.median(ready_s) if ready_s else None,
                "http_lines": tries}
    finally:
        proc.kill()


# --------------------------------------------------------------------------
# part 3: time to swap

def run_swap(base):
    part = "time to swap"
    sdir = os.path.join(base, "swap")
    os.makedirs(sdir, exist_ok=True)
    logf = os.path.join(sdir, "swapchild.log")
    argv = [HUPWATCH, "--listen", "127.0.0.1:0", "--notify", "--", SWAPCHILD, logf]
    proc = Proc(argv, part)
    rows, misses = [], 0
    try:
        if not proc.wait_line(r"gen 1 pid \d+ ready after", timeout=10):
            raise RuntimeError("swap: gen 1 not ready:\n" + proc.text())
        record(part, ["kill", "-HUP", "HUPWATCH_PID"], "   # then wait for the old generation's exit; %d times" % SWAPS)
        gen = 1
        for i in range(SWAPS):
            mark = proc.mark()
            t0 = time.monotonic_ns()
            os.kill(proc.pid, signal.SIGHUP)
            gone = proc.wait_line(r"gen %d pid (\d+) (exited|killed)" % gen, mark, timeout=10)
            if not gone:
                misses += 1
                note("swap %d: old generation %d did not exit within 10 s" % (i + 1, gen))
                break
            stopping = proc.find(r"gen %d pid (\d+) stopping" % gen, mark)
            ready = proc.find(r"gen (\d+) pid (\d+) ready after", mark)
            old_pid = int(gone[1].group(1))
            new_gen, new_pid = int(ready[1].group(1)), int(ready[1].group(2))
            rows.append({"t0": t0, "old_pid": old_pid, "new_pid": new_pid,
                         "stopping_line": int(stopping[0] * 1e9) if stopping else None,
                         "ready_line": int(ready[0] * 1e9)})
            gen = new_gen
            time.sleep(0.02)
    finally:
        proc.kill()
    starts, terms = {}, {}
    with open(logf) as f:
        for line in f:
            p = line.split()
            if p[0] == "start":
                starts[int(p[1])] = (int(p[3]), int(p[4]))
            elif p[0] == "term":
                terms[int(p[1])] = int(p[2])
    spawn, app, notify_stop, total, added, logged = [], [], [], [], [], []
    for r in rows:
        if r["new_pid"] not in starts or r["old_pid"] not in terms:
            misses += 1
            continue
        t_main, t_ready = starts[r["new_pid"]]
        t_term = terms[r["old_pid"]]
        spawn.append(t_main - r["t0"])
        app.append(t_ready - t_main)
        notify_stop.append(t_term - t_ready)
        total.append(t_term - r["t0"])
        added.append(t_term - r["t0"] - (t_ready - t_main))
        if r["stopping_line"]:
            logged.append(r["stopping_line"] - r["t0"])
    return {"n": len(total), "misses": misses, "spawn": spawn, "app": app,
            "notify_stop": notify_stop, "total": total, "added": added, "logged": logged}


# --------------------------------------------------------------------------
# part 4: cost of hupwatch itself

def read_kv(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k.strip()] = v.strip()
    except OSError:
        pass
    return out


def kb(v):
    return int(v.split()[0]) if v else None


def cpu_ns(pid):
    """CPU time of pid's main thread in ns (/proc/PID/schedstat, ns resolution)."""
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0])


def snapshot(pid):
    st = read_kv("/proc/%d/status" % pid)
    return {"vol": int(st.get("voluntary_ctxt_switches", 0)),
            "nonvol": int(st.get("nonvoluntary_ctxt_switches", 0)),
            "cpu_ns": cpu_ns(pid)}


def memory(pid):
    sm = read_kv("/proc/%d/smaps_rollup" % pid)
    return {"rss": kb(sm.get("Rss")), "pss": kb(sm.get("Pss")),
            "private": (kb(sm.get("Private_Clean")) or 0) + (kb(sm.get("Private_Dirty")) or 0)}


def run_idle(base):
    part = "cost: idle"
    sdir = os.path.join(base, "idle")
    os.makedirs(sdir, exist_ok=True)
    logf = os.path.join(sdir, "swapchild.log")
    subjects = []
    hw = Proc([HUPWATCH, "--listen", "127.0.0.1:0", "--notify", "--", SWAPCHILD, logf], part)
    subjects.append(("hupwatch --listen --notify (after 1 reload)", hw))
    try:
        if not hw.wait_line(r"gen 1 pid \d+ ready", timeout=10):
            raise RuntimeError("idle: hupwatch gen 1 not ready:\n" + hw.text())
        mark = hw.mark()
        os.kill(hw.pid, signal.SIGHUP)
        if not hw.wait_line(r"gen 1 pid \d+ (exited|killed)", mark, timeout=10):
            note("idle: the reload before the idle measurement did not complete")
        if TINI:
            ti = Proc([TINI, "-s", "--", "sleep", str(int(IDLE + 120))], part)
            subjects.append(("tini -s (reference)", ti))
        py = Proc([sys.executable, "-c", "import time; time.sleep(%d)" % int(IDLE + 120)], part)
        subjects.append(("python3 -c 'time.sleep()' (memory floor of any Python wrapper)", py))
        time.sleep(1.0)
        before = {name: snapshot(p.pid) for name, p in subjects}
        mem = {name: memory(p.pid) for name, p in subjects}
        perfs = {}
        if PERF:
            for name, p in subjects:
                out = os.path.join(sdir, "perf.%d" % p.pid)
                argv = [PERF, "stat", "-x", ",", "-o", out, "-e", "task-clock,context-switches,cpu-migrations,page-faults",
                        "-p", str(p.pid), "--", "sleep", str(IDLE)]
                perfs[name] = (Proc(argv, part), out)
        t0 = now()
        time.sleep(IDLE)
        elapsed = now() - t0
        after = {name: snapshot(p.pid) for name, p in subjects}
        for name, (pp, out) in perfs.items():
            pp.wait_exit(30)
        rows = []
        for name, p in subjects:
            b, a = before[name], after[name]
            row = {"name": name, "seconds": elapsed, **mem[name],
                   "wakeups": (a["vol"] - b["vol"]) + (a["nonvol"] - b["nonvol"]),
                   "cpu_ms": (a["cpu_ns"] - b["cpu_ns"]) / 1e6}
            if name in perfs:
                row["perf"] = parse_perf(perfs[name][1])
            rows.append(row)
        return rows
    finally:
        for _, p in subjects:
            p.kill()


def perf_value(pf, key, unit):
    v = pf.get(key)
    if v is None:
        return "-"
    if v.startswith("<not counted>"):
        return "0 (never scheduled)"
    return v + unit


def parse_perf(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) >= 3 and parts[2]:
                    out[parts[2]] = parts[0]
    except OSError:
        pass
    return out


def run_size():
    rows = []
    stripped = os.path.join(WORK, "hupwatch.stripped")
    try:
        subprocess.run(["strip", "-o", stripped, HUPWATCH], check=True, timeout=30)
        record("cost: size", ["strip", "-o", "hupwatch.stripped", "hupwatch"])
        rows.append(("hupwatch (as built)", os.path.getsize(HUPWATCH)))
        rows.append(("hupwatch (stripped)", os.path.getsize(stripped)))
    except (OSError, subprocess.SubprocessError) as e:
        note("strip failed: %s" % e)
        rows.append(("hupwatch (as built)", os.path.getsize(HUPWATCH)))
    for path in ("/usr/bin/tini", "/usr/bin/tini-static"):
        if os.path.exists(path):
            rows.append((path + " (Debian, stripped)", os.path.getsize(path)))
    text = ""
    try:
        text = subprocess.run(["size", stripped if os.path.exists(stripped) else HUPWATCH],
                              capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    libs = ""
    try:
        libs = subprocess.run(["ldd", HUPWATCH], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return rows, text, libs


def run_exec():
    part = "cost: exec"
    variants = [("direct", [STAMP]),
                ("env", ["/usr/bin/env", STAMP]),
                ("hupwatch", [HUPWATCH, "-q", "--", STAMP]),
                ("hupwatch --listen", [HUPWATCH, "-q", "--listen", "127.0.0.1:0", "--", STAMP])]
    if TINI:
        variants.insert(2, ("tini -s", [TINI, "-s", "--", STAMP]))
    argv = [EXECLAT, str(EXEC_RUNS)]
    for i, (label, cmd) in enumerate(variants):
        if i:
            argv.append("--next")
        argv += [label.replace(" ", "_")] + cmd
    # In a session of its own (Proc), so that a wrapper that hangs is killed too.
    limit = 60 + EXEC_RUNS * len(variants) * 0.05
    p = Proc(argv, part)
    if p.wait_exit(limit) is None:
        note("execlat did not finish within %.0f s; killed" % limit)
    p.kill()
    data = {}
    for _, line in p.lines:
        m = re.match(r"(\S+) (-?\d+) (\d+) (\d+)$", line)
        if m:
            data.setdefault(m.group(1).replace("_", " "), []).append(
                (int(m.group(2)), int(m.group(3)), int(m.group(4))))
    rows = []
    for label, _ in variants:
        vals = data.get(label, [])
        ex = [v[0] for v in vals if v[0] >= 0]
        tot = [v[1] for v in vals]
        codes = sorted(set(v[2] for v in vals))
        rows.append({"label": label, "n": len(vals), "exec_med": statistics.median(ex) if ex else None,
                     "exec_p99": pct(ex, 99), "total_med": statistics.median(tot) if tot else None,
                     "codes": codes, "missing": sum(1 for v in vals if v[0] < 0)})
    hf = None
    if HYPERFINE:
        out = os.path.join(WORK, "hyperfine.json")
        cmds = ["%s -q -- /bin/true" % HUPWATCH, "/usr/bin/env /bin/true", "/bin/true"]
        if TINI:
            cmds.insert(1, "%s -s -- /bin/true" % TINI)
        hargv = [HYPERFINE, "-N", "-i", "--warmup", "20", "--runs", str(max(10, EXEC_RUNS // 2)),
                 "--export-json", out] + cmds
        hp = Proc(hargv, part)
        if hp.wait_exit(60 + EXEC_RUNS * 0.05 * len(cmds)) is None:
            note("hyperfine did not finish in time; killed")
        hp.kill()
        try:
            with open(out) as f:
                hf = [(x["command"], x["mean"], x["stddev"], x["median"], x.get("exit_codes"))
                      for x in json.load(f)["results"]]
        except (OSError, ValueError, KeyError) as e:
            note("hyperfine failed: %s" % e)
    return rows, hf


# --------------------------------------------------------------------------
# report

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except subprocess.SubprocessError:
        return ""


def machine():
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-").strip()
    mem = sh("grep MemTotal /proc/meminfo | awk '{printf \"%.1f GiB\", $2/1048576}'")
    head = sh("cd %s && git rev-parse --short HEAD" % shlex.quote(ROOT))
    dirty = sh("cd %s && git status --porcelain -- hupwatch.c" % shlex.quote(ROOT))
    src = os.path.join(ROOT, "hupwatch.c")
    return [
        ("date", sh("date -u '+%Y-%m-%d %H:%M:%S UTC'")),
        ("uname -a", sh("uname -a")),
        ("nproc", sh("nproc")),
        ("CPU", cpu),
        ("memory", mem),
        ("hupwatch", "%s (repo HEAD %s; %s; at the end: hupwatch.c sha256 %s%s)" % (
            sh(shlex.quote(HUPWATCH) + " -V 2>&1"), head, os.environ.get("BENCH_SOURCE", "source unknown"),
            sh("sha256sum %s | cut -c1-12" % shlex.quote(src)) if os.path.exists(src) else "?",
            ", uncommitted changes" if dirty else "")),
        ("gunicorn", sh("dpkg-query -W -f='${Version}' gunicorn 2>/dev/null") + " (" + sh(GUNICORN + " --version") + ")"),
        ("wrk", sh("dpkg-query -W -f='${Version}' wrk 2>/dev/null")),
        ("tini", sh("tini --version 2>/dev/null") or "not installed"),
        ("hyperfine", sh("hyperfine --version 2>/dev/null") or "not installed"),
        ("gcc", sh("gcc --version | head -1")),
        ("python3 (driver)", platform.python_version() + " " + sys.executable),
        ("python3 (gunicorn)", sh("/usr/bin/python3 --version")),
        ("kernel knobs", "somaxconn=%s" % sh("cat /proc/sys/net/core/somaxconn")),
        ("load average", "at start %s; at end %s (other work on the machine shares its 2 cores)" % (
            LOADAVG_START, sh("cut -d' ' -f1-3 /proc/loadavg"))),
        ("load", "wrk -t %d -c %d (one connection per thread), %d gunicorn sync workers" % (CONNS, CONNS, WORKERS)),
    ]


def report(results, started):
    L = []
    w = L.append
    w("## Machine and run\n")
    w("`./hupwatch` below is a copy of the tree's binary taken at the start (the measured one).\n")
    for k, v in machine():
        w("- %s: %s" % (k, v))
    w("- settings: BENCH_RELOADS=%d BENCH_GAP=%s BENCH_GRACE=%s BENCH_CONNECTIONS=%d BENCH_BROKEN=%d "
      "BENCH_BROKEN_WINDOW=%s BENCH_SWAPS=%d BENCH_IDLE=%s BENCH_EXEC_RUNS=%d%s" % (
          RELOADS, GAP, GRACE, CONNS, BROKEN_REPS, BROKEN_WINDOW, SWAPS, IDLE, EXEC_RUNS,
          " (BENCH_QUICK)" if QUICK else ""))
    w("- run time: %.0f s" % (now() - started))
    w("")
    if results.get("reload"):
        w("## Reload under load\n")
        w("| method | reloads | failed requests per reload (mean / max) | reloads with a failure | "
          "p99 steady | p99 during reloads | max during reloads | longest stall in a reload (median / max) | "
          "longest stall between reloads (median / max) | "
          "SIGHUP to settled (median) | SIGHUP to new code answering (median / max) | throughput (whole run) |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in results["reload"]:
            if "error" in r:
                w("| %s | error: %s |||||||||||" % (r["label"], r["error"].splitlines()[0][:120]))
                continue
            nc = "-"
            if r.get("newcode_median_s") is not None:
                nc = "%s / %s" % (fmt_s(r["newcode_median_s"]), fmt_s(r["newcode_max_s"]))
                if r.get("newcode_missed"):
                    nc += " (%d not seen)" % r["newcode_missed"]
            w("| %s | %d | %.2f / %d | %d | %s | %s | %s | %s / %s | %s / %s | %s | %s | %.0f req/s |" % (
                r["label"], r["done_reloads"], r["failed_per_reload"], r["failed_max"],
                r["reloads_with_failures"], fmt_ms(r["p99_steady_us"]), fmt_ms(r["p99_reload_us"]),
                fmt_ms(r["max_reload_us"]), fmt_ms(r["gap_median_us"], 0), fmt_ms(r["gap_max_us"], 0),
                fmt_ms(r["steady_gap_median_us"], 0), fmt_ms(r["steady_gap_max_us"], 0),
                fmt_s(r["settle_median_s"]), nc, r["rps"]))
        w("")
        w("Cross-checks per method: failures outside reload windows (steady state), wrk's own error "
          "counters (socket errors + non-2xx, per reload), requests classified steady / during reloads, "
          "SIGHUP to hupwatch's 'stopping' log line (median):\n")
        for r in results["reload"]:
            if "error" in r:
                continue
            wk = r["wrk"]
            w("- %s: steady failures %d; wrk errors/reload %.2f (connect %d, read %d, write %d, timeout %d, "
              "non-2xx %d); responses logged %d, wrk counted %d; requests %d steady / %d in windows; %s%s%s" % (
                  r["label"], r["steady_failed"], r["wrk_errors_per_reload"], wk.get("connect", 0),
                  wk.get("read", 0), wk.get("write", 0), wk.get("timeout", 0), wk.get("non2xx", 0),
                  r["responses_logged"], wk.get("requests", -1), r["steady_n"], r["reload_n"],
                  ("SIGHUP to 'stopping' %s" % fmt_s(r["swap_median_s"])) if r.get("swap_median_s") else "",
                  ("; reload failures: " + "; ".join(r["reload_failures"][:3])) if r["reload_failures"] else "",
                  ("; " + r["hupwatch_cpu"]) if r.get("hupwatch_cpu") else ""))
        w("")
    if results.get("broken"):
        w("## Broken release (app fails to import)\n")
        w("| method | deploy | deploy step says | failed requests in the %g s after it | longest stall | "
          "serving after? | answer after | log |" % BROKEN_WINDOW)
        w("|---|---|---|---|---|---|---|---|")
        for b in results["broken"]:
            if "error" in b:
                w("| %s | error: %s |||||||" % (b["label"], b["error"].splitlines()[0][:120]))
                continue
            for i, rep in enumerate(b["reps"]):
                w("| %s | %d | %s | %d | %s | %s | %s | %s |" % (
                    b["label"], i + 1, rep["tool"], rep["failed"], fmt_ms(rep["gap_us"], 0),
                    "yes" if rep["serving"] else "**no**", rep["after"].replace("|", "/")[:60],
                    rep["log"].replace("|", "/")[:200] or "-"))
        w("")
        for b in results["broken"]:
            for rep in b.get("reps", []):
                if rep.get("tool_out"):
                    w("- %s: deploy step printed: `%s`" % (b["label"], rep["tool_out"].replace("\n", " / ")[:300]))
                    break
        w("")
    if results.get("crash"):
        w("## App crash under load (whole process group SIGKILLed)\n")
        w("| method | crashes | refused connections, driver's probe client (total) | wrk failed requests per crash "
          "(mean / max) | of which wrk write errors / read errors (whole run) | kill to serving again (median / max) "
          "| longest stall (median / max) | failures outside the crash windows | hupwatch pid changed | log |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for c in results["crash"]:
            if "error" in c:
                w("| %s | error: %s |||||||||" % (c["label"], c["error"].splitlines()[0][:120]))
                continue
            reps = c["reps"]
            fl = [r.get("failed", 0) for r in reps]
            sv = [r["serving_s"] for r in reps if r.get("serving_s") is not None]
            gp = [r.get("gap_us", 0) for r in reps]
            changed = sum(1 for r in reps if r.get("new_hupwatch_pid") not in (None, r["hupwatch_pid"]))
            w("| %s | %d | %d | %.1f / %d | %d / %d | %s / %s | %s / %s | %d | %d of %d | %s |" % (
                c["label"], len(reps), sum(r["refused"] for r in reps),
                statistics.mean(fl) if fl else 0, max(fl) if fl else 0,
                c["wrk"].get("write", 0), c["wrk"].get("read", 0),
                fmt_s(statistics.median(sv)) if sv else "-", fmt_s(max(sv)) if sv else "-",
                fmt_ms(statistics.median(gp), 0) if gp else "-", fmt_ms(max(gp), 0) if gp else "-",
                c["steady_failed"], changed, len(reps),
                "%d respawns logged%s; supervisord: %d exits, %d times RUNNING" % (
                    c["respawn_lines"], ", crash loop" if c["crash_loop"] else "", c["sup_exits"], c["sup_running"])))
        w("")
        w("wrk's own counters over each whole run (connect / read / write / timeout errors, non-2xx), and the "
          "driver's probe attempts that connected but got no answer:\n")
        for c in results["crash"]:
            if "error" in c:
                continue
            wk = c["wrk"]
            w("- %s: connect %d, read %d, write %d, timeout %d, non-2xx %d; %d responses; probe: %d lost; "
              "per crash failed %s" % (
                  c["label"], wk.get("connect", 0), wk.get("read", 0), wk.get("write", 0), wk.get("timeout", 0),
                  wk.get("non2xx", 0), c["responses_logged"], sum(r["probe_lost"] for r in c["reps"]),
                  ",".join(str(r.get("failed", 0)) for r in c["reps"])))
        w("")
    if results.get("probecost"):
        w("## What readiness costs hupwatch (CPU time of the hupwatch process, no load)\n")
        w("| readiness | reloads | utime+stime (/proc/PID/stat) total / per reload | schedstat total / per reload "
          "| SIGHUP to ready (median) | HTTP status lines logged |")
        w("|---|---|---|---|---|---|")
        for c in results["probecost"]:
            if "error" in c:
                w("| %s | error: %s |||||" % (c["label"], c["error"].splitlines()[0][:120]))
                continue
            n = max(1, c["reloads"])
            w("| %s | %d | %.0f / %.1f ms | %.1f / %.2f ms | %s | %d |" % (
                c["label"], c["reloads"], c["cpu_ms"], c["cpu_ms"] / n, c["sched_ms"], c["sched_ms"] / n,
                fmt_s(c["ready_median_s"]), c["http_lines"]))
        w("")
        w("utime and stime count in clock ticks (%d per second). The ready command's own processes (sh, curl) "
          "are not in hupwatch's figure.\n" % CLK_TCK)
    s = results.get("swap")
    if s:
        w("## Time to swap (hupwatch --listen --notify, app sends READY=1 at once)\n")
        if s.get("error"):
            w("error: " + s["error"])
        elif s["n"]:
            w("%d swaps. Times in microseconds: median / p90 / p99 / max.\n" % s["n"])
            w("| interval | median | p90 | p99 | max |")
            w("|---|---|---|---|---|")
            for key, label in (("spawn", "SIGHUP sent -> new generation's main() (signal, fork, exec, loader)"),
                               ("app", "app's own time to READY=1 (main() -> READY=1 sent)"),
                               ("notify_stop", "READY=1 sent -> old generation receives SIGTERM"),
                               ("total", "SIGHUP sent -> old generation receives SIGTERM"),
                               ("added", "**hupwatch's added latency** (total minus app's own time)"),
                               ("logged", "SIGHUP sent -> 'stopping' log line read by the driver")):
                v = s[key]
                if v:
                    w("| %s | %.0f | %.0f | %.0f | %.0f |" % (
                        label, statistics.median(v) / 1e3, pct(v, 90) / 1e3, pct(v, 99) / 1e3, max(v) / 1e3))
            if s["misses"]:
                w("\n%d swaps could not be measured." % s["misses"])
        w("")
    c = results.get("idle")
    if c:
        w("## Cost of hupwatch itself\n")
        if isinstance(c, dict) and c.get("error"):
            w("idle: error: " + c["error"])
        else:
            w("Idle for %.0f s (child running, nothing happening):\n" % c[0]["seconds"])
            w("| process | PSS | private | RSS | CPU time (schedstat) | context switches (vol+invol) | perf task-clock | perf context-switches |")
            w("|---|---|---|---|---|---|---|---|")
            for r in c:
                pf = r.get("perf", {})
                w("| %s | %s KiB | %s KiB | %s KiB | %.3f ms | %d | %s | %s |" % (
                    r["name"], r["pss"], r["private"], r["rss"], r["cpu_ms"], r["wakeups"],
                    perf_value(pf, "task-clock", " ms"), perf_value(pf, "context-switches", "")))
            w("")
    if results.get("size"):
        rows, text, libs = results["size"]
        w("Binary size:\n")
        w("| file | bytes |")
        w("|---|---|")
        for name, n in rows:
            w("| %s | %d |" % (name, n))
        w("")
        if text:
            w("```\n$ size hupwatch.stripped\n%s\n$ ldd hupwatch\n%s\n```\n" % (text, libs))
    if results.get("exec"):
        rows, hf = results["exec"]
        w("Start-up: time from `execve` of the command to the child's `main()` (bench/stamp), and to the "
          "command's exit being reaped, %d runs each, interleaved (microseconds):\n" % EXEC_RUNS)
        w("| command | exec -> child's main(), median | p99 | exec -> exit reaped, median | exit status |")
        w("|---|---|---|---|---|")
        for r in rows:
            w("| %s | %s | %s | %s | %s |" % (
                r["label"], "%.0f" % (r["exec_med"] / 1e3) if r["exec_med"] is not None else "-",
                "%.0f" % (r["exec_p99"] / 1e3) if r["exec_p99"] is not None else "-",
                "%.0f" % (r["total_med"] / 1e3) if r["total_med"] is not None else "-",
                ",".join(map(str, r["codes"])) + (" (%d runs without the child's line)" % r["missing"] if r["missing"] else "")))
        w("")
        if hf:
            w("hyperfine (whole command, mean ± stddev):\n")
            w("| command | mean | stddev | median | exit codes |")
            w("|---|---|---|---|---|")
            for cmd, mean, sd, med, codes in hf:
                w("| `%s` | %.0f µs | %.0f µs | %.0f µs | %s |" % (
                    cmd.replace(WORK + "/hupwatch ", "./hupwatch ").replace(ROOT + "/", "./"), mean * 1e6, sd * 1e6, med * 1e6,
                    ",".join(map(str, sorted(set(codes or [])))) or "-"))
            w("")
    w("## Commands\n")
    w("```")
    last = None
    for part, line in COMMANDS:
        if part != last:
            w("# %s" % part)
            last = part
        w(line.replace(WORK + "/hupwatch ", "./hupwatch ").replace(WORK, "$WORK").replace(ROOT + "/", "./"))
    w("```\n")
    if NOTES:
        w("## Notes from this run\n")
        for n in NOTES:
            w("- " + n.replace("\n", " / ")[:600])
        w("")
    return "\n".join(L)


def want(part):
    return not PARTS or part in PARTS


def run_scenarios(kinds, runner, base, what):
    """Run each selected scenario; one that fails is reported as an error, not the end of the run."""
    results = []
    for kind in kinds:
        if SCENARIOS and kind.name not in SCENARIOS:
            continue
        log(what % kind.label)
        try:
            r = runner(kind, base)
        except Exception as e:
            note("%s: %s" % (kind.label, e))
            r = {"name": kind.name, "label": kind.label, "error": str(e)}
        results.append(r)
        log("  -> %s" % json.dumps({k: v for k, v in r.items() if k != "wrk"}, default=str)[:800])
    return results


def main():
    started = now()
    for path in (HUPWATCH, SWAPCHILD, STAMP, EXECLAT, WRK, GUNICORN):
        if not os.access(path, os.X_OK):
            sys.exit("bench: missing or not executable: %s" % path)
    results = {}
    base = os.path.join(WORK, "runs")
    os.makedirs(base, exist_ok=True)
    if want("reload"):
        results["reload"] = run_scenarios(SERVERS, run_reload_scenario, base,
                                          "reload under load: %%s, %d reloads" % RELOADS)
    if want("broken"):
        results["broken"] = run_scenarios(BROKEN_VARIANTS, run_broken_variant, base,
                                          "broken release: %%s, %d deploys" % BROKEN_REPS)
    if want("crash"):
        results["crash"] = run_scenarios(CRASH_VARIANTS, run_crash_variant, base,
                                         "app crash under load: %%s, %d crashes" % CRASHES)
    if want("probecost"):
        results["probecost"] = run_scenarios(PROBE_VARIANTS, run_probe_cost, base,
                                             "readiness cost: %%s, %d reloads" % PROBE_RELOADS)
    if want("swap"):
        log("time to swap: %d swaps" % SWAPS)
        try:
            results["swap"] = run_swap(base)
        except Exception as e:
            note("swap: %s" % e)
            results["swap"] = {"error": str(e)}
    if want("idle"):
        log("idle cost: %g s" % IDLE)
        try:
            results["idle"] = run_idle(base)
        except Exception as e:
            note("idle: %s" % e)
            results["idle"] = {"error": str(e)}
    if want("size"):
        results["size"] = run_size()
    if want("exec"):
        log("exec latency: %d runs per command" % EXEC_RUNS)
        try:
            results["exec"] = run_exec()
        except Exception as e:
            note("exec: %s" % e)
    text = report(results, started)
    with open(os.path.join(WORK, "results.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump(results, f, default=str, indent=1)
    print(text)


def on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        main()
    except KeyboardInterrupt as e:
        log("interrupted (%s); cleaning up" % e)
        sys.exit(130)
    finally:
        cleanup_all()
