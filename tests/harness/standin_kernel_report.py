#!/usr/bin/env python3
"""Stand-in for the harness self-test: a VM's console had a kernel report.

No QEMU runs: the verdict a VM records at teardown is recorded directly.
"""
import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import console, scenario  # noqa: E402

CASES = ["passes"]
CONSOLE = """[    1.0] virtio_balloon virtio0: ready
[    2.0] WARNING: CPU: 1 PID: 42 at drivers/virtio/balloon/core.c:100 stand_in+0x1/0x2
[    2.1] Modules linked in:
"""


def main(tap):
    with tap.case(CASES[0]):
        pass
    console.record("stand-in", "no run directory", console.kernel_reports(CONSOLE))


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=30)
