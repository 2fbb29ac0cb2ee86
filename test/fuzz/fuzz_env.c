/*
 * test/fuzz/fuzz_env.c - libFuzzer target: --env-file lines (parse_env_line).
 *
 * The input is the text of an env file, split on newlines as apply_env() splits it; each line is
 * handed over in a copy of exactly its length (not NUL-terminated), so ASan sees any read past it.
 * Checked against a model written here from the man page's rules: ENV_SKIP for empty, blank and
 * comment lines; ENV_VARIABLE for NAME=value with NAME of [A-Za-z_][A-Za-z0-9_]* from the first
 * column, *name_len its length; ENV_BAD for anything else (a NUL, a final CR, a blank before the
 * name), with a reason that is one of the parser's fixed strings, never text from the line.
 *
 * SPDX-License-Identifier: MIT
 */
#define FUZZ_NAME "fuzz_env"
#include "fuzz.h"

static bool name_char(unsigned char c, bool first)
{
	return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (!first && c >= '0' && c <= '9');
}

static enum env_line model(const unsigned char *p, size_t n, size_t *name_len)
{
	size_t i = 0;

	if (memchr(p, '\0', n) || (n > 0 && p[n - 1] == '\r'))
		return ENV_BAD;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (i == n || p[i] == '#')
		return ENV_SKIP;
	if (i > 0 || !name_char(p[0], true))
		return ENV_BAD;
	for (i = 1; i < n && name_char(p[i], false); i++)
		;
	if (i == n || p[i] != '=')
		return ENV_BAD;
	*name_len = i;
	return ENV_VARIABLE;
}

static void check_line(const uint8_t *data, size_t n)
{
	char *line = malloc(n ? n : 1);
	size_t got_len = 0, want_len = 0;
	const char *why = "unset";
	enum env_line got, want;

	if (!line)
		return;
	memcpy(line, data, n);
	got = parse_env_line(line, n, &got_len, &why);
	want = model(data, n, &want_len);
	CHECK(got == want);
	CHECK((why != NULL) == (got == ENV_BAD));
	if (got == ENV_VARIABLE)
		CHECK(got_len == want_len && got_len < n && line[got_len] == '=');
	/* The reason is a constant of the parser: never inside the line it judges. */
	if (why)
		CHECK(!(why >= line && why < line + n) && strlen(why) > 0 && strlen(why) < 80);
	free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;

	while (p < end) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);

		check_line(p, n);
		p += n + 1;
	}
	return 0;
}
