"""End to end: the README's recipes, run as written with real servers, reloaded under load (issue 13).

Each recipe is the `hupwatch ...` command of its `### ` section under `## Recipes` in README.md, taken
from there (and looked for in hupwatch.1's EXAMPLES), with /srv/app and port 8000 replaced by the test's
own; the server's files are those of test/recipes/<dir>/, and the README's snippets of them must be
lines of those files. So what the README says is what was run.

For each recipe the test lays out releases/1..4 and a broken release under a temp dir, with current ->
releases/1, starts hupwatch, and sends load the whole time (every request counted: refused, reset,
closed, timed out, non-200). Then, as a deploy does: swap `current`, `hupwatch --reload -S STATUS`.
Releases 2, 3 and 4 must reload with exit 0, their old generation must exit 0 after its drain, and
then only the new version answers; the broken release (its app fails to load) must fail the reload with
exit 1 while the previous one goes on answering. At the end: 0 failed requests, and hupwatch -k exits 0
on TERM.

A server's Debian packages are installed when missing and we are root (outside the per-test timeout);
the test is skipped only when that is impossible, saying why.
"""

import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from e2e import ClassifiedLoad, read_status
from harness import HUPWATCH, ROOT, Hupwatch, free_port, wait_for

README = os.path.join(ROOT, "README.md")
MANPAGE = os.path.join(ROOT, "hupwatch.1")
RECIPES = os.path.join(ROOT, "test", "recipes")

PLAN = ["2", "broken", "3", "4"]     # what is deployed after release 1, in order
ANSWERS = 20                         # answers that must come from the new release after each reload


# ---------------------------------------------------------------- packages

def ensure_packages(packages, programs):
    """None when every program is on PATH (installing the Debian packages if needed and possible),
    else why not."""
    def missing():
        out = [p for p in programs if not shutil.which(p)]
        if shutil.which("dpkg-query"):      # a plugin or a Python module is no program: ask dpkg
            for pkg in packages:
                r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                if not r.stdout.endswith(" installed"):
                    out.append(pkg)
        return out
    if not missing():
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "not installed: %s (as root: apt-get install %s)" % (" ".join(missing()),
                                                                      " ".join(packages))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + packages
    out = ""
    try:
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=600)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=600)
            r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=600)
        out = r.stdout
    except subprocess.TimeoutExpired:
        return "apt-get install %s timed out" % " ".join(packages)
    if missing():
        return "apt-get install %s failed: %s" % (" ".join(packages), out[-500:])
    return None


# ---------------------------------------------------------------- README and man page

def readme_sections():
    """{heading: text} of the `### ` sections under `## Recipes` in README.md."""
    with open(README) as f:
        text = f.read()
    if "\n## Recipes\n" not in text:
        raise AssertionError("README.md has no '## Recipes' section")
    part = text.split("\n## Recipes\n", 1)[1].split("\n## ", 1)[0]
    pieces = re.split(r"^### (.+)$", part, flags=re.M)
    return dict(zip(pieces[1::2], pieces[2::2]))


