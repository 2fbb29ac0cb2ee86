"""End-to-end: real gunicorn behind `hupwatch --listen 127.0.0.1:0 --notify`, reloaded under load.

Issue 3, "Proof": at least 20 reloads while a concurrent client sends requests; zero failed or refused
requests, every answer 200, answers from several generations.

gunicorn (>= 0.17) takes the socket from LISTEN_FDS/LISTEN_PID (so no --bind: with the fds it binds
nothing itself, and in that mode it never unlinks or re-binds anything on exit), and gunicorn >= 20 sends
READY=1 to NOTIFY_SOCKET once its arbiter is up; the workers then accept from the same kernel queue the
old generation's workers drained, so requests in between are queued, not refused.

Debian's gunicorn package is installed in setUpClass when it is missing and we are root (outside the
per-test timeout); otherwise the test is skipped, saying why.
"""

import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

RELOADS = 20
BUDGET = 52         # seconds for start-up, the reloads and the drains (the runner stops a test at 60)


def ensure_gunicorn():
    """Path of gunicorn, installing Debian's package when missing and possible; (path, why not)."""
    path = shutil.which("gunicorn")
    if path:
        return path, None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "gunicorn is not installed and we are not root with apt-get (apt-get install gunicorn)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "gunicorn"]
    try:
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=600)
            r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=600)
    except subprocess.TimeoutExpired:
        return None, "apt-get install gunicorn timed out"
    path = shutil.which("gunicorn")
    if not path:
        return None, "apt-get install gunicorn failed: %s" % r.stdout.decode(errors="replace")[-500:]
    return path, None


class GunicornTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gunicorn, cls.why_not = ensure_gunicorn()

    def setUp(self):
        if not self.gunicorn:
            self.skipTest(self.why_not)

    def test_reloads_under_load_lose_nothing(self):
        deadline = time.monotonic() + BUDGET

        def left():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("test budget of %ds used up" % BUDGET)
            return remaining

        cmd = ["gunicorn", "-w", "2", "--chdir", "test", "app:application"]
        with Hupwatch(["-k", "-T", "20", "--listen", "127.0.0.1:0", "--notify"], cmd, cwd=ROOT) as hw:
            port = int(hw.wait_log(r"\binfo: listening on 127\.0\.0\.1:(\d+) \(fd \d+\)").group(1))
            m = hw.wait_log(r"\bgen 1 pid (\d+) ready after [\d.]+s \((\S+)\)", timeout=min(20, left()))
            self.assertEqual(m.group(2), "READY=1", "gunicorn's own READY=1 should make it ready")
            status, body = http_get("127.0.0.1", port, timeout=10)
            self.assertEqual(status, 200)
            self.assertRegex(body, r"^gen=1 pid=\d+\n$")

            load = Load("127.0.0.1", port, threads=4).start()
            try:
                for gen in range(2, RELOADS + 2):
                    mark = hw.mark()
                    hw.signal("HUP")
                    m = hw.wait_log(r"\bgen %d pid (\d+) ready after [\d.]+s \((\S+)\)" % gen,
                                    since=mark, timeout=min(15, left()))
                    self.assertEqual(m.group(2), "READY=1")
                    # Old gunicorns drain on their own (about 1 s, the sync workers' poll); no need
                    # to wait for them, hupwatch never lets a draining one block the next reload.
                # every old generation drained and exited 0 (gunicorn's graceful TERM)
                for gen in range(1, RELOADS + 1):
                    hw.wait_log(r"\bgen %d pid \d+ exited with status 0 after draining" % gen,
                                timeout=min(15, left()))
                served_before_stop = load.ok
            finally:
                load.stop()

            self.assertEqual(hw.log_matches(r"\berror: "), [], "hupwatch logged errors")
            self.assertEqual(hw.log_matches(r"\bgen \d+ failed\b"), [])
            self.assertEqual((load.failed, load.errors[:10]), (0, []),
                             "%d failed requests, %d ok" % (load.failed, load.ok))
            self.assertGreater(served_before_stop, 2 * RELOADS, "too few requests to mean anything")
            self.assertGreaterEqual(len(load.generations_seen), 5,
                                    "answers from generations %s only" % sorted(load.generations_seen))
            self.assertTrue(load.generations_seen <= set(range(1, RELOADS + 2)))
            # the last generation serves
            status, body = http_get("127.0.0.1", port, timeout=10)
            self.assertEqual((status, re.match(r"gen=(\d+) ", body).group(1)), (200, str(RELOADS + 1)))

            hw.signal("TERM")
            self.assertEqual(hw.wait_exit(max(3, 58 - BUDGET + left())), 0, hw.stderr()[-3000:])
            sys.stderr.write("[gunicorn: %d reloads, %d requests ok, 0 failed, generations seen: %d] "
                             % (RELOADS, load.ok, len(load.generations_seen)))


if __name__ == "__main__":
    unittest.main()
