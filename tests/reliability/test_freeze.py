#!/usr/bin/env python3
"""Freeze: the balloon survives suspend to idle with its target honoured.

The guest inflates to FREEZE_TARGET1_MIB, starts a working set, arms the
CMOS RTC alarm (/sys/class/rtc/rtc0/wakealarm) FREEZE_WAKE_S seconds
ahead and writes ``freeze`` to /sys/power/state; if the alarm has not
woken it FREEZE_WAKE_S + 20 s later, a line on the agent's serial port
(ttyS1, enabled as a wakeup source) does.  While it sleeps, the
host changes the target to FREEZE_TARGET2_MIB (a config change during
freeze).  After the RTC wakes it: the console shows the s2idle entry and
exit, the balloon reaches the new target exactly, the counters agree
with query-balloon, the working set has 0 bad pages, and the console has
no kernel report.

SKIP when the guest kernel cannot suspend to idle (no "freeze" in
/sys/power/state, no RTC alarm).  A failed write of ``freeze`` (what a
driver whose freeze callback fails produces) is a failure.
"""

import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
import rlib  # noqa: E402  (tests/reliability/rlib.py)
from balloon_harness import balloon, scenario  # noqa: E402
from balloon_harness.errors import VMError  # noqa: E402
from balloon_harness.scenario import MiB, check  # noqa: E402

GUEST_MIB = scenario.env_int("FREEZE_GUEST_MIB", 768)
TARGET1_MIB = scenario.env_int("FREEZE_TARGET1_MIB", 512)
TARGET2_MIB = scenario.env_int("FREEZE_TARGET2_MIB", 384)
WAKE_S = scenario.env_int("FREEZE_WAKE_S", 10)
RTC = "/sys/class/rtc/rtc0"
TTY_WAKEUP = "/sys/class/tty/ttyS1/power/wakeup"


# The cases, in the order they run (registered: the plan is their number).
INFLATE = f"inflate to {TARGET1_MIB} MiB before the freeze"
FREEZE_AND_RESUME = ("echo freeze > /sys/power/state exits 0; the console shows the s2idle "
                     "entry and exit")
TARGET_REACHED = (f"resumed: the target set during the freeze ({TARGET2_MIB} MiB) is "
                  "reached exactly; counters consistent")
WORKSET_INTACT = "working set across the freeze: 0 bad pages"
CONSOLE_CLEAN = "console: no BUG/WARNING/KASAN/lockdep/hung task report"
CASES = [INFLATE, FREEZE_AND_RESUME, TARGET_REACHED, WORKSET_INTACT, CONSOLE_CLEAN]
TIMEOUT = 420


def main(tap):
    # Without the HPET the CMOS RTC raises its own interrupt, which the
    # RTC driver arms as a wakeup interrupt; the HPET's RTC emulation
    # does not wake s2idle.
    with rlib.VM(mem_mib=GUEST_MIB, name="freeze", free_page_reporting=True,
                 append="hpet=disable no_console_suspend") as vm:
        rc, states = vm.sh("cat /sys/power/state")
        if rc or "freeze" not in states.split():
            tap.skip_rest(f"guest cannot suspend to idle (/sys/power/state: {states!r})")
            return
        if vm.sh(f"[ -e {RTC}/wakealarm ]")[0]:
            tap.skip_rest(f"no RTC wake alarm in the guest ({RTC}/wakealarm)")
            return

        with tap.case(INFLATE):
            check.assertEqual(vm.resize(TARGET1_MIB * MiB, timeout=120), TARGET1_MIB * MiB)
        balloon.workset_start(vm, 64)

        result = {}
        woken_by = "RTC"

        def freeze():
            result["sh"] = vm.sh(f"echo enabled > {TTY_WAKEUP}; echo 0 > {RTC}/wakealarm; "
                                 f"echo +{WAKE_S} > {RTC}/wakealarm; "
                                 "echo freeze > /sys/power/state", timeout=WAKE_S + 120)

        thread = threading.Thread(target=freeze)
        thread.start()
        try:
            vm.wait_console(r"PM: suspend entry \(s2idle\)", timeout=60)
            entered = True
        except VMError:
            entered = False
        if entered:
            vm.set_target(TARGET2_MIB * MiB)
            # If the RTC alarm did not wake the guest, a byte on the agent's
            # serial line (a wakeup source; the agent skips empty lines) does.
            thread.join(WAKE_S + 20)
            if thread.is_alive():
                woken_by = "serial"
                vm.agent.send_raw("")
        thread.join()
        rc, out = result.get("sh", (None, "no answer"))
        resumed = "PM: suspend exit" in vm.console_text()
        tap.diag(f"freeze: rc {rc} {out!r}; entered {entered}, resumed {resumed} "
                 f"(woken by {woken_by})")
        # A driver whose freeze fails makes the write fail: that is a
        # failure of the driver, not a missing feature of the host.
        with tap.case(FREEZE_AND_RESUME):
            check.assertEqual((rc, entered, resumed), (0, True, True),
                              f"echo freeze: rc {rc} {out!r}, entry seen {entered}, "
                              f"exit seen {resumed}")

        with tap.case(TARGET_REACHED):
            actual = vm.wait_actual(TARGET2_MIB * MiB, timeout=120)
            check.assertEqual(actual, TARGET2_MIB * MiB)
            rlib.check_counters(tap, vm)

        with tap.case(WORKSET_INTACT):
            balloon.assert_workset_intact(tap, vm)

        with tap.case(CONSOLE_CLEAN):
            rlib.assert_clean_console(tap, vm)


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
