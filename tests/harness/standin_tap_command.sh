#!/bin/sh
# Stand-in for the harness self-test: a TAP command whose plan says 3
# and that exits after its first point.
echo "TAP version 13"
echo "1..3"
echo "ok 1 - the first point"
exit 1
