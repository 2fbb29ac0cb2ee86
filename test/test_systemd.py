"""End to end: hupwatch as a Type=notify service of a real systemd (the host's own, 252 on Debian 12),
booted as PID 1 of a systemd-nspawn container (see test/nspawn.py and issue 12).

The container boots once for the whole module (setUpModule) and is powered off at the end
(tearDownModule, which fails when a process, a mount or the temp dir is left behind). hupwatch,
test/sd_app.py (the app) and the release directories are bind-mounted read-only: /opt/hw holds the
binaries, /opt/app/UNIT/releases/N the releases and /opt/app/UNIT/current the symlink a test swaps from
the host. Each test writes its own units into the container's /run/systemd/system and listens on its
own port of the container's loopback; requests come from threads inside the container's network
namespace.

When this machine cannot boot the container (not root, no systemd-nspawn, the boot fails or times out)
every test is skipped with that one reason, printed once on stderr.

ExampleTest runs examples/hupwatch.service and examples/hupwatch.socket as shipped (paths, port and app
substituted, no User=): start, reloads good and broken, restart under load with the fd store, stop.

Issue12Test holds the tests of what issue 12 asks for. Each is skipped with 'needs feature X (issue 12)'
until a probe of the hupwatch binary under test finds X, and then runs: the protocol strings it must
send (WATCHDOG=1, FDSTORE=1, JOURNAL_STREAM), --respawn in --help, and for STATUS= texts a short run of
hupwatch on the host that shows whether a reload sends STATUS= before it settles.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import unittest

from harness import CHILD, HUPWATCH, ROOT, Hupwatch, wait_for
import nspawn

SD_APP = os.path.join(ROOT, "test", "sd_app.py")

C = None            # the Container, once booted
SKIP = None         # why every test is skipped
_ports = iter(range(8001, 9000))


def setUpModule():
    global C, SKIP
    SKIP = nspawn.boot_problem()
    if SKIP is None and not os.access(HUPWATCH, os.X_OK):
        SKIP = "no hupwatch binary at %s (run make)" % HUPWATCH
    if SKIP is None:
        c = nspawn.Container()
        shutil.copy(HUPWATCH, os.path.join(c.build, "hupwatch"))
        shutil.copy(SD_APP, os.path.join(c.build, "sd_app.py"))
        try:
            c.boot()
            C = c
        except nspawn.BootError as e:
            SKIP = "cannot boot systemd in systemd-nspawn: %s" % e
            c.shutdown()
    if SKIP:
        sys.stderr.write("test_systemd: every test skipped: %s\n" % SKIP)


def tearDownModule():
    global C
    if C is not None:
        c, C = C, None
        problems = c.shutdown()
        if problems:
            raise AssertionError("the container left things behind: %s" % "; ".join(problems))


# ---------------------------------------------------------------------- feature probes (issue 12)

def _binary():
    try:
        with open(HUPWATCH, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _help():
    try:
        return subprocess.run([HUPWATCH, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


# TEST_SYSTEMD_FORCE=1 runs them all whatever the probes say (to see how they fail today).
FORCE = os.environ.get("TEST_SYSTEMD_FORCE") == "1"
_BIN = _binary()
HAS_WATCHDOG = FORCE or b"WATCHDOG=1" in _BIN
HAS_FDSTORE = FORCE or b"FDSTORE=1" in _BIN
HAS_JOURNAL = FORCE or b"JOURNAL_STREAM" in _BIN
HAS_RESPAWN = FORCE or "--respawn" in _help()
_status_probe = True if FORCE else None


def needs(present, feature):
    """Mark a test as needing a feature; setUp skips it (after the container's own reason, if any)."""
    def mark(fn):
        fn.needs = None if present else "needs feature %s (issue 12)" % feature
        return fn
    return mark


def status_during_reload():
    """Whether hupwatch tells the service manager STATUS= while a reload is under way (before the
    READY=1 that settles it), found by running it once on the host with NOTIFY_SOCKET ours. Cached."""
    global _status_probe
    if _status_probe is not None:
        return _status_probe
    _status_probe = False
    name = "@hupwatch-probe-%d-%d" % (os.getpid(), time.monotonic_ns())
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name[1:])
        s.settimeout(0.2)
        got = []

        def until(pred, timeout=10):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    got.append(s.recv(4096).decode(errors="replace"))
                except socket.timeout:
                    continue
                if pred(got[-1]):
                    return True
            return False
        with Hupwatch(["-n", "-t", "5"], [CHILD, "--notify-ready", "300"],
                      env={"NOTIFY_SOCKET": name}) as hw:
            if until(lambda m: "READY=1" in m):
                got.clear()
                hw.signal("HUP")
                if until(lambda m: "RELOADING=1" in m) and (
                        "STATUS=" in got[-1] or until(lambda m: "STATUS=" in m or "READY=1" in m)):
                    last = got[-1]
                    _status_probe = "STATUS=" in last and ("READY=1" not in last or "RELOADING=1" in last)
    return _status_probe


