/*
 * test_tz.c - unit tests for src/tz: the TZif reader, the POSIX TZ rules,
 * the registry and the lookups of tz.h.
 *
 * Zone tests use the system tz database (/usr/share/zoneinfo, the tzdata
 * package) and are skipped when it is missing; expected instants were
 * checked against Python's zoneinfo.  Synthetic TZif files are built in
 * memory by build_tzif() and fed to tz__parse.  glibc's localtime_r is
 * the independent oracle for the cross-checks (setenv("TZ") is fine in
 * tests only).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/civil.h"
#include "tz/tz.h"
#include "tz/tz_int.h"

#define SEC HORA_USEC_PER_SEC
#define ZONEINFO "/usr/share/zoneinfo"

/* ---- helpers ---------------------------------------------------------- */

/* UTC instant (or wall time) of a civil date. */
static hora_time T(int y, int mo, int d, int h, int mi, int s)
{
	hora_civil c = {y, mo, d, h, mi, s, 0};
	return civil_to_time(&c);
}

static bool have_zoneinfo(void)
{
	return access(ZONEINFO "/America/New_York", R_OK) == 0;
}

#define NEED_ZONEINFO()                 \
	do {                            \
		if (!have_zoneinfo())   \
			skip();         \
	} while (0)

static const hora_tz *load(const char *name)
{
	const hora_tz *z = NULL;
	hora_error err;
	int rv;

	hora_error_clear(&err);
	rv = tz_load(name, &z, "tz", &err);
	if (rv != 0)
		fail_msg("tz_load(%s): %s", name, err.msg);
	assert_non_null(z);
	return z;
}

static void expect_local(const hora_tz *z, hora_time local,
			 tz_local_kind kind, hora_time first,
			 hora_time second)
{
	tz_local_result r;

	tz_from_local(z, local, &r);
	assert_int_equal(r.kind, kind);
	assert_true(r.first == first);
	assert_true(r.second == second);
}

static int teardown(void **state)
{
	(void)state;
	hora_alloc_fail_reset();
	tz_registry_clear();
	return 0;
}

/*
 * Build a TZif file in memory.  All types share designation "ABC".  For
 * version 0 only the v1 block is written; for '2'+ a v1 block with the
 * same data in 32 bits, then the v2 header, 64-bit block and footer
 * (footer NULL: none at all, for the error tests).
 */
typedef struct zspec {
	char version;
	size_t ntrans;
	const int64_t *times;
	const uint8_t *idx;
	size_t ntypes;
	const int32_t *offs;
	const uint8_t *isdst; /* NULL: all 0 */
	size_t nleap;
	const int64_t *leap_occ;
	const int32_t *leap_corr;
	const char *footer;
} zspec;

static uint8_t zbuf[16384];

static void put(size_t *n, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--)
		zbuf[(*n)++] = (uint8_t)(v >> (8 * i));
}

/* Overwrite the 32-bit big-endian field at `at`. */
static void patch32(size_t at, uint32_t v)
{
	put(&at, v, 4);
}

static void write_block(size_t *n, const zspec *s, int tsize)
{
	memcpy(zbuf + *n, "TZif", 4);
	zbuf[*n + 4] = (uint8_t)s->version;
	memset(zbuf + *n + 5, 0, 15);
	*n += 20;
	put(n, s->ntypes, 4); /* isutcnt */
	put(n, s->ntypes, 4); /* isstdcnt */
	put(n, s->nleap, 4);
	put(n, s->ntrans, 4);
	put(n, s->ntypes, 4);
	put(n, 4, 4); /* charcnt */
	for (size_t i = 0; i < s->ntrans; i++)
		put(n, (uint64_t)s->times[i], tsize);
	for (size_t i = 0; i < s->ntrans; i++)
		put(n, s->idx[i], 1);
	for (size_t i = 0; i < s->ntypes; i++) {
		put(n, (uint32_t)s->offs[i], 4);
		put(n, s->isdst ? s->isdst[i] : 0, 1);
		put(n, 0, 1);
	}
	memcpy(zbuf + *n, "ABC", 4);
	*n += 4;
	for (size_t i = 0; i < s->nleap; i++) {
		put(n, (uint64_t)s->leap_occ[i], tsize);
		put(n, (uint32_t)s->leap_corr[i], 4);
	}
	for (size_t i = 0; i < 2 * s->ntypes; i++)
		put(n, 0, 1);
}

static size_t build_tzif(const zspec *s)
{
	size_t n = 0;

	write_block(&n, s, 4);
	if (s->version == 0)
		return n;
	write_block(&n, s, 8);
	if (s->footer != NULL) {
		size_t fl = strlen(s->footer);
		zbuf[n++] = '\n';
		memcpy(zbuf + n, s->footer, fl);
		n += fl;
		zbuf[n++] = '\n';
	}
	return n;
}

/* Parse zbuf[0..len) expecting failure with `code` and message `msg`
 * (NULL: any message). */
static void expect_parse_error(size_t len, int code, const char *msg)
{
	hora_tz *z = (hora_tz *)1;
	hora_error err;
	int rv;

	hora_error_clear(&err);
	rv = tz__parse(zbuf, len, "bad", &z, &err);
	if (rv == 0)
		tz__free(z);
	assert_int_equal(rv, code);
	assert_null(z);
	assert_int_equal(err.code, code);
	assert_true(err.msg[0] != '\0');
	if (msg != NULL)
		assert_string_equal(err.msg, msg);
}

static hora_tz *parse_ok(size_t len)
{
	hora_tz *z = NULL;
	hora_error err;
	int rv = tz__parse(zbuf, len, "test", &z, &err);
	if (rv != 0)
		fail_msg("tz__parse: %s", err.msg);
	return z;
}

static hora_tz *rule_zone(const char *s)
{
	hora_tz *z = NULL;
	hora_error err;
	if (tz__from_rule(s, strlen(s), s, &z, &err) != 0)
		fail_msg("tz__from_rule(%s): %s", s, err.msg);
	return z;
}

/*
 * Oracle for tz_from_local: the candidate instants for wall time l are
 * l - o for each offset o the zone uses; keep those tz_to_local maps
 * back to l.  None: a gap, whose answer must be a real transition with
 * the wall clock short of l just before it and past l at it.
 */
static void check_local_oracle(const hora_tz *z, hora_time l)
{
	int32_t offs[270];
	size_t no = 0;
	hora_time lo = INT64_MAX;
	hora_time hi = INT64_MIN;
	tz_local_result r;

	offs[no++] = z->off0;
	for (size_t i = 0; i < z->ntypes; i++)
		offs[no++] = z->offs[i];
	if (z->has_rule) {
		offs[no++] = z->rule.std_off;
		offs[no++] = z->rule.dst_off;
	}
	for (size_t i = 0; i < no; i++) {
		hora_time x = l - (hora_time)offs[i] * SEC;
		if (tz_to_local(z, x) != l)
			continue;
		lo = x < lo ? x : lo;
		hi = x > hi ? x : hi;
	}
	tz_from_local(z, l, &r);
	if (lo == INT64_MAX) {
		assert_int_equal(r.kind, TZ_LOCAL_GAP);
		assert_true(r.first == r.second);
		assert_true(tz_to_local(z, r.first) > l);
		assert_true(tz_to_local(z, r.first - 1) < l);
		assert_true(tz_offset_at(z, r.first - 1) !=
			    tz_offset_at(z, r.first));
	} else {
		assert_int_equal(r.kind, lo == hi ? TZ_LOCAL_UNIQUE
						  : TZ_LOCAL_FOLD);
		assert_true(r.first == lo);
		assert_true(r.second == hi);
	}
}

/* Oracle checks at and around every transition in [from, to), and at
 * the wall times on both sides of each. */
static int oracle_sweep(const hora_tz *z, hora_time from, hora_time to)
{
	hora_time t = from;
	int n = 0;

	for (;;) {
		hora_time x = tz_next_transition(z, t);
		if (x == HORA_TIME_NONE || x >= to)
			break;
		assert_true(x > t);
		assert_true(tz_offset_at(z, x - 1) != tz_offset_at(z, x));
		hora_time a = tz_to_local(z, x - 1);
		hora_time b = tz_to_local(z, x);
		for (int d = -2; d <= 2; d++) {
			check_local_oracle(z, a + d * 1800 * SEC);
			check_local_oracle(z, b + d * 1800 * SEC);
			check_local_oracle(z, a + d);
			check_local_oracle(z, b + d);
		}
		/* the round trip must find the instant itself */
		tz_local_result r;
		tz_from_local(z, b, &r);
		assert_true(r.first == x || r.second == x);
		t = x;
		n++;
	}
	return n;
}

/* ---- UTC and the registry --------------------------------------------- */

static void test_utc(void **state)
{
	const hora_tz *u = tz_utc();
	const hora_tz *z;
	hora_error err;
	hora_time t = T(2026, 3, 8, 2, 30, 0);

	(void)state;
	assert_string_equal(tz_name(u), "UTC");
	assert_int_equal(tz_offset_at(u, t), 0);
	assert_true(tz_to_local(u, t) == t);
	assert_true(tz_next_transition(u, t) == HORA_TIME_NONE);
	assert_true(tz_next_transition(u, INT64_MIN + 1) == HORA_TIME_NONE);
	expect_local(u, t, TZ_LOCAL_UNIQUE, t, t);
	expect_local(u, HORA_TIME_MIN, TZ_LOCAL_UNIQUE, HORA_TIME_MIN,
		     HORA_TIME_MIN);
	/* "UTC" is built in: no file, no registry entry. */
	assert_int_equal(tz_load("UTC", &z, "tz", &err), 0);
	assert_ptr_equal(z, u);
	assert_int_equal(tz_registry_count(), 0);
}

