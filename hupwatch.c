/*
 * hupwatch - run a server and replace it with a fresh copy on SIGHUP, losing nothing.
 *
 * One process, one loop: signals arrive through a signalfd, readiness through a private notify
 * socket, exec reports through a pipe per spawn, and the loop sleeps in ppoll() until the
 * nearest deadline (none while idle). Every spawn is a generation:
 *
 *   STARTING --ready--> CURRENT --replaced--> STOPPING --its whole process group gone--> (freed)
 *   STARTING --exec failed, died, not ready in time--> FAILED --group gone--> (freed)
 *   with --settle-time: STARTING --ready--> SETTLING --stayed alive (and answering)--> CURRENT;
 *   SETTLING --died, stopped answering--> FAILED, and the old CURRENT was never stopped
 *
 * A generation owns its resources: its process group, its notify socket (a path in hupwatch's
 * private runtime directory, so the socket a message arrives on says whose it is) and, with
 * --probe-socket or --ready-http, a probe socket no other generation has. All of them are made
 * in spawn() and released in remove_generation(), when the generation is gone.
 *
 * The sections, in the order they depend on each other (no forward declarations):
 *   types and state     the configuration, the generation record, the one global `hw`
 *   helpers             clock, log lines, signal names, exit statuses
 *   parsing             durations, signals, addresses, sd_notify datagrams
 *   status format       the status file's fields: one table drives writing and reading
 *   options             the command line, and which options need which
 *   files and procs     atomic writes, safe reads, our own files, /proc look-ups
 *   upstream            sd_notify to the service manager above us
 *   sockets             the listening sockets held for every generation
 *   generations         spawn, the one state writer, stopping, the end of a process group
 *   readiness           judge(), the ready command, the HTTP check
 *   lifecycle           hupwatch's own states: reload, shut down, exit
 *   events              handlers named by the state they handle, reaping, signals, notify
 *   set-up, loop        everything before the loop, and the loop
 *   reload client       hupwatch --reload
 *   main
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
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
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

#ifndef VERSION
#define VERSION "1.1.0"
#endif
/* The handover record --upgrade writes and reads; --version says it, and --upgrade requires that. */
#ifndef HANDOVER_VERSION
#define HANDOVER_VERSION 1
#endif

/* Exit statuses of hupwatch itself (coreutils wrapper convention: env, nice, timeout). */
#define EXIT_NOT_READY 1
#define EXIT_TIMEDOUT 124
#define EXIT_FAILURE_OWN 125
#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127

typedef int64_t nsec_t;
#define NSEC_PER_SEC INT64_C(1000000000)
#define NEVER INT64_MAX /* a deadline that never comes; as a limit: none */
#define MAX_SECONDS INT64_C(1000000000)

/*
 * A generation that never became ready has no connections to drain, and nothing may wait on it
 * forever: without a stop timeout it gets this long before SIGKILL.
 */
#define FAILED_STOP_GRACE (5 * NSEC_PER_SEC)
/*
 * When the service is down (its current generation died, nothing took over) and hupwatch exits
 * with -k, drains still going get at most this long to finish what they hold: the supervisor
 * above must be able to start hupwatch again soon.
 */
#define DOWN_DRAIN_GRACE (2 * NSEC_PER_SEC)
/* After SIGKILL a process goes at once, unless it is stuck in the kernel: wait no longer. */
#define KILL_GRACE (2 * NSEC_PER_SEC)
/* --upgrade: the new binary's --version must answer within this; the loop goes on meanwhile. */
#define UPGRADE_CHECK_LIMIT (2 * NSEC_PER_SEC)
/*
 * The stop timeout without -T. Longer than the graceful timeouts of the servers run behind
 * hupwatch (gunicorn's --graceful-timeout and puma's worker_shutdown_timeout 30 s, uWSGI's
 * reload-mercy 60 s), so that it cuts only a drain the server's own limit failed to end (a
 * generation that ignores or mishandles its stop signal, and keeps the sockets forever); and
 * shorter than systemd's default TimeoutStopSec= of 90 s, so that under systemd, with -k,
 * hupwatch's SIGKILL and its log line come before the manager kills the whole unit. -T 0: none.
 */
#define DEFAULT_STOP_TIMEOUT (75 * NSEC_PER_SEC)
/* An --env-file larger than this is refused: it is a mistake (a binary, a log), not settings. */
#define ENV_FILE_MAX ((size_t)1 << 20)

/* --respawn: the first respawn is at once, each failed one doubles the wait, up to the cap. */
#define RESPAWN_FIRST_DELAY (NSEC_PER_SEC / 10)
#define RESPAWN_MAX_DELAY (5 * NSEC_PER_SEC)
/* --respawn-limit's default, systemd's start limit: 5 failures within 10 seconds. */
#define RESPAWN_BURST 5
#define RESPAWN_INTERVAL (10 * NSEC_PER_SEC)
#define RESPAWN_MAX_BURST 100

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

extern char **environ;

/* ---- types and state ---------------------------------------------------------------------- */

enum level { L_DEBUG, L_INFO, L_WARNING, L_ERROR };

/* The account of --user, looked up once at start-up; its groups are read at every start. */
struct account {
	bool set;
	uid_t uid;
	gid_t gid;  /* its login group, or GROUP of USER:GROUP */
	char *name; /* for initgroups(), USER and LOGNAME */
	char *home; /* HOME */
};

struct config {
	nsec_t warmup;
	bool warmup_set;
	bool notify;
	const char *ready_cmd;
	const char *ready_http; /* --ready-http PATH */
	bool probe_socket;      /* --probe-socket, implied by --ready-http */
	nsec_t settle;          /* --settle-time; 0: none */
	nsec_t ready_interval;
	nsec_t ready_timeout; /* NEVER: no limit (-t 0) */
	bool ready_timeout_set;
	int stop_signal;
	int drain_signal;    /* --drain-signal; 0: none */
	nsec_t drain_time;   /* --drain-time: from the drain signal to the stop signal */
	nsec_t stop_timeout; /* NEVER: no limit (-T 0) */
	bool kill_at_exit;
	bool respawn;
	unsigned respawn_burst;    /* a crash loop: this many failures ... */
	nsec_t respawn_interval;   /* ... within this long */
	const char **listen;
	size_t nlisten;
	int backlog;
	const char *chdir;
	bool socket_mode_set;
	mode_t socket_mode;     /* --socket-mode */
	bool socket_owner_set;
	uid_t socket_uid;       /* --socket-owner; (uid_t)-1: left as bind() made it */
	gid_t socket_gid;       /* (gid_t)-1: likewise */
	struct account user;    /* --user */
	const char *env_file;   /* --env-file, relative to each generation's directory */
	const char *pid_file;
	const char *status_file;
	bool reload;
	bool upgrade;
	enum level level;
	char **command;
	bool seen[512]; /* which options were given, by getopt code */
};

enum gen_state { GEN_STARTING, GEN_SETTLING, GEN_CURRENT, GEN_STOPPING, GEN_FAILED };
static const char *const gen_state_names[] = { "starting", "settling", "current", "stopping", "failed" };

/* A limit on log lines of one kind: at most `burst` a second, then one line counting the rest. */
struct ratelimit {
	nsec_t window;
	unsigned logged, suppressed;
	enum level level; /* of the line that counts what was left out */
	char what[32];    /* what it counts */
};

/* The longest HTTP status line --ready-http reads; a longer one is malformed. */
#define HTTP_LINE_MAX 512
/* A try of --ready-http gets --ready-interval, and never less than this. */
#define HTTP_TRY_MIN NSEC_PER_SEC

/* One try of --ready-http: a non-blocking GET on the generation's probe socket. */
struct http_try {
	int fd;     /* -1: no try in flight */
	size_t sent; /* bytes of the request written */
	size_t got;
	nsec_t started, deadline;
	char buf[HTTP_LINE_MAX];
};

/* What a generation owns besides its processes; -1 / NULL: none. */
struct gen_sockets {
	int notify_fd;
	char *notify_path;
	int probe_fd;
	char *probe_address; /* HUPWATCH_PROBE_ADDRESS: HOST:PORT, [IPV6]:PORT or unix:PATH */
	char *probe_path;    /* a unix probe socket's file */
	struct sockaddr_storage probe_sa;
	socklen_t probe_len;
};

struct generation {
	unsigned number;
	pid_t pid; /* also its process group id */
	enum gen_state state;
	nsec_t spawned_at;
	nsec_t stop_at;   /* when it was asked to stop */
	nsec_t kill_at;   /* SIGKILL to its group then (NEVER: no limit) */
	nsec_t drain_end; /* --drain-signal sent: the stop signal is due then; 0: not draining */
	bool killed;      /* SIGKILL sent to its group */
	int exec_fd;      /* the exec report pipe until exec is confirmed, else -1 */
	char *dir;        /* the directory it runs in, as the child resolved it before exec */
	bool fallback;    /* respawned in the last good release's directory, not the configured one */
	bool adopted;     /* a dead predecessor's, taken over: not our child, watched through pidfd */
	int pidfd;        /* adopted: readable once it has exited; else -1 */
	unsigned long long starttime; /* of its main process, so that no later holder of its pid is taken for it */
	bool main_exited; /* its main process is reaped; the rest of its group may live on */
	int main_status;  /* its wait status, once main_exited */
	bool leftovers;   /* its group outlived its main process: "gone" gets its own line */
	bool notified;    /* READY=1 received */
	nsec_t watchdog_at; /* its last WATCHDOG=1; 0: it never sent one, and is not watched */
	bool probe_ok;
	pid_t probe_pid;
	nsec_t probe_next;
	struct gen_sockets own;
	struct http_try http;
	bool http_ok;        /* a 2xx answered, while starting */
	bool unhealthy;      /* a try failed while settling */
	nsec_t http_next;    /* the next try of --ready-http */
	nsec_t settle_end;   /* SETTLING: current then */
	char http_last[160]; /* the latest try's outcome, for logs and reasons */
	struct ratelimit status_lines;
	struct generation *next;
};

struct listener {
	int fd;
	char *name;  /* LISTEN_FDNAMES entry */
	char *label; /* for logs */
	char *unix_path; /* removed at exit; NULL when the socket outlives hupwatch (a socket unit, the fd store) */
	bool fresh;      /* bound by this hupwatch: offered to the fd store once */
};

/* hupwatch's own lifecycle, as the status file's state= shows it. */
enum hw_state { HW_STARTING, HW_RUNNING, HW_STOPPING, HW_EXITED };
static const char *const hw_state_names[] = { "starting", "running", "stopping", "exited" };

enum reload_state { RELOAD_NONE, RELOAD_IN_PROGRESS, RELOAD_SUCCEEDED, RELOAD_FAILED };
static const char *const reload_state_names[] = { "none", "in-progress", "succeeded", "failed" };

/* Why hupwatch shuts down: a signal asks for a graceful stop; a dead service cuts drains short. */
enum shutdown_cause { BY_SIGNAL, SERVICE_DOWN };

