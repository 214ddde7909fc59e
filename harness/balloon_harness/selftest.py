"""Proof of the counting: stand-in scenarios run by the real stage runner.

    python3 -m balloon_harness.selftest     (make check-harness)

The stand-ins (tests/harness/standin_*) boot no VM and take a few
seconds in all: they pass, fail, skip everything, call sys.exit in a case,
are killed with SIGKILL, hang past their timeout, leave a kernel report on
a "console", and a TAP command and a plain command die early.  Their
stage is parsed by the kernel's KTAP parser (count.py), and each case
here checks one counting rule against what the parser counted.
"""

import os
import tempfile

from . import console, count, ktap, kunit, paths, scenario, stage
from .scenario import check

STANDINS = os.path.join(paths.TOP, "tests/harness")
# stand-in: (passed, failed, skipped, status of the scenario, the rule)
EXPECTED = {
    "standin_pass": (2, 0, 1, "SUCCESS", "passing cases pass; no VM: console case skipped"),
    "standin_fail": (2, 1, 1, "FAILURE", "a failed case fails, the cases after it still run"),
    "standin_skip_all": (0, 0, 4, "SKIPPED", "every case skipped: the scenario is skipped, "
                                             "never passed"),
    "standin_exit": (1, 2, 1, "FAILURE", "sys.exit in a case fails it and every case "
                                         "not run"),
    "standin_killed": (1, 3, 0, "FAILURE", "SIGKILL mid-plan: every registered case not "
                                           "reported fails"),
    "standin_hang": (1, 2, 1, "FAILURE", "past its timeout: SIGTERM fails the running case "
                                         "and the rest"),
    "standin_kernel_report": (1, 1, 0, "FAILURE", "a kernel report on a console fails the "
                                                  "console case"),
    "standin_tap_command": (1, 2, 0, "FAILURE", "a TAP command that dies: the points its plan "
                                                "promised fail"),
    "a command that exits 1": (0, 1, 0, "FAILURE", "a command without TAP that exits 1 fails"),
}
TOTAL = tuple(sum(e[i] for e in EXPECTED.values()) for i in range(3))
CONSOLE_SAMPLES = {
    "BUG: KASAN: use-after-free in balloon_page_free+0x1/0x2": True,
    "WARNING: CPU: 0 PID: 1 at mm/page_reporting.c:10 f+0x1/0x2": True,
    "Oops: general protection fault, probably for non-canonical address": True,
    "WARNING: possible circular locking dependency detected": True,
    "INFO: task kworker/0:1:42 blocked for more than 20 seconds.": True,
    "    # balloon_inflate: EXPECTATION FAILED at drivers/virtio/tests/x.c:1": True,
    "kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)": True,
    "virtio_balloon virtio0: inflated 131072 pages": False,
}
CASES = ([f"{name}: {rule}: {p} passed, {f} failed, {s} skipped"
          for name, (p, f, s, _, rule) in EXPECTED.items()] +
         [f"the whole stand-in stage: {TOTAL[0]} passed, {TOTAL[1]} failed, "
          f"{TOTAL[2]} skipped, in the last line's format",
          "the console scanner flags BUG, WARNING, Oops, KASAN, lockdep, hung task, "
          "EXPECTATION FAILED and kmemleak lines, and nothing else",
          "guest stage: a KTAP header and lines kunit.py cannot parse is a failure, "
          "and so is a kunit.py that fails; the KTAP documents of suite modules are "
          "parsed one by one and their cases joined"])
# Suites loaded as modules: an empty document at boot (no built-in suite,
# a kernel message amid it), then one per module, a failure in the last.
MODULE_KTAP = ("KTAP version 1\n[    0.9] input: keyboard\n1..0\n[    1.0] modprobe\n"
               "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: a\n    1..1\n"
               "    ok 1 a1\nok 1 a\n"
               "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: b\n    1..2\n"
               "    ok 1 b1\n    not ok 2 b2\nnot ok 1 b\n")
def steps():
    standins = sorted(n for n in EXPECTED if n.startswith("standin_") and
                      os.path.exists(os.path.join(STANDINS, n + ".py")))
    return ([stage.scenario(os.path.join(STANDINS, n + ".py")) for n in standins] +
            [stage.command("standin_tap_command", [os.path.join(STANDINS,
                                                                "standin_tap_command.sh")],
                           timeout=30),
             stage.exit_status("a command that exits 1", ["false"], timeout=30)])


def main(tap):
    block = stage.run("standins", steps())
    lines, _ = ktap.document([block])
    os.makedirs(paths.CHECK_DIR, exist_ok=True)
    kept = os.path.join(paths.CHECK_DIR, "standins.ktap")
    with open(kept, "w") as f:
        f.write("\n".join(lines) + "\n")
    tap.diag(f"the stand-ins' KTAP document: {kept}")
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "parser.log")
        parsed = count.parse(lines, log)
        totals = count.count(lines, log)
    scenarios = {t.name: t for t in parsed.subtests[0].subtests}
    for case, (name, (p, f, s, status, _)) in zip(CASES, EXPECTED.items()):
        with tap.case(case):
            check.assertIn(name, scenarios)
            c = scenarios[name].counts
            got = (c.passed, c.failed + c.crashed + c.errors, c.skipped,
                   scenarios[name].status.name)
            check.assertEqual(got, (p, f, s, status))
    with tap.case(CASES[-3]):
        check.assertEqual(count.summary(totals),
                          f"{TOTAL[0]} passed, {TOTAL[1]} failed, {TOTAL[2]} skipped")
    with tap.case(CASES[-2]):
        for line, flagged in CONSOLE_SAMPLES.items():
            check.assertEqual(bool(console.kernel_reports(line)), flagged, line)
    with tap.case(CASES[-1]):
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in (("garbled", "KTAP version 1\n1..2\nnonsense\n"),
                               ("empty", "[    0.1] no KTAP at all\n")):
                problems = []
                cases = kunit.kunit_parse(text, tmp, name, problems)
                tap.diag(f"{name} KTAP: cases {cases}, problems {problems}")
                check.assertTrue(problems or any(s not in ("PASS", "SKIP", "SKIPPED")
                                                 for _, s in cases),
                                 f"a KUnit part with no passing case ({name}) passed")
            problems = []
            cases = kunit.kunit_parse_all(MODULE_KTAP, tmp, "modules", problems)
            tap.diag(f"modules KTAP: cases {cases}, problems {problems}")
            check.assertEqual((cases, problems),
                              ([("a.a1", "PASS"), ("b.b1", "PASS"), ("b.b2", "FAIL")],
                               []))
            real, kunit.KUNIT_PY = kunit.KUNIT_PY, os.path.join(tmp, "no-kunit.py")
            problems = []
            try:
                kunit.kunit_parse("KTAP version 1\n1..1\nok 1 fine\n", tmp, "broken", problems)
            finally:
                kunit.KUNIT_PY = real
            tap.diag(f"kunit.py missing: problems {problems}")
            check.assertTrue(problems, "a kunit.py that failed passed")


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=120, vms=False)
