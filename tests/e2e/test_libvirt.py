#!/usr/bin/env python3
"""The balloon as operators drive it: through libvirt 9.0 (Debian 12).

Starts Debian's own libvirtd, as root, in private mount and PID
namespaces (``unshare``) whose /run, /etc/libvirt, /var/lib/libvirt,
/var/log/libvirt and /var/cache/libvirt are bind mounts of a temporary
directory: the daemon reads the libvirtd.conf and qemu.conf written there
and keeps its socket, pid file, logs, capability cache and domain state
there, so nothing system-wide changes.  PID 1 of the namespaces is this
file run with ``--ns-init``: it makes the mounts, runs libvirtd, reaps,
and stops libvirtd when the scenario closes its stdin; when it exits, the
kernel kills whatever is left in the namespace (QEMU included), and if
the scenario is killed, so is the namespace (PR_SET_PDEATHSIG, unshare
--kill-child).

Two transient TCG domains (``virsh create``), one at a time, boot the
project's kernel and initramfs directly with harness/vm.py's command
line: 1 GiB, the console (ttyS0) in a file, the guest agent (ttyS1,
guest/agent) on a ``<serial type='unix'>``.  The first has
``<memballoon model='virtio' autodeflate='on' freePageReporting='on'>``
with ``<stats period='2'/>``: its XML must reach QEMU and the guest;
``virsh setmem`` down and back must move ``query-balloon``,
``dommemstat``'s ``actual`` and the guest's balloon by exactly what was
asked (MemTotal stays: autodeflate is DEFLATE_ON_OOM, whose pages stay in
MemTotal, as upstream's driver keeps them; free memory moves); every
field ``dommemstat`` shows must be there, equal QEMU's ``guest-stats``,
agree with the guest's /proc and follow what the guest does;
``dommemstat --period`` must reach QEMU.  The second has a plain
``<memballoon model='virtio'>``: there ``virsh setmem`` lowers MemTotal
by exactly what was asked.  Then libvirtd stops, and nothing of it may be
left: no process, nothing new in the host's /run, libvirt directories or
cgroups.

Skips (exit 4) only when libvirt cannot run here at all: libvirtd,
virsh or unshare missing (make deps installs them), or the host refuses
the namespaces.  KERNEL, INITRD, ACCEL (kvm: a kvm domain) and VM_APPEND
are honoured as by harness/vm.py; KEEP_RUN=1 keeps the temporary
directory.
"""

import ctypes
import glob
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../harness"))
from balloon_harness import console, paths, scenario  # noqa: E402
from balloon_harness.agent import Agent  # noqa: E402
from balloon_harness.errors import VMError  # noqa: E402
from balloon_harness.scenario import check  # noqa: E402

DOMAIN = "balloon-e2e"
PLAIN_DOMAIN = "balloon-e2e-plain"
GUEST_MIB = 1024
TARGET_MIB = 768
ASKED_KIB = (GUEST_MIB - TARGET_MIB) * 1024
STATS_PERIOD = 2
# What else an idle guest may allocate or free while the balloon moves.
FREE_SLACK_KIB = 8 * 1024
FILL_MIB = 256
PAGE = 4096
KiB = 1024
MiB = 1 << 20
# harness/vm.py's command line for an agent guest without KUnit.
CMDLINE = " ".join(filter(None, ["console=ttyS0 panic=-1 scenario=agent kunit.enable=0",
                                 os.environ.get("VM_APPEND", "")]))
QEMU = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"

# Where a privileged libvirtd 9.0 keeps things (fixed when it was built);
# each becomes a bind mount of a directory of ours in the namespace.
# /run/libvirt does not exist before a daemon first runs: all of /run is
# replaced, which also hides the host's D-Bus (no machined, no polkit).
PRIVATE_DIRS = {"run": "/run", "etc": "/etc/libvirt", "lib": "/var/lib/libvirt",
                "log": "/var/log/libvirt", "cache": "/var/cache/libvirt"}
