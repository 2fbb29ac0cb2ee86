/*
 * test/fuzz/fuzz_options.c - libFuzzer target: the command line.
 *
 * The input is split into arguments on NUL or newline and given to parse_options() after
 * argv[0] "hupwatch", as main() would; free_config() after each run (LeakSanitizer checks it).
 * Beyond "no crash, no leak, no UB", every configuration parse_options() accepts must keep the
 * promises main() relies on: a command (or --reload with a status file and no command), values
 * in their documented ranges, every --listen address valid for open_listeners().
 * Usage errors and --help go to stdout/stderr: run with -close_fd_mask=3 (test/fuzz/run.sh does).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -DUNIT_TEST fuzz_options.c
 *
 * SPDX-License-Identifier: MIT
 */
#define FUZZ_NAME "fuzz_options"
#include "fuzz.h"

#define MAX_ARGS 256

static bool valid_signal(int sig)
{
	return sig >= 1 && sig <= SIGRTMAX && (sig <= 31 || sig >= SIGRTMIN);
}

static void check_accepted(const struct config *c, int argc, char **argv)
{
	struct address a;

	CHECK(c->command >= argv + 1 && c->command <= argv + argc);
	CHECK(c->warmup >= 0 && c->warmup <= MAX_SECONDS * NSEC_PER_SEC);
	CHECK(c->ready_interval > 0 && c->ready_interval <= MAX_SECONDS * NSEC_PER_SEC);
	/* -t 0 and -T 0: NEVER, no limit. */
	CHECK(c->ready_timeout == NEVER || (c->ready_timeout > 0 && c->ready_timeout <= MAX_SECONDS * NSEC_PER_SEC));
	CHECK(c->stop_timeout == NEVER || (c->stop_timeout > 0 && c->stop_timeout <= MAX_SECONDS * NSEC_PER_SEC));
	CHECK(valid_signal(c->stop_signal));
	CHECK(c->backlog >= 1 && c->backlog <= 1000000);
	CHECK(c->level == L_DEBUG || c->level == L_INFO || c->level == L_ERROR);
	CHECK(!c->chdir || *c->chdir);
	CHECK(!c->pid_file || *c->pid_file);
	CHECK(!c->status_file || *c->status_file);
	CHECK(!c->ready_cmd || *c->ready_cmd);
	CHECK((c->nlisten == 0) == (c->listen == NULL));
	CHECK(!c->socket_mode_set || c->socket_mode <= 0777);
	CHECK(!c->env_file || *c->env_file);
	CHECK(!c->user.set || (c->user.name && c->user.home));
	for (size_t i = 0; i < c->nlisten; i++)
		CHECK(parse_address(c->listen[i], &a) == 0);
	if (c->reload) {
		CHECK(c->status_file != NULL);
		CHECK(*c->command == NULL);
		CHECK(!c->kill_at_exit && !c->notify && !c->ready_cmd && !c->chdir && !c->pid_file &&
		      c->nlisten == 0);
	} else {
		CHECK(*c->command != NULL);
		if ((c->notify || c->ready_cmd) && !c->warmup_set)
			CHECK(c->warmup == 0);
		if (!c->notify && !c->ready_cmd && !c->warmup_set)
			CHECK(c->warmup == NSEC_PER_SEC);
		/* A warm-up that could never pass within the ready timeout is refused. */
		if ((c->notify || c->ready_cmd) && c->ready_timeout > 0)
			CHECK(c->warmup < c->ready_timeout);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[MAX_ARGS + 2], *buf, *p, *end;
	struct config c;
	int argc = 0, rc;

	buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = "hupwatch";
	for (p = buf, end = buf + size; argc <= MAX_ARGS;) {
		char *q = p;

		while (q < end && *q != '\0' && *q != '\n')
			q++;
		*q = '\0';
		argv[argc++] = p;
		if (q >= end)
			break;
		p = q + 1;
	}
	argv[argc] = NULL;

	rc = parse_options(argc, argv, &c);
	CHECK(rc == 0 || rc == -1 || rc == EXIT_FAILURE_OWN);
	if (rc == 0)
		check_accepted(&c, argc, argv);
	else
		CHECK(c.listen == NULL && c.user.name == NULL); /* freed on every early return */
	free_config(&c);
	free(buf);
	return 0;
}
