#!/usr/bin/env python3
"""The live migration integrity scenario on the debug kernel.

Runs tests/e2e/test_hint_integrity.py unchanged (a busy guest with a
checksummed working set and a churn loop migrated over TCP to a second
QEMU, free page hinting on, everything verified on the destination), but
with the debug kernel, rlib's command line (``DEBUG_APPEND``) and its
boot timeout.  Its last case, no kernel report on either console, then
also covers KASAN, lockdep and DEBUG_VM.
"""

import os
import runpy

import rlib

os.environ["VM_APPEND"] = " ".join(filter(None, [os.environ.get("VM_APPEND", ""),
                                                 rlib.DEBUG_APPEND]))
os.environ.setdefault("INTEGRITY_BOOT_TIMEOUT", str(int(rlib.BOOT_TIMEOUT)))
runpy.run_path(os.path.join(rlib.TOP, "tests/e2e/test_hint_integrity.py"), run_name="__main__")
