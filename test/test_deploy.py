"""End to end: symlink deploys and rollbacks the way fabric or Ansible do them, under load.

    releases/1  releases/2  ...  current -> releases/N
    ln -sfn releases/N current.tmp && mv -T current.tmp current     (atomic swap)
    hupwatch --reload -S STATUS                                      (0: N serves; 1: N failed, old serves)

Real gunicorn, behind hupwatch --listen --notify, answering with its release name (test/e2e_app.py).
A load client runs through the whole test and must see zero failed requests, and never an answer from
a broken release. The second test runs examples/ansible/deploy.yml against two local "hosts".
"""

import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import unittest

from e2e import APP, read_status
from harness import HUPWATCH, ROOT, Hupwatch, free_port, http_get, pid_alive, wait_for

PLAYBOOK = os.path.join(ROOT, "examples", "ansible", "deploy.yml")

# How a release of the deploy test starts. hupwatch runs the relative command ./run.sh in whatever
# release `current` points to at each reload; --chdir "$(pwd -P)" pins gunicorn to that release (its
# default follows $PWD, the symlink); --preload imports the app before gunicorn says READY=1.
RUN_SH = """#!/bin/sh
exec gunicorn --preload -w 2 --chdir "$(pwd -P)" app:application
"""


# sh -c script: run "$@" where /usr and /var are overlays on a tmpfs at $1 (a private mount namespace
# is unshare's part), then report what was installed in there.
ISOLATED = r"""
set -e
t=$1
shift
mount -t tmpfs tmpfs "$t"
for d in usr var; do
    mkdir "$t/$d.upper" "$t/$d.work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$t/$d.upper,workdir=$t/$d.work" "/$d"
done
set +e
"$@"
rc=$?
echo "isolated: $(/usr/bin/hupwatch --version 2>&1); $(dpkg-query -W -f='${Version} ${Status}' hupwatch 2>&1)"
exit $rc
"""


def make_release(root, name, release, run_sh=True, marker=None):
    """root/releases/NAME: the app, a RELEASE file, ./run.sh unless told not to, a marker file
    (E2E_APP_BROKEN, E2E_APP_HANG) to break it."""
    d = os.path.join(root, "releases", name)
    os.makedirs(d)
    shutil.copy(APP, os.path.join(d, "app.py"))
    with open(os.path.join(d, "RELEASE"), "w") as f:
        f.write(release + "\n")
    if run_sh:
        with open(os.path.join(d, "run.sh"), "w") as f:
            f.write(RUN_SH)
        os.chmod(os.path.join(d, "run.sh"), 0o755)
    if marker:
        open(os.path.join(d, marker), "w").close()
    return d


def swap(root, target):
    """Point root/current at target atomically, as a deploy tool does."""
    subprocess.run("ln -sfn '%s' current.tmp && mv -T current.tmp current" % target, shell=True,
                   cwd=root, check=True)


def reload(status_file, timeout=30):
    """hupwatch --reload: (exit status, stdout, stderr)."""
    r = subprocess.run([HUPWATCH, "--reload", "-S", status_file, "-t", str(timeout)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout + 10)
    return r.returncode, r.stdout, r.stderr


class ReleaseLoad:
    """Threads sending back-to-back requests; records which release answered each, in order."""

    ANSWER = re.compile(r"^release=(\S+) gen=(\d+) pid=(\d+)$")

    def __init__(self, port, threads=4):
        self.port = port
        self.answers = []       # release names, in the order the answers arrived
        self.errors = []
        self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self):
        while not self._stop.is_set():
            try:
                status, body = http_get("127.0.0.1", self.port, timeout=5)
                m = self.ANSWER.match(body.strip())
                if status != 200 or not m:
                    raise ValueError("HTTP %d %r" % (status, body[:100]))
            except (OSError, ValueError) as e:
                with self._lock:
                    self.failed += 1
                    self.errors.append("%s: %s" % (type(e).__name__, e))
                continue
            with self._lock:
                self.answers.append(m.group(1))

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(10)

    def mark(self):
        with self._lock:
            return len(self.answers)

    def since(self, mark):
        with self._lock:
            return list(self.answers[mark:])

    def wait_more(self, mark, n=20, timeout=20):
        wait_for(lambda: len(self.since(mark)) >= n, timeout,
                 "%d answers (failed so far: %d %r)" % (n, self.failed, self.errors[:3]))
        return self.since(mark)


def missing(*programs):
    return [p for p in programs if shutil.which(p) is None]


