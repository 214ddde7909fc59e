// SPDX-License-Identifier: GPL-2.0
/*
 * workset: a checksummed working set that keeps changing, to prove that
 * guest memory survives a live migration (or anything else) intact.
 *
 *   workset run [-r RATE] MIB SECONDS
 *	allocate MIB MiB, fill it, then for SECONDS (or until SIGTERM or
 *	SIGUSR1) rewrite RATE random pages per second and verify 4*RATE
 *	pages per second in order; end with a full verification pass and
 *	print "pages N verified V rewritten R bad B"; exit 1 if B > 0.
 *   workset start [-r RATE] [-f FILE] [-H] MIB
 *	the same in a background process that runs until "workset check";
 *	returns once the set is filled and prints "started PID pages N".
 *	FILE (default /tmp/workset) gets ".pid"; FILE itself holds
 *	"running pages N ..." (updated every second), then "done pages N ...".
 *	Bad pages are described in FILE.err.  -H ("holes"): allocate MIB
 *	MiB as 2 MiB aligned chunks (huge pages when THP is "always"; a
 *	kernel without madvise() cannot ask for them otherwise), then
 *	free every other chunk and keep the rest as the set: the guest's
 *	free memory is then in pieces of at most 2 MiB.
 *   workset status [-f FILE]
 *	print the background set's current line.
 *   workset check [-f FILE] [-t SECONDS]
 *	stop the background set (SIGUSR1), wait for its final full pass
 *	(default at most 120 s) and print "pages N verified V rewritten R
 *	bad B"; exit 1 if B > 0, 2 if the set is gone without a verdict.
 *
 * RATE defaults to 1000 pages/s, little enough for a TCG migration at
 * QEMU's default bandwidth to converge; -r 0 only verifies (400 pages/s).
 *
 * Page layout (4 KiB = 512 64-bit words): word 0 the page index, word 1
 * its generation, words 2..510 a pattern derived from both, word 511 a
 * checksum of words 0..510.  A page that reads back as anything else
 * (zero, stale, another page's data) is bad; it is then rewritten with
 * a new generation, so that one corruption is counted once.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE_WORDS 512
#define PAGE 4096UL
#define CHUNK (2UL << 20)
#define TICKS_PER_S 100
#define MAX_BAD_REPORTS 20

struct set {
	uint64_t **page;	/* page[i]: address of page i */
	uint32_t *gen;		/* generation page i was last written with */
	unsigned long n;
	unsigned long verified, rewritten, bad, cursor;
	uint64_t rng;
	FILE *err;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t pattern(uint64_t seed, unsigned int k)
{
	return seed ^ (k * 0x9e3779b97f4a7c15ULL);
}

static uint64_t checksum(const uint64_t *w)
{
	uint64_t c = 0x6a09e667f3bcc908ULL;
	unsigned int k;

	for (k = 0; k < PAGE_WORDS - 1; k++)
		c = ((c << 5) | (c >> 59)) ^ w[k];
	return c;
}

static void write_page(struct set *s, unsigned long i)
{
	uint64_t *w = s->page[i];
	uint64_t seed = mix(((uint64_t)i << 32) | s->gen[i]);
	unsigned int k;

	w[0] = i;
	w[1] = s->gen[i];
	for (k = 2; k < PAGE_WORDS - 1; k++)
		w[k] = pattern(seed, k);
	w[PAGE_WORDS - 1] = checksum(w);
}

/* Guest-physical frame of @addr from /proc/self/pagemap; 0 if unknown. */
static unsigned long long pfn_of(const void *addr)
{
	uint64_t entry = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &entry, sizeof(entry), (uintptr_t)addr / PAGE * sizeof(entry)) !=
	    sizeof(entry))
		entry = 0;
	close(fd);
	return (entry >> 63) ? entry & ((1ULL << 55) - 1) : 0;
}

static void verify_page(struct set *s, unsigned long i)
{
	const uint64_t *w = s->page[i];
	uint64_t seed = mix(((uint64_t)i << 32) | s->gen[i]);
	unsigned int k, wrong = 0, first = 0;

	if (w[0] != i || w[1] != s->gen[i])
		wrong++;
	for (k = 2; k < PAGE_WORDS - 1; k++) {
		if (w[k] != pattern(seed, k) && !wrong++)
			first = k;
	}
	if (w[PAGE_WORDS - 1] != checksum(w))
		wrong++;
	s->verified++;
	if (!wrong)
		return;
	if (s->bad++ < MAX_BAD_REPORTS)
		fprintf(s->err, "bad page %lu at %p (pfn %#llx): expected gen %u, found index %llu "
			"gen %llu, %u wrong words (first pattern word %u: %#llx)\n", i, (void *)w,
			pfn_of(w), s->gen[i], (unsigned long long)w[0], (unsigned long long)w[1],
			wrong, first, (unsigned long long)w[first]);
	fflush(s->err);
	s->gen[i]++;
	write_page(s, i);
	s->rewritten++;
}

