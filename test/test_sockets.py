"""Integration tests: sockets held by hupwatch (--listen, --backlog, socket activation).

Issue 3, "Sockets held by hupwatch": hupwatch binds once, keeps the sockets for its whole life and hands
them to every generation by the systemd socket-activation protocol (fds 3.., LISTEN_FDS, LISTEN_PID =
the child's own pid, LISTEN_FDNAMES).

Sockets are identified by inode: /proc/PID/fd/N links read "socket:[INODE]", and /proc/net/{tcp,tcp6,unix}
map a listening socket's inode to its address, so "fd 3 of the child is the socket bound to 127.0.0.1:P"
is checked directly, not guessed from the order of log lines.
"""

import os
import re
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

LISTENING = r"\binfo: listening on (.+) \(fd (\d+)\)$"
TRY_HELP = "Try 'hupwatch --help' for more information."


# ---------------------------------------------------------------- helpers (local to this file)

def have_ipv6():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def fdname(address):
    """LISTEN_FDNAMES entry for a --listen address (contract: chars outside [A-Za-z0-9._-] -> '_')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", address)


def sock_inode(pid, fd):
    """Inode of the socket at PID's fd, from the /proc/PID/fd/FD link ("socket:[N]")."""
    target = os.readlink("/proc/%d/fd/%d" % (pid, fd))
    m = re.fullmatch(r"socket:\[(\d+)\]", target)
    if not m:
        raise AssertionError("fd %d of pid %d is %r, not a socket" % (fd, pid, target))
    return int(m.group(1))


def held_sockets(pid):
    """Inodes of every socket PID holds open."""
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except FileNotFoundError:
            continue
        if m:
            out.add(int(m.group(1)))
    return out


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def tcp_listeners():
    """{inode: (ip, port)} of every listening TCP socket of this network namespace."""
    out = {}
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            with open("/proc/net/" + name) as f:
                rows = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            f = row.split()
            if len(f) < 10 or f[3] != "0A":          # 0A = TCP_LISTEN
                continue
            hexaddr, hexport = f[1].split(":")
            raw = b"".join(struct.pack("=I", int(hexaddr[i:i + 8], 16))
                           for i in range(0, len(hexaddr), 8))
            out[int(f[9])] = (socket.inet_ntop(family, raw), int(hexport, 16))
    return out


def unix_listeners():
    """{inode: path} of every listening AF_UNIX stream socket with a name."""
    out = {}
    with open("/proc/net/unix") as f:
        rows = f.read().splitlines()[1:]
    for row in rows:
        f = row.split()
        if len(f) >= 8 and int(f[3], 16) & 0x10000:   # __SO_ACCEPTCON: listening
            out[int(f[6])] = f[7]
    return out


