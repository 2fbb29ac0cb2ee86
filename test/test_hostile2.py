"""Hostile review of respawn, upgrade and takeover (second round).

Each test is one confirmed fault: it failed on the code before its fix.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403
from harness import _starttime  # noqa: E402
from e2e import read_status  # noqa: E402


def tmpdir(test):
    d = tempfile.mkdtemp(prefix="hostile2-")
    test.addCleanup(shutil.rmtree, d, True)
    return d


LISTENER = ("import socket, sys, time\n"
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(8)\n"
            "print('listening', flush=True)\n"
            "time.sleep(60)\n")


class ForgedStatusTest(unittest.TestCase):
    """A status file naming an unrelated process with its true start time (a forged file, or one
    copied from elsewhere): hupwatch must neither take that process's socket nor signal it."""

    def setUp(self):
        self.tmp = tmpdir(self)
        self.status = os.path.join(self.tmp, "status")
        self.port = free_port()

    def unrelated(self, *argv):
        p = subprocess.Popen(list(argv), stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (p.kill(), p.wait()))
        return p

    def forge(self, pid):
        with open(self.status, "w") as f:
            f.write("pid=999999\nstarttime=1\nstate=running\ngenerations=1:%d:%d:current\n"
                    % (pid, _starttime(pid)))

    def test_unrelated_server_named_by_the_status_file_keeps_its_socket_and_life(self):
        # An unrelated server listens on the port; the status file names it as "gen 1".
        other = self.unrelated(sys.executable, "-c", LISTENER, str(self.port))
        self.assertEqual(other.stdout.readline().strip(), "listening")
        self.forge(other.pid)
        with Hupwatch(["-w", "0.2", "--listen", "127.0.0.1:%d" % self.port, "-S", self.status],
                      [CHILD, "--serve"]) as hw:
            # either it refuses to start (the port is someone else's) or it starts: never may it
            # have taken the socket or signalled the unrelated server
            try:
                hw.wait_exit(15)
            except AssertionError:
                pass
            self.assertEqual(hw.log_matches(r"took over|of the hupwatch that died\b.*SIG|SIG\w+ to gen"), [],
                             hw.stderr())
            self.assertIsNone(other.poll(), "an unrelated process was signalled:\n" + hw.stderr())

    def test_unrelated_process_named_by_the_status_file_is_not_signalled_when_the_port_is_busy(self):
        # The port is held by some other process; the status file names a sleep as "gen 1".
        holder = self.unrelated(sys.executable, "-c", LISTENER, str(self.port))
        self.assertEqual(holder.stdout.readline().strip(), "listening")
        victim = self.unrelated("sleep", "60")
        self.forge(victim.pid)
        with Hupwatch(["-w", "0.2", "--listen", "127.0.0.1:%d" % self.port, "-S", self.status],
                      [CHILD, "--serve"]) as hw:
            self.assertEqual(hw.wait_exit(20), 125, hw.stderr())
            self.assertEqual(hw.log_matches(r"SIG\w+ to gen"), [], hw.stderr())
            self.assertIsNone(victim.poll(), "an unrelated process was signalled:\n" + hw.stderr())
            self.assertIsNone(holder.poll())


class UpgradeInCrashLoopTest(unittest.TestCase):
    """--respawn-limit counts failures across an upgrade: an upgrade must not reset a crash loop."""

    def test_failures_before_an_upgrade_still_count_after_it(self):
        tmp = tmpdir(self)
        binary = os.path.join(tmp, "hupwatch")
        shutil.copy(HUPWATCH, binary)
        status = os.path.join(tmp, "status")
        # each generation is ready after 0.1 s and exits 3 after 5 s (the upgrade must fit into
        # gen 2's life, under a sanitizer too): a crash loop at the 3rd death
        with Hupwatch(["--respawn", "--respawn-limit", "3/60", "-w", "0.1", "-S", status],
                      [CHILD, "--delay", "5000", "--exit", "3"], binary=binary) as hw:
            hw.wait_log(r"\berror: gen 1 pid \d+ exited with status 3$", timeout=40)
            hw.wait_log(r"\bgen 2 pid \d+ ready after", timeout=40)
            r = subprocess.run([binary, "--upgrade", "-S", status], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr + hw.stderr())
            up = hw.wait_log(r"\bupgraded: hupwatch \S+ runs on, gen (\d+) current").group(1)
            self.assertEqual(up, "2", "gen 2 died before the upgrade: no test\n" + hw.stderr())
            self.assertEqual(hw.wait_exit(40), 3, hw.stderr())
            hw.wait_log(r"\berror: crash loop: 3 failures within 60\.00s")
            self.assertEqual(hw.log_matches(r"\bgen 4 pid \d+ started"), [],
                             "4 failures for a limit of 3: the upgrade reset the count\n" + hw.stderr())