static void test_registry_interning(void **state)
{
	const hora_tz *a;
	const hora_tz *b;

	(void)state;
	NEED_ZONEINFO();
	a = load("America/New_York");
	b = load("America/New_York");
	assert_ptr_equal(a, b);
	assert_string_equal(tz_name(a), "America/New_York");
	assert_int_equal(tz_registry_count(), 1);
	load("Europe/Berlin");
	load("Asia/Tokyo");
	load("Australia/Lord_Howe");
	assert_int_equal(tz_registry_count(), 4);
	assert_ptr_equal(load("America/New_York"), a);
	tz_registry_clear();
	assert_int_equal(tz_registry_count(), 0);
	a = load("Europe/Berlin");
	assert_int_equal(tz_offset_at(a, T(2026, 7, 1, 0, 0, 0)), 7200);
}

static void test_invalid_names(void **state)
{
	static const char *const bad[] = {
		"",
		"/etc/passwd",
		"../etc",
		"Europe/../etc",
		"Europe/..",
		"a..b",
		"Europe//Berlin",
		"Europe/",
		"Europe/./Berlin",
		"./UTC",
		".",
		"Europe/Ber lin",
		"Europe/Berlin\n",
		"Europe\\Berlin",
		"Europe/Berl*n",
		"zoneinfo:x",
		"\xc3\xa9t\xc3\xa9",
	};
	char big[300];
	const hora_tz *z;
	hora_error err;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		z = (const hora_tz *)1;
		hora_error_clear(&err);
		assert_int_equal(tz_load(bad[i], &z, "tz", &err),
				 -HORA_EINVAL);
		assert_null(z);
		assert_int_equal(err.code, -HORA_EINVAL);
		assert_string_equal(err.field, "tz");
		assert_non_null(strstr(err.msg,
				       "is not a valid time zone name"));
	}
	tz_load("../etc", &z, "schedule.tz", &err);
	assert_string_equal(err.msg, "'../etc' is not a valid time zone name");
	assert_string_equal(err.field, "schedule.tz");
	/* Unprintable bytes are not echoed into messages. */
	tz_load("Europe/Berlin\n", &z, "tz", &err);
	assert_string_equal(err.msg,
			    "'Europe/Berlin?' is not a valid time zone name");

	/* 255 characters is the limit. */
	memset(big, 'a', sizeof big);
	big[255] = '\0';
	assert_true(tz__name_valid(big));
	big[255] = 'a';
	big[256] = '\0';
	assert_false(tz__name_valid(big));
	assert_int_equal(tz_load(big, &z, "tz", &err), -HORA_EINVAL);
	assert_true(strlen(err.msg) < 120); /* truncated, not echoed */

	assert_true(tz__name_valid("America/Argentina/Buenos_Aires"));
	assert_true(tz__name_valid("Etc/GMT+5"));
	assert_true(tz__name_valid("Etc/GMT-14"));
	assert_true(tz__name_valid("America/Port-au-Prince"));
	assert_true(tz__name_valid("zone1970.tab"));
	assert_int_equal(tz_registry_count(), 0);
}

static void test_unknown_zones(void **state)
{
	const hora_tz *z;
	hora_error err;

	(void)state;
	NEED_ZONEINFO();
	z = (const hora_tz *)1;
	assert_int_equal(tz_load("Mars/Base", &z, "tz", &err), -HORA_ENOENT);
	assert_null(z);
	assert_int_equal(err.code, -HORA_ENOENT);
	assert_string_equal(err.field, "tz");
	assert_string_equal(err.msg, "unknown time zone 'Mars/Base'");
	/* A directory is not a zone. */
	assert_int_equal(tz_load("America", &z, "tz", &err), -HORA_ENOENT);
	assert_string_equal(err.msg, "unknown time zone 'America'");
	/* Below a regular file. */
	assert_int_equal(tz_load("UTC/x", &z, "tz", &err), -HORA_ENOENT);
	/* Names are case-sensitive, like the files. */
	assert_int_equal(tz_load("europe/berlin", &z, "tz", &err),
			 -HORA_ENOENT);
	/* A file that is not TZif. */
	if (access(ZONEINFO "/zone1970.tab", R_OK) == 0) {
		assert_int_equal(tz_load("zone1970.tab", &z, "tz", &err),
				 -HORA_EINVAL);
		assert_string_equal(err.msg,
				    "time zone 'zone1970.tab' is not a valid "
				    "TZif file: bad magic (not a TZif file)");
	}
	assert_int_equal(tz_registry_count(), 0);
}

/* $HORA_ZONEINFO moves the zone directory. */
static void test_zoneinfo_env(void **state)
{
	static const int64_t times[] = {1000};
	static const uint8_t idx[] = {1};
	static const int32_t offs[] = {0, 3600};
	zspec s = {0, 1, times, idx, 2, offs, NULL, 0, NULL, NULL, NULL};
	char dir[] = "/tmp/hora_tz_test_XXXXXX";
	char path[256];
	const hora_tz *z;
	hora_error err;
	size_t len;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/Test", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/Test/Zone", dir);
	len = build_tzif(&s);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(zbuf, 1, len, f), len);
	fclose(f);

	setenv("HORA_ZONEINFO", dir, 1);
	z = load("Test/Zone");
	assert_int_equal(tz_offset_at(z, 999 * SEC), 0);
	assert_int_equal(tz_offset_at(z, 1000 * SEC), 3600);
	assert_int_equal(tz_load("America/New_York", &z, "tz", &err),
			 -HORA_ENOENT);
	assert_string_equal(err.msg, "unknown time zone 'America/New_York'");
	/* UTC never needs a file. */
	assert_int_equal(tz_load("UTC", &z, "tz", &err), 0);
	unsetenv("HORA_ZONEINFO");

	unlink(path);
	snprintf(path, sizeof path, "%s/Test", dir);
	rmdir(path);
	rmdir(dir);
}

/* ---- real zones --------------------------------------------------------- */

static void test_new_york_2026(void **state)
{
	const hora_tz *z;
	hora_time spring = T(2026, 3, 8, 7, 0, 0);
	hora_time fall = T(2026, 11, 1, 6, 0, 0);

	(void)state;
	NEED_ZONEINFO();
	z = load("America/New_York");
	assert_int_equal(tz_offset_at(z, T(2026, 1, 15, 12, 0, 0)), -18000);
	assert_int_equal(tz_offset_at(z, spring - 1), -18000);
	assert_int_equal(tz_offset_at(z, spring), -14400);
	assert_int_equal(tz_offset_at(z, fall - 1), -14400);
	assert_int_equal(tz_offset_at(z, fall), -18000);
	assert_true(tz_to_local(z, spring) == T(2026, 3, 8, 3, 0, 0));
	assert_true(tz_next_transition(z, T(2026, 1, 1, 0, 0, 0)) == spring);
	assert_true(tz_next_transition(z, spring - 1) == spring);
	assert_true(tz_next_transition(z, spring) == fall);
	assert_true(tz_next_transition(z, fall) ==
		    T(2027, 3, 14, 7, 0, 0));

	/* Spring forward: 02:00-03:00 does not exist. */
	expect_local(z, T(2026, 3, 8, 1, 59, 59), TZ_LOCAL_UNIQUE,
		     T(2026, 3, 8, 6, 59, 59), T(2026, 3, 8, 6, 59, 59));
	expect_local(z, T(2026, 3, 8, 2, 0, 0), TZ_LOCAL_GAP, spring, spring);
	expect_local(z, T(2026, 3, 8, 2, 30, 0), TZ_LOCAL_GAP, spring,
		     spring);
	expect_local(z, T(2026, 3, 8, 3, 0, 0) - 1, TZ_LOCAL_GAP, spring,
		     spring);
	expect_local(z, T(2026, 3, 8, 3, 0, 0), TZ_LOCAL_UNIQUE, spring,
		     spring);
	/* Fall back: 01:00-02:00 happens twice. */
	expect_local(z, T(2026, 11, 1, 1, 30, 0), TZ_LOCAL_FOLD,
		     T(2026, 11, 1, 5, 30, 0), T(2026, 11, 1, 6, 30, 0));
	expect_local(z, T(2026, 11, 1, 1, 0, 0), TZ_LOCAL_FOLD,
		     T(2026, 11, 1, 5, 0, 0), T(2026, 11, 1, 6, 0, 0));
	expect_local(z, T(2026, 11, 1, 2, 0, 0) - 1, TZ_LOCAL_FOLD,
		     T(2026, 11, 1, 6, 0, 0) - 1, T(2026, 11, 1, 7, 0, 0) - 1);
	expect_local(z, T(2026, 11, 1, 0, 59, 59), TZ_LOCAL_UNIQUE,
		     T(2026, 11, 1, 4, 59, 59), T(2026, 11, 1, 4, 59, 59));
	expect_local(z, T(2026, 11, 1, 2, 0, 0), TZ_LOCAL_UNIQUE,
		     T(2026, 11, 1, 7, 0, 0), T(2026, 11, 1, 7, 0, 0));
	/* Microseconds survive. */
	expect_local(z, T(2026, 7, 4, 12, 0, 0) + 123456, TZ_LOCAL_UNIQUE,
		     T(2026, 7, 4, 16, 0, 0) + 123456,
		     T(2026, 7, 4, 16, 0, 0) + 123456);
}

