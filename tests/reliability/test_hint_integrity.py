#!/usr/bin/env python3
"""Free page hinting loses no guest data: a live migration to a real destination.

A guest with free-page-hint=on dirties and frees INTEGRITY_FILL_MIB MiB
(free memory for the driver to hint), starts a checksummed working set
(guest/workset.c, INTEGRITY_SET_MIB MiB, pages rewritten at
INTEGRITY_RATE pages/s) and a churn loop (``workset run`` of
INTEGRITY_CHURN_MIB MiB again and again: it allocates memory, likely
blocks the driver just hinted and gave back, fills, rewrites and verifies
it, and frees it).  The guest is then migrated over TCP to a second QEMU
started with the same command line and ``-incoming tcp:127.0.0.1:PORT``
(harness/vm.py IncomingVM, its own QMP and agent sockets), and resumed
there.  Asserted:

- the migration completes and the source's free_page_vq carried hints
  while the set was changing;
- on the destination, the working set verifies every page (bad 0) and
  it was rewritten during the migration; every churn run, before, across
  and after the switch-over, verified bad 0;
- the destination's guest gets back every page it held for hinting
  (MemFree) and can fill and verify most of its free memory: hinted
  blocks came back to the allocator intact;
- the destination's balloon driver still works: an inflate and a deflate
  reach their targets in ``query-balloon``.

What this cannot show: under TCG, QEMU's own dirty bitmap catches every
guest write, so a driver that hints pages without isolating them (the
lost-write race of ../../../shared/docs/protocol.md section 6.2) would
pass here too; that race needs KVM's manual dirty-log clearing, and KVM
does not work on the project's machines.  The test proves the stream is
consistent, that hinted blocks come back to the guest intact and usable,
and that no block the driver isolated was handed out twice (a double
use shows up as bad pages).

Measured (TCG, QEMU 7.2, 1 GiB guest, fill 640 MiB, set 128 MiB, churn
32 MiB, 64 MiB/s; 2026-11-22): about 200-260 MiB sent in 2-3 s, 2-5
syncs, the project's driver held its full 128 MiB budget.  The upstream
kernel never lost data in 17 runs (5 hint on, 12 hint off; 2 of the
hint-off runs missed the MemFree check by 2 MiB when its slack was
16 MiB, now 32 MiB).  The project kernel
(#21, series at "virtio_balloon: hint free pages in bounded batches")
failed about one run in three, hint on and off alike:
- hint on, 2 of 8: one workset page on the destination held the previous
  generation of its data, intact (a write lost in the migration), e.g.
  "expected gen 3, found index 15619 gen 2";
- hint on, 2 of 8: the destination's MemFree stayed about 90 MiB short:
  a batch the source's device had not used before the switch-over is
  never used on the destination, so the driver never gives it back
  (fixed since: the driver notifies again while it waits, and DONE
  gives the blocks back at once);
- hint off, 3 of 11 (1 of them with kunit.enable=0): the destination
  guest panicked soon after resuming (a poisoned per-CPU free list in
  __rmqueue_pcplist, or a jump to a NULL function pointer).
The same workload without a migration passed 4 runs of 4, and with one
vCPU (smp=1, hint off) 6 runs of 6.  The lost write and the panics are
therefore not caused by hinting alone; they need a migration and two
vCPUs, and were not seen on upstream (not conclusive at these counts).

Environment (defaults): INTEGRITY_GUEST_MIB (1024), INTEGRITY_FILL_MIB
(640), INTEGRITY_SET_MIB (128), INTEGRITY_CHURN_MIB (32), INTEGRITY_RATE
(1000), INTEGRITY_MAX_BANDWIDTH (bytes/s, 64 MiB/s), INTEGRITY_HINT (1; 0
for the control run with free-page-hint=off).

Not part of make check (moved from tests/e2e).  Narrowed down on
2026-11-22 (project kernel, INTEGRITY_HINT=0, on a host loaded with two
busy loops, 10 runs each unless said): the destination guest crashed
soon after resuming (a corrupt hrtimer rb-tree, an avg_vruntime divide
error, the deadline server's timer: scheduler and timer data) in 5 of 10
runs with reporting on, 5 of 9 with INTEGRITY_REPORTING=0, 5 of 10 with
ACCEL=tcg,thread=single, 2 of 12 with VM_APPEND=kunit.enable=0, 2 of 12
with the driver unbound before the migration (a /tmp script), and 2 of
10 with the upstream driver on top of only the mm patches (reporting
off, so the new mm code never ran).  It did not crash with hinting on
(0 of 20, quiet and loaded), with one vCPU (INTEGRITY_SMP=1, kunit off,
0 of 10, against 1 of 8 with two vCPUs right after under the same load),
without a migration (0 of 6), nor on the upstream kernel (0 of 39 under
the same load, 17 before).  So it needs a migration and guest SMP, but
neither hinting, reporting, KUnit nor the balloon driver; the cause is
not known (a QEMU 7.2 TCG migration problem whose odds depend on the
guest kernel is one explanation the data allows; upstream with .text
and .data shifted by a padding change passed 12 of 12).  In the last 7
runs (6 failed) the symptom was no crash but lost writes: pages of the
working set and of the churn runs one generation old on the
destination, hinting and reporting both off.
"""

