"""--respawn (issue 11): when the current generation dies on its own, the sockets stay open.

Real gunicorn (--preload, so READY=1 means the app imported) serving test/e2e_app.py from release
directories, every request counted by a client of our own that tells a refused connection (nothing
listening: what --respawn must prevent) from one that the dying process had accepted (reset or cut
short: lost with that process, counted apart).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403
from e2e import read_status  # noqa: E402
from test_gunicorn import ensure_gunicorn  # noqa: E402

E2E_APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "e2e_app.py")


class CountingLoad:
    """Threads sending requests until stop(); refused connections are counted apart from the rest."""

    def __init__(self, port, threads=4):
        self.port, self.nthreads = port, threads
        self.ok = self.refused = self.lost = 0
        self.releases = set()
        self.errors = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                status, body = http_get("127.0.0.1", self.port, timeout=10)
                with self._lock:
                    if status == 200:
                        self.ok += 1
                        m = re.match(r"release=(\S+) ", body)
                        if m:
                            self.releases.add(m.group(1))
                    else:
                        self.lost += 1
                        self.errors.append("status %d" % status)
            except ConnectionRefusedError as e:
                with self._lock:
                    self.refused += 1
                    self.errors.append("refused: %s" % e)
            except (OSError, ValueError) as e:
                with self._lock:
                    self.lost += 1
                    self.errors.append("%s: %s" % (type(e).__name__, e))

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(15)
        return self


class RespawnTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gunicorn, cls.why_not = ensure_gunicorn()

    def setUp(self):
        if not self.gunicorn:
            self.skipTest(self.why_not)
        self.tmp = tempfile.mkdtemp(prefix="hw-respawn-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.status = os.path.join(self.tmp, "status")
        self.current = os.path.join(self.tmp, "current")

    def release(self, name, broken=False):
        d = os.path.join(self.tmp, "releases", name)
        os.makedirs(d)
        shutil.copy(E2E_APP, d)
        with open(os.path.join(d, "RELEASE"), "w") as f:
            f.write(name + "\n")
        if broken:
            open(os.path.join(d, "E2E_APP_BROKEN"), "w").close()
        return d

    def point_current(self, name):
        tmp = self.current + ".new"
        os.symlink(os.path.join("releases", name), tmp)
        os.replace(tmp, self.current)

    def start(self, extra=()):
        args = ["--respawn", "-k", "-n", "-t", "20", "-T", "10", "--listen", "127.0.0.1:0",
                "-S", self.status, "-d", self.current] + list(extra)
        cmd = [self.gunicorn, "--preload", "-w", "2", "e2e_app:application"]
        hw = Hupwatch(args, cmd)
        hw.__enter__()
        self.addCleanup(hw.__exit__, None, None, None)
        port = int(hw.wait_log(r"\binfo: listening on 127\.0\.0\.1:(\d+) \(fd \d+\)").group(1))
        hw.wait_log(r"\bgen 1 pid \d+ ready after", timeout=20)
        return hw, port

    def current_pid(self, gen):
        def check():
            st = read_status(self.status)
            return int(st["generation_pid"]) if st.get("generation") == str(gen) and \
                st.get("state") == "running" else None
        return wait_for(check, 20, "gen %d current in the status file" % gen)

    def test_app_killed_again_and_again_refuses_nothing(self):
        kills = 10
        self.release("1")
        self.point_current("1")
        hw, port = self.start(["--respawn-limit", "100/10"])
        load = CountingLoad(port).start()
        try:
            for gen in range(1, kills + 1):
                pid = self.current_pid(gen)
                time.sleep(0.3)  # load meets a serving generation; not a synchronisation
                mark = hw.mark()
                os.kill(pid, 9)
                hw.wait_log(r"\bgen %d pid %d killed by SIGKILL$" % (gen, pid), since=mark)
                hw.wait_log(r"\brespawning in [\d.]+s \(attempt 1\)", since=mark)
                hw.wait_log(r"\bgen %d pid \d+ ready after" % (gen + 1), since=mark, timeout=20)
            self.current_pid(kills + 1)
        finally:
            load.stop()
        self.assertEqual(load.refused, 0, "refused connections: %r" % load.errors[:10])
        self.assertGreater(load.ok, 50, hw.stderr()[-2000:])
        # Requests the killed masters' workers had accepted are lost with them: counted, not hidden.
        sys.stderr.write("[respawn: %d kills, %d ok, 0 refused, %d lost with the killed process] "
                         % (kills, load.ok, load.lost))
        st = read_status(self.status)
        self.assertEqual(st["respawns"], str(kills))
        self.assertEqual(st["fallback_dir"], "")
        self.assertEqual(hw.log_matches(r"\bexiting with status"), [])
        hw.signal("TERM")
        self.assertEqual(hw.wait_exit(20), 0, hw.stderr()[-2000:])

    def test_crash_loop_ends_hupwatch_with_the_last_status(self):
        # Each generation is ready at once and exits 3 soon after: 5 failures within 10 s.
        args = ["--respawn", "-w", "0.1", "-S", self.status]
        with Hupwatch(args, [CHILD, "--delay", "300", "--exit", "3"]) as hw:
            t0 = time.monotonic()
            rc = hw.wait_exit(20)
            took = time.monotonic() - t0
            self.assertEqual(rc, 3, hw.stderr())
            hw.wait_log(r"\berror: crash loop: 5 failures within 10\.00s \(--respawn-limit\); giving up$")
            self.assertEqual(len(hw.log_matches(r"\brespawning in ")), 4, hw.stderr())
            # back-off: 0, 0.1, 0.2, 0.4 s between the respawns, on top of their lives
            self.assertLess(took, 10, hw.stderr())
            st = read_status(self.status)
            self.assertEqual((st["state"], st["exit_status"], st["respawns"]), ("exited", "3", "4"))

    def test_respawn_limit_counts_failures_within_the_window(self):
        # --respawn-limit 2/0.3: deaths 0.5 s apart never make a crash loop.
        args = ["--respawn", "--respawn-limit", "2/0.3", "-w", "0.1"]
        with Hupwatch(args, [CHILD, "--delay", "500", "--exit", "4"]) as hw:
            hw.wait_log(r"\brespawning in [\d.]+s \(attempt 1\)")
            hw.wait_log(r"\bgen 4 pid \d+ ready after", timeout=10)
            self.assertEqual(hw.log_matches(r"crash loop"), [])
            hw.signal("TERM")
            self.assertEqual(hw.wait_exit(10), 0)

    def test_broken_current_falls_back_to_the_last_good_release(self):
        good = os.path.realpath(self.release("1"))
        self.release("2", broken=True)
        self.point_current("1")
        hw, port = self.start()
        load = CountingLoad(port).start()
        try:
            pid = self.current_pid(1)
            # The deploy swapped current to a broken release that was never reloaded; then the app dies.
            self.point_current("2")
            mark = hw.mark()
            os.kill(pid, 9)
            hw.wait_log(r"\bgen 2 failed: exited with status \d+ before ready", since=mark, timeout=20)
            hw.wait_log(r"\bwarning: gen 3 falls back to the last release that was ready: %s$"
                        % re.escape(good), since=mark)
            hw.wait_log(r"\bgen 3 pid \d+ ready after", since=mark, timeout=20)
            hw.wait_log(r"\bwarning: gen 3 runs the fallback release %s" % re.escape(good), since=mark)
            self.current_pid(3)
            st = read_status(self.status)
            self.assertEqual(st["fallback_dir"], good)
            # --reload still starts from `current` (broken): it fails, and says what serves.
            r = subprocess.run([HUPWATCH, "--reload", "-S", self.status], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertRegex(r.stderr, r"still current \(it runs the fallback release %s\)"
                             % re.escape(good))
            # Rollback: current back to 1, reload: no longer a fallback.
            self.point_current("1")
            r = subprocess.run([HUPWATCH, "--reload", "-S", self.status], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            wait_for(lambda: read_status(self.status).get("fallback_dir") == "", 10, "fallback cleared")
        finally:
            load.stop()
        self.assertEqual(load.refused, 0, "refused connections: %r" % load.errors[:10])
        self.assertEqual(load.releases, {"1"})

    def test_without_respawn_a_dead_app_ends_hupwatch(self):
        with Hupwatch(["-w", "0.1"], [CHILD, "--delay", "300", "--exit", "6"]) as hw:
            self.assertEqual(hw.wait_exit(10), 6)
            self.assertEqual(hw.log_matches(r"respawning"), [])

    def test_respawn_limit_usage(self):
        for bad in ("5", "0/10", "101/10", "5/0", "5/x", "/10", "5/10/1", "x/10"):
            with self.subTest(value=bad), Hupwatch(["--respawn", "--respawn-limit", bad], [CHILD]) as hw:
                self.assertEqual(hw.wait_exit(5), 125)
                self.assertRegex(hw.lines[0], r"^hupwatch: --respawn-limit: .*'%s'$" % re.escape(bad))
        with Hupwatch(["--respawn-limit", "5/10", "-w", "0.1"], [CHILD]) as hw:
            hw.wait_log(r"warning: --respawn-limit has no effect without --respawn$")
            # that warning is logged while parsing options, before SIGTERM is handled: wait for gen 1
            hw.wait_log(r"\bgen 1 pid \d+ started")
            hw.signal("TERM")
            self.assertEqual(hw.wait_exit(5), 0)


if __name__ == "__main__":
    unittest.main()
