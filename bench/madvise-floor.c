// SPDX-License-Identifier: GPL-2.0
/*
 * madvise-floor: the host's share of a balloon inflate on QEMU 7.2.
 *
 *   madvise-floor MIB untouched|touched-4k|touched-thp
 *
 * QEMU 7.2 discards every ballooned page with its own
 * madvise(MADV_DONTNEED) of 4 KiB (virtio_balloon_handle_output ->
 * balloon_inflate_page -> ram_block_discard_range), whatever the guest
 * sends.  This maps MIB MiB of private anonymous memory, as QEMU maps
 * guest RAM, and times exactly that loop: one madvise per 4 KiB page, one
 * thread.  No inflate of MIB MiB can be faster on this host and this QEMU.
 *
 * The modes match the states guest RAM is in when the balloon takes it:
 *   untouched    never written: no page tables, nothing to free
 *   touched-4k   written, backed by 4 KiB pages (MADV_NOHUGEPAGE)
 *   touched-thp  written after MADV_HUGEPAGE, as QEMU advises guest RAM:
 *                the first madvise in each 2 MiB splits a huge page
 *
 * Prints one line of key=value pairs: mode, mib, pages, seconds (the
 * madvise loop only), us_per_page, gib_per_s, anon_huge_kib (THP backing
 * of the mapping before the loop).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define HUGE (2UL << 20)

static void usage(void)
{
	fprintf(stderr, "usage: madvise-floor MIB untouched|touched-4k|touched-thp\n");
	exit(2);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* AnonHugePages of this process in KiB, or -1 if it cannot be read. */
static long anon_huge_kib(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

int main(int argc, char **argv)
{
	unsigned long mib, off, len;
	int touch, advice;
	unsigned char *mem;
	double start, secs;
	long huge_kib;
	char *end;

	if (argc != 3)
		usage();
	mib = strtoul(argv[1], &end, 0);
	if (*end || !mib)
		usage();
	if (!strcmp(argv[2], "untouched")) {
		touch = 0;
		advice = MADV_HUGEPAGE;
	} else if (!strcmp(argv[2], "touched-4k")) {
		touch = 1;
		advice = MADV_NOHUGEPAGE;
	} else if (!strcmp(argv[2], "touched-thp")) {
		touch = 1;
		advice = MADV_HUGEPAGE;
	} else {
		usage();
	}

	/* Over-allocate by 2 MiB so the range can start on a huge page. */
	len = mib << 20;
	mem = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		perror("madvise-floor: mmap");
		return 1;
	}
	mem = (unsigned char *)(((unsigned long)mem + HUGE - 1) & ~(HUGE - 1));
	if (madvise(mem, len, advice))
		perror("madvise-floor: madvise(advice)");
	if (touch)
		for (off = 0; off < len; off += PAGE)
			mem[off] = 1;
	huge_kib = anon_huge_kib();

	start = now();
	for (off = 0; off < len; off += PAGE) {
		if (madvise(mem + off, PAGE, MADV_DONTNEED)) {
			perror("madvise-floor: madvise(MADV_DONTNEED)");
			return 1;
		}
	}
	secs = now() - start;

	printf("mode=%s mib=%lu pages=%lu seconds=%.6f ",
	       argv[2], mib, len / PAGE, secs);
	printf("us_per_page=%.4f gib_per_s=%.3f anon_huge_kib=%ld\n",
	       secs * 1e6 / (len / PAGE), mib / 1024.0 / secs, huge_kib);
	return 0;
}