# ---------------------------------------------------------------------- the tests

class SystemdCase(unittest.TestCase):

    def setUp(self):
        if SKIP:
            self.skipTest(SKIP)
        why = getattr(getattr(self, self._testMethodName), "needs", None)
        if why:
            self.skipTest(why)
        self.c = C
        self.units = []
        self._problems_before = self._problems()

    def _problems(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        return len(result.failures) + len(result.errors) if result else 0

    # -- units

    def service(self, extra="", hw_args="", app_args="", listen=True, socket_unit=None,
                reload=True, releases=("1",), example=None):
        """Write NAME.service (and NAME.socket when socket_unit holds its [Socket] lines), run
        daemon-reload; returns NAME. Release 1 is current. Cleanup stops and removes the units.
        example(name, port) gives the units' text instead, as (service, socket or None)."""
        name = "hwt-%s" % self._testMethodName[5:].replace("_", "-")[:40]
        self.name, self.unit = name, name + ".service"
        self.port = next(_ports)
        self.appdir = os.path.join(self.c.app, name)
        for r in releases:
            self.release(r)
        self.set_current(releases[0])
        if example is not None:
            return self._write_units(name, *example(name, self.port))
        cmd = ["/opt/hw/hupwatch", "-k", "-T", "5", "-t", "15", "--notify",
               "--chdir", "/opt/app/%s/current" % name, "--status-file", "/run/%s/status" % name]
        if listen:
            cmd += ["--listen", "127.0.0.1:%d" % self.port]
        cmd += hw_args.split() + ["--", "/usr/bin/python3", "/opt/hw/sd_app.py", "--tag", name]
        cmd += app_args.split()
        text = ["[Unit]", "Description=hupwatch test %s" % name, "", "[Service]",
                "Type=notify", "NotifyAccess=main", "RuntimeDirectory=%s" % name,
                "ExecStart=%s" % " ".join(cmd)]
        if reload:
            text.append("ExecReload=/opt/hw/hupwatch --reload -S /run/%s/status -t 30" % name)
        text += ["KillMode=mixed", "TimeoutStartSec=30", "TimeoutStopSec=15"]
        text += [l.strip() for l in extra.strip().splitlines()]
        self.addCleanup(self._remove, name)
        self.c.write_unit(self.unit, "\n".join(text) + "\n")
        self.units.append(self.unit)
        if socket_unit is not None:
            sock = ["[Socket]", "ListenStream=127.0.0.1:%d" % self.port]
            sock += [l.strip() for l in socket_unit.strip().splitlines()]
            self.c.write_unit(name + ".socket", "\n".join(sock) + "\n")
            self.units.insert(0, name + ".socket")
        self.c.daemon_reload()
        return name

    def _write_units(self, name, service_text, socket_text=None):
        self.addCleanup(self._remove, name)
        self.c.write_unit(self.unit, service_text)
        self.units.append(self.unit)
        if socket_text is not None:
            self.c.write_unit(name + ".socket", socket_text)
            self.units.insert(0, name + ".socket")
        self.c.daemon_reload()
        return name

    def _remove(self, name):
        if self._problems() > self._problems_before:
            sys.stderr.write("---- journal of %s\n%s" % (self.unit, self.journal_text()))
        self.c.systemctl("stop", *self.units, timeout=30)
        self.c.systemctl("reset-failed", *self.units)
        for u in self.units:
            self.c.remove_unit(u)

    def journal_text(self):
        r = self.c.run(["journalctl", "--no-pager", "-o", "short-monotonic", "-u", self.unit])
        return r.stdout

    def release(self, r, broken=False, startup=None):
        d = os.path.join(self.appdir, "releases", str(r))
        os.makedirs(d, exist_ok=True)
        if broken:
            open(os.path.join(d, "BROKEN"), "w").close()
        if startup is not None:
            with open(os.path.join(d, "STARTUP"), "w") as f:
                f.write("%g\n" % startup)
        return d

    def set_current(self, r):
        """Swap the current symlink to releases/r atomically, as a deploy does."""
        tmp = os.path.join(self.appdir, "current.new")
        os.symlink("releases/%s" % r, tmp)
        os.replace(tmp, os.path.join(self.appdir, "current"))

    # -- systemd

    def start(self, unit=None):
        t0 = time.monotonic()
        r = self.c.systemctl("start", unit or self.unit)
        self.assertEqual(r.returncode, 0, "systemctl start: %s\n%s" % (r.stderr, self.journal_text()))
        return time.monotonic() - t0

    def show(self, *props):
        return self.c.show(self.unit, *props)

    def main_pid(self):
        return int(self.c.prop(self.unit, "MainPID"))

    def status_file(self):
        text = self.c.read("/run/%s/status" % self.name) or ""
        return dict(l.split("=", 1) for l in text.splitlines() if "=" in l)

    def hupwatch_lines(self):
        """(PRIORITY, MESSAGE) of the journal lines written by hupwatch itself (its own pid)."""
        pid = str(self.main_pid())
        return [(e.get("PRIORITY"), e.get("MESSAGE")) for e in self.c.journal(self.unit)
                if e.get("_PID") == pid and isinstance(e.get("MESSAGE"), str)]

    def wait_journal(self, regex, timeout=10):
        pat = re.compile(regex)
        return wait_for(lambda: next((m for m in self.c.messages(self.unit) if pat.search(m)), None),
                        timeout, "a journal line of %s matching %r" % (self.unit, regex))

    def wait_state(self, state, timeout=15):
        return wait_for(lambda: self.c.prop(self.unit, "ActiveState") == state, timeout,
                        "%s ActiveState=%s (have %s)" % (self.unit, state,
                                                         self.c.prop(self.unit, "ActiveState")))

    # -- requests

    def answer(self):
        """The fields of an answer on the test's port (release, gen, pid); {} when none came."""
        return self.c.answer(self.port)

    def get(self, timeout=10):
        """The fields of an answer on the test's port; fails the test, saying why, when none came."""
        a = self.c.answer(self.port, timeout)
        if not a:
            self.fail("no answer on port %d: %s" % (self.port, self.c.last_error))
        return a

    def served_by(self, gen, old=None):
        """(release, gen) of an answer once gen is the only generation left: the reload that made it
        current has returned, and the generation before it has exited (until then, draining, it may
        still accept a connection or two from the shared socket)."""
        self.wait_journal(r"gen %d pid \d+ (exited|killed)" % (old or gen - 1))
        a = self.get()
        return a.get("release"), a.get("gen")

    def wait_answer(self, timeout=15, **want):
        def check():
            a = self.answer()
            return a if a and all(a.get(k) == str(v) for k, v in want.items()) else None
        try:
            return wait_for(check, timeout, "an answer with %r on port %d" % (want, self.port))
        except AssertionError as e:
            raise AssertionError("%s; last: %r %s" % (e, self.answer(), self.c.last_error))

    def tagged(self):
        """Host pids of live processes (anywhere) of this test's unit: in its cgroup, or carrying its
        name in their command line (sd_app --tag NAME)."""
        want = self.name.encode()
        out = []
        for p in os.listdir("/proc"):
            if not p.isdigit() or int(p) == os.getpid():
                continue
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    argv = f.read().split(b"\0")
                with open("/proc/%s/cgroup" % p) as f:
                    cgroup = f.read()
            except OSError:
                continue
            if want in argv or "/%s.service" % self.name in cgroup:
                out.append(int(p))
        return out


class TodayTest(SystemdCase):
    """What hupwatch does today as a Type=notify service (issue 12: 'did what its docs say')."""

    def test_start_returns_after_gen1_ready(self):
        self.service()
        self.release("1", startup=1.5)
        took = self.start()
        # systemctl start came back only once gen 1 said READY=1 (it sleeps 1.5 s first) ...
        self.assertGreaterEqual(took, 1.4)
        st = self.show("ActiveState", "SubState", "ExecMainStartTimestampMonotonic",
                       "ActiveEnterTimestampMonotonic", "StatusText")
        self.assertEqual((st["ActiveState"], st["SubState"]), ("active", "running"))
        delay = (int(st["ActiveEnterTimestampMonotonic"])
                 - int(st["ExecMainStartTimestampMonotonic"])) / 1e6
        self.assertGreaterEqual(delay, 1.4, "active only after gen 1 was ready: %r" % st)
        # ... and at once serves (no retry: the first request must be answered by gen 1)
        self.assertEqual(self.get().get("gen"), "1")
        self.assertRegex(st["StatusText"], r"^gen 1 pid \d+ is current$")
        self.assertEqual(self.status_file().get("state"), "running")
        self.assertTrue(any(re.search(r"gen 1 pid \d+ ready after", m)
                            for m in self.c.messages(self.unit)))

    def test_reload_good_release(self):
        self.service(releases=("1", "2"))
        self.start()
        main = self.main_pid()
        self.assertEqual(self.get().get("release"), "1")
        self.set_current("2")
        with self.c.load(self.port) as load:
            load.wait_seen(("1", "1"))
            r = self.c.systemctl("reload", self.unit)
            # it returned once the new release was current
            after = self.status_file()
            load.wait_seen(("2", "2"))
        self.assertEqual(r.returncode, 0, "systemctl reload: %s" % r.stderr)
        self.assertEqual((after.get("generation"), after.get("reload_state")), ("2", "succeeded"),
                         after)
        self.assertEqual(self.served_by(2), ("2", "2"))
        self.assertEqual(self.main_pid(), main, "MainPID unchanged by the reload")
        self.assertEqual(self.c.prop(self.unit, "ActiveState"), "active")
        self.assertEqual((load.refused, load.failed), (0, 0), load.summary())
        self.assertGreater(load.ok, 0, load.summary())

    def test_reload_broken_release(self):
        self.service(releases=("1", "2"))
        self.release("2", broken=True)
        self.start()
        main = self.main_pid()
        self.set_current("2")
        r = self.c.systemctl("reload", self.unit)
        self.assertNotEqual(r.returncode, 0, "systemctl reload of a broken release must fail")
        self.wait_journal(r"^Reload failed for %s" % re.escape(self.unit))
        # the old release still serves, under the same main process, and the unit is not failed
        for _ in range(3):
            self.assertEqual(self.get().get("release"), "1")
        self.assertEqual(self.status_file().get("reload_state"), "failed")
        self.assertEqual(self.main_pid(), main)
        self.assertEqual(self.c.prop(self.unit, "ActiveState"), "active")
        self.wait_journal(r"gen 2 failed: exited with status 3 before ready; gen 1 stays current")
        # and the next good release goes through
        self.release("3")
        self.set_current("3")
        r = self.c.systemctl("reload", self.unit)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.served_by(3, old=1), ("3", "3"))
        self.assertEqual(self.main_pid(), main)

    def test_kill_hup_reloads_mainpid_stable(self):
        self.service(releases=("1", "2", "3"))
        self.start()
        main = self.main_pid()
        for gen, rel in ((2, "2"), (3, "3")):
            self.set_current(rel)
            self.c.check(["systemctl", "kill", "--kill-who=main", "--signal=HUP", self.unit])
            self.wait_answer(release=rel, gen=gen)
            self.wait_state("active")
            self.assertEqual(self.main_pid(), main)
        self.assertEqual(self.show("NRestarts")["NRestarts"], "0")

    def test_stop_leaves_nothing(self):
        self.service(releases=("1", "2"))
        self.start()
        self.set_current("2")
        self.assertEqual(self.c.systemctl("reload", self.unit).returncode, 0)
        self.assertEqual(self.served_by(2), ("2", "2"))
        self.assertTrue(self.tagged(), "the unit's processes carry its name in their command line")
        r = self.c.systemctl("stop", self.unit)
        self.assertEqual(r.returncode, 0, r.stderr)
        st = self.show("ActiveState", "Result")
        self.assertEqual((st["ActiveState"], st["Result"]), ("inactive", "success"), st)
        # (ExecMainStatus= says nothing here: an inactive unit that succeeded is unloaded at once and
        # shown with defaults. hupwatch's last line and systemd's say how it ended.)
        self.wait_journal(r"exiting with status 0$")
        self.wait_journal(r"Deactivated successfully")
        self.assertEqual(self.tagged(), [], "no process of the unit is left")
        with self.assertRaises(ConnectionRefusedError):
            self.c.http_get(self.port)
        self.assertIsNone(self.c.read("/run/%s/status" % self.name), "RuntimeDirectory= removed")

    def test_stop_of_an_app_that_dies_of_sigterm(self):
        # An app without a TERM handler dies of it: hupwatch -k exits 143 (128 + 15), which systemd
        # counts as a failure unless SuccessExitStatus= says otherwise (issue 12, 'Correct units').
        self.service(app_args="--term-default")
        self.start()
        self.c.systemctl("stop", self.unit)
        st = self.show("ActiveState", "Result", "ExecMainStatus")
        self.assertEqual((st["ActiveState"], st["Result"], st["ExecMainStatus"]),
                         ("failed", "exit-code", "143"), st)
        self.c.systemctl("reset-failed", self.unit)
        self.c.write_unit(self.unit, self.c.read("/run/systemd/system/" + self.unit)
                          + "SuccessExitStatus=143\n")
        self.c.daemon_reload()
        self.start()
        self.c.systemctl("stop", self.unit)
        st = self.show("ActiveState", "Result")
        self.assertEqual((st["ActiveState"], st["Result"]), ("inactive", "success"), st)
        wait_for(lambda: len([m for m in self.c.messages(self.unit)
                              if m.endswith("exiting with status 143")]) == 2, 10,
                 "hupwatch's 'exiting with status 143', once per stop")
        self.assertEqual(self.tagged(), [])

    def test_socket_activation(self):
        self.service(listen=False, socket_unit="FileDescriptorName=web",
                     releases=("1", "2", "3"))
        self.start(self.name + ".socket")
        self.assertEqual(self.c.prop(self.unit, "ActiveState"), "inactive")
        # The first connection starts the service; hupwatch takes the socket and passes it on.
        first = self.get(timeout=20)
        self.assertEqual((first.get("release"), first.get("gen")), ("1", "1"), first)
        self.wait_state("active")
        main = self.main_pid()
        self.wait_journal(r"listening on activated fd 3 \(web\)")
        env = self.c.environ(first["pid"])
        self.assertEqual((env.get("LISTEN_FDS"), env.get("LISTEN_FDNAMES"), env.get("LISTEN_PID")),
                         ("1", "web", first["pid"]), "gen 1 got the socket with its name")
        with self.c.load(self.port) as load:
            load.wait_seen(("1", "1"))
            for gen, rel in ((2, "2"), (3, "3")):
                self.set_current(rel)
                r = self.c.systemctl("reload", self.unit)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(self.served_by(gen), (rel, str(gen)))
                load.wait_seen((rel, str(gen)))
        self.assertEqual((load.refused, load.failed), (0, 0), load.summary())
        self.assertEqual(self.main_pid(), main)
        # Stopped, the service is started again by the next connection: the socket stayed open.
        self.assertEqual(self.c.systemctl("stop", self.unit).returncode, 0)
        self.assertEqual(self.c.prop(self.name + ".socket", "ActiveState"), "active")
        again = self.get(timeout=20)
        self.assertEqual((again.get("release"), again.get("gen")), ("3", "1"), again)
        self.assertNotEqual(self.main_pid(), main)

    def test_app_crash_restarts_the_service(self):
        self.service(extra="Restart=on-failure\nRestartSec=0.2")
        self.start()
        main = self.main_pid()
        gen1 = self.get()
        self.c.check(["kill", "-KILL", gen1["pid"]])
        # hupwatch exits with the app's status (128 + 9) and systemd starts it again
        wait_for(lambda: self.c.prop(self.unit, "NRestarts") == "1", 15, "NRestarts=1")
        self.wait_state("active")
        again = self.wait_answer(gen=1)
        self.assertNotEqual(again["pid"], gen1["pid"])
        self.assertNotEqual(self.main_pid(), main)
        self.wait_journal(r"Main process exited, code=exited, status=137")


