/* daemon MS [BURN_MS]: double-forks a grandchild that calls setsid, burns
   BURN_MS of CPU, then sleeps MS milliseconds; the main process exits at
   once with status 0. The middle process writes the grandchild's pid to
   stdout before it exits, so the pid is out before the main process ends. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
	long ms = argc > 1 ? atol(argv[1]) : 30000;
	long burn = argc > 2 ? atol(argv[2]) : 0;
	pid_t c = fork();
	if (c < 0) return 2;
	if (c == 0) {
		pid_t g = fork();
		if (g != 0) {
			printf("%d\n", (int)g);
			fflush(stdout);
			_exit(0);
		}
		setsid();
		struct timespec ts;
		volatile unsigned long x = 0;
		for (;;) {
			for (int i = 0; i < 100000; i++) x++;
			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
			if (ts.tv_sec * 1000L + ts.tv_nsec / 1000000L >= burn) break;
		}
		struct timespec s = { ms / 1000, (ms % 1000) * 1000000L };
		nanosleep(&s, 0);
		_exit(0);
	}
	waitpid(c, 0, 0);
	return 0;
}
