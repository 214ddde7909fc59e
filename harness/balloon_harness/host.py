"""Host facts: QEMU's memory (RSS, hugetlb), the host's 2 MiB huge pages, TCP ports."""

import os
import socket

from .errors import VMError


def free_tcp_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status_kib(pid, field):
    """A ``kB`` field of /proc/PID/status."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    raise VMError(f"no {field} for QEMU: has it exited?")


def qemu_rss_kib(pid):
    """QEMU's resident set size (``VmRSS``) in KiB."""
    return _status_kib(pid, "VmRSS")


def qemu_hugetlb_kib(pid):
    """Hugetlb memory mapped by QEMU (``HugetlbPages``) in KiB."""
    return _status_kib(pid, "HugetlbPages")


# ---- host huge pages -----------------------------------------------------

HUGEPAGE_MIB = 2
HUGEPAGES_2M = "/sys/kernel/mm/hugepages/hugepages-2048kB"
NR_HUGEPAGES = HUGEPAGES_2M + "/nr_hugepages"
COMPACT_MEMORY = "/proc/sys/vm/compact_memory"
# Never grow the pool so far that the host keeps less than this available.
HOST_SPARE_MIB = 2048


def host_hugepages_free():
    """The host's free 2 MiB huge pages.

    This is ``HugePages_Free`` of /proc/meminfo when 2 MiB is the default
    huge page size; it is read from sysfs, which is right whatever the
    default.  Pages a mapping has reserved but not faulted in count as free.
    """
    try:
        return int(_read(HUGEPAGES_2M + "/free_hugepages"))
    except FileNotFoundError:
        return 0


def _meminfo_kib(field):
    """A field of the host's /proc/meminfo (kB, or a count for HugePages_*)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class HostHugePages:
    """Make sure the host has ``count`` free 2 MiB huge pages; give them back after.

    :meth:`reserve` grows the pool (``nr_hugepages`` of the 2 MiB size) by
    what is missing, compacting host memory once if the kernel could not
    find enough contiguous memory, and checks ``HugePages_Free``.  It
    returns None on success, or the reason it could not (for a TAP SKIP)
    after undoing its change.  :meth:`release` takes back exactly the
    pages it added, so the pool ends as it was even if someone else
    changed it meanwhile; call it after QEMU has exited.
    """

    def __init__(self, count):
        self.count = count
        self.added = 0

    def reserve(self):
        if not os.path.exists(NR_HUGEPAGES):
            return f"host kernel has no 2 MiB hugetlb pages ({NR_HUGEPAGES} missing)"
        missing = self.count - host_hugepages_free()
        if missing <= 0:
            return None
        available = _meminfo_kib("MemAvailable") // 1024
        if missing * HUGEPAGE_MIB > available - HOST_SPARE_MIB:
            return (f"{missing * HUGEPAGE_MIB} MiB more of huge pages would leave the host less "
                    f"than {HOST_SPARE_MIB} MiB (MemAvailable {available} MiB)")
        try:
            for attempt in range(2):
                if attempt:
                    _write(COMPACT_MEMORY, "1")
                self._grow(missing - self.added)
                if host_hugepages_free() >= self.count:
                    return None
        except OSError as e:
            self.release()
            return f"cannot grow the host's huge page pool ({NR_HUGEPAGES}: {e})"
        free = host_hugepages_free()
        self.release()
        return (f"host has only {free} free 2 MiB huge pages after asking for {missing} "
                f"more; {self.count} needed ({self.count * HUGEPAGE_MIB} MiB)")

    def _grow(self, pages):
        if pages <= 0:
            return
        before = int(_read(NR_HUGEPAGES))
        _write(NR_HUGEPAGES, str(before + pages))
        self.added += max(0, int(_read(NR_HUGEPAGES)) - before)

    def release(self):
        """Shrink the pool by what :meth:`reserve` added (idempotent)."""
        if self.added:
            now = int(_read(NR_HUGEPAGES))
            _write(NR_HUGEPAGES, str(max(0, now - self.added)))
            self.added = 0


def _read(path):
    with open(path) as f:
        return f.read().strip()


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
