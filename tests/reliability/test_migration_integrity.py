#!/usr/bin/env python3
"""The live migration integrity scenario on the debug kernel, in rounds.

Each round runs tests/e2e/test_hint_integrity.py as a child process (a
busy guest with a checksummed working set and a churn loop migrated over
TCP to a second QEMU, free page hinting on, everything verified on the
destination, no kernel report on either console) with the debug kernel,
rlib's command line (``DEBUG_APPEND``) and its boot timeout.  A round
passes when every case of the scenario passed; its output is kept as
diagnostics.

INTEGRITY_ROUNDS (1) sets the rounds; make soak runs one per minute of
SOAK_SECONDS, each a fresh pair of guests and a fresh migration.  The
pages the destination verified and the bad pages it found go to the soak
summary.
"""

import os
import re
import subprocess
import sys

import rlib
from rlib import check, lib

ROUNDS = lib.env_int("INTEGRITY_ROUNDS", 1)
SCENARIO = os.path.join(rlib.TOP, "tests/e2e/test_hint_integrity.py")
# The scenario takes about a minute on the debug kernel.
ROUND_TIMEOUT = 600
# "check (rc 0): pages 32768 verified 89848 rewritten 14270 bad 0"
CHECKED = re.compile(r"check \(rc -?\d+\): pages \d+ verified (\d+) rewritten \d+ bad (\d+)")


def main(tap):
    env = dict(os.environ)
    env["VM_APPEND"] = " ".join(filter(None, [env.get("VM_APPEND", ""), rlib.DEBUG_APPEND]))
    env.setdefault("INTEGRITY_BOOT_TIMEOUT", str(int(rlib.BOOT_TIMEOUT)))
    for i in range(1, ROUNDS + 1):
        with tap.case(f"round {i}: the migration integrity scenario passes on the debug kernel"):
            try:
                p = subprocess.run([sys.executable, SCENARIO], env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   timeout=ROUND_TIMEOUT)
                out, rc = p.stdout, p.returncode
            except subprocess.TimeoutExpired as e:
                out, rc = e.stdout or "", f"killed after {ROUND_TIMEOUT} s"
                if isinstance(out, bytes):
                    out = out.decode(errors="replace")
            for line in out.splitlines():
                tap.diag(line)
            m = CHECKED.search(out)
            if m:
                rlib.soak("pages_verified", int(m[1]))
                rlib.soak("bad_pages", int(m[2]))
            check.assertEqual(rc, 0, "the scenario failed")


if __name__ == "__main__":
    rlib.run(main, plan=ROUNDS)
