/* burn THREADS MS: THREADS threads each burn MS milliseconds of their own
   CPU time (measured with CLOCK_THREAD_CPUTIME_ID), then exit. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
static long ms;
static void *spin(void *arg) {
	(void)arg;
	struct timespec ts;
	volatile unsigned long x = 0;
	for (;;) {
		for (int i = 0; i < 100000; i++) x++;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
		if (ts.tv_sec * 1000L + ts.tv_nsec / 1000000L >= ms) return 0;
	}
}
int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 1;
	ms = argc > 2 ? atol(argv[2]) : 500;
	pthread_t t[64];
	if (n < 1 || n > 64) return 2;
	for (int i = 0; i < n; i++) pthread_create(&t[i], 0, spin, 0);
	for (int i = 0; i < n; i++) pthread_join(t[i], 0);
	return 0;
}
