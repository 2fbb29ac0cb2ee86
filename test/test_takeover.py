"""Takeover after a hard death (issue 11, item 3): kill -9 of hupwatch refuses no connection.

hupwatch killed with SIGKILL leaves its generations running, holding the sockets. The supervisor
starts a new hupwatch on the same status file; it takes the listening sockets from the orphaned
current generation (pidfd_getfd), adopts it until its own generation is ready, then stops it.
Run under runit and supervisord (their example configurations, as the e2e tests do), ten times
each under load; and the paths where the sockets cannot be taken.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403
from e2e import read_status  # noqa: E402
from test_respawn import CountingLoad  # noqa: E402
from test_runit import RunitTest  # noqa: E402
from test_supervisord import SupervisordTest  # noqa: E402

KILLS = 10


def pidfd_getfd_works():
    return hasattr(os, "pidfd_open")


class KillNineMixin:
    """kill -9 of hupwatch, KILLS times under load, each time restarted by the supervisor."""

    def kill_nine_cycles(self, first_pid, wait_restarted):
        pid = first_pid
        load = CountingLoad(self.port).start()
        try:
            for k in range(1, KILLS + 1):
                before = load.ok
                wait_for(lambda: load.ok >= before + 5, 20, "requests before kill %d" % k)
                os.kill(pid, signal.SIGKILL)
                pid = wait_restarted(k, pid)
                # its own generation (numbers go on from the predecessor's) serves
                self.wait_status(pid=pid, state="running", generation=k + 1)
            before = load.ok
            wait_for(lambda: load.ok >= before + 20, 20, "requests after the last takeover")
        finally:
            load.stop()
        self.assertEqual(load.refused, 0, "refused: %r\n%s" % (load.errors[:10], self.logs()[-4000:]))
        self.assertGreater(load.ok, 200)
        self.assertEqual(self.logs().count("took over '127.0.0.1:%d'" % self.port), KILLS, self.logs()[-4000:])
        sys.stderr.write("[takeover: %d kill -9, %d ok, 0 refused, %d lost with the killed generations] "
                         % (KILLS, load.ok, load.lost))
        return pid


@unittest.skipUnless(pidfd_getfd_works(), "no pidfd_open in this Python")
class TakeoverRunitTest(KillNineMixin, RunitTest):
    test_sv_hup_down_up = None  # the parent's test runs in test_runit

    def test_kill_9_of_hupwatch_under_runit(self):
        wait_for(lambda: os.path.exists(os.path.join(self.svc, "supervise", "ok")), 10, "supervise/ok")
        pid, _ = self.wait_up()

        def restarted(k, old):
            _, new = self.wait_sv("run", not_pid=old, timeout=30)
            return new
        last = self.kill_nine_cycles(pid, restarted)
        # the orphans were stopped: only the last hupwatch's generation runs
        st = read_status(self.status_file)
        self.assertEqual(st["generations"].count(":current"), 1, st)
        self.assertEqual(self.sv("-v", "-w", "30", "down")[0], 0)
        self.assertFalse(pid_alive(last))


@unittest.skipUnless(pidfd_getfd_works(), "no pidfd_open in this Python")
class TakeoverSupervisordTest(KillNineMixin, SupervisordTest):
    per_test_timeout = 150  # supervisord counts a start as good after startsecs (5 s) only
    test_hup_reloads_under_load_and_stop_leaves_nothing = None  # run in test_supervisord
    test_app_death_makes_hupwatch_exit_and_supervisord_restart_it = None

    def test_kill_9_of_hupwatch_under_supervisord(self):
        pid, _ = self.start_and_wait_running()

        def restarted(k, old):
            # the next kill only once supervisord took this start for good (else it gives up)
            _, new = self.wait_running(times=k + 1, timeout=60)
            self.assertNotEqual(new, old)
            return new
        self.kill_nine_cycles(pid, restarted)
        self.assertEqual(self.ctl("stop", "app")[0], 0)


class TakeoverFallbackTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hw-takeover-")
        os.chmod(self.tmp, 0o777)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.status = os.path.join(self.tmp, "status")
        self.port = free_port()

    def first(self, cmd):
        hw = Hupwatch(["-w", "0.2", "--listen", "127.0.0.1:%d" % self.port, "-S", self.status], cmd)
        hw.__enter__()
        self.addCleanup(hw.__exit__, None, None, None)
        hw.wait_log(r"\bgen 1 pid \d+ ready after")
        wait_for(lambda: read_status(self.status).get("state") == "running", 10, "running")
        orphan = int(read_status(self.status)["generation_pid"])
        self.addCleanup(lambda: os.killpg(orphan, signal.SIGKILL) if pid_alive(orphan) else None)
        os.kill(hw.pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(hw.pid), 10, "hupwatch gone")
        self.assertEqual(http_get("127.0.0.1", self.port)[0], 200, "the orphan serves on")
        return orphan

    def test_socket_not_in_the_main_process_orphans_stopped_then_bound(self):
        # The application's main process keeps no copy of the socket (its worker does): nothing to
        # take. The orphans are stopped (the generation the status file names, checked by start
        # time, with its process group), the address waited for, and bound anew.
        app = os.path.join(self.tmp, "app.py")
        with open(app, "w") as f:
            f.write(textwrap.dedent("""\
                import os, signal, socket, sys, http.server
                worker = os.fork()
                if worker:
                    os.close(3)
                    signal.signal(signal.SIGTERM, lambda *a: (os.kill(worker, signal.SIGTERM), sys.exit(0)))
                    os.waitpid(worker, 0)
                    sys.exit(0)
                class H(http.server.BaseHTTPRequestHandler):
                    def do_GET(self):
                        body = b"gen=%s\\n" % os.environ["HUPWATCH_GENERATION"].encode()
                        self.send_response(200); self.send_header("Content-Length", str(len(body)))
                        self.end_headers(); self.wfile.write(body)
                    def log_message(self, *a): pass
                s = http.server.HTTPServer(("127.0.0.1", 0), H, bind_and_activate=False)
                s.socket.close(); s.socket = socket.socket(fileno=3)
                s.serve_forever()
                """))
        orphan = self.first([sys.executable, app])
        with Hupwatch(["-w", "0.2", "--listen", "127.0.0.1:%d" % self.port, "-S", self.status],
                      [sys.executable, app]) as hw:
            hw.wait_log(r"warning: cannot take over '127\.0\.0\.1:%d' from gen 1 pid %d: it holds no such "
                        r"listening socket$" % (self.port, orphan))
            hw.wait_log(r"info: SIGTERM to gen 1 pid %d of the hupwatch that died" % orphan)
            hw.wait_log(r"\bgen 2 pid \d+ ready after", timeout=15)
            # its port is free once its descriptors are closed, a moment before it is a zombie
            wait_for(lambda: not pid_alive(orphan), 5, "the orphan gone")
            self.assertEqual(http_get("127.0.0.1", self.port), (200, "gen=2\n"))

    def test_as_another_user_nothing_can_be_taken_one_line_naming_the_pid(self):
        orphan = self.first([CHILD, "--serve"])

        def as_nobody():
            os.setgid(65534)
            os.setgroups([])
            os.setuid(65534)
        r = subprocess.run([HUPWATCH, "-w", "0.2", "--listen", "127.0.0.1:%d" % self.port, "-S", self.status,
                            "--", CHILD, "--serve"], capture_output=True, text=True, timeout=30,
                           preexec_fn=as_nobody)
        self.assertEqual(r.returncode, 125, r.stderr)
        last = r.stderr.splitlines()[-1]
        self.assertRegex(last, r"error: cannot listen on '127\.0\.0\.1:%d': Address already in use "
                         r"\(held by gen 1 pid %d of the hupwatch that died\)$" % (self.port, orphan))
        self.assertTrue(pid_alive(orphan), "another user's process was killed")
        self.assertEqual(http_get("127.0.0.1", self.port)[0], 200)

    def test_a_pid_reused_by_another_process_is_never_signalled(self):
        # The status file names a "generation" whose pid is now someone else's: start time differs.
        other = subprocess.Popen(["sleep", "60"])
        self.addCleanup(other.kill)
        with open(self.status, "w") as f:
            f.write("pid=999999\nstarttime=1\nstate=running\ngenerations=1:%d:1:current\n" % other.pid)
        with Hupwatch(["-w", "0.2", "--listen", "127.0.0.1:%d" % self.port, "-S", self.status],
                      [CHILD, "--serve"]) as hw:
            hw.wait_log(r"\bgen 1 pid \d+ ready after")
            self.assertEqual(hw.log_matches(r"died without cleaning up"), [])
            self.assertIsNone(other.poll(), "an unrelated process was signalled")


if __name__ == "__main__":
    unittest.main()
