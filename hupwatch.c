/*
 * hupwatch - run a server and replace it with a fresh copy on SIGHUP, losing nothing.
 *
 * One process, one loop: signals arrive through a signalfd, readiness through a private notify
 * socket, and the loop sleeps in ppoll() until the nearest deadline (none while idle).
 * Every spawn is a generation: STARTING -> CURRENT -> STOPPING -> gone.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VERSION "1.0.0"

/* Exit statuses of hupwatch itself (coreutils wrapper convention: env, nice, timeout). */
#define EXIT_NOT_READY 1
#define EXIT_TIMEDOUT 124
#define EXIT_FAILURE_OWN 125
#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127

typedef int64_t nsec_t;
#define NSEC_PER_SEC INT64_C(1000000000)
#define NEVER INT64_MAX
#define MAX_SECONDS INT64_C(1000000000)

extern char **environ;

enum level { L_DEBUG, L_INFO, L_WARNING, L_ERROR };

struct config {
	nsec_t warmup;
	bool warmup_set;
	bool notify;
	const char *ready_cmd;
	nsec_t ready_interval;
	nsec_t ready_timeout;
	bool ready_timeout_set;
	int stop_signal;
	nsec_t stop_timeout;
	bool kill_at_exit;
	const char **listen;
	size_t nlisten;
	int backlog;
	const char *chdir;
	const char *pid_file;
	const char *status_file;
	bool reload;
	enum level level;
	char **command;
};

enum gen_state { GEN_STARTING, GEN_CURRENT, GEN_STOPPING };

struct generation {
	unsigned number;
	pid_t pid; /* also its process group id */
	enum gen_state state;
	nsec_t spawned_at;
	nsec_t stop_at;
	bool killed;   /* SIGKILL sent to its group */
	bool failed;   /* being stopped because it never became ready */
	bool notified; /* READY=1 received */
	bool probe_ok;
	pid_t probe_pid;
	nsec_t probe_next;
	struct generation *next;
};

struct listener {
	int fd;
	char *name;  /* LISTEN_FDNAMES entry */
	char *label; /* for logs */
	char *unix_path;
};

enum reload_state { RELOAD_NONE, RELOAD_IN_PROGRESS, RELOAD_SUCCEEDED, RELOAD_FAILED };
static const char *const reload_state_names[] = { "none", "in-progress", "succeeded", "failed" };

/* A parsed --listen ADDRESS. */
struct address {
	int family; /* AF_UNIX, AF_INET, AF_INET6, or AF_UNSPEC for a host name */
	char host[256];
	char port[6];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* One sd_notify datagram, as far as hupwatch cares. */
struct notify_msg {
	bool ready;
	bool has_status;
	char status[256];
};

/* The status file as read back by --reload. */
struct status_info {
	long pid;
	unsigned long long starttime;
	char state[16];
	unsigned generation;
	long generation_pid;
	nsec_t ready_wait;
	unsigned reload;
	char reload_state[16];
	unsigned reload_generation;
	nsec_t reload_started;
	char reload_reason[256];
	int exit_status;
};

static struct {
	struct config cfg;
	struct generation *gens;
	struct generation *current;
	struct generation *starting; /* at most one */
	unsigned last_number;
	int sigfd;
	int notify_fd;
	char notify_name[64]; /* "@hupwatch/..." as given in NOTIFY_SOCKET */
	int upstream_fd;
	struct sockaddr_un upstream;
	socklen_t upstream_len;
	struct listener *listeners;
	size_t nlisteners;
	char *fdnames; /* LISTEN_FDNAMES for every generation */
	char *workdir;
	bool reload_pending;
	unsigned reloads;
	enum reload_state reload_state;
	unsigned reload_generation;
	nsec_t reload_started;
	char reload_reason[320];
	bool shutting_down;
	struct generation *final_gen; /* whose status hupwatch exits with after a -k shutdown */
	int exit_status;
	int orphan_status; /* status of a current generation that died while a replacement started */
	unsigned long long starttime;
	bool pid_file_written;
	bool status_written;
} hw = { .sigfd = -1, .notify_fd = -1, .upstream_fd = -1, .orphan_status = -1 };

/* ---- small helpers ------------------------------------------------------------------------ */

static nsec_t now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (nsec_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static double seconds(nsec_t ns)
{
	return (double)ns / (double)NSEC_PER_SEC;
}

static void logmsg(enum level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logmsg(enum level level, const char *fmt, ...)
{
	static const char *const names[] = { "debug", "info", "warning", "error" };
	char buf[1024];
	va_list ap;
	int n;

	if (level < hw.cfg.level)
		return;
	n = snprintf(buf, sizeof(buf), "hupwatch[%d]: %s: ", (int)getpid(), names[level]);
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(buf))
		n = (int)sizeof(buf) - 1;
	buf[n++] = '\n';
	/* One write per line, so lines never interleave with the children's output. */
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		return;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p) {
		logmsg(L_ERROR, "out of memory");
		exit(EXIT_FAILURE_OWN);
	}
	return p;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

static const struct {
	const char *name;
	int number;
} signals[] = {
	{ "HUP", SIGHUP },     { "INT", SIGINT },       { "QUIT", SIGQUIT },   { "ILL", SIGILL },
	{ "TRAP", SIGTRAP },   { "ABRT", SIGABRT },     { "IOT", SIGIOT },     { "BUS", SIGBUS },
	{ "FPE", SIGFPE },     { "KILL", SIGKILL },     { "USR1", SIGUSR1 },   { "SEGV", SIGSEGV },
	{ "USR2", SIGUSR2 },   { "PIPE", SIGPIPE },     { "ALRM", SIGALRM },   { "TERM", SIGTERM },
	{ "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD },   { "CONT", SIGCONT },   { "STOP", SIGSTOP },
	{ "TSTP", SIGTSTP },   { "TTIN", SIGTTIN },     { "TTOU", SIGTTOU },   { "URG", SIGURG },
	{ "XCPU", SIGXCPU },   { "XFSZ", SIGXFSZ },     { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF },
	{ "WINCH", SIGWINCH }, { "IO", SIGIO },         { "POLL", SIGPOLL },   { "PWR", SIGPWR },
	{ "SYS", SIGSYS },
};

/* "SIGTERM" for 15; valid until the next call. */
static const char *signame(int sig)
{
	static char buf[32];

	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (signals[i].number == sig) {
			snprintf(buf, sizeof(buf), "SIG%s", signals[i].name);
			return buf;
		}
	if (sig >= SIGRTMIN && sig <= SIGRTMAX)
		snprintf(buf, sizeof(buf), "SIGRTMIN+%d", sig - SIGRTMIN);
	else
		snprintf(buf, sizeof(buf), "signal %d", sig);
	return buf;
}

/* The wrapper convention: a child's exit code, or 128 + the signal that killed it. */
static int exit_code(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return EXIT_FAILURE_OWN;
}

static void describe_status(int wstatus, char *buf, size_t size)
{
	if (WIFSIGNALED(wstatus))
		snprintf(buf, size, "killed by %s%s", signame(WTERMSIG(wstatus)),
			 WCOREDUMP(wstatus) ? " (core dumped)" : "");
	else
		snprintf(buf, size, "exited with status %d", exit_code(wstatus));
}

/* Copy at most n bytes of src, up to a NUL, as one printable line: control characters become '?'. */
static void copy_printable(char *dst, size_t size, const char *src, size_t n)
{
	size_t i;

	for (i = 0; i < n && i < size - 1 && src[i]; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = src[i];
		if (c < 0x20 || c == 0x7f)
			dst[i] = '?';
	}
	dst[i] = '\0';
}

/* ---- parsing ------------------------------------------------------------------------------ */

/* A non-negative decimal number of seconds ("1", "0.25", ".5"), at most MAX_SECONDS. */
static int parse_duration(const char *s, nsec_t *out)
{
	nsec_t sec = 0, frac = 0, scale = NSEC_PER_SEC / 10;
	bool digits = false, big = false;
	const char *p = s;

	for (; *p >= '0' && *p <= '9'; p++) {
		digits = true;
		if (sec > MAX_SECONDS)
			big = true;
		else
			sec = sec * 10 + (*p - '0');
	}
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++) {
			digits = true;
			frac += (*p - '0') * scale;
			scale /= 10;
		}
	if (!digits || *p || big || sec > MAX_SECONDS || (sec == MAX_SECONDS && frac))
		return -1;
	*out = sec * NSEC_PER_SEC + frac;
	return 0;
}

/* A signal name with or without SIG, in any case, or a number; -1 if it is none. */
static int parse_signal(const char *s)
{
	const char *name = s;

	if (*s >= '0' && *s <= '9') {
		char *end;
		long n;

		errno = 0;
		n = strtol(s, &end, 10);
		if (errno || *end || n < 1 || n > SIGRTMAX || (n > 31 && n < SIGRTMIN))
			return -1;
		return (int)n;
	}
	if (strncasecmp(name, "SIG", 3) == 0)
		name += 3;
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (strcasecmp(name, signals[i].name) == 0)
			return signals[i].number;
	return -1;
}

static int parse_port(const char *s, char *out)
{
	long n = 0;
	size_t len = strlen(s);

	if (len == 0 || len > 5)
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		n = n * 10 + (*p - '0');
	}
	if (n > 65535)
		return -1;
	memcpy(out, s, len + 1);
	return 0;
}

/* PORT, HOST:PORT, [IPV6]:PORT or unix:PATH. */
static int parse_address(const char *s, struct address *a)
{
	const char *colon;
	size_t hostlen;

	memset(a, 0, sizeof(*a));
	if (strncmp(s, "unix:", 5) == 0) {
		size_t len = strlen(s + 5);

		if (len == 0 || len >= sizeof(a->path))
			return -1;
		a->family = AF_UNIX;
		memcpy(a->path, s + 5, len + 1);
		return 0;
	}
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':' || close == s + 1)
			return -1;
		hostlen = (size_t)(close - s - 1);
		if (hostlen >= sizeof(a->host))
			return -1;
		a->family = AF_INET6;
		memcpy(a->host, s + 1, hostlen);
		return parse_port(close + 2, a->port);
	}
	colon = strrchr(s, ':');
	if (!colon) {
		a->family = AF_INET;
		strcpy(a->host, "0.0.0.0");
		return parse_port(s, a->port);
	}
	hostlen = (size_t)(colon - s);
	/* A bare IPv6 address needs brackets; anything else with two colons is a typo. */
	if (hostlen == 0 || hostlen >= sizeof(a->host) || memchr(s, ':', hostlen))
		return -1;
	a->family = AF_UNSPEC;
	memcpy(a->host, s, hostlen);
	return parse_port(colon + 1, a->port);
}

/* RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool valid_utf8(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		uint32_t cp;

		if (n == 0 || i + n > len)
			return false;
		cp = n == 1 ? c : (uint32_t)(c & (0x7f >> n));
		for (size_t k = 1; k < n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n;
	}
	return true;
}

/* sd_notify(3): newline-separated VARIABLE=value assignments in UTF-8; no NUL bytes. */
static int parse_notify(const char *buf, size_t len, struct notify_msg *m)
{
	const char *p = buf, *end = buf + len;

	memset(m, 0, sizeof(*m));
	if (len == 0 || memchr(buf, '\0', len) || !valid_utf8((const unsigned char *)buf, len))
		return -1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);

		if (n > 0 && !memchr(p, '=', n))
			return -1;
		if (n == 7 && memcmp(p, "READY=1", 7) == 0)
			m->ready = true;
		else if (n >= 7 && memcmp(p, "STATUS=", 7) == 0) {
			copy_printable(m->status, sizeof(m->status), p + 7, n - 7);
			m->has_status = true;
		}
		p += n + 1;
	}
	return 0;
}

static int parse_number(const char *s, long long max, long long *out)
{
	char *end;
	long long n;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno || *end || n > max)
		return -1;
	*out = n;
	return 0;
}

/* The status file written by write_status(); 0 when it has at least pid= and state=. */
static int parse_status(const char *buf, size_t len, struct status_info *st)
{
	char line[512];
	const char *p = buf, *end = buf + len;
	bool have_pid = false, have_state = false;
	long long n = 0;

	memset(st, 0, sizeof(*st));
	st->exit_status = -1;
	if (len < 4 || memcmp(buf, "pid=", 4) != 0 || memchr(buf, '\0', len))
		return -1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n_line = (size_t)((nl ? nl : end) - p);
		char *eq, *key, *val;
		int bad = 0;

		if (n_line >= sizeof(line))
			return -1;
		memcpy(line, p, n_line);
		line[n_line] = '\0';
		p += n_line + 1;
		if (n_line == 0)
			continue;
		eq = strchr(line, '=');
		if (!eq)
			return -1;
		*eq = '\0';
		key = line;
		val = eq + 1;
		if (strcmp(key, "pid") == 0) {
			bad = parse_number(val, INT_MAX, &n) || n < 1;
			st->pid = (long)n;
			have_pid = !bad;
		} else if (strcmp(key, "starttime") == 0) {
			bad = parse_number(val, LLONG_MAX, &n);
			st->starttime = (unsigned long long)n;
		} else if (strcmp(key, "state") == 0) {
			copy_printable(st->state, sizeof(st->state), val, SIZE_MAX);
			have_state = true;
		} else if (strcmp(key, "generation") == 0) {
			bad = parse_number(val, UINT_MAX, &n);
			st->generation = (unsigned)n;
		} else if (strcmp(key, "generation_pid") == 0) {
			bad = parse_number(val, INT_MAX, &n);
			st->generation_pid = (long)n;
		} else if (strcmp(key, "ready_wait") == 0) {
			bad = parse_duration(val, &st->ready_wait);
		} else if (strcmp(key, "reload") == 0) {
			bad = parse_number(val, UINT_MAX, &n);
			st->reload = (unsigned)n;
		} else if (strcmp(key, "reload_state") == 0) {
			copy_printable(st->reload_state, sizeof(st->reload_state), val, SIZE_MAX);
		} else if (strcmp(key, "reload_generation") == 0) {
			bad = parse_number(val, UINT_MAX, &n);
			st->reload_generation = (unsigned)n;
		} else if (strcmp(key, "reload_started") == 0) {
			bad = parse_duration(val, &st->reload_started);
		} else if (strcmp(key, "reload_reason") == 0) {
			copy_printable(st->reload_reason, sizeof(st->reload_reason), val, SIZE_MAX);
		} else if (strcmp(key, "exit_status") == 0) {
			bad = parse_number(val, 255, &n);
			st->exit_status = (int)n;
		}
		if (bad)
			return -1;
	}
	return have_pid && have_state ? 0 : -1;
}

/* With -n or -c a generation must signal its readiness; else the warm-up alone decides. */
static bool awaits_signal(const struct config *c)
{
	return c->notify || c->ready_cmd;
}

/* ---- options ------------------------------------------------------------------------------ */

static const char usage_text[] =
	"Usage: hupwatch [-knqvV] [-w SECONDS] [-c COMMAND] [-i SECONDS] [-t SECONDS]\n"
	"                [-s SIGNAL] [-T SECONDS] [-l ADDRESS]... [-b N] [-d DIR]\n"
	"                [-p FILE] [-S FILE] [--] COMMAND [ARG]...\n"
	"       hupwatch -R -S FILE [-t SECONDS]\n"
	"Run COMMAND and, on SIGHUP, replace it with a fresh copy without downtime:\n"
	"the new generation must become ready before the old one is asked to stop.\n"
	"\n"
	"Readiness of a new generation:\n"
	"  -w, --warmup-time SECONDS     ready when still alive after SECONDS (default 1;\n"
	"                                with -n or -c: 0, then an additional minimum age)\n"
	"  -n, --notify                  ready when it sends READY=1 to $NOTIFY_SOCKET\n"
	"  -c, --ready-cmd COMMAND       ready when '/bin/sh -c COMMAND' exits 0\n"
	"  -i, --ready-interval SECONDS  run the ready command this often (default 0.2)\n"
	"  -t, --ready-timeout SECONDS   with -n or -c: give up on a generation not ready\n"
	"                                in time (default 60, 0 = no limit)\n"
	"Stopping:\n"
	"  -s, --stop-signal SIGNAL      asks a generation to stop (default TERM)\n"
	"  -T, --stop-timeout SECONDS    then SIGKILL its process group (default 0 = never)\n"
	"  -k, --kill-at-exit            on SIGTERM, SIGINT or SIGQUIT stop every generation\n"
	"                                and exit with its status (default: leave them)\n"
	"Sockets held by hupwatch and passed by the LISTEN_FDS protocol:\n"
	"  -l, --listen ADDRESS          PORT, HOST:PORT, [IPV6]:PORT or unix:PATH (repeatable)\n"
	"  -b, --backlog N               listen backlog (default SOMAXCONN)\n"
	"Files and places:\n"
	"  -d, --chdir DIR               start each generation in DIR (default: the logical\n"
	"                                $PWD, so a swapped 'current' symlink is followed)\n"
	"  -p, --pid-file FILE           write hupwatch's own pid to FILE\n"
	"  -S, --status-file FILE        keep hupwatch's state in FILE (key=value lines)\n"
	"  -R, --reload                  signal the hupwatch of --status-file FILE and wait for\n"
	"                                the outcome of that reload (-t: how long to wait)\n"
	"Output:\n"
	"  -v, --verbose                 log debug lines too\n"
	"  -q, --quiet                   log errors only\n"
	"  -h, --help                    show this help and exit\n"
	"  -V, --version                 show the version and exit\n"
	"\n"
	"Exit status: the current generation's (its code, or 128 + signal); 1 generation 1\n"
	"never ready; 125 hupwatch failed; 126 COMMAND not executable; 127 COMMAND not found.\n"
	"With --reload: 0 reloaded, 1 reload failed, 124 timed out, 125 no hupwatch running.\n";

