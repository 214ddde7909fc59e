#!/usr/bin/env python3
"""Inflate and deflate without deflate-on-oom.

Proves that the driver follows the host's target exactly (QEMU's
``query-balloon`` actual equals the target after inflate and deflate),
that ballooned pages leave the guest's accounting (MemTotal falls by the
balloon size and comes back to the byte on deflate), that the per-page
vmstat counters agree, and that a target above RAM deflates completely.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import scenario  # noqa: E402
from balloon_harness.scenario import MiB, check  # noqa: E402
from balloon_harness.vm import VM  # noqa: E402

GUEST_MIB = 512
TARGET_MIB = 256
# MemTotal moves by exactly the ballooned pages; allow a little slack for
# anything else that changes managed pages meanwhile.
MEMTOTAL_SLACK_KB = 4 * 1024


# The cases, in the order they run (registered: the plan is their number).
INFLATE = f"inflate to {TARGET_MIB} MiB: query-balloon actual == target exactly"
MEMTOTAL_FELL = f"inflate: MemTotal fell by {GUEST_MIB - TARGET_MIB} MiB (within 4 MiB)"
VMSTAT_INFLATE = "inflate: /proc/vmstat balloon_inflate counted every ballooned page"
DEFLATE = f"deflate to {GUEST_MIB} MiB: query-balloon actual == RAM exactly"
MEMTOTAL_BACK = "deflate: MemTotal back to its initial value exactly, balloon_deflate counted"
ABOVE_RAM = "a target above RAM is clamped: from 384 MiB, a 2x-RAM target gives actual == RAM"
CASES = [INFLATE, MEMTOTAL_FELL, VMSTAT_INFLATE, DEFLATE, MEMTOTAL_BACK, ABOVE_RAM]
TIMEOUT = 600


def balloon_to(tap, vm, target_mib, expect_mib=None):
    """Set the target to ``target_mib`` MiB; return ``query-balloon``'s actual.

    Waits until actual equals ``expect_mib`` (default: the target).
    """
    expect_mib = target_mib if expect_mib is None else expect_mib
    start = time.monotonic()
    actual = vm.resize(target_mib * MiB, timeout=60, expect=expect_mib * MiB)
    tap.diag(f"target {target_mib} MiB: actual {actual / MiB:.2f} MiB "
             f"after {time.monotonic() - start:.1f} s")
    return actual


def main(tap):
    with VM(mem_mib=GUEST_MIB, name="inflate-deflate") as vm:
        total0 = vm.meminfo()["MemTotal"]
        stat0 = vm.vmstat()
        # The vmstat counters count the guest's pages (64 KiB on arm64 with 64K pages).
        pages_per_mib = 1024 // vm.page_kib()
        tap.diag(f"initial MemTotal {total0} kB")

        with tap.case(INFLATE):
            check.assertEqual(balloon_to(tap, vm, TARGET_MIB), TARGET_MIB * MiB)

        with tap.case(MEMTOTAL_FELL):
            total = vm.meminfo()["MemTotal"]
            tap.diag(f"MemTotal {total0} -> {total} kB (-{total0 - total} kB)")
            check.assertAlmostEqual(total0 - total, (GUEST_MIB - TARGET_MIB) * 1024,
                                    delta=MEMTOTAL_SLACK_KB)

        with tap.case(VMSTAT_INFLATE):
            inflated = vm.vmstat()["balloon_inflate"] - stat0["balloon_inflate"]
            check.assertEqual(inflated, (GUEST_MIB - TARGET_MIB) * pages_per_mib)

        with tap.case(DEFLATE):
            check.assertEqual(balloon_to(tap, vm, GUEST_MIB), GUEST_MIB * MiB)

        with tap.case(MEMTOTAL_BACK):
            total = vm.meminfo()["MemTotal"]
            deflated = vm.vmstat()["balloon_deflate"] - stat0["balloon_deflate"]
            check.assertEqual(total, total0)
            check.assertEqual(deflated, (GUEST_MIB - TARGET_MIB) * pages_per_mib)

        with tap.case(ABOVE_RAM):
            check.assertEqual(balloon_to(tap, vm, 384), 384 * MiB)
            check.assertEqual(balloon_to(tap, vm, 2 * GUEST_MIB, GUEST_MIB), GUEST_MIB * MiB)
            check.assertEqual(vm.meminfo()["MemTotal"], total0)


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
