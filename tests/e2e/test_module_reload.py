#!/usr/bin/env python3
"""Unloading the driver module gives everything back; loading it inflates again.

The test kernels build virtio_balloon as a module (configs/guest.config),
which guest/init loads (the scenario skips on a kernel with the
driver built in).  Here it is unloaded and loaded again
RELOAD_CYCLES times with everything running that remove has to stop:
the balloon inflated (QEMU's target below RAM), free page reporting
active (memory dirtied and freed just before, reported_pages growing)
and a free page hinting round held (a migration to ``exec:cat >
/dev/null`` at a low bandwidth, so that its first pass, the one QEMU
hints, lasts; hint_budget_mib at its minimum, so that the round is many
small batches; the guest unloads the moment mm's counters show hinted
pages not yet put back).

After each ``modprobe -r``: /sys/module/virtio_balloon and
/sys/kernel/debug/virtio_balloon are gone; every page mm isolated for
hinting was put back (/sys/kernel/mm/page_reporting/stats); QEMU's
query-balloon shows
the whole RAM; MemTotal is exactly its value before the first inflate,
and free memory (MemFree plus the per-CPU lists, balloon.free_kib) is
within RELOAD_SLACK_MIB of it, every cycle, so neither a page nor the
driver's own memory leaks over the cycles.  The migration is then
cancelled and ``modprobe`` must bind the driver again and inflate back
to the target QEMU kept.  The console case (scenario.py) checks that no
warning was printed.

A host-side scenario rather than a guest selftest: only the host can set
the balloon's target and start the migration that opens a hinting round.

Environment (defaults): RELOAD_GUEST_MIB (512), RELOAD_BALLOON_MIB (256),
RELOAD_CYCLES (5), RELOAD_SLACK_MIB (4), RELOAD_BANDWIDTH (bytes/s of the
migration, 1 MiB/s).
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import balloon, scenario  # noqa: E402
from balloon_harness.scenario import MiB, check  # noqa: E402
from balloon_harness.vm import VM  # noqa: E402

GUEST_MIB = scenario.env_int("RELOAD_GUEST_MIB", 512)
BALLOON_MIB = scenario.env_int("RELOAD_BALLOON_MIB", 256)
CYCLES = scenario.env_int("RELOAD_CYCLES", 5)
SLACK_KB = scenario.env_int("RELOAD_SLACK_MIB", 4) * 1024
BANDWIDTH = scenario.env_int("RELOAD_BANDWIDTH", 1 * MiB)
TARGET_MIB = GUEST_MIB - BALLOON_MIB
MODULE = "/sys/module/virtio_balloon"
DEBUGFS = "/sys/kernel/debug/virtio_balloon"
PGR_STATS = "/sys/kernel/mm/page_reporting/stats"
UNLOAD_LOG = "/tmp/module-reload.log"
# How often the guest reads the hint counters, waiting for hinted pages
# to be held, before it unloads anyway (some 30 s under TCG), and how long
# the host waits for the unload.
HOLD_POLLS = 300000
HOLD_WAIT_S = 120
# The driver's hint_budget_mib during the round (its minimum).
HINT_BUDGET_MIB = 8
# Dirtied and freed before each unload, for free page reporting to report.
DIRTY_MIB = 64

INFLATE = f"inflate to {TARGET_MIB} MiB: query-balloon actual == target"
CASES = [INFLATE] + [
    f"cycle {cycle}/{CYCLES}: unload with the balloon inflated, reporting active and "
    f"hinted pages held: module and debugfs gone, hinted pages put back, query-balloon "
    f"== RAM, MemTotal exact, free memory within {SLACK_KB // 1024} MiB; load "
    f"re-inflates to the target"
    for cycle in range(1, CYCLES + 1)]
TIMEOUT = 900


def counters(vm):
    """The driver's debugfs counters (an empty dict when there are none)."""
    return vm.balloon_counters() or {}


def wait_counter(vm, name, above, timeout):
    """Wait until counter ``name`` exceeds ``above``; return its value (or the last seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = counters(vm).get(name, 0)
        if value > above or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def hint_stats(vm):
    """mm's hint counters: (pages isolated for hinting, pages put back), ever."""
    out = vm.sh_ok(f"cat {PGR_STATS}/hint_isolated_pages {PGR_STATS}/hint_returned_pages")
    isolated, returned = map(int, out.split())
    return isolated, returned


def unload_while_held(vm, isolated0):
    """In the background, unload the driver while it holds hinted pages.

    The guest polls mm's hint counters and runs ``modprobe -r`` as soon as
    pages isolated for hinting are not all put back (isolated is read
    before put back, so the difference is a lower bound of what was held
    when the second was read), or after HOLD_POLLS reads.  UNLOAD_LOG gets
    "held N", "isolated N" (pages the round took since ``isolated0``) and
    "rc N".
    """
    # Shell builtins only (read, test, arithmetic): no fork between the
    # reads, so that a batch held for a few milliseconds is seen.
    vm.sh_ok(f"rm -f {UNLOAD_LOG}; ("
             f"n=0; held=0; i={isolated0}; "
             f"while [ $n -lt {HOLD_POLLS} ]; do "
             f"read i < {PGR_STATS}/hint_isolated_pages; "
             f"read r < {PGR_STATS}/hint_returned_pages; "
             f"held=$(( i - r )); [ $held -gt 0 ] && break; n=$(( n + 1 )); done; "
             f"modprobe -r virtio_balloon; echo rc $?; "
             f"echo held $held; echo isolated $(( i - {isolated0} ))"
             f") >{UNLOAD_LOG}.tmp 2>&1 && mv {UNLOAD_LOG}.tmp {UNLOAD_LOG} &")


