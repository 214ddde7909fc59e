#!/usr/bin/env python3
"""Faults: allocation failures in the balloon's paths break nothing and leak nothing.

fail_page_alloc and failslab (debugfs fault injection) fail
FAULTS_PROBABILITY % of the page and slab allocations made by kernel
workers (task-filter on every kworker), where the balloon inflates,
deflates, frees, reports and hints.  For FAULTS_SECONDS the host moves the
target between FAULTS_LOW_MIB and the full RAM, the guest dirties and
frees memory (free page reporting) and, with free page hinting, the VM is
migrated to /dev/null; a working set is verified throughout.

Pass: failures were injected; no kernel report on the console; once the
faults stop the balloon converges to its target exactly and then back to
the full RAM; inflated - deflated == balloon_pages and RAM - balloon ==
query-balloon; MemTotal is back to its value before the run (no page
lost in the balloon); the working set has 0 bad pages; kmemleak finds
nothing new.

Environment (defaults): FAULTS_GUEST_MIB (1024), FAULTS_SET_MIB (128),
FAULTS_LOW_MIB (640), FAULTS_SECONDS (40), FAULTS_PROBABILITY (10),
FAULTS_MIGRATIONS (1: migrations during the faults).
"""

import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
import rlib  # noqa: E402  (tests/reliability/rlib.py)
from balloon_harness import balloon, scenario  # noqa: E402
from balloon_harness.migration import migrate_to_null  # noqa: E402
from balloon_harness.scenario import MiB, check  # noqa: E402

GUEST_MIB = scenario.env_int("FAULTS_GUEST_MIB", 1024)
SET_MIB = scenario.env_int("FAULTS_SET_MIB", 128)
LOW_MIB = scenario.env_int("FAULTS_LOW_MIB", 640)
SECONDS = scenario.env_float("FAULTS_SECONDS", 40)
PROBABILITY = scenario.env_int("FAULTS_PROBABILITY", 10)
MIGRATIONS = scenario.env_int("FAULTS_MIGRATIONS", 1)
STEP_TIMEOUT = 5.0


# The cases, in the order they run (registered: the plan is their number).
FAULTS_INJECTED = (f"faults at {PROBABILITY} % for {SECONDS:.0f} s during inflate, deflate, "
                   "reporting and hinting: failures injected, the guest keeps working")
CONVERGES = ("faults stopped: the balloon converges to its target exactly, "
             "then back to the full RAM")
COUNTERS_CONSISTENT = ("counters consistent with query-balloon; MemTotal back to its value "
                       "before the run")
WORKSET_INTACT = "working set: 0 bad pages"
CONSOLE_CLEAN = "console: no BUG/WARNING/KASAN/lockdep/hung task report"
NO_LEAK = "kmemleak: no new suspected leak"
CASES = [FAULTS_INJECTED, CONVERGES, COUNTERS_CONSISTENT, WORKSET_INTACT, CONSOLE_CLEAN, NO_LEAK]
# The debug kernel boots in about a minute; faults run SECONDS, plus the migrations.
TIMEOUT = 300 + 3 * SECONDS + 120 * MIGRATIONS


def main(tap):
    rng = random.Random()
    with rlib.VM(mem_mib=GUEST_MIB, name="faults", free_page_reporting=True,
                 free_page_hint=True) as vm:
        faults = rlib.Faults(vm, PROBABILITY)
        if not faults.available():
            tap.skip_rest("the kernel has no debugfs fault injection (not the debug kernel?)")
            return
        leak_skip = rlib.kmemleak_start(vm)
        total0 = vm.meminfo()["MemTotal"]
        balloon.workset_start(vm, SET_MIB)

        with tap.case(FAULTS_INJECTED):
            faults.start()
            end = time.monotonic() + SECONDS
            steps = migrations = 0
            migrate_at = [end - SECONDS * (i + 1) / (MIGRATIONS + 1) for i in range(MIGRATIONS)]
            while time.monotonic() < end:
                faults.mark_workers()
                target = rng.choice((LOW_MIB, GUEST_MIB, rng.randint(LOW_MIB, GUEST_MIB)))
                vm.resize(target * MiB, timeout=STEP_TIMEOUT)
                vm.sh_ok("balloon-mem fill 64", timeout=120)
                steps += 1
                if migrate_at and time.monotonic() > migrate_at[-1]:
                    migrate_at.pop()
                    info = migrate_to_null(vm, timeout=300)
                    vm.qmp.execute("cont")
                    migrations += 1
                    tap.diag(f"migration {migrations}: {info.get('status')}, "
                             f"{info.get('ram', {}).get('transferred', 0) // MiB} MiB sent")
            injected = faults.stop()
            total = sum(injected.values())
            tap.diag(f"{steps} targets, {migrations} migrations; injected {injected}")
            balloon.soak("faults_injected", total)
            check.assertGreater(total, 0, "no failure was injected")

        with tap.case(CONVERGES):
            target = (LOW_MIB + GUEST_MIB) // 2
            actual = vm.resize(target * MiB, timeout=120)
            tap.diag(f"actual {actual / MiB:.2f} MiB for a target of {target} MiB")
            check.assertEqual(actual, target * MiB)
            rlib.check_counters(tap, vm)
            check.assertEqual(vm.resize(GUEST_MIB * MiB, timeout=120), GUEST_MIB * MiB)

        with tap.case(COUNTERS_CONSISTENT):
            c = rlib.check_counters(tap, vm)
            check.assertEqual(c["balloon_pages"], 0)
            check.assertEqual(vm.meminfo()["MemTotal"], total0)

        with tap.case(WORKSET_INTACT):
            balloon.assert_workset_intact(tap, vm)

        with tap.case(CONSOLE_CLEAN):
            rlib.assert_clean_console(tap, vm)

        rlib.leak_case(tap, vm, NO_LEAK, leak_skip)


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