SOCKET = "run/libvirt/libvirt-sock"
LIBVIRTD_CONF = """\
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""
# stdio_handler: no virtlogd (the default, "logd", fails without one).
# cgroup_controllers: none, or libvirt makes /sys/fs/cgroup/*/machine on
# the host and leaves it there.  security_driver: no AppArmor profiles
# (virt-aa-helper writes to /etc/apparmor.d on hosts that have it).
# dynamic_ownership, remember_owner: no chown and no trusted.libvirt.*
# xattrs on the project's kernel and initramfs.  user, group: QEMU can read
# them wherever the tree is.  namespaces: QEMU needs no /dev of its own.
QEMU_CONF = """\
user = "root"
group = "root"
security_driver = "none"
dynamic_ownership = 0
remember_owner = 0
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
"""

# The guest statistics libvirt 9.0 maps from QEMU's guest-stats
# (qemuMonitorJSONGetMemoryStats): dommemstat name -> (QOM name, divisor).
GUEST_STATS = {
    "swap_in": ("stat-swap-in", KiB),
    "swap_out": ("stat-swap-out", KiB),
    "major_fault": ("stat-major-faults", 1),
    "minor_fault": ("stat-minor-faults", 1),
    "unused": ("stat-free-memory", KiB),
    "available": ("stat-total-memory", KiB),
    "usable": ("stat-available-memory", KiB),
    "disk_caches": ("stat-disk-caches", KiB),
    "hugetlb_pgalloc": ("stat-htlb-pgalloc", 1),
    "hugetlb_pgfail": ("stat-htlb-pgfail", 1),
}
# What ``virsh dommemstat`` prints, in its order: the balloon's size, the
# guest statistics and when QEMU received them, QEMU's resident set.
DOMMEMSTAT_FIELDS = ["actual", "swap_in", "swap_out", "major_fault", "minor_fault", "unused",
                     "available", "usable", "last_update", "disk_caches", "hugetlb_pgalloc",
                     "hugetlb_pgfail", "rss"]
# tp-qemu balloon_check's tolerance (as in test_stats.py): 10 % or 150 MB.
TOLERANCE_RATIO = 0.10
TOLERANCE_BYTES = 150 * 1000 * 1000
BALLOON_QOM = "/machine/peripheral/balloon0"
FEATURES = {"STATS_VQ": 1, "DEFLATE_ON_OOM": 2, "REPORTING": 5}

START = "libvirtd 9.0 starts in private namespaces with private state, virsh connects"
BOOT = ("virsh create: a transient TCG domain boots the project kernel, the guest agent "
        "answers on a <serial type='unix'>")
DEVICE = ("<memballoon autodeflate='on' freePageReporting='on'><stats period='2'/> reaches "
          "QEMU (deflate-on-oom, free-page-reporting, polling interval 2) and the guest "
          "(STATS_VQ, DEFLATE_ON_OOM, REPORTING negotiated)")
SHRINK = (f"virsh setmem {TARGET_MIB} MiB: query-balloon and dommemstat actual reach it, the "
          f"guest's balloon holds exactly {GUEST_MIB - TARGET_MIB} MiB, free memory drops by "
          f"that, MemTotal stays (autodeflate)")
GROW = f"virsh setmem {GUEST_MIB} MiB: back to full, balloon empty, free memory back"
FIELDS = ("virsh dommemstat shows actual, the ten guest statistics libvirt 9.0 maps, "
          "last_update and rss; each equals guest-stats and agrees with the guest's /proc")
FOLLOWS = (f"dommemstat follows the guest: {FILL_MIB} MiB in tmpfs lowers unused and raises "
           f"disk_caches, minor_fault and rss; 4 huge pages raise hugetlb_pgalloc by 4; freeing "
           f"brings unused back and free page reporting lowers rss")
PERIOD = ("virsh dommemstat --period 1 --live sets QEMU's polling interval, last_update "
          "advances")
DESTROY = f"virsh destroy {DOMAIN}"
PLAIN = (f"<memballoon model='virtio'> without autodeflate: virsh setmem {TARGET_MIB} MiB "
         f"lowers the guest's MemTotal by exactly {GUEST_MIB - TARGET_MIB} MiB, and back")
TEARDOWN = ("teardown: libvirtd stopped, no process of it left, nothing changed in the host's "
            "/run, libvirt directories or cgroups")
# The cases, in the order they run (registered: the plan is their number).
CASES = [START, BOOT, DEVICE, SHRINK, GROW, FIELDS, FOLLOWS, PERIOD, DESTROY, PLAIN, TEARDOWN]
TIMEOUT = 300


class LibvirtError(Exception):
    """libvirtd or virsh failed."""


class Skip(Exception):
    """libvirt cannot run on this host at all."""


# ---- PID 1 of the namespaces -------------------------------------------------

def ns_init(tmp):
    """Bind the private directories into place, run libvirtd, reap, stop on EOF.

    QEMU daemonizes, so it is reparented to us; we reap it.  EOF on stdin
    stops libvirtd (SIGTERM, SIGKILL 15 s later); we exit when it has
    exited, and the kernel then kills what is left in the namespace.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    ms_bind = 4096
    for sub, target in PRIVATE_DIRS.items():
        # mount(2), not mount(8): that would create /run/mount on the host.
        if libc.mount(os.path.join(tmp, sub).encode(), target.encode(), None, ms_bind,
                      None) != 0:
            print(f"ns-init: bind {target}: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
            sys.exit(1)
    with open(os.path.join(tmp, "libvirtd.out"), "wb") as out:
        daemon = subprocess.Popen(["libvirtd"], stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT)

    def stop_on_eof():
        sys.stdin.buffer.read()
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 0)):
            try:
                os.kill(daemon.pid, sig)
            except ProcessLookupError:
                return
            time.sleep(wait)

    threading.Thread(target=stop_on_eof, daemon=True).start()
    status = 1
    while True:
        try:
            pid, wstatus = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == daemon.pid:
            status = os.waitstatus_to_exitcode(wstatus)
            break
    os._exit(0 if status == 0 else 1)


