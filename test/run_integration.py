#!/usr/bin/env python3
"""Run hupwatch's integration tests.

    python3 test/run_integration.py [-v] [-q] [--timeout S] [--no-build] [-k PATTERN]... [TEST]...

TEST is a file (test/test_core.py), a module name (test_core) or a dotted test name
(test_core.CoreTest.test_pid_file). Without TEST, every test/test_*.py runs.
-k PATTERN selects tests whose name contains PATTERN (or matches it as a glob), as in unittest.
Each test is stopped after --timeout seconds (default 60) and counted as failed.
The last line is always `integration: N passed, N failed, N skipped`; the exit status is 1 if any
test failed or errored, else 0.
"""

import argparse
import glob
import importlib.util
import os
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import harness  # noqa: E402


class TestTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise TestTimeout("test exceeded the per-test timeout of %gs" % Result.timeout)


class Result(unittest.TextTestResult):
    timeout = 60

    def startTest(self, test):
        self._t0 = time.monotonic()
        signal.signal(signal.SIGALRM, _on_alarm)
        # A test class may need longer (a supervisor's start seconds, say): `per_test_timeout`.
        signal.setitimer(signal.ITIMER_REAL, max(self.timeout, getattr(test, "per_test_timeout", 0)))
        super().startTest(test)

    def stopTest(self, test):
        signal.setitimer(signal.ITIMER_REAL, 0)
        # Safety net: a test that forgot its context manager must not leak processes.
        harness.cleanup_all()
        super().stopTest(test)
        if self.showAll:
            self.stream.writeln("    (%.2fs)" % (time.monotonic() - self._t0))


def build(targets):
    """Bring the binaries up to date with make when a Makefile knows them; never fatal."""
    makefile = os.path.join(ROOT, "Makefile")
    if not os.path.exists(makefile):
        if "test/child" in targets:
            child = os.path.join(HERE, "child")
            src = child + ".c"
            if not os.path.exists(child) or os.path.getmtime(src) > os.path.getmtime(child):
                subprocess.call(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra",
                                 "-Werror", "-o", child, src])
        return
    for target in targets:      # one at a time: a broken hupwatch.c must not stop test/child
        r = subprocess.run(["make", "-s", "-C", ROOT, target], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            sys.stderr.write("run_integration: warning: make %s failed; using what is there\n%s"
                             % (target, r.stdout))


def load_module(path):
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def collect(loader, names):
    suite = unittest.TestSuite()
    if not names:
        names = sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    for name in names:
        try:
            if name.endswith(".py") or os.path.sep in name:
                path = name if os.path.exists(name) else os.path.join(ROOT, name)
                suite.addTests(loader.loadTestsFromModule(load_module(os.path.abspath(path))))
            else:
                suite.addTests(loader.loadTestsFromName(name))
        except Exception as e:  # an unloadable file is a failure, not a crash of the runner
            suite.addTest(_LoadFailure(name, e))
    return suite


class _LoadFailure(unittest.TestCase):
    def __init__(self, name, exc):
        super().__init__("runTest")
        self._name, self._exc = name, exc

    def id(self):
        return "load:" + self._name

    def __str__(self):
        return "load %s" % self._name

    def runTest(self):
        raise AssertionError("cannot load %s: %s: %s"
                             % (self._name, type(self._exc).__name__, self._exc))


def main():
    ap = argparse.ArgumentParser(description="Run hupwatch integration tests.")
    ap.add_argument("tests", nargs="*", help="test files or names (default: test/test_*.py)")
    ap.add_argument("-k", dest="patterns", action="append", default=[],
                    help="only tests whose name contains PATTERN (repeatable)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("-q", "--quiet", action="store_true")
    ap.add_argument("--timeout", type=float, default=60, help="per-test timeout in seconds")
    ap.add_argument("--no-build", action="store_true", help="do not run make first")
    ap.add_argument("-f", "--failfast", action="store_true")
    opts = ap.parse_args()

    if not opts.no_build:
        build(["hupwatch", "test/child"])

    loader = unittest.TestLoader()
    if opts.patterns:
        loader.testNamePatterns = [p if any(c in p for c in "*?[") else "*%s*" % p
                                   for p in opts.patterns]
    suite = collect(loader, opts.tests)

    Result.timeout = opts.timeout
    verbosity = 2 if opts.verbose else (0 if opts.quiet else 1)
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=verbosity,
                                     resultclass=Result, failfast=opts.failfast)
    try:
        result = runner.run(suite)
    finally:
        harness.cleanup_all()
    # A test with failing subtests counts once: report the tests, not the subtests.
    def test_id(test):
        return getattr(test, "test_case", test).id()
    failed_ids = {test_id(t) for t, _ in result.failures + result.errors}
    failed_ids |= {test_id(t) for t in result.unexpectedSuccesses}
    skipped_ids = {test_id(t) for t, _ in result.skipped} - failed_ids
    failed, skipped = len(failed_ids), len(skipped_ids)
    passed = result.testsRun - failed - skipped - len(result.expectedFailures)
    if result.testsRun == 0:
        sys.stderr.write("run_integration: no test matched\n")
    print("integration: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
