/*
 * schedule.h - every schedule form of API.md behind one question:
 * "when does this fire next, strictly after t?"
 *
 *   cron and macros   "*\/5 * * * *", "@daily"      in the job's zone
 *   @every DURATION   anchor + k*interval, k >= 1  (millisecond resolution)
 *   @at TIME          once, at TIME (RFC 3339; without an offset, a wall
 *                     time in the job's zone)
 *   @after DURATION   once, at anchor + DURATION
 *
 * The anchor is the instant the job was accepted (stamped by the leader),
 * or --from for `hora cron next`.  Plain value type; the zone pointer is a
 * shared tz.h zone.
 */
#ifndef HORA_CRON_SCHEDULE_H
#define HORA_CRON_SCHEDULE_H

#include <stdbool.h>

#include "core/civil.h"
#include "core/err.h"
#include "cron/cron.h"
#include "tz/tz.h"

typedef enum {
	SCHEDULE_CRON = 1,
	SCHEDULE_EVERY = 2,
	SCHEDULE_AT = 3,
	SCHEDULE_AFTER = 4,
} schedule_kind;

typedef struct hora_schedule {
	schedule_kind kind;
	const hora_tz *tz;
	int64_t interval; /* EVERY, AFTER: microseconds */
	hora_time at;     /* AT */
	cron_expr cron;   /* CRON */
} hora_schedule;

/* Smallest @every interval. */
#define SCHEDULE_MIN_INTERVAL HORA_USEC_PER_MS

/*
 * Parse `text` for zone `tz` (NULL means UTC).  Errors are -HORA_EINVAL
 * with err filled under `field`.
 */
int schedule_parse(const char *text, const hora_tz *tz, hora_schedule *out,
		   const char *field, hora_error *err);

/* Whether the schedule fires at most once (@at, @after). */
bool schedule_is_once(const hora_schedule *s);

/*
 * First fire instant strictly after `after`, or HORA_TIME_NONE.
 * `anchor` is the instant the job was accepted (EVERY, AFTER).
 */
hora_time schedule_next(const hora_schedule *s, hora_time anchor,
			hora_time after);

#endif
