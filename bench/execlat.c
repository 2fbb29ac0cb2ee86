/*
 * execlat - exec latency of wrappers, for bench/run.sh.
 *
 *   execlat RUNS LABEL CMD [ARG]... [--next LABEL CMD [ARG]...]...
 *
 * Each CMD must end up executing bench/stamp, which prints CLOCK_MONOTONIC
 * at the top of its main(). The variants are run round-robin, RUNS times
 * each. For one run: fork; the child reads CLOCK_MONOTONIC into a shared page
 * and calls execvp(CMD) at once; the parent reads stamp's line from a pipe
 * and waits for CMD to exit. Prints one line per run:
 *     LABEL EXEC_TO_STAMP_NS EXEC_TO_EXIT_NS EXIT_STATUS
 * The first number is the time from the exec of CMD to stamp's main(); the
 * second, to CMD's exit being reaped. stderr of CMD goes to /dev/null.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct variant {
	const char *label;
	char **argv;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int run_one(const struct variant *v, volatile int64_t *shared, int devnull)
{
	char buf[64];
	size_t got = 0;
	ssize_t n;
	int pfd[2], status;
	pid_t pid;
	int64_t t_stamp, t_exit;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(devnull, 2);
		*shared = now_ns();
		execvp(v->argv[0], v->argv);
		_exit(127);
	}
	close(pfd[1]);
	while (got < sizeof(buf) - 1 && (n = read(pfd[0], buf + got, sizeof(buf) - 1 - got)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	t_exit = now_ns();
	t_stamp = got ? strtoll(buf, NULL, 10) : 0;
	printf("%s %lld %lld %d\n", v->label,
	       t_stamp ? (long long)(t_stamp - *shared) : -1LL,
	       (long long)(t_exit - *shared),
	       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return 0;
}

int main(int argc, char **argv)
{
	struct variant vs[16];
	int nv = 0, runs, i, j, devnull;
	volatile int64_t *shared;

	if (argc < 4) {
		fprintf(stderr, "usage: execlat RUNS LABEL CMD [ARG]... [--next LABEL CMD...]...\n");
		return 2;
	}
	runs = atoi(argv[1]);
	for (i = 2; i < argc && nv < 16;) {
		vs[nv].label = argv[i++];
		vs[nv].argv = &argv[i];
		while (i < argc && strcmp(argv[i], "--next") != 0)
			i++;
		if (i < argc)
			argv[i++] = NULL;	/* terminate this variant's argv */
		nv++;
	}
	shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (shared == MAP_FAILED || devnull < 0) {
		perror("execlat");
		return 1;
	}
	for (j = 0; j < runs; j++)
		for (i = 0; i < nv; i++)
			if (run_one(&vs[i], shared, devnull) < 0) {
				perror("execlat");
				return 1;
			}
	return 0;
}
