#!/usr/bin/env python3
"""Free page hinting with page poisoning or init_on_free sends no more than no hinting.

With ``page_poison=1`` or ``init_on_free=1`` free pages have a content
the allocator relies on, so a hinted block is re-initialised when it goes
back to the allocator, which dirties it again in the middle of the
migration.  Hinting then saves little or nothing (with poisoning every
hinted page is sent later after all), but it must never cost more bytes
than a migration without hinting.  For each mode the guest dirties and
frees POISON_FILL_MIB MiB and migrates to ``exec:cat > /dev/null`` with
hinting on and off; ``ram.transferred`` of the hinted run may exceed the
other by at most POISON_SLACK_MIB (both runs also send what the guest
touches while they run).

Environment (defaults): POISON_GUEST_MIB (1024), POISON_FILL_MIB (512),
POISON_SLACK_MIB (16).
"""

import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import scenario  # noqa: E402
from balloon_harness.scenario import MiB, check  # noqa: E402
from balloon_harness.migration import migrate_to_null  # noqa: E402
from balloon_harness.vm import VM  # noqa: E402

GUEST_MIB = scenario.env_int("POISON_GUEST_MIB", 1024)
FILL_MIB = scenario.env_int("POISON_FILL_MIB", 512)
SLACK_MIB = scenario.env_int("POISON_SLACK_MIB", 16)
MODES = ["page_poison=1", "init_on_free=1"]


# The cases, in the order they run (registered: the plan is their number).
CASES = {mode: f"{mode}: hint on sends at most {SLACK_MIB} MiB more than hint off"
         for mode in MODES}
TIMEOUT = 600


def transferred(tap, mode, hint):
    """Boot with ``mode``, fill and free, migrate to nowhere: bytes sent."""
    name = mode.split("=")[0].replace("_", "-") + ("-hint" if hint else "-plain")
    with VM(mem_mib=GUEST_MIB, name=name, append=mode, free_page_hint=hint) as vm:
        vm.sh_ok(f"balloon-mem fill {FILL_MIB}", timeout=300)
        info = migrate_to_null(vm)
        vm.qmp.execute("cont")
        ram = info.get("ram", {})
        hinted = (vm.balloon_counters() or {}).get("hinted_pages", 0)
        tap.diag(f"{mode}, hint {'on' if hint else 'off'}: migration {info['status']}, "
                 f"{ram.get('transferred', 0) / MiB:.1f} MiB sent, {ram.get('normal')} "
                 f"normal and {ram.get('duplicate')} zero pages, {hinted} pages hinted")
        check.assertEqual(info["status"], "completed")
        return ram["transferred"]


def main(tap):
    for mode in MODES:
        with tap.case(CASES[mode]):
            on = transferred(tap, mode, True)
            off = transferred(tap, mode, False)
            tap.diag(f"{mode}: hint on {on / MiB:.1f} MiB, off {off / MiB:.1f} MiB")
            check.assertLessEqual(on, off + SLACK_MIB * MiB)


if __name__ == "__main__":
    scenario.run(main, CASES.values(), timeout=TIMEOUT)
