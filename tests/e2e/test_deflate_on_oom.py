#!/usr/bin/env python3
"""Inflate with deflate-on-oom: the balloon is borrowed memory, not removed memory.

With VIRTIO_BALLOON_F_DEFLATE_ON_OOM negotiated the driver must not take
ballooned pages out of the guest's managed-page accounting: the inflate
still reaches the target exactly and MemFree falls by the balloon size,
but MemTotal stays put.  Under memory pressure the driver gives pages back
instead of letting the OOM killer run: an allocation larger than the free
memory succeeds and QEMU's actual grows.
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
# MemFree also moves with whatever the guest does meanwhile (the agent's
# own commands); a few MiB either way.
MEMFREE_SLACK_KB = 8 * 1024
# How far past the free memory the pressure test allocates.
OVERCOMMIT_MIB = 64


# The cases, in the order they run (registered: the plan is their number).
INFLATE = f"inflate to {TARGET_MIB} MiB: query-balloon actual == target exactly"
MEMTOTAL_KEPT = "inflate: MemTotal unchanged (ballooned pages stay accounted)"
MEMFREE_FELL = f"inflate: MemFree fell by {GUEST_MIB - TARGET_MIB} MiB (within 8 MiB)"
PRESSURE = (f"pressure: allocating MemFree + {OVERCOMMIT_MIB} MiB succeeds by deflating, "
            "no OOM kill")
CASES = [INFLATE, MEMTOTAL_KEPT, MEMFREE_FELL, PRESSURE]
TIMEOUT = 600


def main(tap):
    with VM(mem_mib=GUEST_MIB, deflate_on_oom=True, name="deflate-on-oom") as vm:
        before = vm.meminfo()
        tap.diag(f"initial MemTotal {before['MemTotal']} kB, MemFree {before['MemFree']} kB")

        with tap.case(INFLATE):
            start = time.monotonic()
            actual = vm.resize(TARGET_MIB * MiB, timeout=60)
            tap.diag(f"actual {actual / MiB:.2f} MiB after {time.monotonic() - start:.1f} s")
            check.assertEqual(actual, TARGET_MIB * MiB)

        after = vm.meminfo()
        tap.diag(f"after inflate: MemTotal {after['MemTotal']} kB, MemFree {after['MemFree']} kB")

        with tap.case(MEMTOTAL_KEPT):
            check.assertEqual(after["MemTotal"], before["MemTotal"])

        with tap.case(MEMFREE_FELL):
            check.assertAlmostEqual(before["MemFree"] - after["MemFree"],
                                    (GUEST_MIB - TARGET_MIB) * 1024, delta=MEMFREE_SLACK_KB)

        with tap.case(PRESSURE):
            fill_mib = after["MemFree"] // 1024 + OVERCOMMIT_MIB
            start = time.monotonic()
            rc, out = vm.sh(f"balloon-mem fill {fill_mib}", timeout=120)
            took = time.monotonic() - start
            actual = vm.actual()
            deflated = vm.vmstat()["balloon_deflate"]
            kills = vm.sh_ok("dmesg | grep -c 'Out of memory: Killed' || true")
            tap.diag(f"fill {fill_mib} MiB: rc {rc} in {took:.1f} s, output {out!r}; "
                     f"actual now {actual / MiB:.2f} MiB, balloon_deflate {deflated} pages, "
                     f"OOM kills {kills}")
            check.assertEqual((rc, out), (0, f"filled {fill_mib}"))
            check.assertGreaterEqual(actual - TARGET_MIB * MiB, OVERCOMMIT_MIB * MiB)
            check.assertEqual(kills, "0")


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