static void test_berlin_2026(void **state)
{
	const hora_tz *z;
	hora_time spring = T(2026, 3, 29, 1, 0, 0);
	hora_time fall = T(2026, 10, 25, 1, 0, 0);

	(void)state;
	NEED_ZONEINFO();
	z = load("Europe/Berlin");
	assert_int_equal(tz_offset_at(z, spring - 1), 3600);
	assert_int_equal(tz_offset_at(z, spring), 7200);
	assert_int_equal(tz_offset_at(z, fall - 1), 7200);
	assert_int_equal(tz_offset_at(z, fall), 3600);
	expect_local(z, T(2026, 3, 29, 2, 30, 0), TZ_LOCAL_GAP, spring,
		     spring);
	expect_local(z, T(2026, 3, 29, 3, 0, 0), TZ_LOCAL_UNIQUE, spring,
		     spring);
	expect_local(z, T(2026, 10, 25, 2, 30, 0), TZ_LOCAL_FOLD,
		     T(2026, 10, 25, 0, 30, 0), T(2026, 10, 25, 1, 30, 0));
	expect_local(z, T(2026, 10, 25, 3, 0, 0), TZ_LOCAL_UNIQUE,
		     T(2026, 10, 25, 2, 0, 0), T(2026, 10, 25, 2, 0, 0));
}

/* Half-hour DST: +10:30 standard, +11:00 daylight. */
static void test_lord_howe(void **state)
{
	const hora_tz *z;
	hora_time end = T(2026, 4, 4, 15, 0, 0);
	hora_time start = T(2026, 10, 3, 15, 30, 0);

	(void)state;
	NEED_ZONEINFO();
	z = load("Australia/Lord_Howe");
	assert_int_equal(tz_offset_at(z, end - 1), 39600);
	assert_int_equal(tz_offset_at(z, end), 37800);
	assert_int_equal(tz_offset_at(z, start - 1), 37800);
	assert_int_equal(tz_offset_at(z, start), 39600);
	assert_true(tz_next_transition(z, T(2026, 1, 1, 0, 0, 0)) == end);
	assert_true(tz_next_transition(z, end) == start);
	/* 01:30-02:00 on April 5 happens twice, 02:00-02:30 on October 4
	 * never. */
	expect_local(z, T(2026, 4, 5, 1, 45, 0), TZ_LOCAL_FOLD,
		     T(2026, 4, 4, 14, 45, 0), T(2026, 4, 4, 15, 15, 0));
	expect_local(z, T(2026, 4, 5, 1, 29, 59), TZ_LOCAL_UNIQUE,
		     T(2026, 4, 4, 14, 29, 59), T(2026, 4, 4, 14, 29, 59));
	expect_local(z, T(2026, 10, 4, 2, 15, 0), TZ_LOCAL_GAP, start, start);
	expect_local(z, T(2026, 10, 4, 2, 30, 0), TZ_LOCAL_UNIQUE, start,
		     start);
	/* and from the footer, far beyond the table */
	assert_true(tz_next_transition(z, T(2100, 1, 1, 0, 0, 0)) ==
		    T(2100, 4, 3, 15, 0, 0));
	assert_true(tz_next_transition(z, T(2100, 4, 3, 15, 0, 0)) ==
		    T(2100, 10, 2, 15, 30, 0));
}

/* +12:45 / +13:45, with transitions at 02:45 and 03:45 local. */
static void test_chatham(void **state)
{
	const hora_tz *z;
	hora_time end = T(2026, 4, 4, 14, 0, 0);
	hora_time start = T(2026, 9, 26, 14, 0, 0);

	(void)state;
	NEED_ZONEINFO();
	z = load("Pacific/Chatham");
	assert_int_equal(tz_offset_at(z, end - 1), 49500);
	assert_int_equal(tz_offset_at(z, end), 45900);
	assert_int_equal(tz_offset_at(z, start), 49500);
	assert_true(tz_next_transition(z, T(2026, 1, 1, 0, 0, 0)) == end);
	assert_true(tz_next_transition(z, end) == start);
	expect_local(z, T(2026, 9, 27, 3, 0, 0), TZ_LOCAL_GAP, start, start);
	expect_local(z, T(2026, 4, 5, 3, 0, 0), TZ_LOCAL_FOLD,
		     T(2026, 4, 4, 13, 15, 0), T(2026, 4, 4, 14, 15, 0));
	assert_true(tz_next_transition(z, T(2100, 1, 1, 0, 0, 0)) ==
		    T(2100, 4, 3, 14, 0, 0));
	assert_true(tz_next_transition(z, T(2100, 4, 3, 14, 0, 0)) ==
		    T(2100, 9, 25, 14, 0, 0));
}

/* Past the table (fat files stop in 2037) only the footer remains. */
static void test_far_future(void **state)
{
	static const struct {
		int year, sm, sd, fm, fd;
	} ny[] = {
		{2100, 3, 14, 11, 7},
		{2400, 3, 12, 11, 5},
		{9999, 3, 14, 11, 7},
	};
	const hora_tz *z;

	(void)state;
	NEED_ZONEINFO();
	z = load("America/New_York");
	for (size_t i = 0; i < sizeof ny / sizeof *ny; i++) {
		int y = ny[i].year;
		hora_time s = T(y, ny[i].sm, ny[i].sd, 7, 0, 0);
		hora_time f = T(y, ny[i].fm, ny[i].fd, 6, 0, 0);
		assert_true(tz_next_transition(z, T(y, 1, 1, 0, 0, 0)) == s);
		assert_true(tz_next_transition(z, s) == f);
		assert_int_equal(tz_offset_at(z, s - 1), -18000);
		assert_int_equal(tz_offset_at(z, s), -14400);
		assert_int_equal(tz_offset_at(z, f - 1), -14400);
		assert_int_equal(tz_offset_at(z, f), -18000);
		expect_local(z, T(y, ny[i].sm, ny[i].sd, 2, 30, 0),
			     TZ_LOCAL_GAP, s, s);
		expect_local(z, T(y, ny[i].fm, ny[i].fd, 1, 30, 0),
			     TZ_LOCAL_FOLD, f - 1800 * SEC, f + 1800 * SEC);
	}
	/* The last instant hora schedules still has an answer. */
	assert_int_equal(tz_offset_at(z, HORA_TIME_MAX), -18000);
	assert_true(tz_next_transition(z, T(9999, 11, 7, 6, 0, 0)) ==
		    T(10000, 3, 12, 7, 0, 0));

	z = load("Europe/Berlin");
	/* March 2040 starts on a Thursday: its last Sunday is the 25th,
	 * and a "fifth" Sunday would be April 1. */
	assert_true(tz_next_transition(z, T(2040, 1, 1, 0, 0, 0)) ==
		    T(2040, 3, 25, 1, 0, 0));
	assert_true(tz_next_transition(z, T(9999, 1, 1, 0, 0, 0)) ==
		    T(9999, 3, 28, 1, 0, 0));
	assert_true(tz_next_transition(z, T(9999, 3, 28, 1, 0, 0)) ==
		    T(9999, 10, 31, 1, 0, 0));
	/* v3 footers: negative and >24h rule times. */
	z = load("America/Nuuk");
	assert_true(tz_next_transition(z, T(2100, 1, 1, 0, 0, 0)) ==
		    T(2100, 3, 28, 1, 0, 0));
	assert_true(tz_next_transition(z, T(2100, 3, 28, 1, 0, 0)) ==
		    T(2100, 10, 31, 1, 0, 0));
	z = load("Asia/Jerusalem");
	assert_true(tz_next_transition(z, T(2100, 1, 1, 0, 0, 0)) ==
		    T(2100, 3, 26, 0, 0, 0));
	assert_true(tz_next_transition(z, T(2100, 3, 26, 0, 0, 0)) ==
		    T(2100, 10, 30, 23, 0, 0));
	/* negative DST (winter is "daylight" time in the Irish rule) */
	z = load("Europe/Dublin");
	assert_int_equal(tz_offset_at(z, T(2100, 1, 15, 0, 0, 0)), 0);
	assert_int_equal(tz_offset_at(z, T(2100, 7, 15, 0, 0, 0)), 3600);
	assert_true(tz_next_transition(z, T(2100, 1, 1, 0, 0, 0)) ==
		    T(2100, 3, 28, 1, 0, 0));
	z = load("America/Santiago");
	assert_true(tz_next_transition(z, T(2100, 1, 1, 0, 0, 0)) ==
		    T(2100, 4, 4, 3, 0, 0));
	assert_true(tz_next_transition(z, T(2100, 4, 4, 3, 0, 0)) ==
		    T(2100, 9, 5, 4, 0, 0));
}

/* Before the first transition: the first local time type (RFC 8536
 * section 3.2), here New York's LMT. */
