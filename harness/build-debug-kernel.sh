#!/bin/sh
# Build the debug kernel for the reliability tests into build/debug-kernel:
# the project kernel's configuration plus configs/debug.config (lockdep,
# KASAN, DEBUG_VM, DEBUG_PAGEALLOC, kmemleak, hung tasks, fault injection,
# suspend to idle).  Incremental like build-kernel.sh; prints the bzImage.
#
#   build-debug-kernel.sh [OUT]
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/harness/lib.sh"

out=${1:-$BUILD/debug-kernel}
exec "$top/harness/build-kernel.sh" "$TREE" "$out" \
	"$top/configs/project.config" "$top/configs/debug.config"
