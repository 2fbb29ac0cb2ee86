"""hupwatch --upgrade (issue 11, item 4): hupwatch re-executes its own binary, losing nothing.

Two builds of hupwatch.c that differ in their version string take turns at one path, as a package
upgrade would put them there; a third build reads another version of the handover record and must
give the state back. Under load the whole time: same pid, same listening socket (its inode), no
failed request, generations and counters carried over.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403
from e2e import read_status  # noqa: E402

SRC = os.path.join(ROOT, "hupwatch.c")


def build(out, *defines):
    cmd = [os.environ.get("CC", "cc"), "-std=c11", "-D_GNU_SOURCE", "-O1", "-o", out, SRC] + list(defines)
    subprocess.run(cmd, check=True, timeout=120)
    return out


class UpgradeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.builds = tempfile.mkdtemp(prefix="hw-upgrade-builds-")
        cls.a = build(os.path.join(cls.builds, "a"), '-DVERSION="9.0.0-a"')
        cls.b = build(os.path.join(cls.builds, "b"), '-DVERSION="9.0.0-b"')
        cls.other = build(os.path.join(cls.builds, "other"), '-DVERSION="9.0.0-other"',
                          "-DHANDOVER_VERSION=99")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.builds, True)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hw-upgrade-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.bin = os.path.join(self.tmp, "hupwatch")
        self.status = os.path.join(self.tmp, "status")
        self.install(self.a)

    def install(self, build_path):
        """Put a build at the path, by rename, as dpkg does."""
        tmp = self.bin + ".new"
        shutil.copy(build_path, tmp)
        os.replace(tmp, self.bin)

    def upgrade(self):
        return subprocess.run([self.bin, "--upgrade", "-S", self.status], capture_output=True, text=True,
                              timeout=60)

    def start(self):
        hw = Hupwatch(["-w", "0.2", "--listen", "127.0.0.1:0", "-S", self.status],
                      [CHILD, "--serve"], binary=self.bin)
        hw.__enter__()
        self.addCleanup(hw.__exit__, None, None, None)
        port = int(hw.wait_log(r"\binfo: listening on 127\.0\.0\.1:(\d+) \(fd \d+\)").group(1))
        hw.wait_log(r"\bgen 1 pid \d+ ready after")
        wait_for(lambda: read_status(self.status).get("state") == "running", 10, "state=running")
        return hw, port

    def socket_inode(self, pid, port):
        """The inode of the socket listening on port, which pid must hold."""
        with open("/proc/net/tcp") as f:
            rows = [line.split() for line in f.read().splitlines()[1:]]
        inodes = [r[9] for r in rows if r[3] == "0A" and int(r[1].split(":")[1], 16) == port]
        self.assertEqual(len(inodes), 1, rows)
        held = {os.readlink("/proc/%d/fd/%s" % (pid, fd)) for fd in os.listdir("/proc/%d/fd" % pid)}
        self.assertIn("socket:[%s]" % inodes[0], held, "hupwatch does not hold its listening socket")
        return inodes[0]

    def test_twenty_upgrades_under_load(self):
        hw, port = self.start()
        inode = self.socket_inode(hw.pid, port)
        fds = len(os.listdir("/proc/%d/fd" % hw.pid))
        load = Load("127.0.0.1", port, threads=4).start()
        try:
            for i in range(1, 21):
                self.install(self.b if i % 2 else self.a)
                version = "9.0.0-b" if i % 2 else "9.0.0-a"
                r = self.upgrade()
                self.assertEqual(r.returncode, 0, r.stderr + hw.stderr()[-2000:])
                self.assertEqual(r.stdout, "hupwatch: upgrade %d succeeded: pid %d runs hupwatch %s\n"
                                 % (i, hw.pid, version))
                st = read_status(self.status)
                self.assertEqual((st["pid"], st["version"], st["upgrades"]), (str(hw.pid), version, str(i)))
                if i % 5 == 0:  # reloads go on across upgrades, numbered on
                    r = subprocess.run([self.bin, "--reload", "-S", self.status], capture_output=True,
                                       text=True, timeout=60)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertRegex(r.stdout, r"reload %d succeeded: gen %d " % (i // 5, i // 5 + 1))
                self.assertEqual(self.socket_inode(hw.pid, port), inode, "the listening socket changed")
                self.assertEqual(len(os.listdir("/proc/%d/fd" % hw.pid)), fds, "descriptors leak")
        finally:
            load.stop()
        self.assertEqual((load.failed, load.errors[:5]), (0, []))
        self.assertGreater(load.ok, 100)
        self.assertEqual(hw.log_matches(r"\berror: "), [])
        # the generations are still its children: a stop is graceful and reaped
        hw.signal("TERM")
        self.assertEqual(hw.wait_exit(10), 0, hw.stderr()[-2000:])

    def test_missing_or_corrupt_binary_leaves_the_old_one_running(self):
        hw, port = self.start()
        pid1 = int(read_status(self.status)["generation_pid"])
        os.unlink(self.bin)
        r = subprocess.run([self.a, "--upgrade", "-S", self.status], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"^hupwatch: upgrade 1 failed: '%s' does not run as hupwatch "
                         r".*; pid %d still runs hupwatch 9\.0\.0-a\n$" % (re.escape(self.bin), hw.pid))
        with open(self.bin, "wb") as f:
            f.write(b"\x7fELF garbage, not a program")
        os.chmod(self.bin, 0o755)
        r = subprocess.run([self.a, "--upgrade", "-S", self.status], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("upgrade 2 failed", r.stderr)
        # still serving, same generation, still reloadable
        self.assertEqual(http_get("127.0.0.1", port)[0], 200)
        self.assertEqual(read_status(self.status)["generation_pid"], str(pid1), hw.stderr())
        self.install(self.a)
        r = subprocess.run([self.bin, "--reload", "-S", self.status], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_loop_goes_on_while_the_new_binary_is_checked(self):
        # The new binary's --version may take up to 2 s (a cold disk, a slow NFS): hupwatch must
        # go on meanwhile. Here --version waits (up to 1.8 s) until the test has seen hupwatch take
        # a reload sent during the check; the reload must be logged before the handover.
        hw, port = self.start()
        checking, go = os.path.join(self.tmp, "checking"), os.path.join(self.tmp, "go")
        with open(self.bin + ".new", "w") as f:
            f.write('#!/bin/sh\nif [ "$1" = --version ]; then\n  : > %s\n  i=0\n'
                    '  while [ ! -e %s ] && [ $i -lt 180 ]; do sleep 0.01; i=$((i+1)); done\nfi\n'
                    'exec %s "$@"\n' % (checking, go, self.b))
        os.chmod(self.bin + ".new", 0o755)
        os.replace(self.bin + ".new", self.bin)
        client = subprocess.Popen([self.a, "--upgrade", "-S", self.status], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: client.poll() is None and client.kill())
        wait_for(lambda: os.path.exists(checking), 10, "the new binary's --version to run")
        m = hw.mark()
        hw.signal("HUP")
        hw.wait_log(r"info: reload requested \(SIGHUP\)$", since=m, timeout=10)
        with open(go, "w"):
            pass
        out, err = client.communicate(timeout=60)
        self.assertEqual(client.returncode, 0, err + hw.stderr()[-2000:])
        self.assertIn("runs hupwatch 9.0.0-b", out)
        lines = hw.stderr().splitlines()
        took = [i for i, l in enumerate(lines) if "reload requested (SIGHUP)" in l]
        handed = [i for i, l in enumerate(lines) if "handing over to hupwatch 9.0.0-b" in l]
        self.assertTrue(took and handed and took[0] < handed[0],
                        "the reload waited for the check:\n" + "\n".join(lines[-20:]))
        wait_for(lambda: read_status(self.status).get("reload_state") == "succeeded", 15, "reload 1 succeeded")
        self.assertEqual(http_get("127.0.0.1", port)[0], 200)

    def fake(self, script):
        """A shell script at the path, by rename: `script` runs for --version, the rest is b's."""
        with open(self.bin + ".new", "w") as f:
            f.write('#!/bin/sh\nif [ "$1" = --version ]; then\n%s\nfi\nexec %s "$@"\n' % (script, self.b))
        os.chmod(self.bin + ".new", 0o755)
        os.replace(self.bin + ".new", self.bin)

    def test_file_replaced_while_checked_is_not_executed(self):
        # A package install lands during the check: what is executed must be what was checked.
        hw, port = self.start()
        ran = os.path.join(self.tmp, "ran")
        other = os.path.join(self.tmp, "other")
        with open(other, "w") as f:
            f.write('#!/bin/sh\necho "$*" > %s\nexit 125\n' % ran)
        os.chmod(other, 0o755)
        self.fake('  mv %s %s\n  exec %s --version' % (other, self.bin, self.b))
        r = self.upgrade()
        self.assertEqual(r.returncode, 1, r.stderr + hw.stderr()[-2000:])
        self.assertIn("upgrade 1 failed: '%s' was replaced while it was checked; nothing was executed; "
                      "pid %d still runs hupwatch 9.0.0-a" % (self.bin, hw.pid), r.stderr)
        self.assertFalse(os.path.exists(ran), "the file that was not checked was executed")
        self.assertTrue(hw.running())
        self.assertEqual(http_get("127.0.0.1", port)[0], 200)

    def test_what_the_check_started_does_not_outlive_it(self):
        # --version leaves a process behind (holding its stdout, too): it is killed with the check.
        hw, port = self.start()
        left = os.path.join(self.tmp, "left")
        self.fake('  sleep 300 &\n  echo $! > %s\n  exec %s --version' % (left, self.b))
        r = self.upgrade()
        self.assertEqual(r.returncode, 0, r.stderr + hw.stderr()[-2000:])
        with open(left) as f:
            pid = int(f.read())
        wait_for(lambda: not pid_alive(pid), 5, "the check's leftover sleep %d killed" % pid)
        self.assertEqual(http_get("127.0.0.1", port)[0], 200)

    def test_hupwatch_older_than_upgrade_is_refused_before_exec(self):
        # 1.0.0's --version says "hupwatch 1.0.0", no handover record: exec'd, it would start afresh,
        # find its address in use held by the generations it knows nothing of, and exit 125, the
        # process gone. The upgrade must be refused first, the old binary going on.
        hw, port = self.start()
        pid1 = read_status(self.status)["generation_pid"]
        ran = os.path.join(self.tmp, "ran")
        with open(self.bin + ".new", "w") as f:
            f.write('#!/bin/sh\n[ "$1" = --version ] && { echo "hupwatch 1.0.0"; exit 0; }\n'
                    'echo "$*" > %s\nexit 125\n' % ran)
        os.chmod(self.bin + ".new", 0o755)
        os.replace(self.bin + ".new", self.bin)
        r = subprocess.run([self.a, "--upgrade", "-S", self.status], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr + hw.stderr()[-2000:])
        self.assertEqual(r.stderr, "hupwatch: upgrade 1 failed: hupwatch 1.0.0 at '%s' predates --upgrade: it "
                         "cannot take over what runs; pid %d still runs hupwatch 9.0.0-a\n" % (self.bin, hw.pid))
        self.assertFalse(os.path.exists(ran), "the old binary was executed in hupwatch's place")
        self.assertTrue(hw.running())
        self.assertEqual(http_get("127.0.0.1", port)[0], 200)
        self.assertEqual(read_status(self.status)["generation_pid"], pid1)
        self.install(self.b)
        r = self.upgrade()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("runs hupwatch 9.0.0-b", r.stdout)

    def test_binary_that_refuses_the_record_gives_it_back(self):
        hw, port = self.start()
        self.install(self.other)
        r = self.upgrade()
        self.assertEqual(r.returncode, 1, r.stderr + hw.stderr()[-2000:])
        self.assertRegex(r.stderr, r"upgrade 1 failed: hupwatch 9\.0\.0-other cannot read a version 1 "
                         r"handover record; pid %d still runs hupwatch 9\.0\.0-a" % hw.pid)
        self.assertEqual(http_get("127.0.0.1", port)[0], 200)
        self.install(self.b)
        r = self.upgrade()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("runs hupwatch 9.0.0-b", r.stdout)

    def test_upgrade_usage(self):
        for args, msg in ((["--upgrade"], "--upgrade: needs --status-file FILE"),
                          (["--upgrade", "-S", "x", "-k"], "--upgrade: cannot be combined with --kill-at-exit"),
                          (["--upgrade", "-R", "-S", "x"], "--upgrade: cannot be combined with --reload"),
                          (["--upgrade", "-S", "x", "cmd"], "--upgrade: takes no COMMAND ('cmd')")):
            with self.subTest(args=args):
                r = subprocess.run([HUPWATCH] + args, capture_output=True, text=True, timeout=10)
                self.assertEqual(r.returncode, 125)
                self.assertEqual(r.stderr.splitlines()[0], "hupwatch: " + msg)
        r = subprocess.run([HUPWATCH, "--upgrade", "-S", os.path.join(self.tmp, "none")],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 125)


if __name__ == "__main__":
    unittest.main()