# ---- libvirtd, virsh and the domains -------------------------------------------

class Libvirt:
    """A private libvirtd in its own namespaces; ``virsh`` talks to it."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="libvirt-e2e-")
        self.proc = None
        self.up = False
        self.uri = f"qemu+unix:///system?socket={self.path(SOCKET)}"
        # virsh's own config and cache (it keeps none today) stay here too.
        self.env = dict(os.environ, HOME=self.tmp, XDG_CONFIG_HOME=self.path("client"),
                        XDG_CACHE_HOME=self.path("client"), LC_ALL="C")

    def path(self, *names):
        return os.path.join(self.tmp, *names)

    def start(self, timeout=60):
        """Start libvirtd; return ``virsh version --daemon``."""
        for sub in PRIVATE_DIRS:
            os.makedirs(self.path(sub))
        with open(self.path("etc", "libvirtd.conf"), "w") as f:
            f.write(LIBVIRTD_CONF)
        with open(self.path("etc", "qemu.conf"), "w") as f:
            f.write(QEMU_CONF)
        cmd = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
               "--kill-child", "--mount-proc", sys.executable, os.path.abspath(__file__),
               "--ns-init", self.tmp]
        # Its own session: the stage runner's SIGTERM to our process group
        # must leave the teardown to us.  It dies with us all the same.
        with open(self.path("unshare.out"), "wb") as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise LibvirtError(f"libvirtd's namespace exited with {self.proc.returncode}:\n"
                                   + self.tail("unshare.out") + self.tail("libvirtd.out")
                                   + self.tail("log", "libvirtd.log"))
            if os.path.exists(self.path(SOCKET)):
                rc, out = self.virsh_rc("version", "--daemon")
                if rc == 0:
                    self.up = True
                    return out
            if time.monotonic() > deadline:
                raise LibvirtError(f"libvirtd did not answer within {timeout} s:\n"
                                   + self.tail("log", "libvirtd.log"))
            time.sleep(0.2)

    def virsh_rc(self, *args, timeout=60):
        r = subprocess.run(["virsh", "-q", "-c", self.uri, *args], env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        return r.returncode, (r.stdout + r.stderr).strip()

    def virsh(self, *args, timeout=60):
        rc, out = self.virsh_rc(*args, timeout=timeout)
        if rc != 0:
            raise LibvirtError(f"virsh {' '.join(args)}: exit {rc}: {out}")
        return out

    def qmp(self, command, dom=DOMAIN, **arguments):
        """A QMP command through libvirt (``virsh qemu-monitor-command``)."""
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        reply = json.loads(self.virsh("qemu-monitor-command", dom, json.dumps(msg)))
        if "return" not in reply:
            raise LibvirtError(f"QMP {command}: {reply}")
        return reply["return"]

    def dommemstat(self, dom=DOMAIN):
        """``virsh dommemstat`` as ``{name: value}``, in the order printed."""
        out = self.virsh("dommemstat", dom)
        return {k: int(v) for k, v in (line.split() for line in out.splitlines())}

    def boot(self, tap, name, autodeflate):
        """``virsh create`` domain ``name``, run it; return its guest agent."""
        xml = self.path(f"{name}.xml")
        with open(xml, "w") as f:
            f.write(domain_xml(self, name, autodeflate))
        start = time.monotonic()
        rc, out = self.virsh_rc("create", xml, "--paused", timeout=120)
        if rc != 0:
            raise LibvirtError(f"virsh create: {out}\n" + self.tail("log", "libvirtd.log"))

        def context():
            return (self.tail(f"console-{name}.log") + self.tail("log", "qemu", name + ".log"))

        # Connect before the guest runs: QEMU drops what ttyS1 sends before that.
        agent = Agent(self.path(f"agent-{name}.sock"), timeout=10, context=context)
        self.virsh("resume", name)
        agent.wait_ready(time.monotonic() + 120)
        tap.diag(f"{name}: created and booted in {time.monotonic() - start:.1f} s, "
                 f"kernel {agent.sh_ok('uname -r')}")
        check.assertEqual(self.virsh("domstate", name), "running")
        return agent

    def destroy(self, tap, name, agent):
        """``virsh destroy`` domain ``name``; hand its console to the console case."""
        agent.close()
        out = self.virsh("destroy", name)
        tap.diag(f"virsh destroy {name}: {out or 'done'}")
        record_console(self, name)

    def stop(self):
        """Close the init's stdin: libvirtd stops and the namespace goes.  Idempotent."""
        if self.proc is None:
            return None
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # --kill-child takes the namespace with it
            self.proc.wait()
        return self.proc.returncode

    def tail(self, *names, lines=15):
        try:
            with open(self.path(*names), errors="replace") as f:
                text = "".join(f.readlines()[-lines:])
        except OSError:
            return ""
        return f"--- {os.path.join(*names)}:\n{text}"