static void test_far_past(void **state)
{
	const hora_tz *z;
	hora_time first = T(1883, 11, 18, 17, 0, 0);

	(void)state;
	NEED_ZONEINFO();
	z = load("America/New_York");
	assert_int_equal(tz_offset_at(z, T(1800, 1, 1, 0, 0, 0)), -17762);
	assert_int_equal(tz_offset_at(z, HORA_TIME_MIN), -17762);
	assert_int_equal(tz_offset_at(z, INT64_MIN + 1), -17762);
	assert_int_equal(tz_offset_at(z, first - 1), -17762);
	assert_int_equal(tz_offset_at(z, first), -18000);
	assert_true(tz_next_transition(z, HORA_TIME_MIN) == first);
	assert_true(tz_next_transition(z, INT64_MIN + 1) == first);
	expect_local(z, T(1800, 6, 1, 12, 0, 0), TZ_LOCAL_UNIQUE,
		     T(1800, 6, 1, 12, 0, 0) + 17762 * SEC,
		     T(1800, 6, 1, 12, 0, 0) + 17762 * SEC);
	/* LMT -4:56:02 to EST -5:00: 3m58s repeat. */
	expect_local(z, T(1883, 11, 18, 12, 2, 0), TZ_LOCAL_FOLD,
		     T(1883, 11, 18, 16, 58, 2), T(1883, 11, 18, 17, 2, 0));
}

/* Zones that move by more than an hour, or skip a day. */
static void test_big_jumps(void **state)
{
	const hora_tz *z;
	hora_time t;

	(void)state;
	NEED_ZONEINFO();
	/* Samoa skipped Friday 2011-12-30: -10 to +14. */
	z = load("Pacific/Apia");
	t = T(2011, 12, 30, 10, 0, 0);
	assert_int_equal(tz_offset_at(z, t - 1), -36000);
	assert_int_equal(tz_offset_at(z, t), 50400);
	assert_true(tz_next_transition(z, T(2011, 10, 1, 0, 0, 0)) == t);
	expect_local(z, T(2011, 12, 30, 0, 0, 0), TZ_LOCAL_GAP, t, t);
	expect_local(z, T(2011, 12, 30, 12, 0, 0), TZ_LOCAL_GAP, t, t);
	expect_local(z, T(2011, 12, 30, 23, 59, 59), TZ_LOCAL_GAP, t, t);
	expect_local(z, T(2011, 12, 31, 0, 0, 0), TZ_LOCAL_UNIQUE, t, t);
	expect_local(z, T(2011, 12, 29, 23, 59, 59), TZ_LOCAL_UNIQUE, t - SEC,
		     t - SEC);
	/* Kiritimati skipped 1994-12-31 the same way. */
	z = load("Pacific/Kiritimati");
	t = T(1994, 12, 31, 10, 0, 0);
	assert_int_equal(tz_offset_at(z, t - 1), -36000);
	assert_int_equal(tz_offset_at(z, t), 50400);
	expect_local(z, T(1994, 12, 31, 12, 0, 0), TZ_LOCAL_GAP, t, t);
	expect_local(z, T(1995, 1, 1, 0, 0, 0), TZ_LOCAL_UNIQUE, t, t);
	assert_true(tz_next_transition(z, t) == HORA_TIME_NONE);
	/* Troll: +00 to +02, a two-hour gap and fold. */
	z = load("Antarctica/Troll");
	t = T(2026, 3, 29, 1, 0, 0);
	assert_int_equal(tz_offset_at(z, t - 1), 0);
	assert_int_equal(tz_offset_at(z, t), 7200);
	expect_local(z, T(2026, 3, 29, 1, 0, 0), TZ_LOCAL_GAP, t, t);
	expect_local(z, T(2026, 3, 29, 2, 59, 59), TZ_LOCAL_GAP, t, t);
	expect_local(z, T(2026, 3, 29, 3, 0, 0), TZ_LOCAL_UNIQUE, t, t);
	expect_local(z, T(2026, 10, 25, 2, 0, 0), TZ_LOCAL_FOLD,
		     T(2026, 10, 25, 0, 0, 0), T(2026, 10, 25, 2, 0, 0));
	expect_local(z, T(2026, 10, 25, 1, 0, 0), TZ_LOCAL_FOLD,
		     T(2026, 10, 24, 23, 0, 0), T(2026, 10, 25, 1, 0, 0));
}

/* A year of transitions, in order, with abbreviation-only changes
 * skipped. */
static void test_next_transition_sequence(void **state)
{
	static const hora_time want[] = {
		INT64_C(1774746000) * SEC, /* 2026-03-29T01:00Z */
		INT64_C(1792890000) * SEC, /* 2026-10-25T01:00Z */
		INT64_C(1806195600) * SEC, /* 2027-03-28T01:00Z */
	};
	const hora_tz *z;
	hora_time t;

	(void)state;
	NEED_ZONEINFO();
	z = load("Europe/Berlin");
	t = T(2026, 1, 1, 0, 0, 0);
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		t = tz_next_transition(z, t);
		assert_true(t == want[i]);
	}
	/* Europe/London 1968-10-27 changed "BST" from daylight to standard
	 * time at the same +1:00: not a transition. */
	z = load("Europe/London");
	assert_true(tz_next_transition(z, T(1968, 2, 18, 2, 0, 0)) ==
		    T(1971, 10, 31, 2, 0, 0));
	/* New York: 2 per year from 2007 to 2037 in the table, then the
	 * footer. */
	z = load("America/New_York");
	t = T(2007, 1, 1, 0, 0, 0);
	for (int n = 0; n < 2 * (2200 - 2007); n++) {
		hora_time x = tz_next_transition(z, t);
		hora_civil c;
		civil_from_time(tz_to_local(z, x - 1), &c);
		assert_int_equal(c.year, 2007 + n / 2);
		assert_int_equal(c.month, n % 2 ? 11 : 3);
		assert_int_equal(c.hour, 1); /* 01:59:59 just before */
		assert_int_equal(c.minute, 59);
		t = x;
	}
}

/* ---- synthetic TZif files ----------------------------------------------- */

/* A version-1 file: 32-bit data, no footer; the last type stays. */
static void test_v1_only(void **state)
{
	static const int64_t times[] = {-1000000, 0, 5000000, 9000000};
	static const uint8_t idx[] = {1, 2, 3, 1};
	static const int32_t offs[] = {-3000, 3600, 7200, 7200};
	static const uint8_t isdst[] = {0, 0, 1, 0};
	zspec s = {0, 4, times, idx, 4, offs, isdst, 0, NULL, NULL, NULL};
	size_t len = build_tzif(&s);
	hora_tz *z = parse_ok(len);

	(void)state;
	assert_string_equal(tz_name(z), "test");
	assert_false(z->has_rule);
	assert_int_equal(tz_offset_at(z, -1000001 * SEC), -3000);
	assert_int_equal(tz_offset_at(z, -1000000 * SEC), 3600);
	assert_int_equal(tz_offset_at(z, 0), 7200);
	assert_int_equal(tz_offset_at(z, 5000000 * SEC), 7200); /* isdst */
	assert_int_equal(tz_offset_at(z, 9000000 * SEC), 3600);
	assert_int_equal(tz_offset_at(z, INT64_MAX), 3600);
	assert_true(tz_next_transition(z, INT64_MIN + 1) == -1000000 * SEC);
	assert_true(tz_next_transition(z, -1000000 * SEC) == 0);
	/* 5000000 changes only isdst: skipped */
	assert_true(tz_next_transition(z, 0) == 9000000 * SEC);
	assert_true(tz_next_transition(z, 9000000 * SEC) == HORA_TIME_NONE);
	assert_int_equal(z->ntrans, 3);
	/* +1h to +2h at 0: wall [3600, 7200) is skipped; +2h to +1h at
	 * 9000000: wall [9003600, 9007200) repeats. */
	expect_local(z, 500 * SEC, TZ_LOCAL_UNIQUE, -3100 * SEC, -3100 * SEC);
	expect_local(z, 5000 * SEC, TZ_LOCAL_GAP, 0, 0);
	expect_local(z, 9005000 * SEC, TZ_LOCAL_FOLD, 8997800 * SEC,
		     9001400 * SEC);
	tz__free(z);
}

/* v1 header in front of v2 data: the v1 block must be skipped, not
 * read (here it disagrees on purpose), and a minimal (empty) v1 block,
 * as "zic -b slim" writes, is fine. */
