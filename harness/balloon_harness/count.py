"""Counts from the kernel's own KTAP parser (tools/testing/kunit/kunit_parser.py).

The parser's own report (one line per test, the summary) goes to a log
file; :func:`count` returns its counts, and :func:`summary` the last line
of make check: ``N passed, N failed`` and, when there are any,
``, N skipped``.  Crashed tests and parse errors (a missing result, a
plan not kept) count as failed; so does a document it cannot read.
"""

import importlib
import os
import sys

from . import paths


class Counts:
    def __init__(self, passed=0, failed=0, skipped=0, note=""):
        self.passed = passed
        self.failed = failed
        self.skipped = skipped
        self.note = note


def _parser():
    if not os.path.isfile(os.path.join(paths.KUNIT_TOOLS, "kunit_parser.py")):
        raise ImportError(f"no kunit_parser.py in {paths.KUNIT_TOOLS} (make tree)")
    sys.dont_write_bytecode = True  # nothing written into the kernel tree
    if paths.KUNIT_TOOLS not in sys.path:
        sys.path.insert(0, paths.KUNIT_TOOLS)
    return importlib.import_module("kunit_parser"), importlib.import_module("kunit_printer")


def count(lines, log_path):
    """Parse the KTAP document ``lines``; :class:`Counts`, the parser's report in ``log_path``."""
    try:
        parser, printer = _parser()
    except ImportError as e:
        return Counts(failed=1, note=str(e))
    with open(log_path, "w") as log:
        parser.stdout = printer.Printer(log)
        test = parser.parse_run_tests(line + "\n" for line in lines)
    c = test.counts
    failed = c.failed + c.crashed + c.errors
    note = ""
    if test.status in (parser.TestStatus.FAILURE_TO_PARSE_TESTS, parser.TestStatus.NO_TESTS):
        failed = max(failed, 1)
        note = f"kunit_parser: {test.status.name}"
    return Counts(c.passed, failed, c.skipped, note)


def parse(lines, log_path):
    """The parser's Test tree of ``lines`` (for the self-test)."""
    parser, printer = _parser()
    with open(log_path, "w") as log:
        parser.stdout = printer.Printer(log)
        return parser.parse_run_tests(line + "\n" for line in lines)


def summary(counts):
    line = f"{counts.passed} passed, {counts.failed} failed"
    if counts.skipped:
        line += f", {counts.skipped} skipped"
    return line
