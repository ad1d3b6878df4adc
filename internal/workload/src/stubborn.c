/* stubborn: forks a child; both ignore SIGTERM and sleep forever. */
#include <signal.h>
#include <unistd.h>
int main(void) {
	signal(SIGTERM, SIG_IGN);
	fork();
	for (;;) pause();
}
