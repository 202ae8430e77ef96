/* Unit tests for src/cron: parsing, errors, next-instant search, DST. */
#include "../test_util.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/timefmt.h"
#include "cron/cron.h"
#include "cron/schedule.h"
#include "tz/tz.h"

static hora_time T(const char *s)
{
	hora_time t;
	hora_error err;
	if (timefmt_parse(s, false, &t, NULL, "t", &err) != 0)
		fail_msg("bad test time %s: %s", s, err.msg);
	return t;
}

static const hora_tz *Z(const char *name)
{
	const hora_tz *tz;
	hora_error err;
	if (tz_load(name, &tz, "timezone", &err) != 0)
		fail_msg("zone %s: %s", name, err.msg);
	return tz;
}

/* Check that `expr` in `zone` fires at exactly `want` after `from`. */
static void expect_next(const char *expr, const char *zone, const char *from,
			const char *const *want, size_t n)
{
	hora_schedule s;
	hora_error err;
	const hora_tz *tz = Z(zone);
	hora_time t = T(from);
	hora_time anchor = t;

	if (schedule_parse(expr, tz, &s, "schedule", &err) != 0)
		fail_msg("%s: %s", expr, err.msg);
	for (size_t i = 0; i < n; i++) {
		char buf[HORA_TIME_STRLEN];
		t = schedule_next(&s, anchor, t);
		if (want[i] == NULL) {
			assert_true(t == HORA_TIME_NONE);
			return;
		}
		if (t == HORA_TIME_NONE)
			fail_msg("%s [%s] #%zu: no fire time, want %s", expr,
				 zone, i, want[i]);
		timefmt_format(t, tz_offset_at(tz, t), 0, buf);
		if (strcmp(buf, want[i]) != 0)
			fail_msg("%s [%s] from %s #%zu: got %s want %s", expr,
				 zone, from, i, buf, want[i]);
	}
}

#define EXPECT(expr, zone, from, ...)                                         \
	do {                                                                  \
		static const char *const w_[] = {__VA_ARGS__};                \
		expect_next(expr, zone, from, w_, ARRAY_LEN(w_));             \
	} while (0)

static void expect_error(const char *expr, const char *msg)
{
	hora_schedule s;
	hora_error err;
	hora_error_clear(&err);
	int rv = schedule_parse(expr, NULL, &s, "schedule", &err);
	if (rv == 0)
		fail_msg("'%s' was accepted, want error \"%s\"", expr, msg);
	assert_int_equal(rv, -HORA_EINVAL);
	assert_string_equal(err.field, "schedule");
	assert_contains(err.msg, msg);
}

static void test_basic_fields(void **state)
{
	(void)state;
	EXPECT("*/15 * * * *", "UTC", "2026-01-01T00:00:00Z",
	       "2026-01-01T00:15:00+00:00", "2026-01-01T00:30:00+00:00",
	       "2026-01-01T00:45:00+00:00", "2026-01-01T01:00:00+00:00");
	EXPECT("0 9-17/4 * * MON-FRI", "UTC", "2026-01-02T10:00:00Z",
	       "2026-01-02T13:00:00+00:00", "2026-01-02T17:00:00+00:00",
	       "2026-01-05T09:00:00+00:00");
	EXPECT("30 5 * * *", "UTC", "2026-01-01T05:30:00Z",
	       "2026-01-02T05:30:00+00:00");
	/* 6 fields: seconds first */
	EXPECT("*/20 * * * * *", "UTC", "2026-01-01T00:00:00.5Z",
	       "2026-01-01T00:00:20+00:00", "2026-01-01T00:00:40+00:00",
	       "2026-01-01T00:01:00+00:00");
	/* a/n means a to the end of the range */
	EXPECT("10/20 * * * *", "UTC", "2026-01-01T00:00:00Z",
	       "2026-01-01T00:10:00+00:00", "2026-01-01T00:30:00+00:00",
	       "2026-01-01T00:50:00+00:00", "2026-01-01T01:10:00+00:00");
	/* names, any case */
	EXPECT("0 0 1 jan,Jul *", "UTC", "2026-02-01T00:00:00Z",
	       "2026-07-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00");
	EXPECT("0 12 * * sun", "UTC", "2026-01-01T00:00:00Z",
	       "2026-01-04T12:00:00+00:00");
	/* 7 is Sunday; FRI-SUN is Friday to Sunday */
	EXPECT("0 0 * * 7", "UTC", "2026-01-01T00:00:00Z",
	       "2026-01-04T00:00:00+00:00");
	EXPECT("0 0 * * FRI-SUN", "UTC", "2026-01-01T00:00:00Z",
	       "2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00",
	       "2026-01-04T00:00:00+00:00", "2026-01-09T00:00:00+00:00");
	EXPECT("0 0 * * 5-7", "UTC", "2026-01-03T12:00:00Z",
	       "2026-01-04T00:00:00+00:00", "2026-01-09T00:00:00+00:00");
	/* day-of-week steps range over 0-6 */
	EXPECT("0 0 * * */3", "UTC", "2026-01-01T00:00:00Z",
	       "2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00",
	       "2026-01-07T00:00:00+00:00", "2026-01-10T00:00:00+00:00");
	/* strictly after, with a fractional start */
	EXPECT("* * * * * *", "UTC", "2026-01-01T00:00:00.999999Z",
	       "2026-01-01T00:00:01+00:00");
	EXPECT("* * * * * *", "UTC", "2026-01-01T00:00:01Z",
	       "2026-01-01T00:00:02+00:00");
}

