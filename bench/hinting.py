"""hinting: what free page hinting saves a live migration, and what it costs the guest.

Each sample boots two guests on the same kernel, free-page-hint=off and
then on, and migrates each to ``exec:cat > /dev/null`` three times, one
case after the other (``cont`` in between; QEMU 7.2, default bandwidth):

``idle``
    the guest dirtied and freed HINTING_FILL_MIB (``balloon-mem fill``)
    and does nothing during the migration;
``workload``
    the same, and during the migration a loop of ``workset run -r 2000
    HINTING_WORKLOAD_MIB 1`` (guest/workset.c) allocates, fills, rewrites,
    verifies and frees memory;
``fragmented``
    ``workset start -H`` fills all but HINTING_SPARE_MIB of free memory in
    2 MiB chunks (huge pages: THP is set to always if the guest has it
    off, as Linux does under 512 MiB; the guest has no madvise()) and
    frees every other one: about half the guest is free and dirty in
    pieces of at most 2 MiB, none a 4 MiB block.

Reported per case: migrated MiB (``ram.transferred``) and migration time
with hinting off and on, and the guest's MemFree low point while the
hinted migration ran (a guest loop samples it every 50 ms): upstream
holds every free 4 MiB block until DONE, the project at most its
128 MiB budget.  Plot: migrated MiB per case, off and on, both kernels
(medians).

Environment (defaults; quick run): HINTING_GUEST_MIB (1024; 256),
HINTING_FILL_MIB (640; 128), HINTING_WORKLOAD_MIB (128; 32),
HINTING_SPARE_MIB (96; 64).
"""

import time

import benchlib
from balloon_harness.migration import migrate
from benchlib import MiB, Metric

NAME = "hinting"
WHAT = ("live migration to exec:cat with free-page-hint off and on, idle, with a workload "
        "allocating memory, and with free memory fragmented into 2 MiB holes: migrated MiB, "
        "migration time, and the guest's free-memory low point while hinting")
PER_KERNEL = True
CASES = ("idle", "workload", "fragmented")
SAMPLE_LOOP = "while :; do grep MemFree /proc/meminfo; sleep 0.05; done"
# A workload that dirties memory needs a longer stop-and-copy to converge.
DOWNTIME_LIMIT_MS = 1000
MEMFREE_SLACK_KB = 16 * 1024
# workset -H needs huge pages to make 2 MiB holes; Linux turns THP off by
# default in guests under 512 MiB (the quick run's).
THP = "/sys/kernel/mm/transparent_hugepage/enabled"
THP_ON = f"if grep -q '\\[never\\]' {THP}; then echo always >{THP}; fi"


def params(quick):
    return {
        "guest_mib": benchlib.env_int("HINTING_GUEST_MIB", 1024, 256, quick),
        "fill_mib": benchlib.env_int("HINTING_FILL_MIB", 640, 128, quick),
        "workload_mib": benchlib.env_int("HINTING_WORKLOAD_MIB", 128, 32, quick),
        "spare_mib": benchlib.env_int("HINTING_SPARE_MIB", 96, 64, quick),
    }


def metrics(params):
    rows = []
    for case in CASES:
        for hint in ("off", "on"):
            rows.append(Metric(f"{case}_{hint}_mib", f"{case}: migrated, hint {hint}", "MiB"))
        for hint in ("off", "on"):
            rows.append(Metric(f"{case}_{hint}_s", f"{case}: migration time, hint {hint}", "s"))
        rows.append(Metric(f"{case}_on_low_mib", f"{case}: guest MemFree low point, hint on",
                           "MiB"))
    return rows


def run(kernel, params, say):
    m, info = {}, {}
    for hint in (False, True):
        mode = "on" if hint else "off"
        with benchlib.guest(kernel, mem_mib=params["guest_mib"], free_page_hint=hint,
                            name="bench-hinting") as vm:
            for case in CASES:
                sent, secs, low, extra = _case(vm, case, params)
                m[f"{case}_{mode}_mib"] = sent / MiB
                m[f"{case}_{mode}_s"] = secs
                if hint:
                    m[f"{case}_on_low_mib"] = low / 1024
                info[f"{case}_{mode}"] = extra
                say(f"{case}, hint {mode}: {sent / MiB:.0f} MiB in {secs:.1f} s, "
                    f"MemFree low {low // 1024} MiB")
            if hint:
                info["counters"] = vm.balloon_counters()
    return {"metrics": m, "info": info}


