"""Boot a test guest under QEMU with a virtio-balloon and drive it.

``VM`` starts ``qemu-system-x86_64`` with the project kernel and initramfs,
a ``virtio-balloon-pci`` device (``id=balloon0``), QMP on a UNIX socket and
the guest agent (``scenario=agent``) on ttyS1.  The console (ttyS0) goes to
a file.  An arm64 kernel (paths.arch: an arm64 Image) boots instead under
``qemu-system-aarch64 -M virt -cpu max`` (TCG) with the arm64 initramfs:
the console on the machine's one UART (ttyAMA0), the agent on a virtio
console (``virtio-serial-pci``, the guest's hvc0; ``agent=hvc0`` on the
command line tells guest/init).  Everything else is the same on both.  Each VM gets its own directory under ``build/run/``; it is removed
after a clean run and kept (and named on stderr) when anything failed,
when ``keep`` was set (see ``RUNNING``), or always when ``KEEP_RUN=1``.

Environment: ``KERNEL`` and ``INITRD`` override the default images
(paths.py; the kernel's modules are appended to the initramfs),
``ACCEL=kvm`` selects KVM instead of TCG (options may follow:
``ACCEL=tcg,thread=single``), ``VM_APPEND`` adds to every guest's kernel
command line (``VM_APPEND=slub_debug=FZ``).

The project kernel's KUnit suites run at boot only in a ``VM(kunit=True)``
(the guest test stage): every other guest boots with ``kunit.enable=0``,
so that it boots as fast as the upstream kernel, which has no suites, and
no fake balloon inflates behind a scenario's or a benchmark's back.

Guest RAM can be backed by the host's 2 MiB hugetlb pages
(``VM(hugetlb=True)``); :class:`host.HostHugePages` makes sure the host
has enough of them free and gives them back afterwards.

A VM belongs to the scenario that started it: when it is torn down, its
console is scanned for kernel reports and the verdict recorded
(console.py); a report keeps its run directory.  Live migration is in
migration.py.

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

from . import console, host, paths
from .agent import Agent
from .errors import VMError
from .qmp import QMP, QMPError

BALLOON_PATH = "/machine/peripheral/balloon0"
VIRTIO_PATH = BALLOON_PATH + "/virtio-backend"
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
# Per architecture (paths.arch of the kernel): QEMU, its machine options,
# the device carrying the agent's chardev, and the console's tty.  x86's
# agent is on a second 16550 UART (ttyS1, guest/init's default); arm64's
# -M virt has one UART, so the agent gets a virtio console (hvc0).  -cpu
# max supports the 64 KiB granule; pauth-impdef=on makes its pointer
# authentication cheap under TCG (as kunit.py's arm64 configuration does).
ARCHES = {
    "x86_64": ("qemu-system-x86_64", [], ["-device", "isa-serial,chardev=agent"], "ttyS0"),
    "arm64": ("qemu-system-aarch64", ["-M", "virt", "-cpu", "max,pauth-impdef=on"],
              ["-device", "virtio-serial-pci,id=vser0",
               "-device", "virtconsole,chardev=agent,bus=vser0.0"], "ttyAMA0"),
}
# The agent's tty in the guest, when not ttyS1: passed as agent= to guest/init.
ARCH_AGENT_TTY = {"arm64": "hvc0"}


def free_page_hint_problem(kernel=None):
    """Why a free page hinting round cannot run on this host for ``kernel``
    (default :func:`paths.kernel`), or None when it can.

    QEMU runs a hinting round in the balloon's iothread, which completes
    buffers with virtio_notify() without holding the global lock.
    virtio-balloon-pci has no MSI-X, so the notification is the device's
    INTx line: on x86 the IOAPIC turns it into a memory write that takes
    the lock on the way, but on arm64's -M virt the line drives the GIC,
    and TCG then aborts ("tcg_handle_interrupt: assertion failed:
    (qemu_mutex_iothread_locked())", Debian's QEMU 7.2.22).  A guest with
    free-page-hint=on boots and runs on arm64; only a migration, which
    starts the hinting round, brings QEMU down.
    """
    if paths.arch(kernel or paths.kernel()) == "arm64":
        return ("QEMU 7.2 under TCG aborts on arm64 -M virt when free page hinting "
                "notifies the guest from its iothread (vm.free_page_hint_problem)")
    return None
class VM:
    """A running QEMU guest; use it as a context manager.

    ``kernel`` is a bzImage path; None boots :func:`paths.kernel` (``$KERNEL``,
    else the project's).
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
    (docs/protocol.md 4.3).  ``hugetlb_prealloc`` (default on with ``hugetlb``)
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
                 hugetlb_prealloc=True, migratable=False, kunit=False, kernel=None):
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
        self.kernel = kernel or paths.kernel()
        self.arch = paths.arch(self.kernel)
        self.initrd = paths.initrd(self.kernel)
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
        if self.arch == "arm64" and self.accel.split(",")[0] != "tcg":
            raise VMError(f"ACCEL={self.accel}: an arm64 guest runs under TCG only")
        self._launch()
        try:
            self._connect()
            if self.initial_target_mib is not None:
                self.set_target(self.initial_target_mib << 20)
            self.qmp.execute("cont")
            if self.agent:
                self.agent.wait_ready(time.monotonic() + self.boot_timeout)
        except (OSError, QMPError, VMError) as e:
            if self.proc.poll() is None:
                raise
            raise VMError(f"QEMU exited with status {self.proc.returncode} during boot ({e})\n"
                          f"qemu.log:\n{self._tail('qemu.log')}"
                          f"console:\n{self._tail('console.log')}") from e

    def _launch(self):
        """Make the run directory and start QEMU (paused, or waiting for a stream)."""
        os.makedirs(paths.RUN_DIR, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix=self.name + "-", dir=paths.RUN_DIR)
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
            self.agent = Agent(self.path("agent.sock"), 10, self._context)

    def command(self):
        """The QEMU command line, as a list."""
        props = "".join(f",{k}={_prop(v)}" for k, v in self.balloon.items() if v is not None)
        qemu, machine, agent_port, console_tty = ARCHES[self.arch]
        cmd = [qemu] + machine + ["-accel", self.accel,
               "-m", f"{self.ram_bytes // 1024}k", "-smp", str(self.smp),
               "-nodefaults", "-display", "none", "-no-reboot", "-S",
               "-serial", "file:" + self.path("console.log"),
               "-chardev", f"socket,id=agent,path={self.path('agent.sock')},server=on,wait=off"]
        cmd += agent_port + [
               "-qmp", f"unix:{self.path('qmp.sock')},server=on,wait=off",
               "-kernel", self.kernel, "-initrd", self.initrd,
               "-append", " ".join(filter(None, [
                   f"console={console_tty} panic=-1 scenario={self.scenario}",
                   "" if self.arch == "x86_64" else f"agent={ARCH_AGENT_TTY[self.arch]}",
                   "" if self.kunit else "kunit.enable=0", self.append,
                   os.environ.get("VM_APPEND", "")]))]
        if self.hugetlb:
            if self.mem_mib % host.HUGEPAGE_MIB:
                raise VMError(f"hugetlb: guest RAM {self.mem_mib} MiB is not a multiple of "
                              f"{host.HUGEPAGE_MIB} MiB")
            backend = (f"memory-backend-memfd,id=mem,size={self.mem_mib}M,hugetlb=on,"
                       f"hugetlbsize={host.HUGEPAGE_MIB}M")
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
                self.agent.exit_vm(time.monotonic() + min(timeout, 10))
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
        text = self.console_text()
        reports = console.kernel_reports(console.after_init(text) if self.kunit else text)
        console.record(self.name, self.dir, reports)
        if ok and not reports and not self.keep:
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

    def _context(self):
        """QEMU's status and the console's tail, to explain a failure."""
        return (f"QEMU status {self.proc.poll() if self.proc else None}; "
                f"console tail:\n{self._tail('console.log')}")

    def _tail(self, name, lines=15):
        try:
            with open(self.path(name), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # ---- console ---------------------------------------------------------

    def kernel_reports(self):
        """Kernel reports on the console so far (console.py), two lines of context each."""
        return console.kernel_reports(self.console_text())

    def console_text(self):
        """Everything the guest wrote to its console (ttyS0, ttyAMA0) so far."""
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

    # ---- agent (agent.py) -------------------------------------------------

    def sh(self, cmd, timeout=60.0):
        """Run ``cmd`` in the guest; ``(rc, output)`` (:meth:`agent.Agent.sh`)."""
        return self._agent().sh(cmd, timeout)

    def sh_ok(self, cmd, timeout=60.0):
        """Run ``cmd`` in the guest; its output, raise unless it exits 0."""
        return self._agent().sh_ok(cmd, timeout)

    def meminfo(self):
        return self._agent().meminfo()

    def vmstat(self):
        return self._agent().vmstat()

    def wait_memfree(self, at_least_kb, timeout=20.0):
        return self._agent().wait_memfree(at_least_kb, timeout)

    def page_kib(self):
        return self._agent().page_kib()

    def balloon_device(self):
        return self._agent().balloon_device()

    def balloon_counters(self):
        return self._agent().balloon_counters()

    def _agent(self):
        if self.agent is None:
            raise VMError(f"no guest agent (scenario {self.scenario}, or QEMU was quit)")
        return self.agent

    # ---- QMP -------------------------------------------------------------

    def set_target(self, size):
        """Set the balloon target: the guest's logical memory size in bytes."""
        self.qmp.execute("balloon", value=size)

    def actual(self):
        """Guest memory size in bytes as QEMU sees it (RAM minus balloon)."""
        return self.qmp.execute("query-balloon")["actual"]

    def wait_actual(self, size, timeout=60.0, interval=0.2):
        """Poll ``query-balloon`` every ``interval`` s until it reports ``size`` bytes.

        Returns the last value seen, which differs from ``size`` only after
        ``timeout`` s; the caller asserts on it.
        """
        deadline = time.monotonic() + timeout
        while True:
            actual = self.actual()
            if actual == size or time.monotonic() > deadline:
                return actual
            time.sleep(interval)

    def resize(self, size, timeout=60.0, expect=None):
        """Set the target to ``size`` bytes and wait for ``query-balloon``.

        Waits until actual is ``expect`` (default ``size``; a target above
        RAM ends at RAM) or ``timeout`` s have passed; returns actual.
        """
        self.set_target(size)
        return self.wait_actual(size if expect is None else expect, timeout=timeout)

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

    def quit(self, timeout=30.0):
        """End QEMU with QMP ``quit`` (a paused or migrated-away guest); return its status.

        The agent is not asked: a guest that no longer runs here cannot
        answer.  The context manager's shutdown then finds QEMU gone.
        """
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
        return host.qemu_hugetlb_kib(self.proc.pid)

    def qemu_rss_kib(self):
        """QEMU's resident set size (``VmRSS``) in KiB."""
        return host.qemu_rss_kib(self.proc.pid)

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


def _prop(value):
    """Format a device property value: booleans as on/off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _die_with_parent():
    """In the child: get SIGKILL when the test process dies (no orphan QEMU)."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
