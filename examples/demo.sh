#!/bin/sh
# examples/demo.sh - `make demo`: hupwatch replacing a server five times while
# requests flow, and the count of requests that failed (it should be 0).
#
#   hupwatch -k --listen 127.0.0.1:0 --notify -- python3 examples/demo-server.py
#
# hupwatch holds the listening socket; each generation gets it as fd 3
# (LISTEN_FDS) and says READY=1 when it serves. Exits 1 if any request failed
# or anything did not happen in time. Leaves nothing running.

set -eu
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
RELOADS=${RELOADS:-5}

[ -x ./hupwatch ] || ${MAKE:-make} -s hupwatch

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hupwatch-demo.XXXXXX")
log=$tmp/hupwatch.log
hw=
client=

say() { printf '%s\n' "demo: $*"; }

# Stop whatever is still running (hupwatch -k stops its generations).
cleanup() {
	if [ -n "$client" ] && kill -0 "$client" 2>/dev/null; then
		kill -TERM "$client" 2>/dev/null || :
		wait "$client" 2>/dev/null || :
	fi
	if [ -n "$hw" ] && kill -0 "$hw" 2>/dev/null; then
		kill -TERM "$hw" 2>/dev/null || :
		wait "$hw" 2>/dev/null || :
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# fail MESSAGE: on stderr, as it may be called inside $(...).
fail() {
	say "FAILED: $*" >&2
	say "hupwatch log:" >&2
	sed 's/^/    /' "$log" >&2
	exit 1
}

# wait_log SECONDS EXTENDED-REGEX: until a line of the log matches; prints it.
wait_log() {
	n=$(($1 * 10))
	while [ "$n" -gt 0 ]; do
		if line=$(grep -E -m1 -- "$2" "$log"); then
			printf '%s\n' "$line"
			return 0
		fi
		kill -0 "$hw" 2>/dev/null || fail "hupwatch exited while waiting for: $2"
		sleep 0.1
		n=$((n - 1))
	done
	fail "not seen within $1s: $2"
}

say "starting: ./hupwatch -k --listen 127.0.0.1:0 --notify -- $PYTHON examples/demo-server.py"
./hupwatch -k --listen 127.0.0.1:0 --notify -- "$PYTHON" examples/demo-server.py 2>"$log" &
hw=$!

line=$(wait_log 10 'info: listening on 127\.0\.0\.1:[0-9]+ \(fd 3\)')
port=$(printf '%s\n' "$line" | sed -E 's/.*listening on 127\.0\.0\.1:([0-9]+) .*/\1/')
wait_log 10 'info: gen 1 pid [0-9]+ ready after' >/dev/null
say "hupwatch pid $hw serves http://127.0.0.1:$port/ (gen 1 ready)"

"$PYTHON" examples/demo-client.py 127.0.0.1 "$port" --threads 4 >"$tmp/client.out" &
client=$!
say "client sending requests from 4 threads"
sleep 1

gen=1
while [ "$gen" -le "$RELOADS" ]; do
	gen=$((gen + 1))
	t0=$(date +%s.%N)
	kill -HUP "$hw"
	ready=$(wait_log 15 "info: gen $gen pid [0-9]+ ready after")
	gone=$(wait_log 15 "info: gen $((gen - 1)) pid [0-9]+ (exited|killed)")
	t1=$(date +%s.%N)
	say "reload $((gen - 1)): SIGHUP -> ${ready#*info: } -> old ${gone#*info: gen $((gen - 1)) } ($(echo "$t1 - $t0" | awk '{printf "%.2fs", $1 - $3}'))"
	sleep 1
done

kill -TERM "$client"
client_status=0
wait "$client" || client_status=$?
client=

kill -TERM "$hw"
hw_status=0
wait "$hw" || hw_status=$?
hw=

echo
echo "==================== summary ===================="
cat "$tmp/client.out"
echo "reloads:     $RELOADS (kill -HUP), hupwatch exit status after SIGTERM with -k: $hw_status"
echo "hupwatch log (excerpt):"
grep -E '^hupwatch\[[0-9]+\]: ' "$log" | grep -E 'listening|reload requested|started|ready after|stopping|exited|killed|failed|SIGTERM|exiting' | sed 's/^/    /'
echo "================================================="

[ "$hw_status" -eq 0 ] || fail "hupwatch exited with status $hw_status"
# Every generation must be gone: -k stops them all before hupwatch exits.
# shellcheck disable=SC2013 # pids are words
for pid in $(sed -nE 's/.*info: gen [0-9]+ pid ([0-9]+) started.*/\1/p' "$log"); do
	! kill -0 "$pid" 2>/dev/null || fail "generation pid $pid still running after hupwatch exited"
done
if [ "$client_status" -ne 0 ]; then
	say "FAILED: some requests failed (see above)"
	exit 1
fi
say "OK: $RELOADS reloads, no failed request"
