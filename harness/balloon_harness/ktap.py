"""KTAP lines: what a result, a plan and a subtest look like, and reading them back.

The shapes are those of Documentation/dev-tools/ktap.rst, which the
kernel's parser (count.py) reads: a subtest is indented by four spaces and
starts with ``KTAP version 1`` and ``# Subtest: NAME``; its result line
carries the same NAME.  A name never holds ``#`` (it would start a
directive), so :func:`result` drops it.
"""

import re

VERSION = "KTAP version 1"
INDENT = "    "
# A scenario that exits 4 skipped, as a kselftest does.
SKIP_EXIT = 4
RESULT = re.compile(r"^(ok|not ok) (\d+)(?: - | |$)(.*)$")
SKIP = re.compile(r"^(.*?)\s*# SKIP\b ?(.*)$", re.I)
DIRECTIVE = re.compile(r"\s+# .*$")
PLAN = re.compile(r"^1\.\.(\d+)")
VERSION_LINE = re.compile(r"^(K?TAP) version \d+")


class Result:
    """One test point: ``status`` is ``ok``, ``fail`` or ``skip``."""

    def __init__(self, name, status, reason=""):
        self.name = name
        self.status = status
        self.reason = reason

    def line(self, number):
        name = " ".join(self.name.replace("#", "").split())
        if self.status == "skip":
            return f"ok {number} {name} # SKIP {self.reason}".rstrip()
        return f"{'ok' if self.status == 'ok' else 'not ok'} {number} {name}"


def parse_result(line):
    """A :class:`Result` from an unindented result line, else None."""
    m = RESULT.match(line)
    if not m:
        return None
    ok, text = m.group(1) == "ok", m.group(3)
    skip = SKIP.match(text)
    if skip:
        return Result(skip.group(1).strip(), "skip" if ok else "fail", skip.group(2).strip())
    return Result(DIRECTIVE.sub("", text).strip(), "ok" if ok else "fail")


def diag(text):
    """``text`` as ``#`` diagnostic lines."""
    return ["# " + line if line.strip() else "#" for line in str(text).splitlines()]


def status_of(results):
    """The status of a test made of ``results``: fail if any failed, skip if all skipped."""
    if any(r.status == "fail" for r in results):
        return "fail"
    if results and all(r.status == "skip" for r in results):
        return "skip"
    return "ok" if results else "fail"


class Block:
    """A test with subtests: its name, its own lines (unindented) and its status."""

    def __init__(self, name, lines, status, reason=""):
        self.name = name
        self.lines = lines
        self.status = status
        self.reason = reason


def subtest(name, entries):
    """Subtest ``name`` made of ``entries``: Results, Blocks and diagnostic lines.

    The plan is the number of results and blocks, the status follows from
    theirs (:func:`status_of`); a test with every point skipped is skipped.
    """
    points = [e for e in entries if not isinstance(e, str)]
    lines = [VERSION, f"# Subtest: {name}", f"1..{len(points)}"]
    n = 0
    for e in entries:
        if isinstance(e, str):
            lines.append(e)
            continue
        n += 1
        if isinstance(e, Block):
            lines += indent(e.lines)
            e = Result(e.name, e.status, e.reason or ("every case skipped" if e.status == "skip"
                                                      else ""))
        lines.append(e.line(n))
    return Block(name, lines, status_of(points))


def document(entries):
    """A whole KTAP document (no subtest header) of ``entries``."""
    block = subtest("", entries)
    return [VERSION] + block.lines[2:], block.status


def indent(lines):
    return [INDENT + line if line else line for line in lines]
