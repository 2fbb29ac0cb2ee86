#!/bin/sh
# test/lint.sh - static analysis of hupwatch; `make lint` runs it, CI too.
#
#   cppcheck     warning,style,performance,portability; once as built, once
#                with -DUNIT_TEST (the unit tests' view of the file)
#   clang-tidy   the checked-in .clang-tidy, the same two configurations
#   hardening-check (devscripts) on hupwatch built with the Makefile's flags
#   mandoc -Tlint -Wwarning hupwatch.1, when the man page is there
#
# Every finding of any of them fails the run (exit 1); each tool that is
# missing fails it too (test/deps.sh installs them). All findings are printed
# as FILE:LINE: ... [check] before the summary line.
#
# Knobs: LINT_SRC (files to analyse, default hupwatch.c), CC (compiler for
# the hardening build, default cc), CPPCHECK, CLANG_TIDY.

set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)

SRC=${LINT_SRC:-hupwatch.c}
CPPCHECK=${CPPCHECK:-cppcheck}
CLANG_TIDY=${CLANG_TIDY:-clang-tidy}
CC=${CC:-cc}

failed=
ran=
fail() {
	failed="$failed $1"
}

have() {
	if command -v "$1" >/dev/null 2>&1; then
		return 0
	fi
	echo "lint: $1 not found (sh test/deps.sh installs it)" >&2
	fail "$1(missing)"
	return 1
}

for f in $SRC; do
	if [ ! -f "$f" ]; then
		echo "lint: $f not found" >&2
		exit 1
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hupwatch-lint.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'rm -rf "$tmp"; exit 1' HUP INT TERM

# The two configurations the file is compiled in: the program, and the
# unit tests' build (-DUNIT_TEST hides main and may expose test hooks).
CONFIGS="plain UNIT_TEST"
config_defs() {
	case $1 in
	plain) echo "-D_GNU_SOURCE" ;;
	UNIT_TEST) echo "-D_GNU_SOURCE -DUNIT_TEST" ;;
	esac
}

# ---------------------------------------------------------------- cppcheck
if have "$CPPCHECK"; then
	supp=
	if [ -f test/cppcheck-suppressions.txt ]; then
		supp="--suppressions-list=test/cppcheck-suppressions.txt"
	fi
	for cfg in $CONFIGS; do
		echo "lint: cppcheck ($cfg)"
		ran="$ran cppcheck"
		# --library: posix.cfg and gnu.cfg teach cppcheck the resource and
		# argument rules of open/socket/close, fork, getline and friends.
		# missingIncludeSystem: cppcheck is not given the system headers on
		# purpose (its .cfg libraries model them); that is no finding.
		# shellcheck disable=SC2046,SC2086 # word splitting is wanted
		if ! "$CPPCHECK" --quiet --language=c --std=c11 \
			--enable=warning,style,performance,portability \
			--inline-suppr --error-exitcode=1 \
			--library=posix --library=gnu \
			--platform=unix64 \
			--suppress=missingIncludeSystem $supp \
			-D__linux__ -D__GNUC__ $(config_defs "$cfg") \
			--template='{file}:{line}:{column}: {severity}: {message} [cppcheck:{id}]' \
			$SRC 2>"$tmp/cppcheck.$cfg"; then
			fail "cppcheck($cfg)"
		fi
		cat "$tmp/cppcheck.$cfg" >&2
		# A finding cppcheck prints without setting its exit code (some
		# portability checks did so in older releases) still counts.
		if grep -q '\[cppcheck:' "$tmp/cppcheck.$cfg"; then
			case $failed in *"cppcheck($cfg)"*) ;; *) fail "cppcheck($cfg)" ;; esac
		fi
	done
fi

# ---------------------------------------------------------------- clang-tidy
if have "$CLANG_TIDY"; then
	for cfg in $CONFIGS; do
		echo "lint: clang-tidy ($cfg)"
		ran="$ran clang-tidy"
		# shellcheck disable=SC2046,SC2086
		"$CLANG_TIDY" --quiet --config-file="$ROOT/.clang-tidy" $SRC -- \
			-std=c11 -Wall -Wextra $(config_defs "$cfg") \
			>"$tmp/tidy.$cfg" 2>&1
		st=$?
		# Only the finding lines (FILE:LINE:COL: error: ... [check]); the
		# "N warnings generated" chatter about system headers is no finding.
		grep -E ':[0-9]+:[0-9]+: (warning|error):' "$tmp/tidy.$cfg" >"$tmp/tidy-findings.$cfg"
		cat "$tmp/tidy-findings.$cfg" >&2
		if [ "$st" -ne 0 ] || [ -s "$tmp/tidy-findings.$cfg" ]; then
			if [ ! -s "$tmp/tidy-findings.$cfg" ]; then
				cat "$tmp/tidy.$cfg" >&2
			fi
			fail "clang-tidy($cfg)"
		fi
	done
