"""What the benchmark scenarios share: parameters, VMs, timing, plots.

A scenario is a module in bench/ with:

``NAME``
    its name (``SCENARIO=NAME`` runs it alone);
``WHAT``
    one line: what it measures and why (printed in results.md);
``PER_KERNEL``
    True if it boots guests (it then runs once per kernel per round),
    False if it measures the host only (once per round);
``params(quick)``
    its sizes, read from the environment (tiny ones when ``quick``);
``metrics(params)``
    the table rows, a list of :class:`Metric`;
``run(kernel, params, say)``
    one sample: a dict with ``metrics`` (``{key: number or None}``), and
    optionally ``series`` (data for plots) and ``info``; ``kernel`` is the
    bzImage path (None when not PER_KERNEL), ``say`` prints progress;
    it raises :class:`Skip` when the host cannot run it (no huge pages,
    say): the sample is then recorded as skipped, not failed;
``plot(samples, params, outdir, others)`` (optional)
    writes PNGs into ``outdir`` from ``{kernel_label: [sample, ...]}``
    and returns ``[(file name, caption)]``; ``others`` holds the other
    scenarios' samples of the same run, ``{name: {label: [sample, ...]}}``
    (a host-only scenario's label is ``host``).
"""

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "harness"))
from balloon_harness.errors import VMError  # noqa: E402,F401  (scenarios raise it)
from balloon_harness.paths import TOP  # noqa: E402,F401  (bench/run.py uses it)
from balloon_harness.vm import VM  # noqa: E402

MiB = 1 << 20
# query-balloon is polled this often while a balloon change is timed.
POLL_S = 0.01
# Kernel labels, in the order every round runs them (A, then B).
KERNELS = ("upstream", "project")


class Skip(Exception):
    """The host cannot run this scenario; the message says why."""


class Metric:
    """One table row.

    ``key`` indexes a sample's ``metrics``; ``label`` and ``unit`` are
    shown.  ``floor`` is ``(mode, gib)`` when the row is an inflate time
    of ``gib`` GiB that the madvise floor (scenario ``floor``, ``mode``)
    bounds: the table then shows it as a multiple of that floor.
    """

    def __init__(self, key, label, unit, floor=None):
        self.key = key
        self.label = label
        self.unit = unit
        self.floor = floor


def env_int(name, default, quick_default=None, quick=False):
    """Integer parameter ``name`` from the environment.

    Its default is ``quick_default`` in a quick run (when given).
    """
    if name in os.environ:
        return int(os.environ[name])
    return quick_default if quick and quick_default is not None else default


def env_float(name, default, quick_default=None, quick=False):
    """Float parameter; see :func:`env_int`."""
    if name in os.environ:
        return float(os.environ[name])
    return quick_default if quick and quick_default is not None else default


def summary(values):
    """``(median, min, max, n)`` of the values that are not None.

    ``n`` is how many there were; the first three are None if none.
    """
    values = [v for v in values if v is not None]
    if not values:
        return None, None, None, 0
    return statistics.median(values), min(values), max(values), len(values)


def guest(kernel, **kwargs):
    """A :class:`VM` (not started yet) booting ``kernel``; use it with ``with``."""
    return VM(kernel=kernel, **kwargs)


def balloon_to(vm, target_mib, timeout):
    """Set the balloon target and wait until ``query-balloon`` reaches it.

    Returns the seconds from sending the QMP ``balloon`` command until
    ``actual`` equals the target (polled every POLL_S).  Raises
    :class:`VMError` after ``timeout`` seconds.
    """
    target = target_mib * MiB
    start = time.monotonic()
    vm.set_target(target)
    actual = vm.wait_actual(target, timeout=timeout, interval=POLL_S)
    took = time.monotonic() - start
    if actual != target:
        raise VMError(f"balloon target {target_mib} MiB not reached after {timeout:.0f} s "
                      f"(actual {actual / MiB:.1f} MiB)")
    return took


def gnuplot(outdir, name, script):
    """Run the gnuplot ``script`` in ``outdir`` (kept there as ``name``.gp).

    Returns True on success; a failure is reported, not raised: a plot
    is never worth losing the numbers for.
    """
    path = os.path.join(outdir, name + ".gp")
    with open(path, "w") as f:
        f.write(script)
    proc = subprocess.run(["gnuplot", name + ".gp"], cwd=outdir, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"bench: gnuplot {path} failed:\n{proc.stderr}", file=sys.stderr)
        return False
    return True