static void *map(size_t len)
{
	void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (mem == MAP_FAILED) {
		fprintf(stderr, "workset: mmap %zu bytes: %s\n", len, strerror(errno));
		exit(1);
	}
	return mem;
}

/* Allocate and fill the set; with holes, keep every other 2 MiB chunk. */
static void build(struct set *s, unsigned long mib, int holes)
{
	size_t len = mib << 20, off;
	char *mem;
	unsigned long i;

	if (holes)	/* whole chunks only, at least one */
		len = len < CHUNK ? CHUNK : len - len % CHUNK;
	s->n = holes ? (len / CHUNK + 1) / 2 * (CHUNK / PAGE) : len / PAGE;
	s->page = calloc(s->n, sizeof(*s->page));
	s->gen = calloc(s->n, sizeof(*s->gen));
	if (!s->page || !s->gen) {
		fprintf(stderr, "workset: out of memory for the page table\n");
		exit(1);
	}
	s->rng = mix((uint64_t)getpid() << 32 ^ (uint64_t)time(NULL));
	if (!holes) {
		mem = map(len);
		for (i = 0; i < s->n; i++)
			s->page[i] = (uint64_t *)(mem + i * PAGE);
	} else {
		/* 2 MiB aligned, so that each chunk can be one huge page. */
		mem = map(len + CHUNK);
		mem = (char *)(((uintptr_t)mem + CHUNK - 1) & ~(CHUNK - 1));
		madvise(mem, len, MADV_HUGEPAGE);	/* ENOSYS in the test guest */
		/* Touch every chunk first, in order, so neighbours are allocated together. */
		for (off = 0; off < len; off += PAGE)
			mem[off] = 1;
		for (off = 0, i = 0; off < len; off += CHUNK) {
			unsigned long p;

			if ((off / CHUNK) % 2) {
				munmap(mem + off, CHUNK);
				continue;
			}
			for (p = 0; p < CHUNK / PAGE; p++)
				s->page[i++] = (uint64_t *)(mem + off + p * PAGE);
		}
	}
	for (i = 0; i < s->n; i++)
		write_page(s, i);
}

static unsigned long random_page(struct set *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return s->rng % s->n;
}

