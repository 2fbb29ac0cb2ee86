#!/bin/sh
# test/coverage.sh - `make coverage`: line coverage of hupwatch.c over the unit
# tests and the integration suite, with gcc --coverage and gcov.
#
# A copy of the sources is built in build/coverage with the project's Makefile
# (HARDEN=0, -O0 -g --coverage), so ./hupwatch and test/unit are left alone.
# test/unit runs there, then the integration suite against the instrumented
# hupwatch (HUPWATCH=build/coverage/hupwatch). gcov writes a process's counts
# when it exits, and nothing when it is killed: HUPWATCH_COVERAGE=1 has the
# harness end a hupwatch still running at cleanup with SIGTERM before SIGKILL.
# hupwatch's forked children exec or _exit, which write no counts either:
# test/coverage_hooks.c, linked in with --wrap, writes them first. Runs that
# end in SIGKILL all the same (tests that kill hupwatch on purpose) are not
# counted: the figure is a lower bound.
#
# The unit build and the program build each count hupwatch.c's lines (the unit
# test includes the file; main is compiled only in the program); a line counts
# as covered when either executed it, out of the lines either instrumented.
#
# Output: the line coverage of hupwatch.c, the functions with the most lines
# not run, and build/coverage/hupwatch.c.gcov, the source annotated with the
# merged counts (##### = never run). With gcovr installed, its summary too.
#
# Knobs (environment): CC (a gcc; default gcc), GCOV (default: the gcov of
# that gcc's version), COV_DIR (default build/coverage), TESTS (integration
# tests to run, as for make check), SKIP_INTEGRATION=1, COV_TIMEOUT (per-test
# timeout, default 90 s).

set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
OUT=${COV_DIR:-$ROOT/build/coverage}
PYTHON=${PYTHON:-python3}
CC=${CC:-gcc}

say() { echo "coverage: $*"; }
die() {
	echo "coverage: FAILED: $*" >&2
	exit 1
}

case $("$CC" --version 2>/dev/null | head -n 1) in
*clang*) die "CC=$CC is clang; --coverage data for gcov needs gcc" ;;
"") die "no compiler '$CC'" ;;
esac
if [ -z "${GCOV:-}" ]; then
	major=$("$CC" -dumpversion | cut -d. -f1)
	if command -v "gcov-$major" >/dev/null 2>&1; then
		GCOV=gcov-$major
	else
		GCOV=gcov
	fi
fi
command -v "$GCOV" >/dev/null 2>&1 || die "$GCOV not found"