static void test_v2_skips_v1(void **state)
{
	static const int64_t times[] = {INT64_C(-5000000000), 100};
	static const uint8_t idx[] = {1, 2};
	static const int32_t offs[] = {0, -3600, 3600};
	zspec s = {'2', 2, times, idx, 3, offs, NULL, 0, NULL, NULL, ""};
	size_t len = build_tzif(&s);
	hora_tz *z;

	(void)state;
	/* Corrupt the v1 block's first type offset: ignored. */
	zbuf[44 + 2 * 4 + 2] = 0x7f;
	z = parse_ok(len);
	assert_int_equal(tz_offset_at(z, INT64_C(-5000000001) * SEC), 0);
	assert_int_equal(tz_offset_at(z, INT64_C(-5000000000) * SEC), -3600);
	assert_int_equal(tz_offset_at(z, 100 * SEC), 3600);
	/* empty footer: no rule, the last type stays */
	assert_false(z->has_rule);
	assert_true(tz_next_transition(z, 100 * SEC) == HORA_TIME_NONE);
	tz__free(z);

	/* The same with an empty v1 block (counts all zero). */
	{
		size_t n = 0;
		uint8_t copy[1024];
		size_t v1 = 44 + 2 * 4 + 2 + 3 * 6 + 4 + 3 + 3;
		memcpy(copy, zbuf + v1, len - v1);
		memcpy(zbuf, "TZif2", 5);
		memset(zbuf + 5, 0, 39);
		n = 44;
		memcpy(zbuf + n, copy, len - v1);
		z = parse_ok(n + len - v1);
		assert_int_equal(tz_offset_at(z, 100 * SEC), 3600);
		tz__free(z);
	}
}

/* A v3 file whose footer governs after the table, with a negative rule
 * time; and a file with no transitions at all, where the footer governs
 * every instant (RFC 8536 section 3.3). */
static void test_v3_footer(void **state)
{
	static const int64_t times[] = {INT64_C(1774746000)};
	static const uint8_t idx[] = {1};
	static const int32_t offs[] = {-7200, -3600};
	zspec s = {'3', 1, times, idx, 2, offs, NULL, 0, NULL, NULL,
		   "<-02>2<-01>,M3.5.0/-1,M10.5.0/0"};
	hora_tz *z = parse_ok(build_tzif(&s));

	(void)state;
	assert_true(z->has_rule);
	assert_int_equal(tz_offset_at(z, INT64_C(1774745999) * SEC), -7200);
	assert_int_equal(tz_offset_at(z, INT64_C(1774746000) * SEC), -3600);
	assert_true(tz_next_transition(z, INT64_C(1774746000) * SEC) ==
		    T(2026, 10, 25, 1, 0, 0));
	assert_true(tz_next_transition(z, T(2026, 10, 25, 1, 0, 0)) ==
		    T(2027, 3, 28, 1, 0, 0));
	tz__free(z);

	s = (zspec){'2', 0, NULL, NULL, 1, offs, NULL, 0, NULL, NULL,
		    "EST5EDT,M3.2.0,M11.1.0"};
	z = parse_ok(build_tzif(&s));
	assert_int_equal(tz_offset_at(z, T(1900, 7, 1, 0, 0, 0)), -14400);
	assert_int_equal(tz_offset_at(z, T(1900, 1, 1, 0, 0, 0)), -18000);
	assert_int_equal(tz_offset_at(z, T(2026, 3, 8, 7, 0, 0)), -14400);
	assert_true(tz_next_transition(z, T(1, 1, 1, 0, 0, 0)) ==
		    T(1, 3, 11, 7, 0, 0));
	tz__free(z);
}

/* Leap-second files ("right/") count leap seconds in their times;
 * hora_time does not. */
static void test_leap_seconds(void **state)
{
	static const int64_t times[] = {1000, 2000 + 1, 3000 + 2};
	static const uint8_t idx[] = {1, 0, 1};
	static const int32_t offs[] = {0, 3600};
	static const int64_t occ[] = {1500, 2500};
	static const int32_t corr[] = {1, 2};
	zspec s = {'2', 3, times, idx, 2, offs, NULL, 2, occ, corr, ""};
	hora_tz *z = parse_ok(build_tzif(&s));

	(void)state;
	assert_true(tz_next_transition(z, 0) == 1000 * SEC);
	assert_true(tz_next_transition(z, 1000 * SEC) == 2000 * SEC);
	assert_true(tz_next_transition(z, 2000 * SEC) == 3000 * SEC);
	tz__free(z);

	if (have_zoneinfo() &&
	    access(ZONEINFO "/right/America/New_York", R_OK) == 0) {
		const hora_tz *a = load("America/New_York");
		const hora_tz *b = load("right/America/New_York");
		hora_time t = T(1972, 1, 1, 0, 0, 0);
		for (int i = 0; i < 100; i++) {
			hora_time x = tz_next_transition(a, t);
			assert_true(tz_next_transition(b, t) == x);
			t = x;
		}
	}
}

static void test_truncated(void **state)
{
	static const int64_t times[] = {-100, 100, 200};
	static const uint8_t idx[] = {1, 1, 0};
	static const int32_t offs[] = {0, 3600};
	static const int64_t occ[] = {50};
	static const int32_t corr[] = {1};
	zspec s = {'3', 3, times, idx, 2, offs, NULL, 1, occ, corr,
		   "ABC0DEF,M3.5.0,M10.5.0"};
	size_t len;
	hora_tz *z;
	hora_error err;

	(void)state;
	/* Every proper prefix of a v3 file, and of a v1 file, fails. */
	len = build_tzif(&s);
	for (size_t n = 0; n < len; n++) {
		z = NULL;
		assert_int_equal(tz__parse(zbuf, n, "cut", &z, &err),
				 -HORA_EINVAL);
		assert_null(z);
	}
	z = parse_ok(len);
	tz__free(z);
	s.version = 0;
	len = build_tzif(&s);
	for (size_t n = 0; n < len; n++)
		assert_int_equal(tz__parse(zbuf, n, "cut", &z, &err),
				 -HORA_EINVAL);
	z = parse_ok(len);
	tz__free(z);

	s.version = '2';
	len = build_tzif(&s);
	expect_parse_error(0, -HORA_EINVAL,
			   "time zone 'bad' is not a valid TZif file: "
			   "truncated header");
	expect_parse_error(50, -HORA_EINVAL,
			   "time zone 'bad' is not a valid TZif file: "
			   "truncated data block");
	expect_parse_error(len - 1, -HORA_EINVAL,
			   "time zone 'bad' is not a valid TZif file: "
			   "unterminated TZ string footer");

	/* A real file, cut anywhere. */
	if (have_zoneinfo()) {
		FILE *f = fopen(ZONEINFO "/Europe/Berlin", "rb");
		uint8_t *buf = malloc(TZ__FILE_MAX);
		size_t n;
		assert_non_null(f);
		assert_non_null(buf);
		n = fread(buf, 1, TZ__FILE_MAX, f);
		fclose(f);
		for (size_t k = 0; k < n; k++)
			assert_int_equal(tz__parse(buf, k, "cut", &z, &err),
					 -HORA_EINVAL);
		assert_int_equal(tz__parse(buf, n, "cut", &z, &err), 0);
		tz__free(z);
		free(buf);
	}
}

static void test_corrupt(void **state)
{
	static const int64_t times[] = {100, 200};
	static const int64_t rev[] = {200, 100};
	static const uint8_t idx[] = {1, 0};
	static const uint8_t idx_bad[] = {1, 2};
	static const int32_t offs[] = {0, 3600};
	static const int32_t offs_big[] = {0, 93600};
	static const uint8_t isdst_bad[] = {0, 2};
	static const int64_t occ_bad[] = {50, 50};
	static const int32_t corr[] = {1, 2};
	const char *pre = "time zone 'bad' is not a valid TZif file: ";
	char msg[256];
	zspec good = {'2', 2, times, idx, 2, offs, NULL, 0, NULL, NULL, ""};
	zspec s;
	size_t len;
	int32_t many[257];
	uint8_t *huge;

	(void)state;
#define EXPECT(len_, why)                                              \
	do {                                                           \
		snprintf(msg, sizeof msg, "%s%s", pre, why);           \
		expect_parse_error(len_, -HORA_EINVAL, msg);           \
	} while (0)

	len = build_tzif(&good);
	zbuf[0] = 'X';
	EXPECT(len, "bad magic (not a TZif file)");
	len = build_tzif(&good);
	zbuf[4] = '5';
	EXPECT(len, "unsupported TZif version");

	s = good;
	s.times = rev;
	EXPECT(build_tzif(&s), "transition times not ascending");
	s = good;
	s.idx = idx_bad;
	EXPECT(build_tzif(&s), "transition type index out of range");
	s = good;
	s.offs = offs_big;
	EXPECT(build_tzif(&s), "UT offset out of range");
	s = good;
	s.isdst = isdst_bad;
	EXPECT(build_tzif(&s), "bad isdst flag");
	s = good;
	s.ntypes = 0;
	s.ntrans = 0;
	EXPECT(build_tzif(&s), "local time type count out of range");
	memset(many, 0, sizeof many);
	s = good;
	s.ntypes = 257;
	s.offs = many;
	EXPECT(build_tzif(&s), "local time type count out of range");
	s = good;
	s.nleap = 2;
	s.leap_occ = occ_bad;
	s.leap_corr = corr;
	EXPECT(build_tzif(&s), "leap second records out of order");

	/* Header counts that break the rules.  The second header follows
	 * the 44-byte v1 header and the 30-byte v1 block; its charcnt is
	 * at +40, isstdcnt at +24. */
	len = build_tzif(&good);
	patch32(74 + 40, 0);
	EXPECT(len, "no time zone designations");
	len = build_tzif(&good);
	patch32(74 + 24, 1);
	EXPECT(len, "standard indicator count differs from type count");
	len = build_tzif(&good);
	zbuf[len - 4] = 7; /* first UT indicator, before "\n\n" */
	EXPECT(len, "bad UT/local indicator");

	/* footers */
	s = good;
	s.footer = NULL;
	EXPECT(build_tzif(&s), "missing TZ string footer");
	s.footer = "EST5EDT,M13.1.0,M11.1.0";
	EXPECT(build_tzif(&s),
	       "bad TZ string footer 'EST5EDT,M13.1.0,M11.1.0': bad DST "
	       "start rule");
	s.footer = "AB0";
	EXPECT(build_tzif(&s),
	       "bad TZ string footer 'AB0': bad standard time designation");
	/* last transition at 200 is type 0 (+0); a +1 footer disagrees */
	s.footer = "ABC-1";
	EXPECT(build_tzif(&s),
	       "TZ string footer disagrees with the last transition");
	s.footer = "ABC0";
	tz__free(parse_ok(build_tzif(&s)));

	/* size cap */
	huge = calloc(1, TZ__FILE_MAX + 1);
	assert_non_null(huge);
	{
		hora_tz *z;
		hora_error err;
		assert_int_equal(tz__parse(huge, TZ__FILE_MAX + 1, "big", &z,
					   &err),
				 -HORA_EINVAL);
		assert_string_equal(err.msg, "time zone 'big' is not a valid "
					     "TZif file: file too large");
	}
	free(huge);
#undef EXPECT
}

