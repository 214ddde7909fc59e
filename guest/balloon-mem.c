// SPDX-License-Identifier: GPL-2.0
/*
 * balloon-mem: make the guest memory states the balloon tests need.
 *
 *   balloon-mem fill MIB   dirty MIB MiB of anonymous memory, then exit,
 *                          which frees it: "free but dirty" memory that the
 *                          host still backs until it is reported or hinted
 *   balloon-mem hold MIB   dirty MIB MiB and keep it until stdin closes or
 *                          a line arrives
 *
 * Every page gets a distinct non-zero stamp, so QEMU neither sees it as a
 * zero page during migration nor shares it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void usage(void)
{
	fprintf(stderr, "usage: balloon-mem fill|hold MIB\n");
	exit(2);
}

static unsigned char *dirty(unsigned long mib)
{
	size_t page = sysconf(_SC_PAGESIZE);
	size_t len = mib << 20;
	unsigned char *mem;
	size_t off;

	mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (mem == MAP_FAILED) {
		perror("balloon-mem: mmap");
		exit(1);
	}
	for (off = 0; off < len; off += page) {
		unsigned long stamp = 0x5a5a000000000000UL | (off / page);

		memcpy(mem + off, &stamp, sizeof(stamp));
	}
	return mem;
}

int main(int argc, char **argv)
{
	unsigned long mib;
	char *end;

	if (argc != 3)
		usage();
	mib = strtoul(argv[2], &end, 0);
	if (*end || !mib)
		usage();

	if (!strcmp(argv[1], "fill")) {
		dirty(mib);
		printf("filled %lu\n", mib);
	} else if (!strcmp(argv[1], "hold")) {
		char line[16];

		dirty(mib);
		printf("holding %lu\n", mib);
		fflush(stdout);
		/* A line or EOF on stdin releases the memory. */
		if (!fgets(line, sizeof(line), stdin) && ferror(stdin))
			perror("balloon-mem: stdin");
		printf("released %lu\n", mib);
	} else {
		usage();
	}
	return 0;
}
