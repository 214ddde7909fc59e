#!/usr/bin/env python3
"""make bench: the project's kernel against upstream 6.12, on the same QEMU.

Runs every scenario (bench/<name>.py, see bench/benchlib.py) ROUNDS
times.  Each round runs each scenario on the upstream kernel, then on
the project's, so slow drift of the host hits both alike.  Scenarios
that measure the host alone run once per round.  Only one VM runs at a
time.

Writes RESULTS/<date-time>/ and, once complete, points RESULTS/latest at it:
  results.md    machine, QEMU, kernels, then per scenario what it
                measures, a table (median, min, max per kernel, ratio
                upstream/project) and its plots
  results.json  every sample, raw, plus the same header
  *.png         plots (gnuplot); *.gp and *.dat regenerate them
results.json is rewritten after every sample, so an interrupted run
keeps what it measured.

Environment:
  SCENARIO=a,b       run only these (floor, inflate_deflate, hugetlb_inflate,
                     reporting, pagefault, hinting, pressure)
  ROUNDS=N           rounds (default 3; quick run 1)
  BENCH_QUICK=1      every scenario once per kernel at tiny sizes: proves
                     the benchmark works, in a minute or two; writes to
                     build/bench-quick unless BENCH_RESULTS is set
  BENCH_UPSTREAM     upstream bzImage (make upstream: build/baseline/arch/x86/boot/bzImage)
  BENCH_PROJECT      project bzImage (build/kernel/arch/x86/boot/bzImage)
  BENCH_RESULTS      results directory (results)
Sizes are per scenario; see the docstring of each bench/<name>.py.
INITRD and ACCEL apply as for every VM (harness/vm.py).
"""

import datetime
import hashlib
import importlib
import json
import os
import platform
import struct
import subprocess
import sys
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in bench/ or harness/

import benchlib  # noqa: E402
from balloon_harness import paths  # noqa: E402
from benchlib import KERNELS, TOP  # noqa: E402

ORDER = ("floor", "inflate_deflate", "hugetlb_inflate", "reporting", "pagefault", "hinting",
         "pressure")
HOST = "host"  # label of the samples of a scenario that boots no guest


