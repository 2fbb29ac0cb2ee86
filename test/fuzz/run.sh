#!/bin/sh
# test/fuzz/run.sh - `make fuzz`: the libFuzzer targets of test/fuzz/fuzz_*.c, each built with
# clang -fsanitize=fuzzer,address,undefined against hupwatch.c (-DUNIT_TEST), then:
#   1. every input kept in test/fuzz/regressions/<target>/ is replayed (a fixed bug stays fixed);
#   2. the target is fuzzed for FUZZ_SECONDS, starting from its seed corpus
#      test/fuzz/corpus/<target>/, which is copied to a scratch directory first: the tree is
#      never modified by a run.
# Any crash, leak, sanitizer report, timeout or broken promise (the targets check what each
# parser guarantees) fails the run. What a failing target found is copied, with its log, to
# test/fuzz/out/<target>/ (git-ignored), and the command that reproduces it is printed.
# One summary line per target, then a total; exit 1 if any target failed.
#
# Knobs (environment): FUZZ_SECONDS (per target, default 60), FUZZ_TARGETS (names, default
# every test/fuzz/fuzz_*.c), FUZZ_CC (default clang: libFuzzer is clang's), FUZZ_KEEP=1 (keep
# the scratch directory, with the grown corpora, and print where it is).

set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
FUZZ=$ROOT/test/fuzz

SECS=${FUZZ_SECONDS:-60}
CC=${FUZZ_CC:-clang}
case $SECS in
'' | *[!0-9]* | 0)
	echo "fuzz: FUZZ_SECONDS must be a whole number of seconds above 0, not '$SECS'" >&2
	exit 1
	;;
esac
if [ -n "${FUZZ_TARGETS:-}" ]; then
	TARGETS=$FUZZ_TARGETS
else
	TARGETS=
	for f in "$FUZZ"/fuzz_*.c; do
		[ -f "$f" ] && TARGETS="$TARGETS $(basename "$f" .c)"
	done
fi
[ -n "$TARGETS" ] || {
	echo "fuzz: no targets in test/fuzz" >&2
	exit 1
}

CFLAGS_FUZZ="-std=c11 -D_GNU_SOURCE -DUNIT_TEST -g -O1 -fno-omit-frame-pointer \
-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Wall -Wextra -Werror"