static void test_day_or_rule(void **state)
{
	(void)state;
	/* both restricted: either matches (1st or any Monday) */
	EXPECT("0 0 1 * MON", "UTC", "2026-01-27T00:00:00Z",
	       "2026-02-01T00:00:00+00:00", "2026-02-02T00:00:00+00:00",
	       "2026-02-09T00:00:00+00:00");
	/* a day field starting with '*' (steps too): both must match */
	EXPECT("0 0 */2 * MON", "UTC", "2026-01-01T00:00:00Z",
	       "2026-01-05T00:00:00+00:00", "2026-01-19T00:00:00+00:00",
	       "2026-02-09T00:00:00+00:00");
	/* first Sunday of each month: days 1-7 AND Sunday ("*\/7" is 0) */
	EXPECT("0 0 1-7 * */7", "UTC", "2026-01-01T00:00:00Z",
	       "2026-01-04T00:00:00+00:00", "2026-02-01T00:00:00+00:00",
	       "2026-03-01T00:00:00+00:00", "2026-04-05T00:00:00+00:00");
	/* '?' is '*' in the day fields */
	EXPECT("0 0 ? * MON", "UTC", "2026-01-01T00:00:00Z",
	       "2026-01-05T00:00:00+00:00", "2026-01-12T00:00:00+00:00");
	EXPECT("0 0 13 * ?", "UTC", "2026-01-01T00:00:00Z",
	       "2026-01-13T00:00:00+00:00", "2026-02-13T00:00:00+00:00");
	/* Friday the 13th needs both: dom is restricted, dow restricted,
	 * so this is 13th OR Friday */
	EXPECT("0 0 13 * FRI", "UTC", "2026-02-12T00:00:00Z",
	       "2026-02-13T00:00:00+00:00", "2026-02-20T00:00:00+00:00");
}