# Shared look of every plot: PNG, readable size, a grid.
PLOT_HEADER = """set terminal pngcairo size 1000,600 noenhanced font ",11"
set grid
set key outside right top
"""
# Line colours of the kernels: upstream grey-blue, project orange.
COLOURS = {"upstream": "#3b6ea5", "project": "#e07b00"}
# Bar charts: medians as bars, min-max as error bars, "?" for no value.
HISTOGRAM = """set yrange [0:*]
set datafile missing "?"
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics nomirror
set bmargin 4
"""


def time_plot(outdir, name, title, xlabel, ylabel, xmax, ymax, lines):
    """A plot of ``lines`` (gnuplot ``plot`` clauses) over 0..``xmax`` s.

    ``ymax`` is the y axis' top, ``"*"`` for automatic.  Writes
    ``name``.gp and .png; returns the PNG's name, or None.
    """
    script = PLOT_HEADER + f"""set output "{name}.png"
set title "{title}"
set xlabel "{xlabel}"
set ylabel "{ylabel}"
set xrange [0:{xmax:g}]
set yrange [0:{ymax}]
plot {", ".join(lines)}
"""
    return name + ".png" if gnuplot(outdir, name, script) else None


def run_lines(samples, key, outdir, prefix, header, fmt="{:g}"):
    """One gnuplot line per run of both kernels, from each sample's time series.

    Writes ``series[key]`` (``[(seconds, value), ...]``) of every sample
    to ``prefix-KERNEL-N.dat`` under the comment ``header`` and returns
    the ``plot`` clauses: the kernel's colour, a dash pattern per run.
    ``fmt`` formats the value.
    """
    lines = []
    for kernel in KERNELS:
        for i, sample in enumerate(samples.get(kernel, [])):
            series = sample.get("series", {}).get(key)
            if not series:
                continue
            name = f"{prefix}-{kernel}-{i + 1}.dat"
            with open(os.path.join(outdir, name), "w") as f:
                f.write(f"# {header}\n")
                f.writelines(f"{t} {fmt.format(v)}\n" for t, v in series)
            lines.append(f'"{name}" using 1:2 with lines lw 2 dt {i % 5 + 1} '
                         f'lc rgb "{COLOURS[kernel]}" title "{kernel} run {i + 1}"')
    return lines


def kernel_bars(outdir, name, title, ylabel, groups, samples, fmt="%.0f"):
    """A bar chart of per-kernel medians with min-max bars; the PNG's name or None.

    ``groups`` is ``[(label, metric key), ...]``, one group of bars per
    entry, one bar per kernel, each labelled with its median (printf
    format ``fmt``, so that a zero is seen too); ``samples`` is
    ``{kernel: [sample, ...]}`` as a scenario's ``plot`` gets it.
    Writes ``name``.dat, .gp and .png.
    """
    if not any(s["metrics"].get(key) is not None for _, key in groups
               for runs in samples.values() for s in runs):
        return None  # every sample failed or was skipped: nothing to draw
    rows = []
    for label, key in groups:
        cols = []
        for kernel in KERNELS:
            median, low, high, n = summary([s["metrics"].get(key)
                                            for s in samples.get(kernel, [])])
            cols += [f"{v:.6g}" for v in (median, low, high)] if n else ["?"] * 3
        rows.append(f'"{label}" ' + " ".join(cols))
    with open(os.path.join(outdir, name + ".dat"), "w") as f:
        f.write("# group, then median min max: " + ", ".join(KERNELS) + "\n")
        f.write("\n".join(rows) + "\n")
    script = PLOT_HEADER + f"""set output "{name}.png"
set title "{title}"
set ylabel "{ylabel}"
{HISTOGRAM}# Two bars and a gap of one bar per group: the bars sit at -1/6 and +1/6.
plot "{name}.dat" using 2:3:4:xtic(1) title "{KERNELS[0]}" lc rgb "{COLOURS[KERNELS[0]]}", \\
     "" using 5:6:7 title "{KERNELS[1]}" lc rgb "{COLOURS[KERNELS[1]]}", \\
     "" using ($0 - 1.0 / 6):2:(sprintf("{fmt}", $2)) with labels offset 0,0.7 notitle, \\
     "" using ($0 + 1.0 / 6):5:(sprintf("{fmt}", $5)) with labels offset 0,0.7 notitle
"""
    return name + ".png" if gnuplot(outdir, name, script) else None
