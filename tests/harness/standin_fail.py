#!/usr/bin/env python3
"""Stand-in for the harness self-test: the second of three cases fails."""
import sys, os  # noqa: E401
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import scenario  # noqa: E402

CASES = ["passes", "fails", "passes after a failure"]


def main(tap):
    with tap.case(CASES[0]):
        pass
    with tap.case(CASES[1]):
        scenario.check.assertEqual(1, 2)
    with tap.case(CASES[2]):
        pass


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=30)