class KillNineWhileStartingTest(unittest.TestCase):
    """kill -9 of hupwatch while a generation of its own is starting: the status file must name that
    generation, or the successor cannot take it over nor stop it (it holds the socket for ever)."""

    def setUp(self):
        self.tmp = tmpdir(self)
        self.status = os.path.join(self.tmp, "status")
        self.port = free_port()
        self.args = ["--listen", "127.0.0.1:%d" % self.port, "-S", self.status]

    def hupwatch(self, args, *track):
        hw = Hupwatch(args + self.args, [CHILD, "--serve"])
        hw.__enter__()
        self.addCleanup(hw.__exit__, None, None, None)
        hw.track(*track)
        return hw

    def named(self, pid):
        def check():
            gens = read_status(self.status).get("generations", "")
            return any(item.split(":")[1] == str(pid) for item in gens.split(",") if item)
        wait_for(check, 5, "the status file to name starting pid %d (it has %r)"
                 % (pid, read_status(self.status).get("generations")))

    def kill9(self, hw):
        os.kill(hw.pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(hw.pid), 10, "hupwatch gone")

    def test_kill_9_during_the_first_start_then_a_successor_takes_over(self):
        first = self.hupwatch(["-w", "30"])
        gen1 = int(first.wait_log(r"\bgen 1 pid (\d+) started").group(1))
        self.named(gen1)
        self.kill9(first)
        succ = self.hupwatch(["-w", "0.2"], gen1)
        succ.wait_log(r"\btook over '127\.0\.0\.1:%d' from gen 1 pid %d" % (self.port, gen1))
        succ.wait_log(r"\bgen 2 pid \d+ ready after")
        wait_for(lambda: not pid_alive(gen1), 10, "the dead hupwatch's starting gen 1 stopped")
        self.assertEqual(http_get("127.0.0.1", self.port)[0], 200)

    def test_kill_9_again_during_a_takeover_leaves_no_generation_behind(self):
        first = self.hupwatch(["-w", "0.2"])
        first.wait_log(r"\bgen 1 pid \d+ ready after")
        wait_for(lambda: read_status(self.status).get("state") == "running", 10, "running")
        gen1 = int(read_status(self.status)["generation_pid"])
        self.kill9(first)
        second = self.hupwatch(["-w", "30"], gen1)
        gen2 = int(second.wait_log(r"\bgen 2 pid (\d+) started").group(1))
        self.named(gen2)
        self.kill9(second)
        third = self.hupwatch(["-w", "0.2"], gen1, gen2)
        third.wait_log(r"\bgen 3 pid \d+ ready after")
        wait_for(lambda: not pid_alive(gen1) and not pid_alive(gen2), 10,
                 "gens 1 and 2 of the dead hupwatches stopped (alive: %r)"
                 % [p for p in (gen1, gen2) if pid_alive(p)])


def upgradable(test):
    """A copy of the binary that --upgrade can re-execute, and a status file: (binary, status)."""
    tmp = tmpdir(test)
    binary = os.path.join(tmp, "hupwatch")
    shutil.copy(HUPWATCH, binary)
    return binary, os.path.join(tmp, "status")


def stopped_while_running(test, hw, status):
    """Once hw runs gen 1, SIGSTOP it (SIGCONT at cleanup): signals sent now stay pending."""
    hw.wait_log(r"\bgen 1 pid \d+ ready after")
    wait_for(lambda: read_status(status).get("state") == "running", 10, "running")
    os.kill(hw.pid, signal.SIGSTOP)
    test.addCleanup(lambda: os.kill(hw.pid, signal.SIGCONT) if pid_alive(hw.pid) else None)
    wait_for(lambda: proc_state(hw.pid) == "T", 5, "hupwatch stopped")


