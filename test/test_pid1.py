"""End to end: hupwatch as PID 1 of a new pid namespace, the way a container runtime starts it.

    unshare --pid --fork --mount-proc hupwatch ... -- COMMAND

Orphans are reaped (none is left, not even as a zombie), signals are forwarded, the exit status passes
through unshare. Also runs examples/Dockerfile's ENTRYPOINT + CMD (gunicorn) this way.

Pids inside the namespace differ from the host's: the log and the child's reports give namespace pids,
mapped to host pids through /proc/PID/status (NSpid) of the processes sharing hupwatch's namespace.
Needs root (or at least CAP_SYS_ADMIN) for unshare --pid; skipped otherwise.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

from harness import (CHILD, HUPWATCH, ROOT, Hupwatch, Reports, children_of, free_port, http_get,
                     proc_state, wait_for)

DOCKERFILE = os.path.join(ROOT, "examples", "Dockerfile")
APP = os.path.join(ROOT, "test", "e2e_app.py")
UNSHARE = ["--pid", "--fork", "--mount-proc", "--kill-child"]


def unshare_problem():
    """Why `unshare --pid` cannot be used here, or None."""
    if shutil.which("unshare") is None:
        return "unshare not installed (util-linux)"
    if os.geteuid() != 0:
        return "unshare --pid --mount-proc needs root"
    try:
        r = subprocess.run(["unshare"] + UNSHARE + ["true"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unshare failed: %s" % e
    if r.returncode != 0:
        return "unshare --pid does not work here: %s" % r.stdout.decode(errors="replace").strip()
    return None


UNSHARE_PROBLEM = unshare_problem()


class NsHupwatch(Hupwatch):
    """hupwatch as PID 1: unshare ... HUPWATCH ARGS -- CMD. .pid is unshare's; .hw_pid hupwatch's."""

    def __init__(self, args, cmd, hupwatch=HUPWATCH, **kw):
        super().__init__(UNSHARE + [hupwatch] + list(args), cmd, binary="unshare", **kw)
        self.hw_pid = wait_for(lambda: (children_of(self.pid) or [None])[0], 10,
                               "hupwatch forked by unshare")

    def cleanup(self):
        # "gen N pid P" in the log are namespace pids, meaningless on the host: do not let the harness
        # kill host process groups by those numbers. While unshare runs, its descendants (host pids)
        # are killed; once hupwatch (PID 1) is gone the kernel has killed the whole namespace.
        with self._cond:
            self.gen_pids.clear()
        super().cleanup()


def ns_members(host_pid):
    """{namespace pid: (host pid, state)} of every process in host_pid's pid namespace."""
    try:
        ns = os.readlink("/proc/%d/ns/pid" % host_pid)
    except OSError:
        return {}
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/ns/pid" % name) != ns:
                continue
            with open("/proc/%s/status" % name) as f:
                status = f.read()
        except OSError:
            continue
        nspid = re.search(r"^NSpid:\s*(.*)$", status, re.M).group(1).split()[-1]
        state = re.search(r"^State:\s*(\S)", status, re.M).group(1)
        out[int(nspid)] = (int(name), state)
    return out


