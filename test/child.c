/*
 * child — the test program hupwatch's integration tests run as COMMAND.
 *
 * It reports what it sees (pid, process group, cwd, open fds, signal mask and
 * ignored set, environment) and does what it is told (exit, raise a signal,
 * ignore TERM, send READY=1, serve HTTP on inherited sockets, leave an orphan).
 * The report is written before any handler is installed, so SigBlk/SigIgn are
 * exactly what hupwatch handed over at exec.
 *
 * Options (any order):
 *   --report DIR  --delay MS  --exit CODE  --kill-self SIG  --ignore-term
 *   --term-exit CODE  --fail-if-exists F  --orphan MS  --grandchild
 *   --notify-ready MS  --serve
 * The report is DIR/PID.report (key=value lines, written atomically; see
 * write_report), events go to DIR/PID.events; test/harness.py's Reports reads
 * both, and test/test_*.py show each option in use.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 1024
#define MAX_LISTEN 64

struct signame {
	const char *name;
	int num;
};

static const struct signame signames[] = {
	{"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"ILL", SIGILL},
	{"TRAP", SIGTRAP}, {"ABRT", SIGABRT}, {"BUS", SIGBUS}, {"FPE", SIGFPE},
	{"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
	{"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"CHLD", SIGCHLD},
	{"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},
	{"TTOU", SIGTTOU}, {"URG", SIGURG}, {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
	{"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"SYS", SIGSYS},
};

/* The signals recorded as "signal NAME" events (TERM has its own rules). */
static const int recorded[] = {
	SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGTTIN, SIGTTOU, SIGCONT,
};

struct options {
	const char *report_dir;
	long delay_ms;
	int exit_code;          /* -1: none */
	int kill_sig;           /* 0: none */
	int ignore_term;
	int term_exit;          /* exit code on TERM */
	const char *fail_if_exists;
	long orphan_ms;         /* -1: none */
	int grandchild;
	long notify_ms;         /* -1: none */
	int serve;
};

static int sigpipe_r = -1, sigpipe_w = -1;

static void
die_usage(const char *opt, const char *val)
{
	fprintf(stderr, "child: %s: invalid value '%s'\n", opt, val ? val : "");
	exit(64);
}

static long
parse_long(const char *opt, const char *s, long min, long max)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		die_usage(opt, s);
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		die_usage(opt, s);
	return v;
}

static int
parse_signal(const char *opt, const char *s)
{
	size_t i;
	const char *name = s;

	if (s == NULL || *s == '\0')
		die_usage(opt, s);
	if (s[0] >= '0' && s[0] <= '9')
		return (int)parse_long(opt, s, 1, 64);
	if (strncasecmp(name, "SIG", 3) == 0)
		name += 3;
	for (i = 0; i < sizeof(signames) / sizeof(signames[0]); i++)
		if (strcasecmp(name, signames[i].name) == 0)
			return signames[i].num;
	die_usage(opt, s);
	return 0;
}

static const char *
signal_name(int sig)
{
	size_t i;

	for (i = 0; i < sizeof(signames) / sizeof(signames[0]); i++)
		if (signames[i].num == sig)
			return signames[i].name;
	return "UNKNOWN";
}

static void
parse_args(int argc, char **argv, struct options *o)
{
	int i;

	memset(o, 0, sizeof(*o));
	o->exit_code = -1;
	o->orphan_ms = -1;
	o->notify_ms = -1;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--report") == 0) {
			if (v == NULL)
				die_usage(a, v);
			o->report_dir = v;
			i++;
		} else if (strcmp(a, "--delay") == 0) {
			o->delay_ms = parse_long(a, v, 0, 86400000L);
			i++;
		} else if (strcmp(a, "--exit") == 0) {
			o->exit_code = (int)parse_long(a, v, 0, 255);
			i++;
		} else if (strcmp(a, "--kill-self") == 0) {
			o->kill_sig = parse_signal(a, v);
			i++;
		} else if (strcmp(a, "--ignore-term") == 0) {
			o->ignore_term = 1;
		} else if (strcmp(a, "--term-exit") == 0) {
			o->term_exit = (int)parse_long(a, v, 0, 255);
			i++;
		} else if (strcmp(a, "--fail-if-exists") == 0) {
			if (v == NULL)
				die_usage(a, v);
			o->fail_if_exists = v;
			i++;
		} else if (strcmp(a, "--orphan") == 0) {
			o->orphan_ms = parse_long(a, v, 0, 86400000L);
			i++;
		} else if (strcmp(a, "--grandchild") == 0) {
			o->grandchild = 1;
		} else if (strcmp(a, "--notify-ready") == 0) {
			o->notify_ms = parse_long(a, v, 0, 86400000L);
			i++;
		} else if (strcmp(a, "--serve") == 0) {
			o->serve = 1;
		} else {
			fprintf(stderr, "child: unknown option '%s'\n", a);
			exit(64);
		}
	}
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static const char *
env_or_empty(const char *name)
{
	const char *v = getenv(name);

	return v ? v : "";
}