class Bench:
    """One benchmark run: its settings, its samples, its output directory."""

    def __init__(self):
        self.quick = os.environ.get("BENCH_QUICK") == "1"
        self.rounds = int(os.environ.get("ROUNDS", 1 if self.quick else 3))
        self.scenarios = [importlib.import_module(name) for name in _selected()]
        self.params = {s.NAME: s.params(self.quick) for s in self.scenarios}
        self.kernels = {}
        if any(s.PER_KERNEL for s in self.scenarios):
            for label in KERNELS:
                path = os.environ.get("BENCH_" + label.upper(),
                                      paths.kernel_image(label))
                if not os.path.isfile(path):
                    sys.exit(f"bench: the {label} kernel {path} does not exist "
                             f"({'make upstream' if label == 'upstream' else 'make kernel'}, "
                             f"or set BENCH_{label.upper()})")
                self.kernels[label] = os.path.abspath(path)
        root = os.environ.get("BENCH_RESULTS",
                              os.path.join(TOP, "build/bench-quick" if self.quick else "results"))
        self.start = time.monotonic()
        self.started = datetime.datetime.now().astimezone()
        self.dir = os.path.join(root, self.started.strftime("%Y%m%d-%H%M%S"))
        os.makedirs(self.dir)
        self.root = root
        self.meta = _machine(self)
        self.samples = {s.NAME: {} for s in self.scenarios}
        self.durations = {s.NAME: 0.0 for s in self.scenarios}
        self.errors = 0

    def say(self, text):
        elapsed = int(time.monotonic() - self.start)
        print(f"[{elapsed // 60:3d}:{elapsed % 60:02d}] {text}", flush=True)

    def run(self):
        mode = "quick run (tiny sizes, no meaning in the numbers)" if self.quick else "full run"
        self.say(f"bench: {mode}, {self.rounds} round(s) of "
                 f"{', '.join(s.NAME for s in self.scenarios)} -> {self.dir}")
        for label, path in self.kernels.items():
            version = self.meta["kernels"][label]["version"]
            self.say(f"  {label}: {os.path.relpath(path, TOP)}: {version}")
        if self.meta.get("same_kernel"):
            self.say("  NOTE: upstream and project are the same image; the ratios show noise only")
        try:
            for rnd in range(1, self.rounds + 1):
                for scenario in self.scenarios:
                    labels = KERNELS if scenario.PER_KERNEL else (HOST,)
                    for label in labels:
                        self.sample(scenario, label, rnd)
        except KeyboardInterrupt:
            self.meta["interrupted"] = True
            self.say("bench: interrupted; writing what was measured")
        self.meta["duration_s"] = time.monotonic() - self.start
        self.meta["scenario_duration_s"] = self.durations
        self.write_json()
        plots = self.plot()
        with open(os.path.join(self.dir, "results.md"), "w") as f:
            f.write(self.markdown(plots))
        if not self.meta.get("interrupted"):
            _point_latest(self.root, os.path.basename(self.dir))
        self.say(f"bench: done in {self.meta['duration_s'] / 60:.1f} min, {self.errors} failed "
                 f"sample(s): {os.path.join(self.dir, 'results.md')}")
        return 1 if self.errors or self.meta.get("interrupted") else 0

    def sample(self, scenario, label, rnd):
        """Run one sample of ``scenario`` on kernel ``label``; keep it even if it failed."""
        prefix = f"round {rnd}/{self.rounds} {scenario.NAME} {label}"
        self.say(prefix + ": start")
        start = time.monotonic()
        try:
            result = scenario.run(self.kernels.get(label), self.params[scenario.NAME],
                                  lambda text: self.say(f"{prefix}: {text}"))
        except benchlib.Skip as e:  # the host cannot run it: not a failure
            result = {"metrics": {}, "skipped": str(e)}
            self.say(f"{prefix}: SKIPPED: {e}")
        except Exception as e:  # a failed sample is recorded and the run goes on
            self.errors += 1
            result = {"metrics": {}, "error": f"{type(e).__name__}: {e}"}
            self.say(f"{prefix}: FAILED: {result['error']}")
            traceback.print_exc()
        took = time.monotonic() - start
        self.durations[scenario.NAME] += took
        result.update(round=rnd, seconds=round(took, 2))
        self.samples[scenario.NAME].setdefault(label, []).append(result)
        self.write_json()

    def write_json(self):
        data = {"meta": self.meta, "scenarios": {
            s.NAME: {"what": s.WHAT, "params": self.params[s.NAME],
                     "samples": self.samples[s.NAME]} for s in self.scenarios}}
        path = os.path.join(self.dir, "results.json")
        with open(path + ".tmp", "w") as f:
            json.dump(data, f, indent=1)
        os.replace(path + ".tmp", path)

    def plot(self):
        """Every scenario's plots: ``{name: [(png, caption)]}``."""
        plots = {}
        for s in self.scenarios:
            if hasattr(s, "plot") and self.samples[s.NAME]:
                others = {o.NAME: self.samples[o.NAME] for o in self.scenarios if o is not s}
                plots[s.NAME] = s.plot(self.samples[s.NAME], self.params[s.NAME], self.dir, others)
        return plots

    # ---- results.md ----------------------------------------------------

    def markdown(self, plots):
        meta = self.meta
        out = ["# virtio-balloon benchmark: project against upstream 6.12", ""]
        if self.quick:
            out += ["**Quick run** (`BENCH_QUICK=1`): tiny sizes, one round; it proves the "
                    "benchmark works and its numbers mean nothing.", ""]
        if meta.get("interrupted"):
            out += ["**Interrupted**: the tables hold what was measured before.", ""]
        out += ["| | |", "|---|---|"]
        for key, value in meta["header"]:
            out.append(f"| {key} | {value} |")
        for label in self.kernels:
            k = meta["kernels"][label]
            out.append(f"| {label} kernel | `{k['path']}`: {k['version']} (sha256 {k['sha256']}) |")
        out.append(f"| Rounds | {self.rounds}; each round runs upstream, then project "
                   "(A B A B ...) |")
        out.append(f"| Took | {meta['duration_s'] / 60:.1f} min: " + ", ".join(
            f"{name} {secs / 60:.1f} min" for name, secs in self.durations.items()) + " |")
        out += ["", "Under TCG absolute times say little; compare the kernels through the ratio "
                "upstream/project of the medians. For times, above 1 means the project is "
                "faster; for rates and percentages, below 1 means the project gives more. "
                "A median shown as `x (k/n)` was reached in k of n runs only."
                + (" `× floor` is the median inflate time as a multiple of the host's madvise "
                   "floor for the same size (scenario floor)." if "floor" in self.samples else ""),
                ""]
        if meta.get("same_kernel"):
            out += ["**Upstream and project are the same image**: every ratio is noise.", ""]
        for s in self.scenarios:
            out += self.scenario_markdown(s, plots.get(s.NAME, []))
        return "\n".join(out) + "\n"

    def scenario_markdown(self, scenario, plots):
        name = scenario.NAME
        params = ", ".join(f"{k} {v}" for k, v in self.params[name].items())
        out = [f"## {name}", "", f"**Measures:** {scenario.WHAT}.", "", f"Parameters: {params}.",
               ""]
        samples = self.samples[name]
        failed = [f"{label} round {s['round']}: {s['error']}" for label, runs in samples.items()
                  for s in runs if "error" in s]
        skipped = sorted({s["skipped"] for runs in samples.values() for s in runs
                          if "skipped" in s})
        rows = scenario.metrics(self.params[name])
        if scenario.PER_KERNEL:
            floor = self.samples.get("floor", {}).get(HOST, [])
            floors = floor and any(m.floor for m in rows)
            out += ["| Metric | Unit | upstream median | min | max | project median | min | max "
                    "| upstream/project |"
                    + (" × floor upstream | × floor project |" if floors else ""),
                    "|---|---|--:|--:|--:|--:|--:|--:|--:|" + ("--:|--:|" if floors else "")]
            for m in rows:
                cells, medians = [], {}
                for label in KERNELS:
                    cell, medians[label] = _cells(samples.get(label, []), m.key)
                    cells += cell
                ratio = (_num(medians["upstream"] / medians["project"])
                         if medians["upstream"] and medians["project"] else "")
                cells.append(ratio)
                if floors:
                    cells += [_floor_multiple(medians[label], m.floor, floor) for label in KERNELS]
                out.append(f"| {m.label} | {m.unit} | " + " | ".join(cells) + " |")
        else:
            out += ["| Metric | Unit | median | min | max |", "|---|---|--:|--:|--:|"]
            for m in rows:
                cells, _ = _cells(samples.get(HOST, []), m.key)
                out.append(f"| {m.label} | {m.unit} | " + " | ".join(cells) + " |")
        out.append("")
        if failed:
            out += ["Failed samples:", ""] + [f"- {f}" for f in failed] + [""]
        if skipped:
            out += ["Skipped (the host could not run it):", ""] + [f"- {s}" for s in skipped] + [""]
        for png, caption in plots:
            out += [f"![{caption}]({png})", ""]
        return out


