#!/usr/bin/env python3
"""Stand-in for the harness self-test: the second of three cases outlives the timeout."""
import os
import sys
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import scenario  # noqa: E402

CASES = ["runs", "hangs", "never runs"]


def main(tap):
    with tap.case(CASES[0]):
        pass
    with tap.case(CASES[1]):
        time.sleep(600)


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=2)