/* ---- POSIX TZ strings --------------------------------------------------- */

static void test_rule_parse(void **state)
{
	static const char *const good[] = {
		"UTC0",
		"EST5",
		"<+14>-14",
		"<-0330>3:30",
		"ABC+5:30:15",
		"EST5EDT",
		"EST5EDT4,M3.2.0/2,M11.1.0/2",
		"CET-1CEST,M3.5.0,M10.5.0/3",
		"<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45",
		"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
		"IST-2IDT,M3.4.4/26,M10.5.0",
		"<-02>2<-01>,M3.5.0/-1,M10.5.0/0",
		"XXX3YYY,J60/2,J300/2",
		"XXX3YYY,0/0,365/0",
		"AAA3BBB,M3.5.0/167,M10.5.0/-167",
		"AAA3BBB,M3.5.0/-167:59:59,M10.5.0/167:59:59",
		"AAA24BBB,J1,J365",
		"AAA-24",
	};
	static const struct {
		const char *s;
		const char *why;
	} bad[] = {
		{"", "empty TZ string"},
		{"EST", "bad standard time offset"},
		{"ES5", "bad standard time designation"},
		{"<ES>5", "bad standard time designation"},
		{"<EST5", "bad standard time designation"},
		{"EST25", "bad standard time offset"},
		{"EST5:60", "bad standard time offset"},
		{"EST5ED", "bad daylight time designation"},
		{"EST5EDT25", "bad daylight time offset"},
		{"EST5EDT,M3.2.0", "missing DST end rule"},
		{"EST5EDT,M3.2.0,", "bad DST end rule"},
		{"EST5EDT,M0.2.0,M11.1.0", "bad DST start rule"},
		{"EST5EDT,M3.6.0,M11.1.0", "bad DST start rule"},
		{"EST5EDT,M3.2.7,M11.1.0", "bad DST start rule"},
		{"EST5EDT,J0,J300", "bad DST start rule"},
		{"EST5EDT,J366,J300", "bad DST start rule"},
		{"EST5EDT,366,300", "bad DST start rule"},
		{"EST5EDT,M3.2.0/168,M11.1.0", "bad DST start rule"},
		{"EST5EDT,M3.2.0/-168,M11.1.0", "bad DST start rule"},
		{"EST5EDT,M3.2.0,M11.1.0x", "unexpected characters at the end"},
		{"EST5EDT,M3.2.0,M11.1.0\n", "unexpected characters at the end"},
		{"EST5 ", "bad daylight time designation"},
		{"EST5EDT4x", "unexpected characters at the end"},
	};
	tz__rule r;
	const char *why;
	hora_error err;
	hora_tz *z;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		why = NULL;
		if (tz__rule_parse(good[i], strlen(good[i]), &r, &why) != 0)
			fail_msg("'%s' rejected: %s", good[i], why);
	}
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		why = NULL;
		assert_int_equal(tz__rule_parse(bad[i].s, strlen(bad[i].s),
						&r, &why),
				 -HORA_EINVAL);
		assert_string_equal(why, bad[i].why);
	}
	/* The length given is what counts; no NUL is needed. */
	assert_int_equal(tz__rule_parse("EST5EDTxxx", 7, &r, &why), 0);
	assert_true(r.has_dst);
	assert_int_equal(r.std_off, -18000);
	assert_int_equal(r.dst_off, -14400);
	assert_int_equal(tz__from_rule("EST", 3, "x", &z, &err),
			 -HORA_EINVAL);
	assert_null(z);
	assert_string_equal(err.msg, "'EST' is not a valid TZ string: bad "
				     "standard time offset");
}

/* Jn skips February 29; n counts it. */
static void test_rule_julian(void **state)
{
	hora_tz *j = rule_zone("XXX3YYY,J60/2,J300/2");
	hora_tz *n = rule_zone("XXX3YYY,59/2,299/2");

	(void)state;
	/* 2024 is leap: J60 is March 1, n=59 is February 29. */
	assert_true(tz_next_transition(j, T(2024, 1, 1, 0, 0, 0)) ==
		    T(2024, 3, 1, 5, 0, 0));
	assert_true(tz_next_transition(n, T(2024, 1, 1, 0, 0, 0)) ==
		    T(2024, 2, 29, 5, 0, 0));
	/* 2025 is not: both March 1. */
	assert_true(tz_next_transition(j, T(2025, 1, 1, 0, 0, 0)) ==
		    T(2025, 3, 1, 5, 0, 0));
	assert_true(tz_next_transition(n, T(2025, 1, 1, 0, 0, 0)) ==
		    T(2025, 3, 1, 5, 0, 0));
	/* J300 is October 27 either way; n=299 is October 26 in 2024.
	 * The end is in local daylight time (-2). */
	assert_true(tz_next_transition(j, T(2024, 3, 2, 0, 0, 0)) ==
		    T(2024, 10, 27, 4, 0, 0));
	assert_true(tz_next_transition(n, T(2024, 3, 2, 0, 0, 0)) ==
		    T(2024, 10, 26, 4, 0, 0));
	tz__free(j);
	tz__free(n);

	/* Day 365 of a common year is January 1 of the next. */
	n = rule_zone("XXX3YYY,180/0,365/0");
	assert_true(tz_next_transition(n, T(2025, 7, 1, 0, 0, 0)) ==
		    T(2026, 1, 1, 2, 0, 0));
	tz__free(n);
}

/* RFC 8536 section 3.3.1: hours -167..167 and DST all year. */
static void test_rule_v3(void **state)
{
	hora_tz *z;

	(void)state;
	/* Last Sunday of March 2026 is the 29th; -100h is Tuesday 24th
	 * 20:00 local (+5) = 15:00Z.  Last Sunday of October is the 25th;
	 * +150h is Saturday 31st 06:00 local (+6) = 00:00Z. */
	z = rule_zone("AAA-5BBB-6,M3.5.0/-100,M10.5.0/150");
	assert_true(tz_next_transition(z, T(2026, 1, 1, 0, 0, 0)) ==
		    T(2026, 3, 24, 15, 0, 0));
	assert_true(tz_next_transition(z, T(2026, 3, 24, 15, 0, 0)) ==
		    T(2026, 10, 31, 0, 0, 0));
	tz__free(z);
	/* DST all year: a fixed -4. */
	z = rule_zone("EST5EDT,0/0,J365/25");
	assert_false(z->rule.has_dst);
	for (int y = 1990; y < 2030; y++) {
		assert_int_equal(tz_offset_at(z, T(y, 1, 1, 0, 0, 0)), -14400);
		assert_int_equal(tz_offset_at(z, T(y, 12, 31, 23, 0, 0)),
				 -14400);
	}
	assert_true(tz_next_transition(z, 0) == HORA_TIME_NONE);
	tz__free(z);
	/* A daylight offset equal to the standard one is no change. */
	z = rule_zone("AAA3BBB3,M3.2.0,M11.1.0");
	assert_true(tz_next_transition(z, 0) == HORA_TIME_NONE);
	tz__free(z);
	/* DST without a rule: the US one. */
	z = rule_zone("EST5EDT");
	assert_true(tz_next_transition(z, T(2026, 1, 1, 0, 0, 0)) ==
		    T(2026, 3, 8, 7, 0, 0));
	tz__free(z);
	/* Changes exactly at a UTC New Year (the edge of a cached year):
	 * DST from January 1 00:00Z, and DST ending there. */
	z = rule_zone("AAA0BBB-1,0/0,J182/0");
	assert_int_equal(tz_offset_at(z, T(2026, 1, 1, 0, 0, 0) - 1), 0);
	assert_int_equal(tz_offset_at(z, T(2026, 1, 1, 0, 0, 0)), 3600);
	assert_true(tz_next_transition(z, T(2025, 12, 31, 12, 0, 0)) ==
		    T(2026, 1, 1, 0, 0, 0));
	assert_true(tz_next_transition(z, T(2025, 12, 31, 23, 59, 59)) ==
		    T(2026, 1, 1, 0, 0, 0));
	assert_true(tz_next_transition(z, T(2026, 1, 1, 0, 0, 0)) ==
		    T(2026, 6, 30, 23, 0, 0));
	expect_local(z, T(2026, 1, 1, 0, 30, 0), TZ_LOCAL_GAP,
		     T(2026, 1, 1, 0, 0, 0), T(2026, 1, 1, 0, 0, 0));
	tz__free(z);
	z = rule_zone("AAA0BBB-1,J182/0,0/1");
	assert_int_equal(tz_offset_at(z, T(2026, 1, 1, 0, 0, 0) - 1), 3600);
	assert_int_equal(tz_offset_at(z, T(2026, 1, 1, 0, 0, 0)), 0);
	assert_true(tz_next_transition(z, T(2025, 12, 31, 12, 0, 0)) ==
		    T(2026, 1, 1, 0, 0, 0));
	assert_true(tz_next_transition(z, T(2026, 1, 1, 0, 0, 0)) ==
		    T(2026, 7, 1, 0, 0, 0));
	tz__free(z);
	/* Events pushed across New Year: DST from January 1 03:00Z to
	 * January 1 01:00Z of the next year, leaving a two-hour gap. */
	z = rule_zone("XXX3YYY,J1/0,J365/23");
	assert_int_equal(tz_offset_at(z, T(2149, 1, 1, 0, 26, 51)), -7200);
	assert_int_equal(tz_offset_at(z, T(2149, 1, 1, 2, 0, 0)), -10800);
	assert_true(tz_next_transition(z, T(2148, 12, 31, 0, 0, 0)) ==
		    T(2149, 1, 1, 1, 0, 0));
	assert_true(tz_next_transition(z, T(2149, 1, 1, 1, 0, 0)) ==
		    T(2149, 1, 1, 3, 0, 0));
	tz__free(z);
}

