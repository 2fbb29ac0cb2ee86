"""What the end-to-end tests under a real service manager share (test_runit.py, test_supervisord.py;
read_status also test_deploy.py): a gunicorn app directory laid out as a deploy tool does, hupwatch's
status file, and processes found and killed by a unique environment tag.
"""

import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections import Counter

from harness import ROOT, free_port, http_get, http_text, wait_for

APP = os.path.join(ROOT, "test", "e2e_app.py")
TAG_VAR = "E2E_TAG"


def tagged_pids(tag):
    """Pids of live processes whose environment holds TAG_VAR=tag (zombies have no environment)."""
    want = ("%s=%s" % (TAG_VAR, tag)).encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if want in env:
            out.append(int(name))
    return sorted(out)


def kill_tagged(tag, timeout=5):
    """SIGKILL whatever still carries the tag, until nothing does or timeout seconds (never fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = tagged_pids(tag)
        if not left:
            break
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def describe(pids):
    out = []
    for p in pids:
        try:
            with open("/proc/%d/cmdline" % p, "rb") as f:
                out.append("%d %s" % (p, f.read().replace(b"\0", b" ").decode(errors="replace")))
        except OSError:
            out.append("%d (gone)" % p)
    return "; ".join(out)


def read_status(path):
    """hupwatch's --status-file as a dict ({} while it does not exist)."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def substitute(text, replacements, example):
    """Replace each old string by its new one; every old string must occur (the example changed?)."""
    for old, new in replacements:
        if old not in text:
            raise AssertionError("%r not found in %s: update the test or the example" % (old, example))
        text = text.replace(old, new)
    return text


def make_app_dir(tmp):
    """tmp/srv/app as the examples expect it: releases/1 holding the app, shared/, current ->
    releases/1. Returns the app directory."""
    srv = os.path.join(tmp, "srv", "app")
    release = os.path.join(srv, "releases", "1")
    os.makedirs(release)
    os.makedirs(os.path.join(srv, "shared"))
    shutil.copy(APP, os.path.join(release, "app.py"))
    os.symlink("releases/1", os.path.join(srv, "current"))
    return srv


class AppMixin:
    """For a unittest.TestCase: setup_app() in its setUp, and waits that need self.logs()."""

    def setup_app(self, prefix):
        """A temp dir (removed at cleanup) holding the app dir; self.tmp, self.tag, self.port,
        self.status_file, self.pid_file. Returns the app directory."""
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.tag = uuid.uuid4().hex
        self.port = free_port()
        srv = make_app_dir(self.tmp)
        self.status_file = os.path.join(srv, "shared", "hupwatch.status")
        self.pid_file = os.path.join(srv, "shared", "hupwatch.pid")
        return srv

    def wait_status(self, timeout=30, **want):
        def check():
            st = read_status(self.status_file)
            return st if all(st.get(k) == str(v) for k, v in want.items()) else None
        try:
            return wait_for(check, timeout, "status file with %r" % want)
        except AssertionError as e:
            raise AssertionError("%s; have %r\n%s" % (e, read_status(self.status_file), self.logs()))

    def assert_clean_load(self, load, reloads):
        """Zero failed requests over `reloads` reloads, answers from several generations."""
        self.assertEqual(load.failed, 0, "failed requests during %d reloads: %r"
                         % (reloads, load.errors[:10]))
        self.assertGreater(load.ok, 100)
        self.assertGreaterEqual(len(load.generations_seen), 3,
                                "answers from several generations: %r" % load.generations_seen)

    def wait_serving(self, timeout=30):
        def check():
            try:
                status, body = http_get("127.0.0.1", self.port, timeout=2)
            except (OSError, ValueError):
                return None
            return body if status == 200 else None
        return wait_for(check, timeout, "an answer on 127.0.0.1:%d" % self.port)


class ClassifiedLoad:
    """Threads sending back-to-back HTTP/1.0 GET / on new connections until stop(); every request
    is an answer or a failure counted by kind (refused, reset, timeout, closed, HTTP 5xx, ...).

    A subclass names the answer it expects: ANSWER, a regex for a 200's body, and answer(match),
    what to keep of it. answers: (start time,) + answer(match) of each, in the order they came;
    failures: Counter of kinds; errors: the first descriptions."""

    ANSWER = re.compile(r"^(.*)$")
    TIMEOUT = 10

    def __init__(self, port, threads=3):
        self.port = port
        self.answers = []
        self.failures = Counter()
        self.errors = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def answer(self, m):
        return m.groups()

    def _fetch(self):
        """(response text, None) or (None, (kind, detail))."""
        try:
            data = http_text("127.0.0.1", self.port, self.TIMEOUT)
        except ConnectionRefusedError as e:
            return None, ("refused", str(e))
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as e:
            return None, ("reset", str(e))
        except socket.timeout as e:
            return None, ("timeout", str(e))
        except OSError as e:
            return None, ("error", "%s: %s" % (type(e).__name__, e))
        return (data, None) if data else (None, ("closed", "connection closed without an answer"))

    def _one(self):
        data, failure = self._fetch()
        if failure:
            return None, failure
        head, _, body = data.partition("\r\n\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3})", head)
        if not m:
            return None, ("malformed", data[:200])
        if m.group(1) != "200":
            return None, ("HTTP %s" % m.group(1), body[:200])
        a = self.ANSWER.match(body.strip())
        if not a:
            return None, ("bad body", body[:200])
        return self.answer(a), None

    def _run(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            answer, failure = self._one()
            with self._lock:
                if failure:
                    self.failures[failure[0]] += 1
                    if len(self.errors) < 20:
                        self.errors.append("%.3f %s: %s" % ((t0,) + failure))
                else:
                    self.answers.append((t0,) + tuple(answer))

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(15)
