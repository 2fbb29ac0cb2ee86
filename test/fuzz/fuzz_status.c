/*
 * test/fuzz/fuzz_status.c - libFuzzer target: the status file (parse_status), as read by
 * --reload and by check_own_file() before hupwatch replaces a status file.
 *
 * The file is whatever is at that path: another program's, a truncated one, a hostile one.
 * The input is given as read_file() would give it (at most 4095 bytes, then a NUL), and also
 * exactly as it is (not NUL-terminated) so ASan sees any read past its length. Checked: 0 or -1,
 * the same answer both ways; on 0, pid >= 1, enums in range, every string NUL-terminated within
 * its field, exit_status -1 or 0-255; and what format_status() (the writer, driven by the same
 * table) makes of the parsed fields parses back to the same text.
 *
 * SPDX-License-Identifier: MIT
 */
#define FUZZ_NAME "fuzz_status"
#include "fuzz.h"

#define TERMINATED(field) (memchr((field), '\0', sizeof(field)) != NULL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char file[4096], *exact, text[4096], text2[4096];
	struct status_info st, st2, again;
	size_t n = size < sizeof(file) - 1 ? size : sizeof(file) - 1;
	int rc, rc2;

	/* As read_file() hands it over. */
	memcpy(file, data, n);
	file[n] = '\0';
	rc = parse_status(file, n, &st);
	CHECK(rc == 0 || rc == -1);

	/* Exactly the bytes, nothing after them: the same answer, the same fields (as written). */
	exact = malloc(size ? size : 1);
	if (!exact)
		return 0;
	memcpy(exact, data, size);
	rc2 = parse_status(exact, size, &st2);
	free(exact);
	if (n == size && rc == 0 && rc2 == 0) {
		format_status(&st, text, sizeof(text));
		format_status(&st2, text2, sizeof(text2));
		CHECK(strcmp(text, text2) == 0);
	}
	if (n == size)
		CHECK(rc == rc2);
	if (rc != 0)
		return 0;

	CHECK(st.pid >= 1 && st.pid <= INT_MAX);
	CHECK(st.generation_pid >= 0 && st.generation_pid <= INT_MAX);
	CHECK(st.state >= 0 && (size_t)st.state < COUNT(hw_state_names));
	CHECK(st.reload_state >= 0 && (size_t)st.reload_state < COUNT(reload_state_names));
	CHECK(st.upgrade_state >= 0 && (size_t)st.upgrade_state < COUNT(reload_state_names));
	CHECK(TERMINATED(st.reload_reason) && TERMINATED(st.fallback_dir) && TERMINATED(st.version) &&
	      TERMINATED(st.generations) && TERMINATED(st.upgrade_reason));
	CHECK(st.exit_status >= -1 && st.exit_status <= 255);
	CHECK(st.ready_wait >= 0);
	CHECK(st.reload_started >= 0);

	/* What hupwatch writes from these fields reads back to the same text: one format, one table. */
	format_status(&st, text, sizeof(text));
	CHECK(parse_status(text, strlen(text), &again) == 0);
	format_status(&again, text2, sizeof(text2));
	CHECK(strcmp(text, text2) == 0);
	return 0;
}
