"""inflate_deflate: inflate most of a large guest and deflate it back.

One guest per sample.  First with guest memory untouched since boot:
inflate by INFLATE_BALLOON_MIB, deflate back.  Then the guest runs
``balloon-mem fill INFLATE_FILL_MIB``, which dirties that much and frees
it (memory the guest considers free but the host still backs), and the
inflate and deflate are timed again.  Each time runs from the QMP
``balloon`` command until ``query-balloon`` actual equals the target.

Each change is also measured in CPU time: what QEMU's threads (the guest's
vCPUs and QEMU's own work) consumed, from /proc/PID/stat.  On a busy host
the wall time mostly measures the other load; the CPU time does not.

Pre-dirtied inflate is what frees host memory; the untouched case shows
the protocol and guest cost alone.  The host's madvise floor (scenario
``floor``) bounds both: untouched memory against an untouched mapping,
pre-dirtied against a touched one (THP-backed, as QEMU advises guest RAM,
unless the host has THP "never").

Environment (defaults; quick run): INFLATE_GUEST_MIB (8192; 512),
INFLATE_BALLOON_MIB (7168; 256), INFLATE_FILL_MIB (the balloon size),
INFLATE_TIMEOUT (600 s per balloon change).
"""

import os
import time

import benchlib
from benchlib import Metric

NAME = "inflate_deflate"
WHAT = ("inflate most of a guest and deflate back, memory untouched and pre-dirtied, from the "
        "QMP balloon command to query-balloon reaching the target: the raw speed of the balloon "
        "(the pre-dirtied inflate is the one that frees host memory)")
PER_KERNEL = True
VARIANTS = ("untouched", "dirty")


def params(quick):
    balloon = benchlib.env_int("INFLATE_BALLOON_MIB", 7168, 256, quick)
    return {
        "guest_mib": benchlib.env_int("INFLATE_GUEST_MIB", 8192, 512, quick),
        "balloon_mib": balloon,
        "fill_mib": benchlib.env_int("INFLATE_FILL_MIB", balloon),
        "timeout_s": benchlib.env_float("INFLATE_TIMEOUT", 600),
        "dirty_floor": "touched-4k" if _thp_mode() == "never" else "touched-thp",
    }


def metrics(params):
    gib = params["balloon_mib"] / 1024
    floors = {"untouched": "untouched", "dirty": params["dirty_floor"]}
    rows = []
    for variant in VARIANTS:
        what = "untouched" if variant == "untouched" else "pre-dirtied"
        rows += [
            Metric(f"inflate_{variant}_s", f"inflate {gib:g} GiB, {what}", "s",
                   floor=(floors[variant], gib)),
            Metric(f"inflate_{variant}_gibps", f"inflate rate, {what}", "GiB/s"),
            Metric(f"deflate_{variant}_s", f"deflate {gib:g} GiB, {what}", "s"),
            Metric(f"deflate_{variant}_gibps", f"deflate rate, {what}", "GiB/s"),
            Metric(f"inflate_{variant}_cpu_s", f"inflate {gib:g} GiB, {what}: QEMU CPU time", "s"),
            Metric(f"deflate_{variant}_cpu_s", f"deflate {gib:g} GiB, {what}: QEMU CPU time", "s"),
        ]
    rows.append(Metric("host_freed_gib", "QEMU RSS freed by the pre-dirtied inflate", "GiB"))
    return rows


