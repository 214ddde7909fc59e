"""Run a stage's steps, each in its own process with its own timeout, as KTAP.

Three kinds of step:

- :func:`scenario`: a script that registers its cases (scenario.py).  Its
  ``--list`` gives the cases and the timeout before it runs; every
  registered case it did not report is failed ("not run"), or skipped
  when it exited 4.  A script without ``--list`` (one written against
  its own TAP code; it calls no ``scenario.run``) is run as a command
  with ``FOREIGN_TIMEOUT``, and says so in a diagnostic line.
- :func:`command`: a program that prints TAP or KTAP with a plan of its
  own (check-patches.sh, the guest tests).  Points its plan promised but
  it never printed are failed; so is a non-zero exit with no failed point.
- :func:`exit_status`: a program that prints no TAP; one point, passed if
  it exits 0 (building the debug kernel, the quick benchmark run).

A step that outlives its timeout gets SIGTERM (a scenario then fails its
current case and shuts its VMs down), and SIGKILL ``GRACE_S`` later.
Whatever a step prints that is not a result becomes a diagnostic line.
"""

import os
import signal
import subprocess
import sys
import threading
import time

from . import ktap, paths

GRACE_S = 20
FOREIGN_TIMEOUT = 900
PYTHON = sys.executable or "python3"


class Step:
    def __init__(self, name, argv, timeout, kind, cases=None, env=None, problem=None,
                 note=None):
        self.note = note
        self.name = name
        self.argv = argv
        self.timeout = timeout
        self.kind = kind
        self.cases = cases
        self.env = env or {}
        self.problem = problem


def scenario(path=None, env=None, name=None, argv=None):
    """The scenario script ``path`` (or ``argv``), its cases and timeout from ``--list``."""
    argv = argv or [PYTHON, path]
    name = name or os.path.splitext(os.path.basename(path))[0]
    merged = _environ(env)
    if path and not _registers(path):
        return Step(name, argv, FOREIGN_TIMEOUT, "command", env=env,
                    note="registers no cases (not a balloon_harness scenario): "
                         "counted by its own plan")
    try:
        out = subprocess.run(argv + ["--list"], capture_output=True, text=True, timeout=60,
                             env=merged, stdin=subprocess.DEVNULL, cwd=paths.TOP)
        lines = out.stdout.splitlines()
        if out.returncode != 0 or not lines or not lines[0].startswith("timeout "):
            raise ValueError(f"--list exited {out.returncode}: {out.stderr.strip()[-2000:]}")
        return Step(name, argv, int(lines[0].split()[1]), "scenario", lines[1:], env)
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        return Step(name, argv, 0, "scenario", [], env, problem=f"cannot list its cases: {e}")


def _registers(path):
    """Whether script ``path`` is a balloon_harness scenario (only those get ``--list``:
    another script would run its whole test)."""
    try:
        with open(path, errors="replace") as f:
            return "scenario.run(" in f.read()
    except OSError:
        return True  # let --list report it


def command(name, argv, timeout, env=None):
    return Step(name, argv, timeout, "command", env=env)


def exit_status(name, argv, timeout, env=None):
    return Step(name, argv, timeout, "exit_status", env=env)


def run(stage_name, steps):
    """Run ``steps`` in order; the stage as a :class:`ktap.Block`."""
    blocks = []
    for step in steps:
        start = time.monotonic()
        _progress(f"{stage_name}: {step.name} (timeout {step.timeout} s)")
        block = run_step(step)
        _progress(f"{stage_name}: {step.name}: {block.status}, "
                  f"{time.monotonic() - start:.0f} s")
        blocks.append(block)
    return ktap.subtest(stage_name, blocks)


