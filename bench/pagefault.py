"""pagefault: what free page reporting costs a page-fault-heavy guest.

Each sample boots two guests on the same kernel, free-page-reporting=off
and then on, and runs ``pagefault-bench THREADS MIB SECONDS`` in each
(guest/pagefault-bench.c, page_fault1-style: every thread maps MIB MiB
anonymous, writes every 4 KiB page, unmaps, repeats).  The workload frees
all it faulted in every round, so reporting sees free memory come and go;
every page it reports is discarded by QEMU and faults on the host again
when the guest reuses it.  Reported: page faults per second with
reporting off and on, the slowdown reporting costs, and how many buffers
the reporting virtqueue carried during the run (QEMU's used index).

Environment (defaults; quick run): PAGEFAULT_GUEST_MIB (1024; 256),
PAGEFAULT_THREADS (2; 1), PAGEFAULT_MIB (128; 16), PAGEFAULT_SECONDS
(20; 2).
"""

import benchlib
from benchlib import Metric

NAME = "pagefault"
WHAT = ("page_fault1-style guest workload (threads map, touch every page of and unmap anonymous "
        "memory in a loop) with free-page-reporting off and on: page faults per second and the "
        "slowdown reporting costs")
PER_KERNEL = True
REPORTING_VQ = 3  # QEMU numbering without free-page-hint: inflate, deflate, stats, reporting


def params(quick):
    return {
        "guest_mib": benchlib.env_int("PAGEFAULT_GUEST_MIB", 1024, 256, quick),
        "threads": benchlib.env_int("PAGEFAULT_THREADS", 2, 1, quick),
        "mib": benchlib.env_int("PAGEFAULT_MIB", 128, 16, quick),
        "seconds": benchlib.env_int("PAGEFAULT_SECONDS", 20, 2, quick),
    }


def metrics(params):
    return [
        Metric("faults_per_s_off", "page faults/s, reporting off", "1/s"),
        Metric("faults_per_s_on", "page faults/s, reporting on", "1/s"),
        Metric("slowdown_pct", "slowdown with reporting on", "%"),
        Metric("reports", "reporting_vq buffers during the run", "buffers"),
    ]


def run(kernel, params, say):
    m, info = {}, {}
    for reporting in (False, True):
        mode = "on" if reporting else "off"
        with benchlib.guest(kernel, mem_mib=params["guest_mib"], free_page_reporting=reporting,
                            name="bench-pagefault") as vm:
            reports0 = vm.queue_status(REPORTING_VQ)["used-idx"] if reporting else None
            out = vm.sh_ok(f"pagefault-bench {params['threads']} {params['mib']} "
                           f"{params['seconds']}", timeout=params["seconds"] + 120)
            result = dict(kv.split("=", 1) for kv in out.split())
            m[f"faults_per_s_{mode}"] = float(result["faults_per_s"])
            info[mode] = result
            if reporting:
                m["reports"] = vm.queue_status(REPORTING_VQ)["used-idx"] - reports0
            say(f"reporting {mode}: {float(result['faults_per_s']):.0f} faults/s "
                f"({result['rounds']} rounds)"
                + (f", {m['reports']} reporting buffers" if reporting else ""))
    m["slowdown_pct"] = 100 * (1 - m["faults_per_s_on"] / m["faults_per_s_off"])
    say(f"slowdown with reporting: {m['slowdown_pct']:.1f} %")
    return {"metrics": m, "info": info}


def plot(samples, params, outdir, others):
    """Page faults per second with reporting off and on, per kernel."""
    title = (f"pagefault-bench, {params['threads']} thread(s) x {params['mib']} MiB in a "
             f"{params['guest_mib']} MiB guest: throughput (higher is better)")
    png = benchlib.kernel_bars(outdir, "pagefault", title,
                               "page faults/s (median, bars: min-max)",
                               [("reporting off", "faults_per_s_off"),
                                ("reporting on", "faults_per_s_on")], samples)
    return [(png, "page faults per second with free page reporting off and on, "
             "both kernels")] if png else []
