/*
 * cron.h - cron expressions: parse into bit sets, find the next instant.
 *
 * The dialect is API.md's "Schedules": 5 fields (minute hour dom month dow)
 * or 6 with seconds first; names JAN-DEC and SUN-SAT in any case; lists,
 * ranges and steps; '?' as '*'; L, L-n, LW, nW in day-of-month; nL, n#k in
 * day-of-week; 0 and 7 are Sunday; the Vixie/cronie OR rule for the two day
 * fields; macros @yearly @annually @monthly @weekly @daily @midnight
 * @hourly.
 *
 * Daylight saving follows Vixie cron and cronie (API.md): an expression
 * is *fixed-time* unless its second, minute or hour field starts with '*'
 * or '?'.  A fixed-time expression works on the wall clock: local times in
 * a spring-forward gap fire once, at the first instant after the gap; in a
 * repeated fall-back hour only the first occurrence fires.  Other
 * expressions follow real time: skipped local times do not exist for them
 * and repeated ones fire in each occurrence.
 *
 * A cron_expr is a plain value (no pointers), 56 bytes, safe to copy and
 * to embed in job records.  Pure functions: no clock, no allocation.
 */
#ifndef HORA_CRON_CRON_H
#define HORA_CRON_CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "core/civil.h"
#include "core/err.h"
#include "tz/tz.h"

enum {
	CRON_DOM_STAR = 1 << 0,     /* day-of-month starts with '*' or '?' */
	CRON_DOW_STAR = 1 << 1,     /* day-of-week starts with '*' or '?' */
	CRON_FIXED_TIME = 1 << 2,   /* see the DST rule above */
	CRON_LAST_WEEKDAY = 1 << 3, /* "LW" in day-of-month */
};

typedef struct cron_expr {
	uint64_t seconds;     /* bit s, 0-59 */
	uint64_t minutes;     /* bit m, 0-59 */
	uint64_t dow_nth;     /* bit w*5+(k-1): "w#k", w 0-6, k 1-5 */
	uint32_t hours;       /* bit h, 0-23 */
	uint32_t dom;         /* bit d, 1-31 */
	uint32_t dom_last;    /* bit n: "L-n" (bit 0 is plain "L") */
	uint32_t dom_nearest; /* bit d: "dW", nearest weekday to day d */
	uint16_t months;      /* bit m, 1-12 */
	uint8_t dow;          /* bit w, 0-6 (0 = Sunday) */
	uint8_t dow_last;     /* bit w: "wL", last such weekday of the month */
	uint8_t flags;        /* CRON_* above */
} cron_expr;

/*
 * Parse `text` (a cron expression or one of the macros) into *out.
 * On error returns -HORA_EINVAL and fills err (under `field`) with the cron
 * field, the value and the rule, e.g. "hour field: 25 is out of range
 * 0-23"; an expression that can never fire ("0 0 30 2 *") is rejected
 * too.  `field` is the name reported to API users ("schedule").
 */
int cron_parse(const char *text, cron_expr *out, const char *field,
	       hora_error *err);

/* Whether `text` is one of the cron macros (@daily, ...), any case. */
bool cron_is_macro(const char *text);

/*
 * First wall-clock time strictly after `local` (a local hora_time) that
 * matches, in whole seconds; HORA_TIME_NONE if none before year 10000.
 */
hora_time cron_next_local(const cron_expr *e, hora_time local);

/*
 * First instant strictly after `after` at which `e` fires in zone `tz`,
 * applying the DST rule above; HORA_TIME_NONE if it never fires again.
 */
hora_time cron_next(const cron_expr *e, const hora_tz *tz, hora_time after);

/* Whether a civil date matches the day fields (tests, tools). */
bool cron_day_matches(const cron_expr *e, int year, int month, int day);

#endif