def example_units(name, port, socket_activation=False):
    """examples/hupwatch.service (and .socket) as shipped, but for this test: its binaries, app,
    directories and port; no User= (the container has no user app)."""
    def read(f):
        with open(os.path.join(ROOT, "examples", f)) as fh:
            return fh.read()
    text = read("hupwatch.service")
    for old, new in (("/usr/local/bin/hupwatch", "/opt/hw/hupwatch"),
                     ("127.0.0.1:8000", "127.0.0.1:%d" % port),
                     ("/srv/app/current", "/opt/app/%s/current" % name),
                     ("gunicorn --preload -w 2 app:application",
                      "/usr/bin/python3 /opt/hw/sd_app.py --tag %s" % name),
                     ("%t/app/", "%%t/%s/" % name), ("RuntimeDirectory=app", "RuntimeDirectory=" + name)):
        assert old in text, "examples/hupwatch.service changed (%r): update the test" % old
        text = text.replace(old, new)
    text = "\n".join(l for l in text.splitlines() if not re.match(r"(User|Group)=", l)) + "\n"
    if not socket_activation:
        return text, None
    text = text.replace(" --listen 127.0.0.1:%d" % port, "")
    sock = read("hupwatch.socket")
    assert "ListenStream=127.0.0.1:8000" in sock, "examples/hupwatch.socket changed: update the test"
    return text, sock.replace("ListenStream=127.0.0.1:8000", "ListenStream=127.0.0.1:%d" % port)


