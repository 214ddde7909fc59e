#!/bin/sh
# make check: every test of the project, in order of cost, with one summary.
#
#   1. the series: checkpatch --strict, git am onto the base, per-patch
#      build with W=1 and sparse            (harness/check-patches.sh)
#   2. KUnit suites and guest kselftests, in one boot, parsed by kunit.py
#                                            (tests/guest/run-in-guest.py)
#   3. end-to-end scenarios against QEMU     (tests/e2e/run-all.sh)
#   4. every benchmark scenario once at a tiny size, on the project and
#      the upstream kernel: proves make bench works, times nothing
#                                            (harness/check-bench.sh)
#   5. the debug kernel (KASAN, lockdep, kmemleak, DEBUG_VM, fault
#      injection) and short reliability scenarios on it: churn, faults,
#      freeze, migration integrity, OOM, removal; one point per scenario
#                                            (make check-debug)
#
# Every stage prints TAP; this script shows it as it comes, keeps it in
# build/check/, counts the results and ends with "N passed, N failed".
# Exits non-zero if any test failed or any stage broke.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/harness/lib.sh"
logs=$BUILD/check
rm -rf "$logs"
mkdir -p "$logs"
export PYTHONDONTWRITEBYTECODE=1

broken=""
# tee hides the exit status of the stage: keep it in a file.
run() {
	name=$1
	shift
	( "$@"; echo $? >"$logs/$name.rc" ) </dev/null 2>&1 | tee "$logs/$name.tap"
	rc=$(cat "$logs/$name.rc")
	[ "$rc" = 0 ] || broken="$broken $name(rc=$rc)"
}

cd "$top" || exit 1
for s in "patches harness/check-patches.sh" \
	 "guest tests/guest/run-in-guest.py" \
	 "e2e tests/e2e/run-all.sh" \
	 "bench harness/check-bench.sh" \
	 "debug make -s --no-print-directory check-debug"; do
	name=${s%% *}
	echo "==== $name: ${s#* }"
	start=$(date +%s)
	# shellcheck disable=SC2086  # the command's words
	run "$name" ${s#* }
	echo "==== $name: $(( $(date +%s) - start )) s, exit $rc"
done

# Count test points over all stages: "ok N", "not ok N", "# SKIP".
cat "$logs"/*.tap | awk -v broken="$broken" '
	/^ok [0-9]+/ && /# [Ss][Kk][Ii][Pp]/ { skip++; next }
	/^ok [0-9]+/ { pass++; next }
	/^not ok [0-9]+/ { fail++; next }
	END {
		if (broken != "") {
			printf "stages that exited non-zero:%s\n", broken
			if (fail == 0)
				fail = 1
		}
		printf "%d passed, %d failed", pass, fail
		if (skip)
			printf ", %d skipped", skip
		printf "\n"
		exit fail != 0
	}'
