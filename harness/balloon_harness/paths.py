"""Where things are: the repository, the build directory, the kernels.

The kernel a VM boots is chosen here and only here: ``KERNEL`` in the
environment wins, else the image named by ``default`` (``project``,
``upstream`` or ``debug``).  :func:`initrd` gives the initramfs to boot it
with: ``INITRD`` plus the kernel's modules.
"""

import os

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
TREE = os.environ.get("TREE", os.path.join(BUILD, "linux"))
KUNIT_TOOLS = os.path.join(TREE, "tools/testing/kunit")
BZIMAGE = "arch/x86/boot/bzImage"
# The unpatched kernel is "upstream" everywhere in the harness; its build
# directory keeps the Makefile's historical name, build/baseline.
KERNEL_DIRS = {"project": "kernel", "upstream": "baseline", "debug": "debug-kernel"}
INITRD = os.environ.get("INITRD", os.path.join(BUILD, "initramfs.cpio.gz"))
RUN_DIR = os.path.join(BUILD, "run")
CHECK_DIR = os.path.join(BUILD, "check")


def kernel_image(name):
    """The bzImage of kernel ``name`` (``project``, ``upstream``, ``debug``)."""
    return os.path.join(BUILD, KERNEL_DIRS[name], BZIMAGE)


def kernel(default="project"):
    """The kernel to boot: ``$KERNEL``, else :func:`kernel_image` of ``default``."""
    return os.environ.get("KERNEL") or kernel_image(default)


def initrd(kernel_path):
    """The initramfs to boot ``kernel_path`` with: :data:`INITRD`, plus the
    kernel's modules when it has any.

    ``harness/build-kernel.sh`` installs a kernel's modules into
    ``modules.cpio.gz`` of its build directory (the one holding
    ``arch/x86/boot/bzImage``).  The kernel unpacks concatenated archives
    one after the other, so the initramfs for that kernel is INITRD with
    that archive appended, made next to it when either is newer.
    """
    kdir = os.path.dirname(os.path.abspath(kernel_path))
    for _ in BZIMAGE.split("/")[:-1]:
        kdir = os.path.dirname(kdir)
    mods = os.path.join(kdir, "modules.cpio.gz")
    if not os.path.isfile(mods) or not os.path.isfile(INITRD):
        return INITRD
    out = os.path.join(kdir, "initramfs+modules.cpio.gz")
    try:
        mtime = os.path.getmtime(out)
        if mtime >= os.path.getmtime(mods) and mtime >= os.path.getmtime(INITRD):
            return out
    except OSError:
        pass
    tmp = f"{out}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        for part in (INITRD, mods):
            with open(part, "rb") as src:
                f.write(src.read())
    os.replace(tmp, out)
    return out
