#!/usr/bin/env python3
"""Removal: unbind/bind cycles with the balloon inflated and reporting active.

The driver is unbound and bound again REMOVAL_CYCLES times
(``/sys/bus/virtio/drivers/virtio_balloon/unbind`` and ``bind``) on a
device with free page reporting, deflate-on-oom off (so the balloon
leaves MemTotal), while the balloon holds REMOVAL_BALLOON_MIB.  Just
before each unbind the guest dirties and frees 64 MiB, so reporting is
at work when the driver goes away.

Each cycle: after unbind, MemTotal is back exactly, free memory
(MemFree plus the per-CPU lists) is no more than REMOVAL_SLACK_MIB below
its value before the first inflate, and query-balloon shows the full
RAM; after bind the balloon inflates to the target again.  At the end:
counters consistent, console free of reports, kmemleak clean.

Environment (defaults): REMOVAL_GUEST_MIB (768), REMOVAL_BALLOON_MIB
(256), REMOVAL_CYCLES (3; make soak uses 100), REMOVAL_SLACK_MIB (4).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
import rlib  # noqa: E402  (tests/reliability/rlib.py)
from balloon_harness import balloon, scenario  # noqa: E402
from balloon_harness.scenario import MiB, check  # noqa: E402

GUEST_MIB = scenario.env_int("REMOVAL_GUEST_MIB", 768)
BALLOON_MIB = scenario.env_int("REMOVAL_BALLOON_MIB", 256)
CYCLES = scenario.env_int("REMOVAL_CYCLES", 3)
SLACK_KB = scenario.env_int("REMOVAL_SLACK_MIB", 4) * 1024
TARGET_MIB = GUEST_MIB - BALLOON_MIB


# The cases, in the order they run (registered: the plan is their number).
INFLATE = f"inflate to {TARGET_MIB} MiB: query-balloon == target"
CYCLES_RETURN_EVERY_PAGE = (f"{CYCLES} unbind/bind cycles: MemTotal exact, free memory within "
                            f"{SLACK_KB // 1024} MiB, query-balloon == RAM after each unbind; "
                            "the target again after each bind")
DEFLATE = "deflate to the full RAM: counters consistent, MemTotal exact"
CONSOLE_CLEAN = "console: no BUG/WARNING/KASAN/lockdep/hung task report"
NO_LEAK = "kmemleak: no new suspected leak after the cycles"
CASES = [INFLATE, CYCLES_RETURN_EVERY_PAGE, DEFLATE, CONSOLE_CLEAN, NO_LEAK]
TIMEOUT = 300 + 90 * CYCLES


def main(tap):
    with rlib.VM(mem_mib=GUEST_MIB, name="removal", free_page_reporting=True,
                 deflate_on_oom=False) as vm:
        dev = vm.balloon_device()
        leak_skip = rlib.kmemleak_start(vm)
        total0, free0 = vm.meminfo()["MemTotal"], balloon.free_kib(vm, reads=20)
        tap.diag(f"{dev}: MemTotal {total0} kB, free {free0} kB before the inflate")

        with tap.case(INFLATE):
            check.assertEqual(vm.resize(TARGET_MIB * MiB, timeout=120), TARGET_MIB * MiB)

        worst = 0
        done = 0
        with tap.case(CYCLES_RETURN_EVERY_PAGE):
            for cycle in range(1, CYCLES + 1):
                vm.sh_ok("balloon-mem fill 64", timeout=120)
                seen = balloon.unbind_and_bind(vm, dev, timeout=60, free_reads=20)
                actual, total, free = seen["actual"], seen["total"], seen["free"]
                worst = max(worst, free0 - free)
                where = f"cycle {cycle}: "
                check.assertEqual(actual, GUEST_MIB * MiB, where + "query-balloon after unbind")
                check.assertEqual(total, total0, where + "MemTotal after unbind")
                # A lost page shows as less free memory.  More is fine: the
                # debug kernel's KASAN quarantine and the reporting of free
                # blocks move a few MiB either way between reads.
                check.assertGreaterEqual(free, free0 - SLACK_KB,
                                         where + "free memory after unbind")
                actual = vm.wait_actual(TARGET_MIB * MiB, timeout=120)
                check.assertEqual(actual, TARGET_MIB * MiB, where + "query-balloon after bind")
                done = cycle
            tap.diag(f"{done} cycles; free memory after unbind at most {worst} kB below before")
            balloon.soak("removal_cycles", done)

        with tap.case(DEFLATE):
            check.assertEqual(vm.resize(GUEST_MIB * MiB, timeout=120), GUEST_MIB * MiB)
            rlib.check_counters(tap, vm)
            check.assertEqual(vm.meminfo()["MemTotal"], total0)

        with tap.case(CONSOLE_CLEAN):
            rlib.assert_clean_console(tap, vm)

        rlib.leak_case(tap, vm, NO_LEAK, leak_skip)


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
