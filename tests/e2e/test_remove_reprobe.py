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

import time

import lib
from lib import MiB, check
from vm import VM

GUEST_MIB = lib.env_int("REPROBE_GUEST_MIB", 512)
BALLOON_MIB = lib.env_int("REPROBE_BALLOON_MIB", 256)
CYCLES = lib.env_int("REPROBE_CYCLES", 3)
SLACK_KB = lib.env_int("REPROBE_SLACK_MIB", 2) * 1024
TARGET_MIB = GUEST_MIB - BALLOON_MIB
DRIVER = "/sys/bus/virtio/drivers/virtio_balloon"
SETTLE_S = 0.5
SETTLE_KB = 256
CONFIGS = (
    ("default device", {}),
    ("all features", {"deflate_on_oom": True, "free_page_reporting": True,
                      "free_page_hint": True, "guest_stats_polling_interval": 1}),
)


def free_kib(vm):
    """MemFree plus the free pages on the per-CPU lists, in KiB, once settled.

    Free page reporting takes free blocks off the free lists while the host
    discards them, and the guest's own work moves a little memory: read
    until two reads SETTLE_S apart agree within SETTLE_KB (or give up after
    ten reads and return the last).
    """
    last = None
    for _ in range(10):
        pcp = vm.sh_ok("awk '$1 == \"count:\" { n += $2 } END { print n + 0 }' /proc/zoneinfo")
        free = vm.meminfo()["MemFree"] + int(pcp) * 4
        if last is not None and abs(free - last) <= SETTLE_KB:
            return free
        last = free
        time.sleep(SETTLE_S)
    return last


def bound(vm, dev):
    """Whether the balloon driver is bound to ``dev``."""
    return vm.sh(f"[ -e /sys/bus/virtio/devices/{dev}/driver ]")[0] == 0


def run(tap, desc, options):
    with VM(mem_mib=GUEST_MIB, name="remove-reprobe", **options) as vm:
        dev = vm.balloon_device()
        total0, free0 = vm.meminfo()["MemTotal"], free_kib(vm)
        tap.diag(f"{desc}: {dev}, MemTotal {total0} kB, free {free0} kB before the inflate")

        with tap.case(f"{desc}: inflate to {TARGET_MIB} MiB: query-balloon actual == target"):
            vm.set_target(TARGET_MIB * MiB)
            check.assertEqual(vm.wait_actual(TARGET_MIB * MiB, timeout=60), TARGET_MIB * MiB)
            total_inflated = vm.meminfo()["MemTotal"]

        for cycle in range(1, CYCLES + 1):
            with tap.case(f"{desc}: cycle {cycle}/{CYCLES}: unbind returns every page "
                          f"(MemTotal exact, free memory within {SLACK_KB // 1024} MiB, "
                          "query-balloon == RAM); bind re-inflates to the target"):
                try:
                    vm.sh_ok(f"echo {dev} > {DRIVER}/unbind")
                    unbound = not bound(vm, dev)
                    actual = vm.wait_actual(GUEST_MIB * MiB, timeout=30)
                    total, free = vm.meminfo()["MemTotal"], free_kib(vm)
                finally:
                    # Bind again even if the checks failed, so the next cycle runs.
                    start = time.monotonic()
                    vm.sh(f"echo {dev} > {DRIVER}/bind")
                tap.diag(f"unbound: actual {actual / MiB:.2f} MiB, MemTotal {total} kB, free "
                         f"{free} kB ({free - free0:+d} kB from before the inflate)")
                check.assertTrue(unbound, "driver still bound after unbind")
                check.assertEqual(actual, GUEST_MIB * MiB, "query-balloon after unbind")
                check.assertEqual(total, total0, "MemTotal after unbind")
                check.assertAlmostEqual(free, free0, delta=SLACK_KB, msg="free memory after unbind")

                check.assertTrue(bound(vm, dev), "driver not bound after bind")
                actual = vm.wait_actual(TARGET_MIB * MiB, timeout=60)
                total = vm.meminfo()["MemTotal"]
                tap.diag(f"bound: actual {actual / MiB:.2f} MiB after "
                         f"{time.monotonic() - start:.1f} s, MemTotal {total} kB")
                check.assertEqual(actual, TARGET_MIB * MiB, "query-balloon after bind")
                check.assertEqual(total, total_inflated, "MemTotal after bind")

def main(tap):
    for desc, options in CONFIGS:
        run(tap, desc, options)


if __name__ == "__main__":
    lib.run(main, plan=len(CONFIGS) * (1 + CYCLES))
