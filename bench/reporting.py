"""reporting: how fast free page reporting gives freed guest memory back.

One guest per sample, with free-page-reporting=on.  The guest runs
``balloon-mem fill REPORTING_FILL_MIB``: it dirties that much (QEMU's RSS
grows by it) and frees it.  From the moment the fill has exited, QEMU's
RSS is sampled every REPORTING_SAMPLE_S for REPORTING_WINDOW_S seconds;
the released fraction is (RSS after the fill - RSS now) / fill.

Reported: the time until 50 % and 90 % of the freed memory is back on the
host ("never" within the window counts as missing) and the fraction back
at the end of the window; and a plot of RSS over time, every run of both
kernels on one plot.

Environment (defaults; quick run): REPORTING_GUEST_MIB (2048; 512),
REPORTING_FILL_MIB (1536; 256), REPORTING_WINDOW_S (30; 8),
REPORTING_SAMPLE_S (0.25).
"""

import time

import benchlib
from benchlib import Metric

NAME = "reporting"
WHAT = ("QEMU RSS after the guest frees memory, free-page-reporting=on: how soon the host gets "
        "50 % and 90 % of it back, which is what reporting is for")
PER_KERNEL = True
# Fractions of the freed memory whose first crossing is timed.
LEVELS = (0.5, 0.9)


def params(quick):
    return {
        "guest_mib": benchlib.env_int("REPORTING_GUEST_MIB", 2048, 512, quick),
        "fill_mib": benchlib.env_int("REPORTING_FILL_MIB", 1536, 256, quick),
        "window_s": benchlib.env_float("REPORTING_WINDOW_S", 30, 8, quick),
        "sample_s": benchlib.env_float("REPORTING_SAMPLE_S", 0.25),
    }


def metrics(params):
    return [Metric(f"t{int(level * 100)}_s", f"{level:.0%} of {params['fill_mib']} MiB back",
                   "s") for level in LEVELS] + \
           [Metric("released_end", f"back after {params['window_s']:g} s", "%")]


def run(kernel, params, say):
    fill_kib = params["fill_mib"] * 1024
    with benchlib.guest(kernel, mem_mib=params["guest_mib"], free_page_reporting=True,
                        name="bench-reporting") as vm:
        rss0 = vm.qemu_rss_kib()
        # A fast reporter gives memory back before the fill has returned.
        _, rss_fill = vm.sh_ok_rss_peak(f"balloon-mem fill {params['fill_mib']}", timeout=600)
        start = time.monotonic()
        series = []
        while True:
            elapsed = time.monotonic() - start
            series.append((round(elapsed, 3), vm.qemu_rss_kib() // 1024))
            if elapsed >= params["window_s"]:
                break
            time.sleep(params["sample_s"])
    # Given back = no longer resident, against RSS before the fill plus the fill.
    released = [(t, (rss0 + fill_kib - rss * 1024) / fill_kib) for t, rss in series]
    m = {f"t{int(level * 100)}_s": next((t for t, f in released if f >= level), None)
         for level in LEVELS}
    m["released_end"] = 100 * released[-1][1]
    visible = (rss_fill - rss0) / fill_kib
    say(f"fill visible in RSS: {visible:.0%}; 50 % back after {_secs(m['t50_s'])}, 90 % after "
        f"{_secs(m['t90_s'])}; at the end of the window ({params['window_s']:g} s) "
        f"{m['released_end']:.0f} % back")
    return {"metrics": m, "series": {"rss_mib": series},
            "info": {"rss_before_fill_mib": rss0 // 1024, "rss_peak_fill_mib": rss_fill // 1024,
                     "fill_visible": visible}}


def plot(samples, params, outdir, others):
    """QEMU RSS over time, one line per run, both kernels on one plot."""
    lines = benchlib.run_lines(samples, "rss_mib", outdir, "reporting",
                               "seconds since the guest freed the memory, QEMU RSS MiB")
    if not lines:
        return []
    title = (f"Free page reporting: QEMU RSS after a {params['guest_mib']} MiB guest "
             f"freed {params['fill_mib']} MiB")
    if benchlib.time_plot(outdir, "reporting", title, "seconds since the guest freed the memory",
                          "QEMU RSS (MiB)", params["window_s"], "*", lines):
        return [("reporting.png", "QEMU RSS over time after the guest freed memory, every run")]
    return []


def _secs(t):
    return "never" if t is None else f"{t:.1f} s"
