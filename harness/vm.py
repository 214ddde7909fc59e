"""Boot a test guest under QEMU with a virtio-balloon and drive it.

``VM`` starts ``qemu-system-x86_64`` with the project kernel and initramfs,
a ``virtio-balloon-pci`` device (``id=balloon0``), QMP on a UNIX socket and
the guest agent (``scenario=agent``) on ttyS1.  The console (ttyS0) goes to
a file.  Each VM gets its own directory under ``build/run/``; it is removed
after a clean run and kept (and named on stderr) when anything failed,
when ``keep`` was set (see ``RUNNING``), or always when ``KEEP_RUN=1``.

Environment: ``KERNEL`` and ``INITRD`` override the default images,
``ACCEL=kvm`` selects KVM instead of TCG (options may follow:
``ACCEL=tcg,thread=single``), ``VM_APPEND`` adds to every guest's kernel
command line (``VM_APPEND=slub_debug=FZ``).

The project kernel's KUnit suites run at boot only in a ``VM(kunit=True)``
(the guest test stage): every other guest boots with ``kunit.enable=0``,
so that it boots as fast as the upstream kernel, which has no suites, and
no fake balloon inflates behind a scenario's or a benchmark's back.

Guest RAM can be backed by the host's 2 MiB hugetlb pages
(``VM(hugetlb=True)``); :class:`HostHugePages` makes sure the host has
enough of them free and gives them back afterwards, and
:func:`host_hugepages_free` reads ``HugePages_Free``.

Every wait has a timeout: a test never hangs on a dead or stuck guest.
"""

import ctypes
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from qmp import QMP, LineSocket, QMPError

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_KERNEL = os.path.join(TOP, "build/kernel/arch/x86/boot/bzImage")
DEFAULT_INITRD = os.path.join(TOP, "build/initramfs.cpio.gz")
RUN_DIR = os.path.join(TOP, "build/run")

BALLOON_PATH = "/machine/peripheral/balloon0"
VIRTIO_PATH = BALLOON_PATH + "/virtio-backend"
BALLOON_DEBUGFS = "/sys/kernel/debug/virtio_balloon"
AGENT_END = re.compile(r"@@AGENT-END (-?\d+)$")
# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107
# VMs between start and cleanup: a test runner that catches a failed check
# sets ``keep`` on them so their run directories survive.
RUNNING = []
# QEMU before 9.0 loses guest writes in a live migration under TCG.  When
# it syncs a RAM block's dirty bitmap a word (64 pages) at a time, it clears
# the bits but leaves the vCPUs' TLB entries for those pages marked dirty,
# so later stores through them are never logged and the destination keeps
# the page as it was sent (QEMU commit 03bfc2188f, "physmem: Fix migration
# dirty bitmap coherency with TCG memory access"; Debian's 7.2.22 does not
# have it).  The word path is taken only for a block whose length is a
# multiple of 64 pages; 8 KiB less RAM (QEMU rounds -m to 8 KiB) puts
# pc.ram on the page-at-a-time path, which resets the TLB entries.
TCG_MIGRATION_SHORT_KIB = 8
# Console lines that are kernel reports.  "BUG:" covers KASAN ("BUG:
# KASAN: ..."), DEBUG_ATOMIC_SLEEP ("BUG: sleeping function called from
# invalid context"), bad page state and page faults; lockdep's reports
# are "WARNING: possible circular locking dependency detected" and the
# like, plus "INFO: ..." lines.
KERNEL_REPORT = re.compile(
    r"BUG:|WARNING:|kernel BUG at|Oops|general protection fault|"
    r"possible circular locking|possible recursive locking|inconsistent lock state|"
    r"suspicious RCU usage|INFO: task .* blocked for more than|"
    r"INFO: rcu_\w+ (self-)?detected stall|soft lockup|"
    r"DEBUG_LOCKS_WARN_ON|list_add corruption|list_del corruption|"
    r"Kernel panic|unreferenced object")


class VMError(Exception):
    """The VM failed to boot, died, or did not answer in time."""


