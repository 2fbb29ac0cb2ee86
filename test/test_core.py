"""Integration tests of the real ./hupwatch binary: generations, reloads, signals, exit statuses,
pid file, usage errors. One test per behaviour; every wait is bounded and event-driven.

Run: python3 test/run_integration.py test/test_core.py  (add -v for test names, -k NAME to select)

The reload tests, where the way a generation becomes ready matters, are marked @each_mode: they run
once per readiness mode (-w warm-up, -n READY=1, -c ready command), each with and without -k, as
dumb-init's fixtures multiply its tests across its modes. Each copy is its own test method named
after its mode (test_failed_reload_keeps_old_generation__notify_k), so a failure names the mode;
-k __ready_cmd selects one mode. The other tests run in warm-up mode only.
"""

import contextlib
import os
import re
import shlex
import shutil
import signal
import stat
import sys
import tempfile
import time
import unittest

from harness import (CHILD, HUPWATCH, Hupwatch, Reports, catches, pid_alive, proc_state, wait_for,
                     zombies_under)

STARTED = r"info: gen %d pid (\d+) started$"
# %s: how it became ready, the mode's Mode.how
READY = r"info: gen %d pid %d ready after (\d+\.\d\d)s \(%s\)$"
TRY_HELP = "Try 'hupwatch --help' for more information."


def gen_pid(hw, gen, since=None, timeout=10):
    return int(hw.wait_log(STARTED % gen, timeout, since).group(1))


def gone(pid):
    """True once PID is neither running nor a zombie."""
    return proc_state(pid) is None


def per_gen(default, special):
    """A command running CHILD with `default` args, or special[N] for generation N (same pid: exec)."""
    cases = "".join('%d) exec "$0" %s;; ' % (g, " ".join(shlex.quote(a) for a in args))
                    for g, args in special.items())
    script = 'case "$HUPWATCH_GENERATION" in %s*) exec "$0" %s;; esac' % (
        cases, " ".join(shlex.quote(a) for a in default))
    return ["/bin/sh", "-c", script, CHILD]


def swap_symlink(link, target):
    """Point LINK at TARGET atomically, as a deploy tool does (symlink + rename)."""
    tmp = link + ".new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.rename(tmp, link)


def no_line(hw, regex, timeout, since=None):
    """True if no stderr line matches regex within timeout (a bounded negative check)."""
    try:
        hw.wait_log(regex, timeout, since)
    except AssertionError:
        return True
    return False


class Mode:
    """One way for a generation to become ready, with or without -k.

    name: the suffix of the test methods run in this mode. how: what hupwatch's ready line says in
    parentheses. args(warmup, report_dir): hupwatch's options, which keep `warmup` seconds as the
    minimum age (-w) in every mode, so a test's timing assertions hold in all of them.
    child_args: what test/child needs to become ready that way."""

    def __init__(self, name, how, readiness, child_args=(), events=(), kill_at_exit=False):
        self.name = name + ("_k" if kill_at_exit else "")
        self.how = how
        self._readiness = readiness
        self.child_args = list(child_args)
        self.events = list(events)      # what test/child records of becoming ready that way
        self.kill_at_exit = kill_at_exit

    def args(self, warmup, report_dir):
        return (self._readiness(report_dir) + ["-w", str(warmup)]
                + (["-k"] if self.kill_at_exit else []))

    def __repr__(self):
        return "Mode(%s)" % self.name


def _modes(kill_at_exit):
    return [
        Mode("warmup", "warm-up", lambda rep: [], kill_at_exit=kill_at_exit),
        Mode("notify", "READY=1", lambda rep: ["-n"], ["--notify-ready", "0"],
             ["notified READY=1"], kill_at_exit=kill_at_exit),
        # test/child writes its report (DIR/PID.report, atomically) as soon as it runs
        Mode("ready_cmd", "ready-cmd",
             lambda rep: ["-c", 'test -f %s/"$HUPWATCH_PID".report' % shlex.quote(rep),
                          "-i", "0.05"],
             kill_at_exit=kill_at_exit),
    ]


WARMUP = _modes(False)[0]
MODES = _modes(False) + _modes(True)


def each_mode(test):
    """Run this test once per Mode in MODES (see multiply_modes); inside it, self.mode is the mode."""
    test.modes = MODES
    return test


def multiply_modes(cls):
    """Class decorator: replace each @each_mode test_X by one method test_X__MODE per mode."""
    for name, test in list(vars(cls).items()):
        modes = getattr(test, "modes", None)
        if not name.startswith("test") or not modes:
            continue
        delattr(cls, name)
        for mode in modes:
            def run(self, test=test, mode=mode):
                self.mode = mode
                return test(self)
            run.__name__ = run.__qualname__ = "%s__%s" % (name, mode.name)
            run.__doc__ = test.__doc__
            setattr(cls, run.__name__, run)
    return cls


