/*
 * stamp - for bench/run.sh's exec-latency run: the first thing it does is read
 * CLOCK_MONOTONIC; it writes the value (decimal nanoseconds, one line) to
 * stdout and exits 0.
 */
#include <stdio.h>
#include <time.h>

int main(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	printf("%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	return 0;
}
