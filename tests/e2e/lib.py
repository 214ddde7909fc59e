"""Tiny TAP runner shared by the end-to-end scenarios.

A scenario is a function ``main(tap)`` that boots VMs and wraps each
assertion group in ``with tap.case("description"):``.  :func:`run` prints
``TAP version 13`` and the plan, turns every exception inside a case into
``not ok`` with ``#`` diagnostics (and keeps the run directories of the
VMs that were up, see harness/vm.py), reports planned cases that never ran
(e.g. after a failed boot) as ``not ok``, and exits non-zero on any
failure.  A precondition the host cannot provide is reported with
:meth:`TAP.skip` or :meth:`TAP.skip_rest` (``ok N - desc # SKIP reason``).
``check`` offers unittest's assertion methods
(``check.assertEqual(a, b)``) for readable failure messages.
"""

import contextlib
import os
import signal
import sys
import time
import traceback
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
import vm  # found through the path inserted above

MiB = 1 << 20

check = unittest.TestCase()
check.maxDiff = None


class TAP:
    """TAP 13 producer with a fixed plan."""

    def __init__(self, plan):
        self.plan = plan
        self.count = 0
        self.failed = 0
        self._notes = None
        print("TAP version 13")
        print(f"1..{plan}", flush=True)

    @contextlib.contextmanager
    def case(self, desc):
        """Run the block as test point ``desc``; exceptions make it ``not ok``."""
        self.count += 1
        self._notes = []
        start = time.monotonic()
        try:
            yield
        except Exception as e:  # any failure is a test result
            self.failed += 1
            print(f"not ok {self.count} - {desc}")
            _print_diag(_describe(e))
            for running in vm.RUNNING:
                running.keep = True
                _print_diag(f"run directory kept: {running.dir}")
        else:
            print(f"ok {self.count} - {desc}")
        notes, self._notes = self._notes, None
        _print_diag("\n".join(notes + [f"time {time.monotonic() - start:.1f} s"]))

    def skip(self, desc, reason):
        """Report test point ``desc`` as skipped because of ``reason``."""
        self.count += 1
        print(f"ok {self.count} - {desc} # SKIP {reason}", flush=True)

    def skip_rest(self, reason):
        """Skip every planned test point that has not run yet."""
        while self.count < self.plan:
            self.skip("skipped", reason)

    def diag(self, text):
        """A ``#`` diagnostic; inside a case it is printed after the result."""
        if self._notes is None:
            _print_diag(text)
        else:
            self._notes.append(str(text))

    def finish(self):
        """Report cases that never ran, check the plan; return the exit status."""
        while self.count < self.plan:
            self.count += 1
            self.failed += 1
            print(f"not ok {self.count} - not run (an earlier step failed)")
        if self.count > self.plan:
            _print_diag(f"ran {self.count} cases but planned {self.plan}")
            return 1
        return 1 if self.failed else 0


def run(main, plan):
    """Run ``main(tap)`` as a TAP scenario with ``plan`` cases and exit."""
    # run-all.sh's timeout sends SIGTERM: unwind, so that VMs shut down and
    # host resources (huge pages) are given back on the way out.
    signal.signal(signal.SIGTERM, _terminated)
    tap = TAP(plan)
    start = time.monotonic()
    try:
        main(tap)
    except Exception as e:  # report it, then mark the rest not run
        _print_diag("scenario aborted: " + _describe(e))
    status = tap.finish()
    _print_diag(f"{os.path.basename(sys.argv[0])}: {time.monotonic() - start:.1f} s total")
    sys.exit(status)


def env_int(name, default):
    """Integer parameter from the environment (so CI can shrink a scenario)."""
    return int(os.environ.get(name, default))


def env_float(name, default):
    """Float parameter from the environment."""
    return float(os.environ.get(name, default))


def _terminated(signum, frame):
    _print_diag("scenario terminated (SIGTERM)")
    sys.exit(1)


def _describe(exc):
    """The exception message plus where in the scenario it was raised."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.basename(f.filename).startswith("test_")]
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _print_diag(text):
    for line in str(text).splitlines():
        print("# " + line)
    sys.stdout.flush()
