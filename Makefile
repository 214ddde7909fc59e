# virtio-balloon series for Linux 6.12: build, run and test against QEMU.
#
#   make run      build what is missing, boot a guest, show the balloon working
#   make check    every test, one KTAP document; the last line is "N passed, N failed"
#
# See README.md for the development loop (make tree / edit / make export).

SHELL := /bin/sh
H := harness
B := build
INITRD := $(B)/initramfs.cpio.gz
# The harness is one Python package, harness/balloon_harness.
PY := PYTHONPATH=$(H) PYTHONDONTWRITEBYTECODE=1 python3
CHECK := $(PY) -m balloon_harness.check

.PHONY: all deps tree export kernel upstream baseline initramfs run check \
	check-harness check-compile check-patches check-guest check-e2e check-bench check-debug check-arm64 \
	bench soak clean distclean help

all: kernel initramfs

help:
	@sed -n '2,6p' Makefile | sed 's/^# \{0,1\}//'
	@echo "build:  deps tree export kernel upstream initramfs"
	@echo "run:    run bench soak"
	@echo "check:  check = check-harness check-compile check-patches check-guest check-e2e check-bench check-debug check-arm64"
	@echo "        (one configuration: make check-compile SCENARIOS=ppc32)"
	@echo "        (check-arm64: arm64 guests, 4K and 64K pages: guest stage and core e2e)"
	@echo "        (one scenario: make check-e2e SCENARIOS=test_stats.py)"
	@echo "clean:  clean distclean"

# ---- build steps -----------------------------------------------------------

# Installs missing Debian packages; a no-op (a second) when all are there.
deps:
	@$(H)/install-deps.sh

tree: deps
	@$(H)/make-tree.sh

export:
	@$(H)/export-series.sh

kernel: tree
	@$(H)/build-kernel.sh $(B)/linux $(B)/kernel configs/project.config >/dev/null

# The unpatched kernel every comparison is made against, in build/baseline.
upstream: tree
	@$(H)/make-upstream.sh >/dev/null
baseline: upstream

initramfs: tree
	@$(H)/build-initramfs.sh $(INITRD)

run: kernel initramfs
	@$(PY) $(H)/demo.py

# The project against upstream, interleaved rounds, into results/latest
# (README.md, "Benchmarks").  SCENARIO=name runs one, ROUNDS=N sets the rounds.
bench: kernel upstream initramfs
	@$(PY) bench/run.py

# ---- test stages (harness/balloon_harness/check.py) ------------------------

# Every stage, one KTAP document counted by the kernel's KTAP parser.
check: kernel upstream initramfs
	@$(CHECK)

# The stages one at a time; SCENARIOS picks scenario files of a stage.
check-harness: tree
	@$(CHECK) harness
# The series' files compile without a diagnostic (W=1, sparse, modpost) in
# Debian's amd64 and arm64 configurations, 32-bit big-endian powerpc and
# i386; only the touched objects are built (harness/check-compile.sh).
# SCENARIOS picks configurations: debian-amd64 debian-arm64 ppc32 i386.
check-compile: tree
	@$(CHECK) compile $(SCENARIOS)
check-patches: upstream
	@$(CHECK) patches
check-guest: kernel initramfs
	@$(CHECK) guest
check-e2e: kernel upstream initramfs
	@$(CHECK) e2e $(SCENARIOS)
# Every benchmark scenario once at a tiny size: proves it works, times nothing.
check-bench: kernel upstream initramfs
	@$(CHECK) bench
# The debug kernel (configs/debug.config: lockdep, KASAN, DEBUG_VM,
# DEBUG_PAGEALLOC, kmemleak, hung tasks, fault injection) builds, a test
# point of its own, then short reliability scenarios run on it.
check-debug: tree initramfs
	@$(CHECK) debug $(SCENARIOS)
# arm64 guests (cross-built kernels with 4 KiB and 64 KiB pages, booted
# under qemu-system-aarch64 -M virt, TCG): the guest stage and the core
# e2e scenarios on each.  The stage builds its own initramfs and kernels.
# SCENARIOS=64K runs one page size, SCENARIOS=test_stats one scenario.
check-arm64: tree
	@$(CHECK) arm64 $(SCENARIOS)
# The same scenarios, long: SOAK_SECONDS per timed scenario, a migration
# integrity round and a fault-time migration per minute of it,
# SOAK_CYCLES removal cycles; ends with duration, pages verified, faults
# injected and bad pages.  Each scenario's timeout follows its durations.
SOAK_SECONDS ?= 600
SOAK_CYCLES ?= 100
soak: tree initramfs
	@CHURN_SECONDS=$(SOAK_SECONDS) FAULTS_SECONDS=$(SOAK_SECONDS) \
		FAULTS_MIGRATIONS=$$(( $(SOAK_SECONDS) / 60 )) \
		INTEGRITY_ROUNDS=$$(( $(SOAK_SECONDS) / 60 )) \
		OOM_PRESSURE_SECONDS=$$(( $(SOAK_SECONDS) / 4 )) \
		REMOVAL_CYCLES=$(SOAK_CYCLES) $(CHECK) debug $(SCENARIOS)

# Build outputs only; the tree (and any unexported work in it) stays.
clean:
	rm -rf $(B)/kernel $(B)/baseline $(B)/bisect $(B)/initramfs $(INITRD) \
		$(B)/selftests $(B)/run $(B)/check $(B)/bench $(B)/bench-quick $(B)/compile-* \
		$(B)/arm64-kernel-4k $(B)/arm64-kernel-64k $(B)/initramfs-arm64 \
		$(B)/initramfs-arm64.cpio.gz $(B)/selftests-arm64

distclean:
	@if [ -d $(B)/linux/.git ] && [ -n "$$(git -C $(B)/linux status --porcelain --untracked-files=no)" ]; then \
		echo "build/linux has uncommitted changes; commit and make export first"; exit 1; fi
	rm -rf $(B)
