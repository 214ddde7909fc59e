"""Kernel reports on a guest console, and the record of every VM's verdict.

Every :class:`vm.VM` scans its console when it is torn down and calls
:func:`record`; the scenario runtime turns what was recorded into its
last case ("no kernel report on any console"), so no scenario can forget
the check.  A scenario that boots the kernel with its KUnit suites scans
only what follows /init's first line: kunit.py judges the KUnit part.
"""

import re

# "BUG:" covers KASAN ("BUG: KASAN: ..."), DEBUG_ATOMIC_SLEEP ("BUG:
# sleeping function called from invalid context"), bad page state and
# page faults; lockdep's reports are "WARNING: possible circular locking
# dependency detected" and the like, plus "INFO: ..." lines; kmemleak
# prints "kmemleak: N new suspected memory leaks" on the console and
# "unreferenced object" in its report.
KERNEL_REPORT = re.compile(
    r"BUG:|WARNING:|kernel BUG at|Oops|general protection fault|KASAN:|"
    r"possible \w+ locking|inconsistent lock state|"
    r"suspicious RCU usage|blocked for more than|"
    r"INFO: rcu_\w+ (self-)?detected stall|soft lockup|"
    r"DEBUG_LOCKS_WARN_ON|list_add corruption|list_del corruption|"
    r"Kernel panic|unreferenced object|new suspected memory leak|"
    r"EXPECTATION FAILED")
# /init's first line: what a kunit=True guest printed before it is KUnit's.
INIT_START = re.compile(r"^@@INIT scenario=", re.M)

_recorded = []


def kernel_reports(text):
    """Kernel reports in console ``text``, two lines of context each."""
    lines = text.splitlines()
    return ["\n".join(lines[i:i + 3]) for i, line in enumerate(lines)
            if KERNEL_REPORT.search(line)]


def after_init(text):
    """The part of ``text`` from /init's first line on (all of it if /init never ran)."""
    m = INIT_START.search(text)
    return text[m.start():] if m else text


def record(name, where, reports):
    """Record VM ``name``'s reports (``where``: its run directory)."""
    _recorded.append((name, where, list(reports)))


def recorded():
    """``[(vm name, run directory, [report, ...])]`` for every VM torn down so far."""
    return list(_recorded)