def _cells(samples, key):
    """Median, min and max cells of metric ``key``; also the median itself."""
    if samples and all("skipped" in s for s in samples):
        return ["skipped", "", ""], None
    values = [s["metrics"].get(key) for s in samples if "error" not in s and "skipped" not in s]
    median, low, high, n = benchlib.summary(values)
    if not samples:
        return ["", "", ""], None
    if not n:
        return ["never" if values else "failed", "", ""], None
    cell = _num(median) + (f" ({n}/{len(samples)})" if n < len(samples) else "")
    return [cell, _num(low), _num(high)], median


def _floor_multiple(median, floor, floor_samples):
    """``median`` seconds as a multiple of the madvise floor for the same size."""
    if median is None or floor is None:
        return ""
    mode, gib = floor
    per_gib, _, _, n = benchlib.summary([s["metrics"].get(f"{mode}_s_per_gib")
                                        for s in floor_samples])
    return f"{median / (per_gib * gib):.1f}" if n else ""


def _num(value):
    """A number with about three significant digits."""
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _selected():
    """Scenario module names from SCENARIO, in the order they run."""
    wanted = [w for w in os.environ.get("SCENARIO", "").replace(",", " ").split() if w]
    unknown = [w for w in wanted if w not in ORDER]
    if unknown:
        sys.exit(f"bench: unknown scenario(s) {', '.join(unknown)}; known: {', '.join(ORDER)}")
    return [name for name in ORDER if not wanted or name in wanted]