# ---------------------------------------------------------------- build
[ -f hupwatch.c ] || die "hupwatch.c not found"
rm -rf "$OUT"
mkdir -p "$OUT/test" || die "cannot create $OUT"
cp hupwatch.c "$OUT/" || die "cannot copy hupwatch.c"
for f in test/*.c test/*.h; do
	if [ -f "$f" ]; then
		cp "$f" "$OUT/test/" || die "cannot copy $f"
	fi
done
say "building hupwatch test/unit with $CC --coverage in $OUT"
# test/coverage_hooks.c: write the counts before exec and _exit too (see there).
"$CC" -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -c -o "$OUT/coverage_hooks.o" test/coverage_hooks.c ||
	die "cannot build test/coverage_hooks.c"
make -s -C "$OUT" -f "$ROOT/Makefile" HARDEN=0 CC="$CC" CFLAGS="-O0 -g --coverage" \
	LDFLAGS="--coverage -Wl,--wrap=execvp -Wl,--wrap=execl -Wl,--wrap=_exit" \
	LDLIBS="$OUT/coverage_hooks.o" hupwatch test/unit ||
	die "instrumented build failed"
# The test child is not measured: built as usual.
make -s -C "$OUT" -f "$ROOT/Makefile" CC="$CC" test/child || die "test/child build failed"

# Some tests run hupwatch as another user (setpriv): its counts must land too.
# Create the data file now and let anyone add to it.
"$OUT/hupwatch" --version >/dev/null || die "instrumented hupwatch does not run"
chmod a+rw "$OUT"/*.gcda

failed=

# ---------------------------------------------------------------- unit tests
say "unit tests"
if ! (cd "$OUT" && ./test/unit); then
	failed="$failed unit"
fi

# ---------------------------------------------------------------- integration
if [ "${SKIP_INTEGRATION:-0}" = 1 ]; then
	say "SKIP_INTEGRATION=1: integration tests skipped"
else
	say "integration tests against $OUT/hupwatch"
	# shellcheck disable=SC2086 # TESTS is a list
	if ! HUPWATCH="$OUT/hupwatch" CHILD="$OUT/test/child" HUPWATCH_COVERAGE=1 \
		"$PYTHON" test/run_integration.py --no-build --timeout "${COV_TIMEOUT:-90}" ${TESTS:-}; then
		failed="$failed integration"
	fi
fi

# ---------------------------------------------------------------- report
# gcov's JSON (gcc 9 and later) for each build, merged by line number.
for gcno in "$OUT"/*.gcno "$OUT"/test/*.gcno; do
	[ -f "$gcno" ] || continue
	case $gcno in
	*child*) continue ;;
	esac
	name=$(basename "$gcno" .gcno)
	(cd "$OUT" && "$GCOV" --json-format --stdout "$gcno") >"$OUT/$name.json" 2>"$OUT/$name.gcov.log" ||
		die "$GCOV $gcno failed: $(cat "$OUT/$name.gcov.log")"
done
"$PYTHON" - "$OUT" <<'EOF' || die "cannot read gcov's output"
import glob, json, os, sys

out = sys.argv[1]
counts = {}         # line number -> count, over both builds
functions = {}      # name -> (first line, last line)
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    with open(path) as f:
        data = json.load(f)
    for entry in data["files"]:
        if os.path.basename(entry["file"]) != "hupwatch.c":
            continue
        for line in entry["lines"]:
            n = line["line_number"]
            counts[n] = counts.get(n, 0) + line["count"]
        for fn in entry["functions"]:
            functions[fn["demangled_name"]] = (fn["start_line"], fn["end_line"])
if not counts:
    sys.exit("no counts for hupwatch.c in %s" % out)
covered = sum(1 for c in counts.values() if c > 0)
with open(os.path.join(out, "hupwatch.c")) as f:
    source = f.read().splitlines()
with open(os.path.join(out, "hupwatch.c.gcov"), "w") as f:
    for i, text in enumerate(source, 1):
        c = counts.get(i)
        mark = "-" if c is None else "#####" if c == 0 else str(c)
        f.write("%9s:%5d:%s\n" % (mark, i, text))
missed = []
for name, (first, last) in functions.items():
    lines = [n for n in range(first, last + 1) if n in counts]
    gaps = sum(1 for n in lines if counts[n] == 0)
    if gaps:
        missed.append((gaps, len(lines), name))
missed.sort(key=lambda m: (-m[0], m[2]))
print("coverage: functions with the most lines not run:")
for gaps, total, name in missed[:12]:
    print("coverage:   %-28s %3d of %3d lines not run" % (name, gaps, total))
print("coverage: annotated source: %s" % os.path.join(out, "hupwatch.c.gcov"))
print("coverage: hupwatch.c: %.1f%% of lines (%d of %d)"
      % (100.0 * covered / len(counts), covered, len(counts)))
EOF

if command -v gcovr >/dev/null 2>&1; then
	say "gcovr's view (its own merge of the same data):"
	gcovr --gcov-executable "$GCOV" -r "$OUT" --filter "$OUT/hupwatch.c" "$OUT" | tail -n 4
fi

if [ -n "$failed" ]; then
	die "tests failed:$failed (the figure above counts what ran)"
fi
say "ok"