static const struct option long_options[] = {
	{ "warmup-time", required_argument, NULL, 'w' },
	{ "notify", no_argument, NULL, 'n' },
	{ "ready-cmd", required_argument, NULL, 'c' },
	{ "ready-interval", required_argument, NULL, 'i' },
	{ "ready-timeout", required_argument, NULL, 't' },
	{ "stop-signal", required_argument, NULL, 's' },
	{ "stop-timeout", required_argument, NULL, 'T' },
	{ "kill-at-exit", no_argument, NULL, 'k' },
	{ "listen", required_argument, NULL, 'l' },
	{ "backlog", required_argument, NULL, 'b' },
	{ "chdir", required_argument, NULL, 'd' },
	{ "pid-file", required_argument, NULL, 'p' },
	{ "status-file", required_argument, NULL, 'S' },
	{ "reload", no_argument, NULL, 'R' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};
#define SHORT_OPTIONS "+w:nc:i:t:s:T:kl:b:d:p:S:RvqhV"

static const char *long_name(int c)
{
	for (const struct option *o = long_options; o->name; o++)
		if (o->val == c)
			return o->name;
	return "?";
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("hupwatch: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'hupwatch --help' for more information.\n", stderr);
	return EXIT_FAILURE_OWN;
}

static void free_config(struct config *c)
{
	free(c->listen);
	c->listen = NULL;
	c->nlisten = 0;
}

/*
 * Fills *c from argv. Returns 0 to go on, -1 when --help or --version was printed (exit 0),
 * or EXIT_FAILURE_OWN after printing a usage error.
 */
static int parse_options(int argc, char **argv, struct config *c)
{
	bool seen[128] = { false };
	struct address addr;
	long long n;
	int opt;

	*c = (struct config){
		.warmup = NSEC_PER_SEC,
		.ready_interval = NSEC_PER_SEC / 5,
		.ready_timeout = 60 * NSEC_PER_SEC,
		.stop_signal = SIGTERM,
		.backlog = SOMAXCONN,
		.level = L_INFO,
	};
	if (argc < 1) /* an empty argv (possible before Linux 5.18) */
		return usage_error("missing COMMAND");
	optind = 0; /* glibc: start afresh (unit tests parse many times) */
	while ((opt = getopt_long(argc, argv, SHORT_OPTIONS, long_options, NULL)) != -1) {
		if (opt > 0 && opt < 128)
			seen[opt] = true;
		switch (opt) {
		case 'w':
		case 'i':
		case 't':
		case 'T': {
			nsec_t d;

			if (parse_duration(optarg, &d))
				return free_config(c), usage_error("--%s: invalid duration '%s'", long_name(opt),
								   optarg);
			if (opt == 'w')
				c->warmup = d, c->warmup_set = true;
			else if (opt == 'i') {
				if (d == 0)
					return free_config(c), usage_error("--ready-interval: must be more than 0, "
						"not '%s'", optarg);
				c->ready_interval = d;
			} else if (opt == 't')
				c->ready_timeout = d, c->ready_timeout_set = true;
			else
				c->stop_timeout = d;
			break;
		}
		case 'n':
			c->notify = true;
			break;
		case 'c':
			if (!*optarg)
				return free_config(c), usage_error("--ready-cmd: empty command");
			c->ready_cmd = optarg;
			break;
		case 's':
			c->stop_signal = parse_signal(optarg);
			if (c->stop_signal < 0)
				return free_config(c), usage_error("--stop-signal: unknown signal '%s'", optarg);
			break;
		case 'k':
			c->kill_at_exit = true;
			break;
		case 'l': {
			const char **grown;

			if (parse_address(optarg, &addr))
				return free_config(c), usage_error("--listen: invalid address '%s'", optarg);
			grown = realloc(c->listen, (c->nlisten + 1) * sizeof(*c->listen));
			if (!grown)
				return free_config(c), usage_error("out of memory");
			c->listen = grown;
			c->listen[c->nlisten++] = optarg;
			break;
		}
		case 'b':
			if (parse_number(optarg, 1000000, &n) || n < 1)
				return free_config(c), usage_error("--backlog: invalid number '%s'", optarg);
			c->backlog = (int)n;
			break;
		case 'd':
			if (!*optarg)
				return free_config(c), usage_error("--chdir: empty directory name");
			c->chdir = optarg;
			break;
		case 'p':
		case 'S':
			if (!*optarg)
				return free_config(c), usage_error("--%s: empty file name", long_name(opt));
			*(opt == 'p' ? &c->pid_file : &c->status_file) = optarg;
			break;
		case 'R':
			c->reload = true;
			break;
		case 'v':
			c->level = L_DEBUG;
			break;
		case 'q':
			c->level = L_ERROR;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return free_config(c), -1;
		case 'V':
			puts("hupwatch " VERSION);
			return free_config(c), -1;
		default: /* getopt has named the option */
			fputs("Try 'hupwatch --help' for more information.\n", stderr);
			return free_config(c), EXIT_FAILURE_OWN;
		}
	}
	c->command = argv + optind;
	if (c->reload) {
		static const char reload_ok[] = "RStvq";

		for (int i = 1; i < 128; i++)
			if (seen[i] && !strchr(reload_ok, i))
				return free_config(c), usage_error("--reload: cannot be combined with --%s",
								   long_name(i));
		if (!c->status_file)
			return free_config(c), usage_error("--reload: needs --status-file FILE");
		if (*c->command)
			return free_config(c), usage_error("--reload: takes no COMMAND ('%s')", *c->command);
		return 0;
	}
	if (!*c->command)
		return free_config(c), usage_error("missing COMMAND");
	if (!c->warmup_set && awaits_signal(c))
		c->warmup = 0;
	if (awaits_signal(c) && c->ready_timeout > 0 && c->warmup >= c->ready_timeout)
		return free_config(c), usage_error("--warmup-time: %.3fs can never pass within "
						   "--ready-timeout %.3fs", seconds(c->warmup), seconds(c->ready_timeout));
	if (seen['t'] && !awaits_signal(c))
		logmsg(L_WARNING, "--ready-timeout has no effect without --notify or --ready-cmd");
	if (seen['i'] && !c->ready_cmd)
		logmsg(L_WARNING, "--ready-interval has no effect without --ready-cmd");
	return 0;
}

/* ---- files ------------------------------------------------------------------------------- */

/* Write text to path through a temporary file and rename(2): readers never see half a file. */
static int write_atomic(const char *path, const char *text)
{
	size_t len = strlen(path), left = strlen(text);
	char *tmp = xmalloc(len + 8);
	const char *p = text;
	int fd, saved;

	snprintf(tmp, len + 8, "%s.XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		goto fail;
	while (left > 0) {
		ssize_t n = write(fd, p, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC;
			goto fail_fd;
		}
		p += n;
		left -= (size_t)n;
	}
	if (fchmod(fd, 0644) || fsync(fd) || close(fd)) {
		fd = -1;
		goto fail_fd;
	}
	if (rename(tmp, path))
		goto fail_unlink;
	free(tmp);
	return 0;
fail_fd:
	saved = errno;
	if (fd >= 0)
		close(fd);
	errno = saved;
fail_unlink:
	saved = errno;
	unlink(tmp);
	errno = saved;
fail:
	free(tmp);
	return -1;
}

static ssize_t read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	size_t got = 0;

	if (fd < 0)
		return -1;
	while (got < size - 1) {
		ssize_t n = read(fd, buf + got, size - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

/*
 * A pid or status file may replace only what hupwatch itself wrote there before: a symlink or
 * somebody's file given by mistake (-p app.py) is refused, never overwritten.
 */
static bool hupwatch_alive(const struct status_info *st);

static int check_own_file(const char *opt, const char *path, bool status)
{
	char buf[4096];
	struct status_info st;
	struct stat sb;
	ssize_t n;
	bool ours;

	if (lstat(path, &sb)) {
		if (errno == ENOENT)
			return 0;
		logmsg(L_ERROR, "cannot use %s '%s': %s", opt, path, strerror(errno));
		return -1;
	}
	if (S_ISLNK(sb.st_mode) || !S_ISREG(sb.st_mode)) {
		logmsg(L_ERROR, "cannot use %s '%s': it is %s, not a file hupwatch wrote; refusing to "
		       "replace it", opt, path, S_ISLNK(sb.st_mode) ? "a symbolic link" : "not a regular file");
		return -1;
	}
	n = read_file(path, buf, sizeof(buf));
	if (n < 0) {
		logmsg(L_ERROR, "cannot read %s '%s': %s", opt, path, strerror(errno));
		return -1;
	}
	if (status)
		ours = n == 0 || parse_status(buf, (size_t)n, &st) == 0;
	else
		ours = strspn(buf, "0123456789") == (size_t)n - (n > 0 && buf[n - 1] == '\n');
	if (!ours) {
		logmsg(L_ERROR, "cannot use %s '%s': it exists and is not a hupwatch %s file; refusing to "
		       "overwrite it", opt, path, status ? "status" : "pid");
		return -1;
	}
	/* Two hupwatches on one status file: --reload would signal whichever wrote last. */
	if (status && n > 0 && strcmp(st.state, "exited") != 0 && st.pid != getpid() && hupwatch_alive(&st)) {
		logmsg(L_ERROR, "cannot use %s '%s': hupwatch pid %ld is running with it", opt, path, st.pid);
		return -1;
	}
	return 0;
}

/*
 * Field n (1-based) of /proc/PID/stat as a number, or -1 when the process is gone. comm
 * (field 2) may hold spaces and ')', so the counting starts after its last ')'.
 */
static long long stat_field(pid_t pid, int n)
{
	char path[64], buf[1024], *p, *end;
	long long v;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_file(path, buf, sizeof(buf)) <= 0 || !(p = strrchr(buf, ')')))
		return -1;
	for (int field = 2; field < n && p; field++)
		p = strchr(p + 1, ' ');
	if (!p)
		return -1;
	errno = 0;
	v = strtoll(p + 1, &end, 10);
	return errno || end == p + 1 || v < 0 ? -1 : v;
}

/* Field 22: lets --reload tell hupwatch from a process that reused its pid. 0: unknown. */
static unsigned long long process_starttime(pid_t pid)
{
	long long t = stat_field(pid, 22);

	return t < 0 ? 0 : (unsigned long long)t;
}

/* Is the hupwatch that wrote st still running (and not a process that got its pid since)? */
static bool hupwatch_alive(const struct status_info *st)
{
	unsigned long long t;

	if (kill((pid_t)st->pid, 0) && errno == ESRCH)
		return false;
	t = process_starttime((pid_t)st->pid);
	return !st->starttime || !t || t == st->starttime;
}

/* The parent of pid (field 4), from /proc; -1 when it is gone. */
static pid_t parent_of(pid_t pid)
{
	long long ppid = stat_field(pid, 4);

	return ppid > INT_MAX ? -1 : (pid_t)ppid;
}

static bool is_descendant(pid_t pid, pid_t ancestor)
{
	for (int hops = 0; hops < 128 && pid > 1; hops++) {
		if (pid == ancestor)
			return true;
		if (pid == getpid())
			return false;
		pid = parent_of(pid);
	}
	return false;
}

static struct generation *generation_of(pid_t pid)
{
	for (struct generation *g = hw.gens; g; g = g->next)
		if (is_descendant(pid, g->pid))
			return g;
	return NULL;
}

static int write_status(const char *state)
{
	char text[2048], reason[sizeof(hw.reload_reason)];
	const struct config *c = &hw.cfg;
	nsec_t wait = !awaits_signal(c) ? c->warmup
		: c->ready_timeout ? c->ready_timeout : MAX_SECONDS * NSEC_PER_SEC; /* no limit */
	int n;

	if (!c->status_file)
		return 0;
	/* A reason quotes the command and the directory: never let them break the line format. */
	copy_printable(reason, sizeof(reason), hw.reload_reason, sizeof(reason));
	n = snprintf(text, sizeof(text),
		     "pid=%d\nstarttime=%llu\nstate=%s\ngeneration=%u\ngeneration_pid=%d\n"
		     "ready_wait=%.3f\nreload=%u\nreload_state=%s\nreload_generation=%u\n"
		     "reload_started=%" PRId64 ".%09" PRId64 "\nreload_reason=%s\n",
		     (int)getpid(), hw.starttime, state, hw.current ? hw.current->number : 0,
		     hw.current ? (int)hw.current->pid : 0, seconds(wait), hw.reloads,
		     reload_state_names[hw.reload_state], hw.reload_generation,
		     hw.reload_started / NSEC_PER_SEC, hw.reload_started % NSEC_PER_SEC, reason);
	if (strcmp(state, "exited") == 0 && n > 0 && (size_t)n < sizeof(text))
		snprintf(text + n, sizeof(text) - (size_t)n, "exit_status=%d\n", hw.exit_status);
	if (write_atomic(c->status_file, text) == 0)
		hw.status_written = true;
	else {
		logmsg(L_ERROR, "cannot write status file '%s': %s", c->status_file, strerror(errno));
		return -1;
	}
	return 0;
}

static const char *run_state(void)
{
	if (hw.shutting_down)
		return "stopping";
	return hw.current ? "running" : "starting";
}

/* ---- upstream sd_notify (hupwatch under systemd Type=notify) ----------------------------- */

static int notify_address(const char *name, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = strlen(name);

	if ((name[0] != '/' && name[0] != '@') || n < 2 || n >= sizeof(sa->sun_path))
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, name, n);
	if (name[0] == '@')
		sa->sun_path[0] = '\0'; /* abstract namespace */
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '/'));
	return 0;
}

