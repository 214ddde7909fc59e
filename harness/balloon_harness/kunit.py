"""KUnit output of a guest console, judged by the kernel's own parser.

``kunit.py parse`` reads one KTAP document; a console holds the built-in
suites' document and one more per suite module loaded.  The guest stage
(tests/guest/run-in-guest.py), the debug kernel's KUnit scenario
(tests/reliability/test_kunit.py) and the self-test use these.
"""

import json
import os
import re
import subprocess
import sys

from . import paths

KUNIT_PY = os.path.join(paths.KUNIT_TOOLS, "kunit.py")


def kunit_parse(text, workdir, name, problems):
    """Parse ``text`` with kunit.py; return ``[(case name, status)]``.

    kunit.py exits 1 when a test failed (the JSON has the details); any
    other failure of it, and a parse with no case, is added to ``problems``.
    """
    log = os.path.join(workdir, name + ".log")
    out = os.path.join(workdir, name + ".json")
    with open(log, "w") as f:
        f.write(text)
    p = subprocess.run([sys.executable, KUNIT_PY, "parse", "--json=" + out, log],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       check=False, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    try:
        with open(out) as f:
            cases = list(_cases(json.load(f)))
    except (OSError, ValueError) as e:
        cases = []
        problems.append(f"{name}: kunit.py parse wrote no JSON ({e})")
    failed = any(s not in ("PASS", "SKIP", "SKIPPED") for _, s in cases)
    if p.returncode not in (0, 1) or (p.returncode == 1 and not failed):
        problems.append(f"{name}: kunit.py parse exited {p.returncode}: "
                        f"{' '.join(p.stderr.split())[-300:]}")
    if not cases:
        problems.append(f"{name}: kunit.py found no test case")
    return cases


# A top-level KTAP version line, after the console's timestamp if any.
KTAP_TOP = re.compile(r"^(?:\[[^\]]*\] )?K?TAP version \d+\s*$", re.M)
# An empty document: a plan of 1..0 and no result line (other kernel
# messages may come between its lines).
EMPTY_PLAN = re.compile(r"^(?:\[[^\]]*\] )?1\.\.0\s*$", re.M)
RESULT = re.compile(r"^(?:\[[^\]]*\] )?\s*(?:not )?ok \d", re.M)


def ktap_documents(text):
    """Split a console part into its top-level KTAP documents.

    Built-in suites print one document at boot; a module's suites print one
    more each time a module is loaded (``guest/init`` loads the suites as
    modules).  kunit.py parses one document: each is handed to it alone.
    An empty document (``1..0``: no built-in suite) is dropped; with no
    other document the whole text is returned, so that "no KTAP" stays a
    failure.
    """
    starts = [m.start() for m in KTAP_TOP.finditer(text)]
    if len(starts) <= 1:
        return [text]
    bounds = [0] + starts[1:] + [len(text)]
    docs = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    kept = [d for d in docs if not (EMPTY_PLAN.search(d) and not RESULT.search(d))]
    return kept or [text]


def kunit_parse_all(text, workdir, name, problems):
    """:func:`kunit_parse` of every KTAP document in ``text``, cases joined."""
    docs = ktap_documents(text)
    if len(docs) == 1:
        return kunit_parse(docs[0], workdir, name, problems)
    cases = []
    for i, doc in enumerate(docs, 1):
        cases += kunit_parse(doc, workdir, f"{name}-{i}", problems)
    return cases


def _cases(group, prefix=""):
    for case in group.get("test_cases", []):
        yield prefix + case["name"], case["status"]
    for sub in group.get("sub_groups", []):
        yield from _cases(sub, prefix + sub["name"] + ".")


def split_console(text, scenario):
    """Return (KUnit part, the part /init printed) of the console log."""
    m = re.search(rf"^@@INIT scenario={scenario}$", text, re.M)
    if not m:
        raise RuntimeError("the guest never reached /init")
    end = re.search(r"^@@INIT done$", text, re.M)
    if not end:
        raise RuntimeError(f"the guest's {scenario} scenario did not finish")
    return text[:m.start()], text[m.end():end.start()]