fi

# ---------------------------------------------------------------- hardening-check
# Built from a copy of the sources with the Makefile exactly as a user runs it
# (plus WERROR=1), into a scratch directory: ./hupwatch, someone else's build
# output, is left alone.
if have hardening-check && have make; then
	echo "lint: hardening-check"
	ran="$ran hardening-check"
	mkdir -p "$tmp/build"
	cp hupwatch.c "$tmp/build/"
	if ! make -s -C "$tmp/build" -f "$ROOT/Makefile" CC="$CC" WERROR=1 hupwatch >"$tmp/build.log" 2>&1; then
		cat "$tmp/build.log" >&2
		echo "lint: build for hardening-check failed" >&2
		fail "hardening-check(build)"
	else
		# -fcf-protection (CET) only exists on x86. Where it does, the
		# linker marks a binary IBT/SHSTK only if every object in it is
		# marked, the C runtime's start files (crt1.o, crti.o) included; on
		# toolchains whose libc was built without CET (Debian 12's glibc)
		# no program can be, whatever its flags. There hardening-check's
		# control-flow check is replaced by the same check on hupwatch's
		# own object file, compiled with the Makefile's flags.
		cf=
		case $(uname -m) in
		x86_64 | i?86)
			printf 'int main(void) { return 0; }\n' >"$tmp/cet.c"
			if "$CC" -fcf-protection -o "$tmp/cet" "$tmp/cet.c" >/dev/null 2>&1 &&
				readelf -n "$tmp/cet" 2>/dev/null | grep -q 'IBT'; then
				:
			else
				cf=--nocfprotection
				echo "lint: this toolchain links no CET-marked program (its C runtime objects are not marked);"
				echo "lint: checking hupwatch's own object file for IBT/SHSTK instead"
				cmd=$(make -s -n -C "$tmp/build" -f "$ROOT/Makefile" CC="$CC" -B hupwatch |
					grep -- '-o hupwatch hupwatch.c' | sed 's/-o hupwatch hupwatch\.c/-c -o hupwatch.o hupwatch.c/')
				if [ -z "$cmd" ] || ! (cd "$tmp/build" && eval "$cmd") >"$tmp/obj.log" 2>&1; then
					cat "$tmp/obj.log" >&2
					echo "lint: cannot compile hupwatch.o with the Makefile's flags" >&2
					fail "hardening-check(cet-object)"
				elif ! readelf -n "$tmp/build/hupwatch.o" | grep -q 'IBT, SHSTK'; then
					readelf -n "$tmp/build/hupwatch.o" >&2
					echo "lint: hupwatch.o is not marked IBT, SHSTK: -fcf-protection missing?" >&2
					fail "hardening-check(cet-object)"
				else
					echo "    hupwatch.o: x86 feature: IBT, SHSTK"
				fi
			fi
			;;
		*) cf=--nocfprotection ;;
		esac
		if ! hardening-check $cf "$tmp/build/hupwatch" >"$tmp/hc" 2>&1; then
			sed 's|^|    |' "$tmp/hc" >&2
			fail "hardening-check"
		else
			sed 's|^|    |' "$tmp/hc"
		fi
	fi
fi

# ---------------------------------------------------------------- man page
if [ -f hupwatch.1 ]; then
	if have mandoc; then
		echo "lint: mandoc -Tlint"
		ran="$ran mandoc"
		if ! mandoc -Tlint -Wwarning hupwatch.1 >"$tmp/mandoc" 2>&1 || [ -s "$tmp/mandoc" ]; then
			cat "$tmp/mandoc" >&2
			fail "mandoc"
		fi
	fi
else
	echo "lint: hupwatch.1 not there; man page lint skipped"
fi

# ---------------------------------------------------------------- test scripts
# Cheap syntax checks of the shell and Python test code, so a broken script
# is found here and not halfway through CI.
echo "lint: sh -n / py_compile of test scripts"
for f in test/*.sh test/fuzz/*.sh examples/*.sh bench/*.sh pkg/*.sh; do
	[ -f "$f" ] || continue
	if ! sh -n "$f" 2>"$tmp/shn"; then
		cat "$tmp/shn" >&2
		fail "sh-n($f)"
	fi
done
if command -v python3 >/dev/null 2>&1; then
	for f in test/*.py; do
		[ -f "$f" ] || continue
		if ! python3 -c 'import ast,sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' "$f" 2>"$tmp/py"; then
			cat "$tmp/py" >&2
			fail "python-syntax($f)"
		fi
	done
fi

if [ -n "$failed" ]; then
	echo "lint: FAILED:$failed" >&2
	exit 1
fi
echo "lint: clean ($(echo "$ran" | tr ' ' '\n' | sort -u | tr '\n' ' ' | sed 's/^ *//;s/ *$//'))"
exit 0
