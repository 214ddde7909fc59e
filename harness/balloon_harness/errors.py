"""The exception every guest, agent or QEMU failure raises."""


class VMError(Exception):
    """The VM failed to boot, died, or did not answer in time."""
