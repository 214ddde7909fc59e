#!/usr/bin/env python3
"""Memory statistics over the stats virtqueue.

Starts stats polling at run time (QOM ``guest-stats-polling-interval`` =
1 s) and proves that the driver answers every request (``last-update``
moves past the value of the buffer the driver sent at probe time, and
keeps advancing), that the figures agree with the
guest's own /proc/meminfo (tp-qemu's tolerance: 10 % or 150 MB), and that
every stat a VM_EVENT_COUNTERS + HUGETLB_PAGE guest can send is set.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import scenario  # noqa: E402
from balloon_harness.scenario import check  # noqa: E402
from balloon_harness.vm import VM  # noqa: E402

GUEST_MIB = 512
INTERVAL_S = 1
UNSET = 2**64 - 1
# tp-qemu balloon_check: a stat passes if within 10 % or within 150 MB.
TOLERANCE_RATIO = 0.10
TOLERANCE_BYTES = 150 * 1000 * 1000
EVENT_STATS = ("stat-swap-in", "stat-swap-out", "stat-major-faults", "stat-minor-faults")
OTHER_STATS = ("stat-available-memory", "stat-disk-caches", "stat-htlb-pgalloc",
               "stat-htlb-pgfail")


# The cases, in the order they run (registered: the plan is their number).
POLLING_STARTS = f"polling every {INTERVAL_S} s: last-update advances within 15 s"
KEEPS_ADVANCING = "last-update keeps advancing (the driver answers every request)"
MATCH_MEMINFO = ("stat-total-memory / stat-free-memory / stat-available-memory match "
                 "/proc/meminfo")
EVENT_STATS_SET = "swap and fault stats are set (VM_EVENT_COUNTERS), minor faults > 0"
OTHER_STATS_SET = "stat-htlb-*, stat-disk-caches, stat-available-memory are present and set"
CASES = [POLLING_STARTS, KEEPS_ADVANCING, MATCH_MEMINFO, EVENT_STATS_SET, OTHER_STATS_SET]
TIMEOUT = 600


def wait_update(vm, newer_than, timeout):
    """Poll guest-stats until ``last-update`` > ``newer_than``; return the last reading."""
    deadline = time.monotonic() + timeout
    while True:
        stats = vm.guest_stats()
        if stats["last-update"] > newer_than or time.monotonic() > deadline:
            return stats
        time.sleep(0.2)


def assert_close(tap, name, stat, guest_kb):
    """Assert ``stat`` (bytes) is within tp-qemu's tolerance of ``guest_kb``."""
    guest = guest_kb * 1024
    tolerance = max(TOLERANCE_RATIO * guest, TOLERANCE_BYTES)
    tap.diag(f"{name}: stat {stat} B, guest {guest} B, diff {stat - guest:+d} B "
             f"(tolerance {tolerance:.0f})")
    check.assertLessEqual(abs(stat - guest), tolerance, name)


def main(tap):
    with VM(mem_mib=GUEST_MIB, name="stats") as vm:
        first = vm.guest_stats()["last-update"]
        tap.diag(f"before polling: last-update {first} (the driver's buffer from probe time)")

        with tap.case(POLLING_STARTS):
            vm.set_stats_interval(INTERVAL_S)
            start = time.monotonic()
            stats = wait_update(vm, first, timeout=15)
            tap.diag(f"last-update {first} -> {stats['last-update']} "
                     f"after {time.monotonic() - start:.1f} s")
            check.assertGreater(stats["last-update"], first)

        with tap.case(KEEPS_ADVANCING):
            later = wait_update(vm, stats["last-update"], timeout=10)
            tap.diag(f"last-update {stats['last-update']} -> {later['last-update']}")
            check.assertGreater(later["last-update"], stats["last-update"])

        meminfo = vm.meminfo()
        now = wait_update(vm, later["last-update"], timeout=10)["stats"]

        with tap.case(MATCH_MEMINFO):
            assert_close(tap, "total", now["stat-total-memory"], meminfo["MemTotal"])
            assert_close(tap, "free", now["stat-free-memory"], meminfo["MemFree"])
            assert_close(tap, "available", now["stat-available-memory"], meminfo["MemAvailable"])

        with tap.case(EVENT_STATS_SET):
            tap.diag(", ".join(f"{k} {now[k]}" for k in EVENT_STATS))
            for name in EVENT_STATS:
                check.assertNotEqual(now[name], UNSET, name)
            check.assertGreater(now["stat-minor-faults"], 0)

        with tap.case(OTHER_STATS_SET):
            tap.diag(", ".join(f"{k} {now.get(k)}" for k in OTHER_STATS))
            for name in OTHER_STATS:
                check.assertIn(name, now)
                check.assertNotEqual(now[name], UNSET, name)


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
