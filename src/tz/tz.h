/*
 * tz.h - IANA time zones from TZif files (RFC 8536, versions 1-3).
 *
 * Zones are read from the zoneinfo directory (default /usr/share/zoneinfo,
 * or $HORA_ZONEINFO), parsed once, interned by name and shared: a zone
 * pointer stays valid until tz_registry_clear().  The POSIX TZ footer of a
 * v2+ file governs instants after the last transition, so far-future
 * conversions are exact.  Not thread-safe (hora's core runs on one
 * thread).  All instants are hora_time microseconds; offsets are seconds
 * east of UTC.
 */
#ifndef HORA_TZ_TZ_H
#define HORA_TZ_TZ_H

#include <stdbool.h>
#include <stdint.h>

#include "core/civil.h"
#include "core/err.h"

typedef struct hora_tz hora_tz;

/*
 * Find or load zone `name` ("Europe/Berlin", "UTC").  Names are validated
 * (no "..", no leading '/', [A-Za-z0-9/_+-] only) before any file is
 * opened.  On success *out is a shared zone (caller does not free).
 * Errors: -HORA_EINVAL (bad name or malformed file), -HORA_ENOENT (no such
 * zone), -HORA_ENOMEM; `err` names the zone and the reason, under `field`.
 */
int tz_load(const char *name, const hora_tz **out, const char *field,
	    hora_error *err);

/* The built-in UTC zone; never fails, never needs a file. */
const hora_tz *tz_utc(void);

/* The zone's canonical name as given to tz_load ("UTC" for tz_utc). */
const char *tz_name(const hora_tz *tz);

/* Offset in seconds east of UTC in force at instant `t`. */
int32_t tz_offset_at(const hora_tz *tz, hora_time t);

/* Wall-clock time at instant `t`: t + offset. */
hora_time tz_to_local(const hora_tz *tz, hora_time t);

/*
 * Instant of the first transition strictly after `t` (a change of UT
 * offset; changes of abbreviation or isdst alone that keep the offset are
 * skipped), or HORA_TIME_NONE if the offset never changes again.
 */
hora_time tz_next_transition(const hora_tz *tz, hora_time t);

/* How a wall-clock time maps to instants. */
typedef enum {
	TZ_LOCAL_UNIQUE, /* exists once: first == second */
	TZ_LOCAL_FOLD,   /* exists twice (fall back): first < second */
	TZ_LOCAL_GAP,    /* skipped (spring forward): first == second ==
			    the transition instant, the first instant after
			    the gap */
} tz_local_kind;

typedef struct tz_local_result {
	tz_local_kind kind;
	hora_time first;
	hora_time second;
} tz_local_result;

/* Resolve wall-clock time `local` in `tz`. */
void tz_from_local(const hora_tz *tz, hora_time local, tz_local_result *out);

/* Drop every loaded zone (tests, shutdown).  Invalidates all pointers
 * except tz_utc(). */
void tz_registry_clear(void);

/* Number of zones loaded (for metrics and tests). */
size_t tz_registry_count(void);

#endif