def domain_xml(lv, name, autodeflate):
    """A transient domain like harness/vm.py's guests; its files named after it."""
    kvm = os.environ.get("ACCEL", "tcg").split(",")[0] == "kvm"
    dom = ET.Element("domain", type="kvm" if kvm else "qemu")
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "memory", unit="MiB").text = str(GUEST_MIB)
    ET.SubElement(dom, "currentMemory", unit="MiB").text = str(GUEST_MIB)
    ET.SubElement(dom, "vcpu").text = "2"
    os_ = ET.SubElement(dom, "os")
    ET.SubElement(os_, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_, "kernel").text = paths.kernel()
    ET.SubElement(os_, "initrd").text = paths.initrd(paths.kernel())
    ET.SubElement(os_, "cmdline").text = CMDLINE
    ET.SubElement(ET.SubElement(dom, "features"), "acpi")
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        ET.SubElement(dom, event).text = "destroy"
    dev = ET.SubElement(dom, "devices")
    ET.SubElement(dev, "emulator").text = QEMU
    ET.SubElement(dev, "controller", type="usb", model="none")
    serial = ET.SubElement(dev, "serial", type="file")
    ET.SubElement(serial, "source", path=lv.path(f"console-{name}.log"))
    ET.SubElement(serial, "target", port="0")
    serial = ET.SubElement(dev, "serial", type="unix")
    ET.SubElement(serial, "source", mode="bind", path=lv.path(f"agent-{name}.sock"))
    ET.SubElement(serial, "target", port="1")
    if autodeflate:
        balloon = ET.SubElement(dev, "memballoon", model="virtio", autodeflate="on",
                                freePageReporting="on")
    else:
        balloon = ET.SubElement(dev, "memballoon", model="virtio")
    ET.SubElement(balloon, "stats", period=str(STATS_PERIOD))
    return ET.tostring(dom, encoding="unicode")


def record_console(lv, name):
    """Scan domain ``name``'s console for kernel reports, for the console case."""
    try:
        with open(lv.path(f"console-{name}.log"), errors="replace") as f:
            text = f.read()
    except OSError:
        return
    if not any(rec[0] == name for rec in console.recorded()):
        console.record(name, lv.path(f"console-{name}.log"), console.kernel_reports(text))


