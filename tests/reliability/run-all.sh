#!/bin/sh
# The debug stage, or some of its reliability scenarios, as make
# check-debug runs it (the debug kernel is built first, a test point):
#
#   tests/reliability/run-all.sh [test_name.py ...]
#
# Prints the stage's KTAP document and "N passed, N failed"
# (harness/balloon_harness/check.py).
top=$(cd "$(dirname "$0")/../.." && pwd)
PYTHONPATH=$top/harness PYTHONDONTWRITEBYTECODE=1 exec python3 -m balloon_harness.check debug "$@"
