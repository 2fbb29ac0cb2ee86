#!/bin/sh
# test/sanitize.sh - `make check-sanitize`: the unit and integration suites
# against hupwatch and test/child built with AddressSanitizer and
# UndefinedBehaviorSanitizer, then test/valgrind.sh (memcheck over reload
# scenarios). Any sanitizer report, anywhere, fails the run.
#
# hupwatch's stderr is captured by the tests, so reports are not looked for
# there: every sanitized process writes them to its own file under
# build/sanitize/logs (log_path), and the run fails if any such file exists
# at the end. The runtime options also make each report fatal (halt_on_error,
# -fno-sanitize-recover=all) with an exit status of its own (86), so the test
# that met it fails as well.
#
# Before the suites, a self-test builds three tiny faulty programs (a UBSan
# error, a heap overflow, a leak) with the chosen compiler and checks that each
# report lands in a log directory with its exit status. A compiler whose
# reports would not land there is not used (gcc 12's separate libubsan prints
# UBSan reports on stderr whatever log_path says; clang's runtime honours it).
# If LeakSanitizer cannot run here (it needs to stop the process's threads
# with ptrace, which some containers refuse), leak detection is switched off
# with a warning, and valgrind's leak check still stands.
#
# Knobs (environment): CC (compiler to try first; then clang, then cc),
# SAN_DIR (build and log directory, default build/sanitize), TESTS
# (integration tests to run, as for make check), SKIP_DEPS=1 (no apt-get of
# missing sanitizer runtimes), SKIP_VALGRIND=1, SKIP_UNIT=1, SAN_TIMEOUT
# (per-test timeout, default 120 s: sanitized code is slower).

set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
OUT=${SAN_DIR:-$ROOT/build/sanitize}
LOGS=$OUT/logs
PYTHON=${PYTHON:-python3}
ORIG_CC=${CC:-}

SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"

say() { echo "sanitize: $*"; }
die() {
	echo "sanitize: FAILED: $*" >&2
	exit 1
}

mkdir -p "$OUT/probe" || die "cannot create $OUT"

# ---------------------------------------------------------------- runtime options
# log_path: each process writes DIR/report.PID; nothing goes to the captured
# stderr. exitcode: a report makes the process exit 86, which no test expects.
# Both are "common" flags, one value per process in a combined ASan+UBSan
# runtime whichever of the two variables sets them: so they are the same in
# both.
# detect_stack_use_after_return, strict_string_checks, check_initialization_order:
# the thorough settings, cheap for a program of this size.
asan_options() { # $1 = detect_leaks (0/1), $2 = log dir
	echo "halt_on_error=1:abort_on_error=0:exitcode=86:log_path=$2/report:detect_leaks=$1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:allocator_may_return_null=0:print_summary=1:handle_segv=1:handle_abort=1"
}
ubsan_options() { # $1 = log dir
	echo "halt_on_error=1:print_stacktrace=1:exitcode=86:log_path=$1/report"
}

# ---------------------------------------------------------------- compiler
# can_sanitize CC: CC compiles, links and runs a program with $SANFLAGS.
can_sanitize() {
	printf 'int main(void) { return 0; }\n' >"$OUT/probe/ok.c"
	# shellcheck disable=SC2086
	"$1" $SANFLAGS -o "$OUT/probe/ok" "$OUT/probe/ok.c" >/dev/null 2>&1 &&
		ASAN_OPTIONS=detect_leaks=0 "$OUT/probe/ok" >/dev/null 2>&1
}

# install_runtime CC: the Debian packages that hold CC's sanitizer runtimes.
install_runtime() {
	[ "${SKIP_DEPS:-0}" = 1 ] && return 1
	{ [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; } || return 1
	case $("$1" --version 2>/dev/null | head -n 1) in
	*clang*) pkgs="libclang-rt-dev" ;;
	*) pkgs="libgcc-$("$1" -dumpversion | cut -d. -f1)-dev" ;;
	esac
	say "installing sanitizer runtime: $pkgs"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null 2>&1
}

