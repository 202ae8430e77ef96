/* Unit tests for src/core: civil arithmetic, RFC 3339, durations, errors,
 * the allocation fault hook. */
#include "../test_util.h"

#include <stdio.h>

#include "core/alloc.h"
#include "core/civil.h"
#include "core/err.h"
#include "core/timefmt.h"

static void test_civil_round_trip(void **state)
{
	(void)state;
	/* every day from 1600 to 2500 survives days -> date -> days */
	int64_t lo = civil_days_from_date(1600, 1, 1);
	int64_t hi = civil_days_from_date(2500, 12, 31);
	for (int64_t d = lo; d <= hi; d++) {
		int y, m, dd;
		civil_date_from_days(d, &y, &m, &dd);
		assert_true(civil_days_from_date(y, m, dd) == d);
		assert_true(dd >= 1 && dd <= civil_days_in_month(y, m));
	}
	assert_int_equal(civil_weekday(0), 4); /* 1970-01-01 Thursday */
	assert_int_equal(civil_weekday(civil_days_from_date(2026, 12, 1)), 2);
	assert_true(civil_is_leap(2000) && civil_is_leap(2028));
	assert_false(civil_is_leap(1900) || civil_is_leap(2100) ||
		     civil_is_leap(2026));
	assert_int_equal(civil_days_in_month(2028, 2), 29);
	assert_int_equal(civil_days_in_month(2026, 2), 28);

	hora_civil c;
	civil_from_time(-1, &c); /* 1969-12-31T23:59:59.999999 */
	assert_int_equal(c.year, 1969);
	assert_int_equal(c.second, 59);
	assert_int_equal(c.usec, 999999);
	assert_true(civil_to_time(&c) == -1);
}

static void expect_parse(const char *s, const char *canonical)
{
	hora_time t;
	hora_error err;
	char buf[HORA_TIME_STRLEN];
	if (timefmt_parse(s, false, &t, NULL, "at", &err) != 0)
		fail_msg("%s: %s", s, err.msg);
	timefmt_format(t, 0, TIMEFMT_Z, buf);
	assert_string_equal(buf, canonical);
}

static void expect_time_error(const char *s, const char *msg)
{
	hora_time t;
	hora_error err;
	assert_int_equal(timefmt_parse(s, false, &t, NULL, "start_at", &err),
			 -HORA_EINVAL);
	assert_string_equal(err.field, "start_at");
	assert_contains(err.msg, msg);
}

static void test_rfc3339(void **state)
{
	(void)state;
	expect_parse("2026-11-28T03:00:00.000125Z",
		     "2026-11-28T03:00:00.000125Z");
	expect_parse("2026-11-28T03:00:00Z", "2026-11-28T03:00:00Z");
	expect_parse("2026-11-28t03:00:00.5z", "2026-11-28T03:00:00.500Z");
	expect_parse("2026-11-28 03:00:00+02:00", "2026-11-28T01:00:00Z");
	expect_parse("2026-03-29T03:30:00-09:30", "2026-03-29T13:00:00Z");
	expect_parse("2026-01-01T00:00:00.123456789Z",
		     "2026-01-01T00:00:00.123456Z");
	expect_parse("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z");
	expect_parse("9999-12-31T23:59:59.999999Z",
		     "9999-12-31T23:59:59.999999Z");
	expect_parse("1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59.500Z");
	expect_parse("2028-02-29T12:00:00Z", "2028-02-29T12:00:00Z");

	expect_time_error("2026-02-29T00:00:00Z", "no such day");
	expect_time_error("2026-13-01T00:00:00Z", "month must be 01-12");
	expect_time_error("2026-01-01T24:00:00Z", "hour must be 00-23");
	expect_time_error("2026-01-01T00:60:00Z", "minute must be 00-59");
	expect_time_error("2026-01-01T00:00:60Z", "leap seconds");
	expect_time_error("2026-01-01T00:00:00", "missing offset");
	expect_time_error("2026-01-01T00:00:00+2:00", "offset must be");
	expect_time_error("2026-01-01T00:00:00Zjunk", "unexpected text");
	expect_time_error("2026-01-01", "expected YYYY-MM-DDTHH:MM:SS");
	expect_time_error("2026/01/01T00:00:00Z", "date must be");
	expect_time_error("2026-01-01X00:00:00Z", "expected 'T'");
	expect_time_error("2026-01-01T00:00:00.Z", "digits after '.'");
	expect_time_error("0000-01-01T00:00:00Z", "year 0000");

	/* a local time without offset where allowed */
	hora_time t;
	bool has;
	hora_error err;
	assert_int_equal(timefmt_parse("2026-01-01T10:00:00", true, &t, &has,
				       "from", &err),
			 0);
	assert_false(has);

	char buf[HORA_TIME_STRLEN];
	timefmt_format(0, 3600 * 2, 0, buf);
	assert_string_equal(buf, "1970-01-01T02:00:00+02:00");
	timefmt_format(0, 0, 0, buf);
	assert_string_equal(buf, "1970-01-01T00:00:00+00:00");
	timefmt_format(0, -(3600 * 9 + 1800), 0, buf);
	assert_string_equal(buf, "1969-12-31T14:30:00-09:30");
	timefmt_format(0, 3600 + 28 * 60 + 5, 0, buf); /* an LMT offset */
	assert_string_equal(buf, "1970-01-01T01:28:05+01:28:05");
}

