#!/usr/bin/env python3
"""Check, under the real systemd of this machine, the facts SYSTEMD-NOTES.txt states (as root).

    python3 test/sd_facts.py [-v] [NAME...]

Boots the container of test/nspawn.py once, runs each check (test/sd_probe.py as the service, speaking
sd_notify by hand), prints 'ok NAME' or 'FAIL NAME: why', exits 1 if any failed. These test systemd,
not hupwatch: they are not part of `make check`; run them when the systemd version changes.
About 40 s.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nspawn  # noqa: E402

PROBE = "/usr/bin/python3 /opt/hw/sd_probe.py"
VERBOSE = False


class Facts:
    def __init__(self, c):
        self.c = c

    # -- helpers
    def unit(self, name, lines):
        self.c.write_unit(name, "\n".join(lines) + "\n")

    def reload_units(self):
        self.c.daemon_reload()

    def sh(self, cmd, timeout=60):
        r = self.c.run(["sh", "-c", cmd], timeout=timeout)
        return r.stdout + r.stderr

    def prop(self, unit, name):
        return self.c.prop(unit, name)

    def log(self, unit):
        """The MESSAGE of every journal entry of unit."""
        return self.c.messages(unit)

    def wait_log(self, unit, regex, timeout=10):
        pat = re.compile(regex)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.log(unit):
                if pat.search(m):
                    return m
            time.sleep(0.05)
        raise AssertionError("no journal line of %s matching %r:\n%s"
                             % (unit, regex, "\n".join(self.log(unit))))

    def field(self, unit, name, nth=-1):
        """Value of NAME=... in the nth 'pid=...' line the probe logged."""
        lines = [m for m in self.log(unit) if m.startswith("pid=")]
        m = re.search(r"\b%s=(\S*)" % name, lines[nth])
        return m.group(1) if m else None

    def svc(self, name, actions, *extra):
        self.unit(name, ["[Service]", "Type=notify", "ExecStart=%s %s" % (PROBE, actions)] + list(extra))

    def start(self, *units):
        out = self.c.run(["systemctl", "start"] + list(units))
        assert out.returncode == 0, out.stderr

    # -- the facts; each docstring is the fact

    def env_of_exec_start(self):
        """ExecStart's process gets WATCHDOG_USEC (usec) and WATCHDOG_PID (its own pid), SYSTEMD_EXEC_PID
        (its own pid), JOURNAL_STREAM=DEV:INO of its stderr; no FDSTORE variable (252)."""
        self.svc("f-env.service", "send READY=1", "WatchdogSec=30", "FileDescriptorStoreMax=4")
        self.reload_units()
        self.start("f-env.service")
        pid = self.prop("f-env.service", "MainPID")
        assert self.field("f-env.service", "WATCHDOG_USEC") == "30000000"
        assert self.field("f-env.service", "WATCHDOG_PID") == pid
        assert self.field("f-env.service", "SYSTEMD_EXEC_PID") == pid
        assert self.field("f-env.service", "FDSTORE") == "-"
        js = self.field("f-env.service", "JOURNAL_STREAM")
        assert any(m == "stderr=" + js for m in self.log("f-env.service")), js

    def watchdog_armed_at_ready(self):
        """The watchdog runs from READY=1 on, not while the service is activating; on timeout SIGABRT
        to the main process, Result=watchdog."""
        self.svc("f-wd.service", "sleep 2.5 send READY=1", "WatchdogSec=1")
        self.reload_units()
        self.start("f-wd.service")
        t = time.monotonic()
        assert self.prop("f-wd.service", "ActiveState") == "active"
        self.wait_log("f-wd.service", r"Watchdog timeout \(limit 1s\)!", 5)
        assert time.monotonic() - t > 0.5
        self.wait_log("f-wd.service", r"Killing process \d+ \(python3\) with signal SIGABRT")
        assert self.prop("f-wd.service", "Result") == "watchdog"

    def watchdog_runs_while_reloading(self):
        """RELOADING=1 does not pause the watchdog."""
        self.svc("f-wdr.service", "send READY=1 send WATCHDOG=1 sleep 0.5 send WATCHDOG=1 "
                 "send RELOADING=1 sleep 5 send READY=1", "WatchdogSec=1")
        self.reload_units()
        self.start("f-wdr.service")
        self.wait_log("f-wdr.service", r"Watchdog timeout", 5)

    def watchdog_usec_and_trigger(self):
        """WATCHDOG_USEC=N changes the timeout (WatchdogUSec= shows it); WATCHDOG=trigger kills at once."""
        self.svc("f-wdu.service", "send READY=1 send WATCHDOG_USEC=3000000 sleep 1.5 send WATCHDOG=trigger",
                 "WatchdogSec=1")
        self.reload_units()
        self.start("f-wdu.service")
        time.sleep(1.2)
        assert self.prop("f-wdu.service", "ActiveState") == "active"
        assert self.prop("f-wdu.service", "WatchdogUSec") == "3s"
        self.wait_log("f-wdu.service", r"Watchdog request \(last status: .*\)!", 5)

    def fdstore_names_and_order(self):
        """FDSTORE=1 + FDNAME= + SCM_RIGHTS in one datagram; the restarted service gets them by
        LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES, most recently stored first; no FDNAME= gives 'stored',
        an invalid one (':') is ignored with a log line and gives 'stored' too; two fds in one
        message both get its name."""
        self.svc("f-fds.service", "store aaa 9101 store bbb 9102 store bad:name 9103 store-noname 9104 "
                 "store-two pair 9105 9106 send READY=1", "FileDescriptorStoreMax=16")
        self.reload_units()
        self.start("f-fds.service")
        assert self.prop("f-fds.service", "NFileDescriptorStore") == "6"
        self.wait_log("f-fds.service", r"Passed FDNAME= name is invalid, ignoring")
        assert self.c.run(["systemctl", "restart", "f-fds.service"]).returncode == 0
        assert self.field("f-fds.service", "LISTEN_FDS") == "6"
        assert self.field("f-fds.service", "LISTEN_PID") == self.prop("f-fds.service", "MainPID")
        names = self.field("f-fds.service", "LISTEN_FDNAMES")
        assert names == "pair:pair:stored:stored:bbb:aaa", names

    def fdstore_kept_and_released(self):
        """The store survives systemctl restart, a crash with Restart=, a watchdog kill with Restart=;
        it is emptied by systemctl stop and by a failure without Restart=."""
        self.svc("f-keep.service", "store web 9110 send READY=1", "FileDescriptorStoreMax=4",
                 "Restart=on-failure", "RestartSec=0.1", "WatchdogSec=3")
        self.svc("f-fail.service", "store web 9111 send READY=1 sleep 0.2 exit 1",
                 "FileDescriptorStoreMax=4")
        self.reload_units()
        u = "f-keep.service"
        self.start(u)
        self.c.check(["systemctl", "restart", u])
        assert self.field(u, "LISTEN_FDNAMES") == "web"
        self.c.check(["systemctl", "kill", "--kill-who=main", "--signal=KILL", u])
        wait(lambda: self.prop(u, "NRestarts") == "1" and self.prop(u, "ActiveState") == "active")
        assert self.field(u, "LISTEN_FDNAMES") == "web"
        self.wait_log(u, r"Watchdog timeout", 5)        # this probe never pings
        wait(lambda: self.prop(u, "NRestarts") == "2" and self.prop(u, "ActiveState") == "active")
        assert self.field(u, "LISTEN_FDNAMES") == "web"
        self.c.check(["systemctl", "stop", u])
        assert self.prop(u, "NFileDescriptorStore") == "0"
        self.start("f-fail.service")
        wait(lambda: self.prop("f-fail.service", "ActiveState") == "failed")
        assert self.prop("f-fail.service", "NFileDescriptorStore") == "0"

    def fdstore_limits(self):
        """Beyond FileDescriptorStoreMax= (default 0) the fds are closed with one log line."""
        self.svc("f-max0.service", "store web 9120 send READY=1")
        self.svc("f-max1.service", "store-two pair 9121 9122 send READY=1", "FileDescriptorStoreMax=1")
        self.reload_units()
        self.start("f-max0.service", "f-max1.service")
        self.wait_log("f-max0.service", r"Cannot store more fds than FileDescriptorStoreMax=0, closing remaining")
        self.wait_log("f-max1.service", r"Cannot store more fds than FileDescriptorStoreMax=1, closing remaining")
        assert self.prop("f-max1.service", "NFileDescriptorStore") == "1"

    def fdstore_dedup_poll_remove(self):
        """A dup() of a stored fd is not stored twice; a stored fd that gets POLLHUP is dropped (no
        FDPOLL=0); FDSTOREREMOVE=1 + FDNAME= drops by name."""
        self.svc("f-dup.service", "store web 9130 store-dup store-pipe p1 store-pipe p2 send READY=1 "
                 "sleep 0.5 close-pipe sleep 0.5 send FDSTOREREMOVE=1\\nFDNAME=p1",
                 "FileDescriptorStoreMax=8")
        self.reload_units()
        self.start("f-dup.service")
        n = self.prop("f-dup.service", "NFileDescriptorStore")
        assert n == "3", n
        wait(lambda: self.prop("f-dup.service", "NFileDescriptorStore") == "1", 5)

    def fdstore_with_socket_activation(self):
        """A socket-activated socket stored again is passed twice: the socket unit's first, then the
        store's, same inode."""
        self.unit("f-sa.socket", ["[Socket]", "ListenStream=127.0.0.1:9140", "FileDescriptorName=api"])
        self.svc("f-sa.service", "store-received copy send READY=1", "FileDescriptorStoreMax=4")
        self.reload_units()
        self.start("f-sa.socket", "f-sa.service")
        self.c.check(["systemctl", "restart", "f-sa.service"])
        assert self.field("f-sa.service", "LISTEN_FDNAMES") == "api:copy"
        inos = {m.split("ino=")[1] for m in self.log("f-sa.service")[-12:] if m.startswith("fd ")}
        assert len(inos) == 1, inos

    def fdstore_queues_during_restart(self):
        """While the service restarts, a stored listening socket accepts connections into its queue."""
        self.svc("f-q.service", "store web 9150 send READY=1", "FileDescriptorStoreMax=4",
                 "ExecStartPre=/bin/sleep 2")
        self.reload_units()
        self.start("f-q.service")
        p = subprocess.Popen(["nsenter", "-t", str(self.c.leader), "-a", "systemctl", "restart",
                              "f-q.service"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait(lambda: self.prop("f-q.service", "SubState") == "start-pre", 5)

            def connect():
                with socket.create_connection(("127.0.0.1", 9150), timeout=3):
                    return True
            assert self.c.in_netns(connect)
        finally:
            p.wait(15)

    def notify_access_main(self):
        """With NotifyAccess=main, another process's message is refused with a log line."""
        self.unit("f-na.service", ["[Service]", "Type=notify", "NotifyAccess=main",
                                   "ExecStart=/bin/sh -c '%s send STATUS=child exit 0; exec %s send READY=1'"
                                   % (PROBE, PROBE)])
        self.reload_units()
        self.start("f-na.service")
        self.wait_log("f-na.service", r"Got notification message from PID \d+, but reception only "
                      r"permitted for main PID \d+")
        assert self.prop("f-na.service", "StatusText") == ""

    def status_text(self):
        """RELOADING=1 and READY=1 leave StatusText alone (only STATUS= changes it); RELOADING=1 puts the
        unit in ActiveState=reloading, SubState=reload, until READY=1; an unsolicited reload (not by
        systemctl reload) leaves no line in the journal; systemctl status shows Status: "TEXT"."""
        self.svc("f-st.service", "send READY=1\\nSTATUS=first sleep 0.5 send RELOADING=1 sleep 1 "
                 "send READY=1")
        self.reload_units()
        self.start("f-st.service")
        wait(lambda: self.prop("f-st.service", "ActiveState") == "reloading", 5)
        assert self.prop("f-st.service", "SubState") == "reload"
        assert self.prop("f-st.service", "StatusText") == "first"
        wait(lambda: self.prop("f-st.service", "ActiveState") == "active", 5)
        assert self.prop("f-st.service", "StatusText") == "first"
        assert 'Status: "first"' in self.sh("systemctl status --no-pager f-st.service")
        assert not [m for m in self.log("f-st.service") if "eload" in m and "sent" not in m]

    def reload_waits_for_ready(self):
        """systemctl reload waits for ExecReload= to exit and, when RELOADING=1 came before that, for
        READY=1 -- also when ExecReload= failed (then 'Reload failed for', exit 1) and long after
        TimeoutStartSec= ('Reload operation timed out. Killing reload process.', the state stays
        reloading; exit 1 once READY=1 came)."""
        hup = "ExecReload=/bin/sh -c 'kill -HUP $MAINPID; sleep 0.5; exit %d'"
        self.svc("f-r0.service", "send READY=1 hup-reload 2", hup % 0)
        self.svc("f-r1.service", "send READY=1 hup-reload 2", hup % 1)
        self.svc("f-rt.service", "send READY=1 hup-reload 5", hup % 0, "TimeoutStartSec=2")
        self.reload_units()
        self.start("f-r0.service", "f-r1.service", "f-rt.service")
        for unit, rc, least in (("f-r0.service", 0, 1.9), ("f-r1.service", 1, 1.9),
                                ("f-rt.service", 1, 4.9)):
            t = time.monotonic()
            p = subprocess.Popen(["nsenter", "-t", str(self.c.leader), "-a", "systemctl", "reload",
                                  unit], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if unit == "f-rt.service":      # past TimeoutStartSec=2, still reloading
                time.sleep(3)
                assert self.prop(unit, "ActiveState") == "reloading"
            r = p.wait(30)
            took = time.monotonic() - t
            assert r == rc and took >= least, (unit, r, took)
        self.wait_log("f-r1.service", r"^Reload failed for")
        self.wait_log("f-rt.service", r"Reload operation timed out\. Killing reload process\.")

    def journal_stream(self):
        """stdout and stderr are one stream; '<N>' at a line's start is its PRIORITY (stripped), else
        6; SYSLOG_IDENTIFIER is ExecStart's argv[0] basename; _PID is the pid of the process that wrote
        the line, also for a child writing to the inherited stream."""
        with open(os.path.join(self.c.build, "f-j.sh"), "w") as f:
            f.write('echo "<3>err on stdout"\necho "<4>warning on stderr" >&2\necho plain\n'
                    "sh -c 'echo child $$'\n")
        self.unit("f-j.service", ["[Service]", "Type=oneshot", "ExecStart=/bin/sh /opt/hw/f-j.sh"])
        self.reload_units()
        self.start("f-j.service")
        got = {}
        for e in self.c.journal("f-j.service"):
            if e.get("_TRANSPORT") == "stdout":
                got[e["MESSAGE"]] = (e.get("PRIORITY"), e.get("SYSLOG_IDENTIFIER"), e.get("_PID"))
        assert got["err on stdout"][:2] == ("3", "sh"), got
        assert got["warning on stderr"][0] == "4" and got["plain"][0] == "6", got
        child = [k for k in got if k.startswith("child ")][0]
        assert got[child][2] == child.split()[1] != got["plain"][2], got

    def unknown_in_252(self):
        """Type=notify-reload is not known (the unit falls back to Type=simple); nor is
        FileDescriptorStorePreserve=."""
        self.unit("f-u.service", ["[Service]", "Type=notify-reload", "FileDescriptorStorePreserve=yes",
                                  "ExecStart=/bin/true"])
        self.reload_units()
        assert self.prop("f-u.service", "Type") == "simple"
        out = self.sh("journalctl -b --no-pager -o cat")
        assert "Failed to parse service type, ignoring: notify-reload" in out
        assert "Unknown key 'FileDescriptorStorePreserve'" in out or \
            "Unknown key name 'FileDescriptorStorePreserve'" in out


def wait(pred, timeout=10):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %gs" % timeout)
        time.sleep(0.05)


def main():
    global VERBOSE
    args = sys.argv[1:]
    VERBOSE = "-v" in args
    names = [a for a in args if a != "-v"]
    why = nspawn.boot_problem()
    if why:
        print("sd_facts: cannot run: %s" % why)
        return 1
    c = nspawn.Container("hwfacts")
    shutil.copy(os.path.join(HERE, "sd_probe.py"), c.build)
    failed = 0
    try:
        c.boot()
        print("systemd %s booted in %.1fs" % (c.check(["systemctl", "--version"]).split()[1],
                                               c.boot_seconds))
        f = Facts(c)
        todo = [n for n in dir(Facts) if not n.startswith("_") and getattr(Facts, n).__doc__
                and n not in ("unit", "reload_units", "sh", "prop", "log", "wait_log", "field", "svc",
                              "start")]
        for name in sorted(todo, key=lambda n: getattr(Facts, n).__code__.co_firstlineno):
            if names and name not in names:
                continue
            t = time.monotonic()
            try:
                getattr(f, name)()
                print("ok   %s (%.1fs)" % (name, time.monotonic() - t))
            except Exception as e:
                failed += 1
                print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
            if VERBOSE:
                print("     " + " ".join(getattr(Facts, name).__doc__.split()))
    except nspawn.BootError as e:
        print("sd_facts: cannot boot: %s" % e)
        failed += 1
    finally:
        problems = c.shutdown()
        if problems:
            print("sd_facts: left behind: %s" % "; ".join(problems))
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