static int
compare_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* Open fds as "0,1,2", leaving out the one opendir() itself uses. */
static void
list_fds(char *buf, size_t len)
{
	int fds[MAX_FDS];
	size_t n = 0, i, used = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	buf[0] = '\0';
	if (d == NULL) {
		snprintf(buf, len, "error");
		return;
	}
	while ((e = readdir(d)) != NULL && n < MAX_FDS) {
		char *end;
		long fd;

		if (e->d_name[0] == '.')
			continue;
		fd = strtol(e->d_name, &end, 10);
		if (*end != '\0' || fd == dirfd(d))
			continue;
		fds[n++] = (int)fd;
	}
	closedir(d);
	qsort(fds, n, sizeof(fds[0]), compare_int);
	for (i = 0; i < n && used < len; i++) {
		int w = snprintf(buf + used, len - used, "%s%d", i ? "," : "", fds[i]);

		if (w < 0)
			break;
		used += (size_t)w;
	}
}

/* SigBlk and SigIgn, as hex, from /proc/self/status. */
static void
read_sigsets(char *blk, char *ign, size_t len)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");

	snprintf(blk, len, "error");
	snprintf(ign, len, "error");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "SigBlk:", 7) == 0)
			snprintf(blk, len, "%s", line + 7 + strspn(line + 7, " \t"));
		else if (strncmp(line, "SigIgn:", 7) == 0)
			snprintf(ign, len, "%s", line + 7 + strspn(line + 7, " \t"));
	}
	fclose(f);
}

/* Write PATH with CONTENT via a temp file and rename, so readers never see half of it. */
static int
write_atomic(const char *dir, const char *name, const char *content)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	size_t len = strlen(content), off = 0;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1)
		return -1;
	while (off < len) {
		ssize_t w = write(fd, content + off, len - off);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			close(fd);
			unlink(tmp);
			return -1;
		}
		off += (size_t)w;
	}
	if (close(fd) == -1 || rename(tmp, path) == -1) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static void
record_event(const struct options *o, const char *fmt, const char *arg)
{
	char path[PATH_MAX], line[256];
	int fd, n;

	if (o->report_dir == NULL)
		return;
	snprintf(path, sizeof(path), "%s/%ld.events", o->report_dir, (long)getpid());
	n = snprintf(line, sizeof(line) - 1, fmt, arg);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd == -1)
		return;
	if (write(fd, line, (size_t)n) != n)
		perror("child: cannot write event");
	close(fd);
}

/* Detach a helper process from everything the test watches: stdio, inherited sockets. */
static void
detach_fds(void)
{
	int fd = open("/dev/null", O_RDWR);
	long max = sysconf(_SC_OPEN_MAX);

	if (fd != -1) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
	}
	if (max < 0 || max > 65536)
		max = 65536;
	for (fd = 3; fd < max; fd++)
		close(fd);
}

static pid_t
spawn_grandchild(void)
{
	pid_t pid = fork();

	if (pid == -1) {
		perror("child: cannot fork grandchild");
		exit(70);
	}
	if (pid == 0) {
		signal(SIGTERM, SIG_IGN);
		detach_fds();
		for (;;)
			pause();
	}
	return pid;
}

