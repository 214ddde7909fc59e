#!/usr/bin/env python3
"""Churn: no guest page lost or corrupted while the balloon moves.

A guest working set (guest/workset: CHURN_SET_MIB MiB, each page holding
its index, generation and checksum, rewritten and verified all the time)
runs while the host sets random balloon targets (up to
CHURN_MAX_BALLOON_MIB ballooned) for CHURN_SECONDS, and the guest
repeatedly dirties and frees 64 MiB so that free page reporting has work.
Two devices: reporting + deflate-on-oom on a debug_pagealloc guest, and
reporting with deflate-on-oom off on a page_poison=1 guest (page-poison
negotiated; QEMU then ignores the reports, the poison paths run instead).

Pass: the balloon comes back to the full RAM exactly; the set's final
full pass finds 0 bad pages; the driver's counters agree with each other
and with query-balloon; the console has no kernel report and no OOM
kill; kmemleak finds nothing new.

Environment (defaults): CHURN_GUEST_MIB (1024), CHURN_SET_MIB (256),
CHURN_MAX_BALLOON_MIB (384), CHURN_SECONDS (40), CHURN_RATE (workset
pages rewritten per second, 1000), CHURN_SEED (random).
"""

import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
import rlib  # noqa: E402  (tests/reliability/rlib.py)
from balloon_harness import balloon, scenario  # noqa: E402
from balloon_harness.scenario import MiB, check  # noqa: E402

GUEST_MIB = scenario.env_int("CHURN_GUEST_MIB", 1024)
SET_MIB = scenario.env_int("CHURN_SET_MIB", 256)
MAX_BALLOON_MIB = scenario.env_int("CHURN_MAX_BALLOON_MIB", 384)
SECONDS = scenario.env_float("CHURN_SECONDS", 40)
RATE = scenario.env_int("CHURN_RATE", 1000)
SEED = scenario.env_int("CHURN_SEED", int.from_bytes(os.urandom(4), "little"))
STEP_TIMEOUT = 20.0
CONFIGS = (
    ("reporting, deflate-on-oom", {"free_page_reporting": True, "deflate_on_oom": True}, ""),
    ("reporting, page_poison=1", {"free_page_reporting": True, "deflate_on_oom": False,
                                  "page_poison": True}, "page_poison=1"),
)


def case_names(desc):
    """The cases of configuration ``desc``, in the order they run."""
    return [f"{desc}: {SECONDS:.0f} s of random targets (up to {MAX_BALLOON_MIB} "
            f"MiB), then the balloon is back to {GUEST_MIB} MiB exactly",
            f"{desc}: working set: 0 bad pages",
            f"{desc}: counters: inflated - deflated == balloon_pages == RAM - query-balloon",
            f"{desc}: console: no BUG/WARNING/KASAN/lockdep/hung task, no OOM kill",
            f"{desc}: kmemleak: no new suspected leak"]


CASES = [name for desc, _, _ in CONFIGS for name in case_names(desc)]
# A debug kernel boots in about a minute under TCG; each configuration
# churns for SECONDS, then checks (kmemleak scans take a while).
TIMEOUT = 300 + len(CONFIGS) * 3 * SECONDS


def churn(tap, vm, rng):
    """Random targets until SECONDS have passed; return (steps, reached)."""
    steps = reached = 0
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        target = GUEST_MIB - rng.randint(0, MAX_BALLOON_MIB)
        steps += 1
        if vm.resize(target * MiB, timeout=STEP_TIMEOUT) == target * MiB:
            reached += 1
        if rng.random() < 0.5:
            vm.sh_ok("balloon-mem fill 64", timeout=120)
        time.sleep(rng.random())
    return steps, reached


def run(tap, desc, options, append, rng):
    with rlib.VM(mem_mib=GUEST_MIB, name="churn", append=append, **options) as vm:
        leak_skip = rlib.kmemleak_start(vm)
        before = rlib.counters(vm)
        pages = balloon.workset_start(vm, SET_MIB, rate=RATE)
        tap.diag(f"{desc}: workset of {pages} pages running")
        churned, intact, counted, clean, no_leak = case_names(desc)

        with tap.case(churned):
            steps, reached = churn(tap, vm, rng)
            actual = vm.resize(GUEST_MIB * MiB, timeout=120)
            after = rlib.counters(vm)
            moved = {k: after[k] - before[k] for k in ("inflate_bufs", "deflate_bufs",
                                                       "inflated_pages", "reported_pages")}
            tap.diag(f"{steps} targets, {reached} reached within {STEP_TIMEOUT:.0f} s; "
                     f"moved: {moved}")
            check.assertEqual(actual, GUEST_MIB * MiB)
            check.assertGreater(moved["inflated_pages"], 0, "the balloon never inflated")

        with tap.case(intact):
            balloon.assert_workset_intact(tap, vm)

        with tap.case(counted):
            rlib.check_counters(tap, vm)

        with tap.case(clean):
            rlib.assert_clean_console(tap, vm)
            check.assertEqual(rlib.oom_kills(vm), [])

        rlib.leak_case(tap, vm, no_leak, leak_skip)


def main(tap):
    tap.diag(f"CHURN_SEED={SEED}")
    rng = random.Random(SEED)
    for desc, options, append in CONFIGS:
        run(tap, desc, options, append, rng)


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
