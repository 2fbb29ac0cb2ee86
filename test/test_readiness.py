"""Integration tests: real readiness (--notify, --ready-cmd, --ready-timeout) and working under systemd.

Issue 3, "Readiness" and "Working under systemd". Synchronisation is on events only: hupwatch's log lines,
the child's report and event files, probe output files and datagrams on the test's own notify socket.
"""

import array
import os
import re
import shlex
import subprocess
import shutil
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

TRY_HELP = "Try 'hupwatch --help' for more information."
# The notify socket: a path in hupwatch's private directory, one per generation (issue 9).
NOTIFY_PATH = r"^/.+/hupwatch\.[A-Za-z0-9]{6}/notify\.%d$"
READY_LINE = r"\bgen %d pid (\d+) ready after (\d+\.\d\d)s \((warm-up|READY=1|ready-cmd)\)"


# ---------------------------------------------------------------- helpers (local to this file)

def by_gen(default, per_gen):
    """A /bin/sh -c command that execs per_gen[N] for generation N, else default (argv lists).
    exec keeps the pid: the generation's main pid is the child itself."""
    def line(argv):
        return " ".join(shlex.quote(a) for a in argv)
    cases = "".join('%d) exec %s ;; ' % (g, line(argv)) for g, argv in sorted(per_gen.items()))
    return ["/bin/sh", "-c", 'case "$HUPWATCH_GENERATION" in %s*) exec %s ;; esac'
            % (cases, line(default))]


class NotifyReceiver:
    """An AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET (SO_PASSCRED on, so every
    datagram comes with its sender's pid)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(path)
        self.got = []           # [(sender pid, monotonic time received, text)]

    def close(self):
        self.sock.close()

    def _recv(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return None
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = array.array("i", payload[:12])[0]
        item = (pid, time.monotonic(), data.decode("utf-8", "replace"))
        self.got.append(item)
        return item

    def wait(self, pred, timeout=10, what="notify message"):
        """Receive until a datagram's text satisfies pred; returns that text."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s within %gs; got %r" % (what, timeout,
                                                                    [g[2] for g in self.got]))
            item = self._recv(left)
            if item and pred(item[2]):
                return item[2]

    def wait_key(self, key, timeout=10):
        return self.wait(lambda t: key in t.split("\n"), timeout, key)


def lines_of(text):
    return text.split("\n")


# ---------------------------------------------------------------- tests

class ReadinessTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hw-ready-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.rep = Reports(os.path.join(self.tmp, "rep"))

    def child(self, *extra):
        return [CHILD, "--report", self.rep.dir] + [str(e) for e in extra]

    def ready(self, hw, gen, since=None, timeout=10):
        """(pid, seconds, how) from the 'gen N pid P ready after X.XXs (how)' line."""
        m = hw.wait_log(READY_LINE % gen, since=since, timeout=timeout)
        return int(m.group(1)), float(m.group(2)), m.group(3)

    def line_index(self, hw, regex, since=0):
        # The reader thread may lag behind hupwatch: wait for the line before locating it.
        hw.wait_log(regex, since=since)
        for i, l in enumerate(hw.lines[since:], since):
            if re.search(regex, l):
                return i
        self.fail("no line matching %r:\n%s" % (regex, hw.stderr()))

    # ---- --notify

    def test_notify_ready_and_swap_waits_for_it(self):
        cmd = by_gen(self.child("--notify-ready", 1500), {1: self.child("--notify-ready", 0)})
        with Hupwatch(["-n"], cmd) as hw:
            pid1, _, how = self.ready(hw, 1)
            self.assertEqual(how, "READY=1")
            rep1 = self.rep.wait_report(gen=1)
            self.assertRegex(rep1["notify_socket"], NOTIFY_PATH % 1)
            hw.wait_log(r"\binfo: gen 1 pid %d status: child ready$" % pid1)

            mark = hw.mark()
            hw.signal("HUP")
            rep2 = self.rep.wait_report(gen=2)
            pid2 = int(rep2["pid"])
            self.assertRegex(rep2["notify_socket"], NOTIFY_PATH % 2)
            # gen 2 is up but has not said READY=1 yet (it waits 1.5 s): gen 1 must stay untouched.
            self.assertTrue(pid_alive(pid1))
            self.assertNotIn("term", self.rep.events(pid1))
            self.assertEqual(hw.log_matches(r"\bgen 1 pid \d+ stopping", since=mark), [])

            got_pid, secs, how = self.ready(hw, 2, since=mark)
            self.assertEqual((got_pid, how), (pid2, "READY=1"))
            self.assertGreaterEqual(secs, 1.45, "ready before the child sent READY=1")
            self.rep.wait_event(pid2, "notified READY=1")
            i_ready = self.line_index(hw, READY_LINE % 2, mark)
            i_stop = self.line_index(hw, r"\bgen 1 pid %d stopping \(SIGTERM\)" % pid1, mark)
            self.assertGreater(i_stop, i_ready)
            self.rep.wait_event(pid1, "term")
            hw.wait_log(r"\bgen 2 pid %d status: child ready$" % pid2, since=mark)

    def test_ready_is_a_whole_line_anywhere_in_the_message(self):
        """READY=1 counts on any line of a datagram, and only as a whole line (not READY=10, XREADY=1)."""
        go = os.path.join(self.tmp, "go")
        script = (
            "import os, socket, sys, time\n"
            "name = os.environ['NOTIFY_SOCKET']\n"
            "addr = '\\0' + name[1:] if name.startswith('@') else name\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
            "s.sendto(b'STATUS=warming\\nREADY=10\\nXREADY=1\\nREADY=0', addr)\n"
            "deadline = time.monotonic() + 20\n"
            "while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:\n"
            "    time.sleep(0.01)\n"
            "s.sendto(b'STATUS=up\\nMAINPID=%d\\nREADY=1' % os.getpid(), addr)\n"
            "time.sleep(60)\n")
        with Hupwatch(["-n", "-t", "30"], [sys.executable, "-c", script, go]) as hw:
            pid = int(hw.wait_log(r"\bgen 1 pid (\d+) started").group(1))
            hw.wait_log(r"\bgen 1 pid %d status: warming$" % pid)
            # A SIGHUP sent now is handled after hupwatch is done with that datagram: still starting.
            hw.signal("HUP")
            m = hw.wait_log(r"\breload requested \(SIGHUP\)(.*)$")
            self.assertEqual(m.group(1), " while gen 1 is starting; queued",
                             "READY=10 / XREADY=1 / READY=0 taken for READY=1:\n" + hw.stderr())
            self.assertEqual(hw.log_matches(r"\bgen 1 pid \d+ ready"), [])
            open(go, "w").close()
            got, _, how = self.ready(hw, 1)
            self.assertEqual((got, how), (pid, "READY=1"))
            hw.wait_log(r"\bgen 1 pid %d status: up$" % pid)

    def test_ready_from_a_descendant_counts(self):
        """The main pid is a shell; READY=1 comes from its child, a descendant of the generation."""
        script = "%s & wait" % " ".join(shlex.quote(a) for a in self.child("--notify-ready", 100))
        with Hupwatch(["-n", "-t", "10"], ["/bin/sh", "-c", script]) as hw:
            main = int(hw.wait_log(r"\bgen 1 pid (\d+) started").group(1))
            rep = self.rep.wait_report(gen=1)
            self.assertNotEqual(int(rep["pid"]), main)
            pid, _, how = self.ready(hw, 1)
            self.assertEqual((pid, how), (main, "READY=1"))

    def test_ready_from_outside_the_generation_ignored(self):
        cmd = by_gen(self.child(), {1: self.child("--notify-ready", 0)})
        with Hupwatch(["-n", "-v", "-t", "0"], cmd) as hw:
            pid1, _, _ = self.ready(hw, 1)
            mark = hw.mark()
            hw.signal("HUP")
            rep2 = self.rep.wait_report(gen=2)
            send_notify(rep2["notify_socket"], "READY=1\nSTATUS=forged")
            # gen 2 is starting: a message dropped on its socket may be why it never gets ready
            hw.wait_log(r"\bwarning: dropped notify message from pid %d: not from that generation "
                        r"\(on gen 2's socket\)$" % os.getpid(), since=mark)
            # The message was handled (dropped) and nothing else happened.
            self.assertEqual(hw.log_matches(r"\bgen 2 pid \d+ ready", since=mark), [])
            self.assertEqual(hw.log_matches(r"forged", since=mark), [])
            self.assertEqual(hw.log_matches(r"\bstopping\b", since=mark), [])
            self.assertTrue(pid_alive(pid1))
            self.assertTrue(pid_alive(int(rep2["pid"])))
            self.assertNotIn("term", self.rep.events(pid1))

    def test_ready_from_the_old_generation_does_not_make_the_new_one_ready(self):
        """gen 1's main pid sends READY=1 again while gen 2 is starting: it is not gen 2's."""
        go = os.path.join(self.tmp, "go")
        again = " ".join(shlex.quote(a) for a in self.child("--notify-ready", 0))
        gen1 = ("%s & while [ ! -e %s ]; do sleep 0.02; done; exec %s"
                % (again, shlex.quote(go), again))
        cmd = ["/bin/sh", "-c", 'if [ "$HUPWATCH_GENERATION" = 1 ]; then %s; else exec %s; fi'
               % (gen1, " ".join(shlex.quote(a) for a in self.child()))]
        with Hupwatch(["-n", "-v", "-t", "0"], cmd) as hw:
            main1, _, _ = self.ready(hw, 1)
            mark = hw.mark()
            hw.signal("HUP")
            rep2 = self.rep.wait_report(gen=2)
            open(go, "w").close()
            # gen 1's main pid execs a child that sends READY=1 at once
            rep1b = self.rep.wait_report(pid=main1)
            self.rep.wait_event(main1, "notified READY=1")
            # a datagram sent after it is handled after it: once ours is dropped, gen 1's was handled
            send_notify(rep1b["notify_socket"], "STATUS=marker")
            hw.wait_log(r"\bdebug: dropped notify message from pid %d\b" % os.getpid(), since=mark)
            # and a SIGHUP sent now is handled after both datagrams: gen 2 must still be starting
            mark2 = hw.mark()
            hw.signal("HUP")
            m = hw.wait_log(r"\breload requested \(SIGHUP\)(.*)$", since=mark2)
            self.assertEqual(m.group(1), " while gen 2 is starting; queued",
                             "READY=1 from gen 1 made gen 2 ready:\n" + hw.stderr())
            self.assertEqual(hw.log_matches(r"\bgen 2 pid \d+ ready", since=mark), [],
                             "READY=1 from gen 1 made gen 2 ready")
            self.assertEqual(hw.log_matches(r"\bstopping\b", since=mark), [])
            self.assertTrue(pid_alive(int(rep2["pid"])))

    def test_never_ready_generation_stopped_at_timeout_old_serves(self):
        cmd = by_gen(self.child("--serve"), {1: self.child("--serve", "--notify-ready", 0)})
        with Hupwatch(["-n", "-t", "1", "-l", "127.0.0.1:0"], cmd) as hw:
            port = int(hw.wait_log(r"\blistening on 127\.0\.0\.1:(\d+) ").group(1))
            pid1, _, _ = self.ready(hw, 1)
            mark = hw.mark()
            t0 = time.monotonic()
            hw.signal("HUP")
            pid2 = int(self.rep.wait_report(gen=2)["pid"])
            m = hw.wait_log(r"\berror: gen 2 failed: not ready after (\d+\.\d\d)s; gen 1 stays current$",
                            since=mark)
            self.assertGreaterEqual(float(m.group(1)), 0.99)
            self.assertGreaterEqual(time.monotonic() - t0, 0.99)
            self.rep.wait_event(pid2, "term")           # stopped with the stop signal
            wait_for(lambda: not pid_alive(pid2), 10, "gen 2 to be gone")
            self.assertEqual(hw.log_matches(r"\bgen 2 pid \d+ ready", since=mark), [])
            self.assertEqual(hw.log_matches(r"\bgen 1 pid \d+ stopping", since=mark), [])
            self.assertTrue(pid_alive(pid1))
            self.assertNotIn("term", self.rep.events(pid1))
            self.assertEqual(http_get("127.0.0.1", port), (200, "gen=1 pid=%d\n" % pid1))
            self.assertTrue(hw.running())

    def test_dead_current_and_stubborn_failed_replacement_do_not_hang(self):
        # gen 1 dies while gen 2, which ignores TERM and never says READY=1, is being stopped
        # after its ready timeout: hupwatch must still exit with gen 1's status (-T 0: gen 2 gets
        # the bounded grace, then SIGKILL), and a SIGTERM meanwhile must not be ignored.
        # gen 1: ready at once (READY=1 from a descendant), exits 7 after 4 s, well after gen 2's
        # ready timeout (under a sanitizer too).
        gen1 = ["/bin/sh", "-c", "%s --notify-ready 0 & sleep 4; exit 7" % shlex.quote(CHILD)]
        cmd = by_gen([CHILD, "--ignore-term"], {1: gen1})
        with Hupwatch(["-n", "-t", "0.5"], cmd) as hw:
            self.ready(hw, 1)
            hw.signal("HUP")
            m = hw.wait_log(r"\bgen 2 pid (\d+) started")
            pid2 = int(m.group(1))
            hw.wait_log(r"\bgen 2 failed: not ready after")
            hw.wait_log(r"\bgen 1 pid \d+ exited with status 7; exiting with status 7")
            self.assertEqual(hw.wait_exit(15), 7, hw.stderr())
            self.assertFalse(pid_alive(pid2), "the failed gen 2 was left running")

    def test_reload_client_when_hupwatch_exits_meanwhile(self):
        # gen 1 dies while gen 2 starts, then gen 2 fails too: hupwatch exits 7. The --reload
        # client must not claim "failed, the old one still serves" (1): nothing serves (125).
        status = os.path.join(self.tmp, "status")
        # gen 1 lives 3 s: time for the client to read the status file and signal, even slowly.
        gen1 = ["/bin/sh", "-c", "%s --notify-ready 0 & sleep 3; exit 7" % shlex.quote(CHILD)]
        cmd = by_gen([CHILD, "--delay", "5000", "--exit", "5"], {1: gen1})
        with Hupwatch(["-n", "-S", status], cmd) as hw:
            self.ready(hw, 1)
            client = subprocess.run([HUPWATCH, "--reload", "-S", status], capture_output=True,
                                    text=True, timeout=30)
            self.assertEqual(client.returncode, 125, client.stderr)
            self.assertIn("before the reload succeeded", client.stderr)
            self.assertEqual(hw.wait_exit(10), 7, hw.stderr())

    def test_generation_1_never_ready_exits_1(self):
        for args in (["-n", "-t", "0.5"], ["-c", "false", "-i", "0.05", "-t", "0.5"]):
            with self.subTest(args=args):
                rep = Reports(os.path.join(self.tmp, "rep-%s" % args[0].strip("-")))
                with Hupwatch(args, [CHILD, "--report", rep.dir]) as hw:
                    pid = int(rep.wait_report(gen=1)["pid"])
                    self.assertEqual(hw.wait_exit(10), 1, hw.stderr())
                    self.assertEqual(hw.log_matches(r"\bgen 1 pid \d+ ready"), [])
                    self.assertIn("term", rep.events(pid))
                    self.assertFalse(pid_alive(pid), "gen 1 left running")

    # ---- --ready-cmd

    def test_ready_cmd_probe(self):
        d = shlex.quote(self.tmp)
        probe = ('echo "$HUPWATCH_PID $HUPWATCH_GENERATION" >> %s/probe-$HUPWATCH_GENERATION; '
                 'test -f %s/ready-$HUPWATCH_GENERATION' % (d, d))
        path = lambda name: os.path.join(self.tmp, name)  # noqa: E731

        def probes(gen):
            try:
                with open(path("probe-%d" % gen)) as f:
                    return f.read().splitlines()
            except FileNotFoundError:
                return []

        with Hupwatch(["-c", probe, "-i", "0.05"], self.child()) as hw:
            pid1 = int(self.rep.wait_report(gen=1)["pid"])
            wait_for(lambda: len(probes(1)) >= 3, 10, "3 probes of gen 1")
            self.assertEqual(hw.log_matches(r"\bgen 1 pid \d+ ready"), [], "ready while the probe fails")
            self.assertEqual(set(probes(1)), {"%d 1" % pid1})
            open(path("ready-1"), "w").close()
            pid, _, how = self.ready(hw, 1)
            self.assertEqual((pid, how), (pid1, "ready-cmd"))

            mark = hw.mark()
            hw.signal("HUP")
            pid2 = int(self.rep.wait_report(gen=2)["pid"])
            wait_for(lambda: len(probes(2)) >= 3, 10, "3 probes of gen 2")
            self.assertEqual(set(probes(2)), {"%d 2" % pid2})
            self.assertEqual(hw.log_matches(r"\bgen 2 pid \d+ ready", since=mark), [])
            self.assertEqual(hw.log_matches(r"\bstopping\b", since=mark), [])
            self.assertTrue(pid_alive(pid1))
            open(path("ready-2"), "w").close()
            pid, _, how = self.ready(hw, 2, since=mark)
            self.assertEqual((pid, how), (pid2, "ready-cmd"))
            hw.wait_log(r"\bgen 1 pid %d stopping \(SIGTERM\)" % pid1, since=mark)
            self.rep.wait_event(pid1, "term")

    def test_ready_interval_is_used(self):
        stamps = os.path.join(self.tmp, "stamps")
        probe = "cut -d' ' -f1 /proc/uptime >> %s; false" % shlex.quote(stamps)

        def got():
            try:
                with open(stamps) as f:
                    return [float(x) for x in f.read().split()]
            except FileNotFoundError:
                return []

        with Hupwatch(["-c", probe, "-i", "0.3", "-t", "0"], self.child()):
            # The first probe starts with the generation (a late stamp there shortens the span):
            # from the second on, a probe every 0.3 s (start to start), not back to back, so 4
            # intervals span about 1.2 s. One late start shifts one stamp: allow 0.25 s.
            t = wait_for(lambda: len(got()) >= 6 and got(), 10, "6 probe runs")[1:6]
            span = t[4] - t[0]
            self.assertGreaterEqual(span, 0.95, "5 probes within %.2fs: %r" % (span, t))
            self.assertLess(span, 3.0, "5 probes took %.2fs: %r" % (span, t))

    def test_ready_interval_validation(self):
        for value in ["abc", "", "-1", "+1", "1e3", "inf", "nan", " 1", "1 ", "0x1", "1,5", "1..2"]:
            with self.subTest(interval=value):
                with Hupwatch(["-c", "true", "--ready-interval", value], self.child()) as hw:
                    self.assertEqual(hw.wait_exit(), 125, hw.stderr())
                    self.assertEqual(len(hw.lines), 2, hw.stderr())
                    self.assertRegex(hw.lines[0],
                                     r"^hupwatch: --ready-interval: .*'%s'$" % re.escape(value))
                    self.assertEqual(hw.lines[1], TRY_HELP)
                    self.assertEqual(self.rep.all(), [])
        for value in [".05", "0.5", "1"]:
            with self.subTest(interval=value):
                with Hupwatch(["-c", "true", "-i", value], self.child()) as hw:
                    _, _, how = self.ready(hw, 1)
                    self.assertEqual(how, "ready-cmd")

    # ---- --warmup-time with readiness

    def test_warmup_defaults_to_zero_with_notify_or_ready_cmd(self):
        for args in (["-n"], ["-c", "true", "-i", "0.05"]):
            with self.subTest(args=args):
                rep = Reports(os.path.join(self.tmp, "rep-%s" % args[0].strip("-")))
                with Hupwatch(args, [CHILD, "--report", rep.dir, "--notify-ready", "0"]) as hw:
                    _, secs, _ = self.ready(hw, 1)
                    self.assertLess(secs, 0.98, "default warm-up 1 s still applied with %s" % args)

    def test_warmup_is_an_additional_minimum_age(self):
        for args in (["-n", "-w", "1.5"], ["-c", "true", "-i", "0.05", "-w", "1.5"]):
            with self.subTest(args=args):
                rep = Reports(os.path.join(self.tmp, "rep-%s" % args[0].strip("-")))
                with Hupwatch(args, [CHILD, "--report", rep.dir, "--notify-ready", "0"]) as hw:
                    pid = int(rep.wait_report(gen=1)["pid"])
                    if args[0] == "-n":
                        rep.wait_event(pid, "notified READY=1")
                    _, secs, _ = self.ready(hw, 1)
                    self.assertGreaterEqual(secs, 1.49)

    # ---- under systemd: an upstream NOTIFY_SOCKET

    def upstream(self, path=None):
        rx = NotifyReceiver(path or os.path.join(self.tmp, "notify.sock"))
        self.addCleanup(rx.close)
        return rx

    def test_upstream_notify_sequence(self):
        rx = self.upstream()
        # gen 1 and 2 come up with READY=1; gen 3 exits before ready (a failed reload).
        cmd = by_gen(self.child("--notify-ready", 200), {3: self.child("--exit", 3)})
        with Hupwatch(["-n", "-k"], cmd, env={"NOTIFY_SOCKET": rx.path}) as hw:
            rep1 = self.rep.wait_report(gen=1)
            self.assertRegex(rep1["notify_socket"], NOTIFY_PATH % 1)
            self.assertNotEqual(rep1["notify_socket"], rx.path)
            pid1, _, _ = self.ready(hw, 1)
            rx.wait_key("READY=1")

            # a reload that succeeds
            t0 = time.monotonic_ns() // 1000
            hw.signal("HUP")
            text = rx.wait_key("RELOADING=1")
            t1 = time.monotonic_ns() // 1000
            usec = [l for l in lines_of(text) if l.startswith("MONOTONIC_USEC=")]
            self.assertEqual(len(usec), 1, "RELOADING=1 without MONOTONIC_USEC=: %r" % text)
            self.assertTrue(t0 <= int(usec[0].split("=", 1)[1]) <= t1,
                            "MONOTONIC_USEC %s not between %d and %d" % (usec[0], t0, t1))
            rx.wait_key("READY=1")
            pid2, _, _ = self.ready(hw, 2)
            rep2 = self.rep.wait_report(gen=2)
            self.assertRegex(rep2["notify_socket"], NOTIFY_PATH % 2)

            # a reload that fails: hupwatch still settles with READY=1
            mark = hw.mark()
            hw.signal("HUP")
            rx.wait_key("RELOADING=1")
            rx.wait_key("READY=1")
            hw.wait_log(r"\berror: gen 3 failed: exited with status 3 before ready; gen 2 stays current",
                        since=mark)

            hw.signal("TERM")
            rx.wait_key("STOPPING=1")
            self.assertEqual(hw.wait_exit(10), 0, hw.stderr())

        kinds = []
        for _, _, text in rx.got:
            for key in ("READY=1", "RELOADING=1", "STOPPING=1"):
                if key in lines_of(text):
                    kinds.append(key)
        self.assertEqual(kinds, ["READY=1", "RELOADING=1", "READY=1", "RELOADING=1", "READY=1",
                                 "STOPPING=1"], [g[2] for g in rx.got])
        # NotifyAccess=main: every datagram comes from hupwatch itself
        self.assertEqual({pid for pid, _, _ in rx.got}, {hw.pid})
        # STATUS= names the current generation's pid when hupwatch says READY=1
        status = None
        current = iter([pid1, pid2, pid2])
        for _, _, text in rx.got:
            for l in lines_of(text):
                if l.startswith("STATUS="):
                    status = l
            if "READY=1" in lines_of(text):
                pid = next(current)
                self.assertIsNotNone(status, "no STATUS= before READY=1")
                self.assertRegex(status, r"\b%d\b" % pid)

    def test_upstream_notify_socket_not_passed_down_without_notify(self):
        """Without --notify, children get no NOTIFY_SOCKET at all; hupwatch still tells systemd."""
        rx = self.upstream()
        with Hupwatch(["-w", "0.2"], self.child(), env={"NOTIFY_SOCKET": rx.path}) as hw:
            rep = self.rep.wait_report(gen=1)
            self.assertEqual(rep["notify_socket"], "")
            self.ready(hw, 1)
            rx.wait_key("READY=1")

    def test_upstream_abstract_notify_socket(self):
        name = "@hupwatch-test-%d-%d" % (os.getpid(), time.monotonic_ns())
        rx = NotifyReceiver("\0" + name[1:])
        self.addCleanup(rx.close)
        with Hupwatch(["-n"], self.child("--notify-ready", 0), env={"NOTIFY_SOCKET": name}) as hw:
            rep = self.rep.wait_report(gen=1)
            self.assertNotEqual(rep["notify_socket"], name)
            self.ready(hw, 1)
            rx.wait_key("READY=1")
            hw.signal("HUP")
            rx.wait_key("RELOADING=1")
            rx.wait_key("READY=1")


if __name__ == "__main__":
    unittest.main()
