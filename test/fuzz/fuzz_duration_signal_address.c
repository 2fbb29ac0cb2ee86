/*
 * test/fuzz/fuzz_duration_signal_address.c - libFuzzer target: the values of options.
 *
 * The input, as a NUL-terminated string, goes to parse_duration(), parse_signal() and
 * parse_address() (and fd_name(), which names each --listen socket). Each result is checked
 * against what the contract says the parser accepts:
 *   duration  digits with at most one '.', at least one digit, at most 1e9 seconds once cut to
 *             the nanosecond, and the value compared with an independent computation;
 *   signal    -1, or a valid number (1-31, SIGRTMIN-SIGRTMAX) written in decimal or a name of
 *             the table, with or without SIG, in any case;
 *   address   rebuilt from the parsed fields, it gives back the input.
 *
 * SPDX-License-Identifier: MIT
 */
#define FUZZ_NAME "fuzz_duration_signal_address"
#include "fuzz.h"

/* The contract's duration, computed another way: -1 if invalid, else nanoseconds. */
static nsec_t reference_duration(const char *s)
{
	size_t int_digits = strspn(s, "0123456789"), frac_digits = 0;
	const char *frac = NULL;
	__int128 sec = 0;
	nsec_t ns = 0;

	if (s[int_digits] == '.') {
		frac = s + int_digits + 1;
		frac_digits = strspn(frac, "0123456789");
		if (frac[frac_digits] != '\0')
			return -1;
	} else if (s[int_digits] != '\0')
		return -1;
	if (int_digits + frac_digits == 0 || frac_digits > 9) /* finer than a nanosecond: refused */
		return -1;
	for (size_t i = 0; i < int_digits; i++) {
		sec = sec * 10 + (s[i] - '0');
		if (sec > MAX_SECONDS)
			return -1;
	}
	for (size_t i = 0; i < 9; i++)
		ns = ns * 10 + (i < frac_digits ? frac[i] - '0' : 0);
	if (sec == MAX_SECONDS && ns > 0)
		return -1;
	return (nsec_t)sec * NSEC_PER_SEC + ns;
}

static void check_duration(const char *s)
{
	nsec_t d = -7, want = reference_duration(s);
	char again[64];
	int rc = parse_duration(s, &d);

	CHECK(rc == 0 || rc == -1);
	CHECK((rc == 0) == (want >= 0));
	if (rc != 0) {
		CHECK(d == -7);
		return;
	}
	CHECK(d == want);
	/* What write_status() writes back (seconds.nanoseconds) parses to the same value. */
	snprintf(again, sizeof(again), "%" PRId64 ".%09" PRId64, d / NSEC_PER_SEC, d % NSEC_PER_SEC);
	CHECK(parse_duration(again, &d) == 0 && d == want);
}

static void check_signal(const char *s)
{
	int sig = parse_signal(s);

	if (sig == -1)
		return;
	CHECK(sig >= 1 && sig <= SIGRTMAX && (sig <= 31 || sig >= SIGRTMIN));
	if (*s >= '0' && *s <= '9') {
		char *end;

		CHECK(strtol(s, &end, 10) == sig && *end == '\0');
	} else {
		const char *name = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
		bool found = false;

		for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
			if (strcasecmp(name, signals[i].name) == 0 && signals[i].number == sig)
				found = true;
		CHECK(found);
	}
	if (sig <= 31)
		CHECK(parse_signal(signame(sig)) == sig);
}

static bool all_digits(const char *s)
{
	return *s && strspn(s, "0123456789") == strlen(s);
}

static void check_address(const char *s)
{
	struct address a;
	char rebuilt[sizeof(a.host) + sizeof(a.port) + sizeof(a.path) + 16];
	const char *rest;
	char *name;

	if (parse_address(s, &a) != 0)
		return;
	CHECK(memchr(a.host, '\0', sizeof(a.host)) && memchr(a.port, '\0', sizeof(a.port)) &&
	      memchr(a.path, '\0', sizeof(a.path)));
	/* udp: comes before an inet form only, and is all that makes a datagram socket. */
	CHECK(a.socktype == SOCK_STREAM || (a.socktype == SOCK_DGRAM && a.family != AF_UNIX));
	CHECK((a.socktype == SOCK_DGRAM) == (strncmp(s, "udp:", 4) == 0));
	rest = a.socktype == SOCK_DGRAM ? s + 4 : s;
	switch (a.family) {
	case AF_UNIX:
		CHECK(*a.path && !*a.host && !*a.port);
		snprintf(rebuilt, sizeof(rebuilt), "unix:%s", a.path);
		break;
	case AF_INET:
		CHECK(strcmp(a.host, "0.0.0.0") == 0);
		snprintf(rebuilt, sizeof(rebuilt), "%s", a.port);
		break;
	case AF_INET6:
		CHECK(*a.host && !strchr(a.host, ']'));
		snprintf(rebuilt, sizeof(rebuilt), "[%s]:%s", a.host, a.port);
		break;
	case AF_UNSPEC:
		CHECK(*a.host && !strchr(a.host, ':'));
		snprintf(rebuilt, sizeof(rebuilt), "%s:%s", a.host, a.port);
		break;
	default:
		CHECK(!"unknown family");
	}
	if (a.family != AF_UNIX)
		CHECK(all_digits(a.port) && strlen(a.port) <= 5 && atol(a.port) <= 65535);
	CHECK(strcmp(rebuilt, rest) == 0);
	name = fd_name(s);
	CHECK(strlen(name) == strlen(s));
	for (const char *p = name; *p; p++)
		CHECK(isalnum((unsigned char)*p) || strchr("._-", *p));
	free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check_duration(s);
	check_signal(s);
	check_address(s);
	free(s);
	return 0;
}
