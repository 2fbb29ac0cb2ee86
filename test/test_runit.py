"""End to end: hupwatch as a runit service (`exec hupwatch ...` in ./run) in front of real gunicorn.

The run script is examples/runit/run itself, with its paths, port and user substituted, so the example
stays true. The test starts its own `runsv DIR` (no runsvdir, nothing system-wide) and drives it with
`sv ... DIR`; everything it starts carries a unique environment tag, and whatever still carries it at
the end is killed.
"""

import os
import pwd
import re
import shutil
import subprocess
import unittest

from e2e import TAG_VAR, AppMixin, describe, kill_tagged, read_status, substitute, tagged_pids
from harness import HUPWATCH, ROOT, Load, base_env, pid_alive, wait_for

EXAMPLE = os.path.join(ROOT, "examples", "runit", "run")


def missing_programs():
    return [p for p in ("runsv", "sv", "chpst", "gunicorn") if shutil.which(p) is None]


@unittest.skipIf(missing_programs(), "not installed: %s (test/deps.sh installs runit and gunicorn)"
                 % " ".join(missing_programs()))
class RunitTest(AppMixin, unittest.TestCase):

    def setUp(self):
        srv = self.setup_app("hupwatch-runit-")

        # chpst -u needs root; as another user the script runs hupwatch without it.
        user = ("chpst -u %s " % pwd.getpwuid(0).pw_name) if os.getuid() == 0 else ""
        with open(EXAMPLE) as f:
            run = substitute(f.read(), [
                ("chpst -u app ", user),
                ("/usr/local/bin/hupwatch", HUPWATCH),
                ("127.0.0.1:8000", "127.0.0.1:%d" % self.port),
                ("/srv/app", srv),
            ], EXAMPLE)
        self.svc = os.path.join(self.tmp, "service", "app")
        os.makedirs(self.svc)
        with open(os.path.join(self.svc, "run"), "w") as f:
            f.write(run)
        os.chmod(os.path.join(self.svc, "run"), 0o755)

        env = base_env(**{TAG_VAR: self.tag})
        self.env = env
        # With no log/ service, ./run's stdout (and stderr: exec 2>&1) is runsv's.
        self.log_path = os.path.join(self.tmp, "runsv.log")
        self.log = open(self.log_path, "wb")
        self.addCleanup(self.log.close)
        self.runsv = subprocess.Popen(["runsv", self.svc], env=env, stdin=subprocess.DEVNULL,
                                      stdout=self.log, stderr=subprocess.STDOUT, cwd=self.tmp)
        self.addCleanup(self.kill_everything)

    # ---------------------------------------------------------------- helpers

    def kill_everything(self):
        """`sv exit` (TERM to the service, runsv exits), then SIGKILL whatever still carries our tag."""
        if self.runsv.poll() is None:
            try:
                subprocess.run(["sv", "exit", self.svc], env=self.env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=10)
            except subprocess.TimeoutExpired:
                pass
            try:
                self.runsv.wait(10)
            except subprocess.TimeoutExpired:
                self.runsv.kill()
                self.runsv.wait(5)
        kill_tagged(self.tag)

    def sv(self, *args):
        r = subprocess.run(["sv"] + list(args) + [self.svc], env=self.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        return r.returncode, r.stdout.strip()

    def sv_status(self):
        """('run', pid) / ('down', None) / (None, None) from `sv status DIR`."""
        _, out = self.sv("status")
        m = re.match(r"(run|down|finish): %s: (?:\(pid (\d+)\) )?" % re.escape(self.svc), out)
        if not m:
            return (None, None)
        return (m.group(1), int(m.group(2)) if m.group(2) else None)

    def logs(self):
        with open(self.log_path, errors="replace") as f:
            return "---- %s\n%s" % (self.log_path, f.read())

    def wait_sv(self, state, timeout=30, not_pid=None):
        def check():
            if self.runsv.poll() is not None:
                raise AssertionError("runsv exited with %s\n%s" % (self.runsv.returncode, self.logs()))
            st, pid = self.sv_status()
            if st == state and (not_pid is None or pid != not_pid):
                return (st, pid)
            return None
        try:
            return wait_for(check, timeout, "sv status: %s" % state)
        except AssertionError as e:
            raise AssertionError("%s (now %r)\n%s" % (e, self.sv("status"), self.logs()))

    def wait_up(self, not_pid=None):
        _, pid = self.wait_sv("run", not_pid=not_pid)
        st = self.wait_status(pid=pid, state="running", generation=1)
        body = self.wait_serving()
        self.assertRegex(body, r"^release=1 gen=1 pid=\d+$")
        return pid, st

    # ---------------------------------------------------------------- tests

    def test_sv_hup_down_up(self):
        wait_for(lambda: os.path.exists(os.path.join(self.svc, "supervise", "ok")), 10,
                 "runsv to create supervise/ok")
        pid, st = self.wait_up()
        with open(self.pid_file) as f:
            self.assertEqual(f.read(), "%d\n" % pid, "sv's pid is hupwatch's: the run script execs it")

        reloads = 5
        load = Load("127.0.0.1", self.port, threads=4).start()
        try:
            for k in range(1, reloads + 1):
                self.assertEqual(self.sv("hup"), (0, ""))
                self.wait_status(reload=k, reload_state="succeeded", generation=k + 1)
                self.assertEqual(self.sv_status(), ("run", pid), "one stable pid across reloads")
                before = load.ok
                wait_for(lambda: load.ok >= before + 20, 20, "requests after reload %d" % k)
        finally:
            load.stop()
        self.assert_clean_load(load, reloads)
        # Every replaced gunicorn got TERM and drained gracefully (exit 0), none was killed.
        for k in range(1, reloads + 1):
            pat = re.compile(r"info: gen %d pid \d+ exited with status 0 after draining" % k)
            wait_for(lambda: pat.search(self.logs()), 20, pat.pattern)

        # sv down: TERM (+CONT) to hupwatch; with -k it stops gunicorn, waits, and exits.
        rc, out = self.sv("-v", "-w", "30", "down")      # waits, as examples/runit/run says
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"^ok: down: ")
        self.assertFalse(pid_alive(pid))
        left = [p for p in tagged_pids(self.tag) if p != self.runsv.pid]
        self.assertEqual(left, [], "left behind after sv down: %s\n%s" % (describe(left), self.logs()))
        self.assertFalse(os.path.exists(self.pid_file), "-k removes the pid file")
        st = read_status(self.status_file)
        self.assertEqual((st.get("state"), st.get("exit_status")), ("exited", "0"), st)
        # runsv does not restart a service that is wanted down.
        self.assertEqual(self.sv_status(), ("down", None))

        # sv up: a new hupwatch, generation 1 again, serving.
        self.assertEqual(self.sv("up")[0], 0)
        new_pid, _ = self.wait_up(not_pid=pid)
        self.assertNotEqual(new_pid, pid)
        self.assertEqual(self.sv("hup"), (0, ""))
        self.wait_status(pid=new_pid, reload=1, reload_state="succeeded", generation=2)
        self.assertEqual(self.sv_status(), ("run", new_pid))


if __name__ == "__main__":
    unittest.main()
