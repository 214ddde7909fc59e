"""The host side of the virtio-balloon test harness (standard library only).

One job per module, imported in this order (each imports only modules
above it):

``paths``     where the tree, the kernels, the initramfs and run directories are
``errors``    VMError, the one exception a guest or QEMU failure raises
``lines``     a UNIX stream socket read one line at a time
``qmp``       the QMP client
``agent``     the guest agent on ttyS1 (hvc0 on arm64): shell commands and guest facts
``host``      host facts: QEMU's RSS, host huge pages, free TCP ports
``console``   kernel reports (BUG, WARNING, lockdep, KASAN, ...) on a console
``vm``        a QEMU process with a virtio-balloon guest (x86_64 or arm64)
``migration`` live migration: to a null sink or to a second QEMU
``balloon``   checks scenarios share: set the target and wait, the
              working set, a remove/re-probe cycle
``ktap``      KTAP lines: results, plans, indentation, parsing them back
``scenario``  the runtime of one scenario: registered cases, its timeout,
              the console case, exit codes (4 = skip, as in kselftest)
``stage``     runs scenarios (or a command) with their timeouts and nests
              their KTAP; counts every case a dead scenario did not run
``count``     the kernel's own KTAP parser (kunit_parser) gives the counts
``check``     make check: every stage as one KTAP document
``selftest``  proves the counting with stand-in scenarios
"""