@unittest.skipIf(UNSHARE_PROBLEM, UNSHARE_PROBLEM)
class Pid1Test(unittest.TestCase):

    def setUp(self):
        self.rep = Reports()
        self.addCleanup(shutil.rmtree, self.rep.dir, True)

    def start(self, args, child_args):
        hw = NsHupwatch(args, [CHILD, "--report", self.rep.dir] + child_args)
        self.addCleanup(hw.cleanup)
        m = hw.wait_log(r"^hupwatch\[(\d+)\]: info: gen 1 pid (\d+) started")
        self.assertEqual(m.group(1), "1", "hupwatch is PID 1 of its namespace")
        return hw, int(m.group(2))

    def test_orphans_are_reaped(self):
        hw, gen1 = self.start(["-v", "-k", "-w", "0.2"], ["--orphan", "300"])
        report = self.rep.wait_report(gen=1)
        self.assertEqual((report["pid"], report["ppid"]), (str(gen1), "1"))
        orphan = wait_for(self.rep.orphans, 10, "the orphan's file")[0]
        # The orphan was reparented to PID 1 (hupwatch), which reaps it when it exits.
        hw.wait_log(r"debug: reaped orphan pid %d \(exited with status 0\)$" % orphan)
        members = ns_members(hw.hw_pid)
        self.assertNotIn(orphan, members, "the orphan is gone, not a zombie: %r" % members)
        self.assertEqual({p for p, (_, st) in members.items() if st == "Z"}, set(),
                         "no zombie in the namespace: %r" % members)
        self.assertEqual(sorted(members), [1, gen1], "only hupwatch and the child are left")
        if shutil.which("nsenter"):
            # Seen from inside the namespace, through its own /proc, too.
            r = subprocess.run(["nsenter", "-t", str(hw.hw_pid), "-p", "-m", "sh", "-c",
                                "test ! -e /proc/%d && test -e /proc/%d" % (orphan, gen1)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=10)
            self.assertEqual(r.returncode, 0, r.stdout)

        # unshare only waits for its child: signals go to hupwatch itself, as a runtime sends them.
        os.kill(hw.hw_pid, signal.SIGTERM)
        self.assertEqual(hw.wait_exit(10), 0, hw.stderr())     # the child exits 0 on TERM

    def test_signals_are_forwarded_and_hup_reloads(self):
        hw, gen1 = self.start(["-k", "-w", "0.2"], ["--term-exit", "9"])
        hw.wait_log(r"gen 1 pid %d ready" % gen1)
        for sig in ("USR1", "USR2", "WINCH"):
            os.kill(hw.hw_pid, getattr(signal, "SIG" + sig))
            self.rep.wait_event(gen1, "signal %s" % sig)
            hw.wait_log(r"info: forwarding SIG%s to gen 1 pid %d$" % (sig, gen1))
        # HUP is hupwatch's own: a reload, inside the namespace as anywhere.
        os.kill(hw.hw_pid, signal.SIGHUP)
        gen2 = int(hw.wait_log(r"gen 2 pid (\d+) ready").group(1))
        hw.wait_log(r"gen 1 pid %d exited with status 9 after draining" % gen1)
        self.assertNotIn("signal HUP", self.rep.events(gen1))
        # SIGTERM with -k: the current generation's status (--term-exit 9) is hupwatch's, and unshare's.
        os.kill(hw.hw_pid, signal.SIGTERM)
        self.assertEqual(hw.wait_exit(10), 9, hw.stderr())
        self.assertIn("term", self.rep.events(gen2))
        hw.wait_log(r"info: exiting with status 9$")

    def test_exit_status_passes_through(self):
        cases = [
            (["--delay", "500", "--exit", "7"], 7),
            (["--delay", "500", "--exit", "0"], 0),
            (["--delay", "500", "--kill-self", "SEGV"], 128 + signal.SIGSEGV),
            (["--delay", "500", "--kill-self", "TERM"], 128 + signal.SIGTERM),
        ]
        for child_args, want in cases:
            with self.subTest(child=child_args):
                hw, gen1 = self.start(["-w", "0.1"], child_args)
                hw.wait_log(r"gen 1 pid %d ready" % gen1)
                self.assertEqual(hw.wait_exit(10), want, hw.stderr())
                hw.wait_log(r"exiting with status %d$" % want)
                hw.cleanup()

    def test_without_k_pid1_exit_takes_the_app_down(self):
        # Why examples/Dockerfile passes -k: without it hupwatch exits at once on TERM, and when PID 1
        # exits the kernel SIGKILLs everything left in its namespace; the app never sees its TERM.
        hw, gen1 = self.start(["-w", "0.1"], [])
        hw.wait_log(r"gen 1 pid %d ready" % gen1)
        child_host_pid = ns_members(hw.hw_pid)[gen1][0]
        os.kill(hw.hw_pid, signal.SIGTERM)
        self.assertEqual(hw.wait_exit(10), 0, hw.stderr())
        wait_for(lambda: proc_state(child_host_pid) in (None, "Z"), 5, "the child killed with PID 1")
        self.assertNotIn("term", self.rep.events(gen1))

    def test_dockerfile_builds_and_runs_as_pid1(self):
        """examples/Dockerfile without Docker: its build stage's COPY + RUN make in a scratch dir, then
        its ENTRYPOINT + CMD with that binary as PID 1, in a copy of its WORKDIR."""
        if shutil.which("gunicorn") is None:
            self.skipTest("gunicorn not installed (test/deps.sh installs it)")
        with open(DOCKERFILE) as f:
            text = f.read()
        build_stage = re.search(r"^FROM \S+ AS build$(.*?)^FROM ", text, re.M | re.S).group(1)
        run_stage = text[text.index(build_stage) + len(build_stage):]
        entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", run_stage, re.M).group(1))
        cmd = json.loads(re.search(r"^CMD (\[.*\])$", run_stage, re.M).group(1))
        self.assertEqual(re.findall(r"^WORKDIR (\S+)$", run_stage, re.M), ["/srv/app"])
        self.assertIn("COPY --from=build /src/hupwatch /usr/local/bin/hupwatch", run_stage)
        self.assertIn("COPY test/e2e_app.py /srv/app/app.py", run_stage)

        tmp = tempfile.mkdtemp(prefix="hupwatch-docker-")
        self.addCleanup(shutil.rmtree, tmp, True)
        # Build stage: WORKDIR /src; COPY FILES... ./; RUN make ... (the apt-get line is Docker's).
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        copies = re.findall(r"^COPY (.+) \./$", build_stage, re.M)
        self.assertEqual(len(copies), 1, build_stage)
        for name in copies[0].split():
            shutil.copy(os.path.join(ROOT, name), src)
        make = re.findall(r"^RUN (make .*)$", build_stage, re.M)
        self.assertEqual(len(make), 1, build_stage)
        r = subprocess.run(make[0], shell=True, cwd=src, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=50)
        self.assertEqual(r.returncode, 0, "build stage: %s\n%s" % (make[0], r.stdout))
        binary = os.path.join(src, "hupwatch")

        # Runtime stage, in a copy of WORKDIR /srv/app.
        workdir = os.path.join(tmp, "srv", "app")
        os.makedirs(workdir)
        shutil.copy(APP, os.path.join(workdir, "app.py"))
        port = free_port()
        repl = {"0.0.0.0:8000": "127.0.0.1:%d" % port,
                "/tmp/hupwatch.status": os.path.join(tmp, "hupwatch.status")}
        for old in repl:
            self.assertIn(old, entrypoint, "examples/Dockerfile's ENTRYPOINT changed: update the test")
        self.assertEqual((entrypoint[0], entrypoint[-1]), ("/usr/local/bin/hupwatch", "--"))
        args = [repl.get(a, a) for a in entrypoint[1:-1]]

        hw = NsHupwatch(args, cmd, hupwatch=binary, cwd=workdir)
        self.addCleanup(hw.cleanup)
        m = hw.wait_log(r"^hupwatch\[(\d+)\]: info: gen 1 pid (\d+) ready after [0-9.]+s \(READY=1\)",
                        timeout=30)
        self.assertEqual(m.group(1), "1", "hupwatch is PID 1")

        def answer():
            try:
                st, body = http_get("127.0.0.1", port, timeout=2)
            except (OSError, ValueError):
                return None
            return body if st == 200 else None
        self.assertRegex(wait_for(answer, 20, "gunicorn to answer"), r"^release=app gen=1 pid=\d+$")

        os.kill(hw.hw_pid, signal.SIGHUP)                   # docker kill --signal HUP
        hw.wait_log(r"gen 2 pid \d+ ready after [0-9.]+s \(READY=1\)", timeout=30)
        hw.wait_log(r"gen 1 pid \d+ exited with status 0 after draining", timeout=30)
        self.assertRegex(wait_for(answer, 20, "generation 2 to answer"), r" gen=2 ")
        members = ns_members(hw.hw_pid)
        self.assertEqual({p for p, (_, st) in members.items() if st == "Z"}, set(), members)

        os.kill(hw.hw_pid, signal.SIGTERM)                  # docker stop
        self.assertEqual(hw.wait_exit(20), 0, hw.stderr())  # gunicorn exits 0 on TERM
        hw.wait_log(r"gen 2 pid \d+ exited with status 0")

if __name__ == "__main__":
    unittest.main()