/* A parsed --listen ADDRESS. */
struct address {
	int family;   /* AF_UNIX, AF_INET, AF_INET6, or AF_UNSPEC for a host name */
	int socktype; /* SOCK_STREAM, or SOCK_DGRAM for udp: */
	char host[256];
	char port[6];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* One sd_notify datagram, as far as hupwatch cares. */
struct notify_msg {
	bool ready;
	bool watchdog;
	bool has_status;
	char status[256];
};

static struct {
	struct config cfg;
	enum hw_state state;
	struct generation *gens; /* newest first */
	unsigned last_number;
	int sigfd;
	char *workdir;
	unsigned long long starttime;
	bool status_dirty; /* the status file is behind: the loop writes it before it sleeps */
	bool journal;      /* stderr is the journal (JOURNAL_STREAM): log lines in its format */
	struct {
		bool pending;     /* a SIGHUP came while a generation was starting */
		unsigned requests; /* SIGHUPs taken; --reload matches its own by this count */
		unsigned count;   /* reloads started */
		unsigned covers;  /* the requests the latest reload answers: all up to this one */
		enum reload_state state;
		unsigned generation;
		nsec_t started;
		char reason[320];
	} reload;
	struct {
		nsec_t at;         /* when the next respawn is due; NEVER: none */
		unsigned attempts; /* respawns since a generation was last ready */
		unsigned count;    /* respawns in all */
		nsec_t failures[RESPAWN_MAX_BURST]; /* when the latest failures were, a ring */
		unsigned nfailures;
		char *last_good_dir; /* where the last generation that became ready ran */
	} respawn;
	struct {
		struct listener *list;
		size_t n;
		char *fdnames; /* LISTEN_FDNAMES for every generation */
	} sock;
	struct {
		struct ratelimit drops; /* every generation has its own notify socket (struct gen_sockets) */
	} notify;
	char *runtime_dir; /* private (0700): the path sockets of the generations; removed at exit */
	struct {
		int fd;
		char name[sizeof(((struct sockaddr_un *)0)->sun_path) + 1]; /* NOTIFY_SOCKET as given */
		struct sockaddr_un addr;
		socklen_t len;
		nsec_t watchdog;      /* WATCHDOG_USEC, ours to keep: WATCHDOG=1 every half of it (0: none) */
		nsec_t watchdog_next; /* the next WATCHDOG=1 */
	} upstream;
	struct {
		char *exe;  /* the binary's path, resolved at start: an upgrade runs the file there now */
		int exe_fd; /* the binary this process started from, for a refused upgrade to go back to */
		char **argv; /* as given: the new image parses the same options */
	} self;
	struct {
		struct orphan {
			unsigned number;
			pid_t pid;
			int state; /* enum gen_state */
		} list[8];
		size_t n;     /* generations of a predecessor that died without cleaning up, still running */
		size_t taken; /* listening sockets taken over from the current one */
		bool stopped; /* they were asked to stop, their sockets not taken */
	} takeover;
	struct {
		unsigned requests; /* --upgrade requests taken */
		enum reload_state state;
		char reason[256];
		int fd;                /* the handover record, while an exec is tried */
		unsigned final_number; /* exit.final_gen by number, while resuming */
		pid_t check_pid;       /* the new binary's --version, while it runs; also its process group */
		dev_t check_dev;       /* the file checked, which must be the file executed */
		ino_t check_ino;
		int check_fd;          /* what it prints */
		nsec_t check_until;    /* then it is killed */
		bool check_killed;
		bool checked;          /* it has exited: hand over at the next turn of the loop */
		int check_status;
		char version[128];     /* the first line it printed */
	} upgrade;
	struct request_id {
		pid_t pid; /* the client that sent it */
		int value; /* its sigqueue(3) value: kind and the count the client read first */
	} taken[8];        /* the latest client requests taken, so that one sent again is not taken twice */
	size_t ntaken;
	struct {
		bool pid_written;
		bool status_written;
		int lock_fd; /* held for hupwatch's life: one hupwatch per status file */
	} files;
	struct {
		int status;                   /* what hupwatch exits with */
		struct generation *final_gen; /* whose status that becomes, after a -k shutdown */
		bool lost_current;            /* the current generation died while a replacement started */
		int lost_status;              /* its status, which hupwatch exits with if that one fails */
	} exit;
} hw = { .sigfd = -1, .respawn = { .at = NEVER }, .self = { .exe_fd = -1 }, .upgrade = { .fd = -1 }, .upstream = { .fd = -1 }, .files = { .lock_fd = -1 } };

/* ---- helpers ------------------------------------------------------------------------------ */

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

/*
 * JOURNAL_STREAM=DEV:INO (decimal) names the journal's stream socket; is it the file st describes?
 * Then stderr is the journal (a redirection in between, and it is not).
 */
static bool names_journal(const char *stream, const struct stat *st)
{
	static const char digits[] = "0123456789";
	size_t a = stream ? strspn(stream, digits) : 0, b;

	if (a == 0 || stream[a] != ':')
		return false;
	b = strspn(stream + a + 1, digits);
	if (b == 0 || stream[a + 1 + b] != '\0')
		return false;
	return strtoull(stream, NULL, 10) == (unsigned long long)st->st_dev &&
	       strtoull(stream + a + 1, NULL, 10) == (unsigned long long)st->st_ino;
}

/* Decided once, before the first line: sd-daemon's "<N>" prefixes, or "hupwatch[PID]: level: ". */
static void log_init(void)
{
	struct stat st;

	hw.journal = fstat(STDERR_FILENO, &st) == 0 && names_journal(getenv("JOURNAL_STREAM"), &st);
}

/* The start of a log line: the journal takes the priority and names the process itself. */
static int log_prefix(char *buf, size_t size, enum level level, bool journal, pid_t pid)
{
	static const char *const names[] = { "debug", "info", "warning", "error" };
	static const char priorities[] = { '7', '6', '4', '3' }; /* LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR */

	if (journal)
		return snprintf(buf, size, "<%c>", priorities[level]);
	return snprintf(buf, size, "hupwatch[%d]: %s: ", (int)pid, names[level]);
}

/* One line per event. What a generation or a command line put in it cannot start a line of its own. */
static void logmsg(enum level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logmsg(enum level level, const char *fmt, ...)
{
	char text[1024], buf[1100];
	va_list ap;
	int n;

	if (level < hw.cfg.level)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	n = log_prefix(buf, sizeof(buf), level, hw.journal, getpid());
	copy_printable(buf + n, sizeof(buf) - (size_t)n - 1, text, sizeof(text));
	n += (int)strlen(buf + n);
	buf[n++] = '\n';
	/* One write per line, so lines never interleave with the children's output. */
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		return;
}

/*
 * May a line of this kind be logged at t? At most 10 a second; when a burst was cut, the count of
 * what was left out is logged once its second is over (ratelimit_due() tells the loop when).
 */
static bool ratelimit_allow(struct ratelimit *r, nsec_t t)
{
	if (t - r->window >= NSEC_PER_SEC) {
		if (r->suppressed)
			logmsg(r->level, "%u more %s lines not logged", r->suppressed, r->what);
		r->window = t;
		r->logged = r->suppressed = 0;
	}
	if (r->logged < 10) {
		r->logged++;
		return true;
	}
	r->suppressed++;
	return false;
}

static nsec_t ratelimit_due(const struct ratelimit *r)
{
	return r->suppressed ? r->window + NSEC_PER_SEC : NEVER;
}

static void ratelimit_flush(struct ratelimit *r, nsec_t t)
{
	if (r->suppressed && t >= ratelimit_due(r))
		(void)ratelimit_allow(r, t);
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

	for (size_t i = 0; i < COUNT(signals); i++)
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

/* A limit as the user wrote it: 0 means none. */
static nsec_t limit_of(nsec_t d)
{
	return d == 0 ? NEVER : d;
}

/* ---- parsing ------------------------------------------------------------------------------ */

/*
 * A non-negative decimal number of seconds ("1", "0.25", ".5"), at most MAX_SECONDS, with at
 * most 9 decimals: hupwatch counts nanoseconds, and a finer value would silently become another.
 */
static int parse_duration(const char *s, nsec_t *out)
{
	nsec_t sec = 0, frac = 0, scale = NSEC_PER_SEC / 10;
	size_t int_digits = 0, decimals = 0;
	const char *p = s;

	for (; *p >= '0' && *p <= '9'; p++, int_digits++)
		if (sec <= MAX_SECONDS)
			sec = sec * 10 + (*p - '0');
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, decimals++) {
			frac += (*p - '0') * scale;
			scale /= 10;
		}
	if (int_digits + decimals == 0 || *p || decimals > 9 || sec > MAX_SECONDS ||
	    (sec == MAX_SECONDS && frac))
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
	for (size_t i = 0; i < COUNT(signals); i++)
		if (strcasecmp(name, signals[i].name) == 0)
			return signals[i].number;
	return -1;
}

/* Signals whose default action stops, continues or is ignored: a process they are sent to goes on. */
static bool cannot_end_process(int sig)
{
	static const int harmless[] = { SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGCONT, SIGCHLD, SIGURG, SIGWINCH };

	for (size_t i = 0; i < COUNT(harmless); i++)
		if (harmless[i] == sig)
			return true;
	return false;
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

static int parse_unix_address(const char *path, struct address *a)
{
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(a->path))
		return -1;
	a->family = AF_UNIX;
	memcpy(a->path, path, len + 1);
	return 0;
}

/* [IPV6]:PORT */
static int parse_ipv6_address(const char *s, struct address *a)
{
	const char *close = strchr(s, ']');
	size_t hostlen;

	if (!close || close[1] != ':' || close == s + 1)
		return -1;
	hostlen = (size_t)(close - s - 1);
	if (hostlen >= sizeof(a->host))
		return -1;
	a->family = AF_INET6;
	memcpy(a->host, s + 1, hostlen);
	return parse_port(close + 2, a->port);
}

/* PORT, HOST:PORT, [IPV6]:PORT or unix:PATH; udp: before any but the last: a datagram socket. */
static int parse_address(const char *s, struct address *a)
{
	const char *colon;
	size_t hostlen;

	memset(a, 0, sizeof(*a));
	a->socktype = SOCK_STREAM;
	if (strncmp(s, "unix:", 5) == 0)
		return parse_unix_address(s + 5, a);
	if (strncmp(s, "udp:", 4) == 0) {
		a->socktype = SOCK_DGRAM;
		s += 4;
	}
	if (s[0] == '[')
		return parse_ipv6_address(s, a);
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

/* The length of the UTF-8 sequence that lead byte c starts, 0 if it starts none. */
static size_t utf8_length(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0)
		return 2;
	if ((c & 0xf0) == 0xe0)
		return 3;
	return (c & 0xf8) == 0xf0 ? 4 : 0;
}

/* RFC 3629: one sequence of n bytes, no overlong form, no surrogate, nothing above U+10FFFF. */
static bool valid_utf8_sequence(const unsigned char *p, size_t n)
{
	static const uint32_t least[] = { 0, 0, 0x80, 0x800, 0x10000 };
	uint32_t cp = n == 1 ? p[0] : (uint32_t)(p[0] & (0x7f >> n));

	for (size_t k = 1; k < n; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return false;
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	return cp >= least[n] && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
}

static bool valid_utf8(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t n = utf8_length(p[i]);

		if (n == 0 || i + n > len || !valid_utf8_sequence(p + i, n))
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
		else if (n == 10 && memcmp(p, "WATCHDOG=1", 10) == 0)
			m->watchdog = true;
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

/* --socket-mode: chmod(1)'s numeric form, 1 to 4 octal digits, permission bits only (at most 777). */
static int parse_mode(const char *s, mode_t *out)
{
	size_t len = strlen(s);
	unsigned m = 0;

	if (len == 0 || len > 4 || strspn(s, "01234567") != len)
		return -1;
	for (const char *p = s; *p; p++)
		m = m * 8 + (unsigned)(*p - '0');
	if (m > 0777)
		return -1;
	*out = (mode_t)m;
	return 0;
}

/*
 * USER[:GROUP] split at its colon, each part at most size-1 bytes: 0, or -1 for a second colon,
 * an empty GROUP after a colon, or a part too long. Pure; USER may be empty (":GROUP").
 */
static int split_account(const char *s, char *user, char *group, size_t size)
{
	const char *colon = strchr(s, ':');
	size_t ulen = colon ? (size_t)(colon - s) : strlen(s);

	if (ulen >= size || (colon && (!colon[1] || strchr(colon + 1, ':') || strlen(colon + 1) >= size)))
		return -1;
	memcpy(user, s, ulen);
	user[ulen] = '\0';
	snprintf(group, size, "%s", colon ? colon + 1 : "");
	return 0;
}

/* An id given as a number: all digits, below (id_t)-1, which chown(2) reads as "unchanged". */
static bool numeric_id(const char *s, unsigned *out)
{
	long long n;

	if (parse_number(s, UINT32_MAX - 1, &n))
		return false;
	*out = (unsigned)n;
	return true;
}

/*
 * The user and group database look-ups below run at start-up only, before any generation, and
 * hupwatch has one thread: the reentrant _r variants would only add buffer sizing.
 */
static int find_group(const char *s, gid_t *gid)
{
	const struct group *gr;
	unsigned n;

	if (numeric_id(s, &n)) {
		*gid = (gid_t)n;
		return 0;
	}
	/* cppcheck-suppress getgrnamCalled */
	gr = getgrnam(s);
	if (!gr)
		return -1;
	*gid = gr->gr_gid;
	return 0;
}

/* The user database entry of a user given by name or number; NULL if there is none. */
static const struct passwd *find_user(const char *s)
{
	unsigned n;

	/* cppcheck-suppress [getpwuidCalled, getpwnamCalled] */
	return numeric_id(s, &n) ? getpwuid((uid_t)n) : getpwnam(s);
}

/*
 * --socket-owner: USER, USER:GROUP or :GROUP, by name or number (a number needs no entry in
 * the user database). What is not given stays (uid_t)-1 or (gid_t)-1: unchanged. NULL, or why not.
 */
static const char *parse_owner(const char *s, uid_t *uid, gid_t *gid)
{
	char user[256], group[256];
	const struct passwd *pw;
	unsigned n;

	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (split_account(s, user, group, sizeof(user)) || (!*user && !*group))
		return "invalid owner";
	if (*user && numeric_id(user, &n))
		*uid = (uid_t)n;
	else if (*user) {
		/* cppcheck-suppress getpwnamCalled */
		if (!(pw = getpwnam(user)))
			return "unknown user in";
		*uid = pw->pw_uid;
	}
	if (*group && find_group(group, gid))
		return "unknown group in";
	return NULL;
}

/*
 * --user: USER or USER:GROUP, by name or number; USER must be in the user database (its
 * name, for its groups, and its home). GROUP replaces its login group. NULL, or why not.
 */
static const char *parse_user(const char *s, struct account *a)
{
	char user[256], group[256];
	const struct passwd *pw;

	if (split_account(s, user, group, sizeof(user)) || !*user)
		return "invalid user";
	if (!(pw = find_user(user)))
		return "unknown user in";
	a->uid = pw->pw_uid;
	a->gid = pw->pw_gid;
	if (*group && find_group(group, &a->gid))
		return "unknown group in";
	a->name = xstrdup(pw->pw_name);
	a->home = xstrdup(pw->pw_dir);
	a->set = true;
	return NULL;
}

enum env_line { ENV_SKIP, ENV_VARIABLE, ENV_BAD };

/*
 * One line of an --env-file, without its newline (len bytes, not NUL-terminated). Pure.
 * Empty, blank (spaces and tabs) and comment lines (# after optional blanks): ENV_SKIP.
 * NAME=VALUE, NAME of [A-Za-z_][A-Za-z0-9_]* from the first column: ENV_VARIABLE, *name_len its
 * length; the value is everything after that '=' as it is, no quotes, escapes or $ taken.
 * Anything else: ENV_BAD, *why says what is wrong (never quoting the line: it may hold a secret).
 */
static enum env_line parse_env_line(const char *line, size_t len, size_t *name_len, const char **why)
{
	size_t i = 0;

	*why = NULL;
	if (memchr(line, '\0', len))
		*why = "NUL byte in the line";
	else if (len > 0 && line[len - 1] == '\r')
		*why = "carriage return at the end of the line (a CRLF file?)";
	if (*why)
		return ENV_BAD;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len || line[i] == '#')
		return ENV_SKIP;
	if (i > 0)
		*why = "blank before the variable name";
	else if (line[0] >= '0' && line[0] <= '9')
		*why = "variable name starts with a digit";
	if (*why)
		return ENV_BAD;
	while (i < len && (isalnum((unsigned char)line[i]) || line[i] == '_') && (unsigned char)line[i] < 0x80)
		i++;
	if (i == len)
		*why = "no '=' (lines are NAME=value)";
	else if (line[i] != '=')
		*why = "invalid character in the variable name (lines are NAME=value)";
	else if (i == 0)
		*why = "empty variable name";
	if (*why)
		return ENV_BAD;
	*name_len = i;
	return ENV_VARIABLE;
}

/* With -n, -c or --ready-http a generation must send a message or pass a check; else the warm-up decides. */
static bool awaits_readiness(const struct config *c)
{
	return c->notify || c->ready_cmd || c->ready_http;
}

/* Does every generation get a probe socket of its own? */
static bool has_probe(const struct config *c)
{
	return c->probe_socket || c->ready_http;
}

/*
 * Pure: the status line at the start of an HTTP response (RFC 9112: HTTP-version SP
 * status-code SP [reason-phrase] CRLF; a bare LF and a missing SP before an empty reason are
 * taken too). 1 with *code and *line_len (up to and with the LF) when buf holds it, 0 when
 * more is needed (no LF yet within HTTP_LINE_MAX bytes), -1 when it is malformed.
 */
static int parse_http_status(const char *buf, size_t len, int *code, size_t *line_len)
{
	const char *nl = memchr(buf, '\n', len < HTTP_LINE_MAX ? len : HTTP_LINE_MAX);
	size_t n, i;

	if (!nl)
		return len < HTTP_LINE_MAX ? 0 : -1;
	n = (size_t)(nl - buf);
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n < 12 || memcmp(buf, "HTTP/", 5) != 0 || !isdigit((unsigned char)buf[5]) || buf[6] != '.' ||
	    !isdigit((unsigned char)buf[7]) || buf[8] != ' ')
		return -1;
	for (i = 9; i < 12; i++)
		if (!isdigit((unsigned char)buf[i]))
			return -1;
	if (buf[9] < '1' || buf[9] > '5' || (n > 12 && buf[12] != ' '))
		return -1;
	for (i = 13; i < n; i++) { /* reason-phrase: HTAB, SP, VCHAR, obs-text */
		unsigned char c = (unsigned char)buf[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -1;
	}
	*code = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	*line_len = (size_t)(nl - buf) + 1;
	return 1;
}

/* ---- status format ------------------------------------------------------------------------ */

/*
 * The status file: key=value lines, pid= first. hupwatch writes it at every change of state;
 * --reload, deploy scripts and a restarted hupwatch read it. One table below drives both
 * directions, so a new key is one line there and one member here. Readers ignore keys they do
 * not know, and a key that is missing reads as 0 (or absent), so older files still parse.
 */
#define STATUS_TEXT 256
struct status_info {
	long pid;
	unsigned long long starttime;
	int state; /* enum hw_state */
	unsigned generation;
	long generation_pid;
	nsec_t ready_wait; /* how long a generation may take to become ready; NEVER: no limit */
	unsigned requests; /* reload requests (SIGHUPs) taken so far */
	unsigned reload;
	int reload_state; /* enum reload_state */
	unsigned reload_generation;
	unsigned reload_covers; /* the latest reload answers requests up to this one */
	nsec_t reload_started;  /* CLOCK_MONOTONIC of hupwatch: for people, not for other processes */
	char reload_reason[STATUS_TEXT];
	unsigned respawns;              /* generations started because the current one died (--respawn) */
	char fallback_dir[STATUS_TEXT]; /* the current generation runs the last good release, not DIR */
	char generations[STATUS_TEXT];  /* NUMBER:PID:STARTTIME:STATE of each that runs, newest first */
	char version[STATUS_TEXT];      /* of the binary that wrote the file */
	unsigned upgrades;              /* --upgrade requests taken */
	int upgrade_state;              /* enum reload_state, of the latest */
	char upgrade_reason[STATUS_TEXT];
	int exit_status; /* -1: not exited */
};

enum field_type { F_PID, F_LONG, F_ULL, F_UINT, F_DURATION, F_TIMESTAMP, F_TEXT, F_ENUM, F_EXIT };

struct status_field {
	const char *key;
	enum field_type type;
	size_t offset;
	const char *const *names; /* F_ENUM: its names, index = value */
	size_t nnames;
};

#define FIELD(key, type) { #key, type, offsetof(struct status_info, key), NULL, 0 }
#define ENUM_FIELD(key, names) { #key, F_ENUM, offsetof(struct status_info, key), names, COUNT(names) }
static const struct status_field status_fields[] = {
	FIELD(pid, F_PID),
	FIELD(starttime, F_ULL),
	ENUM_FIELD(state, hw_state_names),
	FIELD(generation, F_UINT),
	FIELD(generation_pid, F_LONG),
	FIELD(ready_wait, F_DURATION),
	FIELD(requests, F_UINT),
	FIELD(reload, F_UINT),
	ENUM_FIELD(reload_state, reload_state_names),
	FIELD(reload_generation, F_UINT),
	FIELD(reload_covers, F_UINT),
	FIELD(reload_started, F_TIMESTAMP),
	FIELD(reload_reason, F_TEXT),
	FIELD(respawns, F_UINT),
	FIELD(fallback_dir, F_TEXT),
	FIELD(generations, F_TEXT),
	FIELD(version, F_TEXT),
	FIELD(upgrades, F_UINT),
	ENUM_FIELD(upgrade_state, reload_state_names),
	FIELD(upgrade_reason, F_TEXT),
	FIELD(exit_status, F_EXIT),
};
#undef FIELD
#undef ENUM_FIELD

/* SECONDS.NANOSECONDS of CLOCK_MONOTONIC, which has no upper bound here (time namespaces). */
static int parse_timestamp(const char *s, nsec_t *out)
{
	const char *dot = strchr(s, '.');
	long long sec, ns;

	if (!dot || strlen(dot + 1) != 9 || strspn(s, "0123456789") != (size_t)(dot - s) || dot == s)
		return -1;
	if (parse_number(dot + 1, NSEC_PER_SEC - 1, &ns))
		return -1;
	errno = 0;
	sec = strtoll(s, NULL, 10);
	if (errno || sec > (INT64_MAX - ns) / NSEC_PER_SEC)
		return -1;
	*out = sec * NSEC_PER_SEC + ns;
	return 0;
}

static int parse_enum(const char *val, const struct status_field *f, int *out)
{
	for (size_t i = 0; i < f->nnames; i++)
		if (strcmp(val, f->names[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	return -1;
}

static int parse_field(const struct status_field *f, const char *val, struct status_info *st)
{
	void *p = (char *)st + f->offset;
	long long n = 0;
	int bad = 0;

	switch (f->type) {
	case F_PID:
	case F_LONG:
		bad = parse_number(val, INT_MAX, &n) || (f->type == F_PID && n < 1);
		*(long *)p = (long)n;
		return bad;
	case F_ULL:
		bad = parse_number(val, LLONG_MAX, &n);
		*(unsigned long long *)p = (unsigned long long)n;
		return bad;
	case F_UINT:
		bad = parse_number(val, UINT_MAX, &n);
		*(unsigned *)p = (unsigned)n;
		return bad;
	case F_DURATION:
		bad = parse_duration(val, p);
		if (!bad && *(nsec_t *)p >= MAX_SECONDS * NSEC_PER_SEC)
			*(nsec_t *)p = NEVER;
		return bad;
	case F_TIMESTAMP:
		return parse_timestamp(val, p);
	case F_TEXT:
		copy_printable(p, STATUS_TEXT, val, SIZE_MAX);
		return 0;
	case F_ENUM:
		return parse_enum(val, f, p);
	case F_EXIT:
		bad = parse_number(val, 255, &n);
		*(int *)p = (int)n;
		return bad;
	}
	return -1;
}

static const struct status_field *status_field(const char *key)
{
	for (size_t i = 0; i < COUNT(status_fields); i++)
		if (strcmp(key, status_fields[i].key) == 0)
			return &status_fields[i];
	return NULL;
}

/* One key=value line (NUL-terminated, modified in place); unknown keys are skipped. */
static int parse_status_line(char *line, struct status_info *st, unsigned *have)
{
	char *eq = strchr(line, '=');
	const struct status_field *f;

	if (!eq)
		return -1;
	*eq = '\0';
	f = status_field(line);
	if (!f)
		return 0;
	if (f->offset == offsetof(struct status_info, pid) || f->offset == offsetof(struct status_info, state))
		*have |= f->offset == offsetof(struct status_info, pid) ? 1U : 2U;
	return parse_field(f, eq + 1, st);
}

/* 0 when buf is a status file with at least pid= (first) and state=. */
static int parse_status(const char *buf, size_t len, struct status_info *st)
{
	char line[512];
	const char *p = buf, *end = buf + len;
	unsigned have = 0;

	memset(st, 0, sizeof(*st));
	st->exit_status = -1;
	if (len < 4 || memcmp(buf, "pid=", 4) != 0 || memchr(buf, '\0', len))
		return -1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);

		if (n >= sizeof(line))
			return -1;
		memcpy(line, p, n);
		line[n] = '\0';
		p += n + 1;
		if (n > 0 && parse_status_line(line, st, &have))
			return -1;
	}
	return have == 3 ? 0 : -1;
}

/* key=value\n for one field into buf; returns the length, or 0 for a field left out. */
static int format_field(const struct status_field *f, const struct status_info *st, char *buf, size_t size)
{
	const void *p = (const char *)st + f->offset;
	nsec_t d;

	switch (f->type) {
	case F_PID:
	case F_LONG:
		return snprintf(buf, size, "%s=%ld\n", f->key, *(const long *)p);
	case F_ULL:
		return snprintf(buf, size, "%s=%llu\n", f->key, *(const unsigned long long *)p);
	case F_UINT:
		return snprintf(buf, size, "%s=%u\n", f->key, *(const unsigned *)p);
	case F_DURATION:
		d = *(const nsec_t *)p;
		return snprintf(buf, size, "%s=%.3f\n", f->key, seconds(d == NEVER ? MAX_SECONDS * NSEC_PER_SEC : d));
	case F_TIMESTAMP:
		d = *(const nsec_t *)p;
		return snprintf(buf, size, "%s=%" PRId64 ".%09" PRId64 "\n", f->key, d / NSEC_PER_SEC, d % NSEC_PER_SEC);
	case F_TEXT:
		return snprintf(buf, size, "%s=%s\n", f->key, (const char *)p);
	case F_ENUM:
		return snprintf(buf, size, "%s=%s\n", f->key, f->names[*(const int *)p]);
	case F_EXIT:
		return *(const int *)p < 0 ? 0 : snprintf(buf, size, "%s=%d\n", f->key, *(const int *)p);
	}
	return 0;
}

/* The whole file; the text fields were made printable when st was filled. */
static void format_status(const struct status_info *st, char *buf, size_t size)
{
	size_t at = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < COUNT(status_fields) && at < size; i++) {
		int n = format_field(&status_fields[i], st, buf + at, size - at);

		if (n > 0)
			at += (size_t)n;
	}
}

/* ---- options ------------------------------------------------------------------------------ */

static const char usage_text[] =
	"Usage: hupwatch [-knqvV] [-w SECONDS] [-c COMMAND] [-i SECONDS] [-t SECONDS]\n"
	"                [-s SIGNAL] [-T SECONDS] [--drain-signal SIGNAL [--drain-time SECONDS]]\n"
	"                [--respawn [--respawn-limit N/SECONDS]]\n"
	"                [-l ADDRESS]... [-b N] [-d DIR]\n"
	"                [-p FILE] [-S FILE] [--socket-mode MODE] [--env-file FILE]\n"
	"                [--socket-owner USER[:GROUP]] [--user USER[:GROUP]]\n"
	"                [--probe-socket] [--ready-http PATH] [--settle-time SECONDS]\n"
	"                [--] COMMAND [ARG]...\n"
	"       hupwatch -R -S FILE [-t SECONDS]\n"
	"       hupwatch --upgrade -S FILE [-t SECONDS]\n"
	"Run COMMAND and, on SIGHUP, replace it with a fresh copy without downtime:\n"
	"the new generation must become ready before the old one is asked to stop.\n"
	"\n"
	"Readiness of a new generation:\n"
	"  -w, --warmup-time SECONDS     ready when still alive after SECONDS (default 1;\n"
	"                                with -n or -c: 0, then an additional minimum age)\n"
	"  -n, --notify                  ready when it sends READY=1 to $NOTIFY_SOCKET\n"
	"  -c, --ready-cmd COMMAND       ready when '/bin/sh -c COMMAND' exits 0\n"
	"      --ready-http PATH         ready when GET PATH on the generation's probe socket\n"
	"                                answers 2xx (implies --probe-socket)\n"
	"  -i, --ready-interval SECONDS  run the ready command or the HTTP check this often\n"
	"                                (default 0.2)\n"
	"  -t, --ready-timeout SECONDS   with -n, -c or --ready-http: give up on a generation\n"
	"                                not ready in time (default 60, 0 = no limit)\n"
	"      --probe-socket            one more listening socket per generation, only its\n"
	"                                own: the last of LISTEN_FDS, named hupwatch-probe,\n"
	"                                its address in $HUPWATCH_PROBE_ADDRESS\n"
	"      --settle-time SECONDS     stop the old generation only once the new one stayed\n"
	"                                alive (and answering) this long after ready\n"
	"Stopping:\n"
	"  -s, --stop-signal SIGNAL      asks a generation to stop (default TERM)\n"
	"  -T, --stop-timeout SECONDS    then SIGKILL its process group (default 75,\n"
	"                                0 = never)\n"
	"      --drain-signal SIGNAL     a generation that served gets SIGNAL first (it stops\n"
	"                                accepting), the stop signal --drain-time later\n"
	"      --drain-time SECONDS      (default 1; counts towards -T)\n"
	"  -k, --kill-at-exit            on SIGTERM, SIGINT or SIGQUIT stop every generation\n"
	"                                and exit with its status (default: leave them)\n"
	"When the current generation dies on its own:\n"
	"      --respawn                 start a new one on the open sockets (default: exit\n"
	"                                with its status); a failed respawn falls back to the\n"
	"                                last release that was ready\n"
	"      --respawn-limit N/SECONDS then N failures within SECONDS end hupwatch with the\n"
	"                                last status (default 5/10)\n"
	"Sockets held by hupwatch and passed by the LISTEN_FDS protocol:\n"
	"  -l, --listen ADDRESS          PORT, HOST:PORT, [IPV6]:PORT or unix:PATH; udp:PORT,\n"
	"                                udp:HOST:PORT, udp:[IPV6]:PORT (repeatable)\n"
	"  -b, --backlog N               listen backlog (default SOMAXCONN)\n"
	"      --socket-mode MODE        unix: socket files get octal MODE (e.g. 660)\n"
	"      --socket-owner USER[:GROUP]\n"
	"                                and this owner (or :GROUP), before they take\n"
	"                                connections\n"
	"Files and places:\n"
	"  -d, --chdir DIR               start each generation in DIR (default: the logical\n"
	"                                $PWD, so a swapped 'current' symlink is followed)\n"
	"      --env-file FILE           read NAME=value lines from FILE, relative to the\n"
	"                                generation's directory, before each start\n"
	"      --user USER[:GROUP]       run generations and the ready command as USER with\n"
	"                                its groups; hupwatch itself stays as it is\n"
	"  -p, --pid-file FILE           write hupwatch's own pid to FILE\n"
	"  -S, --status-file FILE        keep hupwatch's state in FILE (key=value lines)\n"
	"  -R, --reload                  signal the hupwatch of --status-file FILE and wait for\n"
	"                                the outcome of that reload (-t: how long to wait)\n"
	"      --upgrade                 make the hupwatch of --status-file FILE re-execute its\n"
	"                                binary, keeping pid, sockets and generations\n"
	"Output:\n"
	"  -v, --verbose                 log debug lines too\n"
	"  -q, --quiet                   log errors only\n"
	"  -h, --help                    show this help and exit\n"
	"  -V, --version                 show the version and exit\n"
	"\n"
	"Exit status: the current generation's (its code, or 128 + signal); 1 generation 1\n"
	"never ready; 125 hupwatch failed; 126 COMMAND not executable; 127 COMMAND not found.\n"
	"With --reload: 0 reloaded, 1 reload failed, 124 timed out, 125 no hupwatch running.\n";

/*
 * Options without a short form: values below ' ' (which no short option has) and past any
 * character; seen[] takes both.
 */
enum { OPT_SOCKET_MODE = 20, OPT_SOCKET_OWNER, OPT_USER, OPT_ENV_FILE };
enum { OPT_RESPAWN = 256, OPT_RESPAWN_LIMIT, OPT_UPGRADE, OPT_DRAIN_SIGNAL, OPT_DRAIN_TIME };

static const struct option long_options[] = {
	{ "warmup-time", required_argument, NULL, 'w' },
	{ "notify", no_argument, NULL, 'n' },
	{ "ready-cmd", required_argument, NULL, 'c' },
	{ "ready-http", required_argument, NULL, 'H' }, /* long options only: not in SHORT_OPTIONS */
	{ "probe-socket", no_argument, NULL, 'P' },
	{ "settle-time", required_argument, NULL, 'm' },
	{ "ready-interval", required_argument, NULL, 'i' },
	{ "ready-timeout", required_argument, NULL, 't' },
	{ "stop-signal", required_argument, NULL, 's' },
	{ "stop-timeout", required_argument, NULL, 'T' },
	{ "drain-signal", required_argument, NULL, OPT_DRAIN_SIGNAL },
	{ "drain-time", required_argument, NULL, OPT_DRAIN_TIME },
	{ "kill-at-exit", no_argument, NULL, 'k' },
	{ "respawn", no_argument, NULL, OPT_RESPAWN },
	{ "respawn-limit", required_argument, NULL, OPT_RESPAWN_LIMIT },
	{ "listen", required_argument, NULL, 'l' },
	{ "backlog", required_argument, NULL, 'b' },
	{ "chdir", required_argument, NULL, 'd' },
	{ "pid-file", required_argument, NULL, 'p' },
	{ "status-file", required_argument, NULL, 'S' },
	{ "reload", no_argument, NULL, 'R' },
	{ "upgrade", no_argument, NULL, OPT_UPGRADE },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
	{ "socket-owner", required_argument, NULL, OPT_SOCKET_OWNER },
	{ "user", required_argument, NULL, OPT_USER },
	{ "env-file", required_argument, NULL, OPT_ENV_FILE },
	{ NULL, 0, NULL, 0 },
};
#define SHORT_OPTIONS "+w:nc:i:t:s:T:kl:b:d:p:S:RvqhV"

/* The options --reload takes; the rest belong to a running hupwatch. */
#define RELOAD_OPTIONS "RStvq"

static const char *long_name(int c)
{
	for (const struct option *o = long_options; o->name; o++)
		if (o->val == c)
			return o->name;
	return "?";
}

/* "hupwatch: MESSAGE" on stderr, then tail: the one shape of a command-line error (options, --reload). */
static int say_error(const char *tail, const char *fmt, va_list ap)
{
	fputs("hupwatch: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(tail, stderr);
	return EXIT_FAILURE_OWN;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = say_error("\nTry 'hupwatch --help' for more information.\n", fmt, ap);
	va_end(ap);
	return rc;
}

static void free_config_user(struct config *c)
{
	free(c->user.name);
	free(c->user.home);
	c->user = (struct account){ 0 };
}

static void free_config(struct config *c)
{
	free(c->listen);
	c->listen = NULL;
	c->nlisten = 0;
	free_config_user(c);
}

static int duration_arg(int opt, const char *arg, nsec_t *out)
{
	if (parse_duration(arg, out))
		return usage_error("--%s: invalid duration '%s'", long_name(opt), arg);
	return 0;
}

/* A timeout where 0 means no limit. */
static int limit_arg(int opt, const char *arg, nsec_t *out)
{
	if (duration_arg(opt, arg, out))
		return EXIT_FAILURE_OWN;
	*out = limit_of(*out);
	return 0;
}

static int interval_arg(const char *arg, nsec_t *out)
{
	if (duration_arg('i', arg, out))
		return EXIT_FAILURE_OWN;
	if (*out == 0)
		return usage_error("--ready-interval: must be more than 0, not '%s'", arg);
	return 0;
}

static int signal_arg(const char *arg, int *out)
{
	*out = parse_signal(arg);
	if (*out < 0)
		return usage_error("--stop-signal: unknown signal '%s'", arg);
	if (cannot_end_process(*out))
		return usage_error("--stop-signal: %s does not end a process: '%s'", signame(*out), arg);
	return 0;
}

/* --drain-signal: any signal but SIGKILL and SIGSTOP, which cannot leave a server serving on. */
static int drain_signal_arg(const char *arg, int *out)
{
	*out = parse_signal(arg);
	if (*out < 0)
		return usage_error("--drain-signal: unknown signal '%s'", arg);
	if (*out == SIGKILL || *out == SIGSTOP)
		return usage_error("--drain-signal: %s cannot be handled: '%s'", signame(*out), arg);
	return 0;
}

static int listen_arg(struct config *c, const char *arg)
{
	const char **grown;
	struct address addr;

	if (parse_address(arg, &addr))
		return usage_error("--listen: invalid address '%s'", arg);
	grown = realloc(c->listen, (c->nlisten + 1) * sizeof(*c->listen));
	if (!grown)
		return usage_error("out of memory");
	c->listen = grown;
	c->listen[c->nlisten++] = arg;
	return 0;
}

/* N/SECONDS: N failures (1 to RESPAWN_MAX_BURST) within SECONDS (more than 0). */
static int respawn_limit_arg(struct config *c, const char *arg)
{
	const char *slash = strchr(arg, '/');
	char count[16];
	long long n;
	size_t len = slash ? (size_t)(slash - arg) : 0;

	if (slash && len < sizeof(count)) {
		memcpy(count, arg, len);
		count[len] = '\0';
	}
	if (!slash || len >= sizeof(count) || parse_number(count, RESPAWN_MAX_BURST, &n) || n < 1 ||
	    parse_duration(slash + 1, &c->respawn_interval) || c->respawn_interval == 0)
		return usage_error("--respawn-limit: invalid N/SECONDS (N 1 to %d, SECONDS more than 0) '%s'",
				   RESPAWN_MAX_BURST, arg);
	c->respawn_burst = (unsigned)n;
	return 0;
}

static int backlog_arg(const char *arg, int *out)
{
	long long n;

	if (parse_number(arg, 1000000, &n) || n < 1)
		return usage_error("--backlog: invalid number '%s'", arg);
	*out = (int)n;
	return 0;
}

static int socket_mode_arg(struct config *c, const char *arg)
{
	if (parse_mode(arg, &c->socket_mode))
		return usage_error("--socket-mode: invalid mode (octal, at most 777) '%s'", arg);
	c->socket_mode_set = true;
	return 0;
}

static int socket_owner_arg(struct config *c, const char *arg)
{
	const char *why = parse_owner(arg, &c->socket_uid, &c->socket_gid);

	if (why)
		return usage_error("--socket-owner: %s '%s'", why, arg);
	c->socket_owner_set = true;
	return 0;
}

/* Only root may become another user; hupwatch does not pretend otherwise for anyone else. */
static int user_arg(struct config *c, const char *arg)
{
	const char *why;

	if (geteuid() != 0)
		return usage_error("--user: only root can run generations as another user (hupwatch runs as "
				   "uid %u): '%s'", (unsigned)geteuid(), arg);
	free_config_user(c);
	why = parse_user(arg, &c->user);
	if (why)
		return usage_error("--user: %s '%s'", why, arg);
	return 0;
}

/* An origin-form request target: '/' and printable ASCII without spaces, so the request line stays one line. */
static int http_path_arg(const char *arg, const char **out)
{
	if (arg[0] != '/')
		return usage_error("--ready-http: the path must start with '/', not '%s'", arg);
	for (const char *p = arg; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return usage_error("--ready-http: invalid character in path '%s'", arg);
	if (strlen(arg) > 1024)
		return usage_error("--ready-http: path longer than 1024 bytes");
	*out = arg;
	return 0;
}

static int nonempty_arg(int opt, const char *arg, const char *what, const char **out)
{
	if (!*arg)
		return usage_error("--%s: empty %s", long_name(opt), what);
	*out = arg;
	return 0;
}

/* One option into *c: 0, -1 after --help or --version, or EXIT_FAILURE_OWN after a usage error. */
static int set_option(struct config *c, int opt, const char *arg)
{
	switch (opt) {
	case 'w':
		c->warmup_set = true;
		return duration_arg(opt, arg, &c->warmup);
	case 'n':
		c->notify = true;
		return 0;
	case 'c':
		return nonempty_arg(opt, arg, "command", &c->ready_cmd);
	case 'H':
		return http_path_arg(arg, &c->ready_http);
	case 'P':
		c->probe_socket = true;
		return 0;
	case 'm':
		return duration_arg(opt, arg, &c->settle);
	case 'i':
		return interval_arg(arg, &c->ready_interval);
	case 't':
		c->ready_timeout_set = true;
		return limit_arg(opt, arg, &c->ready_timeout);
	case 's':
		return signal_arg(arg, &c->stop_signal);
	case 'T':
		return limit_arg(opt, arg, &c->stop_timeout);
	case OPT_DRAIN_SIGNAL:
		return drain_signal_arg(arg, &c->drain_signal);
	case OPT_DRAIN_TIME:
		return duration_arg(opt, arg, &c->drain_time);
	case 'k':
		c->kill_at_exit = true;
		return 0;
	case OPT_RESPAWN:
		c->respawn = true;
		return 0;
	case OPT_RESPAWN_LIMIT:
		return respawn_limit_arg(c, arg);
	case 'l':
		return listen_arg(c, arg);
	case 'b':
		return backlog_arg(arg, &c->backlog);
	case 'd':
		return nonempty_arg(opt, arg, "directory name", &c->chdir);
	case 'p':
		return nonempty_arg(opt, arg, "file name", &c->pid_file);
	case 'S':
		return nonempty_arg(opt, arg, "file name", &c->status_file);
	case 'R':
		c->reload = true;
		return 0;
	case OPT_UPGRADE:
		c->upgrade = true;
		return 0;
	case 'v':
		c->level = L_DEBUG;
		return 0;
	case 'q':
		c->level = L_ERROR;
		return 0;
	case 'h':
		fputs(usage_text, stdout);
		return -1;
	case 'V':
		printf("hupwatch %s (handover %d)\n", VERSION, HANDOVER_VERSION);
		return -1;
	case OPT_SOCKET_MODE:
		return socket_mode_arg(c, arg);
	case OPT_SOCKET_OWNER:
		return socket_owner_arg(c, arg);
	case OPT_USER:
		return user_arg(c, arg);
	case OPT_ENV_FILE:
		return nonempty_arg(opt, arg, "file name", &c->env_file);
	default: /* getopt has named the option */
		fputs("Try 'hupwatch --help' for more information.\n", stderr);
		return EXIT_FAILURE_OWN;
	}
}

/* --reload and --upgrade: clients of a running hupwatch, with only -S, -t, -v, -q. */
static int check_client_config(const struct config *c)
{
	const char *mode = c->upgrade ? "upgrade" : "reload";
	int own = c->upgrade ? OPT_UPGRADE : 'R';

	for (int i = 1; i < (int)COUNT(c->seen); i++)
		if (c->seen[i] && i != own && (i >= 128 || !strchr(RELOAD_OPTIONS, i) || i == 'R'))
			return usage_error("--%s: cannot be combined with --%s", mode, long_name(i));
	if (!c->status_file)
		return usage_error("--%s: needs --status-file FILE", mode);
	if (*c->command)
		return usage_error("--%s: takes no COMMAND ('%s')", mode, *c->command);
	return 0;
}

static bool polls(const struct config *c)
{
	return c->ready_cmd || c->ready_http;
}

static bool has_listen(const struct config *c)
{
	return c->nlisten > 0;
}

static bool has_respawn(const struct config *c)
{
	return c->respawn;
}

static bool has_drain_signal(const struct config *c)
{
	return c->drain_signal != 0;
}

static bool has_unix_listen(const struct config *c)
{
	for (size_t i = 0; i < c->nlisten; i++)
		if (strncmp(c->listen[i], "unix:", 5) == 0)
			return true;
	return false;
}

/* Options that do nothing unless another is given too: a warning, not an error. */
static const struct {
	int opt;
	bool (*acts)(const struct config *);
	const char *without;
} needs[] = {
	{ 't', awaits_readiness, "--notify, --ready-cmd or --ready-http" },
	{ 'i', polls, "--ready-cmd or --ready-http" },
	{ 'b', has_listen, "--listen" },
	{ OPT_RESPAWN_LIMIT, has_respawn, "--respawn" },
	{ OPT_DRAIN_TIME, has_drain_signal, "--drain-signal" },
	{ OPT_SOCKET_MODE, has_unix_listen, "a --listen unix:PATH" },
	{ OPT_SOCKET_OWNER, has_unix_listen, "a --listen unix:PATH" },
};

/* The options as a whole, once each was valid on its own. */
static int check_config(struct config *c)
{
	if (c->reload || c->upgrade)
		return check_client_config(c);
	if (!*c->command)
		return usage_error("missing COMMAND");
	if (!c->warmup_set && awaits_readiness(c))
		c->warmup = 0;
	if (awaits_readiness(c) && c->warmup >= c->ready_timeout)
		return usage_error("--warmup-time: %.3fs can never pass within --ready-timeout %.3fs",
				   seconds(c->warmup), seconds(c->ready_timeout));
	for (size_t i = 0; i < COUNT(needs); i++)
		if (c->seen[needs[i].opt] && !needs[i].acts(c))
			logmsg(L_WARNING, "--%s has no effect without %s", long_name(needs[i].opt), needs[i].without);
	return 0;
}

/*
 * Fills *c from argv. Returns 0 to go on, -1 when --help or --version was printed (exit 0),
 * or EXIT_FAILURE_OWN after printing a usage error.
 */
static int parse_options(int argc, char **argv, struct config *c)
{
	int opt, rc = 0;

	*c = (struct config){
		.warmup = NSEC_PER_SEC,
		.ready_interval = NSEC_PER_SEC / 5,
		.ready_timeout = 60 * NSEC_PER_SEC,
		.stop_signal = SIGTERM,
		.drain_time = NSEC_PER_SEC,
		.stop_timeout = DEFAULT_STOP_TIMEOUT,
		.respawn_burst = RESPAWN_BURST,
		.respawn_interval = RESPAWN_INTERVAL,
		.backlog = SOMAXCONN,
		.level = L_INFO,
	};
	if (argc < 1) /* an empty argv (possible before Linux 5.18) */
		return usage_error("missing COMMAND");
	optind = 0; /* glibc: start afresh (unit tests parse many times) */
	while (rc == 0 && (opt = getopt_long(argc, argv, SHORT_OPTIONS, long_options, NULL)) != -1) {
		if (opt > 0 && opt < (int)COUNT(c->seen))
			c->seen[opt] = true;
		rc = set_option(c, opt, optarg);
	}
	if (rc == 0) {
		c->command = argv + optind;
		rc = check_config(c);
	}
	if (rc)
		free_config(c);
	return rc;
}

/* ---- files and procs ---------------------------------------------------------------------- */

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

/*
 * A regular file's first size-1 bytes, NUL-terminated. Never blocks: a FIFO or a device in its
 * place is refused (EINVAL), not opened for reading and waited on.
 */
static ssize_t read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	struct stat sb;
	size_t got = 0;

	if (fd < 0)
		return -1;
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
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

/* Field 22: tells a process from one that reused its pid. 0: unknown. */
static unsigned long long process_starttime(pid_t pid)
{
	long long t = stat_field(pid, 22);

	return t < 0 ? 0 : (unsigned long long)t;
}

/* A zombie has exited: only its parent has not looked yet (field 3 of /proc/PID/stat). */
static bool is_zombie(pid_t pid)
{
	char path[64], buf[1024], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	return read_file(path, buf, sizeof(buf)) > 0 && (p = strrchr(buf, ')')) && p[1] == ' ' && p[2] == 'Z';
}

/* Is the hupwatch that wrote st still running (and not a process that got its pid since)? */
static bool hupwatch_alive(const struct status_info *st)
{
	unsigned long long t;

	if ((kill((pid_t)st->pid, 0) && errno == ESRCH) || is_zombie((pid_t)st->pid))
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

enum own_file { PID_FILE, STATUS_FILE };

static bool looks_like_ours(enum own_file kind, const char *buf, size_t n, struct status_info *st)
{
	if (kind == STATUS_FILE)
		return n == 0 || parse_status(buf, n, st) == 0;
	return strspn(buf, "0123456789") == n - (n > 0 && buf[n - 1] == '\n');
}

/*
 * A pid or status file may replace only what hupwatch itself wrote there before: a symlink or
 * somebody's file given by mistake (-p app.py) is refused, never overwritten.
 */
static int check_own_file(const char *opt, const char *path, enum own_file kind)
{
	char buf[4096];
	struct status_info st;
	struct stat sb;
	ssize_t n;

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
	if (!looks_like_ours(kind, buf, (size_t)n, &st)) {
		logmsg(L_ERROR, "cannot use %s '%s': it exists and is not a hupwatch %s file; refusing to "
		       "overwrite it", opt, path, kind == STATUS_FILE ? "status" : "pid");
		return -1;
	}
	/* Two hupwatches on one status file: --reload would signal whichever wrote last. */
	if (kind == STATUS_FILE && n > 0 && st.state != HW_EXITED && st.pid != getpid() && hupwatch_alive(&st)) {
		logmsg(L_ERROR, "cannot use %s '%s': hupwatch pid %ld is running with it", opt, path, st.pid);
		return -1;
	}
	return 0;
}

/*
 * The claim on a status file, held for hupwatch's life. Checking the file alone races (two
 * hupwatches started at once both find it free); binding a name does not. The name is an
 * abstract unix socket named after the file's directory (device and inode) and base name: no
 * file to leave behind, and it goes with its holder however that ends, kill -9 included. (Its
 * scope is the network namespace: two hupwatches in different ones are not kept apart.)
 */
static int lock_status_file(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	const char *base = slash ? path + (slash - dir) + 1 : path; /* in path: dir is freed below */
	struct stat sb;
	socklen_t len;
	int fd, n;

	if (slash)
		slash[slash == dir] = '\0';
	n = stat(slash ? dir : ".", &sb);
	free(dir);
	if (n) {
		logmsg(L_ERROR, "cannot use --status-file '%s': %s", path, strerror(errno));
		return -1;
	}
	n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "hupwatch/status/%jx:%jx/%s", (uintmax_t)sb.st_dev,
		     (uintmax_t)sb.st_ino, base);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			  ((size_t)n < sizeof(sa.sun_path) - 1 ? (size_t)n : sizeof(sa.sun_path) - 1));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, len) == 0) {
		hw.files.lock_fd = fd;
		return 0;
	}
	if (errno == EADDRINUSE) {
		char buf[4096];
		struct status_info st;
		ssize_t got = read_file(path, buf, sizeof(buf));

		if (got > 0 && parse_status(buf, (size_t)got, &st) == 0)
			logmsg(L_ERROR, "cannot use --status-file '%s': hupwatch pid %ld is running with it", path, st.pid);
		else
			logmsg(L_ERROR, "cannot use --status-file '%s': another hupwatch is running with it", path);
	} else
		logmsg(L_ERROR, "cannot use --status-file '%s': cannot claim it: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
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

/* sd_watchdog_enabled(3)'s rule: WATCHDOG_USEC is for us unless WATCHDOG_PID names another process. */
static bool watchdog_is_mine(const char *pid, pid_t self)
{
	long long p;

	return !pid || (parse_number(pid, INT_MAX, &p) == 0 && p == self);
}

/* The watchdog interval the service manager set for us, or 0 when there is none for us. */
static nsec_t watchdog_interval(const char *usec, const char *pid, pid_t self)
{
	long long us;

	if (!usec || !watchdog_is_mine(pid, self) || parse_number(usec, NEVER / 1000, &us) || us == 0)
		return 0;
	return (nsec_t)us * 1000;
}

/*
 * Variables that name hupwatch's pid are hupwatch's: a generation that pinged WATCHDOG_PID's
 * watchdog, or took SYSTEMD_EXEC_PID for its own, would speak for hupwatch.
 */
static void take_watchdog(void)
{
	const char *exec_pid = getenv("SYSTEMD_EXEC_PID");
	pid_t self = getpid();
	long long p;

	if (hw.upstream.fd >= 0)
		hw.upstream.watchdog = watchdog_interval(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"), self);
	if (hw.upstream.watchdog)
		logmsg(L_INFO, "watchdog: WATCHDOG=1 every %.3gs", seconds(hw.upstream.watchdog / 2));
	if (watchdog_is_mine(getenv("WATCHDOG_PID"), self)) {
		unsetenv("WATCHDOG_USEC");
		unsetenv("WATCHDOG_PID");
	}
	if (exec_pid && parse_number(exec_pid, INT_MAX, &p) == 0 && p == self)
		unsetenv("SYSTEMD_EXEC_PID");
}

static void upstream_init(void)
{
	const char *name = getenv("NOTIFY_SOCKET");

	if (name) {
		snprintf(hw.upstream.name, sizeof(hw.upstream.name), "%s", name);
		if (notify_address(name, &hw.upstream.addr, &hw.upstream.len) == 0)
			hw.upstream.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (hw.upstream.fd < 0)
			logmsg(L_WARNING, "cannot use NOTIFY_SOCKET '%s'; not notifying the service manager", name);
		/* It is ours: a child that sent READY=1 there would be taken for hupwatch itself. */
		unsetenv("NOTIFY_SOCKET");
	}
	take_watchdog();
}

static void upstream_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void upstream_send(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	if (hw.upstream.fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return;
	if (sendto(hw.upstream.fd, buf, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&hw.upstream.addr,
		   hw.upstream.len) < 0)
		logmsg(L_DEBUG, "cannot notify the service manager: %s", strerror(errno));
}

/* The watchdog's ping, when due: the one timer hupwatch keeps while idle, and only with a watchdog. */
static nsec_t watchdog_due(void)
{
	return hw.upstream.watchdog ? hw.upstream.watchdog_next : NEVER;
}

static void upstream_watchdog(nsec_t t)
{
	if (!hw.upstream.watchdog || t < hw.upstream.watchdog_next)
		return;
	upstream_send("WATCHDOG=1");
	hw.upstream.watchdog_next = t + hw.upstream.watchdog / 2;
}

/*
 * Hand fd to the service manager's file descriptor store under name (one datagram, the fd by
 * SCM_RIGHTS): it keeps it open over a restart of hupwatch and passes it back by LISTEN_FDS.
 */
static int upstream_store(int fd, const char *name)
{
	char text[320];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct iovec iov = { text, 0 };
	struct msghdr msg = { .msg_name = &hw.upstream.addr, .msg_namelen = hw.upstream.len, .msg_iov = &iov,
			      .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof(control.buf) };
	struct cmsghdr *c;
	int n = snprintf(text, sizeof(text), "FDSTORE=1\nFDNAME=%s", name);

	if (hw.upstream.fd < 0 || n < 0 || (size_t)n >= sizeof(text))
		return -1;
	iov.iov_len = (size_t)n;
	memset(&control, 0, sizeof(control));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(fd));
	if (sendmsg(hw.upstream.fd, &msg, MSG_NOSIGNAL) < 0) {
		logmsg(L_DEBUG, "cannot store fd %d in the service manager's fd store: %s", fd, strerror(errno));
		return -1;
	}
	return 0;
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
	struct listener *grown = realloc(hw.sock.list, (hw.sock.n + 1) * sizeof(*grown));

	if (!grown) {
		logmsg(L_ERROR, "out of memory");
		exit(EXIT_FAILURE_OWN);
	}
	hw.sock.list = grown;
	hw.sock.list[hw.sock.n++] = (struct listener){ .fd = fd, .name = name, .label = label, .unix_path = unix_path };
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
		}
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

static void describe_sockname(int fd, char *buf, size_t size)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = sizeof(ss), tlen = sizeof(int);
	char host[INET6_ADDRSTRLEN], port[8];
	int type = SOCK_STREAM;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) ||
	    getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(buf, size, "fd %d", fd);
		return;
	}
	(void)getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen);
	snprintf(buf, size, ss.ss_family == AF_INET6 ? "%s[%s]:%s" : "%s%s:%s", type == SOCK_DGRAM ? "udp:" : "",
		 host, port);
}

/*
 * A stale socket file (nobody accepts on it) is replaced; anything else there is refused. The
 * probe does not block: a live server whose backlog is full answers EAGAIN at once, and that
 * server is as alive as one that accepts.
 */
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
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r && errno != ECONNREFUSED && errno != ENOENT) /* EAGAIN, EINPROGRESS: someone listens */
		r = 0;
	close(fd);
	if (r == 0) {
		errno = EADDRINUSE;
		return -1;
	}
	return unlink(path);
}

