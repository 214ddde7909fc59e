"""make check: every stage of the project's tests as one nested KTAP document.

    python3 -m balloon_harness.check [STAGE [SCENARIO ...]]

With no argument, every stage in order of cost; ``STAGE`` alone runs one
(make check-e2e is ``check e2e``); scenarios after it pick some of its
scenario files (``check e2e test_stats.py``).  The document is printed
as each stage ends and kept in build/check/check.ktap (check-STAGE.ktap
for one stage); its counts come from the kernel's KTAP parser
(count.py), whose report is kept beside it.  The last line is ``N passed, N failed``
(plus ``, N skipped`` when any skipped); the exit status is 1 if any
test failed.

Stages (each a subtest, each of its scenarios a subtest of it):

``harness``  the counting itself, with stand-in scenarios (selftest.py)
``patches``  checkpatch, git am, per-patch builds (harness/check-patches.sh)
``compile``  the series' files compile without a diagnostic (W=1, sparse,
             modpost) in Debian's amd64 and arm64 configurations, 32-bit
             big-endian powerpc and i386 (harness/check-compile.sh)
``guest``    KUnit and kselftests inside the guest (tests/guest/run-in-guest.py)
``e2e``      end-to-end scenarios against QEMU (tests/e2e/test_*.py)
``bench``    every benchmark once at a tiny size on both kernels (bench/run.py)
``debug``    the debug kernel builds, then the reliability scenarios on it
             (tests/reliability/test_*.py), short unless the environment
             sets their durations (make soak does)
``arm64``    arm64 guests (qemu-system-aarch64 -M virt, TCG), 4 KiB then 64
             KiB pages: the arm64 initramfs and each kernel build
             (harness/build-arm64-kernel.sh), then on each the guest stage
             and the core e2e scenarios (ARM64_SCENARIOS); names after it
             pick a page size (4K, 64K) and/or scenarios
"""

import glob
import os
import re
import sys
import time

from . import count, ktap, paths, stage

# make check-debug's short durations; make soak sets its own.
DEBUG_SHORT = {"CHURN_SECONDS": "20", "FAULTS_SECONDS": "20", "OOM_PRESSURE_SECONDS": "25",
               "REMOVAL_CYCLES": "3"}


def _scenarios(directory, names):
    pattern = os.path.join(paths.TOP, directory)
    files = ([os.path.join(pattern, n if n.endswith(".py") else n + ".py") for n in names]
             if names else sorted(glob.glob(os.path.join(pattern, "test_*.py"))))
    return files


def harness(names):
    return [stage.scenario("selftest", name="selftest",
                           argv=[stage.PYTHON, "-m", "balloon_harness.selftest"])]


def patches(names):
    return [stage.command("check-patches", [os.path.join(paths.TOP, "harness/check-patches.sh")],
                          timeout=5400)]


def compile_matrix(names):
    return [stage.command("check-compile", [os.path.join(paths.TOP, "harness/check-compile.sh")]
                          + list(names), timeout=1800)]


def guest(names):
    return [stage.command("run-in-guest",
                          [stage.PYTHON, os.path.join(paths.TOP, "tests/guest/run-in-guest.py")],
                          timeout=2400)]


def e2e(names):
    return [stage.scenario(f) for f in _scenarios("tests/e2e", names)]


def bench(names):
    return [stage.exit_status("every benchmark scenario runs on both kernels (BENCH_QUICK=1)",
                              [stage.PYTHON, os.path.join(paths.TOP, "bench/run.py")],
                              timeout=3600, env={"BENCH_QUICK": "1"})]


def debug(names):
    env = {k: os.environ.get(k, v) for k, v in DEBUG_SHORT.items()}
    env["KERNEL"] = os.environ.get("KERNEL") or paths.kernel_image("debug")
    build = stage.exit_status("the debug kernel builds (configs/debug.config)",
                              [os.path.join(paths.TOP, "harness/build-debug-kernel.sh")],
                              timeout=5400)
    return [build] + [stage.scenario(f, env=env) for f in _scenarios("tests/reliability", names)]


# The core end-to-end scenarios the arm64 stage runs on each page size:
# exact inflate/deflate and MemTotal, stats, free page reporting giving
# memory back to QEMU's RSS, hinting within its budget, remove/re-probe.
ARM64_SCENARIOS = ["test_inflate_deflate", "test_stats", "test_free_page_reporting",
                   "test_migration_hint", "test_remove_reprobe"]
