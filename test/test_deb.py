"""`make deb` (pkg/deb.sh): the Debian package builds, is lintian-clean, holds what it says, and its
binary runs once unpacked with `dpkg -x` into a scratch root (never installed on this machine).

dpkg-dev (dpkg-shlibdeps) and lintian are installed when missing and we are root (outside the
per-test timeout); otherwise the test is skipped, saying why.
"""

import gzip
import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

from harness import ROOT

PACKAGES = {"dpkg-shlibdeps": "dpkg-dev", "lintian": "lintian", "strip": "binutils"}


def ensure_tools():
    """None when dpkg-deb, dpkg-shlibdeps, lintian and strip are there (installed if possible)."""
    if not shutil.which("dpkg-deb"):
        return "not a Debian system (no dpkg-deb)"
    missing = [pkg for tool, pkg in PACKAGES.items() if not shutil.which(tool)]
    if not missing:
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "missing: %s (as root: apt-get install %s)" % (" ".join(missing), " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing
    try:
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=600)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=600)
            r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return "apt-get install %s timed out" % " ".join(missing)
    still = [pkg for tool, pkg in PACKAGES.items() if not shutil.which(tool)]
    return "apt-get install %s failed: %s" % (" ".join(still), r.stdout[-500:]) if still else None


def source_version():
    with open(os.path.join(ROOT, "hupwatch.c")) as f:
        return re.search(r'^#define VERSION "([^"]+)"$', f.read(), re.M).group(1)


def installed_size(root):
    """Installed-Size as dpkg-gencontrol computes it: files and symlinks in KiB rounded up, each
    directory (the top one too) 1."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        total += 1
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            total += (st.st_size + 1023) // 1024
    return total


class DebTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.why_not = ensure_tools()

    def setUp(self):
        if self.why_not:
            self.skipTest(self.why_not)
        self.tmp = tempfile.mkdtemp(prefix="recipes-deb-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def make_deb(self, out):
        r = subprocess.run(["make", "-s", "-C", ROOT, "deb", "DEB_OUT=" + out],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr, "", "make deb printed warnings")
        deb = r.stdout.strip().splitlines()[-1]
        self.assertTrue(os.path.isfile(deb), r.stdout)
        return deb

    def test_make_deb(self):
        version = source_version()
        arch = subprocess.run(["dpkg", "--print-architecture"], stdout=subprocess.PIPE,
                              text=True, check=True).stdout.strip()
        deb = self.make_deb(os.path.join(self.tmp, "a"))
        self.assertEqual(os.path.basename(deb), "hupwatch_%s-1_%s.deb" % (version, arch))

        # Same sources, same package, byte for byte.
        again = self.make_deb(os.path.join(self.tmp, "b"))
        with open(deb, "rb") as f1, open(again, "rb") as f2:
            self.assertEqual(f1.read(), f2.read(), "two builds of the same sources differ")

        # lintian: no error, no warning (as `lintian` is run by default; pedantic too).
        r = subprocess.run(["lintian", "--pedantic", deb], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=120)
        tags = [l for l in r.stdout.splitlines() if re.match(r"^[EWIPX]: ", l)]
        self.assertEqual((r.returncode, tags), (0, []), r.stdout)

        # Contents: paths, owners and modes.
        listing = subprocess.run(["dpkg-deb", "-c", deb], stdout=subprocess.PIPE, text=True,
                                 check=True).stdout.splitlines()
        entries = {}
        for line in listing:
            mode, owner, _size, _date, _time, path = line.split(None, 5)
            entries[path.lstrip(".")] = (mode, owner)
        files = {p: m for p, (m, _) in entries.items() if not p.endswith("/")}
        self.assertEqual(files, {
            "/usr/bin/hupwatch": "-rwxr-xr-x",
            "/usr/share/man/man1/hupwatch.1.gz": "-rw-r--r--",
            "/usr/share/doc/hupwatch/copyright": "-rw-r--r--",
            "/usr/share/doc/hupwatch/changelog.Debian.gz": "-rw-r--r--",
            "/usr/share/lintian/overrides/hupwatch": "-rw-r--r--",
        })
        self.assertEqual({o for _, o in entries.values()}, {"root/root"})
        self.assertEqual({m for p, (m, _) in entries.items() if p.endswith("/")}, {"drwxr-xr-x"})

        # Unpacked into a scratch root: the files, the fields, the binary.
        root = os.path.join(self.tmp, "root")
        subprocess.run(["dpkg", "-x", deb, root], check=True)
        field = lambda name: subprocess.run(["dpkg-deb", "-f", deb, name], stdout=subprocess.PIPE,
                                            text=True, check=True).stdout.strip()
        self.assertEqual((field("Package"), field("Version"), field("Architecture")),
                         ("hupwatch", version + "-1", arch))
        self.assertRegex(field("Depends"), r"^libc6 \(>= [0-9.]+\)$")
        self.assertEqual(field("Installed-Size"), str(installed_size(root)))

        man = os.path.join(root, "usr/share/man/man1/hupwatch.1.gz")
        with open(man, "rb") as f:
            head = f.read(10)
        self.assertEqual((head[3] & 0x08, head[4:8]), (0, b"\0\0\0\0"),
                         "gzip -n: no file name, no time stamp")
        with gzip.open(man, "rb") as f, open(os.path.join(ROOT, "hupwatch.1"), "rb") as g:
            self.assertEqual(f.read(), g.read())
        with open(os.path.join(root, "usr/share/doc/hupwatch/copyright")) as f:
            copyright = f.read()
        self.assertIn("License: Expat", copyright)
        self.assertIn(" THE SOFTWARE IS PROVIDED \"AS IS\"", copyright)
        with gzip.open(os.path.join(root, "usr/share/doc/hupwatch/changelog.Debian.gz"), "rt") as f:
            self.assertEqual(f.readline(), "hupwatch (%s-1) unstable; urgency=medium\n" % version)

        binary = os.path.join(root, "usr/bin/hupwatch")
        self.assertTrue(os.stat(binary).st_mode & stat.S_IXUSR)
        r = subprocess.run([binary, "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=10)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "hupwatch %s (handover 1)\n" % version, ""))
        r = subprocess.run(["file", "-b", binary], stdout=subprocess.PIPE, text=True) \
            if shutil.which("file") else None
        if r is not None:
            self.assertIn("stripped", r.stdout)
            self.assertNotIn("not stripped", r.stdout)


if __name__ == "__main__":
    unittest.main()
