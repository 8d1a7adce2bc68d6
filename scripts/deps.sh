#!/bin/sh
# Install the Debian packages cgc needs to build, test and benchmark, if any is
# missing.  Safe to run repeatedly; uses sudo when not root.
set -e
need=""
have() { dpkg -s "$1" >/dev/null 2>&1; }
for p in cmake make gcc g++ clang libclang-rt-dev libgc-dev libmimalloc-dev valgrind pkgconf; do
  have "$p" || need="$need $p"
done
[ -z "$need" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing:$need"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