/* Fork a process that forks the orphan and exits at once; we reap it, the orphan goes to the subreaper. */
static void
spawn_orphan(const struct options *o)
{
	pid_t mid = fork();
	int st;

	if (mid == -1) {
		perror("child: cannot fork");
		exit(70);
	}
	if (mid == 0) {
		pid_t orphan = fork();

		if (orphan == -1)
			_exit(70);
		if (orphan == 0) {
			char name[64], content[32];
			int tries;

			detach_fds();
			/* Wait (bounded) to be reparented to the subreaper before telling our pid. */
			for (tries = 0; getppid() == mid && tries < 5000; tries++)
				sleep_ms(1);
			if (o->report_dir != NULL) {
				snprintf(name, sizeof(name), "orphan.%ld", (long)getpid());
				snprintf(content, sizeof(content), "%ld\n", (long)getpid());
				write_atomic(o->report_dir, name, content);
			}
			sleep_ms(o->orphan_ms);
			_exit(0);
		}
		_exit(0);
	}
	while (waitpid(mid, &st, 0) == -1 && errno == EINTR)
		;
}

static void
write_report(const struct options *o, pid_t grandchild)
{
	char fds[4096], blk[64], ign[64], cwd[PATH_MAX], gc[32] = "";
	char *buf;
	char name[64];
	size_t len = 16384;

	/* Snapshot fds and signal state first: nothing has been opened or installed yet. */
	list_fds(fds, sizeof(fds));
	read_sigsets(blk, ign, sizeof(blk));
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		snprintf(cwd, sizeof(cwd), "error: %s", strerror(errno));
	if (grandchild > 0)
		snprintf(gc, sizeof(gc), "%ld", (long)grandchild);
	buf = malloc(len);
	if (buf == NULL)
		exit(70);
	snprintf(buf, len,
	    "pid=%ld\nppid=%ld\npgid=%ld\nsid=%ld\ncwd=%s\ngeneration=%s\nfds=%s\n"
	    "sigblk=%s\nsigign=%s\nlisten_fds=%s\nlisten_pid=%s\nlisten_fdnames=%s\n"
	    "notify_socket=%s\npwd=%s\nhupwatch_pid=%s\ngrandchild=%s\n",
	    (long)getpid(), (long)getppid(), (long)getpgid(0), (long)getsid(0), cwd,
	    env_or_empty("HUPWATCH_GENERATION"), fds, blk, ign, env_or_empty("LISTEN_FDS"),
	    env_or_empty("LISTEN_PID"), env_or_empty("LISTEN_FDNAMES"),
	    env_or_empty("NOTIFY_SOCKET"), env_or_empty("PWD"), env_or_empty("HUPWATCH_PID"), gc);
	snprintf(name, sizeof(name), "%ld.report", (long)getpid());
	if (write_atomic(o->report_dir, name, buf) == -1) {
		fprintf(stderr, "child: cannot write report in '%s': %s\n", o->report_dir,
		    strerror(errno));
		exit(71);
	}
	free(buf);
}

static void
on_signal(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;

	if (write(sigpipe_w, &b, 1) == -1) {
		/* pipe full: the signal is dropped, as a pending one would be */
	}
	errno = saved;
}

static void
install_handlers(void)
{
	struct sigaction sa;
	int fds[2];
	size_t i;

	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == -1) {
		perror("child: cannot create pipe");
		exit(70);
	}
	sigpipe_w = fds[1];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigfillset(&sa.sa_mask);
	sa.sa_flags = 0;        /* no SA_RESTART: a blocking accept() must return EINTR */
	for (i = 0; i < sizeof(recorded) / sizeof(recorded[0]); i++)
		sigaction(recorded[i], &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigpipe_r = fds[0];
}

static int
listen_count(void)
{
	const char *s = getenv("LISTEN_FDS");
	char *end;
	long n;

	if (s == NULL || *s == '\0')
		return 0;
	n = strtol(s, &end, 10);
	if (*end != '\0' || n < 0 || n > MAX_LISTEN)
		return 0;
	return (int)n;
}

/* Answer one HTTP request on C; the request is read up to its blank line (or EOF, or 5 s). */
static void
serve_one(int c)
{
	char req[4096], resp[128];
	size_t got = 0;
	int64_t until = now_ms() + 5000;
	int n;

	for (;;) {
		struct pollfd p = {c, POLLIN, 0};
		int64_t left = until - now_ms();
		ssize_t r;

		if (left <= 0)
			break;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		r = read(c, req + got, sizeof(req) - 1 - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		req[got] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL || strstr(req, "\n\n") != NULL ||
		    got == sizeof(req) - 1)
			break;
	}
	n = snprintf(resp, sizeof(resp), "HTTP/1.0 200 OK\r\n\r\ngen=%s pid=%ld\n",
	    env_or_empty("HUPWATCH_GENERATION"), (long)getpid());
	if (n > 0 && write(c, resp, (size_t)n) != n) {
		/* client gone: nothing to do */
	}
	shutdown(c, SHUT_WR);
	close(c);
}

