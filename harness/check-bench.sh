#!/bin/sh
# make check's benchmark stage: run every benchmark scenario once at a tiny
# size (BENCH_QUICK=1) on both kernels and report the run as one TAP test.
# Times are not asserted: make check must not depend on the machine's speed.
top=$(cd "$(dirname "$0")/.." && pwd)
status=$(mktemp)
echo "TAP version 13"
echo "1..1"
{ BENCH_QUICK=1 python3 "$top/bench/run.py" 2>&1; echo $? >"$status"; } | sed 's/^/# /'
rc=$(cat "$status")
rm -f "$status"
if [ "$rc" = 0 ]; then
	echo "ok 1 - every benchmark scenario runs on both kernels (BENCH_QUICK=1)"
else
	echo "not ok 1 - every benchmark scenario runs on both kernels (BENCH_QUICK=1): exit $rc"
	exit 1
fi
