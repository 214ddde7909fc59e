"""pressure: inflate while the guest is under memory pressure.

One guest per sample, with deflate-on-oom on.  The guest first runs a
working set (``workset start``, guest/workset.c) of PRESSURE_SET_PCT % of
its RAM, whose pages it keeps rewriting and verifying, and a churn loop
that allocates, dirties and frees PRESSURE_CHURN_MIB again and again
(``balloon-mem fill``; 0 turns it off): a workload that holds most of the
memory and keeps asking for a little more.  Then the host sets the
balloon target to PRESSURE_TARGET_MIB, which leaves less than the working
set needs, and samples ``query-balloon`` every PRESSURE_SAMPLE_S for
PRESSURE_WINDOW_S seconds.

The balloon cannot reach the target; what matters is how it gets to
where it stays and what the guest pays for it:

- the plateau: the median of ``actual`` over the second half of the
  window, as a balloon size and as how far it stays above the target,
  and how much ``actual`` still moves there (max - min);
- time to the plateau: from the QMP ``balloon`` command until
  ``actual`` first comes within PRESSURE_SETTLE_MIB of the plateau (how
  soon the balloon takes what it can get);
- what the balloon gave back meanwhile (the guest's ``balloon_deflate``
  in /proc/vmstat: only deflate-on-oom deflates while the target stands)
  and what it inflated in all (more than it holds at the end when it
  fought the workload);
- OOM kills (the guest's ``oom_kill`` in /proc/vmstat), whether the
  working set survived and its bad pages, and the churn loop's completed
  rounds (how much work the squeezed guest still did).

The guest agent (the harness's remote shell) is exempt from the OOM
killer (oom_score_adj -1000) so that a kill hits the workload, never the
measurement; the working set and the churn loop run at 0.

Environment (defaults; quick run): PRESSURE_GUEST_MIB (4096; 512),
PRESSURE_SET_PCT (60), PRESSURE_TARGET_MIB (a quarter of the RAM),
PRESSURE_CHURN_MIB (64; 16), PRESSURE_WINDOW_S (30; 6),
PRESSURE_SAMPLE_S (0.1), PRESSURE_SETTLE_MIB (1 % of the RAM).
"""

import re
import statistics
import time

import benchlib
from benchlib import MiB, Metric

NAME = "pressure"
WHAT = ("inflate to a target that leaves less than a running working set (60 % of RAM, "
        "rewritten continuously, plus an allocating churn loop) needs, deflate-on-oom on: how "
        "soon the balloon reaches its plateau, how much it holds and how much it fights the "
        "workload for, and whether the guest pays with OOM kills: what an overcommitted host "
        "asks of a busy guest")
PER_KERNEL = True
SET = "/tmp/pressure-set"
CHURN_STOP = "/tmp/churn.stop"
CHURN_COUNT = "/tmp/churn.count"


