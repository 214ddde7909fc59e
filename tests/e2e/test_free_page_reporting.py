#!/usr/bin/env python3
"""Free page reporting gives freed guest memory back to the host.

The guest dirties then frees FPR_FILL_MIB MiB.  With free-page-reporting=on
the driver reports the freed pages and QEMU discards them, so at least
FPR_MIN_FRACTION of the freed amount must leave QEMU's RSS within
FPR_TIMEOUT seconds (the issue's target: 90 %).  With it off, no more than
5 % of it may leave RSS within FPR_OFF_WINDOW seconds: that is what makes
the first result mean something.  "Left RSS" is measured against RSS
before the fill plus the fill, since reporting may start giving memory
back before the fill command has returned.

Environment (defaults): FPR_GUEST_MIB (2048), FPR_FILL_MIB (1536),
FPR_MIN_FRACTION (0.9), FPR_TIMEOUT (40), FPR_OFF_WINDOW (10).
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import scenario  # noqa: E402
from balloon_harness.scenario import check  # noqa: E402
from balloon_harness.vm import VM  # noqa: E402

GUEST_MIB = scenario.env_int("FPR_GUEST_MIB", 2048)
FILL_MIB = scenario.env_int("FPR_FILL_MIB", 1536)
MIN_FRACTION = scenario.env_float("FPR_MIN_FRACTION", 0.9)
TIMEOUT_S = scenario.env_float("FPR_TIMEOUT", 40)
OFF_WINDOW_S = scenario.env_float("FPR_OFF_WINDOW", 10)
OFF_MAX_FRACTION = 0.05
# The fill must show up in QEMU's RSS, or the drop proves nothing.
FILL_VISIBLE_FRACTION = 0.8
# Reporting is done once RSS reaches this fraction (the project target) or
# has not moved for STABLE_S seconds.
DONE_FRACTION = 0.9
STABLE_S = 6
REPORTING_VQ = 3  # QEMU numbering without free-page-hint: inflate, deflate, stats, reporting


# The cases, in the order they run (registered: the plan is their number).
ON_FILL_SHOWS = f"reporting on: the {FILL_MIB} MiB fill shows in QEMU's RSS"
ON_RSS_FALLS = (f"reporting on: QEMU RSS falls by >= {MIN_FRACTION:.0%} of the freed "
                f"memory within {TIMEOUT_S:.0f} s")
ON_QUEUE_USED = "reporting on: the reporting virtqueue was used"
OFF_FILL_SHOWS = f"reporting off: the {FILL_MIB} MiB fill shows in QEMU's RSS"
OFF_RSS_STAYS = (f"reporting off: QEMU RSS falls by <= {OFF_MAX_FRACTION:.0%} of the freed "
                 f"memory in {OFF_WINDOW_S:.0f} s")
CASES = [ON_FILL_SHOWS, ON_RSS_FALLS, ON_QUEUE_USED, OFF_FILL_SHOWS, OFF_RSS_STAYS]
TIMEOUT = 600


def fill(tap, vm):
    """Dirty and free FILL_MIB in the guest.

    Returns QEMU's RSS (KiB) before the fill and its peak while the fill
    ran, sampled every 0.1 s: a fast reporter gives memory back before
    the fill command has even returned, so RSS after the fill would hide
    that the fill populated host memory at all.
    """
    rss0 = vm.qemu_rss_kib()
    start = time.monotonic()
    _, peak = vm.sh_ok_rss_peak(f"balloon-mem fill {FILL_MIB}", timeout=300)
    tap.diag(f"fill {FILL_MIB} MiB took {time.monotonic() - start:.1f} s; "
             f"QEMU RSS {rss0 // 1024} -> peak {peak // 1024} MiB")
    return rss0, peak


def released(vm, rss0):
    """Fraction of the fill no longer backed by host memory."""
    fill_kib = FILL_MIB * 1024
    return (rss0 + fill_kib - vm.qemu_rss_kib()) / fill_kib


def watch_rss(vm, rss0, until):
    """Sample QEMU's RSS every 0.5 s after the fill.

    Returns ``[(seconds, fraction_of_fill_released)]``; stops at ``until``
    seconds, at DONE_FRACTION, or when RSS has been stable for STABLE_S.
    """
    start = time.monotonic()
    samples = []
    while True:
        elapsed = time.monotonic() - start
        samples.append((elapsed, released(vm, rss0)))
        stable = [f for t, f in samples if t >= elapsed - STABLE_S]
        if (elapsed >= until or samples[-1][1] >= DONE_FRACTION
                or (elapsed >= STABLE_S and max(stable) - min(stable) < 0.01
                    and samples[-1][1] > 0.01)):
            return samples
        time.sleep(0.5)


def first_time(samples, fraction):
    """Seconds until ``fraction`` was first reached, or None."""
    return next((t for t, f in samples if f >= fraction), None)


def main(tap):
    tap.diag(f"guest {GUEST_MIB} MiB, fill {FILL_MIB} MiB, threshold {MIN_FRACTION:.0%}")
    with VM(mem_mib=GUEST_MIB, free_page_reporting=True, name="fpr-on") as vm:
        with tap.case(ON_FILL_SHOWS):
            rss0, rss_fill = fill(tap, vm)
            check.assertGreaterEqual(rss_fill - rss0, FILL_VISIBLE_FRACTION * FILL_MIB * 1024)

        with tap.case(ON_RSS_FALLS):
            samples = watch_rss(vm, rss0, TIMEOUT_S)
            t_min, t_done = first_time(samples, MIN_FRACTION), first_time(samples, DONE_FRACTION)
            best = max(f for _, f in samples)
            tap.diag(f"released {best:.1%} of {FILL_MIB} MiB "
                     f"(RSS now {vm.qemu_rss_kib() // 1024} MiB); "
                     f"{MIN_FRACTION:.0%} after {_secs(t_min)}, {DONE_FRACTION:.0%} after "
                     f"{_secs(t_done)}")
            check.assertGreaterEqual(best, MIN_FRACTION)

        with tap.case(ON_QUEUE_USED):
            used = vm.queue_status(REPORTING_VQ)["used-idx"]
            tap.diag(f"reporting_vq used-idx {used}")
            check.assertGreater(used, 0)

    with VM(mem_mib=GUEST_MIB, free_page_reporting=False, name="fpr-off") as vm:
        with tap.case(OFF_FILL_SHOWS):
            rss0, rss_fill = fill(tap, vm)
            check.assertGreaterEqual(rss_fill - rss0, FILL_VISIBLE_FRACTION * FILL_MIB * 1024)

        with tap.case(OFF_RSS_STAYS):
            time.sleep(OFF_WINDOW_S)
            fraction = released(vm, rss0)
            tap.diag(f"released {fraction:.1%} of {FILL_MIB} MiB")
            check.assertLessEqual(fraction, OFF_MAX_FRACTION)


def _secs(t):
    return "never" if t is None else f"{t:.1f} s"


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
