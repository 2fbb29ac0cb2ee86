"""Hostile input and hostile environments.

- readiness spoofing: READY=1 from an unrelated process, from another user, from
  the current (not the starting) generation; malformed and oversized datagrams
  from the starting generation itself: ignored, logged at -v, nothing swapped;
- hostile paths for --pid-file and --status-file: a symlink (to a user's file,
  dangling), a directory that does not exist, one that is not writable, a full
  disk: one clear error line, exit 125, nothing started, nothing clobbered;
- a command that becomes non-executable or disappears between reloads, a --chdir
  (or logical $PWD) directory removed: that reload fails with a clear line, the
  old generation goes on serving.

Tests that need root (mounts, another user) skip with the reason otherwise.
"""

import contextlib
import errno
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CHILD, HUPWATCH, Hupwatch, Load, Reports, http_get,  # noqa: E402
                     pid_alive, send_notify, wait_for, zombies_under)

ROOT_USER = os.geteuid() == 0
NOBODY = 65534
SETPRIV = shutil.which("setpriv")
# A python3 that another user can run (pyenv's lives under /root).
SYS_PYTHON = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3")
                   if os.access(p, os.X_OK)), None)

FAILED = re.compile(r"\bgen (\d+) failed: ")


def read_status(path):
    with open(path) as f:
        return dict(l.split("=", 1) for l in f.read().splitlines() if "=" in l)


def snapshot(path):
    """What a directory holds: {name: (is symlink, link target or file bytes)}."""
    out = {}
    for name in sorted(os.listdir(path)):
        p = os.path.join(path, name)
        if os.path.islink(p):
            out[name] = ("link", os.readlink(p))
        elif os.path.isfile(p):
            with open(p, "rb") as f:
                out[name] = ("file", f.read())
        else:
            out[name] = ("other", None)
    return out


