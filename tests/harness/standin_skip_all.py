#!/usr/bin/env python3
"""Stand-in for the harness self-test: the host lacks what every case needs."""
import sys, os  # noqa: E401
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import scenario  # noqa: E402

CASES = ["needs a thing", "needs it too", "and so does this"]


def main(tap):
    tap.skip_rest("the stand-in host has no such thing")


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=30)