# ---------------------------------------------------------------- self-test
cat >"$OUT/probe/ub.c" <<'EOF'
#include <limits.h>
#include <stdio.h>
int main(int argc, char **argv) { int x = INT_MAX; (void)argv; x += argc; printf("%d\n", x); return 0; }
EOF
cat >"$OUT/probe/oob.c" <<'EOF'
#include <stdlib.h>
int main(int argc, char **argv) { char *p = malloc(8); (void)argv; p[7 + argc] = 1; free(p); return 0; }
EOF
cat >"$OUT/probe/leak.c" <<'EOF'
#include <stdlib.h>
#include <string.h>
void *volatile keep;
int main(void) { char *p = malloc(64); memset(p, 1, 64); keep = p; keep = 0; return 0; }
EOF

# selftest CC: 0 if CC's UBSan and ASan reports land in the log directory
# with their exit statuses; sets DETECT_LEAKS to 1 if LeakSanitizer works too.
selftest() {
	d=$OUT/probe/logs
	for t in ub oob leak; do
		# shellcheck disable=SC2086
		"$1" $SANFLAGS -g -o "$OUT/probe/$t" "$OUT/probe/$t.c" || return 1
	done
	rm -rf "$d" && mkdir -p "$d" || return 1
	ASAN_OPTIONS=$(asan_options 0 "$d") UBSAN_OPTIONS=$(ubsan_options "$d") \
		"$OUT/probe/ub" >/dev/null 2>&1
	st=$?
	if [ "$st" -ne 86 ] || ! grep -qs 'runtime error' "$d"/report.*; then
		say "$1: a UBSan error gave status $st and no report file in $d"
		return 1
	fi
	ASAN_OPTIONS=$(asan_options 0 "$d") UBSAN_OPTIONS=$(ubsan_options "$d") \
		"$OUT/probe/oob" >/dev/null 2>&1
	st=$?
	if [ "$st" -ne 86 ] || ! grep -qs 'heap-buffer-overflow' "$d"/report.*; then
		say "$1: a heap overflow gave status $st and no report file in $d"
		return 1
	fi
	rm -f "$d"/*
	DETECT_LEAKS=1
	ASAN_OPTIONS=$(asan_options 1 "$d") "$OUT/probe/leak" >/dev/null 2>&1
	st=$?
	if [ "$st" -ne 86 ] || ! grep -qs 'detected memory leaks' "$d"/report.*; then
		DETECT_LEAKS=0
		echo "sanitize: WARNING: LeakSanitizer does not work here (status $st):" >&2
		cat "$d"/report.* >&2 2>/dev/null
		echo "sanitize: WARNING: running with detect_leaks=0; valgrind still checks leaks" >&2
	fi
	return 0
}

if [ -n "${CC:-}" ]; then
	candidates="$CC clang cc"
else
	candidates="clang cc"
fi
SAN_CC=
DETECT_LEAKS=0
for c in $candidates; do
	command -v "$c" >/dev/null 2>&1 || continue
	if ! can_sanitize "$c"; then
		install_runtime "$c"
		if ! can_sanitize "$c"; then
			say "$c cannot build and run a program with $SANFLAGS"
			continue
		fi
	fi
	if selftest "$c"; then
		SAN_CC=$c
		break
	fi
	say "$c: its sanitizer reports would not be seen; trying the next compiler"
done
[ -n "$SAN_CC" ] || die "no compiler among '$candidates' builds sanitized programs whose reports land in a file"
if [ -n "${CC:-}" ] && [ "$SAN_CC" != "$CC" ]; then
	echo "sanitize: WARNING: using $SAN_CC, not CC=$CC (see above)" >&2
fi
CC=$SAN_CC
say "compiler: $("$CC" --version | head -n 1); leak detection $([ "$DETECT_LEAKS" = 1 ] && echo on || echo OFF)"

rm -rf "$LOGS"
mkdir -p "$LOGS" || die "cannot create $LOGS"
# Tests may run hupwatch as another user (setpriv): its reports must land too.
chmod 1777 "$LOGS"

# ---------------------------------------------------------------- build
# A copy of the sources, built with the project's Makefile (HARDEN=0: the
# hardening flags and the sanitizers do not mix), so the flags are the
# Makefile's plus ours, and ./hupwatch and test/child are left alone.
[ -f hupwatch.c ] || die "hupwatch.c not found"
mkdir -p "$OUT/test"
rm -f "$OUT/hupwatch" "$OUT/test/child" "$OUT/test/unit"
cp hupwatch.c "$OUT/" || die "cannot copy hupwatch.c"
for f in test/*.c test/*.h; do
	if [ -f "$f" ]; then
		cp "$f" "$OUT/test/" || die "cannot copy $f"
	fi
done
targets="hupwatch test/child"
if [ -f test/unit.c ] && [ "${SKIP_UNIT:-0}" != 1 ]; then
	targets="$targets test/unit"
fi
say "building $targets in $OUT"
# shellcheck disable=SC2086
make -s -C "$OUT" -f "$ROOT/Makefile" HARDEN=0 CC="$CC" \
	CFLAGS="-O1 -g $SANFLAGS" LDFLAGS="$SANFLAGS" $targets || die "sanitized build failed"

# No leak check in test/child (a test tool, not the project): LeakSanitizer
# stops the exiting process with ptrace, and hupwatch's SIGCONT, sent right
# after the stop signal, discards the pending ptrace SIGSTOP when it lands in
# between: the child then never finishes exiting (a deadlock seen under load).
# The runtime reads this file by binary name (%b), for test/child only.
printf 'detect_leaks=0\n' >"$OUT/asan-options.child"
ASAN_OPTIONS="$(asan_options "$DETECT_LEAKS" "$LOGS"):include_if_exists=$OUT/asan-options.%b"
UBSAN_OPTIONS=$(ubsan_options "$LOGS")
export ASAN_OPTIONS UBSAN_OPTIONS
# Tests that measure memory (test_storm's RSS check) skip that part: ASan's
# quarantine and shadow memory make RSS grow without a leak. LeakSanitizer
# covers leaks here.
HUPWATCH_SANITIZER="address,undefined"
export HUPWATCH_SANITIZER

failed=

# ---------------------------------------------------------------- unit tests
case " $targets " in
*" test/unit "*)
	say "unit tests"
	if ! (cd "$OUT" && ./test/unit); then
		failed="$failed unit"
	fi
	;;
*) say "test/unit.c not there (or SKIP_UNIT=1): unit tests skipped" ;;
esac

# ---------------------------------------------------------------- integration
say "integration tests against $OUT/hupwatch"
# shellcheck disable=SC2086
if ! HUPWATCH="$OUT/hupwatch" CHILD="$OUT/test/child" \
	"$PYTHON" test/run_integration.py --no-build --timeout "${SAN_TIMEOUT:-120}" ${TESTS:-}; then
	failed="$failed integration"
fi

# ---------------------------------------------------------------- reports
reports=$(find "$LOGS" -type f | sort)
if [ -n "$reports" ]; then
	echo "sanitize: $(echo "$reports" | wc -l) sanitizer report file(s):" >&2
	for r in $reports; do
		echo "==== $r" >&2
		head -n 60 "$r" >&2
	done
	failed="$failed sanitizer-reports"
else
	say "no sanitizer report"
fi

# ---------------------------------------------------------------- valgrind
unset ASAN_OPTIONS UBSAN_OPTIONS HUPWATCH_SANITIZER
if [ "${SKIP_VALGRIND:-0}" = 1 ]; then
	say "SKIP_VALGRIND=1: valgrind pass skipped"
elif ! if [ -n "$ORIG_CC" ]; then CC=$ORIG_CC sh test/valgrind.sh; else env -u CC sh test/valgrind.sh; fi; then
	failed="$failed valgrind"
fi

if [ -n "$failed" ]; then
	die "$failed"
fi
say "ok"
