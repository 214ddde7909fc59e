#!/usr/bin/env python3
"""make run: show the balloon working against QEMU, in a couple of minutes.

Boots the project's guest kernel under QEMU with a virtio-balloon-pci
device (deflate-on-oom off, free page reporting on, stats polling every
second) and walks through what the balloon does, as QEMU sees it:

  1. the features the guest driver negotiated;
  2. inflate to a target and deflate back, timed, with query-balloon and
     the guest's MemTotal;
  3. the guest's memory statistics as QMP guest-stats reports them;
  4. free page reporting: the guest dirties and frees memory and QEMU's
     RSS falls as the freed pages are reported and discarded.

Environment: DEMO_GUEST_MIB (1024), DEMO_FILL_MIB (768), plus KERNEL,
INITRD and ACCEL as for every VM (harness/balloon_harness/vm.py).
"""

import os
import sys
import time

from balloon_harness.errors import VMError
from balloon_harness.vm import VM

MiB = 1 << 20
GUEST_MIB = int(os.environ.get("DEMO_GUEST_MIB", 1024))
FILL_MIB = int(os.environ.get("DEMO_FILL_MIB", GUEST_MIB * 3 // 4))
BALLOON_BITS = {0: "MUST_TELL_HOST", 1: "STATS_VQ", 2: "DEFLATE_ON_OOM",
                3: "FREE_PAGE_HINT", 4: "PAGE_POISON", 5: "REPORTING"}


def say(text=""):
    print(text, flush=True)


def negotiated(vm):
    """Names of the balloon feature bits the guest accepted (sysfs view)."""
    bits = vm.sh_ok("for d in /sys/bus/virtio/devices/*; do "
                    "[ $(cat $d/device) = 0x0005 ] && cat $d/features; done")
    return [name for bit, name in BALLOON_BITS.items() if bits[bit] == "1"]


def balloon_to(vm, target_mib):
    """Set the target and wait for query-balloon to reach it; return seconds."""
    start = time.monotonic()
    actual = vm.resize(target_mib * MiB, timeout=120)
    took = time.monotonic() - start
    if actual != target_mib * MiB:
        raise VMError(f"balloon did not reach {target_mib} MiB (at {actual / MiB:.1f} MiB)")
    return took


def inflate_deflate(vm):
    target = GUEST_MIB // 4
    total0 = vm.meminfo()["MemTotal"]
    say(f"\n[2] inflate: target {target} MiB of {GUEST_MIB} MiB "
        f"(balloon of {GUEST_MIB - target} MiB)")
    took = balloon_to(vm, target)
    total = vm.meminfo()["MemTotal"]
    say(f"    query-balloon actual = {vm.actual() // MiB} MiB after {took:.2f} s")
    say(f"    guest MemTotal {total0 // 1024} -> {total // 1024} MiB")
    say(f"[2] deflate: target {GUEST_MIB} MiB")
    took = balloon_to(vm, GUEST_MIB)
    say(f"    query-balloon actual = {vm.actual() // MiB} MiB after {took:.2f} s")
    say(f"    guest MemTotal back to {vm.meminfo()['MemTotal'] // 1024} MiB")


def stats(vm):
    say("\n[3] guest statistics (QMP qom-get guest-stats)")
    first = vm.guest_stats()["last-update"]
    deadline = time.monotonic() + 15
    while vm.guest_stats()["last-update"] == first and time.monotonic() < deadline:
        time.sleep(0.2)
    st = vm.guest_stats()["stats"]
    for key in ("stat-total-memory", "stat-free-memory", "stat-available-memory",
                "stat-disk-caches"):
        say(f"    {key:24} {st[key] / MiB:10.1f} MiB")
    for key in ("stat-minor-faults", "stat-major-faults", "stat-swap-in", "stat-swap-out"):
        say(f"    {key:24} {st[key]:10d}")


def reporting(vm):
    say(f"\n[4] free page reporting: the guest dirties and frees {FILL_MIB} MiB")
    vm.sh_ok(f"balloon-mem fill {FILL_MIB}", timeout=300)
    rss_fill = vm.qemu_rss_kib()
    say(f"    QEMU RSS after the fill: {rss_fill // 1024} MiB")
    start = time.monotonic()
    last = None
    while time.monotonic() - start < 40:
        released = (rss_fill - vm.qemu_rss_kib()) / (FILL_MIB * 1024)
        shown = int(released * 10)
        if shown != last:
            say(f"    t={time.monotonic() - start:5.1f} s  QEMU RSS "
                f"{vm.qemu_rss_kib() // 1024:5d} MiB  ({released:4.0%} of the freed memory back)")
            last = shown
        if released >= 0.9:
            break
        time.sleep(0.5)
    return released


def main():
    say(f"Booting a {GUEST_MIB} MiB guest under QEMU ({os.environ.get('ACCEL', 'tcg')}) "
        "with virtio-balloon-pci (free-page-reporting=on) ...")
    with VM(mem_mib=GUEST_MIB, name="demo", free_page_reporting=True,
            guest_stats_polling_interval=1) as vm:
        say(f"    kernel: {vm.sh_ok('uname -r')}")
        say(f"\n[1] negotiated balloon features: {', '.join(negotiated(vm))}")
        inflate_deflate(vm)
        stats(vm)
        released = reporting(vm)
    say("\nSummary: inflate and deflate reached their targets exactly; stats arrive "
        f"over QMP; free page reporting gave back {released:.0%} of the freed memory.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except VMError as e:
        say(f"\nmake run failed: {e}")
        sys.exit(1)
