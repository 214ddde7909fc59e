#!/bin/sh
# Run every end-to-end scenario (tests/e2e/test_*.py) and print its TAP.
#
#   tests/e2e/run-all.sh [test_name.py ...]
#
# Each scenario boots its own VMs (KERNEL, INITRD and ACCEL are passed
# through; see harness/vm.py) and is killed after E2E_TIMEOUT seconds
# (default 600).  Prints a per-scenario wall time and a summary line;
# exits non-zero if any scenario failed.
set -u

dir=$(cd "$(dirname "$0")" && pwd)
limit=${E2E_TIMEOUT:-600}
# Keep __pycache__ out of the source tree.
export PYTHONDONTWRITEBYTECODE=1

if [ $# -eq 0 ]; then
	set -- "$dir"/test_*.py
fi

failed=""
total_start=$(date +%s)
for t in "$@"; do
	case "$t" in
	*/*) ;;
	*) t=$dir/$t ;;
	esac
	name=$(basename "$t" .py)
	echo "# ==== $name"
	start=$(date +%s)
	timeout -k 10 "$limit" python3 "$t" </dev/null
	rc=$?
	[ $rc -eq 124 ] && echo "# $name: killed after $limit s"
	echo "# ==== $name: rc $rc, $(( $(date +%s) - start )) s"
	[ $rc -eq 0 ] || failed="$failed $name"
done

echo "# e2e: $# scenario(s) in $(( $(date +%s) - total_start )) s"
if [ -n "$failed" ]; then
	echo "# e2e: FAILED:$failed"
	exit 1
fi
echo "# e2e: all passed"