def _point_latest(root, name):
    """Make ``root/latest`` a relative symlink to ``name``, atomically."""
    tmp = os.path.join(root, ".latest.tmp")
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(name, tmp)
    os.replace(tmp, os.path.join(root, "latest"))


def _machine(bench):
    """The header of results.md and results.json: host, QEMU, kernels, series."""
    qemu = _output(["qemu-system-x86_64", "--version"]).splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor() or "unknown")
    mem_kib = next(int(line.split()[1]) for line in open("/proc/meminfo")
                   if line.startswith("MemTotal:"))
    thp = _read("/sys/kernel/mm/transparent_hugepage/enabled")
    thp = thp.split("[")[1].split("]")[0] if "[" in thp else "unknown"
    series = _output(["git", "-C", os.path.join(TOP, "build/linux"), "log", "-1",
                      "--format=%h %s"])
    patches = _output(["git", "-C", os.path.join(TOP, "build/linux"), "rev-list", "--count",
                       "base..HEAD"])
    project = _output(["git", "-C", TOP, "log", "-1", "--format=%h"])
    if _output(["git", "-C", TOP, "status", "--porcelain", "--", "series"]):
        project += " (series/ has uncommitted changes)"
    kernels = {}
    for label, path in bench.kernels.items():
        with open(path, "rb") as f:
            image = f.read()
        kernels[label] = {"path": os.path.relpath(path, TOP), "version": _bzimage_version(image),
                          "sha256": hashlib.sha256(image).hexdigest()[:12]}
    header = [
        ("Date", bench.started.strftime("%Y-%m-%d %H:%M %Z")),
        ("Host CPU", cpu),
        ("nproc", str(os.cpu_count())),
        ("Host", f"Linux {platform.release()}, {mem_kib / (1 << 20):.1f} GiB RAM, THP {thp}, "
                 f"load average {os.getloadavg()[0]:.2f} at the start"),
        ("QEMU", qemu[0] if qemu else "unknown"),
        ("Accelerator", os.environ.get("ACCEL", "tcg").upper()),
        ("Series HEAD", f"{series or 'unknown'} ({patches or '?'} patch(es) on base; "
                        f"project commit {project or 'unknown'})"),
    ]
    meta = {"header": header, "kernels": kernels, "quick": bench.quick, "rounds": bench.rounds,
            "started": bench.started.isoformat()}
    if len(kernels) == 2 and kernels["upstream"]["sha256"] == kernels["project"]["sha256"]:
        meta["same_kernel"] = True
    return meta


def _bzimage_version(image):
    """The version string in a bzImage's setup header (``file`` shows the same)."""
    if image[0x202:0x206] != b"HdrS":
        return "unknown (no setup header)"
    offset = struct.unpack_from("<H", image, 0x20E)[0] + 0x200
    return image[offset:image.index(b"\0", offset)].decode(errors="replace")


def _output(cmd):
    """stdout of ``cmd`` stripped, or '' if it fails."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(__doc__.strip())
        sys.exit(0 if sys.argv[1] in ("-h", "--help") else 2)
    sys.exit(Bench().run())