/*
 * --socket-owner, then --socket-mode (by default what bind() would have made under mask), on
 * the file bind() just created. Neither follows a symbolic link put in its place (glibc and musl
 * do fchmodat's AT_SYMLINK_NOFOLLOW through O_PATH and /proc/self/fd).
 */
static int set_socket_access(const char *path, mode_t mask)
{
	const struct config *c = &hw.cfg;
	mode_t mode = c->socket_mode_set ? c->socket_mode : 0777 & ~mask;

	if (c->socket_owner_set && fchownat(AT_FDCWD, path, c->socket_uid, c->socket_gid, AT_SYMLINK_NOFOLLOW))
		return -1;
	return fchmodat(AT_FDCWD, path, mode, AT_SYMLINK_NOFOLLOW);
}

/*
 * With --socket-mode or --socket-owner, no one the final mode and owner keep out may ever
 * connect. fchmod() on the socket before bind() is no help on Linux: it changes the socket's own
 * inode, and bind() creates the file 0777 & ~umask regardless. Binding under a temporary name
 * and renaming it into place would work too, but getsockname() would then name the temporary
 * file in every generation. A unix stream socket takes no connection before listen() (connect()
 * gets ECONNREFUSED), so the owner and mode are set between bind() and listen(); and bind() runs
 * under umask 0177, so that a connect() that passed its permission check on the file's first
 * mode before the chmod (and is not yet refused) can only be hupwatch's own user's.
 */
static int listen_unix(const struct address *a, int backlog)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	bool access = hw.cfg.socket_mode_set || hw.cfg.socket_owner_set;
	mode_t mask = 0;
	int fd, saved, bound;

	if (clear_unix_path(a->path))
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", a->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (access)
		mask = umask(0177);
	bound = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (access)
		umask(mask);
	if (bound && (!access || set_socket_access(a->path, mask) == 0) && listen(fd, backlog) == 0)
		return fd;
	saved = errno;
	if (bound)
		unlink(a->path); /* ours, never listened on */
	close(fd);
	errno = saved;
	return -1;
}

static int listen_inet(const struct address *a, int backlog, const char **why)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = a->socktype };
	bool stream = a->socktype == SOCK_STREAM;
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
		/*
		 * UDP: bound, never listened; and no SO_REUSEADDR, which for UDP would let a second
		 * hupwatch bind the same port and take part of its datagrams (there is no TIME_WAIT).
		 */
		if ((!stream || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0) &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && (!stream || listen(fd, backlog) == 0))
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

/* The first of n passed sockets (fd >= 0) named name, or -1. */
static int find_listener(const struct listener *list, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (list[i].fd >= 0 && strcmp(list[i].name, name) == 0)
			return (int)i;
	return -1;
}

static bool is_listening(int fd)
{
	int on = 0;
	socklen_t len = sizeof(on);

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

/*
 * A passed socket named as --listen spec would be (fd_name()) is that socket, given back by the
 * fd store after a restart of hupwatch: take it out of the passed ones, to use instead of binding
 * anew. Returns its fd, or -1.
 */
static int take_passed(const char *spec)
{
	char *name = fd_name(spec);
	int i = find_listener(hw.sock.list, hw.sock.n, name), fd;

	free(name);
	if (i < 0 || !is_listening(hw.sock.list[i].fd))
		return -1;
	fd = hw.sock.list[i].fd;
	free(hw.sock.list[i].name);
	free(hw.sock.list[i].label);
	hw.sock.n--;
	memmove(hw.sock.list + i, hw.sock.list + i + 1, (hw.sock.n - (size_t)i) * sizeof(*hw.sock.list));
	return fd;
}

/*
 * Passed sockets that are --listen's are used for it (reuse[i], else -1); the others, socket
 * activation's, come first and keep their names.
 */
static void sort_passed(int *reuse, size_t n)
{
	for (size_t i = 0; i < n; i++)
		reuse[i] = take_passed(hw.cfg.listen[i]);
	for (size_t i = 0; i < hw.sock.n; i++)
		logmsg(L_INFO, "listening on %s", hw.sock.list[i].label);
}

/*
 * Takeover: a predecessor on our status file died without cleaning up (kill -9, the OOM killer),
 * and its generations still run, holding the listening sockets. Their sockets are taken from the
 * current one (pidfd_getfd(2), where the kernel permits: root, or the same user without Yama's
 * restriction), so not one connection is refused; they are stopped once a new generation is ready.
 */
static const struct orphan *orphan_to_take_from(void)
{
	for (size_t i = 0; i < hw.takeover.n; i++)
		if (hw.takeover.list[i].state == GEN_CURRENT)
			return &hw.takeover.list[i];
	return hw.takeover.n ? &hw.takeover.list[0] : NULL;
}

/* Is fd a listening socket for a, as fd 3+i of a generation should be? */
static bool socket_matches(int fd, const struct address *a)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = sizeof(ss);
	int listening = 0;
	socklen_t optlen = sizeof(listening);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) || !listening ||
	    getsockname(fd, (struct sockaddr *)&ss, &len))
		return false;
	if (a->family == AF_UNIX)
		return ss.ss_family == AF_UNIX && strcmp(((struct sockaddr_un *)&ss)->sun_path, a->path) == 0;
	if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
		return false;
	long long port;

	if (parse_number(a->port, 65535, &port) || port == 0)
		return true; /* the kernel picked it: any port is the one */
	return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					     : ((struct sockaddr_in6 *)&ss)->sin6_port) == port;
}