@unittest.skipIf(missing("gunicorn"), "gunicorn not installed (test/deps.sh installs it)")
class DeployTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hupwatch-deploy-")
        self.hosts, self.loads = {}, {}
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def start_load(self, port, threads=4):
        load = ReleaseLoad(port, threads).start()
        self.addCleanup(load.stop)
        return load

    def assert_serves(self, hw, load, release, old_gen_pid):
        """After a successful reload: the old generation drains, then only `release` answers."""
        hw.wait_log(r"info: gen \d+ pid %d exited with status 0 after draining" % old_gen_pid,
                    timeout=30)
        answers = load.wait_more(load.mark())
        self.assertEqual(set(answers), {release}, "answers after the old generation exited")

    def test_deploy_broken_releases_and_rollback(self):
        root = os.path.join(self.tmp, "app")
        make_release(root, "1", "1")
        make_release(root, "2", "2")
        broken = [
            # (release dir, what breaks it, the reason --reload and the log give)
            (make_release(root, "3-missing", "3", run_sh=False),
             r"cannot execute '\./run\.sh': No such file or directory"),
            (make_release(root, "3-crash", "3", marker="E2E_APP_BROKEN"),
             r"exited with status [1-9]\d* before ready"),
            (make_release(root, "3-hang", "3", marker="E2E_APP_HANG"),
             r"not ready after \d+\.\d\ds"),
        ]
        os.makedirs(os.path.join(root, "shared"))
        os.symlink("releases/1", os.path.join(root, "current"))
        status_file = os.path.join(root, "shared", "hupwatch.status")
        port = free_port()

        # cwd is `current`; the harness sets PWD to that path, the symlink, as a shell's cd would.
        # --ready-timeout: ample for gunicorn on a busy machine, and the wait of the "hang" release.
        hw = Hupwatch(["-k", "--listen", "127.0.0.1:%d" % port, "--notify", "--ready-timeout", "12",
                       "--status-file", status_file], ["./run.sh"], cwd=os.path.join(root, "current"))
        self.addCleanup(hw.cleanup)
        gen_pid = int(hw.wait_log(r"gen 1 pid (\d+) ready after .*\(READY=1\)", timeout=30).group(1))
        load = self.start_load(port)
        self.assertEqual(set(load.wait_more(0)), {"1"})

        # Deploy release 2.
        swap(root, "releases/2")
        rc, out, err = reload(status_file)
        self.assertEqual(rc, 0, "hupwatch --reload after the swap to 2: %s%s\n%s"
                         % (out, err, hw.stderr()))
        self.assertTrue(out.strip(), "--reload prints the new generation on success")
        st = read_status(status_file)
        self.assertEqual((st["generation"], st["reload_state"]), ("2", "succeeded"))
        self.assert_serves(hw, load, "2", gen_pid)
        gen_pid = int(st["generation_pid"])

        # Broken releases: --reload fails, release 2 serves on, no request fails, 3 never answers.
        for k, (path, reason) in enumerate(broken, start=2):
            with self.subTest(release=os.path.basename(path)):
                mark = load.mark()
                swap(root, os.path.relpath(path, root))
                rc, out, err = reload(status_file)
                self.assertEqual(rc, 1, "hupwatch --reload to broken %s: %s%s\n%s"
                                 % (path, out, err, hw.stderr()))
                self.assertRegex(err, reason)
                st = read_status(status_file)
                self.assertEqual((st["reload"], st["reload_state"], st["generation"],
                                  st["generation_pid"]),
                                 (str(k), "failed", "2", str(gen_pid)), st)
                self.assertRegex(st["reload_reason"], reason)
                hw.wait_log(r"error: gen %s failed: .*; gen 2 stays current" % st["reload_generation"])
                self.assertTrue(hw.running())
                answers = load.wait_more(mark)
                self.assertEqual(set(answers), {"2"}, "answers while and after %s failed" % path)
                # The failed generation is gone, nothing of it left running.
                m = hw.log_matches(r"gen %s pid (\d+) started" % st["reload_generation"])
                if m:
                    failed_pid = int(m[0].group(1))
                    wait_for(lambda: not pid_alive(failed_pid), 15,
                             "failed generation pid %d to be gone" % failed_pid)
                # What a deploy tool does next: put the symlink back.
                swap(root, "releases/2")

        # Roll back to release 1.
        swap(root, "releases/1")
        rc, out, err = reload(status_file)
        self.assertEqual(rc, 0, "hupwatch --reload after the swap back to 1: %s%s\n%s"
                         % (out, err, hw.stderr()))
        st = read_status(status_file)
        self.assertEqual((st["reload"], st["reload_state"], st["generation"]), ("5", "succeeded", "6"))
        self.assert_serves(hw, load, "1", gen_pid)

        load.stop()
        self.assertEqual(load.failed, 0, "failed requests: %r" % load.errors[:10])
        self.assertNotIn("3", load.answers, "a broken release answered")
        self.assertEqual(load.answers[0], "1")
        self.assertEqual(set(load.answers), {"1", "2"})

        hw.signal("TERM")
        self.assertEqual(hw.wait_exit(30), 0, hw.stderr())

    # ---------------------------------------------------------------- examples/ansible/deploy.yml

    def start_fleet(self, reload_client=HUPWATCH, names=("h1", "h2")):
        """Local "hosts" (two by default), each with its own app_root at release 1 and its own hupwatch running the
        command of examples/supervisord.conf, runit/run and hupwatch.service; an inventory for them,
        whose `hupwatch` (the reload client) is reload_client (None: the playbook's default)."""
        self.hosts = {}
        for name in names:
            root = os.path.join(self.tmp, name, "app")
            make_release(root, "1", "1", run_sh=False)
            os.makedirs(os.path.join(root, "shared"))
            os.symlink("releases/1", os.path.join(root, "current"))
            port = free_port()
            status_file = os.path.join(root, "shared", "hupwatch.status")
            hw = Hupwatch(["-k", "-T", "30", "--listen", "127.0.0.1:%d" % port, "--notify",
                           "--ready-timeout", "20", "--chdir", os.path.join(root, "current"),
                           "--status-file", status_file],
                          ["gunicorn", "--preload", "-w", "2", "app:application"])
            self.addCleanup(hw.cleanup)
            gen = int(hw.wait_log(r"gen 1 pid (\d+) ready after .*\(READY=1\)", timeout=30).group(1))
            self.hosts[name] = dict(root=root, port=port, status=status_file, hw=hw, gen=gen)
        self.inventory = os.path.join(self.tmp, "inventory.ini")
        with open(self.inventory, "w") as f:
            f.write("[app]\n")
            for name, h in self.hosts.items():
                f.write("%s ansible_connection=local ansible_python_interpreter=/usr/bin/python3 "
                        "app_root=%s reload_timeout=30%s\n"
                        % (name, h["root"], " hupwatch=" + reload_client if reload_client else ""))
        # One client per host: enough to catch a refused or failed request, light enough to leave
        # the CPU to ansible-playbook.
        self.loads = {name: self.start_load(h["port"], threads=1) for name, h in self.hosts.items()}
        for load in self.loads.values():
            self.assertEqual(set(load.wait_more(0)), {"1"})

    def playbook(self, release, marker=None, extra=(), isolated=False):
        """Build app-RELEASE.tar.gz (broken by marker if given) and run deploy.yml with it, and the
        extra arguments. isolated: in a mount namespace of its own where /usr and /var are
        overlays on tmpfs, so that what the play installs is gone with it; the output's last line
        then says what /usr/bin/hupwatch and dpkg said in there."""
        art = os.path.join(self.tmp, "artifacts")
        src = make_release(art, release, release, run_sh=False, marker=marker)
        artifact = os.path.join(art, "app-%s.tar.gz" % release)
        with tarfile.open(artifact, "w:gz") as tar:
            for f in sorted(os.listdir(src)):
                tar.add(os.path.join(src, f), arcname=f)
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
                   ANSIBLE_LOCAL_TEMP=os.path.join(self.tmp, "ansible-local"),
                   ANSIBLE_REMOTE_TEMP=os.path.join(self.tmp, "ansible-remote"),
                   ANSIBLE_CONFIG=os.path.join(self.tmp, "no-ansible.cfg"))
        argv = ["ansible-playbook", "-i", self.inventory, PLAYBOOK,
                "-e", "release=%s" % release, "-e", "artifact=%s" % artifact] + list(extra)
        if isolated:
            scratch = tempfile.mkdtemp(prefix="overlay-", dir=self.tmp)
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", ISOLATED,
                    "isolated", scratch] + argv
        r = subprocess.run(argv,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=env, cwd=self.tmp, timeout=50)
        return r.returncode, r.stdout

    def stop_fleet(self, release):
        for name, load in self.loads.items():
            load.stop()
            self.assertEqual(load.failed, 0, "%s: failed requests: %r" % (name, load.errors[:10]))
            self.assertEqual(load.answers[-1], release, name)
        for h in self.hosts.values():
            self.assertTrue(h["hw"].running())
            h["hw"].signal(signal.SIGTERM)
            self.assertEqual(h["hw"].wait_exit(30), 0, h["hw"].stderr())

    @unittest.skipIf(missing("ansible-playbook"), "ansible-playbook not installed (Debian ansible-core)")
    def test_ansible_playbook_rolls_a_release_one_host_at_a_time(self):
        self.start_fleet()
        rc, out = self.playbook("2")
        self.assertEqual(rc, 0, out)
        lines = out.splitlines()
        h1_done = max(i for i, l in enumerate(lines) if re.match(r"changed: \[h1\]", l))
        h2_first = min(i for i, l in enumerate(lines) if "[h2]" in l)
        self.assertLess(h1_done, h2_first, "serial: 1: h1 is done before h2 starts\n" + out)
        for name, h in self.hosts.items():
            self.assertEqual(os.readlink(os.path.join(h["root"], "current")), "releases/2")
            st = read_status(h["status"])
            self.assertEqual((st["reload"], st["reload_state"], st["generation"]),
                             ("1", "succeeded", "2"), (name, st))
            self.assert_serves(h["hw"], self.loads[name], "2", h["gen"])
        self.stop_fleet("2")

    @unittest.skipIf(missing("ansible-playbook"), "ansible-playbook not installed (Debian ansible-core)")
    def test_ansible_playbook_stops_at_the_first_failing_host(self):
        self.start_fleet()
        rc, out = self.playbook("3", marker="E2E_APP_BROKEN")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("release 3 did not come up on h1", out)
        h1, h2 = self.hosts["h1"], self.hosts["h2"]
        # h1: the reload failed, the old generation serves on, the symlink is back at release 1.
        self.assertEqual(os.readlink(os.path.join(h1["root"], "current")), "releases/1", out)
        st = read_status(h1["status"])
        self.assertEqual((st["reload"], st["reload_state"], st["generation"], st["generation_pid"]),
                         ("1", "failed", "1", str(h1["gen"])), st)
        # h2: never touched.
        self.assertNotIn("[h2]", out, "no task ran on h2 after h1 failed")
        self.assertFalse(os.path.exists(os.path.join(h2["root"], "releases", "3")))
        self.assertEqual(os.readlink(os.path.join(h2["root"], "current")), "releases/1")
        self.assertEqual(read_status(h2["status"])["reload"], "0")
        for name, load in self.loads.items():
            self.assertEqual(set(load.wait_more(load.mark())), {"1"}, name)
            self.assertNotIn("3", load.answers, name)
        self.stop_fleet("1")

    def test_ansible_playbook_installs_the_deb(self):
        """-e hupwatch_deb=...: each host gets the package, and the reload runs its /usr/bin/hupwatch.
        Run where /usr and /var are throw-away overlays: this machine gets nothing installed."""
        why = self.isolation_unavailable()
        if why:
            self.skipTest(why)
        if os.path.lexists("/usr/bin/hupwatch"):
            self.skipTest("/usr/bin/hupwatch exists here: a reload by it would prove nothing")
        r = subprocess.run(["make", "-s", "-C", ROOT, "deb", "DEB_OUT=" + self.tmp],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout)
        deb = r.stdout.strip().splitlines()[-1]
        with open(os.path.join(ROOT, "hupwatch.c")) as f:
            version = re.search(r'^#define VERSION "([^"]+)"$', f.read(), re.M).group(1)

        # One host: installing with ansible's apt module takes seconds per host.
        self.start_fleet(reload_client=None, names=("h1",))     # the playbook's default client
        rc, out = self.playbook("2", extra=["-e", "hupwatch_deb=" + deb,
                                            "-e", "hupwatch_deb_become=false"], isolated=True)
        self.assertEqual(rc, 0, out)
        for name in self.hosts:
            self.assertRegex(out, r"TASK \[Install or upgrade it\][^\n]*\n(?:[^\n]*\n)*?changed: \[%s\]"
                             % name)
        self.assertIn("isolated: hupwatch %s (handover 1); %s-1 install ok installed" % (version, version),
                      out.splitlines()[-1])
        self.assertFalse(os.path.lexists("/usr/bin/hupwatch"), "the package escaped the overlay")
        for name, h in self.hosts.items():
            st = read_status(h["status"])
            self.assertEqual((st["reload"], st["reload_state"], st["generation"]),
                             ("1", "succeeded", "2"), (name, st))
            self.assert_serves(h["hw"], self.loads[name], "2", h["gen"])
        self.stop_fleet("2")

    def isolation_unavailable(self):
        """Why the play cannot run in a throw-away overlay of /usr and /var here (None: it can)."""
        if missing("ansible-playbook", "unshare", "dpkg-deb", "dpkg-shlibdeps", "dpkg-query"):
            return "needs ansible-playbook, unshare, dpkg-dev: %s missing" % " ".join(
                missing("ansible-playbook", "unshare", "dpkg-deb", "dpkg-shlibdeps", "dpkg-query"))
        if os.geteuid() != 0:
            return "mounting overlays needs root"
        r = subprocess.run(["/usr/bin/python3", "-c", "import apt, apt_pkg"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r.returncode != 0:
            return "ansible's apt module needs python3-apt"
        probe = tempfile.mkdtemp(prefix="overlay-probe-", dir=self.tmp)
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", ISOLATED,
                            "isolated", probe, "true"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        if r.returncode != 0:
            return "cannot mount an overlay in a private mount namespace: %s" % r.stdout[-300:]
        return None


if __name__ == "__main__":
    unittest.main()
