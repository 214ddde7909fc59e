"""What the reliability scenarios (tests/reliability/) share beyond balloon_harness.

The scenarios boot the debug kernel (build/debug-kernel,
configs/debug.config) unless KERNEL says otherwise.
Every VM gets ``DEBUG_APPEND`` on its command line: DEBUG_PAGEALLOC on
and PCI interrupts routed without ACPI (see below); the hung-task
detector's 20 s timeout is the debug config's default.

What a scenario asserts about the kernel itself comes from here:

- :func:`assert_clean_console`: no kernel report on the console so far
  (BUG, WARNING, KASAN, lockdep, RCU, hung task, soft lockup, Oops,
  kmemleak; the pattern is balloon_harness/console.py's, which every
  VM's teardown checks too).
- :func:`kmemleak_start` / :func:`kmemleak_leaks`: boot-time suspects are
  cleared at the start; at the end two scans (kmemleak reports an object
  only once it is 5 s old and unreferenced in a scan) list the new ones.
- :func:`check_counters`: the driver's debugfs counters agree with each
  other and with QEMU's query-balloon.
- :class:`Faults`: fail_page_alloc and failslab through debugfs.

Numbers for the soak summary are printed as ``# soak: name value`` lines
(balloon_harness.balloon.soak), which make soak adds up.
"""

import re
import time

from balloon_harness import paths, vm as vmmod
from balloon_harness.errors import VMError
from balloon_harness.scenario import MiB, check

# pci=noacpi: PCI interrupt routing from SeaBIOS's table, not ACPI's _PRT,
# whose AML loop takes over 30 s in a KASAN kernel under TCG (the
# interpreter gives up with AE_AML_LOOP_TIMEOUT, after a soft lockup
# report, and the device is left without an interrupt line).
DEBUG_APPEND = "debug_pagealloc=on pci=noacpi"
# A debug kernel under TCG boots in tens of seconds, not 2.
BOOT_TIMEOUT = 240.0
OOM_KILL = re.compile(r"Out of memory: Killed process|oom-kill:|Memory cgroup out of memory")
COUNTERS_TIMEOUT = 30.0


def VM(**kwargs):
    """A :class:`vm.VM` booting the debug kernel, with its command line and boot timeout."""
    kwargs["append"] = (DEBUG_APPEND + " " + kwargs.get("append", "")).strip()
    kwargs.setdefault("boot_timeout", BOOT_TIMEOUT)
    kwargs.setdefault("kernel", paths.kernel("debug"))
    return vmmod.VM(**kwargs)


def assert_clean_console(tap, vm):
    """No BUG/WARNING/KASAN/lockdep/hung-task report on the console."""
    found = vm.kernel_reports()
    for r in found[:5]:
        tap.diag("console: " + r)
    check.assertEqual(len(found), 0, f"{len(found)} kernel report(s) on the console")


def oom_kills(vm):
    """OOM kills on the console (the kernel prints them there)."""
    return [line for line in vm.console_text().splitlines() if OOM_KILL.search(line)]


# ---- kmemleak ------------------------------------------------------------

KMEMLEAK = "/sys/kernel/debug/kmemleak"


def kmemleak_start(vm):
    """Scan once and forget every suspect from boot and setup.

    Returns None, or why kmemleak cannot be used (for a TAP SKIP)."""
    if vm.sh(f"[ -w {KMEMLEAK} ]")[0]:
        return f"the guest kernel has no kmemleak ({KMEMLEAK})"
    vm.sh_ok(f"echo scan > {KMEMLEAK}", timeout=300)
    vm.sh_ok(f"echo clear > {KMEMLEAK}")
    return None


def kmemleak_leaks(vm):
    """Suspected leaks since :func:`kmemleak_start`: a list of report blocks."""
    for _ in range(2):
        time.sleep(6)  # objects younger than 5 s are never reported
        vm.sh_ok(f"echo scan > {KMEMLEAK}", timeout=300)
    text = vm.sh_ok(f"cat {KMEMLEAK}", timeout=60)
    return [b for b in re.split(r"(?m)^(?=unreferenced object)", text) if b.strip()]