def _die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# ---- guest facts -------------------------------------------------------------

def free_kib(agent):
    """/proc/meminfo plus ``free``: MemFree and the per-CPU page lists, in kB.

    Deflated pages are freed one at a time into the per-CPU lists, which
    MemFree does not count (tens of MiB right after a deflate, drained
    over seconds); the two together move by what the balloon gives or takes.
    """
    meminfo = agent.meminfo()
    pcp = agent.sh_ok("awk '/^ +count:/ { n += $2 } END { print n }' /proc/zoneinfo")
    meminfo["free"] = meminfo["MemFree"] + int(pcp) * PAGE // KiB
    return meminfo


def features(agent):
    """The negotiated feature bits of the guest's balloon, as a string of 0 and 1."""
    return agent.sh_ok(f"cat /sys/bus/virtio/devices/{agent.balloon_device()}/features")


# ---- host facts --------------------------------------------------------------

def host_traces():
    """What a libvirtd could leave on the host: paths (files with mtimes)."""
    out = set()
    tops = ["/run/libvirt", "/run/mount", "/run/libvirtd.pid", "/var/run/libvirt"]
    tops += [d for d in PRIVATE_DIRS.values() if d != "/run"]
    for top in tops:
        if os.path.lexists(top):
            out.add(top)
        for root, dirs, files in os.walk(top):
            out.update(os.path.join(root, d) for d in dirs)
            for f in files:
                path = os.path.join(root, f)
                try:
                    out.add(f"{path} {os.lstat(path).st_mtime_ns}")
                except OSError:
                    pass
    for pattern in ("/sys/fs/cgroup/machine*", "/sys/fs/cgroup/*/machine*"):
        out.update(glob.glob(pattern))
    return out


def _stat(pid):
    """``(ppid, start time)`` of process ``pid``, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[19])


def descendants(root):
    """``(pid, start time)`` of every process below ``root``."""
    children = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            st = _stat(pid)
            if st:
                children.setdefault(st[0], []).append((int(pid), st[1]))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child[0])
    return out


def alive(proc):
    st = _stat(proc[0])
    return st is not None and st[1] == proc[1]


def comm(proc):
    try:
        with open(f"/proc/{proc[0]}/comm") as f:
            return f"{f.read().strip()}[{proc[0]}]"
    except OSError:
        return f"[{proc[0]}]"


def qemu_rss_kib(lv):
    """VmRSS of the QEMU in libvirtd's namespace (one domain runs at a time)."""
    for pid, _ in descendants(lv.proc.pid):
        try:
            if "qemu-system" not in os.readlink(f"/proc/{pid}/exe"):
                continue
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
    return None


# ---- the scenario -------------------------------------------------------------

def preconditions():
    """Raise Skip when libvirt cannot run here; LibvirtError when it is set up wrong."""
    missing = [b for b in ("libvirtd", "virsh", "unshare") if not shutil.which(b)]
    if missing:
        raise Skip(f"{', '.join(missing)} not installed (Debian 12: libvirt-daemon-system, "
                   f"libvirt-clients; make deps installs them)")
    try:
        pwd.getpwnam("libvirt-qemu")
    except KeyError:
        raise LibvirtError("user libvirt-qemu does not exist: libvirtd 9.0 looks it up before "
                           "it reads qemu.conf and does not start without it (make deps "
                           "creates it)") from None
    for target in PRIVATE_DIRS.values():
        if not os.path.isdir(target):
            raise LibvirtError(f"{target} does not exist (libvirt-daemon-system makes it); "
                               f"it is a mount point here")
    r = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--mount-proc", "true"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise Skip(f"cannot make private mount and PID namespaces for libvirtd: "
                   f"{r.stderr.strip()}")


