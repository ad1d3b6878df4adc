/* forkbomb N: tries to keep N children alive at once (sleeping), reports on
   stdout how many forks failed, exits 0 after 1 s. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	int failed = 0;
	for (int i = 0; i < n; i++) {
		pid_t c = fork();
		if (c < 0) { failed++; continue; }
		if (c == 0) { sleep(2); _exit(0); }
	}
	printf("%d\n", failed);
	fflush(stdout);
	sleep(1);
	return 0;
}