def _case(vm, case, params):
    """One migration of ``case``; return ``(bytes sent, seconds, MemFree low kB, info)``."""
    stop = "true"
    if case == "fragmented":
        fill = vm.meminfo()["MemFree"] // 1024 - params["spare_mib"]
        vm.sh_ok(THP_ON)
        vm.sh_ok(f"workset start -H -r 0 -f /tmp/frag {fill}", timeout=600)
        stop = "workset check -f /tmp/frag >/dev/null"
    else:
        vm.sh_ok(f"balloon-mem fill {params['fill_mib']}", timeout=600)
    if case == "workload":
        vm.sh_ok(f"rm -f /tmp/wl.stop; (while [ ! -e /tmp/wl.stop ]; do workset run -r 2000 "
                 f"{params['workload_mib']} 1 || echo BAD; done) >/tmp/wl.log 2>&1 </dev/null & "
                 "echo $! >/tmp/wl.pid")
        stop = ("touch /tmp/wl.stop; while kill -0 $(cat /tmp/wl.pid) 2>/dev/null; "
                "do sleep 0.1; done; ! grep -q BAD /tmp/wl.log")
    free_before = vm.meminfo()["MemFree"]
    sampler = vm.sh_ok(f"({SAMPLE_LOOP}) >/tmp/memfree.log 2>&1 </dev/null & echo $!")
    start = time.monotonic()
    result = migrate(vm, "exec:cat > /dev/null", downtime_limit=DOWNTIME_LIMIT_MS)
    secs = time.monotonic() - start
    vm.qmp.execute("cont")
    if result["status"] != "completed":
        raise benchlib.VMError(f"{case}: migration {result['status']}")
    samples = vm.sh_ok(f"kill {sampler}; cat /tmp/memfree.log").split()
    low = min([int(v) for v in samples if v.isdigit()] or [0])
    vm.sh_ok(stop, timeout=300)  # a corrupted workset page fails the sample
    if case != "fragmented":  # the guest gets back what it held: next case starts alike
        vm.wait_memfree(free_before - MEMFREE_SLACK_KB, timeout=20)
    ram = result["ram"]
    return ram["transferred"], secs, low, {
        "normal": ram.get("normal"), "duplicate": ram.get("duplicate"),
        "syncs": ram.get("dirty-sync-count"), "memfree_before_kib": free_before}


def plot(samples, params, outdir, others):
    """Migrated MiB per case, hint off and on, both kernels (medians)."""
    rows = []
    for case in CASES:
        for hint in ("off", "on"):
            key = f"{case}_{hint}_mib"
            medians = []
            for kernel in benchlib.KERNELS:
                median = benchlib.summary([s["metrics"].get(key)
                                           for s in samples.get(kernel, [])])[0]
                medians.append("NaN" if median is None else f"{median:.1f}")
            rows.append(f'"{case}, hint {hint}" ' + " ".join(medians))
    with open(f"{outdir}/hinting.dat", "w") as f:
        f.write("# case, median migrated MiB: " + " ".join(benchlib.KERNELS) + "\n")
        f.write("\n".join(rows) + "\n")
    title = (f"Live migration of a {params['guest_mib']} MiB guest to exec:cat: migrated MiB "
             "(median)")
    bars = ", ".join(f'"hinting.dat" using {i + 2}:xtic(1) title "{kernel}" '
                     f'lc rgb "{benchlib.COLOURS[kernel]}"'
                     for i, kernel in enumerate(benchlib.KERNELS))
    script = benchlib.PLOT_HEADER + f"""set output "hinting.png"
set title "{title}"
set ylabel "migrated MiB (ram.transferred)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -20
set yrange [0:*]
plot {bars}
"""
    if benchlib.gnuplot(outdir, "hinting", script):
        return [("hinting.png", "Migrated MiB per case, free page hinting off and on, "
                 "both kernels")]
    return []
