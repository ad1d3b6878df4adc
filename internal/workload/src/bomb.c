/* bomb: an unbounded fork bomb: every process forks for ever, and sleeps a
   millisecond when a fork fails. Run it only where something bounds it:
   pids.max, or RLIMIT_NPROC as a non-root user (root ignores that limit). */
#include <unistd.h>
int main(void) {
	for (;;) {
		if (fork() < 0) usleep(1000);
	}
}
