"""hugetlb_inflate: inflate on a guest backed by the host's 2 MiB huge pages.

One guest per sample, its RAM a ``memory-backend-memfd`` with
``hugetlb=on,prealloc=on`` (harness/vm.py), so QEMU holds every huge page
from the start.  The balloon inflates by HUGETLB_INFLATE_BALLOON_MIB and
deflates back, each timed from the QMP ``balloon`` command until
``query-balloon`` reaches the target.  Host memory freed is the rise of
the host's HugePages_Free over the inflate: QEMU discards a huge page only
when one inflate buffer carries all 512 of its 4 KiB pieces (docs/protocol.md
4.3), which upstream's 1 MiB buffers never do.

The host's pool is grown by what is missing and shrunk back after each
sample; a host that cannot give the huge pages skips the scenario with
its reason.

Environment (defaults; quick run): HUGETLB_INFLATE_GUEST_MIB (2048; 256),
HUGETLB_INFLATE_BALLOON_MIB (1536; 128), HUGETLB_INFLATE_TIMEOUT (600 s).
"""

import time

import benchlib
from benchlib import Metric
from balloon_harness import host

NAME = "hugetlb_inflate"
WHAT = ("inflate most of a guest whose RAM is 2 MiB hugetlb pages on the host: how much host "
        "memory the inflate actually frees (host HugePages_Free), and how long it takes")
PER_KERNEL = True


def params(quick):
    return {
        "guest_mib": benchlib.env_int("HUGETLB_INFLATE_GUEST_MIB", 2048, 256, quick),
        "balloon_mib": benchlib.env_int("HUGETLB_INFLATE_BALLOON_MIB", 1536, 128, quick),
        "timeout_s": benchlib.env_float("HUGETLB_INFLATE_TIMEOUT", 600),
    }


def metrics(params):
    return [
        Metric("freed_mib", f"host memory freed by inflating {params['balloon_mib']} MiB", "MiB"),
        Metric("freed_pct", "host memory freed, of the balloon", "%"),
        Metric("inflate_s", f"inflate {params['balloon_mib']} MiB", "s"),
        Metric("deflate_s", f"deflate {params['balloon_mib']} MiB", "s"),
    ]


def run(kernel, params, say):
    guest_mib, balloon_mib = params["guest_mib"], params["balloon_mib"]
    pool = host.HostHugePages(guest_mib // host.HUGEPAGE_MIB)
    reason = pool.reserve()
    if reason:
        raise benchlib.Skip(f"no {guest_mib} MiB of 2 MiB huge pages on the host: {reason}")
    try:
        start = time.monotonic()
        with benchlib.guest(kernel, mem_mib=guest_mib, hugetlb=True,
                            name="bench-hugetlb") as vm:
            boot = time.monotonic() - start
            free0 = host.host_hugepages_free()
            inflate = benchlib.balloon_to(vm, guest_mib - balloon_mib, params["timeout_s"])
            free1 = host.host_hugepages_free()
            deflate = benchlib.balloon_to(vm, guest_mib, params["timeout_s"])
    finally:
        pool.release()
    freed = (free1 - free0) * host.HUGEPAGE_MIB
    say(f"inflate {balloon_mib} MiB in {inflate:.2f} s freed {freed} MiB of host huge pages "
        f"({100 * freed / balloon_mib:.0f} %); deflate {deflate:.2f} s")
    return {"metrics": {"freed_mib": freed, "freed_pct": 100 * freed / balloon_mib,
                        "inflate_s": inflate, "deflate_s": deflate},
            "info": {"boot_s": boot, "hugepages_free": [free0, free1]}}


def plot(samples, params, outdir, others):
    """Host memory freed by the inflate, per kernel."""
    title = (f"Inflate of {params['balloon_mib']} MiB in a {params['guest_mib']} MiB "
             "hugetlbfs-backed guest: host memory freed (higher is better)")
    png = benchlib.kernel_bars(outdir, "hugetlb_inflate", title,
                               "MiB of host huge pages freed (median, bars: min-max)",
                               [(f"freed by inflating {params['balloon_mib']} MiB", "freed_mib")],
                               samples)
    return [(png, "host huge pages freed by the inflate, both kernels")] if png else []