/*
 * Of pid's descriptors, a copy of the listening socket for a; -1 with errno. fd 3+i first (where
 * LISTEN_FDS put it), then every other socket it holds: servers often move it (Python's
 * socket.fromfd() duplicates it and closes the original).
 */
static int find_listening_fd(int pidfd, pid_t pid, size_t i, const struct address *a)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int fd = (int)syscall(SYS_pidfd_getfd, pidfd, 3 + (int)i, 0U), err = errno;

	if (fd >= 0 && socket_matches(fd, a))
		return fd;
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if (!(d = opendir(path)))
		return errno = err, -1;
	fd = -1;
	/* cppcheck-suppress readdirCalled */
	while (fd < 0 && (e = readdir(d))) {
		long long n;

		if (parse_number(e->d_name, INT_MAX, &n) || n == 3 + (long long)i)
			continue;
		fd = (int)syscall(SYS_pidfd_getfd, pidfd, (int)n, 0U);
		if (fd >= 0 && !socket_matches(fd, a)) {
			close(fd);
			fd = -1;
		} else if (fd < 0)
			err = errno;
	}
	closedir(d);
	errno = fd < 0 && err == EBADF ? ENOENT : err;
	return fd;
}

/* Socket i of --listen from the predecessor's current generation, or -1 (why is logged). */
static int take_socket(size_t i, const struct address *a)
{
	const struct orphan *o = orphan_to_take_from();
	int pidfd, fd;

	if (!o)
		return -1;
	pidfd = (int)syscall(SYS_pidfd_open, o->pid, 0U);
	fd = pidfd < 0 ? -1 : find_listening_fd(pidfd, o->pid, i, a);
	if (pidfd >= 0)
		close(pidfd);
	if (fd >= 0)
		return fd;
	logmsg(L_WARNING, "cannot take over '%s' from gen %u pid %d: %s", hw.cfg.listen[i], o->number, (int)o->pid,
	       errno == ENOENT ? "it holds no such listening socket" : strerror(errno));
	return -1;
}

/* The predecessor's generations, still running: sig to each one's process group. */
static void signal_orphans(int sig)
{
	for (size_t i = 0; i < hw.takeover.n; i++) {
		const struct orphan *o = &hw.takeover.list[i];

		if (process_starttime(o->pid) == 0)
			continue; /* gone */
		logmsg(L_INFO, "%s to gen %u pid %d of the hupwatch that died", signame(sig), o->number, (int)o->pid);
		if (kill(-o->pid, sig) && kill(o->pid, sig))
			logmsg(L_WARNING, "cannot signal gen %u pid %d: %s", o->number, (int)o->pid, strerror(errno));
		(void)kill(-o->pid, SIGCONT);
		if (o->number > hw.last_number) /* ours are numbered on from theirs: the logs name both */
			hw.last_number = o->number;
	}
	hw.takeover.stopped = true;
}

/* Bind and listen on a; -1 with *why, and *in_use when another holds the address. */
static int bind_listener(const struct address *a, char *label, size_t size, const char **why, bool *in_use)
{
	int fd;

	if (a->family == AF_UNIX) {
		fd = listen_unix(a, hw.cfg.backlog);
		if (fd < 0)
			*why = errno == EEXIST ? "file exists and is not a socket" : strerror(errno);
		*in_use = fd < 0 && errno == EADDRINUSE;
		snprintf(label, size, "unix:%s", a->path);
		return fd;
	}
	fd = listen_inet(a, hw.cfg.backlog, why);
	*in_use = fd < 0 && strcmp(*why, strerror(EADDRINUSE)) == 0;
	if (fd >= 0)
		describe_sockname(fd, label, size);
	return fd;
}

/*
 * Held by a predecessor's generations whose sockets could not be taken: they are stopped, and the
 * address waited for, 5 s, then SIGKILL and 2 s more. Nothing else may be signalled: only the
 * generations the status file names, checked by their start times.
 */
static int bind_after_orphans(const struct address *a, char *label, size_t size, const char **why)
{
	bool in_use = true;
	int fd = -1;

	for (int tick = 0; tick < 70 && in_use; tick++) {
		if (tick == 0)
			signal_orphans(hw.cfg.stop_signal);
		else if (tick == 50)
			signal_orphans(SIGKILL);
		nanosleep(&(struct timespec){ 0, 100L * 1000 * 1000 }, NULL);
		fd = bind_listener(a, label, size, why, &in_use);
	}
	return fd;
}

/* Socket i of --listen: given back by the fd store, taken from a dead predecessor's generation, or bound. */
static int open_listener(size_t i, int reused)
{
	const char *spec = hw.cfg.listen[i], *why = NULL;
	struct address a;
	char label[sizeof(a.path) + 8];
	bool in_use = false;
	int fd = reused;

	parse_address(spec, &a); /* validated by parse_options */
	if (fd < 0 && hw.takeover.n && !hw.takeover.stopped && (fd = take_socket(i, &a)) >= 0) {
		hw.takeover.taken++;
		logmsg(L_INFO, "took over '%s' from gen %u pid %d of the hupwatch that died", spec,
		       orphan_to_take_from()->number, (int)orphan_to_take_from()->pid);
	}
	if (fd >= 0) {
		if (a.family == AF_UNIX)
			snprintf(label, sizeof(label), "unix:%s", a.path);
		else
			describe_sockname(fd, label, sizeof(label));
		/* A taken-over unix socket's file is ours now, removed at exit as if we had bound it. */
		add_listener(fd, fd_name(spec), xstrdup(label), a.family == AF_UNIX && reused < 0 ? xstrdup(a.path) : NULL);
		logmsg(L_INFO, "listening on %s (fd %d, %s)", label, 3 + (int)hw.sock.n - 1,
		       reused >= 0 ? "passed back by the service manager" : "taken over");
		return 0;
	}
	fd = bind_listener(&a, label, sizeof(label), &why, &in_use);
	if (fd < 0 && in_use && hw.takeover.n)
		fd = bind_after_orphans(&a, label, sizeof(label), &why);
	if (fd < 0) {
		if (hw.takeover.n)
			logmsg(L_ERROR, "cannot listen on '%s': %s (held by gen %u pid %d of the hupwatch that died)", spec,
			       why, orphan_to_take_from()->number, (int)orphan_to_take_from()->pid);
		else
			logmsg(L_ERROR, "cannot listen on '%s': %s", spec, why);
		return -1;
	}
	add_listener(fd, fd_name(spec), xstrdup(label), a.family == AF_UNIX ? xstrdup(a.path) : NULL);
	hw.sock.list[hw.sock.n - 1].fresh = true;
	logmsg(L_INFO, "listening on %s (fd %d)", label, 3 + (int)hw.sock.n - 1);
	return 0;
}

static int open_listeners(void)
{
	size_t n = hw.cfg.nlisten;
	int reuse[n ? n : 1];

	sort_passed(reuse, n);
	for (size_t i = 0; i < n; i++)
		if (open_listener(i, reuse[i]))
			return -1;
	return 0;
}

/*
 * Under systemd, each socket hupwatch bound itself goes to the fd store, once: a restart of
 * hupwatch (systemctl restart, a crash, the watchdog) gets it back, and connections queue in its
 * backlog meanwhile instead of being refused. Socket activation's are the socket unit's already:
 * stored too, systemd would pass them twice. A stored unix socket's file stays when hupwatch exits.
 */
static void store_listeners(void)
{
	if (hw.upstream.fd < 0)
		return;
	for (size_t i = 0; i < hw.sock.n; i++) {
		struct listener *l = &hw.sock.list[i];

		if (!l->fresh || upstream_store(l->fd, l->name))
			continue;
		logmsg(L_DEBUG, "offered %s to the service manager's fd store as '%s'", l->label, l->name);
		free(l->unix_path);
		l->unix_path = NULL;
	}
}

/* LISTEN_FDNAMES: the sockets' names joined by ':', the same for every generation. */
static void join_fdnames(void)
{
	size_t size = 1, at = 0;

	for (size_t i = 0; i < hw.sock.n; i++)
		size += strlen(hw.sock.list[i].name) + 1;
	hw.sock.fdnames = xmalloc(size);
	hw.sock.fdnames[0] = '\0';
	for (size_t i = 0; i < hw.sock.n; i++)
		at += (size_t)snprintf(hw.sock.fdnames + at, size - at, "%s%s", i ? ":" : "", hw.sock.list[i].name);
}

/*
 * hupwatch's private runtime directory (mode 0700, from mkdtemp) for the path sockets of the
 * generations: under $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=, the first of a list),
 * else $XDG_RUNTIME_DIR, else $TMPDIR, else /tmp. Removed at exit (tidy_files).
 */
static int make_runtime_dir(void)
{
	static const char *const vars[] = { "RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR", "TMPDIR" };
	const char *base = "/tmp";
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) - 24]; /* room for "/notify.N" */
	size_t len = strlen(base);

	for (size_t i = 0; i < COUNT(vars); i++) {
		const char *v = getenv(vars[i]);

		if (v && v[0] == '/') {
			base = v;
			len = strcspn(v, ":");
			break;
		}
	}
	if ((size_t)snprintf(path, sizeof(path), "%.*s/hupwatch.XXXXXX", (int)len, base) >= sizeof(path)) {
		logmsg(L_ERROR, "cannot create a private directory under '%.*s': name too long for a socket",
		       (int)len, base);
		return -1;
	}
	if (!mkdtemp(path)) {
		logmsg(L_ERROR, "cannot create a private directory under '%.*s': %s", (int)len, base, strerror(errno));
		return -1;
	}
	/* With --user the generations must reach their sockets in it: enter, not list (their files are theirs). */
	if (hw.cfg.user.set && chmod(path, 0711))
		logmsg(L_WARNING, "cannot open '%s' to --user: %s", path, strerror(errno));
	hw.runtime_dir = xstrdup(path);
	logmsg(L_DEBUG, "private runtime directory %s", path);
	return 0;
}

static const struct gen_sockets no_sockets = { .notify_fd = -1, .probe_fd = -1 };

static void close_gen_sockets(struct gen_sockets *o)
{
	if (o->notify_fd >= 0)
		close(o->notify_fd);
	if (o->probe_fd >= 0)
		close(o->probe_fd);
	if (o->notify_path)
		unlink(o->notify_path);
	if (o->probe_path)
		unlink(o->probe_path);
	free(o->notify_path);
	free(o->probe_path);
	free(o->probe_address);
	*o = no_sockets;
}

/* The notify socket of generation `number`: only its processes are given the path. */
static int open_gen_notify(struct gen_sockets *o, unsigned number)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int one = 1, fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify.%u", hw.runtime_dir, number);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	o->notify_fd = fd;
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return -1;
	o->notify_path = xstrdup(sa.sun_path);
	/* --user: the generation sends as that user; the socket is for it alone. */
	if (hw.cfg.user.set && (chown(sa.sun_path, hw.cfg.user.uid, hw.cfg.user.gid) || chmod(sa.sun_path, 0600)))
		return -1;
	return 0;
}

/* The family of the first listening socket: the probe socket's. TCP on IPv4 without any. */
static int first_family(void)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = sizeof(ss);

	if (hw.sock.n == 0 || getsockname(hw.sock.list[0].fd, (struct sockaddr *)&ss, &len))
		return AF_INET;
	return ss.ss_family == AF_INET6 || ss.ss_family == AF_UNIX ? ss.ss_family : AF_INET;
}

/* Where the probe socket of generation `number` listens: loopback on a port the kernel picks, or a path. */
static socklen_t probe_sockaddr(int family, unsigned number, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	ss->ss_family = (sa_family_t)family;
	if (family == AF_UNIX) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;

		snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/probe.%u", hw.runtime_dir, number);
		return sizeof(*sun);
	}
	if (family == AF_INET6) {
		((struct sockaddr_in6 *)ss)->sin6_addr = in6addr_loopback;
		return sizeof(struct sockaddr_in6);
	}
	((struct sockaddr_in *)ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sizeof(struct sockaddr_in);
}

/* The probe socket of generation `number`: one more listening socket that only it is given. */
static int open_gen_probe(struct gen_sockets *o, unsigned number)
{
	char label[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	int family = first_family(), fd;
	socklen_t len = probe_sockaddr(family, number, &o->probe_sa);

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	o->probe_fd = fd;
	if (bind(fd, (struct sockaddr *)&o->probe_sa, len))
		return -1;
	if (family == AF_UNIX)
		o->probe_path = xstrdup(((struct sockaddr_un *)&o->probe_sa)->sun_path);
	if (listen(fd, hw.cfg.backlog) || getsockname(fd, (struct sockaddr *)&o->probe_sa, &len))
		return -1;
	o->probe_len = len;
	if (family == AF_UNIX)
		snprintf(label, sizeof(label), "unix:%s", o->probe_path);
	else
		describe_sockname(fd, label, sizeof(label));
	o->probe_address = xstrdup(label);
	return 0;
}

/* What generation `number` will own besides its processes; on failure none of it, and why. */
static int open_gen_sockets(struct gen_sockets *o, unsigned number, char *why, size_t size)
{
	*o = no_sockets;
	if (hw.cfg.notify && open_gen_notify(o, number)) {
		snprintf(why, size, "cannot create its notify socket: %s", strerror(errno));
		close_gen_sockets(o);
		return -1;
	}
	if (has_probe(&hw.cfg) && open_gen_probe(o, number)) {
		snprintf(why, size, "cannot create its probe socket: %s", strerror(errno));
		close_gen_sockets(o);
		return -1;
	}
	return 0;
}

/* ---- generations -------------------------------------------------------------------------- */

/* The newest generation in state s; at most one is STARTING and at most one CURRENT. */
static struct generation *in_state(enum gen_state s)
{
	for (struct generation *g = hw.gens; g; g = g->next)
		if (g->state == s)
			return g;
	return NULL;
}

static struct generation *current_gen(void)
{
	return in_state(GEN_CURRENT);
}

/* The generation on its way to current: STARTING, or SETTLING with --settle-time. At most one. */
static struct generation *starting_gen(void)
{
	struct generation *g = in_state(GEN_STARTING);

	return g ? g : in_state(GEN_SETTLING);
}

/*
 * May a message on g's notify socket from pid count as g's? From a process of g, yes; from a
 * live process outside it, never. A sender already gone when its message is read (a one-shot
 * helper such as systemd-notify) cannot be looked up: it is credited to g, whose socket it
 * reached through a path only g was given, in a directory only hupwatch's user can enter.
 */
static bool sender_in(const struct generation *g, pid_t pid)
{
	return is_descendant(pid, g->pid) || (kill(pid, 0) && errno == ESRCH);
}

/*
 * What the child reports on its exec pipe: first the directory it resolved (REPORT_CWD, the
 * length of the path follows), then, if it cannot exec, one error with its errno, or with the
 * length of its text (REPORT_ENV: what is wrong with the --env-file, in words). EOF alone
 * means exec worked. Each record is one write of at most PIPE_BUF bytes, so it arrives whole.
 */
enum report_kind { REPORT_CWD = 1, REPORT_CHDIR, REPORT_SOCKETS, REPORT_EXEC, REPORT_USER, REPORT_ENV };
struct spawn_report {
	int kind;
	int value; /* an errno, or the length of the path after it */
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

/* In the forked child: one report, whole. */
static void send_report(int fd, int kind, int value, const char *text)
{
	char buf[PIPE_BUF];
	struct spawn_report r = { kind, value };
	size_t len = text ? (size_t)value : 0;

	if (sizeof(r) + len > sizeof(buf))
		return;
	memcpy(buf, &r, sizeof(r));
	if (len)
		memcpy(buf + sizeof(r), text, len);
	if (write(fd, buf, sizeof(r) + len) < 0)
		_exit(EXIT_FAILURE_OWN);
}

static _Noreturn void exec_failed(int fd, int kind, int err)
{
	send_report(fd, kind, err, NULL);
	_exit(kind != REPORT_EXEC ? EXIT_FAILURE_OWN : err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC);
}

/* In a forked child: the --user account with its groups, read afresh; HOME, USER, LOGNAME its own. */
static int become_user(const struct account *u)
{
	if (initgroups(u->name, u->gid) || setgid(u->gid) || setuid(u->uid))
		return -1;
	setenv("HOME", u->home, 1);
	setenv("USER", u->name, 1);
	setenv("LOGNAME", u->name, 1);
	return 0;
}

/*
 * A regular file of at most ENV_FILE_MAX bytes, whole, in a NUL-terminated buffer; NULL with
 * errno set (EINVAL: not a regular file, EFBIG: too large). Symbolic links are followed: a
 * release's .env may well link to a shared one. Only ever called in a forked child.
 */
static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	struct stat sb;
	char *buf = NULL;
	ssize_t n = 0;

	if (fd < 0)
		return NULL;
	errno = EINVAL;
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
		errno = EFBIG;
		if (sb.st_size <= (off_t)ENV_FILE_MAX)
			buf = xmalloc(ENV_FILE_MAX + 2);
	}
	for (*len = 0; buf && *len <= ENV_FILE_MAX; *len += (size_t)n)
		if ((n = read(fd, buf + *len, ENV_FILE_MAX + 1 - *len)) <= 0)
			break;
	if (buf && (n < 0 || *len > ENV_FILE_MAX)) {
		errno = n < 0 ? errno : EFBIG; /* it grew while read */
		free(buf);
		buf = NULL;
	}
	close(fd);
	if (buf)
		buf[*len] = '\0';
	return buf;
}

/* The variables of an --env-file's text into the environment; 0, or the number of the bad line. */
static unsigned apply_env(char *text, size_t len, const char **why)
{
	char *p = text, *end = text + len;

	for (unsigned number = 1; p < end; number++) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p), name_len = 0;

		switch (parse_env_line(p, n, &name_len, why)) {
		case ENV_BAD:
			return number;
		case ENV_VARIABLE:
			p[name_len] = '\0';
			p[n] = '\0';
			setenv(p, p + name_len + 1, 1);
			break;
		case ENV_SKIP:
			break;
		}
		p += n + 1;
	}
	return 0;
}

/*
 * In the forked child, in the generation's directory (cwd) and as its user: --env-file read
 * afresh. 0, or -1 with why filled in, naming the file as the child resolved it (a long name
 * is cut: the reason must fit a status file line).
 */
static int load_env_file(const char *file, const char *cwd, char *why, size_t size)
{
	bool relative = file[0] != '/' && *cwd;
	const char *what;
	size_t len = 0;
	unsigned bad;
	char *text = slurp(file, &len);

	if (!text) {
		what = errno == EINVAL ? "not a regular file" : errno == EFBIG ? "larger than 1 MiB" : strerror(errno);
		snprintf(why, size, "cannot read --env-file '%.160s%s%.80s': %s", relative ? cwd : "", relative ? "/" : "",
			 file, what);
		return -1;
	}
	bad = apply_env(text, len, &what);
	free(text);
	if (bad)
		snprintf(why, size, "--env-file %.160s%s%.80s:%u: %s", relative ? cwd : "", relative ? "/" : "", file,
			 bad, what);
	return bad ? -1 : 0;
}

/* How many sockets a generation gets: the held ones, then its probe socket. */
static int passed_count(const struct gen_sockets *own)
{
	return (int)hw.sock.n + (own->probe_fd >= 0);
}

/*
 * Move the listening sockets to fds 3..3+n-1, without close-on-exec, and say so in the
 * environment; the generation's own probe socket, if any, is the last, named hupwatch-probe.
 */
static int pass_sockets(const struct gen_sockets *own)
{
	int n = passed_count(own), tmp[n > 0 ? n : 1];
	char num[24];

	/* Two steps, so that dup2 never meets its own source and every target loses CLOEXEC. */
	for (int i = 0; i < n; i++)
		if ((tmp[i] = fcntl(i < (int)hw.sock.n ? hw.sock.list[i].fd : own->probe_fd, F_DUPFD_CLOEXEC,
				    3 + n)) < 0)
			return -1;
	for (int i = 0; i < n; i++)
		if (dup2(tmp[i], 3 + i) < 0)
			return -1;
	snprintf(num, sizeof(num), "%d", n);
	setenv("LISTEN_FDS", num, 1);
	snprintf(num, sizeof(num), "%d", (int)getpid());
	setenv("LISTEN_PID", num, 1);
	if (own->probe_fd >= 0) {
		char names[strlen(hw.sock.fdnames) + sizeof(":hupwatch-probe")];

		snprintf(names, sizeof(names), "%s%shupwatch-probe", hw.sock.fdnames, hw.sock.n ? ":" : "");
		setenv("LISTEN_FDNAMES", names, 1);
	} else
		setenv("LISTEN_FDNAMES", hw.sock.fdnames, 1);
	return 0;
}

/* Where a generation starts: the configured directory, or (a respawn's fallback) the last good one. */
enum spawn_where { IN_WORKDIR, IN_LAST_GOOD };

static const char *spawn_dir(enum spawn_where where)
{
	return where == IN_LAST_GOOD && hw.respawn.last_good_dir ? hw.respawn.last_good_dir : hw.workdir;
}

/* In the forked child: leave only through exec or _exit. */
static _Noreturn void exec_generation(unsigned number, const struct gen_sockets *own, int errfd, const char *dir)
{
	int n = passed_count(own), moved;
	char num[24], cwd[PATH_MAX] = "", why[400];

	reset_signals();
	setpgid(0, 0);
	/* Keep the report pipe clear of fds 3..3+n-1, which the sockets are about to take. */
	moved = fcntl(errfd, F_DUPFD_CLOEXEC, 3 + n);
	if (moved < 0) /* EMFILE, say: told on the pipe we still have */
		exec_failed(errfd, REPORT_SOCKETS, errno);
	errfd = moved;
	if (dir && chdir(dir))
		exec_failed(errfd, REPORT_CHDIR, errno);
	/*
	 * PWD is the release it resolved, not the `current` symlink: a server that re-reads its
	 * directory later (gunicorn boots every new worker in $PWD) must stay in its own release.
	 */
	if (getcwd(cwd, sizeof(cwd))) {
		send_report(errfd, REPORT_CWD, (int)strlen(cwd), cwd);
		setenv("PWD", cwd, 1);
	}
	else
		cwd[0] = '\0';
	/* The sockets were bound before: only now does the generation give up root. */
	if (hw.cfg.user.set && become_user(&hw.cfg.user))
		exec_failed(errfd, REPORT_USER, errno);
	/* Read here, not in the loop: a hung file system blocks this child only. */
	if (hw.cfg.env_file && load_env_file(hw.cfg.env_file, cwd, why, sizeof(why))) {
		send_report(errfd, REPORT_ENV, (int)strlen(why), why);
		_exit(EXIT_FAILURE_OWN);
	}
	if (n > 0 && pass_sockets(own))
		exec_failed(errfd, REPORT_SOCKETS, errno);
	if (own->notify_path)
		setenv("NOTIFY_SOCKET", own->notify_path, 1);
	if (own->probe_address)
		setenv("HUPWATCH_PROBE_ADDRESS", own->probe_address, 1);
	if (own->notify_path && hw.upstream.watchdog) { /* a watchdog of its own, on its notify socket */
		snprintf(num, sizeof(num), "%" PRId64, hw.upstream.watchdog / 1000);
		setenv("WATCHDOG_USEC", num, 1);
		snprintf(num, sizeof(num), "%d", (int)getpid());
		setenv("WATCHDOG_PID", num, 1);
	}
	snprintf(num, sizeof(num), "%u", number);
	setenv("HUPWATCH_GENERATION", num, 1);
	execvp(hw.cfg.command[0], hw.cfg.command);
	exec_failed(errfd, REPORT_EXEC, errno);
}

/*
 * Fork the next generation; it execs on its own, and its exec pipe tells the loop how that went.
 * Returns NULL with why and the would-be exit status filled in when not even the fork worked.
 */
