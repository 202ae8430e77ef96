#include "cron/schedule.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "core/timefmt.h"

/* "@every 5m" -> pointer to "5m" when `text` starts with `kw`. */
static const char *keyword_arg(const char *text, const char *kw)
{
	size_t l = strlen(kw);
	if (strncasecmp(text, kw, l) != 0)
		return NULL;
	if (text[l] != '\0' && !isspace((unsigned char)text[l]))
		return NULL;
	text += l;
	while (isspace((unsigned char)*text))
		text++;
	return text;
}

/* Copy `arg` without trailing white space into buf. */
static int trimmed(const char *arg, char *buf, size_t size)
{
	size_t n = strlen(arg);
	while (n > 0 && isspace((unsigned char)arg[n - 1]))
		n--;
	if (n >= size)
		return -1;
	memcpy(buf, arg, n);
	buf[n] = '\0';
	return 0;
}

static int parse_duration_arg(const char *kw, const char *arg, int64_t *out,
			      const char *field, hora_error *err)
{
	char buf[128];
	int rv;

	if (*arg == '\0')
		return hora_error_set(err, -HORA_EINVAL, field,
				      "%s needs a duration, e.g. '%s 30s'", kw,
				      kw);
	if (trimmed(arg, buf, sizeof buf) != 0 || strpbrk(buf, " \t") != NULL)
		return hora_error_set(err, -HORA_EINVAL, field,
				      "%s takes exactly one duration", kw);
	if ((rv = duration_parse(buf, out, field, err)) != 0) {
		hora_error_prefix(err, NULL, "%s", kw);
		return rv;
	}
	return 0;
}

int schedule_parse(const char *text, const hora_tz *tz, hora_schedule *out,
		   const char *field, hora_error *err)
{
	hora_schedule s;
	const char *arg;
	int rv;

	memset(&s, 0, sizeof s);
	s.tz = tz ? tz : tz_utc();
	while (isspace((unsigned char)*text))
		text++;
	if (*text == '\0')
		return hora_error_set(err, -HORA_EINVAL, field,
				      "schedule is empty");

	if ((arg = keyword_arg(text, "@every")) != NULL) {
		s.kind = SCHEDULE_EVERY;
		if ((rv = parse_duration_arg("@every", arg, &s.interval, field,
					     err)) != 0)
			return rv;
		if (s.interval < SCHEDULE_MIN_INTERVAL)
			return hora_error_set(err, -HORA_EINVAL, field,
					      "@every: the interval must be at "
					      "least 1ms");
		if (s.interval % HORA_USEC_PER_MS != 0)
			return hora_error_set(err, -HORA_EINVAL, field,
					      "@every: the interval must be a "
					      "whole number of milliseconds");
	} else if ((arg = keyword_arg(text, "@after")) != NULL) {
		s.kind = SCHEDULE_AFTER;
		if ((rv = parse_duration_arg("@after", arg, &s.interval, field,
					     err)) != 0)
			return rv;
	} else if ((arg = keyword_arg(text, "@at")) != NULL) {
		char buf[128];
		bool has_offset = false;
		s.kind = SCHEDULE_AT;
		if (*arg == '\0')
			return hora_error_set(err, -HORA_EINVAL, field,
					      "@at needs a time, e.g. '@at "
					      "2026-12-24T18:00:00Z'");
		if (trimmed(arg, buf, sizeof buf) != 0)
			return hora_error_set(err, -HORA_EINVAL, field,
					      "@at: the time is too long");
		if ((rv = timefmt_parse(buf, true, &s.at, &has_offset, field,
					err)) != 0) {
			hora_error_prefix(err, NULL, "@at");
			return rv;
		}
		if (!has_offset) {
			/* a wall time in the job's zone; a skipped one means
			 * the first instant after the gap, a repeated one the
			 * first occurrence (the fixed-time rule) */
			tz_local_result r;
			tz_from_local(s.tz, s.at, &r);
			s.at = r.first;
		}
	} else {
		s.kind = SCHEDULE_CRON;
		if ((rv = cron_parse(text, &s.cron, field, err)) != 0)
			return rv;
	}
	*out = s;
	return 0;
}

bool schedule_is_once(const hora_schedule *s)
{
	return s->kind == SCHEDULE_AT || s->kind == SCHEDULE_AFTER;
}

hora_time schedule_next(const hora_schedule *s, hora_time anchor,
			hora_time after)
{
	switch (s->kind) {
	case SCHEDULE_CRON:
		return cron_next(&s->cron, s->tz, after);
	case SCHEDULE_EVERY: {
		if (after < anchor)
			return anchor + s->interval;
		int64_t k = (after - anchor) / s->interval + 1;
		if (k > (HORA_TIME_MAX - anchor) / s->interval)
			return HORA_TIME_NONE;
		return anchor + k * s->interval;
	}
	case SCHEDULE_AT:
		return s->at > after ? s->at : HORA_TIME_NONE;
	case SCHEDULE_AFTER: {
		hora_time t = anchor + s->interval;
		return t > after ? t : HORA_TIME_NONE;
	}
	}
	return HORA_TIME_NONE;
}
