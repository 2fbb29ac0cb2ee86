#!/bin/sh
# test/deps.sh - install what `make check`, the other test targets and CI need,
# and only what is missing. Silent when everything is there.
#
# As root on Debian: one `apt-get update`, then one `apt-get install -y
# --no-install-recommends` of the missing packages. Otherwise it names what is
# missing and exits 1.

set -u

missing=

# want PACKAGE [COMMAND]: with COMMAND, the package counts as present when the
# command is on PATH (it may come from elsewhere, e.g. python3 from pyenv);
# without, dpkg decides. Off Debian a library cannot be checked this way and
# is assumed present (the build says otherwise soon enough).
want() {
	if [ $# -ge 2 ]; then
		command -v "$2" >/dev/null 2>&1 && return 0
	elif command -v dpkg-query >/dev/null 2>&1; then
		case $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) in
		*" installed") return 0 ;;
		esac
	else
		return 0
	fi
	missing="$missing $1"
}

# build
want gcc gcc
want make make
want libc6-dev
want pkg-config pkg-config
want libcmocka-dev
# clang, with its sanitizer and libFuzzer runtime (libclang-rt-dev is the
# Debian package that follows the default clang: libclang-rt-14-dev on 12)
want clang clang
want libclang-rt-dev
# tests, end-to-end runs, bench
want python3 python3
want gunicorn gunicorn
want supervisor supervisord
want runit runsv
want wrk wrk
want util-linux unshare
want procps pgrep
want iproute2 ss
# test/test_systemd.py boots the host's own systemd in a container (nsenter is util-linux's)
want systemd
want systemd-container systemd-nspawn
# examples/ansible/deploy.yml is run by test/test_deploy.py (python3-apt: its apt task)
want ansible-core ansible-playbook
want python3-apt
# make deb (pkg/deb.sh) and test/test_deb.py
want dpkg-dev dpkg-shlibdeps
want binutils strip
want lintian lintian
# the README's recipes, run by test/test_recipes.py (curl: their readiness probes)
want uwsgi uwsgi
want uwsgi-plugin-python3
want python3-uvicorn
want puma puma
want ruby-sd-notify   # puma's READY=1 (--notify)
want nodejs node
want lighttpd lighttpd
want nginx-light nginx
want curl curl
# docs, hardening, analysis
want mandoc mandoc
want valgrind valgrind
want cppcheck cppcheck
want clang-tidy clang-tidy
want devscripts hardening-check

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "test/deps.sh: missing:$missing" >&2
	if command -v apt-get >/dev/null 2>&1; then
		echo "test/deps.sh: install them with: sudo apt-get install -y --no-install-recommends$missing" >&2
	else
		echo "test/deps.sh: install them (Debian package names) with your system's package manager" >&2
	fi
	exit 1
fi

echo "test/deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive

# Installing supervisor or runit must not start their system-wide daemons on a
# CI machine: deny service starts for the length of the install, unless the
# machine already has a policy of its own.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && made_policy=1
	trap 'rm -f "$policy"' EXIT
	trap 'rm -f "$policy"; exit 1' HUP INT TERM
fi

status=0
apt-get update -qq >/dev/null || status=$?
if [ "$status" -eq 0 ]; then
	# shellcheck disable=SC2086 # word splitting of the list is wanted
	apt-get install -y -qq --no-install-recommends $missing >/dev/null || status=$?
fi

[ -n "$made_policy" ] && rm -f "$policy"
if [ "$status" -ne 0 ]; then
	echo "test/deps.sh: apt-get failed (status $status) installing:$missing" >&2
	exit 1
fi
exit 0
