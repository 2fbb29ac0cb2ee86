"""Integration-test harness for hupwatch (python3 stdlib only).

Every wait here is bounded and event-driven: a log line, a file, a process exit.
Nothing sleeps a fixed time to "let things settle".

    from harness import *
    with Hupwatch(["-w", "0.3"], [CHILD, "--report", rep.dir]) as hw:
        hw.wait_log(r"gen 1 pid (\\d+) ready")
        ...
    # leaving the block kills hupwatch and every process group it started

Environment: HUPWATCH overrides the binary under test, CHILD the test child; UPDATE_GOLDEN=1
makes assert_golden() rewrite the golden files (test/golden/) instead of comparing;
HUPWATCH_COVERAGE=1 (make coverage) lets a hupwatch still running at cleanup exit on SIGTERM.
"""

import difflib
import errno
import os
import re
import signal as _signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

__all__ = [
    "ROOT", "HUPWATCH", "CHILD", "wait_for", "Hupwatch", "Reports", "pid_alive",
    "zombies_under", "children_of", "http_get", "http_text", "Load", "send_notify", "free_port",
    "proc_state", "proc_pgid", "base_env", "signum", "GOLDEN_DIR", "assert_golden", "catches",
]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUPWATCH = os.environ.get("HUPWATCH", os.path.join(ROOT, "hupwatch"))
CHILD = os.environ.get("CHILD", os.path.join(ROOT, "test", "child"))
GOLDEN_DIR = os.path.join(ROOT, "test", "golden")
# Under `make coverage` a hupwatch still running at cleanup gets SIGTERM and a moment to exit
# before SIGKILL: gcov's counters are written at exit, and a killed process writes none.
COVERAGE = os.environ.get("HUPWATCH_COVERAGE") == "1"

POLL = 0.01

# Line hupwatch logs for every spawn; its pid is the generation's process group.
_STARTED = re.compile(r"\bgen (\d+) pid (\d+) started\b")


def wait_for(pred, timeout=10, what="condition"):
    """Poll pred() every 10 ms until it returns a true value, and return that value.

    Raises AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %gs waiting for %s" % (timeout, what))
        time.sleep(POLL)


def signum(sig):
    """Signal number from an int, 'TERM', 'SIGTERM' or signal.SIGTERM."""
    if isinstance(sig, str):
        name = sig.upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        return int(getattr(_signal, name))
    return int(sig)


# ---------------------------------------------------------------- golden files

def assert_golden(name, actual):
    """Check that actual (text) is the content of test/golden/NAME; raise AssertionError with a
    unified diff and how to regenerate if not. With UPDATE_GOLDEN=1 in the environment, write
    actual to the file instead (review the diff with git before committing it)."""
    path = os.path.join(GOLDEN_DIR, name)
    rel = os.path.relpath(path, ROOT)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        os.makedirs(GOLDEN_DIR, exist_ok=True)
        with open(path, "w") as f:
            f.write(actual)
        return
    how = ("If the change is intended, regenerate with `make golden` (or UPDATE_GOLDEN=1 "
           "python3 test/run_integration.py test/test_golden.py) and commit the new %s." % rel)
    try:
        with open(path) as f:
            expected = f.read()
    except FileNotFoundError:
        raise AssertionError("golden file %s is missing. %s" % (rel, how)) from None
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            rel + " (expected)", "actual"))
        raise AssertionError("output differs from %s:\n%s\n%s" % (rel, diff, how))


# ---------------------------------------------------------------- /proc helpers

def _stat(pid):
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, ...], or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return data[data.rindex(")") + 2:].split()


def proc_state(pid):
    """One-letter process state (R, S, T, Z...) or None if there is no such process."""
    st = _stat(pid)
    return st[0] if st else None


def catches(pid, sig):
    """True once PID has a handler for signal sig (its SigCgt in /proc/PID/status)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (int(sig) - 1)))
    except OSError:
        pass
    return False


def proc_pgid(pid):
    st = _stat(pid)
    return int(st[2]) if st else None


def _starttime(pid):
    st = _stat(pid)
    return int(st[19]) if st else None


def _all_pids():
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            out.append(int(name))
    return out


def pid_alive(pid):
    """True if PID exists and is not a zombie (a zombie has exited; it only awaits reaping)."""
    state = proc_state(pid)
    return state is not None and state not in ("Z", "X")


