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

import random
import time

import rlib
from rlib import MiB, check, lib

GUEST_MIB = lib.env_int("FAULTS_GUEST_MIB", 1024)
SET_MIB = lib.env_int("FAULTS_SET_MIB", 128)
LOW_MIB = lib.env_int("FAULTS_LOW_MIB", 640)
SECONDS = lib.env_float("FAULTS_SECONDS", 40)
PROBABILITY = lib.env_int("FAULTS_PROBABILITY", 10)
MIGRATIONS = lib.env_int("FAULTS_MIGRATIONS", 1)
STEP_TIMEOUT = 5.0


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
        rlib.workset_start(vm, SET_MIB)

        with tap.case(f"faults at {PROBABILITY} % for {SECONDS:.0f} s during inflate, deflate, "
                      "reporting and hinting: failures injected, the guest keeps working"):
            faults.start()
            end = time.monotonic() + SECONDS
            steps = migrations = 0
            migrate_at = [end - SECONDS * (i + 1) / (MIGRATIONS + 1) for i in range(MIGRATIONS)]
            while time.monotonic() < end:
                faults.mark_workers()
                target = rng.choice((LOW_MIB, GUEST_MIB, rng.randint(LOW_MIB, GUEST_MIB)))
                vm.set_target(target * MiB)
                vm.wait_actual(target * MiB, timeout=STEP_TIMEOUT)
                vm.sh_ok("balloon-mem fill 64", timeout=120)
                steps += 1
                if migrate_at and time.monotonic() > migrate_at[-1]:
                    migrate_at.pop()
                    info = vm.migrate_to_null(timeout=300)
                    vm.qmp.execute("cont")
                    migrations += 1
                    tap.diag(f"migration {migrations}: {info.get('status')}, "
                             f"{info.get('ram', {}).get('transferred', 0) // MiB} MiB sent")
            injected = faults.stop()
            total = sum(injected.values())
            tap.diag(f"{steps} targets, {migrations} migrations; injected {injected}")
            rlib.soak("faults_injected", total)
            check.assertGreater(total, 0, "no failure was injected")

        with tap.case("faults stopped: the balloon converges to its target exactly, "
                      "then back to the full RAM"):
            target = (LOW_MIB + GUEST_MIB) // 2
            actual = rlib.converge(vm, target, timeout=120)
            tap.diag(f"actual {actual / MiB:.2f} MiB for a target of {target} MiB")
            check.assertEqual(actual, target * MiB)
            rlib.check_counters(tap, vm)
            check.assertEqual(rlib.converge(vm, GUEST_MIB, timeout=120), GUEST_MIB * MiB)

        with tap.case("counters consistent with query-balloon; MemTotal back to its value "
                      "before the run"):
            c = rlib.check_counters(tap, vm)
            check.assertEqual(c["balloon_pages"], 0)
            check.assertEqual(vm.meminfo()["MemTotal"], total0)

        with tap.case("working set: 0 bad pages"):
            rc, nums, out = rlib.workset_check(vm)
            tap.diag(f"workset: {out}")
            check.assertIsNotNone(nums, "no verdict from workset check")
            rlib.soak("pages_verified", nums["verified"])
            rlib.soak("bad_pages", nums["bad"])
            check.assertEqual((rc, nums["bad"]), (0, 0))

        with tap.case("console: no BUG/WARNING/KASAN/lockdep/hung task report"):
            rlib.assert_clean_console(tap, vm)

        rlib.leak_case(tap, vm, "kmemleak: no new suspected leak", leak_skip)


if __name__ == "__main__":
    rlib.run(main, plan=6)
