"""floor: the host's madvise cost, the lower bound of any inflate on QEMU 7.2.

QEMU 7.2 discards each ballooned 4 KiB page with its own
madvise(MADV_DONTNEED).  build/bench/madvise-floor (from
bench/madvise-floor.c) times that loop on FLOOR_MIB MiB of anonymous
memory in three states: never touched (what an untouched guest's free
memory is), touched with 4 KiB pages, and touched with transparent huge
pages (QEMU advises guest RAM MADV_HUGEPAGE, so a pre-dirtied guest is
THP-backed on hosts with THP on "madvise" or "always").

Environment: FLOOR_MIB (default INFLATE_BALLOON_MIB, itself 7168; quick 64).
"""

import os
import subprocess

import benchlib
from benchlib import Metric

NAME = "floor"
WHAT = ("host only: one madvise(MADV_DONTNEED) per 4 KiB page, as QEMU 7.2 does on inflate, "
        "timed on anonymous memory; no inflate can beat it, so inflate times are shown as "
        "multiples of it")
PER_KERNEL = False
MODES = ("untouched", "touched-4k", "touched-thp")
SOURCE = os.path.join(benchlib.TOP, "bench/madvise-floor.c")
BINARY = os.path.join(benchlib.TOP, "build/bench/madvise-floor")


def params(quick):
    balloon = benchlib.env_int("INFLATE_BALLOON_MIB", 7168, 256, quick)
    return {"mib": benchlib.env_int("FLOOR_MIB", balloon, 64, quick)}


def metrics(params):
    return [Metric(f"{mode}_s_per_gib", f"madvise per 4 KiB page, {mode}", "s/GiB")
            for mode in MODES]


def build():
    """Compile madvise-floor into build/bench unless it is up to date."""
    if (os.path.exists(BINARY)
            and os.path.getmtime(BINARY) >= os.path.getmtime(SOURCE)):
        return
    os.makedirs(os.path.dirname(BINARY), exist_ok=True)
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-o", BINARY, SOURCE], check=True)


def run(kernel, params, say):
    build()
    sample = {"metrics": {}, "info": {}}
    for mode in MODES:
        out = subprocess.run([BINARY, str(params["mib"]), mode], check=True,
                             capture_output=True, text=True).stdout
        fields = dict(kv.split("=", 1) for kv in out.split())
        secs = float(fields["seconds"])
        gib = params["mib"] / 1024
        sample["metrics"][f"{mode}_s_per_gib"] = secs / gib
        sample["info"][mode] = fields
        say(f"{mode}: {secs:.2f} s for {gib:g} GiB ({float(fields['us_per_page']):.2f} µs/page, "
            f"THP-backed {int(fields['anon_huge_kib']) // 1024} MiB)")
    return sample
