#!/bin/sh
# The end-to-end stage, or some of its scenarios, as make check-e2e runs it:
#
#   tests/e2e/run-all.sh [test_name.py ...]
#
# Prints the stage's KTAP document and "N passed, N failed"
# (harness/balloon_harness/check.py); KERNEL, INITRD and ACCEL pass through.
top=$(cd "$(dirname "$0")/../.." && pwd)
PYTHONPATH=$top/harness PYTHONDONTWRITEBYTECODE=1 exec python3 -m balloon_harness.check e2e "$@"