static void upstream_init(void)
{
	const char *name = getenv("NOTIFY_SOCKET");

	if (!name)
		return;
	if (notify_address(name, &hw.upstream, &hw.upstream_len) == 0)
		hw.upstream_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (hw.upstream_fd < 0)
		logmsg(L_WARNING, "cannot use NOTIFY_SOCKET '%s'; not notifying the service manager", name);
	/* It is ours: a child that sent READY=1 there would be taken for hupwatch itself. */
	unsetenv("NOTIFY_SOCKET");
}

static void upstream_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void upstream_send(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	if (hw.upstream_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return;
	if (sendto(hw.upstream_fd, buf, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&hw.upstream,
		   hw.upstream_len) < 0)
		logmsg(L_DEBUG, "cannot notify the service manager: %s", strerror(errno));
}

static void upstream_ready(void)
{
	if (hw.current)
		upstream_send("READY=1\nSTATUS=gen %u pid %d is current", hw.current->number,
			      (int)hw.current->pid);
}

/* ---- sockets ------------------------------------------------------------------------------ */

/* systemd names may not contain ':' (the separator); keep them to a plain set of characters. */
static char *fd_name(const char *address)
{
	char *name = xstrdup(address);

	for (char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
			*p = '_';
	return name;
}

static void add_listener(int fd, char *name, char *label, char *unix_path)
{
	struct listener *grown = realloc(hw.listeners, (hw.nlisteners + 1) * sizeof(*grown));

	if (!grown) {
		logmsg(L_ERROR, "out of memory");
		exit(EXIT_FAILURE_OWN);
	}
	hw.listeners = grown;
	hw.listeners[hw.nlisteners++] = (struct listener){ fd, name, label, unix_path };
}

/* Socket activation: sockets systemd (or anything speaking its protocol) passed to hupwatch. */
static void take_activated_sockets(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	long long p, n;

	if (pid && fds && parse_number(pid, INT_MAX, &p) == 0 && p == getpid() &&
	    parse_number(fds, 1024, &n) == 0) {
		const char *name = names;

		for (int i = 0; i < (int)n; i++) {
			size_t len = name ? strcspn(name, ":") : 0;
			char label[64], *fdname = xmalloc(len + 8);

			if (len)
				memcpy(fdname, name, len), fdname[len] = '\0';
			else
				memcpy(fdname, "unknown", sizeof("unknown"));
			if (name)
				name = name[len] ? name + len + 1 : NULL;
			if (fcntl(3 + i, F_SETFD, FD_CLOEXEC) < 0) {
				logmsg(L_ERROR, "cannot use socket-activated fd %d: %s", 3 + i, strerror(errno));
				exit(EXIT_FAILURE_OWN);
			}
			snprintf(label, sizeof(label), "activated fd %d (%s)", 3 + i, fdname);
			add_listener(3 + i, fdname, xstrdup(label), NULL);
			logmsg(L_INFO, "listening on %s", label);
		}
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

static void describe_sockname(int fd, char *buf, size_t size)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN], port[8];

	if (getsockname(fd, (struct sockaddr *)&ss, &len) ||
	    getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(buf, size, "fd %d", fd);
		return;
	}
	snprintf(buf, size, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

/* A stale socket file (nobody accepts on it) is replaced; anything else there is refused. */
static int clear_unix_path(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	int fd, r;

	if (lstat(path, &sb))
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(sb.st_mode)) {
		errno = EEXIST;
		return -1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (r == 0) {
		errno = EADDRINUSE;
		return -1;
	}
	return unlink(path);
}

static int listen_unix(const struct address *a, int backlog)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, saved;

	if (clear_unix_path(a->path))
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", a->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, backlog) == 0)
		return fd;
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

static int listen_inet(const struct address *a, int backlog, const char **why)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res, *ai;
	int fd = -1, err, one = 1;

	hints.ai_family = a->family;
	if (a->family != AF_UNSPEC)
		hints.ai_flags |= AI_NUMERICHOST;
	err = getaddrinfo(a->host, a->port, &hints, &res);
	if (err) {
		*why = err == EAI_SYSTEM ? strerror(errno) : gai_strerror(err);
		return -1;
	}
	errno = EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
			break;
		err = errno;
		close(fd);
		errno = err;
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		*why = strerror(errno);
	return fd;
}

static int open_listeners(void)
{
	for (size_t i = 0; i < hw.cfg.nlisten; i++) {
		const char *spec = hw.cfg.listen[i], *why = NULL;
		struct address a;
		char label[sizeof(a.path) + 8];
		int fd;

		parse_address(spec, &a); /* validated by parse_options */
		if (a.family == AF_UNIX) {
			fd = listen_unix(&a, hw.cfg.backlog);
			if (fd < 0)
				why = errno == EEXIST ? "file exists and is not a socket" : strerror(errno);
			snprintf(label, sizeof(label), "unix:%s", a.path);
		} else {
			fd = listen_inet(&a, hw.cfg.backlog, &why);
			if (fd >= 0)
				describe_sockname(fd, label, sizeof(label));
		}
		if (fd < 0) {
			logmsg(L_ERROR, "cannot listen on '%s': %s", spec, why);
			return -1;
		}
		add_listener(fd, fd_name(spec), xstrdup(label), a.family == AF_UNIX ? xstrdup(a.path) : NULL);
		logmsg(L_INFO, "listening on %s (fd %d)", label, 3 + (int)hw.nlisteners - 1);
	}
	return 0;
}

/* LISTEN_FDNAMES: the sockets' names joined by ':', the same for every generation. */
static void join_fdnames(void)
{
	size_t size = 1, at = 0;

	for (size_t i = 0; i < hw.nlisteners; i++)
		size += strlen(hw.listeners[i].name) + 1;
	hw.fdnames = xmalloc(size);
	hw.fdnames[0] = '\0';
	for (size_t i = 0; i < hw.nlisteners; i++)
		at += (size_t)snprintf(hw.fdnames + at, size - at, "%s%s", i ? ":" : "", hw.listeners[i].name);
}

/* The private datagram socket of --notify, in the abstract namespace: no file to clean up. */
static int open_notify_socket(void)
{
	struct sockaddr_un sa;
	socklen_t len = 0;
	int one = 1;

	hw.notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (hw.notify_fd < 0 || setsockopt(hw.notify_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)))
		goto fail;
	for (int attempt = 0; attempt < 16; attempt++) {
		snprintf(hw.notify_name, sizeof(hw.notify_name), "@hupwatch/%d/%08" PRIx64, (int)getpid(),
			 (uint64_t)(now() ^ ((nsec_t)attempt << 40)) & 0xffffffffu);
		if (notify_address(hw.notify_name, &sa, &len))
			break;
		if (bind(hw.notify_fd, (struct sockaddr *)&sa, len) == 0)
			return 0;
		if (errno != EADDRINUSE)
			break;
	}
fail:
	logmsg(L_ERROR, "cannot create the notify socket: %s", strerror(errno));
	return -1;
}

/* ---- generations -------------------------------------------------------------------------- */

enum spawn_stage { STAGE_CHDIR = 1, STAGE_SOCKETS, STAGE_EXEC };
struct spawn_error {
	int stage;
	int err;
};

static void reset_signals(void)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	unsigned long kernel_dfl[8] = { 0 }; /* a kernel struct sigaction: all zero is SIG_DFL anywhere */
	sigset_t empty;

	/*
	 * Default dispositions first, so nothing pending can hit a handler of ours. glibc refuses
	 * its reserved signals 32 and 33, which posix_spawn (GNU make, Python) leaves ignored:
	 * reset those with the system call itself.
	 */
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, &dfl, NULL))
			(void)syscall(SYS_rt_sigaction, sig, kernel_dfl, NULL, (size_t)(_NSIG / 8));
	sigemptyset(&empty);
	sigprocmask(SIG_SETMASK, &empty, NULL);
}