static void expect_duration(const char *s, int64_t usec, const char *canon)
{
	int64_t d;
	hora_error err;
	char buf[HORA_DURATION_STRLEN];
	if (duration_parse(s, &d, "timeout", &err) != 0)
		fail_msg("%s: %s", s, err.msg);
	if (d != usec)
		fail_msg("%s: got %lld want %lld", s, (long long)d,
			 (long long)usec);
	duration_format(d, buf);
	assert_string_equal(buf, canon);
}

static void expect_duration_error(const char *s, const char *msg)
{
	int64_t d;
	hora_error err;
	assert_int_equal(duration_parse(s, &d, "timeout", &err), -HORA_EINVAL);
	assert_string_equal(err.field, "timeout");
	assert_contains(err.msg, msg);
}

static void test_durations(void **state)
{
	(void)state;
	const int64_t S = HORA_USEC_PER_SEC;
	expect_duration("250ms", 250000, "250ms");
	expect_duration("90s", 90 * S, "1m30s");
	expect_duration("1m30s", 90 * S, "1m30s");
	expect_duration("2h", 7200 * S, "2h");
	expect_duration("1.5h", 5400 * S, "1h30m");
	expect_duration("0s", 0, "0s");
	expect_duration("1d", 86400 * S, "24h");
	expect_duration("10us", 10, "10us");
	expect_duration("10\xc2\xb5s", 10, "10us");
	expect_duration("1h2m3s4ms5us", 3723 * S + 4005, "1h2m3s4ms5us");
	expect_duration("0.25s", 250000, "250ms");
	/* a long fraction of a large unit must not overflow */
	expect_duration("0.999999999999h", 3599999999, "59m59s999ms999us");

	expect_duration_error("", "empty");
	expect_duration_error("10", "missing unit");
	expect_duration_error("10x", "unknown unit");
	expect_duration_error("-1s", "must not be negative");
	expect_duration_error("s", "expected a number");
	expect_duration_error("1s 2s", "expected a number");
	expect_duration_error("99999999999999h", "longer than 100 years");
	expect_duration_error("36500000h", "longer than 100 years");
}

static void test_errors(void **state)
{
	(void)state;
	hora_error err;
	assert_string_equal(hora_strerror(-HORA_EINVAL), "invalid argument");
	assert_string_equal(hora_errname(-HORA_ENOENT), "ENOENT");
	assert_string_equal(hora_strerror(-9999), "unknown error");
	assert_int_equal(hora_error_set(&err, -HORA_EINVAL, "queue", "bad %d",
					7),
			 -HORA_EINVAL);
	assert_string_equal(err.field, "queue");
	assert_string_equal(err.msg, "bad 7");
	hora_error_prefix(&err, "jobs[3].queue", "jobs[%d]", 3);
	assert_string_equal(err.msg, "jobs[3]: bad 7");
	assert_string_equal(err.field, "jobs[3].queue");
	assert_int_equal(hora_error_set(NULL, -HORA_ENOMEM, NULL, "x"),
			 -HORA_ENOMEM);
}

static void test_alloc_hook(void **state)
{
	(void)state;
	hora_alloc_fail_after(1);
	void *a = hora_malloc(8);
	void *b = hora_malloc(8);
	assert_non_null(a);
	assert_null(b);
	assert_null(hora_strdup("x"));
	assert_int_equal(hora_alloc_failures(), 2);
	hora_alloc_fail_reset();
	char *s = hora_strndup("hello", 3);
	assert_string_equal(s, "hel");
	hora_free(s);
	hora_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_civil_round_trip),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_alloc_hook),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
