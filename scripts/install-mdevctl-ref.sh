#!/usr/bin/env bash
# install-mdevctl-ref.sh: install Debian 13's mdevctl 1.4.0 as a second
# reference beside the system's mdevctl, without touching the system's apt
# setup or C library.
#
#   scripts/install-mdevctl-ref.sh [--dir DIR] [--quiet] [--force]
#
# DIR (default /opt/mdevctl-1.4.0, or $MDEVKIT_MDEVCTL_1_4_DIR) receives
#   root/          mdevctl, libc6 and libgcc-s1 from Debian trixie, unpacked
#                  with dpkg-deb -x (nothing is installed into the system);
#   bin/mdevctl    a launcher that runs root/usr/bin/mdevctl through trixie's
#                  own dynamic loader and libraries (Debian 12's glibc is too
#                  old for it);
#   bin/lsmdev     the same launcher under mdevctl's other name;
#   PACKAGES       the exact package versions unpacked.
# The tests find it there (test/support/capabilities.ts; MDEVKIT_MDEVCTL_1_4
# names another launcher). It lives outside the checkout so that every clone
# on the machine, including CI's fresh one, shares one copy.
#
# The packages come through apt-get download with a private sources list and
# private state and cache directories (signed by the archive keys of Debian's
# debian-archive-keyring, which knows trixie's), so the download is verified
# as any apt download is. The mirror is http://deb.debian.org/debian unless
# $MDEVKIT_DEBIAN_MIRROR says otherwise.
#
# mdevctl 1.4.0 refuses to run unless /usr/lib/mdevctl/scripts.d/callouts and
# .../notifiers exist (its package ships them); this script creates those two
# empty directories on the host, and nothing else outside DIR.
#
# Idempotent: when DIR/bin/mdevctl already reports 1.4.0 it does nothing
# (unless --force). Needs root (for DIR and /usr/lib/mdevctl) and network
# access to the Debian mirror.
set -euo pipefail

dir=${MDEVKIT_MDEVCTL_1_4_DIR:-/opt/mdevctl-1.4.0}
quiet=0
force=0
want=1.4.0
mirror=${MDEVKIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || { echo "install-mdevctl-ref: --dir needs a value" >&2; exit 2; }; dir=$2; shift 2 ;;
    --dir=*) dir=${1#--dir=}; shift ;;
    --quiet | -q) quiet=1; shift ;;
    --force) force=1; shift ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-mdevctl-ref: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$dir" in /*) ;; *) dir=$PWD/$dir ;; esac

say() { [ "$quiet" = 1 ] || echo "install-mdevctl-ref: $*"; }
die() { echo "install-mdevctl-ref: $*" >&2; exit 1; }

# Which loader and library directory the unpacked libc6 provides.
case "$(dpkg --print-architecture 2>/dev/null || uname -m)" in
  amd64 | x86_64) arch=amd64 triplet=x86_64-linux-gnu loader=ld-linux-x86-64.so.2 ;;
  arm64 | aarch64) arch=arm64 triplet=aarch64-linux-gnu loader=ld-linux-aarch64.so.1 ;;
  *) die "no recipe for architecture $(uname -m) (amd64 and arm64 are known)" ;;
esac

[ "$(id -u)" = 0 ] || die "needs root (writes $dir and /usr/lib/mdevctl/scripts.d)"
for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || die "needs $tool (Debian or Ubuntu)"
done
[ -r "$keyring" ] || die "needs $keyring (apt-get install debian-archive-keyring)"

mkdir -p /usr/lib/mdevctl/scripts.d/callouts /usr/lib/mdevctl/scripts.d/notifiers

if [ "$force" = 0 ] && [ -x "$dir/bin/mdevctl" ] &&
  [ "$(RUST_BACKTRACE=0 "$dir/bin/mdevctl" --version 2>/dev/null)" = "mdevctl $want" ]; then
  say "mdevctl $want already at $dir/bin/mdevctl"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mdevctl-ref.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/empty" "$work/debs"
: >"$work/status"
echo "deb [arch=$arch signed-by=$keyring] $mirror trixie main" >"$work/sources.list"
# Every path apt would otherwise take from the system points into $work; the
# system's apt.conf.d is still read (proxies), never written.
apt_opts=(
  -o "Dir::Etc::SourceList=$work/sources.list"
  -o "Dir::Etc::SourceParts=$work/empty"
  -o "Dir::Etc::Preferences=$work/empty/preferences"
  -o "Dir::Etc::PreferencesParts=$work/empty"
  -o "Dir::State=$work"
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::State::status=$work/status"
  -o "Dir::Cache=$work/cache"
  -o "Dir::Cache::archives=$work/cache/archives"
  -o "Dir::Cache::pkgcache="
  -o "Dir::Cache::srcpkgcache="
  -o "APT::Architecture=$arch"
  -o "APT::Architectures=$arch"
  -o "APT::Sandbox::User=root"
)
say "fetching the trixie package index from $mirror"
apt-get "${apt_opts[@]}" -qq update >/dev/null || die "apt-get update of trixie failed"

version=$(apt-cache "${apt_opts[@]}" show --no-all-versions mdevctl 2>/dev/null |
  sed -n 's/^Version: //p' | head -n1)
case "$version" in
  "$want"-*) ;;
  "") die "trixie has no mdevctl package" ;;
  *) die "trixie's mdevctl is $version, not $want: update this script's recipe" ;;
esac

say "downloading mdevctl $version, libc6 and libgcc-s1"
(cd "$work/debs" && apt-get "${apt_opts[@]}" -qq download "mdevctl=$version" libc6 libgcc-s1 >/dev/null) ||
  die "apt-get download failed"

new="$dir.new.$$"
rm -rf "$new"
mkdir -p "$new/root" "$new/bin"
for deb in "$work"/debs/*.deb; do
  dpkg-deb -x "$deb" "$new/root"
  dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb" >>"$new/PACKAGES"
done

# --argv0 keeps the name the launcher was called by (mdevctl acts as lsmdev
# when called so); paths are absolute, so the launcher works from anywhere.
cat >"$new/bin/mdevctl" <<EOF
#!/bin/sh
# mdevctl $want from Debian trixie, run through its own C library.
# Written by mdevkit's scripts/install-mdevctl-ref.sh; see PACKAGES beside bin/.
exec "$dir/root/usr/lib/$triplet/$loader" --library-path "$dir/root/usr/lib/$triplet" \\
  --argv0 "\$0" "$dir/root/usr/bin/mdevctl" "\$@"
EOF
chmod 755 "$new/bin/mdevctl"
ln -s mdevctl "$new/bin/lsmdev"

rm -rf "$dir.old"
if [ -e "$dir" ]; then mv "$dir" "$dir.old"; fi
mv "$new" "$dir"
rm -rf "$dir.old"

got=$(RUST_BACKTRACE=0 "$dir/bin/mdevctl" --version 2>&1) || die "the installed mdevctl does not run: $got"
[ "$got" = "mdevctl $want" ] || die "the installed mdevctl says '$got', not 'mdevctl $want'"
say "mdevctl $want installed at $dir/bin/mdevctl"