def wait_unloaded(vm, timeout):
    """Wait for :func:`unload_while_held` to finish; return ``{held, isolated, rc}``."""
    deadline = time.monotonic() + timeout
    while True:
        rc, out = vm.sh(f"cat {UNLOAD_LOG}")
        if rc == 0:
            return {k: int(v) for k, v in (line.split() for line in out.splitlines()
                                           if line.split()[0] in ("held", "isolated", "rc"))}
        if time.monotonic() > deadline:
            raise AssertionError(f"modprobe -r not done after {timeout} s")
        time.sleep(0.2)


def start_hinting_round(vm):
    """Start a slow migration to nowhere: QEMU opens a hinting round in its first pass."""
    vm.qmp.execute("migrate-set-parameters", **{"max-bandwidth": BANDWIDTH})
    vm.qmp.execute("migrate", uri="exec:cat > /dev/null")


def cancel_migration(vm, timeout=30.0):
    """Cancel the migration; return its final status."""
    vm.qmp.execute("migrate_cancel")
    deadline = time.monotonic() + timeout
    while True:
        status = vm.qmp.execute("query-migrate").get("status")
        if status in ("cancelled", "completed", "failed") or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def cycle(tap, vm, total0, free0, total_inflated):
    try:
        unload(tap, vm, total0, free0)
    finally:
        # Loaded again whatever happened, so that the next cycle runs.
        start = time.monotonic()
        vm.sh_ok("modprobe virtio_balloon", timeout=60)
    balloon.assert_reinflated(tap, vm, TARGET_MIB * MiB, total_inflated, start, "load",
                              timeout=120)


def unload(tap, vm, total0, free0):
    before = counters(vm)
    # Reporting: freed memory is reported within a fraction of a second.
    vm.sh_ok(f"balloon-mem fill {DIRTY_MIB}", timeout=120)
    reported = wait_counter(vm, "reported_pages", before.get("reported_pages", 0), 20)
    check.assertGreater(reported, before.get("reported_pages", 0),
                        "free page reporting reported nothing")

    # Small batches (two of HINT_BUDGET_MIB / 2 in flight): the round
    # lasts long enough for the guest to catch it holding pages.
    vm.sh_ok(f"echo {HINT_BUDGET_MIB} > {MODULE}/parameters/hint_budget_mib")
    unload_while_held(vm, hint_stats(vm)[0])
    start_hinting_round(vm)
    try:
        seen = wait_unloaded(vm, HOLD_WAIT_S)
        status = vm.qmp.execute("query-migrate").get("status")
    finally:
        cancelled = cancel_migration(vm)
    tap.diag(f"modprobe -r exited {seen.get('rc')} with {seen.get('held')} hinted pages held "
             f"({seen.get('isolated')} isolated by the round so far); migration {status}")
    check.assertEqual(seen.get("rc"), 0, "modprobe -r virtio_balloon")
    check.assertGreater(seen.get("held", 0), 0, "no hinted pages held at the unload")
    check.assertEqual(status, "active", "the migration (and its hinting round) ended "
                      "before the unload: lower RELOAD_BANDWIDTH")
    check.assertEqual(cancelled, "cancelled", "migration after migrate_cancel")

    check.assertNotEqual(vm.sh(f"[ -e {MODULE} ]")[0], 0, f"{MODULE} still exists")
    check.assertNotEqual(vm.sh(f"[ -e {DEBUGFS} ]")[0], 0, f"{DEBUGFS} still exists")
    isolated, returned = hint_stats(vm)
    check.assertEqual(returned, isolated, "hinted pages not put back after unload")
    actual = vm.wait_actual(GUEST_MIB * MiB, timeout=30)
    total, free = vm.meminfo()["MemTotal"], balloon.free_kib(vm)
    tap.diag(f"unloaded: actual {actual / MiB:.2f} MiB, MemTotal {total} kB, free {free} kB "
             f"({free - free0:+d} kB from before the first inflate), "
             f"{isolated} pages hinted and put back so far")
    check.assertEqual(actual, GUEST_MIB * MiB, "query-balloon after unload")
    check.assertEqual(total, total0, "MemTotal after unload")
    check.assertAlmostEqual(free, free0, delta=SLACK_KB, msg="free memory after unload")


def main(tap):
    with VM(mem_mib=GUEST_MIB, name="module-reload", deflate_on_oom=True,
            free_page_reporting=True, free_page_hint=True,
            guest_stats_polling_interval=1) as vm:
        if vm.sh(f"[ -f {MODULE}/initstate ]")[0] != 0:
            tap.skip_rest("virtio_balloon is built in, not a module (configs/guest.config)")
            return
        if not counters(vm):
            tap.skip_rest(f"no driver counters in {DEBUGFS} (not the project's driver)")
            return
        vm.balloon_device()
        total0, free0 = vm.meminfo()["MemTotal"], balloon.free_kib(vm)
        tap.diag(f"MemTotal {total0} kB, free {free0} kB before the first inflate")
        with tap.case(INFLATE):
            check.assertEqual(vm.resize(TARGET_MIB * MiB, timeout=60), TARGET_MIB * MiB)
            total_inflated = vm.meminfo()["MemTotal"]
        for name in CASES[1:]:
            with tap.case(name):
                cycle(tap, vm, total0, free0, total_inflated)


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