static void test_specials(void **state)
{
	(void)state;
	/* L: last day of month, February in leap and non-leap years */
	EXPECT("0 0 L * *", "UTC", "2027-01-31T00:00:00Z",
	       "2027-02-28T00:00:00+00:00", "2027-03-31T00:00:00+00:00",
	       "2027-04-30T00:00:00+00:00");
	EXPECT("0 0 L 2 *", "UTC", "2027-06-01T00:00:00Z",
	       "2028-02-29T00:00:00+00:00", "2029-02-28T00:00:00+00:00");
	EXPECT("0 0 L-2 * *", "UTC", "2026-02-01T00:00:00Z",
	       "2026-02-26T00:00:00+00:00", "2026-03-29T00:00:00+00:00");
	/* LW: last weekday; May 2026 ends on a Sunday -> Friday 29th;
	 * January 2026 ends on a Saturday -> Friday 30th */
	EXPECT("0 0 LW * *", "UTC", "2026-05-01T00:00:00Z",
	       "2026-05-29T00:00:00+00:00", "2026-06-30T00:00:00+00:00");
	EXPECT("0 0 LW * *", "UTC", "2026-01-01T00:00:00Z",
	       "2026-01-30T00:00:00+00:00");
	/* 15W: Saturday 2026-08-15 -> Friday 14th; Sunday 2026-03-15 ->
	 * Monday 16th */
	EXPECT("0 0 15W * *", "UTC", "2026-08-01T00:00:00Z",
	       "2026-08-14T00:00:00+00:00", "2026-09-15T00:00:00+00:00");
	EXPECT("0 0 15W * *", "UTC", "2026-03-01T00:00:00Z",
	       "2026-03-16T00:00:00+00:00");
	/* 1W on a Saturday stays in the month: Monday the 3rd
	 * (2026-08-01 is a Saturday) */
	EXPECT("0 0 1W * *", "UTC", "2026-07-15T00:00:00Z",
	       "2026-08-03T00:00:00+00:00");
	/* 31W on a Sunday stays in the month: Friday the 29th
	 * (2026-05-31 is a Sunday); months without a 31st are skipped */
	EXPECT("0 0 31W * *", "UTC", "2026-05-01T00:00:00Z",
	       "2026-05-29T00:00:00+00:00", "2026-07-31T00:00:00+00:00");
	/* 5L: last Friday; 5#3: third Friday; across a year end */
	EXPECT("0 0 * * 5L", "UTC", "2026-12-01T00:00:00Z",
	       "2026-12-25T00:00:00+00:00", "2027-01-29T00:00:00+00:00");
	EXPECT("0 0 * * FRI#3", "UTC", "2026-12-01T00:00:00Z",
	       "2026-12-18T00:00:00+00:00", "2027-01-15T00:00:00+00:00");
	/* 5#5 only in months with five Fridays */
	EXPECT("0 0 * * 5#5", "UTC", "2026-01-01T00:00:00Z",
	       "2026-01-30T00:00:00+00:00", "2026-05-29T00:00:00+00:00",
	       "2026-07-31T00:00:00+00:00");
	/* lists mixing specials */
	EXPECT("0 0 1,L * *", "UTC", "2026-02-01T00:00:00Z",
	       "2026-02-28T00:00:00+00:00", "2026-03-01T00:00:00+00:00");
	/* Feb 29 */
	EXPECT("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z",
	       "2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00");
	/* year rollover */
	EXPECT("59 23 31 12 *", "UTC", "2026-12-31T23:59:00Z",
	       "2027-12-31T23:59:00+00:00");
	EXPECT("0 0 1 1 *", "UTC", "2026-12-31T23:59:59.9Z",
	       "2027-01-01T00:00:00+00:00");
}

static void test_macros(void **state)
{
	(void)state;
	EXPECT("@yearly", "UTC", "2026-03-01T00:00:00Z",
	       "2027-01-01T00:00:00+00:00");
	EXPECT("@ANNUALLY", "UTC", "2026-03-01T00:00:00Z",
	       "2027-01-01T00:00:00+00:00");
	EXPECT("@monthly", "UTC", "2026-03-01T00:00:00Z",
	       "2026-04-01T00:00:00+00:00");
	EXPECT("@weekly", "UTC", "2026-03-01T00:00:00Z",
	       "2026-03-08T00:00:00+00:00");
	EXPECT("@daily", "UTC", "2026-03-01T00:00:00Z",
	       "2026-03-02T00:00:00+00:00");
	EXPECT("@Midnight", "UTC", "2026-03-01T00:00:00Z",
	       "2026-03-02T00:00:00+00:00");
	EXPECT("@hourly", "UTC", "2026-03-01T00:30:00Z",
	       "2026-03-01T01:00:00+00:00");
}

