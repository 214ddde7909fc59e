"""Checks the scenarios share: a full deflate, the working set, a remove/re-probe cycle
and the balloon back at its target after it.

Setting the target and waiting for it is :meth:`vm.VM.resize`.  The
working set is guest/workset: pages that each hold a checksum of their
number and generation, rewritten continuously in the background, checked
at the end (a lost or stale page is a "bad" page).
"""

import re
import time

from .errors import VMError
from .scenario import MiB, check

DRIVER = "/sys/bus/virtio/drivers/virtio_balloon"
WORKSET = "/tmp/workset"
VERDICT = re.compile(r"pages (\d+) verified (\d+) rewritten (\d+) bad (\d+)")


def assert_deflated(tap, vm, memtotal_kb, timeout=60.0):
    """Deflate to the whole RAM: query-balloon reaches it, MemTotal is ``memtotal_kb`` again."""
    actual = vm.resize(vm.mem_mib * MiB, timeout=timeout)
    total = vm.meminfo()["MemTotal"]
    tap.diag(f"actual {actual / MiB:.2f} MiB, MemTotal {memtotal_kb} -> {total} kB")
    check.assertEqual(actual, vm.mem_mib * MiB)
    check.assertEqual(total, memtotal_kb)


# ---- the working set --------------------------------------------------------

def workset_start(vm, mib, rate=1000, name=WORKSET, holes=False):
    """Start guest/workset in the background; return its page count."""
    out = vm.sh_ok(f"workset start -r {rate} -f {name} {'-H ' if holes else ''}{mib}",
                   timeout=300)
    m = re.search(r"pages (\d+)", out)
    if not m:
        raise VMError(f"workset start: {out!r}")
    return int(m.group(1))


def workset_check(vm, name=WORKSET):
    """Stop the background set, return ``(rc, {pages, verified, rewritten, bad}, output)``."""
    rc, out = vm.sh(f"workset check -f {name} -t 600", timeout=660)
    m = VERDICT.search(out)
    nums = dict(zip(("pages", "verified", "rewritten", "bad"),
                    map(int, m.groups()))) if m else None
    return rc, nums, out


def assert_workset_intact(tap, vm, name=WORKSET):
    """Stop and check the working set: it exits 0 with 0 bad pages; return its numbers.

    The pages verified and the bad pages go to the soak summary
    (``# soak: NAME VALUE`` lines, added up by make soak).
    """
    rc, nums, out = workset_check(vm, name)
    tap.diag(f"workset: {out}")
    check.assertIsNotNone(nums, "no verdict from workset check")
    soak("pages_verified", nums["verified"])
    soak("bad_pages", nums["bad"])
    check.assertEqual((rc, nums["bad"]), (0, 0))
    return nums


def soak(name, value):
    """A number for the soak summary of the debug stage."""
    print(f"# soak: {name} {value}", flush=True)


# ---- remove and re-probe ------------------------------------------------------

def free_kib(vm, reads=10, settle_s=0.5, settle_kb=256):
    """MemFree plus the free pages on the per-CPU lists, in KiB, once settled.

    Free page reporting takes free blocks off the free lists while the host
    discards them, and the guest's own work moves a little memory: read
    until two reads ``settle_s`` apart agree within ``settle_kb`` (or give
    up after ``reads`` reads and return the last).
    """
    last = None
    for _ in range(reads):
        pcp = vm.sh_ok("awk '$1 == \"count:\" { n += $2 } END { print n + 0 }' /proc/zoneinfo")
        free = vm.meminfo()["MemFree"] + int(pcp) * vm.page_kib()
        if last is not None and abs(free - last) <= settle_kb:
            return free
        last = free
        time.sleep(settle_s)
    return last


def bound(vm, dev):
    """Whether the balloon driver is bound to ``dev``."""
    return vm.sh(f"[ -e /sys/bus/virtio/devices/{dev}/driver ]")[0] == 0


def assert_reinflated(tap, vm, target, memtotal_kb, since, what, timeout=60.0):
    """After the driver came back (``what``: "bind", "load"), the balloon is at
    ``target`` bytes again and MemTotal is ``memtotal_kb``, as before it left.
    ``since`` is when it came back (time.monotonic())."""
    actual = vm.wait_actual(target, timeout=timeout)
    total = vm.meminfo()["MemTotal"]
    tap.diag(f"after {what}: actual {actual / MiB:.2f} MiB after "
             f"{time.monotonic() - since:.1f} s, MemTotal {total} kB")
    check.assertEqual(actual, target, f"query-balloon after {what}")
    check.assertEqual(total, memtotal_kb, f"MemTotal after {what}")


def unbind_and_bind(vm, dev, timeout, free_reads=10):
    """Unbind the driver from ``dev``, see what is left, and bind it again.

    Returns what was seen while unbound: ``unbound`` (the driver let go),
    ``actual`` (query-balloon, waited for up to ``timeout`` s to be the
    whole RAM), ``total`` (MemTotal), ``free`` (:func:`free_kib`), and
    ``bound_at`` (time.monotonic() of the bind).  The driver is bound
    again even when reading failed, so a next cycle can run.
    """
    seen = {}
    try:
        vm.sh_ok(f"echo {dev} > {DRIVER}/unbind")
        seen["unbound"] = not bound(vm, dev)
        seen["actual"] = vm.wait_actual(vm.mem_mib << 20, timeout=timeout)
        seen["total"] = vm.meminfo()["MemTotal"]
        seen["free"] = free_kib(vm, reads=free_reads)
    finally:
        seen["bound_at"] = time.monotonic()
        vm.sh(f"echo {dev} > {DRIVER}/bind")
    return seen