import os
import time

import rlib  # noqa: F401  (tests/e2e on the path; the debug kernel by default)
import lib  # noqa: E402
from lib import MiB, check
from vm import VM, IncomingVM

GUEST_MIB = lib.env_int("INTEGRITY_GUEST_MIB", 1024)
FILL_MIB = lib.env_int("INTEGRITY_FILL_MIB", 640)
SET_MIB = lib.env_int("INTEGRITY_SET_MIB", 128)
CHURN_MIB = lib.env_int("INTEGRITY_CHURN_MIB", 32)
RATE = lib.env_int("INTEGRITY_RATE", 1000)
# INTEGRITY_HINT=0 runs the same with free-page-hint=off: the control run
# that tells a hinting bug from anything else in the migration.
HINT = lib.env_int("INTEGRITY_HINT", 1) != 0
# INTEGRITY_SMP sets the guest's CPUs (2).
SMP = lib.env_int("INTEGRITY_SMP", 2)
# INTEGRITY_REPORTING=0 or 1 turns free page reporting off or on; unset
# leaves QEMU's default (on).
REPORTING = {"0": False, "1": True}.get(os.environ.get("INTEGRITY_REPORTING", ""))
FREE_PAGE_VQ = 3  # QEMU numbering: inflate, deflate, stats, free_page_vq
# Lets the final stop-and-copy happen even on a slow, shared host.
DOWNTIME_LIMIT_MS = 2000
# Half QEMU's default: the migration lasts a few seconds, long enough for
# several churn runs and hinting batches, and still converges.
MAX_BANDWIDTH = lib.env_int("INTEGRITY_MAX_BANDWIDTH", 64 * MiB)
# Page tables, slab and the logs in tmpfs vary by a few MiB between the two
# readings; a batch left held is tens of MiB.
MEMFREE_SLACK_KB = 32 * 1024
# The fresh set on the destination leaves this much of MemFree alone.
FRESH_SPARE_MIB = 96
SET = "/tmp/steady"
CHURN = (f"(while [ ! -e /tmp/churn.stop ]; do workset run -r 2000 {CHURN_MIB} 1; done) "
         ">/tmp/churn.log 2>&1 </dev/null & echo $!")


def status_fields(text):
    """``pages N verified V rewritten R bad B`` (maybe after a state word) as a dict."""
    words = text.split()
    if words and not words[0] == "pages":
        words = words[1:]
    return {k: int(v) for k, v in zip(words[0::2], words[1::2])}


def stop_churn(vm, pid):
    """End the churn loop after its current run; return the verdict lines of all runs."""
    vm.sh_ok(f"touch /tmp/churn.stop; while kill -0 {pid} 2>/dev/null; do sleep 0.2; done",
             timeout=120)
    return vm.sh_ok("cat /tmp/churn.log").splitlines()


