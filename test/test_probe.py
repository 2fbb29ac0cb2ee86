"""Integration tests of issue 9: readiness that only the new generation can answer.

A private probe socket per generation (--probe-socket, --ready-http), the HTTP check run by
hupwatch itself, --settle-time, and the notify socket as a path with one socket per generation.
The server is test/probe_app.py (python3, serves every inherited socket); its behaviour per
generation is given as JSON on its command line. Synchronisation is on events: hupwatch's log
lines, the files the app writes, the exit of `hupwatch --reload`.
"""

import json
import os
import re
import shlex
import stat
import subprocess
import sys
import tempfile
import shutil
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

APP = os.path.join(ROOT, "test", "probe_app.py")

# A one-shot notifier: READY=1 to $NOTIFY_SOCKET, then it exits at once (systemd-notify does
# the same). Its parent reaps it at once too, so hupwatch may find no trace of it in /proc.
NOTIFY_ONCE_C = r"""
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(void)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	if (!name || fd < 0 || strlen(name) >= sizeof(sa.sun_path))
		return 2;
	strcpy(sa.sun_path, name);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	return sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sa, sizeof(sa)) == 7 ? 0 : 1;
}
"""


class ProbeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ready-probe-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.status = os.path.join(self.tmp, "status")

    def start(self, args, spec, listen=None):
        self.port = free_port()
        listen = listen or "127.0.0.1:%d" % self.port
        hw = Hupwatch(["-S", self.status, "-l", listen] + list(args),
                      [sys.executable, APP, json.dumps(spec)])
        self.addCleanup(hw.cleanup)
        hw.wait_log(r"\bgen 1 pid \d+ ready after", 20)
        return hw

    def reload(self, timeout=60):
        r = subprocess.run([HUPWATCH, "--reload", "-S", self.status], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, env=base_env())
        return r.returncode, r.stdout.decode() + r.stderr.decode()

    def assert_never_stopped(self, hw, pid1):
        st = wait_for(lambda: (lambda t: "reload_state=failed\n" in t and t)(open(self.status).read()),
                      10, "the status file to say the reload failed")
        self.assertIn("generation=1\n", st)
        self.assertEqual(hw.log_matches(r"\bgen 1 pid \d+ stopping"), [], hw.stderr())
        self.assertTrue(pid_alive(pid1))

    def test_old_answers_200_new_503_reload_fails(self):
        """The same path: 200 from the old generation, 503 from the new; only the probe socket tells them apart."""
        spec = {"1": {"report": self.tmp}, "2": {"health": 503, "report": self.tmp}}
        hw = self.start(["--ready-http", "/health", "-t", "2"], spec)
        pid1 = hw.gen_pids[0]
        # What a check through the public address would see: the old generation's 200.
        self.assertEqual(http_get("127.0.0.1", self.port, path="/health")[0], 200)
        with Load("127.0.0.1", self.port) as load:
            rc, out = self.reload()
            self.assertEqual(rc, 1, out)
            self.assertIn("not ready after", out)
            self.assertIn("503", out)
        self.assertEqual(load.failed, 0, load.errors[:5])
        self.assertGreater(load.ok, 0)
        # (gen 2 served "/" on the public socket meanwhile, as every starting generation does)
        self.assert_never_stopped(hw, pid1)
        hw.wait_log(r"\bgen 2 pid \d+: GET /health: HTTP/1.1 503 Not OK \(\d+\.\d+s\)")
        # Each generation got a probe socket of its own, the last of LISTEN_FDS.
        env1 = json.load(open(os.path.join(self.tmp, "gen1.env")))
        env2 = json.load(open(os.path.join(self.tmp, "gen2.env")))
        for env in (env1, env2):
            self.assertEqual(env["LISTEN_FDS"], 2)
            self.assertEqual(env["LISTEN_FDNAMES"].split(":")[-1], "hupwatch-probe")
            self.assertRegex(env["HUPWATCH_PROBE_ADDRESS"], r"^127\.0\.0\.1:\d+$")
        self.assertNotEqual(env1["HUPWATCH_PROBE_ADDRESS"], env2["HUPWATCH_PROBE_ADDRESS"])
        # Gen 2 is gone, and so is its probe socket; gen 1's still answers.
        hw.wait_log(r"\bgen 2 pid \d+ (exited|killed)")
        host, port = env1["HUPWATCH_PROBE_ADDRESS"].rsplit(":", 1)
        self.assertEqual(http_get(host, int(port), path="/health")[0], 200)

    def test_slow_boot_is_not_ready_early(self):
        """A release that needs 3 s to boot: the probe socket is listening (hupwatch holds it) but nobody answers."""
        hw = self.start(["--ready-http", "/health", "-t", "20"], {"2": {"boot": 3}})
        pid1 = hw.gen_pids[0]
        with Load("127.0.0.1", self.port) as load:
            m = hw.mark()
            rc, out = self.reload()
            self.assertEqual(rc, 0, out)
        self.assertEqual(load.failed, 0, load.errors[:5])
        got = hw.wait_log(r"\bgen 2 pid \d+ ready after (\d+\.\d+)s \(HTTP\)", since=m)
        self.assertGreaterEqual(float(got.group(1)), 3.0, hw.stderr())
        hw.wait_log(r"gen 1 pid %d stopping" % pid1, since=m, timeout=5)  # our reader of stderr may lag
        i_ready = next(i for i, l in enumerate(hw.lines) if re.search(r"gen 2 pid \d+ ready after", l))
        i_stop = next(i for i, l in enumerate(hw.lines) if re.search(r"gen 1 pid %d stopping" % pid1, l))
        self.assertGreater(i_stop, i_ready)
        # A try that timed out was logged with its bound.
        self.assertTrue(hw.log_matches(r"gen 2 pid \d+: GET /health: no answer within 1\.00s", m), hw.stderr())

    def test_settle_time_crash_after_ready_fails_reload(self):
        hw = self.start(["--ready-http", "/health", "--settle-time", "3", "-t", "20"], {"2": {"crash": 1}})
        pid1 = hw.gen_pids[0]
        with Load("127.0.0.1", self.port) as load:
            m = hw.mark()
            rc, out = self.reload()
            self.assertEqual(rc, 1, out)
        self.assertEqual(load.failed, 0, load.errors[:5])
        self.assertIn("while settling", out)
        hw.wait_log(r"\bgen 2 pid \d+ ready after [\d.]+s \(HTTP\)", since=m)
        hw.wait_log(r"\bgen 2 pid \d+ settling for 3\.00s; gen 1 stays current", since=m)
        hw.wait_log(r"\bgen 2 failed: exited with status 3 while settling; gen 1 stays current", since=m)
        self.assert_never_stopped(hw, pid1)
        self.assertEqual(http_get("127.0.0.1", self.port)[0], 200)

    def test_settle_time_healthy_then_old_stopped(self):
        hw = self.start(["--ready-http", "/health", "--settle-time", "1", "-i", "0.1"], {})
        pid1 = hw.gen_pids[0]
        t0 = time.monotonic()
        rc, out = self.reload()
        self.assertEqual(rc, 0, out)
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)
        hw.wait_log(r"gen 1 pid %d stopping" % pid1, timeout=5)  # our reader of stderr may lag
        i_settled = next(i for i, l in enumerate(hw.lines)
                         if re.search(r"gen 2 pid \d+ settled: alive and answering for 1\.00s", l))
        i_stop = next(i for i, l in enumerate(hw.lines) if re.search(r"gen 1 pid %d stopping" % pid1, l))
        self.assertGreater(i_stop, i_settled)

    def test_settle_time_stops_answering_fails_reload(self):
        """Alive but silent once it was ready (SIGSTOP): a failed try in the settle time fails the reload."""
        hw = self.start(["--ready-http", "/health", "--settle-time", "5", "-i", "0.1"], {})
        pid1 = hw.gen_pids[0]
        m = hw.mark()
        hw.signal("HUP")
        hw.wait_log(r"\bgen 2 pid \d+ settling", since=m)
        pid2 = hw.gen_pids[1]
        os.kill(pid2, 19)  # SIGSTOP: alive, but no answer
        try:
            hw.wait_log(r"\bgen 2 failed: stopped answering while settling: GET /health: no answer", 10, m)
        finally:
            os.kill(pid2, 18)
        self.assert_never_stopped(hw, pid1)

    def test_unix_probe_socket_in_private_directory(self):
        sock = os.path.join(self.tmp, "public.sock")
        probe = os.path.join(self.tmp, "probe-out")
        cmd = [sys.executable, APP, json.dumps({"1": {"report": self.tmp}})]
        check = 'curl -sf --unix-socket "${HUPWATCH_PROBE_ADDRESS#unix:}" http://x/health >/dev/null && echo "$HUPWATCH_PROBE_ADDRESS" > %s' % shlex.quote(probe)
        hw = Hupwatch(["-S", self.status, "-l", "unix:" + sock, "--probe-socket", "-c", check], cmd,
                      env={"XDG_RUNTIME_DIR": self.tmp, "RUNTIME_DIRECTORY": None})
        self.addCleanup(hw.cleanup)
        hw.wait_log(r"\bgen 1 pid \d+ ready after [\d.]+s \(ready-cmd\)", 20)
        addr = open(probe).read().strip()
        env1 = json.load(open(os.path.join(self.tmp, "gen1.env")))
        self.assertEqual(env1["HUPWATCH_PROBE_ADDRESS"], addr)
        self.assertTrue(addr.startswith("unix:" + self.tmp + "/hupwatch."), addr)
        d = os.path.dirname(addr[5:])
        self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700)
        self.assertTrue(stat.S_ISSOCK(os.stat(addr[5:]).st_mode))
        hw.signal("TERM")
        hw.wait_exit()
        self.assertFalse(os.path.exists(d), "private directory left behind")

    def test_notify_socket_is_a_path_per_generation(self):
        rep = os.path.join(self.tmp, "ns")
        cmd = ["/bin/sh", "-c", 'echo "$NOTIFY_SOCKET" > %s.$HUPWATCH_GENERATION; exec %s' % (
            shlex.quote(rep), " ".join(shlex.quote(a) for a in [sys.executable, APP, "{}"]))]
        helper = self.notify_once()
        cmd[2] = cmd[2].replace("; exec", "; %s; exec" % shlex.quote(helper))
        hw = Hupwatch(["-n", "-S", self.status], cmd, env={"XDG_RUNTIME_DIR": self.tmp,
                                                           "RUNTIME_DIRECTORY": None})
        self.addCleanup(hw.cleanup)
        hw.wait_log(r"\bgen 1 pid \d+ ready after [\d.]+s \(READY=1\)")
        rc, out = self.reload()
        self.assertEqual(rc, 0, out)
        n1, n2 = (open("%s.%d" % (rep, g)).read().strip() for g in (1, 2))
        self.assertNotEqual(n1, n2)
        for n in (n1, n2):
            self.assertTrue(n.startswith(self.tmp + "/hupwatch."), n)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(n1)).st_mode), 0o700)
        # gen 1 is gone: its socket went with it; gen 2's is there.
        wait_for(lambda: not os.path.exists(n1), 10, "gen 1's notify socket removed")
        self.assertTrue(stat.S_ISSOCK(os.stat(n2).st_mode))
        hw.signal("TERM")
        hw.wait_exit()
        self.assertFalse(os.path.exists(os.path.dirname(n1)))

    def notify_once(self):
        src = os.path.join(self.tmp, "notify_once.c")
        exe = os.path.join(self.tmp, "notify_once")
        with open(src, "w") as f:
            f.write(NOTIFY_ONCE_C)
        subprocess.run([os.environ.get("CC", "cc"), "-O", "-o", exe, src], check=True)
        return exe

    def test_thousand_one_shot_notifiers_all_accepted(self):
        """1,000 generations whose READY=1 comes from a helper that exits at once (and is reaped at once)."""
        helper = self.notify_once()
        n = int(os.environ.get("HUPWATCH_ONESHOT_RUNS", "1000"))
        hw = Hupwatch(["-n", "-t", "10", "-T", "5"],
                      ["/bin/sh", "-c", "%s || exit 9; exec sleep 600" % shlex.quote(helper)],
                      env={"XDG_RUNTIME_DIR": self.tmp, "RUNTIME_DIRECTORY": None})
        self.addCleanup(hw.cleanup)
        hw.wait_log(r"\bgen 1 pid \d+ ready after [\d.]+s \(READY=1\)")
        t0 = time.monotonic()
        for g in range(2, n + 1):
            m = hw.mark()
            hw.signal("HUP")
            got = hw.wait_log(r"\bgen %d (pid \d+ ready after|failed)" % g, 15, m)
            self.assertIn("ready after", got.group(0), hw.stderr()[-3000:])
        took = time.monotonic() - t0
        self.assertEqual(hw.log_matches(r"dropped notify|failed"), [])
        sys.stderr.write("[%d one-shot READY=1 starts accepted in %.1fs] " % (n, took))


if __name__ == "__main__":
    unittest.main()
