#!/usr/bin/env python3
"""Free page hinting loses no guest data: a live migration to a real destination.

One round of balloon_harness/integrity.py on the project kernel (its
docstring says what is asserted and why, and the INTEGRITY_* settings);
tests/reliability/test_migration_integrity.py runs it on the debug kernel.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import integrity, scenario  # noqa: E402
from balloon_harness.vm import VM  # noqa: E402

# The cases, in the order they run (registered: the plan is their number).
CASES = integrity.case_names()
TIMEOUT = 600


def main(tap):
    integrity.run_round(tap, CASES, lambda **options: VM(boot_timeout=integrity.BOOT_TIMEOUT,
                                                         **options))


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