class VM:
    """A running QEMU guest; use it as a context manager.

    ``mem_mib``/``smp`` size the guest.  The balloon options map to the
    device properties of the same name; ``None`` keeps QEMU's default.
    ``free_page_hint=True`` also creates the iothread it needs.
    ``append`` adds kernel command-line arguments; ``kunit=True`` runs
    the kernel's built-in KUnit suites at boot.  ``initial_target_mib``
    sets the balloon target before the guest runs, so the driver inflates
    as soon as it binds.

    ``hugetlb=True`` backs guest RAM with 2 MiB hugetlb pages from the
    host's pool (``memory-backend-memfd,hugetlb=on,hugetlbsize=2M``; see
    :class:`HostHugePages`).  QEMU then frees a host huge page on inflate
    only when all 512 of its 4 KiB pieces arrive in one buffer
    (protocol.md 4.3).  ``hugetlb_prealloc`` (default on with ``hugetlb``)
    has QEMU take every huge page at start, so the pool's free count
    tells exactly how much guest RAM the host backs.

    ``migratable=True`` is for a guest that is live-migrated to a real
    destination (:class:`IncomingVM`): under TCG its RAM is then
    ``TCG_MIGRATION_SHORT_KIB`` short of ``mem_mib``, or QEMU 7.2 loses
    some of its writes in the migration.  ``ram_bytes`` is the size QEMU
    gives the guest, and what ``query-balloon`` reports with the balloon
    empty.
    """

    def __init__(self, mem_mib=512, smp=2, name="vm", scenario="agent", append="",
                 deflate_on_oom=None, free_page_hint=None, free_page_reporting=None,
                 page_poison=None, guest_stats_polling_interval=None,
                 initial_target_mib=None, boot_timeout=60.0, hugetlb=False,
                 hugetlb_prealloc=True, migratable=False, kunit=False):
        self.mem_mib = mem_mib
        self.kunit = kunit
        self.smp = smp
        self.name = name
        self.scenario = scenario
        self.append = append
        self.balloon = {
            "deflate-on-oom": deflate_on_oom,
            "free-page-hint": free_page_hint,
            "free-page-reporting": free_page_reporting,
            "page-poison": page_poison,
            "guest-stats-polling-interval": guest_stats_polling_interval,
        }
        self.initial_target_mib = initial_target_mib
        self.hugetlb = hugetlb
        self.hugetlb_prealloc = hugetlb_prealloc
        self.boot_timeout = boot_timeout
        self.kernel = os.environ.get("KERNEL", DEFAULT_KERNEL)
        self.initrd = os.environ.get("INITRD", DEFAULT_INITRD)
        self.accel = os.environ.get("ACCEL", "tcg")
        self.migratable = migratable
        self.ram_bytes = mem_mib * 1024 * 1024
        if migratable and self.accel.split(",")[0] == "tcg":
            if hugetlb:
                raise VMError("hugetlb: a migratable TCG guest's RAM is not whole huge pages")
            self.ram_bytes -= TCG_MIGRATION_SHORT_KIB * 1024
        self.dir = None
        self.proc = None
        self.qmp = None
        self.agent = None
        self._agent_ok = False
        self._balloon_device = None
        self.keep = os.environ.get("KEEP_RUN") == "1"

    # ---- lifecycle -------------------------------------------------------

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.shutdown(timeout=0)
            self._cleanup(False)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        ok = exc_type is None
        try:
            ok = self.shutdown() == 0 and ok
        finally:
            self._cleanup(ok)

    def start(self):
        """Start QEMU paused, connect QMP and the agent, then run the guest.

        Starting paused (``-S``) guarantees the agent socket is connected
        before the guest writes ``@@AGENT-READY``; QEMU would drop it
        otherwise.  Returns once the agent is ready (agent scenario) or
        the guest is running (any other scenario).
        """
        for path in (self.kernel, self.initrd):
            if not os.path.isfile(path):
                raise VMError(f"{path} does not exist (make kernel / make initramfs)")
        # Options may follow the name: ACCEL=tcg,thread=single.
        if self.accel.split(",")[0] not in ("tcg", "kvm"):
            raise VMError(f"ACCEL={self.accel}: only tcg and kvm are supported")
        self._launch()
        try:
            self._connect()
            if self.initial_target_mib is not None:
                self.set_target(self.initial_target_mib << 20)
            self.qmp.execute("cont")
            if self.agent:
                self._agent_line(time.monotonic() + self.boot_timeout, "@@AGENT-READY",
                                 expect="@@AGENT-READY")
                self._agent_ok = True
        except (OSError, QMPError, VMError) as e:
            if self.proc.poll() is None:
                raise
            raise VMError(f"QEMU exited with status {self.proc.returncode} during boot ({e})\n"
                          f"qemu.log:\n{self._tail('qemu.log')}"
                          f"console:\n{self._tail('console.log')}") from e

    def _launch(self):
        """Make the run directory and start QEMU (paused, or waiting for a stream)."""
        os.makedirs(RUN_DIR, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix=self.name + "-", dir=RUN_DIR)
        RUNNING.append(self)
        if len(self.path("agent.sock")) > MAX_SOCKET_PATH:
            raise VMError(f"run directory path too long for a UNIX socket: {self.dir}")
        with open(self.path("cmdline"), "w") as f:
            f.write(shlex.join(self.command()) + "\n")
        with open(self.path("qemu.log"), "wb") as log:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent)

    def _connect(self):
        """Connect QMP and, for the agent scenario, the agent's socket."""
        self._wait_socket(self.path("qmp.sock"), time.monotonic() + 30)
        self.qmp = QMP(self.path("qmp.sock"), timeout=10)
        if self.scenario == "agent":
            self.agent = LineSocket(self.path("agent.sock"), timeout=10)

    def command(self):
        """The QEMU command line, as a list."""
        props = "".join(f",{k}={_prop(v)}" for k, v in self.balloon.items() if v is not None)
        cmd = ["qemu-system-x86_64", "-accel", self.accel,
               "-m", f"{self.ram_bytes // 1024}k", "-smp", str(self.smp),
               "-nodefaults", "-display", "none", "-no-reboot", "-S",
               "-serial", "file:" + self.path("console.log"),
               "-chardev", f"socket,id=agent,path={self.path('agent.sock')},server=on,wait=off",
               "-device", "isa-serial,chardev=agent",
               "-qmp", f"unix:{self.path('qmp.sock')},server=on,wait=off",
               "-kernel", self.kernel, "-initrd", self.initrd,
               "-append", " ".join(filter(None, [
                   f"console=ttyS0 panic=-1 scenario={self.scenario}",
                   "" if self.kunit else "kunit.enable=0", self.append,
                   os.environ.get("VM_APPEND", "")]))]
        if self.hugetlb:
            if self.mem_mib % HUGEPAGE_MIB:
                raise VMError(f"hugetlb: guest RAM {self.mem_mib} MiB is not a multiple of "
                              f"{HUGEPAGE_MIB} MiB")
            backend = (f"memory-backend-memfd,id=mem,size={self.mem_mib}M,hugetlb=on,"
                       f"hugetlbsize={HUGEPAGE_MIB}M")
            if self.hugetlb_prealloc:
                backend += ",prealloc=on"
            cmd += ["-object", backend, "-machine", "memory-backend=mem"]
        if self.balloon["free-page-hint"]:
            cmd += ["-object", "iothread,id=io0"]
            props += ",iothread=io0"
        cmd += ["-device", "virtio-balloon-pci,id=balloon0" + props]
        return cmd

    def shutdown(self, timeout=30.0):
        """Stop the guest and wait for QEMU to exit; return its exit status.

        Asks the agent to ``exit-vm`` (the guest reboots, QEMU exits because
        of ``-no-reboot``); other scenarios end the guest by themselves.
        QEMU is killed at once if the agent is not usable (never ready, or
        a command timed out) or does not answer, and when it has not exited
        after ``timeout`` s.  Returns ``None`` when it had to be killed.
        Safe to call twice.
        """
        if self.proc is None:
            return None
        wait = timeout
        if self.proc.poll() is None and self.agent is not None:
            try:
                if not self._agent_ok:
                    raise VMError("agent not usable")
                self.agent.send_line("exit-vm")
                self._agent_line(time.monotonic() + min(timeout, 10), "exit-vm",
                                 expect="@@AGENT-END 0")
            except (OSError, VMError):
                wait = 0
        try:
            self.proc.wait(wait)
            rc = self.proc.returncode
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        if self.agent:
            self.agent.close()
        if self.qmp:
            self.qmp.close()
        return rc

    def _cleanup(self, ok):
        if self in RUNNING:
            RUNNING.remove(self)
        if self.dir is None:
            return
        if ok and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print(f"# VM {self.name}: run directory kept: {self.dir}", file=sys.stderr)

    def path(self, name):
        """Path of ``name`` inside this VM's run directory."""
        return os.path.join(self.dir, name)

    def _wait_socket(self, path, deadline):
        while not os.path.exists(path):
            if self.proc.poll() is not None:
                raise VMError("QEMU exited")
            if time.monotonic() > deadline:
                raise VMError(f"QEMU did not create {path}")
            time.sleep(0.02)

    def _tail(self, name, lines=15):
        try:
            with open(self.path(name), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # ---- console ---------------------------------------------------------

    def kernel_reports(self):
        """Kernel reports on the console (``KERNEL_REPORT``), two lines of context each."""
        lines = self.console_text().splitlines()
        return ["\n".join(lines[i:i + 3]) for i, line in enumerate(lines)
                if KERNEL_REPORT.search(line)]

    def console_text(self):
        """Everything the guest wrote to ttyS0 so far."""
        try:
            with open(self.path("console.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_console(self, regex, timeout=60.0):
        """Wait until the console matches ``regex``; return the match.

        Raises :class:`VMError` on timeout or if QEMU exits first.
        """
        pattern = re.compile(regex, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.console_text())
            if m:
                return m
            if self.proc.poll() is not None:
                raise VMError(f"QEMU exited before the console matched {regex!r}")
            if time.monotonic() > deadline:
                raise VMError(f"console did not match {regex!r} within {timeout} s")
            time.sleep(0.1)

    # ---- agent -----------------------------------------------------------

    def _agent_line(self, deadline, what, expect=None):
        """Read one agent line; with ``expect``, skip lines until that one.

        A timeout or a closed socket marks the agent unusable: the guest may
        still be running the command, so later output would be misread.
        """
        while True:
            try:
                line = self.agent.read_line(deadline, what)
            except OSError as e:  # TimeoutError, ConnectionError
                self._agent_ok = False
                raise VMError(f"agent: {e} (QEMU status {self.proc.poll()}); "
                              f"console tail:\n{self._tail('console.log')}") from e
            if expect is None or line == expect:
                return line

    def sh(self, cmd, timeout=60.0):
        """Run one shell command line in the guest; return ``(rc, output)``.

        ``output`` is stdout and stderr together, without a trailing newline.
        Raises :class:`VMError` if the agent does not answer in ``timeout`` s.
        """
        if "\n" in cmd:
            raise ValueError("agent commands are single lines")
        if not self._agent_ok:
            raise VMError(f"agent not usable (scenario {self.scenario}, or an earlier "
                          f"command failed); cannot run {cmd!r}")
        try:
            self.agent.send_line(cmd)
        except OSError as e:
            self._agent_ok = False
            raise VMError(f"agent: cannot send {cmd!r}: {e}") from e
        deadline = time.monotonic() + timeout
        out = []
        while True:
            line = self._agent_line(deadline, f"the end of {cmd!r}")
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

    # ---- QMP -------------------------------------------------------------

    def set_target(self, size):
        """Set the balloon target: the guest's logical memory size in bytes."""
        self.qmp.execute("balloon", value=size)

    def actual(self):
        """Guest memory size in bytes as QEMU sees it (RAM minus balloon)."""
        return self.qmp.execute("query-balloon")["actual"]

    def wait_actual(self, size, timeout=60.0):
        """Poll ``query-balloon`` until it reports ``size`` bytes.

        Returns the last value seen, which differs from ``size`` only after
        ``timeout`` s; the caller asserts on it.
        """
        deadline = time.monotonic() + timeout
        while True:
            actual = self.actual()
            if actual == size or time.monotonic() > deadline:
                return actual
            time.sleep(0.2)

    def guest_stats(self):
        """The ``guest-stats`` QOM property: ``{"stats": {...}, "last-update": s}``."""
        return self.qmp.execute("qom-get", path=BALLOON_PATH, property="guest-stats")

    def set_stats_interval(self, seconds):
        """Set ``guest-stats-polling-interval`` (seconds; 0 stops polling)."""
        self.qmp.execute("qom-set", path=BALLOON_PATH,
                         property="guest-stats-polling-interval", value=seconds)

    def virtio_status(self):
        """``x-query-virtio-status`` of the balloon's virtio device."""
        return self.qmp.execute("x-query-virtio-status", path=VIRTIO_PATH)

    def queue_status(self, queue):
        """``x-query-virtio-queue-status`` of virtqueue ``queue`` (QEMU's numbering)."""
        return self.qmp.execute("x-query-virtio-queue-status", path=VIRTIO_PATH, queue=queue)

    def migrate_to_null(self, max_bandwidth=None, timeout=300.0):
        """Migrate to ``exec:cat > /dev/null``; return the final ``query-migrate``.

        ``max_bandwidth`` is in bytes per second (QEMU 7.2's default is
        128 MiB/s).  The VM is left in ``postmigrate`` (paused) on success;
        ``qmp.execute("cont")`` resumes it.  Raises :class:`VMError` if the
        migration neither completes nor fails within ``timeout`` s.
        """
        return self.migrate("exec:cat > /dev/null", max_bandwidth=max_bandwidth,
                            timeout=timeout)

    def migrate(self, uri, max_bandwidth=None, downtime_limit=None, timeout=300.0):
        """Migrate to ``uri`` (``tcp:HOST:PORT``, ``exec:...``); return the final ``query-migrate``.

        ``max_bandwidth`` is in bytes per second, ``downtime_limit`` in ms
        (QEMU 7.2: 128 MiB/s and 300 ms).  Like :meth:`migrate_to_null`,
        the VM is left in ``postmigrate`` on success; after a migration to
        a real destination, :meth:`quit` ends it.
        """
        args = {}
        if max_bandwidth is not None:
            args["max-bandwidth"] = max_bandwidth
        if downtime_limit is not None:
            args["downtime-limit"] = downtime_limit
        if args:
            self.qmp.execute("migrate-set-parameters", **args)
        self.qmp.execute("migrate", uri=uri)
        deadline = time.monotonic() + timeout
        while True:
            info = self.qmp.execute("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                return info
            if time.monotonic() > deadline:
                self.qmp.execute("migrate_cancel")
                raise VMError(f"migration still {info.get('status')} after {timeout} s")
            time.sleep(0.1)

    def quit(self, timeout=30.0):
        """End QEMU with QMP ``quit`` (a paused or migrated-away guest); return its status.

        The agent is not asked: a guest that no longer runs here cannot
        answer.  The context manager's shutdown then finds QEMU gone.
        """
        self._agent_ok = False
        self.agent, agent = None, self.agent
        if agent:
            agent.close()
        try:
            self.qmp.execute("quit")
        except (OSError, QMPError):
            pass  # QEMU may close the socket before it answers
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def qemu_hugetlb_kib(self):
        """Hugetlb memory mapped by QEMU (``HugetlbPages``) in KiB."""
        return _status_kib(self.proc.pid, "HugetlbPages")

    def qemu_rss_kib(self):
        """QEMU's resident set size (``VmRSS``) in KiB."""
        return _status_kib(self.proc.pid, "VmRSS")

    def sh_ok_rss_peak(self, cmd, timeout=60.0, interval=0.1):
        """Run ``cmd`` like :meth:`sh_ok` while sampling QEMU's RSS.

        Returns ``(output, peak RSS in KiB)``: what the command made
        resident at its highest, even if the guest gave it back before
        the command returned (free page reporting can be that fast).
        """
        peak = [self.qemu_rss_kib()]
        done = threading.Event()

        def sample():
            while not done.wait(interval):
                peak[0] = max(peak[0], self.qemu_rss_kib())

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            out = self.sh_ok(cmd, timeout=timeout)
        finally:
            done.set()
            sampler.join()
        return out, max(peak[0], self.qemu_rss_kib())


class IncomingVM(VM):
    """The destination of a live migration of ``source`` (a started :class:`VM`).

    Same guest and devices (memory, CPUs, balloon properties, kernel,
    initramfs, accelerator, command line) plus ``-incoming
    tcp:127.0.0.1:PORT`` on a free port; its own run directory, QMP and
    agent socket.  :meth:`start` (the context manager) connects QMP and
    the agent and leaves QEMU waiting for the stream;
    ``source.migrate(dest.uri)`` sends it, then :meth:`resume` runs the
    guest here and makes the agent usable.  The guest's agent, already
    running on the source, goes on reading ttyS1, now this QEMU's socket.
    """

    def __init__(self, source, name="dest", port=None):
        super().__init__(mem_mib=source.mem_mib, smp=source.smp, name=name,
                         scenario=source.scenario, append=source.append,
                         boot_timeout=source.boot_timeout, hugetlb=source.hugetlb,
                         hugetlb_prealloc=source.hugetlb_prealloc,
                         migratable=source.migratable, kunit=source.kunit)
        self.balloon = dict(source.balloon)
        self.kernel, self.initrd, self.accel = source.kernel, source.initrd, source.accel
        self.port = port or free_tcp_port()
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
        self._agent_ok = self.agent is not None
        return info


def free_tcp_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket
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
    changed it meanwhile.  Use it as a context manager only when a failure
    should raise (:class:`VMError`); release after QEMU has exited.
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

    def __enter__(self):
        reason = self.reserve()
        if reason:
            raise VMError(reason)
        return self

    def __exit__(self, exc_type, exc, tb):
        self.release()


def _read(path):
    with open(path) as f:
        return f.read().strip()


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _prop(value):
    """Format a device property value: booleans as on/off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _pairs(text, sep):
    """Split each non-empty line of ``text`` at the first ``sep``."""
    for line in text.splitlines():
        if sep in line:
            key, value = line.split(sep, 1)
            yield key.strip(), value.strip()


def _die_with_parent():
    """In the child: get SIGKILL when the test process dies (no orphan QEMU)."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
