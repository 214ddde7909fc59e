#!/usr/bin/env python3
"""Stand-in for the harness self-test: SIGKILL in the second of three cases."""
import os
import signal
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import scenario  # noqa: E402

CASES = ["runs", "is killed", "never runs"]


def main(tap):
    with tap.case(CASES[0]):
        pass
    with tap.case(CASES[1]):
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=30)
