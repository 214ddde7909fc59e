#!/usr/bin/env python3
"""Memory compaction migrates ballooned pages while the balloon is inflated.

With BALLOON_COMPACTION the driver's pages stay movable: compaction may
move a ballooned page, and the driver then tells the host about the new
page and takes the old one back, so the balloon keeps its size.

For a default device and one with deflate-on-oom, the guest first
fragments its memory (fills tmpfs with 1 MiB files and deletes every
other one), inflates into the holes, deletes the rest, and then runs a
full compaction (``echo 1 > /proc/sys/vm/compact_memory``).  Asserted:
/proc/vmstat balloon_migrate grows, query-balloon actual does not move,
the driver's debugfs migrated_pages grows (when the counters file
exists), and a deflate afterwards still gives back every page (actual ==
RAM, MemTotal back to its value before the inflate).

Environment (defaults): COMPACT_GUEST_MIB (512), COMPACT_BALLOON_MIB (128).
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import balloon, scenario  # noqa: E402
from balloon_harness.scenario import MiB, check  # noqa: E402
from balloon_harness.vm import VM  # noqa: E402

GUEST_MIB = scenario.env_int("COMPACT_GUEST_MIB", 512)
BALLOON_MIB = scenario.env_int("COMPACT_BALLOON_MIB", 128)
TARGET_MIB = GUEST_MIB - BALLOON_MIB
# The fragmenting fill leaves this much of MemFree alone.
FILL_SPARE_MIB = 48
FRAG_DIR = "/tmp/frag"
CONFIGS = (("default device", {}), ("deflate-on-oom", {"deflate_on_oom": True}))


def case_names(desc):
    """The cases of configuration ``desc``, in the order they run."""
    return [f"{desc}: inflate {BALLOON_MIB} MiB into fragmented memory: "
            "query-balloon actual == target",
            f"{desc}: compact_memory migrates ballooned pages (vmstat balloon_migrate "
            "and debugfs migrated_pages grow), query-balloon actual unchanged",
            f"{desc}: after compaction a deflate gives back every page: "
            "actual == RAM, MemTotal as before the inflate"]


# The cases, in the order they run (registered: the plan is their number).
CASES = [name for desc, _ in CONFIGS for name in case_names(desc)]
TIMEOUT = 600


def fragment(tap, vm):
    """Fill tmpfs with 1 MiB files and delete the even ones: free memory full of holes."""
    files = vm.meminfo()["MemFree"] // 1024 - FILL_SPARE_MIB
    start = time.monotonic()
    vm.sh_ok(f"mkdir -p {FRAG_DIR} && i=0; while [ $i -lt {files} ]; do "
             f"dd if=/dev/zero of={FRAG_DIR}/$i bs=1M count=1 2>/dev/null || exit 1; "
             f"i=$((i+1)); done", timeout=300)
    vm.sh_ok(f"i=0; while [ $i -lt {files} ]; do rm {FRAG_DIR}/$i; i=$((i+2)); done")
    tap.diag(f"fragmented: {files} x 1 MiB written, every other one deleted, in "
             f"{time.monotonic() - start:.1f} s; MemFree {vm.meminfo()['MemFree']} kB")


def run(tap, desc, options):
    with VM(mem_mib=GUEST_MIB, name="compaction", **options) as vm:
        total0 = vm.meminfo()["MemTotal"]
        fragment(tap, vm)
        inflated, compacted, deflated = case_names(desc)

        with tap.case(inflated):
            check.assertEqual(vm.resize(TARGET_MIB * MiB, timeout=60), TARGET_MIB * MiB)
            vm.sh_ok(f"rm -rf {FRAG_DIR}")

        with tap.case(compacted):
            stat0, counters0 = vm.vmstat(), vm.balloon_counters()
            start = time.monotonic()
            vm.sh_ok("echo 1 > /proc/sys/vm/compact_memory", timeout=120)
            took = time.monotonic() - start
            stat, counters = vm.vmstat(), vm.balloon_counters()
            migrated = stat["balloon_migrate"] - stat0["balloon_migrate"]
            actual = vm.actual()
            tap.diag(f"compaction {took:.1f} s: balloon_migrate +{migrated}, pgmigrate_success "
                     f"+{stat['pgmigrate_success'] - stat0['pgmigrate_success']}; actual "
                     f"{actual / MiB:.2f} MiB")
            check.assertGreater(migrated, 0, "balloon_migrate")
            check.assertEqual(actual, TARGET_MIB * MiB, "query-balloon actual")
            if counters0 is None:
                tap.diag("no debugfs counters file: migrated_pages not checked")
            else:
                tap.diag(f"debugfs migrated_pages {counters0['migrated_pages']} -> "
                         f"{counters['migrated_pages']}, migrate_failures "
                         f"{counters0['migrate_failures']} -> {counters['migrate_failures']}")
                check.assertGreater(counters["migrated_pages"], counters0["migrated_pages"],
                                    "debugfs migrated_pages")

        with tap.case(deflated):
            balloon.assert_deflated(tap, vm, total0, timeout=60)


def main(tap):
    for desc, options in CONFIGS:
        run(tap, desc, options)


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