static void
send_notify(const struct options *o)
{
	const char *name = getenv("NOTIFY_SOCKET");
	const char msg[] = "READY=1\nSTATUS=child ready";
	struct sockaddr_un sa;
	socklen_t len;
	size_t n;
	int s;

	if (name == NULL || (name[0] != '/' && name[0] != '@') ||
	    (n = strlen(name)) >= sizeof(sa.sun_path)) {
		record_event(o, "notify failed: bad NOTIFY_SOCKET '%s'", name ? name : "");
		return;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, name, n);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s == -1 || sendto(s, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&sa, len) == -1) {
		record_event(o, "notify failed: %s", strerror(errno));
	} else {
		record_event(o, "%s", "notified READY=1");
	}
	if (s != -1)
		close(s);
}

static void
kill_self(int sig)
{
	struct rlimit nocore = {0, 0};
	sigset_t set;

	setrlimit(RLIMIT_CORE, &nocore);
	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
}

/* Returns 1 when the child should exit (after a TERM). */
static int
handle_signals(const struct options *o)
{
	unsigned char buf[64];
	ssize_t n, i;
	int stop = 0;

	while ((n = read(sigpipe_r, buf, sizeof(buf))) > 0) {
		for (i = 0; i < n; i++) {
			int sig = buf[i];

			if (sig == SIGTERM) {
				if (o->ignore_term) {
					record_event(o, "%s", "term ignored");
				} else {
					record_event(o, "%s", "term");
					stop = 1;
				}
			} else {
				record_event(o, "signal %s", signal_name(sig));
			}
		}
	}
	return stop;
}

static void
run(const struct options *o)
{
	int nlisten = o->serve ? listen_count() : 0;
	int64_t start = now_ms();
	int64_t act_at = start + o->delay_ms;
	int64_t notify_at = o->notify_ms >= 0 ? act_at + o->notify_ms : -1;
	int acted = o->exit_code < 0 && o->kill_sig == 0;
	int serving = nlisten > 0;

	for (;;) {
		struct pollfd p[1 + MAX_LISTEN];
		int np = 0, i, timeout = -1, r;
		int64_t t = now_ms();

		if (!acted && t >= act_at) {
			acted = 1;
			if (o->exit_code >= 0)
				exit(o->exit_code);
			kill_self(o->kill_sig);
		}
		if (notify_at >= 0 && t >= notify_at) {
			notify_at = -1;
			send_notify(o);
		}
		if (!acted)
			timeout = (int)(act_at - t);
		if (notify_at >= 0 && (timeout < 0 || notify_at - t < timeout))
			timeout = (int)(notify_at - t);

		p[np].fd = sigpipe_r;
		p[np++].events = POLLIN;
		for (i = 0; serving && i < nlisten; i++) {
			p[np].fd = 3 + i;
			p[np++].events = POLLIN;
		}
		r = poll(p, (nfds_t)np, timeout);
		if (r == -1 && errno != EINTR) {
			perror("child: poll");
			exit(70);
		}
		if (r <= 0)
			continue;
		if (p[0].revents & POLLIN) {
			if (handle_signals(o)) {
				if (serving) {
					for (i = 0; i < nlisten; i++)
						close(3 + i);
				}
				exit(o->term_exit);
			}
		}
		for (i = 1; i < np; i++) {
			int c;

			if (!(p[i].revents & POLLIN))
				continue;
			/* Another process sharing the socket may win the race: then accept()
			 * blocks until the next connection or a signal (no SA_RESTART). */
			c = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
			if (c == -1)
				continue;
			serve_one(c);
		}
	}
}

int
main(int argc, char **argv)
{
	struct options o;
	pid_t grandchild = 0;

	parse_args(argc, argv, &o);
	if (o.fail_if_exists != NULL && access(o.fail_if_exists, F_OK) == 0)
		exit(1);
	/* Report before anything is installed, so the mask and fds are what exec gave us. */
	if (o.grandchild)
		grandchild = spawn_grandchild();
	if (o.report_dir != NULL)
		write_report(&o, grandchild);
	if (o.orphan_ms >= 0)
		spawn_orphan(&o);
	install_handlers();
	run(&o);
	return 0;
}