work=$(mktemp -d "${TMPDIR:-/tmp}/hupwatch-fuzz.XXXXXX") || exit 1
cleanup() {
	if [ "${FUZZ_KEEP:-0}" = 1 ]; then
		echo "fuzz: scratch directory kept: $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# ---------------------------------------------------------------- toolchain
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
	>"$work/probe.c"
# shellcheck disable=SC2086
if ! "$CC" $CFLAGS_FUZZ -o "$work/probe" "$work/probe.c" >"$work/probe.log" 2>&1 ||
	! "$work/probe" -runs=1 >>"$work/probe.log" 2>&1; then
	cat "$work/probe.log" >&2
	echo "fuzz: FAILED: $CC cannot build and run a libFuzzer target (install clang and" \
		"libclang-rt-dev: sh test/deps.sh)" >&2
	exit 1
fi

# LeakSanitizer needs to stop the process's threads (ptrace-like); some containers refuse.
# There, leaks cannot be looked for: say so, and look for everything else.
leaks=1
printf '#include <stdlib.h>\nvoid *volatile keep;\nint main(void) { keep = malloc(16); keep = 0; return 0; }\n' \
	>"$work/leak.c"
if "$CC" -fsanitize=address -o "$work/leak" "$work/leak.c" >/dev/null 2>&1; then
	ASAN_OPTIONS=detect_leaks=1 "$work/leak" >"$work/leak.log" 2>&1
	if ! grep -q 'detected memory leaks' "$work/leak.log"; then
		leaks=0
		echo "fuzz: WARNING: LeakSanitizer does not work here; fuzzing without leak checks" >&2
	fi
fi

ASAN_OPTIONS="detect_leaks=$leaks:halt_on_error=1:abort_on_error=0:allocator_may_return_null=0:\
detect_stack_use_after_return=1:check_initialization_order=1:handle_abort=1"
UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export ASAN_OPTIONS UBSAN_OPTIONS

# stat NAME LOG: a "stat::NAME: value" line of -print_final_stats.
final_stat() {
	sed -n "s/^stat::$1: *\\([0-9]*\\).*/\\1/p" "$2" | tail -n 1
}
# progress FIELD LOG: a field ("cov", "ft", "corp") of libFuzzer's last progress line.
progress() {
	grep -E '^#[0-9]+' "$2" | tail -n 1 | sed -n "s/.* $1: \\([0-9]*\\).*/\\1/p"
}

echo "fuzz: $CC, $SECS s per target:$TARGETS"
ok=0
bad=0
for t in $TARGETS; do
	src=$FUZZ/$t.c
	bin=$work/bin/$t
	log=$work/log/$t.log
	art=$work/artifacts/$t
	corpus=$work/corpus/$t
	mkdir -p "$work/bin" "$work/log" "$art" "$corpus"
	why=

	if [ ! -f "$src" ]; then
		why="no such target ($src)"
	else
		# shellcheck disable=SC2086
		"$CC" $CFLAGS_FUZZ -o "$bin" "$src" >"$log" 2>&1 || why="build failed"
	fi

	# 1. regressions: each kept input once
	nreg=0
	if [ -z "$why" ] && [ -d "$FUZZ/regressions/$t" ]; then
		set --
		for f in "$FUZZ/regressions/$t"/*; do
			[ -f "$f" ] && set -- "$@" "$f"
		done
		nreg=$#
		if [ "$nreg" -gt 0 ] && ! "$bin" -close_fd_mask=3 -artifact_prefix="$art/" "$@" >>"$log" 2>&1; then
			why="a regression input fails again"
		fi
	fi

	# 2. fuzzing, from a copy of the seeds
	nseed=0
	if [ -z "$why" ]; then
		if [ -d "$FUZZ/corpus/$t" ]; then
			cp "$FUZZ/corpus/$t"/* "$corpus"/ 2>/dev/null
			nseed=$(find "$corpus" -type f | wc -l | tr -d ' ')
		fi
		"$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -close_fd_mask=3 \
			-print_final_stats=1 -artifact_prefix="$art/" "$corpus" >>"$log" 2>&1
		st=$?
		found=$(find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
			-o -name 'oom-*' \) | wc -l | tr -d ' ')
		if [ "$found" -gt 0 ]; then
			why="$found input(s) found a bug"
		elif [ "$st" -ne 0 ]; then
			why="libFuzzer exited with status $st"
		fi
	fi

	execs=$(final_stat number_of_executed_units "$log")
	cov=$(progress cov "$log")
	ft=$(progress ft "$log")
	corp=$(progress corp "$log")
	rate=
	[ -n "$execs" ] && rate=" ($((execs / SECS))/s)"
	summary="${execs:-0} execs in ${SECS}s$rate, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?} (seeds $nseed)"
	[ "$nreg" -gt 0 ] && summary="$summary, $nreg regression input(s) replayed"

	if [ -z "$why" ]; then
		ok=$((ok + 1))
		echo "fuzz: $t: ok: $summary, 0 crashes"
	else
		bad=$((bad + 1))
		out=$FUZZ/out/$t
		mkdir -p "$out"
		cp "$log" "$out/" 2>/dev/null
		cp "$art"/* "$out/" 2>/dev/null
		# The report from its first line (where it says what and where), else the log's end.
		first=$(grep -n -m 1 -E 'ERROR: |runtime error|broken promise|error:' "$log" | cut -d: -f1)
		echo "==== $t: the report ($out/$t.log)" >&2
		if [ -n "$first" ]; then
			tail -n "+$first" "$log" | head -n 40 >&2
		else
			tail -n 40 "$log" >&2
		fi
		for f in "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-*; do
			[ -f "$f" ] && echo "fuzz: $t: reproduce: $CC $CFLAGS_FUZZ -o $t $src && ./$t $f" >&2
		done
		echo "fuzz: $t: FAILED: $why; $summary"
	fi
done

echo "fuzz: $((ok + bad)) targets, $ok ok, $bad failed"
[ "$bad" -eq 0 ]