def code_blocks(text):
    """[(language, body)] of the fenced code blocks in text."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S)


def one_line(command):
    """A shell command with its backslash-newline continuations joined and spaces collapsed."""
    return " ".join(command.replace("\\\n", " ").split())


def recipe(heading_start):
    """(heading, the `hupwatch ...` command as one line, section text) of a README recipe."""
    for heading, text in readme_sections().items():
        if heading.startswith(heading_start):
            commands = [b for lang, b in code_blocks(text)
                        if lang == "sh" and b.startswith("hupwatch ")]
            if len(commands) != 1:
                raise AssertionError("README section %r: want one ```sh block starting with "
                                     "'hupwatch ', have %d" % (heading, len(commands)))
            return heading, one_line(commands[0]), text
    raise AssertionError("README.md has no recipe section starting with %r" % heading_start)


def manpage_commands():
    """The literal blocks of hupwatch.1, each as one line (\\e is a backslash there)."""
    with open(MANPAGE) as f:
        text = f.read()
    blocks = re.findall(r"^\.Bd -literal[^\n]*\n(.*?)^\.Ed$", text, flags=re.M | re.S)
    return [one_line(b.replace("\\e", "\\")) for b in blocks]


# ---------------------------------------------------------------- load

class RecipeLoad(ClassifiedLoad):
    """answers: (start time, version) of each 200 answer 'version=V ...', in the order they arrived."""

    ANSWER = re.compile(r"^version=(\S+) gen=\d+ pid=\d+$")
    TIMEOUT = 5

    def started_after(self, t, n=ANSWERS, timeout=15):
        """Versions of the first n answers to requests started after monotonic time t (waits)."""
        def enough():
            with self._lock:
                got = [v for t0, v in self.answers if t0 > t]
            return got[:n] if len(got) >= n else None
        return wait_for(enough, timeout, "%d answers (failures so far: %r %r)"
                        % (n, dict(self.failures), self.errors[:3]))


# ---------------------------------------------------------------- the test

class RecipesTest(unittest.TestCase):
    """One test per README recipe; see the module docstring."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="recipes-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.srv = os.path.join(self.tmp, "srv", "app")
        self.port = free_port()

    def need(self, packages, programs):
        why = ensure_packages(packages, programs)
        if why:
            self.skipTest(why)

    # -- the recipe as written

    def localize(self, text):
        """The README's /srv/app and port 8000 are the test's own."""
        return text.replace("/srv/app", self.srv).replace("127.0.0.1:8000",
                                                          "127.0.0.1:%d" % self.port)

    def check_docs(self, heading, command, text, files):
        """The command is in the man page too; every line of the README's snippets of the server's
        files (a block whose first line is a comment naming the file) is a line of that file."""
        self.assertIn(command, manpage_commands(),
                      "the README recipe %r is not in hupwatch.1's EXAMPLES as written" % heading)
        for lang, block in code_blocks(text):
            lines = block.splitlines()
            m = re.match(r"^(?:#|//) (\S+)", lines[0]) if lines else None
            if lang == "sh" or not m:
                continue
            path = os.path.join(files, m.group(1))
            if not os.path.exists(path):
                others = glob.glob(os.path.join(RECIPES, "*", m.group(1)))
                self.assertEqual(len(others), 1, "README %r shows %s: the test has %r"
                                 % (heading, m.group(1), others))
                path = others[0]
            with open(path) as f:
                have = {l.strip() for l in f}
            for line in lines[1:]:
                if line.strip():
                    self.assertIn(line.strip(), have, "README %r: a line of %s that the tested "
                                  "file does not have" % (heading, m.group(1)))

    def make_releases(self, files, broken, prepare=None):
        """releases/{1,2,3,4,broken}, each a copy of `files` with its VERSION (the broken one with
        broken = (file, text) written over one file), current -> releases/1, shared/."""
        for name in ["1"] + PLAN:
            d = os.path.join(self.srv, "releases", name)
            shutil.copytree(files, d)
            with open(os.path.join(d, "VERSION"), "w") as f:
                f.write(name + "\n")
            if prepare:
                prepare(d, name)
            if name == "broken":
                with open(os.path.join(d, broken[0]), "w") as f:
                    f.write(broken[1])
        os.makedirs(os.path.join(self.srv, "shared"))
        os.symlink("releases/1", os.path.join(self.srv, "current"))

    def swap(self, target):
        subprocess.run("ln -sfn '%s' current.new && mv -T current.new current" % target,
                       shell=True, cwd=self.srv, check=True)

    def reload(self, status_file):
        r = subprocess.run([HUPWATCH, "--reload", "-S", status_file, "-t", "20"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=30)
        return r.returncode, r.stdout + r.stderr

    def run_recipe(self, heading_start, files, broken, prepare=None, load_port=None, before=None):
        """Run the README recipe whose heading starts with heading_start; see the module docstring.
        files: test/recipes/<dir>; broken: (file, text) that breaks a release; prepare(dir, name):
        more per-release set-up; load_port: where the load goes (default: hupwatch's port);
        before(): called once the releases exist, before hupwatch starts (e.g. a front server)."""
        t_start = time.monotonic()
        files = os.path.join(RECIPES, files)
        heading, command, text = recipe(heading_start)
        self.check_docs(heading, command, text, files)
        argv = [self.localize(a) for a in shlex.split(command)]
        self.assertEqual(argv[0], "hupwatch")
        sep = argv.index("--")
        opts, cmd = argv[1:sep], argv[sep + 1:]
        status_file = opts[opts.index("--status-file") + 1]

        self.make_releases(files, broken, prepare)
        if before:
            before()
        hw = Hupwatch(opts, cmd, cwd=self.srv)
        self.addCleanup(hw.cleanup)
        ready = r"\bgen %s pid (\d+) ready after [\d.]+s \((.+)\)"
        how = "READY=1" if "--notify" in opts else "ready-cmd"
        m = hw.wait_log(ready % 1, timeout=20)
        self.assertEqual(m.group(2), how, "generation 1's readiness")
        old_pid = int(m.group(1))
        load = RecipeLoad(load_port or self.port).start()
        self.addCleanup(load.stop)
        self.assertEqual(set(load.started_after(0)), {"1"})

        good, timings = "1", []
        for name in PLAN:
            t0 = time.monotonic()
            self.swap("releases/" + name)
            rc, out = self.reload(status_file)
            if name == "broken":
                self.assertEqual(rc, 1, "--reload to a broken release: %s\n%s" % (out, hw.stderr()))
                self.swap("releases/" + good)      # what a deploy does next: the symlink back
                self.assertEqual(set(load.started_after(time.monotonic())), {good},
                                 "answers after the broken release failed")
                timings.append("broken %.1fs" % (time.monotonic() - t0))
                continue
            self.assertEqual(rc, 0, "--reload to release %s: %s\n%s" % (name, out, hw.stderr()))
            m = hw.wait_log(r"\bgen \d+ pid %d (exited with status \d+|killed by \S+) after "
                            r"draining" % old_pid, timeout=20)
            self.assertEqual(m.group(1), "exited with status 0",
                             "the old generation's end\n" + hw.stderr()[-3000:])
            self.assertEqual(set(load.started_after(time.monotonic())), {name},
                             "answers after release %s's reload, once the old one exited" % name)
            st = read_status(status_file)
            self.assertEqual(hw.wait_log(ready % st["generation"]).group(2), how)
            old_pid = int(st["generation_pid"])
            good = name
            timings.append("%s %.1fs" % (name, time.monotonic() - t0))

        load.stop()
        self.assertEqual((dict(load.failures), load.errors[:10]), ({}, []),
                         "failed requests (%d answered)" % len(load.answers))
        self.assertNotIn("broken", {v for _, v in load.answers})
        self.assertEqual(hw.log_matches(r"\berror: (?!gen \d+ failed: )"), [],
                         "hupwatch logged errors other than the broken release's")
        hw.signal("TERM")
        self.assertEqual(hw.wait_exit(20), 0, hw.stderr()[-3000:])
        sys.stderr.write("[%s: %d answers, 0 failed; reloads: %s; %.1fs] "
                         % (heading_start, len(load.answers), ", ".join(timings),
                            time.monotonic() - t_start))

    # -- the recipes

    def test_uwsgi(self):
        self.need(["uwsgi", "uwsgi-plugin-python3"], ["uwsgi"])
        self.run_recipe("uWSGI", "wsgi", ("app.py", "raise RuntimeError('a broken release')\n"))

    def test_gunicorn_uvicorn(self):
        self.need(["gunicorn", "python3-uvicorn"], ["gunicorn"])
        self.run_recipe("gunicorn with uvicorn", "asgi",
                        ("app.py", "raise RuntimeError('a broken release')\n"))

    def test_puma(self):
        self.need(["puma", "ruby-sd-notify"], ["puma"])
        self.run_recipe("puma", "puma", ("config.ru", "raise 'a broken release'\n"))

    def test_node(self):
        self.need(["nodejs", "curl"], ["node", "curl"])
        self.run_recipe("Node", "node", ("server.js", "throw new Error('a broken release');\n"))

    def test_lighttpd(self):
        self.need(["lighttpd", "curl"], ["lighttpd", "curl"])

        def prepare(d, name):
            with open(os.path.join(d, "index.txt"), "w") as f:
                f.write("version=%s gen=0 pid=0\n" % name)
            conf = os.path.join(d, "lighttpd.conf")
            with open(conf) as f:
                text = f.read()
            with open(conf, "w") as f:
                f.write(text.replace("server.port = 8000", "server.port = %d" % self.port))
        self.run_recipe("lighttpd", "lighttpd", ("lighttpd.conf", "this is not a config\n"),
                        prepare=prepare)

    def test_nginx_unix_socket(self):
        help_text = subprocess.run([HUPWATCH, "--help"], stdout=subprocess.PIPE, text=True).stdout
        if "--socket-mode" not in help_text:
            self.skipTest("needs --socket-mode (issue 13)")
        self.need(["nginx-light", "gunicorn"], ["nginx", "gunicorn"])
        try:
            pwd.getpwnam("www-data")
        except KeyError:
            self.skipTest("no user www-data for nginx's workers")
        if os.geteuid() != 0:
            self.skipTest("nginx's workers run as www-data: needs root")
        front = free_port()
        prefix = os.path.join(self.tmp, "nginx")
        # www-data must reach the socket: every directory on the way searchable.
        os.chmod(self.tmp, 0o755)

        def start_nginx():
            os.makedirs(os.path.join(prefix, "tmp"))
            with open(os.path.join(RECIPES, "nginx", "nginx.conf")) as f:
                conf = self.localize(f.read()).replace("127.0.0.1:8080", "127.0.0.1:%d" % front)
            with open(os.path.join(prefix, "nginx.conf"), "w") as f:
                f.write(conf)
            log = open(os.path.join(prefix, "nginx.log"), "wb")
            self.addCleanup(log.close)
            nginx = subprocess.Popen(["nginx", "-p", prefix, "-e", "stderr", "-c", "nginx.conf"],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

            def stop_nginx():
                if nginx.poll() is None:
                    os.killpg(nginx.pid, signal.SIGTERM)
                    try:
                        nginx.wait(10)
                    except subprocess.TimeoutExpired:
                        os.killpg(nginx.pid, signal.SIGKILL)
                        nginx.wait(5)
            self.addCleanup(stop_nginx)

            def listening():
                if nginx.poll() is not None:
                    raise AssertionError("nginx exited %s: %s" % (
                        nginx.returncode, open(os.path.join(prefix, "nginx.log")).read()[-2000:]))
                try:
                    socket.create_connection(("127.0.0.1", front), timeout=1).close()
                    return True
                except OSError:
                    return False
            wait_for(listening, 10, "nginx listening on 127.0.0.1:%d" % front)

        self.run_recipe("nginx", "wsgi", ("app.py", "raise RuntimeError('a broken release')\n"),
                        load_port=front, before=start_nginx)


if __name__ == "__main__":
    unittest.main()
