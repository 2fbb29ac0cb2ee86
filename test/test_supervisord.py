"""End to end: hupwatch as a supervisord [program] in front of real gunicorn.

The program section is examples/supervisord.conf itself, with its paths, port and user substituted, so
the example stays true. Each test starts its own supervisord (nodaemon, own unix socket for
supervisorctl, own temp dir) and leaves no process behind: everything it starts carries a unique
environment tag, and whatever still carries it at the end is killed (and, where the test says "nothing
is left", counted as a failure first).
"""

import os
import pwd
import re
import shutil
import signal
import subprocess
import unittest

from e2e import TAG_VAR, AppMixin, describe, kill_tagged, read_status, substitute, tagged_pids
from harness import HUPWATCH, ROOT, Load, base_env, children_of, pid_alive, wait_for

EXAMPLE = os.path.join(ROOT, "examples", "supervisord.conf")


def missing_programs():
    return [p for p in ("supervisord", "supervisorctl", "gunicorn") if shutil.which(p) is None]


@unittest.skipIf(missing_programs(), "not installed: %s (test/deps.sh installs them)"
                 % " ".join(missing_programs()))
class SupervisordTest(AppMixin, unittest.TestCase):

    def setUp(self):
        srv = self.setup_app("hupwatch-supervisord-")
        os.makedirs(os.path.join(self.tmp, "var", "log", "app"))
        self.app_log = os.path.join(self.tmp, "var", "log", "app", "hupwatch.log")
        self.sup_log = os.path.join(self.tmp, "supervisord.log")
        self.conf = os.path.join(self.tmp, "supervisord.conf")

        with open(EXAMPLE) as f:
            program = substitute(f.read(), [
                ("/usr/local/bin/hupwatch", HUPWATCH),
                ("127.0.0.1:8000", "127.0.0.1:%d" % self.port),
                ("/srv/app", srv),
                ("/var/log/app", os.path.dirname(self.app_log)),
                ("\nuser=app\n", "\nuser=%s\n" % pwd.getpwuid(os.getuid()).pw_name),
            ], EXAMPLE)
        sock = os.path.join(self.tmp, "supervisor.sock")
        with open(self.conf, "w") as f:
            f.write("[unix_http_server]\nfile=%s\nchmod=0700\n\n" % sock)
            f.write("[supervisord]\nnodaemon=true\nlogfile=%s\npidfile=%s\nchildlogdir=%s\n"
                    "loglevel=info\n\n"
                    % (self.sup_log, os.path.join(self.tmp, "supervisord.pid"), self.tmp))
            f.write("[rpcinterface:supervisor]\n"
                    "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n")
            f.write("[supervisorctl]\nserverurl=unix://%s\n\n" % sock)
            f.write(program)

        env = base_env(**{TAG_VAR: self.tag})
        self.sup_out = open(os.path.join(self.tmp, "supervisord.out"), "wb")
        self.addCleanup(self.sup_out.close)
        self.supervisord = subprocess.Popen(["supervisord", "-n", "-c", self.conf], env=env,
                                            stdin=subprocess.DEVNULL, stdout=self.sup_out,
                                            stderr=subprocess.STDOUT, cwd=self.tmp)
        self.addCleanup(self.kill_everything)

    # ---------------------------------------------------------------- helpers

    def kill_everything(self):
        """Stop supervisord, then SIGKILL whatever still carries our tag (bounded, never fails)."""
        sup = self.supervisord
        if sup.poll() is None:
            sup.send_signal(signal.SIGTERM)
            try:
                sup.wait(10)
            except subprocess.TimeoutExpired:
                sup.kill()
                sup.wait(5)
        kill_tagged(self.tag)

    def ctl(self, *args, timeout=30):
        r = subprocess.run(["supervisorctl", "-c", self.conf] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout)
        return r.returncode, r.stdout.strip()

    def program_status(self):
        """(STATE, pid or None) of [program:app] as `supervisorctl status app` prints it."""
        _, out = self.ctl("status", "app")
        m = re.match(r"app\s+([A-Z]+)(?:\s+pid (\d+))?", out)
        if not m:
            return (None, None)
        return (m.group(1), int(m.group(2)) if m.group(2) else None)

    def wait_running(self, times=1, timeout=30):
        """Wait until supervisord has logged [program:app] entering RUNNING `times` times (cheap to
        poll, unlike supervisorctl), then return (state, pid) as `supervisorctl status` shows it."""
        def check():
            if self.supervisord.poll() is not None:
                raise AssertionError("supervisord exited with %s:\n%s"
                                     % (self.supervisord.returncode, self.logs()))
            try:
                with open(self.sup_log, errors="replace") as f:
                    n = f.read().count("success: app entered RUNNING state")
            except FileNotFoundError:
                n = 0
            return n >= times
        try:
            wait_for(check, timeout, "app to enter RUNNING (%d times)" % times)
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.logs())) from None
        state = self.program_status()
        self.assertEqual(state[0], "RUNNING", self.logs())
        return state

    def logs(self):
        text = ""
        for path in (self.sup_log, self.app_log):
            try:
                with open(path, errors="replace") as f:
                    text += "---- %s\n%s" % (path, f.read())
            except FileNotFoundError:
                text += "---- %s: missing\n" % path
        return text

    def wait_file_line(self, path, regex, timeout=30):
        pat = re.compile(regex)

        def check():
            try:
                with open(path, errors="replace") as f:
                    for line in f:
                        m = pat.search(line)
                        if m:
                            return m
            except FileNotFoundError:
                pass
            return None
        try:
            return wait_for(check, timeout, "%r in %s" % (regex, path))
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.logs()))

    def start_and_wait_running(self):
        _, hw_pid = self.wait_running()
        st = self.wait_status(state="running", generation=1)
        self.assertEqual(st["pid"], str(hw_pid), "supervisord's pid is hupwatch's")
        body = self.wait_serving()
        self.assertRegex(body, r"^release=1 gen=1 pid=\d+$")
        return hw_pid, st

    # ---------------------------------------------------------------- tests

    def test_hup_reloads_under_load_and_stop_leaves_nothing(self):
        hw_pid, st = self.start_and_wait_running()
        with open(self.pid_file) as f:
            self.assertEqual(f.read(), "%d\n" % hw_pid)
        gunicorn_pids = {int(st["generation_pid"])}

        reloads = 5
        load = Load("127.0.0.1", self.port, threads=4).start()
        try:
            for k in range(1, reloads + 1):
                rc, out = self.ctl("signal", "HUP", "app")
                self.assertEqual((rc, out), (0, "app: signalled"))
                st = self.wait_status(reload=k, reload_state="succeeded", generation=k + 1)
                gunicorn_pids.add(int(st["generation_pid"]))
                # The reload is hupwatch's business: supervisord still sees the same, running process.
                self.assertEqual(self.program_status(), ("RUNNING", hw_pid))
                before = load.ok
                wait_for(lambda: load.ok >= before + 20, 20, "requests after reload %d" % k)
        finally:
            load.stop()
        self.assert_clean_load(load, reloads)
        self.assertEqual(len(gunicorn_pids), reloads + 1)
        # Every replaced gunicorn got TERM and drained gracefully (exit 0), none was killed.
        for k in range(1, reloads + 1):
            self.wait_file_line(self.app_log, r"info: gen %d pid \d+ exited with status 0 after "
                                r"draining" % k)

        # supervisorctl stop: TERM to hupwatch, which (-k) stops gunicorn and waits for it.
        rc, out = self.ctl("stop", "app")
        self.assertEqual((rc, out), (0, "app: stopped"), self.logs())
        self.assertEqual(self.program_status(), ("STOPPED", None))
        self.assertFalse(pid_alive(hw_pid))
        left = [p for p in tagged_pids(self.tag) if p != self.supervisord.pid]
        self.assertEqual(left, [], "left behind after supervisorctl stop: %s\n%s"
                         % (describe(left), self.logs()))
        # gunicorn exits 0 on TERM; hupwatch -k exits with the current generation's status.
        self.wait_file_line(self.sup_log, r"stopped: app \(exit status 0\)", timeout=5)
        self.assertFalse(os.path.exists(self.pid_file), "-k removes the pid file")
        self.assertEqual(read_status(self.status_file).get("state"), "exited")

    def test_app_death_makes_hupwatch_exit_and_supervisord_restart_it(self):
        hw_pid, st = self.start_and_wait_running()
        master = int(st["generation_pid"])
        workers = children_of(master)
        self.assertEqual(len(workers), 2, "gunicorn -w 2 under %d: %r" % (master, workers))

        os.kill(master, signal.SIGKILL)
        self.wait_file_line(self.app_log, r"error: gen 1 pid %d killed by SIGKILL; exiting with "
                            r"status 137" % master)
        self.wait_file_line(self.sup_log, r"exited: app \(exit status 137; not expected\)")
        # hupwatch (-k) has exited: nothing of the dead generation may outlive it. gunicorn's workers
        # would otherwise keep the listening socket (an idle sync worker notices its master's death
        # only after timeout/2 = 15 s), and the restarted hupwatch could not bind it (exit 125, again
        # and again until supervisord gives up: FATAL, the service down for good).
        try:
            wait_for(lambda: not any(pid_alive(w) for w in workers), 2,
                     "the killed master's workers to be gone once hupwatch exited")
        except AssertionError as e:
            raise AssertionError("%s: still alive: %s\n%s"
                                 % (e, describe([w for w in workers if pid_alive(w)]), self.logs())) from None

        _, new_pid = self.wait_running(times=2, timeout=45)
        self.assertNotEqual(new_pid, hw_pid)
        self.assertFalse(pid_alive(hw_pid))
        st = self.wait_status(pid=new_pid, state="running", generation=1)
        body = self.wait_serving()
        self.assertRegex(body, r"^release=1 gen=1 pid=\d+$")
        self.assertNotEqual(int(st["generation_pid"]), master)
        # Restarted at the first attempt: one spawn after the exit, no failure in between.
        with open(self.sup_log) as f:
            after = f.read().split("exited: app (exit status 137; not expected)", 1)[1]
        spawns = re.findall(r"(?:spawned|exited): .*", after)
        self.assertEqual(spawns, ["spawned: 'app' with pid %d" % new_pid], self.logs())


if __name__ == "__main__":
    unittest.main()
