#!/usr/bin/env python3
"""The live migration integrity scenario on the debug kernel, in rounds.

Each round is balloon_harness/integrity.py's (a busy guest with a
checksummed working set and a churn loop migrated over TCP to a second
QEMU, free page hinting on, everything verified on the destination, no
kernel report on either console), on the debug kernel with rlib's
command line (``DEBUG_APPEND``) and boot timeout: a fresh pair of guests
and a fresh migration each round.

INTEGRITY_ROUNDS (1) sets the rounds; make soak runs one per minute of
SOAK_SECONDS.  The pages the destination verified and the bad pages it
found go to the soak summary.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
import rlib  # noqa: E402  (tests/reliability/rlib.py)
from balloon_harness import balloon, integrity, scenario  # noqa: E402

ROUNDS = scenario.env_int("INTEGRITY_ROUNDS", 1)
ROUND_NAMES = [integrity.case_names(f"round {i}: ") for i in range(1, ROUNDS + 1)]
# The cases, in the order they run (registered: the plan is their number).
CASES = [name for names in ROUND_NAMES for name in names]
# A round takes about a minute on the debug kernel; 600 s each leaves room.
TIMEOUT = 600 * ROUNDS


def main(tap):
    for names in ROUND_NAMES:
        final = integrity.run_round(tap, names, rlib.VM)
        if final:
            balloon.soak("pages_verified", final.get("verified", 0))
            balloon.soak("bad_pages", final.get("bad", 0))


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