/* In the forked child: leave only through exec or _exit. */
static _Noreturn void exec_generation(unsigned number, int errfd)
{
	int n = (int)hw.nlisteners;
	struct spawn_error e = { STAGE_EXEC, 0 };
	char num[24];

	reset_signals();
	setpgid(0, 0);
	/* Keep the error pipe clear of fds 3..3+n-1, which the sockets are about to take. */
	errfd = fcntl(errfd, F_DUPFD_CLOEXEC, 3 + n);
	if (hw.workdir) {
		if (chdir(hw.workdir)) {
			e = (struct spawn_error){ STAGE_CHDIR, errno };
			goto fail;
		}
		setenv("PWD", hw.workdir, 1);
	}
	if (n > 0) {
		int tmp[n];

		/* Two steps, so that dup2 never meets its own source and every target loses CLOEXEC. */
		for (int i = 0; i < n; i++)
			if ((tmp[i] = fcntl(hw.listeners[i].fd, F_DUPFD_CLOEXEC, 3 + n)) < 0) {
				e = (struct spawn_error){ STAGE_SOCKETS, errno };
				goto fail;
			}
		for (int i = 0; i < n; i++)
			if (dup2(tmp[i], 3 + i) < 0) {
				e = (struct spawn_error){ STAGE_SOCKETS, errno };
				goto fail;
			}
		snprintf(num, sizeof(num), "%d", n);
		setenv("LISTEN_FDS", num, 1);
		snprintf(num, sizeof(num), "%d", (int)getpid());
		setenv("LISTEN_PID", num, 1);
		setenv("LISTEN_FDNAMES", hw.fdnames, 1);
	}
	if (hw.cfg.notify)
		setenv("NOTIFY_SOCKET", hw.notify_name, 1);
	snprintf(num, sizeof(num), "%u", number);
	setenv("HUPWATCH_GENERATION", num, 1);
	execvp(hw.cfg.command[0], hw.cfg.command);
	e.err = errno;
fail:
	if (write(errfd, &e, sizeof(e)) < 0)
		_exit(EXIT_FAILURE_OWN);
	_exit(e.stage != STAGE_EXEC ? EXIT_FAILURE_OWN : e.err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC);
}

/*
 * Fork and exec the next generation. A close-on-exec pipe tells at once whether exec worked:
 * EOF means it did, a struct spawn_error says why not. Returns NULL with why filled in on failure,
 * and the would-be exit status in *status.
 */
static struct generation *spawn(char *why, size_t size, int *status)
{
	unsigned number = ++hw.last_number;
	struct spawn_error e;
	struct generation *g;
	int pipefd[2], wstatus;
	ssize_t n;
	pid_t pid;

