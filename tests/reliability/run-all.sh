#!/bin/sh
# Run the reliability scenarios (tests/reliability/test_*.py) against the
# debug kernel and print one TAP stream: each scenario's own TAP as an
# indented subtest, then "ok N - scenario" for it.
#
#   tests/reliability/run-all.sh [test_name.py ...]
#
# KERNEL defaults to build/debug-kernel's bzImage (tests/reliability/rlib.py);
# each scenario is killed after RELIABILITY_TIMEOUT seconds (default 900).
# The last lines add up the scenarios' "# soak: NAME VALUE" numbers:
# duration, pages verified, faults injected, bad pages, removal cycles.
set -u

dir=$(cd "$(dirname "$0")" && pwd)
limit=${RELIABILITY_TIMEOUT:-900}
export PYTHONDONTWRITEBYTECODE=1

if [ $# -eq 0 ]; then
	set -- "$dir"/test_*.py
fi

log=$(mktemp)
status=$(mktemp)
trap 'rm -f "$log" "$status"' EXIT
echo "TAP version 13"
echo "1..$#"
n=0
failed=0
total_start=$(date +%s)
for t in "$@"; do
	case "$t" in
	*/*) ;;
	*) t=$dir/$t ;;
	esac
	n=$((n + 1))
	name=$(basename "$t" .py)
	start=$(date +%s)
	{ timeout -k 10 "$limit" python3 "$t" </dev/null 2>&1; echo $? >"$status"; } |
		tee -a "$log" | awk '{ print "    " $0; fflush() }'
	rc=$(cat "$status")
	[ "$rc" = 124 ] && echo "    # $name: killed after $limit s"
	if [ "$rc" = 0 ]; then
		echo "ok $n - $name # $(( $(date +%s) - start )) s"
	else
		echo "not ok $n - $name # rc $rc, $(( $(date +%s) - start )) s"
		failed=$((failed + 1))
	fi
done

took=$(( $(date +%s) - total_start ))
awk -v took="$took" '
	$1 == "#" && $2 == "soak:" { sum[$3] += $4 }
	END {
		printf "# soak: duration %d s, pages verified %d, faults injected %d, bad pages %d, removal cycles %d\n",
			took, sum["pages_verified"], sum["faults_injected"], sum["bad_pages"], sum["removal_cycles"]
	}' "$log"
echo "# reliability: $((n - failed)) passed, $failed failed in $took s"
[ "$failed" = 0 ]
