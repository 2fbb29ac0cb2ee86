/*
 * test/fuzz/fuzz.h - what every libFuzzer target of test/fuzz/ starts with: hupwatch.c itself
 * (built with -DUNIT_TEST, its static functions visible) and CHECK(cond), which aborts with
 * "FUZZ_NAME: file:line: broken promise: cond" when a promise of the contract is broken.
 * Define FUZZ_NAME (the target's name, a string) before including it.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef HUPWATCH_FUZZ_H
#define HUPWATCH_FUZZ_H

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "../../hupwatch.c"
#pragma GCC diagnostic pop

#define CHECK(cond)                                                                            \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			fprintf(stderr, FUZZ_NAME ": %s:%d: broken promise: %s\n", __FILE__,   \
				__LINE__, #cond);                                              \
			abort();                                                               \
		}                                                                              \
	} while (0)

#endif