static void test_every_at_after(void **state)
{
	(void)state;
	EXPECT("@every 250ms", "UTC", "2026-01-01T00:00:00Z",
	       "2026-01-01T00:00:00.250+00:00",
	       "2026-01-01T00:00:00.500+00:00",
	       "2026-01-01T00:00:00.750+00:00", "2026-01-01T00:00:01+00:00");
	EXPECT("@every 1m30s", "UTC", "2026-01-01T00:00:00Z",
	       "2026-01-01T00:01:30+00:00", "2026-01-01T00:03:00+00:00");
	EXPECT("@at 2026-05-01T10:00:00+02:00", "UTC", "2026-01-01T00:00:00Z",
	       "2026-05-01T08:00:00+00:00", NULL);
	EXPECT("@at 2026-05-01T10:00:00", "Europe/Berlin",
	       "2026-01-01T00:00:00Z", "2026-05-01T10:00:00+02:00", NULL);
	EXPECT("@at 2020-01-01T00:00:00Z", "UTC", "2026-01-01T00:00:00Z",
	       NULL);
	EXPECT("@after 90s", "UTC", "2026-01-01T00:00:00Z",
	       "2026-01-01T00:01:30+00:00", NULL);

	/* @every is anchored at the anchor, not at `after` */
	hora_schedule s;
	hora_error err;
	assert_int_equal(schedule_parse("@every 10s", NULL, &s, "schedule",
					&err),
			 0);
	hora_time a = T("2026-01-01T00:00:03Z");
	assert_true(schedule_next(&s, a, T("2026-01-01T00:00:27Z")) ==
		    T("2026-01-01T00:00:33Z"));
	assert_true(schedule_next(&s, a, T("2026-01-01T00:00:33Z")) ==
		    T("2026-01-01T00:00:43Z"));
	assert_true(schedule_next(&s, a, T("2025-01-01T00:00:00Z")) ==
		    T("2026-01-01T00:00:13Z"));
	assert_true(schedule_is_once(&s) == false);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("0 25 * * *", "hour field: 25 is out of range 0-23");
	expect_error("60 * * * *", "minute field: 60 is out of range 0-59");
	expect_error("0 0 0 * *", "day-of-month field: 0 is out of range 1-31");
	expect_error("0 0 32 * *", "day-of-month field: 32 is out of range");
	expect_error("0 0 * 13 *", "month field: 13 is out of range 1-12");
	expect_error("0 0 * * 8", "day-of-week field: 8 is out of range 0-7");
	expect_error("61 * * * * *", "second field: 61 is out of range 0-59");
	expect_error("0 0 1,,2 * *", "day-of-month field: empty list item");
	expect_error("0 0 1, * *", "empty list item");
	expect_error(",1 * * * *", "empty list item");
	expect_error("*/0 * * * *", "minute field: step 0");
	expect_error("5-1 * * * *", "minute field: range 5-1 starts after");
	expect_error("0 0 * * 5-0", "range 5-0 starts after");
	expect_error("0 0 * * SAT-FRI", "range 6-5 starts after");
	expect_error("0 0 30 2 *", "can never fire");
	expect_error("0 0 31 4,6,9,11 *", "can never fire");
	expect_error("* * * *", "expected 5 fields");
	expect_error("* * * * * * *", "got 7");
	expect_error("x * * * *", "minute field: unexpected 'x'");
	expect_error("0 0 * FOO *", "month field: unknown name 'FOO'");
	expect_error("0 0 * * MON-", "day-of-week field: missing value");
	expect_error("0 0 * * L", "'L' needs a weekday");
	expect_error("0 0 W * *", "'W' needs a day");
	expect_error("0 0 * * 5#6", "must be 1-5");
	expect_error("0 0 32W * *", "out of range 1-31");
	expect_error("*/61 * * * *", "step 61 is larger than the range 0-59");
	expect_error("1-2-3 * * * *", "unexpected '-'");
	expect_error("@reboot", "unknown macro '@reboot'");
	expect_error("@daily 5", "@daily takes no argument");
	expect_error("@every", "@every needs a duration");
	expect_error("@every 0s", "at least 1ms");
	expect_error("@every 1500us", "whole number of milliseconds");
	expect_error("@every 5x", "unknown unit");
	expect_error("@every -5s", "must not be negative");
	expect_error("@at tomorrow", "not an RFC 3339 time");
	expect_error("@at 2026-02-30T00:00:00Z", "no such day");
	expect_error("", "schedule is empty");
	expect_error("   ", "schedule is empty");
}

