"""What the end-to-end tests under a real service manager share (test_runit.py, test_supervisord.py;
read_status also test_deploy.py): a gunicorn app directory laid out as a deploy tool does, hupwatch's
status file, and processes found and killed by a unique environment tag.
"""

import os
import shutil
import signal
import tempfile
import time
import uuid

from harness import ROOT, free_port, http_get, wait_for

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