def children_of(pid):
    """Pids (including zombies) whose parent is PID."""
    out = []
    for p in _all_pids():
        st = _stat(p)
        if st and int(st[1]) == pid:
            out.append(p)
    return sorted(out)


def zombies_under(pid):
    """Zombie pids whose parent is PID."""
    return [p for p in children_of(pid) if proc_state(p) == "Z"]


def _descendants(pid):
    result, todo = [], [pid]
    parents = {}
    for p in _all_pids():
        st = _stat(p)
        if st:
            parents.setdefault(int(st[1]), []).append(p)
    while todo:
        for c in parents.get(todo.pop(), []):
            if c not in result:
                result.append(c)
                todo.append(c)
    return result


def base_env(**overrides):
    """os.environ without anything that would leak the test runner's supervisor into hupwatch."""
    env = {k: v for k, v in os.environ.items()
           if k != "NOTIFY_SOCKET" and not k.startswith("LISTEN_")
           and not k.startswith("HUPWATCH_")}
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


# ---------------------------------------------------------------- Hupwatch

_live = []          # every Hupwatch not yet cleaned up (see cleanup_all)


class Hupwatch:
    """Run HUPWATCH *args -- *cmd (no '--' when cmd is empty), capturing stderr and stdout.

    env: a dict merged over base_env() (a value of None removes the variable).
    cwd: working directory; unless env sets PWD, PWD is set to abspath(cwd) as a shell's cd would.
    pass_fds: fds hupwatch inherits. stdin is /dev/null unless stdin= is given.
    """

    def __init__(self, args, cmd, env=None, cwd=None, pass_fds=(), stdin=subprocess.DEVNULL,
                 binary=None):
        self.args = [str(a) for a in args]
        self.cmd = [str(c) for c in cmd]
        argv = [binary or HUPWATCH] + self.args
        if self.cmd:
            argv += ["--"] + self.cmd
        self.argv = argv
        full_env = base_env()
        if cwd is not None and not (env and "PWD" in env):
            full_env["PWD"] = os.path.abspath(cwd)
        for k, v in (env or {}).items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = str(v)
        self.lines = []             # stderr lines, without newline
        self.out_lines = []         # stdout lines, without newline
        self.gen_pids = []          # pids from "gen N pid P started", in order
        self.extra_pids = set()     # more pids whose process groups cleanup() kills
        self._cond = threading.Condition()
        self._eof = 0
        self.returncode = None
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=full_env, cwd=cwd,
                                     pass_fds=tuple(pass_fds), close_fds=True,
                                     start_new_session=False)
        self.pid = self.proc.pid
        self.starttime = _starttime(self.pid) or 0
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stderr, self.lines, True),
                             daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out_lines, False),
                             daemon=True),
        ]
        for t in self._threads:
            t.start()
        _live.append(self)

    def _read(self, stream, sink, is_stderr):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                sink.append(line)
                if is_stderr:
                    m = _STARTED.search(line)
                    if m:
                        self.gen_pids.append(int(m.group(2)))
                self._cond.notify_all()
        with self._cond:
            self._eof += 1
            self._cond.notify_all()

    # -- context manager
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            sys.stderr.write(self.dump())
        self.cleanup()
        return False

    def dump(self):
        """The argv and everything captured so far, for a failure message."""
        with self._cond:
            err, out = list(self.lines), list(self.out_lines)
        text = "---- %s (pid %d, rc %s)\n" % (" ".join(self.argv), self.pid,
                                              self.proc.returncode)
        text += "".join("  stderr| %s\n" % l for l in err)
        text += "".join("  stdout| %s\n" % l for l in out)
        return text

    # -- log
    def mark(self):
        """Index of the next stderr line; pass it as since= to wait for lines after this point."""
        with self._cond:
            return len(self.lines)

    def wait_log(self, regex, timeout=10, since=None):
        """First stderr line at index >= since (default 0) matching regex (re.search); re.Match."""
        pat = re.compile(regex)
        start = since or 0
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.lines):
                    m = pat.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self._eof == 2:     # timed out, or no more lines can come
                    raise AssertionError(
                        "no stderr line matching %r within %gs (hupwatch %s):\n%s"
                        % (regex, timeout, "exited" if self._eof == 2 else "running",
                           "\n".join(self.lines[start:])))
                self._cond.wait(min(left, 0.1))

    def log_matches(self, regex, since=None):
        """All re.Match objects for stderr lines at index >= since matching regex."""
        pat = re.compile(regex)
        with self._cond:
            lines = list(self.lines[since or 0:])
        return [m for m in (pat.search(l) for l in lines) if m]

    def stderr(self):
        with self._cond:
            return "\n".join(self.lines) + ("\n" if self.lines else "")

    def stdout(self):
        with self._cond:
            return "\n".join(self.out_lines) + ("\n" if self.out_lines else "")

    def wait_output(self, timeout=5):
        """Wait until hupwatch and everything holding its stdout/stderr closed them."""
        for t in self._threads:
            t.join(timeout)

    # -- process
    def wait_exit(self, timeout=10):
        """hupwatch's return code (negative: killed by that signal); AssertionError on timeout."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("hupwatch pid %d still running after %gs:\n%s"
                                 % (self.pid, timeout, self.stderr()))
        # The log is complete once the pipe is drained; descendants may keep it open, so bound it.
        deadline = time.monotonic() + 0.5
        with self._cond:
            while self._eof < 2 and time.monotonic() < deadline:
                self._cond.wait(0.05)
        return self.returncode

    def running(self):
        return self.proc.poll() is None

    def signal(self, sig):
        os.kill(self.pid, signum(sig))

    def track(self, *pids):
        """Have cleanup() also kill the process groups of these pids."""
        self.extra_pids.update(int(p) for p in pids)

    def cleanup(self):
        """Kill hupwatch and every process group it started; leave no process behind."""
        me = os.getpgrp()
        for r in list(_reports_dirs):    # register reports nobody has read yet
            r.all()
        victims = set(self.gen_pids) | set(self.extra_pids)
        victims.update(p for p, parent in _reports_seen.items() if parent == self.pid)
        if self.proc.poll() is None:
            victims.update(_descendants(self.pid))
            if COVERAGE:
                try:    # hw_pid: hupwatch itself under a wrapper such as test_pid1's unshare
                    os.kill(getattr(self, "hw_pid", self.pid), _signal.SIGTERM)
                    self.proc.wait(2)
                except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
                    pass
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        groups = set()
        for p in victims:
            g = proc_pgid(p)
            if g is not None:
                groups.add(g)
            groups.add(p)       # a generation's pid is its pgid, even if it has exited
        groups.discard(me)
        groups = {g for g in groups if g > 1}
        # Only touch processes started after hupwatch: pids may have been reused.
        survivors = []
        for p in _all_pids():
            st = _stat(p)
            if not st or st[0] == "Z" or int(st[19]) < self.starttime or p == os.getpid():
                continue
            if int(st[2]) in groups or p in victims:
                survivors.append(p)
        for g in groups:
            if any(proc_pgid(p) == g for p in survivors):
                try:
                    os.killpg(g, _signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for p in survivors:
            try:
                os.kill(p, _signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while any(pid_alive(p) for p in survivors) and time.monotonic() < deadline:
            time.sleep(POLL)
        for t in self._threads:
            t.join(1)
        # Close a pipe only once its reader is done: a process that escaped the kill still holds
        # the write end, the reader stays blocked in readline(), and closing a buffered reader
        # under it would wait for its lock forever. Such a reader is a daemon thread: left alone.
        for s, t in zip((self.proc.stderr, self.proc.stdout), self._threads):
            if t.is_alive():
                sys.stderr.write("harness: pid %d's output pipe is still held open by a process "
                                 "that escaped cleanup\n" % self.pid)
                continue
            try:
                s.close()
            except Exception:
                pass
        self.returncode = self.proc.returncode
        if self in _live:
            _live.remove(self)


def cleanup_all():
    """Clean up every Hupwatch not cleaned up yet (a safety net for the test runner)."""
    for hw in list(_live):
        hw.cleanup()


# ---------------------------------------------------------------- child reports

# pid of every child that wrote a report (and of its grandchild) -> its parent's pid, so that
# Hupwatch.cleanup() can kill the process groups of the generations of its own hupwatch.
_reports_seen = {}
_reports_dirs = []      # every Reports instance (their dirs are rescanned at cleanup)


def _parse_kv(text):
    d = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            d[k] = v
    return d


class Reports:
    """The directory test/child --report DIR writes to (a fresh temp dir when dir is None)."""

    def __init__(self, dir=None):
        if dir is None:
            dir = tempfile.mkdtemp(prefix="hupwatch-test-")
        os.makedirs(dir, exist_ok=True)
        self.dir = dir
        _reports_dirs.append(self)
        del _reports_dirs[:-50]

    def __str__(self):
        return self.dir

    def all(self):
        """Every report so far, as dicts, oldest first."""
        out = []
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return out
        for name in names:
            if not name.endswith(".report") or name.startswith("."):
                continue
            path = os.path.join(self.dir, name)
            try:
                with open(path) as f:
                    d = _parse_kv(f.read())
                d["_mtime"] = os.stat(path).st_mtime_ns
            except FileNotFoundError:
                continue
            if d.get("pid", "").isdigit() and d.get("ppid", "").isdigit():
                _reports_seen[int(d["pid"])] = int(d["ppid"])
                if d.get("grandchild", "").isdigit():
                    _reports_seen[int(d["grandchild"])] = int(d["ppid"])
            out.append(d)
        out.sort(key=lambda d: (d["_mtime"], int(d.get("pid", 0))))
        return out

    def find(self, gen=None, pid=None):
        for d in self.all():
            if gen is not None and d.get("generation") != str(gen):
                continue
            if pid is not None and d.get("pid") != str(pid):
                continue
            return d
        return None

    def wait_report(self, gen=None, pid=None, timeout=10):
        """The report of generation gen and/or pid (first one if several); waits for it."""
        return wait_for(lambda: self.find(gen, pid), timeout,
                        "report gen=%s pid=%s in %s" % (gen, pid, self.dir))

    def events(self, pid):
        """Event lines of PID so far ("signal USR1", "term", ...)."""
        try:
            with open(os.path.join(self.dir, "%s.events" % pid)) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def wait_event(self, pid, text, timeout=10):
        """Wait until PID recorded an event line equal to text; returns all its events."""
        def seen():
            ev = self.events(pid)
            return ev if text in ev else None
        return wait_for(seen, timeout, "event %r of pid %s (have %r)"
                        % (text, pid, self.events(pid)))

    def orphans(self):
        """Pids of orphans announced by --orphan (files orphan.PID)."""
        out = []
        for name in os.listdir(self.dir):
            if name.startswith("orphan.") and name[7:].isdigit():
                out.append(int(name[7:]))
        return sorted(out)


# ---------------------------------------------------------------- network

def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def http_text(host, port, timeout=5, path="/"):
    """The whole answer to an HTTP/1.0 GET on a new connection, as text; raises OSError."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, host)).encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode("utf-8", "replace")


