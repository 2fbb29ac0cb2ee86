#!/bin/sh
# test/valgrind.sh - valgrind memcheck over hupwatch's reload paths.
# test/sanitize.sh runs it after the sanitizer pass; it also runs alone.
#
# hupwatch (not its children: --trace-children=no) runs under memcheck with
# --leak-check=full, --track-fds=yes and --error-exitcode=99 through:
#   A  --notify, two --listen sockets, --pid-file, --status-file, -k: reloads of
#      test/child --serve under HTTP requests, a forwarded USR1, an orphan to
#      reap, a reload whose command has disappeared (exec failure), one whose
#      command exits before ready, a HUP while a generation starts (queued),
#      the --reload client (itself under memcheck), then SIGTERM: -k shutdown;
#   B  --ready-cmd probes with a warm-up: a reload that times out, one that
#      succeeds, SIGTERM;
#   C  A's options with no reload at all: the baseline of descriptors open at
#      exit, which A must not exceed (one leaked per reload would show);
#   D  the short paths: --version, --help, a usage error, --reload with no
#      status file.
# It fails on any memcheck error, any definite or indirect leak, an exit status
# other than the documented one, or more descriptors open at exit after
# reloads than without.
#
# Knobs: HUPWATCH (a binary to check instead of building one), CHILD,
# VALGRIND_DIR (default build/valgrind), CC.

set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
OUT=${VALGRIND_DIR:-$ROOT/build/valgrind}
PYTHON=${PYTHON:-python3}

die() {
	echo "valgrind: FAILED: $*" >&2
	exit 1
}

# An empty CC in the environment would override the Makefile's default.
if [ -z "${CC:-}" ]; then
	unset CC
fi

command -v valgrind >/dev/null 2>&1 || die "valgrind not found (sh test/deps.sh installs it)"

if [ -z "${HUPWATCH:-}" ] || [ -z "${CHILD:-}" ]; then
	# A copy built with the Makefile's own flags (-O2 -g, hardening on): the
	# binary users get, not a debug variant.
	[ -f hupwatch.c ] || die "hupwatch.c not found"
	mkdir -p "$OUT/test" || die "cannot create $OUT"
	rm -f "$OUT/hupwatch" "$OUT/test/child"
	cp hupwatch.c "$OUT/" && cp test/child.c "$OUT/test/" || die "cannot copy sources"
	make -s -C "$OUT" -f "$ROOT/Makefile" ${CC:+CC="$CC"} hupwatch test/child ||
		die "build failed"
	HUPWATCH=${HUPWATCH:-$OUT/hupwatch}
	CHILD=${CHILD:-$OUT/test/child}
fi
mkdir -p "$OUT" || die "cannot create $OUT"
export HUPWATCH CHILD
VG_LOGS=$OUT/logs
rm -rf "$VG_LOGS"
mkdir -p "$VG_LOGS" || die "cannot create $VG_LOGS"
export VG_LOGS

echo "valgrind: $(valgrind --version) on $HUPWATCH"
exec "$PYTHON" - "$ROOT" <<'PYTHON'
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

ROOT = sys.argv[1]
sys.path.insert(0, os.path.join(ROOT, "test"))
from harness import Hupwatch, Reports, http_get, wait_for, zombies_under, pid_alive  # noqa: E402

HW = os.environ["HUPWATCH"]
CHILD = os.environ["CHILD"]
LOGS = os.environ["VG_LOGS"]
T = 60          # valgrind is slow: generous bounds, never fixed sleeps

problems = []   # (scenario, text)


def vg_args(name):
    return ["--tool=memcheck", "--leak-check=full", "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
            "--track-fds=yes", "--track-origins=yes", "--num-callers=30",
            "--trace-children=no", "--child-silent-after-fork=yes",
            "--log-file=%s/%s.%%p.log" % (LOGS, name)]


def start(name, args, cmd, **kw):
    return Hupwatch(vg_args(name) + [HW] + args, cmd, binary="valgrind", **kw)