@multiply_modes
class CoreTest(unittest.TestCase):
    mode = WARMUP       # the mode of the tests not marked @each_mode

    @classmethod
    def setUpClass(cls):
        if not os.access(HUPWATCH, os.X_OK):
            raise AssertionError("%s not built (make hupwatch)" % HUPWATCH)
        if not os.access(CHILD, os.X_OK):
            raise AssertionError("%s not built (make test/child)" % CHILD)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hupwatch-core-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.rep = Reports(os.path.join(self.tmp, "reports"))

    def child_args(self, *args):
        """test/child's arguments: its report directory, what the mode needs, then args."""
        return ["--report", self.rep.dir] + self.mode.child_args + [str(a) for a in args]

    def child(self, *args):
        return [CHILD] + self.child_args(*args)

    def ready_args(self, warmup):
        """hupwatch's options for the mode, with `warmup` seconds as the minimum age."""
        return self.mode.args(warmup, self.rep.dir)

    def events(self, pid):
        """PID's events (signals it got, ...) without those of becoming ready in this mode."""
        return [e for e in self.rep.events(pid) if e not in self.mode.events]

    def wait_ready(self, hw, gen, pid, since=None, timeout=10):
        """Seconds gen pid took to become ready, from its ready line (which names the mode)."""
        rx = READY % (gen, pid, re.escape(self.mode.how))
        return float(hw.wait_log(rx, timeout, since).group(1))

    def ready_then_hup(self, hw):
        """Wait for gen 1 to start and be ready, then SIGHUP: (gen 1's pid, the log mark taken
        just before the HUP, gen 2's pid once started)."""
        p1 = gen_pid(hw, 1)
        self.wait_ready(hw, 1, p1)
        m = hw.mark()
        hw.signal("HUP")
        return p1, m, gen_pid(hw, 2, since=m)

    def hup_until_ready(self, hw, gen):
        """SIGHUP, then wait for generation gen to start and be ready: (the log mark taken just
        before the HUP, gen's pid)."""
        m = hw.mark()
        hw.signal("HUP")
        pid = gen_pid(hw, gen, since=m)
        self.wait_ready(hw, gen, pid, since=m)
        return m, pid

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def make_release(self, name, with_app=True):
        d = self.path("releases", name)
        os.makedirs(os.path.join(d, "bin"))
        if with_app:
            shutil.copy(CHILD, os.path.join(d, "bin", "app"))
        return d

    # ------------------------------------------------------------ generations and reloads

    def test_gen1_own_process_group_and_stdio(self):
        with Hupwatch(["-w", "0.3"], self.child()) as hw:
            pid = gen_pid(hw, 1)
            r = self.rep.wait_report(gen=1)
            self.assertEqual(int(r["pid"]), pid)
            self.assertEqual(int(r["pgid"]), pid, "gen 1 must lead its own process group")
            self.assertNotEqual(int(r["pgid"]), os.getpgid(hw.pid))
            self.assertEqual(int(r["ppid"]), hw.pid)
            self.assertEqual(int(r["sid"]), os.getsid(hw.pid))
            for fd in (0, 1, 2):
                self.assertEqual(os.readlink("/proc/%d/fd/%d" % (pid, fd)),
                                 os.readlink("/proc/%d/fd/%d" % (hw.pid, fd)),
                                 "fd %d is not hupwatch's" % fd)
            took = self.wait_ready(hw, 1, pid)
            self.assertGreaterEqual(took, 0.29)
            for line in hw.lines:
                self.assertRegex(line, r"^hupwatch\[%d\]: (debug|info|warning|error): " % hw.pid)

    @each_mode
    def test_hup_starts_gen2_then_stops_gen1_once_gen2_ready(self):
        with Hupwatch(self.ready_args("0.3"), self.child()) as hw:
            p1 = gen_pid(hw, 1)
            self.wait_ready(hw, 1, p1)
            m = hw.mark()
            hw.signal("HUP")
            hw.wait_log(r"info: reload requested \(SIGHUP\)$", since=m)
            p2 = gen_pid(hw, 2, since=m)
            self.assertNotEqual(p1, p2)
            self.assertTrue(pid_alive(p1), "gen 1 must serve while gen 2 warms up")
            took = self.wait_ready(hw, 2, p2, since=m)
            self.assertGreaterEqual(took, 0.29)
            hw.wait_log(r"info: gen 1 pid %d stopping \(SIGTERM\)$" % p1, since=m)
            hw.wait_log(r"info: gen 1 pid %d exited with status 0 after draining \d+\.\d\ds$" % p1,
                        since=m)
            idx = {}
            for i, l in enumerate(hw.lines):
                for key, rx in (("started", r"gen 2 pid %d started" % p2),
                                ("ready", r"gen 2 pid %d ready" % p2),
                                ("stopping", r"gen 1 pid %d stopping" % p1)):
                    if re.search(rx, l):
                        idx.setdefault(key, i)
            self.assertLess(idx["started"], idx["ready"])
            self.assertLess(idx["ready"], idx["stopping"], "gen 1 stopped before gen 2 was ready")
            self.assertIn("term", self.rep.events(p1))
            wait_for(lambda: gone(p1), 5, "gen 1 reaped")
            r2 = self.rep.wait_report(gen=2)
            self.assertEqual(int(r2["pid"]), p2)
            self.assertEqual(int(r2["pgid"]), p2)
            self.assertTrue(hw.running() and pid_alive(p2))
            self.assertEqual(self.events(p2), [])

    @each_mode
    def test_hups_during_starting_generation_coalesce_into_one_reload(self):
        with Hupwatch(self.ready_args("0.5"), self.child()) as hw:
            p1, m, p2 = self.ready_then_hup(hw)
            for _ in range(5):
                hw.signal("HUP")
            hw.wait_log(r"info: reload requested \(SIGHUP\) while gen 2 is starting; queued$",
                        since=m)
            self.assertTrue(proc_state(p2) is not None)
            self.wait_ready(hw, 2, p2, since=m)
            p3 = gen_pid(hw, 3, since=m)
            self.wait_ready(hw, 3, p3, since=m)
            hw.wait_log(r"gen 2 pid %d exited with status 0 after draining" % p2, since=m)
            # a spurious 4th generation would start as soon as gen 3 settled
            self.assertTrue(no_line(hw, r"gen 4 pid", 0.8), "extra reload:\n" + hw.stderr())
            self.assertEqual(len(hw.log_matches(r"info: gen \d+ pid \d+ started$")), 3)
            self.assertEqual(sorted(r["generation"] for r in self.rep.all()), ["1", "2", "3"])

    @each_mode
    def test_failed_reload_keeps_old_generation(self):
        flag = self.path("fail")
        with Hupwatch(self.ready_args("0.3"), self.child("--fail-if-exists", flag)) as hw:
            p1 = gen_pid(hw, 1)
            self.wait_ready(hw, 1, p1)
            open(flag, "w").close()
            m = hw.mark()
            hw.signal("HUP")
            gen_pid(hw, 2, since=m)
            hw.wait_log(r"error: gen 2 failed: exited with status 1 before ready; "
                        r"gen 1 stays current$", since=m)
            self.assertTrue(pid_alive(p1))
            self.assertEqual(hw.log_matches(r"gen 1 pid \d+ stopping", since=m), [])
            self.assertEqual(self.events(p1), [])
            self.assertTrue(hw.running())
            # the next reload works
            os.unlink(flag)
            m, _ = self.hup_until_ready(hw, 3)
            hw.wait_log(r"info: gen 1 pid %d stopping \(SIGTERM\)$" % p1, since=m)

    def test_exec_failure_after_symlink_swap_keeps_old(self):
        r1 = self.make_release("1")
        r2 = self.make_release("2", with_app=False)
        current = self.path("current")
        os.symlink(r1, current)
        cmd = ["./bin/app", "--report", self.rep.dir]
        with Hupwatch(["-w", "0.2"], cmd, cwd=current) as hw:
            p1 = gen_pid(hw, 1)
            self.wait_ready(hw, 1, p1)
            self.assertEqual(self.rep.wait_report(gen=1)["cwd"], os.path.realpath(r1))
            swap_symlink(current, r2)
            m = hw.mark()
            hw.signal("HUP")
            hw.wait_log(r"error: gen 2 failed: cannot execute '\./bin/app': No such file or "
                        r"directory; gen 1 stays current$", since=m)
            self.assertTrue(pid_alive(p1))
            self.assertTrue(hw.running())
            self.assertEqual(hw.log_matches(r"gen 1 pid \d+ stopping", since=m), [])
            self.assertIsNone(self.rep.find(gen=2))
            # roll back: the next reload runs release 1 again
            swap_symlink(current, r1)
            self.hup_until_ready(hw, 3)
            self.assertEqual(self.rep.wait_report(gen=3)["cwd"], os.path.realpath(r1))

    def test_cwd_follows_current_symlink_and_rollback(self):
        r1, r2 = self.make_release("1"), self.make_release("2")
        current = self.path("current")
        os.symlink(r1, current)
        cmd = ["./bin/app", "--report", self.rep.dir]
        with Hupwatch(["-w", "0.2"], cmd, cwd=current, env={"PWD": current}) as hw:
            for gen, target in ((1, r1), (2, r2), (3, r1)):
                if gen > 1:
                    swap_symlink(current, target)
                    m = hw.mark()
                    hw.signal("HUP")
                else:
                    m = 0
                p = gen_pid(hw, gen, since=m)
                self.wait_ready(hw, gen, p, since=m)
                r = self.rep.wait_report(gen=gen)
                self.assertEqual(r["cwd"], os.path.realpath(target), "gen %d" % gen)

    def test_chdir_option_follows_symlink_and_failure_keeps_old(self):
        r1, r2 = self.make_release("1"), self.make_release("2")
        current = self.path("current")
        os.symlink(r1, current)
        cmd = ["./bin/app", "--report", self.rep.dir]
        with Hupwatch(["-w", "0.2", "-d", current], cmd, cwd="/") as hw:
            p1 = gen_pid(hw, 1)
            self.wait_ready(hw, 1, p1)
            self.assertEqual(self.rep.wait_report(gen=1)["cwd"], os.path.realpath(r1))
            swap_symlink(current, r2)
            _, p2 = self.hup_until_ready(hw, 2)
            self.assertEqual(self.rep.wait_report(gen=2)["cwd"], os.path.realpath(r2))
            # a dangling symlink: the reload fails, gen 2 stays
            swap_symlink(current, self.path("releases", "missing"))
            m = hw.mark()
            hw.signal("HUP")
            hw.wait_log(r"error: gen 3 failed: cannot change directory to '%s': No such file "
                        r"or directory; gen 2 stays current$" % re.escape(current), since=m)
            self.assertTrue(pid_alive(p2) and hw.running())

    def test_chdir_failure_at_first_spawn_exits_125(self):
        with Hupwatch(["-w", "0.2", "-d", self.path("nowhere")], self.child()) as hw:
            self.assertEqual(hw.wait_exit(), 125)
            self.assertIn("nowhere", hw.stderr())
            self.assertEqual(self.rep.all(), [])

    def test_stop_timeout_kills_whole_process_group(self):
        with Hupwatch(["-w", "0.2", "-T", "0.5"],
                      self.child("--ignore-term", "--grandchild")) as hw:
            p1 = gen_pid(hw, 1)
            g1 = int(self.rep.wait_report(gen=1)["grandchild"])
            self.assertEqual(os.getpgid(g1), p1)
            self.wait_ready(hw, 1, p1)
            m, p2 = self.hup_until_ready(hw, 2)
            hw.wait_log(r"info: gen 1 pid %d stopping \(SIGTERM\)$" % p1, since=m)
            self.rep.wait_event(p1, "term ignored")
            hw.wait_log(r"warning: gen 1 pid %d still running after stop timeout 0\.50s; "
                        r"sending SIGKILL to its process group$" % p1, since=m)
            d = float(hw.wait_log(r"info: gen 1 pid %d killed by SIGKILL after draining "
                                  r"(\d+\.\d\d)s$" % p1, since=m).group(1))
            self.assertGreaterEqual(d, 0.49)
            wait_for(lambda: not pid_alive(p1) and not pid_alive(g1), 5,
                     "gen 1 and its grandchild dead")
            self.assertTrue(pid_alive(p2) and hw.running())
            self.assertTrue(pid_alive(int(self.rep.wait_report(gen=2)["grandchild"])))

    def test_stop_signal_goes_to_main_pid_only_then_cont(self):
        # the grandchild dies of SIGINT if it gets one: only the main pid may be signalled
        with Hupwatch(["-w", "0.2", "-s", "INT", "-T", "0.4"], self.child("--grandchild")) as hw:
            p1 = gen_pid(hw, 1)
            g1 = int(self.rep.wait_report(gen=1)["grandchild"])
            self.wait_ready(hw, 1, p1)
            m = hw.mark()
            hw.signal("HUP")
            p2 = gen_pid(hw, 2, since=m)
            hw.wait_log(r"info: gen 1 pid %d stopping \(SIGINT\)$" % p1, since=m)
            events = self.rep.wait_event(p1, "signal CONT")
            self.assertEqual(events[:2], ["signal INT", "signal CONT"])
            self.assertTrue(pid_alive(g1), "the stop signal reached the grandchild")
            hw.wait_log(r"info: gen 1 pid %d killed by SIGKILL after draining" % p1, since=m)
            wait_for(lambda: not pid_alive(p1) and not pid_alive(g1), 5, "gen 1 group killed")
            self.assertTrue(pid_alive(p2) and hw.running())

    # ------------------------------------------------------------ exit statuses

    def test_exit_status_passthrough(self):
        cases = [("--exit", "0", 0), ("--exit", "1", 1), ("--exit", "3", 3),
                 ("--exit", "255", 255), ("--kill-self", "SEGV", 139),
                 ("--kill-self", "KILL", 137)]
        with contextlib.ExitStack() as stack:
            runs = []
            for opt, val, want in cases:
                hw = stack.enter_context(
                    Hupwatch(["-w", "0.1"], self.child("--delay", "400", opt, val)))
                runs.append((hw, opt, val, want))
            for hw, opt, val, want in runs:
                rc = hw.wait_exit(10)
                self.assertEqual(rc, want, "%s %s:\n%s" % (opt, val, hw.stderr()))
                what = ("exited with status %d" % want if opt == "--exit"
                        else "killed by SIG%s" % val)
                hw.wait_log(r"error: gen 1 pid \d+ %s; exiting with status %d$" % (what, want))

    def test_command_not_found_127_and_not_executable_126(self):
        noexec = self.path("noexec")
        with open(noexec, "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(noexec, 0o644)
        cases = [(["/nonexistent/cmd"], 127, "/nonexistent/cmd", "No such file or directory"),
                 (["hupwatch-test-no-such-command"], 127, "hupwatch-test-no-such-command",
                  "No such file or directory"),
                 ([noexec], 126, noexec, "Permission denied")]
        with contextlib.ExitStack() as stack:
            runs = [(stack.enter_context(Hupwatch(["-w", "0.1"], cmd)), rc, name, err)
                    for cmd, rc, name, err in cases]
            for hw, rc, name, err in runs:
                self.assertEqual(hw.wait_exit(), rc, hw.stderr())
                hw.wait_log(r"error: gen 1 failed: cannot execute '%s': %s$" % (re.escape(name), err))
                self.assertEqual(hw.log_matches(r"gen 1 pid \d+ ready"), [])

    def test_sigstop_is_not_an_exit(self):
        with Hupwatch(["-w", "0.2"], self.child()) as hw:
            p1 = gen_pid(hw, 1)
            self.wait_ready(hw, 1, p1)
            m = hw.mark()
            os.kill(p1, signal.SIGSTOP)
            wait_for(lambda: proc_state(p1) == "T", 5, "gen 1 stopped")
            self.assertTrue(no_line(hw, r"exit|killed|stopping", 0.5, since=m), hw.stderr())
            self.assertTrue(hw.running())
            os.kill(p1, signal.SIGCONT)
            self.rep.wait_event(p1, "signal CONT")
            self.assertTrue(pid_alive(p1) and hw.running())
            self.assertEqual(hw.log_matches(r"exit|killed", since=m), [])
            # and hupwatch still manages it: a reload replaces it
            m, _ = self.hup_until_ready(hw, 2)
            hw.wait_log(r"gen 1 pid %d exited with status 0 after draining" % p1, since=m)

    # ------------------------------------------------------------ shutdown

    def test_term_int_quit_without_k_exit_0_leaving_child(self):
        with contextlib.ExitStack() as stack:
            runs = []
            for sig in ("TERM", "INT", "QUIT"):
                hw = stack.enter_context(Hupwatch(["-w", "0.1"], self.child()))
                runs.append((hw, sig, gen_pid(hw, 1)))
            for hw, sig, pid in runs:
                self.wait_ready(hw, 1, pid)
            t0 = time.monotonic()
            for hw, sig, pid in runs:
                hw.signal(sig)
            for hw, sig, pid in runs:   # at once: without -k nothing is waited for (gen 1 never exits)
                self.assertEqual(hw.proc.wait(5), 0, hw.stderr())
            self.assertLess(time.monotonic() - t0, 5)
            for hw, sig, pid in runs:
                self.assertEqual(hw.wait_exit(3), 0, hw.stderr())
                hw.wait_log(r"info: SIG%s received; exiting, leaving gen 1 pid %d running$"
                            % (sig, pid))
                self.assertTrue(pid_alive(pid), "gen 1 must keep running after SIG%s" % sig)
                self.assertEqual(self.rep.events(pid), [])

    def test_term_with_k_stops_child_and_removes_pid_file(self):
        cases = [("TERM", self.child(), 0, "term"),
                 ("INT", self.child("--term-exit", "7"), 7, "term"),
                 ("QUIT", ["/bin/sleep", "1000"], 143, None)]
        with contextlib.ExitStack() as stack:
            runs = []
            for i, (sig, cmd, want, event) in enumerate(cases):
                pidfile = self.path("hw%d.pid" % i)
                hw = stack.enter_context(Hupwatch(["-w", "0.1", "-k", "-p", pidfile], cmd))
                runs.append((hw, sig, want, event, pidfile, gen_pid(hw, 1)))
            for hw, sig, want, event, pidfile, pid in runs:
                self.wait_ready(hw, 1, pid)
                self.assertTrue(os.path.exists(pidfile))
                hw.signal(sig)
            for hw, sig, want, event, pidfile, pid in runs:
                self.assertEqual(hw.wait_exit(5), want, hw.stderr())
                hw.wait_log(r"info: SIG%s received; stopping all generations$" % sig)
                hw.wait_log(r"info: gen 1 pid %d stopping \(SIGTERM\)$" % pid)
                self.assertFalse(pid_alive(pid))
                self.assertFalse(os.path.exists(pidfile), "pid file left behind")
                if event:
                    self.assertIn(event, self.rep.events(pid))

    def test_k_stops_every_generation(self):
        # gen 1 becomes ready (READY=1); gen 2 never does, so it is still starting at TERM
        cmd = per_gen(["--report", self.rep.dir], {1: ["--report", self.rep.dir,
                                                       "--notify-ready", "0"]})
        with Hupwatch(["-n", "-t", "0", "-k"], cmd) as hw:
            p1 = gen_pid(hw, 1)
            hw.wait_log(r"info: gen 1 pid %d ready after \d+\.\d\ds \(READY=1\)$" % p1)
            m = hw.mark()
            hw.signal("HUP")
            p2 = gen_pid(hw, 2, since=m)
            self.rep.wait_report(gen=2)
            # test/child reports before it installs its handlers: a TERM before would go unrecorded
            wait_for(lambda: catches(p2, signal.SIGTERM), 5, "gen 2's TERM handler")
            self.assertEqual(hw.log_matches(r"gen 2 pid \d+ ready"), [])
            hw.signal("TERM")
            self.assertEqual(hw.wait_exit(5), 0, hw.stderr())
            for p in (p1, p2):
                self.assertIn("term", self.rep.events(p))
                self.assertFalse(pid_alive(p))

    def test_drain_signal_comes_first_then_the_stop_signal(self):
        # --drain-signal USR1 --drain-time 0.5: the old generation gets USR1, then TERM 0.5 s later
        # (the drain counts as draining); a generation that never became ready gets TERM alone.
        cmd = ["/bin/sh", "-c", 'case "$HUPWATCH_GENERATION" in 3) exec "$0" "$@" --exit 3;; '
               '*) exec "$0" "$@";; esac', CHILD] + self.child_args()
        with Hupwatch(["-w", "0.2", "--drain-signal", "USR1", "--drain-time", "0.5"], cmd) as hw:
            p1 = gen_pid(hw, 1)
            self.wait_ready(hw, 1, p1)
            wait_for(lambda: catches(p1, signal.SIGUSR1), 5, "gen 1's handlers")
            m = hw.mark()
            hw.signal("HUP")
            p2 = gen_pid(hw, 2, since=m)
            self.wait_ready(hw, 2, p2, since=m)
            hw.wait_log(r"info: gen 1 pid %d draining \(SIGUSR1\), stop signal in 0\.50s$" % p1, since=m)
            hw.wait_log(r"info: gen 1 pid %d stopping \(SIGTERM\)$" % p1, since=m)
            d = float(hw.wait_log(r"info: gen 1 pid %d exited with status 0 after draining (\d+\.\d\d)s$"
                                  % p1, since=m).group(1))
            self.assertGreaterEqual(d, 0.49, "the stop signal came before --drain-time")
            self.assertEqual(self.rep.events(p1)[:2], ["signal USR1", "term"])
            # gen 3 exits 3 before it is ready: no drain for it, and gen 2 goes on
            m = hw.mark()
            wait_for(lambda: catches(p2, signal.SIGUSR1), 5, "gen 2's handlers")
            hw.signal("HUP")
            hw.wait_log(r"\bgen 3 failed: exited with status 3 before ready", since=m)
            self.assertEqual(hw.log_matches(r"draining \(SIGUSR1\)", since=m), [])
            self.assertNotIn("signal USR1", self.rep.events(p2))
            self.assertTrue(hw.running())

    def test_drain_options_usage(self):
        for args, msg in ((["--drain-signal", "KILL"], "--drain-signal: SIGKILL cannot be handled: 'KILL'"),
                          (["--drain-signal", "stop"], "--drain-signal: SIGSTOP cannot be handled: 'stop'"),
                          (["--drain-signal", "NOPE"], "--drain-signal: unknown signal 'NOPE'"),
                          (["--drain-signal", "TSTP", "--drain-time", "-1"],
                           "--drain-time: invalid duration '-1'")):
            with self.subTest(args=args), Hupwatch(args, self.child()) as hw:
                self.assertEqual(hw.wait_exit(), 125, hw.stderr())
                self.assertEqual(hw.lines, ["hupwatch: " + msg, "Try 'hupwatch --help' for more information."])
                self.assertEqual(self.rep.all(), [])
        with Hupwatch(["-w", "0.1", "--drain-time", "2"], self.child()) as hw:
            hw.wait_log(r"warning: --drain-time has no effect without --drain-signal$")
            self.wait_ready(hw, 1, gen_pid(hw, 1))

    def test_repeated_term_during_k_shutdown_changes_nothing(self):
        with Hupwatch(["-w", "0.1", "-k", "-T", "1"], self.child("--ignore-term")) as hw:
            p1 = gen_pid(hw, 1)
            self.wait_ready(hw, 1, p1)
            t0 = time.monotonic()
            hw.signal("TERM")
            self.rep.wait_event(p1, "term ignored")
            for _ in range(3):
                hw.signal("TERM")
            self.assertEqual(hw.wait_exit(5), 137, hw.stderr())
            self.assertGreaterEqual(time.monotonic() - t0, 0.95, "stop timeout cut short")
            self.assertEqual(len(hw.log_matches(r"stopping all generations$")), 1, hw.stderr())
            self.assertEqual(len(hw.log_matches(r"gen 1 pid \d+ stopping")), 1, hw.stderr())
            self.assertEqual(self.rep.events(p1).count("term ignored"), 1, self.rep.events(p1))
            hw.wait_log(r"warning: gen 1 pid %d still running after stop timeout 1\.00s" % p1)
            self.assertFalse(pid_alive(p1))

    # ------------------------------------------------------------ signals, files, environment

    def test_forwards_usr1_usr2_winch_ttin_ttou(self):
        with Hupwatch(["-w", "0.1"], self.child()) as hw:
            p1 = gen_pid(hw, 1)
            self.wait_ready(hw, 1, p1)
            for sig in ("USR1", "USR2", "WINCH", "TTIN", "TTOU"):
                hw.signal(sig)
                hw.wait_log(r"info: forwarding SIG%s to gen 1 pid %d$" % (sig, p1))
                self.rep.wait_event(p1, "signal " + sig)
            # after a reload they go to the new current generation only
            m, p2 = self.hup_until_ready(hw, 2)
            hw.signal("USR2")
            hw.wait_log(r"info: forwarding SIGUSR2 to gen 2 pid %d$" % p2, since=m)
            self.rep.wait_event(p2, "signal USR2")
            self.assertEqual(self.rep.events(p1).count("signal USR2"), 1)
            self.assertTrue(hw.running())

    def test_pid_file_written_before_first_spawn_and_removed(self):
        piddir = self.path("run")
        os.mkdir(piddir)
        pidfile = os.path.join(piddir, "hupwatch.pid")
        seen = self.path("seen")
        cmd = ["/bin/sh", "-c", 'cat "$1" > "$2"; exec "$0" --report "$3"', CHILD,
               pidfile, seen, self.rep.dir]
        with Hupwatch(["-w", "0.1", "-p", pidfile], cmd) as hw:
            p1 = gen_pid(hw, 1)
            self.wait_ready(hw, 1, p1)
            self.rep.wait_report(gen=1)
            with open(seen) as f:
                self.assertEqual(f.read(), "%d\n" % hw.pid, "pid file not there at first spawn")
            with open(pidfile) as f:
                self.assertEqual(f.read(), "%d\n" % hw.pid)
            self.assertEqual(os.listdir(piddir), ["hupwatch.pid"], "temporary file left over")
            os.kill(p1, signal.SIGKILL)
            self.assertEqual(hw.wait_exit(), 137)
            self.assertEqual(os.listdir(piddir), [], "pid file not removed at exit")

    def test_pid_and_status_files_replaced_by_rename(self):
        # Both files are written to a temporary file and renamed over the old one, never in
        # place: a reader sees the old file or the new one, never half of one. A second hard link
        # to the old file shows it: an in-place write would change what the link reads.
        pidfile, status = self.path("hw.pid"), self.path("hw.status")
        stale = {pidfile: "999999\n", status: "pid=999999\nstate=exited\nexit_status=0\n"}
        for path, text in stale.items():
            with open(path, "w") as f:
                f.write(text)
            os.link(path, path + ".link")
        with Hupwatch(["-w", "0.1", "-p", pidfile, "-S", status], self.child()) as hw:
            p1 = gen_pid(hw, 1)
            self.wait_ready(hw, 1, p1)
            with open(pidfile) as f:
                self.assertEqual(f.read(), "%d\n" % hw.pid)

            def status_says_running():
                with open(status) as f:
                    return re.match(r"pid=%d\n(.*\n)*state=running\n" % hw.pid, f.read())
            # The status file is written once the loop has acted on the ready generation.
            wait_for(status_says_running, 5, "status file says state=running")
            for path, text in stale.items():
                with open(path + ".link") as f:
                    self.assertEqual(f.read(), text, "%s was rewritten in place" % path)
                self.assertNotEqual(os.stat(path).st_ino, os.stat(path + ".link").st_ino)
                self.assertEqual(os.stat(path).st_mode & 0o777, 0o644)
            self.assertEqual(sorted(os.listdir(self.tmp)),
                             sorted(["hw.pid", "hw.pid.link", "hw.status", "hw.status.link",
                                     "reports"]), "temporary file left over")

    def test_stale_pid_file_is_replaced(self):
        pidfile = self.path("hw.pid")
        with open(pidfile, "w") as f:
            f.write("999999\n")
        with Hupwatch(["-w", "0.1", "-p", pidfile], self.child("--delay", "300", "--exit", "0")) as hw:
            gen_pid(hw, 1)
            with open(pidfile) as f:
                self.assertEqual(f.read(), "%d\n" % hw.pid)
            self.assertEqual(hw.wait_exit(), 0)
            self.assertFalse(os.path.lexists(pidfile))

    def test_refuses_foreign_pid_file(self):
        text = self.path("notes.txt")
        with open(text, "w") as f:
            f.write("precious data\n")
        target = self.path("target")
        with open(target, "w") as f:
            f.write("123\n")
        link = self.path("link.pid")
        os.symlink(target, link)
        with contextlib.ExitStack() as stack:
            runs = [stack.enter_context(Hupwatch(["-w", "0.1", "-p", p], self.child()))
                    for p in (text, link)]
            for hw in runs:
                self.assertEqual(hw.wait_exit(), 125, hw.stderr())
                self.assertEqual(hw.log_matches(r"gen 1 pid"), [])
        with open(text) as f:
            self.assertEqual(f.read(), "precious data\n")
        self.assertTrue(os.path.islink(link))
        with open(target) as f:
            self.assertEqual(f.read(), "123\n")
        self.assertEqual(self.rep.all(), [])

    def test_child_gets_only_stdio_and_clean_signal_state(self):
        with contextlib.ExitStack() as stack:
            plain = stack.enter_context(Hupwatch(["-w", "0.1"], self.child()))
            busy = stack.enter_context(Hupwatch(
                ["-v", "-n", "-p", self.path("hw.pid"), "-S", self.path("status")],
                self.child("--notify-ready", "0")))
            for hw in (plain, busy):
                pid = gen_pid(hw, 1)
                r = self.rep.wait_report(pid=pid)
                self.assertEqual(r["fds"], "0,1,2", hw.argv)
                self.assertEqual(int(r["sigblk"], 16), 0, "blocked: %s" % r["sigblk"])
                self.assertEqual(int(r["sigign"], 16), 0, "ignored: %s" % r["sigign"])

    def test_inherited_fds_and_posix_spawn_signals_not_passed_on(self):
        # A deploy script's pipe that hupwatch inherits must not reach the server, and
        # glibc's posix_spawn (GNU make, Python) leaves signals 32 and 33 ignored in hupwatch:
        # the generations still start clean.
        launcher = self.path("launch.py")
        with open(launcher, "w") as f:
            f.write("#!%s\nimport os, sys\n" % sys.executable +
                    "r, w = os.pipe(); os.set_inheritable(r, True); os.set_inheritable(w, True)\n"
                    "pid = os.posix_spawn(%r, [%r] + sys.argv[1:], os.environ)\n"
                    "os.close(r); os.close(w)\n"
                    "sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"
                    % (HUPWATCH, HUPWATCH))
        os.chmod(launcher, 0o755)
        with Hupwatch(["-w", "0.1"], self.child(), binary=launcher) as hw:
            pid = gen_pid(hw, 1)
            r = self.rep.wait_report(pid=pid)
            self.assertEqual(r["fds"], "0,1,2")
            self.assertEqual(int(r["sigign"], 16), 0, "ignored: %s" % r["sigign"])
            self.assertEqual(int(r["sigblk"], 16), 0, "blocked: %s" % r["sigblk"])

    def test_hupwatch_generation_env_and_upstream_vars_not_passed(self):
        env = {"HUPWATCH_GENERATION": "99", "LISTEN_FDS": "2", "LISTEN_PID": "1",
               "LISTEN_FDNAMES": "a:b"}
        with Hupwatch(["-w", "0.1"], self.child(), env=env) as hw:
            p1, _, p2 = self.ready_then_hup(hw)
            r1, r2 = self.rep.wait_report(pid=p1), self.rep.wait_report(pid=p2)
            self.assertEqual((r1["generation"], r2["generation"]), ("1", "2"))
            for r in (r1, r2):
                self.assertEqual((r["listen_fds"], r["listen_pid"], r["listen_fdnames"]),
                                 ("", "", ""))

    def test_orphans_are_reaped(self):
        with Hupwatch(["-v", "-w", "0.1"], self.child("--orphan", "300")) as hw:
            p1 = gen_pid(hw, 1)
            orphan = wait_for(self.rep.orphans, 5, "orphan announced")[0]
            ppid = parent_of(orphan)
            if ppid is not None:    # still alive: it must have been adopted by hupwatch
                self.assertEqual(ppid, hw.pid, "orphan not adopted by hupwatch (subreaper)")
            hw.wait_log(r"debug: reaped orphan pid %d \(exited with status 0\)$" % orphan)
            wait_for(lambda: gone(orphan), 2, "orphan %d reaped (not a zombie)" % orphan)
            self.assertEqual(hw.log_matches(r"gen 1 pid %d (exited|killed)" % p1), [])
            self.assertEqual(zombies_under(hw.pid), [])
            self.assertTrue(hw.running())

    # ------------------------------------------------------------ command line

    def usage_error(self, hw, option, value):
        self.assertEqual(hw.wait_exit(), 125, hw.argv)
        hw.wait_output()
        self.assertEqual(len(hw.lines), 2, "%s:\n%s" % (hw.argv, hw.stderr()))
        self.assertRegex(hw.lines[0], r"^hupwatch: %s: .*'%s'$" % (option, re.escape(value)))
        self.assertEqual(hw.lines[1], TRY_HELP)
        self.assertEqual(hw.out_lines, [])

    def test_usage_errors_exit_125_naming_option_and_value(self):
        cases = []
        for opt, long in (("-w", "--warmup-time"), ("-T", "--stop-timeout"),
                          ("-t", "--ready-timeout"), ("-i", "--ready-interval")):
            for v in ("abc", "-1", "1e3", "inf", "nan", "1s", " 1", "1000000001"):
                cases.append(([opt, v], "(%s|%s)" % (opt, long), v))
        cases.append((["--warmup-time=abc"], "--warmup-time", "abc"))
        for v in ("FOO", "0", "99", "SIGFOO"):
            cases.append((["-s", v], "(-s|--stop-signal)", v))
        with contextlib.ExitStack() as stack:
            runs = [(stack.enter_context(Hupwatch(args, self.child())), opt, v)
                    for args, opt, v in cases]
            for hw, opt, v in runs:
                self.usage_error(hw, opt, v)
            missing = stack.enter_context(Hupwatch(["-w", "1"], []))
            self.assertEqual(missing.wait_exit(), 125)
            missing.wait_output()
            self.assertEqual(len(missing.lines), 2, missing.stderr())
            self.assertRegex(missing.lines[0], r"^hupwatch: ")
            self.assertEqual(missing.lines[1], TRY_HELP)
        self.assertEqual(self.rep.all(), [], "a child was started despite a usage error")

    def test_valid_durations_and_signal_names_accepted(self):
        # Each form is accepted and acts: -w is gen 1's warm-up, -s the signal the old generation
        # gets at the swap, -T the drain after which its group is killed (gen 1 ignores TERM and
        # only records INT, so nothing but -T ends it). (args, warm-up, signal, -T or None)
        cases = [(["-w", "0", "-s", "TERM"], 0, "TERM", None),
                 (["-w", ".05", "-s", "SIGTERM"], 0.05, "TERM", None),
                 (["-w", "0.05", "-s", "sigterm", "-T", "1"], 0.05, "TERM", 1.0),
                 (["-w", "0", "-s", "15", "-T", "0.25"], 0, "TERM", 0.25),
                 (["-w", "0.2", "-s", "int", "-T", ".5"], 0.2, "INT", 0.5),
                 (["-w", "0", "-T", "1000000000", "-t", "1000000000", "-i", "0.2"], 0, "TERM",
                  None)]
        with contextlib.ExitStack() as stack:
            runs = [(stack.enter_context(Hupwatch(a, self.child("--ignore-term"))), w, sig, t)
                    for a, w, sig, t in cases]
            for hw, w, sig, t in runs:
                p1 = gen_pid(hw, 1)
                self.assertGreaterEqual(self.wait_ready(hw, 1, p1), w - 0.005, hw.stderr())
                m, p2 = self.hup_until_ready(hw, 2)
                hw.wait_log(r"info: gen 1 pid %d stopping \(SIG%s\)$" % (p1, sig), since=m)
                self.rep.wait_event(p1, "term ignored" if sig == "TERM" else "signal " + sig)
                if t is not None:
                    hw.wait_log(r"warning: gen 1 pid %d still running after stop timeout %.2fs; "
                                % (p1, t), since=m)
                    d = float(hw.wait_log(r"info: gen 1 pid %d killed by SIGKILL after draining "
                                          r"(\d+\.\d\d)s$" % p1, since=m).group(1))
                    self.assertGreaterEqual(d, t - 0.01, "%s: -T cut short" % hw.argv)
                    wait_for(lambda: gone(p1), 5, "gen 1 killed at -T")
                else:
                    self.assertTrue(pid_alive(p1), "%s: gen 1 killed without -T" % hw.argv)
                self.assertTrue(hw.running() and pid_alive(p2))

    def test_help_and_version(self):
        with Hupwatch(["-h"], []) as h, Hupwatch(["--help"], []) as h2, \
                Hupwatch(["-V"], []) as v, Hupwatch(["--version"], []) as v2:
            for hw in (h, h2):
                self.assertEqual(hw.wait_exit(), 0)
                hw.wait_output()
                out = hw.stdout()
                self.assertRegex(out, r"(?i)usage:.*hupwatch")
                for opt in ("--warmup-time", "--stop-signal", "--kill-at-exit", "--pid-file"):
                    self.assertIn(opt, out)
                self.assertEqual(hw.lines, [])
            for hw in (v, v2):
                self.assertEqual(hw.wait_exit(), 0)
                hw.wait_output()
                self.assertEqual(len(hw.out_lines), 1, hw.stdout())
                self.assertRegex(hw.out_lines[0], r"^hupwatch \d+\.\d+\.\d+ \(handover \d+\)$")
                self.assertEqual(hw.lines, [])

    def test_verbose_shows_debug_lines_default_does_not(self):
        # the reaped-orphan line is the one debug line every run can be made to produce
        quiet_rep = Reports(self.path("reports-default"))
        with Hupwatch(["-v", "-w", "0.1"], self.child("--orphan", "50")) as verbose, \
                Hupwatch(["-w", "0.1"], [CHILD, "--report", quiet_rep.dir, "--orphan", "50"]) \
                as default:
            verbose.wait_log(r"^hupwatch\[%d\]: debug: reaped orphan pid \d+" % verbose.pid)
            orphan = wait_for(quiet_rep.orphans, 5, "orphan announced")[0]
            wait_for(lambda: gone(orphan), 5, "orphan reaped")
            self.assertEqual(default.log_matches(r": debug: "), [], default.stderr())
            self.assertTrue(default.running())

    def test_quiet_shows_no_info_lines(self):
        flag = self.path("fail")
        with Hupwatch(["-q", "-w", "0.1"], self.child("--fail-if-exists", flag)) as hw:
            r1 = self.rep.wait_report(gen=1)
            p1 = int(r1["pid"])
            hw.signal("HUP")
            r2 = self.rep.wait_report(gen=2)
            wait_for(lambda: gone(p1), 5, "gen 1 stopped after the reload")
            open(flag, "w").close()
            hw.signal("HUP")
            hw.wait_log(r"error: gen 3 failed: exited with status 1 before ready; gen 2 stays")
            os.kill(int(r2["pid"]), signal.SIGKILL)
            self.assertEqual(hw.wait_exit(), 137)
            self.assertEqual(hw.log_matches(r": (info|debug): "), [], hw.stderr())
            hw.wait_log(r"error: gen 2 pid %s killed by SIGKILL; exiting with status 137$"
                        % r2["pid"])

    # ------------------------------------------------------------ current generation dies mid-reload

    @each_mode
    def test_current_exits_while_replacement_starting_replacement_takes_over(self):
        with Hupwatch(self.ready_args("0.6"), self.child()) as hw:
            p1, m, p2 = self.ready_then_hup(hw)
            os.kill(p1, signal.SIGKILL)
            wait_for(lambda: gone(p1), 5, "gen 1 reaped")
            took = self.wait_ready(hw, 2, p2, since=m)
            self.assertGreaterEqual(took, 0.59)
            self.assertTrue(hw.running() and pid_alive(p2))
            m, _ = self.hup_until_ready(hw, 3)
            hw.wait_log(r"gen 2 pid %d stopping" % p2, since=m)
            self.assertTrue(hw.running())

    @each_mode
    def test_current_exits_and_replacement_fails_exits_with_old_status(self):
        cmd = per_gen(self.child_args("--delay", "300", "--exit", "1"),
                      {1: self.child_args("--term-exit", "5")})
        with Hupwatch(self.ready_args("0.6"), cmd) as hw:
            p1, m, _ = self.ready_then_hup(hw)
            os.kill(p1, signal.SIGTERM)     # gen 1 exits 5 on its own, not via hupwatch
            self.assertEqual(hw.wait_exit(5), 5, hw.stderr())
            hw.wait_log(r"error: gen 2 failed: exited with status 1 before ready", since=m)


def parent_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except FileNotFoundError:
        return None
    return int(st[st.rindex(")") + 2:].split()[1])


if __name__ == "__main__":
    unittest.main()
