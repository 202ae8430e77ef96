#include "core/timefmt.h"

#include <stdio.h>
#include <string.h>

static int digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

static int bad_time(hora_error *err, const char *field, const char *s,
		    const char *why)
{
	return hora_error_set(err, -HORA_EINVAL, field,
			      "'%.64s' is not an RFC 3339 time: %s", s, why);
}

int timefmt_parse(const char *s, bool local_ok, hora_time *out,
		  bool *has_offset, const char *field, hora_error *err)
{
	hora_civil c = {0};
	size_t len = strlen(s);
	size_t i;
	int offset = 0;
	bool offset_seen = false;

	if (len < 19)
		return bad_time(err, field, s,
				"expected YYYY-MM-DDTHH:MM:SS followed by Z "
				"or an offset like +02:00");
	if (digits(s, 4, &c.year) || s[4] != '-' || digits(s + 5, 2, &c.month) ||
	    s[7] != '-' || digits(s + 8, 2, &c.day))
		return bad_time(err, field, s, "the date must be YYYY-MM-DD");
	if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
		return bad_time(err, field, s,
				"expected 'T' between date and time");
	if (digits(s + 11, 2, &c.hour) || s[13] != ':' ||
	    digits(s + 14, 2, &c.minute) || s[16] != ':' ||
	    digits(s + 17, 2, &c.second))
		return bad_time(err, field, s, "the time must be HH:MM:SS");
	if (c.year < 1)
		return bad_time(err, field, s, "year 0000 is out of range");
	if (c.month < 1 || c.month > 12)
		return bad_time(err, field, s, "month must be 01-12");
	if (c.day < 1 || c.day > civil_days_in_month(c.year, c.month))
		return bad_time(err, field, s, "no such day in that month");
	if (c.hour > 23)
		return bad_time(err, field, s, "hour must be 00-23");
	if (c.minute > 59)
		return bad_time(err, field, s, "minute must be 00-59");
	if (c.second > 59)
		return bad_time(err, field, s,
				"second must be 00-59 (leap seconds are not "
				"supported)");
	i = 19;
	if (s[i] == '.' || s[i] == ',') {
		int n = 0;
		int usec = 0;
		i++;
		while (s[i] >= '0' && s[i] <= '9') {
			if (n < 6)
				usec = usec * 10 + (s[i] - '0');
			n++;
			i++;
		}
		if (n == 0)
			return bad_time(err, field, s,
					"expected digits after '.'");
		if (n > 9)
			return bad_time(err, field, s,
					"at most 9 fraction digits");
		for (int k = n; k < 6; k++)
			usec *= 10;
		c.usec = usec;
	}
	if (s[i] == 'Z' || s[i] == 'z') {
		offset_seen = true;
		i++;
	} else if (s[i] == '+' || s[i] == '-') {
		int oh, om;
		if (digits(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
		    digits(s + i + 4, 2, &om))
			return bad_time(err, field, s,
					"the offset must be +HH:MM or -HH:MM");
		if (oh > 23 || om > 59)
			return bad_time(err, field, s,
					"offset out of range");
		offset = (oh * 60 + om) * 60;
		if (s[i] == '-')
			offset = -offset;
		offset_seen = true;
		i += 6;
	}
	if (s[i] != '\0')
		return bad_time(err, field, s, "unexpected text after the time");
	if (!offset_seen && !local_ok)
		return bad_time(err, field, s,
				"missing offset: add Z or +HH:MM");
	if (has_offset != NULL)
		*has_offset = offset_seen;
	*out = civil_to_time(&c) - (hora_time)offset * HORA_USEC_PER_SEC;
	return 0;
}

size_t timefmt_format(hora_time t, int offset_sec, int flags,
		      char buf[HORA_TIME_STRLEN])
{
	hora_civil c;
	char frac[16] = "";
	char off[32];
	int n;

	civil_from_time(t + (hora_time)offset_sec * HORA_USEC_PER_SEC, &c);
	if (c.usec % 1000 != 0)
		snprintf(frac, sizeof frac, ".%06d", c.usec);
	else if (c.usec != 0)
		snprintf(frac, sizeof frac, ".%03d", c.usec / 1000);

	if (offset_sec == 0 && (flags & TIMEFMT_Z)) {
		strcpy(off, "Z");
	} else {
		int a = offset_sec < 0 ? -offset_sec : offset_sec;
		char sign = offset_sec < 0 ? '-' : '+';
		if (a % 60 != 0) /* historical LMT offsets carry seconds */
			snprintf(off, sizeof off, "%c%02d:%02d:%02d", sign,
				 a / 3600, a / 60 % 60, a % 60);
		else
			snprintf(off, sizeof off, "%c%02d:%02d", sign,
				 a / 3600, a / 60 % 60);
	}
	n = snprintf(buf, HORA_TIME_STRLEN, "%04d-%02d-%02dT%02d:%02d:%02d%s%s",
		     c.year, c.month, c.day, c.hour, c.minute, c.second, frac,
		     off);
	return n < 0 ? 0 : (size_t)n;
}

static int bad_duration(hora_error *err, const char *field, const char *s,
			const char *why)
{
	return hora_error_set(err, -HORA_EINVAL, field,
			      "'%.64s' is not a duration: %s (examples: "
			      "250ms, 90s, 1m30s, 2h)",
			      s, why);
}

int duration_parse(const char *s, int64_t *out_usec, const char *field,
		   hora_error *err)
{
	static const struct {
		const char *name;
		int64_t usec;
	} units[] = {
		{"us", 1},
		{"\xc2\xb5s", 1}, /* µs */
		{"ms", HORA_USEC_PER_MS},
		{"s", HORA_USEC_PER_SEC},
		{"m", 60 * HORA_USEC_PER_SEC},
		{"h", 3600 * HORA_USEC_PER_SEC},
		{"d", 86400 * HORA_USEC_PER_SEC},
	};
	const char *p = s;
	int64_t total = 0;

	if (*p == '\0')
		return bad_duration(err, field, s, "empty");
	if (*p == '-')
		return bad_duration(err, field, s, "must not be negative");
	while (*p != '\0') {
		int64_t whole = 0, frac = 0, frac_scale = 1;
		int nd = 0;
		size_t best = 0;
		int64_t unit = 0;

		while (*p >= '0' && *p <= '9') {
			whole = whole * 10 + (*p - '0');
			if (whole > HORA_DURATION_MAX)
				return bad_duration(err, field, s,
						    "longer than 100 years");
			p++;
			nd++;
		}
		if (*p == '.') {
			p++;
			while (*p >= '0' && *p <= '9') {
				if (frac_scale < INT64_C(1000000000000)) {
					frac = frac * 10 + (*p - '0');
					frac_scale *= 10;
				}
				p++;
				nd++;
			}
		}
		if (nd == 0)
			return bad_duration(err, field, s,
					    "expected a number");
		for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
			size_t l = strlen(units[u].name);
			if (strncmp(p, units[u].name, l) == 0 && l > best) {
				best = l;
				unit = units[u].usec;
			}
		}
		if (best == 0)
			return bad_duration(
				err, field, s,
				*p ? "unknown unit (use us, ms, s, m, h or d)"
				   : "missing unit");
		p += best;
		if (whole > HORA_DURATION_MAX / unit)
			return bad_duration(err, field, s,
					    "longer than 100 years");
		/* frac < 10^12 and unit <= 1 day in us: the product needs
		 * 128 bits */
		total += whole * unit +
			 (int64_t)((__int128)frac * unit / frac_scale);
		if (total > HORA_DURATION_MAX)
			return bad_duration(err, field, s,
					    "longer than 100 years");
	}
	*out_usec = total;
	return 0;
}

size_t duration_format(int64_t usec, char buf[HORA_DURATION_STRLEN])
{
	static const struct {
		const char *name;
		int64_t usec;
	} parts[] = {
		{"h", 3600 * HORA_USEC_PER_SEC},
		{"m", 60 * HORA_USEC_PER_SEC},
		{"s", HORA_USEC_PER_SEC},
		{"ms", HORA_USEC_PER_MS},
		{"us", 1},
	};
	size_t n = 0;

	if (usec <= 0) {
		strcpy(buf, "0s");
		return 2;
	}
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		int64_t q = usec / parts[i].usec;
		if (q == 0)
			continue;
		usec -= q * parts[i].usec;
		int w = snprintf(buf + n, HORA_DURATION_STRLEN - n,
				 "%lld%s", (long long)q, parts[i].name);
		if (w < 0)
			break;
		n += (size_t)w;
	}
	return n;
}
