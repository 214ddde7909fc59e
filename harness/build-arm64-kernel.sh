#!/bin/sh
# Build the arm64 guest kernel with 4 KiB or 64 KiB pages, cross-compiled
# with Debian's gcc-aarch64-linux-gnu, into build/arm64-kernel-4k or
# build/arm64-kernel-64k: the project kernel's configuration (the driver
# and its KUnit suites as modules, as on x86) plus configs/arm64.config
# (and configs/arm64-64k.config).  Incremental like build-kernel.sh;
# prints the Image's path.
#
#   build-arm64-kernel.sh 4K|64K [OUT]
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/harness/lib.sh"

[ $# -ge 1 ] || die "usage: $0 4K|64K [OUT]"
c=$top/configs
case $1 in
4K | 4k) size=4k pages= ;;
64K | 64k) size=64k pages=$c/arm64-64k.config ;;
*) die "page size must be 4K or 64K, not '$1'" ;;
esac
command -v "${CROSS_COMPILE:-aarch64-linux-gnu-}gcc" >/dev/null 2>&1 ||
	die "${CROSS_COMPILE:-aarch64-linux-gnu-}gcc not found: run 'make deps' (gcc-aarch64-linux-gnu)"

out=${2:-$BUILD/arm64-kernel-$size}
ARCH=arm64 JOBS=${JOBS:-2} exec "$top/harness/build-kernel.sh" "$TREE" "$out" \
	"$c/project.config" \
	"$c/arm64.config" $pages
