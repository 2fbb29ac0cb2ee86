"""Golden-file tests: what users and deploy scripts read, compared whole with test/golden/.

    help.txt    `hupwatch --help` (and -h), byte for byte
    status.txt  the status file (-S) at each stage of a lifecycle: its keys in order, with the
                values that change from run to run (pids, start time, clock) replaced by <names>

A change to either is a change of interface: on a mismatch the test prints a diff. If the change is
intended, regenerate with `make golden` (UPDATE_GOLDEN=1 python3 test/run_integration.py
test/test_golden.py) and commit the new file with the change that caused it.
"""

import os
import re
import shlex
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CHILD, Hupwatch, Reports, assert_golden, wait_for, _starttime as proc_starttime  # noqa: E402


def status_lines(path):
    """The status file's lines as (key, value) pairs, in file order; [] if it is not there."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    return [tuple(l.split("=", 1)) if "=" in l else (l, None) for l in text.splitlines()]


class GoldenTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hw-golden-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.rep = Reports(os.path.join(self.tmp, "rep"))

    def test_help_output(self):
        with Hupwatch(["--help"], []) as long, Hupwatch(["-h"], []) as short:
            for hw in (long, short):
                self.assertEqual(hw.wait_exit(), 0, hw.stderr())
                hw.wait_output()
                self.assertEqual(hw.lines, [], "--help wrote to stderr")
            self.assertEqual(short.stdout(), long.stdout(), "-h and --help differ")
            out = long.stdout()
        assert_golden("help.txt", out)

    def test_status_file_layout(self):
        """The status file at every state and reload outcome, keys in order, values normalised."""
        sf = os.path.join(self.tmp, "hupwatch.status")
        d = shlex.quote(self.tmp)
        child = [CHILD, "--report", self.rep.dir]
        # gen 2 ignores SIGTERM, so that -k's shutdown stays in state=stopping until -T kills it;
        # gen 3 exits 3 before it is ready: a failed reload
        cmd = ["/bin/sh", "-c", 'case "$HUPWATCH_GENERATION" in 2) exec "$0" "$@" --ignore-term;; '
               '3) exec "$0" "$@" --exit 3;; *) exec "$0" "$@";; esac'] + child
        args = ["-k", "-T", "1", "-S", sf, "-c", "test -f %s/ready-$HUPWATCH_GENERATION" % d,
                "-i", "0.02", "-t", "5"]
        stages = []
        with Hupwatch(args, cmd) as hw:
            pids = {}       # pid -> what it stands for in the golden file

            def snapshot(stage, **want):
                """Wait until the status file has want's values, then record it normalised."""
                def matches():
                    lines = status_lines(sf)
                    have = dict(lines)
                    ok = lines and all(have.get(k) == str(v) for k, v in want.items())
                    return lines if ok else None
                lines = wait_for(matches, 10, "status file with %r (now %r)"
                                 % (want, status_lines(sf)))
                stages.append((stage, [(k, self.normalise(k, v, hw, pids)) for k, v in lines]))

            def ready(gen):
                open(os.path.join(self.tmp, "ready-%d" % gen), "w").close()

            def started(gen):
                pids[int(self.rep.wait_report(gen=gen)["pid"])] = "<gen %d pid>" % gen

            started(1)
            gen1 = next(p for p, name in pids.items() if name == "<gen 1 pid>")
            # a starting generation is in generations= at once: a successor after kill -9 finds it
            snapshot("starting: generation 1 not ready yet", state="starting",
                     generations="1:%d:%d:starting" % (gen1, proc_starttime(gen1)))
            ready(1)
            snapshot("running: generation 1 ready", state="running", generation=1)
            hw.signal("HUP")
            started(2)
            snapshot("reload 1 in progress", reload=1, reload_state="in-progress")
            ready(2)
            gen2 = next(p for p, name in pids.items() if name == "<gen 2 pid>")
            # once gen 1 is gone (it exits on TERM), so that the snapshot is one
            snapshot("reload 1 succeeded, generation 1 gone", reload=1, reload_state="succeeded",
                     generations="2:%d:%d:current" % (gen2, proc_starttime(gen2)))
            hw.signal("HUP")
            snapshot("reload 2 failed: generation 3 exited before ready", reload=2,
                     reload_state="failed")
            hw.signal("TERM")
            snapshot("stopping: SIGTERM with -k, generation 2 ignores it", state="stopping")
            self.assertEqual(hw.wait_exit(10), 137, hw.stderr())
            snapshot("exited: generation 2 killed after -T 1", state="exited")
        text = ("# The status file (-S) at each stage; values that vary from run to run are\n"
                "# <placeholders>. Written by test/test_golden.py (make golden).\n")
        for stage, lines in stages:
            text += "\n# %s\n" % stage
            text += "".join("%s=%s\n" % kv if kv[1] is not None else "%s\n" % kv[0]
                            for kv in lines)
        assert_golden("status.txt", text)

    @staticmethod
    def normalise(key, value, hw, pids):
        """value with what differs between runs replaced by a <name>; anything unexpected (a
        pid that is not hupwatch's or a generation's, a malformed time) is left as it is, so
        that the comparison shows it."""
        if value is None:
            return None
        if key == "pid" and value == str(hw.pid):
            return "<hupwatch pid>"
        if key == "starttime" and value == str(hw.starttime):
            return "<hupwatch starttime>"
        if key == "generation_pid" and value.isdigit() and int(value) in pids:
            return pids[int(value)]
        if key == "generations" and value:
            def one(item):
                m = re.fullmatch(r"(\d+):(\d+):(\d+):([a-z]+)", item)
                if not m or int(m.group(2)) not in pids:
                    return item
                return "%s:%s:<starttime>:%s" % (m.group(1), pids[int(m.group(2))], m.group(4))
            return ",".join(one(i) for i in value.split(","))
        if key == "reload_started" and re.fullmatch(r"\d+\.\d{9}", value) and float(value) > 0:
            return "<CLOCK_MONOTONIC seconds.nanoseconds>"
        return value


if __name__ == "__main__":
    unittest.main()