/* ---- oracles ------------------------------------------------------------ */

static const char *const cross_zones[] = {
	"America/New_York", "Europe/Berlin", "Australia/Lord_Howe",
	"Pacific/Chatham", "Pacific/Apia", "Pacific/Kiritimati",
	"Antarctica/Troll", "Europe/Dublin", "Africa/Casablanca",
	"America/Nuuk", "America/Santiago", "Asia/Jerusalem",
	"Asia/Kolkata", "Asia/Tehran", "America/St_Johns",
	"Australia/Sydney", "Pacific/Tongatapu", "Europe/London",
	"America/Sao_Paulo", "Asia/Gaza", "Europe/Moscow",
	"America/Caracas", "Pacific/Fakaofo", "Etc/GMT+12", "UTC",
};

/* Offsets against glibc for a few hundred instants per zone: random
 * ones from 1850 to 2400 and the seconds around each transition. */
static void test_glibc_cross_check(void **state)
{
	char tzenv[512];
	const char *old = getenv("TZ");
	char *saved = old ? strdup(old) : NULL;
	uint64_t seed = 88172645463325252u;
	long checked = 0;

	(void)state;
	NEED_ZONEINFO();
	for (size_t i = 0; i < sizeof cross_zones / sizeof *cross_zones;
	     i++) {
		const char *name = cross_zones[i];
		char path[256];
		const hora_tz *z;
		hora_time t;

		snprintf(path, sizeof path, ZONEINFO "/%s", name);
		if (access(path, R_OK) != 0)
			continue;
		z = load(name);
		snprintf(tzenv, sizeof tzenv, ":%s", path);
		setenv("TZ", tzenv, 1);
		tzset();
		for (int k = 0; k < 300; k++) {
			struct tm tm;
			time_t s;
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			s = (time_t)(INT64_C(-3786825600) +
				     (int64_t)(seed % UINT64_C(17253532800)));
			localtime_r(&s, &tm);
			if (tz_offset_at(z, (hora_time)s * SEC) != tm.tm_gmtoff)
				fail_msg("%s at %lld: %d, glibc %ld", name,
					 (long long)s,
					 tz_offset_at(z, (hora_time)s * SEC),
					 tm.tm_gmtoff);
			checked++;
		}
		t = T(1850, 1, 1, 0, 0, 0);
		for (int k = 0; k < 400; k++) {
			hora_time x = tz_next_transition(z, t);
			struct tm a;
			struct tm b;
			time_t s;
			if (x == HORA_TIME_NONE || x > T(2400, 1, 1, 0, 0, 0))
				break;
			s = (time_t)(x / SEC);
			localtime_r(&(time_t){s - 1}, &a);
			localtime_r(&s, &b);
			assert_true(a.tm_gmtoff != b.tm_gmtoff);
			assert_int_equal(tz_offset_at(z, x - 1), a.tm_gmtoff);
			assert_int_equal(tz_offset_at(z, x), b.tm_gmtoff);
			checked += 2;
			t = x;
		}
	}
	/* TZ strings glibc parses itself (no such file), after 1970
	 * (glibc evaluates earlier years with 1970's rule). */
	static const char *const rules[] = {
		"<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45",
		"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
		"<-02>2<-01>,M3.5.0/-1,M10.5.0/0",
		"<-04>4<-03>,M9.1.6/24,M4.1.6/24",
		"<+0330>-3:30<+0430>,J79/24,J263/24",
		"IST-1GMT0,M10.5.0,M3.5.0/1",
		"CET-1CEST,M3.5.0,M10.5.0/3",
		"XXX3YYY,J60/2,J300/2",
		"XXX3YYY,59/2,299/2",
		"AAA-5BBB-6,M3.5.0/-100,M10.5.0/150",
		"MST7MDT6:30,M3.2.0/2:30:15,M11.1.0/1:59:59",
	};
	for (size_t i = 0; i < sizeof rules / sizeof *rules; i++) {
		hora_tz *z = rule_zone(rules[i]);
		setenv("TZ", rules[i], 1);
		tzset();
		for (int k = 0; k < 300; k++) {
			struct tm tm;
			time_t s;
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			s = (time_t)(INT64_C(63072000) +
				     (int64_t)(seed % UINT64_C(13000000000)));
			localtime_r(&s, &tm);
			if (tz_offset_at(z, (hora_time)s * SEC) != tm.tm_gmtoff)
				fail_msg("%s at %lld: %d, glibc %ld", rules[i],
					 (long long)s,
					 tz_offset_at(z, (hora_time)s * SEC),
					 tm.tm_gmtoff);
			checked++;
		}
		tz__free(z);
	}
	if (saved) {
		setenv("TZ", saved, 1);
		free(saved);
	} else {
		unsetenv("TZ");
	}
	tzset();
	assert_true(checked > 5000);
}

/* tz_from_local against the candidate-offset oracle, around every
 * transition from 1800 to 2100 and in a few far years. */
static void test_from_local_oracle(void **state)
{
	static const char *const rules[] = {
		"EST5EDT,M3.2.0,M11.1.0",
		"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
		"AAA-5BBB-6,M3.5.0/-100,M10.5.0/150",
		"XXX3YYY,J1/0,J365/23",
		"AAA3BBB,M1.1.0/-20,M12.5.6/40",
		"<-02>2<-01>,M3.5.0/-1,M10.5.0/0",
	};
	int n = 0;

	(void)state;
	if (have_zoneinfo()) {
		for (size_t i = 0;
		     i < sizeof cross_zones / sizeof *cross_zones; i++) {
			char path[256];
			const hora_tz *z;
			snprintf(path, sizeof path, ZONEINFO "/%s",
				 cross_zones[i]);
			if (access(path, R_OK) != 0)
				continue;
			z = load(cross_zones[i]);
			n += oracle_sweep(z, T(1800, 1, 1, 0, 0, 0),
					  T(2100, 1, 1, 0, 0, 0));
			n += oracle_sweep(z, T(2399, 1, 1, 0, 0, 0),
					  T(2401, 1, 1, 0, 0, 0));
			n += oracle_sweep(z, T(9998, 1, 1, 0, 0, 0),
					  T(9999, 12, 31, 0, 0, 0));
		}
	}
	for (size_t i = 0; i < sizeof rules / sizeof *rules; i++) {
		hora_tz *z = rule_zone(rules[i]);
		n += oracle_sweep(z, T(1990, 1, 1, 0, 0, 0),
				  T(2060, 1, 1, 0, 0, 0));
		n += oracle_sweep(z, T(1, 1, 1, 0, 0, 0),
				  T(3, 1, 1, 0, 0, 0));
		tz__free(z);
	}
	assert_true(n > 100);
}

/* Consecutive transitions closer together than the offsets move, in a
 * synthetic zone.  Segments and the wall times they show:
 *   (-inf, 10000)  +0   wall (-inf, 10000)
 *   [10000, 11800) +2h  wall [17200, 19000)
 *   [11800, 20000) +0   wall [11800, 20000)
 *   [20000, 20001) +1h  wall [23600, 23601)
 *   [20001, 30000) +3h  wall [30801, 40800)
 *   [30000, inf)   +0   wall [30000, inf)
 */
