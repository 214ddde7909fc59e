#!/usr/bin/env python3
"""Stand-in for the harness self-test: two cases that pass, no VM."""
import sys, os  # noqa: E401
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import scenario  # noqa: E402

CASES = ["first passes", "second passes"]


def main(tap):
    for name in CASES:
        with tap.case(name):
            scenario.check.assertTrue(True)


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=30)