def run(name, args, expect_rc, timeout=T):
    """hupwatch ARGS under memcheck to completion; check its exit status."""
    r = subprocess.run(["valgrind"] + vg_args(name) + [HW] + args, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if r.returncode != expect_rc:
        problems.append((name, "exit status %d, expected %d; stderr:\n%s"
                         % (r.returncode, expect_rc, r.stderr.decode(errors="replace"))))
    return r


def expect_exit(name, hw, rc):
    got = hw.wait_exit(T)
    if got != rc:
        problems.append((name, "exit status %d, expected %d" % (got, rc)))


def ready(hw, gen, since=None):
    return hw.wait_log(r"gen %d pid (\d+) ready after" % gen, T, since)


def port_of(hw):
    return int(hw.wait_log(r"listening on 127\.0\.0\.1:(\d+) \(fd", T).group(1))


def fds_at_exit(name):
    """{pid: number of descriptors open at exit} from the memcheck logs of scenario NAME."""
    out = {}
    for path in glob.glob(os.path.join(LOGS, name + ".*.log")):
        with open(path, errors="replace") as f:
            m = re.search(r"FILE DESCRIPTORS: (\d+) open", f.read())
        if m:
            out[path] = int(m.group(1))
    return out


def scenario_a(name, reloads=True):
    work = tempfile.mkdtemp(prefix="hupwatch-vg-")
    rep = Reports(os.path.join(work, "rep"))
    app = os.path.join(work, "app")
    os.symlink(CHILD, app)
    pidf, status = os.path.join(work, "hw.pid"), os.path.join(work, "status")
    args = ["-v", "-n", "-k", "-T", "20", "-l", "127.0.0.1:0",
            "-l", "unix:" + os.path.join(work, "sock"), "-p", pidf, "-S", status]
    cmd = [app, "--serve", "--notify-ready", "50", "--report", rep.dir, "--orphan", "100"]
    with start(name, args, cmd) as hw:
        ready(hw, 1)
        port = port_of(hw)
        assert http_get("127.0.0.1", port, timeout=T)[0] == 200
        gen = 1
        if reloads:
            for _ in range(2):
                m = hw.mark()
                hw.signal("HUP")
                gen += 1
                ready(hw, gen, m)
                assert http_get("127.0.0.1", port, timeout=T)[0] == 200
            m = hw.mark()
            hw.signal("USR1")
            hw.wait_log(r"forwarding SIGUSR1 to gen %d" % gen, T, m)
            # exec failure: the command is gone
            os.unlink(app)
            m = hw.mark()
            hw.signal("HUP")
            gen += 1
            hw.wait_log(r"gen %d failed: cannot execute" % gen, T, m)
            # exits before ready
            with open(app, "w") as f:
                f.write("#!/bin/sh\nexit 3\n")
            os.chmod(app, 0o755)
            m = hw.mark()
            hw.signal("HUP")
            gen += 1
            hw.wait_log(r"gen %d failed: exited with status 3 before ready" % gen, T, m)
            os.unlink(app)
            os.symlink(CHILD, app)
            # a HUP while a generation starts: queued (or, if the first one was
            # already ready, a plain reload); either way gen+2 ends up ready
            m = hw.mark()
            hw.signal("HUP")
            hw.wait_log(r"gen %d pid \d+ started" % (gen + 1), T, m)
            hw.signal("HUP")
            gen += 2
            ready(hw, gen, m)
            # the --reload client, itself under memcheck
            m = hw.mark()
            r = run(name + "-client", ["-R", "-S", status, "-t", str(T)], 0, timeout=2 * T)
            gen += 1
            ready(hw, gen, m)
            if not r.stdout.strip():
                problems.append((name, "--reload printed nothing on stdout"))
            assert http_get("127.0.0.1", port, timeout=T)[0] == 200
            wait_for(lambda: rep.orphans(), T, "an orphan announced")
        m = hw.mark()
        hw.signal("TERM")
        expect_exit(name, hw, 0)
        if os.path.exists(pidf):
            problems.append((name, "pid file %s left after -k shutdown" % pidf))
    shutil.rmtree(work, ignore_errors=True)


def scenario_b(name):
    work = tempfile.mkdtemp(prefix="hupwatch-vg-")
    flag = os.path.join(work, "ready")
    open(flag, "w").close()
    args = ["-v", "-k", "-c", "test -e '%s'" % flag, "-i", "0.05", "-t", "3", "-w", "0.1",
            "-S", os.path.join(work, "status")]
    with start(name, args, [CHILD]) as hw:
        ready(hw, 1)
        os.unlink(flag)
        m = hw.mark()
        hw.signal("HUP")
        hw.wait_log(r"gen 2 failed: not ready after", T, m)
        open(flag, "w").close()
        m = hw.mark()
        hw.signal("HUP")
        ready(hw, 3, m)
        hw.signal("TERM")
        expect_exit(name, hw, 0)
    shutil.rmtree(work, ignore_errors=True)


def scenario_d():
    run("version", ["-V"], 0)
    run("help", ["--help"], 0)
    run("usage", ["--warmup-time", "abc", "--", "true"], 125)
    run("reload-nofile", ["-R", "-S", "/nonexistent/hupwatch.status", "-t", "1"], 125)


for label, fn in (("A", lambda: scenario_a("reloads")), ("B", lambda: scenario_b("probe")),
                  ("C", lambda: scenario_a("baseline", reloads=False)), ("D", scenario_d)):
    print("valgrind: scenario %s" % label, flush=True)
    try:
        fn()
    except Exception as e:  # a scenario that cannot finish is a failure, reported with the rest
        problems.append((label, "%s: %s" % (type(e).__name__, e)))

# Every memcheck log: errors and leaks.
logs = sorted(glob.glob(os.path.join(LOGS, "*.log")))
if not logs:
    problems.append(("logs", "no memcheck log in %s" % LOGS))
for path in logs:
    with open(path, errors="replace") as f:
        text = f.read()
    m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    if not m:
        problems.append((os.path.basename(path), "no ERROR SUMMARY (valgrind died?)"))
    elif int(m.group(1)) != 0:
        problems.append((os.path.basename(path), "%s memcheck errors:\n%s" % (m.group(1), text)))
    for kind in ("definitely", "indirectly"):
        m = re.search(r"%s lost: ([\d,]+) bytes" % kind, text)
        if m and m.group(1) != "0":
            problems.append((os.path.basename(path), "%s lost %s bytes:\n%s"
                             % (kind, m.group(1), text)))

# Descriptors at exit: after seven reload attempts no more than with none.
base, after = fds_at_exit("baseline"), fds_at_exit("reloads")
if base and after:
    b, a = max(base.values()), max(after.values())
    print("valgrind: descriptors open at exit: %d without reloads, %d after reloads" % (b, a))
    if a > b:
        problems.append(("fds", "%d descriptors open at exit after reloads, %d without:\n%s"
                         % (a, b, "".join(open(p, errors="replace").read()
                                          for p in after))))
else:
    problems.append(("fds", "no FILE DESCRIPTORS summary in the memcheck logs"))

for where, text in problems:
    print("valgrind: FAIL [%s] %s" % (where, text), file=sys.stderr)
if problems:
    print("valgrind: FAILED (%d problems; logs in %s)" % (len(problems), LOGS), file=sys.stderr)
    sys.exit(1)
print("valgrind: ok (%d memcheck runs, no error, no definite or indirect leak)" % len(logs))
PYTHON
