#!/usr/bin/env python3
"""Feature negotiation: what the guest says it negotiated is what QEMU got.

For the default device and for free-page-reporting + deflate-on-oom, the
guest's /sys/bus/virtio/devices/virtioN/features (N: the device whose
``device`` is 0x0005) must equal the guest features QEMU reports in
``x-query-virtio-status``, bit for bit, and the balloon bits must be the
ones a stock 6.12 driver takes from what the device offers.
"""

import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import scenario  # noqa: E402
from balloon_harness.scenario import check  # noqa: E402
from balloon_harness.vm import VM  # noqa: E402

# Bit numbers of the names x-query-virtio-status prints (virtio spec).
FEATURE_BITS = {
    "VIRTIO_BALLOON_F_MUST_TELL_HOST": 0,
    "VIRTIO_BALLOON_F_STATS_VQ": 1,
    "VIRTIO_BALLOON_F_DEFLATE_ON_OOM": 2,
    "VIRTIO_BALLOON_F_FREE_PAGE_HINT": 3,
    "VIRTIO_BALLOON_F_PAGE_POISON": 4,
    "VIRTIO_BALLOON_F_REPORTING": 5,
    "VIRTIO_F_NOTIFY_ON_EMPTY": 24,
    "VIRTIO_F_ANY_LAYOUT": 27,
    "VIRTIO_RING_F_INDIRECT_DESC": 28,
    "VIRTIO_RING_F_EVENT_IDX": 29,
    "VIRTIO_F_VERSION_1": 32,
    "VIRTIO_F_IOMMU_PLATFORM": 33,
    "VIRTIO_F_RING_PACKED": 34,
    "VIRTIO_F_IN_ORDER": 35,
    "VIRTIO_F_ORDER_PLATFORM": 36,
    "VIRTIO_F_SR_IOV": 37,
}
DEVICE_BITS = range(24)
DRIVER_OK = "VIRTIO_CONFIG_S_DRIVER_OK"
CONFIGS = [
    # (description, VM options, balloon bits offered, balloon bits negotiated)
    ("default device", {}, {1, 4}, {1}),
    ("free-page-reporting + deflate-on-oom",
     {"free_page_reporting": True, "deflate_on_oom": True}, {1, 2, 4, 5}, {1, 2, 5}),
]
SYSFS_FEATURES = ("for d in /sys/bus/virtio/devices/*; do "
                  "[ \"$(cat $d/device)\" = 0x0005 ] && cat $d/features; done")


def case_names(desc, offered, negotiated):
    """The cases of configuration ``desc``, in the order they run."""
    return [f"{desc}: guest sysfs features == QEMU guest-features, driver OK",
            f"{desc}: device offers balloon bits {sorted(offered)}, "
            f"driver takes {sorted(negotiated)}"]


# The cases, in the order they run (registered: the plan is their number).
CASES = [name for config in CONFIGS for name in case_names(config[0], *config[2:])]
TIMEOUT = 600


def qemu_bits(features):
    """Bit numbers of one decoded feature set from x-query-virtio-status."""
    bits = set()
    for text in features.get("dev-features", []) + features.get("transports", []):
        name = text.split(":", 1)[0]
        if name not in FEATURE_BITS:
            raise KeyError(f"feature name {name!r} not in the table of this test")
        bits.add(FEATURE_BITS[name])
    unknown = features.get("unknown-dev-features", 0)
    bits.update(b for b in range(64) if unknown >> b & 1)
    return bits


def guest_bits(vm):
    """Bit numbers set in the balloon's sysfs ``features`` string (bit 0 first)."""
    strings = vm.sh_ok(SYSFS_FEATURES).split()
    check.assertEqual(len(strings), 1, f"balloon devices in sysfs: {strings}")
    return {i for i, c in enumerate(strings[0]) if c == "1"}


def main(tap):
    for desc, options, offered, negotiated in CONFIGS:
        with VM(name="features", **options) as vm:
            guest = guest_bits(vm)
            status = vm.virtio_status()
            host = qemu_bits(status["guest-features"])
            tap.diag(f"{desc}: guest sysfs bits {sorted(guest)}, QEMU guest-features {sorted(host)}")
            same, offers = case_names(desc, offered, negotiated)

            with tap.case(same):
                check.assertEqual(guest, host)
                check.assertIn(DRIVER_OK, str(status["status"]))

            with tap.case(offers):
                check.assertEqual(qemu_bits(status["host-features"]) & set(DEVICE_BITS), offered)
                check.assertEqual(guest & set(DEVICE_BITS), negotiated)


if __name__ == "__main__":
    scenario.run(main, CASES, timeout=TIMEOUT)