def wait_for(fn, ok, timeout, interval=0.5):
    """Call ``fn()`` until ``ok(value)`` or ``timeout`` s; return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def fresh_stats(lv, after, dom=DOMAIN, timeout=15):
    """dommemstat once it holds a sample the guest took after host time ``after``.

    ``last_update`` is the second (host clock) at which QEMU received the
    sample; one more second covers a sample taken just before ``after``
    and received just after it.
    """
    stats = wait_for(lambda: lv.dommemstat(dom), lambda s: s["last_update"] > after + 1,
                     timeout)
    check.assertGreater(stats["last_update"], after + 1,
                        f"no new guest statistics within {timeout} s")
    return stats


def close_to(tap, name, stat_kib, guest_kib):
    """``stat_kib`` within tp-qemu's tolerance of ``guest_kib``."""
    tolerance = max(TOLERANCE_RATIO * guest_kib * KiB, TOLERANCE_BYTES) / KiB
    tap.diag(f"{name}: dommemstat {stat_kib} KiB, guest {guest_kib} KiB, "
             f"diff {stat_kib - guest_kib:+d} (tolerance {tolerance:.0f})")
    check.assertLessEqual(abs(stat_kib - guest_kib), tolerance, name)


def set_and_wait(tap, lv, agent, mib, dom=DOMAIN):
    """``virsh setmem`` to ``mib``; QEMU, libvirt and the guest's balloon must agree."""
    start = time.monotonic()
    lv.virsh("setmem", dom, f"{mib * 1024}", "--live")
    actual = wait_for(lambda: lv.qmp("query-balloon", dom)["actual"],
                      lambda a: a == mib * MiB, 60)
    tap.diag(f"query-balloon actual {actual // MiB} MiB after {time.monotonic() - start:.1f} s")
    check.assertEqual(actual, mib * MiB, "query-balloon actual")
    check.assertEqual(lv.dommemstat(dom)["actual"], mib * 1024, "dommemstat actual (KiB)")
    counters = agent.balloon_counters()
    if counters is None:  # upstream's driver has no debugfs counters
        tap.diag("the guest driver has no counters: its balloon size is not checked")
        return
    tap.diag(f"guest balloon_pages {counters['balloon_pages']}")
    check.assertEqual(counters["balloon_pages"] * PAGE, (GUEST_MIB - mib) * MiB,
                      "guest balloon_pages")


def setmem_autodeflate(tap, lv, agent, mib, free_change_kib):
    """``virsh setmem`` with autodeflate: free memory moves, MemTotal stays.

    DEFLATE_ON_OOM: the balloon's pages may come back at any time, so they
    stay in MemTotal (upstream's driver does the same); they leave, and
    come back to, the free memory.
    """
    before = free_kib(agent)
    set_and_wait(tap, lv, agent, mib)
    after = free_kib(agent)
    tap.diag(f"guest MemTotal {before['MemTotal']} -> {after['MemTotal']} kB, free "
             f"{before['free']} -> {after['free']} kB (MemFree alone {before['MemFree']} -> "
             f"{after['MemFree']})")
    check.assertEqual(after["MemTotal"], before["MemTotal"], "MemTotal")
    check.assertAlmostEqual(after["free"] - before["free"], free_change_kib,
                            delta=FREE_SLACK_KIB, msg="change of free memory (kB)")


def main(tap):
    try:
        preconditions()
    except Skip as e:
        tap.skip_rest(str(e))
        return
    traces = host_traces()
    lv = Libvirt()
    try:
        run_cases(tap, lv)
    finally:
        try:
            teardown(tap, lv, traces)
        finally:
            lv.stop()
            if os.environ.get("KEEP_RUN") == "1":
                tap.diag(f"kept {lv.tmp}")
            else:
                shutil.rmtree(lv.tmp, ignore_errors=True)