static struct generation *spawn(enum spawn_where where, char *why, size_t size, int *status)
{
	unsigned number = ++hw.last_number;
	struct gen_sockets own;
	struct generation *g;
	int pipefd[2];
	pid_t pid;

	*status = EXIT_FAILURE_OWN;
	if (open_gen_sockets(&own, number, why, size))
		return NULL;
	if (pipe2(pipefd, O_CLOEXEC)) {
		snprintf(why, size, "cannot create a pipe: %s", strerror(errno));
		close_gen_sockets(&own);
		return NULL;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(why, size, "cannot fork: %s", strerror(errno));
		close(pipefd[0]);
		close(pipefd[1]);
		close_gen_sockets(&own);
		return NULL;
	}
	if (pid == 0)
		exec_generation(number, &own, pipefd[1], spawn_dir(where));
	close(pipefd[1]);
	/* Also from here, so the group exists before anything may signal it (the usual race). */
	setpgid(pid, pid);
	(void)fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
	g = xmalloc(sizeof(*g));
	*g = (struct generation){ .number = number, .pid = pid, .state = GEN_STARTING, .spawned_at = now(),
				  .kill_at = NEVER, .exec_fd = pipefd[0], .fallback = where == IN_LAST_GOOD, .own = own,
				  .http = { .fd = -1 } };
	g->probe_next = g->http_next = g->spawned_at;
	snprintf(g->status_lines.what, sizeof(g->status_lines.what), "gen %u STATUS", number);
	g->status_lines.level = L_INFO;
	g->next = hw.gens;
	hw.gens = g;
	g->pidfd = -1;
	g->starttime = process_starttime(pid);
	hw.status_dirty = true; /* generations= names it before the loop sleeps: a successor must find it */
	logmsg(L_INFO, "gen %u pid %d started", number, (int)pid);
	return g;
}

static void describe_report(const struct generation *g, const struct spawn_report *r, char *why, size_t size,
			    int *status)
{
	*status = EXIT_FAILURE_OWN;
	if (r->kind == REPORT_CHDIR)
		snprintf(why, size, "cannot change directory to '%s': %s",
			 spawn_dir(g->fallback ? IN_LAST_GOOD : IN_WORKDIR), strerror(r->value));
	else if (r->kind == REPORT_SOCKETS)
		snprintf(why, size, "cannot pass the listening sockets: %s", strerror(r->value));
	else if (r->kind == REPORT_USER)
		snprintf(why, size, "cannot run as user '%s': %s", hw.cfg.user.name, strerror(r->value));
	else {
		snprintf(why, size, "cannot execute '%s': %s", hw.cfg.command[0], strerror(r->value));
		*status = r->value == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
	}
}

enum exec_outcome { EXEC_PENDING, EXEC_DONE, EXEC_FAILED };

/* Whatever the exec pipe of g has now, without waiting. */
static enum exec_outcome read_exec_pipe(struct generation *g, char *why, size_t size, int *status)
{
	char buf[2 * PIPE_BUF];
	size_t at = 0;
	ssize_t n;

	do
		n = read(g->exec_fd, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? EXEC_PENDING : EXEC_DONE;
	while (n > 0 && at + sizeof(struct spawn_report) <= (size_t)n) {
		struct spawn_report r;

		memcpy(&r, buf + at, sizeof(r));
		at += sizeof(r);
		if (r.kind != REPORT_CWD && r.kind != REPORT_ENV) {
			describe_report(g, &r, why, size, status);
			return EXEC_FAILED;
		}
		if (r.value <= 0 || at + (size_t)r.value > (size_t)n)
			break;
		if (r.kind == REPORT_ENV) {
			snprintf(why, size, "%.*s", r.value, buf + at);
			*status = EXIT_FAILURE_OWN;
			return EXEC_FAILED;
		}
		free(g->dir);
		g->dir = xmalloc((size_t)r.value + 1);
		memcpy(g->dir, buf + at, (size_t)r.value);
		g->dir[r.value] = '\0';
		at += (size_t)r.value;
	}
	if (n > 0)
		return EXEC_PENDING; /* EOF comes with the next read */
	close(g->exec_fd);
	g->exec_fd = -1;
	logmsg(L_DEBUG, "gen %u pid %d: executed in %s", g->number, (int)g->pid, g->dir ? g->dir : "?");
	return EXEC_DONE;
}

static void http_close(struct http_try *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

/* Every check of g in progress ends: its ready command is killed, its HTTP try dropped. */
static void kill_probe(struct generation *g)
{
	if (g->probe_pid > 0)
		kill(-g->probe_pid, SIGKILL);
	http_close(&g->http);
}

static bool group_alive(const struct generation *g)
{
	return kill(-g->pid, 0) == 0 || errno == EPERM;
}

/* The stop signal, then SIGCONT, or a stopped process would never see it. */
static void signal_stop(pid_t target)
{
	if (kill(target, hw.cfg.stop_signal) && errno != ESRCH)
		logmsg(L_WARNING, "cannot signal %s %d: %s", target < 0 ? "process group" : "pid",
		       (int)(target < 0 ? -target : target), strerror(errno));
	if (hw.cfg.stop_signal != SIGKILL)
		kill(target, SIGCONT);
}

/*
 * When a stopping generation gets SIGKILL: after the stop timeout, if any. One that never became
 * ready gets FAILED_STOP_GRACE, unless a -T other than 0 was given.
 */
static nsec_t kill_deadline(enum gen_state s, nsec_t t)
{
	nsec_t limit = hw.cfg.stop_timeout;

	if (s == GEN_FAILED && (limit == NEVER || !hw.cfg.seen['T']))
		limit = FAILED_STOP_GRACE;
	return limit == NEVER ? NEVER : t + limit;
}

/* The stop signal to a generation: its main process if that still runs, else what it left in its group. */
static void send_stop(const struct generation *g)
{
	if (!g->main_exited)
		logmsg(L_INFO, "gen %u pid %d stopping (%s)", g->number, (int)g->pid, signame(hw.cfg.stop_signal));
	signal_stop(g->main_exited ? -g->pid : g->pid);
}

/* --drain-signal: a generation that served is asked to stop accepting first; send_stop() follows in check_stopping(). */
static void start_drain(struct generation *g, nsec_t t)
{
	logmsg(L_INFO, "gen %u pid %d draining (%s), stop signal in %.2fs", g->number, (int)g->pid,
	       signame(hw.cfg.drain_signal), seconds(hw.cfg.drain_time));
	if (kill(g->pid, hw.cfg.drain_signal) && errno != ESRCH)
		logmsg(L_WARNING, "cannot signal pid %d: %s", (int)g->pid, strerror(errno));
	g->drain_end = t + hw.cfg.drain_time;
}

/*
 * The one writer of a generation's state. Entering STOPPING or FAILED asks it to stop: its main
 * process if that still runs, else what it left in its group.
 */
static void set_state(struct generation *g, enum gen_state s, nsec_t t)
{
	bool served = g->state == GEN_CURRENT || g->state == GEN_SETTLING;

	logmsg(L_DEBUG, "gen %u: %s -> %s", g->number, gen_state_names[g->state], gen_state_names[s]);
	g->state = s;
	if ((s == GEN_STOPPING || s == GEN_FAILED) && !g->killed) {
		kill_probe(g);
		g->stop_at = t;
		g->kill_at = kill_deadline(s, t);
		if (g->kill_at != NEVER)
			logmsg(L_DEBUG, "gen %u: SIGKILL to its process group in %.2fs if it is still there", g->number,
			       seconds(g->kill_at - t));
		if (hw.cfg.drain_signal && s == GEN_STOPPING && served && !g->main_exited)
			start_drain(g, t);
		else
			send_stop(g);
	}
	hw.status_dirty = true;
}

/* A draining generation's stop signal, now (due, or hupwatch hands over and would forget it). */
static void end_drain(struct generation *g)
{
	g->drain_end = 0;
	if (!g->killed && !g->main_exited)
		send_stop(g);
}

static void kill_group(struct generation *g, nsec_t t)
{
	if (g->state != GEN_STOPPING && g->state != GEN_FAILED)
		g->stop_at = t;
	kill_probe(g);
	g->killed = true;
	g->kill_at = t + KILL_GRACE; /* then no longer waited for */
	if (kill(-g->pid, SIGKILL) && errno != ESRCH)
		logmsg(L_WARNING, "cannot kill process group %d: %s", (int)g->pid, strerror(errno));
	if (!g->main_exited)
		kill(g->pid, SIGKILL); /* in case it left its group */
}

static void remove_generation(struct generation *dead)
{
	for (struct generation **p = &hw.gens; *p; p = &(*p)->next)
		if (*p == dead) {
			*p = dead->next;
			break;
		}
	if (hw.exit.final_gen == dead)
		hw.exit.final_gen = NULL;
	hw.status_dirty = true; /* generations= no longer names it */
	if (dead->exec_fd >= 0)
		close(dead->exec_fd);
	if (dead->pidfd >= 0)
		close(dead->pidfd);
	http_close(&dead->http);
	close_gen_sockets(&dead->own); /* never passed to another: it goes with its generation */
	free(dead->dir);
	free(dead);
}

/* ---- readiness ---------------------------------------------------------------------------- */

enum verdict { NOT_YET, READY, TIMED_OUT, UNHEALTHY };

/* When the HTTP check of g wants the loop: the end of the try in flight, else the next try. */
static nsec_t http_wake(const struct generation *g, const struct config *c)
{
	if (!c->ready_http || g->exec_fd >= 0)
		return NEVER;
	return g->http.fd >= 0 ? g->http.deadline : g->http_next;
}

/*
 * Pure, for a SETTLING generation: settled (READY) once the settle time is over and no HTTP
 * try is still out; UNHEALTHY as soon as one failed. (Its death is an event of its own.)
 */
static enum verdict judge_settling(const struct generation *g, const struct config *c, nsec_t t, nsec_t *next)
{
	nsec_t wake = http_wake(g, c);

	*next = t;
	if (g->unhealthy)
		return UNHEALTHY;
	if (t >= g->settle_end && (!c->ready_http || g->http.fd < 0))
		return READY;
	*next = t >= g->settle_end || wake < g->settle_end ? wake : g->settle_end;
	return NOT_YET;
}

/* What made a generation ready, for the log: the checks asked for, all of which held. */
static const char *ready_how(const struct config *c)
{
	static const char *const how[] = { "warm-up",
					   "READY=1",
					   "ready-cmd",
					   "READY=1 and ready-cmd",
					   "HTTP",
					   "READY=1 and HTTP",
					   "ready-cmd and HTTP",
					   "READY=1, ready-cmd and HTTP" };

	return how[(c->notify ? 1 : 0) | (c->ready_cmd ? 2 : 0) | (c->ready_http ? 4 : 0)];
}

/*
 * Pure: where a starting generation stands at time t, and when to look again (*next).
 * With -n, -c and --ready-http given together, all must agree; the warm-up is a minimum age on
 * top. Nothing is ready before its exec is confirmed. A SETTLING one: judge_settling().
 */
static enum verdict judge(const struct generation *g, const struct config *c, nsec_t t, nsec_t *next,
			  const char **how)
{
	bool waits = awaits_readiness(c);
	bool signalled = g->exec_fd < 0 && (!c->notify || g->notified) && (!c->ready_cmd || g->probe_ok) &&
			 (!c->ready_http || g->http_ok);
	nsec_t warm = g->spawned_at + c->warmup;

	*how = ready_how(c);
	if (g->state == GEN_SETTLING)
		return judge_settling(g, c, t, next);
	*next = NEVER;
	if (signalled && t >= warm) {
		*next = t;
		return READY;
	}
	if (waits && c->ready_timeout != NEVER) {
		nsec_t limit = g->spawned_at + c->ready_timeout;

		if (t >= limit)
			return TIMED_OUT;
		*next = limit;
	}
	if (signalled && warm < *next)
		*next = warm;
	if (c->ready_cmd && g->exec_fd < 0 && !g->probe_ok && g->probe_pid <= 0 && g->probe_next < *next)
		*next = g->probe_next;
	if (!g->http_ok && http_wake(g, c) < *next)
		*next = http_wake(g, c);
	return NOT_YET;
}

/* The ready command runs where its generation runs, with its numbers in the environment. */
static _Noreturn void exec_probe(const struct generation *g)
{
	const char *dir = g->dir ? g->dir : hw.workdir;
	char num[24];

	reset_signals();
	setpgid(0, 0);
	if (dir && chdir(dir)) {
		logmsg(L_WARNING, "gen %u: cannot run the ready command in '%s': %s", g->number, dir, strerror(errno));
		_exit(EXIT_FAILURE_OWN);
	}
	if (dir)
		setenv("PWD", dir, 1);
	if (hw.cfg.user.set && become_user(&hw.cfg.user)) {
		logmsg(L_WARNING, "gen %u: cannot run the ready command as user '%s': %s", g->number, hw.cfg.user.name,
		       strerror(errno));
		_exit(EXIT_FAILURE_OWN);
	}
	snprintf(num, sizeof(num), "%d", (int)g->pid);
	setenv("HUPWATCH_PID", num, 1);
	snprintf(num, sizeof(num), "%u", g->number);
	setenv("HUPWATCH_GENERATION", num, 1);
	if (g->own.probe_address)
		setenv("HUPWATCH_PROBE_ADDRESS", g->own.probe_address, 1);
	execl("/bin/sh", "sh", "-c", hw.cfg.ready_cmd, (char *)NULL);
	_exit(EXIT_NOT_FOUND);
}

static void run_probe(struct generation *g, nsec_t t)
{
	pid_t pid = fork();

	g->probe_next = t + hw.cfg.ready_interval;
	if (pid < 0) {
		logmsg(L_WARNING, "cannot fork the ready command: %s", strerror(errno));
		return;
	}
	if (pid == 0)
		exec_probe(g);
	setpgid(pid, pid);
	g->probe_pid = pid;
	logmsg(L_DEBUG, "gen %u: ready command pid %d started", g->number, (int)pid);
}

/* ---- the HTTP check: --ready-http, one non-blocking try at a time inside the loop ---- */

static nsec_t http_try_limit(const struct config *c)
{
	return c->ready_interval > HTTP_TRY_MIN ? c->ready_interval : HTTP_TRY_MIN;
}

/* The whole request; Host is the probe address (a name for a unix socket). */
static size_t http_request(const struct generation *g, char *buf, size_t size)
{
	const char *host = g->own.probe_path || !g->own.probe_address ? "localhost" : g->own.probe_address;
	int n = snprintf(buf, size,
			 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: hupwatch/" VERSION
			 "\r\nAccept: */*\r\nConnection: close\r\n\r\n",
			 hw.cfg.ready_http, host);

	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/*
 * A try is over. Its outcome is logged at info when it differs from the one before (so a
 * generation answering 503 for a minute is one line, and the first 2xx is another), else at
 * debug; a 2xx makes a starting generation ready, a failure fails a settling one.
 */
static void http_done(struct generation *g, nsec_t t, int code, const char *what)
{
	char line[sizeof(g->http_last)];
	bool ok = code >= 200 && code <= 299;

	snprintf(line, sizeof(line), "GET %s: %s", hw.cfg.ready_http, what);
	logmsg(strcmp(line, g->http_last) != 0 || (ok && g->state == GEN_STARTING) ? L_INFO : L_DEBUG,
	       "gen %u pid %d: %s (%.3fs)", g->number, (int)g->pid, line, seconds(t - g->http.started));
	memcpy(g->http_last, line, sizeof(line));
	http_close(&g->http);
	g->http_next = g->http.started + hw.cfg.ready_interval;
	if (ok && g->state == GEN_STARTING)
		g->http_ok = true;
	else if (!ok && g->state == GEN_SETTLING)
		g->unhealthy = true;
}

static void http_start(struct generation *g, nsec_t t)
{
	struct http_try *h = &g->http;

	*h = (struct http_try){ .fd = -1, .started = t, .deadline = t + http_try_limit(&hw.cfg) };
	h->fd = socket(g->own.probe_sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h->fd < 0 || (connect(h->fd, (struct sockaddr *)&g->own.probe_sa, g->own.probe_len) &&
			  errno != EINPROGRESS))
		http_done(g, t, 0, strerror(errno));
}

static void http_timed_out(struct generation *g, nsec_t t)
{
	char what[64];

	snprintf(what, sizeof(what), "no answer within %.2fs", seconds(http_try_limit(&hw.cfg)));
	http_done(g, t, 0, what);
}

/* Connected (or not) and writable: the request goes out. */
static void http_send(struct generation *g, nsec_t t)
{
	struct http_try *h = &g->http;
	char req[1200];
	size_t len = http_request(g, req, sizeof(req));
	int err = 0;
	socklen_t elen = sizeof(err);
	ssize_t n;

	if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err) {
		http_done(g, t, 0, strerror(err));
		return;
	}
	n = send(h->fd, req + h->sent, len - h->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		http_done(g, t, 0, strerror(errno));
	else if (n > 0)
		h->sent += (size_t)n;
}

/* Readable: the status line, as far as it came. */
static void http_receive(struct generation *g, nsec_t t)
{
	struct http_try *h = &g->http;
	char what[HTTP_LINE_MAX];
	size_t line;
	int code = 0, rc;
	ssize_t n = recv(h->fd, h->buf + h->got, sizeof(h->buf) - h->got, MSG_DONTWAIT);

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			http_done(g, t, 0, strerror(errno));
		return;
	}
	h->got += (size_t)n;
	rc = parse_http_status(h->buf, h->got, &code, &line);
	if (rc == 0 && n > 0)
		return;
	if (rc <= 0) {
		http_done(g, t, 0, rc == 0 ? "closed before a status line" : "malformed status line");
		return;
	}
	line -= 1 + (line >= 2 && h->buf[line - 2] == '\r');
	copy_printable(what, sizeof(what), h->buf, line);
	http_done(g, t, code, what);
}

static bool http_sending(const struct generation *g)
{
	char req[1200];

	return g->http.sent < http_request(g, req, sizeof(req));
}

/* The loop saw the try's socket ready for what it waits for. */
static void http_step(struct generation *g, nsec_t t)
{
	if (http_sending(g))
		http_send(g, t);
	else
		http_receive(g, t);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

/* What a successor needs to take over if hupwatch dies hard: each running generation, newest first. */
static void list_generations(char *buf, size_t size)
{
	size_t at = 0;

	buf[0] = '\0';
	for (const struct generation *g = hw.gens; g; g = g->next) {
		int n;

		if (g->main_exited)
			continue;
		n = snprintf(buf + at, size - at, "%s%u:%d:%llu:%s", at ? "," : "", g->number, (int)g->pid, g->starttime,
			     gen_state_names[g->state]);
		if (n < 0 || (size_t)n >= size - at) {
			buf[at] = '\0'; /* the oldest do not fit: left out whole */
			return;
		}
		at += (size_t)n;
	}
}

/* How long a generation may take to become current: its readiness, then its settle time. */
static nsec_t ready_wait(const struct config *c)
{
	nsec_t w = awaits_readiness(c) ? c->ready_timeout : c->warmup;

	return w == NEVER || c->settle >= NEVER - w ? NEVER : w + c->settle;
}

/* The status file as it is now. */
static void snapshot(struct status_info *st)
{
	const struct generation *cur = current_gen();
	const struct config *c = &hw.cfg;

	*st = (struct status_info){
		.pid = getpid(),
		.starttime = hw.starttime,
		.state = (int)hw.state,
		.generation = cur ? cur->number : 0,
		.generation_pid = cur ? cur->pid : 0,
		.ready_wait = ready_wait(c),
		.requests = hw.reload.requests,
		.reload = hw.reload.count,
		.reload_state = (int)hw.reload.state,
		.reload_generation = hw.reload.generation,
		.reload_covers = hw.reload.covers,
		.reload_started = hw.reload.started,
		.respawns = hw.respawn.count,
		.version = VERSION,
		.upgrades = hw.upgrade.requests,
		.upgrade_state = (int)hw.upgrade.state,
		.exit_status = hw.state == HW_EXITED ? hw.exit.status : -1,
	};
	copy_printable(st->upgrade_reason, sizeof(st->upgrade_reason), hw.upgrade.reason, sizeof(hw.upgrade.reason));
	list_generations(st->generations, sizeof(st->generations));
	if (cur && cur->fallback && cur->dir)
		copy_printable(st->fallback_dir, sizeof(st->fallback_dir), cur->dir, SIZE_MAX);
	/* A reason quotes the command and the directory: never let them break the line format. */
	copy_printable(st->reload_reason, sizeof(st->reload_reason), hw.reload.reason, sizeof(hw.reload.reason));
}

static void write_status(void)
{
	char text[2048];
	struct status_info st;

	hw.status_dirty = false;
	if (!hw.cfg.status_file)
		return;
	snapshot(&st);
	format_status(&st, text, sizeof(text));
	if (write_atomic(hw.cfg.status_file, text) == 0)
		hw.files.status_written = true;
	else
		logmsg(L_ERROR, "cannot write status file '%s': %s", hw.cfg.status_file, strerror(errno));
}

/* The one writer of hupwatch's own state. */
static void enter(enum hw_state s)
{
	if (s == HW_STOPPING && hw.state != HW_STOPPING)
		upstream_send("STOPPING=1\nSTATUS=stopping");
	hw.state = s;
	hw.status_dirty = true;
}

static void upstream_ready(void)
{
	const struct generation *cur = current_gen();

	if (cur)
		upstream_send("READY=1\nSTATUS=gen %u pid %d is current", cur->number, (int)cur->pid);
}

/* After RELOADING=1 always READY=1 (else systemd stays "reloading"), and a STATUS= that says what failed. */
static void upstream_reload_failed(unsigned number, const char *reason)
{
	const struct generation *cur = current_gen();
	char text[256];

	if (!cur)
		return; /* nothing serves: hupwatch shuts down, and STOPPING=1 ends the reload */
	copy_printable(text, sizeof(text), reason, strlen(reason));
	upstream_send("READY=1\nSTATUS=reload %u failed: gen %u %s; gen %u pid %d current", hw.reload.count,
		      number, text, cur->number, (int)cur->pid);
}

/* Does hupwatch still wait for g before exiting? Old drains are not waited for without -k. */
static bool must_wait_for(const struct generation *g)
{
	return hw.cfg.kill_at_exit || g->state == GEN_FAILED || g->killed || g == hw.exit.final_gen;
}

/* Leave the files as they should be after hupwatch: its status, no pid file, no socket file. */
static void tidy_files(int status)
{
	hw.exit.status = status;
	hw.state = HW_EXITED;
	if (hw.files.status_written)
		write_status();
	if (hw.files.pid_written) {
		char buf[32], mine[32];

		snprintf(mine, sizeof(mine), "%d\n", (int)getpid());
		if (read_file(hw.cfg.pid_file, buf, sizeof(buf)) >= 0 && strcmp(buf, mine) == 0)
			unlink(hw.cfg.pid_file);
	}
	if (!hw.gens)
		for (size_t i = 0; i < hw.sock.n; i++)
			if (hw.sock.list[i].unix_path)
				unlink(hw.sock.list[i].unix_path);
	/* The private directory goes even with generations left running: nobody reads their sockets now. */
	for (struct generation *g = hw.gens; g; g = g->next) {
		if (g->own.notify_path)
			unlink(g->own.notify_path);
		if (g->own.probe_path)
			unlink(g->own.probe_path);
	}
	if (hw.runtime_dir && rmdir(hw.runtime_dir) && errno != ENOENT)
		logmsg(L_WARNING, "cannot remove '%s': %s", hw.runtime_dir, strerror(errno));
}

/*
 * Stop taking reloads; with -k ask every generation to stop. When the service is down (its
 * current generation died, or generation 1 failed) drains still going are cut to
 * DOWN_DRAIN_GRACE.
 */
static void begin_shutdown(enum shutdown_cause cause, int status)
{
	nsec_t t = now();

	hw.exit.status = status;
	hw.reload.pending = false;
	for (struct generation *g = hw.gens; g; g = g->next) {
		if (!hw.cfg.kill_at_exit)
			kill_probe(g);
		else if (g->state == GEN_STARTING)
			set_state(g, GEN_FAILED, t); /* never ready: FAILED_STOP_GRACE, not an endless drain */
		else if (g->state == GEN_CURRENT || g->state == GEN_SETTLING)
			set_state(g, GEN_STOPPING, t); /* a settling one serves too: it drains */
		else if (g->state == GEN_STOPPING && cause == SERVICE_DOWN && !g->killed && g->kill_at > t + DOWN_DRAIN_GRACE)
			g->kill_at = t + DOWN_DRAIN_GRACE;
	}
	enter(HW_STOPPING);
}

static _Noreturn void exit_now(int status)
{
	if (hw.state != HW_STOPPING)
		begin_shutdown(BY_SIGNAL, status);
	if (hw.upgrade.check_pid > 0) /* a new binary's --version and what it started: no orphan of ours */
		kill(-hw.upgrade.check_pid, SIGKILL);
	tidy_files(status);
	logmsg(L_INFO, "exiting with status %d", status);
	exit(status);
}

static void maybe_finish(void)
{
	if (hw.state != HW_STOPPING)
		return;
	for (struct generation *g = hw.gens; g; g = g->next)
		if (must_wait_for(g))
			return;
	exit_now(hw.exit.status);
}

/* One more failure of the service (--respawn-limit); true when it makes a crash loop. */
static bool crash_loop(nsec_t t)
{
	unsigned n = hw.cfg.respawn_burst;

	hw.respawn.failures[hw.respawn.nfailures++ % n] = t;
	/* The oldest of the last n failures, if there were n. */
	return hw.respawn.nfailures >= n && t - hw.respawn.failures[hw.respawn.nfailures % n] < hw.cfg.respawn_interval;
}

static nsec_t respawn_delay(unsigned attempts)
{
	nsec_t d = RESPAWN_FIRST_DELAY;

	if (attempts == 0)
		return 0;
	for (unsigned i = 1; i < attempts && d < RESPAWN_MAX_DELAY; i++)
		d *= 2;
	return d < RESPAWN_MAX_DELAY ? d : RESPAWN_MAX_DELAY;
}

/*
 * --respawn: nothing serves (status is why); start a new generation on the sockets, which stay
 * open, so connections wait in their queue. False when there is no --respawn, or a crash loop.
 */
static bool schedule_respawn(int status, nsec_t t)
{
	nsec_t delay = respawn_delay(hw.respawn.attempts);

	if (!hw.cfg.respawn || hw.state == HW_STOPPING)
		return false;
	hw.exit.lost_current = true; /* what hupwatch exits with, if it comes to that: the latest */
	hw.exit.lost_status = status;
	if (crash_loop(t)) {
		logmsg(L_ERROR, "crash loop: %u failures within %.2fs (--respawn-limit); giving up",
		       hw.cfg.respawn_burst, seconds(hw.cfg.respawn_interval));
		return false;
	}
	hw.respawn.at = t + delay;
	logmsg(L_WARNING, "respawning in %.2fs (attempt %u); the listening sockets stay open", seconds(delay),
	       hw.respawn.attempts + 1);
	enter(HW_STARTING);
	return true;
}

/* A failed respawn tries the last good release next, while that directory is there. */
static enum spawn_where respawn_where(void)
{
	const char *dir = hw.respawn.last_good_dir;
	struct stat sb;

	if (hw.respawn.attempts == 0 || !dir || stat(dir, &sb) || !S_ISDIR(sb.st_mode))
		return IN_WORKDIR;
	logmsg(L_WARNING, "gen %u falls back to the last release that was ready: %s", hw.last_number + 1, dir);
	return IN_LAST_GOOD;
}

/*
 * Generation `number` will not become current (it could not be spawned, exec failed, it died,
 * or it was not ready in time). The old current one, if any, stays; with none, nothing serves.
 */
static void report_failure(unsigned number, const char *reason, int status)
{
	const struct generation *cur = current_gen();
	char stays[64] = "";

	if (cur)
		snprintf(stays, sizeof(stays), "; gen %u stays current", cur->number);
	logmsg(L_ERROR, "gen %u failed: %s%s", number, reason, stays);
	if (hw.reload.state == RELOAD_IN_PROGRESS) {
		hw.reload.state = RELOAD_FAILED;
		snprintf(hw.reload.reason, sizeof(hw.reload.reason), "gen %u failed: %s", number, reason);
		upstream_reload_failed(number, reason);
	}
	if (!cur && hw.state != HW_STOPPING && !schedule_respawn(status, now()))
		/* generation 1, or the replacement of a dead current one */
		begin_shutdown(SERVICE_DOWN, hw.exit.lost_current ? hw.exit.lost_status : status);
	hw.status_dirty = true;
}

/* The respawn that is due, unless a generation is starting anyway (a reload). */
static void run_due_respawn(nsec_t t)
{
	enum spawn_where where;
	struct generation *g;
	char why[512];
	int status;

	if (t < hw.respawn.at || starting_gen() || hw.state == HW_STOPPING)
		return;
	hw.respawn.at = NEVER;
	where = respawn_where();
	hw.respawn.attempts++;
	hw.respawn.count++;
	g = spawn(where, why, sizeof(why), &status);
	if (!g)
		report_failure(hw.last_number, why, status);
	hw.status_dirty = true;
}

/* A starting generation failed; stop it (or what it left) and say so. */
static void fail_starting(struct generation *g, const char *reason, int status, nsec_t t)
{
	if (g->main_exited)
		kill_group(g, t); /* whatever it left behind was never ready either */
	set_state(g, GEN_FAILED, t);
	report_failure(g->number, reason, status);
}

/* g (ready, settled if it had to) takes over; the old current one is asked to stop only now. */
static void become_current(struct generation *g, nsec_t t)
{
	struct generation *old = current_gen();

	if (g->state == GEN_SETTLING)
		logmsg(L_INFO, "gen %u pid %d settled: alive%s for %.2fs after ready", g->number, (int)g->pid,
		       hw.cfg.ready_http ? " and answering" : "", seconds(hw.cfg.settle));
	kill_probe(g);
	hw.exit.lost_current = false;
	hw.respawn.at = NEVER;
	hw.respawn.attempts = 0;
	if (g->dir) {
		free(hw.respawn.last_good_dir);
		hw.respawn.last_good_dir = xstrdup(g->dir);
	}
	if (g->fallback)
		logmsg(L_WARNING, "gen %u runs the fallback release %s, not the configured directory", g->number,
		       g->dir ? g->dir : "?");
	if (hw.reload.state == RELOAD_IN_PROGRESS)
		hw.reload.state = RELOAD_SUCCEEDED;
	set_state(g, GEN_CURRENT, t);
	if (old)
		set_state(old, GEN_STOPPING, t);
	enter(HW_RUNNING);
	upstream_ready();
}

/* Ready; with --settle-time it first settles, while the old generation serves on untouched. */
static void become_ready(struct generation *g, nsec_t t, const char *how)
{
	const struct generation *old = current_gen();

	logmsg(L_INFO, "gen %u pid %d ready after %.2fs (%s)", g->number, (int)g->pid,
	       seconds(t - g->spawned_at), how);
	kill_probe(g);
	if (hw.cfg.settle == 0) {
		become_current(g, t);
		return;
	}
	g->settle_end = t + hw.cfg.settle;
	g->http_next = t + hw.cfg.ready_interval;
	set_state(g, GEN_SETTLING, t);
	if (old)
		logmsg(L_INFO, "gen %u pid %d settling for %.2fs; gen %u stays current until then", g->number,
		       (int)g->pid, seconds(hw.cfg.settle), old->number);
	else
		logmsg(L_INFO, "gen %u pid %d settling for %.2fs", g->number, (int)g->pid, seconds(hw.cfg.settle));
}

static void start_reload(void)
{
	char why[512];
	int status;

	hw.reload.count++;
	hw.reload.state = RELOAD_IN_PROGRESS;
	hw.reload.started = now();
	hw.reload.covers = hw.reload.requests;
	hw.reload.reason[0] = '\0';
	hw.reload.generation = hw.last_number + 1;
	upstream_send("RELOADING=1\nSTATUS=reloading: gen %u starting\nMONOTONIC_USEC=%" PRId64,
		      hw.reload.generation, hw.reload.started / 1000);
	if (!spawn(IN_WORKDIR, why, sizeof(why), &status))
		report_failure(hw.reload.generation, why, status);
	hw.status_dirty = true;
}

/* HUPs that came while a generation was starting collapse into this one reload, once it settled. */
static void run_pending_reload(void)
{
	if (hw.reload.pending && !starting_gen() && hw.state != HW_STOPPING) {
		hw.reload.pending = false;
		start_reload();
	}
}

static void request_reload(void)
{
	const struct generation *s = starting_gen();

	hw.reload.requests++;
	hw.status_dirty = true;
	if (hw.state == HW_STOPPING) {
		logmsg(L_DEBUG, "reload requested (SIGHUP) while shutting down; ignored");
		return;
	}
	if (s) {
		logmsg(L_INFO, "reload requested (SIGHUP) while gen %u is starting; queued", s->number);
		hw.reload.pending = true;
		hw.status_dirty = true;
		return;
	}
	logmsg(L_INFO, "reload requested (SIGHUP)");
	start_reload();
}

static void request_shutdown(int sig)
{
	struct generation *cur = current_gen(), *g = cur ? cur : starting_gen();

	if (hw.state == HW_STOPPING) {
		if (!hw.cfg.kill_at_exit) /* exiting anyway, waiting for a failed generation: now */
			exit_now(hw.exit.status);
		logmsg(L_DEBUG, "%s received again; already shutting down", signame(sig));
		return;
	}
	if (!hw.cfg.kill_at_exit) {
		if (g)
			logmsg(L_INFO, "%s received; exiting, leaving gen %u pid %d running", signame(sig),
			       g->number, (int)g->pid);
		else
			logmsg(L_INFO, "%s received; exiting", signame(sig));
		exit_now(0);
	}
	logmsg(L_INFO, "%s received; stopping all generations", signame(sig));
	/* The current generation's status; one that already died while a replacement started has it. */
	hw.exit.final_gen = cur || !hw.exit.lost_current ? g : NULL;
	begin_shutdown(BY_SIGNAL, hw.exit.final_gen ? 0 : hw.exit.lost_status);
}

static void forward(int sig)
{
	struct generation *cur = current_gen(), *g = cur ? cur : starting_gen();

	if (!g) {
		logmsg(L_WARNING, "%s received but no generation runs; not forwarded", signame(sig));
		return;
	}
	logmsg(L_INFO, "forwarding %s to gen %u pid %d", signame(sig), g->number, (int)g->pid);
	if (kill(g->pid, sig) && errno != ESRCH)
		logmsg(L_WARNING, "cannot forward %s to pid %d: %s", signame(sig), (int)g->pid, strerror(errno));
}

/* ---- handover: hupwatch --upgrade ------------------------------------------------------- */

/*
 * A self-upgrade re-executes hupwatch's binary (the file at the path it started from, so a new
 * package's) in the same process: same pid, the same children, the same open sockets. What the
 * new image must know is written to a memfd as a versioned record, one item a line; descriptors
 * it names lose close-on-exec for that exec only. A binary that cannot read the record (another
 * version) gives it back to the old binary, kept open since start-up, which goes on.
 */

/*
 * A --reload or --upgrade client sends its SIGHUP by sigqueue(3) with a value: the kind in the
 * top byte, the count of that kind it read in the status file before sending in the rest. A
 * client sends it again until the status file counts it; the same sender and value taken twice
 * is one request.
 */
#define REQUEST_RELOAD 'r'
#define REQUEST_UPGRADE 'u'
#define REQUEST_VALUE(kind, count) ((int)(((unsigned)(kind) << 24) | ((count) & 0xffffffu)))
#define REQUEST_KIND(value) ((unsigned)(value) >> 24)

/* One token: printable, no spaces; anything else as %XX. */
static void put_text(FILE *f, const char *s)
{
	fputc(' ', f);
	if (!s || !*s) {
		fputc('-', f);
		return;
	}
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= ' ' || c == '%' || c == '-' || c >= 0x7f)
			fprintf(f, "%%%02x", c);
		else
			fputc(c, f);
	}
}

/* What put_text wrote, back; NULL for '-'. */
static char *get_text(const char *tok)
{
	size_t len = strlen(tok), at = 0;
	char *out;

	if (strcmp(tok, "-") == 0)
		return NULL;
	out = xmalloc(len + 1);
	for (size_t i = 0; i < len; i++) {
		if (tok[i] == '%' && i + 2 < len + 1 && isxdigit((unsigned char)tok[i + 1]) &&
		    isxdigit((unsigned char)tok[i + 2])) {
			char hex[3] = { tok[i + 1], tok[i + 2], '\0' };

			out[at++] = (char)strtoul(hex, NULL, 16);
			i += 2;
		} else
			out[at++] = tok[i];
	}
	out[at] = '\0';
	return out;
}

static void write_generation(FILE *f, const struct generation *g)
{
	fprintf(f, "G %u %d %d %" PRId64 " %" PRId64 " %" PRId64 " %d %d %d %d %d %d %d %d %" PRId64 " %llu %d %d",
		g->number, (int)g->pid, (int)g->state, g->spawned_at, g->stop_at, g->kill_at, g->killed, g->exec_fd,
		g->fallback, g->main_exited, g->main_status, g->notified, g->probe_ok, (int)g->probe_pid, g->probe_next,
		g->starttime, g->adopted, g->pidfd);
	put_text(f, g->dir);
	/* What it owns besides its processes, and where its readiness stands (a try in flight is not carried). */
	fprintf(f, "\ng %d %d %d %d %" PRId64 " %" PRId64 " %" PRId64, g->own.notify_fd, g->own.probe_fd, g->http_ok,
		g->unhealthy, g->http_next, g->settle_end, g->watchdog_at);
	put_text(f, g->own.notify_path);
	put_text(f, g->own.probe_address);
	put_text(f, g->own.probe_path);
	fputc('\n', f);
	if (g->leftovers) /* a line of its own: a binary that knows none skips it, and only it */
		fputs("l\n", f);
}

static void write_handover(FILE *f)
{
	fprintf(f, "hupwatch-state %d %s\n", HANDOVER_VERSION, VERSION);
	fprintf(f, "S %d %u %llu %d %d %d %u %d %d %u\n", (int)hw.state, hw.last_number, hw.starttime,
		hw.files.pid_written, hw.files.status_written, hw.exit.status,
		hw.exit.final_gen ? hw.exit.final_gen->number : 0, hw.exit.lost_current, hw.exit.lost_status,
		hw.upgrade.requests);
	fprintf(f, "R %d %u %u %u %d %u %" PRId64, hw.reload.pending, hw.reload.requests, hw.reload.count,
		hw.reload.covers, (int)hw.reload.state, hw.reload.generation, hw.reload.started);
	put_text(f, hw.reload.reason);
	fprintf(f, "\nP %" PRId64 " %u %u", hw.respawn.at, hw.respawn.attempts, hw.respawn.count);
	put_text(f, hw.respawn.last_good_dir);
	/* --respawn-limit's count: an upgrade in a crash loop must not make it start over. */
	fprintf(f, "\np %u", hw.respawn.nfailures);
	for (size_t i = 0; i < COUNT(hw.respawn.failures); i++)
		if (hw.respawn.failures[i])
			fprintf(f, "\nf %zu %" PRId64, i, hw.respawn.failures[i]);
	fprintf(f, "\nF %d %d", hw.files.lock_fd, hw.self.exe_fd);
	put_text(f, hw.runtime_dir);
	put_text(f, hw.upstream.name);
	put_text(f, hw.workdir);
	put_text(f, hw.self.exe);
	fputc('\n', f);
	fprintf(f, "W %" PRId64 " %" PRId64 "\n", hw.upstream.watchdog, hw.upstream.watchdog_next);
	for (size_t k = 0; k < COUNT(hw.taken); k++) { /* oldest first: an upgrade client may send again */
		const struct request_id *r = &hw.taken[(hw.ntaken + k) % COUNT(hw.taken)];

		if (r->pid > 0)
			fprintf(f, "H %d %d\n", (int)r->pid, r->value);
	}
	for (size_t i = 0; i < hw.sock.n; i++) {
		fprintf(f, "L %d", hw.sock.list[i].fd);
		put_text(f, hw.sock.list[i].name);
		put_text(f, hw.sock.list[i].label);
		put_text(f, hw.sock.list[i].unix_path);
		fputc('\n', f);
	}
	for (const struct generation *g = hw.gens; g; g = g->next) /* newest first; read back in reverse */
		write_generation(f, g);
	fputs("end\n", f);
}

/* Every descriptor the record names: kept open across the exec (inherit) or not. */
static void mark_handover_fds(bool inherit)
{
	int fds[3] = { hw.files.lock_fd, hw.self.exe_fd, hw.upgrade.fd };

	for (size_t i = 0; i < COUNT(fds); i++)
		if (fds[i] >= 0)
			(void)fcntl(fds[i], F_SETFD, inherit ? 0 : FD_CLOEXEC);
	for (size_t i = 0; i < hw.sock.n; i++)
		(void)fcntl(hw.sock.list[i].fd, F_SETFD, inherit ? 0 : FD_CLOEXEC);
	for (const struct generation *g = hw.gens; g; g = g->next) {
		int own[] = { g->exec_fd, g->pidfd, g->own.notify_fd, g->own.probe_fd };

		for (size_t i = 0; i < COUNT(own); i++)
			if (own[i] >= 0)
				(void)fcntl(own[i], F_SETFD, inherit ? 0 : FD_CLOEXEC);
	}
}

static void upgrade_failed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void upgrade_failed(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(hw.upgrade.reason, sizeof(hw.upgrade.reason), fmt, ap);
	va_end(ap);
	hw.upgrade.state = RELOAD_FAILED;
	logmsg(L_ERROR, "upgrade failed: %s; hupwatch %s goes on", hw.upgrade.reason, VERSION);
	hw.status_dirty = true;
}

/*
 * Does the file at our path run at all? `FILE --version` runs while the loop goes on, and must
 * print "hupwatch X (handover N)" within UPGRADE_CHECK_LIMIT. A missing, corrupt or foreign file
 * is found so, while this process still has its own image. Its exit comes as SIGCHLD.
 */
static int start_binary_check(nsec_t t)
{
	int pipefd[2];
	struct stat st;
	pid_t pid;

	if (stat(hw.self.exe, &st) || pipe2(pipefd, O_CLOEXEC))
		return -1;
	hw.upgrade.check_dev = st.st_dev;
	hw.upgrade.check_ino = st.st_ino;
	pid = fork();
	if (pid == 0) {
		setpgid(0, 0); /* a group of its own: what it starts is killed with it */
		reset_signals();
		dup2(pipefd[1], STDOUT_FILENO);
		execl(hw.self.exe, hw.self.exe, "--version", (char *)NULL);
		_exit(EXIT_CANNOT_EXEC);
	}
	close(pipefd[1]);
	if (pid < 0) {
		close(pipefd[0]);
		return -1;
	}
	(void)setpgid(pid, pid);
	(void)fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
	hw.upgrade.check_pid = pid;
	hw.upgrade.check_fd = pipefd[0];
	hw.upgrade.check_until = t + UPGRADE_CHECK_LIMIT;
	hw.upgrade.check_killed = false;
	return 0;
}

/* Pure: what a new binary's --version says of it: 0 it can take over, -1 it is no hupwatch, -2 it predates --upgrade. */
static int judge_new_binary(int wstatus, const char *version)
{
	if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0 || strncmp(version, "hupwatch ", 9) != 0)
		return -1;
	return strstr(version, " (handover ") ? 0 : -2;
}