	*status = EXIT_FAILURE_OWN;
	if (pipe2(pipefd, O_CLOEXEC)) {
		snprintf(why, size, "cannot create a pipe: %s", strerror(errno));
		return NULL;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(why, size, "cannot fork: %s", strerror(errno));
		close(pipefd[0]);
		close(pipefd[1]);
		return NULL;
	}
	if (pid == 0)
		exec_generation(number, pipefd[1]);
	close(pipefd[1]);
	/* Also from here, so the group exists before anything may signal it (the usual race). */
	setpgid(pid, pid);
	do
		n = read(pipefd[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	if (n == (ssize_t)sizeof(e)) {
		while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
			;
		if (e.stage == STAGE_CHDIR)
			snprintf(why, size, "cannot change directory to '%s': %s", hw.workdir, strerror(e.err));
		else if (e.stage == STAGE_SOCKETS)
			snprintf(why, size, "cannot pass the listening sockets: %s", strerror(e.err));
		else {
			snprintf(why, size, "cannot execute '%s': %s", hw.cfg.command[0], strerror(e.err));
			*status = e.err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
		}
		return NULL;
	}
	g = xmalloc(sizeof(*g));
	*g = (struct generation){ .number = number, .pid = pid, .state = GEN_STARTING, .spawned_at = now() };
	g->probe_next = g->spawned_at;
	g->next = hw.gens;
	hw.gens = g;
	hw.starting = g;
	logmsg(L_INFO, "gen %u pid %d started", number, (int)pid);
	return g;
}

static void remove_generation(struct generation *dead)
{
	for (struct generation **p = &hw.gens; *p; p = &(*p)->next)
		if (*p == dead) {
			*p = dead->next;
			break;
		}
	if (hw.current == dead)
		hw.current = NULL;
	if (hw.starting == dead)
		hw.starting = NULL;
	if (hw.final_gen == dead)
		hw.final_gen = NULL;
	free(dead);
}

static void kill_probe(struct generation *g)
{
	if (g->probe_pid > 0)
		kill(-g->probe_pid, SIGKILL);
}

/* Ask a generation to stop. SIGCONT follows, or a stopped process would never see the signal. */
static void stop_generation(struct generation *g, nsec_t t)
{
	if (g->state == GEN_STOPPING)
		return;
	kill_probe(g);
	if (hw.current == g)
		hw.current = NULL;
	if (hw.starting == g)
		hw.starting = NULL;
	g->state = GEN_STOPPING;
	g->stop_at = t;
	logmsg(L_INFO, "gen %u pid %d stopping (%s)", g->number, (int)g->pid, signame(hw.cfg.stop_signal));
	if (kill(g->pid, hw.cfg.stop_signal) && errno != ESRCH)
		logmsg(L_WARNING, "cannot signal gen %u pid %d: %s", g->number, (int)g->pid, strerror(errno));
	if (hw.cfg.stop_signal != SIGKILL)
		kill(g->pid, SIGCONT);
}

static void kill_group(struct generation *g)
{
	g->killed = true;
	if (kill(-g->pid, SIGKILL) && errno != ESRCH)
		logmsg(L_WARNING, "cannot kill process group %d: %s", (int)g->pid, strerror(errno));
	kill(g->pid, SIGKILL); /* in case it left its group */
}

/*
 * What a dead generation's main process left in its group (say gunicorn workers of a master that
 * crashed) serves no one reliably and still holds the listening sockets: a supervisor's restart
 * of hupwatch could not bind them. Kill it and reap it (we are its subreaper), within a bound.
 */
static void kill_leftovers(const struct generation *g)
{
	struct timespec tick = { 0, 10L * 1000 * 1000 };
	int wstatus, killed = 0;

	if (kill(-g->pid, SIGKILL))
		return; /* nobody left */
	for (int i = 0; i < 50; i++) { /* SIGKILLed processes go at once; bound the wait to 0.5 s */
		pid_t pid = waitpid(-g->pid, &wstatus, WNOHANG);

		if (pid < 0)
			break;
		if (pid == 0)
			nanosleep(&tick, NULL);
		else
			killed++;
	}
	logmsg(L_INFO, "gen %u: killed what it left in its process group (%d reaped)", g->number, killed);
}

/* Does hupwatch still wait for g before exiting? Drained-only old ones are not waited for without -k. */
static bool must_wait_for(const struct generation *g)
{
	return hw.cfg.kill_at_exit || g->failed || g == hw.final_gen;
}

/* Leave the files as they should be after hupwatch: its status, no pid file, no socket file. */
static void tidy_files(int status)
{
	hw.exit_status = status;
	if (hw.status_written)
		write_status("exited");
	if (hw.pid_file_written) {
		char buf[32], mine[32];

		snprintf(mine, sizeof(mine), "%d\n", (int)getpid());
		if (read_file(hw.cfg.pid_file, buf, sizeof(buf)) >= 0 && strcmp(buf, mine) == 0)
			unlink(hw.cfg.pid_file);
	}
	if (!hw.gens)
		for (size_t i = 0; i < hw.nlisteners; i++)
			if (hw.listeners[i].unix_path)
				unlink(hw.listeners[i].unix_path);
}

static _Noreturn void finish(int status)
{
	tidy_files(status);
	logmsg(L_INFO, "exiting with status %d", status);
	exit(status);
}

/* Exit now, or once the generations hupwatch must wait for are gone. */
static void terminate(int status)
{
	if (!hw.shutting_down)
		upstream_send("STOPPING=1");
	hw.shutting_down = true;
	hw.reload_pending = false;
	hw.exit_status = status;
	for (struct generation *g = hw.gens; g; g = g->next)
		if (hw.cfg.kill_at_exit)
			stop_generation(g, now());
		else
			kill_probe(g);
	write_status("stopping");
}

static void maybe_finish(void)
{
	if (!hw.shutting_down)
		return;
	for (struct generation *g = hw.gens; g; g = g->next)
		if (must_wait_for(g))
			return;
	finish(hw.exit_status);
}

/*
 * Generation `number` will not become current (exec failed, it died, or it was not ready in
 * time; `running` when it is still being stopped). The old current one, if any, stays.
 */
static void fail_generation(unsigned number, bool running, const char *reason, int status)
{
	char current[64] = "", line[512];

	hw.starting = NULL;
	if (hw.current)
		snprintf(current, sizeof(current), "; gen %u stays current", hw.current->number);
	copy_printable(line, sizeof(line), reason, sizeof(line));
	logmsg(L_ERROR, "gen %u failed: %s%s", number, line, current);
	if (hw.reload_state == RELOAD_IN_PROGRESS) {
		hw.reload_state = RELOAD_FAILED;
		snprintf(hw.reload_reason, sizeof(hw.reload_reason), "gen %u failed: %s", number, reason);
		upstream_ready();
	}
	if (!hw.current && !hw.shutting_down) {
		/* Nothing serves: generation 1 failed, or the replacement of a dead current one did. */
		if (hw.orphan_status >= 0)
			status = hw.orphan_status;
		terminate(status);
		if (!running)
			finish(status);
		return;
	}
	write_status(run_state()); /* settled; run_pending_reload() goes on */
}

static void become_ready(struct generation *g, nsec_t t, const char *how)
{
	struct generation *old = hw.current;

	logmsg(L_INFO, "gen %u pid %d ready after %.2fs (%s)", g->number, (int)g->pid,
	       seconds(t - g->spawned_at), how);
	kill_probe(g);
	hw.starting = NULL;
	if (old)
		stop_generation(old, t);
	g->state = GEN_CURRENT;
	hw.current = g;
	hw.orphan_status = -1;
	if (hw.reload_state == RELOAD_IN_PROGRESS)
		hw.reload_state = RELOAD_SUCCEEDED;
	upstream_ready();
	write_status(run_state()); /* settled; run_pending_reload() goes on */
}

static void start_reload(void)
{
	char why[512];
	struct generation *g;
	int status;

	hw.reloads++;
	hw.reload_state = RELOAD_IN_PROGRESS;
	hw.reload_started = now();
	hw.reload_reason[0] = '\0';
	hw.reload_generation = hw.last_number + 1;
	upstream_send("RELOADING=1\nMONOTONIC_USEC=%" PRId64, hw.reload_started / 1000);
	g = spawn(why, sizeof(why), &status);
	if (!g) {
		fail_generation(hw.reload_generation, false, why, status);
		return;
	}
	write_status(run_state());
}

/* HUPs that came while a generation was starting collapse into this one reload, once it settled. */
static void run_pending_reload(void)
{
	if (hw.reload_pending && !hw.starting && !hw.shutting_down) {
		hw.reload_pending = false;
		start_reload();
	}
}

static void request_reload(void)
{
	if (hw.shutting_down) {
		logmsg(L_DEBUG, "reload requested (SIGHUP) while shutting down; ignored");
		return;
	}
	if (hw.starting) {
		logmsg(L_INFO, "reload requested (SIGHUP) while gen %u is starting; queued", hw.starting->number);
		hw.reload_pending = true;
		return;
	}
	logmsg(L_INFO, "reload requested (SIGHUP)");
	start_reload();
}

/* ---- readiness ---------------------------------------------------------------------------- */

enum verdict { NOT_YET, READY, TIMED_OUT };

/*
 * Pure: where a starting generation stands at time t, and when to look again (*next).
 * With -n and -c both given, both must agree; the warm-up is a minimum age on top.
 */
static enum verdict judge(const struct generation *g, const struct config *c, nsec_t t, nsec_t *next,
			  const char **how)
{
	bool waits_for_signal = awaits_signal(c);
	bool signalled = (!c->notify || g->notified) && (!c->ready_cmd || g->probe_ok);
	nsec_t warm = g->spawned_at + c->warmup;

	*next = NEVER;
	*how = !waits_for_signal ? "warm-up" : c->notify && c->ready_cmd ? "READY=1 and ready-cmd"
		: c->notify ? "READY=1" : "ready-cmd";
	if (signalled && t >= warm) {
		*next = t;
		return READY;
	}
	if (waits_for_signal && c->ready_timeout > 0) {
		nsec_t limit = g->spawned_at + c->ready_timeout;

		if (t >= limit)
			return TIMED_OUT;
		*next = limit;
	}
	if (signalled && warm < *next)
		*next = warm;
	if (c->ready_cmd && !g->probe_ok && g->probe_pid <= 0 && g->probe_next < *next)
		*next = g->probe_next;
	return NOT_YET;
}

static void run_probe(struct generation *g, nsec_t t)
{
	pid_t pid = fork();

	if (pid < 0) {
		logmsg(L_WARNING, "cannot fork the ready command: %s", strerror(errno));
		g->probe_next = t + hw.cfg.ready_interval;
		return;
	}
	if (pid == 0) {
		char num[24];

		reset_signals();
		setpgid(0, 0);
		snprintf(num, sizeof(num), "%d", (int)g->pid);
		setenv("HUPWATCH_PID", num, 1);
		snprintf(num, sizeof(num), "%u", g->number);
		setenv("HUPWATCH_GENERATION", num, 1);
		execl("/bin/sh", "sh", "-c", hw.cfg.ready_cmd, (char *)NULL);
		_exit(EXIT_NOT_FOUND);
	}
	setpgid(pid, pid);
	g->probe_pid = pid;
	g->probe_next = t + hw.cfg.ready_interval;
	logmsg(L_DEBUG, "gen %u: ready command pid %d started", g->number, (int)pid);
}

static void check_starting(nsec_t t)
{
	struct generation *g = hw.starting;
	const char *how;
	nsec_t next;
	char reason[64];

	if (!g || hw.shutting_down)
		return;
	switch (judge(g, &hw.cfg, t, &next, &how)) {
	case READY:
		become_ready(g, t, how);
		return;
	case TIMED_OUT:
		snprintf(reason, sizeof(reason), "not ready after %.2fs", seconds(t - g->spawned_at));
		g->failed = true;
		stop_generation(g, t);
		fail_generation(g->number, true, reason, EXIT_NOT_READY);
		return;
	case NOT_YET:
		if (hw.cfg.ready_cmd && !g->probe_ok && g->probe_pid <= 0 && t >= g->probe_next)
			run_probe(g, t);
	}
}

/*
 * When a stopping generation gets SIGKILL: after the stop timeout, if any. One that never became
 * ready has no connections to drain, and nothing may wait on it forever: without a stop timeout
 * it gets FAILED_STOP_GRACE.
 */
#define FAILED_STOP_GRACE (5 * NSEC_PER_SEC)
static nsec_t stop_deadline(const struct generation *g)
{
	nsec_t limit = hw.cfg.stop_timeout ? hw.cfg.stop_timeout : g->failed ? FAILED_STOP_GRACE : 0;

	if (g->state != GEN_STOPPING || g->killed || limit == 0)
		return NEVER;
	return g->stop_at + limit;
}

static void check_stopping(nsec_t t)
{
	for (struct generation *g = hw.gens; g; g = g->next)
		if (t >= stop_deadline(g)) {
			logmsg(L_WARNING, "gen %u pid %d still running after stop timeout %.2fs; sending SIGKILL "
			       "to its process group", g->number, (int)g->pid, seconds(stop_deadline(g) - g->stop_at));
			kill_group(g);
		}
}

static nsec_t next_deadline(void)
{
	nsec_t next = NEVER, n;
	const char *how;

	if (hw.starting && !hw.shutting_down) {
		judge(hw.starting, &hw.cfg, now(), &n, &how);
		next = n;
	}
	for (struct generation *g = hw.gens; g; g = g->next)
		if (stop_deadline(g) < next)
			next = stop_deadline(g);
	return next;
}

/* ---- events ------------------------------------------------------------------------------- */

static void generation_exited(struct generation *g, int wstatus)
{
	int code = exit_code(wstatus);
	unsigned number;
	char desc[80];

	describe_status(wstatus, desc, sizeof(desc));
	kill_probe(g);
	if (g == hw.final_gen)
		hw.exit_status = code;
	switch (g->state) {
	case GEN_STOPPING:
		logmsg(L_INFO, "gen %u pid %d %s after draining %.2fs", g->number, (int)g->pid, desc,
		       seconds(now() - g->stop_at));
		if (hw.shutting_down && hw.cfg.kill_at_exit)
			kill_leftovers(g); /* -k: nothing of ours outlives hupwatch */
		remove_generation(g);
		break;
	case GEN_STARTING:
		if (hw.shutting_down) {
			logmsg(L_INFO, "gen %u pid %d %s", g->number, (int)g->pid, desc);
			remove_generation(g);
			break;
		}
		number = g->number;
		kill_leftovers(g); /* whatever it left behind was never ready either */
		remove_generation(g);
		snprintf(desc + strlen(desc), sizeof(desc) - strlen(desc), " before ready");
		fail_generation(number, false, desc, code);
		break;
	case GEN_CURRENT:
		if (hw.starting) {
			logmsg(L_ERROR, "gen %u pid %d %s; gen %u may still take over", g->number, (int)g->pid,
			       desc, hw.starting->number);
			kill_leftovers(g);
			hw.orphan_status = code;
			remove_generation(g);
			write_status(run_state());
			break;
		}
		logmsg(L_ERROR, "gen %u pid %d %s; exiting with status %d", g->number, (int)g->pid, desc, code);
		kill_leftovers(g);
		remove_generation(g);
		terminate(code);
		break;
	}
}

static void reap(void)
{
	int wstatus;
	pid_t pid;

	while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
		bool matched = false;
		char desc[64];

		for (struct generation *g = hw.gens; g && !matched; g = g->next) {
			if (g->pid == pid) {
				matched = true;
				generation_exited(g, wstatus); /* may free g */
				break;
			}
			if (g->probe_pid == pid) {
				matched = true;
				g->probe_pid = 0;
				if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)
					g->probe_ok = true;
				else {
					describe_status(wstatus, desc, sizeof(desc));
					logmsg(L_DEBUG, "gen %u: ready command %s", g->number, desc);
				}
				break;
			}
		}
		if (!matched) {
			describe_status(wstatus, desc, sizeof(desc));
			logmsg(L_DEBUG, "reaped orphan pid %d (%s)", (int)pid, desc);
		}
	}
}

