/*
 * test/fuzz/fuzz_notify.c - libFuzzer target: sd_notify datagrams (parse_notify).
 *
 * Anyone in the generation can send hupwatch anything; the datagram is given as it arrived
 * (not NUL-terminated: the copy is exactly `size` bytes, so ASan sees any read past it).
 * Checked: a result of 0 or -1; on 0, ready exactly when a line is "READY=1", and the STATUS=
 * text NUL-terminated, at most 255 bytes, free of control characters, and equal to the last
 * STATUS= line with those characters replaced.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "../../hupwatch.c"
#pragma GCC diagnostic pop

#define CHECK(cond)                                                                            \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			fprintf(stderr, "fuzz_notify: %s:%d: broken promise: %s\n", __FILE__,  \
				__LINE__, #cond);                                              \
			abort();                                                               \
		}                                                                              \
	} while (0)

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
	if (memchr(buf, '\0', size))
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
