// SPDX-License-Identifier: GPL-2.0
/*
 * pagefault-bench: a page_fault1-style workload (after will-it-scale).
 *
 *   pagefault-bench THREADS MIB SECONDS
 *
 * Each of THREADS threads maps MIB MiB of private anonymous memory,
 * writes one byte to every 4 KiB page (one page fault each: the mapping
 * is MADV_NOHUGEPAGE, so THP cannot turn 512 faults into one), unmaps it,
 * and starts again, until SECONDS have passed.  Every fault allocates a
 * page and every munmap frees them all, so the page allocator's free
 * lists churn: what free page reporting sees and may report in between.
 *
 * Prints one line of key=value pairs:
 *   threads=N mib=M seconds=S faults=F rounds=R faults_per_s=X
 * "faults" counts pages touched (will-it-scale's operations), "rounds"
 * the completed map/touch/unmap cycles of all threads.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static atomic_int stop;
static size_t map_len;
static size_t page_size;

struct worker {
	pthread_t thread;
	unsigned long faults;
	unsigned long rounds;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		char *mem;
		size_t off;

		mem = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED) {
			perror("pagefault-bench: mmap");
			exit(1);
		}
		madvise(mem, map_len, MADV_NOHUGEPAGE);
		for (off = 0; off < map_len; off += page_size) {
			mem[off] = 1;
			w->faults++;
			if (atomic_load_explicit(&stop, memory_order_relaxed))
				break;
		}
		if (off >= map_len)
			w->rounds++;
		munmap(mem, map_len);
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long arg(const char *text)
{
	char *end;
	unsigned long value = strtoul(text, &end, 0);

	if (*end || !value) {
		fprintf(stderr, "usage: pagefault-bench THREADS MIB SECONDS\n");
		exit(2);
	}
	return value;
}

int main(int argc, char **argv)
{
	unsigned long threads, mib, seconds, faults = 0, rounds = 0, i;
	struct worker *workers;
	double start, elapsed;

	if (argc != 4)
		arg("");
	threads = arg(argv[1]);
	mib = arg(argv[2]);
	seconds = arg(argv[3]);
	map_len = mib << 20;
	page_size = sysconf(_SC_PAGESIZE);

	workers = calloc(threads, sizeof(*workers));
	if (!workers) {
		perror("pagefault-bench: calloc");
		return 1;
	}
	start = now();
	for (i = 0; i < threads; i++) {
		if (pthread_create(&workers[i].thread, NULL, work, &workers[i])) {
			fprintf(stderr, "pagefault-bench: pthread_create failed\n");
			return 1;
		}
	}
	sleep(seconds);
	atomic_store(&stop, 1);
	for (i = 0; i < threads; i++) {
		pthread_join(workers[i].thread, NULL);
		faults += workers[i].faults;
		rounds += workers[i].rounds;
	}
	elapsed = now() - start;
	printf("threads=%lu mib=%lu seconds=%.3f faults=%lu rounds=%lu faults_per_s=%.0f\n",
	       threads, mib, elapsed, faults, rounds, faults / elapsed);
	return 0;
}