static void forward(int sig)
{
	struct generation *g = hw.current ? hw.current : hw.starting;

	if (!g) {
		logmsg(L_WARNING, "%s received but no generation runs; not forwarded", signame(sig));
		return;
	}
	logmsg(L_INFO, "forwarding %s to gen %u pid %d", signame(sig), g->number, (int)g->pid);
	if (kill(g->pid, sig) && errno != ESRCH)
		logmsg(L_WARNING, "cannot forward %s to pid %d: %s", signame(sig), (int)g->pid, strerror(errno));
}

static void request_shutdown(int sig)
{
	struct generation *g = hw.current ? hw.current : hw.starting;

	if (hw.shutting_down) {
		if (!hw.cfg.kill_at_exit) /* exiting anyway, waiting for a failed generation: now */
			finish(hw.exit_status);
		logmsg(L_DEBUG, "%s received again; already shutting down", signame(sig));
		return;
	}
	if (!hw.cfg.kill_at_exit) {
		if (g)
			logmsg(L_INFO, "%s received; exiting, leaving gen %u pid %d running", signame(sig),
			       g->number, (int)g->pid);
		else
			logmsg(L_INFO, "%s received; exiting", signame(sig));
		terminate(0);
		finish(0);
	}
	logmsg(L_INFO, "%s received; stopping all generations", signame(sig));
	/* The current generation's status; one that already died while a replacement started has it. */
	hw.final_gen = hw.current || hw.orphan_status < 0 ? g : NULL;
	terminate(hw.final_gen ? 0 : hw.orphan_status);
}

static void handle_signal(const struct signalfd_siginfo *si)
{
	switch (si->ssi_signo) {
	case SIGCHLD:
		reap();
		break;
	case SIGHUP:
		request_reload();
		break;
	case SIGTERM:
	case SIGINT:
	case SIGQUIT:
		request_shutdown((int)si->ssi_signo);
		break;
	default:
		forward((int)si->ssi_signo);
	}
}

static void read_signals(void)
{
	struct signalfd_siginfo si[16];
	ssize_t n;

	while ((n = read(hw.sigfd, si, sizeof(si))) > 0)
		for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++)
			handle_signal(&si[i]);
}

/*
 * The notify socket's name is visible in /proc/net/unix, so anyone local can write to it: log
 * at most 10 dropped messages a second, and how many were not logged.
 */
static void drop_notify(pid_t pid, const char *why)
{
	static nsec_t window;
	static unsigned logged, unlogged;
	nsec_t t = now();

	if (t - window >= NSEC_PER_SEC) {
		if (unlogged)
			logmsg(L_DEBUG, "dropped %u more notify messages", unlogged);
		window = t;
		logged = unlogged = 0;
	}
	if (logged++ < 10)
		logmsg(L_DEBUG, "dropped notify message from pid %d: %s", (int)pid, why);
	else
		unlogged++;
}

static void read_notify(void)
{
	char buf[4096];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 32)];
	} control;

	for (;;) {
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
				      .msg_controllen = sizeof(control.buf) };
		struct ucred *cred = NULL;
		struct generation *g;
		struct notify_msg m;
		ssize_t n = recvmsg(hw.notify_fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);

		if (n < 0)
			return;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level != SOL_SOCKET)
				continue;
			if (c->cmsg_type == SCM_CREDENTIALS)
				cred = (struct ucred *)CMSG_DATA(c);
			else if (c->cmsg_type == SCM_RIGHTS) /* fd store is not ours to keep: close */
				for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
					int fd;

					memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
					close(fd);
				}
		}
		if (!cred || cred->pid <= 0) {
			drop_notify(0, "no sender credentials");
			continue;
		}
		if ((size_t)n > sizeof(buf) || (msg.msg_flags & MSG_TRUNC)) {
			drop_notify(cred->pid, "oversized");
			continue;
		}
		if (!(g = generation_of(cred->pid))) {
			drop_notify(cred->pid, "not from a generation");
			continue;
		}
		if (parse_notify(buf, (size_t)n, &m)) {
			drop_notify(cred->pid, "malformed");
			continue;
		}
		if (m.has_status)
			logmsg(L_INFO, "gen %u pid %d status: %s", g->number, (int)g->pid, m.status);
		if (m.ready && g == hw.starting)
			g->notified = true;
		else if (m.ready)
			logmsg(L_DEBUG, "READY=1 from gen %u pid %d ignored: not starting", g->number, (int)g->pid);
	}
}

/* ---- set-up ------------------------------------------------------------------------------- */

/*
 * Descriptors hupwatch inherited above 2 (a deploy script's pipe, say) are not passed on: a
 * server holding them keeps that script's ssh session open forever. Socket activation's are
 * taken and passed on by LISTEN_FDS instead.
 */
static void cloexec_inherited(void)
{
	DIR *d;
	struct dirent *e;

	if (syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) == 0)
		return;
	if (!(d = opendir("/proc/self/fd")))
		return;
	/* readdir_r is deprecated (glibc, POSIX.1-2024); hupwatch has one thread. */
	/* cppcheck-suppress readdirCalled */
	while ((e = readdir(d))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);

		if (*end == '\0' && end != e->d_name && fd > 2 && fd != dirfd(d))
			(void)fcntl((int)fd, F_SETFD, FD_CLOEXEC);
	}
	closedir(d);
}

/* With fd 0, 1 or 2 closed, our first socket would land there and be passed as stdio. */
static void ensure_stdio(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
			exit(EXIT_FAILURE_OWN);
}

