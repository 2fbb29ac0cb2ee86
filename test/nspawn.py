"""A real systemd as PID 1 of a systemd-nspawn container, for test/test_systemd.py (stdlib only, root).

    c = Container()                 # c.build and c.app: host dirs, seen read-only as /opt/hw and /opt/app
    ...copy files into c.build...
    c.boot()                        # BootError(reason) when this machine cannot boot it
    c.write_unit("x.service", text); c.daemon_reload(); c.systemctl("start", "x.service")
    c.http_get(8000)                # a request from inside the container's network namespace
    problems = c.shutdown()         # poweroff, bounded; kills on timeout; [] when nothing is left behind

The container is the host's own OS: `systemd-nspawn -D / --volatile=yes` gives it a tmpfs root with the
host's /usr read-only, so it boots the host's systemd in about a second and a half. `systemd.unit=basic.target`
keeps it from starting the host's installed services, `systemd.firstboot=off` from asking questions,
`--private-network` gives it a loopback of its own. Commands run inside with `nsenter -t LEADER -a`
(LEADER: the container's PID 1 as the host sees it); files inside are read and written from the host
through /proc/LEADER/root; requests are sent from threads that joined its network namespace (setns).

Every wait is bounded.
"""

import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

from harness import http_get

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CLONE_NEWNET = 0x40000000
# Left on the host by systemd-nspawn: empty directories (its mounts live in its own mount namespace),
# removed by shutdown() when the container created them and no other systemd-nspawn runs.
PROPAGATE = "/run/systemd/nspawn/propagate"
NSPAWN_DIRS = (PROPAGATE, "/run/systemd/nspawn", "/run/systemd/nspawn-root")

_libc = ctypes.CDLL(None, use_errno=True)


class BootError(Exception):
    """The container could not be booted; str() is the one-line reason."""


def boot_problem():
    """Why this machine cannot boot the container at all (before trying), or None."""
    if os.geteuid() != 0:
        return "needs root (systemd-nspawn, nsenter)"
    if not shutil.which("systemd-nspawn"):
        return "systemd-nspawn not installed (Debian package systemd-container)"
    if not shutil.which("nsenter"):
        return "nsenter not installed (Debian package util-linux)"
    if not any(os.access(p, os.X_OK) for p in ("/usr/lib/systemd/systemd", "/lib/systemd/systemd")):
        return "no systemd to boot (Debian package systemd)"
    return None


def _ns(pid, kind):
    try:
        return os.readlink("/proc/%d/ns/%s" % (pid, kind))
    except OSError:
        return None


def _nspid(pid):
    """The NSpid: line of /proc/PID/status as ints (host pid first), or []."""
    try:
        with open("/proc/%d/status" % pid) as f:
            m = re.search(r"^NSpid:\s*(.*)$", f.read(), re.M)
    except OSError:
        return []
    return [int(x) for x in m.group(1).split()] if m else []


def _children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def _other_nspawn():
    """Whether some systemd-nspawn process is running (e.g. another test run's container)."""
    for name in os.listdir("/proc"):
        try:
            with open("/proc/%s/comm" % name) as f:
                if f.read().strip() == "systemd-nspawn":
                    return True
        except OSError:
            pass
    return False