class UpgradeMergedWithPendingSighupTest(unittest.TestCase):
    """--upgrade is a SIGHUP with a sigqueue(3) value: sent while another SIGHUP is pending, the
    kernel merges it into that one, value and all, and the upgrade is never seen."""

    def test_upgrade_sent_while_a_sighup_is_pending_still_happens(self):
        binary, status = upgradable(self)
        with Hupwatch(["-w", "0.2", "--listen", "127.0.0.1:0", "-S", status], [CHILD, "--serve"],
                      binary=binary) as hw:
            stopped_while_running(self, hw, status)
            # stopped (a busy loop, as in a storm of reloads), then a SIGHUP pending
            os.kill(hw.pid, signal.SIGHUP)
            client = subprocess.Popen([binary, "--upgrade", "-t", "8", "-S", status],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.addCleanup(lambda: client.poll() is None and client.kill())
            # it has signalled once it sleeps waiting for the status file to change
            wait_for(lambda: proc_state(client.pid) == "S", 5, "the client waiting")
            os.kill(hw.pid, signal.SIGCONT)
            out, err = client.communicate(timeout=30)
            self.assertEqual(client.returncode, 0, out + err + hw.stderr())
            self.assertRegex(out, r"^hupwatch: upgrade 1 succeeded: pid %d runs hupwatch " % hw.pid)
            hw.wait_log(r"\breload requested \(SIGHUP\)")  # the plain SIGHUP still reloads


def killed_with_9(test, first, status):
    """Start hupwatch `first`, wait until gen 1 runs, kill -9 it: gen 1's pid, left orphaned."""
    first.__enter__()
    test.addCleanup(first.__exit__, None, None, None)
    first.wait_log(r"\bgen 1 pid \d+ ready after")
    wait_for(lambda: read_status(status).get("state") == "running", 10, "running")
    gen1 = int(read_status(status)["generation_pid"])
    first.track(gen1)
    os.kill(first.pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(first.pid), 10, "hupwatch gone")
    return gen1


class TakeoverUnixSocketFileTest(unittest.TestCase):
    """A unix: socket taken over from the dead hupwatch's generation is removed at exit, as one
    hupwatch bound itself is."""

    def test_taken_over_unix_socket_file_is_removed_at_exit(self):
        tmp = tmpdir(self)
        status, sock = os.path.join(tmp, "status"), os.path.join(tmp, "app.sock")
        args = ["-k", "-w", "0.2", "--listen", "127.0.0.1:%d" % free_port(), "--listen", "unix:" + sock,
                "-S", status]
        gen1 = killed_with_9(self, Hupwatch(args, [CHILD, "--serve"]), status)
        with Hupwatch(args, [CHILD, "--serve"]) as hw:
            hw.track(gen1)
            hw.wait_log(r"\btook over 'unix:%s'" % re.escape(sock))
            hw.wait_log(r"\bgen 2 pid \d+ ready after")
            hw.signal("TERM")
            self.assertEqual(hw.wait_exit(15), 0, hw.stderr())
            self.assertFalse(os.path.exists(sock), "the socket file was left behind:\n" + hw.stderr())


class KillAtExitWithAdoptedTest(unittest.TestCase):
    """With -k, SIGTERM while the adopted generation is still current stops everything cleanly:
    an adopted generation that ends after it was asked to stop counts as 0 (its real status is
    not ours to know), not as hupwatch's failure (125)."""

    def test_graceful_stop_with_an_adopted_current_is_not_reported_as_hupwatchs_failure(self):
        tmp = tmpdir(self)
        status = os.path.join(tmp, "status")
        args = ["--listen", "127.0.0.1:%d" % free_port(), "-S", status]
        gen1 = killed_with_9(self, Hupwatch(["-w", "0.2"] + args, [CHILD, "--serve"]), status)
        with Hupwatch(["-k", "-w", "30"] + args, [CHILD, "--serve"]) as hw:
            hw.track(gen1)
            hw.wait_log(r"\badopted gen 1 pid %d" % gen1)
            hw.wait_log(r"\bgen 2 pid \d+ started")
            hw.signal("TERM")
            rc = hw.wait_exit(15)
            self.assertFalse(pid_alive(gen1))
            self.assertNotEqual(rc, 125, hw.stderr())


class ReloadMergedIntoPendingUpgradeTest(unittest.TestCase):
    """The converse of UpgradeMergedWithPendingSighupTest: the --reload client's SIGHUP, sent while
    the --upgrade one is pending, is merged into it. The client sends it again until the status
    file counts it (requests=), and hupwatch takes a copy of one client's request once."""

    def test_reload_sent_while_an_upgrade_is_pending_still_happens(self):
        binary, status = upgradable(self)
        with Hupwatch(["-w", "0.2", "--listen", "127.0.0.1:0", "-S", status], [CHILD, "--serve"],
                      binary=binary) as hw:
            stopped_while_running(self, hw, status)
            clients = []
            for what in ("--upgrade", "--reload"):
                c = subprocess.Popen([binary, what, "-t", "6", "-S", status], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
                self.addCleanup(lambda c=c: c.poll() is None and c.kill())
                wait_for(lambda: proc_state(c.pid) == "S", 5, "the %s client waiting" % what)
                clients.append(c)
            os.kill(hw.pid, signal.SIGCONT)
            for c in clients:
                out, err = c.communicate(timeout=30)
                self.assertEqual(c.returncode, 0, out + err + hw.stderr())


if __name__ == "__main__":
    unittest.main()
