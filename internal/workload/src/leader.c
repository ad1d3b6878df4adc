/* leader MS: starts a thread that burns MS ms of its own CPU time
   (CLOCK_THREAD_CPUTIME_ID) and then exits the process; the main thread
   (the thread-group leader) exits at once with pthread_exit, so the
   process lives on without its leader until that thread is done. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
static long ms;
static void *burn(void *arg) {
	struct timespec ts;
	volatile unsigned long x = 0;
	for (;;) {
		for (int i = 0; i < 100000; i++) x++;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
		if (ts.tv_sec * 1000L + ts.tv_nsec / 1000000L >= ms) exit(0);
	}
	return arg;
}
int main(int argc, char **argv) {
	ms = argc > 1 ? atol(argv[1]) : 300;
	pthread_t th;
	if (pthread_create(&th, NULL, burn, NULL) != 0) return 1;
	pthread_exit(NULL);
}
