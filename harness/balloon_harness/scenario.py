"""The runtime of one scenario: registered cases, results, exit status.

A scenario is a script that registers its cases and its timeout and
hands its ``main(tap)`` to :func:`run`::

    CASES = [INFLATE, DEFLATE]          # names, registered before anything runs
    def main(tap):
        with VM() as vm:
            with tap.case(INFLATE):
                check.assertEqual(...)
    if __name__ == "__main__":
        scenario.run(main, CASES, timeout=300)

``script --list`` prints the timeout and the registered cases and exits;
the stage runner (stage.py) reads it before it starts the scenario, so a
case that never ran is counted even if the scenario is killed.  Every
scenario gets one more case, last: no kernel report on the console of
any VM it booted (console.py); it is skipped when no VM booted or every
other case skipped.  A scenario that never boots a VM (the harness's
self-test) says so with ``vms=False`` and has no console case.

The plan is the number of registered cases.  Inside ``tap.case`` any
exception fails the case; ``SystemExit``, ``KeyboardInterrupt`` and the
stage runner's SIGTERM (:class:`Terminated`) fail it too and then end the
scenario, whose remaining cases are reported failed ("not run").  A
precondition the host cannot provide is reported with :meth:`Scenario.skip`
or :meth:`Scenario.skip_rest`.  The exit status is 1 if a case failed,
4 (ktap.SKIP_EXIT) if every case skipped, else 0.
"""

import contextlib
import os
import signal
import sys
import time
import traceback
import unittest

from . import console, ktap, vm

MiB = 1 << 20
CONSOLE_CASE = ("console: no kernel report (BUG, WARNING, Oops, KASAN, lockdep, hung task, "
                "kmemleak, EXPECTATION FAILED) on any VM's console")

# unittest's assertion methods, for readable failure messages:
# check.assertEqual(a, b).
check = unittest.TestCase()
check.maxDiff = None


class Terminated(BaseException):
    """The stage runner's SIGTERM (the scenario ran out of time)."""


class Scenario:
    """Results of the registered ``cases`` (a list of unique names)."""

    def __init__(self, cases, vms=True):
        self.cases = list(cases)
        if len(set(self.cases)) != len(self.cases) or CONSOLE_CASE in self.cases:
            raise ValueError("case names must be unique")
        self.vms = vms
        self.results = {}
        self._notes = None

    @contextlib.contextmanager
    def case(self, name):
        """Run the block as case ``name``; any exception fails it."""
        self._claim(name)
        self._notes = []
        start = time.monotonic()
        try:
            yield
        except BaseException as e:
            self._report(name, "fail")
            self._print_diag(_describe(e))
            for running in vm.RUNNING:
                running.keep = True
                self._print_diag(f"run directory kept: {running.dir}")
            if not isinstance(e, Exception):
                raise
        else:
            self._report(name, "ok")
        finally:
            notes, self._notes = self._notes, None
            self._print_diag("\n".join(notes + [f"time {time.monotonic() - start:.1f} s"]))

    def skip(self, name, reason):
        """Report case ``name`` as skipped because of ``reason``."""
        self._claim(name)
        self._report(name, "skip", reason)

    def skip_rest(self, reason):
        """Skip every registered case that has not run yet."""
        for name in self.cases:
            if name not in self.results:
                self.skip(name, reason)

    def diag(self, text):
        """A ``#`` diagnostic; inside a case it is printed after the result."""
        if self._notes is None:
            self._print_diag(text)
        else:
            self._notes.append(str(text))

    def finish(self, why_not_run):
        """Fail the cases that never ran, report the console case; return the exit status."""
        for name in self.cases:
            if name not in self.results:
                self._report(name, "fail")
                self._print_diag(f"not run: {why_not_run}")
        seen = console.recorded()
        if not self.vms:
            seen = None
        reports = [(n, where, r) for n, where, found in seen or () for r in found]
        if seen is None:
            pass
        elif reports:
            for name, where, report in reports[:5]:
                self._print_diag(f"{name} ({where}): {report}")
            self._print_diag(f"{len(reports)} kernel report(s) on the consoles")
            self._report(CONSOLE_CASE, "fail")
        elif not seen:
            self._report(CONSOLE_CASE, "skip", "no VM booted")
        elif all(s == "skip" for s, _ in self.results.values()):
            self._report(CONSOLE_CASE, "skip", "every case skipped")
        else:
            self._report(CONSOLE_CASE, "ok")
        statuses = [s for s, _ in self.results.values()]
        if "fail" in statuses:
            return 1
        return ktap.SKIP_EXIT if all(s == "skip" for s in statuses) else 0

    def _claim(self, name):
        if name not in self.cases:
            raise ValueError(f"case not registered: {name!r}")
        if name in self.results:
            raise ValueError(f"case reported twice: {name!r}")

    def _report(self, name, status, reason=""):
        self.results[name] = (status, reason)
        number = len(self.results)
        print(ktap.Result(name, status, reason).line(number), flush=True)

    @staticmethod
    def _print_diag(text):
        for line in ktap.diag(text):
            print(line)
        sys.stdout.flush()


def run(main, cases, timeout, vms=True):
    """Run ``main(tap)`` with the registered ``cases`` (``--list``: list them); exit.

    ``timeout`` (seconds) is how long the stage runner lets it run; a
    scenario that boots no VM passes ``vms=False`` (no console case).
    """
    extra = [CONSOLE_CASE] if vms else []
    if sys.argv[1:] == ["--list"]:
        print(f"timeout {int(timeout)}")
        for name in list(cases) + extra:
            print(name)
        sys.exit(0)
    # The stage runner's timeout sends SIGTERM: unwind, so that VMs shut
    # down and host resources (huge pages) are given back on the way out.
    signal.signal(signal.SIGTERM, _terminated)
    tap = Scenario(cases, vms)
    print(ktap.VERSION)
    print(f"1..{len(tap.cases) + len(extra)}", flush=True)
    start = time.monotonic()
    why = "an earlier step failed"
    try:
        main(tap)
    except BaseException as e:  # report it, then count the rest as not run
        why = "scenario aborted: " + _describe(e)
        tap.diag(why)
    status = tap.finish(why)
    tap.diag(f"{os.path.basename(sys.argv[0])}: {time.monotonic() - start:.1f} s total")
    sys.exit(status)


def env_int(name, default):
    """Integer parameter from the environment (so CI can shrink a scenario)."""
    return int(os.environ.get(name, default))


def env_float(name, default):
    """Float parameter from the environment."""
    return float(os.environ.get(name, default))


def _terminated(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated("terminated by the stage runner (SIGTERM: out of time)")


def _describe(exc):
    """The exception message plus where in the scenario it was raised."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.basename(f.filename).startswith(("test_", "standin_"))]
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