def leak_case(tap, vm, desc, skip_reason):
    """The TAP case "kmemleak: no new suspected leak" (SKIP without kmemleak)."""
    if skip_reason:
        tap.skip(desc, skip_reason)
        return
    with tap.case(desc):
        leaks = kmemleak_leaks(vm)
        for block in leaks[:3]:
            tap.diag("kmemleak: " + block)
        check.assertEqual(len(leaks), 0, f"{len(leaks)} suspected leak(s) in {KMEMLEAK}")


# ---- the driver's counters -----------------------------------------------

def counters(vm):
    c = vm.balloon_counters()
    if c is None:
        raise VMError("the balloon driver has no debugfs counters (not the project's?)")
    return c


def check_counters(tap, vm):
    """With no resize running: inflated - deflated == balloon_pages, and
    RAM - balloon_pages * 4 KiB == query-balloon actual.  Waits up to
    COUNTERS_TIMEOUT s for a resize still under way to finish; returns
    the counters."""
    deadline = time.monotonic() + COUNTERS_TIMEOUT
    while True:
        c = counters(vm)
        actual = vm.actual()
        settled = (c["inflated_pages"] - c["deflated_pages"] == c["balloon_pages"]
                   and vm.mem_mib * MiB - c["balloon_pages"] * 4096 == actual)
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    tap.diag("counters: " + " ".join(f"{k} {v}" for k, v in c.items()))
    check.assertEqual(c["inflated_pages"] - c["deflated_pages"], c["balloon_pages"],
                      "inflated_pages - deflated_pages != balloon_pages")
    check.assertEqual(vm.mem_mib * MiB - c["balloon_pages"] * 4096, actual,
                      "RAM - balloon_pages * 4 KiB != query-balloon actual")
    return c


# ---- fault injection -------------------------------------------------------

class Faults:
    """fail_page_alloc and failslab, limited to kernel workers.

    The balloon's resize, free and reporting work, and its free page
    hinting, all run in kworkers; task-filter limits the failures to tasks
    with /proc/PID/make-it-fail set, and :meth:`mark_workers` sets it on
    every kworker (new ones are marked on each call).  ignore-gfp-wait and
    ignore-gfp-highmem are off: the balloon's page allocations may sleep
    and are highmem-movable.  ``times`` counts down on every injected
    failure, which is how :meth:`injected` counts them.
    """

    KINDS = ("fail_page_alloc", "failslab")
    TIMES = 1000000

    def __init__(self, vm, probability=10):
        self.vm = vm
        self.probability = probability
        self.counted = {k: 0 for k in self.KINDS}

    def _set(self, kind, name, value):
        self.vm.sh_ok(f"echo {value} > /sys/kernel/debug/{kind}/{name}")

    def available(self):
        rc, _ = self.vm.sh("[ -d /sys/kernel/debug/fail_page_alloc ] && "
                           "[ -d /sys/kernel/debug/failslab ] && [ -e /proc/1/make-it-fail ]")
        return rc == 0

    def mark_workers(self):
        self.vm.sh_ok("for d in /proc/[0-9]*; do case \"$(cat $d/comm 2>/dev/null)\" in "
                      "kworker*) echo 1 > $d/make-it-fail 2>/dev/null;; esac; done; true")

    def start(self):
        for kind in self.KINDS:
            self._set(kind, "task-filter", "Y")
            self._set(kind, "ignore-gfp-wait", "N")
            self._set(kind, "verbose", 0)
            self._set(kind, "interval", 1)
            self._set(kind, "space", 0)
            self._set(kind, "times", self.TIMES)
            self._set(kind, "probability", self.probability)
        self._set("fail_page_alloc", "ignore-gfp-highmem", "N")
        self._set("fail_page_alloc", "min-order", 0)
        self.mark_workers()

    def stop(self):
        """Stop injecting; return the failures injected so far, by kind."""
        for kind in self.KINDS:
            self._set(kind, "probability", 0)
        return self.injected()

    def injected(self):
        for kind in self.KINDS:
            left = int(self.vm.sh_ok(f"cat /sys/kernel/debug/{kind}/times"))
            self.counted[kind] = self.TIMES - left
        return dict(self.counted)