def _wait(pred, timeout, poll=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(poll)


def fields(body):
    """'release=2 gen=3 pid=41' -> {'release': '2', 'gen': '3', 'pid': '41'}"""
    return dict(f.split("=", 1) for f in body.split() if "=" in f)


class Load:
    """Threads in the container's network namespace sending back-to-back GETs to 127.0.0.1:port.

    Counts answers (ok), refused connections (refused) and every other failure (failed); remembers
    the (release, gen) pairs that answered."""

    def __init__(self, container, port, threads=3, timeout=10):
        self.c, self.port, self.nthreads, self.timeout = container, port, threads, timeout
        self.ok = self.refused = self.failed = 0
        self.errors = []
        self.seen = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def _run(self):
        self.c.enter_netns()
        while not self._stop.is_set():
            try:
                status, body = http_get("127.0.0.1", self.port, self.timeout)
            except ConnectionRefusedError as e:
                with self._lock:
                    self.refused += 1
                    self._error("refused: %s" % e)
                continue
            except (OSError, ValueError) as e:
                with self._lock:
                    self.failed += 1
                    self._error("%s: %s" % (type(e).__name__, e))
                continue
            f = fields(body)
            with self._lock:
                if status == 200:
                    self.ok += 1
                    self.seen.add((f.get("release"), f.get("gen")))
                else:
                    self.failed += 1
                    self._error("HTTP %d %r" % (status, body[:80]))

    def _error(self, text):
        if len(self.errors) < 20:
            self.errors.append("%.3f %s" % (time.monotonic(), text))

    def start(self):
        for _ in range(self.nthreads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def wait_seen(self, pair, timeout=10):
        """Wait until (release, gen) answered one of the load's requests."""
        deadline = time.monotonic() + timeout
        while pair not in self.seen:
            if time.monotonic() >= deadline:
                raise AssertionError("no answer from release %s gen %s within %gs: %s"
                                     % (pair + (timeout, self.summary())))
            time.sleep(0.01)

    def summary(self):
        return ("ok %d, refused %d, failed %d, answered by %s; first errors: %r"
                % (self.ok, self.refused, self.failed, sorted(self.seen), self.errors[:5]))


class Container:
    def __init__(self, prefix="hwtest"):
        self.name = "%s-%d-%s" % (prefix, os.getpid(), uuid.uuid4().hex[:8])
        self.tmp = tempfile.mkdtemp(prefix="hupwatch-nspawn-")
        self.build = os.path.join(self.tmp, "build")    # /opt/hw inside
        self.app = os.path.join(self.tmp, "app")        # /opt/app inside
        os.mkdir(self.build)
        os.mkdir(self.app)
        self.log_path = os.path.join(self.tmp, "nspawn.log")
        self.proc = None
        self.leader = None
        self.pidns = None
        self.boot_seconds = None
        self.state = None
        self._netns_fd = None
        self.last_error = None      # of the last answer()
        self._made_dirs = [d for d in NSPAWN_DIRS if not os.path.exists(d)]

    # ------------------------------------------------------------------ boot and shutdown

    def boot(self, timeout=30):
        t0 = time.monotonic()
        argv = ["systemd-nspawn", "-D", "/", "--volatile=yes", "--register=no", "--keep-unit",
                "--private-network", "--machine=" + self.name, "--console=read-only",
                "--bind-ro=%s:/opt/hw" % self.build, "--bind-ro=%s:/opt/app" % self.app,
                "-b", "systemd.firstboot=off", "systemd.unit=basic.target"]
        env = {"PATH": PATH, "LANG": "C.UTF-8", "SYSTEMD_COLORS": "0"}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=env, start_new_session=True)
        mine = _ns(os.getpid(), "pid")

        def leader():
            if self.proc.poll() is not None:
                return -1
            for c in _children(self.proc.pid):
                ns = _nspid(c)
                if len(ns) >= 2 and ns[-1] == 1 and _ns(c, "pid") != mine:
                    return c
            return None
        self.leader = _wait(leader, min(10, timeout))
        if not self.leader or self.leader < 0:
            self.leader = None
            raise BootError(self._why("no container PID 1 appeared"))
        self.pidns = _ns(self.leader, "pid")

        def booted():
            if self.proc.poll() is not None:
                return "exited"
            try:
                r = self.run(["systemctl", "is-system-running"], timeout=5)
            except AssertionError:
                return None
            self.state = r.stdout.strip()
            return self.state if self.state in ("running", "degraded") else None
        left = max(1, timeout - (time.monotonic() - t0))
        state = _wait(booted, left, poll=0.1)
        if state == "exited" or not state:
            raise BootError(self._why("not booted within %gs (is-system-running: %s)"
                                      % (timeout, self.state or "no answer")))
        # Only now: the container's PID 1 starts out in the host's network namespace and moves
        # to its own a moment later (seen: 2 ms); an fd taken too early would be the host's.
        self._netns_fd = os.open("/proc/%d/ns/net" % self.leader, os.O_RDONLY | os.O_CLOEXEC)
        if os.fstat(self._netns_fd).st_ino == os.stat("/proc/self/ns/net").st_ino:
            raise BootError("the container's PID 1 shares the host's network namespace")
        self.boot_seconds = time.monotonic() - t0
        return self

    def _why(self, what):
        rc = self.proc.poll() if self.proc else None
        try:
            with open(self.log_path, errors="replace") as f:
                lines = [l.strip() for l in f if l.strip()]
        except OSError:
            lines = []
        last = lines[-1] if lines else "(no output)"
        if rc is not None:
            return "systemd-nspawn exited with status %d: %s" % (rc, last)
        return "%s; systemd-nspawn's last line: %s" % (what, last)

    def nspawn_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def shutdown(self, timeout=20):
        """Power off (kill on timeout), remove the temp dir; returns what was left behind ([] = none)."""
        problems = []
        booted = self.boot_seconds is not None
        if self.proc and self.proc.poll() is None and self.leader:
            try:
                self.run(["systemctl", "poweroff", "--no-block"], timeout=10)
            except AssertionError:
                pass
        if not booted:          # a boot that failed: no need to wait long for a clean poweroff
            timeout = min(timeout, 5 if self.leader else 0.5)
        if self.proc:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                if booted:
                    problems.append("systemd-nspawn still running %gs after poweroff: killed"
                                    % timeout)
                for kill in (lambda: os.killpg(self.proc.pid, signal.SIGKILL),
                             lambda: self.leader and os.kill(self.leader, signal.SIGKILL)):
                    try:
                        kill()
                    except OSError:
                        pass
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    problems.append("systemd-nspawn pid %d survived SIGKILL" % self.proc.pid)
        if self._netns_fd is not None:
            os.close(self._netns_fd)
            self._netns_fd = None
        if self.pidns:
            if not _wait(lambda: not self.ns_processes(), 5):
                problems.append("processes left in the container's pid namespace: %r"
                                % self.ns_processes())
        mounts = self.mounts()
        if mounts:
            problems.append("mounts left behind: %r" % mounts)
        prop = os.path.join(PROPAGATE, self.name)
        if os.path.exists(prop):    # systemd-nspawn removes it on a clean exit, not when killed
            shutil.rmtree(prop, ignore_errors=True)
        if not _other_nspawn():
            for d in self._made_dirs:
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)
        if os.path.exists(self.tmp):
            problems.append("temp dir %s could not be removed" % self.tmp)
        return problems

    def ns_processes(self):
        """Host pids of the processes still in the container's pid namespace."""
        out = []
        for name in os.listdir("/proc"):
            if name.isdigit() and _ns(int(name), "pid") == self.pidns:
                out.append(int(name))
        return out

    def mounts(self):
        """Host mount table lines that mention this container (its temp dir or its name)."""
        with open("/proc/self/mountinfo") as f:
            return [l.strip() for l in f if self.tmp in l or self.name in l]

    # ------------------------------------------------------------------ running things inside

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def run(self, argv, timeout=30, input=None):
        """CompletedProcess (text) of argv run inside with nsenter -a; AssertionError on timeout."""
        env = {"PATH": PATH, "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0",
               "SYSTEMD_LOG_COLOR": "0", "TERM": "dumb"}
        try:
            return subprocess.run(["nsenter", "-t", str(self.leader), "-a"] + [str(a) for a in argv],
                                  input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=None if input is not None else subprocess.DEVNULL,
                                  text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("in the container, %r did not finish within %gs" % (argv, timeout))

    def check(self, argv, timeout=30):
        r = self.run(argv, timeout)
        if r.returncode != 0:
            raise AssertionError("in the container, %r exited %d:\n%s%s"
                                 % (argv, r.returncode, r.stdout, r.stderr))
        return r.stdout

    def systemctl(self, *args, timeout=30):
        return self.run(["systemctl"] + list(args), timeout)

    def show(self, unit, *props):
        out = self.check(["systemctl", "show", unit] + ["-p%s" % p for p in props])
        return dict(l.split("=", 1) for l in out.splitlines() if "=" in l)

    def prop(self, unit, name):
        return self.show(unit, name).get(name, "")

    def path(self, inside):
        """The host's path to a file inside the container."""
        return "/proc/%d/root%s" % (self.leader, inside)

    def read(self, inside):
        try:
            with open(self.path(inside), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def write_unit(self, name, text):
        with open(self.path("/run/systemd/system/" + name), "w") as f:
            f.write(text)

    def remove_unit(self, name):
        try:
            os.unlink(self.path("/run/systemd/system/" + name))
        except FileNotFoundError:
            pass

    def daemon_reload(self):
        self.check(["systemctl", "daemon-reload"])

    def journal(self, unit):
        """The journal entries of unit (its processes' and systemd's about it), as dicts."""
        out = self.check(["journalctl", "--no-pager", "-o", "json", "-u", unit])
        return [json.loads(l) for l in out.splitlines() if l.startswith("{")]

    def messages(self, unit):
        return [e.get("MESSAGE") for e in self.journal(unit) if isinstance(e.get("MESSAGE"), str)]

    def environ(self, pid):
        """Environment of a process given by its pid inside the container, as a dict."""
        out = self.run(["cat", "/proc/%s/environ" % pid]).stdout
        return dict(v.split("=", 1) for v in out.split("\0") if "=" in v)

    # ------------------------------------------------------------------ network

    def enter_netns(self):
        """Move the calling thread (only it) into the container's network namespace."""
        if _libc.setns(self._netns_fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns(container netns): %s" % os.strerror(e))

    def in_netns(self, fn, *args, timeout=30):
        """fn(*args) run in a thread inside the container's network namespace; its value or exception."""
        box = {}

        def body():
            try:
                self.enter_netns()
                box["value"] = fn(*args)
            except BaseException as e:      # handed to the caller
                box["error"] = e
        t = threading.Thread(target=body, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            raise AssertionError("%s%r still running after %gs" % (fn.__name__, args, timeout))
        if "error" in box:
            raise box["error"]
        return box["value"]

    def http_get(self, port, timeout=10):
        """(status, body) of a GET to 127.0.0.1:port inside the container; raises OSError/ValueError."""
        return self.in_netns(http_get, "127.0.0.1", port, timeout, timeout=timeout + 5)

    def answer(self, port, timeout=10):
        """The fields of a 200 answer on port ({} on any failure)."""
        try:
            status, body = self.http_get(port, timeout)
        except (OSError, ValueError) as e:
            self.last_error = "%s: %s" % (type(e).__name__, e)
            return {}
        self.last_error = None if status == 200 else "HTTP %d %r" % (status, body[:80])
        return fields(body) if status == 200 else {}

    def load(self, port, threads=3):
        return Load(self, port, threads)
