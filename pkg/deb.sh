#!/bin/sh
# pkg/deb.sh - `make deb`: a Debian binary package of hupwatch, lintian-clean, built with dpkg-deb
# alone (no debian/ directory, no debhelper):
#
#   build/hupwatch_VERSION-REVISION_ARCH.deb
#     /usr/bin/hupwatch                              stripped as dh_strip does
#     /usr/share/man/man1/hupwatch.1.gz              gzip -9n
#     /usr/share/doc/hupwatch/copyright              machine-readable, from LICENSE
#     /usr/share/doc/hupwatch/changelog.Debian.gz
#     /usr/share/lintian/overrides/hupwatch          see below
#
# VERSION is hupwatch.c's; Depends is computed by dpkg-shlibdeps, Installed-Size as dpkg-gencontrol
# computes it, file dates are SOURCE_DATE_EPOCH (default: the last commit's date), so the same
# sources give the same package. Needs dpkg-dev (dpkg-shlibdeps), binutils (strip), gzip.
#
# Knobs (environment): DEB_REVISION (default 1), DEB_MAINTAINER, DEB_OUT (default build),
# SOURCE_DATE_EPOCH.

set -eu
cd "$(dirname "$0")/.." || exit 1

die() {
	echo "deb: $*" >&2
	exit 1
}

revision=${DEB_REVISION:-1}
maintainer=${DEB_MAINTAINER:-The hupwatch developers <hupwatch@users.noreply.github.com>}
out=${DEB_OUT:-build}
version=$(sed -n 's/^#define VERSION "\([0-9A-Za-z.+~]*\)"$/\1/p' hupwatch.c)
[ -n "$version" ] || die "no #define VERSION \"X.Y.Z\" in hupwatch.c"
[ -x hupwatch ] || die "build ./hupwatch first (make deb does)"
for tool in dpkg dpkg-deb dpkg-shlibdeps strip gzip; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found (Debian: apt-get install dpkg-dev binutils gzip)"
done
arch=$(dpkg --print-architecture)
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || stat -c %Y hupwatch.c)
fi
export SOURCE_DATE_EPOCH

umask 022
work=$(mktemp -d "${TMPDIR:-/tmp}/hupwatch-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'rm -rf "$work"; exit 1' HUP INT TERM
# dpkg-shlibdeps wants a debian/control and the package's files under debian/PACKAGE.
mkdir -p "$work/debian"
root=$work/debian/hupwatch
doc=$root/usr/share/doc/hupwatch
install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/man/man1" "$doc" \
	"$root/usr/share/lintian/overrides"

install -m 0755 hupwatch "$root/usr/bin/hupwatch"
strip --remove-section=.comment --remove-section=.note "$root/usr/bin/hupwatch"
gzip -9n <hupwatch.1 >"$root/usr/share/man/man1/hupwatch.1.gz"

# copyright: the LICENSE (MIT, "Expat" in Debian's terms) in the copyright-format 1.0.
holder=$(sed -n 's/^Copyright (c) //p' LICENSE | head -n 1)
[ -n "$holder" ] || die "no 'Copyright (c) ...' line in LICENSE"
{
	echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
	echo "Upstream-Name: hupwatch"
	echo
	echo "Files: *"
	echo "Copyright: $holder"
	echo "License: Expat"
	sed -n '/^Permission is hereby granted/,$p' LICENSE | sed 's/^$/./; s/^/ /'
} >"$doc/copyright"

# lintian expects a first Debian revision to close the ITP bug of an upload to Debian; this package
# is not one.
{
	echo "# Not uploaded to Debian: no ITP bug for the first changelog entry to close."
	echo "hupwatch: initial-upload-closes-no-bugs"
} >"$root/usr/share/lintian/overrides/hupwatch"

date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
{
	echo "hupwatch ($version-$revision) unstable; urgency=medium"
	echo
	echo "  * hupwatch $version, packaged by \`make deb\`."
	echo
	echo " -- $maintainer  $date"
} | gzip -9n >"$doc/changelog.Debian.gz"

# dpkg-shlibdeps 1.21 warns that "binaries to analyze should already be installed in their
# package's directory" even when they are: that line is dropped, any other is shown.
depends=$(cd "$work" && printf 'Source: hupwatch\n\nPackage: hupwatch\nArchitecture: any\n' \
	>debian/control && dpkg-shlibdeps -O -e debian/hupwatch/usr/bin/hupwatch 2>shlibdeps.err) || {
	cat "$work/shlibdeps.err" >&2
	die "dpkg-shlibdeps failed"
}
grep -v "binaries to analyze should already be installed" "$work/shlibdeps.err" >&2 || :
depends=${depends#shlibs:Depends=}
case $depends in
libc6*) ;;
*) die "unexpected Depends from dpkg-shlibdeps: '$depends'" ;;
esac

# Installed-Size as dpkg-gencontrol counts it: each file or symlink its size in KiB rounded up,
# each directory (the top one too) 1.
size=$(find "$root" -path "$root/DEBIAN" -prune -o \( -type f -o -type l \) -printf '%s\n' -o -printf '1024\n' |
	awk '{ n += int(($1 + 1023) / 1024) } END { print n }')

cat >"$root/DEBIAN/control" <<CONTROL
Package: hupwatch
Version: $version-$revision
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: $depends
Section: admin
Priority: optional
Description: run a server and replace it on SIGHUP without losing requests
 hupwatch runs a server as its child and, on SIGHUP, starts a new copy and
 stops the old one only once the new one is ready, so a deploy is a symlink
 swap and one signal. It binds the listening sockets itself and passes them to
 every generation by systemd's socket-activation protocol (LISTEN_FDS), so no
 connection is refused during a reload. Readiness is a warm-up time, the
 application's sd_notify READY=1, or a probe command; a release that fails to
 start leaves the old one serving. hupwatch --reload waits for the outcome and
 reports it in its exit status.
CONTROL
(cd "$root" && find usr -type f -exec md5sum {} + | LC_ALL=C sort -k 2) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb=$out/hupwatch_${version}-${revision}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
