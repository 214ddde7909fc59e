"""The guest agent: a remote shell on the guest's ttyS1 (hvc0 on arm64; guest/agent).

The agent prints ``@@AGENT-READY`` once, then for each command line it
receives, the command's output and ``@@AGENT-END <status>``.  A timeout
or a closed socket makes it unusable: the guest may still be running the
command, so later output would be misread.  On top of the shell, the
guest facts scenarios ask for: /proc/meminfo, /proc/vmstat, the guest's
page size, the balloon's virtio device and the project driver's debugfs
counters.
"""

import re
import time

from .errors import VMError
from .lines import LineSocket

AGENT_END = re.compile(r"@@AGENT-END (-?\d+)$")
BALLOON_DEBUGFS = "/sys/kernel/debug/virtio_balloon"


class Agent:
    """The agent behind UNIX socket ``path``.

    ``context()`` returns text that explains a failure (QEMU's status,
    the console's tail); it is added to every :class:`VMError`.
    """

    def __init__(self, path, timeout, context):
        self._sock = LineSocket(path, timeout=timeout)
        self._context = context
        self.usable = False
        self._balloon_device = None
        self._page_kib = None

    def wait_ready(self, deadline):
        """Wait for ``@@AGENT-READY``; the agent is usable after it."""
        self._line(deadline, "@@AGENT-READY", expect="@@AGENT-READY")
        self.usable = True

    def exit_vm(self, deadline):
        """Ask the guest to end (it reboots; QEMU exits with -no-reboot)."""
        if not self.usable:
            raise VMError("agent not usable")
        self._sock.send_line("exit-vm")
        self._line(deadline, "exit-vm", expect="@@AGENT-END 0")

    def close(self):
        self.usable = False
        self._sock.close()

    def send_raw(self, text):
        """Send a line the agent does not run (an empty line wakes a frozen guest)."""
        self._sock.send_line(text)

    def _line(self, deadline, what, expect=None):
        """Read one line; with ``expect``, skip lines until that one."""
        while True:
            try:
                line = self._sock.read_line(deadline, what)
            except OSError as e:  # TimeoutError, ConnectionError
                self.usable = False
                raise VMError(f"agent: {e} ({self._context()})") from e
            if expect is None or line == expect:
                return line

    def sh(self, cmd, timeout=60.0):
        """Run one shell command line in the guest; return ``(rc, output)``.

        ``output`` is stdout and stderr together, without a trailing newline.
        Raises :class:`VMError` if the agent does not answer in ``timeout`` s.
        """
        if "\n" in cmd:
            raise ValueError("agent commands are single lines")
        if not self.usable:
            raise VMError(f"agent not usable (never ready, or an earlier command failed); "
                          f"cannot run {cmd!r}")
        try:
            self._sock.send_line(cmd)
        except OSError as e:
            self.usable = False
            raise VMError(f"agent: cannot send {cmd!r}: {e}") from e
        deadline = time.monotonic() + timeout
        out = []
        while True:
            line = self._line(deadline, f"the end of {cmd!r}")
            m = AGENT_END.search(line)
            if m:
                if m.start():
                    out.append(line[:m.start()])
                return int(m.group(1)), "\n".join(out)
            out.append(line)

    def sh_ok(self, cmd, timeout=60.0):
        """Like :meth:`sh` but return only the output; raise on non-zero status."""
        rc, out = self.sh(cmd, timeout)
        if rc != 0:
            raise VMError(f"guest command {cmd!r} exited {rc}: {out}")
        return out

    # ---- guest facts ----------------------------------------------------

    def meminfo(self):
        """The guest's /proc/meminfo as ``{name: kB}``."""
        return {k: int(v.split()[0]) for k, v in _pairs(self.sh_ok("cat /proc/meminfo"), ":")}

    def wait_memfree(self, at_least_kb, timeout=20.0):
        """Poll the guest's MemFree until it reaches ``at_least_kb``.

        Returns the last value seen (kB), below ``at_least_kb`` only after
        ``timeout`` s; the caller asserts on it.
        """
        deadline = time.monotonic() + timeout
        while True:
            free = self.meminfo()["MemFree"]
            if free >= at_least_kb or time.monotonic() > deadline:
                return free
            time.sleep(0.5)

    def vmstat(self):
        """The guest's /proc/vmstat as ``{name: int}``."""
        return {k: int(v) for k, v in _pairs(self.sh_ok("cat /proc/vmstat"), " ")}

    def page_kib(self):
        """The guest's page size in KiB (4; 64 on an arm64 kernel with 64 KiB pages).

        Counters kept in pages (/proc/vmstat, /proc/zoneinfo, the driver's
        debugfs) are converted with it.  Read from the kernel's page size
        of a mapping of the shell (/proc/self/smaps).
        """
        if self._page_kib is None:
            out = self.sh_ok("awk '/^KernelPageSize:/ { print $2; exit }' /proc/self/smaps")
            self._page_kib = int(out.strip())
        return self._page_kib

    def balloon_device(self):
        """The balloon's virtio device in the guest (``virtioN``: device id 5)."""
        if self._balloon_device is None:
            names = self.sh_ok("for d in /sys/bus/virtio/devices/*; do "
                               "[ \"$(cat $d/device)\" = 0x0005 ] && echo ${d##*/}; done; true")
            if len(names.split()) != 1:
                raise VMError(f"expected one virtio balloon device in the guest, found {names!r}")
            self._balloon_device = names.strip()
        return self._balloon_device

    def balloon_counters(self):
        """The project driver's debugfs counters as ``{name: int}``.

        Reads /sys/kernel/debug/virtio_balloon/virtioN/counters ("name
        value" lines); returns None when the file does not exist (a driver
        without counters, such as upstream's, or an unbound device).
        """
        path = f"{BALLOON_DEBUGFS}/{self.balloon_device()}/counters"
        rc, out = self.sh(f"cat {path}")
        if rc != 0:
            return None
        return {k: int(v, 0) for k, v in _pairs(out, " ")}


def _pairs(text, sep):
    """Split each non-empty line of ``text`` at the first ``sep``."""
    for line in text.splitlines():
        if sep in line:
            key, value = line.split(sep, 1)
            yield key.strip(), value.strip()
