/*
 * test/fuzz/fuzz_http_status.c - libFuzzer target: the status line of --ready-http (parse_http_status).
 *
 * Whatever a generation's server (or anything on its probe socket) answers reaches this parser,
 * given as it arrived (not NUL-terminated: the copy is exactly `size` bytes, so ASan sees any
 * read past it). Checked: a result of 1, 0 or -1; 0 exactly when no LF is in the first
 * min(size, HTTP_LINE_MAX) bytes and size < HTTP_LINE_MAX; on 1, a code of 100-599 equal to the
 * three digits at offset 9, a line length up to and with the first LF, "HTTP/" at the start,
 * and the same answer for any shorter input that still holds the whole line (more bytes after
 * the line never change it); outputs untouched unless 1.
 *
 * SPDX-License-Identifier: MIT
 */
#define FUZZ_NAME "fuzz_http_status"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	size_t scan = size < HTTP_LINE_MAX ? size : HTTP_LINE_MAX, line = 12345;
	const char *nl;
	int code = -1, rc;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	nl = memchr(buf, '\n', scan);
	rc = parse_http_status(buf, size, &code, &line);
	CHECK(rc == 1 || rc == 0 || rc == -1);
	CHECK((rc == 0) == (!nl && size < HTTP_LINE_MAX));
	if (rc != 1) {
		CHECK(code == -1 && line == 12345);
	} else {
		int code2 = -1;
		size_t line2 = 0;

		CHECK(nl && line == (size_t)(nl - buf) + 1);
		CHECK(code >= 100 && code <= 599);
		CHECK(memcmp(buf, "HTTP/", 5) == 0);
		CHECK(code == (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0'));
		/* The bytes after the line do not count: the line alone parses the same. */
		CHECK(parse_http_status(buf, line, &code2, &line2) == 1 && code2 == code && line2 == line);
	}
	free(buf);
	return 0;
}