class ExampleTest(SystemdCase):
    """examples/hupwatch.service and hupwatch.socket, as shipped (issue 12, 'Correct units')."""

    @needs(HAS_FDSTORE and HAS_WATCHDOG, "FDSTORE=1 and WATCHDOG=1")
    def test_example_service(self):
        self.service(releases=("1", "2", "3"), example=example_units)
        self.release("3", broken=True)
        self.start()
        self.assertEqual(self.get().get("gen"), "1")
        st = self.show("WatchdogUSec", "FileDescriptorStoreMax", "NFileDescriptorStore", "StatusText")
        self.assertEqual((st["WatchdogUSec"], st["FileDescriptorStoreMax"], st["NFileDescriptorStore"]),
                         ("30s", "4", "1"), st)
        self.assertRegex(st["StatusText"], r"^gen 1 pid \d+ is current$")
        main = self.main_pid()
        with self.c.load(self.port, threads=3) as load:
            load.wait_seen(("1", "1"))
            self.set_current("2")
            self.assertEqual(self.c.systemctl("reload", self.unit).returncode, 0)
            load.wait_seen(("2", "2"))
            self.set_current("3")
            self.assertNotEqual(self.c.systemctl("reload", self.unit).returncode, 0, "broken release")
            self.assertRegex(self.c.prop(self.unit, "StatusText"),
                             r"^reload 2 failed: gen 3 exited with status 3 before ready; gen 2 pid \d+ current$")
            self.set_current("2")
            r = self.c.systemctl("restart", self.unit)
            self.assertEqual(r.returncode, 0, r.stderr)
            ok = load.ok
            wait_for(lambda: load.ok > ok, 10, "answers after the restart")
        self.assertEqual((load.refused, load.failed), (0, 0), load.summary())
        self.assertNotEqual(self.main_pid(), main)
        self.assertEqual(self.get().get("release"), "2")
        self.assertEqual(self.c.systemctl("stop", self.unit).returncode, 0)
        st = self.show("ActiveState", "Result", "NFileDescriptorStore")
        self.assertEqual((st["ActiveState"], st["Result"], st["NFileDescriptorStore"]),
                         ("inactive", "success", "0"), st)
        self.assertEqual(self.tagged(), [])

    @needs(HAS_FDSTORE, "FDSTORE=1")
    def test_example_socket(self):
        self.service(releases=("1", "2"),
                     example=lambda name, port: example_units(name, port, socket_activation=True))
        self.start(self.name + ".socket")
        first = self.get(timeout=20)
        self.assertEqual((first.get("release"), first.get("gen")), ("1", "1"), first)
        env = self.c.environ(first["pid"])
        self.assertEqual((env.get("LISTEN_FDS"), env.get("LISTEN_FDNAMES")), ("1", "web"), env)
        self.wait_state("active")
        self.assertEqual(self.c.prop(self.unit, "NFileDescriptorStore"), "0", "activated: not stored")
        self.set_current("2")
        self.assertEqual(self.c.systemctl("reload", self.unit).returncode, 0)
        self.assertEqual(self.served_by(2), ("2", "2"))
        with self.c.load(self.port) as load:
            load.wait_seen(("2", "2"))
            self.assertEqual(self.c.systemctl("restart", self.unit).returncode, 0)
            ok = load.ok
            wait_for(lambda: load.ok > ok, 10, "answers after the restart")
        self.assertEqual((load.refused, load.failed), (0, 0), load.summary())