/* The record in a memfd, named in the environment for the new image; -1 if it cannot be made. */
static int prepare_handover(void)
{
	char num[24];
	FILE *f;
	int fd = (int)syscall(SYS_memfd_create, "hupwatch-state", 0U);

	if (fd < 0)
		return -1;
	f = fdopen(dup(fd), "w");
	if (!f) {
		close(fd);
		return -1;
	}
	write_handover(f);
	if (fclose(f) || lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return -1;
	}
	hw.upgrade.fd = fd;
	snprintf(num, sizeof(num), "%d", fd);
	setenv("HUPWATCH_STATE_FD", num, 1);
	snprintf(num, sizeof(num), "%d", hw.self.exe_fd);
	setenv("HUPWATCH_OLD_EXE_FD", num, 1);
	return 0;
}

/* --upgrade asked for: counted at once, then the new binary is checked (the loop going on meanwhile). */
static void request_upgrade(void)
{
	hw.upgrade.requests++;
	hw.upgrade.state = RELOAD_IN_PROGRESS;
	hw.upgrade.reason[0] = '\0';
	write_status(); /* counted: a client waiting for it does not send it again */
	if (hw.upgrade.check_pid > 0 || hw.upgrade.checked) {
		logmsg(L_INFO, "upgrade requested while the new binary is being checked; that upgrade answers both");
		return;
	}
	logmsg(L_INFO, "upgrade requested: re-executing %s", hw.self.exe ? hw.self.exe : "?");
	if (hw.state == HW_STOPPING)
		upgrade_failed("hupwatch is shutting down");
	else if (!hw.self.exe || start_binary_check(now()))
		upgrade_failed("'%s' does not run as hupwatch (%s)", hw.self.exe ? hw.self.exe : "?",
			       hw.self.exe ? strerror(errno) : "its path is unknown");
}

/* The check's process has exited: what it printed is in the pipe. run_due_upgrade() goes on. */
static void binary_check_exited(int wstatus)
{
	ssize_t n = read(hw.upgrade.check_fd, hw.upgrade.version, sizeof(hw.upgrade.version) - 1);

	close(hw.upgrade.check_fd);
	hw.upgrade.check_fd = -1;
	kill(-hw.upgrade.check_pid, SIGKILL); /* what it left running, if anything */
	hw.upgrade.check_pid = 0;
	hw.upgrade.version[n > 0 ? n : 0] = '\0';
	hw.upgrade.version[strcspn(hw.upgrade.version, "\n")] = '\0';
	hw.upgrade.check_status = wstatus;
	hw.upgrade.checked = true;
}

/* What the check found, said as the upgrade's failure when it is one; true if the file may be executed. */
static bool new_binary_fits(const char *version)
{
	int verdict = judge_new_binary(hw.upgrade.check_status, version);
	struct stat st;

	if (hw.state == HW_STOPPING)
		upgrade_failed("hupwatch is shutting down");
	else if (verdict == -1 && hw.upgrade.check_killed)
		upgrade_failed("'%s' does not run as hupwatch ('--version' did not answer within %.0fs)", hw.self.exe,
			       seconds(UPGRADE_CHECK_LIMIT));
	else if (verdict == -1)
		upgrade_failed("'%s' does not run as hupwatch ('--version' failed)", hw.self.exe);
	else if (verdict == -2) /* 1.0.0: it would start afresh, find its addresses in use, and exit */
		upgrade_failed("%s at '%s' predates --upgrade: it cannot take over what runs", version, hw.self.exe);
	else if (stat(hw.self.exe, &st) || st.st_dev != hw.upgrade.check_dev || st.st_ino != hw.upgrade.check_ino)
		upgrade_failed("'%s' was replaced while it was checked; nothing was executed", hw.self.exe);
	else
		return true;
	return false;
}

/* The new binary was checked: hand over and exec it. Returns only if that failed. */
static void hand_over(void)
{
	char *version = hw.upgrade.version, *mark;

	if (!new_binary_fits(version))
		return;
	if ((mark = strstr(version, " (handover ")))
		*mark = '\0'; /* "hupwatch X.Y.Z" */
	for (struct generation *g = hw.gens; g; g = g->next)
		if (g->drain_end) /* the handover record has no drain: its stop signal now */
			end_drain(g);
	write_status(); /* upgrade_state=in-progress, for the new image to carry on */
	if (prepare_handover()) {
		upgrade_failed("cannot write the handover record: %s", strerror(errno));
		return;
	}
	logmsg(L_INFO, "handing over to %s", version);
	mark_handover_fds(true);
	execv(hw.self.exe, hw.self.argv);
	mark_handover_fds(false);
	close(hw.upgrade.fd);
	hw.upgrade.fd = -1;
	unsetenv("HUPWATCH_STATE_FD");
	unsetenv("HUPWATCH_OLD_EXE_FD");
	upgrade_failed("cannot execute '%s': %s", hw.self.exe, strerror(errno));
}

/* A check past its limit is killed (its exit then comes as SIGCHLD); a finished one is acted on. */
static void run_due_upgrade(nsec_t t)
{
	if (hw.upgrade.check_pid > 0 && !hw.upgrade.check_killed && t >= hw.upgrade.check_until) {
		kill(-hw.upgrade.check_pid, SIGKILL);
		hw.upgrade.check_killed = true;
	}
	if (hw.upgrade.checked) {
		hw.upgrade.checked = false;
		hand_over();
	}
}

