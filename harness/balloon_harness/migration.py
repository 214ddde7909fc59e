"""Live migration: to a null sink (``exec:cat > /dev/null``) or to a second QEMU.

A guest created with ``VM(migratable=True)`` gets a few KiB less RAM
under TCG (vm.py, ``TCG_MIGRATION_SHORT_KIB``) so that QEMU 7.2 does not
lose its writes in the migration.
"""

import time

from . import host
from .errors import VMError
from .qmp import QMPError
from .vm import VM


def migrate_to_null(vm, max_bandwidth=None, timeout=300.0):
    """Migrate to ``exec:cat > /dev/null``; return the final ``query-migrate``.

    ``max_bandwidth`` is in bytes per second (QEMU 7.2's default is
    128 MiB/s).  The VM is left in ``postmigrate`` (paused) on success;
    ``vm.qmp.execute("cont")`` resumes it.  Raises :class:`VMError` if the
    migration neither completes nor fails within ``timeout`` s.
    """
    return migrate(vm, "exec:cat > /dev/null", max_bandwidth=max_bandwidth, timeout=timeout)


def migrate(vm, uri, max_bandwidth=None, downtime_limit=None, timeout=300.0):
    """Migrate to ``uri`` (``tcp:HOST:PORT``, ``exec:...``); return the final ``query-migrate``.

    ``max_bandwidth`` is in bytes per second, ``downtime_limit`` in ms
    (QEMU 7.2: 128 MiB/s and 300 ms).  Like :func:`migrate_to_null`,
    the VM is left in ``postmigrate`` on success; after a migration to
    a real destination, ``vm.quit()`` ends it.
    """
    args = {}
    if max_bandwidth is not None:
        args["max-bandwidth"] = max_bandwidth
    if downtime_limit is not None:
        args["downtime-limit"] = downtime_limit
    if args:
        vm.qmp.execute("migrate-set-parameters", **args)
    vm.qmp.execute("migrate", uri=uri)
    deadline = time.monotonic() + timeout
    while True:
        info = vm.qmp.execute("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            return info
        if time.monotonic() > deadline:
            vm.qmp.execute("migrate_cancel")
            raise VMError(f"migration still {info.get('status')} after {timeout} s")
        time.sleep(0.1)


class IncomingVM(VM):
    """The destination of a live migration of ``source`` (a started :class:`VM`).

    Same guest and devices (memory, CPUs, balloon properties, kernel,
    initramfs, accelerator, command line) plus ``-incoming
    tcp:127.0.0.1:PORT`` on a free port; its own run directory, QMP and
    agent socket.  :meth:`start` (the context manager) connects QMP and
    the agent and leaves QEMU waiting for the stream;
    ``migrate(source, dest.uri)`` sends it, then :meth:`resume` runs the
    guest here and makes the agent usable.  The guest's agent, already
    running on the source, goes on reading ttyS1, now this QEMU's socket.
    """

    def __init__(self, source, name="dest", port=None):
        super().__init__(mem_mib=source.mem_mib, smp=source.smp, name=name,
                         scenario=source.scenario, append=source.append,
                         boot_timeout=source.boot_timeout, hugetlb=source.hugetlb,
                         kernel=source.kernel,
                         hugetlb_prealloc=source.hugetlb_prealloc,
                         migratable=source.migratable, kunit=source.kunit)
        self.balloon = dict(source.balloon)
        self.initrd, self.accel = source.initrd, source.accel
        self.port = port or host.free_tcp_port()
        self.uri = f"tcp:127.0.0.1:{self.port}"

    def command(self):
        return super().command() + ["-incoming", self.uri]

    def start(self):
        """Start QEMU listening for the migration; connect QMP and the agent socket."""
        self._launch()
        try:
            self._connect()
        except (OSError, QMPError, VMError) as e:
            raise VMError(f"incoming QEMU failed to start ({e}); qemu.log:\n"
                          f"{self._tail('qemu.log')}") from e

    def resume(self, timeout=60.0):
        """Wait until the incoming migration has completed, then run the guest here.

        Returns this side's ``query-migrate``.  Raises :class:`VMError` if
        it failed or QEMU exited (a stream it could not load).
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise VMError(f"incoming QEMU exited with status {self.proc.returncode}; "
                              f"qemu.log:\n{self._tail('qemu.log')}")
            info = self.qmp.execute("query-migrate")
            status = info.get("status")
            # QEMU may drop the incoming state once loaded; the run state
            # (inmigrate until then, paused after, since -S) tells as well.
            if status == "completed" or (
                    status is None and self.qmp.execute("query-status")["status"] == "paused"):
                break
            if status in ("failed", "cancelled"):
                raise VMError(f"incoming migration {status}; qemu.log:\n{self._tail('qemu.log')}")
            if time.monotonic() > deadline:
                raise VMError(f"incoming migration still {status} after {timeout} s")
            time.sleep(0.1)
        self.qmp.execute("cont")
        if self.agent is not None:
            self.agent.usable = True
        return info
