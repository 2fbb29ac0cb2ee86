"""Integration tests: the status file (-S) and the reload client (hupwatch --reload -S FILE).

Issue 3, "Status and a reload that reports its outcome". Generations that become ready on demand use
--ready-cmd with a file the test creates, so every state (starting, reload in progress) can be observed
for as long as the test needs, without sleeping.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

KEYS = ["pid", "starttime", "state", "generation", "generation_pid", "ready_wait", "reload",
        "reload_state", "reload_generation", "reload_started", "reload_reason"]


# ---------------------------------------------------------------- helpers (local to this file)

def parse_status(text):
    """dict of a status file's key=value lines; raises ValueError on anything malformed."""
    if not text.endswith("\n"):
        raise ValueError("no final newline")
    lines = text[:-1].split("\n")
    if not lines[0].startswith("pid="):
        raise ValueError("first line is not pid=")
    d = {}
    for l in lines:
        k, sep, v = l.partition("=")
        if not sep or not re.fullmatch(r"[a-z_]+", k) or k in d:
            raise ValueError("bad line %r" % l)
        d[k] = v
    return d


def read_status(path):
    """The status file as a dict, or None when it does not exist (yet)."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    return parse_status(text)


def by_gen(default, per_gen):
    """A /bin/sh -c command that execs per_gen[N] for generation N, else default (argv lists)."""
    def line(argv):
        return " ".join(shlex.quote(a) for a in argv)
    cases = "".join('%d) exec %s ;; ' % (g, line(argv)) for g, argv in sorted(per_gen.items()))
    return ["/bin/sh", "-c", 'case "$HUPWATCH_GENERATION" in %s*) exec %s ;; esac'
            % (cases, line(default))]


def reload_client(status_file, *extra, timeout=30):
    """Run hupwatch --reload -S status_file [extra]: (returncode, stdout, stderr, seconds)."""
    t0 = time.monotonic()
    r = subprocess.run([HUPWATCH, "--reload", "-S", status_file] + list(extra),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=base_env(), timeout=timeout)
    return r.returncode, r.stdout.decode(), r.stderr.decode(), time.monotonic() - t0


def dead_pid():
    """A pid that existed a moment ago and is gone now."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def starttime(pid):
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()[19]


class ClientRun(threading.Thread):
    """reload_client in a thread, so the test can act (make the new generation ready) meanwhile."""

    def __init__(self, *args, **kw):
        super().__init__(daemon=True)
        self.args, self.kw, self.result = args, kw, None

    def run(self):
        self.result = reload_client(*self.args, **self.kw)

    def outcome(self, timeout=30):
        self.join(timeout)
        if self.result is None:
            raise AssertionError("hupwatch --reload still running after %gs" % timeout)
        return self.result


# ---------------------------------------------------------------- tests

class StatusTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hw-status-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.rep = Reports(os.path.join(self.tmp, "rep"))
        self.sf = os.path.join(self.tmp, "hupwatch.status")

    def path(self, name):
        return os.path.join(self.tmp, name)

    def child(self, *extra):
        return [CHILD, "--report", self.rep.dir] + [str(e) for e in extra]

    def probe_args(self, timeout="5"):
        """--ready-cmd: generation N is ready once the file ready-N exists."""
        d = shlex.quote(self.tmp)
        return ["-c", "test -f %s/ready-$HUPWATCH_GENERATION" % d, "-i", "0.02", "-t", timeout]

    def make_ready(self, gen):
        open(self.path("ready-%d" % gen), "w").close()

    def wait_status(self, what, timeout=10, **want):
        """Wait until the status file has every key=value of want; returns the whole dict."""
        last = [None]

        def check():
            d = read_status(self.sf)
            last[0] = d
            return d if d and all(d.get(k) == str(v) for k, v in want.items()) else None
        try:
            return wait_for(check, timeout, what)
        except AssertionError as e:
            raise AssertionError("%s; status file: %r" % (e, last[0]))

    # ---- keys and values across start, reload success, reload failure, exit

    def test_status_keys_across_lifecycle(self):
        cmd = by_gen(self.child(), {3: self.child("--exit", 3)})
        with Hupwatch(["-k", "-S", self.sf] + self.probe_args("5"), cmd) as hw:
            st = self.wait_status("state=starting", state="starting")
            self.assertEqual([k for k in KEYS if k not in st], [], "keys missing")
            self.assertNotIn("exit_status", st)
            self.assertEqual(st["pid"], str(hw.pid))
            self.assertEqual(st["starttime"], starttime(hw.pid))
            self.assertEqual(st["generation"], "0")
            self.assertEqual((st["reload"], st["reload_state"], st["reload_reason"]), ("0", "none", ""))
            self.assertEqual(float(st["ready_wait"]), 5.0)

            pid1 = int(self.rep.wait_report(gen=1)["pid"])
            self.make_ready(1)
            st = self.wait_status("gen 1 running", state="running", generation=1)
            self.assertEqual(st["generation_pid"], str(pid1))
            self.assertEqual((st["reload"], st["reload_state"]), ("0", "none"))

            # reload 1: in progress until gen 2 is ready, then succeeded
            before = time.monotonic()
            hw.signal("HUP")
            pid2 = int(self.rep.wait_report(gen=2)["pid"])
            st = self.wait_status("reload 1 in progress", reload=1, reload_state="in-progress")
            after = time.monotonic()
            self.assertEqual((st["state"], st["generation"], st["generation_pid"]),
                             ("running", "1", str(pid1)))
            self.assertEqual(st["reload_generation"], "2")
            self.assertRegex(st["reload_started"], r"^\d+\.\d{9}$")
            self.assertTrue(before - 0.01 <= float(st["reload_started"]) <= after,
                            "reload_started %s not between %f and %f" % (st["reload_started"],
                                                                         before, after))
            self.assertEqual(st["reload_reason"], "")
            self.make_ready(2)
            st = self.wait_status("reload 1 succeeded", reload=1, reload_state="succeeded")
            self.assertEqual((st["state"], st["generation"], st["generation_pid"]),
                             ("running", "2", str(pid2)))
            self.assertEqual((st["reload_generation"], st["reload_reason"]), ("2", ""))

            # reload 2: gen 3 exits 3 before it is ready
            hw.signal("HUP")
            st = self.wait_status("reload 2 failed", reload=2, reload_state="failed")
            self.assertEqual((st["state"], st["generation"], st["generation_pid"]),
                             ("running", "2", str(pid2)))
            self.assertEqual(st["reload_generation"], "3")
            self.assertIn("exited with status 3 before ready", st["reload_reason"])
            self.assertNotIn("\n", st["reload_reason"])
            self.assertTrue(pid_alive(pid2))

            # shutdown with -k: state=exited and hupwatch's exit status
            hw.signal("TERM")
            self.assertEqual(hw.wait_exit(10), 0, hw.stderr())
            st = read_status(self.sf)
            self.assertIsNotNone(st, "status file gone after exit")
            self.assertEqual((st["state"], st.get("exit_status")), ("exited", "0"))

    def test_second_hupwatch_on_a_live_status_file_refused(self):
        # Two hupwatches on one status file: --reload would signal whichever wrote last.
        with Hupwatch(["-w", "0.05", "-S", self.sf], self.child()) as first:
            self.wait_status("first hupwatch running", pid=first.pid, state="running")
            with Hupwatch(["-w", "0.05", "-S", self.sf], self.child()) as second:
                self.assertEqual(second.wait_exit(10), 125, second.stderr())
                errors = [l for l in second.lines if ": error: " in l]
                self.assertEqual(len(errors), 1, second.stderr())
                self.assertIn("hupwatch pid %d is running with it" % first.pid, errors[0])
                self.assertEqual(second.log_matches(r"\bgen \d+ pid \d+ started"), [])
            self.assertEqual(read_status(self.sf)["pid"], str(first.pid))

    def test_ready_wait_is_warmup_without_readiness(self):
        with Hupwatch(["-w", "0.3", "-S", self.sf], self.child()):
            st = self.wait_status("running", state="running", generation=1)
            self.assertEqual(float(st["ready_wait"]), 0.3)

    def test_status_file_always_parseable(self):
        """Read the file in a tight loop during 10 reloads: every read is a whole, well-formed file."""
        stop = threading.Event()
        stats = {"reads": 0, "bad": []}

        def reader():
            while not stop.is_set():
                try:
                    with open(self.sf) as f:
                        text = f.read()
                    d = parse_status(text)
                    if "state" not in d or "generation" not in d:
                        raise ValueError("keys missing")
                    stats["reads"] += 1
                except FileNotFoundError as e:
                    stats["bad"].append("missing: %s" % e)
                except ValueError as e:
                    stats["bad"].append("%s: %r" % (e, text))

        with Hupwatch(["-w", "0.05", "-S", self.sf], self.child()) as hw:
            self.wait_status("gen 1 running", state="running", generation=1)
            t = threading.Thread(target=reader, daemon=True)
            t.start()
            try:
                for gen in range(2, 12):
                    mark = hw.mark()
                    hw.signal("HUP")
                    hw.wait_log(r"\bgen %d pid \d+ ready after" % gen, since=mark)
                    hw.wait_log(r"\bgen %d pid \d+ exited with status 0 after draining" % (gen - 1),
                                since=mark)
                    self.wait_status("reload %d succeeded" % (gen - 1), reload=gen - 1,
                                     reload_state="succeeded", generation=gen)
            finally:
                stop.set()
                t.join(5)
        self.assertEqual(stats["bad"][:5], [], "%d bad reads" % len(stats["bad"]))
        self.assertGreater(stats["reads"], 100)

    # ---- hupwatch --reload

    def test_reload_client_success(self):
        with Hupwatch(["-S", self.sf] + self.probe_args("10"), self.child()) as hw:
            self.make_ready(1)
            self.wait_status("running", state="running", generation=1)
            client = ClientRun(self.sf)
            client.start()
            pid2 = int(self.rep.wait_report(gen=2)["pid"])
            # the client waits while gen 2 is not ready
            self.assertIsNone(client.result)
            self.make_ready(2)
            rc, out, err, _ = client.outcome()
            self.assertEqual(rc, 0, "stdout %r stderr %r" % (out, err))
            self.assertRegex(out, r"\b2\b", "the new generation is printed")
            self.assertIn(str(pid2), out)
            self.assertEqual(len(out.splitlines()), 1, out)
            # it became current before the client said so
            st = read_status(self.sf)
            self.assertEqual((st["generation"], st["generation_pid"]), ("2", str(pid2)))
            hw.wait_log(r"\bgen 2 pid %d ready after" % pid2, timeout=5)  # logged; our reader may lag

    def test_reload_client_success_notify(self):
        cmd = by_gen(self.child("--notify-ready", 300), {1: self.child("--notify-ready", 0)})
        with Hupwatch(["-n", "-S", self.sf], cmd):
            self.wait_status("running", state="running", generation=1)
            rc, out, err, _ = reload_client(self.sf)
            self.assertEqual(rc, 0, "stdout %r stderr %r" % (out, err))
            pid2 = int(self.rep.wait_report(gen=2)["pid"])
            self.assertIn(str(pid2), out)
            st = read_status(self.sf)
            self.assertEqual((st["generation"], st["reload_state"]), ("2", "succeeded"))

    def test_reload_client_failure(self):
        cmd = by_gen(self.child("--exit", 3), {1: self.child("--serve", "--notify-ready", 0)})
        with Hupwatch(["-n", "-S", self.sf, "-l", "127.0.0.1:0"], cmd) as hw:
            port = int(hw.wait_log(r"\blistening on 127\.0\.0\.1:(\d+) ").group(1))
            st = self.wait_status("running", state="running", generation=1)
            pid1 = int(st["generation_pid"])
            rc, out, err, _ = reload_client(self.sf)
            self.assertEqual(rc, 1, "stdout %r stderr %r" % (out, err))
            self.assertIn("exited with status 3", err)
            self.assertEqual(out, "")
            # the old generation still serves
            self.assertTrue(pid_alive(pid1))
            self.assertEqual(http_get("127.0.0.1", port), (200, "gen=1 pid=%d\n" % pid1))
            st = read_status(self.sf)
            self.assertEqual((st["generation"], st["reload_state"]), ("1", "failed"))
            self.assertTrue(hw.running())

    def test_reload_client_successive_outcomes(self):
        """Deploy, broken deploy, rollback: each client run reports its own reload, not the last one's."""
        cmd = by_gen(self.child("--notify-ready", 100), {3: self.child("--exit", 3)})
        with Hupwatch(["-n", "-S", self.sf], cmd):
            self.wait_status("running", state="running", generation=1)
            for gen, want in ((2, 0), (3, 1), (4, 0)):
                rc, out, err, _ = reload_client(self.sf)
                self.assertEqual(rc, want, "reload to gen %d: stdout %r stderr %r" % (gen, out, err))
                st = read_status(self.sf)
                self.assertEqual((st["reload"], st["reload_generation"]), (str(gen - 1), str(gen)))
                if want == 0:
                    self.assertEqual(st["generation"], str(gen))
                    self.assertRegex(out, r"\b%d\b" % gen)
                else:
                    self.assertEqual(st["generation"], "2")
                    self.assertIn("exited with status 3", err)

    def test_reload_client_never_ready_fails(self):
        """The new generation never becomes ready: after the ready timeout the client says so (exit 1)."""
        cmd = by_gen(self.child(), {1: self.child("--notify-ready", 0)})
        with Hupwatch(["-n", "-t", "1", "-S", self.sf], cmd):
            self.wait_status("running", state="running", generation=1)
            rc, out, err, secs = reload_client(self.sf)
            self.assertEqual(rc, 1, "stdout %r stderr %r" % (out, err))
            self.assertIn("not ready after", err)
            self.assertGreaterEqual(secs, 0.99)

    def test_reload_client_times_out(self):
        cmd = by_gen(self.child("--notify-ready", 5000), {1: self.child("--notify-ready", 0)})
        with Hupwatch(["-n", "-S", self.sf], cmd):
            self.wait_status("running", state="running", generation=1)
            rc, out, err, secs = reload_client(self.sf, "-t", "0.5")
            self.assertEqual(rc, 124, "stdout %r stderr %r" % (out, err))
            self.assertGreaterEqual(secs, 0.45)
            self.assertLess(secs, 3.0, "-t 0.5 took %.2fs" % secs)
            # the reload itself goes on
            st = read_status(self.sf)
            self.assertEqual((st["reload"], st["reload_state"]), ("1", "in-progress"))

    def test_reload_client_no_hupwatch_there(self):
        sleeper = subprocess.Popen(["sleep", "60"])
        self.addCleanup(sleeper.wait)
        self.addCleanup(sleeper.kill)
        cases = {
            "missing": None,
            "dead pid": "pid=%d\nstarttime=1\nstate=running\ngeneration=1\n" % dead_pid(),
            "garbage": "hello world\n",
            "empty": "",
            # a live process that is not the hupwatch recorded there (pid reused): not signalled
            "pid reused": "pid=%d\nstarttime=1\nstate=running\ngeneration=1\n" % sleeper.pid,
        }
        for name, content in cases.items():
            with self.subTest(case=name):
                sf = self.path("status-%s" % name.replace(" ", "-"))
                if content is not None:
                    with open(sf, "w") as f:
                        f.write(content)
                rc, out, err, _ = reload_client(sf, "-t", "2")
                self.assertEqual(rc, 125, "stdout %r stderr %r" % (out, err))
                self.assertTrue(err.strip(), "no message on stderr")
                self.assertEqual(out, "")
                if content is not None:
                    with open(sf) as f:
                        self.assertEqual(f.read(), content, "status file changed")
        self.assertIsNone(sleeper.poll(), "the process with the reused pid was signalled")

    def test_reload_client_after_hupwatch_exited(self):
        with Hupwatch(["-k", "-w", "0.05", "-S", self.sf], self.child()) as hw:
            self.wait_status("running", state="running", generation=1)
            hw.signal("TERM")
            self.assertEqual(hw.wait_exit(10), 0)
        rc, out, err, _ = reload_client(self.sf, "-t", "2")
        self.assertEqual(rc, 125, "stdout %r stderr %r" % (out, err))
        self.assertEqual(out, "")
        # one line naming the file, the pid that ran there and how it ended
        self.assertRegex(err, r"\Ahupwatch: [^\n]*'%s'[^\n]*\bpid %d\b[^\n]*"
                         r"\bexited with status 0\b[^\n]*\n\Z" % (re.escape(self.sf), hw.pid))

    # ---- pid and status files: a symlink or a foreign file is refused and left alone

    def assert_refused(self, args, path, content, link_target=None):
        with Hupwatch(args, self.child()) as hw:
            self.assertEqual(hw.wait_exit(10), 125, hw.stderr())
            self.assertIn(path, hw.stderr())
            self.assertEqual(hw.log_matches(r"\bstarted\b"), [])
        self.assertEqual(self.rep.all(), [], "a child was started")
        if link_target is not None:
            self.assertTrue(os.path.islink(path))
            self.assertEqual(os.readlink(path), link_target)
            path = link_target
        with open(path) as f:
            self.assertEqual(f.read(), content)

    def test_status_file_symlink_refused(self):
        target = self.path("elsewhere")
        content = "pid=1\nstate=running\n"           # even one that looks like ours
        with open(target, "w") as f:
            f.write(content)
        os.symlink(target, self.sf)
        self.assert_refused(["-w", "0.05", "-S", self.sf], self.sf, content, link_target=target)

    def test_status_file_foreign_refused(self):
        with open(self.sf, "w") as f:
            f.write("precious data\n")
        self.assert_refused(["-w", "0.05", "-S", self.sf], self.sf, "precious data\n")

    def test_pid_file_symlink_refused(self):
        pf, target = self.path("hupwatch.pid"), self.path("elsewhere")
        with open(target, "w") as f:
            f.write("12345\n")
        os.symlink(target, pf)
        self.assert_refused(["-w", "0.05", "-p", pf], pf, "12345\n", link_target=target)

    def test_pid_file_foreign_refused(self):
        pf = self.path("hupwatch.pid")
        with open(pf, "w") as f:
            f.write("precious data\n")
        self.assert_refused(["-w", "0.05", "-p", pf], pf, "precious data\n")

    def test_stale_files_of_ours_are_replaced(self):
        """The counterpart of the refusals: files left by an earlier hupwatch are taken over."""
        pf = self.path("hupwatch.pid")
        with open(pf, "w") as f:
            f.write("%d\n" % dead_pid())
        with open(self.sf, "w") as f:
            f.write("pid=%d\nstarttime=1\nstate=exited\nexit_status=0\n" % dead_pid())
        with Hupwatch(["-w", "0.05", "-p", pf, "-S", self.sf], self.child()) as hw:
            self.wait_status("running", state="running", generation=1, pid=hw.pid)
            with open(pf) as f:
                self.assertEqual(f.read(), "%d\n" % hw.pid)


if __name__ == "__main__":
    unittest.main()