static void test_close_transitions(void **state)
{
	static const int64_t times[] = {10000, 11800, 20000, 20001, 30000};
	static const uint8_t idx[] = {1, 0, 2, 3, 0};
	static const int32_t offs[] = {0, 7200, 3600, 10800};
	zspec s = {'2', 5, times, idx, 4, offs, NULL, 0, NULL, NULL, ""};
	hora_tz *z = parse_ok(build_tzif(&s));

	(void)state;
	expect_local(z, 13600 * SEC, TZ_LOCAL_UNIQUE, 13600 * SEC,
		     13600 * SEC);
	/* In the first gap: the wall clock passes 11000 at 10000. */
	expect_local(z, 11000 * SEC, TZ_LOCAL_GAP, 10000 * SEC, 10000 * SEC);
	expect_local(z, 17500 * SEC, TZ_LOCAL_FOLD, 10300 * SEC, 17500 * SEC);
	/* A one-second segment. */
	expect_local(z, 23600 * SEC, TZ_LOCAL_UNIQUE, 20000 * SEC,
		     20000 * SEC);
	expect_local(z, 23600 * SEC + 999999, TZ_LOCAL_UNIQUE,
		     20000 * SEC + 999999, 20000 * SEC + 999999);
	expect_local(z, 23601 * SEC, TZ_LOCAL_GAP, 20001 * SEC, 20001 * SEC);
	expect_local(z, 25000 * SEC, TZ_LOCAL_GAP, 20001 * SEC, 20001 * SEC);
	expect_local(z, 35000 * SEC, TZ_LOCAL_FOLD, 24200 * SEC, 35000 * SEC);
	assert_int_equal(oracle_sweep(z, 0, 40000 * SEC), 5);
	for (hora_time l = 5000 * SEC; l < 45000 * SEC; l += 100 * SEC)
		check_local_oracle(z, l);
	tz__free(z);
}

/* Every zone file on the system parses, and answers sensibly. */
static long all_zones_loaded;

static int load_one(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	const char *name = path + strlen(ZONEINFO "/");
	char magic[4];
	const hora_tz *z;
	hora_error err;
	FILE *f;
	size_t n;

	(void)st;
	(void)ftw;
	if (type != FTW_F)
		return 0;
	f = fopen(path, "rb");
	if (f == NULL)
		return 0;
	n = fread(magic, 1, 4, f);
	fclose(f);
	if (n != 4 || memcmp(magic, "TZif", 4) != 0)
		return 0;
	if (tz_load(name, &z, "tz", &err) != 0) {
		print_error("%s: %s\n", name, err.msg);
		return 1;
	}
	for (int y = 1900; y <= 2500; y += 50) {
		hora_time t = T(y, 6, 1, 12, 0, 0);
		tz_local_result r;
		tz_from_local(z, tz_to_local(z, t), &r);
		if (r.first > t || r.second < t)
			return 1;
	}
	all_zones_loaded++;
	return 0;
}

static void test_all_system_zones(void **state)
{
	(void)state;
	NEED_ZONEINFO();
	all_zones_loaded = 0;
	assert_int_equal(nftw(ZONEINFO, load_one, 16, FTW_PHYS), 0);
	assert_true(all_zones_loaded > 300);
	assert_int_equal(tz_registry_count(), (size_t)all_zones_loaded);
}

/* Extremes of the int64 range: no overflow (UBSan checks), sane
 * answers. */
static void test_extremes(void **state)
{
	hora_tz *z = rule_zone("<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45");
	static const hora_time ts[] = {INT64_MIN, INT64_MIN + 1, INT64_MAX,
				       INT64_MAX - 1, HORA_TIME_MIN,
				       HORA_TIME_MAX};
	tz_local_result r;

	(void)state;
	for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) {
		int32_t off = tz_offset_at(z, ts[i]);
		hora_time n;
		assert_true(off == 45900 || off == 49500);
		tz_to_local(z, ts[i]);
		tz_from_local(z, ts[i], &r);
		assert_true(r.first != HORA_TIME_NONE);
		n = tz_next_transition(z, ts[i]);
		assert_true(n == HORA_TIME_NONE || n > ts[i]);
	}
	assert_true(tz_to_local(z, INT64_MAX) == INT64_MAX);
	assert_true(tz_next_transition(z, INT64_MAX) == HORA_TIME_NONE);
	tz__free(z);
}

/* ---- out of memory ------------------------------------------------------ */

static void test_oom_load(void **state)
{
	const hora_tz *z;
	hora_error err;
	long n;
	int rv = -1;

	(void)state;
	NEED_ZONEINFO();
	for (n = 0; n < 100; n++) {
		z = (const hora_tz *)1;
		hora_alloc_fail_after(n);
		rv = tz_load("Europe/Berlin", &z, "tz", &err);
		hora_alloc_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -HORA_ENOMEM);
		assert_null(z);
		assert_string_equal(err.field, "tz");
		assert_string_equal(err.msg, "out of memory loading time zone "
					     "'Europe/Berlin'");
		assert_int_equal(tz_registry_count(), 0);
	}
	assert_int_equal(rv, 0);
	assert_true(n >= 2); /* registry, file buffer, zone */
	assert_int_equal(tz_registry_count(), 1);
	assert_int_equal(tz_offset_at(z, T(2026, 7, 1, 0, 0, 0)), 7200);

	/* Growing a full registry. */
	static const char *const names[] = {
		"America/New_York", "America/Chicago", "America/Denver",
		"America/Los_Angeles", "Europe/London", "Europe/Paris",
		"Europe/Rome", "Europe/Madrid", "Asia/Tokyo", "Asia/Seoul",
		"Asia/Shanghai", "Asia/Kolkata", "Australia/Sydney",
		"Pacific/Auckland", "Africa/Cairo", "Africa/Lagos",
	};
	for (size_t i = 0; i < 15; i++)
		load(names[i]);
	assert_int_equal(tz_registry_count(), 16);
	hora_alloc_fail_after(0);
	rv = tz_load(names[15], &z, "tz", &err);
	hora_alloc_fail_reset();
	assert_int_equal(rv, -HORA_ENOMEM);
	assert_int_equal(tz_registry_count(), 16);
	load(names[15]);
	assert_int_equal(tz_registry_count(), 17);
	for (size_t i = 0; i < 16; i++)
		assert_string_equal(tz_name(load(names[i])), names[i]);
}

static void test_oom_parse(void **state)
{
	static const int64_t times[] = {100, 200};
	static const uint8_t idx[] = {1, 0};
	static const int32_t offs[] = {0, 3600};
	zspec s = {'3', 2, times, idx, 2, offs, NULL, 0, NULL, NULL,
		   "ABC0DEF,M3.5.0,M10.5.0"};
	size_t len = build_tzif(&s);
	hora_tz *z;
	hora_error err;
	long n;
	int rv = -1;

	(void)state;
	for (n = 0; n < 100; n++) {
		z = (hora_tz *)1;
		hora_alloc_fail_after(n);
		rv = tz__parse(zbuf, len, "oom", &z, &err);
		hora_alloc_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -HORA_ENOMEM);
		assert_null(z);
	}
	assert_int_equal(rv, 0);
	tz__free(z);
	for (n = 0; n < 100; n++) {
		z = (hora_tz *)1;
		hora_alloc_fail_after(n);
		rv = tz__from_rule("EST5EDT", 7, "oom", &z, &err);
		hora_alloc_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -HORA_ENOMEM);
		assert_null(z);
	}
	assert_int_equal(rv, 0);
	tz__free(z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_utc, teardown),
		cmocka_unit_test_teardown(test_registry_interning, teardown),
		cmocka_unit_test_teardown(test_invalid_names, teardown),
		cmocka_unit_test_teardown(test_unknown_zones, teardown),
		cmocka_unit_test_teardown(test_zoneinfo_env, teardown),
		cmocka_unit_test_teardown(test_new_york_2026, teardown),
		cmocka_unit_test_teardown(test_berlin_2026, teardown),
		cmocka_unit_test_teardown(test_lord_howe, teardown),
		cmocka_unit_test_teardown(test_chatham, teardown),
		cmocka_unit_test_teardown(test_far_future, teardown),
		cmocka_unit_test_teardown(test_far_past, teardown),
		cmocka_unit_test_teardown(test_big_jumps, teardown),
		cmocka_unit_test_teardown(test_next_transition_sequence,
					  teardown),
		cmocka_unit_test_teardown(test_v1_only, teardown),
		cmocka_unit_test_teardown(test_v2_skips_v1, teardown),
		cmocka_unit_test_teardown(test_v3_footer, teardown),
		cmocka_unit_test_teardown(test_leap_seconds, teardown),
		cmocka_unit_test_teardown(test_truncated, teardown),
		cmocka_unit_test_teardown(test_corrupt, teardown),
		cmocka_unit_test_teardown(test_rule_parse, teardown),
		cmocka_unit_test_teardown(test_rule_julian, teardown),
		cmocka_unit_test_teardown(test_rule_v3, teardown),
		cmocka_unit_test_teardown(test_glibc_cross_check, teardown),
		cmocka_unit_test_teardown(test_from_local_oracle, teardown),
		cmocka_unit_test_teardown(test_close_transitions, teardown),
		cmocka_unit_test_teardown(test_all_system_zones, teardown),
		cmocka_unit_test_teardown(test_extremes, teardown),
		cmocka_unit_test_teardown(test_oom_load, teardown),
		cmocka_unit_test_teardown(test_oom_parse, teardown),
	};

	unsetenv("HORA_ZONEINFO");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