def main(tap):
    tap.diag(f"guest {GUEST_MIB} MiB, fill {FILL_MIB} MiB, set {SET_MIB} MiB at {RATE} pages/s, "
             f"churn {CHURN_MIB} MiB")
    with VM(mem_mib=GUEST_MIB, smp=SMP, free_page_hint=HINT,
            free_page_reporting=REPORTING, name="integ-src") as src, \
            IncomingVM(src, name="integ-dst") as dst:
        src.sh_ok(f"balloon-mem fill {FILL_MIB}", timeout=300)
        tap.diag(src.sh_ok(f"workset start -r {RATE} -f {SET} {SET_MIB}", timeout=120))
        free_before = src.meminfo()["MemFree"]
        churn = src.sh_ok(CHURN)
        time.sleep(1)
        before = status_fields(src.sh_ok(f"workset status -f {SET}"))
        runs_before = len(src.sh_ok("cat /tmp/churn.log").splitlines())
        start = time.monotonic()
        info = src.migrate(dst.uri, max_bandwidth=MAX_BANDWIDTH,
                           downtime_limit=DOWNTIME_LIMIT_MS)
        took = time.monotonic() - start
        used = src.queue_status(FREE_PAGE_VQ)["used-idx"] if HINT else None
        dinfo = dst.resume() if info["status"] == "completed" else {}
        src.quit()  # paused in postmigrate: its agent cannot answer
        counters = dst.balloon_counters() if dinfo else None
        ram = info.get("ram", {})
        tap.diag(f"migration {info['status']}: transferred {ram.get('transferred', 0) / MiB:.1f} "
                 f"MiB, normal {ram.get('normal')} pages, duplicate {ram.get('duplicate')}, "
                 f"{ram.get('dirty-sync-count')} syncs in {took:.1f} s; destination {dinfo.get('status')}; "
                 f"free_page_vq used-idx {used}; counters {counters}")

        with tap.case("migration to a second QEMU (-incoming tcp) completes, with hints "
                      "sent while the working set changed (free_page_vq used-idx > 2)"):
            check.assertEqual(info["status"], "completed")
            if HINT:
                check.assertGreater(used, 2)

        with tap.case("destination: the working set verifies every page (bad 0) and kept "
                      "changing across the migration"):
            rc, out = dst.sh(f"workset status -f {SET}")
            during = status_fields(out)
            churn_lines = stop_churn(dst, churn)
            free_after = dst.wait_memfree(free_before - MEMFREE_SLACK_KB, timeout=20)
            rc, out = dst.sh(f"workset check -f {SET}", timeout=180)
            final = status_fields(out.splitlines()[0]) if out else {}
            tap.diag(f"set before migration: {before}; on the destination: {during}; "
                     f"check (rc {rc}): {out}")
            check.assertEqual(rc, 0, out)
            check.assertEqual(final.get("bad"), 0)
            check.assertEqual(final.get("pages"), SET_MIB * 256)
            check.assertGreaterEqual(final["verified"], final["pages"])
            check.assertGreater(during["rewritten"], before["rewritten"])

        with tap.case("every churn run (allocate, fill, rewrite, verify, free), before and "
                      "after the switch-over, verified bad 0"):
            verdicts = [status_fields(line) for line in churn_lines if line.startswith("pages ")]
            tap.diag(f"{len(verdicts)} churn runs, {runs_before} done before the migration, "
                     f"{len(churn_lines) - len(verdicts)} other "
                     f"lines: {[line for line in churn_lines if not line.startswith('pages ')]}")
            check.assertGreaterEqual(len(verdicts), 2)
            check.assertEqual(len(verdicts), len(churn_lines))
            check.assertEqual([v for v in verdicts if v["bad"]], [])

        with tap.case("destination: every page held for hinting is back (MemFree), and most "
                      "free memory fills and verifies (workset run)"):
            free_now = dst.meminfo()["MemFree"]
            fresh = max(16, free_now // 1024 - FRESH_SPARE_MIB)
            rc, out = dst.sh(f"workset run -r 2000 {fresh} 2", timeout=300)
            tap.diag(f"MemFree {free_before} kB before the migration (set running), "
                     f"{free_after} kB on the destination; fresh set of {fresh} MiB: {out}")
            check.assertGreaterEqual(free_after, free_before - MEMFREE_SLACK_KB)
            check.assertEqual(rc, 0, out)
            check.assertEqual(status_fields(out)["bad"], 0)

        with tap.case("destination: the balloon inflates and deflates (query-balloon)"):
            target = (GUEST_MIB - 128) * MiB
            dst.set_target(target)
            inflated = dst.wait_actual(target, timeout=60)
            dst.set_target(GUEST_MIB * MiB)
            deflated = dst.wait_actual(GUEST_MIB * MiB, timeout=60)
            tap.diag(f"actual {inflated / MiB:.0f} MiB after inflate, {deflated / MiB:.0f} MiB "
                     f"after deflate")
            check.assertEqual(inflated, target)
            check.assertEqual(deflated, GUEST_MIB * MiB)


if __name__ == "__main__":
    lib.run(main, plan=5)
