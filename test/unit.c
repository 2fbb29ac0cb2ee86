/*
 * test/unit.c - cmocka unit tests of hupwatch.c.
 *
 *   cc -std=c11 -D_GNU_SOURCE -DUNIT_TEST -Wall -Wextra -Werror -o test/unit test/unit.c -lcmocka
 *
 * The program is included whole with -DUNIT_TEST (which hides main), so every static function is
 * reachable. The parsers, the exit-status mapping and judge() are pure and tested in full. The
 * state transitions (reload requests, failures, swaps, shutdown) are driven through the same
 * functions the event loop calls; where they signal a process, that process is a real idle child
 * of this test (never a made-up pid: kill(-pid) of a made-up pid could hit anything). Transitions
 * that end in exit() run in a forked copy of the test, and the parent checks the exit status;
 * hupwatch's exit() anywhere else fails the test that reached it (unit_exit), never the whole run.
 * hupwatch's own log lines are silenced (hw.cfg.level above L_ERROR); usage errors and --help
 * output are captured and checked.
 *
 * Regressions found by the fuzzers (test/fuzz/) go at the end, one test each, with the input.
 *
 * SPDX-License-Identifier: MIT
 */

/*
 * Without main, the functions only main reaches (setup, event_loop, ...) are unused here. The
 * build keeps -Wunused-function on (no -Wno-unused-function in the Makefile's UNIT_CFLAGS) so
 * that a test function left out of tests[] below warns, an error under WERROR=1; only
 * hupwatch.c's own functions are exempt, by this pragma around the include. Calling main's
 * callees from here instead would mean a list to keep in step with hupwatch.c as it changes.
 *
 * hupwatch's exit() would be the unit binary's: a broken path that reaches exit_now() in a test not
 * run in a forked copy would end the whole run, and every later test with it. unit_exit() fails
 * that one test instead (cmocka's fail_msg jumps back to the runner); in a forked copy it exits,
 * as the copy's parent expects. <stdlib.h> first, so that only hupwatch.c's calls are renamed.
 */
#include <stdlib.h>
static _Noreturn void unit_exit(int status);
#define exit(status) unit_exit(status)

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "../hupwatch.c"
#pragma GCC diagnostic pop
#undef exit

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define SEC(n) ((nsec_t)(n) * NSEC_PER_SEC)
#define MSEC(n) ((nsec_t)(n) * 1000000)
#define SILENT ((enum level)(L_ERROR + 1))
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- fixtures --------------------------------------------------------------------------- */

static bool in_copy; /* this process is a forked copy of a test (in_child, checked_in_child) */

static _Noreturn void unit_exit(int status)
{
	if (!in_copy)
		fail_msg("hupwatch called exit(%d) in a test not run in a forked copy", status);
	exit(status);
}

static char *default_command[] = { "/bin/sleep", "60", NULL };
static char tmpdir[PATH_MAX];

/* Children of this test that a test started and must be gone before the next one. */
static pid_t kids[16];
static size_t nkids;

static void kill_kids(void)
{
	for (size_t i = 0; i < nkids; i++) {
		kill(-kids[i], SIGKILL);
		kill(kids[i], SIGKILL);
		while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
			;
	}
	nkids = 0;
}

static void reset_hw(void)
{
	struct generation *g, *next;

	for (g = hw.gens; g; g = next) {
		next = g->next;
		if (g->exec_fd >= 0)
			close(g->exec_fd);
		close_gen_sockets(&g->own);
		free(g->dir);
		free(g);
	}
	free(hw.workdir);
	free(hw.respawn.last_good_dir);
	free(hw.self.exe);
	free(hw.runtime_dir);
	memset(&hw, 0, sizeof(hw));
	hw.sigfd = hw.upstream.fd = hw.files.lock_fd = -1;
	hw.respawn.at = NEVER;
	hw.cfg = (struct config){
		.warmup = SEC(1),
		.ready_interval = MSEC(200),
		.ready_timeout = SEC(60),
		.stop_signal = SIGTERM,
		.stop_timeout = NEVER,
		.backlog = SOMAXCONN,
		.level = SILENT,
		.command = default_command,
	};
}

static void rm_tree(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "unit: cannot remove %s\n", dir);
}

static int fixture_setup(void **state)
{
	const char *base = getenv("TMPDIR");

	(void)state;
	reset_hw();
	nkids = 0;
	snprintf(tmpdir, sizeof(tmpdir), "%s/hupwatch-unit.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir))
		return -1;
	return 0;
}

/* Every child a test started is killed with its group and reaped. */
static int fixture_teardown(void **state)
{
	(void)state;
	kill_kids();
	/* Whatever else is left (a generation spawned through spawn()). */
	for (struct generation *g = hw.gens; g; g = g->next)
		if (g->pid > 0 && waitpid(g->pid, NULL, WNOHANG) == 0) {
			kill(-g->pid, SIGKILL);
			while (waitpid(g->pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
	reset_hw();
	rm_tree(tmpdir);
	return 0;
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, fixture_setup, fixture_teardown)

static void path_in_tmp(char *buf, size_t size, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", tmpdir, name);

	assert_true(n > 0 && (size_t)n < size);
}

/* A child in its own process group that only waits for signals. */
static pid_t start_idle_in(pid_t pgid)
{
	pid_t parent = getpid(), pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Gone with its parent, also when that is a forked copy ending in exit(). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		setpgid(0, pgid);
		for (;;)
			pause();
	}
	setpgid(pid, pgid ? pgid : pid);
	assert_true(nkids < COUNT(kids));
	kids[nkids++] = pid;
	return pid;
}

static pid_t start_idle(void)
{
	return start_idle_in(0);
}

/* Wait until pid has terminated, without reaping it: its pid (and group) stay reserved. */
static int wait_dead(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0)
		assert_int_equal(errno, EINTR);
	return si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) : W_EXITCODE(0, si.si_status);
}

static int reap_pid(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno == ECHILD) /* reaped already (gen_exited() does, as reap() would) */
			return -1;
		assert_int_equal(errno, EINTR);
	}
	return st;
}

/* A generation linked into hw.gens, allocated as spawn() does (remove_generation frees it). */
/* The main process of g was reaped with status st, as reap() would then see it: gone with its group. */
static void gen_exited(struct generation *g, int st)
{
	(void)waitpid(g->pid, NULL, WNOHANG); /* wait_dead() leaves a zombie, which still counts in its group */
	main_exited(g, st);
	for (struct generation *p = hw.gens, *next; p; p = next) {
		next = p->next;
		end_if_gone(p);
	}
}

/* Until the exec pipe of g has said how its exec went (EOF or an error), as the loop would hear it. */
static void await_exec(struct generation *g)
{
	while (g->exec_fd >= 0 && g->state == GEN_STARTING) {
		struct pollfd pfd = { g->exec_fd, POLLIN, 0 };

		assert_true(poll(&pfd, 1, 5000) == 1);
		exec_reported(g, now());
	}
}

/* A spawn whose exec fails: its report is read and its child reaped, as the loop would. */
static void settle_failed_spawn(struct generation *g)
{
	assert_non_null(g);
	gen_exited(g, wait_dead(g->pid));
}

/* write_status() with hupwatch in the state of that name. */
static void write_status_as(const char *name)
{
	for (size_t i = 0; i < COUNT(hw_state_names); i++)
		if (strcmp(name, hw_state_names[i]) == 0)
			hw.state = (enum hw_state)i;
	write_status();
}

static struct generation *add_gen(unsigned number, pid_t pid, enum gen_state state)
{
	struct generation *g = xmalloc(sizeof(*g));

	*g = (struct generation){ .number = number, .pid = pid, .state = state, .spawned_at = now(),
				  .exec_fd = -1, .pidfd = -1, .kill_at = NEVER, .own = no_sockets, .http = { .fd = -1 } };
	g->probe_next = g->http_next = g->spawned_at;
	g->next = hw.gens;
	hw.gens = g;
	if (state == GEN_CURRENT && hw.state == HW_STARTING)
		hw.state = HW_RUNNING;
	if (number > hw.last_number)
		hw.last_number = number;
	return g;
}

static bool in_gens(const struct generation *g)
{
	for (const struct generation *p = hw.gens; p; p = p->next)
		if (p == g)
			return true;
	return false;
}

/*
 * Run fn in a forked copy of this test and return its wait status. fn ends in exit() (finish)
 * or _exit(); it must not use cmocka assertions, which would unwind into the copy's runner.
 */
/* fn in a forked copy of this test; the copy exits with after_return if fn returns. Its status. */
static int run_in_copy(void (*fn)(void), int after_return)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The copy's own idle children go with it, reaped, also when fn ends in exit(). */
		nkids = 0;
		in_copy = true;
		atexit(kill_kids);
		fn();
		kill_kids();
		_exit(after_return);
	}
	return reap_pid(pid);
}

static int in_child(void (*fn)(void))
{
	return run_in_copy(fn, 200); /* fn was to exit */
}

/*
 * For a test of a path that, broken, would end in exit() (a failed reload taken for a failed
 * generation 1 calls finish()): fn runs in a forked copy and checks with CHECK*(), which print
 * what failed and _exit(201); the parent asserts that fn returned. A broken path then fails this
 * one test, and the unit binary goes on with the next.
 */
