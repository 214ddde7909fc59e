"""Where things are: the repository, the build directory, the kernels.

The kernel a VM boots is chosen here and only here: ``KERNEL`` in the
environment wins, else the image named by ``default`` (``project``,
``upstream``, ``debug``, ``arm64-4k`` or ``arm64-64k``).  :func:`arch`
tells the architecture of a kernel image (x86_64 or arm64) from the image
itself, so that everything else (the initramfs, the QEMU machine, the
console) follows from the kernel being booted.  :func:`initrd` gives the
initramfs to boot it with: the architecture's (``INITRD`` overrides it)
plus the kernel's modules.
"""

import os

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
TREE = os.environ.get("TREE", os.path.join(BUILD, "linux"))
KUNIT_TOOLS = os.path.join(TREE, "tools/testing/kunit")
# The boot image of each architecture, in its kernel build directory.
IMAGES = {"x86_64": "arch/x86/boot/bzImage", "arm64": "arch/arm64/boot/Image"}
BZIMAGE = IMAGES["x86_64"]
# The unpatched kernel is "upstream" everywhere in the harness; its build
# directory keeps the Makefile's historical name, build/baseline.  The
# arm64 kernels (harness/build-arm64-kernel.sh) are the project kernel
# with 4 KiB and with 64 KiB pages.
KERNEL_DIRS = {"project": "kernel", "upstream": "baseline", "debug": "debug-kernel",
               "arm64-4k": "arm64-kernel-4k", "arm64-64k": "arm64-kernel-64k"}
# The initramfs of each architecture (harness/build-initramfs.sh).
INITRDS = {"x86_64": os.path.join(BUILD, "initramfs.cpio.gz"),
           "arm64": os.path.join(BUILD, "initramfs-arm64.cpio.gz")}
RUN_DIR = os.path.join(BUILD, "run")
CHECK_DIR = os.path.join(BUILD, "check")
# An arm64 Image has this magic at byte 56 (Documentation/arch/arm64/booting.rst).
ARM64_MAGIC_OFFSET = 56
ARM64_MAGIC = b"ARM\x64"


def kernel_image(name):
    """The boot image of kernel ``name`` (``project``, ``upstream``, ``debug``,
    ``arm64-4k``, ``arm64-64k``)."""
    image = IMAGES["arm64" if name.startswith("arm64") else "x86_64"]
    return os.path.join(BUILD, KERNEL_DIRS[name], image)


def arch(kernel_path):
    """``arm64`` if ``kernel_path`` is an arm64 Image, else ``x86_64``.

    Read from the image's header, not its name: a kernel copied anywhere
    still boots on the right QEMU.  A missing file is x86_64 (the VM then
    reports it missing).
    """
    try:
        with open(kernel_path, "rb") as f:
            head = f.read(ARM64_MAGIC_OFFSET + len(ARM64_MAGIC))
    except OSError:
        return "x86_64"
    return "arm64" if head[ARM64_MAGIC_OFFSET:] == ARM64_MAGIC else "x86_64"


def initramfs(kernel_path):
    """The initramfs for ``kernel_path``'s architecture: ``INITRD`` in the
    environment, else :data:`INITRDS`' (without the kernel's modules)."""
    return os.environ.get("INITRD") or INITRDS[arch(kernel_path)]


def kernel(default="project"):
    """The kernel to boot: ``$KERNEL``, else :func:`kernel_image` of ``default``."""
    return os.environ.get("KERNEL") or kernel_image(default)


def initrd(kernel_path):
    """The initramfs to boot ``kernel_path`` with: :func:`initramfs`, plus the
    kernel's modules when it has any.

    ``harness/build-kernel.sh`` installs a kernel's modules into
    ``modules.cpio.gz`` of its build directory (the one holding
    ``arch/x86/boot/bzImage`` or ``arch/arm64/boot/Image``).  The kernel
    unpacks concatenated archives one after the other, so the initramfs
    for that kernel is the initramfs with that archive appended, made next
    to it when either is newer.
    """
    base = initramfs(kernel_path)
    kdir = os.path.dirname(os.path.abspath(kernel_path))
    for _ in IMAGES[arch(kernel_path)].split("/")[:-1]:
        kdir = os.path.dirname(kdir)
    mods = os.path.join(kdir, "modules.cpio.gz")
    if not os.path.isfile(mods) or not os.path.isfile(base):
        return base
    out = os.path.join(kdir, "initramfs+modules.cpio.gz")
    try:
        mtime = os.path.getmtime(out)
        if mtime >= os.path.getmtime(mods) and mtime >= os.path.getmtime(base):
            return out
    except OSError:
        pass
    tmp = f"{out}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        for part in (base, mods):
            with open(part, "rb") as src:
                f.write(src.read())
    os.replace(tmp, out)
    return out