/* One tick's work: rewrite rate/TICKS_PER_S random pages, verify 4x as many (at least 4). */
static void tick(struct set *s, unsigned long rate)
{
	unsigned long k, writes = (rate + TICKS_PER_S - 1) / TICKS_PER_S;
	unsigned long reads = 4 * (writes ? writes : 1);

	for (k = 0; k < writes; k++) {
		unsigned long i = random_page(s);

		s->gen[i]++;
		write_page(s, i);
		s->rewritten++;
	}
	for (k = 0; k < reads; k++) {
		verify_page(s, s->cursor);
		s->cursor = (s->cursor + 1) % s->n;
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
	double left = t - now();
	struct timespec ts;

	if (left <= 0)
		return;
	ts.tv_sec = (time_t)left;
	ts.tv_nsec = (long)((left - ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);	/* a signal cuts it short: fine */
}

static void line(struct set *s, char *buf, size_t size)
{
	snprintf(buf, size, "pages %lu verified %lu rewritten %lu bad %lu", s->n, s->verified,
		 s->rewritten, s->bad);
}

static void write_status(const char *file, const char *state, struct set *s)
{
	char tmp[4096], text[256];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	line(s, text, sizeof(text));
	f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "%s %s\n", state, text);
	fclose(f);
	rename(tmp, file);
}

/* Work until ``seconds`` have passed (0: until a signal), then verify all. */
static void work(struct set *s, unsigned long rate, double seconds, const char *file)
{
	double start = now(), next = start, report = start + 1;
	unsigned long i;

	while (!stop && (!seconds || now() - start < seconds)) {
		tick(s, rate);
		next += 1.0 / TICKS_PER_S;
		if (next < now() - 1)	/* fell far behind (a paused VM): do not catch up */
			next = now();
		if (file && now() >= report) {
			write_status(file, "running", s);
			report += 1;
		}
		sleep_until(next);
	}
	for (i = 0; i < s->n; i++)
		verify_page(s, i);
}

static void usage(void)
{
	fprintf(stderr, "usage: workset run [-r RATE] MIB SECONDS\n"
		"       workset start [-r RATE] [-f FILE] [-H] MIB\n"
		"       workset status [-f FILE]\n"
		"       workset check [-f FILE] [-t SECONDS]\n");
	exit(2);
}

static unsigned long number(const char *text, int zero_ok)
{
	char *end;
	unsigned long value;

	errno = 0;
	value = strtoul(text, &end, 0);
	if (errno || *end || !*text || (!value && !zero_ok))
		usage();
	return value;
}

static void catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

static int cmd_run(unsigned long rate, unsigned long mib, unsigned long seconds)
{
	struct set s = { .err = stderr };
	char text[256];

	catch_signals();
	build(&s, mib, 0);
	work(&s, rate, seconds, NULL);
	line(&s, text, sizeof(text));
	printf("%s\n", text);
	return s.bad ? 1 : 0;
}

static char *with_suffix(const char *file, const char *suffix)
{
	static char buf[4][4096];
	static int next;
	char *out = buf[next++ % 4];

	snprintf(out, sizeof(buf[0]), "%s%s", file, suffix);
	return out;
}

static int cmd_start(unsigned long rate, const char *file, int holes, unsigned long mib)
{
	struct set s = { 0 };
	int ready[2], null;
	char msg[64];
	ssize_t got;
	pid_t pid;
	FILE *f;

	if (pipe(ready)) {
		perror("workset: pipe");
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		perror("workset: fork");
		return 1;
	}
	if (pid) {	/* parent: wait until the set is filled */
		close(ready[1]);
		got = read(ready[0], msg, sizeof(msg) - 1);
		if (got <= 0) {
			int status = 0;

			waitpid(pid, &status, 0);
			fprintf(stderr, "workset: background set died while filling (%s %d)\n",
				WIFSIGNALED(status) ? "signal" : "exit status",
				WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
			return 1;
		}
		msg[got] = 0;
		printf("started %d %s\n", (int)pid, msg);
		return 0;
	}
	close(ready[0]);
	setsid();
	catch_signals();
	null = open("/dev/null", O_RDWR);
	dup2(null, 0);
	dup2(null, 1);
	s.err = fopen(with_suffix(file, ".err"), "w");
	if (!s.err)
		s.err = stderr;
	dup2(fileno(s.err), 2);
	unlink(file);
	f = fopen(with_suffix(file, ".pid"), "w");
	if (f) {
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}
	build(&s, mib, holes);
	write_status(file, "running", &s);
	snprintf(msg, sizeof(msg), "pages %lu", s.n);
	if (write(ready[1], msg, strlen(msg)) < 0)
		return 1;
	close(ready[1]);
	work(&s, rate, 0, file);
	write_status(file, "done", &s);
	return s.bad ? 1 : 0;
}

/* The first line of ``file``, or "" if it cannot be read. */
static void read_line(const char *file, char *buf, size_t size)
{
	FILE *f = fopen(file, "r");

	buf[0] = 0;
	if (!f)
		return;
	if (!fgets(buf, size, f))
		buf[0] = 0;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
}

static int cmd_check(const char *file, unsigned long timeout, int stop_it)
{
	char text[256], errtext[4096];
	double deadline = now() + timeout;
	unsigned long bad = 0;
	int pid = 0, alive;
	char *p;
	FILE *f;

	read_line(with_suffix(file, ".pid"), text, sizeof(text));
	pid = atoi(text);
	if (!stop_it) {
		read_line(file, text, sizeof(text));
		printf("%s\n", text[0] ? text : "none");
		return text[0] ? 0 : 2;
	}
	if (pid <= 0 || kill(pid, SIGUSR1)) {
		fprintf(stderr, "workset: no background set (%s.pid)\n", file);
		return 2;
	}
	for (;;) {
		alive = !kill(pid, 0);
		read_line(file, text, sizeof(text));
		if (!strncmp(text, "done ", 5) || !alive || now() > deadline)
			break;
		usleep(50000);
	}
	if (strncmp(text, "done ", 5)) {
		fprintf(stderr, "workset: set %d %s without a verdict (last: %s)\n", pid,
			alive ? "still busy" : "gone", text);
		return 2;
	}
	printf("%s\n", text + 5);
	f = fopen(with_suffix(file, ".err"), "r");
	while (f && fgets(errtext, sizeof(errtext), f))
		fputs(errtext, stdout);
	if (f)
		fclose(f);
	p = strstr(text, " bad ");
	if (p)
		bad = strtoul(p + 5, NULL, 10);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	unsigned long rate = 1000, timeout = 120;
	const char *file = "/tmp/workset";
	const char *mode;
	int holes = 0, opt;

	if (argc < 2)
		usage();
	mode = argv[1];
	argv++;
	argc--;
	while ((opt = getopt(argc, argv, "r:f:t:H")) != -1) {
		switch (opt) {
		case 'r':
			rate = number(optarg, 1);
			break;
		case 'f':
			file = optarg;
			break;
		case 't':
			timeout = number(optarg, 0);
			break;
		case 'H':
			holes = 1;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (!strcmp(mode, "run") && argc == 2)
		return cmd_run(rate, number(argv[0], 0), number(argv[1], 0));
	if (!strcmp(mode, "start") && argc == 1)
		return cmd_start(rate, file, holes, number(argv[0], 0));
	if (!strcmp(mode, "status") && argc == 0)
		return cmd_check(file, 0, 0);
	if (!strcmp(mode, "check") && argc == 0)
		return cmd_check(file, timeout, 1);
	usage();
	return 2;
}
