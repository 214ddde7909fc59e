"""Where things are: the repository, the build directory, the kernels.

The kernel a VM boots is chosen here and only here: ``KERNEL`` in the
environment wins, else the image named by ``default`` (``project``,
``upstream`` or ``debug``).
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
