#!/bin/sh
# Run the series' KUnit suites (virtio_balloon, virtio_balloon_hostile,
# page_reporting) on arm64 with kunit.py: a cross-built kernel booted under
# qemu-system-aarch64 -M virt (TCG, 1 GiB).
#
# Usage: harness/kunit-arm64.sh 4K|64K
#
# Environment:
#   TREE     kernel tree with the series (default build/linux)
#   OUT      kunit.py build directory (default build/kunit-arm64-<size>);
#            kept, so that a second run only rebuilds what changed
#   JOBS     make jobs (default 2)
#   TIMEOUT  seconds kunit.py waits for the tests (default 900; they take
#            about a minute under TCG)
#
# The options come from configs/arm64-kunit.config; the page size is added
# with --kconfig_add.  The kernel reboots 1 s after a panic, which ends
# QEMU (-no-reboot): a test that panics the guest fails the run at once
# instead of after TIMEOUT.  Needs Debian's gcc-aarch64-linux-gnu and
# qemu-system-arm.  Prints kunit.py's output (results and summary) and
# exits non-zero if kunit.py failed, a test failed or crashed, the output
# did not parse, or no test ran at all.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)

die() {
	printf 'ERROR: %s\n' "$*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: $0 4K|64K"
case $1 in
4K | 4k)
	size=4k
	pages=CONFIG_ARM64_4K_PAGES=y
	;;
64K | 64k)
	size=64k
	pages=CONFIG_ARM64_64K_PAGES=y
	;;
*)
	die "page size must be 4K or 64K, not '$1'"
	;;
esac

TREE=${TREE:-$top/build/linux}
OUT=${OUT:-$top/build/kunit-arm64-$size}
JOBS=${JOBS:-2}
TIMEOUT=${TIMEOUT:-900}
kunitconfig=$top/configs/arm64-kunit.config

[ -x "$TREE/tools/testing/kunit/kunit.py" ] ||
	die "no kernel tree at $TREE (make tree, or set TREE)"
[ -f "$kunitconfig" ] || die "missing $kunitconfig"
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 ||
	die "aarch64-linux-gnu-gcc not found: apt-get install gcc-aarch64-linux-gnu"
command -v qemu-system-aarch64 >/dev/null 2>&1 ||
	die "qemu-system-aarch64 not found: apt-get install qemu-system-arm"

mkdir -p "$OUT"
log=$OUT/kunit-arm64.log
rcfile=$OUT/kunit-arm64.rc
rm -f "$rcfile"

start=$(date +%s)
# kunit.py and the kernel's scripts want the system python3.
{
	rc=0
	PATH=/usr/bin:$PATH "$TREE/tools/testing/kunit/kunit.py" run \
		--arch=arm64 --cross_compile=aarch64-linux-gnu- \
		--build_dir="$OUT" --kunitconfig="$kunitconfig" \
		--kconfig_add "$pages" --jobs="$JOBS" \
		--kernel_args panic=1 --timeout="$TIMEOUT" 2>&1 || rc=$?
	echo "$rc" >"$rcfile"
} | tee "$log"
end=$(date +%s)

rc=$(cat "$rcfile" 2>/dev/null || echo 1)
summary=$(grep 'Testing complete\. Ran' "$log" | tail -n 1 || true)
ran=$(printf '%s\n' "$summary" | sed -n 's/.*Ran \([0-9][0-9]*\) tests.*/\1/p')
failed=$(printf '%s\n' "$summary" | sed -n 's/.*failed: \([0-9][0-9]*\).*/\1/p')
crashed=$(printf '%s\n' "$summary" | sed -n 's/.*crashed: \([0-9][0-9]*\).*/\1/p')
errors=$(printf '%s\n' "$summary" | sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p')

echo "kunit-arm64 $size: kunit.py exit $rc, ${ran:-no} tests, $((end - start)) s (log: $log)"
[ "$rc" -eq 0 ] || die "kunit.py failed (exit $rc)"
[ "${ran:-0}" -gt 0 ] || die "no test ran"
[ "${failed:-0}" -eq 0 ] || die "$failed test(s) failed"
[ "${crashed:-0}" -eq 0 ] || die "$crashed test(s) crashed"
[ "${errors:-0}" -eq 0 ] || die "$errors error(s) parsing the results"
exit 0
