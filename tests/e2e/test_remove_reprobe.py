#!/usr/bin/env python3
"""Driver remove gives every ballooned page back; probe inflates again.

With the balloon inflated, the driver is unbound through sysfs
(``echo virtioN > /sys/bus/virtio/drivers/virtio_balloon/unbind``).  Its
remove path must return every page: the guest's MemTotal comes back to
exactly its value before the inflate, its free memory to within
REPROBE_SLACK_MIB of it, and QEMU's query-balloon shows the full RAM.
Free memory is MemFree plus the pages on the per-CPU free lists
(/proc/zoneinfo ``count:``), which MemFree leaves out: the 256 MiB a
remove frees put some 50 MiB on those lists in a 2-CPU guest.  Binding the driver
again must inflate the balloon back to the host's target, which QEMU kept.
The cycle repeats REPROBE_CYCLES times, on a default device and on one
with every optional feature (deflate-on-oom, free page reporting, free
page hinting, stats polling), so a leak shows as drift over the cycles.

Environment (defaults): REPROBE_GUEST_MIB (512), REPROBE_BALLOON_MIB (256),
REPROBE_CYCLES (3; a long run can use 100), REPROBE_SLACK_MIB (2).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import balloon, scenario  # noqa: E402
from balloon_harness.scenario import MiB, check  # noqa: E402
from balloon_harness.vm import VM  # noqa: E402

GUEST_MIB = scenario.env_int("REPROBE_GUEST_MIB", 512)
BALLOON_MIB = scenario.env_int("REPROBE_BALLOON_MIB", 256)
CYCLES = scenario.env_int("REPROBE_CYCLES", 3)
SLACK_KB = scenario.env_int("REPROBE_SLACK_MIB", 2) * 1024
TARGET_MIB = GUEST_MIB - BALLOON_MIB
CONFIGS = (
    ("default device", {}),
    ("all features", {"deflate_on_oom": True, "free_page_reporting": True,
                      "free_page_hint": True, "guest_stats_polling_interval": 1}),
)


def case_names(desc):
    """The cases of configuration ``desc``, in the order they run."""
    return ([f"{desc}: inflate to {TARGET_MIB} MiB: query-balloon actual == target"] +
            [f"{desc}: cycle {cycle}/{CYCLES}: unbind returns every page "
             f"(MemTotal exact, free memory within {SLACK_KB // 1024} MiB, "
             "query-balloon == RAM); bind re-inflates to the target"
             for cycle in range(1, CYCLES + 1)])


# The cases, in the order they run (registered: the plan is their number).
CASES = [name for desc, _ in CONFIGS for name in case_names(desc)]
TIMEOUT = 600


def run(tap, desc, options):
    with VM(mem_mib=GUEST_MIB, name="remove-reprobe", **options) as vm:
        dev = vm.balloon_device()
        total0, free0 = vm.meminfo()["MemTotal"], balloon.free_kib(vm)
        tap.diag(f"{desc}: {dev}, MemTotal {total0} kB, free {free0} kB before the inflate")
        inflated, *cycles = case_names(desc)

        with tap.case(inflated):
            check.assertEqual(vm.resize(TARGET_MIB * MiB, timeout=60), TARGET_MIB * MiB)
            total_inflated = vm.meminfo()["MemTotal"]

        for cycle in cycles:
            with tap.case(cycle):
                seen = balloon.unbind_and_bind(vm, dev, timeout=30)
                unbound, actual, total, free = (seen[k] for k in ("unbound", "actual", "total",
                                                                  "free"))
                start = seen["bound_at"]
                tap.diag(f"unbound: actual {actual / MiB:.2f} MiB, MemTotal {total} kB, free "
                         f"{free} kB ({free - free0:+d} kB from before the inflate)")
                check.assertTrue(unbound, "driver still bound after unbind")
                check.assertEqual(actual, GUEST_MIB * MiB, "query-balloon after unbind")
                check.assertEqual(total, total0, "MemTotal after unbind")
                check.assertAlmostEqual(free, free0, delta=SLACK_KB, msg="free memory after unbind")

                check.assertTrue(balloon.bound(vm, dev), "driver not bound after bind")
                balloon.assert_reinflated(tap, vm, TARGET_MIB * MiB, total_inflated, start,
                                          "bind")


def main(tap):
    for desc, options in CONFIGS:
        run(tap, desc, options)


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