#define CHECK(cond)                                                                             \
	do {                                                                                    \
		if (!(cond)) {                                                                  \
			fprintf(stderr, "unit: %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
			_exit(201);                                                             \
		}                                                                               \
	} while (0)
#define CHECK_INT(a, b)                                                                         \
	do {                                                                                    \
		long long a_ = (long long)(a), b_ = (long long)(b);                             \
		if (a_ != b_) {                                                                 \
			fprintf(stderr, "unit: %s:%d: %s is %lld, want %lld\n", __FILE__, __LINE__, \
				#a, a_, b_);                                                    \
			_exit(201);                                                             \
		}                                                                               \
	} while (0)
#define CHECK_STR(a, b)                                                                         \
	do {                                                                                    \
		const char *a_ = (a), *b_ = (b);                                                \
		if (strcmp(a_, b_) != 0) {                                              \
			fprintf(stderr, "unit: %s:%d: %s is \"%s\", want \"%s\"\n", __FILE__,   \
				__LINE__, #a, a_, b_);                                          \
			_exit(201);                                                             \
		}                                                                               \
	} while (0)

static void checked_in_child(void (*fn)(void))
{
	int st = run_in_copy(fn, 0);

	if (WIFSIGNALED(st))
		fail_msg("the forked copy was killed by %s", signame(WTERMSIG(st)));
	if (WEXITSTATUS(st) == 201)
		fail_msg("a CHECK failed in the forked copy (its line is above)");
	if (WEXITSTATUS(st) != 0)
		fail_msg("the path under test called exit(%d) instead of returning", WEXITSTATUS(st));
}

/* ---- capturing stdout and stderr --------------------------------------------------------- */

static char cap_out[16384], cap_err[16384];
static int cap_saved[2] = { -1, -1 };
static FILE *cap_file[2];

static void capture_start(void)
{
	fflush(stdout);
	fflush(stderr);
	for (int i = 0; i < 2; i++) {
		cap_file[i] = tmpfile();
		assert_non_null(cap_file[i]);
		cap_saved[i] = dup(1 + i);
		assert_true(cap_saved[i] >= 0);
		assert_true(dup2(fileno(cap_file[i]), 1 + i) >= 0);
	}
}

static void capture_end(void)
{
	char *bufs[2] = { cap_out, cap_err };

	fflush(stdout);
	fflush(stderr);
	for (int i = 0; i < 2; i++) {
		size_t n;

		dup2(cap_saved[i], 1 + i);
		close(cap_saved[i]);
		rewind(cap_file[i]);
		n = fread(bufs[i], 1, sizeof(cap_out) - 1, cap_file[i]);
		bufs[i][n] = '\0';
		fclose(cap_file[i]);
	}
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* ---- parse_duration --------------------------------------------------------------------- */

static void test_duration_valid(void **state)
{
	static const struct {
		const char *s;
		nsec_t ns;
	} ok[] = {
		{ "0", 0 },
		{ "1", SEC(1) },
		{ "0.5", MSEC(500) },
		{ ".5", MSEC(500) },
		{ "1.", SEC(1) },
		{ "0.25", MSEC(250) },
		{ "2.125", MSEC(2125) },
		{ "60", SEC(60) },
		{ "000001", SEC(1) },
		{ "0.000000001", 1 },
		{ "0.123456789", 123456789 },
		{ "1000000000", SEC(1000000000) },
		{ "1000000000.", SEC(1000000000) },
		{ "1000000000.000000000", SEC(1000000000) },
		{ "999999999.999999999", SEC(1000000000) - 1 },
	};
	(void)state;
	for (size_t i = 0; i < COUNT(ok); i++) {
		nsec_t d = -42;

		if (parse_duration(ok[i].s, &d) != 0)
			fail_msg("parse_duration(\"%s\") rejected", ok[i].s);
		if (d != ok[i].ns)
			fail_msg("parse_duration(\"%s\") = %" PRId64 ", want %" PRId64, ok[i].s, d, ok[i].ns);
	}
}

static void test_duration_invalid(void **state)
{
	static const char *const bad[] = {
		"", ".", "..", "-1", "+1", "-0", "1e3", "1E3", "inf", "INF", "nan", "NaN", "infinity",
		" 1", "1 ", "\t1", "1\n", "1s", "1ms", "0x10", "1,5", "1..2", "1.2.3", "1.-2", "1.+2",
		"1000000000.1", "1000000000.000000001", "1000000001", "10000000000",
		"99999999999999999999", "18446744073709551616",
		"9223372036854775807", "9223372036854775808",
		"99999999999999999999999999999999999999999999999999999999999999999999999999999999",
		"\xd9\xa1", /* ARABIC-INDIC DIGIT ONE */
	};
	(void)state;
	for (size_t i = 0; i < COUNT(bad); i++) {
		nsec_t d = -42;

		if (parse_duration(bad[i], &d) == 0)
			fail_msg("parse_duration(\"%s\") accepted: %" PRId64, bad[i], d);
		assert_int_equal(d, -42); /* untouched on failure */
	}
}

/* A huge run of digits, more than any integer holds: rejected without overflow (UBSan watches). */
static void test_duration_huge_digit_strings(void **state)
{
	char s[4096];
	nsec_t d = -42;

	(void)state;
	memset(s, '9', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	assert_int_equal(parse_duration(s, &d), -1);
	/* Leading zeros are only zeros, however many. */
	memset(s, '0', sizeof(s) - 1);
	s[sizeof(s) - 2] = '7';
	assert_int_equal(parse_duration(s, &d), 0);
	assert_int_equal(d, SEC(7));
	/* A fraction finer than the nanosecond hupwatch counts is refused, not silently cut. */
	s[0] = '3';
	s[1] = '.';
	memset(s + 2, '9', sizeof(s) - 3);
	assert_int_equal(parse_duration(s, &d), -1);
	assert_int_equal(parse_duration("1.0000000009", &d), -1);
	assert_int_equal(parse_duration("0.0000000001", &d), -1);
	assert_int_equal(parse_duration("1000000000.0000000001", &d), -1);
	assert_int_equal(parse_duration("1.0000000000", &d), -1);
}

/* ---- signals ----------------------------------------------------------------------------- */

static void test_signal_names_and_numbers(void **state)
{
	static const struct {
		const char *s;
		int sig;
	} ok[] = {
		{ "TERM", SIGTERM }, { "SIGTERM", SIGTERM }, { "sigterm", SIGTERM }, { "term", SIGTERM },
		{ "Term", SIGTERM }, { "sIgTeRm", SIGTERM }, { "15", SIGTERM },   { "HUP", SIGHUP },
		{ "SIGHUP", SIGHUP },  { "1", SIGHUP },        { "KILL", SIGKILL }, { "9", SIGKILL },
		{ "INT", SIGINT },     { "QUIT", SIGQUIT },    { "USR1", SIGUSR1 }, { "sigusr2", SIGUSR2 },
		{ "WINCH", SIGWINCH }, { "TTIN", SIGTTIN },    { "TTOU", SIGTTOU }, { "31", 31 },
		{ "IOT", SIGABRT },    { "POLL", SIGIO },      { "SIGPWR", SIGPWR }, { "015", SIGTERM },
	};
	(void)state;
	for (size_t i = 0; i < COUNT(ok); i++)
		if (parse_signal(ok[i].s) != ok[i].sig)
			fail_msg("parse_signal(\"%s\") = %d, want %d", ok[i].s, parse_signal(ok[i].s), ok[i].sig);
}

static void test_signal_realtime_numbers(void **state)
{
	char s[16];

	(void)state;
	for (int n = 1; n <= 31; n++) {
		snprintf(s, sizeof(s), "%d", n);
		assert_int_equal(parse_signal(s), n);
	}
	/* glibc keeps 32 and 33 for itself: SIGRTMIN is above them. */
	for (int n = 32; n < SIGRTMIN; n++) {
		snprintf(s, sizeof(s), "%d", n);
		assert_int_equal(parse_signal(s), -1);
	}
	for (int n = SIGRTMIN; n <= SIGRTMAX; n++) {
		snprintf(s, sizeof(s), "%d", n);
		assert_int_equal(parse_signal(s), n);
	}
	snprintf(s, sizeof(s), "%d", SIGRTMAX + 1);
	assert_int_equal(parse_signal(s), -1);
}

static void test_signal_invalid(void **state)
{
	static const char *const bad[] = {
		"", "0", "00", "32", "99", "65", "-1", "+1", "-15", " 15", "15 ", "0x0f", "1.0",
		"SIG", "sig", "FOO", "SIGFOO", "SIGSIGTERM", " TERM", "TERM ", "SIG TERM", "SIG-TERM",
		"TERM\n", "SIGTERMX", "TER", "2147483648", "4294967311", "99999999999999999999999",
		"\xc3\x9f",
	};
	(void)state;
	for (size_t i = 0; i < COUNT(bad); i++)
		if (parse_signal(bad[i]) != -1)
			fail_msg("parse_signal(\"%s\") = %d, want -1", bad[i], parse_signal(bad[i]));
}

/* Every name in the table parses, and signame() of its number parses back to that number. */
static void test_signame_round_trip(void **state)
{
	char lower[32];

	(void)state;
	for (size_t i = 0; i < COUNT(signals); i++) {
		int sig = signals[i].number;
		const char *name = signame(sig);

		assert_int_equal(strncmp(name, "SIG", 3), 0);
		assert_int_equal(parse_signal(name), sig);
		assert_int_equal(parse_signal(name + 3), sig);
		assert_int_equal(parse_signal(signals[i].name), sig);
		snprintf(lower, sizeof(lower), "%s", name);
		for (char *p = lower; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		assert_int_equal(parse_signal(lower), sig);
	}
	/* Every classic signal has a name. */
	for (int sig = 1; sig <= 31; sig++) {
		const char *name = signame(sig);

		if (strncmp(name, "SIG", 3) != 0 || strncmp(name, "SIGRT", 5) == 0)
			fail_msg("signame(%d) = \"%s\"", sig, name);
		assert_int_equal(parse_signal(name), sig);
	}
	assert_string_equal(signame(SIGTERM), "SIGTERM");
	assert_string_equal(signame(SIGKILL), "SIGKILL");
	assert_string_equal(signame(SIGABRT), "SIGABRT"); /* not IOT, its alias */
	assert_string_equal(signame(SIGIO), "SIGIO");     /* not POLL */
	assert_string_equal(signame(SIGRTMIN), "SIGRTMIN+0");
	snprintf(lower, sizeof(lower), "SIGRTMIN+%d", SIGRTMAX - SIGRTMIN);
	assert_string_equal(signame(SIGRTMAX), lower);
	assert_string_equal(signame(0), "signal 0");
	assert_string_equal(signame(32), "signal 32");
	assert_string_equal(signame(200), "signal 200");
	assert_string_equal(signame(-3), "signal -3");
}

/* ---- exit_code, describe_status ---------------------------------------------------------- */

static void test_exit_code_exited(void **state)
{
	char buf[80], want[80];

	(void)state;
	for (int code = 0; code <= 255; code++) {
		assert_int_equal(exit_code(W_EXITCODE(code, 0)), code);
		describe_status(W_EXITCODE(code, 0), buf, sizeof(buf));
		snprintf(want, sizeof(want), "exited with status %d", code);
		assert_string_equal(buf, want);
	}
}

static void test_exit_code_signaled(void **state)
{
	volatile size_t small = 8;
	char buf[80], want[80];

	(void)state;
	for (int sig = 1; sig <= 31; sig++) {
		assert_int_equal(exit_code(W_EXITCODE(0, sig)), 128 + sig);
		describe_status(W_EXITCODE(0, sig), buf, sizeof(buf));
		snprintf(want, sizeof(want), "killed by %s", signame(sig));
		assert_string_equal(buf, want);
		/* A core dump changes the text, not the status. */
		assert_int_equal(exit_code(W_EXITCODE(0, sig) | WCOREFLAG), 128 + sig);
		describe_status(W_EXITCODE(0, sig) | WCOREFLAG, buf, sizeof(buf));
		snprintf(want, sizeof(want), "killed by %s (core dumped)", signame(sig));
		assert_string_equal(buf, want);
	}
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
		assert_int_equal(exit_code(W_EXITCODE(0, sig)), 128 + sig);
	describe_status(W_EXITCODE(0, SIGRTMIN + 3), buf, sizeof(buf));
	assert_string_equal(buf, "killed by SIGRTMIN+3");
	describe_status(W_EXITCODE(0, SIGSEGV) | WCOREFLAG, buf, sizeof(buf));
	assert_string_equal(buf, "killed by SIGSEGV (core dumped)");
	describe_status(W_EXITCODE(0, SIGKILL), buf, sizeof(buf));
	assert_string_equal(buf, "killed by SIGKILL");
	/* Neither exited nor killed (waitpid without WUNTRACED never reports it): hupwatch's own. */
	assert_int_equal(exit_code(W_STOPCODE(SIGSTOP)), EXIT_FAILURE_OWN);
	/* A small buffer truncates, never overflows (volatile: a size the compiler cannot see). */
	describe_status(W_EXITCODE(0, SIGSEGV) | WCOREFLAG, buf, small);
	assert_string_equal(buf, "killed ");
}

/* The same mapping on statuses the kernel made. */
static void test_exit_code_real_processes(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(42);
	st = reap_pid(pid);
	assert_int_equal(exit_code(st), 42);

	pid = start_idle();
	kill(pid, SIGKILL);
	st = reap_pid(pid);
	nkids = 0;
	assert_int_equal(exit_code(st), 137);

	pid = start_idle();
	kill(pid, SIGTERM);
	st = reap_pid(pid);
	nkids = 0;
	assert_int_equal(exit_code(st), 143);
}

/* ---- parse_address ----------------------------------------------------------------------- */

static void check_address(const char *s, int family, const char *host, const char *port, const char *path)
{
	struct address a;

	if (parse_address(s, &a) != 0)
		fail_msg("parse_address(\"%s\") rejected", s);
	assert_int_equal(a.family, family);
	assert_string_equal(a.host, host);
	assert_string_equal(a.port, port);
	assert_string_equal(a.path, path);
}

static void test_address_valid(void **state)
{
	(void)state;
	check_address("0", AF_INET, "0.0.0.0", "0", "");
	check_address("80", AF_INET, "0.0.0.0", "80", "");
	check_address("65535", AF_INET, "0.0.0.0", "65535", "");
	check_address("127.0.0.1:8080", AF_UNSPEC, "127.0.0.1", "8080", "");
	check_address("localhost:0", AF_UNSPEC, "localhost", "0", "");
	check_address("example.org:443", AF_UNSPEC, "example.org", "443", "");
	check_address("[::1]:80", AF_INET6, "::1", "80", "");
	check_address("[::]:0", AF_INET6, "::", "0", "");
	check_address("[fe80::1%eth0]:8080", AF_INET6, "fe80::1%eth0", "8080", "");
	check_address("unix:/x", AF_UNIX, "", "", "/x");
	check_address("unix:/run/app.sock", AF_UNIX, "", "", "/run/app.sock");
	check_address("unix:relative/app.sock", AF_UNIX, "", "", "relative/app.sock");
	/* unix: takes the rest as it is, colons included. */
	check_address("unix:/a:b", AF_UNIX, "", "", "/a:b");
}

/* udp: before any inet form; a datagram socket, and only that differs. */
static void test_address_udp(void **state)
{
	static const struct {
		const char *s;
		int family, socktype;
		const char *host, *port;
	} cases[] = {
		{ "udp:53", AF_INET, SOCK_DGRAM, "0.0.0.0", "53" },
		{ "udp:127.0.0.1:5353", AF_UNSPEC, SOCK_DGRAM, "127.0.0.1", "5353" },
		{ "udp:localhost:0", AF_UNSPEC, SOCK_DGRAM, "localhost", "0" },
		{ "udp:[::1]:514", AF_INET6, SOCK_DGRAM, "::1", "514" },
		{ "udp:[::]:0", AF_INET6, SOCK_DGRAM, "::", "0" },
		{ "127.0.0.1:53", AF_UNSPEC, SOCK_STREAM, "127.0.0.1", "53" },
		{ "[::1]:53", AF_INET6, SOCK_STREAM, "::1", "53" },
		{ "53", AF_INET, SOCK_STREAM, "0.0.0.0", "53" },
	};
	static const char *const bad[] = {
		"udp:", "udp", "udp:unix:/x", "udp:65536", "udp:[::1]", "udp:::1:53", "udp:host:",
		"udp: 53", "udp:[::1]:", "udp:53 ",
	};
	struct address a;

	(void)state;
	for (size_t i = 0; i < COUNT(cases); i++) {
		if (parse_address(cases[i].s, &a))
			fail_msg("parse_address(\"%s\") rejected", cases[i].s);
		assert_int_equal(a.family, cases[i].family);
		assert_int_equal(a.socktype, cases[i].socktype);
		assert_string_equal(a.host, cases[i].host);
		assert_string_equal(a.port, cases[i].port);
	}
	assert_int_equal(parse_address("unix:/run/x", &a), 0);
	assert_int_equal(a.socktype, SOCK_STREAM);
	for (size_t i = 0; i < COUNT(bad); i++)
		if (parse_address(bad[i], &a) == 0)
			fail_msg("parse_address(\"%s\") accepted", bad[i]);
}


static void test_address_invalid(void **state)
{
	static const char *const bad[] = {
		"", "65536", "99999", "100000", "123456", "-1", "+80", " 80", "80 ", "0x50", "http",
		"[::1]", "[]:80", "[::1]:", "[::1]x80", "[::1]:80:", "[::1]:65536", "[::1", "[::1]]:80",
		"::1:80", "::1", "a:b:80", "host:", ":80", ":", "host:port", "host:-1", "host:+80",
		"host: 80", "host:80 ", "host:65536", "host:123456", "unix:", "unix",
	};
	struct address a;

	(void)state;
	for (size_t i = 0; i < COUNT(bad); i++)
		if (parse_address(bad[i], &a) == 0)
			fail_msg("parse_address(\"%s\") accepted", bad[i]);
}

/* sun_path holds 108 bytes: a path of 107 and its NUL fit, 108 does not. */
static void test_address_unix_path_limit(void **state)
{
	char s[sizeof(((struct sockaddr_un *)0)->sun_path) + 16];
	const size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	struct address a;

	(void)state;
	strcpy(s, "unix:/");
	memset(s + 6, 'p', max - 1);
	s[5 + max] = '\0';
	assert_int_equal(strlen(s + 5), max);
	assert_int_equal(parse_address(s, &a), 0);
	assert_int_equal(a.family, AF_UNIX);
	assert_int_equal(strlen(a.path), max);
	assert_string_equal(a.path, s + 5);

	s[5 + max] = 'p';
	s[6 + max] = '\0';
	assert_int_equal(parse_address(s, &a), -1);
}

/* Host names up to 255 bytes (struct address holds 256). */
static void test_address_host_limit(void **state)
{
	char s[300];
	struct address a;

	(void)state;
	memset(s, 'h', 255);
	strcpy(s + 255, ":80");
	assert_int_equal(parse_address(s, &a), 0);
	assert_int_equal(strlen(a.host), 255);
	memset(s, 'h', 256);
	strcpy(s + 256, ":80");
	assert_int_equal(parse_address(s, &a), -1);

	s[0] = '[';
	memset(s + 1, 'a', 255);
	strcpy(s + 256, "]:80");
	assert_int_equal(parse_address(s, &a), 0);
	assert_int_equal(a.family, AF_INET6);
	assert_int_equal(strlen(a.host), 255);
	memset(s + 1, 'a', 256);
	strcpy(s + 257, "]:80");
	assert_int_equal(parse_address(s, &a), -1);
}

/* LISTEN_FDNAMES entries: everything outside [A-Za-z0-9._-] becomes '_'. */
static void test_fd_name(void **state)
{
	static const char *const cases[][2] = {
		{ "8080", "8080" },
		{ "127.0.0.1:8080", "127.0.0.1_8080" },
		{ "[::1]:80", "___1__80" },
		{ "unix:/run/app-1.sock", "unix__run_app-1.sock" },
		{ "my_host:1", "my_host_1" },
		{ "h\xc3\xa9:1", "h___1" },
	};
	(void)state;
	for (size_t i = 0; i < COUNT(cases); i++) {
		char *name = fd_name(cases[i][0]);

		assert_string_equal(name, cases[i][1]);
		free(name);
	}
}

static void test_notify_address(void **state)
{
	struct sockaddr_un sa;
	socklen_t len = 0;
	char longname[sizeof(sa.sun_path) + 2];

	(void)state;
	assert_int_equal(notify_address("@hupwatch/1/abc", &sa, &len), 0);
	assert_int_equal(sa.sun_family, AF_UNIX);
	assert_int_equal(sa.sun_path[0], '\0'); /* abstract */
	assert_memory_equal(sa.sun_path + 1, "hupwatch/1/abc", 14);
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 15);

	assert_int_equal(notify_address("/run/systemd/notify", &sa, &len), 0);
	assert_string_equal(sa.sun_path, "/run/systemd/notify");
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 20); /* with its NUL */

	assert_int_equal(notify_address("", &sa, &len), -1);
	assert_int_equal(notify_address("@", &sa, &len), -1);
	assert_int_equal(notify_address("/", &sa, &len), -1);
	assert_int_equal(notify_address("relative", &sa, &len), -1);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(notify_address(longname, &sa, &len), -1);
}

/* ---- parse_notify ------------------------------------------------------------------------ */

static int notify_str(const char *s, struct notify_msg *m)
{
	return parse_notify(s, strlen(s), m);
}

static void test_notify_ready(void **state)
{
	static const char *const ready[] = {
		"READY=1", "READY=1\n", "READY=1\n\n", "\nREADY=1", "STATUS=up\nREADY=1",
		"MAINPID=42\nREADY=1\nSTATUS=x\n", "FOO=bar\nREADY=1\nBAZ=", "READY=1\nREADY=1",
		"X-CUSTOM=READY=1\nREADY=1",
	};
	static const char *const not_ready[] = {
		"READY=10", "READY=0", "READY=", "READY=1 ", " READY=1", "READY=1\r", "XREADY=1",
		"ready=1", "RELOADING=1", "STOPPING=1", "WATCHDOG=1", "MAINPID=1", "STATUS=READY=1",
		"READY=1x\nSTATUS=a", "\n", "\n\n",
	};
	struct notify_msg m;

	(void)state;
	for (size_t i = 0; i < COUNT(ready); i++) {
		assert_int_equal(notify_str(ready[i], &m), 0);
		if (!m.ready)
			fail_msg("\"%s\" not taken as ready", ready[i]);
	}
	for (size_t i = 0; i < COUNT(not_ready); i++) {
		assert_int_equal(notify_str(not_ready[i], &m), 0);
		if (m.ready)
			fail_msg("\"%s\" taken as ready", not_ready[i]);
	}
	/* Only len bytes count: the READY=1 here is past the end. */
	assert_int_equal(parse_notify("FOO=1READY=1", 5, &m), 0);
	assert_false(m.ready);
	assert_int_equal(parse_notify("READY=1X", 7, &m), 0);
	assert_true(m.ready);
}

static void test_notify_status(void **state)
{
	struct notify_msg m;
	char buf[600];

	(void)state;
	assert_int_equal(notify_str("STATUS=serving 4 workers", &m), 0);
	assert_true(m.has_status);
	assert_false(m.ready);
	assert_string_equal(m.status, "serving 4 workers");

	assert_int_equal(notify_str("READY=1\nSTATUS=child ready\n", &m), 0);
	assert_true(m.ready);
	assert_string_equal(m.status, "child ready");

	assert_int_equal(notify_str("STATUS=", &m), 0);
	assert_true(m.has_status);
	assert_string_equal(m.status, "");

	assert_int_equal(notify_str("READY=1", &m), 0);
	assert_false(m.has_status);

	/* The last one wins. */
	assert_int_equal(notify_str("STATUS=a\nSTATUS=b", &m), 0);
	assert_string_equal(m.status, "b");

	/* Control characters (they would forge log lines) become '?'; other bytes stay. */
	assert_int_equal(notify_str("STATUS=a\tb\x01" "c\x1b[31m\x7f" "d\r", &m), 0);
	assert_string_equal(m.status, "a?b?c?[31m?d?");
	assert_int_equal(notify_str("STATUS=caf\xc3\xa9", &m), 0);
	assert_string_equal(m.status, "caf\xc3\xa9");
	/* sd_notify messages are UTF-8: anything else is malformed and dropped. */
	assert_int_equal(notify_str("READY=1\nSTATUS=caf\xc3\xa9 \x80\xff", &m), -1);
	assert_int_equal(notify_str("READY=1\nSTATUS=\xc0\xaf", &m), -1);     /* overlong */
	assert_int_equal(notify_str("READY=1\nSTATUS=\xed\xa0\x80", &m), -1); /* surrogate */
	assert_int_equal(notify_str("READY=1\nSTATUS=\xf4\x90\x80\x80", &m), -1); /* > U+10FFFF */
	assert_int_equal(notify_str("READY=1\nSTATUS=\xe2\x82", &m), -1);     /* truncated */

	/* Truncated to 255 bytes. */
	strcpy(buf, "STATUS=");
	memset(buf + 7, 'a', 300);
	buf[307] = '\0';
	assert_int_equal(notify_str(buf, &m), 0);
	assert_int_equal(strlen(m.status), sizeof(m.status) - 1);
	assert_int_equal(strspn(m.status, "a"), sizeof(m.status) - 1);
	buf[7 + 255] = '\0';
	assert_int_equal(notify_str(buf, &m), 0);
	assert_int_equal(strlen(m.status), 255);
	buf[7 + 255] = 'b';
	buf[7 + 256] = '\0';
	assert_int_equal(notify_str(buf, &m), 0);
	assert_int_equal(strlen(m.status), 255);
	assert_int_equal(strchr(m.status, 'b'), NULL);
	/* ... and what follows a long STATUS line still counts. */
	strcpy(buf + 7 + 300, "\nREADY=1");
	memset(buf + 7, 'a', 300);
	assert_int_equal(notify_str(buf, &m), 0);
	assert_true(m.ready);
}

static void test_notify_malformed(void **state)
{
	static const char *const bad[] = {
		"READY", "hello", "READY=1\nhello", "hello\nREADY=1", "READY=1\n \n", "STATUS=x\nbad\n",
	};
	struct notify_msg m;

	(void)state;
	/* read_notify() drops the whole message on -1, whatever READY=1 it held. */
	for (size_t i = 0; i < COUNT(bad); i++)
		if (notify_str(bad[i], &m) != -1)
			fail_msg("\"%s\" not taken as malformed", bad[i]);
	assert_int_equal(parse_notify("", 0, &m), -1);
	assert_int_equal(parse_notify("READY=1\0", 8, &m), -1);
	assert_false(m.ready);
	assert_int_equal(parse_notify("\0READY=1", 8, &m), -1);
	assert_int_equal(parse_notify("STATUS=a\0b\nREADY=1", 18, &m), -1);
	assert_false(m.ready);
	assert_false(m.has_status);
}

/* ---- parse_status and write_status ------------------------------------------------------- */

static int status_str(const char *s, struct status_info *st)
{
	return parse_status(s, strlen(s), st);
}

static void test_status_parse_minimal(void **state)
{
	struct status_info st;

	(void)state;
	assert_int_equal(status_str("pid=12\nstate=running\n", &st), 0);
	assert_int_equal(st.pid, 12);
	assert_string_equal(hw_state_names[st.state], "running");
	assert_int_equal(st.exit_status, -1); /* absent */
	assert_int_equal(st.generation, 0);
	assert_string_equal(reload_state_names[st.reload_state], "none");
	/* No final newline, empty lines, unknown keys (a newer hupwatch's): all fine. */
	assert_int_equal(status_str("pid=12\n\nstate=exited\nfuture_key=whatever\nexit_status=3", &st), 0);
	assert_string_equal(hw_state_names[st.state], "exited");
	assert_int_equal(st.exit_status, 3);
	/* A state no hupwatch writes: not a status file. */
	assert_int_equal(status_str("pid=1\nstate=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", &st), -1);
}

static void test_status_parse_full(void **state)
{
	static const char text[] = "pid=4242\nstarttime=987654321\nstate=running\ngeneration=7\n"
				   "generation_pid=5151\nready_wait=60.000\nreload=6\nreload_state=failed\n"
				   "reload_generation=8\nreload_started=1234.000000567\n"
				   "reload_reason=gen 8 failed: exited with status 1 before ready\n";
	struct status_info st;

	(void)state;
	assert_int_equal(status_str(text, &st), 0);
	assert_int_equal(st.pid, 4242);
	assert_int_equal(st.starttime, 987654321ULL);
	assert_string_equal(hw_state_names[st.state], "running");
	assert_int_equal(st.generation, 7);
	assert_int_equal(st.generation_pid, 5151);
	assert_int_equal(st.ready_wait, SEC(60));
	assert_int_equal(st.reload, 6);
	assert_string_equal(reload_state_names[st.reload_state], "failed");
	assert_int_equal(st.reload_generation, 8);
	assert_int_equal(st.reload_started, SEC(1234) + 567);
	assert_string_equal(st.reload_reason, "gen 8 failed: exited with status 1 before ready");
	assert_int_equal(st.exit_status, -1);
}

static void test_status_parse_malformed(void **state)
{
	static const char *const bad[] = {
		"", "p", "pid", "pid=", "pid=\nstate=running", "PID=1\nstate=running",
		"state=running\npid=1\n",    /* must start with pid= */
		"pid=1\n",                   /* no state */
		"pid=0\nstate=running",      /* pid >= 1 */
		"pid=-1\nstate=running", "pid=+1\nstate=running", "pid= 1\nstate=running",
		"pid=1 \nstate=running", "pid=1\r\nstate=running", "pid=abc\nstate=running",
		"pid=2147483648\nstate=running", "pid=99999999999999999999\nstate=running",
		"pid=1\nstate=running\ngarbage\n", "pid=1\nstate=running\n=\nx",
		"pid=1\nstate=running\nstarttime=x", "pid=1\nstate=running\nstarttime=-1",
		"pid=1\nstate=running\nstarttime=99999999999999999999",
		"pid=1\nstate=running\ngeneration=4294967296", "pid=1\nstate=running\ngeneration=",
		"pid=1\nstate=running\ngeneration_pid=2147483648",
		"pid=1\nstate=running\nready_wait=1e3", "pid=1\nstate=running\nready_wait=-1",
		"pid=1\nstate=running\nready_wait=1000000001",
		"pid=1\nstate=running\nreload=x", "pid=1\nstate=running\nreload_generation=-2",
		"pid=1\nstate=running\nreload_started=", "pid=1\nstate=running\nreload_started=inf",
		"pid=1\nstate=exited\nexit_status=256", "pid=1\nstate=exited\nexit_status=-1",
		"pid=1\nstate=exited\nexit_status=",
	};
	struct status_info st;
	char big[1024];

	(void)state;
	for (size_t i = 0; i < COUNT(bad); i++)
		if (status_str(bad[i], &st) != -1)
			fail_msg("parse_status accepted \"%s\"", bad[i]);
	/* NUL bytes anywhere. */
	assert_int_equal(parse_status("pid=1\nstate=running\0", 20, &st), -1);
	assert_int_equal(parse_status("pid=1\0\nstate=running", 20, &st), -1);
	/* A line of 511 bytes fits the line buffer; 512 does not. */
	snprintf(big, sizeof(big), "pid=1\nstate=running\nreload_reason=");
	memset(big + strlen(big), 'r', 511 - strlen("reload_reason="));
	big[20 + 511] = '\0';
	assert_int_equal(strlen(big + 20), 511);
	assert_int_equal(status_str(big, &st), 0);
	assert_int_equal(strlen(st.reload_reason), sizeof(st.reload_reason) - 1);
	big[20 + 511] = 'r';
	big[20 + 512] = '\0';
	assert_int_equal(status_str(big, &st), -1);
	/* The length given is what counts, not a NUL. */
	assert_int_equal(parse_status("pid=1\nstate=running", 5, &st), -1);
	assert_int_equal(parse_status("pid=1\nstate=runningXXXX", 19, &st), 0);
	assert_string_equal(hw_state_names[st.state], "running");
}

/* What write_status() writes, parse_status() (the --reload reader) reads back. */
static void write_and_read(const char *state_name, struct status_info *st)
{
	char path[PATH_MAX];

	path_in_tmp(path, sizeof(path), "status");
	hw.cfg.status_file = path;
	write_status_as(state_name);
	hw.cfg.status_file = NULL;
	if (read_status_file(path, st) != 0)
		fail_msg("status file written by write_status(\"%s\") does not parse", state_name);
	/* And a hupwatch starting later accepts it as its own. */
	assert_int_equal(check_own_file("--status-file", path, STATUS_FILE), 0);
}

static void test_status_round_trip(void **state)
{
	struct generation *g;
	struct status_info st;

	(void)state;
	hw.starttime = 123456789ULL;
	hw.cfg.warmup = MSEC(1500);
	write_and_read("starting", &st);
	assert_int_equal(st.pid, getpid());
	assert_int_equal(st.starttime, 123456789ULL);
	assert_string_equal(hw_state_names[st.state], "starting");
	assert_int_equal(st.generation, 0);
	assert_int_equal(st.generation_pid, 0);
	assert_int_equal(st.ready_wait, MSEC(1500)); /* warm-up only: the warm-up */
	assert_int_equal(st.reload, 0);
	assert_string_equal(reload_state_names[st.reload_state], "none");
	assert_int_equal(st.reload_generation, 0);
	assert_int_equal(st.reload_started, 0);
	assert_string_equal(st.reload_reason, "");
	assert_int_equal(st.exit_status, -1);

	g = add_gen(3, 4242, GEN_CURRENT);
	hw.reload.count = 2;
	hw.reload.state = RELOAD_FAILED;
	hw.reload.generation = 4;
	hw.reload.started = SEC(98765) + 4321;
	snprintf(hw.reload.reason, sizeof(hw.reload.reason), "gen 4 failed: killed by SIGSEGV before ready");
	hw.cfg.notify = true; /* -n: the ready timeout */
	hw.cfg.ready_timeout = SEC(30);
	write_and_read("running", &st);
	assert_string_equal(hw_state_names[st.state], "running");
	assert_int_equal(st.generation, 3);
	assert_int_equal(st.generation_pid, 4242);
	assert_int_equal(st.ready_wait, SEC(30));
	assert_int_equal(st.reload, 2);
	assert_string_equal(reload_state_names[st.reload_state], "failed");
	assert_int_equal(st.reload_generation, 4);
	assert_int_equal(st.reload_started, SEC(98765) + 4321);
	assert_string_equal(st.reload_reason, "gen 4 failed: killed by SIGSEGV before ready");
	assert_int_equal(st.exit_status, -1);

	/* -c too; and a timeout of 0 (no limit) is written as 0. */
	hw.cfg.notify = false;
	hw.cfg.ready_cmd = "true";
	hw.cfg.ready_timeout = NEVER;
	for (enum reload_state r = RELOAD_NONE; r <= RELOAD_FAILED; r++) {
		hw.reload.state = r;
		write_and_read("stopping", &st);
		assert_string_equal(reload_state_names[st.reload_state], reload_state_names[r]);
	}
	assert_string_equal(hw_state_names[st.state], "stopping");
	/* -t 0: no limit, written as the largest duration so that 0 keeps meaning "at once". */
	assert_int_equal(st.ready_wait, NEVER);

	/* exit_status= only when exited. */
	g->state = GEN_STOPPING;
	for (int code = 0; code <= 255; code += 5) {
		hw.exit.status = code;
		write_and_read("exited", &st);
		assert_string_equal(hw_state_names[st.state], "exited");
		assert_int_equal(st.exit_status, code);
		assert_int_equal(st.generation, 0);
	}

	/* The longest reason hupwatch keeps (319 bytes) is cut to what the reader keeps. */
	memset(hw.reload.reason, 'x', sizeof(hw.reload.reason) - 1);
	hw.reload.reason[sizeof(hw.reload.reason) - 1] = '\0';
	write_and_read("running", &st);
	assert_int_equal(strlen(st.reload_reason), sizeof(st.reload_reason) - 1);

	/* The largest durations survive the trip. */
	hw.cfg.ready_cmd = NULL;
	hw.cfg.warmup = SEC(1000000000);
	hw.reload.started = SEC(999999999) + 999999999;
	write_and_read("running", &st);
	assert_int_equal(st.ready_wait, NEVER); /* the largest duration reads as no limit: 31 years */
	assert_int_equal(st.reload_started, SEC(999999999) + 999999999);
}

/* A client's request sent again is one request; another client's, another kind, kill -HUP are not. */
static void test_request_taken_once(void **state)
{
	int r3 = REQUEST_VALUE(REQUEST_RELOAD, 3), u3 = REQUEST_VALUE(REQUEST_UPGRADE, 3);

	(void)state;
	assert_int_equal(REQUEST_KIND(r3), 'r');
	assert_int_equal(REQUEST_KIND(REQUEST_VALUE(REQUEST_RELOAD, 0x1000003u)), 'r'); /* the count wraps */
	assert_false(taken_before(100, r3));
	assert_true(taken_before(100, r3));      /* sent again */
	assert_false(taken_before(101, r3));     /* another client, same count: merged or not, its own */
	assert_false(taken_before(100, u3));     /* the same client's other kind */
	assert_false(taken_before(100, REQUEST_VALUE(REQUEST_RELOAD, 4)));
	assert_false(taken_before(100, 12345));  /* not a client's value (some other sigqueue) */
	assert_false(taken_before(100, 12345));  /* ... never remembered */
	for (int i = 0; i < (int)COUNT(hw.taken); i++) /* the ring forgets the oldest */
		assert_false(taken_before(200 + i, r3));
	assert_false(taken_before(100, r3));
}

/* What a new binary's --version says of it, for --upgrade. */
static void test_judge_new_binary(void **state)
{
	(void)state;
	assert_int_equal(judge_new_binary(W_EXITCODE(0, 0), "hupwatch 1.1.0 (handover 1)"), 0);
	assert_int_equal(judge_new_binary(W_EXITCODE(0, 0), "hupwatch 9.0 (handover 99)"), 0); /* it may hand back */
	assert_int_equal(judge_new_binary(W_EXITCODE(0, 0), "hupwatch 1.0.0"), -2);         /* predates --upgrade */
	assert_int_equal(judge_new_binary(W_EXITCODE(1, 0), "hupwatch 1.1.0 (handover 1)"), -1);
	assert_int_equal(judge_new_binary(SIGKILL, "hupwatch 1.1.0 (handover 1)"), -1);     /* killed at the limit */
	assert_int_equal(judge_new_binary(W_EXITCODE(0, 0), "tini version 0.19.0"), -1);
	assert_int_equal(judge_new_binary(W_EXITCODE(0, 0), ""), -1);
}

/* An upgrade asked for after the check exited but before its verdict was acted on waits for that verdict. */
static void test_upgrade_request_during_pending_verdict(void **state)
{
	(void)state;
	hw.self.exe = xstrdup("/nonexistent/hupwatch");
	hw.upgrade.checked = true; /* the check has exited; run_due_upgrade() has not run yet */
	request_upgrade();
	assert_int_equal(hw.upgrade.requests, 1);
	assert_int_equal(hw.upgrade.check_pid, 0);         /* no second check */
	assert_int_equal(hw.upgrade.state, RELOAD_IN_PROGRESS); /* the pending verdict will answer it */
	hw.upgrade.checked = false;
	request_upgrade();                                  /* no check pending: this one starts one */
	assert_int_equal(hw.upgrade.state, RELOAD_FAILED);  /* cannot stat the file: failed at once */
}

/* reload_outcome() is pure: the client's verdict from what it read before signalling and now. */
static void test_reload_outcome(void **state)
{
	struct status_info before = { .pid = 10, .state = HW_RUNNING, .requests = 4, .reload = 3,
				      .reload_covers = 4, .reload_state = RELOAD_SUCCEEDED };
	struct status_info cur = before;

	(void)state;
	/* Nothing new yet: an earlier reload's outcome is not ours, whatever it was. */
	assert_int_equal(reload_outcome(&before, &cur), PENDING);
	cur.reload_state = RELOAD_FAILED;
	assert_int_equal(reload_outcome(&before, &cur), PENDING);
	/* Our request taken, its reload in progress, then settled either way. */
	cur.requests = 5;
	cur.reload = 4;
	cur.reload_covers = 5;
	cur.reload_state = RELOAD_IN_PROGRESS;
	assert_int_equal(reload_outcome(&before, &cur), PENDING);
	cur.reload_state = RELOAD_SUCCEEDED;
	assert_int_equal(reload_outcome(&before, &cur), SUCCEEDED);
	cur.reload_state = RELOAD_FAILED;
	assert_int_equal(reload_outcome(&before, &cur), FAILED);
	/* Collapsed into a later reload that covers ours too. */
	cur.reload_covers = 7;
	assert_int_equal(reload_outcome(&before, &cur), FAILED);
	/* A failure with hupwatch going down: nothing serves, so not "the old one still serves". */
	cur.state = HW_STOPPING;
	assert_int_equal(reload_outcome(&before, &cur), GONE);
	cur.state = HW_EXITED;
	assert_int_equal(reload_outcome(&before, &cur), GONE);
	/* A success stands even if hupwatch exited afterwards. */
	cur.reload_state = RELOAD_SUCCEEDED;
	assert_int_equal(reload_outcome(&before, &cur), SUCCEEDED);
	/* Another hupwatch wrote the file: ours is gone. */
	cur = before;
	cur.pid = 11;
	assert_int_equal(reload_outcome(&before, &cur), GONE);
	/* No clock is read: reload_started may be anything (time namespaces). */
	cur = before;
	cur.reload_started = INT64_MAX;
	cur.requests = cur.reload_covers = 5;
	assert_int_equal(reload_outcome(&before, &cur), SUCCEEDED);
}

/* --respawn: the back-off doubles from 0.1 s to at most 5 s; the crash loop is N within T. */
static void test_respawn_backoff_and_crash_loop(void **state)
{
	struct config c;
	char *ok[] = { "hupwatch", "--respawn", "--respawn-limit", "3/1.5", "cmd", NULL };

	(void)state;
	assert_int_equal(respawn_delay(0), 0);
	assert_int_equal(respawn_delay(1), MSEC(100));
	assert_int_equal(respawn_delay(2), MSEC(200));
	assert_int_equal(respawn_delay(6), MSEC(3200));
	assert_int_equal(respawn_delay(7), SEC(5));
	assert_int_equal(respawn_delay(1000), SEC(5));
	assert_int_equal(parse_options(5, ok, &c), 0);
	assert_true(c.respawn);
	assert_int_equal(c.respawn_burst, 3);
	assert_int_equal(c.respawn_interval, MSEC(1500));
	free_config(&c);
	hw.cfg.respawn_burst = 3;
	hw.cfg.respawn_interval = SEC(10);
	assert_false(crash_loop(SEC(100)));
	assert_false(crash_loop(SEC(105)));
	assert_false(crash_loop(SEC(111))); /* 3 within 11 s: not yet */
	assert_true(crash_loop(SEC(112)));  /* 105, 111, 112: 3 within 7 s */
	assert_false(crash_loop(SEC(130)));
}

/* The handover record of --upgrade: what one image writes, the next reads back. */
static void test_handover_round_trip(void **state)
{
	static const char *const texts[] = { "plain", "with space", "50% off\nnext", "-", "a-b", "\x01\x7f" };
	char buf[8192], *line, *save = NULL;
	struct generation *g;
	FILE *f;

	(void)state;
	for (size_t i = 0; i < COUNT(texts); i++) {
		char *back;

		f = fmemopen(buf, sizeof(buf), "w");
		put_text(f, texts[i]);
		fclose(f);
		assert_null(strchr(buf + 1, ' '));
		back = get_text(buf + 1);
		assert_string_equal(back, texts[i]);
		free(back);
	}
	assert_null(get_text("-"));
	assert_int_equal(handover_version("hupwatch-state 1 1.0.0\n"), 1);
	assert_int_equal(handover_version("hupwatch-state x 1.0.0\n"), -1);
	assert_int_equal(handover_version("something else"), -1);

	g = add_gen(3, 4242, GEN_CURRENT);
	g->dir = xstrdup("/srv/app/releases/7 (new)");
	add_gen(2, 4141, GEN_STOPPING)->killed = true;
	hw.gens->leftovers = true;
	assert_false(taken_before(77, REQUEST_VALUE(REQUEST_UPGRADE, 1)));
	hw.reload.requests = 5;
	hw.reload.count = 4;
	snprintf(hw.reload.reason, sizeof(hw.reload.reason), "gen 4 failed: exited with status 1 before ready");
	hw.respawn.count = 2;
	f = fmemopen(buf, sizeof(buf), "w");
	write_handover(f);
	fclose(f);
	reset_hw();
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		resume_line(line);
	g = current_gen();
	assert_non_null(g);
	assert_int_equal(g->number, 3);
	assert_int_equal(g->pid, 4242);
	assert_string_equal(g->dir, "/srv/app/releases/7 (new)");
	assert_int_equal(hw.gens->number, 2); /* in the order they were listed */
	assert_ptr_equal(hw.gens->next, g);
	assert_true(hw.gens->killed);
	assert_true(hw.gens->leftovers);
	assert_false(g->leftovers);
	assert_true(taken_before(77, REQUEST_VALUE(REQUEST_UPGRADE, 1))); /* an upgrade client sending again */
	assert_int_equal(hw.reload.requests, 5);
	assert_int_equal(hw.reload.count, 4);
	assert_string_equal(hw.reload.reason, "gen 4 failed: exited with status 1 before ready");
	assert_int_equal(hw.respawn.count, 2);
	assert_int_equal(hw.state, HW_RUNNING);
	g->pid = hw.gens->pid = 0; /* no process to clean up */
}

/* No status file configured: nothing written, nothing crashes. */
static void test_status_not_configured(void **state)
{
	(void)state;
	hw.cfg.status_file = NULL;
	write_status_as("running");
}

/* ---- files ------------------------------------------------------------------------------- */

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void test_write_atomic_and_read_file(void **state)
{
	char path[PATH_MAX], buf[64];
	struct stat sb;
	ssize_t n;
	DIR *d;
	struct dirent *e;
	int entries = 0;

	(void)state;
	path_in_tmp(path, sizeof(path), "file");
	assert_int_equal(write_atomic(path, "hello\n"), 0);
	assert_int_equal(write_atomic(path, "12345\n"), 0); /* replaces */
	n = read_file(path, buf, sizeof(buf));
	assert_int_equal(n, 6);
	assert_string_equal(buf, "12345\n");
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0644);
	/* No temporary file left behind. */
	d = opendir(tmpdir);
	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			entries++;
	closedir(d);
	assert_int_equal(entries, 1);
	/* read_file reads at most size - 1 bytes and terminates them. */
	assert_int_equal(read_file(path, buf, 4), 3);
	assert_string_equal(buf, "123");
	/* Failures say so. */
	path_in_tmp(path, sizeof(path), "no/such/dir/file");
	errno = 0;
	assert_int_equal(write_atomic(path, "x"), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(read_file(path, buf, sizeof(buf)), -1);
}

/* A pid or status file that is a symlink or not hupwatch's own is refused, never replaced. */
static void test_check_own_file(void **state)
{
	char path[PATH_MAX], link[PATH_MAX];

	(void)state;
	path_in_tmp(path, sizeof(path), "absent");
	assert_int_equal(check_own_file("--pid-file", path, PID_FILE), 0);
	assert_int_equal(check_own_file("--status-file", path, STATUS_FILE), 0);

	path_in_tmp(path, sizeof(path), "pid");
	write_text(path, "12345\n");
	assert_int_equal(check_own_file("--pid-file", path, PID_FILE), 0);
	write_text(path, "12345");
	assert_int_equal(check_own_file("--pid-file", path, PID_FILE), 0);
	write_text(path, "");
	assert_int_equal(check_own_file("--pid-file", path, PID_FILE), 0);
	write_text(path, "import os\n");
	assert_int_equal(check_own_file("--pid-file", path, PID_FILE), -1);
	write_text(path, "12 34\n");
	assert_int_equal(check_own_file("--pid-file", path, PID_FILE), -1);
	write_text(path, "1234\n\n");
	assert_int_equal(check_own_file("--pid-file", path, PID_FILE), -1);

	path_in_tmp(path, sizeof(path), "status");
	{
		/* A status file of a hupwatch still running is someone else's: refused. */
		pid_t live = start_idle(), dead = fork();
		unsigned long long t = process_starttime(live);
		char text[128];

		assert_true(dead >= 0);
		if (dead == 0)
			_exit(0);
		assert_int_equal(waitpid(dead, NULL, 0), dead);
		snprintf(text, sizeof(text), "pid=%d\nstarttime=%llu\nstate=running\n", (int)dead, t);
		write_text(path, text);
		assert_int_equal(check_own_file("--status-file", path, STATUS_FILE), 0); /* gone */
		snprintf(text, sizeof(text), "pid=%d\nstarttime=%llu\nstate=running\n", (int)live, t);
		write_text(path, text);
		assert_int_equal(check_own_file("--status-file", path, STATUS_FILE), -1); /* running */
		snprintf(text, sizeof(text), "pid=%d\nstarttime=%llu\nstate=exited\n", (int)live, t);
		write_text(path, text);
		assert_int_equal(check_own_file("--status-file", path, STATUS_FILE), 0); /* said it exited */
		snprintf(text, sizeof(text), "pid=%d\nstarttime=%llu\nstate=running\n", (int)live, t + 1);
		write_text(path, text);
		assert_int_equal(check_own_file("--status-file", path, STATUS_FILE), 0); /* pid reused */
		kill(live, SIGKILL);
		waitpid(live, NULL, 0);
	}
	write_text(path, "");
	assert_int_equal(check_own_file("--status-file", path, STATUS_FILE), 0);
	write_text(path, "[program:app]\ncommand=hupwatch\n");
	assert_int_equal(check_own_file("--status-file", path, STATUS_FILE), -1);

	/* A symlink, even to a file that would pass. */
	path_in_tmp(link, sizeof(link), "link");
	write_text(path, "pid=1\nstate=running\n");
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(check_own_file("--status-file", link, STATUS_FILE), -1);
	assert_int_equal(check_own_file("--pid-file", link, PID_FILE), -1);
	/* A directory. */
	assert_int_equal(check_own_file("--pid-file", tmpdir, PID_FILE), -1);
}

/* /proc readers used for notify credentials and --reload's liveness check. */
static void test_proc_helpers(void **state)
{
	pid_t kid;

	(void)state;
	assert_true(process_starttime(getpid()) > 0);
	assert_int_equal(process_starttime(getpid()), process_starttime(getpid()));
	assert_int_equal(parent_of(getpid()), getppid());
	assert_true(is_descendant(getpid(), getpid()));
	kid = start_idle();
	assert_int_equal(parent_of(kid), getpid());
	assert_true(is_descendant(kid, kid));
	assert_true(is_descendant(kid, getpid()));
	assert_false(is_descendant(getpid(), kid));
	assert_false(is_descendant(1, kid));
	hw.gens = NULL;
	{
		struct generation *g = add_gen(1, kid, GEN_CURRENT), *other = add_gen(2, getpid(), GEN_STARTING);

		/* a live sender counts for the generation it belongs to, and for no other */
		assert_true(sender_in(g, kid));
		assert_false(sender_in(g, getppid()));
		assert_false(sender_in(g, getpid()));
		assert_true(sender_in(other, kid)); /* kid is a child of this process, other's "main" */
		/* a sender already gone is credited to the socket it reached */
		{
			pid_t gone = fork();

			if (gone == 0)
				_exit(0);
			assert_int_equal(waitpid(gone, NULL, 0), gone);
			assert_true(sender_in(g, gone));
		}
	}
}

/* ---- resolve_workdir: where each generation starts --------------------------------------- */

static char saved_cwd[PATH_MAX], *saved_pwd;

/* cwd = tmpdir/current, a symlink to tmpdir/real, and $PWD saying so (as a shell would). */
static void enter_symlinked_dir(void)
{
	char real[PATH_MAX], current[PATH_MAX], sub[PATH_MAX];

	assert_non_null(getcwd(saved_cwd, sizeof(saved_cwd)));
	saved_pwd = getenv("PWD") ? strdup(getenv("PWD")) : NULL;
	path_in_tmp(real, sizeof(real), "real");
	path_in_tmp(current, sizeof(current), "current");
	path_in_tmp(sub, sizeof(sub), "real/sub");
	assert_int_equal(mkdir(real, 0755), 0);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(symlink(real, current), 0);
	assert_int_equal(chdir(current), 0);
	assert_int_equal(setenv("PWD", current, 1), 0);
}

static void leave_symlinked_dir(void)
{
	assert_int_equal(chdir(saved_cwd), 0);
	if (saved_pwd)
		setenv("PWD", saved_pwd, 1);
	else
		unsetenv("PWD");
	free(saved_pwd);
	saved_pwd = NULL;
}

static void test_resolve_workdir(void **state)
{
	char want[PATH_MAX + 64], file[PATH_MAX];

	(void)state;
	enter_symlinked_dir();
	/* No --chdir: the logical $PWD, so a swapped symlink is followed at the next spawn. */
	assert_int_equal(resolve_workdir(), 0);
	path_in_tmp(want, sizeof(want), "current");
	assert_string_equal(hw.workdir, want);
	free(hw.workdir);
	hw.workdir = NULL;
	/* $PWD naming another directory is not trusted: the inherited cwd is used as it is. */
	setenv("PWD", "/", 1);
	assert_int_equal(resolve_workdir(), 0);
	assert_null(hw.workdir);
	setenv("PWD", "relative", 1);
	assert_int_equal(resolve_workdir(), 0);
	assert_null(hw.workdir);
	path_in_tmp(want, sizeof(want), "current");
	setenv("PWD", want, 1);
	/* A relative --chdir is taken from the logical $PWD. */
	hw.cfg.chdir = "sub";
	assert_int_equal(resolve_workdir(), 0);
	path_in_tmp(want, sizeof(want), "current/sub");
	assert_string_equal(hw.workdir, want);
	free(hw.workdir);
	hw.workdir = NULL;
	/* An absolute one as it is. */
	hw.cfg.chdir = "/";
	assert_int_equal(resolve_workdir(), 0);
	assert_string_equal(hw.workdir, "/");
	free(hw.workdir);
	hw.workdir = NULL;
	/* One that does not exist: an error naming it. */
	hw.cfg.level = L_INFO;
	hw.cfg.chdir = "no-such-dir";
	capture_start();
	assert_int_equal(resolve_workdir(), -1);
	capture_end();
	assert_non_null(strstr(cap_err, "error: cannot use --chdir 'no-such-dir': No such file or directory\n"));
	free(hw.workdir);
	hw.workdir = NULL;
	/* A file, not a directory. */
	path_in_tmp(file, sizeof(file), "file");
	write_text(file, "x\n");
	hw.cfg.chdir = file;
	errno = 0;
	capture_start();
	assert_int_equal(resolve_workdir(), -1);
	capture_end();
	snprintf(want, sizeof(want), "error: cannot use --chdir '%s': not a directory\n", file);
	assert_non_null(strstr(cap_err, want));
	free(hw.workdir);
	hw.workdir = NULL;
	leave_symlinked_dir();
}

/* ---- parse_options ----------------------------------------------------------------------- */

static char *args[64];

/*
 * parse_options on "hupwatch" followed by the NULL-terminated arguments, with stdout and
 * stderr captured into cap_out and cap_err.
 */
static int parse_args(struct config *c, ...)
{
	va_list ap;
	int argc = 0, rc;
	char *a;

	args[argc++] = "hupwatch";
	va_start(ap, c);
	while ((a = va_arg(ap, char *)) != NULL) {
		assert_true(argc < (int)COUNT(args) - 1);
		args[argc++] = a;
	}
	va_end(ap);
	args[argc] = NULL;
	capture_start();
	rc = parse_options(argc, args, c);
	capture_end();
	return rc;
}

static void test_options_defaults(void **state)
{
	struct config c;

	(void)state;
	assert_int_equal(parse_args(&c, "server", "--port", "80", NULL), 0);
	assert_int_equal(c.warmup, SEC(1));
	assert_false(c.warmup_set);
	assert_false(c.notify);
	assert_null(c.ready_cmd);
	assert_int_equal(c.ready_interval, MSEC(200));
	assert_int_equal(c.ready_timeout, SEC(60));
	assert_false(c.ready_timeout_set);
	assert_int_equal(c.stop_signal, SIGTERM);
	assert_int_equal(c.stop_timeout, SEC(75)); /* DEFAULT_STOP_TIMEOUT; -T 0 is no limit */
	assert_int_equal(DEFAULT_STOP_TIMEOUT, SEC(75));
	assert_false(c.kill_at_exit);
	assert_false(c.socket_mode_set);
	assert_false(c.socket_owner_set);
	assert_false(c.user.set);
	assert_null(c.user.name);
	assert_null(c.env_file);
	assert_null(c.listen);
	assert_int_equal(c.nlisten, 0);
	assert_int_equal(c.backlog, SOMAXCONN);
	assert_null(c.chdir);
	assert_null(c.pid_file);
	assert_null(c.status_file);
	assert_false(c.reload);
	assert_int_equal(c.level, L_INFO);
	assert_ptr_equal(c.command, args + 1);
	assert_string_equal(c.command[0], "server");
	assert_string_equal(c.command[2], "80");
	assert_null(c.command[3]);
	assert_string_equal(cap_err, "");
	assert_string_equal(cap_out, "");
	free_config(&c);

	assert_int_equal(parse_args(&c, "--", "server", NULL), 0);
	assert_ptr_equal(c.command, args + 2);
	free_config(&c);
}

/* Each option, in its short, long and long=value forms. */
static void test_options_each(void **state)
{
	static const struct {
		const char *forms[3][2];
	} opts[] = {
		{ { { "-w", "2.5" }, { "--warmup-time", "2.5" }, { "--warmup-time=2.5", NULL } } },
		{ { { "-n", NULL }, { "--notify", NULL }, { "-n", NULL } } },
		{ { { "-c", "curl -f x" }, { "--ready-cmd", "curl -f x" }, { "--ready-cmd=curl -f x", NULL } } },
		{ { { "-i", "0.5" }, { "--ready-interval", "0.5" }, { "--ready-interval=0.5", NULL } } },
		{ { { "-t", "5" }, { "--ready-timeout", "5" }, { "--ready-timeout=5", NULL } } },
		{ { { "-s", "INT" }, { "--stop-signal", "sigint" }, { "--stop-signal=2", NULL } } },
		{ { { "-T", "3" }, { "--stop-timeout", "3" }, { "--stop-timeout=3", NULL } } },
		{ { { "-k", NULL }, { "--kill-at-exit", NULL }, { "-k", NULL } } },
		{ { { "-l", "127.0.0.1:80" }, { "--listen", "127.0.0.1:80" }, { "--listen=127.0.0.1:80", NULL } } },
		{ { { "-b", "16" }, { "--backlog", "16" }, { "--backlog=16", NULL } } },
		{ { { "-d", "/srv/app" }, { "--chdir", "/srv/app" }, { "--chdir=/srv/app", NULL } } },
		{ { { "-p", "/run/hw.pid" }, { "--pid-file", "/run/hw.pid" }, { "--pid-file=/run/hw.pid", NULL } } },
		{ { { "-S", "/run/hw.st" }, { "--status-file", "/run/hw.st" }, { "--status-file=/run/hw.st", NULL } } },
		{ { { "-v", NULL }, { "--verbose", NULL }, { "-v", NULL } } },
		{ { { "-q", NULL }, { "--quiet", NULL }, { "-q", NULL } } },
		{ { { "--socket-mode", "660" }, { "--socket-mode", "0660" }, { "--socket-mode=660", NULL } } },
		{ { { "--socket-owner", "0:0" }, { "--socket-owner", "root:root" }, { "--socket-owner=root:0", NULL } } },
		{ { { "--user", "root" }, { "--user", "0" }, { "--user=root:root", NULL } } },
		{ { { "--env-file", ".env" }, { "--env-file", ".env" }, { "--env-file=.env", NULL } } },
	};
	struct config c;

	(void)state;
	for (size_t i = 0; i < COUNT(opts); i++)
		for (int f = 0; f < 3; f++) {
			char *o = (char *)opts[i].forms[f][0], *v = (char *)opts[i].forms[f][1];
			int rc = v ? parse_args(&c, o, v, "cmd", NULL) : parse_args(&c, o, "cmd", NULL);

			if (rc != 0)
				fail_msg("%s %s: rc %d: %s", o, v ? v : "", rc, cap_err);
			assert_string_equal(c.command[0], "cmd");
			switch (i) {
			case 0:
				assert_int_equal(c.warmup, MSEC(2500));
				assert_true(c.warmup_set);
				break;
			case 1:
				assert_true(c.notify);
				assert_int_equal(c.warmup, 0);
				break;
			case 2:
				assert_string_equal(c.ready_cmd, "curl -f x");
				assert_int_equal(c.warmup, 0);
				break;
			case 3:
				assert_int_equal(c.ready_interval, MSEC(500));
				break;
			case 4:
				assert_int_equal(c.ready_timeout, SEC(5));
				assert_true(c.ready_timeout_set);
				break;
			case 5:
				assert_int_equal(c.stop_signal, SIGINT);
				break;
			case 6:
				assert_int_equal(c.stop_timeout, SEC(3));
				break;
			case 7:
				assert_true(c.kill_at_exit);
				break;
			case 8:
				assert_int_equal(c.nlisten, 1);
				assert_string_equal(c.listen[0], "127.0.0.1:80");
				break;
			case 9:
				assert_int_equal(c.backlog, 16);
				break;
			case 10:
				assert_string_equal(c.chdir, "/srv/app");
				break;
			case 11:
				assert_string_equal(c.pid_file, "/run/hw.pid");
				break;
			case 12:
				assert_string_equal(c.status_file, "/run/hw.st");
				break;
			case 13:
				assert_int_equal(c.level, L_DEBUG);
				break;
			case 14:
				assert_int_equal(c.level, L_ERROR);
				break;
			case 15:
				assert_true(c.socket_mode_set);
				assert_int_equal(c.socket_mode, 0660);
				break;
			case 16:
				assert_true(c.socket_owner_set);
				assert_int_equal(c.socket_uid, 0);
				assert_int_equal(c.socket_gid, 0);
				break;
			case 17:
				assert_true(c.user.set);
				assert_int_equal(c.user.uid, 0);
				assert_string_equal(c.user.name, "root");
				break;
			case 18:
				assert_string_equal(c.env_file, ".env");
				break;
			}
			assert_string_equal(cap_err, "");
			free_config(&c);
		}
}

static void test_options_combined(void **state)
{
	struct config c;

	(void)state;
	/* Grouped short options and attached values. */
	assert_int_equal(parse_args(&c, "-knv", "-w2", "-sKILL", "-T0.5", "cmd", NULL), 0);
	assert_true(c.kill_at_exit);
	assert_true(c.notify);
	assert_int_equal(c.level, L_DEBUG);
	assert_int_equal(c.warmup, SEC(2));
	assert_int_equal(c.stop_signal, SIGKILL);
	assert_int_equal(c.stop_timeout, MSEC(500));
	free_config(&c);

	/* --listen is repeatable and keeps its order. */
	assert_int_equal(parse_args(&c, "-l", "8080", "--listen", "[::1]:8081", "-l", "unix:/tmp/s",
				    "--listen=localhost:0", "cmd", NULL), 0);
	assert_int_equal(c.nlisten, 4);
	assert_string_equal(c.listen[0], "8080");
	assert_string_equal(c.listen[1], "[::1]:8081");
	assert_string_equal(c.listen[2], "unix:/tmp/s");
	assert_string_equal(c.listen[3], "localhost:0");
	free_config(&c);
	assert_null(c.listen);
	assert_int_equal(c.nlisten, 0);

	/* The last of -v and -q wins; a later -w too. */
	assert_int_equal(parse_args(&c, "-v", "-q", "-w", "1", "-w", "3", "cmd", NULL), 0);
	assert_int_equal(c.level, L_ERROR);
	assert_int_equal(c.warmup, SEC(3));
	free_config(&c);

	/* Unambiguous abbreviations of long options, as getopt_long allows. */
	assert_int_equal(parse_args(&c, "--warm", "4", "--kill", "cmd", NULL), 0);
	assert_int_equal(c.warmup, SEC(4));
	assert_true(c.kill_at_exit);
	free_config(&c);
}

/* -w defaults to 1, and to 0 with -n or -c; a -w given is kept, before or after them. */
static void test_options_warmup_default(void **state)
{
	struct config c;

	(void)state;
	assert_int_equal(parse_args(&c, "cmd", NULL), 0);
	assert_int_equal(c.warmup, SEC(1));
	free_config(&c);
	assert_int_equal(parse_args(&c, "-n", "cmd", NULL), 0);
	assert_int_equal(c.warmup, 0);
	free_config(&c);
	assert_int_equal(parse_args(&c, "-c", "true", "cmd", NULL), 0);
	assert_int_equal(c.warmup, 0);
	free_config(&c);
	assert_int_equal(parse_args(&c, "-n", "-c", "true", "cmd", NULL), 0);
	assert_int_equal(c.warmup, 0);
	free_config(&c);
	assert_int_equal(parse_args(&c, "-n", "-w", "3", "cmd", NULL), 0);
	assert_int_equal(c.warmup, SEC(3));
	free_config(&c);
	assert_int_equal(parse_args(&c, "-w", "3", "-c", "true", "cmd", NULL), 0);
	assert_int_equal(c.warmup, SEC(3));
	free_config(&c);
	assert_int_equal(parse_args(&c, "-w", "1", "-n", "cmd", NULL), 0);
	assert_int_equal(c.warmup, SEC(1)); /* explicit, even though it equals the default */
	assert_true(c.warmup_set);
	free_config(&c);
	assert_int_equal(parse_args(&c, "-w", "0", "cmd", NULL), 0);
	assert_int_equal(c.warmup, 0);
	free_config(&c);
	/* The warm-up must be able to pass within the ready timeout, when there is one. */
	assert_int_equal(parse_args(&c, "-n", "-w", "59.999", "cmd", NULL), 0);
	free_config(&c);
	assert_int_equal(parse_args(&c, "-n", "-w", "100", "-t", "0", "cmd", NULL), 0); /* no limit */
	assert_int_equal(c.warmup, SEC(100));
	free_config(&c);
	assert_int_equal(parse_args(&c, "-w", "100", "-t", "5", "cmd", NULL), 0); /* -t has no effect */
	assert_int_equal(c.warmup, SEC(100));
	free_config(&c);
}

/* Options that do nothing in this combination are accepted with a warning (unless -q). */
static void test_options_warnings(void **state)
{
	static const char t_warning[] = "warning: --ready-timeout has no effect without --notify, --ready-cmd or --ready-http\n";
	static const char i_warning[] = "warning: --ready-interval has no effect without --ready-cmd or --ready-http\n";

	(void)state;
	/* main() parses into hw.cfg, whose level the log follows. */
	assert_int_equal(parse_args(&hw.cfg, "-t", "5", "cmd", NULL), 0);
	assert_non_null(strstr(cap_err, t_warning));
	assert_null(strstr(cap_err, i_warning));
	assert_int_equal(count_lines(cap_err), 1);
	free_config(&hw.cfg);
	assert_int_equal(parse_args(&hw.cfg, "-n", "-i", "1", "cmd", NULL), 0);
	assert_non_null(strstr(cap_err, i_warning));
	assert_int_equal(count_lines(cap_err), 1);
	free_config(&hw.cfg);
	assert_int_equal(parse_args(&hw.cfg, "--ready-interval=1", "--ready-timeout=9", "cmd", NULL), 0);
	assert_non_null(strstr(cap_err, t_warning));
	assert_non_null(strstr(cap_err, i_warning));
	free_config(&hw.cfg);
	/* Where they do something: silence. */
	assert_int_equal(parse_args(&hw.cfg, "-c", "true", "-i", "1", "-t", "5", "cmd", NULL), 0);
	assert_string_equal(cap_err, "");
	free_config(&hw.cfg);
	assert_int_equal(parse_args(&hw.cfg, "-n", "-t", "5", "cmd", NULL), 0);
	assert_string_equal(cap_err, "");
	free_config(&hw.cfg);
	/* -q: errors only. */
	assert_int_equal(parse_args(&hw.cfg, "-q", "-t", "5", "-i", "1", "cmd", NULL), 0);
	assert_string_equal(cap_err, "");
	free_config(&hw.cfg);
	/* --reload takes -t for itself: no warning. */
	assert_int_equal(parse_args(&hw.cfg, "-R", "-S", "f", "-t", "5", NULL), 0);
	assert_string_equal(cap_err, "");
	free_config(&hw.cfg);
}

/* rc 125, exactly two lines on stderr: the one naming option and value, then the --help pointer. */
static void expect_usage_error(const char *first_line_prefix)
{
	const char *try = "Try 'hupwatch --help' for more information.\n";
	size_t n = strlen(cap_err), t = strlen(try);

	if (strncmp(cap_err, first_line_prefix, strlen(first_line_prefix)) != 0)
		fail_msg("stderr \"%s\" does not start with \"%s\"", cap_err, first_line_prefix);
	if (count_lines(cap_err) != 2 || n < t || strcmp(cap_err + n - t, try) != 0)
		fail_msg("stderr is not one line and the --help pointer: \"%s\"", cap_err);
	assert_string_equal(cap_out, "");
}

static void test_options_usage_errors(void **state)
{
	static const struct {
		const char *args[8];
		const char *err;
	} cases[] = {
		{ { "-w", "abc", "cmd" }, "hupwatch: --warmup-time: invalid duration 'abc'" },
		{ { "--warmup-time", "-1", "cmd" }, "hupwatch: --warmup-time: invalid duration '-1'" },
		{ { "-w", "", "cmd" }, "hupwatch: --warmup-time: invalid duration ''" },
		{ { "-w", "1e3", "cmd" }, "hupwatch: --warmup-time: invalid duration '1e3'" },
		{ { "-i", "x", "cmd" }, "hupwatch: --ready-interval: invalid duration 'x'" },
		{ { "-i", "0", "cmd" }, "hupwatch: --ready-interval: must be more than 0, not '0'" },
		{ { "-i", "0.0000000001", "cmd" }, "hupwatch: --ready-interval: invalid duration '0.0000000001'" },
		{ { "-t", "inf", "cmd" }, "hupwatch: --ready-timeout: invalid duration 'inf'" },
		{ { "-T", "1000000001", "cmd" }, "hupwatch: --stop-timeout: invalid duration '1000000001'" },
		{ { "-s", "FOO", "cmd" }, "hupwatch: --stop-signal: unknown signal 'FOO'" },
		{ { "-s", "0", "cmd" }, "hupwatch: --stop-signal: unknown signal '0'" },
		{ { "--stop-signal", "32", "cmd" }, "hupwatch: --stop-signal: unknown signal '32'" },
		{ { "-s", "", "cmd" }, "hupwatch: --stop-signal: unknown signal ''" },
		{ { "-l", "::1:80", "cmd" }, "hupwatch: --listen: invalid address '::1:80'" },
		{ { "-l", "65536", "cmd" }, "hupwatch: --listen: invalid address '65536'" },
		{ { "-l", "unix:", "cmd" }, "hupwatch: --listen: invalid address 'unix:'" },
		{ { "-l", "8080", "-l", "host:", "cmd" }, "hupwatch: --listen: invalid address 'host:'" },
		{ { "-b", "0", "cmd" }, "hupwatch: --backlog: invalid number '0'" },
		{ { "-b", "1000001", "cmd" }, "hupwatch: --backlog: invalid number '1000001'" },
		{ { "-b", "-5", "cmd" }, "hupwatch: --backlog: invalid number '-5'" },
		{ { "-b", "12x", "cmd" }, "hupwatch: --backlog: invalid number '12x'" },
		{ { "-b", "", "cmd" }, "hupwatch: --backlog: invalid number ''" },
		{ { "-d", "", "cmd" }, "hupwatch: --chdir: empty directory name" },
		{ { "-p", "", "cmd" }, "hupwatch: --pid-file: empty file name" },
		{ { "-S", "", "cmd" }, "hupwatch: --status-file: empty file name" },
		{ { "-c", "", "cmd" }, "hupwatch: --ready-cmd: empty command" },
		{ { "--socket-mode", "888", "cmd" }, "hupwatch: --socket-mode: invalid mode (octal, at most 777) '888'" },
		{ { "--socket-mode", "1777", "cmd" }, "hupwatch: --socket-mode: invalid mode (octal, at most 777) '1777'" },
		{ { "--socket-mode", "", "cmd" }, "hupwatch: --socket-mode: invalid mode (octal, at most 777) ''" },
		{ { "--socket-mode=u=rw", "cmd" }, "hupwatch: --socket-mode: invalid mode (octal, at most 777) 'u=rw'" },
		{ { "--socket-owner", "no-such-user-hw", "cmd" }, "hupwatch: --socket-owner: unknown user in 'no-such-user-hw'" },
		{ { "--socket-owner", "root:nogrp-hw", "cmd" }, "hupwatch: --socket-owner: unknown group in 'root:nogrp-hw'" },
		{ { "--socket-owner", "root:", "cmd" }, "hupwatch: --socket-owner: invalid owner 'root:'" },
		{ { "--socket-owner", "", "cmd" }, "hupwatch: --socket-owner: invalid owner ''" },
		{ { "--user", ":root", "cmd" }, "hupwatch: --user: invalid user ':root'" },
		{ { "--user", "no-such-user-hw", "cmd" }, "hupwatch: --user: unknown user in 'no-such-user-hw'" },
		{ { "--user", "root:nogrp-hw", "cmd" }, "hupwatch: --user: unknown group in 'root:nogrp-hw'" },
		{ { "--user", "root", "--user", "", "cmd" }, "hupwatch: --user: invalid user ''" },
		{ { "--env-file", "", "cmd" }, "hupwatch: --env-file: empty file name" },
		{ { "-l", "udp:unix:/x", "cmd" }, "hupwatch: --listen: invalid address 'udp:unix:/x'" },
		{ { "-l", "udp:", "cmd" }, "hupwatch: --listen: invalid address 'udp:'" },
		{ { "-R", "-S", "f", "--user", "root" }, "hupwatch: --reload: cannot be combined with --user" },
		{ { "-R", "-S", "f", "--env-file", "x" }, "hupwatch: --reload: cannot be combined with --env-file" },
		{ { NULL }, "hupwatch: missing COMMAND" },
		{ { "-k", NULL }, "hupwatch: missing COMMAND" },
		{ { "-k", "--", NULL }, "hupwatch: missing COMMAND" },
		/* a warm-up that can never pass within the ready timeout */
		{ { "-n", "-w", "60", "cmd" }, "hupwatch: --warmup-time: 60.000s can never pass within --ready-timeout 60.000s" },
		{ { "-c", "true", "-w", "5", "-t", "2.5", "cmd" }, "hupwatch: --warmup-time: 5.000s can never pass within --ready-timeout 2.500s" },
		/* getopt's own messages, then the same pointer */
		{ { "--bogus", "cmd" }, "hupwatch: unrecognized option '--bogus'" },
		{ { "-x", "cmd" }, "hupwatch: invalid option -- 'x'" },
		{ { "-w", NULL }, "hupwatch: option requires an argument -- 'w'" },
		{ { "--listen", NULL }, "hupwatch: option '--listen' requires an argument" },
		{ { "--notify=1", "cmd" }, "hupwatch: option '--notify' doesn't allow an argument" },
		{ { "--re", "cmd" }, "hupwatch: option '--re' is ambiguous" },
	};
	struct config c;

	(void)state;
	for (size_t i = 0; i < COUNT(cases); i++) {
		int rc;

		memset(&c, 0x5a, sizeof(c));
		rc = parse_args(&c, (char *)cases[i].args[0], (char *)cases[i].args[1], (char *)cases[i].args[2],
				(char *)cases[i].args[3], (char *)cases[i].args[4], (char *)cases[i].args[5],
				(char *)cases[i].args[6], (char *)NULL);
		if (rc != EXIT_FAILURE_OWN)
			fail_msg("case %zu (%s): rc %d, want 125", i, cases[i].err, rc);
		expect_usage_error(cases[i].err);
		assert_null(c.listen); /* freed by parse_options itself */
		free_config(&c);      /* and harmless again */
	}
}

static void test_options_reload(void **state)
{
	static const char *const not_with[][2] = {
		{ "-k", NULL }, { "-n", NULL }, { "-w", "1" }, { "-c", "true" }, { "-i", "1" }, { "-s", "INT" },
		{ "-T", "1" }, { "-l", "80" }, { "-b", "5" }, { "-d", "/" }, { "-p", "/x" },
	};
	struct config c;

	(void)state;
	assert_int_equal(parse_args(&c, "-R", "-S", "/run/hw.st", NULL), 0);
	assert_true(c.reload);
	assert_string_equal(c.status_file, "/run/hw.st");
	assert_null(c.command[0]);
	free_config(&c);
	assert_int_equal(parse_args(&c, "--reload", "--status-file", "/run/hw.st", "-t", "5", "-v", NULL), 0);
	assert_true(c.reload);
	assert_int_equal(c.ready_timeout, SEC(5));
	assert_true(c.ready_timeout_set);
	free_config(&c);
	assert_int_equal(parse_args(&c, "-q", "-S", "f", "--reload", NULL), 0);
	free_config(&c);

	assert_int_equal(parse_args(&c, "-R", NULL), EXIT_FAILURE_OWN);
	expect_usage_error("hupwatch: --reload: needs --status-file FILE");
	assert_int_equal(parse_args(&c, "-R", "-S", "f", "cmd", NULL), EXIT_FAILURE_OWN);
	expect_usage_error("hupwatch: --reload: takes no COMMAND ('cmd')");
	assert_int_equal(parse_args(&c, "-R", "-S", "f", "--", "cmd", NULL), EXIT_FAILURE_OWN);
	expect_usage_error("hupwatch: --reload: takes no COMMAND ('cmd')");
	for (size_t i = 0; i < COUNT(not_with); i++) {
		char want[128];
		int rc = not_with[i][1]
			? parse_args(&c, "-R", "-S", "f", (char *)not_with[i][0], (char *)not_with[i][1], NULL)
			: parse_args(&c, "-R", "-S", "f", (char *)not_with[i][0], NULL);

		assert_int_equal(rc, EXIT_FAILURE_OWN);
		snprintf(want, sizeof(want), "hupwatch: --reload: cannot be combined with --%s",
			 long_name(not_with[i][0][1]));
		expect_usage_error(want);
		assert_null(c.listen);
	}
}

static void test_options_help_version(void **state)
{
	struct config c;

	(void)state;
	assert_int_equal(parse_args(&c, "--help", NULL), -1);
	assert_int_equal(strncmp(cap_out, "Usage: hupwatch [-knqvV]", 24), 0);
	assert_string_equal(cap_out, usage_text);
	assert_string_equal(cap_err, "");
	assert_int_equal(parse_args(&c, "-h", "cmd", NULL), -1);
	assert_string_equal(cap_out, usage_text);
	assert_int_equal(parse_args(&c, "-V", NULL), -1);
	assert_string_equal(cap_out, "hupwatch " VERSION " (handover 1)\n");
	assert_string_equal(cap_err, "");
	assert_int_equal(parse_args(&c, "--version", "cmd", NULL), -1);
	assert_string_equal(cap_out, "hupwatch " VERSION " (handover 1)\n");
	/* Options before it are parsed (and freed) first. */
	assert_int_equal(parse_args(&c, "-l", "80", "--version", NULL), -1);
	assert_null(c.listen);
	/* An error before --help wins. */
	assert_int_equal(parse_args(&c, "-w", "x", "--help", NULL), EXIT_FAILURE_OWN);
	assert_string_equal(cap_out, "");
}

/* Parsing stops at the first non-option: the command's own flags are never read as ours. */
static void test_options_stop_at_command(void **state)
{
	struct config c;

	(void)state;
	assert_int_equal(parse_args(&c, "-k", "gunicorn", "-w", "4", "--help", "-V", "app:wsgi", NULL), 0);
	assert_true(c.kill_at_exit);
	assert_int_equal(c.warmup, SEC(1));
	assert_string_equal(c.command[0], "gunicorn");
	assert_string_equal(c.command[1], "-w");
	assert_string_equal(c.command[2], "4");
	assert_string_equal(c.command[3], "--help");
	assert_string_equal(c.command[4], "-V");
	assert_string_equal(cap_out, "");
	free_config(&c);
	/* After --, even what looks like our option is the command. */
	assert_int_equal(parse_args(&c, "--", "-k", "x", NULL), 0);
	assert_false(c.kill_at_exit);
	assert_string_equal(c.command[0], "-k");
	free_config(&c);
	/* The command may be named like an option value. */
	assert_int_equal(parse_args(&c, "-s", "TERM", "TERM", NULL), 0);
	assert_string_equal(c.command[0], "TERM");
	free_config(&c);
}

/* getopt keeps state between calls; parse_options starts afresh every time. */
static void test_options_reparse(void **state)
{
	struct config c;

	(void)state;
	/* Fail in the middle of a group of short options ... */
	assert_int_equal(parse_args(&c, "-kxn", "cmd", NULL), EXIT_FAILURE_OWN);
	/* ... the next parse does not resume there. */
	assert_int_equal(parse_args(&c, "-w", "2", "cmd", NULL), 0);
	assert_false(c.notify);
	assert_false(c.kill_at_exit);
	assert_int_equal(c.warmup, SEC(2));
	assert_string_equal(c.command[0], "cmd");
	free_config(&c);
	assert_int_equal(parse_args(&c, "-n", "cmd2", NULL), 0);
	assert_int_equal(c.warmup, 0); /* nothing left of the previous -w */
	assert_string_equal(c.command[0], "cmd2");
	free_config(&c);
}

/* ---- judge(): the readiness state machine ------------------------------------------------ */

#define T0 SEC(1000)

static struct config judge_config(bool notify, const char *ready_cmd, nsec_t warmup, nsec_t timeout)
{
	return (struct config){ .notify = notify, .ready_cmd = ready_cmd, .warmup = warmup,
				.ready_interval = MSEC(200), .ready_timeout = limit_of(timeout) };
}

static enum verdict judge_at(const struct generation *g, const struct config *c, nsec_t t, nsec_t *next,
			     const char **how)
{
	*next = -1;
	*how = NULL;
	return judge(g, c, t, next, how);
}

/* ---- --socket-mode, --socket-owner, --user, --env-file ---------------------------------- */

static void test_parse_mode(void **state)
{
	static const struct {
		const char *s;
		mode_t mode;
	} good[] = {
		{ "0", 0 }, { "660", 0660 }, { "0660", 0660 }, { "777", 0777 }, { "0777", 0777 }, { "600", 0600 },
		{ "7", 07 }, { "0000", 0 }, { "0007", 07 },
	};
	static const char *const bad[] = {
		"", "8", "668", "1777", "4755", "07777", "00660", "1000", "-660", "+660", " 660", "660 ", "0o660",
		"0x1b0", "rw", "u=rw", "66O",
	};
	mode_t m;

	(void)state;
	for (size_t i = 0; i < COUNT(good); i++) {
		m = 01234;
		if (parse_mode(good[i].s, &m))
			fail_msg("parse_mode(\"%s\") rejected", good[i].s);
		assert_int_equal(m, good[i].mode);
	}
	for (size_t i = 0; i < COUNT(bad); i++) {
		m = 01234;
		if (parse_mode(bad[i], &m) == 0)
			fail_msg("parse_mode(\"%s\") accepted", bad[i]);
		assert_int_equal(m, 01234); /* untouched */
	}
}

static void test_split_account(void **state)
{
	char user[8], group[8], big[300];

	(void)state;
	assert_int_equal(split_account("www-dat", user, group, sizeof(user)), 0);
	assert_string_equal(user, "www-dat");
	assert_string_equal(group, "");
	assert_int_equal(split_account("a:b", user, group, sizeof(user)), 0);
	assert_string_equal(user, "a");
	assert_string_equal(group, "b");
	assert_int_equal(split_account(":b", user, group, sizeof(user)), 0);
	assert_string_equal(user, "");
	assert_string_equal(group, "b");
	assert_int_equal(split_account("", user, group, sizeof(user)), 0);
	assert_string_equal(user, "");
	assert_int_equal(split_account("a:", user, group, sizeof(user)), -1);
	assert_int_equal(split_account(":", user, group, sizeof(user)), -1);
	assert_int_equal(split_account("a:b:c", user, group, sizeof(user)), -1);
	assert_int_equal(split_account("a::", user, group, sizeof(user)), -1);
	assert_int_equal(split_account("12345678", user, group, sizeof(user)), -1); /* 8 bytes: too long */
	assert_int_equal(split_account("a:12345678", user, group, sizeof(user)), -1);
	assert_int_equal(split_account("1234567:1234567", user, group, sizeof(user)), 0);
	memset(big, 'u', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(parse_owner(big, &(uid_t){ 0 }, &(gid_t){ 0 }) != NULL, 1);
}

static void test_parse_owner(void **state)
{
	const struct passwd *www = getpwnam("www-data"), *nobody = getpwnam("nobody");
	const struct group *nogroup = getgrgid(nobody ? nobody->pw_gid : 65534);
	char spec[300];
	uid_t uid;
	gid_t gid;

	(void)state;
	assert_null(parse_owner("root", &uid, &gid));
	assert_int_equal(uid, 0);
	assert_int_equal(gid, (gid_t)-1); /* unchanged */
	assert_null(parse_owner("root:root", &uid, &gid));
	assert_int_equal(uid, 0);
	assert_int_equal(gid, 0);
	assert_null(parse_owner(":root", &uid, &gid));
	assert_int_equal(uid, (uid_t)-1);
	assert_int_equal(gid, 0);
	/* Numbers need no entry in the user database, as with chown(1). */
	assert_null(parse_owner("4000000:4000001", &uid, &gid));
	assert_int_equal(uid, 4000000);
	assert_int_equal(gid, 4000001);
	assert_null(parse_owner("0", &uid, &gid));
	assert_int_equal(uid, 0);
	assert_null(parse_owner("4294967294", &uid, &gid));
	assert_int_equal(uid, 4294967294U);
	assert_string_equal(parse_owner("4294967295", &uid, &gid), "unknown user in"); /* (uid_t)-1: a name */
	if (www) {
		assert_null(parse_owner("www-data:www-data", &uid, &gid));
		assert_int_equal(uid, www->pw_uid);
		assert_int_equal(gid, www->pw_gid);
	}
	if (nobody && nogroup) {
		snprintf(spec, sizeof(spec), "nobody:%s", nogroup->gr_name);
		assert_null(parse_owner(spec, &uid, &gid));
		assert_int_equal(uid, nobody->pw_uid);
		assert_int_equal(gid, nogroup->gr_gid);
	}
	assert_string_equal(parse_owner("", &uid, &gid), "invalid owner");
	assert_string_equal(parse_owner(":", &uid, &gid), "invalid owner");
	assert_string_equal(parse_owner("root:", &uid, &gid), "invalid owner");
	assert_string_equal(parse_owner("a:b:c", &uid, &gid), "invalid owner");
	assert_string_equal(parse_owner("no-such-user-hw", &uid, &gid), "unknown user in");
	assert_string_equal(parse_owner("root:no-such-group-hw", &uid, &gid), "unknown group in");
	assert_string_equal(parse_owner(":no-such-group-hw", &uid, &gid), "unknown group in");
	assert_string_equal(parse_owner("-1", &uid, &gid), "unknown user in");
}

static void test_parse_user(void **state)
{
	const struct passwd *nobody = getpwnam("nobody");
	struct account a = { 0 };

	(void)state;
	assert_null(parse_user("root", &a));
	assert_true(a.set);
	assert_int_equal(a.uid, 0);
	assert_int_equal(a.gid, 0);
	assert_string_equal(a.name, "root");
	assert_string_equal(a.home, "/root");
	free(a.name), free(a.home), a = (struct account){ 0 };
	/* By number: the entry's name and home, for initgroups() and HOME. */
	assert_null(parse_user("0:65534", &a));
	assert_string_equal(a.name, "root");
	assert_int_equal(a.gid, 65534);
	free(a.name), free(a.home), a = (struct account){ 0 };
	if (nobody) {
		assert_null(parse_user("nobody", &a));
		assert_int_equal(a.uid, nobody->pw_uid);
		assert_int_equal(a.gid, nobody->pw_gid);
		assert_string_equal(a.home, nobody->pw_dir);
		free(a.name), free(a.home), a = (struct account){ 0 };
		assert_null(parse_user("nobody:root", &a));
		assert_int_equal(a.gid, 0);
		free(a.name), free(a.home), a = (struct account){ 0 };
	}
	/* Nothing allocated, nothing set, on any failure. */
	assert_string_equal(parse_user("", &a), "invalid user");
	assert_string_equal(parse_user(":root", &a), "invalid user");
	assert_string_equal(parse_user("root:", &a), "invalid user");
	assert_string_equal(parse_user("root:root:root", &a), "invalid user");
	assert_string_equal(parse_user("no-such-user-hw", &a), "unknown user in");
	assert_string_equal(parse_user("4000000", &a), "unknown user in"); /* a number needs an entry here */
	assert_string_equal(parse_user("root:no-such-group-hw", &a), "unknown group in");
	assert_false(a.set);
	assert_null(a.name);
	assert_null(a.home);
}

/* Not root: --user is a usage error naming the value, before anything else is looked at. */
static void user_as_nobody(void)
{
	struct config c;
	int rc;

	CHECK(setgid(65534) == 0 && setuid(65534) == 0);
	capture_start();
	rc = parse_options(4, (char *[]){ "hupwatch", "--user", "root", "cmd", NULL }, &c);
	capture_end();
	CHECK_INT(rc, EXIT_FAILURE_OWN);
	CHECK(strstr(cap_err, "hupwatch: --user: only root can run generations as another user (hupwatch runs as "
			      "uid 65534): 'root'\n") == cap_err);
	CHECK_INT(count_lines(cap_err), 2);
	CHECK(c.user.name == NULL);
}

static void test_user_needs_root(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	checked_in_child(user_as_nobody);
}

static void expect_env_line(const char *line, enum env_line want, size_t want_name_len, const char *want_why)
{
	size_t name_len = 12345;
	const char *why = "unset";
	enum env_line got = parse_env_line(line, strlen(line), &name_len, &why);

	if (got != want)
		fail_msg("parse_env_line(\"%s\") = %d, want %d (%s)", line, got, want, why ? why : "");
	if (want == ENV_VARIABLE)
		assert_int_equal(name_len, want_name_len);
	if (want == ENV_BAD)
		assert_string_equal(why, want_why);
	else
		assert_null(why);
}

static void test_env_line(void **state)
{
	static const char no_eq[] = "no '=' (lines are NAME=value)";
	static const char bad_char[] = "invalid character in the variable name (lines are NAME=value)";
	size_t name_len = 0;
	const char *why;

	(void)state;
	expect_env_line("", ENV_SKIP, 0, NULL);
	expect_env_line("   ", ENV_SKIP, 0, NULL);
	expect_env_line(" \t ", ENV_SKIP, 0, NULL);
	expect_env_line("#", ENV_SKIP, 0, NULL);
	expect_env_line("# a comment = x", ENV_SKIP, 0, NULL);
	expect_env_line("  # indented", ENV_SKIP, 0, NULL);
	expect_env_line("#FOO=1", ENV_SKIP, 0, NULL);
	expect_env_line("A=", ENV_VARIABLE, 1, NULL);
	expect_env_line("A=1", ENV_VARIABLE, 1, NULL);
	expect_env_line("_=1", ENV_VARIABLE, 1, NULL);
	expect_env_line("DATABASE_URL=postgres://u:p@h/db?x=1", ENV_VARIABLE, 12, NULL);
	expect_env_line("a1_B2=\"quoted\"", ENV_VARIABLE, 5, NULL); /* quotes are the value's own */
	expect_env_line("A= spaced  ", ENV_VARIABLE, 1, NULL);
	expect_env_line("A==b", ENV_VARIABLE, 1, NULL);
	expect_env_line("A=#not a comment", ENV_VARIABLE, 1, NULL);
	expect_env_line("A=$HOME", ENV_VARIABLE, 1, NULL);
	expect_env_line("FOO", ENV_BAD, 0, no_eq);
	expect_env_line("export FOO=1", ENV_BAD, 0, bad_char);
	expect_env_line("FOO =1", ENV_BAD, 0, bad_char);
	expect_env_line("FOO-BAR=1", ENV_BAD, 0, bad_char);
	expect_env_line("F\xc3\xa9=1", ENV_BAD, 0, bad_char);
	expect_env_line("=1", ENV_BAD, 0, "empty variable name");
	expect_env_line("1A=1", ENV_BAD, 0, "variable name starts with a digit");
	expect_env_line(" FOO=1", ENV_BAD, 0, "blank before the variable name");
	expect_env_line("\tFOO=1", ENV_BAD, 0, "blank before the variable name");
	expect_env_line("FOO=1\r", ENV_BAD, 0, "carriage return at the end of the line (a CRLF file?)");
	expect_env_line("\r", ENV_BAD, 0, "carriage return at the end of the line (a CRLF file?)");
	expect_env_line("FOO=a\rb", ENV_VARIABLE, 3, NULL); /* only at the end: a CRLF file */
	/* A NUL anywhere, and no reading past len (the line is not NUL-terminated). */
	assert_int_equal(parse_env_line("A=1\0B", 5, &name_len, &why), ENV_BAD);
	assert_string_equal(why, "NUL byte in the line");
	assert_int_equal(parse_env_line("\0", 1, &name_len, &why), ENV_BAD);
	assert_int_equal(parse_env_line("AB=1", 2, &name_len, &why), ENV_BAD); /* "AB" */
	assert_string_equal(why, no_eq);
	assert_int_equal(parse_env_line("A=1", 2, &name_len, &why), ENV_VARIABLE); /* "A=" */
	assert_int_equal(name_len, 1);
}

/* The whole file, as the child applies it: later lines win, the first bad line is named. */
static void env_file_in_child(void)
{
	char why[400], path[PATH_MAX];
	FILE *f;

	path_in_tmp(path, sizeof(path), "app.env");
	f = fopen(path, "w");
	CHECK(f != NULL);
	fputs("# settings\n\nHW_A=1\nHW_B=two words \"q\"\nHW_A=3\n  \nHW_C=", f);
	CHECK(fclose(f) == 0);
	CHECK(chdir(tmpdir) == 0);
	CHECK(load_env_file("app.env", tmpdir, why, sizeof(why)) == 0);
	CHECK_STR(getenv("HW_A"), "3");
	CHECK_STR(getenv("HW_B"), "two words \"q\"");
	CHECK_STR(getenv("HW_C"), ""); /* no newline at the end: still a line */

	f = fopen(path, "w");
	CHECK(f != NULL);
	fputs("HW_D=1\n# x\nexport HW_E=2\nHW_F=3\n", f);
	CHECK(fclose(f) == 0);
	CHECK(load_env_file("app.env", tmpdir, why, sizeof(why)) == -1);
	snprintf(path, sizeof(path), "--env-file %s/app.env:3: invalid character in the variable name (lines are "
		 "NAME=value)", tmpdir);
	CHECK_STR(why, path);
	CHECK(getenv("HW_F") == NULL); /* stopped at the bad line (the child then exits) */

	/* Absolute names are taken as they are; missing files and directories are named. */
	path_in_tmp(path, sizeof(path), "missing.env");
	CHECK(load_env_file(path, "/elsewhere", why, sizeof(why)) == -1);
	CHECK(strstr(why, "cannot read --env-file '") == why && strstr(why, "/missing.env': No such file or directory"));
	CHECK(load_env_file(".", tmpdir, why, sizeof(why)) == -1);
	CHECK(strstr(why, "/.': not a regular file") != NULL);
	CHECK(load_env_file("/dev/null", "", why, sizeof(why)) == -1);
	CHECK_STR(why, "cannot read --env-file '/dev/null': not a regular file");

	/* A CRLF file fails at its first line; an empty one is fine. */
	path_in_tmp(path, sizeof(path), "crlf.env");
	f = fopen(path, "w");
	CHECK(f != NULL);
	fputs("HW_G=1\r\n", f);
	CHECK(fclose(f) == 0);
	CHECK(load_env_file("crlf.env", "", why, sizeof(why)) == -1);
	CHECK_STR(why, "--env-file crlf.env:1: carriage return at the end of the line (a CRLF file?)");
	f = fopen(path, "w");
	CHECK(f != NULL && fclose(f) == 0);
	CHECK(load_env_file("crlf.env", "", why, sizeof(why)) == 0);
	/* Larger than 1 MiB: refused whole. */
	CHECK(truncate(path, ENV_FILE_MAX + 1) == 0);
	CHECK(load_env_file("crlf.env", "", why, sizeof(why)) == -1);
	CHECK_STR(why, "cannot read --env-file 'crlf.env': larger than 1 MiB");
}

static void test_env_file(void **state)
{
	(void)state;
	checked_in_child(env_file_in_child);
}

/* The bad line of an --env-file reaches the loop whole, as the reason of the failed start. */
static void test_env_file_error_reported(void **state)
{
	char path[PATH_MAX], want[PATH_MAX + 128];
	struct generation *g;
	int status = 0;
	FILE *f;

	(void)state;
	path_in_tmp(path, sizeof(path), "bad.env");
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("OK=1\nbad line\n", f);
	assert_int_equal(fclose(f), 0);
	hw.workdir = xstrdup(tmpdir);
	hw.cfg.env_file = "bad.env";
	g = spawn(IN_WORKDIR, want, sizeof(want), &status);
	assert_non_null(g);
	while (g->exec_fd >= 0) {
		char why[512];
		struct pollfd pfd = { g->exec_fd, POLLIN, 0 };

		assert_true(poll(&pfd, 1, 5000) == 1);
		if (read_exec_pipe(g, why, sizeof(why), &status) == EXEC_FAILED) {
			snprintf(want, sizeof(want), "--env-file %s/bad.env:2: invalid character in the variable name "
				 "(lines are NAME=value)", tmpdir);
			assert_string_equal(why, want);
			assert_int_equal(status, EXIT_FAILURE_OWN);
			assert_int_equal(WEXITSTATUS(wait_dead(g->pid)), EXIT_FAILURE_OWN);
			return;
		}
	}
	fail_msg("the exec pipe closed without the --env-file error");
}

/* Without -T, a stopping generation gets DEFAULT_STOP_TIMEOUT, one never ready FAILED_STOP_GRACE. */
static void test_default_stop_timeout(void **state)
{
	struct config c;
	nsec_t t = now();

	(void)state;
	assert_int_equal(parse_args(&hw.cfg, "cmd", NULL), 0);
	assert_int_equal(hw.cfg.stop_timeout, DEFAULT_STOP_TIMEOUT);
	assert_int_equal(kill_deadline(GEN_STOPPING, t), t + SEC(75));
	assert_int_equal(kill_deadline(GEN_FAILED, t), t + FAILED_STOP_GRACE);
	free_config(&hw.cfg);
	assert_int_equal(parse_args(&hw.cfg, "-T", "0", "cmd", NULL), 0); /* no limit */
	assert_int_equal(kill_deadline(GEN_STOPPING, t), NEVER);
	assert_int_equal(kill_deadline(GEN_FAILED, t), t + FAILED_STOP_GRACE);
	free_config(&hw.cfg);
	assert_int_equal(parse_args(&hw.cfg, "-T", "12", "cmd", NULL), 0);
	assert_int_equal(kill_deadline(GEN_STOPPING, t), t + SEC(12));
	assert_int_equal(kill_deadline(GEN_FAILED, t), t + SEC(12)); /* -T given: for every generation */
	free_config(&hw.cfg);
	assert_int_equal(parse_args(&c, "-T", "75", "cmd", NULL), 0);
	assert_int_equal(c.stop_timeout, DEFAULT_STOP_TIMEOUT);
	free_config(&c);
}

/* --socket-mode and --socket-owner without a unix: socket to act on: a warning each. */
static void test_socket_options_warn(void **state)
{
	(void)state;
	assert_int_equal(parse_args(&hw.cfg, "--socket-mode", "600", "--socket-owner", "root", "-l", "8080", "cmd",
				    NULL), 0);
	assert_non_null(strstr(cap_err, "warning: --socket-mode has no effect without a --listen unix:PATH\n"));
	assert_non_null(strstr(cap_err, "warning: --socket-owner has no effect without a --listen unix:PATH\n"));
	assert_int_equal(count_lines(cap_err), 2);
	free_config(&hw.cfg);
	assert_int_equal(parse_args(&hw.cfg, "--socket-mode", "600", "-l", "8080", "-l", "unix:/x", "cmd", NULL), 0);
	assert_string_equal(cap_err, "");
	free_config(&hw.cfg);
}

/* --socket-mode and --socket-owner on the file, before listen(); nothing else is touched. */
static void test_listen_unix_access(void **state)
{
	struct address a = { .family = AF_UNIX, .socktype = SOCK_STREAM };
	struct stat sb;
	mode_t before = umask(022);
	int fd;

	(void)state;
	path_in_tmp(a.path, sizeof(a.path), "s.sock");
	fd = listen_unix(&a, 4);
	assert_true(fd >= 0);
	assert_int_equal(lstat(a.path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0755); /* as bind() makes it */
	close(fd);
	hw.cfg.socket_mode_set = true;
	hw.cfg.socket_mode = 0660;
	hw.cfg.socket_owner_set = true;
	hw.cfg.socket_uid = (uid_t)-1;
	hw.cfg.socket_gid = 65534;
	fd = listen_unix(&a, 4); /* the stale file is replaced */
	assert_true(fd >= 0);
	assert_int_equal(lstat(a.path, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0660);
	assert_int_equal(sb.st_uid, geteuid());
	assert_int_equal(sb.st_gid, 65534);
	assert_int_equal(umask(before), 022); /* restored */
	close(fd);
	/* Only the owner given: the mode is what the umask would have made. */
	hw.cfg.socket_mode_set = false;
	hw.cfg.socket_uid = 65534;
	hw.cfg.socket_gid = (gid_t)-1;
	umask(027);
	fd = listen_unix(&a, 4);
	umask(before);
	assert_true(fd >= 0);
	assert_int_equal(lstat(a.path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0750);
	assert_int_equal(sb.st_uid, 65534);
	close(fd);
}

static void test_judge_warmup_only(void **state)
{
	struct generation g = { .number = 2, .exec_fd = -1, .spawned_at = T0, .probe_next = T0 };
	struct config c = judge_config(false, NULL, SEC(1), SEC(60));
	const char *how;
	nsec_t next;

	(void)state;
	assert_int_equal(judge_at(&g, &c, T0, &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(1));
	assert_string_equal(how, "warm-up");
	assert_int_equal(judge_at(&g, &c, T0 + SEC(1) - 1, &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(1));
	assert_int_equal(judge_at(&g, &c, T0 + SEC(1), &next, &how), READY);
	assert_string_equal(how, "warm-up");
	assert_int_equal(next, T0 + SEC(1)); /* READY: act now */
	/* --ready-timeout applies only with -n or -c: never TIMED_OUT on warm-up alone. */
	c.warmup = SEC(120);
	assert_int_equal(judge_at(&g, &c, T0 + SEC(61), &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(120));
	/* Notifications mean nothing without -n. */
	g.notified = true;
	assert_int_equal(judge_at(&g, &c, T0 + SEC(61), &next, &how), NOT_YET);
	/* -w 0: ready at once. */
	c.warmup = 0;
	assert_int_equal(judge_at(&g, &c, T0, &next, &how), READY);
}

static void test_judge_notify_only(void **state)
{
	struct generation g = { .number = 2, .exec_fd = -1, .spawned_at = T0, .probe_next = T0 };
	struct config c = judge_config(true, NULL, 0, SEC(60));
	const char *how;
	nsec_t next;

	(void)state;
	assert_int_equal(judge_at(&g, &c, T0, &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(60)); /* nothing to do but wait, up to the timeout */
	assert_string_equal(how, "READY=1");
	assert_int_equal(judge_at(&g, &c, T0 + SEC(59), &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(60));
	assert_int_equal(judge_at(&g, &c, T0 + SEC(60), &next, &how), TIMED_OUT);
	assert_int_equal(judge_at(&g, &c, T0 + SEC(3600), &next, &how), TIMED_OUT);
	g.notified = true;
	assert_int_equal(judge_at(&g, &c, T0, &next, &how), READY);
	assert_string_equal(how, "READY=1");
	assert_int_equal(next, T0);
	/* READY=1 at the very deadline still counts. */
	assert_int_equal(judge_at(&g, &c, T0 + SEC(60), &next, &how), READY);
	/* A probe result means nothing without -c. */
	g.notified = false;
	g.probe_ok = true;
	assert_int_equal(judge_at(&g, &c, T0, &next, &how), NOT_YET);
}

static void test_judge_ready_cmd_only(void **state)
{
	struct generation g = { .number = 2, .exec_fd = -1, .spawned_at = T0, .probe_next = T0 };
	struct config c = judge_config(false, "true", 0, SEC(60));
	const char *how;
	nsec_t next;

	(void)state;
	/* First probe due at once. */
	assert_int_equal(judge_at(&g, &c, T0, &next, &how), NOT_YET);
	assert_int_equal(next, T0);
	assert_string_equal(how, "ready-cmd");
	/* While a probe runs, its exit (SIGCHLD) wakes us; the deadline is the timeout. */
	g.probe_pid = 12345;
	g.probe_next = T0 + MSEC(200);
	assert_int_equal(judge_at(&g, &c, T0 + MSEC(10), &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(60));
	/* Probe failed: the next one after the interval. */
	g.probe_pid = 0;
	assert_int_equal(judge_at(&g, &c, T0 + MSEC(50), &next, &how), NOT_YET);
	assert_int_equal(next, T0 + MSEC(200));
	/* A probe due after the timeout is not waited for. */
	g.probe_next = T0 + SEC(70);
	assert_int_equal(judge_at(&g, &c, T0 + SEC(59), &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(60));
	assert_int_equal(judge_at(&g, &c, T0 + SEC(60), &next, &how), TIMED_OUT);
	g.probe_ok = true;
	assert_int_equal(judge_at(&g, &c, T0 + MSEC(300), &next, &how), READY);
	assert_string_equal(how, "ready-cmd");
}

static void test_judge_both(void **state)
{
	struct generation g = { .number = 2, .exec_fd = -1, .spawned_at = T0, .probe_next = T0 + SEC(1) };
	struct config c = judge_config(true, "true", 0, SEC(60));
	const char *how;
	nsec_t next;

	(void)state;
	assert_int_equal(judge_at(&g, &c, T0, &next, &how), NOT_YET);
	assert_string_equal(how, "READY=1 and ready-cmd");
	assert_int_equal(next, T0 + SEC(1));
	g.notified = true;
	assert_int_equal(judge_at(&g, &c, T0, &next, &how), NOT_YET); /* both must agree */
	assert_int_equal(next, T0 + SEC(1));
	g.notified = false;
	g.probe_ok = true;
	assert_int_equal(judge_at(&g, &c, T0, &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(60)); /* probe done: only READY=1 or the timeout */
	g.notified = true;
	assert_int_equal(judge_at(&g, &c, T0 + SEC(2), &next, &how), READY);
	assert_string_equal(how, "READY=1 and ready-cmd");
}

/* --ready-http: ready at the first 2xx; tries every interval; each try has a deadline to wake for. */
static void test_judge_http(void **state)
{
	struct generation g = { .number = 2, .exec_fd = 5, .spawned_at = T0, .http = { .fd = -1 }, .http_next = T0 };
	struct config c = judge_config(false, NULL, 0, SEC(60));
	const char *how;
	nsec_t next;

	(void)state;
	c.ready_http = "/health";
	assert_true(awaits_readiness(&c));
	/* Before its exec is confirmed: no try, only the timeout. */
	assert_int_equal(judge_at(&g, &c, T0, &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(60));
	g.exec_fd = -1;
	assert_int_equal(judge_at(&g, &c, T0, &next, &how), NOT_YET);
	assert_int_equal(next, T0); /* a try is due now */
	assert_string_equal(how, "HTTP");
	/* A try in flight: wake at its deadline, not before. */
	g.http.fd = 9;
	g.http.deadline = T0 + SEC(1);
	assert_int_equal(judge_at(&g, &c, T0 + MSEC(10), &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(1));
	/* It failed (503, refused): the next try at its time. */
	g.http.fd = -1;
	g.http_next = T0 + MSEC(200);
	assert_int_equal(judge_at(&g, &c, T0 + MSEC(20), &next, &how), NOT_YET);
	assert_int_equal(next, T0 + MSEC(200));
	assert_int_equal(judge_at(&g, &c, T0 + SEC(60), &next, &how), TIMED_OUT);
	/* A 2xx: ready. */
	g.http_ok = true;
	assert_int_equal(judge_at(&g, &c, T0 + SEC(3), &next, &how), READY);
	/* With --notify too, both must hold. */
	c.notify = true;
	assert_int_equal(judge_at(&g, &c, T0 + SEC(3), &next, &how), NOT_YET);
	assert_string_equal(how, "READY=1 and HTTP");
	assert_int_equal(next, T0 + SEC(60)); /* the HTTP part is done: nothing to try */
	g.notified = true;
	g.http_ok = false;
	assert_int_equal(judge_at(&g, &c, T0 + SEC(3), &next, &how), NOT_YET);
	g.http_ok = true;
	assert_int_equal(judge_at(&g, &c, T0 + SEC(3), &next, &how), READY);
	c.ready_cmd = "true";
	g.probe_ok = true;
	assert_int_equal(judge_at(&g, &c, T0 + SEC(3), &next, &how), READY);
	assert_string_equal(how, "READY=1, ready-cmd and HTTP");
}

/* SETTLING: current once the settle time is over with no try out; unhealthy at the first failure. */
static void test_judge_settling(void **state)
{
	struct generation g = { .number = 2, .exec_fd = -1, .spawned_at = T0, .state = GEN_SETTLING,
				.http = { .fd = -1 }, .settle_end = T0 + SEC(3) };
	struct config c = judge_config(true, NULL, 0, SEC(60));
	const char *how;
	nsec_t next;

	(void)state;
	c.settle = SEC(3);
	/* Alive only: wake at the end of the settle time, then settled. The ready timeout no longer counts. */
	assert_int_equal(judge_at(&g, &c, T0 + SEC(1), &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(3));
	assert_int_equal(judge_at(&g, &c, T0 + SEC(3), &next, &how), READY);
	assert_int_equal(judge_at(&g, &c, T0 + SEC(100), &next, &how), READY);
	/* With --ready-http: the tries go on every interval. */
	c.ready_http = "/";
	g.http_next = T0 + MSEC(1200);
	assert_int_equal(judge_at(&g, &c, T0 + SEC(1), &next, &how), NOT_YET);
	assert_int_equal(next, T0 + MSEC(1200));
	g.http_next = T0 + SEC(5);
	assert_int_equal(judge_at(&g, &c, T0 + SEC(1), &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(3));
	/* A try out at the end: its answer is waited for (until its deadline). */
	g.http.fd = 9;
	g.http.deadline = T0 + MSEC(3500);
	assert_int_equal(judge_at(&g, &c, T0 + SEC(3), &next, &how), NOT_YET);
	assert_int_equal(next, T0 + MSEC(3500));
	g.http.fd = -1;
	assert_int_equal(judge_at(&g, &c, T0 + MSEC(3100), &next, &how), READY);
	/* One failed try: unhealthy, at once, even after the settle time. */
	g.unhealthy = true;
	assert_int_equal(judge_at(&g, &c, T0 + SEC(1), &next, &how), UNHEALTHY);
	assert_int_equal(judge_at(&g, &c, T0 + SEC(4), &next, &how), UNHEALTHY);
}

/* The status line of --ready-http: complete, incomplete, malformed. */
static void test_parse_http_status(void **state)
{
	static const struct {
		const char *text;
		int rc, code;
		size_t line;
	} cases[] = {
		{ "HTTP/1.1 200 OK\r\n", 1, 200, 17 },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1, 200, 17 },
		{ "HTTP/1.0 503 Service Unavailable\n", 1, 503, 33 },
		{ "HTTP/1.1 204\r\n", 1, 204, 14 },
		{ "HTTP/1.1 204 \r\n", 1, 204, 15 },
		{ "HTTP/2.0 299 x\ty\r\n", 1, 299, 18 },
		{ "HTTP/1.1 100 Continue\r\n", 1, 100, 23 },
		{ "HTTP/1.1 599 \xff\r\n", 1, 599, 16 }, /* obs-text */
		{ "", 0, 0, 0 },
		{ "HTTP/1.1 200 OK", 0, 0, 0 },
		{ "HTTP/1.1 20", 0, 0, 0 },
		{ "HTTP/1.1 200 OK\r", 0, 0, 0 },
		{ "\n", -1, 0, 0 },
		{ "HTTP/1.1 200OK\r\n", -1, 0, 0 },
		{ "HTTP/1.1 2000 OK\r\n", -1, 0, 0 },
		{ "HTTP/1.1 20 OK\r\n", -1, 0, 0 },
		{ "HTTP/1.1 600 OK\r\n", -1, 0, 0 },
		{ "HTTP/1.1 099 OK\r\n", -1, 0, 0 },
		{ "HTTP/1.1  200 OK\r\n", -1, 0, 0 },
		{ "HTTP/11 200 OK\r\n", -1, 0, 0 },
		{ "http/1.1 200 OK\r\n", -1, 0, 0 },
		{ "ICY 200 OK\r\n", -1, 0, 0 },
		{ "HTTP/1.1 200 O\rK\r\n", -1, 0, 0 },
		{ "HTTP/1.1 200 O\x01K\r\n", -1, 0, 0 },
		{ "HTTP/1.1 200 O\x7fK\r\n", -1, 0, 0 },
		{ "HTTP/1.1 2a0 OK\r\n", -1, 0, 0 },
		{ "<html>\n", -1, 0, 0 },
	};
	char longer[HTTP_LINE_MAX + 10];
	int code;
	size_t line;

	(void)state;
	for (size_t i = 0; i < COUNT(cases); i++) {
		int rc;

		code = -7;
		line = 777;
		rc = parse_http_status(cases[i].text, strlen(cases[i].text), &code, &line);
		if (rc != cases[i].rc)
			fail_msg("case %zu '%s': rc %d, not %d", i, cases[i].text, rc, cases[i].rc);
		if (rc == 1) {
			assert_int_equal(code, cases[i].code);
			assert_int_equal(line, cases[i].line);
		} else {
			assert_int_equal(code, -7); /* untouched */
			assert_int_equal(line, 777);
		}
	}
	/* No LF within HTTP_LINE_MAX bytes: malformed, not "more needed" forever. */
	memset(longer, 'x', sizeof(longer));
	memcpy(longer, "HTTP/1.1 200 ", 13);
	assert_int_equal(parse_http_status(longer, HTTP_LINE_MAX - 1, &code, &line), 0);
	assert_int_equal(parse_http_status(longer, HTTP_LINE_MAX, &code, &line), -1);
	longer[HTTP_LINE_MAX + 2] = '\n';
	assert_int_equal(parse_http_status(longer, sizeof(longer), &code, &line), -1);
	longer[HTTP_LINE_MAX - 1] = '\n';
	assert_int_equal(parse_http_status(longer, sizeof(longer), &code, &line), 1);
	assert_int_equal(line, HTTP_LINE_MAX);
	/* The length given is a bound: nothing past it is read (no NUL needed). */
	assert_int_equal(parse_http_status("HTTP/1.1 200 OK\r\n", 16, &code, &line), 0);
}

/* --ready-http PATH: an origin-form path, one line; --settle-time a duration. */
static void test_ready_http_options(void **state)
{
	struct config c;

	(void)state;
	assert_int_equal(parse_args(&c, "--ready-http", "/health?x=1", "cmd", NULL), 0);
	assert_string_equal(c.ready_http, "/health?x=1");
	assert_true(has_probe(&c));
	assert_int_equal(c.warmup, 0); /* as with -n or -c */
	free_config(&c);
	assert_int_equal(parse_args(&c, "--probe-socket", "--settle-time", "2.5", "cmd", NULL), 0);
	assert_true(has_probe(&c));
	assert_null(c.ready_http);
	assert_int_equal(c.settle, MSEC(2500));
	assert_int_equal(ready_wait(&c), SEC(1) + MSEC(2500)); /* warm-up, then settle time */
	free_config(&c);
	assert_int_equal(parse_args(&c, "--ready-http", "health", "cmd", NULL), EXIT_FAILURE_OWN);
	assert_int_equal(parse_args(&c, "--ready-http", "/a b", "cmd", NULL), EXIT_FAILURE_OWN);
	assert_int_equal(parse_args(&c, "--ready-http", "/a\r\nX: y", "cmd", NULL), EXIT_FAILURE_OWN);
	assert_int_equal(parse_args(&c, "--settle-time", "soon", "cmd", NULL), EXIT_FAILURE_OWN);
	assert_int_equal(parse_args(&c, "-R", "-S", "f", "--ready-http", "/", NULL), EXIT_FAILURE_OWN);
}

static void test_judge_timeout_zero_is_no_limit(void **state)
{
	struct generation g = { .number = 2, .exec_fd = -1, .spawned_at = T0, .probe_next = T0 };
	struct config c = judge_config(true, NULL, 0, 0);
	const char *how;
	nsec_t next;

	(void)state;
	assert_int_equal(judge_at(&g, &c, T0 + SEC(1000000), &next, &how), NOT_YET);
	assert_int_equal(next, NEVER); /* nothing to wake up for: sleep until an event */
	c.ready_cmd = "true";
	g.probe_pid = 99;
	assert_int_equal(judge_at(&g, &c, T0 + SEC(1000000), &next, &how), NOT_YET);
	assert_int_equal(next, NEVER);
	g.probe_pid = 0;
	g.probe_next = T0 + SEC(1000001);
	assert_int_equal(judge_at(&g, &c, T0 + SEC(1000000), &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(1000001));
}

/* With -n or -c, -w is an additional minimum age. */
static void test_judge_warmup_as_minimum_age(void **state)
{
	struct generation g = { .number = 2, .exec_fd = -1, .spawned_at = T0, .probe_next = T0 };
	struct config c = judge_config(true, NULL, SEC(2), SEC(60));
	const char *how;
	nsec_t next;

	(void)state;
	/* Not notified: the warm-up alone does not make it ready, and is no deadline. */
	assert_int_equal(judge_at(&g, &c, T0 + SEC(5), &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(60));
	/* Notified early: wait for the warm-up to pass. */
	g.notified = true;
	assert_int_equal(judge_at(&g, &c, T0 + MSEC(500), &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(2));
	assert_int_equal(judge_at(&g, &c, T0 + SEC(2) - 1, &next, &how), NOT_YET);
	assert_int_equal(judge_at(&g, &c, T0 + SEC(2), &next, &how), READY);
	assert_string_equal(how, "READY=1");
	/* No timeout: the warm-up is the only deadline. */
	c.ready_timeout = NEVER;
	assert_int_equal(judge_at(&g, &c, T0 + MSEC(500), &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(2));
	/* A warm-up longer than the timeout (parse_options refuses it; judge() still copes):
	 * it times out first, even if notified. */
	c.warmup = SEC(100);
	c.ready_timeout = SEC(60);
	assert_int_equal(judge_at(&g, &c, T0 + SEC(10), &next, &how), NOT_YET);
	assert_int_equal(next, T0 + SEC(60));
	assert_int_equal(judge_at(&g, &c, T0 + SEC(60), &next, &how), TIMED_OUT);
}

/* judge() is pure: the same inputs give the same answer, and g is not touched. */
static void test_judge_is_pure(void **state)
{
	struct generation g = { .number = 2, .exec_fd = -1, .spawned_at = T0, .probe_next = T0 + 5, .probe_pid = 0 };
	struct generation copy = g;
	struct config c = judge_config(true, "x", SEC(1), SEC(3));
	const char *how;
	nsec_t next;

	(void)state;
	for (nsec_t t = T0 - SEC(1); t < T0 + SEC(5); t += MSEC(250))
		judge_at(&g, &c, t, &next, &how);
	assert_memory_equal(&g, &copy, sizeof(g));
}

/* ---- must_wait_for ----------------------------------------------------------------------- */

static void test_must_wait_for(void **state)
{
	struct generation g = { .number = 1 }, other = { .number = 2 };

	(void)state;
	assert_false(must_wait_for(&g)); /* a drained old one, without -k */
	g.state = GEN_FAILED;
	assert_true(must_wait_for(&g)); /* one being stopped for not becoming ready */
	g.state = GEN_STARTING;
	hw.exit.final_gen = &g;
	assert_true(must_wait_for(&g)); /* whose status hupwatch exits with */
	assert_false(must_wait_for(&other));
	hw.exit.final_gen = NULL;
	hw.cfg.kill_at_exit = true;
	assert_true(must_wait_for(&g)); /* -k: every one */
	assert_true(must_wait_for(&other));
}

/* ---- state transitions ------------------------------------------------------------------- */

/* SIGHUPs while a generation starts collapse into one pending reload; nothing is spawned. */
static void test_reload_coalesces(void **state)
{
	pid_t kid = start_idle();
	struct generation *cur = add_gen(1, kid, GEN_CURRENT);
	struct generation *starting = add_gen(2, kid, GEN_STARTING);

	(void)state;
	hw.reload.count = 1;
	hw.reload.state = RELOAD_IN_PROGRESS;
	for (int i = 0; i < 100; i++)
		request_reload();
	assert_true(hw.reload.pending);
	assert_int_equal(hw.reload.count, 1);
	assert_int_equal(hw.last_number, 2);
	assert_ptr_equal(starting_gen(), starting);
	assert_ptr_equal(current_gen(), cur);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), 0); /* no child came and went */
}

static void test_reload_ignored_while_shutting_down(void **state)
{
	(void)state;
	hw.state = HW_STOPPING;
	request_reload();
	assert_false(hw.reload.pending);
	assert_int_equal(hw.reload.count, 0);
	assert_int_equal(hw.last_number, 0);
}

/* A shutdown drops a queued reload. */
static void test_terminate_drops_pending_reload(void **state)
{
	(void)state;
	hw.reload.pending = true;
	begin_shutdown(BY_SIGNAL, 7);
	assert_true((hw.state == HW_STOPPING));
	assert_false(hw.reload.pending);
	assert_int_equal(hw.exit.status, 7);
}

/* A reload whose command cannot be executed fails; the current generation stays. */
static void child_reload_exec_failure(void)
{
	static char *missing[] = { "/nonexistent/hupwatch-unit-test", NULL };
	pid_t kid = start_idle();
	struct generation *cur = add_gen(1, kid, GEN_CURRENT);
	struct status_info st;
	char path[PATH_MAX];

	hw.cfg.command = missing;
	snprintf(path, sizeof(path), "%s/status", tmpdir);
	hw.cfg.status_file = path;
	request_reload(); /* broken, this could end in exit_now(): hence the forked copy */
	CHECK(starting_gen() != NULL);
	gen_exited(starting_gen(), wait_dead(starting_gen()->pid)); /* its exec pipe says ENOENT */
	CHECK_INT(hw.reload.count, 1);
	CHECK_INT(hw.reload.state, RELOAD_FAILED);
	CHECK_INT(hw.reload.generation, 2);
	CHECK_INT(hw.last_number, 2);
	CHECK_STR(hw.reload.reason,
		  "gen 2 failed: cannot execute '/nonexistent/hupwatch-unit-test': No such file or directory");
	CHECK(current_gen() == cur);
	CHECK_INT(cur->state, GEN_CURRENT);
	CHECK(starting_gen() == NULL);
	CHECK(hw.state != HW_STOPPING);
	CHECK(hw.gens == cur);
	CHECK(cur->next == NULL);
	CHECK_INT(kill(kid, 0), 0); /* untouched */
	/* The status file tells --reload (the loop writes it before it sleeps). */
	CHECK(hw.status_dirty);
	write_status();
	CHECK_INT(read_status_file(path, &st), 0);
	CHECK_STR(hw_state_names[st.state], "running");
	CHECK_STR(reload_state_names[st.reload_state], "failed");
	CHECK_INT(st.reload, 1);
	CHECK_INT(st.generation, 1);
	CHECK_INT(st.generation_pid, kid);
	CHECK_STR(st.reload_reason, hw.reload.reason);
	/* A second attempt gets the next number. */
	request_reload();
	CHECK(starting_gen() != NULL);
	gen_exited(starting_gen(), wait_dead(starting_gen()->pid));
	CHECK_INT(hw.reload.count, 2);
	CHECK_INT(hw.reload.generation, 3);
	CHECK_INT(hw.reload.state, RELOAD_FAILED);
	CHECK(hw.state != HW_STOPPING);
}

static void test_reload_exec_failure_keeps_current(void **state)
{
	(void)state;
	checked_in_child(child_reload_exec_failure);
}

/* The starting generation fails with HUPs queued: exactly one more reload runs. */
static void test_pending_reload_runs_once_after_failure(void **state)
{
	static char *missing[] = { "/nonexistent/hupwatch-unit-test", NULL };
	pid_t kid = start_idle();
	struct generation *cur = add_gen(1, kid, GEN_CURRENT);

	(void)state;
	hw.cfg.command = missing;
	hw.reload.count = 1;
	hw.reload.state = RELOAD_IN_PROGRESS;
	hw.reload.generation = 2;
	add_gen(2, kid, GEN_STARTING);
	request_reload();
	request_reload();
	assert_true(hw.reload.pending);
	/* Gen 2 failed (as main_exited would say). */
	remove_generation(starting_gen());
	report_failure(2, "exited with status 1 before ready", 1);
	assert_true(hw.reload.pending); /* the event loop runs it next */
	run_pending_reload();
	settle_failed_spawn(starting_gen());
	assert_false(hw.reload.pending);
	assert_int_equal(hw.reload.count, 2); /* one queued reload, not two */
	assert_int_equal(hw.reload.generation, 3);
	assert_int_equal(hw.reload.state, RELOAD_FAILED); /* gen 3 could not exec either */
	assert_int_equal(strncmp(hw.reload.reason, "gen 3 failed: cannot execute", 28), 0);
	assert_ptr_equal(current_gen(), cur);
	assert_null(starting_gen());
}

/* A successful reload: the new generation becomes current, the old one gets the stop signal. */
static void test_reload_swaps_generations(void **state)
{
	static char *sleeper[] = { "/bin/sleep", "60", NULL };
	pid_t old_pid = start_idle();
	struct generation *old = add_gen(1, old_pid, GEN_CURRENT), *g;
	nsec_t t;
	int st;

	(void)state;
	hw.cfg.command = sleeper;
	hw.cfg.warmup = 0;
	request_reload();
	g = starting_gen();
	assert_non_null(g);
	assert_int_equal(g->number, 2);
	assert_int_equal(g->state, GEN_STARTING);
	assert_int_equal(getpgid(g->pid), g->pid); /* its own process group */
	assert_int_equal(hw.reload.state, RELOAD_IN_PROGRESS);
	assert_int_equal(hw.reload.generation, 2);
	/* A HUP now is queued ... */
	request_reload();
	assert_true(hw.reload.pending);
	hw.reload.pending = false; /* ... (not followed here: it would spawn again) */
	await_exec(g);
	assert_non_null(g->dir); /* where it runs, as the child resolved it */

	t = now();
	check_starting(t);
	assert_ptr_equal(current_gen(), g);
	assert_int_equal(g->state, GEN_CURRENT);
	assert_null(starting_gen());
	assert_int_equal(hw.reload.state, RELOAD_SUCCEEDED);
	assert_int_equal(old->state, GEN_STOPPING);
	assert_int_equal(old->stop_at, t);
	assert_false(old->killed);
	st = wait_dead(old_pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGTERM);
	/* The old one drains and is gone. */
	gen_exited(old, st);
	assert_false(in_gens(old));
	assert_ptr_equal(hw.gens, g);
	assert_false((hw.state == HW_STOPPING));
	reap_pid(old_pid);
	nkids = 0;
}

/* Not ready in time: stopped, marked failed (hupwatch waits for it), the current one stays. */
static void test_ready_timeout_fails_reload(void **state)
{
	pid_t cur_pid = start_idle(), new_pid = start_idle();
	struct generation *cur = add_gen(1, cur_pid, GEN_CURRENT), *g = add_gen(2, new_pid, GEN_STARTING);
	int st;

	(void)state;
	hw.cfg.notify = true;
	hw.cfg.warmup = 0;
	hw.cfg.ready_timeout = SEC(5);
	hw.reload.count = 1;
	hw.reload.state = RELOAD_IN_PROGRESS;
	g->spawned_at = now() - SEC(6);
	check_starting(now());
	assert_int_equal(g->state, GEN_FAILED);
	assert_true(must_wait_for(g));
	assert_null(starting_gen());
	assert_ptr_equal(current_gen(), cur);
	assert_int_equal(hw.reload.state, RELOAD_FAILED);
	assert_int_equal(strncmp(hw.reload.reason, "gen 2 failed: not ready after 6.", 32), 0);
	st = wait_dead(new_pid);
	assert_int_equal(WTERMSIG(st), SIGTERM);
	assert_int_equal(kill(cur_pid, 0), 0);
	gen_exited(g, st);
	assert_false(in_gens(g));
	assert_false((hw.state == HW_STOPPING));
}

/* --stop-timeout: a generation still there is SIGKILLed with its whole group, once. */
static void test_stop_timeout_kills_group(void **state)
{
	pid_t kid = start_idle(), other = start_idle();
	struct generation *g = add_gen(1, kid, GEN_CURRENT), *h = add_gen(2, other, GEN_CURRENT);
	nsec_t t = now();
	int st;

	(void)state;
	hw.cfg.stop_signal = SIGWINCH; /* as if they ignored it: idle children ignore SIGWINCH */
	set_state(h, GEN_STOPPING, t); /* -T 0: no limit, never */
	assert_int_equal(h->kill_at, NEVER);
	check_stopping(t + SEC(1000000));
	assert_false(h->killed);
	hw.cfg.stop_timeout = SEC(2);
	set_state(g, GEN_STOPPING, t);
	assert_int_equal(next_deadline(), t + SEC(2));
	check_stopping(t + SEC(2) - 1);
	assert_false(g->killed);
	check_stopping(t + SEC(2));
	assert_true(g->killed);
	assert_int_equal(WTERMSIG(wait_dead(kid)), SIGKILL);
	/* Then waited for KILL_GRACE at most, once. */
	assert_int_equal(next_deadline(), t + SEC(2) + KILL_GRACE);
	check_stopping(t + SEC(2) + KILL_GRACE);
	assert_false(in_gens(g));
	st = waitpid(other, NULL, WNOHANG);
	assert_int_equal(st, 0); /* h got only the stop signal */
}

/* What a dead current generation's main process left in its group is killed; it is gone with its group. */
static void test_kill_leftovers(void **state)
{
	pid_t leader = start_idle(), m1 = start_idle_in(leader), m2 = start_idle_in(leader);
	struct generation *g = add_gen(4, leader, GEN_CURRENT);

	(void)state;
	assert_int_equal(getpgid(m1), leader);
	assert_int_equal(getpgid(m2), leader);
	kill(leader, SIGKILL);
	main_exited(g, reap_pid(leader));
	assert_true(g->killed);
	assert_int_equal(WTERMSIG(wait_dead(m1)), SIGKILL);
	end_if_gone(g);
	assert_true(in_gens(g)); /* not gone while its group lives, zombies included */
	assert_int_equal(WTERMSIG(reap_pid(m1)), SIGKILL);
	assert_int_equal(WTERMSIG(reap_pid(m2)), SIGKILL);
	end_if_gone(g);
	assert_false(in_gens(g));
	nkids = 0;
}

/* The loop's deadline: the nearest of the starting generation's and the stop timeouts. */
static void test_next_deadline(void **state)
{
	pid_t kid = start_idle();
	struct generation *s, *a, *b;

	(void)state;
	assert_int_equal(next_deadline(), NEVER); /* idle: no wake-up */
	hw.cfg.warmup = SEC(5);
	s = add_gen(2, kid, GEN_STARTING);
	assert_int_equal(next_deadline(), s->spawned_at + SEC(5));
	a = add_gen(1, kid, GEN_STOPPING);
	a->kill_at = s->spawned_at + SEC(3);
	b = add_gen(0, kid, GEN_FAILED);
	b->kill_at = s->spawned_at + SEC(2);
	assert_int_equal(next_deadline(), s->spawned_at + SEC(2));
	b->kill_at = NEVER; /* no stop timeout */
	assert_int_equal(next_deadline(), s->spawned_at + SEC(3));
	a->state = GEN_CURRENT; /* only stopping ones have a kill deadline */
	assert_int_equal(next_deadline(), s->spawned_at + SEC(5));
	a->state = GEN_STOPPING;
	a->kill_at = NEVER;
	assert_int_equal(next_deadline(), s->spawned_at + SEC(5));
	hw.state = HW_STOPPING; /* a starting generation is no longer judged */
	assert_int_equal(next_deadline(), NEVER);
}

/* The current generation dies while a replacement starts: the replacement may still take over. */
static void test_current_dies_while_replacement_starts(void **state)
{
	pid_t cur_pid = start_idle(), new_pid = start_idle();
	struct generation *cur = add_gen(1, cur_pid, GEN_CURRENT), *g = add_gen(2, new_pid, GEN_STARTING);

	(void)state;
	hw.cfg.warmup = 0;
	kill(cur_pid, SIGKILL);
	gen_exited(cur, wait_dead(cur_pid));
	assert_null(current_gen());
	assert_true(hw.exit.lost_current);
	assert_int_equal(hw.exit.lost_status, 137);
	assert_false((hw.state == HW_STOPPING));
	assert_ptr_equal(starting_gen(), g);
	check_starting(now());
	assert_ptr_equal(current_gen(), g);
	assert_false(hw.exit.lost_current);
	assert_false((hw.state == HW_STOPPING));
}

static void child_replacement_fails_too(void)
{
	pid_t cur_pid = start_idle(), new_pid = start_idle();
	struct generation *cur = add_gen(1, cur_pid, GEN_CURRENT), *g = add_gen(2, new_pid, GEN_STARTING);

	gen_exited(cur, W_EXITCODE(3, 0)); /* its group is killed: gone once reaped */
	reap_pid(cur_pid);
	end_if_gone(cur);
	kill(new_pid, SIGKILL);
	gen_exited(g, wait_dead(new_pid));
	maybe_finish(); /* exit_now(3) */
}

/* ... and if it fails too, hupwatch exits with the old one's status. */
static void test_current_dies_and_replacement_fails(void **state)
{
	int st;

	(void)state;
	st = in_child(child_replacement_fails_too);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 3);
}

static void child_current_killed(void)
{
	pid_t kid = start_idle();
	struct generation *cur = add_gen(1, kid, GEN_CURRENT);

	kill(kid, SIGKILL);
	gen_exited(cur, wait_dead(kid));
	if (!(hw.state == HW_STOPPING) || hw.exit.status != 137)
		_exit(201);
	maybe_finish(); /* nothing left to wait for: exit_now(137) */
	_exit(202);
}

/* The current generation dies on its own: hupwatch exits with its status (128 + signal). */
static void test_current_dies_exit_status(void **state)
{
	int st;

	(void)state;
	st = in_child(child_current_killed);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 137);
}

static void child_gen1_exec_fails(void)
{
	static char *missing[] = { "/nonexistent/hupwatch-unit-test", NULL };
	char why[256];
	int status;

	struct generation *g;

	hw.cfg.command = missing;
	g = spawn(IN_WORKDIR, why, sizeof(why), &status); /* forked: its exec pipe tells the rest */
	if (!g)
		_exit(201);
	gen_exited(g, wait_dead(g->pid)); /* the pipe says ENOENT */
	maybe_finish(); /* nothing current: exit_now(127) */
	_exit(202);
}

static void test_gen1_exec_failure_exit_status(void **state)
{
	int st;

	(void)state;
	st = in_child(child_gen1_exec_fails);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 127);
}

static void child_gen1_never_ready(void)
{
	pid_t kid = start_idle();
	struct generation *g = add_gen(1, kid, GEN_STARTING);

	hw.cfg.notify = true;
	hw.cfg.warmup = 0;
	hw.cfg.ready_timeout = MSEC(100);
	g->spawned_at = now() - SEC(1);
	check_starting(now()); /* stopped; hupwatch waits for it before exiting */
	if (hw.state != HW_STOPPING || g->state != GEN_FAILED)
		_exit(201);
	maybe_finish();
	gen_exited(g, wait_dead(kid));
	maybe_finish(); /* exit_now(1) */
	_exit(202);
}

/* Generation 1 never ready within --ready-timeout: exit 1, after it is gone. */
static void test_gen1_never_ready_exit_status(void **state)
{
	int st;

	(void)state;
	st = in_child(child_gen1_never_ready);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), EXIT_NOT_READY);
}

static void child_shutdown_without_k(void)
{
	pid_t kid = start_idle();

	add_gen(1, kid, GEN_CURRENT);
	request_shutdown(SIGTERM); /* exit_now(0), the child left running */
}

static void test_shutdown_without_k(void **state)
{
	int st;

	(void)state;
	st = in_child(child_shutdown_without_k);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void child_shutdown_with_k(void)
{
	pid_t cur_pid = start_idle(), old_pid = start_idle(), new_pid = start_idle();
	struct generation *old = add_gen(1, old_pid, GEN_STOPPING);
	struct generation *cur = add_gen(2, cur_pid, GEN_CURRENT);
	struct generation *g = add_gen(3, new_pid, GEN_STARTING);

	old->stop_at = now();
	hw.cfg.kill_at_exit = true;
	request_shutdown(SIGTERM);
	if (!(hw.state == HW_STOPPING) || hw.exit.final_gen != cur || cur->state != GEN_STOPPING ||
	    g->state != GEN_FAILED)
		_exit(201);
	request_shutdown(SIGINT); /* a repeated signal changes nothing */
	request_reload();         /* nor does a HUP */
	if (hw.exit.final_gen != cur || hw.reload.pending || hw.last_number != 3)
		_exit(202);
	gen_exited(g, wait_dead(new_pid));
	maybe_finish();
	gen_exited(cur, wait_dead(cur_pid));
	maybe_finish();
	/* The old one ignored nothing here, but it is still waited for with -k. */
	kill(old_pid, SIGKILL);
	gen_exited(old, wait_dead(old_pid));
	maybe_finish(); /* exit_now(143): the current one's status */
	_exit(203);
}

/* -k: the stop signal to every generation, then exit with the current one's status. */
static void test_shutdown_with_k(void **state)
{
	int st;

	(void)state;
	st = in_child(child_shutdown_with_k);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 143);
}

/* Forwarded signals go to the current generation, else to the starting one. */
static void test_forward(void **state)
{
	pid_t a = start_idle(), b = start_idle();
	struct generation *s;
	int st;

	(void)state;
	forward(SIGUSR1); /* no generation: nothing to do */
	s = add_gen(2, b, GEN_STARTING);
	add_gen(1, a, GEN_CURRENT);
	forward(SIGUSR2);
	st = wait_dead(a);
	assert_int_equal(WTERMSIG(st), SIGUSR2);
	assert_int_equal(kill(b, 0), 0);
	current_gen()->state = GEN_STOPPING;
	forward(SIGWINCH); /* ignored by default: it survives that ... */
	forward(SIGUSR1);  /* ... and dies of this */
	st = wait_dead(b);
	assert_int_equal(WTERMSIG(st), SIGUSR1);
	(void)s;
}

/* reap(): generations, probes and orphans, several at once. */
static void test_reap(void **state)
{
	pid_t a = start_idle(), b = start_idle(), probe = start_idle(), orphan = start_idle();
	struct generation *ga = add_gen(1, a, GEN_STOPPING), *gb = add_gen(2, b, GEN_CURRENT);

	(void)state;
	gb->probe_pid = probe;
	kill(a, SIGKILL);
	kill(orphan, SIGKILL);
	kill(probe, SIGTERM);
	wait_dead(a);
	wait_dead(orphan);
	wait_dead(probe);
	reap();
	assert_false(in_gens(ga));
	assert_ptr_equal(hw.gens, gb);
	assert_int_equal(gb->probe_pid, 0);
	assert_false(gb->probe_ok); /* killed: not a success */
	assert_int_equal(waitpid(orphan, NULL, WNOHANG), -1); /* reaped */
	assert_int_equal(errno, ECHILD);
	nkids = 0;
	kids[nkids++] = b;

	/* A probe that exits 0 makes the generation ready by -c. */
	fflush(stdout);
	fflush(stderr);
	probe = fork();
	assert_true(probe >= 0);
	if (probe == 0)
		_exit(0);
	gb->probe_pid = probe;
	wait_dead(probe);
	reap();
	assert_true(gb->probe_ok);
	assert_int_equal(gb->probe_pid, 0);
}

/* ---- regressions (bugs found by review, now fixed; one test each) ----------------------- */

/*
 * Regression: write_status() wrote reload_reason as it was, and the reason quotes the command and the
 * --chdir directory, which may contain a newline: the status file then has a line without '='
 * and parse_status() rejects it. --reload then says "not a hupwatch status file", and a
 * restarted hupwatch refuses to replace the file (exit 125).
 */
static void test_status_reason_with_newline_stays_one_line(void **state)
{
	struct status_info st;
	char path[PATH_MAX];

	(void)state;
	path_in_tmp(path, sizeof(path), "status");
	hw.cfg.status_file = path;
	hw.reload.count = 1;
	hw.reload.state = RELOAD_FAILED;
	snprintf(hw.reload.reason, sizeof(hw.reload.reason),
		 "gen 2 failed: cannot execute './bad\nname': No such file or directory");
	write_status_as("running");
	hw.cfg.status_file = NULL;
	assert_int_equal(read_status_file(path, &st), 0);
	assert_int_equal(check_own_file("--status-file", path, STATUS_FILE), 0);
	assert_string_equal(reload_state_names[st.reload_state], "failed");
	assert_null(strchr(st.reload_reason, '\n'));
}

/*
 * Regression: resolve_workdir() picked its message for a --chdir that is not a directory from errno, which
 * stat() left alone when it succeeded: an errno left over from before (setup() runs
 * check_own_file() first, whose lstat() of a pid file not there yet sets ENOENT) is reported.
 *   hupwatch -p /tmp/new.pid -d /etc/passwd -- true
 *   -> "cannot use --chdir '/etc/passwd': No such file or directory" (want: not a directory)
 */
static void test_chdir_not_a_directory_no_stale_errno(void **state)
{
	char file[PATH_MAX];

	(void)state;
	path_in_tmp(file, sizeof(file), "file");
	write_text(file, "x\n");
	hw.cfg.level = L_INFO;
	hw.cfg.chdir = file;
	errno = ENOENT; /* as check_own_file() of a new pid file leaves it */
	capture_start();
	assert_int_equal(resolve_workdir(), -1);
	capture_end();
	assert_non_null(strstr(cap_err, "not a directory"));
}

/* ---- under systemd: watchdog, fd store, journal, reload status (issue 12) ---------------- */

static void test_watchdog_interval(void **state)
{
	(void)state;
	assert_int_equal(watchdog_interval("3000000", NULL, 42), SEC(3));
	assert_int_equal(watchdog_interval("3000000", "42", 42), SEC(3));
	assert_int_equal(watchdog_interval("1", "42", 42), 1000);
	assert_int_equal(watchdog_interval("3000000", "43", 42), 0); /* another process's */
	assert_int_equal(watchdog_interval("3000000", "", 42), 0);
	assert_int_equal(watchdog_interval("3000000", "x42", 42), 0);
	assert_int_equal(watchdog_interval(NULL, "42", 42), 0);
	assert_int_equal(watchdog_interval("0", NULL, 42), 0);
	assert_int_equal(watchdog_interval("", NULL, 42), 0);
	assert_int_equal(watchdog_interval("-5", NULL, 42), 0);
	assert_int_equal(watchdog_interval("5s", NULL, 42), 0);
	assert_int_equal(watchdog_interval("99999999999999999999", NULL, 42), 0);
	assert_true(watchdog_is_mine(NULL, 42));
	assert_true(watchdog_is_mine("42", 42));
	assert_false(watchdog_is_mine("4", 42));
}

/* What names hupwatch's pid is not passed down; another process's watchdog is left alone. */
static void test_watchdog_environment(void **state)
{
	char self[24];

	(void)state;
	snprintf(self, sizeof(self), "%d", (int)getpid());
	setenv("WATCHDOG_USEC", "2000000", 1);
	setenv("WATCHDOG_PID", self, 1);
	setenv("SYSTEMD_EXEC_PID", self, 1);
	take_watchdog(); /* no NOTIFY_SOCKET: nobody to ping, but the variables are still ours */
	assert_int_equal(hw.upstream.watchdog, 0);
	assert_null(getenv("WATCHDOG_USEC"));
	assert_null(getenv("WATCHDOG_PID"));
	assert_null(getenv("SYSTEMD_EXEC_PID"));

	hw.upstream.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(hw.upstream.fd >= 0);
	setenv("WATCHDOG_USEC", "2000000", 1);
	take_watchdog();
	assert_int_equal(hw.upstream.watchdog, SEC(2));
	assert_null(getenv("WATCHDOG_USEC"));

	hw.upstream.watchdog = 0;
	setenv("WATCHDOG_USEC", "2000000", 1);
	setenv("WATCHDOG_PID", "1", 1);
	setenv("SYSTEMD_EXEC_PID", "1", 1);
	take_watchdog();
	assert_int_equal(hw.upstream.watchdog, 0);
	assert_string_equal(getenv("WATCHDOG_USEC"), "2000000");
	assert_string_equal(getenv("WATCHDOG_PID"), "1");
	assert_string_equal(getenv("SYSTEMD_EXEC_PID"), "1");
	close(hw.upstream.fd);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	unsetenv("SYSTEMD_EXEC_PID");
}

/* A datagram socket in the abstract namespace standing in for systemd's, hw.upstream aimed at it. */
static int upstream_receiver(void)
{
	char name[64];
	struct sockaddr_un sa;
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	snprintf(name, sizeof(name), "@hupwatch-unit/%d/%" PRId64, (int)getpid(), now());
	assert_int_equal(notify_address(name, &sa, &len), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
	assert_int_equal(notify_address(name, &hw.upstream.addr, &hw.upstream.len), 0);
	hw.upstream.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(hw.upstream.fd >= 0);
	return fd;
}

/* The next datagram's text ("" when none is waiting); *passed gets the fd sent along, if any. */
static void receive_upstream(int rx, char *buf, size_t size, int *passed)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct iovec iov = { buf, size - 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			      .msg_controllen = sizeof(control.buf) };
	ssize_t n = recvmsg(rx, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	struct cmsghdr *c;

	buf[n > 0 ? n : 0] = '\0';
	if (passed)
		*passed = -1;
	for (c = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL; c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && passed)
			memcpy(passed, CMSG_DATA(c), sizeof(int));
}

/* WATCHDOG=1 at once, then every half interval; no timer at all without a watchdog. */
static void test_watchdog_pings(void **state)
{
	char buf[256];
	int rx;

	(void)state;
	assert_int_equal(watchdog_due(), NEVER);
	upstream_watchdog(SEC(100)); /* no watchdog: nothing sent (and no socket to send on) */
	rx = upstream_receiver();
	hw.upstream.watchdog = SEC(2);
	upstream_watchdog(SEC(100));
	receive_upstream(rx, buf, sizeof(buf), NULL);
	assert_string_equal(buf, "WATCHDOG=1");
	assert_int_equal(watchdog_due(), SEC(101));
	assert_int_equal(next_deadline(), SEC(101)); /* the only thing due while idle */
	upstream_watchdog(SEC(100) + MSEC(999));
	receive_upstream(rx, buf, sizeof(buf), NULL);
	assert_string_equal(buf, "");
	upstream_watchdog(SEC(101));
	receive_upstream(rx, buf, sizeof(buf), NULL);
	assert_string_equal(buf, "WATCHDOG=1");
	assert_int_equal(watchdog_due(), SEC(102));
	close(rx);
	close(hw.upstream.fd);
}

/* FDSTORE=1 with the socket's name, the fd itself along by SCM_RIGHTS. */
static void test_upstream_store(void **state)
{
	char buf[256];
	struct stat a, b;
	int rx, passed, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(upstream_store(fd, "x"), -1); /* no service manager */
	rx = upstream_receiver();
	assert_int_equal(upstream_store(fd, "127.0.0.1_8080"), 0);
	receive_upstream(rx, buf, sizeof(buf), &passed);
	assert_string_equal(buf, "FDSTORE=1\nFDNAME=127.0.0.1_8080");
	assert_true(passed >= 0);
	assert_int_equal(fstat(fd, &a), 0);
	assert_int_equal(fstat(passed, &b), 0);
	assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	close(passed);
	close(fd);
	close(rx);
	close(hw.upstream.fd);
}

static void test_names_journal(void **state)
{
	struct stat st = { 0 };

	(void)state;
	st.st_dev = 9;
	st.st_ino = 414074;
	assert_true(names_journal("9:414074", &st));
	assert_false(names_journal("9:414075", &st));
	assert_false(names_journal("8:414074", &st));
	assert_false(names_journal(NULL, &st));
	assert_false(names_journal("", &st));
	assert_false(names_journal("9", &st));
	assert_false(names_journal("9:", &st));
	assert_false(names_journal(":414074", &st));
	assert_false(names_journal("9:414074:1", &st));
	assert_false(names_journal("9:414074 ", &st));
	assert_false(names_journal(" 9:414074", &st));
	assert_false(names_journal("9: 414074", &st));
	assert_false(names_journal("9:+414074", &st));
	assert_false(names_journal("0x9:414074", &st));
}

static void test_log_prefix(void **state)
{
	static const struct {
		enum level level;
		const char *journal;
		const char *plain;
	} cases[] = {
		{ L_DEBUG, "<7>", "hupwatch[12]: debug: " },
		{ L_INFO, "<6>", "hupwatch[12]: info: " },
		{ L_WARNING, "<4>", "hupwatch[12]: warning: " },
		{ L_ERROR, "<3>", "hupwatch[12]: error: " },
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < COUNT(cases); i++) {
		assert_int_equal(log_prefix(buf, sizeof(buf), cases[i].level, true, 12), 3);
		assert_string_equal(buf, cases[i].journal);
		log_prefix(buf, sizeof(buf), cases[i].level, false, 12);
		assert_string_equal(buf, cases[i].plain);
	}
}

/* Whole lines: the journal's carry the priority and nothing else in front. */
static void test_logmsg_to_journal(void **state)
{
	char want[64];

	(void)state;
	hw.cfg.level = L_DEBUG;
	hw.journal = true;
	capture_start();
	logmsg(L_WARNING, "gen %d said\nhi", 2);
	logmsg(L_DEBUG, "x");
	capture_end();
	assert_string_equal(cap_err, "<4>gen 2 said?hi\n<7>x\n");
	hw.journal = false;
	capture_start();
	logmsg(L_ERROR, "y");
	capture_end();
	snprintf(want, sizeof(want), "hupwatch[%d]: error: y\n", (int)getpid());
	assert_string_equal(cap_err, want);
}

/* The real log_init(): stderr a pipe, JOURNAL_STREAM naming it, then something else. */
static void test_log_init(void **state)
{
	struct stat st;
	char stream[64];
	int saved = dup(2), p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_true(dup2(p[1], 2) >= 0);
	assert_int_equal(fstat(2, &st), 0);
	snprintf(stream, sizeof(stream), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", stream, 1);
	log_init();
	assert_true(hw.journal);
	snprintf(stream, sizeof(stream), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino + 1);
	setenv("JOURNAL_STREAM", stream, 1);
	log_init();
	assert_false(hw.journal);
	unsetenv("JOURNAL_STREAM");
	log_init();
	assert_false(hw.journal);
	dup2(saved, 2);
	close(saved);
	close(p[0]);
	close(p[1]);
}

static int listening_socket(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

static void test_find_listener(void **state)
{
	struct listener list[] = {
		{ .fd = 3, .name = "web" },
		{ .fd = -1, .name = "api" }, /* taken already */
		{ .fd = 5, .name = "api" },
		{ .fd = 6, .name = "web" },
	};

	(void)state;
	assert_int_equal(find_listener(list, COUNT(list), "web"), 0);
	assert_int_equal(find_listener(list, COUNT(list), "api"), 2);
	assert_int_equal(find_listener(list, COUNT(list), "ap"), -1);
	assert_int_equal(find_listener(list, COUNT(list), "web2"), -1);
	assert_int_equal(find_listener(list, 0, "web"), -1);
}

/*
 * Passed sockets named as a --listen are that --listen's (from the fd store, in whatever order
 * systemd passes them); the rest stay socket activation's, in their order. A passed socket that
 * does not listen is not taken for one.
 */
static void test_sort_passed(void **state)
{
	static const char *listen[] = { "127.0.0.1:8080", "unix:/run/a.sock", "127.0.0.1:8081" };
	int web = listening_socket(), a = listening_socket(), b = listening_socket();
	int idle = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int reuse[COUNT(listen)];

	(void)state;
	assert_true(idle >= 0);
	add_listener(idle, xstrdup("127.0.0.1_8081"), xstrdup("idle"), NULL);
	add_listener(b, xstrdup("unix__run_a.sock"), xstrdup("b"), NULL);
	add_listener(web, xstrdup("web"), xstrdup("web"), NULL);
	add_listener(a, xstrdup("127.0.0.1_8080"), xstrdup("a"), NULL);
	hw.cfg.listen = listen;
	hw.cfg.nlisten = COUNT(listen);
	sort_passed(reuse, COUNT(reuse));
	assert_int_equal(reuse[0], a);
	assert_int_equal(reuse[1], b);
	assert_int_equal(reuse[2], -1);
	assert_int_equal(hw.sock.n, 2);
	assert_int_equal(hw.sock.list[0].fd, idle);
	assert_int_equal(hw.sock.list[1].fd, web);
	assert_string_equal(hw.sock.list[1].name, "web");
	for (size_t i = 0; i < hw.sock.n; i++) {
		free(hw.sock.list[i].name);
		free(hw.sock.list[i].label);
	}
	free(hw.sock.list);
	close(web);
	close(a);
	close(b);
	close(idle);
}

/* Only sockets hupwatch bound go to the store; the stored unix socket's file then outlives hupwatch. */
static void test_store_listeners(void **state)
{
	char buf[256];
	int rx, passed, bound = listening_socket(), activated = listening_socket();

	(void)state;
	add_listener(activated, xstrdup("web"), xstrdup("activated fd 3 (web)"), NULL);
	add_listener(bound, xstrdup("unix__run_a.sock"), xstrdup("unix:/run/a.sock"), xstrdup("/run/a.sock"));
	hw.sock.list[1].fresh = true;
	store_listeners(); /* no service manager: nothing changes */
	assert_non_null(hw.sock.list[1].unix_path);
	rx = upstream_receiver();
	store_listeners();
	receive_upstream(rx, buf, sizeof(buf), &passed);
	assert_string_equal(buf, "FDSTORE=1\nFDNAME=unix__run_a.sock");
	assert_true(passed >= 0);
	close(passed);
	receive_upstream(rx, buf, sizeof(buf), &passed);
	assert_string_equal(buf, ""); /* and nothing for the activated one */
	assert_null(hw.sock.list[1].unix_path);
	for (size_t i = 0; i < hw.sock.n; i++) {
		free(hw.sock.list[i].name);
		free(hw.sock.list[i].label);
	}
	free(hw.sock.list);
	close(bound);
	close(activated);
	close(rx);
	close(hw.upstream.fd);
}

/* STATUS= through a reload: starting, failed (naming what still serves), and what ended it. */
static void test_reload_status_texts(void **state)
{
	char buf[512], want[256];
	struct generation *cur = xmalloc(sizeof(*cur));
	int rx;

	(void)state;
	rx = upstream_receiver();
	*cur = (struct generation){ .number = 2, .pid = 4321, .state = GEN_CURRENT, .kill_at = NEVER, .exec_fd = -1 };
	hw.gens = cur;
	hw.last_number = 2;
	hw.reload.count = 1;
	hw.reload.state = RELOAD_IN_PROGRESS;
	hw.reload.generation = 3;
	report_failure(3, "exited with status 3\nbefore ready", 3);
	receive_upstream(rx, buf, sizeof(buf), NULL);
	assert_string_equal(buf, "READY=1\nSTATUS=reload 1 failed: gen 3 exited with status 3?before ready; gen 2 pid 4321 current");
	assert_int_equal(hw.reload.state, RELOAD_FAILED);
	upstream_ready();
	receive_upstream(rx, buf, sizeof(buf), NULL);
	snprintf(want, sizeof(want), "READY=1\nSTATUS=gen 2 pid 4321 is current");
	assert_string_equal(buf, want);
	enter(HW_STOPPING);
	receive_upstream(rx, buf, sizeof(buf), NULL);
	assert_string_equal(buf, "STOPPING=1\nSTATUS=stopping");
	close(rx);
	close(hw.upstream.fd);
}

static void test_notify_watchdog(void **state)
{
	struct notify_msg m;

	(void)state;
	assert_int_equal(notify_str("WATCHDOG=1", &m), 0);
	assert_true(m.watchdog);
	assert_false(m.ready);
	assert_int_equal(notify_str("READY=1\nWATCHDOG=1\n", &m), 0);
	assert_true(m.watchdog && m.ready);
	assert_int_equal(notify_str("WATCHDOG=trigger", &m), 0);
	assert_false(m.watchdog);
	assert_int_equal(notify_str("WATCHDOG=10", &m), 0);
	assert_false(m.watchdog);
	assert_int_equal(notify_str("WATCHDOG_USEC=1", &m), 0);
	assert_false(m.watchdog);
}

/*
 * A generation is watched once it has pinged, while it starts or serves; a whole interval without
 * a ping: a starting one fails, a current one makes hupwatch ask for WATCHDOG=trigger and stop
 * pinging.
 */
static void test_hung_generations(void **state)
{
	pid_t cur_pid = start_idle(), new_pid = start_idle();
	struct generation *cur = add_gen(1, cur_pid, GEN_CURRENT), *g = add_gen(2, new_pid, GEN_STARTING);
	char buf[256], want[256];
	nsec_t t = now();
	int rx;

	(void)state;
	assert_int_equal(hung_at(cur), NEVER); /* no watchdog */
	rx = upstream_receiver();
	hw.upstream.watchdog = SEC(2);
	hw.upstream.watchdog_next = t + SEC(1);
	assert_int_equal(hung_at(cur), NEVER); /* never pinged: not watched */
	hw.reload.count = 1;
	hw.reload.state = RELOAD_IN_PROGRESS;
	hw.reload.generation = 2;
	cur->watchdog_at = t - MSEC(100);
	g->watchdog_at = t - SEC(3);
	assert_int_equal(hung_at(cur), t + SEC(2) - MSEC(100));
	assert_int_equal(next_deadline() <= t, true); /* g is overdue */
	check_hung(t);
	assert_int_equal(g->state, GEN_FAILED);
	assert_int_equal(strncmp(hw.reload.reason, "gen 2 failed: hung: no WATCHDOG=1 for 3.00s", 43), 0);
	assert_int_equal(hung_at(g), NEVER);
	receive_upstream(rx, buf, sizeof(buf), NULL);
	assert_int_equal(strncmp(buf, "READY=1\nSTATUS=reload 1 failed: gen 2 hung", 42), 0);
	assert_int_equal(next_deadline(), t + SEC(1)); /* hupwatch's own ping comes before cur's limit */

	check_hung(t + SEC(2) - MSEC(101)); /* not yet */
	assert_int_equal(hw.upstream.watchdog, SEC(2));
	check_hung(t + SEC(2));
	snprintf(want, sizeof(want), "STATUS=gen 1 pid %d hung: no WATCHDOG=1 for 2.10s\nWATCHDOG=trigger", (int)cur_pid);
	receive_upstream(rx, buf, sizeof(buf), NULL);
	assert_string_equal(buf, want);
	assert_int_equal(hw.upstream.watchdog, 0); /* hupwatch's own pings stop */
	assert_int_equal(watchdog_due(), NEVER);
	assert_int_equal(cur->state, GEN_CURRENT); /* systemd acts; hupwatch does not stop it itself */
	close(rx);
	close(hw.upstream.fd);
}

/* ---- regressions from fuzzing (test/fuzz/regressions/) ----------------------------------- */

/* (none yet) */

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_duration_valid),
		TEST(test_duration_invalid),
		TEST(test_duration_huge_digit_strings),
		TEST(test_signal_names_and_numbers),
		TEST(test_signal_realtime_numbers),
		TEST(test_signal_invalid),
		TEST(test_signame_round_trip),
		TEST(test_exit_code_exited),
		TEST(test_exit_code_signaled),
		TEST(test_exit_code_real_processes),
		TEST(test_address_valid),
		TEST(test_address_invalid),
		TEST(test_address_unix_path_limit),
		TEST(test_address_host_limit),
		TEST(test_fd_name),
		TEST(test_watchdog_interval),
		TEST(test_watchdog_environment),
		TEST(test_watchdog_pings),
		TEST(test_upstream_store),
		TEST(test_names_journal),
		TEST(test_log_prefix),
		TEST(test_logmsg_to_journal),
		TEST(test_log_init),
		TEST(test_find_listener),
		TEST(test_sort_passed),
		TEST(test_store_listeners),
		TEST(test_reload_status_texts),
		TEST(test_notify_watchdog),
		TEST(test_hung_generations),
		TEST(test_notify_address),
		TEST(test_notify_ready),
		TEST(test_notify_status),
		TEST(test_notify_malformed),
		TEST(test_status_parse_minimal),
		TEST(test_status_parse_full),
		TEST(test_status_parse_malformed),
		TEST(test_status_round_trip),
		TEST(test_status_not_configured),
		TEST(test_request_taken_once),
		TEST(test_judge_new_binary),
		TEST(test_upgrade_request_during_pending_verdict),
		TEST(test_reload_outcome),
		TEST(test_handover_round_trip),
		TEST(test_respawn_backoff_and_crash_loop),
		TEST(test_write_atomic_and_read_file),
		TEST(test_check_own_file),
		TEST(test_proc_helpers),
		TEST(test_resolve_workdir),
		TEST(test_options_defaults),
		TEST(test_options_each),
		TEST(test_options_combined),
		TEST(test_address_udp),
		TEST(test_parse_mode),
		TEST(test_split_account),
		TEST(test_parse_owner),
		TEST(test_parse_user),
		TEST(test_user_needs_root),
		TEST(test_env_line),
		TEST(test_env_file),
		TEST(test_env_file_error_reported),
		TEST(test_default_stop_timeout),
		TEST(test_listen_unix_access),
		TEST(test_socket_options_warn),
		TEST(test_options_warmup_default),
		TEST(test_options_warnings),
		TEST(test_options_usage_errors),
		TEST(test_options_reload),
		TEST(test_options_help_version),
		TEST(test_options_stop_at_command),
		TEST(test_options_reparse),
		TEST(test_judge_warmup_only),
		TEST(test_judge_notify_only),
		TEST(test_judge_ready_cmd_only),
		TEST(test_judge_both),
		TEST(test_judge_http),
		TEST(test_judge_settling),
		TEST(test_parse_http_status),
		TEST(test_ready_http_options),
		TEST(test_judge_timeout_zero_is_no_limit),
		TEST(test_judge_warmup_as_minimum_age),
		TEST(test_judge_is_pure),
		TEST(test_must_wait_for),
		TEST(test_reload_coalesces),
		TEST(test_reload_ignored_while_shutting_down),
		TEST(test_terminate_drops_pending_reload),
		TEST(test_reload_exec_failure_keeps_current),
		TEST(test_pending_reload_runs_once_after_failure),
		TEST(test_reload_swaps_generations),
		TEST(test_ready_timeout_fails_reload),
		TEST(test_stop_timeout_kills_group),
		TEST(test_kill_leftovers),
		TEST(test_next_deadline),
		TEST(test_current_dies_while_replacement_starts),
		TEST(test_current_dies_and_replacement_fails),
		TEST(test_current_dies_exit_status),
		TEST(test_gen1_exec_failure_exit_status),
		TEST(test_gen1_never_ready_exit_status),
		TEST(test_shutdown_without_k),
		TEST(test_shutdown_with_k),
		TEST(test_forward),
		TEST(test_reap),
		TEST(test_status_reason_with_newline_stays_one_line),
		TEST(test_chdir_not_a_directory_no_stale_errno),
	};

	return cmocka_run_group_tests_name("hupwatch unit tests", tests, NULL, NULL);
}