def can_mount():
    if not ROOT_USER:
        return False
    d = tempfile.mkdtemp(prefix="hupwatch-mnt-")
    try:
        ok = subprocess.call(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", d],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0
        if ok:
            subprocess.call(["umount", d])
        return ok
    finally:
        os.rmdir(d)


MOUNT_OK = can_mount()


def path_traversable_by_nobody(path):
    """True if every directory above PATH lets others search it, and PATH is executable."""
    path = os.path.abspath(path)
    d = os.path.dirname(path)
    while True:
        if not os.stat(d).st_mode & stat.S_IXOTH:
            return False
        if d == "/":
            break
        d = os.path.dirname(d)
    return bool(os.stat(path).st_mode & stat.S_IXOTH)


# ======================================================================== readiness spoofing

# Every generation runs this script (its pid is the generation's main pid).
# It writes NOTIFY_SOCKET to DIR/genN.sock, then by generation and MODE:
#   gen 1: READY=1 at once; on SIGUSR1 (forwarded by hupwatch to the current
#          generation) READY=1 again: the current generation is not the one
#          starting, so that must not make the starting one ready;
#   later, MODE silent: never READY=1;
#   later, MODE hostile: send the datagrams listed (repr) in DIR/datagrams, the
#          i-th once DIR/go.i exists, then create DIR/sent.i; at last, once
#          DIR/trigger exists, a valid READY=1.
GEN_PY = r"""
import ast, os, signal, socket, sys, time
mode, d = sys.argv[1], sys.argv[2]
gen = int(os.environ["HUPWATCH_GENERATION"])
name = os.environ["NOTIFY_SOCKET"]
with open(os.path.join(d, "gen%d.sock.tmp" % gen), "w") as f:
    f.write(name)
os.rename(os.path.join(d, "gen%d.sock.tmp" % gen), os.path.join(d, "gen%d.sock" % gen))
addr = "\0" + name[1:] if name.startswith("@") else name
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)

def wait_file(path):
    while not os.path.exists(path):
        time.sleep(0.005)

if gen == 1:
    def again(signo, frame):
        s.sendto(b"READY=1\nSTATUS=gen 1 again", addr)
        open(os.path.join(d, "gen1.again"), "w").close()
    signal.signal(signal.SIGUSR1, again)
    s.sendto(b"READY=1", addr)
elif mode == "hostile":
    with open(os.path.join(d, "datagrams")) as f:
        datagrams = ast.literal_eval(f.read())
    for i, dg in enumerate(datagrams):
        wait_file(os.path.join(d, "go.%d" % i))
        s.sendto(dg, addr)
        open(os.path.join(d, "sent.%d" % i), "w").close()
    wait_file(os.path.join(d, "trigger"))
    s.sendto(b"READY=1\nSTATUS=valid at last", addr)
while True:
    time.sleep(3600)
"""

# Datagrams from the starting generation's own main pid that must not make it
# ready: (datagram, what is wrong, must be logged at -v). Each malformed one
# holds READY=1 in a form a careless parser would accept.
DATAGRAMS = [
    (b"READY", "no '='", True),
    (b"READY\nSTATUS", "no '=' on any line", True),
    (b"READY=1\x00", "a NUL after READY=1", True),
    (b"STATUS=x\nREADY=1\n\x00", "a NUL at the end", True),
    (b"READY=1\x00STATUS=y", "a NUL between fields", True),
    (b"READY=1\nSTATUS=\xc0\xaf\n", "non-UTF-8 (overlong encoding)", True),
    (b"READY=1\n\xff\xfe=\xfd", "non-UTF-8 bytes", True),
    (b"READY=1\n" + b"X" * (4097 - 8), "4097 bytes: over 4 KiB", True),
    (b"READY=1\nSTATUS=" + b"x" * 5000, "about 5 KiB", True),
    (b"READY=1\n" + b"Y=" + b"y" * (65536 - 10), "64 KiB", True),
    # well-formed, but not READY=1: ignored, logged or not
    (b"READY=10", "READY=10", False),
    (b"READY=0", "READY=0", False),
    (b"READY=true", "READY=true", False),
]
FENCE = b"FENCE-WITHOUT-EQUALS"


class NotifySpoofTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hupwatch-spoof-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.status = os.path.join(self.tmp, "status")
        self.gen_py = os.path.join(self.tmp, "gen.py")
        with open(self.gen_py, "w") as f:
            f.write(GEN_PY)

    def start(self, mode):
        """gen 1 current, gen 2 started (and not ready by itself unless told)."""
        hw = Hupwatch(["-v", "-n", "-t", "60", "-S", self.status],
                      [sys.executable, self.gen_py, mode, self.tmp])
        self.addCleanup(hw.cleanup)
        wait_for(lambda: os.path.exists(os.path.join(self.tmp, "gen1.sock")), 10,
                 "gen 1 running its script")
        pid1 = int(hw.wait_log(r"gen 1 pid (\d+) ready after").group(1))
        m = hw.mark()
        hw.signal("HUP")
        pid2 = int(hw.wait_log(r"gen 2 pid (\d+) started", 10, m).group(1))
        sockfile = os.path.join(self.tmp, "gen2.sock")
        wait_for(lambda: os.path.exists(sockfile), 10, "gen 2 running its script")
        with open(sockfile) as f:
            sock = f.read()
        self.assertTrue(sock, "gen 2 got no NOTIFY_SOCKET")
        return hw, pid1, pid2, m, sock

    def assert_not_swapped(self, hw, since, what):
        self.assertEqual(hw.log_matches(r"gen 2 pid \d+ ready", since), [],
                         "%s made gen 2 ready:\n%s" % (what, hw.stderr()))
        self.assertEqual(hw.log_matches(r"gen 1 pid \d+ stopping", since), [], hw.stderr())
        st = read_status(self.status)
        self.assertEqual((st.get("generation"), st.get("reload_state")), ("1", "in-progress"),
                         "%s: status file %r" % (what, st))

    def dropped_from(self, hw, pid, since):
        return hw.log_matches(r"dropped notify message from pid %d\b" % pid, since)

    def fence(self, hw, sock, since):
        """Send a datagram from the test itself and wait until hupwatch has logged
        dropping it: every datagram queued before it has then been read."""
        n = len(self.dropped_from(hw, os.getpid(), since))
        send_notify(sock, FENCE)
        wait_for(lambda: len(self.dropped_from(hw, os.getpid(), since)) > n, 10,
                 "hupwatch to drop the fence datagram from pid %d (the test)" % os.getpid())

    def test_ready_from_unrelated_process(self):
        hw, pid1, pid2, m, sock = self.start("silent")
        send_notify(sock, "READY=1\nSTATUS=spoofed by the test")
        wait_for(lambda: self.dropped_from(hw, os.getpid(), m), 10,
                 "a dropped line for pid %d (the test)" % os.getpid())
        self.assert_not_swapped(hw, m, "READY=1 from the test process")
        self.assertTrue(pid_alive(pid1) and pid_alive(pid2))

    def test_ready_from_current_generation_while_another_starts(self):
        hw, pid1, pid2, m, sock = self.start("silent")
        hw.signal("USR1")
        hw.wait_log(r"forwarding SIGUSR1 to gen 1 pid %d" % pid1, 10, m)
        wait_for(lambda: os.path.exists(os.path.join(self.tmp, "gen1.again")), 10,
                 "gen 1 sending READY=1 again")
        self.fence(hw, sock, m)
        self.assert_not_swapped(hw, m, "READY=1 from gen 1 (current, not starting)")

    @unittest.skipUnless(ROOT_USER and SETPRIV and SYS_PYTHON,
                         "needs root, setpriv and a system python3 to send as another user")
    def test_ready_from_another_user(self):
        hw, pid1, pid2, m, sock = self.start("silent")
        code = ("import os,socket,sys\n"
                "print(os.getpid(), os.getuid(), flush=True)\n"
                "a=sys.argv[1]; a='\\0'+a[1:] if a[0]=='@' else a\n"
                "s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\n"
                "try:\n"
                "    s.sendto(b'READY=1\\nSTATUS=from nobody',a)\n"
                "except PermissionError:\n"
                "    sys.exit(13)\n")
        r = subprocess.run([SETPRIV, "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                            "--clear-groups", SYS_PYTHON, "-c", code, sock],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10, cwd="/")
        pid, uid = map(int, r.stdout.split())
        self.assertEqual(uid, NOBODY)
        if r.returncode == 13:
            # The notify socket is a path in a directory only hupwatch's user can enter (issue 9):
            # the message cannot even be sent. Whatever it sends next is read after this fence.
            self.fence(hw, sock, m)
        else:
            self.assertEqual(r.returncode, 0, r.stderr)
            wait_for(lambda: self.dropped_from(hw, pid, m), 10,
                     "a dropped line for pid %d (uid %d)" % (pid, NOBODY))
        self.assert_not_swapped(hw, m, "READY=1 from uid %d" % NOBODY)

    def test_malformed_and_oversized_datagrams_from_the_generation_itself(self):
        # Gen 2's own main pid sends them, so it passes the credentials check:
        # only the parser stands between these datagrams and a swap. One
        # hupwatch per datagram, so that one accepted does not hide the others.
        for i, (dg, what, logged) in enumerate(DATAGRAMS):
            with self.subTest(datagram=what):
                self._one_datagram(dg, what, logged)

    def _one_datagram(self, dg, what, logged):
        for name in os.listdir(self.tmp):
            if name.startswith(("go.", "sent.", "gen", "trigger")) and name != "gen.py":
                os.unlink(os.path.join(self.tmp, name))
        with open(os.path.join(self.tmp, "datagrams"), "w") as f:
            f.write(repr([dg]))
        hw, pid1, pid2, m, sock = self.start("hostile")
        try:
            open(os.path.join(self.tmp, "go.0"), "w").close()
            wait_for(lambda: os.path.exists(os.path.join(self.tmp, "sent.0")), 10,
                     "gen 2 sending the datagram")
            self.fence(hw, sock, m)
            self.assert_not_swapped(hw, m, "a datagram with %s (%d bytes)" % (what, len(dg)))
            if logged:
                got = self.dropped_from(hw, pid2, m)
                self.assertEqual(len(got), 1, "a datagram with %s was not logged at -v:\n%s"
                                 % (what, hw.stderr()))
                self.assertRegex(got[0].string, r"dropped notify message from pid \d+: \S")
            # A valid READY=1 after it still works: the socket is alive.
            m2 = hw.mark()
            open(os.path.join(self.tmp, "trigger"), "w").close()
            hw.wait_log(r"gen 2 pid %d ready after [\d.]+s \(READY=1\)" % pid2, 20, m2)
            hw.wait_log(r"gen 1 pid %d stopping" % pid1, 10, m2)
        finally:
            hw.cleanup()


# ======================================================================== hostile paths

class HostilePathTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hupwatch-paths-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.rep = Reports(os.path.join(self.tmp, "rep"))
        self.user = os.path.join(self.tmp, "user")     # the user's files
        os.mkdir(self.user)
        os.chmod(self.user, 0o755)

    def refused(self, args, path, wrapper=None, wrapper_args=()):
        """hupwatch ARGS must exit 125 at once with one error line naming PATH,
        and start nothing."""
        kw = {}
        if wrapper:
            kw["binary"] = wrapper
            args = list(wrapper_args) + [HUPWATCH] + list(args)
        with Hupwatch(args, [CHILD, "--report", self.rep.dir], **kw) as hw:
            rc = hw.wait_exit(5)
            hw.wait_output()
            err = [l for l in hw.lines
                   if re.match(r"hupwatch(\[\d+\])?: (error: |(?!info|debug|warning)\S)", l)]
            self.assertEqual(rc, 125, hw.dump())
            self.assertEqual(len(err), 1, "not one error line:\n" + hw.stderr())
            shown = path if path in err[0] else os.path.basename(path)
            self.assertIn(shown, err[0], "the error does not name %s: %r" % (path, err[0]))
            self.assertEqual(hw.log_matches(r"\bstarted\b"), [], hw.stderr())
            self.assertEqual(self.rep.all(), [], "the command ran")
            return err[0]

    # -- symlinks
    def _symlink_case(self, opt, content):
        precious = os.path.join(self.user, "precious")
        with open(precious, "wb") as f:
            f.write(content)
        link = os.path.join(self.tmp, "link")
        os.symlink(precious, link)
        before = snapshot(self.user), snapshot(self.tmp)
        self.refused([opt, link], link)
        self.assertEqual((snapshot(self.user), snapshot(self.tmp)), before)

    def test_pid_file_symlink_to_users_file(self):
        # It even looks like a pid file.
        self._symlink_case("-p", b"12345\n")

    def test_status_file_symlink_to_users_file(self):
        self._symlink_case("-S", b"pid=12345\nstate=running\n")

    def _dangling_case(self, opt):
        target = os.path.join(self.user, "not-there")
        link = os.path.join(self.tmp, "link")
        os.symlink(target, link)
        self.refused([opt, link], link)
        self.assertFalse(os.path.lexists(target), "hupwatch created the symlink's target")
        self.assertTrue(os.path.islink(link))

    def test_pid_file_dangling_symlink(self):
        self._dangling_case("-p")

    def test_status_file_dangling_symlink(self):
        self._dangling_case("-S")

    # -- missing directory
    def test_pid_and_status_file_in_missing_directory(self):
        for opt in ("-p", "-S"):
            with self.subTest(opt=opt):
                path = os.path.join(self.tmp, "no-such-dir", "hupwatch.file")
                self.refused([opt, path], path)
                self.assertFalse(os.path.exists(os.path.dirname(path)))

    # -- unwritable directory
    def test_pid_and_status_file_in_sysfs(self):
        # /sys refuses new files with EACCES even to root: a directory nobody
        # can write, whoever runs the test.
        if not os.path.isdir("/sys/kernel"):
            self.skipTest("no sysfs")
        for opt in ("-p", "-S"):
            with self.subTest(opt=opt):
                path = "/sys/hupwatch-test.%d" % os.getpid()
                self.refused([opt, path], path)
                self.assertFalse(os.path.exists(path))

    @unittest.skipUnless(MOUNT_OK, "needs root and permission to mount (read-only bind mount)")
    def test_pid_and_status_file_on_read_only_mount(self):
        ro = os.path.join(self.tmp, "ro")
        os.mkdir(ro)
        with open(os.path.join(ro, "hw.pid"), "w") as f:
            f.write("999999\n")     # a stale pid file that looks like ours
        subprocess.check_call(["mount", "--bind", ro, ro])
        try:
            subprocess.check_call(["mount", "-o", "remount,bind,ro", ro])
            before = snapshot(ro)
            for opt, name in (("-p", "hw.pid"), ("-p", "new.pid"), ("-S", "status")):
                with self.subTest(opt=opt, name=name):
                    path = os.path.join(ro, name)
                    self.refused([opt, path], path)
                    self.assertEqual(snapshot(ro), before)
        finally:
            subprocess.call(["umount", ro])

    def test_pid_and_status_file_in_unwritable_directory(self):
        """A directory the user running hupwatch cannot write: as root, run hupwatch
        as nobody (setpriv) against a root-owned 0755 directory; otherwise chmod 0555."""
        d = os.path.join(self.tmp, "locked")
        os.mkdir(d)
        with open(os.path.join(d, "hw.pid"), "w") as f:
            f.write("999999\n")
        os.chmod(os.path.join(d, "hw.pid"), 0o644)
        wrapper, wargs = None, ()
        if ROOT_USER:
            if not SETPRIV:
                self.skipTest("root without setpriv: cannot make a directory unwritable to hupwatch")
            if not (path_traversable_by_nobody(HUPWATCH) and path_traversable_by_nobody(CHILD)):
                self.skipTest("%s is not reachable by uid %d" % (HUPWATCH, NOBODY))
            os.chmod(d, 0o755)
            wrapper, wargs = SETPRIV, ("--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                                       "--clear-groups")
            os.chmod(self.rep.dir, 0o777)   # so that a child that did run would be seen
        else:
            os.chmod(d, 0o555)
            self.addCleanup(os.chmod, d, 0o755)
        before = snapshot(d)
        for opt, name in (("-p", "hw.pid"), ("-p", "new.pid"), ("-S", "status")):
            with self.subTest(opt=opt, name=name):
                path = os.path.join(d, name)
                self.refused([opt, path], path, wrapper, wargs)
                self.assertEqual(snapshot(d), before)

    # -- full disk
    @contextlib.contextmanager
    def full_tmpfs(self, prepare=None):
        mnt = os.path.join(self.tmp, "full")
        os.mkdir(mnt)
        subprocess.check_call(["mount", "-t", "tmpfs", "-o", "size=16k,mode=0755", "tmpfs", mnt])
        try:
            if prepare:
                prepare(mnt)
            with open(os.path.join(mnt, "filler"), "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\xaa" * 1024)
                except OSError as e:
                    self.assertEqual(e.errno, errno.ENOSPC, e)
            # prove it is full: not one more byte fits
            with open(os.path.join(mnt, "probe"), "wb", buffering=0) as f:
                with self.assertRaises(OSError):
                    f.write(b"x")
            os.unlink(os.path.join(mnt, "probe"))
            yield mnt
        finally:
            subprocess.call(["umount", mnt])

    @unittest.skipUnless(MOUNT_OK, "needs root and permission to mount a tmpfs")
    def test_pid_and_status_file_on_full_disk(self):
        def stale(mnt):
            with open(os.path.join(mnt, "old.pid"), "w") as f:
                f.write("999999\n")     # looks like ours: may be replaced, never damaged
            with open(os.path.join(mnt, "old.status"), "w") as f:
                f.write("pid=999999\nstate=exited\n")
        with self.full_tmpfs(stale) as mnt:
            before = snapshot(mnt)
            for opt, name in (("-p", "new.pid"), ("-p", "old.pid"),
                              ("-S", "new.status"), ("-S", "old.status")):
                with self.subTest(opt=opt, name=name):
                    path = os.path.join(mnt, name)
                    self.refused([opt, path], path)
                    # no half-written file, no temp file left, nothing damaged
                    self.assertEqual(snapshot(mnt), before)


# ======================================================================== reloads that must fail

class FailedReloadTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hupwatch-reload-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.rep = Reports(os.path.join(self.tmp, "rep"))
        self.status = os.path.join(self.tmp, "status")

    def serve(self, args, cmd, **kw):
        hw = Hupwatch(["-w", "0.2", "-T", "10", "-l", "127.0.0.1:0", "-S", self.status] + args,
                      cmd + ["--serve", "--report", self.rep.dir], **kw)
        self.addCleanup(hw.cleanup)
        port = int(hw.wait_log(r"listening on 127\.0\.0\.1:(\d+) \(fd 3\)").group(1))
        pid1 = int(hw.wait_log(r"gen 1 pid (\d+) ready after").group(1))
        load = Load("127.0.0.1", port, threads=2).start()
        self.addCleanup(load.stop)
        return hw, port, pid1, load

    def fails(self, hw, gen, current, reason):
        """HUP; gen GEN must fail with REASON (a regex) while gen CURRENT stays."""
        m = hw.mark()
        hw.signal("HUP")
        line = hw.wait_log(r"error: gen %d failed: (.*); gen %d stays current" % (gen, current),
                           10, m)
        self.assertRegex(line.group(1), reason)
        def failed_state():
            st = read_status(self.status)
            return st if st.get("reload_state") == "failed" else None
        st = wait_for(failed_state, 5, "status file reload_state=failed")
        self.assertEqual(st.get("generation"), str(current), st)
        self.assertEqual(hw.log_matches(r"gen %d pid \d+ stopping" % current, m), [])
        wait_for(lambda: not zombies_under(hw.pid), 5, "no zombie under hupwatch")
        return m

    def serves(self, port, gen):
        wait_for(lambda: "gen=%d " % gen in http_get("127.0.0.1", port)[1], 10,
                 "gen %d answering" % gen)

    def recovers(self, hw, gen):
        m = hw.mark()
        hw.signal("HUP")
        hw.wait_log(r"gen %d pid \d+ ready after" % gen, 10, m)

    def finish(self, hw, load):
        load.stop()
        self.assertEqual(load.failed, 0, "failed requests: %r" % load.errors[:10])
        self.assertGreater(load.ok, 0)
        self.assertTrue(hw.running(), hw.dump())

    def test_command_becomes_non_executable_then_disappears(self):
        app = os.path.join(self.tmp, "bin", "app")
        os.mkdir(os.path.dirname(app))
        shutil.copy2(CHILD, app)
        hw, port, pid1, load = self.serve([], [app])
        self.serves(port, 1)
        os.chmod(app, 0o644)
        self.fails(hw, 2, 1, r"^cannot execute '%s': Permission denied$" % re.escape(app))
        self.serves(port, 1)
        self.assertTrue(pid_alive(pid1))
        os.chmod(app, 0o755)
        self.recovers(hw, 3)
        self.serves(port, 3)
        os.unlink(app)
        self.fails(hw, 4, 3, r"^cannot execute '%s': No such file or directory$" % re.escape(app))
        self.serves(port, 3)
        self.finish(hw, load)

    def test_command_on_path_disappears(self):
        bindir = os.path.join(self.tmp, "bin")
        os.mkdir(bindir)
        shutil.copy2(CHILD, os.path.join(bindir, "hupwatch-test-app"))
        env = {"PATH": bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")}
        hw, port, pid1, load = self.serve([], ["hupwatch-test-app"], env=env)
        os.unlink(os.path.join(bindir, "hupwatch-test-app"))
        self.fails(hw, 2, 1, r"^cannot execute 'hupwatch-test-app': No such file or directory$")
        self.serves(port, 1)
        self.finish(hw, load)

    def test_chdir_directory_removed(self):
        rel = os.path.join(self.tmp, "release")
        os.mkdir(rel)
        hw, port, pid1, load = self.serve(["-d", rel], [CHILD])
        self.assertEqual(self.rep.wait_report(gen=1)["cwd"], rel)
        os.rmdir(rel)       # gen 1 runs in it; Linux allows that
        self.fails(hw, 2, 1, r"^cannot change directory to '%s': No such file or directory$"
                   % re.escape(rel))
        self.serves(port, 1)
        os.mkdir(rel)
        self.recovers(hw, 3)
        self.serves(port, 3)
        self.finish(hw, load)

    def test_current_symlink_swapped_to_missing_release(self):
        # The deploy story: -d current, a symlink swapped between reloads.
        releases = os.path.join(self.tmp, "releases")
        for r in ("1", "2"):
            os.makedirs(os.path.join(releases, r))
        current = os.path.join(self.tmp, "current")
        os.symlink(os.path.join(releases, "1"), current)
        hw, port, pid1, load = self.serve(["-d", current], [CHILD])
        self.assertEqual(self.rep.wait_report(gen=1)["cwd"], os.path.join(releases, "1"))

        def swap(target):
            tmp_link = current + ".new"
            os.symlink(target, tmp_link)
            os.rename(tmp_link, current)
        swap(os.path.join(releases, "missing"))
        self.fails(hw, 2, 1, r"^cannot change directory to '%s': No such file or directory$"
                   % re.escape(current))
        self.serves(port, 1)
        swap(os.path.join(releases, "2"))
        self.recovers(hw, 3)
        self.assertEqual(self.rep.wait_report(gen=3)["cwd"], os.path.join(releases, "2"))
        self.serves(port, 3)
        self.finish(hw, load)

    def test_logical_pwd_removed(self):
        # Without -d, the logical $PWD is followed: removing it fails the reload.
        rel = os.path.join(self.tmp, "pwd-release")
        os.mkdir(rel)
        hw, port, pid1, load = self.serve([], [CHILD], cwd=rel)
        self.assertEqual(self.rep.wait_report(gen=1)["cwd"], rel)
        os.rmdir(rel)
        self.fails(hw, 2, 1, r"^cannot change directory to '%s': No such file or directory$"
                   % re.escape(rel))
        self.serves(port, 1)
        self.finish(hw, load)


if __name__ == "__main__":
    unittest.main()
