/*
 * civil.h - proleptic Gregorian calendar arithmetic and hora's instant type.
 *
 * An instant (hora_time) is a count of microseconds since 1970-01-01T00:00Z.
 * A "local" time uses the same type and epoch but counts wall-clock
 * microseconds in some zone, as if that zone were UTC; tz.h converts
 * between the two.  Pure functions, no clock, no locale.
 */
#ifndef HORA_CORE_CIVIL_H
#define HORA_CORE_CIVIL_H

#include <stdbool.h>
#include <stdint.h>

typedef int64_t hora_time;

#define HORA_USEC_PER_SEC INT64_C(1000000)
#define HORA_USEC_PER_MS INT64_C(1000)
#define HORA_SEC_PER_DAY INT64_C(86400)
/* "No instant": returned by next-fire computations that will never fire. */
#define HORA_TIME_NONE INT64_MIN
/* Bounds of what hora formats and schedules: 0001-01-01 .. 9999-12-31. */
#define HORA_TIME_MIN (INT64_C(-62135596800) * HORA_USEC_PER_SEC)
#define HORA_TIME_MAX (INT64_C(253402300799) * HORA_USEC_PER_SEC + 999999)

typedef struct hora_civil {
	int year;   /* e.g. 2026 */
	int month;  /* 1-12 */
	int day;    /* 1-31 */
	int hour;   /* 0-23 */
	int minute; /* 0-59 */
	int second; /* 0-59 */
	int usec;   /* 0-999999 */
} hora_civil;

bool civil_is_leap(int year);
/* Days in `month` (1-12) of `year`. */
int civil_days_in_month(int year, int month);
/* Days since 1970-01-01 of a date (valid or not normalised: day may be 0). */
int64_t civil_days_from_date(int year, int month, int day);
/* Inverse of civil_days_from_date. */
void civil_date_from_days(int64_t days, int *year, int *month, int *day);
/* Day of week 0=Sunday..6=Saturday of a day count. */
int civil_weekday(int64_t days);

/* Split a time (instant or local) into fields; floor semantics for
 * negative values. */
void civil_from_time(hora_time t, hora_civil *out);
/* Combine fields (assumed valid) into a time. */
hora_time civil_to_time(const hora_civil *c);

/* Floor division helpers, exact for negative numerators. */
static inline int64_t civil_floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static inline int64_t civil_floor_mod(int64_t a, int64_t b)
{
	return a - civil_floor_div(a, b) * b;
}

#endif
