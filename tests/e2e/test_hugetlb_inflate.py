#!/usr/bin/env python3
"""Inflate on a guest whose RAM is backed by the host's 2 MiB huge pages.

QEMU discards a 2 MiB host page only when all 512 of its 4 KiB pieces
arrive in one inflate buffer (docs/protocol.md 4.3).  The project's driver
sends every 2 MiB-aligned block of 512 PFNs in one buffer, so ballooning
a hugetlb-backed guest must give the host its huge pages back.

The guest's RAM is a ``memory-backend-memfd`` with ``hugetlb=on`` and
``prealloc=on``: QEMU takes all of it from the host's pool at start, so
the pool's ``HugePages_Free`` says exactly how much guest RAM the host
still backs.  The test inflates HUGETLB_BALLOON_MIB and asserts that
QEMU reached the target and that HugePages_Free rose by at least
HUGETLB_MIN_FRACTION of the ballooned amount.  HUGETLB_PIN_MIB of tmpfs
written before the inflate and deleted after it leave free memory where
compaction moves pages to.  It then runs compaction HUGETLB_COMPACT_RUNS
times and fills the guest's free memory, which makes
the host back again any frame of a freed huge page that compaction gave
back to the guest: HugePages_Free must still show HUGETLB_MIN_FRACTION of
the balloon freed (the driver keeps its 2 MiB blocks out of compaction;
split into movable pages, compaction could move them).  Whether
compaction moves balloon pages at all depends on where they lie: with
the old driver, the same steps on a non-hugetlb guest moved 406 balloon
pages in one run and none in another, and none in three runs of this
test, so the case guards the property rather than reproducing the loss;
the hostile-device KUnit case vbh_test_blocks_stay_whole checks the
blocks directly.  It then deflates, asserts
the guest has its memory back (query-balloon, MemTotal) and that the
guest can use it again (a fill of nearly all free memory succeeds and
the host backs the returned blocks with huge pages again).

Upstream 6.12 sends 256 PFNs (1 MiB) per buffer and can never complete a
host page.  Measured once against build/baseline (2026-11-22, 1024 MiB
guest, 768 MiB ballooned): HugePages_Free rose by 0 pages, 0 MiB freed
(UPSTREAM_FREED_MIB); the test fails there at the HugePages_Free case.

The host must be able to give HUGETLB_GUEST_MIB of 2 MiB huge pages:
the test grows /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages by
what is missing and shrinks it back at the end.  If the host cannot, every
case is a TAP SKIP naming the reason.

Environment (defaults): HUGETLB_GUEST_MIB (1024), HUGETLB_BALLOON_MIB
(768), HUGETLB_MIN_FRACTION (0.9), HUGETLB_COMPACT_RUNS (3),
HUGETLB_PIN_MIB (128).
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import balloon, scenario  # noqa: E402
from balloon_harness.scenario import MiB, check  # noqa: E402
from balloon_harness import host  # noqa: E402
from balloon_harness.vm import VM  # noqa: E402

GUEST_MIB = scenario.env_int("HUGETLB_GUEST_MIB", 1024)
BALLOON_MIB = scenario.env_int("HUGETLB_BALLOON_MIB", 768)
MIN_FRACTION = scenario.env_float("HUGETLB_MIN_FRACTION", 0.9)
COMPACT_RUNS = scenario.env_int("HUGETLB_COMPACT_RUNS", 3)
PIN_MIB = scenario.env_int("HUGETLB_PIN_MIB", 128)
PIN_FILE = "/tmp/hugetlb-pin"
TARGET_MIB = GUEST_MIB - BALLOON_MIB
HUGE_MIB = host.HUGEPAGE_MIB
# What upstream 6.12 freed of the same 768 MiB balloon (see the docstring).
UPSTREAM_FREED_MIB = 0
# The refill after deflate leaves this much of MemFree untouched.
REFILL_SPARE_MIB = 64
# It may also be served from memory MemFree leaves out (the per-CPU free
# lists) or never punched; page tables and slab come from anywhere.
REFILL_SLACK_MIB = 64


# The cases, in the order they run (registered: the plan is their number).
HOST_BACKS_RAM = f"QEMU backs all {GUEST_MIB} MiB of guest RAM with host huge pages"
INFLATE = f"inflate to {TARGET_MIB} MiB: query-balloon actual == target exactly"
HUGE_PAGES_FREED = (f"inflate: host HugePages_Free rose by >= {MIN_FRACTION:.0%} of the "
                    f"{BALLOON_MIB} MiB ballooned")
KEPT_AFTER_COMPACTION = (f"{COMPACT_RUNS} compaction runs and a fill of free memory: host "
                         f"HugePages_Free still >= {MIN_FRACTION:.0%} of the balloon freed")
DEFLATE = (f"deflate to {GUEST_MIB} MiB: query-balloon actual == RAM, "
           "MemTotal back exactly")
REFILL = ("after deflate the guest uses its memory again: a fill of MemFree - "
          f"{REFILL_SPARE_MIB} MiB succeeds and the host backs it with huge pages")
CASES = [HOST_BACKS_RAM, INFLATE, HUGE_PAGES_FREED, KEPT_AFTER_COMPACTION, DEFLATE, REFILL]
TIMEOUT = 600


def main(tap):
    pool = host.HostHugePages(GUEST_MIB // HUGE_MIB)
    reason = pool.reserve()
    if reason:
        tap.skip_rest(f"no {GUEST_MIB} MiB of 2 MiB huge pages on the host: {reason}")
        return
    try:
        run(tap)
    finally:
        pool.release()


def run(tap):
    free_before_boot = host.host_hugepages_free()
    tap.diag(f"guest {GUEST_MIB} MiB on 2 MiB hugetlb, balloon {BALLOON_MIB} MiB; host "
             f"HugePages_Free {free_before_boot} before boot")
    with VM(mem_mib=GUEST_MIB, hugetlb=True, name="hugetlb-inflate") as vm:
        total0 = vm.meminfo()["MemTotal"]

        with tap.case(HOST_BACKS_RAM):
            free_boot = host.host_hugepages_free()
            tap.diag(f"HugePages_Free {free_before_boot} -> {free_boot}; QEMU HugetlbPages "
                     f"{vm.qemu_hugetlb_kib()} kB")
            check.assertEqual(vm.qemu_hugetlb_kib(), GUEST_MIB * 1024)
            check.assertGreaterEqual(free_before_boot - free_boot, GUEST_MIB // HUGE_MIB)

        with tap.case(INFLATE):
            vm.sh_ok(f"dd if=/dev/zero of={PIN_FILE} bs=1M count={PIN_MIB} 2>/dev/null")
            start = time.monotonic()
            actual = vm.resize(TARGET_MIB * MiB, timeout=120)
            tap.diag(f"actual {actual / MiB:.2f} MiB after {time.monotonic() - start:.1f} s")
            check.assertEqual(actual, TARGET_MIB * MiB)

        with tap.case(HUGE_PAGES_FREED):
            free_inflated = host.host_hugepages_free()
            freed_mib = (free_inflated - free_boot) * HUGE_MIB
            tap.diag(f"HugePages_Free {free_boot} -> {free_inflated}: {freed_mib} MiB of "
                     f"{BALLOON_MIB} MiB back on the host ({freed_mib / BALLOON_MIB:.0%}); "
                     f"QEMU HugetlbPages {vm.qemu_hugetlb_kib() // 1024} MiB")
            tap.diag(f"upstream 6.12 on the same test: {UPSTREAM_FREED_MIB} MiB freed "
                     "(1 MiB buffers never complete a 2 MiB host page)")
            check.assertGreaterEqual(freed_mib, MIN_FRACTION * BALLOON_MIB)

        with tap.case(KEPT_AFTER_COMPACTION):
            vm.sh_ok(f"rm {PIN_FILE}")
            moved0 = vm.vmstat().get("balloon_migrate", 0)
            for _ in range(COMPACT_RUNS):
                vm.sh_ok("echo 1 > /proc/sys/vm/compact_memory", timeout=120)
            moved = vm.vmstat().get("balloon_migrate", 0) - moved0
            fill_mib = vm.meminfo()["MemFree"] // 1024 - REFILL_SPARE_MIB
            rc, out = vm.sh(f"balloon-mem fill {fill_mib}", timeout=300)
            kept_mib = (host.host_hugepages_free() - free_boot) * HUGE_MIB
            tap.diag(f"compaction moved {moved} balloon pages; after a fill of {fill_mib} MiB "
                     f"{kept_mib} MiB of the {BALLOON_MIB} MiB balloon is still free on the host")
            check.assertEqual((rc, out), (0, f"filled {fill_mib}"))
            check.assertEqual(vm.actual(), TARGET_MIB * MiB)
            check.assertGreaterEqual(kept_mib, MIN_FRACTION * BALLOON_MIB)

        with tap.case(DEFLATE):
            balloon.assert_deflated(tap, vm, total0, timeout=120)

        with tap.case(REFILL):
            free_deflated = host.host_hugepages_free()
            fill_mib = vm.meminfo()["MemFree"] // 1024 - REFILL_SPARE_MIB
            rc, out = vm.sh(f"balloon-mem fill {fill_mib}", timeout=300)
            free_filled = host.host_hugepages_free()
            taken = free_deflated - free_filled
            tap.diag(f"fill {fill_mib} MiB: rc {rc} {out!r}; HugePages_Free {free_deflated} -> "
                     f"{free_filled} ({taken * HUGE_MIB} MiB taken back by QEMU)")
            check.assertEqual((rc, out), (0, f"filled {fill_mib}"))
            # The untouched spare may hold some of the blocks the balloon freed.
            check.assertGreaterEqual(taken * HUGE_MIB,
                                     freed_mib - REFILL_SPARE_MIB - REFILL_SLACK_MIB)


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
