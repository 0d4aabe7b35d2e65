/*
 * Prints the host's TSC rate in kHz, measured against CLOCK_MONOTONIC: QEMU's TCG gives a guest
 * the host's TSC ticks as its own (cpu_get_ticks reads the host's rdtsc), so the guest kernel
 * must be told this rate, or every clock in the guest runs fast or slow by the difference.
 *
 * Each end of the window is a TSC read bracketed by two clock reads; the narrowest bracket of a
 * few tries is kept, so an interrupt or preemption between the reads cannot skew the result.
 * Over 200 ms a bracket of ~100 ns is an error under 1 ppm.
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#if !defined(__x86_64__) && !defined(__i386__)
int main(void) {
	fprintf(stderr, "host-tsc-rate: the host is not x86\n");
	return 1;
}
#else
static inline uint64_t rdtsc(void) {
	uint32_t lo, hi;
	__asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A TSC reading and the clock time it was taken at, from the narrowest of 20 brackets. */
static void sample(uint64_t *tsc, int64_t *ns) {
	int64_t narrowest = -1;
	for (int i = 0; i < 20; i++) {
		int64_t before = now_ns();
		uint64_t t = rdtsc();
		int64_t after = now_ns();
		if (narrowest < 0 || after - before < narrowest) {
			narrowest = after - before;
			*tsc = t;
			*ns = before + (after - before) / 2;
		}
	}
}

int main(void) {
	uint64_t tsc0, tsc1;
	int64_t ns0, ns1;
	sample(&tsc0, &ns0);
	struct timespec window = {.tv_sec = 0, .tv_nsec = 200000000};
	nanosleep(&window, NULL);
	sample(&tsc1, &ns1);
	if (ns1 <= ns0 || tsc1 <= tsc0) {
		fprintf(stderr, "host-tsc-rate: the TSC or the clock did not advance\n");
		return 1;
	}
	printf("%.0f\n", (double)(tsc1 - tsc0) * 1e6 / (double)(ns1 - ns0));
	return 0;
}
#endif
