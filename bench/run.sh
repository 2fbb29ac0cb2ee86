#!/bin/sh
# hupwatch benchmark: `make bench` runs this. See BENCHMARKS.md for what it
# measures and how. Traffic goes to 127.0.0.1 only; every wait has a limit;
# everything started is killed at the end.
#
# Knobs (environment):
#   BENCH_QUICK=1          small run (5 reloads, 5 s idle, ...) to try it out
#   BENCH_RELOADS=N        reloads per method (default 50)
#   BENCH_IDLE=SECONDS     idle measurement (default 60)
#   BENCH_SWAPS=N          swaps timed (default 200)
#   BENCH_EXEC_RUNS=N      start-up runs per command (default 1000)
#   BENCH_BROKEN=N         broken-release deploys per method (default 3)
#   BENCH_CONNECTIONS=N    wrk threads = connections (default 8)
#   BENCH_GAP=SECONDS      steady time between reloads (default 2)
#   BENCH_PARTS="reload broken crash probecost swap idle size exec"   run only these parts
#   BENCH_CRASHES=N        app crashes per method (default 20)
#   BENCH_PROBE_RELOADS=N  reloads per readiness method for its CPU cost (default 20)
#   BENCH_SCENARIOS="hupwatch-listen-notify gunicorn-hup ..."  only these methods
#   BENCH_KEEP=1           keep the work directory (logs, per-request data)
#   BENCH_TIMEOUT=SECONDS  hard limit for the whole run (default 3600)
#   HUPWATCH=PATH          binary to measure (default ./hupwatch)
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)

# Debian packages the benchmark needs; installed when missing and we are root.
missing=
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v gunicorn >/dev/null 2>&1 || missing="$missing gunicorn"
command -v tini >/dev/null 2>&1 || missing="$missing tini"
command -v hyperfine >/dev/null 2>&1 || missing="$missing hyperfine"
command -v strip >/dev/null 2>&1 || missing="$missing binutils"
command -v supervisord >/dev/null 2>&1 || missing="$missing supervisor"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
if [ -n "$missing" ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "bench: installing:$missing" >&2
		export DEBIAN_FRONTEND=noninteractive
		timeout 600 apt-get update -qq >/dev/null || true
		# shellcheck disable=SC2086
		timeout 900 apt-get install -y -qq $missing >/dev/null
	else
		echo "bench: missing:$missing (install them, e.g. apt-get install$missing)" >&2
	fi
fi
for cmd in wrk gunicorn; do
	command -v "$cmd" >/dev/null 2>&1 || { echo "bench: $cmd is required" >&2; exit 1; }
done

HW=${HUPWATCH:-$ROOT/hupwatch}
if [ -z "${HUPWATCH:-}" ] && [ ! -x "$HW" ]; then
	make hupwatch
fi
[ -x "$HW" ] || { echo "bench: $HW not found; build it with 'make hupwatch'" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hupwatch-bench.XXXXXX")
cleanup() {
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "bench: work directory kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Measure a copy: the tree's binary may be rebuilt while we run. Note which
# source it was built from, as far as we can tell.
cp "$HW" "$WORK/hupwatch"
BENCH_SOURCE=unknown
if [ -z "${HUPWATCH:-}" ] && [ -f hupwatch.c ]; then
	BENCH_SOURCE="hupwatch.c sha256 $(sha256sum hupwatch.c | cut -c1-12) at start"
	if [ hupwatch.c -nt "$HW" ]; then
		BENCH_SOURCE="$BENCH_SOURCE; NOTE: hupwatch.c is newer than the binary"
	else
		BENCH_SOURCE="$BENCH_SOURCE; binary built after it"
	fi
	if [ -n "$(git status --porcelain -- hupwatch.c 2>/dev/null)" ]; then
		BENCH_SOURCE="$BENCH_SOURCE; hupwatch.c has uncommitted changes"
	fi
fi
export BENCH_SOURCE
CC=${CC:-cc}
for prog in swapchild stamp execlat; do
	$CC -O2 -Wall -Wextra -D_GNU_SOURCE -o "$WORK/$prog" "bench/$prog.c"
done

PYTHON=${PYTHON:-python3}
# The driver kills everything it started when it gets SIGTERM; timeout(1)
# sends that at BENCH_TIMEOUT, and SIGKILL 30 s later as a backstop. timeout
# runs in a process group of its own, so a Ctrl-C here is passed on by hand.
set +e
HUPWATCH="$WORK/hupwatch" BENCH_WORK="$WORK" \
	timeout -k 30 "${BENCH_TIMEOUT:-3600}" "$PYTHON" bench/bench.py &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' INT TERM HUP
wait "$child"
rc=$?
while kill -0 "$child" 2>/dev/null; do
	wait "$child"
	rc=$?
done
exit "$rc"
