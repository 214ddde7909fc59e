#!/usr/bin/env python3
"""The driver's debugfs counters agree with what QEMU sees.

The project's driver keeps counters in
/sys/kernel/debug/virtio_balloon/virtioN/counters ("name value" lines,
pages in 4 KiB units, *_bufs in host round trips).  Once the balloon is
quiet they must satisfy, against QEMU's own figures:

- target_pages * 4096 == RAM - the target set with the QMP ``balloon``
  command (clamped to 0 for a target above RAM);
- balloon_pages * 4096 == RAM - ``query-balloon`` actual;
- inflated_pages - deflated_pages == balloon_pages.

The test checks them after an inflate, a partial deflate and a full
deflate (a target above RAM), that the page and buffer counters moved by
what each change moved, and that stats_requests grows while QEMU polls
statistics.  Upstream's driver has no counters file: every case fails
there.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import scenario  # noqa: E402
from balloon_harness.scenario import MiB, check  # noqa: E402
from balloon_harness.vm import VM  # noqa: E402

GUEST_MIB = 512
PAGE = 4096
PAGES_PER_MIB = MiB // PAGE
COUNTERS = ("target_pages", "balloon_pages", "inflated_pages", "deflated_pages", "inflate_bufs",
            "deflate_bufs", "alloc_failures", "oom_deflates", "oom_pages", "migrated_pages",
            "migrate_failures", "stats_requests", "reports", "reported_pages", "report_failures",
            "hint_rounds")
# Counters that stay 0 in this run (no memory pressure, no compaction,
# no reporting); a missing one is reported by the first case.
FAILURES = ("alloc_failures", "migrate_failures", "report_failures", "oom_deflates")
# Counters are read as settled once two reads this far apart agree.
SETTLE_S = 0.5


# The cases, in the order they run (registered: the plan is their number).
EVERY_COUNTER = "debugfs counters file lists every documented counter, balloon empty"
INFLATE = ("inflate 512 -> 256 MiB: invariants hold against query-balloon, "
           "inflated_pages and inflate_bufs moved by the inflate")
DEFLATE = ("deflate 256 -> 384 MiB: invariants hold, deflated_pages and deflate_bufs "
           "moved by the deflate")
ABOVE_RAM = ("target above RAM: full deflate, target_pages == balloon_pages == 0, "
             "inflated_pages == deflated_pages")
STATS_REQUESTS = "stats polling every 1 s: stats_requests grows with QEMU's last-update"
NO_FAILURES = "no allocation, migration or report failures in this run"
CASES = [EVERY_COUNTER, INFLATE, DEFLATE, ABOVE_RAM, STATS_REQUESTS, NO_FAILURES]
TIMEOUT = 600


def settled_counters(vm, timeout=20.0):
    """The counters once two consecutive reads agree (the balloon is quiet)."""
    deadline = time.monotonic() + timeout
    last = vm.balloon_counters()
    while True:
        if last is None:
            raise AssertionError(f"no counters file for {vm.balloon_device()} in debugfs")
        time.sleep(SETTLE_S)
        now = vm.balloon_counters()
        # stats_requests moves on its own while QEMU polls.
        if ({k: v for k, v in (now or {}).items() if k != "stats_requests"} ==
                {k: v for k, v in last.items() if k != "stats_requests"}
                or time.monotonic() > deadline):
            return now
        last = now


def balloon_to(tap, vm, target_mib, expect_mib=None):
    """Set the target, wait for query-balloon; return (actual, settled counters)."""
    expect_mib = target_mib if expect_mib is None else expect_mib
    actual = vm.resize(target_mib * MiB, timeout=60, expect=expect_mib * MiB)
    check.assertEqual(actual, expect_mib * MiB, "query-balloon actual")
    counters = settled_counters(vm)
    tap.diag(f"target {target_mib} MiB: actual {actual / MiB:.2f} MiB; "
             + ", ".join(f"{k} {counters.get(k)}" for k in COUNTERS[:6]))
    return actual, counters


def assert_invariants(c, target_mib, actual):
    """The three invariants against the QMP target and query-balloon actual."""
    ram = GUEST_MIB * MiB
    check.assertEqual(c["target_pages"] * PAGE, max(0, ram - target_mib * MiB),
                      "target_pages * 4096 == RAM - QMP target")
    check.assertEqual(c["balloon_pages"] * PAGE, ram - actual,
                      "balloon_pages * 4096 == RAM - query-balloon actual")
    check.assertEqual(c["inflated_pages"] - c["deflated_pages"], c["balloon_pages"],
                      "inflated_pages - deflated_pages == balloon_pages")


def moved(before, after, name):
    return after[name] - before[name]


def main(tap):
    with VM(mem_mib=GUEST_MIB, name="counters") as vm:
        with tap.case(EVERY_COUNTER):
            c0 = vm.balloon_counters()
            check.assertIsNotNone(c0, f"no counters file for {vm.balloon_device()} in debugfs")
            tap.diag(" ".join(f"{k}={v}" for k, v in c0.items()))
            check.assertEqual(sorted(set(COUNTERS) - set(c0)), [], "counters missing")
            assert_invariants(c0, GUEST_MIB, vm.actual())

        with tap.case(INFLATE):
            actual, c1 = balloon_to(tap, vm, 256)
            assert_invariants(c1, 256, actual)
            check.assertEqual(moved(c0, c1, "inflated_pages"), 256 * PAGES_PER_MIB)
            check.assertEqual(moved(c0, c1, "deflated_pages"), 0)
            check.assertGreater(moved(c0, c1, "inflate_bufs"), 0)
            check.assertEqual(moved(c0, c1, "deflate_bufs"), 0)

        with tap.case(DEFLATE):
            actual, c2 = balloon_to(tap, vm, 384)
            assert_invariants(c2, 384, actual)
            check.assertEqual(moved(c1, c2, "deflated_pages"), 128 * PAGES_PER_MIB)
            check.assertEqual(moved(c1, c2, "inflated_pages"), 0)
            check.assertGreater(moved(c1, c2, "deflate_bufs"), 0)

        with tap.case(ABOVE_RAM):
            actual, c3 = balloon_to(tap, vm, 2 * GUEST_MIB, GUEST_MIB)
            assert_invariants(c3, 2 * GUEST_MIB, actual)
            check.assertEqual((c3["target_pages"], c3["balloon_pages"]), (0, 0))

        with tap.case(STATS_REQUESTS):
            before = vm.balloon_counters()["stats_requests"]
            first = vm.guest_stats()["last-update"]
            vm.set_stats_interval(1)
            updates, seen, deadline = 0, first, time.monotonic() + 20
            while updates < 3 and time.monotonic() < deadline:
                now = vm.guest_stats()["last-update"]
                if now > seen:
                    updates, seen = updates + 1, now
                time.sleep(0.2)
            after = vm.balloon_counters()["stats_requests"]
            tap.diag(f"last-update {first} -> {seen} ({updates} advances seen); "
                     f"stats_requests {before} -> {after}")
            check.assertEqual(updates, 3, "QEMU's last-update advanced three times")
            check.assertGreaterEqual(after - before, updates)

        with tap.case(NO_FAILURES):
            c = vm.balloon_counters()
            tap.diag(" ".join(f"{k}={c.get(k)}" for k in COUNTERS))
            failures = {k: c[k] for k in FAILURES if k in c}
            check.assertTrue(failures, "none of the failure counters exists")
            check.assertEqual(failures, {k: 0 for k in failures})

if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
