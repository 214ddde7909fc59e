# virtio-balloon series for Linux 6.12: build, run and test against QEMU.
#
#   make run      build what is missing, boot a guest, show the balloon working
#   make check    every test; the last line is "N passed, N failed"
#
# See README.md for the development loop (make tree / edit / make export).

SHELL := /bin/sh
H := harness
B := build
KERNEL := $(B)/kernel/arch/x86/boot/bzImage
BASELINE := $(B)/baseline/arch/x86/boot/bzImage
INITRD := $(B)/initramfs.cpio.gz

.PHONY: all deps tree export kernel baseline initramfs run check \
	check-patches check-guest check-e2e bench check-bench clean distclean help \
	check-debug soak

all: kernel initramfs

help:
	@sed -n '2,6p' Makefile | sed 's/^# \{0,1\}//'
	@echo "targets: deps tree export kernel baseline initramfs run check check-patches check-guest"
	@echo "         check-e2e check-bench check-debug soak bench clean distclean"

# Installs missing Debian packages; a no-op (a second) when all are there.
deps:
	@$(H)/install-deps.sh

tree: deps
	@$(H)/make-tree.sh

export:
	@$(H)/export-series.sh

kernel: tree
	@$(H)/build-kernel.sh $(B)/linux $(B)/kernel configs/project.config >/dev/null

baseline: tree
	@$(H)/make-baseline.sh >/dev/null

initramfs: tree
	@$(H)/build-initramfs.sh $(INITRD)

run: kernel initramfs
	@python3 $(H)/demo.py

check: kernel baseline initramfs
	@$(H)/check.sh

# The stages of make check, one at a time.
check-patches: tree
	@$(H)/check-patches.sh
check-guest: kernel initramfs
	@python3 tests/guest/run-in-guest.py
check-e2e: kernel initramfs
	@tests/e2e/run-all.sh

# The project against upstream, interleaved rounds, into results/latest
# (README.md, "Benchmarks").  SCENARIO=name runs one, ROUNDS=N sets the rounds.
bench: kernel baseline initramfs
	@python3 bench/run.py
# Every benchmark scenario once at a tiny size: proves it works, times nothing.
check-bench: kernel baseline initramfs
	@BENCH_QUICK=1 python3 bench/run.py

# The debug kernel (configs/debug.config: lockdep, KASAN, DEBUG_VM,
# DEBUG_PAGEALLOC, kmemleak, hung tasks, fault injection) and the
# reliability scenarios on it (tests/reliability/).  check-debug, the last
# stage of make check, runs short versions of every scenario, each killed
# after 5 minutes; soak runs long ones (SOAK_SECONDS per timed scenario, a
# migration integrity round and a fault-time migration per minute of it,
# SOAK_CYCLES removal cycles) and ends with duration, pages verified,
# faults injected and bad pages.  A debug kernel that does not build
# prints a failed reliability count, so that it is counted, not lost.
DEBUG_KERNEL = $(H)/build-debug-kernel.sh >/dev/null || \
	{ echo "\# reliability: 0 passed, 1 failed: the debug kernel did not build"; exit 1; }
check-debug: tree initramfs
	@$(DEBUG_KERNEL)
	@CHURN_SECONDS=20 FAULTS_SECONDS=20 OOM_PRESSURE_SECONDS=25 REMOVAL_CYCLES=3 \
		RELIABILITY_TIMEOUT=300 tests/reliability/run-all.sh
SOAK_SECONDS ?= 600
SOAK_CYCLES ?= 100
soak: tree initramfs
	@$(DEBUG_KERNEL)
	@CHURN_SECONDS=$(SOAK_SECONDS) FAULTS_SECONDS=$(SOAK_SECONDS) \
		FAULTS_MIGRATIONS=$$(( $(SOAK_SECONDS) / 60 )) \
		INTEGRITY_ROUNDS=$$(( $(SOAK_SECONDS) / 60 )) \
		OOM_PRESSURE_SECONDS=$$(( $(SOAK_SECONDS) / 4 )) \
		REMOVAL_CYCLES=$(SOAK_CYCLES) RELIABILITY_TIMEOUT=$$(( $(SOAK_SECONDS) * 3 + 3600 )) \
		tests/reliability/run-all.sh

# Build outputs only; the tree (and any unexported work in it) stays.
clean:
	rm -rf $(B)/kernel $(B)/baseline $(B)/bisect $(B)/initramfs $(INITRD) \
		$(B)/selftests $(B)/run $(B)/check $(B)/bench $(B)/bench-quick

distclean:
	@if [ -d $(B)/linux/.git ] && [ -n "$$(git -C $(B)/linux status --porcelain --untracked-files=no)" ]; then \
		echo "build/linux has uncommitted changes; commit and make export first"; exit 1; fi
	rm -rf $(B)
