/*
 * swapchild - the app for bench/run.sh's "time to swap" and idle-cost runs.
 *
 *   swapchild LOGFILE
 *
 * At the top of main() it reads CLOCK_MONOTONIC, sends READY=1 to
 * $NOTIFY_SOCKET at once (when set), then appends one line to LOGFILE:
 *     start PID GENERATION T_MAIN_NS T_READY_NS
 * where T_READY_NS is taken just before the datagram is sent (0 without
 * NOTIFY_SOCKET). On SIGTERM it appends "term PID T_NS" (the moment the stop
 * signal arrived) and exits 0. Otherwise it sleeps, making no system call.
 * One write(2) per line on an O_APPEND descriptor, so lines from several
 * generations never interleave.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int logfd = -1;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Async-signal-safe decimal formatting for the TERM handler. */
static char *put_u64(char *p, uint64_t v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static void on_term(int sig)
{
	uint64_t t = now_ns();
	char buf[64], *p = buf;

	(void)sig;
	memcpy(p, "term ", 5);
	p = put_u64(p + 5, (uint64_t)getpid());
	*p++ = ' ';
	p = put_u64(p, t);
	*p++ = '\n';
	if (write(logfd, buf, (size_t)(p - buf)) < 0)
		_exit(1);
	_exit(0);
}

static int send_ready(const char *path)
{
	struct sockaddr_un sa;
	size_t len = strlen(path);
	socklen_t salen;
	int fd;

	if (len == 0 || len >= sizeof(sa.sun_path))
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';	/* abstract namespace */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sa, salen) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t t_main = now_ns(), t_ready = 0;
	const char *ns = getenv("NOTIFY_SOCKET");
	const char *gen = getenv("HUPWATCH_GENERATION");
	struct sigaction sa;
	char line[160];
	int n;

	if (argc != 2) {
		fprintf(stderr, "usage: swapchild LOGFILE\n");
		return 2;
	}
	logfd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (logfd < 0) {
		fprintf(stderr, "swapchild: cannot open %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);

	if (ns) {
		t_ready = now_ns();
		if (send_ready(ns) < 0)
			fprintf(stderr, "swapchild: cannot notify %s: %s\n", ns, strerror(errno));
	}
	n = snprintf(line, sizeof(line), "start %ld %s %llu %llu\n", (long)getpid(),
		     gen ? gen : "-", (unsigned long long)t_main, (unsigned long long)t_ready);
	if (write(logfd, line, (size_t)n) < 0)
		return 2;
	for (;;)
		pause();
}