def run_cases(tap, lv):
    with tap.case(START):
        version = lv.start()
        tap.diag(version)
        tap.diag(f"private directory {lv.tmp}")
        check.assertIn("Running against daemon: 9.0", version)
    if not lv.up:
        return

    agent = None
    with tap.case(BOOT):
        agent = lv.boot(tap, DOMAIN, autodeflate=True)
    if agent is None:
        return

    with tap.case(DEVICE):
        balloon = ET.fromstring(lv.virsh("dumpxml", DOMAIN)).find("devices/memballoon")
        tap.diag(" ".join(ET.tostring(balloon, encoding="unicode").split()))
        check.assertEqual(balloon.get("autodeflate"), "on")
        check.assertEqual(balloon.get("freePageReporting"), "on")
        check.assertEqual(balloon.find("stats").get("period"), str(STATS_PERIOD))
        with open(lv.path("log", "qemu", DOMAIN + ".log"), errors="replace") as f:
            m = re.search(r"-device '(\{[^']*virtio-balloon-pci[^']*\})'", f.read())
        check.assertIsNotNone(m, "virtio-balloon-pci on QEMU's command line")
        tap.diag(f"QEMU: -device {m.group(1)}")
        props = json.loads(m.group(1))
        check.assertIs(props.get("deflate-on-oom"), True)
        check.assertIs(props.get("free-page-reporting"), True)
        check.assertEqual(lv.qmp("qom-get", path=BALLOON_QOM,
                                 property="guest-stats-polling-interval"), STATS_PERIOD)
        bits = features(agent)
        tap.diag(f"guest features {bits}")
        for name, bit in FEATURES.items():
            check.assertEqual(bits[bit], "1", f"{name} (bit {bit}) negotiated")

    with tap.case(SHRINK):
        setmem_autodeflate(tap, lv, agent, TARGET_MIB, -ASKED_KIB)

    with tap.case(GROW):
        setmem_autodeflate(tap, lv, agent, GUEST_MIB, ASKED_KIB)

    stats = None
    with tap.case(FIELDS):
        stats = fresh_stats(lv, time.time())
        tap.diag(" ".join(f"{k}={v}" for k, v in stats.items()))
        check.assertEqual(list(stats), DOMMEMSTAT_FIELDS)
        qom = lv.qmp("qom-get", path=BALLOON_QOM, property="guest-stats")
        meminfo = agent.meminfo()
        now = time.time()
        if qom["last-update"] == stats["last_update"]:
            for name, (qom_name, div) in GUEST_STATS.items():
                check.assertEqual(stats[name], qom["stats"][qom_name] // div,
                                  f"{name} == guest-stats {qom_name} / {div}")
            tap.diag("each guest statistic equals guest-stats of the same last-update")
        else:
            tap.diag("guest-stats moved on between the two reads: compared with /proc only")
        check.assertEqual(stats["actual"], GUEST_MIB * 1024, "actual")
        check.assertLessEqual(abs(stats["last_update"] - now), 2 * STATS_PERIOD + 5,
                              "last_update is the host's time of the last sample")
        check.assertEqual(stats["available"], meminfo["MemTotal"], "available == MemTotal")
        close_to(tap, "unused ~ MemFree", stats["unused"], meminfo["MemFree"])
        close_to(tap, "usable ~ MemAvailable", stats["usable"], meminfo["MemAvailable"])
        close_to(tap, "disk_caches ~ Cached + Buffers", stats["disk_caches"],
                 meminfo["Cached"] + meminfo["Buffers"])
        check.assertEqual((stats["swap_in"], stats["swap_out"]), (0, 0), "no swap device")
        check.assertGreater(stats["minor_fault"], stats["major_fault"])
        check.assertGreaterEqual(stats["major_fault"], 0)
        check.assertGreaterEqual(stats["hugetlb_pgalloc"], 0)
        check.assertGreaterEqual(stats["hugetlb_pgfail"], 0)
        rss = qemu_rss_kib(lv)
        tap.diag(f"rss {stats['rss']} KiB; QEMU's VmRSS now {rss} KiB")
        check.assertIsNotNone(rss, "QEMU in libvirtd's namespace")
        check.assertLessEqual(abs(stats["rss"] - rss), max(rss * 0.2, 64 * 1024),
                              "rss near QEMU's VmRSS")

    with tap.case(FOLLOWS):
        base = stats or fresh_stats(lv, time.time())
        fill_kib = FILL_MIB * 1024
        agent.sh_ok(f"dd if=/dev/zero of=/tmp/fill bs=1M count={FILL_MIB} 2>/dev/null")
        agent.sh_ok("echo 4 > /proc/sys/vm/nr_hugepages")
        full = fresh_stats(lv, time.time())
        tap.diag(f"after {FILL_MIB} MiB in tmpfs and 4 huge pages: " + " ".join(
            f"{k} {base[k]} -> {full[k]}" for k in
            ("unused", "usable", "disk_caches", "minor_fault", "hugetlb_pgalloc", "rss")))
        check.assertGreaterEqual(base["unused"] - full["unused"], fill_kib * 0.9, "unused fell")
        check.assertGreaterEqual(full["disk_caches"] - base["disk_caches"], fill_kib * 0.9,
                                 "disk_caches rose")
        check.assertGreater(full["minor_fault"], base["minor_fault"], "minor_fault grew")
        check.assertEqual(full["hugetlb_pgalloc"] - base["hugetlb_pgalloc"], 4,
                          "hugetlb_pgalloc grew by 4")
        check.assertGreaterEqual(full["rss"] - base["rss"], fill_kib * 0.9, "rss rose")
        reports = (agent.balloon_counters() or {}).get("reports")
        agent.sh_ok("rm /tmp/fill; echo 0 > /proc/sys/vm/nr_hugepages")
        freed_at = time.time()
        # Free page reporting gives what the guest freed back to the host.
        freed = wait_for(lambda: fresh_stats(lv, freed_at),
                         lambda s: full["rss"] - s["rss"] >= fill_kib * 0.5, 30, interval=1)
        tap.diag(f"after freeing: unused {freed['unused']}, disk_caches {freed['disk_caches']}, "
                 f"rss {freed['rss']}; driver's reports {reports} -> "
                 f"{(agent.balloon_counters() or {}).get('reports')}")
        check.assertGreaterEqual(freed["unused"] - full["unused"], fill_kib * 0.9,
                                 "unused rose back")
        check.assertGreaterEqual(full["rss"] - freed["rss"], fill_kib * 0.5,
                                 "rss fell (free page reporting)")

    with tap.case(PERIOD):
        lv.virsh("dommemstat", DOMAIN, "--period", "1", "--live")
        check.assertEqual(lv.qmp("qom-get", path=BALLOON_QOM,
                                 property="guest-stats-polling-interval"), 1)
        first = lv.dommemstat()["last_update"]
        later = fresh_stats(lv, first - 1, timeout=5)["last_update"]
        tap.diag(f"last_update {first} -> {later}")

    with tap.case(DESTROY):
        lv.destroy(tap, DOMAIN, agent)

    with tap.case(PLAIN):
        agent = lv.boot(tap, PLAIN_DOMAIN, autodeflate=False)
        try:
            check.assertEqual(features(agent)[FEATURES["DEFLATE_ON_OOM"]], "0",
                              "DEFLATE_ON_OOM not negotiated")
            before = agent.meminfo()["MemTotal"]
            set_and_wait(tap, lv, agent, TARGET_MIB, dom=PLAIN_DOMAIN)
            low = agent.meminfo()["MemTotal"]
            set_and_wait(tap, lv, agent, GUEST_MIB, dom=PLAIN_DOMAIN)
            back = agent.meminfo()["MemTotal"]
            tap.diag(f"MemTotal {before} -> {low} -> {back} kB")
            check.assertEqual(before - low, ASKED_KIB, "MemTotal's drop (kB)")
            check.assertEqual(back, before, "MemTotal after deflating")
        finally:
            lv.destroy(tap, PLAIN_DOMAIN, agent)