static int setup_signals(void)
{
	static const int handled[] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT,
				       SIGUSR1, SIGUSR2, SIGWINCH, SIGTTIN, SIGTTOU };
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
		sigaddset(&set, handled[i]);
	/* Blocked signals are queued even for PID 1, whose default-disposition signals are dropped. */
	if (sigprocmask(SIG_BLOCK, &set, NULL)) {
		logmsg(L_ERROR, "cannot block signals: %s", strerror(errno));
		return -1;
	}
	hw.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (hw.sigfd < 0) {
		logmsg(L_ERROR, "cannot create a signalfd: %s", strerror(errno));
		return -1;
	}
	/* Writes to a closed peer fail with EPIPE instead of killing hupwatch. */
	struct sigaction ign = { .sa_handler = SIG_IGN };
	if (sigaction(SIGPIPE, &ign, NULL)) {
		logmsg(L_ERROR, "cannot ignore SIGPIPE: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Where each generation starts: --chdir, else the logical $PWD when it names the current
 * directory, so that "current" is resolved afresh at every spawn.
 */
static int resolve_workdir(void)
{
	const char *pwd = getenv("PWD");
	const char *dir = hw.cfg.chdir;
	struct stat a, b;
	char *base = NULL;

	if (pwd && pwd[0] == '/' && stat(pwd, &a) == 0 && stat(".", &b) == 0 && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino)
		base = xstrdup(pwd);
	if (!dir) {
		hw.workdir = base;
		return 0;
	}
	if (dir[0] == '/') {
		hw.workdir = xstrdup(dir);
	} else {
		if (!base && !(base = getcwd(NULL, 0))) {
			logmsg(L_ERROR, "cannot get the current directory: %s", strerror(errno));
			return -1;
		}
		size_t size = strlen(base) + strlen(dir) + 2;

		hw.workdir = xmalloc(size);
		snprintf(hw.workdir, size, "%s/%s", base, dir);
	}
	free(base);
	if (stat(hw.workdir, &a)) {
		logmsg(L_ERROR, "cannot use --chdir '%s': %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(a.st_mode)) {
		logmsg(L_ERROR, "cannot use --chdir '%s': not a directory", dir);
		return -1;
	}
	return 0;
}

static int write_pid_file(void)
{
	char text[32];

	if (!hw.cfg.pid_file)
		return 0;
	snprintf(text, sizeof(text), "%d\n", (int)getpid());
	if (write_atomic(hw.cfg.pid_file, text)) {
		logmsg(L_ERROR, "cannot write pid file '%s': %s", hw.cfg.pid_file, strerror(errno));
		return -1;
	}
	hw.pid_file_written = true;
	return 0;
}

static int setup(void)
{
	if (hw.cfg.pid_file && check_own_file("--pid-file", hw.cfg.pid_file, false))
		return -1;
	if (hw.cfg.status_file && check_own_file("--status-file", hw.cfg.status_file, true))
		return -1;
	if (setup_signals() || resolve_workdir())
		return -1;
	/* Adopt the orphans of our children, so none is left a zombie (also as PID 1). */
	if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1))
		logmsg(L_WARNING, "cannot become a child subreaper: %s", strerror(errno));
	take_activated_sockets();
	if (open_listeners() || (hw.cfg.notify && open_notify_socket()))
		return -1;
	join_fdnames();
	upstream_init();
	hw.starttime = process_starttime(getpid());
	return 0;
}

static _Noreturn void event_loop(void)
{
	for (;;) {
		struct pollfd fds[2] = { { hw.sigfd, POLLIN, 0 }, { hw.notify_fd, POLLIN, 0 } };
		struct timespec ts, *tsp = NULL;
		nsec_t t = now(), deadline;

		/* Act on what is due before sleeping: a warm-up of 0 is due at once. */
		check_starting(t);
		run_pending_reload();
		check_stopping(t);
		maybe_finish();
		deadline = next_deadline();
		if (deadline != NEVER) {
			nsec_t wait = deadline - now();

			if (wait < 0)
				wait = 0;
			ts.tv_sec = (time_t)(wait / NSEC_PER_SEC);
			ts.tv_nsec = (long)(wait % NSEC_PER_SEC);
			tsp = &ts;
		}
		if (ppoll(fds, hw.notify_fd >= 0 ? 2 : 1, tsp, NULL) < 0 && errno != EINTR) {
			logmsg(L_ERROR, "cannot wait for events: %s", strerror(errno));
			terminate(EXIT_FAILURE_OWN);
			finish(EXIT_FAILURE_OWN);
		}
		/* Signals first: a generation that died counts as dead before its warm-up can pass. */
		if (fds[0].revents)
			read_signals();
		if (hw.notify_fd >= 0 && fds[1].revents)
			read_notify();
	}
}

/* ---- --reload: the deploy step that reports the outcome ---------------------------------- */

static int read_status_file(const char *path, struct status_info *st)
{
	char buf[4096];
	ssize_t n = read_file(path, buf, sizeof(buf));

	if (n < 0)
		return -1;
	if (parse_status(buf, (size_t)n, st)) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

static int reload_failed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int reload_failed(const char *fmt, ...)
{
	va_list ap;

	fputs("hupwatch: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAILURE_OWN;
}

static int run_reload_client(const struct config *c)
{
	const char *path = c->status_file;
	struct status_info st;
	char *dir, *slash;
	nsec_t start, limit;
	int ifd;

	if (read_status_file(path, &st))
		return reload_failed(errno == EINVAL ? "'%s' is not a hupwatch status file" :
				     "cannot read status file '%s': %s", path, strerror(errno));
	if (strcmp(st.state, "exited") == 0)
		return reload_failed("no hupwatch is running for '%s' (pid %ld exited with status %d)", path,
				     st.pid, st.exit_status);
	if (!hupwatch_alive(&st))
		return reload_failed("no hupwatch is running for '%s' (pid %ld is gone)", path, st.pid);
	if (strcmp(st.state, "stopping") == 0)
		return reload_failed("hupwatch pid %ld is shutting down", st.pid);
	if (c->ready_timeout_set)
		limit = c->ready_timeout;
	else if (st.ready_wait >= MAX_SECONDS * NSEC_PER_SEC)
		limit = 0; /* hupwatch waits without limit: so do we */
	else /* a reload in progress first, then ours; each may take ready_wait */
		limit = st.ready_wait * (strcmp(st.reload_state, "in-progress") == 0 ? 2 : 1) + 10 * NSEC_PER_SEC;

	/* Watch the directory before signalling: the status file is replaced by rename. */
	dir = xstrdup(path);
	slash = strrchr(dir, '/');
	if (slash)
		slash[slash == dir] = '\0';
	ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (ifd >= 0 && inotify_add_watch(ifd, slash ? dir : ".", IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		close(ifd);
		ifd = -1;
	}
	free(dir);

	start = now();
	if (kill((pid_t)st.pid, SIGHUP)) {
		int saved = errno;

		if (ifd >= 0)
			close(ifd);
		return reload_failed("cannot signal hupwatch pid %ld: %s", st.pid, strerror(saved));
	}
	for (;;) {
		struct status_info cur;
		struct pollfd pfd = { ifd, POLLIN, 0 };
		nsec_t left = limit ? start + limit - now() : NEVER;

		if (read_status_file(path, &cur) == 0) {
			if (cur.reload_started >= start && strcmp(cur.reload_state, "succeeded") == 0) {
				printf("hupwatch: reload %u succeeded: gen %u pid %ld is current\n", cur.reload,
				       cur.generation, cur.generation_pid);
				break;
			}
			if (strcmp(cur.state, "exited") == 0 || strcmp(cur.state, "stopping") == 0 ||
			    cur.pid != st.pid || !hupwatch_alive(&cur)) {
				if (ifd >= 0)
					close(ifd);
				if (strcmp(cur.state, "exited") == 0)
					return reload_failed("hupwatch pid %ld exited with status %d before the reload "
							     "succeeded", st.pid, cur.exit_status);
				return reload_failed("hupwatch pid %ld %s before the reload succeeded", st.pid,
						     strcmp(cur.state, "stopping") == 0 ? "began shutting down" : "is gone");
			}
			if (cur.reload_started >= start && strcmp(cur.reload_state, "failed") == 0) {
				fprintf(stderr, "hupwatch: reload %u failed: %s; gen %u pid %ld still current\n",
					cur.reload, cur.reload_reason, cur.generation, cur.generation_pid);
				if (ifd >= 0)
					close(ifd);
				return 1;
			}
		}
		if (left <= 0) {
			if (ifd >= 0)
				close(ifd);
			fprintf(stderr, "hupwatch: timed out after %.2fs waiting for the reload to settle\n",
				seconds(limit));
			return EXIT_TIMEDOUT;
		}
		/* inotify wakes us on every rewrite; the bounded wait also notices a vanished hupwatch. */
		if (left > NSEC_PER_SEC / 4)
			left = NSEC_PER_SEC / 4;
		poll(&pfd, ifd >= 0 ? 1 : 0, (int)(left / 1000000) + 1);
		if (ifd >= 0) {
			char drain[4096];

			while (read(ifd, drain, sizeof(drain)) > 0)
				;
		}
	}
	if (ifd >= 0)
		close(ifd);
	return 0;
}

#ifndef UNIT_TEST
int main(int argc, char **argv)
{
	char why[512];
	int rc, status;

	/* Nothing of ours may land on fds 0-2, nothing inherited passes on above them. */
	ensure_stdio();
	cloexec_inherited();
	/* Parse and validate every argument before anything starts. */
	rc = parse_options(argc, argv, &hw.cfg);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (hw.cfg.reload)
		return run_reload_client(&hw.cfg);
	/* Files, signals, subreaper, sockets. */
	if (setup()) { /* one error line said why; only unbind what was bound */
		tidy_files(EXIT_FAILURE_OWN);
		return EXIT_FAILURE_OWN;
	}
	/* Both files before generation 1: a path that cannot be written is found now, not later. */
	if (write_pid_file() || write_status("starting"))
		finish(EXIT_FAILURE_OWN);
	/* Generation 1. */
	if (!spawn(why, sizeof(why), &status)) {
		logmsg(L_ERROR, "%s", why);
		finish(status);
	}
	/* Everything else happens in response to an event. */
	event_loop();
}
#endif
