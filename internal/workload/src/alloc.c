/* alloc MiB HOLD_MS: allocates and touches MiB mebibytes, holds them for
   HOLD_MS milliseconds, frees them. Static and tiny, so that its own
   baseline RSS is well under 1 MiB. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
int main(int argc, char **argv) {
	long mib = argc > 1 ? atol(argv[1]) : 64;
	long hold = argc > 2 ? atol(argv[2]) : 200;
	size_t n = (size_t)mib << 20;
	char *p = malloc(n);
	if (!p) return 2;
	for (size_t i = 0; i < n; i += 4096) p[i] = 1;
	struct timespec ts = { hold / 1000, (hold % 1000) * 1000000L };
	nanosleep(&ts, 0);
	free(p);
	return 0;
}