def run(kernel, params, say):
    guest_mib, balloon_mib = params["guest_mib"], params["balloon_mib"]
    gib = balloon_mib / 1024
    timeout = params["timeout_s"]
    m, info = {}, {}
    start = time.monotonic()
    with benchlib.guest(kernel, mem_mib=guest_mib, name="bench-inflate") as vm:
        info["boot_s"] = time.monotonic() - start
        for variant in VARIANTS:
            if variant == "dirty":
                start = time.monotonic()
                vm.sh_ok(f"balloon-mem fill {params['fill_mib']}", timeout=timeout)
                info["fill_s"] = time.monotonic() - start
                info["anon_huge_mib_after_fill"] = _anon_huge_kib(vm.proc.pid) // 1024
                say(f"guest dirtied and freed {params['fill_mib']} MiB in {info['fill_s']:.1f} s")
            rss = vm.qemu_rss_kib()
            cpu0 = _cpu_s(vm.proc.pid)
            inflate = benchlib.balloon_to(vm, guest_mib - balloon_mib, timeout)
            cpu1 = _cpu_s(vm.proc.pid)
            rss_inflated = vm.qemu_rss_kib()
            deflate = benchlib.balloon_to(vm, guest_mib, timeout)
            cpu2 = _cpu_s(vm.proc.pid)
            m[f"inflate_{variant}_cpu_s"] = cpu1 - cpu0
            m[f"deflate_{variant}_cpu_s"] = cpu2 - cpu1
            m[f"inflate_{variant}_s"] = inflate
            m[f"inflate_{variant}_gibps"] = gib / inflate
            m[f"deflate_{variant}_s"] = deflate
            m[f"deflate_{variant}_gibps"] = gib / deflate
            info[f"rss_mib_{variant}"] = [rss // 1024, rss_inflated // 1024]
            if variant == "dirty":
                m["host_freed_gib"] = (rss - rss_inflated) / (1 << 20)
            say(f"{variant}: inflate {inflate:.2f} s ({gib / inflate:.2f} GiB/s, CPU "
                f"{cpu1 - cpu0:.2f} s), deflate {deflate:.2f} s (CPU {cpu2 - cpu1:.2f} s); "
                f"QEMU RSS {rss // 1024} -> {rss_inflated // 1024} MiB")
    return {"metrics": m, "info": info}


def plot(samples, params, outdir, others):
    """Seconds per GiB of each balloon change, median with min-max bars.

    When the floor scenario ran too, the inflate groups get a third bar:
    the host's madvise floor.
    """
    floor_samples = others.get("floor", {}).get("host", [])
    gib = params["balloon_mib"] / 1024
    # Labels are gnuplot strings: \n breaks the line.
    groups = [("inflate_untouched_s", "inflate\\nuntouched", "untouched"),
              ("deflate_untouched_s", "deflate\\nuntouched", None),
              ("inflate_dirty_s", "inflate\\npre-dirtied", params["dirty_floor"]),
              ("deflate_dirty_s", "deflate\\npre-dirtied", None)]
    rows = []
    for key, label, floor_mode in groups:
        cols = []
        for kernel in benchlib.KERNELS:
            cols += _spread([s["metrics"].get(key) for s in samples.get(kernel, [])], gib)
        floor = [s["metrics"].get(f"{floor_mode}_s_per_gib") for s in floor_samples]
        cols += _spread(floor, 1) if floor_mode else ["?"] * 3
        rows.append(f'"{label}" ' + " ".join(cols))
    with open(f"{outdir}/inflate_deflate.dat", "w") as f:
        f.write("# group, then median min max of s/GiB: upstream, project, madvise floor\n")
        f.write("\n".join(rows) + "\n")
    title = (f"Balloon inflate/deflate of {gib:g} GiB in a {params['guest_mib'] / 1024:g} GiB "
             "guest: seconds per GiB (lower is better)")
    up, proj = benchlib.COLOURS["upstream"], benchlib.COLOURS["project"]
    script = benchlib.PLOT_HEADER + f"""set output "inflate_deflate.png"
set title "{title}"
set ylabel "s per GiB (median, bars: min-max)"
{benchlib.HISTOGRAM}plot "inflate_deflate.dat" using 2:3:4:xtic(1) title "upstream" lc rgb "{up}", \\
     "" using 5:6:7 title "project" lc rgb "{proj}", \\
     "" using 8:9:10 title "host madvise floor" lc rgb "#888888"
"""
    if benchlib.gnuplot(outdir, "inflate_deflate", script):
        return [("inflate_deflate.png", "seconds per GiB of each balloon change, "
                 "with the host's madvise floor for the inflates")]
    return []


def _spread(values, divisor):
    """Median, min and max of ``values / divisor`` as strings; ``?`` if none."""
    median, low, high, n = benchlib.summary(values)
    if not n:
        return ["?"] * 3
    return [f"{v / divisor:.4f}" for v in (median, low, high)]


def _cpu_s(pid):
    """CPU seconds all threads of process ``pid`` consumed so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thp_mode():
    """The host's THP setting (always, madvise or never)."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return f.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return "never"


def _anon_huge_kib(pid):
    """AnonHugePages of process ``pid`` in KiB (THP backing of guest RAM)."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    return 0
