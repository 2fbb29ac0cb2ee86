/*
 * test/fuzz/fuzz_notify.c - libFuzzer target: sd_notify datagrams (parse_notify).
 *
 * Anyone in the generation can send hupwatch anything; the datagram is given as it arrived
 * (not NUL-terminated: the copy is exactly `size` bytes, so ASan sees any read past it).
 * Checked: a result of 0 or -1, -1 exactly for NULs, bad UTF-8 or a line without '='; on 0, ready exactly when a line is "READY=1", and the STATUS=
 * text NUL-terminated, at most 255 bytes, free of control characters, and equal to the last
 * STATUS= line with those characters replaced.
 *
 * SPDX-License-Identifier: MIT
 */
#define FUZZ_NAME "fuzz_notify"
#include "fuzz.h"

/* RFC 3629's table of well-formed sequences, checked byte range by byte range (no decoding). */
static bool model_utf8(const unsigned char *p, size_t n)
{
	static const struct {
		unsigned char lo, hi, second_lo, second_hi;
		size_t len;
	} rows[] = {
		{ 0x00, 0x7f, 0, 0, 1 },       { 0xc2, 0xdf, 0x80, 0xbf, 2 }, { 0xe0, 0xe0, 0xa0, 0xbf, 3 },
		{ 0xe1, 0xec, 0x80, 0xbf, 3 }, { 0xed, 0xed, 0x80, 0x9f, 3 }, { 0xee, 0xef, 0x80, 0xbf, 3 },
		{ 0xf0, 0xf0, 0x90, 0xbf, 4 }, { 0xf1, 0xf3, 0x80, 0xbf, 4 }, { 0xf4, 0xf4, 0x80, 0x8f, 4 },
	};
	size_t i = 0;

	while (i < n) {
		size_t r = 0;

		while (r < sizeof(rows) / sizeof(rows[0]) && (p[i] < rows[r].lo || p[i] > rows[r].hi))
			r++;
		if (r == sizeof(rows) / sizeof(rows[0]) || i + rows[r].len > n)
			return false;
		if (rows[r].len > 1 && (p[i + 1] < rows[r].second_lo || p[i + 1] > rows[r].second_hi))
			return false;
		for (size_t k = 2; k < rows[r].len; k++)
			if (p[i + k] < 0x80 || p[i + k] > 0xbf)
				return false;
		i += rows[r].len;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1), want[sizeof(((struct notify_msg *)0)->status)] = "";
	const char *p, *end;
	bool ready = false, has_status = false, malformed = size == 0;
	struct notify_msg m;
	int rc;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	rc = parse_notify(buf, size, &m);
	CHECK(rc == 0 || rc == -1);

	/* The same message, judged line by line here. */
	if (memchr(buf, '\0', size) || !model_utf8(data, size))
		malformed = true;
	for (p = buf, end = buf + size; !malformed && p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);

		if (n > 0 && !memchr(p, '=', n))
			malformed = true;
		if (n == 7 && memcmp(p, "READY=1", 7) == 0)
			ready = true;
		if (n >= 7 && memcmp(p, "STATUS=", 7) == 0) {
			size_t k = n - 7 < sizeof(want) - 1 ? n - 7 : sizeof(want) - 1;

			for (size_t i = 0; i < k; i++) {
				unsigned char c = (unsigned char)p[7 + i];

				want[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
			}
			want[k] = '\0';
			has_status = true;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	CHECK((rc == -1) == malformed);
	if (rc == 0) {
		CHECK(m.ready == ready);
		CHECK(m.has_status == has_status);
		CHECK(memchr(m.status, '\0', sizeof(m.status)) != NULL);
		for (const char *s = m.status; *s; s++)
			CHECK((unsigned char)*s >= 0x20 && *s != 0x7f);
		if (has_status)
			CHECK(strcmp(m.status, want) == 0);
		else
			CHECK(m.status[0] == '\0');
	}
	free(buf);
	return 0;
}