def teardown(tap, lv, traces):
    """Destroy what still runs, stop libvirtd, check nothing of it is left."""
    with tap.case(TEARDOWN):
        if lv.proc is None:
            tap.diag("libvirtd was never started")
            return
        inside = descendants(lv.proc.pid)
        tap.diag(f"in the namespace: {', '.join(comm(p) for p in inside)}")
        if lv.up and lv.proc.poll() is None:
            for name in lv.virsh_rc("list", "--name")[1].split():  # a case failed half-way
                tap.diag(f"virsh destroy {name}: {lv.virsh_rc('destroy', name)}")
        for name in (DOMAIN, PLAIN_DOMAIN):
            record_console(lv, name)
        rc = lv.stop()
        tap.diag(f"libvirtd's namespace exited with {rc}")
        if rc != 0:
            tap.diag(lv.tail("libvirtd.out") + lv.tail("log", "libvirtd.log"))
        check.assertEqual([comm(p) for p in inside if alive(p)], [], "processes left behind")
        if lv.up:
            check.assertEqual(rc, 0, "libvirtd's exit status")
        check.assertEqual(sorted(host_traces() ^ traces), [], "changed on the host")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--ns-init":
        ns_init(sys.argv[2])
    else:
        scenario.run(main, CASES, timeout=TIMEOUT)
