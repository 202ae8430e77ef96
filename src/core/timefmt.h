/*
 * timefmt.h - RFC 3339 instants and durations, parsed and formatted.
 *
 * Instants: "2026-11-28T03:00:00.000125Z", "2026-03-29T03:30:00+02:00".
 * Up to 9 fraction digits are read (hora keeps microseconds; further digits
 * are truncated).  'T' may also be 't' or a space, 'Z' may be 'z'.
 * Durations: a sequence of <number><unit>, units us (or µs), ms, s, m, h,
 * d; the number may have a fraction ("1.5h").  "250ms", "1m30s", "2h".
 * Every rejection fills `err` with the reason ("field" is left to the
 * caller: pass the JSON field name so messages name it).
 */
#ifndef HORA_CORE_TIMEFMT_H
#define HORA_CORE_TIMEFMT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/civil.h"
#include "core/err.h"

/* Longest output of timefmt_format plus NUL. */
#define HORA_TIME_STRLEN 40
/* Longest output of duration_format plus NUL. */
#define HORA_DURATION_STRLEN 48
/* Largest duration accepted: 100 years (keeps every sum in range). */
#define HORA_DURATION_MAX (INT64_C(100) * 366 * 86400 * HORA_USEC_PER_SEC)

/*
 * Parse an RFC 3339 instant.  With `local_ok` true, a time without an
 * offset is accepted too and returned as a local (wall-clock) time with
 * *has_offset set to false; otherwise a missing offset is an error.
 * `has_offset` may be NULL when local_ok is false.
 */
int timefmt_parse(const char *s, bool local_ok, hora_time *out,
		  bool *has_offset, const char *field, hora_error *err);

enum {
	TIMEFMT_Z = 1 << 0, /* write "Z" rather than "+00:00" for offset 0 */
};

/*
 * Format instant `t` as seen at `offset_sec` east of UTC.  The fraction is
 * omitted when zero, else 3 digits when whole milliseconds, else 6.
 * Returns the length written (buf must hold HORA_TIME_STRLEN bytes).
 */
size_t timefmt_format(hora_time t, int offset_sec, int flags,
		      char buf[HORA_TIME_STRLEN]);

/* Parse a duration (>= 0) into microseconds. */
int duration_parse(const char *s, int64_t *out_usec, const char *field,
		   hora_error *err);

/* Format microseconds (>= 0) as the canonical "1h30m", "250ms", "0s". */
size_t duration_format(int64_t usec, char buf[HORA_DURATION_STRLEN]);

#endif