/* ---- events ------------------------------------------------------------------------------- */

/* The checks due for g now: the ready command while starting, an HTTP try while starting or settling. */
static void start_probes(struct generation *g, nsec_t t)
{
	bool starting = g->state == GEN_STARTING;

	if (starting && hw.cfg.ready_cmd && g->exec_fd < 0 && !g->probe_ok && g->probe_pid <= 0 &&
	    t >= g->probe_next)
		run_probe(g, t);
	if (hw.cfg.ready_http && g->exec_fd < 0 && g->http.fd < 0 && !(starting && g->http_ok) && t >= g->http_next)
		http_start(g, t);
}

/* STARTING or SETTLING: what judge() says of it now. */
static void check_starting(nsec_t t)
{
	struct generation *g = starting_gen();
	const char *how;
	nsec_t next;
	char reason[256];

	if (!g || hw.state == HW_STOPPING)
		return;
	if (g->http.fd >= 0 && t >= g->http.deadline)
		http_timed_out(g, t);
	switch (judge(g, &hw.cfg, t, &next, &how)) {
	case READY:
		if (g->state == GEN_SETTLING)
			become_current(g, t);
		else
			become_ready(g, t, how);
		return;
	case TIMED_OUT:
		snprintf(reason, sizeof(reason), "not ready after %.2fs%s%s%s", seconds(t - g->spawned_at),
			 g->http_last[0] ? " (last " : "", g->http_last, g->http_last[0] ? ")" : "");
		fail_starting(g, reason, EXIT_NOT_READY, t);
		return;
	case UNHEALTHY:
		snprintf(reason, sizeof(reason), "stopped answering while settling: %s", g->http_last);
		fail_starting(g, reason, EXIT_NOT_READY, t);
		return;
	case NOT_YET:
		start_probes(g, t);
	}
}

/* The exec pipe of a starting generation spoke (or closed). */
static void exec_reported(struct generation *g, nsec_t t)
{
	char why[512];
	int status;

	if (read_exec_pipe(g, why, sizeof(why), &status) == EXEC_FAILED && g->state == GEN_STARTING)
		fail_starting(g, why, status, t);
}

/*
 * A generation that sends WATCHDOG=1 (with --notify under a watchdog it gets WATCHDOG_USEC of its
 * own) is hung when a whole interval passes without one: while it starts or serves, not while it
 * drains.
 */
static nsec_t hung_at(const struct generation *g)
{
	if (!hw.upstream.watchdog || !g->watchdog_at || (g->state != GEN_STARTING && g->state != GEN_CURRENT))
		return NEVER;
	return g->watchdog_at + hw.upstream.watchdog;
}

/*
 * A hung starting generation fails, as one never ready does. A hung current one is the service
 * down with hupwatch still running: the service manager is asked to act as on its own watchdog's
 * timeout (WATCHDOG=trigger: WatchdogSignal= to hupwatch, then what Restart= says), and hupwatch
 * stops pinging.
 */
static void check_hung(nsec_t t)
{
	for (struct generation *g = hw.gens; g; g = g->next) {
		char reason[64];

		if (t < hung_at(g))
			continue;
		snprintf(reason, sizeof(reason), "hung: no WATCHDOG=1 for %.2fs", seconds(t - g->watchdog_at));
		g->watchdog_at = 0;
		if (g->state == GEN_STARTING) {
			fail_starting(g, reason, EXIT_NOT_READY, t);
			return;
		}
		logmsg(L_ERROR, "gen %u pid %d %s; asking the service manager to act (WATCHDOG=trigger)", g->number,
		       (int)g->pid, reason);
		upstream_send("STATUS=gen %u pid %d %s\nWATCHDOG=trigger", g->number, (int)g->pid, reason);
		hw.upstream.watchdog = 0;
		return;
	}
}

static void check_stopping(nsec_t t)
{
	for (struct generation *g = hw.gens, *next; g; g = next) {
		next = g->next;
		if (g->drain_end && t >= g->drain_end)
			end_drain(g);
		if (t < g->kill_at || (g->state != GEN_STOPPING && g->state != GEN_FAILED))
			continue;
		if (!g->killed) {
			logmsg(L_WARNING, "gen %u pid %d still running after stop timeout %.2fs; sending SIGKILL "
			       "to its process group", g->number, (int)g->pid, seconds(t - g->stop_at));
			kill_group(g, t);
		} else {
			logmsg(L_ERROR, "gen %u: its process group %d is still there %.2fs after SIGKILL; no longer "
			       "waiting for it", g->number, (int)g->pid, seconds(KILL_GRACE));
			remove_generation(g);
		}
	}
}

/* A generation is gone once its whole process group is. */
static void end_if_gone(struct generation *g)
{
	if (!g->main_exited || group_alive(g))
		return;
	if (g->leftovers)
		logmsg(L_INFO, "gen %u gone: what it left in process group %d has ended", g->number, (int)g->pid);
	remove_generation(g);
}

/* STARTING or SETTLING, main exited: it never became current. What the exec pipe says comes first. */
static void starting_exited(struct generation *g, const char *desc, int code, nsec_t t)
{
	char why[512];
	int status = code;

	if (g->exec_fd < 0 || read_exec_pipe(g, why, sizeof(why), &status) != EXEC_FAILED) {
		snprintf(why, sizeof(why), "%s %s", desc, g->state == GEN_SETTLING ? "while settling" : "before ready");
		status = code;
	}
	fail_starting(g, why, status, t);
}

/* CURRENT, main exited on its own: what it left is killed; a starting one may still take over. */
static void current_exited(struct generation *g, const char *desc, int code, nsec_t t)
{
	const struct generation *s = starting_gen();

	kill_group(g, t); /* say the workers of a crashed master: they hold the sockets, serve no one */
	set_state(g, GEN_STOPPING, t);
	if (s) {
		logmsg(L_ERROR, "gen %u pid %d %s; gen %u may still take over", g->number, (int)g->pid, desc, s->number);
		hw.exit.lost_current = true;
		hw.exit.lost_status = code;
		enter(HW_STARTING);
		return;
	}
	if (hw.cfg.respawn)
		logmsg(L_ERROR, "gen %u pid %d %s", g->number, (int)g->pid, desc);
	if (schedule_respawn(code, t))
		return;
	logmsg(L_ERROR, "gen %u pid %d %s; exiting with status %d", g->number, (int)g->pid, desc,
	       hw.exit.lost_current ? hw.exit.lost_status : code);
	begin_shutdown(SERVICE_DOWN, code);
}

/* STOPPING or FAILED, main exited: the rest of its group gets the stop signal too. */
static void stopping_exited(struct generation *g, const char *desc)
{
	logmsg(L_INFO, "gen %u pid %d %s after draining %.2fs", g->number, (int)g->pid, desc,
	       seconds(now() - g->stop_at));
	if (group_alive(g) && !g->killed) {
		logmsg(L_INFO, "gen %u: stopping what is left in its process group (%s)", g->number,
		       signame(hw.cfg.stop_signal));
		signal_stop(-g->pid);
	}
}

static void main_exited(struct generation *g, int wstatus)
{
	int code = exit_code(wstatus);
	nsec_t t = now();
	char desc[80];

	describe_status(wstatus, desc, sizeof(desc));
	if (g->adopted) { /* not our child: asked to stop, it did (0); on its own, it failed (125) */
		snprintf(desc, sizeof(desc), "ended (adopted: its exit status is not ours to know)");
		code = g->state == GEN_STOPPING || g->state == GEN_FAILED ? 0 : EXIT_FAILURE_OWN;
	}
	kill_probe(g);
	g->main_exited = true;
	g->main_status = wstatus;
	if (g == hw.exit.final_gen)
		hw.exit.status = code;
	switch (g->state) {
	case GEN_STARTING:
	case GEN_SETTLING:
		starting_exited(g, desc, code, t);
		break;
	case GEN_CURRENT:
		current_exited(g, desc, code, t);
		break;
	case GEN_STOPPING:
	case GEN_FAILED:
		stopping_exited(g, desc);
		break;
	}
	g->leftovers = group_alive(g);
}

static void probe_exited(struct generation *g, int wstatus)
{
	char desc[64];

	g->probe_pid = 0;
	if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
		g->probe_ok = true;
		return;
	}
	describe_status(wstatus, desc, sizeof(desc));
	logmsg(L_DEBUG, "gen %u: ready command %s", g->number, desc);
}

/* Whose child pid was: a generation's main process, its ready command, or neither. */
static bool child_exited(pid_t pid, int wstatus)
{
	if (pid == hw.upgrade.check_pid) {
		binary_check_exited(wstatus);
		return true;
	}
	for (struct generation *g = hw.gens; g; g = g->next) {
		if (g->pid == pid && !g->main_exited) {
			main_exited(g, wstatus);
			return true;
		}
		if (g->probe_pid == pid) {
			probe_exited(g, wstatus);
			return true;
		}
	}
	return false;
}

/* An adopted generation's main process has exited (its pidfd said so); no SIGCHLD comes for it. */
static void adopted_exited(struct generation *g)
{
	main_exited(g, 0);
	end_if_gone(g);
}

/* What adopted generations left in their groups dies without a word to us: look now and then. */
static void check_adopted(void)
{
	for (struct generation *g = hw.gens, *next; g; g = next) {
		next = g->next;
		if (g->adopted && g->main_exited)
			end_if_gone(g);
	}
}

static void reap(void)
{
	int wstatus;
	pid_t pid;

	while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0)
		if (!child_exited(pid, wstatus)) {
			char desc[64];

			describe_status(wstatus, desc, sizeof(desc));
			logmsg(L_DEBUG, "reaped orphan pid %d (%s)", (int)pid, desc);
		}
	for (struct generation *g = hw.gens, *next; g; g = next) {
		next = g->next;
		end_if_gone(g);
	}
}

/* True if this client request was taken already (it was sent again); else remembers it. */
static bool taken_before(pid_t pid, int value)
{
	unsigned kind = REQUEST_KIND(value);

	if (kind != REQUEST_RELOAD && kind != REQUEST_UPGRADE)
		return false;
	for (size_t i = 0; i < COUNT(hw.taken); i++)
		if (hw.taken[i].pid == pid && hw.taken[i].value == value && pid > 0)
			return true;
	hw.taken[hw.ntaken++ % COUNT(hw.taken)] = (struct request_id){ pid, value };
	return false;
}

static void handle_signal(const struct signalfd_siginfo *si)
{
	switch (si->ssi_signo) {
	case SIGCHLD:
		reap();
		break;
	case SIGHUP:
		if (si->ssi_code == SI_QUEUE && taken_before((pid_t)si->ssi_pid, si->ssi_int))
			logmsg(L_DEBUG, "SIGHUP from pid %d sent again; its request was taken already", (int)si->ssi_pid);
		else if (si->ssi_code == SI_QUEUE && REQUEST_KIND(si->ssi_int) == REQUEST_UPGRADE)
			request_upgrade();
		else
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
 * A message hupwatch does not take. While g is starting that may be why it never gets ready,
 * so it is a warning then (rate-limited like every drop), else a debug line.
 */
static void drop_notify(const struct generation *g, pid_t pid, const char *why)
{
	hw.notify.drops.level = g->state == GEN_STARTING ? L_WARNING : L_DEBUG;
	if (ratelimit_allow(&hw.notify.drops, now()))
		logmsg(hw.notify.drops.level, "dropped notify message from pid %d: %s (on gen %u's socket)", (int)pid,
		       why, g->number);
}

/* Descriptors sent along (an fd store is not ours to keep) are closed; the sender comes back. */
static pid_t message_sender(struct msghdr *msg)
{
	pid_t pid = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred cred;

			memcpy(&cred, CMSG_DATA(c), sizeof(cred));
			pid = cred.pid;
		} else if (c->cmsg_type == SCM_RIGHTS) {
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
				close(fd);
			}
		}
	}
	return pid;
}

/* One datagram from pid on g's socket, checked and credited to g. */
static void take_notify(struct generation *g, pid_t pid, const char *buf, size_t n, bool truncated)
{
	struct notify_msg m;

	if (pid <= 0) {
		drop_notify(g, 0, "no sender credentials");
		return;
	}
	if (truncated) {
		drop_notify(g, pid, "oversized");
		return;
	}
	if (!sender_in(g, pid)) {
		drop_notify(g, pid, "not from that generation");
		return;
	}
	if (parse_notify(buf, n, &m)) {
		drop_notify(g, pid, "malformed");
		return;
	}
	if (m.has_status && ratelimit_allow(&g->status_lines, now()))
		logmsg(L_INFO, "gen %u pid %d status: %s", g->number, (int)g->pid, m.status);
	if (m.watchdog)
		g->watchdog_at = now();
	if (m.ready && g->state == GEN_STARTING)
		g->notified = true;
	else if (m.ready)
		logmsg(L_DEBUG, "READY=1 from gen %u pid %d ignored: not starting", g->number, (int)g->pid);
}

static void read_notify(struct generation *g)
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
		ssize_t n = recvmsg(g->own.notify_fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);

		if (n < 0)
			return;
		take_notify(g, message_sender(&msg), buf, (size_t)n,
			    (size_t)n > sizeof(buf) || (msg.msg_flags & MSG_TRUNC));
	}
}

/* The nearest thing due: the starting (or settling) generation's verdict, a SIGKILL, a rate-limit count, a watchdog ping. */
static nsec_t next_deadline(void)
{
	struct generation *s = starting_gen();
	nsec_t next = ratelimit_due(&hw.notify.drops), n;

	if (watchdog_due() < next)
		next = watchdog_due();
	const char *how;

	if (hw.respawn.at < next && hw.state != HW_STOPPING)
		next = hw.respawn.at;
	if (hw.upgrade.check_pid > 0 && !hw.upgrade.check_killed && hw.upgrade.check_until < next)
		next = hw.upgrade.check_until;
	if (s && hw.state != HW_STOPPING) {
		judge(s, &hw.cfg, now(), &n, &how);
		if (n < next)
			next = n;
	}
	for (const struct generation *g = hw.gens; g; g = g->next) {
		if ((g->state == GEN_STOPPING || g->state == GEN_FAILED) && g->kill_at < next)
			next = g->kill_at;
		if (g->drain_end && g->drain_end < next)
			next = g->drain_end;
		if (ratelimit_due(&g->status_lines) < next)
			next = ratelimit_due(&g->status_lines);
		if (g->adopted && g->main_exited && now() + NSEC_PER_SEC / 10 < next)
			next = now() + NSEC_PER_SEC / 10; /* check_adopted(): only while such a group lasts */
		if (hung_at(g) < next)
			next = hung_at(g);
	}
	return next;
}

static void flush_ratelimits(nsec_t t)
{
	ratelimit_flush(&hw.notify.drops, t);
	for (struct generation *g = hw.gens; g; g = g->next)
		ratelimit_flush(&g->status_lines, t);
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
	hw.files.pid_written = true;
	return 0;
}

static int setup_files(void)
{
	const struct config *c = &hw.cfg;

	if (c->pid_file && check_own_file("--pid-file", c->pid_file, PID_FILE))
		return -1;
	if (c->status_file && (lock_status_file(c->status_file) ||
			       check_own_file("--status-file", c->status_file, STATUS_FILE)))
		return -1;
	return 0;
}

/*
 * Was pid started by a hupwatch as generation number? Its environment says (HUPWATCH_GENERATION,
 * set before its exec): 1 yes, 0 no, -1 cannot tell (another user's, or not dumpable). A status
 * file is only a file: forged, or copied from elsewhere, it may name any process with its true
 * start time.
 */
static int started_as_generation(pid_t pid, unsigned number)
{
	char path[64], want[48];
	size_t size = 0, got = 0, wlen;
	char *buf = NULL;
	int fd, found = 0;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	wlen = (size_t)snprintf(want, sizeof(want), "HUPWATCH_GENERATION=%u", number) + 1; /* with its NUL */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == EACCES || errno == EPERM ? -1 : 0;
	for (ssize_t n = 1; n > 0 && size < (4U << 20);) {
		size_t want_size = got == size ? (size ? 2 * size : 8192) : size;
		char *more = want_size != size ? realloc(buf, want_size) : buf;

		if (!more)
			break; /* what was read so far is looked at */
		buf = more;
		size = want_size;
		n = read(fd, buf + got, size - got);
		if (n < 0 && (errno == EACCES || errno == EPERM))
			found = -1;
		got += n > 0 ? (size_t)n : 0;
	}
	close(fd);
	for (size_t at = 0; found == 0 && at < got; at += strnlen(buf + at, got - at) + 1)
		found = got - at >= wlen && memcmp(buf + at, want, wlen) == 0;
	free(buf);
	return found;
}

/* One NUMBER:PID:STARTTIME:STATE of a predecessor's generations= list, if that process still is it. */
static void add_orphan(char *item)
{
	char *f[4], *save = NULL;
	long long number, pid, start;
	size_t n = 0;

	for (char *p = strtok_r(item, ":", &save); p && n < COUNT(f); p = strtok_r(NULL, ":", &save))
		f[n++] = p;
	if (n != 4 || parse_number(f[0], UINT_MAX, &number) || parse_number(f[1], INT_MAX, &pid) ||
	    parse_number(f[2], LLONG_MAX, &start) || start == 0 || hw.takeover.n >= COUNT(hw.takeover.list))
		return;
	if (process_starttime((pid_t)pid) != (unsigned long long)start)
		return; /* gone, or another process has its pid now: never ours to signal */
	if (started_as_generation((pid_t)pid, (unsigned)number) == 0) {
		logmsg(L_WARNING, "the status file names pid %lld as gen %lld, but no hupwatch started it: left alone",
		       pid, number);
		return;
	}
	hw.takeover.list[hw.takeover.n++] = (struct orphan){ (unsigned)number, (pid_t)pid,
		strcmp(f[3], "current") == 0 ? GEN_CURRENT : strcmp(f[3], "starting") == 0 ? GEN_STARTING : GEN_STOPPING };
}

/*
 * The status file we now hold the claim on says a hupwatch was running: it died without cleaning
 * up, and what it ran may still be running.
 */
static void find_orphans(void)
{
	char buf[4096], *item, *save = NULL;
	struct status_info st;
	ssize_t n = hw.cfg.status_file ? read_file(hw.cfg.status_file, buf, sizeof(buf)) : -1;

	if (n <= 0 || parse_status(buf, (size_t)n, &st) || st.state == HW_EXITED || st.pid == getpid())
		return;
	for (item = strtok_r(st.generations, ",", &save); item; item = strtok_r(NULL, ",", &save))
		add_orphan(item);
	if (hw.takeover.n)
		logmsg(L_WARNING, "hupwatch pid %ld died without cleaning up; %zu of its generations still run",
		       st.pid, hw.takeover.n);
	hw.reload.requests = st.requests; /* so that a --reload that was waiting does not take ours for its own */
	hw.reload.count = st.reload;
}

/*
 * With their sockets taken, the predecessor's generations are ours: the current one serves until
 * generation 1 of ours is ready, then is stopped like any replaced generation. They are not our
 * children: a pidfd tells when each exits, its status unknown.
 */
static void adopt_orphans(void)
{
	nsec_t t = now();

	if (!hw.takeover.taken || hw.takeover.stopped)
		return;
	for (size_t i = hw.takeover.n; i-- > 0;) {
		const struct orphan *o = &hw.takeover.list[i];
		struct generation *g = xmalloc(sizeof(*g));

		*g = (struct generation){ .number = o->number, .pid = o->pid, .state = GEN_CURRENT, .spawned_at = t,
					  .kill_at = NEVER, .exec_fd = -1, .adopted = true, .own = no_sockets, .http = { .fd = -1 },
					  .pidfd = (int)syscall(SYS_pidfd_open, o->pid, 0U),
					  .starttime = process_starttime(o->pid) };
		snprintf(g->status_lines.what, sizeof(g->status_lines.what), "gen %u STATUS", g->number);
		g->next = hw.gens;
		hw.gens = g;
		if (o->number > hw.last_number)
			hw.last_number = o->number;
		if (o->state != GEN_CURRENT || g->pidfd < 0)
			set_state(g, o->state == GEN_STARTING ? GEN_FAILED : GEN_STOPPING, t);
		else
			logmsg(L_INFO, "adopted gen %u pid %d: it serves until a new generation is ready", g->number,
			       (int)g->pid);
	}
	if (current_gen())
		hw.state = HW_RUNNING;
}

static int setup(void)
{
	if (setup_files() || setup_signals() || resolve_workdir())
		return -1;
	/* Adopt the orphans of our children, so none is left a zombie (also as PID 1). */
	if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1))
		logmsg(L_WARNING, "cannot become a child subreaper: %s", strerror(errno));
	take_activated_sockets();
	find_orphans();
	if (open_listeners() || ((hw.cfg.notify || has_probe(&hw.cfg)) && make_runtime_dir()))
		return -1;
	adopt_orphans();
	join_fdnames();
	upstream_init();
	store_listeners();
	hw.starttime = process_starttime(getpid());
	snprintf(hw.notify.drops.what, sizeof(hw.notify.drops.what), "dropped notify");
	return 0;
}

/* ---- resuming after an upgrade ------------------------------------------------------------- */

/* Up to max space-separated tokens of line (modified in place); how many. */
static size_t split_tokens(char *line, char **tok, size_t max)
{
	size_t n = 0;
	char *save = NULL;

	for (char *p = strtok_r(line, " ", &save); p && n < max; p = strtok_r(NULL, " ", &save))
		tok[n++] = p;
	return n;
}

static long long record_number(const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end) {
		logmsg(L_ERROR, "cannot resume: bad number '%s' in the handover record", s);
		exit(EXIT_FAILURE_OWN);
	}
	return v;
}

static void resume_generation(char **t, size_t n)
{
	struct generation *g;

	if (n != 20)
		return;
	g = xmalloc(sizeof(*g));
	*g = (struct generation){ .number = (unsigned)record_number(t[1]), .pid = (pid_t)record_number(t[2]), .state = (enum gen_state)record_number(t[3]),
				  .spawned_at = record_number(t[4]), .stop_at = record_number(t[5]), .kill_at = record_number(t[6]), .killed = record_number(t[7]),
				  .exec_fd = (int)record_number(t[8]), .fallback = record_number(t[9]), .main_exited = record_number(t[10]),
				  .main_status = (int)record_number(t[11]), .notified = record_number(t[12]), .probe_ok = record_number(t[13]),
				  .probe_pid = (pid_t)record_number(t[14]), .probe_next = record_number(t[15]),
				  .starttime = (unsigned long long)record_number(t[16]), .adopted = record_number(t[17]),
				  .pidfd = (int)record_number(t[18]), .dir = get_text(t[19]),
				  .own = { .notify_fd = -1, .probe_fd = -1 }, .http = { .fd = -1 } };
	snprintf(g->status_lines.what, sizeof(g->status_lines.what), "gen %u STATUS", g->number);
	g->status_lines.level = L_INFO;
	if (g->exec_fd >= 0)
		(void)fcntl(g->exec_fd, F_SETFD, FD_CLOEXEC);
	if (g->pidfd >= 0)
		(void)fcntl(g->pidfd, F_SETFD, FD_CLOEXEC);
	/* The record lists the newest first: appending keeps that order. */
	struct generation **end = &hw.gens;

	while (*end)
		end = &(*end)->next;
	*end = g;
}

static void resume_files(char **t, size_t n)
{
	char *str;

	if (n != 7)
		return;
	hw.files.lock_fd = (int)record_number(t[1]);
	if ((int)record_number(t[2]) >= 0)
		close((int)record_number(t[2])); /* the old binary: this one runs now */
	hw.runtime_dir = get_text(t[3]);
	if ((str = get_text(t[4])))
		snprintf(hw.upstream.name, sizeof(hw.upstream.name), "%s", str);
	free(str);
	hw.workdir = get_text(t[5]);
	hw.self.exe = get_text(t[6]);
}

/* The generation read last: the "g" and "l" lines follow its "G" line. */
static struct generation *last_gen(void)
{
	struct generation *g = hw.gens;

	while (g && g->next)
		g = g->next;
	return g;
}