static void test_fixed_time_flag(void **state)
{
	(void)state;
	static const struct {
		const char *expr;
		bool fixed;
	} cases[] = {
		{"0 2 * * *", true},       {"30 1-3 * * *", true},
		{"*/5 * * * *", false},    {"0 * * * *", false},
		{"0 0 2 * * *", true},     {"* 0 2 * * *", false},
		{"? 0 2 * * *", false},    {"0 ? 2 * * *", false},
		{"0 2 * * 1", true},       {"@daily", true},
		{"@hourly", false},        {"0,30 2 * * *", true},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		cron_expr e;
		hora_error err;
		assert_int_equal(cron_parse(cases[i].expr, &e, "s", &err), 0);
		if (((e.flags & CRON_FIXED_TIME) != 0) != cases[i].fixed)
			fail_msg("%s: fixed-time flag wrong", cases[i].expr);
	}
}

/* America/New_York 2026: spring forward 2026-03-08 02:00 EST -> 03:00 EDT,
 * fall back 2026-11-01 02:00 EDT -> 01:00 EST. */
static void test_dst_new_york(void **state)
{
	(void)state;
	/* fixed-time in the gap: once, at the first instant after it */
	EXPECT("30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00",
	       "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00");
	EXPECT("0 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00",
	       "2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00");
	/* several gap times collapse into one firing; 03:00 after it */
	EXPECT("0,30 2,3 * * *", "America/New_York",
	       "2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00",
	       "2026-03-08T03:30:00-04:00", "2026-03-09T02:00:00-04:00");
	/* fixed-time in the repeated hour: only the first occurrence */
	EXPECT("30 1 * * *", "America/New_York", "2026-10-31T12:00:00-04:00",
	       "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00");
	EXPECT("0,30 1 * * *", "America/New_York",
	       "2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00",
	       "2026-11-01T01:30:00-04:00", "2026-11-02T01:00:00-05:00");
	/* starting inside the second pass of the fold */
	EXPECT("0,30 1 * * *", "America/New_York",
	       "2026-11-01T01:10:00-05:00", "2026-11-02T01:00:00-05:00");
	/* not fixed-time: real time, each occurrence of a repeated hour */
	EXPECT("*/30 * * * *", "America/New_York",
	       "2026-11-01T00:15:00-04:00", "2026-11-01T00:30:00-04:00",
	       "2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00",
	       "2026-11-01T01:00:00-05:00", "2026-11-01T01:30:00-05:00",
	       "2026-11-01T02:00:00-05:00");
	EXPECT("@hourly", "America/New_York", "2026-11-01T00:00:00-04:00",
	       "2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00",
	       "2026-11-01T02:00:00-05:00");
	/* ... and skipped local times do not exist */
	EXPECT("*/30 * * * *", "America/New_York",
	       "2026-03-08T01:00:00-05:00", "2026-03-08T01:30:00-05:00",
	       "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00");
	EXPECT("*/15 2 * * *", "America/New_York",
	       "2026-03-07T03:00:00-05:00", "2026-03-09T02:00:00-04:00");
	/* 6-field with seconds '*' is not fixed-time */
	EXPECT("* 59 1 * * *", "America/New_York",
	       "2026-11-01T01:59:58-04:00", "2026-11-01T01:59:59-04:00",
	       "2026-11-01T01:59:00-05:00");
	/* @daily at midnight is unaffected */
	EXPECT("@daily", "America/New_York", "2026-03-07T12:00:00-05:00",
	       "2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00");
}

static void test_dst_berlin(void **state)
{
	(void)state;
	/* 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 -> 02:00 */
	EXPECT("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00+01:00",
	       "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00");
	EXPECT("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00+02:00",
	       "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00");
	EXPECT("*/20 2 * * *", "Europe/Berlin", "2026-10-25T01:50:00+02:00",
	       "2026-10-25T02:00:00+02:00", "2026-10-25T02:20:00+02:00",
	       "2026-10-25T02:40:00+02:00", "2026-10-25T02:00:00+01:00",
	       "2026-10-25T02:20:00+01:00", "2026-10-25T02:40:00+01:00",
	       "2026-10-26T02:00:00+01:00");
}