def http_get(host, port, timeout=5, path="/"):
    """(status, body) of an HTTP/1.0 GET; raises OSError/ValueError on failure."""
    data = http_text(host, port, timeout, path)
    head, sep, body = data.partition("\r\n\r\n")
    if not sep:
        raise ValueError("malformed HTTP response %r" % data[:200])
    parts = head.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError("malformed HTTP status line %r" % head[:200])
    return int(parts[1]), body


class Load:
    """Threads doing back-to-back http_get until stop(); counts successes and failures."""

    def __init__(self, host, port, threads=4):
        self.host, self.port, self.nthreads = host, port, threads
        self.ok = 0
        self.failed = 0
        self.errors = []
        self.generations_seen = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def _run(self):
        while not self._stop.is_set():
            try:
                status, body = http_get(self.host, self.port, timeout=5)
            except (OSError, ValueError) as e:
                with self._lock:
                    self.failed += 1
                    if len(self.errors) < 100:
                        self.errors.append("%s: %s" % (type(e).__name__, e))
                continue
            m = re.search(r"gen=(\d+)", body)
            with self._lock:
                if status == 200:
                    self.ok += 1
                else:
                    self.failed += 1
                    if len(self.errors) < 100:
                        self.errors.append("HTTP %d: %r" % (status, body[:100]))
                if m:
                    self.generations_seen.add(int(m.group(1)))

    def start(self):
        for _ in range(self.nthreads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(10)
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def send_notify(socket_name, message):
    """Send one sd_notify datagram to socket_name ('@abstract' or a path)."""
    if isinstance(message, str):
        message = message.encode()
    addr = socket_name
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(message, addr)
