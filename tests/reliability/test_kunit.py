#!/usr/bin/env python3
"""KUnit on the debug kernel: the series' suites under KASAN, lockdep and DEBUG_VM.

The guest stage runs the suites on the project kernel, where a
use-after-free or a lock inversion passes unseen.  Here the debug kernel
boots with its built-in suites on (``VM(kunit=True)``, /init's ``kunit``
scenario) and with ``cma=64M`` as in the guest stage; the console up to
/init is parsed by the kernel's own parser (``kunit.py parse``, through
balloon_harness.kunit: a KTAP document per suite module).

One case per suite: every test case of the suite passed or skipped, and
not every one skipped.  A suite missing from the output fails.  One more
case scans the console up to /init for kernel reports (KASAN fails the
running test by itself; a lockdep report or a WARNING does not), since
the harness's console case judges only what follows /init in a KUnit
boot.

Environment (defaults): KUNIT_DEBUG_MIB (512), KUNIT_DEBUG_TIMEOUT (1500
seconds for the whole boot; the hostile suite takes minutes under TCG
with KASAN).
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
import rlib  # noqa: E402  (tests/reliability/rlib.py)
from balloon_harness import console, kunit, scenario  # noqa: E402
from balloon_harness.scenario import check  # noqa: E402

GUEST_MIB = scenario.env_int("KUNIT_DEBUG_MIB", 512)
BOOT_SECONDS = scenario.env_int("KUNIT_DEBUG_TIMEOUT", 1500)
SUITES = ["virtio_balloon", "virtio_balloon_hostile", "page_reporting"]

# The cases, in the order they run (registered: the plan is their number).
SUITE_CASES = [f"KUnit suite {s} on the debug kernel: every case passed" for s in SUITES]
REPORTS = ("no kernel report (BUG, WARNING, KASAN, lockdep, hung task) while the suites ran; "
           "a failed expectation is the suites' to count")
CASES = SUITE_CASES + [REPORTS]
TIMEOUT = BOOT_SECONDS + 120


def main(tap):
    with rlib.VM(mem_mib=GUEST_MIB, name="kunit-debug", scenario="kunit",
                 append="cma=64M", kunit=True) as vm:
        rc = vm.shutdown(timeout=BOOT_SECONDS)
        text = vm.console_text()
    problems = []
    if rc is None:
        problems.append(f"the guest did not finish within {BOOT_SECONDS} s")
    try:
        text, _ = kunit.split_console(text, "kunit")
    except RuntimeError as e:
        problems.append(str(e))
    with tempfile.TemporaryDirectory() as workdir:
        cases = kunit.kunit_parse_all(text, workdir, "kunit-debug", problems)
    for p in problems:
        tap.diag(p)
    for suite, name in zip(SUITES, SUITE_CASES):
        with tap.case(name):
            mine = [(n, s) for n, s in cases if n.split(".")[0] == suite]
            bad = [f"{n}: {s}" for n, s in mine if s not in ("PASS", "SKIP", "SKIPPED")]
            for b in bad[:10]:
                tap.diag(b)
            check.assertTrue(mine, f"no case of {suite} in the output")
            check.assertEqual(bad, [], f"{len(bad)} case(s) of {suite} did not pass")
            check.assertTrue(any(s == "PASS" for _, s in mine),
                             f"every case of {suite} skipped")
            tap.diag(f"{suite}: {len(mine)} cases")
    with tap.case(REPORTS):
        found = [r for r in console.kernel_reports(text) if "EXPECTATION FAILED" not in r]
        for r in found[:5]:
            tap.diag(r)
        check.assertEqual(len(found), 0, f"{len(found)} kernel report(s) during the suites")


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
