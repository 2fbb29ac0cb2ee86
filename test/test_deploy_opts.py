"""Integration tests: what real deployments need around the socket (issue 13, items 1-5).

    --socket-mode MODE, --socket-owner USER[:GROUP]   the unix: socket file, checked with os.stat and
                                                      by connecting as other users (forked, setuid)
    --user USER[:GROUP]                               the generation's and the probe's /proc/self/status
    --env-file FILE                                   per release, with a swapped `current` symlink
    --listen udp:...                                  a datagram reaches the generation, across reloads
    the default stop timeout                          visible in the log, and -T still rules

The generation here is a small Python program (GEN below) that prints one JSON line on hupwatch's
stdout with what it sees (credentials from /proc/self/status, environment, its sockets), then
answers on its sockets: "gen=N" to a stream connection, "gen=N got=DATA" to a datagram. Its files
live under /tmp/deploy-*, readable by everyone, so that it runs as nobody as well as root.
"""

import grp
import json
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

TRY_HELP = "Try 'hupwatch --help' for more information."
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable

GEN = r'''
import json, os, signal, socket, sys, time
status = {}
with open("/proc/self/status") as f:
    for line in f:
        k, _, v = line.partition(":")
        if k in ("Uid", "Gid", "Groups"):
            status[k] = v.split()
n = int(os.environ.get("LISTEN_FDS", "0"))
socks = [socket.socket(fileno=3 + i) for i in range(n)]
env = {k: v for k, v in os.environ.items()}
print("REPORT " + json.dumps({"pid": os.getpid(), "status": status, "env": env,
      "types": [s.type for s in socks]}), flush=True)
gen = os.environ.get("HUPWATCH_GENERATION", "?")
if not socks:
    time.sleep(3600)
import selectors
sel = selectors.DefaultSelector()
for s in socks:
    sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s.type == socket.SOCK_DGRAM:
            data, peer = s.recvfrom(512)
            s.sendto(b"gen=%s got=%s" % (gen.encode(), data), peer)
        else:
            c, _ = s.accept()
            try:  # a client that connects and hangs up at once (as the tests' connect checks do)
                c.sendall(b"gen=%s uid=%d\n" % (gen.encode(), os.getuid()))
            except OSError:
                pass
            c.close()
'''


def proc_ids(pid):
    """Uid, Gid and Groups lines of /proc/PID/status, as lists of numbers."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                out[k] = [int(x) for x in v.split()]
    return out


def as_user(uid, gid, fn):
    """Run fn() in a forked child with these credentials (no supplementary groups); its int result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            code = fn()
        except BaseException:
            code = 98
        finally:
            os._exit(code)
    os.close(w)
    os.close(r)
    _, st = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(st)


