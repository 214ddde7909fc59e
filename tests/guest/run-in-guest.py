#!/usr/bin/env python3
"""Run the in-kernel and in-guest tests in three boots and report them as TAP.

The guest boots with ``scenario=selftests``.  The KUnit suites run
during boot (built in) or as /init loads them (modules, before it starts
its scenario) and print KTAP on the console, a document per module; /init
then runs the balloon kselftests (tools/testing/selftests/balloon) with
the kselftest runner.  The balloon target is set to three quarters of RAM before the guest runs,
so the tests that need an inflated balloon have one.

Two more boots run the KUnit suites alone with ``init_on_free=1`` and with
``page_poison=1``: free pages then have a content the balloon and the
reporting and hinting code must preserve.  Their cases are named
``kunit[init_on_free=1]: ...`` and ``kunit[page_poison=1]: ...``.

Each part of the console log is parsed by the kernel's own parser,
``tools/testing/kunit/kunit.py parse``, and every test case it found is
reported here as one TAP line: a case that crashed, timed out or is
missing counts as a failure, not as a pass.  A part that yields no case
at all, or that kunit.py fails on (an exit status other than 0, or 1
with no failed case), is a failure too; so is a kernel report on the
console after /init started (balloon_harness/console.py; the KUnit part
before it is kunit.py's to judge).
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import console  # noqa: E402
from balloon_harness.kunit import kunit_parse, kunit_parse_all, split_console  # noqa: E402
from balloon_harness.vm import VM  # noqa: E402

GUEST_MIB = 512


# (label, extra kernel command line, /init scenario): the first boot also
# runs the kselftests; the others run only the boot-time KUnit suites.
BOOTS = [
    ("", "", "selftests"),
    ("init_on_free=1", "init_on_free=1", "kunit"),
    ("page_poison=1", "page_poison=1", "kunit"),
]


def run_boot(label, append, scenario, workdir, results, problems):
    """Boot once; add its cases to ``results`` and what went wrong to ``problems``."""
    tag = f"[{label}]" if label else ""
    name = "guest-tests" + ("-" + label.split("=")[0].replace("_", "-") if label else "")
    # cma=64M: the page_reporting KUnit suite checks that free page
    # hinting never holds CMA pageblocks (needs CONFIG_DMA_CMA).
    with VM(mem_mib=GUEST_MIB, name=name, scenario=scenario,
            append=("cma=64M " + append).strip(), kunit=True,
            initial_target_mib=GUEST_MIB * 3 // 4) as vm:
        rc = vm.shutdown(timeout=600)
        console = vm.console_text()
        if rc is None:
            problems.append(f"the guest{tag} did not finish within 600 s")
    try:
        kunit, rest = split_console(console, scenario)
    except RuntimeError as e:
        problems.append(f"{e}{tag}")
        kunit, rest = console, ""
    # The project kernel has KUnit suites (built in, or modules /init
    # loaded before its scenario): no KTAP is a failure.
    cases = kunit_parse_all(kunit, workdir, "kunit" + tag, problems)
    results += [(f"kunit{tag}: " + n, s) for n, s in cases]
    if scenario == "selftests":
        results += kunit_parse(rest, workdir, "kselftest", problems)


def main():
    results = []
    problems = []
    with tempfile.TemporaryDirectory() as workdir:
        for label, append, scenario in BOOTS:
            run_boot(label, append, scenario, workdir, results, problems)
    for name, where, reports in console.recorded():
        if reports:
            problems.append(f"{len(reports)} kernel report(s) on {name}'s console after /init "
                            f"started ({where}): {reports[0].splitlines()[0]}")

    print("TAP version 13")
    print(f"1..{len(results) + len(problems)}")
    n = 0
    for name, status in results:
        n += 1
        if status == "PASS":
            print(f"ok {n} - {name}")
        elif status in ("SKIP", "SKIPPED"):
            print(f"ok {n} - {name} # SKIP")
        else:
            print(f"not ok {n} - {name} ({status})")
    for problem in problems:
        n += 1
        print(f"not ok {n} - {problem}")
    return 1 if problems or any(s not in ("PASS", "SKIP", "SKIPPED") for _, s in results) else 0


if __name__ == "__main__":
    sys.exit(main())