static void test_dst_lord_howe(void **state)
{
	(void)state;
	/* +10:30 / +11:00.  2026-04-05 02:00 +11 -> 01:30 +10:30;
	 * 2026-10-04 02:00 +10:30 -> 02:30 +11 */
	EXPECT("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00+10:30",
	       "2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00");
	EXPECT("45 1 * * *", "Australia/Lord_Howe", "2026-04-04T12:00:00+11:00",
	       "2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30");
	EXPECT("*/15 1 * * *", "Australia/Lord_Howe",
	       "2026-04-05T01:20:00+11:00", "2026-04-05T01:30:00+11:00",
	       "2026-04-05T01:45:00+11:00", "2026-04-05T01:30:00+10:30",
	       "2026-04-05T01:45:00+10:30", "2026-04-06T01:00:00+10:30");
}

static void test_dst_chatham(void **state)
{
	(void)state;
	/* +12:45 / +13:45: 2026-09-27 02:45 -> 03:45; 2026-04-05 03:45 ->
	 * 02:45 */
	EXPECT("0 3 * * *", "Pacific/Chatham", "2026-09-26T12:00:00+12:45",
	       "2026-09-27T03:45:00+13:45", "2026-09-28T03:00:00+13:45");
	EXPECT("0 3 * * *", "Pacific/Chatham", "2026-04-04T12:00:00+13:45",
	       "2026-04-05T03:00:00+13:45", "2026-04-06T03:00:00+12:45");
	EXPECT("0 0 * * *", "Pacific/Chatham", "2026-06-01T00:00:00Z",
	       "2026-06-02T00:00:00+12:45");
}

static void test_far_future(void **state)
{
	(void)state;
	/* beyond the zone's transition table: the TZif footer rule */
	EXPECT("30 2 * * *", "America/New_York", "2100-03-13T12:00:00-05:00",
	       "2100-03-14T03:00:00-04:00", "2100-03-15T02:30:00-04:00");
	EXPECT("30 1 * * *", "America/New_York", "2400-11-06T12:00:00-04:00",
	       "2400-11-07T01:30:00-05:00");
	EXPECT("0 12 29 2 *", "Europe/Berlin", "2396-03-01T00:00:00Z",
	       "2400-02-29T12:00:00+01:00");
	/* the end of the representable range */
	EXPECT("0 0 1 1 *", "UTC", "9999-06-01T00:00:00Z", NULL);
	EXPECT("@every 1s", "UTC", "9999-12-31T23:59:59Z", NULL);
}

static void test_next_is_monotone_random(void **state)
{
	(void)state;
	/* A property check: for random expressions and zones, each next
	 * instant is strictly later and every instant between two
	 * consecutive fires does not fire. */
	static const char *zones[] = {"UTC", "America/New_York",
				      "Europe/Berlin", "Australia/Lord_Howe",
				      "Pacific/Chatham"};
	static const char *exprs[] = {
		"*/7 * * * *", "0 */3 * * *", "30 2 * * *", "15 1 * * 0",
		"0 0 L * *",   "0 12 15W * *", "0 6 * * 5L", "*/10 1-3 * * *",
		"0 0 1 * MON", "0 30 1 * * *",
	};
	for (size_t zi = 0; zi < ARRAY_LEN(zones); zi++) {
		const hora_tz *tz = Z(zones[zi]);
		for (size_t ei = 0; ei < ARRAY_LEN(exprs); ei++) {
			cron_expr e;
			hora_error err;
			assert_int_equal(cron_parse(exprs[ei], &e, "s", &err),
					 0);
			hora_time t = T("2026-01-01T00:00:00Z");
			for (int k = 0; k < 300; k++) {
				hora_time n = cron_next(&e, tz, t);
				assert_true(n > t);
				/* just before n, the next is still n */
				assert_true(cron_next(&e, tz, n - 1) == n);
				t = n;
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_fields),
		cmocka_unit_test(test_day_or_rule),
		cmocka_unit_test(test_specials),
		cmocka_unit_test(test_macros),
		cmocka_unit_test(test_every_at_after),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_fixed_time_flag),
		cmocka_unit_test(test_dst_new_york),
		cmocka_unit_test(test_dst_berlin),
		cmocka_unit_test(test_dst_lord_howe),
		cmocka_unit_test(test_dst_chatham),
		cmocka_unit_test(test_far_future),
		cmocka_unit_test(test_next_is_monotone_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