ARM64_PAGE_SIZES = ["4K", "64K"]
# Guests of 1 GiB at most, as the x86 guests mostly are: TCG emulating
# arm64 is slower than x86, and these sizes keep the stage short.  The
# fills leave a 64K guest room: its min watermark is 50 MiB and its
# per-CPU lists held 64 MiB when a 768 MiB fill was OOM-killed in CI.
ARM64_ENV = {"FPR_GUEST_MIB": "1024", "FPR_FILL_MIB": "640",
             "HINT_GUEST_MIB": "1024", "HINT_FILL_MIB": "640"}


def arm64(names):
    """``names``: page sizes (``4K``, ``64K``) and/or scenario files; none: all."""
    sizes = [n.upper() for n in names if n.upper() in ARM64_PAGE_SIZES] or ARM64_PAGE_SIZES
    picked = [n for n in names if n.upper() not in ARM64_PAGE_SIZES] or ARM64_SCENARIOS
    initrd = stage.exit_status("the arm64 initramfs builds (busybox-static:arm64, "
                               "cross-compiled programs)",
                               [os.path.join(paths.TOP, "harness/build-initramfs.sh"),
                                paths.INITRDS["arm64"]],
                               timeout=600, env={"ARCH": "arm64"})
    steps = [initrd]
    for size in sizes:
        image = paths.kernel_image("arm64-" + size.lower())
        env = {k: os.environ.get(k, v) for k, v in ARM64_ENV.items()}
        env["KERNEL"] = image
        steps.append(stage.exit_status(
            f"{size}: the arm64 kernel with {size} pages builds "
            "(configs/arm64.config, modules as on x86)",
            [os.path.join(paths.TOP, "harness/build-arm64-kernel.sh"), size], timeout=3600))
        steps.append(stage.command(f"{size}: run-in-guest",
                                   [stage.PYTHON,
                                    os.path.join(paths.TOP, "tests/guest/run-in-guest.py")],
                                   timeout=2400, env=env))
        steps += [stage.scenario(f, env=env,
                                 name=f"{size}: " + os.path.splitext(os.path.basename(f))[0])
                  for f in _scenarios("tests/e2e", picked)]
    return steps


STAGES = {"harness": harness, "compile": compile_matrix, "patches": patches, "guest": guest, "e2e": e2e, "bench": bench,
          "debug": debug, "arm64": arm64}
# Stages make check leaves out (run only when named); none at present.
OPTIONAL = set()


SOAK = re.compile(r"^\s*# soak: (\w+) (\d+)$")


def soak_summary(lines, seconds):
    """The debug stage's ``# soak: NAME VALUE`` numbers, added up (make soak's summary)."""
    total = {}
    for line in lines:
        m = SOAK.match(line)
        if m:
            total[m.group(1)] = total.get(m.group(1), 0) + int(m.group(2))
    return (f"soak: duration {seconds:.0f} s, pages verified {total.get('pages_verified', 0)}, "
            f"faults injected {total.get('faults_injected', 0)}, bad pages "
            f"{total.get('bad_pages', 0)}, removal cycles {total.get('removal_cycles', 0)}")


def main(argv):
    if argv and argv[0] not in STAGES:
        print(f"unknown stage {argv[0]!r}; stages: {' '.join(STAGES)}", file=sys.stderr)
        return 2
    chosen = ([(argv[0], argv[1:])] if argv else
              [(name, []) for name in STAGES if name not in OPTIONAL])
    os.makedirs(paths.CHECK_DIR, exist_ok=True)
    name = "check" if not argv else f"check-{argv[0]}"
    document = os.path.join(paths.CHECK_DIR, name + ".ktap")
    parser_log = os.path.join(paths.CHECK_DIR, name + ".kunit-parser.log")
    printed = [ktap.VERSION, f"1..{len(chosen)}"]
    print("\n".join(printed), flush=True)
    with open(document, "w") as out:
        out.write("\n".join(printed) + "\n")
        for number, (name, names) in enumerate(chosen, 1):
            start = time.monotonic()
            block = stage.run(name, STAGES[name](names))
            reason = "every case skipped" if block.status == "skip" else ""
            lines = ktap.indent(block.lines) + [
                ktap.Result(name, block.status, reason).line(number)]
            lines += ktap.diag(f"{name}: {time.monotonic() - start:.0f} s")
            if name == "debug":
                lines += ktap.diag(soak_summary(block.lines, time.monotonic() - start))
            out.write("\n".join(lines) + "\n")
            out.flush()
            print("\n".join(lines), flush=True)
            printed += lines
    counts = count.count(printed, parser_log)
    if counts.note:
        print("# " + counts.note)
    print(f"# KTAP document: {document}; kunit_parser's report: {parser_log}")
    print(count.summary(counts), flush=True)
    return 1 if counts.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
