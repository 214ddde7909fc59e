#!/usr/bin/env python3
"""OOM: with deflate-on-oom the balloon gives memory back before anything is killed.

1. Overcommit: the balloon holds OOM_BALLOON_MIB of an OOM_GUEST_MIB guest;
   a working set (guest/workset run) of the free memory plus
   OOM_OVER_MIB is allocated, rewritten and verified.  It must finish
   with 0 bad pages, without an OOM kill, the balloon must have
   deflated by at least OOM_OVER_MIB (query-balloon) and the driver must
   count OOM deflates.
2. Inflate under pressure: a background working set holds all but
   OOM_SPARE_MIB of the available memory (MemAvailable: free memory above
   the watermarks), then the target is set to
   OOM_PRESSURE_TARGET_MIB (nearly all RAM into the balloon) for
   OOM_PRESSURE_SECONDS (longer than the 20 s hung-task timeout).  The
   inflate takes what it can and backs off: the guest answers the agent
   throughout, the hung-task detector stays silent, nothing is OOM-killed,
   the set ends with 0 bad pages, and once the target is lifted the
   balloon deflates to the full RAM exactly.

Both end with the console free of kernel reports and the counters
consistent with query-balloon.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
import rlib  # noqa: E402  (tests/reliability/rlib.py)
from balloon_harness import balloon, scenario  # noqa: E402
from balloon_harness.scenario import MiB, check  # noqa: E402

GUEST_MIB = scenario.env_int("OOM_GUEST_MIB", 768)
BALLOON_MIB = scenario.env_int("OOM_BALLOON_MIB", 256)
OVER_MIB = scenario.env_int("OOM_OVER_MIB", 64)
SPARE_MIB = scenario.env_int("OOM_SPARE_MIB", 48)
PRESSURE_TARGET_MIB = scenario.env_int("OOM_PRESSURE_TARGET_MIB", 16)
PRESSURE_SECONDS = scenario.env_float("OOM_PRESSURE_SECONDS", 45)


# The cases, in the order they run (registered: the plan is their number).
OVERCOMMIT_INFLATE = f"overcommit: inflate {BALLOON_MIB} MiB: query-balloon reaches the target"
OVERCOMMIT_WORKSET = (f"overcommit: a working set of free memory + {OVER_MIB} MiB runs "
                      "with 0 bad pages, no OOM kill, the balloon deflated")
OVERCOMMIT_CLEAN = "overcommit: counters consistent, console clean"
PRESSURE_HOLDS = (f"pressure: target {PRESSURE_TARGET_MIB} MiB for {PRESSURE_SECONDS:.0f} s: "
                  "the guest answers throughout, the inflate takes memory and backs off")
PRESSURE_NO_OOM = "pressure: no OOM kill, no hung task, working set 0 bad pages"
PRESSURE_LIFTED = ("pressure: target lifted: back to the full RAM exactly, counters "
                   "consistent, console clean")
CASES = [OVERCOMMIT_INFLATE, OVERCOMMIT_WORKSET, OVERCOMMIT_CLEAN, PRESSURE_HOLDS, PRESSURE_NO_OOM,
         PRESSURE_LIFTED]
TIMEOUT = 360 + 3 * PRESSURE_SECONDS


def free_mib(vm):
    m = vm.meminfo()
    return m["MemFree"] // 1024


def available_mib(vm):
    """MemAvailable: MemFree less the zones' high watermarks (plus
    reclaimable caches, none here).  A set sized on MemFree leaves only
    SPARE_MIB minus the watermarks, and the debug kernel's per-CPU lists
    can hold 25 MiB of that: the set alone was OOM-killed once so, before
    the balloon moved (soak, 2026-11-22: MemFree 22 MiB, min watermark
    22.5 MiB, 26 MiB on the per-CPU lists, balloon empty)."""
    m = vm.meminfo()
    return m.get("MemAvailable", m["MemFree"]) // 1024


def overcommit(tap):
    with rlib.VM(mem_mib=GUEST_MIB, name="oom", deflate_on_oom=True) as vm:
        with tap.case(OVERCOMMIT_INFLATE):
            target = GUEST_MIB - BALLOON_MIB
            check.assertEqual(vm.resize(target * MiB, timeout=120), target * MiB)

        with tap.case(OVERCOMMIT_WORKSET):
            size = free_mib(vm) + OVER_MIB
            rc, out = vm.sh(f"workset run -r 2000 {size} 10", timeout=600)
            actual = vm.actual()
            c = rlib.counters(vm)
            tap.diag(f"workset run {size} MiB: rc {rc}: {out}")
            tap.diag(f"actual {actual / MiB:.0f} MiB; oom_deflates {c['oom_deflates']}, "
                     f"oom_pages {c['oom_pages']}")
            m = re.search(r"verified (\d+) .* bad (\d+)", out)
            if m:
                balloon.soak("pages_verified", int(m.group(1)))
                balloon.soak("bad_pages", int(m.group(2)))
            check.assertEqual(rlib.oom_kills(vm), [])
            check.assertEqual(rc, 0)
            check.assertIsNotNone(m, "no verdict from workset")
            check.assertGreaterEqual(actual - target * MiB, OVER_MIB * MiB)
            check.assertGreater(c["oom_deflates"], 0)

        with tap.case(OVERCOMMIT_CLEAN):
            rlib.check_counters(tap, vm)
            rlib.assert_clean_console(tap, vm)


def pressure(tap):
    with rlib.VM(mem_mib=GUEST_MIB, name="oom-pressure", deflate_on_oom=True) as vm:
        hold = available_mib(vm) - SPARE_MIB
        balloon.workset_start(vm, hold, rate=500)
        tap.diag(f"working set of {hold} MiB holds all but {SPARE_MIB} MiB of available memory")
        early = rlib.oom_kills(vm)
        if early:
            tap.diag("OOM kill before the target was set (the set alone is too big): "
                     + " | ".join(early))
        timeline = []

        with tap.case(PRESSURE_HOLDS):
            c0 = rlib.counters(vm)
            vm.set_target(PRESSURE_TARGET_MIB * MiB)
            end = time.monotonic() + PRESSURE_SECONDS
            answers = 0
            lowest = GUEST_MIB * MiB
            start = time.monotonic()
            while time.monotonic() < end:
                # Every command must answer: a livelocked guest times out here.
                vm.sh_ok("cat /proc/loadavg", timeout=60)
                answers += 1
                actual = vm.actual()
                lowest = min(lowest, actual)
                c = rlib.counters(vm)
                timeline.append(f"{time.monotonic() - start:5.1f} s: actual {actual // MiB} MiB, "
                                f"balloon_pages {c['balloon_pages']}, oom_deflates "
                                f"{c['oom_deflates']}, OOM kills {len(rlib.oom_kills(vm))}")
                time.sleep(1)
            c1 = rlib.counters(vm)
            delta = {k: c1[k] - c0[k] for k in ("inflated_pages", "deflated_pages",
                                                "alloc_failures", "oom_deflates")}
            tap.diag(f"{answers} agent answers; lowest actual {lowest / MiB:.0f} MiB; {delta}")
            check.assertLess(lowest, GUEST_MIB * MiB, "the inflate made no progress")

        with tap.case(PRESSURE_NO_OOM):
            kills = rlib.oom_kills(vm)
            if kills:
                tap.diag("\n".join(["once a second:"] + timeline + ["console:"] + kills))
            # The set is checked (and stopped) whatever the kills say.
            try:
                balloon.assert_workset_intact(tap, vm)
            finally:
                check.assertEqual(kills, [])

        with tap.case(PRESSURE_LIFTED):
            check.assertEqual(vm.resize(GUEST_MIB * MiB, timeout=120), GUEST_MIB * MiB)
            rlib.check_counters(tap, vm)
            rlib.assert_clean_console(tap, vm)


def main(tap):
    overcommit(tap)
    pressure(tap)


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