def unix_http_get(path, timeout=5):
    """(status, body) of an HTTP/1.0 GET over the AF_UNIX stream socket at path."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    head, _, body = data.decode("utf-8", "replace").partition("\r\n\r\n")
    return int(head.split(" ", 2)[1]), body


def by_gen(default, per_gen):
    """A /bin/sh -c command that execs per_gen[N] for generation N, else default (argv lists).

    exec keeps the pid, so LISTEN_PID, the report and the generation's pid all stay the same process.
    An argv may end with a redirection written as one raw string, e.g. "3>&-" (not quoted)."""
    def line(argv):
        return " ".join(a if re.fullmatch(r"\d*[<>]&-", a) else shlex.quote(a) for a in argv)
    cases = "".join('%d) exec %s ;; ' % (g, line(argv)) for g, argv in sorted(per_gen.items()))
    return ["/bin/sh", "-c", 'case "$HUPWATCH_GENERATION" in %s*) exec %s ;; esac'
            % (cases, line(default))]


def ss_backlog(port):
    """Send-Q (the accept backlog) that ss shows for the TCP listener on port, or None without ss."""
    if shutil.which("ss") is None:
        return None
    r = subprocess.run(["ss", "-H", "-ltn", "sport = :%d" % port], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True, timeout=10)
    rows = [l.split() for l in r.stdout.splitlines() if l.strip()]
    if len(rows) != 1:
        raise AssertionError("ss shows %d listeners on port %d: %r" % (len(rows), port, r.stdout))
    return int(rows[0][2])


# ---------------------------------------------------------------- tests

class SocketTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hw-sock-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.rep = Reports(os.path.join(self.tmp, "rep"))

    def child(self, *extra):
        return [CHILD, "--report", self.rep.dir] + list(extra)

    def listening(self, hw, n):
        """The 'listening on ADDRESS (fd F)' lines, once gen 1 started: [(ADDRESS, F)]; asserts n of them.

        F is the fd the generations get the socket as: 3, 4, ... in --listen order."""
        hw.wait_log(r"\bgen 1 pid \d+ started\b")
        got = [(m.group(1), int(m.group(2))) for m in hw.log_matches(LISTENING)]
        self.assertEqual(len(got), n, "expected %d 'listening on' lines:\n%s" % (n, hw.stderr()))
        self.assertEqual([fd for _, fd in got], list(range(3, 3 + n)), hw.stderr())
        return got

    def started(self, hw, gen, since=None):
        return int(hw.wait_log(r"\bgen %d pid (\d+) started\b" % gen, since=since).group(1))

    def ready(self, hw, gen, since=None, timeout=10):
        return int(hw.wait_log(r"\bgen %d pid (\d+) ready after" % gen, since=since,
                               timeout=timeout).group(1))

    def assert_listen_env(self, report, addresses):
        n = len(addresses)
        self.assertEqual(report["listen_fds"], str(n), report)
        self.assertEqual(report["listen_pid"], report["pid"], "LISTEN_PID must be the child's own pid")
        self.assertEqual(report["listen_fdnames"], ":".join(fdname(a) for a in addresses), report)
        self.assertEqual(report["fds"], ",".join(str(i) for i in range(3 + n)),
                         "child must have exactly fds 0,1,2 and the %d sockets" % n)

    def gen1_socket(self, hw, addresses):
        """Gen 1's report checked with assert_listen_env; (its pid, the inode of its fd 3), a
        socket hupwatch holds too."""
        rep = self.rep.wait_report(gen=1)
        self.assert_listen_env(rep, addresses)
        pid = int(rep["pid"])
        ino = sock_inode(pid, 3)
        self.assertIn(ino, held_sockets(hw.pid))
        return pid, ino

    # ---- forms of --listen

    def test_port_only_zero_picks_a_port(self):
        with Hupwatch(["-w", "0.05", "-l", "0"], self.child("--serve")) as hw:
            [(addr, fd)] = self.listening(hw, 1)
            port = int(addr.rsplit(":", 1)[1])
            self.assertNotEqual(port, 0, "port 0 must be logged as the port the kernel picked")
            pid, ino = self.gen1_socket(hw, ["0"])
            self.assertEqual(tcp_listeners().get(ino, (None, None))[1], port)
            status, body = http_get("127.0.0.1", port)
            self.assertEqual((status, body), (200, "gen=1 pid=%d\n" % pid))

    def test_host_port_fixed_port(self):
        port = free_port()
        address = "127.0.0.1:%d" % port
        with Hupwatch(["-w", "0.05", "-l", address], self.child("--serve")) as hw:
            [(addr, fd)] = self.listening(hw, 1)
            self.assertEqual(addr, address)
            pid, ino = self.gen1_socket(hw, [address])
            self.assertEqual(tcp_listeners().get(ino), ("127.0.0.1", port))
            self.assertEqual(http_get("127.0.0.1", port), (200, "gen=1 pid=%d\n" % pid))

    def test_ipv6_bracket_form(self):
        if not have_ipv6():
            self.skipTest("no IPv6 loopback on this machine")
        with Hupwatch(["-w", "0.05", "-l", "[::1]:0"], self.child("--serve")) as hw:
            [(addr, fd)] = self.listening(hw, 1)
            m = re.fullmatch(r"\[::1\]:(\d+)", addr)
            self.assertTrue(m, "IPv6 address should be logged as [::1]:PORT, got %r" % addr)
            port = int(m.group(1))
            pid, ino = self.gen1_socket(hw, ["[::1]:0"])
            self.assertEqual(tcp_listeners().get(ino), ("::1", port))
            self.assertEqual(http_get("::1", port), (200, "gen=1 pid=%d\n" % pid))

    def test_unix_path(self):
        path = os.path.join(self.tmp, "web.sock")
        address = "unix:" + path
        with Hupwatch(["-w", "0.05", "-l", address], self.child("--serve")) as hw:
            [(addr, fd)] = self.listening(hw, 1)
            self.assertEqual(addr, address)
            pid, ino = self.gen1_socket(hw, [address])
            self.assertEqual(unix_listeners().get(ino), path)
            self.assertEqual(unix_http_get(path), (200, "gen=1 pid=%d\n" % pid))

    def test_several_sockets_in_listen_order(self):
        upath = os.path.join(self.tmp, "a.sock")
        third = "[::1]:0" if have_ipv6() else "127.0.0.1:0"
        addresses = ["127.0.0.1:0", "unix:" + upath, third]
        args = ["-w", "0.05"]
        for a in addresses:
            args += ["-l", a]
        with Hupwatch(args, self.child("--serve")) as hw:
            logged = self.listening(hw, 3)
            rep = self.rep.wait_report(gen=1)
            self.assert_listen_env(rep, addresses)
            pid = int(rep["pid"])
            tcp, unix = tcp_listeners(), unix_listeners()
            # fd 3+i of the child is the socket hupwatch bound for the i-th --listen, in that order.
            ino0 = sock_inode(pid, 3)
            held = held_sockets(hw.pid)
            self.assertIn(ino0, held)
            self.assertEqual(tcp[ino0][0], "127.0.0.1")
            self.assertEqual(logged[0][0], "127.0.0.1:%d" % tcp[ino0][1])
            ino1 = sock_inode(pid, 4)
            self.assertIn(ino1, held)
            self.assertEqual(unix.get(ino1), upath)
            ino2 = sock_inode(pid, 5)
            self.assertIn(ino2, held)
            self.assertEqual(tcp[ino2][0], "::1" if third.startswith("[") else "127.0.0.1")
            self.assertEqual(len({ino0, ino1, ino2}), 3)
            # and the child answers on each of them
            want = (200, "gen=1 pid=%d\n" % pid)
            self.assertEqual(http_get("127.0.0.1", tcp[ino0][1]), want)
            self.assertEqual(unix_http_get(upath), want)
            self.assertEqual(http_get(tcp[ino2][0], tcp[ino2][1]), want)

    # ---- the same socket for every generation, kept open by hupwatch

    def test_same_socket_passed_to_every_generation(self):
        upath = os.path.join(self.tmp, "s.sock")
        with Hupwatch(["-w", "0.2", "-l", "127.0.0.1:0", "-l", "unix:" + upath],
                      self.child("--serve")) as hw:
            logged = self.listening(hw, 2)
            port = int(logged[0][0].rsplit(":", 1)[1])
            pid1 = int(self.rep.wait_report(gen=1)["pid"])
            held = [sock_inode(pid1, 3), sock_inode(pid1, 4)]
            self.ready(hw, 1)
            nfds = fd_count(hw.pid)
            for gen in (1, 2, 3):
                if gen > 1:
                    mark = hw.mark()
                    hw.signal("HUP")
                    self.ready(hw, gen, since=mark)
                    hw.wait_log(r"\bgen %d pid \d+ exited with status 0 after draining" % (gen - 1),
                                since=mark)
                rep = self.rep.wait_report(gen=gen)
                pid = int(rep["pid"])
                self.assert_listen_env(rep, ["127.0.0.1:0", "unix:" + upath])
                self.assertEqual([sock_inode(pid, 3), sock_inode(pid, 4)], held,
                                 "gen %d got other sockets than hupwatch holds" % gen)
                self.assertTrue(set(held) <= held_sockets(hw.pid), "hupwatch let go of a socket")
                want = (200, "gen=%d pid=%d\n" % (gen, pid))
                self.assertEqual(http_get("127.0.0.1", port), want)
                self.assertEqual(unix_http_get(upath), want)
            self.assertEqual(fd_count(hw.pid), nfds, "hupwatch's descriptor count grew across reloads")

    def test_queued_connection_survives_generations(self):
        """A connection made while no child accepts stays queued and is answered by a later generation.

        gen 1 holds the socket but never accepts; gen 2 closes its fd 3 (so once gen 1 is gone only
        hupwatch holds the socket); gen 3 serves. A connection made under gen 1 and one made under gen 2
        must both be answered by gen 3."""
        cmd = by_gen(self.child("--serve"),
                     {1: self.child(), 2: self.child() + ["3>&-"]})
        with Hupwatch(["-w", "0.2", "-l", "127.0.0.1:0"], cmd) as hw:
            [(addr, fd)] = self.listening(hw, 1)
            port = int(addr.rsplit(":", 1)[1])
            held = sock_inode(int(self.rep.wait_report(gen=1)["pid"]), 3)
            self.ready(hw, 1)
            c1 = socket.create_connection(("127.0.0.1", port), timeout=5)
            self.addCleanup(c1.close)
            c1.sendall(b"GET / HTTP/1.0\r\n\r\n")

            mark = hw.mark()
            hw.signal("HUP")
            self.ready(hw, 2, since=mark)
            hw.wait_log(r"\bgen 1 pid \d+ exited with status 0 after draining", since=mark)
            rep2 = self.rep.wait_report(gen=2)
            self.assertEqual(rep2["fds"], "0,1,2", "gen 2 should have closed its fd 3")
            # Only hupwatch holds the socket now; it is still listening, with c1 in its queue.
            self.assertIn(held, held_sockets(hw.pid))
            self.assertIn(held, tcp_listeners(), "listening socket closed while hupwatch runs")
            c2 = socket.create_connection(("127.0.0.1", port), timeout=5)
            self.addCleanup(c2.close)
            c2.sendall(b"GET / HTTP/1.0\r\n\r\n")

            mark = hw.mark()
            hw.signal("HUP")
            self.ready(hw, 3, since=mark)
            pid3 = int(self.rep.wait_report(gen=3)["pid"])
            for c in (c1, c2):
                data = b""
                while True:
                    b = c.recv(4096)
                    if not b:
                        break
                    data += b
                self.assertEqual(data.decode(), "HTTP/1.0 200 OK\r\n\r\ngen=3 pid=%d\n" % pid3)

    # ---- bind errors: one line naming the address, exit 125, nothing started

    def assert_failed_to_start(self, hw, address, timeout=10, allow_listening=False):
        rc = hw.wait_exit(timeout)
        self.assertEqual(rc, 125, hw.stderr())
        lines = [l for l in hw.lines if l.strip()]
        if allow_listening:
            lines = [l for l in lines if not re.search(LISTENING, l)]
        self.assertEqual(len(lines), 1, "want exactly one error line:\n%s" % hw.stderr())
        self.assertIn(address, lines[0])
        self.assertEqual(hw.log_matches(r"\bstarted\b"), [])
        self.assertEqual(self.rep.all(), [], "a child was started")

    def test_port_in_use(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            address = "127.0.0.1:%d" % busy.getsockname()[1]
            with Hupwatch(["-l", address], self.child()) as hw:
                self.assert_failed_to_start(hw, address)

    def test_second_address_in_use(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            address = "127.0.0.1:%d" % busy.getsockname()[1]
            with Hupwatch(["-l", "127.0.0.1:0", "-l", address], self.child()) as hw:
                self.assert_failed_to_start(hw, address, allow_listening=True)

    def test_failed_start_removes_the_unix_socket_it_bound(self):
        path = os.path.join(self.tmp, "app.sock")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            address = "127.0.0.1:%d" % busy.getsockname()[1]
            with Hupwatch(["-l", "unix:" + path, "-l", address], self.child()) as hw:
                self.assert_failed_to_start(hw, address, allow_listening=True)
                self.assertFalse(os.path.lexists(path), "socket file left behind")

    def test_bad_host(self):
        address = "no-such-host.invalid:8080"
        with Hupwatch(["-l", address], self.child()) as hw:
            self.assert_failed_to_start(hw, address, timeout=30)

    def test_bad_address_forms(self):
        long_unix = "unix:" + os.path.join(self.tmp, "x" * 120)
        for value in ["", "x:y", "[::1", "[::1]", "99999", "65536", "-1", "unix:",
                      "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:8o", long_unix]:
            with self.subTest(address=value):
                with Hupwatch(["-l", value], self.child()) as hw:
                    rc = hw.wait_exit(30)
                    self.assertEqual(rc, 125, hw.stderr())
                    lines = [l for l in hw.lines if l.strip()]
                    self.assertTrue(1 <= len(lines) <= 2, hw.stderr())
                    if len(lines) == 2:
                        self.assertEqual(lines[1], TRY_HELP, hw.stderr())
                    self.assertIn("'%s'" % value if value == "" else value, lines[0])
                    self.assertEqual(hw.log_matches(r"\bstarted\b"), [])
                    self.assertEqual(self.rep.all(), [])

    # ---- unix socket files

    def test_stale_unix_socket_replaced(self):
        path = os.path.join(self.tmp, "stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()                       # the file stays: a stale socket nobody listens on
        with Hupwatch(["-w", "0.05", "-l", "unix:" + path], self.child("--serve")) as hw:
            self.listening(hw, 1)
            pid = int(self.rep.wait_report(gen=1)["pid"])
            # (a stale socket file refuses connections: this one is hupwatch's, served by gen 1)
            self.assertEqual(unix_listeners().get(sock_inode(pid, 3)), path)
            self.assertEqual(unix_http_get(path), (200, "gen=1 pid=%d\n" % pid))

    def test_live_unix_socket_not_stolen(self):
        """A socket file someone listens on is not stale: refused, and its owner keeps it."""
        path = os.path.join(self.tmp, "live.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as owner:
            owner.bind(path)
            owner.listen(4)
            ino = os.stat(path).st_ino
            with Hupwatch(["-l", "unix:" + path], self.child()) as hw:
                self.assert_failed_to_start(hw, path)
            self.assertEqual(os.stat(path).st_ino, ino)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.settimeout(5)
                c.connect(path)
                conn, _ = owner.accept()
                conn.close()

    def test_existing_regular_file_refused_and_intact(self):
        path = os.path.join(self.tmp, "precious")
        with open(path, "w") as f:
            f.write("do not delete\n")
        with Hupwatch(["-l", "unix:" + path], self.child()) as hw:
            self.assert_failed_to_start(hw, path)
        with open(path) as f:
            self.assertEqual(f.read(), "do not delete\n")

    # ---- --backlog

    def test_backlog_invalid(self):
        for value in ["abc", "", "-1", "1.5", "7x", " 7", "0x10", "99999999999999999999"]:
            with self.subTest(backlog=value):
                with Hupwatch(["--backlog", value, "-l", "127.0.0.1:0"], self.child()) as hw:
                    self.assertEqual(hw.wait_exit(), 125, hw.stderr())
                    self.assertEqual(len(hw.lines), 2, hw.stderr())
                    self.assertRegex(hw.lines[0], r"^hupwatch: --backlog: .*'%s'$" % re.escape(value))
                    self.assertEqual(hw.lines[1], TRY_HELP)
                    self.assertEqual(self.rep.all(), [])

    def test_backlog_applied(self):
        if shutil.which("ss") is None:
            self.skipTest("ss (iproute2) not installed")
        with open("/proc/sys/net/core/somaxconn") as f:
            somaxconn = int(f.read())
        for args, want in ((["-b", "7"], 7), (["--backlog", "23"], 23), ([], min(somaxconn, 4096))):
            with self.subTest(args=args):
                with Hupwatch(["-w", "0.05", "-l", "127.0.0.1:0"] + args, self.child()) as hw:
                    [(addr, _)] = self.listening(hw, 1)
                    port = int(addr.rsplit(":", 1)[1])
                    if args:
                        self.assertEqual(ss_backlog(port), want)
                    else:       # default SOMAXCONN: the kernel caps it at net.core.somaxconn
                        self.assertGreaterEqual(ss_backlog(port), min(somaxconn, 128))

    # ---- hupwatch itself started by socket activation

    def launcher(self):
        """A script that moves the fds named in $ACT_FDS to 3.., sets LISTEN_PID to its own pid (kept by
        exec) and LISTEN_FDS, then execs hupwatch: what systemd does for a socket-activated service."""
        path = os.path.join(self.tmp, "activate")
        with open(path, "w") as f:
            f.write("#!%s\n" % sys.executable + (
                "import fcntl, os, sys\n"
                "src = [int(x) for x in os.environ.pop('ACT_FDS').split(',')]\n"
                "tmp = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in src]\n"
                "for fd in src:\n"
                "    os.close(fd)\n"
                "for i, fd in enumerate(tmp):\n"
                "    os.dup2(fd, 3 + i, inheritable=True)\n"
                "    os.close(fd)\n"
                "env = dict(os.environ, LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(src)))\n"
                "os.execve(%r, [%r] + sys.argv[1:], env)\n" % (HUPWATCH, HUPWATCH)))
        os.chmod(path, 0o755)
        return path

    def test_started_by_socket_activation(self):
        upath = os.path.join(self.tmp, "act.sock")
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(16)
        port = tcp.getsockname()[1]
        uni = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        uni.bind(upath)
        uni.listen(16)
        inodes = [os.fstat(tcp.fileno()).st_ino, os.fstat(uni.fileno()).st_ino]
        fds = (tcp.fileno(), uni.fileno())
        env = {"ACT_FDS": "%d,%d" % fds, "LISTEN_FDNAMES": "web:admin"}
        with Hupwatch(["-w", "0.2"], self.child("--serve"), env=env, pass_fds=fds,
                      binary=self.launcher()) as hw:
            rep = self.rep.wait_report(gen=1)
            # Our copies go: from now on only hupwatch and its children hold the sockets.
            tcp.close()
            uni.close()
            self.assertEqual(int(rep["ppid"]), hw.pid)
            for gen in (1, 2):
                if gen == 2:
                    mark = hw.mark()
                    hw.signal("HUP")
                    self.ready(hw, 2, since=mark)
                    hw.wait_log(r"\bgen 1 pid \d+ exited with status 0 after draining", since=mark)
                    rep = self.rep.wait_report(gen=2)
                pid = int(rep["pid"])
                self.assertEqual(rep["listen_fds"], "2", rep)
                self.assertEqual(rep["listen_pid"], rep["pid"])
                self.assertEqual(rep["listen_fdnames"], "web:admin")
                self.assertEqual(rep["fds"], "0,1,2,3,4")
                self.assertEqual([sock_inode(pid, 3), sock_inode(pid, 4)], inodes)
                want = (200, "gen=%d pid=%d\n" % (gen, pid))
                self.assertEqual(http_get("127.0.0.1", port), want)
                self.assertEqual(unix_http_get(upath), want)

    def test_foreign_listen_pid_ignored_and_not_passed_down(self):
        """LISTEN_* meant for another process (LISTEN_PID is not hupwatch's) is neither used nor passed on."""
        env = {"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "stolen"}
        with Hupwatch(["-w", "0.05"], self.child(), env=env) as hw:
            rep = self.rep.wait_report(gen=1)
            self.ready(hw, 1)
            self.assertEqual((rep["listen_fds"], rep["listen_pid"], rep["listen_fdnames"]), ("", "", ""))
            self.assertEqual(rep["fds"], "0,1,2")


if __name__ == "__main__":
    unittest.main()