def run_step(step):
    """Run one step; its :class:`ktap.Block` (a subtest, or one point)."""
    if step.problem:
        return ktap.subtest(step.name, ktap.diag(step.problem) + [
            ktap.Result(c, "fail") for c in step.cases or ["the scenario loads"]])
    lines, rc, how = _execute(step)
    entries = []
    results = []
    plan = None
    for line in lines:
        r = ktap.parse_result(line)
        if r is not None:
            results.append(r)
            entries.append(r)
        elif ktap.PLAN.match(line):
            plan = plan or int(ktap.PLAN.match(line).group(1))
        elif ktap.VERSION_LINE.match(line):
            pass
        elif line.strip():
            entries.append(line if line.startswith("#") else "# " + line)
    entries += ktap.diag(f"{step.name}: {how}")
    if step.note:
        entries += ktap.diag(f"{step.name}: {step.note}")
    if step.kind == "scenario":
        entries = _registered(step, entries, rc, how)
    elif step.kind == "command":
        entries = _planned(step, entries, results, plan, rc, how)
    else:
        # One point; its diagnostics (the output's tail) go before its result line.
        tail = [e for e in entries if isinstance(e, str)][-40:]
        return ktap.Block(step.name, tail, "ok" if rc == 0 else "fail")
    return ktap.subtest(step.name, entries)


def _registered(step, entries, rc, how):
    """Keep the registered cases' results; count the ones not reported."""
    seen = set()
    out = []
    for e in entries:
        if isinstance(e, ktap.Result):
            if e.name not in step.cases or e.name in seen:
                out += ktap.diag(f"not a registered case, or reported twice: {e.name}")
                e = ktap.Result(e.name, "fail")
            seen.add(e.name)
        out.append(e)
    for name in step.cases:
        if name in seen:
            continue
        if rc == ktap.SKIP_EXIT:
            out.append(ktap.Result(name, "skip", "the scenario exited 4 (skip)"))
        else:
            out += ktap.diag(f"not run: {how}")
            out.append(ktap.Result(name, "fail"))
    if rc not in (0, ktap.SKIP_EXIT) and not any(
            isinstance(e, ktap.Result) and e.status == "fail" for e in out):
        out.append(ktap.Result(f"{step.name} exits cleanly ({how})", "fail"))
    return out


def _planned(step, entries, results, plan, rc, how):
    """Fail the points a command's plan promised and it never printed."""
    out = list(entries)
    for i in range(len(results), plan or 0):
        out.append(ktap.Result(f"point {i + 1} of {plan}: not run ({how})", "fail"))
    if not results and not plan:
        status = "skip" if rc == ktap.SKIP_EXIT else "fail"
        out.append(ktap.Result(f"{step.name} prints its results", status, how))
    elif rc not in (0, ktap.SKIP_EXIT) and not any(
            isinstance(e, ktap.Result) and e.status == "fail" for e in out):
        out.append(ktap.Result(f"{step.name} exits cleanly ({how})", "fail"))
    return out


def _execute(step):
    """Run the step; ``(output lines, exit status, how it ended)``."""
    proc = subprocess.Popen(step.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=_environ(step.env), cwd=paths.TOP,
                            start_new_session=True, text=True, errors="replace")
    lines = []
    echo = os.environ.get("VERBOSE") == "1" or sys.stderr.isatty()

    def read():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if echo:
                sys.stderr.write("  | " + line)
                sys.stderr.flush()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    start = time.monotonic()
    killed = None
    try:
        proc.wait(step.timeout)
    except BaseException as e:
        if not isinstance(e, subprocess.TimeoutExpired):
            # Interrupted (Ctrl-C reaches only us: the step has its own
            # session): take the step and its VMs down with us.
            _signal_group(proc, signal.SIGTERM)
            raise
        killed = "SIGTERM"
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(GRACE_S)
        except subprocess.TimeoutExpired:
            killed = "SIGKILL"
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    reader.join(10)
    took = time.monotonic() - start
    rc = proc.returncode
    if killed:
        how = f"killed ({killed}) after its timeout of {step.timeout} s"
        rc = rc if rc not in (0, ktap.SKIP_EXIT) else 1
    elif rc < 0:
        how = f"died of signal {-rc} after {took:.0f} s"
    else:
        how = f"exit status {rc} after {took:.0f} s"
    return lines, rc, how


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _environ(extra):
    env = dict(os.environ)
    env.update(extra or {})
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    harness = os.path.join(paths.TOP, "harness")
    env["PYTHONPATH"] = harness + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _progress(text):
    print(f"# ==== {text}", file=sys.stderr, flush=True)