/* Its sockets and readiness. */
static void resume_owned(char **t, size_t n)
{
	struct generation *g = last_gen();

	if (!g || n != 11)
		return;
	g->own.notify_fd = (int)record_number(t[1]);
	g->own.probe_fd = (int)record_number(t[2]);
	g->http_ok = record_number(t[3]);
	g->unhealthy = record_number(t[4]);
	g->http_next = record_number(t[5]);
	g->settle_end = record_number(t[6]);
	g->watchdog_at = record_number(t[7]);
	g->own.notify_path = get_text(t[8]);
	g->own.probe_address = get_text(t[9]);
	g->own.probe_path = get_text(t[10]);
	g->own.probe_len = sizeof(g->own.probe_sa);
	if (g->own.probe_fd < 0 ||
	    getsockname(g->own.probe_fd, (struct sockaddr *)&g->own.probe_sa, &g->own.probe_len))
		g->own.probe_len = 0;
	for (int i = 0; i < 2; i++)
		if ((i ? g->own.probe_fd : g->own.notify_fd) >= 0)
			(void)fcntl(i ? g->own.probe_fd : g->own.notify_fd, F_SETFD, FD_CLOEXEC);
}

static void resume_state(char **t, size_t n)
{
	if (n != 11)
		return;
	hw.state = (enum hw_state)record_number(t[1]);
	hw.last_number = (unsigned)record_number(t[2]);
	hw.starttime = (unsigned long long)record_number(t[3]);
	hw.files.pid_written = record_number(t[4]);
	hw.files.status_written = record_number(t[5]);
	hw.exit.status = (int)record_number(t[6]);
	hw.upgrade.final_number = (unsigned)record_number(t[7]);
	hw.exit.lost_current = record_number(t[8]);
	hw.exit.lost_status = (int)record_number(t[9]);
	hw.upgrade.requests = (unsigned)record_number(t[10]);
}

static void resume_reload(char **t, size_t n)
{
	char *s;

	if (n != 9)
		return;
	hw.reload.pending = record_number(t[1]);
	hw.reload.requests = (unsigned)record_number(t[2]);
	hw.reload.count = (unsigned)record_number(t[3]);
	hw.reload.covers = (unsigned)record_number(t[4]);
	hw.reload.state = (enum reload_state)record_number(t[5]);
	hw.reload.generation = (unsigned)record_number(t[6]);
	hw.reload.started = record_number(t[7]);
	if ((s = get_text(t[8])))
		snprintf(hw.reload.reason, sizeof(hw.reload.reason), "%s", s);
	free(s);
}

/* The failures --respawn-limit counts: "p COUNT", then "f INDEX TIME" for each one of the ring. */
static void resume_failures(char **t, size_t n)
{
	long long i;

	if (strcmp(t[0], "p") == 0 && n == 2)
		hw.respawn.nfailures = (unsigned)record_number(t[1]);
	else if (strcmp(t[0], "f") == 0 && n == 3 && (i = record_number(t[1])) >= 0 &&
		 i < (long long)COUNT(hw.respawn.failures))
		hw.respawn.failures[i] = record_number(t[2]);
}

static void resume_line(char *line)
{
	char *t[24];
	size_t n = split_tokens(line, t, COUNT(t));

	if (n == 0)
		return;
	if (strcmp(t[0], "S") == 0)
		resume_state(t, n);
	else if (strcmp(t[0], "R") == 0)
		resume_reload(t, n);
	else if (strcmp(t[0], "P") == 0 && n == 5) {
		hw.respawn.at = record_number(t[1]);
		hw.respawn.attempts = (unsigned)record_number(t[2]);
		hw.respawn.count = (unsigned)record_number(t[3]);
		hw.respawn.last_good_dir = get_text(t[4]);
	} else if (strcmp(t[0], "p") == 0 || strcmp(t[0], "f") == 0)
		resume_failures(t, n);
	else if (strcmp(t[0], "F") == 0)
		resume_files(t, n);
	else if (strcmp(t[0], "L") == 0 && n == 5) {
		int fd = (int)record_number(t[1]);

		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		add_listener(fd, get_text(t[2]), get_text(t[3]), get_text(t[4]));
	} else if (strcmp(t[0], "G") == 0)
		resume_generation(t, n);
	else if (strcmp(t[0], "g") == 0)
		resume_owned(t, n);
	else if (strcmp(t[0], "l") == 0 && hw.gens)
		last_gen()->leftovers = true;
	else if (strcmp(t[0], "H") == 0 && n == 3)
		hw.taken[hw.ntaken++ % COUNT(hw.taken)] = (struct request_id){ (pid_t)record_number(t[1]),
									 (int)record_number(t[2]) };
	else if (strcmp(t[0], "W") == 0 && n == 3) {
		hw.upstream.watchdog = record_number(t[1]);
		hw.upstream.watchdog_next = record_number(t[2]);
	}
}

/* The record's version, from its first line; -1 if it is none. */
static int handover_version(const char *text)
{
	char *end;
	long n;

	if (strncmp(text, "hupwatch-state ", 15) != 0)
		return -1;
	n = strtol(text + 15, &end, 10);
	return end != text + 15 && *end == ' ' && n > 0 && n < 1000 ? (int)n : -1;
}

/* The whole record; its fd is closed. NULL if there is none or it cannot be read. */
static char *read_handover(void)
{
	const char *env = getenv("HUPWATCH_STATE_FD");
	size_t size = 1 << 20, got = 0;
	char *buf;
	long long fd;

	if (!env || parse_number(env, INT_MAX, &fd))
		return NULL;
	buf = xmalloc(size);
	for (ssize_t n; got < size - 1 && (n = pread((int)fd, buf + got, size - 1 - got, (off_t)got)) > 0;)
		got += (size_t)n;
	buf[got] = '\0';
	return buf;
}

/*
 * Before anything else, in a binary started by an upgrade: a record of a version this one cannot
 * read goes back to the old binary (still open, named in the environment), which takes it up again.
 */
static void refuse_unknown_handover(char **argv)
{
	char *text = read_handover(), why[128];
	const char *old = getenv("HUPWATCH_OLD_EXE_FD");
	long long fd;
	int v;

	if (!text)
		return;
	v = handover_version(text);
	free(text);
	if (v == HANDOVER_VERSION || !old || parse_number(old, INT_MAX, &fd))
		return;
	snprintf(why, sizeof(why), "hupwatch %s cannot read a version %d handover record", VERSION, v);
	setenv("HUPWATCH_UPGRADE_REFUSED", why, 1);
	fexecve((int)fd, argv, environ);
	logmsg(L_ERROR, "%s, and cannot go back to the old binary: %s", why, strerror(errno));
	exit(EXIT_FAILURE_OWN);
}

/* Take up the record: the generations, sockets, counters and files of the image before. */
static int resume(void)
{
	char *text = read_handover(), *line, *save = NULL;
	const char *refused = getenv("HUPWATCH_UPGRADE_REFUSED");
	long long fd;

	const char *env = getenv("HUPWATCH_STATE_FD");

	if (!text || !env || handover_version(text) != HANDOVER_VERSION) {
		free(text);
		return -1;
	}
	if (parse_number(env, INT_MAX, &fd) == 0)
		close((int)fd);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		resume_line(line);
	free(text);
	for (struct generation *g = hw.gens; g; g = g->next)
		if (g->number == hw.upgrade.final_number)
			hw.exit.final_gen = g;
	hw.upgrade.state = refused ? RELOAD_FAILED : RELOAD_SUCCEEDED;
	snprintf(hw.upgrade.reason, sizeof(hw.upgrade.reason), "%s", refused ? refused : "");
	unsetenv("HUPWATCH_STATE_FD");
	unsetenv("HUPWATCH_OLD_EXE_FD");
	unsetenv("HUPWATCH_UPGRADE_REFUSED");
	return 0;
}

/* What an upgrade re-executes: the file at the path this binary ran from, with the same arguments. */
static void remember_self(char **argv)
{
	char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);

	hw.self.argv = argv;
	/* After a refused upgrade the file at the path is no longer this binary: keep the path. */
	if (n > 0 && !hw.self.exe) {
		path[n] = '\0';
		hw.self.exe = xstrdup(path);
	}
	hw.self.exe_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
}

static void resume_upstream(void)
{
	if (hw.upstream.name[0] && notify_address(hw.upstream.name, &hw.upstream.addr, &hw.upstream.len) == 0)
		hw.upstream.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

/* ---- the loop ----------------------------------------------------------------------------- */

/* What a descriptor of the poll set is: whose, and for what. */
enum watch_kind { W_SIGNALS, W_EXEC, W_NOTIFY, W_HTTP, W_PIDFD };
struct watch {
	struct generation *g;
	enum watch_kind kind;
};

/*
 * What the loop sleeps on: signals, and per generation (newest first) its exec pipe, its
 * notify socket, its HTTP try; `w` says which is which.
 */
static nfds_t poll_set(struct pollfd *fds, struct watch *w, nfds_t max)
{
	nfds_t n = 0;

	w[n] = (struct watch){ NULL, W_SIGNALS };
	fds[n++] = (struct pollfd){ hw.sigfd, POLLIN, 0 };
	for (struct generation *g = hw.gens; g && n + 4 <= max; g = g->next) {
		if (g->exec_fd >= 0) {
			w[n] = (struct watch){ g, W_EXEC };
			fds[n++] = (struct pollfd){ g->exec_fd, POLLIN, 0 };
		}
		if (g->own.notify_fd >= 0) {
			w[n] = (struct watch){ g, W_NOTIFY };
			fds[n++] = (struct pollfd){ g->own.notify_fd, POLLIN, 0 };
		}
		if (g->http.fd >= 0) {
			w[n] = (struct watch){ g, W_HTTP };
			fds[n++] = (struct pollfd){ g->http.fd, http_sending(g) ? POLLOUT : POLLIN, 0 };
		}
		if (g->pidfd >= 0 && !g->main_exited) {
			w[n] = (struct watch){ g, W_PIDFD };
			fds[n++] = (struct pollfd){ g->pidfd, POLLIN, 0 };
		}
	}
	return n;
}

static bool still_there(const struct generation *g)
{
	for (const struct generation *p = hw.gens; p; p = p->next)
		if (p == g)
			return true;
	return false;
}

static struct timespec *timeout_until(nsec_t deadline, struct timespec *ts)
{
	nsec_t wait;

	if (deadline == NEVER)
		return NULL; /* idle: no wake-up at all */
	wait = deadline - now();
	if (wait < 0)
		wait = 0;
	ts->tv_sec = (time_t)(wait / NSEC_PER_SEC);
	ts->tv_nsec = (long)(wait % NSEC_PER_SEC);
	return ts;
}

/* Act on what is due before sleeping: a warm-up of 0 is due at once. */
static void run_due(void)
{
	nsec_t t = now();

	upstream_watchdog(t);
	check_hung(t);
	check_starting(t);
	run_due_respawn(t);
	run_pending_reload();
	run_due_upgrade(t);
	check_stopping(t);
	check_adopted();
	flush_ratelimits(t);
	maybe_finish();
	if (hw.status_dirty)
		write_status();
}

/*
 * The phase rule: before this loop, any failure is hupwatch's own and exits 125 with one line.
 * From here on hupwatch runs a service, and a failure costs at most the generation it concerns:
 * nothing here exits but maybe_finish() (nothing left to wait for), a signal, or a dead service.
 */
/* One descriptor that spoke, if what it belonged to is still there. */
static void dispatch(const struct watch *w, int fd)
{
	struct generation *g = w->g;

	if (!still_there(g))
		return;
	if (w->kind == W_EXEC && g->exec_fd == fd)
		exec_reported(g, now());
	else if (w->kind == W_NOTIFY && g->own.notify_fd == fd)
		read_notify(g);
	else if (w->kind == W_HTTP && g->http.fd == fd)
		http_step(g, now());
	else if (w->kind == W_PIDFD && g->pidfd == fd)
		adopted_exited(g);
}

static _Noreturn void event_loop(void)
{
	for (;;) {
		struct pollfd fds[64];
		struct watch w[64];
		struct timespec ts;
		nfds_t n;

		run_due();
		n = poll_set(fds, w, COUNT(fds));
		if (ppoll(fds, n, timeout_until(next_deadline(), &ts), NULL) < 0 && errno != EINTR) {
			logmsg(L_ERROR, "cannot wait for events: %s", strerror(errno));
			exit_now(EXIT_FAILURE_OWN);
		}
		/* Signals first: a generation that died counts as dead before its warm-up can pass. */
		if (fds[0].revents)
			read_signals();
		for (nfds_t i = 1; i < n; i++)
			if (fds[i].revents)
				dispatch(&w[i], fds[i].fd);
	}
}

/* Started by an upgrade: take up the record, then the loop, as if nothing had happened. */
static _Noreturn void resume_after_upgrade(char **argv)
{
	const struct generation *cur;

	if (resume() || setup_signals()) {
		logmsg(L_ERROR, "cannot resume after an upgrade");
		exit(EXIT_FAILURE_OWN);
	}
	if (getpid() != 1)
		(void)prctl(PR_SET_CHILD_SUBREAPER, 1);
	resume_upstream();
	join_fdnames();
	remember_self(argv);
	cur = current_gen();
	if (hw.upgrade.state == RELOAD_SUCCEEDED)
		logmsg(L_INFO, "upgraded: hupwatch %s runs on, gen %u current", VERSION, cur ? cur->number : 0);
	else
		logmsg(L_ERROR, "upgrade failed: %s; hupwatch %s goes on", hw.upgrade.reason, VERSION);
	write_status();
	reap(); /* what exited during the exec */
	event_loop();
}

/* ---- reload client: hupwatch --reload ------------------------------------------------------ */

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

static int client_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int client_error(const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = say_error("\n", fmt, ap);
	va_end(ap);
	return rc;
}

enum outcome { PENDING, SUCCEEDED, FAILED, GONE };

/*
 * Pure: how the reload asked for after `before` was read stands in `cur`. Ours is the first
 * reload that answers a request made after `before` (hupwatch counts its SIGHUPs); no clock is
 * compared, for the client's need not be hupwatch's (time namespaces).
 */
static enum outcome reload_outcome(const struct status_info *before, const struct status_info *cur)
{
	bool ours = cur->reload_covers > before->requests;

	/* A success stands even if hupwatch went on to exit; a failure with nothing left serving does not. */
	if (ours && cur->reload_state == RELOAD_SUCCEEDED)
		return SUCCEEDED;
	if (cur->pid != before->pid || cur->state == HW_EXITED || cur->state == HW_STOPPING)
		return GONE;
	if (ours && cur->reload_state == RELOAD_FAILED)
		return FAILED;
	return PENDING;
}

/* The same for --upgrade: ours is the first upgrade request after `before`. */
static enum outcome upgrade_outcome(const struct status_info *before, const struct status_info *cur)
{
	bool ours = cur->upgrades > before->upgrades;

	if (cur->pid != before->pid || cur->state == HW_EXITED || cur->state == HW_STOPPING)
		return GONE;
	if (ours && cur->upgrade_state == RELOAD_SUCCEEDED)
		return SUCCEEDED;
	if (ours && cur->upgrade_state == RELOAD_FAILED)
		return FAILED;
	return PENDING;
}

/* Whether a reload may be asked of the hupwatch that wrote st; 0 if so, else its exit status. */
static int check_target(const char *path, const struct status_info *st)
{
	if (st->state == HW_EXITED)
		return client_error("no hupwatch is running for '%s' (pid %ld exited with status %d)", path,
				    st->pid, st->exit_status);
	if (!hupwatch_alive(st))
		return client_error("no hupwatch is running for '%s' (pid %ld is gone)", path, st->pid);
	if (st->state == HW_STOPPING)
		return client_error("hupwatch pid %ld is shutting down", st->pid);
	return 0;
}

/* How long to wait: -t, else what hupwatch may take (twice, behind a reload in progress), plus 10 s. */
static nsec_t client_limit(const struct config *c, const struct status_info *st)
{
	if (c->ready_timeout_set)
		return c->ready_timeout;
	if (st->ready_wait == NEVER)
		return NEVER; /* hupwatch waits without limit: so do we */
	return st->ready_wait * (st->reload_state == RELOAD_IN_PROGRESS ? 2 : 1) + 10 * NSEC_PER_SEC;
}

/* inotify on the status file's directory: the file is replaced by rename. -1 if none. */
static int watch_status(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	int ifd;

	if (slash)
		slash[slash == dir] = '\0';
	ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (ifd >= 0 && inotify_add_watch(ifd, slash ? dir : ".", IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		close(ifd);
		ifd = -1;
	}
	free(dir);
	return ifd;
}

/* inotify wakes us on every rewrite; waking at least 4 times a second also notices a vanished hupwatch. */
static void wait_for_change(int ifd, nsec_t left)
{
	struct pollfd pfd = { ifd, POLLIN, 0 };
	char drain[4096];

	if (left > NSEC_PER_SEC / 4)
		left = NSEC_PER_SEC / 4;
	poll(&pfd, ifd >= 0 ? 1 : 0, (int)(left / 1000000) + 1);
	while (ifd >= 0 && read(ifd, drain, sizeof(drain)) > 0)
		;
}

static int report_upgrade(enum outcome o, const struct status_info *before, const struct status_info *cur)
{
	if (o == SUCCEEDED) {
		printf("hupwatch: upgrade %u succeeded: pid %ld runs hupwatch %s\n", cur->upgrades, cur->pid, cur->version);
		return 0;
	}
	if (o == FAILED) {
		fprintf(stderr, "hupwatch: upgrade %u failed: %s; pid %ld still runs hupwatch %s\n", cur->upgrades,
			cur->upgrade_reason, cur->pid, cur->version);
		return EXIT_NOT_READY;
	}
	return client_error("hupwatch pid %ld %s before the upgrade succeeded", before->pid,
			    cur->state == HW_EXITED ? "exited" : cur->state == HW_STOPPING ? "began shutting down" : "is gone");
}

static int report_outcome(enum outcome o, const struct status_info *before, const struct status_info *cur)
{
	if (o == SUCCEEDED) {
		printf("hupwatch: reload %u succeeded: gen %u pid %ld is current\n", cur->reload, cur->generation,
		       cur->generation_pid);
		return 0;
	}
	if (o == FAILED) {
		fprintf(stderr, "hupwatch: reload %u failed: %s; gen %u pid %ld still current%s%s%s\n", cur->reload,
			cur->reload_reason, cur->generation, cur->generation_pid,
			cur->fallback_dir[0] ? " (it runs the fallback release " : "", cur->fallback_dir,
			cur->fallback_dir[0] ? ")" : "");
		return EXIT_NOT_READY;
	}
	if (cur->state == HW_EXITED)
		return client_error("hupwatch pid %ld exited with status %d before the reload succeeded", before->pid,
				    cur->exit_status);
	return client_error("hupwatch pid %ld %s before the reload succeeded", before->pid,
			    cur->state == HW_STOPPING ? "began shutting down" : "is gone");
}

/* What tells one client from the other: how its outcome is read and said. */
struct client_ops {
	enum outcome (*outcome)(const struct status_info *, const struct status_info *);
	int (*report)(enum outcome, const struct status_info *, const struct status_info *);
	int (*send)(const struct status_info *);                            /* the request */
	bool (*taken)(const struct status_info *, const struct status_info *); /* counted by hupwatch yet? */
};

static int send_reload(const struct status_info *before)
{
	return sigqueue((pid_t)before->pid, SIGHUP, (union sigval){ .sival_int = REQUEST_VALUE(REQUEST_RELOAD, before->requests) });
}

/* An older hupwatch that knows no upgrade takes this for a reload. */
static int send_upgrade(const struct status_info *before)
{
	return sigqueue((pid_t)before->pid, SIGHUP, (union sigval){ .sival_int = REQUEST_VALUE(REQUEST_UPGRADE, before->upgrades) });
}

static bool reload_taken(const struct status_info *before, const struct status_info *cur)
{
	return cur->requests > before->requests;
}

static bool upgrade_taken(const struct status_info *before, const struct status_info *cur)
{
	return cur->upgrades > before->upgrades;
}

/*
 * A SIGHUP sent while another is pending is merged into it, and the value of sigqueue(3) with
 * it: a reload and an upgrade asked for at once, one would be lost. So the request is sent again
 * each second until the status file counts it (hupwatch counts as it takes a request); never to
 * a hupwatch that does not say its version: an older one counts nothing.
 */
static bool send_again(const struct client_ops *ops, const struct status_info *before,
		       const struct status_info *cur, nsec_t since)
{
	return before->version[0] && cur->pid == before->pid && !ops->taken(before, cur) &&
	       now() - since >= NSEC_PER_SEC;
}

/* Until the outcome is known or the limit passes. */
static int await_outcome(const struct client_ops *ops, const char *path, const struct status_info *before,
			 nsec_t limit, int ifd)
{
	nsec_t start = now(), sent = start;

	for (;;) {
		struct status_info cur;
		enum outcome o = PENDING;
		nsec_t left = limit == NEVER ? NEVER : start + limit - now();

		if (read_status_file(path, &cur) == 0) {
			o = ops->outcome(before, &cur);
			if (o == PENDING && !hupwatch_alive(&cur))
				o = GONE;
			if (o == PENDING && send_again(ops, before, &cur, sent) && ops->send(before) == 0)
				sent = now();
		}
		if (o != PENDING)
			return ops->report(o, before, &cur);
		if (left <= 0) {
			fprintf(stderr, "hupwatch: timed out after %.2fs waiting for the %s to settle\n", seconds(limit),
				ops->outcome == reload_outcome ? "reload" : "upgrade");
			return EXIT_TIMEDOUT;
		}
		wait_for_change(ifd, left);
	}
}


static int run_reload_client(const struct config *c)
{
	static const struct client_ops reload_ops = { reload_outcome, report_outcome, send_reload, reload_taken };
	static const struct client_ops upgrade_ops = { upgrade_outcome, report_upgrade, send_upgrade, upgrade_taken };
	const struct client_ops *ops = c->upgrade ? &upgrade_ops : &reload_ops;
	const char *path = c->status_file;
	struct status_info st;
	nsec_t limit;
	int ifd, rc;

	if (read_status_file(path, &st))
		return client_error(errno == EINVAL ? "'%s' is not a hupwatch status file" :
				    "cannot read status file '%s': %s", path, strerror(errno));
	rc = check_target(path, &st);
	if (rc)
		return rc;
	/* Watch before signalling, so that no rewrite is missed. */
	ifd = watch_status(path);
	limit = c->upgrade && !c->ready_timeout_set ? 30 * NSEC_PER_SEC : client_limit(c, &st);
	if (ops->send(&st)) {
		int saved = errno;

		if (ifd >= 0)
			close(ifd);
		return client_error("cannot signal hupwatch pid %ld: %s", st.pid, strerror(saved));
	}
	rc = await_outcome(ops, path, &st, limit, ifd);
	if (ifd >= 0)
		close(ifd);
	return rc;
}

/* ---- main --------------------------------------------------------------------------------- */

#ifndef UNIT_TEST
int main(int argc, char **argv)
{
	char why[512];
	int rc, status;

	/* Nothing of ours may land on fds 0-2, nothing inherited passes on above them. */
	ensure_stdio();
	log_init();
	refuse_unknown_handover(argv); /* started by an upgrade, with a record this binary cannot read */
	cloexec_inherited();
	/* Parse and validate every argument before anything starts. */
	rc = parse_options(argc, argv, &hw.cfg);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (hw.cfg.reload || hw.cfg.upgrade)
		return run_reload_client(&hw.cfg);
	/* Started by an upgrade: everything comes from the image before. */
	if (getenv("HUPWATCH_STATE_FD"))
		resume_after_upgrade(argv);
	remember_self(argv);
	/* Files, signals, subreaper, sockets. */
	if (setup()) { /* one error line said why; only unbind what was bound */
		tidy_files(EXIT_FAILURE_OWN);
		return EXIT_FAILURE_OWN;
	}
	/* Both files before generation 1: a path that cannot be written is found now, not later. */
	if (write_pid_file())
		exit_now(EXIT_FAILURE_OWN);
	write_status();
	if (hw.cfg.status_file && !hw.files.status_written)
		exit_now(EXIT_FAILURE_OWN);
	/* Generation 1: how its exec went, the loop hears. */
	if (!spawn(IN_WORKDIR, why, sizeof(why), &status)) {
		logmsg(L_ERROR, "%s", why);
		exit_now(status);
	}
	/* Everything else happens in response to an event. */
	event_loop();
}
#endif
