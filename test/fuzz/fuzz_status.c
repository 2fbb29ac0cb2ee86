/*
 * test/fuzz/fuzz_status.c - libFuzzer target: the status file (parse_status), as read by
 * --reload and by check_own_file() before hupwatch replaces a status file.
 *
 * The file is whatever is at that path: another program's, a truncated one, a hostile one.
 * The input is given as read_file() would give it (at most 4095 bytes, then a NUL), and also
 * exactly as it is (not NUL-terminated) so ASan sees any read past its length. Checked: 0 or -1,
 * the same answer both ways; on 0, pid >= 1, every string NUL-terminated within its field,
 * exit_status -1 or 0-255, durations within 1e9 seconds; and what write_status() would write
 * from the parsed fields parses back to the same fields.
 *
 * SPDX-License-Identifier: MIT
 */
#define FUZZ_NAME "fuzz_status"
#include "fuzz.h"

#define TERMINATED(field) (memchr((field), '\0', sizeof(field)) != NULL)

/* Field by field: bytes after a string's NUL may hold what an earlier, longer value left. */
static bool same_fields(const struct status_info *a, const struct status_info *b)
{
	return a->pid == b->pid && a->starttime == b->starttime && strcmp(a->state, b->state) == 0 &&
	       a->generation == b->generation && a->generation_pid == b->generation_pid &&
	       a->ready_wait == b->ready_wait && a->reload == b->reload &&
	       strcmp(a->reload_state, b->reload_state) == 0 && a->reload_generation == b->reload_generation &&
	       a->reload_started == b->reload_started && strcmp(a->reload_reason, b->reload_reason) == 0 &&
	       a->exit_status == b->exit_status;
}

/* The text write_status() produces, from parsed fields (same format string). */
static int rewrite(const struct status_info *st, char *text, size_t size)
{
	int n = snprintf(text, size,
			 "pid=%ld\nstarttime=%llu\nstate=%s\ngeneration=%u\ngeneration_pid=%ld\n"
			 "ready_wait=%" PRId64 ".%09" PRId64 "\nreload=%u\nreload_state=%s\n"
			 "reload_generation=%u\nreload_started=%" PRId64 ".%09" PRId64 "\nreload_reason=%s\n",
			 st->pid, st->starttime, st->state, st->generation, st->generation_pid,
			 st->ready_wait / NSEC_PER_SEC, st->ready_wait % NSEC_PER_SEC, st->reload,
			 st->reload_state, st->reload_generation, st->reload_started / NSEC_PER_SEC,
			 st->reload_started % NSEC_PER_SEC, st->reload_reason);

	if (st->exit_status >= 0 && n > 0 && (size_t)n < size)
		n += snprintf(text + n, size - (size_t)n, "exit_status=%d\n", st->exit_status);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char file[4096], *exact, text[2048];
	struct status_info st, st2, again;
	size_t n = size < sizeof(file) - 1 ? size : sizeof(file) - 1;
	int rc, rc2, len;

	/* As read_file() hands it over. */
	memcpy(file, data, n);
	file[n] = '\0';
	rc = parse_status(file, n, &st);
	CHECK(rc == 0 || rc == -1);

	/* Exactly the bytes, nothing after them. */
	exact = malloc(size ? size : 1);
	if (!exact)
		return 0;
	memcpy(exact, data, size);
	rc2 = parse_status(exact, size, &st2);
	free(exact);
	if (n == size)
		CHECK(rc == rc2 && (rc != 0 || same_fields(&st, &st2)));
	if (rc != 0)
		return 0;

	CHECK(st.pid >= 1 && st.pid <= INT_MAX);
	CHECK(st.generation_pid >= 0 && st.generation_pid <= INT_MAX);
	CHECK(TERMINATED(st.state) && TERMINATED(st.reload_state) && TERMINATED(st.reload_reason));
	CHECK(st.exit_status >= -1 && st.exit_status <= 255);
	CHECK(st.ready_wait >= 0 && st.ready_wait <= MAX_SECONDS * NSEC_PER_SEC);
	CHECK(st.reload_started >= 0 && st.reload_started <= MAX_SECONDS * NSEC_PER_SEC);

	/* Written back and read again: the same fields, unless a value had a line break of its own
	 * (it cannot: lines are split on '\n') or was cut to its field. */
	len = rewrite(&st, text, sizeof(text));
	if (len > 0 && (size_t)len < sizeof(text)) {
		CHECK(parse_status(text, (size_t)len, &again) == 0);
		CHECK(same_fields(&st, &again));
	}
	return 0;
}