class Issue12Test(SystemdCase):
    """What issue 12 asks for; each test runs once its feature is in the hupwatch under test."""

    @needs(HAS_WATCHDOG, "WATCHDOG=1")
    def test_watchdog_runs_10s_without_a_kill(self):
        self.service(extra="WatchdogSec=2\nRestart=on-failure\nRestartSec=0.2", releases=("1", "2"))
        self.release("2", startup=3)        # a reload longer than the watchdog interval
        self.start()
        main = self.main_pid()
        t0 = time.monotonic()
        self.set_current("2")
        self.assertEqual(self.c.systemctl("reload", self.unit).returncode, 0)
        while time.monotonic() - t0 < 10:
            st = self.show("ActiveState", "MainPID", "NRestarts")
            self.assertEqual((st["ActiveState"], st["MainPID"], st["NRestarts"]),
                             ("active", str(main), "0"), "after %.1fs" % (time.monotonic() - t0))
            time.sleep(0.5)
        self.assertFalse([m for m in self.c.messages(self.unit) if "Watchdog" in m])
        self.assertEqual(self.get().get("release"), "2")

    @needs(HAS_WATCHDOG, "WATCHDOG=1")
    def test_generations_do_not_see_the_watchdog_of_hupwatch(self):
        self.service(extra="WatchdogSec=5")
        self.start()
        main = str(self.main_pid())
        gen = self.get()
        env = self.c.environ(gen["pid"])
        self.assertNotEqual(env.get("WATCHDOG_PID"), main, "WATCHDOG_PID names hupwatch: %r" % env)
        if "WATCHDOG_USEC" in env:      # allowed only as the generation's own watchdog
            self.assertEqual(env.get("WATCHDOG_PID"), gen["pid"], env)

    @needs(HAS_WATCHDOG, "WATCHDOG=1")
    def test_hung_generation_restarts_the_service(self):
        # gen 1 pings its own watchdog (WATCHDOG_USEC/WATCHDOG_PID of its own, on hupwatch's socket),
        # then stops: hupwatch asks systemd to act (WATCHDOG=trigger), and Restart= starts it again.
        self.service(extra="WatchdogSec=2\nRestart=on-failure\nRestartSec=0.2", app_args="--hang-after 1")
        self.start()
        main = self.main_pid()
        gen = self.get()
        env = self.c.environ(gen["pid"])
        self.assertEqual((env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")), ("2000000", gen["pid"]), env)
        self.wait_journal(r"gen 1 pid %s hung: no WATCHDOG=1 for 2\.\d\ds; asking the service manager "
                          r"to act \(WATCHDOG=trigger\)" % gen["pid"], timeout=10)
        self.wait_journal(r"Watchdog request", timeout=5)
        wait_for(lambda: self.c.prop(self.unit, "NRestarts") == "1", 15, "NRestarts=1")
        self.wait_state("active")
        self.assertNotEqual(self.main_pid(), main)
        self.assertNotEqual(self.wait_answer(gen=1)["pid"], gen["pid"])

    @needs(HAS_FDSTORE, "FDSTORE=1")
    def test_restart_with_fd_store_refuses_nothing(self):
        self.service(extra="FileDescriptorStoreMax=4")
        self.start()
        self.assertEqual(self.c.prop(self.unit, "NFileDescriptorStore"), "1")
        main = self.main_pid()
        with self.c.load(self.port, threads=4) as load:
            load.wait_seen(("1", "1"))
            for _ in range(2):
                r = self.c.systemctl("restart", self.unit)
                self.assertEqual(r.returncode, 0, r.stderr)
                ok = load.ok
                wait_for(lambda: load.ok > ok, 10, "answers after the restart")
        self.assertEqual(load.refused, 0, "connections refused during systemctl restart: "
                         + load.summary())
        self.assertEqual(load.failed, 0, load.summary())
        self.assertNotEqual(self.main_pid(), main, "a real restart")
        self.assertEqual(self.c.prop(self.unit, "NFileDescriptorStore"), "1")
        # the socket came back from the store, under --listen's name, and was not bound anew
        self.wait_journal(r"listening on 127\.0\.0\.1:%d \(fd 3, passed back by the service manager\)"
                          % self.port)
        gen = self.wait_answer(gen=1)
        env = self.c.environ(gen["pid"])
        self.assertEqual((env.get("LISTEN_FDS"), env.get("LISTEN_FDNAMES")),
                         ("1", "127.0.0.1_%d" % self.port), env)

    @needs(HAS_FDSTORE, "FDSTORE=1")
    def test_fd_store_does_not_store_activated_sockets(self):
        # systemd 252 passes a socket-activated socket that was also stored twice (see SYSTEMD-NOTES.txt)
        self.service(listen=False, socket_unit="FileDescriptorName=web",
                     extra="FileDescriptorStoreMax=4")
        self.start(self.name + ".socket")
        self.start()
        self.assertEqual(self.c.prop(self.unit, "NFileDescriptorStore"), "0")
        self.assertEqual(self.c.systemctl("restart", self.unit).returncode, 0)
        gen = self.wait_answer(gen=1)
        env = self.c.environ(gen["pid"])
        self.assertEqual((env.get("LISTEN_FDS"), env.get("LISTEN_FDNAMES")), ("1", "web"), env)

    @needs(HAS_JOURNAL, "JOURNAL_STREAM")
    def test_journal_lines_have_one_prefix_and_priorities(self):
        self.service(releases=("1", "2"))
        self.release("2", broken=True)
        self.start()
        self.set_current("2")
        self.c.systemctl("reload", self.unit)
        wait_for(lambda: any("gen 2 failed" in m for _, m in self.hupwatch_lines()), 10,
                 "hupwatch's line about the failed gen 2")
        lines = self.hupwatch_lines()
        doubled = [m for _, m in lines if re.match(r"hupwatch\[\d+\]:", m)]
        self.assertEqual(doubled, [], "the journal names the process itself")
        ready = [p for p, m in lines if re.search(r"gen 1 pid \d+ ready after", m)]
        failed = [p for p, m in lines if "gen 2 failed" in m]
        self.assertEqual(ready, ["6"], lines)       # info
        self.assertEqual(failed, ["3"], lines)      # err

    def test_kill_hup_visible_in_status(self):
        if not status_during_reload():
            self.skipTest("needs feature STATUS= during a reload (issue 12)")
        self.service(releases=("1", "2", "3"))
        self.release("2", startup=2)
        self.release("3", broken=True)
        self.start()
        hup = ["systemctl", "kill", "--kill-who=main", "--signal=HUP", self.unit]
        self.set_current("2")
        self.c.check(hup)
        during = wait_for(lambda: re.search(r"reload", self.c.prop(self.unit, "StatusText"), re.I)
                          and self.c.prop(self.unit, "StatusText"), 5, "StatusText about the reload")
        self.assertIn("gen 2", during)
        self.wait_answer(gen=2)
        self.wait_state("active")
        text = self.c.prop(self.unit, "StatusText")
        self.assertIn("gen 2", text)
        self.set_current("3")
        self.c.check(hup)
        failed = wait_for(lambda: re.search(r"fail", self.c.prop(self.unit, "StatusText"), re.I)
                          and self.c.prop(self.unit, "StatusText"), 10, "StatusText of a failed reload")
        self.assertIn("gen 2", failed, "names the generation that still serves")
        self.wait_state("active")
        out = self.c.run(["systemctl", "status", "--no-pager", "--full", "-n0", self.unit]).stdout
        self.assertIn(failed, out, "systemctl status shows it")
        self.assertEqual(self.get().get("gen"), "2")

    @needs(HAS_RESPAWN, "--respawn")
    def test_app_crash_respawned_by_hupwatch(self):
        self.service(hw_args="--respawn", extra="Restart=on-failure\nRestartSec=0.2")
        self.start()
        main = self.main_pid()
        gen1 = self.get()
        self.c.check(["kill", "-KILL", gen1["pid"]])
        again = wait_for(lambda: (lambda a: a if a and a["pid"] != gen1["pid"] else None)(self.answer()),
                         15, "an answer from a respawned generation")
        self.assertTrue(again)
        self.assertEqual(self.main_pid(), main, "hupwatch itself stayed")
        self.assertEqual(self.c.prop(self.unit, "NRestarts"), "0")


if __name__ == "__main__":
    unittest.main()