def connect_unix(path):
    """0 connected, else the errno of connect()."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return 0
    except OSError as e:
        return e.errno
    finally:
        s.close()


def udp_ask(host, port, data, family=socket.AF_INET, timeout=5):
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, (host, port))
        return s.recvfrom(512)[0].decode()


def stream_ask(host, port, timeout=5):
    with socket.create_connection((host, port), timeout=timeout) as s:
        return s.recv(512).decode()


def free_udp_port(host="127.0.0.1", family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def user_with_groups():
    """A user of the user database with supplementary groups (initgroups has work to do), else nobody."""
    for g in grp.getgrall():
        for name in g.gr_mem:
            try:
                pw = pwd.getpwnam(name)
            except KeyError:
                continue
            if pw.pw_uid != 0:
                return pw
    return pwd.getpwnam("nobody")


def with_groups(groups, args, cmd, **kw):
    """Hupwatch started with these supplementary groups: setpriv(1) sets them and execs hupwatch
    (same pid), so that the test can tell they are not handed to the generations."""
    setpriv = shutil.which("setpriv")
    if not setpriv:
        raise unittest.SkipTest("setpriv (util-linux) not found")
    return Hupwatch(["--groups", ",".join(str(g) for g in groups), HUPWATCH] + list(args), cmd,
                    binary=setpriv, **kw)


def reload(status_file, timeout=20):
    r = subprocess.run([HUPWATCH, "--reload", "-S", status_file, "-t", str(timeout)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout + 10)
    return r.returncode, r.stdout, r.stderr


@unittest.skipUnless(os.geteuid() == 0, "needs root (setuid, chown, ports below 1024)")
class DeployOptsTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="deploy-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.gen = os.path.join(self.dir, "gen.py")
        with open(self.gen, "w") as f:
            f.write(GEN)
        os.chmod(self.gen, 0o644)
        self.nobody = pwd.getpwnam("nobody")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def cmd(self):
        # The system's python: one under /root (pyenv) cannot be run by another user.
        return [PYTHON, self.gen]

    def report(self, hw, gen_pid, timeout=10):
        """The JSON line the generation with main pid gen_pid printed."""
        def find():
            for line in list(hw.out_lines):
                if line.startswith("REPORT "):
                    d = json.loads(line[7:])
                    if d["pid"] == gen_pid:
                        return d
            return None
        return wait_for(find, timeout, "report of pid %d" % gen_pid)

    def ready_gen(self, hw, n, since=None):
        m = hw.wait_log(r"\bgen %d pid (\d+) ready after" % n, since=since)
        return int(m.group(1))

    # ------------------------------------------------------------ --socket-mode, --socket-owner

    def test_socket_mode_and_owner_on_the_file_and_for_connect(self):
        www = pwd.getpwnam("www-data")
        path = os.path.join(self.dir, "app.sock")
        with Hupwatch(["-w", "0.2", "-l", "unix:" + path, "--socket-mode", "660",
                       "--socket-owner", "root:www-data"], self.cmd()) as hw:
            self.ready_gen(hw, 1)
            st = os.stat(path)
            self.assertTrue(stat.S_ISSOCK(st.st_mode))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
            self.assertEqual((st.st_uid, st.st_gid), (0, www.pw_gid))
            # nginx's workers run as www-data: in the group, they connect; nobody may not.
            self.assertEqual(as_user(www.pw_uid, www.pw_gid, lambda: connect_unix(path)), 0)
            self.assertEqual(as_user(self.nobody.pw_uid, self.nobody.pw_gid, lambda: connect_unix(path)),
                             13, "nobody connected to a 0660 root:www-data socket")  # EACCES
        # Owner alone (by number), mode alone: each changes only its part.
        with Hupwatch(["-w", "0.2", "-l", "unix:" + path, "--socket-owner", str(www.pw_uid)],
                      self.cmd(), env={}) as hw:
            self.ready_gen(hw, 1)
            st = os.stat(path)
            self.assertEqual((st.st_uid, st.st_gid), (www.pw_uid, 0))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o777 & ~self.umask())
        with Hupwatch(["-w", "0.2", "-l", "unix:" + path, "--socket-mode", "0600"], self.cmd()) as hw:
            self.ready_gen(hw, 1)
            st = os.stat(path)
            self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid), (0o600, 0, 0))
            self.assertEqual(as_user(www.pw_uid, www.pw_gid, lambda: connect_unix(path)), 13)

    def umask(self):
        m = os.umask(0)
        os.umask(m)
        return m

    def test_socket_options_without_unix_socket_warn(self):
        port = free_port()
        with Hupwatch(["-w", "0.1", "-l", "127.0.0.1:%d" % port, "--socket-mode", "600"], self.cmd()) as hw:
            hw.wait_log(r"warning: --socket-mode has no effect without a --listen unix:PATH$")
            self.ready_gen(hw, 1)

    # ------------------------------------------------------------ --user

    def test_user_runs_generations_and_probe_with_its_groups_hupwatch_stays_root(self):
        pw = user_with_groups()
        groups = sorted(os.getgrouplist(pw.pw_name, pw.pw_gid))
        port = None
        for p in range(900, 1000):      # a privileged port: bound by hupwatch, served as the user
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
                port = p
                break
            except OSError:
                continue
        self.assertIsNotNone(port, "no free port below 1024")
        probe = 'test "$(id -u)" = %d && echo "probe uid=$(id -u) gid=$(id -g) home=$HOME"' % pw.pw_uid
        with with_groups([4, 27], ["-c", probe, "-S", os.path.join(self.dir, "st"),
                                   "-l", "127.0.0.1:%d" % port, "--user", pw.pw_name], self.cmd()) as hw:
            pid1 = self.ready_gen(hw, 1)
            d = self.report(hw, pid1)
            self.assertEqual(d["status"]["Uid"], [str(pw.pw_uid)] * 4)
            self.assertEqual(d["status"]["Gid"], [str(pw.pw_gid)] * 4)
            self.assertEqual(sorted(int(g) for g in d["status"]["Groups"]), groups)
            self.assertEqual((d["env"]["HOME"], d["env"]["USER"], d["env"]["LOGNAME"]),
                             (pw.pw_dir, pw.pw_name, pw.pw_name))
            self.assertEqual(stream_ask("127.0.0.1", port), "gen=1 uid=%d\n" % pw.pw_uid)
            # The ready command ran as the user too (else it would never have passed).
            self.assertIn("probe uid=%d gid=%d home=%s" % (pw.pw_uid, pw.pw_gid, pw.pw_dir), hw.out_lines)
            # hupwatch itself is as it was started: root, with the groups it was given.
            me = proc_ids(hw.pid)
            self.assertEqual(me["Uid"], [0] * 4)
            self.assertEqual(sorted(me["Groups"]), [4, 27])
            # And so is every later generation.
            m = hw.mark()
            hw.signal("HUP")
            pid2 = self.ready_gen(hw, 2, since=m)
            self.assertEqual(proc_ids(pid2)["Uid"], [pw.pw_uid] * 4)
            hw.wait_log(r"gen 1 pid %d (exited|killed)" % pid1, since=m)  # until then gen 1 may answer
            self.assertEqual(stream_ask("127.0.0.1", port), "gen=2 uid=%d\n" % pw.pw_uid)

    def test_user_with_group_replaces_login_group(self):
        www = grp.getgrnam("www-data")
        with with_groups([4], ["-w", "0.2", "--user", "nobody:www-data"], self.cmd()) as hw:
            pid1 = self.ready_gen(hw, 1)
            d = self.report(hw, pid1)
            self.assertEqual(d["status"]["Uid"], [str(self.nobody.pw_uid)] * 4)
            self.assertEqual(d["status"]["Gid"], [str(www.gr_gid)] * 4)
            self.assertEqual(sorted(int(g) for g in d["status"]["Groups"]),
                             sorted(os.getgrouplist("nobody", www.gr_gid)))

    def test_user_refused_when_not_root(self):
        r = subprocess.run([HUPWATCH, "--user", "nobody", "true"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=10, user=self.nobody.pw_uid,
                           group=self.nobody.pw_gid, extra_groups=[], env=base_env())
        self.assertEqual(r.returncode, 125)
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 2, r.stderr)
        self.assertRegex(lines[0], r"^hupwatch: --user: only root can run generations as another user "
                                   r"\(hupwatch runs as uid %d\): 'nobody'$" % self.nobody.pw_uid)
        self.assertEqual(lines[1], TRY_HELP)
        self.assertEqual(r.stdout, "")

    # ------------------------------------------------------------ --env-file

    def make_release(self, name, env_text):
        d = os.path.join(self.dir, "releases", name)
        os.makedirs(d)
        if env_text is not None:
            with open(os.path.join(d, ".env"), "w") as f:
                f.write(env_text)
        return d

    def swap(self, name):
        tmp = os.path.join(self.dir, "current.tmp")
        os.symlink(os.path.join("releases", name), tmp)
        os.replace(tmp, os.path.join(self.dir, "current"))

    def test_env_file_per_release_with_swapped_symlink(self):
        self.make_release("1", "# release 1\nRELEASE=1\nONLY_ONE=yes\n")
        self.make_release("2", "RELEASE=2\n\nONLY_TWO=two words \"quoted\" $HOME\nSHARED=2")
        r3 = self.make_release("3", "RELEASE=3\n# fine so far\nexport BROKEN=1\n")
        self.swap("1")
        status = os.path.join(self.dir, "status")
        current = os.path.join(self.dir, "current")
        with Hupwatch(["-w", "0.3", "-S", status, "--env-file", ".env"], self.cmd(), cwd=current,
                      env={"SHARED": "from hupwatch", "ONLY_TWO": None, "ONLY_ONE": None}) as hw:
            pid1 = self.ready_gen(hw, 1)
            e1 = self.report(hw, pid1)["env"]
            self.assertEqual((e1["RELEASE"], e1["ONLY_ONE"], e1["SHARED"]), ("1", "yes", "from hupwatch"))
            self.assertNotIn("ONLY_TWO", e1)

            self.swap("2")
            rc, out, err = reload(status)
            self.assertEqual(rc, 0, err)
            pid2 = self.ready_gen(hw, 2)
            e2 = self.report(hw, pid2)["env"]
            self.assertEqual(e2["RELEASE"], "2")
            self.assertEqual(e2["ONLY_TWO"], "two words \"quoted\" $HOME")     # as written
            self.assertEqual(e2["SHARED"], "2")                               # the file wins
            self.assertNotIn("ONLY_ONE", e2, "release 1's variables leaked into generation 2")

            # A broken file fails that reload only: file and line named, gen 2 serves on.
            self.swap("3")
            m = hw.mark()
            rc, out, err = reload(status)
            self.assertEqual(rc, 1, err)
            where = re.escape(os.path.join(os.path.realpath(r3), ".env")) + ":3: "
            self.assertRegex(err, r"^hupwatch: reload \d+ failed: gen 3 failed: --env-file %s" % where)
            hw.wait_log(r"error: gen 3 failed: --env-file %s.*; gen 2 stays current$" % where, since=m)
            self.assertTrue(hw.running())
            self.assertTrue(pid_alive(pid2))
            with open(status) as f:
                self.assertIn("generation=2\n", f.read())

            # Missing file: the same, with the reason.
            self.make_release("4", None)
            self.swap("4")
            rc, out, err = reload(status)
            self.assertEqual(rc, 1)
            self.assertIn("cannot read --env-file '%s': No such file or directory"
                          % os.path.join(os.path.realpath(os.path.join(self.dir, "releases", "4")), ".env"),
                          err)

            self.swap("2")      # the rollback reads release 2's file afresh
            rc, out, err = reload(status)
            self.assertEqual(rc, 0, err)
            pid5 = self.ready_gen(hw, 5)
            self.assertEqual(self.report(hw, pid5)["env"]["RELEASE"], "2")

    def test_env_file_read_as_the_user(self):
        d = self.make_release("1", "A=1\n")
        os.chmod(os.path.join(d, ".env"), 0o600)        # root's: nobody cannot read it
        with Hupwatch(["-w", "0.2", "--env-file", ".env", "--user", "nobody"], self.cmd(), cwd=d) as hw:
            hw.wait_log(r"error: gen 1 failed: cannot read --env-file '%s/.env': Permission denied$"
                        % re.escape(os.path.realpath(d)))
            self.assertEqual(hw.wait_exit(), 125)

    # ------------------------------------------------------------ udp:

    def test_udp_datagrams_reach_each_generation(self):
        port = free_udp_port()
        args = ["-w", "0.2", "-l", "udp:127.0.0.1:%d" % port]
        v6 = socket.has_ipv6
        if v6:
            try:
                port6 = free_udp_port("::1", socket.AF_INET6)
            except OSError:
                v6 = False
        if v6:
            args += ["-l", "udp:[::1]:%d" % port6]
        with Hupwatch(args, self.cmd()) as hw:
            hw.wait_log(r"info: listening on udp:127\.0\.0\.1:%d \(fd 3\)$" % port)
            if v6:
                hw.wait_log(r"info: listening on udp:\[::1\]:%d \(fd 4\)$" % port6)
            pid1 = self.ready_gen(hw, 1)
            self.assertEqual(self.report(hw, pid1)["types"], [socket.SOCK_DGRAM] * (2 if v6 else 1))
            self.assertEqual(udp_ask("127.0.0.1", port, b"ping"), "gen=1 got=ping")
            if v6:
                self.assertEqual(udp_ask("::1", port6, b"six", socket.AF_INET6), "gen=1 got=six")
            m = hw.mark()
            hw.signal("HUP")
            self.ready_gen(hw, 2, since=m)
            hw.wait_log(r"gen 1 pid %d (exited|killed)" % pid1, since=m)
            self.assertEqual(udp_ask("127.0.0.1", port, b"again"), "gen=2 got=again")
            # No SO_REUSEADDR on UDP: a second hupwatch cannot take the same port.
            with Hupwatch(["-l", "udp:127.0.0.1:%d" % port], ["true"]) as other:
                self.assertEqual(other.wait_exit(), 125)
                other.wait_log(r"error: cannot listen on 'udp:127\.0\.0\.1:%d': Address already in use$" % port)

    # ------------------------------------------------------------ the default stop timeout

    def test_default_stop_timeout_is_75_seconds(self):
        rep = Reports()
        out = subprocess.run([HUPWATCH, "--help"], stdout=subprocess.PIPE, text=True).stdout
        self.assertIn("then SIGKILL its process group (default 75,", out)
        child = [CHILD, "--report", rep.dir, "--ignore-term"]
        with Hupwatch(["-v", "-w", "0.2"], child) as hw:
            pid1 = self.ready_gen(hw, 1)
            m = hw.mark()
            hw.signal("HUP")
            self.ready_gen(hw, 2, since=m)
            hw.wait_log(r"info: gen 1 pid %d stopping \(SIGTERM\)$" % pid1, since=m)
            hw.wait_log(r"debug: gen 1: SIGKILL to its process group in 75\.00s if it is still there$", since=m)
            self.assertTrue(pid_alive(pid1))
        # -T 0: no limit, as before.
        with Hupwatch(["-v", "-w", "0.2", "-T", "0"], child) as hw:
            pid1 = self.ready_gen(hw, 1)
            m = hw.mark()
            hw.signal("HUP")
            self.ready_gen(hw, 2, since=m)
            i = hw.wait_log(r"info: gen 1 pid %d stopping \(SIGTERM\)$" % pid1, since=m)
            self.assertEqual(hw.log_matches(r"SIGKILL to its process group in", since=m), [])
        # A shorter -T: the TERM-ignoring generation is killed after it.
        with Hupwatch(["-w", "0.2", "-T", "0.5"], child) as hw:
            pid1 = self.ready_gen(hw, 1)
            m = hw.mark()
            hw.signal("HUP")
            self.ready_gen(hw, 2, since=m)
            hw.wait_log(r"warning: gen 1 pid %d still running after stop timeout 0\.50s; sending SIGKILL"
                        % pid1, 5, since=m)
            hw.wait_log(r"gen 1 pid %d killed by SIGKILL" % pid1, 5, since=m)

    # ------------------------------------------------------------ usage errors

    def test_usage_errors_of_the_new_options(self):
        cases = [
            (["--socket-mode", "888"], "--socket-mode", "888"),
            (["--socket-mode", "1777"], "--socket-mode", "1777"),
            (["--socket-mode=rw-rw----"], "--socket-mode", "rw-rw----"),
            (["--socket-mode", "-660"], "--socket-mode", "-660"),
            (["--socket-owner", "no-such-user-hw"], "--socket-owner", "no-such-user-hw"),
            (["--socket-owner", "root:no-such-group-hw"], "--socket-owner", "root:no-such-group-hw"),
            (["--socket-owner", "www-data:"], "--socket-owner", "www-data:"),
            (["--socket-owner", "a:b:c"], "--socket-owner", "a:b:c"),
            (["--user", "no-such-user-hw"], "--user", "no-such-user-hw"),
            (["--user", ":www-data"], "--user", ":www-data"),
            (["--user", "nobody:no-such-group-hw"], "--user", "nobody:no-such-group-hw"),
            (["--user", "4000000"], "--user", "4000000"),
            (["-l", "udp:"], "--listen", "udp:"),
            (["-l", "udp:unix:/x"], "--listen", "udp:unix:/x"),
            (["--listen", "udp:[::1]:65536"], "--listen", "udp:[::1]:65536"),
            (["-l", "udp:::1:53"], "--listen", "udp:::1:53"),
        ]
        for args, opt, value in cases:
            with self.subTest(args=args):
                with Hupwatch(args, ["true"]) as hw:
                    self.assertEqual(hw.wait_exit(), 125, hw.argv)
                    hw.wait_output()
                    self.assertEqual(len(hw.lines), 2, hw.stderr())
                    self.assertRegex(hw.lines[0], r"^hupwatch: %s: .*'%s'$" % (opt, re.escape(value)))
                    self.assertEqual(hw.lines[1], TRY_HELP)
                    self.assertEqual(hw.out_lines, [])


if __name__ == "__main__":
    unittest.main()