def params(quick):
    guest = benchlib.env_int("PRESSURE_GUEST_MIB", 4096, 512, quick)
    return {
        "guest_mib": guest,
        "set_pct": benchlib.env_int("PRESSURE_SET_PCT", 60),
        "target_mib": benchlib.env_int("PRESSURE_TARGET_MIB", guest // 4),
        "churn_mib": benchlib.env_int("PRESSURE_CHURN_MIB", 64, 16, quick),
        "window_s": benchlib.env_float("PRESSURE_WINDOW_S", 30, 6, quick),
        "sample_s": benchlib.env_float("PRESSURE_SAMPLE_S", 0.1),
        "settle_mib": benchlib.env_int("PRESSURE_SETTLE_MIB", max(guest // 100, 4)),
    }


def metrics(params):
    return [
        Metric("plateau_s", f"time to the plateau (actual within {params['settle_mib']} MiB "
               "of it)", "s"),
        Metric("balloon_mib", "balloon on the plateau (median, 2nd half of the window; "
               f"target {params['guest_mib'] - params['target_mib']})", "MiB"),
        Metric("short_mib", "actual above the target on the plateau", "MiB"),
        Metric("spread_mib", "actual's max - min on the plateau", "MiB"),
        Metric("inflated_mib", "inflated during the window (vmstat balloon_inflate)", "MiB"),
        Metric("oom_deflated_mib", "given back on OOM (vmstat balloon_deflate)", "MiB"),
        Metric("oom_kills", "OOM kills (vmstat oom_kill)", "kills"),
        Metric("set_alive", "working set survived", "1 = yes"),
        Metric("set_bad_pages", "working set bad pages", "pages"),
        Metric("churn_rounds", f"churn rounds of {params['churn_mib']} MiB completed", "rounds"),
    ]


def run(kernel, params, say):
    guest_mib, target_mib = params["guest_mib"], params["target_mib"]
    set_mib = guest_mib * params["set_pct"] // 100
    m, info = {}, {}
    with benchlib.guest(kernel, mem_mib=guest_mib, deflate_on_oom=True,
                        name="bench-pressure") as vm:
        # The agent's shell is $$ in its command subshells; its children
        # inherit -1000, so the workload sets itself back to 0.
        vm.sh_ok("echo -1000 > /proc/$$/oom_score_adj")
        out = vm.sh_ok(f"workset start -r 2000 -f {SET} {set_mib}", timeout=600)
        pid = int(re.search(r"started (\d+)", out).group(1))
        vm.sh_ok(f"echo 0 > /proc/{pid}/oom_score_adj")
        if params["churn_mib"]:
            vm.sh_ok(f"(echo 0 > /proc/self/oom_score_adj; n=0; while [ ! -e {CHURN_STOP} ]; do "
                     f"balloon-mem fill {params['churn_mib']} && n=$((n + 1)) && "
                     f"echo $n > {CHURN_COUNT}; done) >/dev/null 2>&1 </dev/null &")
        free_mib = vm.meminfo()["MemFree"] // 1024
        say(f"working set of {set_mib} MiB running, churn {params['churn_mib']} MiB; "
            f"MemFree {free_mib} MiB; target {target_mib} MiB")
        before = vm.vmstat()
        series = _watch(vm, target_mib, params["window_s"], params["sample_s"])
        after = vm.vmstat()
        vm.sh_ok(f"touch {CHURN_STOP}")
        rounds = vm.sh_ok(f"cat {CHURN_COUNT} 2>/dev/null || echo 0")
        alive = vm.sh(f"kill -0 {pid}")[0] == 0
        # Give the memory back before the set's final verification pass.
        benchlib.balloon_to(vm, guest_mib, 600)
        rc, verdict = vm.sh(f"workset check -f {SET} -t 600", timeout=660)
    if after["balloon_inflate"] == before["balloon_inflate"]:
        raise benchlib.VMError("the balloon inflated nothing: there is nothing to measure")
    bad = re.search(r"bad (\d+)", verdict) if alive else None
    page_mib = 4096 / MiB
    plateau = [actual for t, actual in series if t >= params["window_s"] / 2]
    level = statistics.median(plateau)
    m["plateau_s"] = next(t for t, actual in series if actual <= level + params["settle_mib"])
    m["balloon_mib"] = guest_mib - level
    m["short_mib"] = level - target_mib
    m["spread_mib"] = max(plateau) - min(plateau)
    m["inflated_mib"] = (after["balloon_inflate"] - before["balloon_inflate"]) * page_mib
    m["oom_deflated_mib"] = (after["balloon_deflate"] - before["balloon_deflate"]) * page_mib
    m["oom_kills"] = after["oom_kill"] - before["oom_kill"]
    m["set_alive"] = 1 if alive else 0
    m["set_bad_pages"] = int(bad.group(1)) if bad else None
    m["churn_rounds"] = int(rounds) if params["churn_mib"] else None
    info.update(memfree_before_mib=free_mib, workset_verdict=verdict, workset_rc=rc)
    say(f"plateau after {m['plateau_s']:.1f} s at a balloon of {m['balloon_mib']:.0f} MiB "
        f"({m['short_mib']:.0f} MiB short of the target, moving by {m['spread_mib']:.0f} MiB); "
        f"inflated {m['inflated_mib']:.0f} MiB, "
        f"gave back {m['oom_deflated_mib']:.0f} MiB on OOM; {m['oom_kills']} OOM kill(s); "
        f"working set {'alive' if alive else 'gone'} ({verdict}); churn rounds {rounds}")
    return {"metrics": m, "series": {"actual_mib": series}, "info": info}


def _watch(vm, target_mib, window_s, sample_s):
    """Set the target; sample ``actual`` (MiB) for ``window_s``: ``[(s, MiB)]``."""
    start = time.monotonic()
    vm.set_target(target_mib * MiB)
    series = []
    while True:
        elapsed = time.monotonic() - start
        series.append((round(elapsed, 3), vm.actual() / MiB))
        if elapsed >= window_s:
            return series
        time.sleep(sample_s)


def plot(samples, params, outdir, others):
    """``actual`` over time, every run of both kernels, with the target."""
    lines = benchlib.run_lines(samples, "actual_mib", outdir, "pressure",
                               "seconds since the balloon command, query-balloon actual MiB",
                               "{:.1f}")
    if not lines:
        return []
    guest, target = params["guest_mib"], params["target_mib"]
    held = guest * params["set_pct"] // 100
    lines.append(f'{target} with lines lw 1 lc rgb "#888888" title "target"')
    lines.append(f'{held} with lines lw 1 dt 2 lc rgb "#888888" title "working set"')
    title = (f"Inflate under pressure: {guest} MiB guest, working set {held} MiB, "
             f"target {target} MiB")
    if benchlib.time_plot(outdir, "pressure", title, "seconds since the balloon command",
                          "query-balloon actual (MiB)", params["window_s"],
                          f"{guest * 1.05:.0f}", lines):
        return [("pressure.png", "query-balloon actual over time under memory pressure, "
                 "every run of both kernels")]
    return []
