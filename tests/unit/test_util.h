/* test_util.h - small helpers shared by the cmocka unit tests. */
#ifndef HORA_TEST_UTIL_H
#define HORA_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Assert that `hay` contains `needle`, printing both when not. */
#define assert_contains(hay, needle)                                          \
	do {                                                                  \
		const char *h_ = (hay), *n_ = (needle);                       \
		if (strstr(h_, n_) == NULL)                                   \
			fail_msg("expected \"%s\" in \"%s\"", n_, h_);        \
	} while (0)

#endif
