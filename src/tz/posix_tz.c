/*
 * posix_tz.c - POSIX TZ strings: the footer of a TZif v2+ file (RFC 8536
 * section 3.3), which governs every instant after the file's last
 * transition, so conversions stay exact in 2400 or 9999.
 *
 * Semantics.  Each year Y has a DST start (a date and a local standard
 * time) and a DST end (a date and a local daylight time).  If the start
 * comes first, DST is in effect in [start_Y, end_Y); otherwise (southern
 * hemisphere) in [start_Y, end_Y+1).  The zone is in DST in the union of
 * these periods.  That is the usual reading for ordinary rules, and it
 * stays right where glibc's "compute the rule for the UTC year of t"
 * does not: with the RFC 8536 section 3.3.1 extension (rule hours
 * -167..167) an event can land days into the neighbouring year, and the
 * RFC's "DST all year" form (0/0,J365/25) makes one year's period end
 * exactly where the next one starts, so their union is the whole year.
 */
#include <string.h>

#include "core/civil.h"
#include "tz/tz_int.h"

/* ---- parsing ---------------------------------------------------------- */

typedef struct cursor {
	const char *p;
	const char *end;
} cursor;

static int peek(const cursor *c)
{
	return c->p < c->end ? (unsigned char)*c->p : -1;
}

static bool is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

static bool is_alpha(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

/* std/dst designation: three or more letters, or <...> of letters,
 * digits, '+' and '-' (POSIX; RFC 8536 section 3.3). */
static bool parse_abbr(cursor *c)
{
	size_t n = 0;

	if (peek(c) == '<') {
		c->p++;
		while (is_alpha(peek(c)) || is_digit(peek(c)) ||
		       peek(c) == '+' || peek(c) == '-') {
			c->p++;
			n++;
		}
		if (peek(c) != '>')
			return false;
		c->p++;
	} else {
		while (is_alpha(peek(c))) {
			c->p++;
			n++;
		}
	}
	return n >= 3;
}

/* 1..maxdig decimal digits, value <= max. */
static bool parse_uint(cursor *c, int maxdig, int max, int *out)
{
	int v = 0;
	int n = 0;

	while (n < maxdig && is_digit(peek(c))) {
		v = v * 10 + (peek(c) - '0');
		c->p++;
		n++;
	}
	if (n == 0 || is_digit(peek(c)) || v > max)
		return false;
	*out = v;
	return true;
}

/* [+-]h[h[h]][:mm[:ss]], hours <= max_hours; seconds, signed. */
static bool parse_hms(cursor *c, int max_hours, int32_t *out)
{
	int sign = 1;
	int h;
	int m = 0;
	int s = 0;

	if (peek(c) == '+' || peek(c) == '-') {
		sign = peek(c) == '-' ? -1 : 1;
		c->p++;
	}
	if (!parse_uint(c, max_hours > 99 ? 3 : 2, max_hours, &h))
		return false;
	if (peek(c) == ':') {
		c->p++;
		if (!parse_uint(c, 2, 59, &m))
			return false;
		if (peek(c) == ':') {
			c->p++;
			if (!parse_uint(c, 2, 59, &s))
				return false;
		}
	}
	*out = (int32_t)(sign * (h * 3600 + m * 60 + s));
	return true;
}

/* Jn | n | Mm.w.d, then an optional /time (default 02:00). */
static bool parse_date(cursor *c, tz__rule_date *d)
{
	int a;
	int b;
	int e;

	memset(d, 0, sizeof *d);
	if (peek(c) == 'J') {
		c->p++;
		if (!parse_uint(c, 3, 365, &a) || a < 1)
			return false;
		d->kind = TZ__DATE_JULIAN;
		d->day = (int16_t)a;
	} else if (is_digit(peek(c))) {
		if (!parse_uint(c, 3, 365, &a))
			return false;
		d->kind = TZ__DATE_ZERO;
		d->day = (int16_t)a;
	} else if (peek(c) == 'M') {
		c->p++;
		if (!parse_uint(c, 2, 12, &a) || a < 1 || peek(c) != '.')
			return false;
		c->p++;
		if (!parse_uint(c, 1, 5, &b) || b < 1 || peek(c) != '.')
			return false;
		c->p++;
		if (!parse_uint(c, 1, 6, &e))
			return false;
		d->kind = TZ__DATE_MWD;
		d->month = (uint8_t)a;
		d->week = (uint8_t)b;
		d->wday = (uint8_t)e;
	} else {
		return false;
	}
	d->time = 2 * 3600;
	if (peek(c) == '/') {
		c->p++;
		/* RFC 8536 section 3.3.1: -167..167 hours. */
		if (!parse_hms(c, 167, &d->time))
			return false;
	}
	return true;
}

static bool rule_changes(const tz__rule *r, int *entry_dst);

int tz__rule_parse(const char *s, size_t len, tz__rule *out,
		   const char **why)
{
	cursor c = {s, s + len};
	tz__rule r;
	int32_t v;
	int entry_dst = 0; /* set by rule_changes when it returns false */

	memset(&r, 0, sizeof r);
	if (len == 0) {
		*why = "empty TZ string";
		return -HORA_EINVAL;
	}
	if (len > TZ__RULE_MAX) {
		*why = "TZ string too long";
		return -HORA_EINVAL;
	}
	if (!parse_abbr(&c)) {
		*why = "bad standard time designation";
		return -HORA_EINVAL;
	}
	/* POSIX offsets count west and allow 0..24 hours. */
	if (!parse_hms(&c, 24, &v)) {
		*why = "bad standard time offset";
		return -HORA_EINVAL;
	}
	r.std_off = -v;
	r.dst_off = r.std_off;
	if (peek(&c) != -1) {
		if (!parse_abbr(&c)) {
			*why = "bad daylight time designation";
			return -HORA_EINVAL;
		}
		r.has_dst = true;
		r.dst_off = r.std_off + 3600;
		if (peek(&c) != ',' && peek(&c) != -1) {
			if (!parse_hms(&c, 24, &v)) {
				*why = "bad daylight time offset";
				return -HORA_EINVAL;
			}
			r.dst_off = -v;
		}
		if (peek(&c) == ',') {
			c.p++;
			if (!parse_date(&c, &r.start)) {
				*why = "bad DST start rule";
				return -HORA_EINVAL;
			}
			if (peek(&c) != ',') {
				*why = "missing DST end rule";
				return -HORA_EINVAL;
			}
			c.p++;
			if (!parse_date(&c, &r.end)) {
				*why = "bad DST end rule";
				return -HORA_EINVAL;
			}
		} else {
			/* No rule: the US one, as glibc and posixrules. */
			r.start = (tz__rule_date){TZ__DATE_MWD, 3, 2, 0, 0,
						  7200};
			r.end = (tz__rule_date){TZ__DATE_MWD, 11, 1, 0, 0,
						7200};
		}
	}
	if (peek(&c) != -1) {
		*why = "unexpected characters at the end";
		return -HORA_EINVAL;
	}
	/* Normalise: a rule that never moves the offset is a fixed zone,
	 * so lookups never scan for changes that cannot come. */
	if (r.has_dst && r.dst_off == r.std_off)
		r.has_dst = false;
	if (r.has_dst && !rule_changes(&r, &entry_dst)) {
		if (entry_dst)
			r.std_off = r.dst_off;
		r.dst_off = r.std_off;
		r.has_dst = false;
	}
	*out = r;
	return 0;
}

/* ---- evaluation ------------------------------------------------------- */

/* Days since the epoch of a rule date's local midnight in `year`. */
static int64_t rule_days(const tz__rule_date *d, int year)
{
	int64_t jan1 = civil_days_from_date(year, 1, 1);
	int64_t first;
	int day;
	int dim;

	switch (d->kind) {
	case TZ__DATE_JULIAN:
		/* Jn never counts February 29: day 60 is always March 1. */
		return jan1 + d->day - 1 +
		       (civil_is_leap(year) && d->day >= 60 ? 1 : 0);
	case TZ__DATE_ZERO:
		return jan1 + d->day;
	default:
		first = civil_days_from_date(year, d->month, 1);
		day = (d->wday - civil_weekday(first) + 7) % 7 +
		      (d->week - 1) * 7;
		dim = civil_days_in_month(year, d->month);
		if (day >= dim) /* week 5 means "last" */
			day -= 7;
		return first + day;
	}
}

/* Instants (seconds) of year y's DST start and end. */
static int64_t rule_start(const tz__rule *r, int y)
{
	return rule_days(&r->start, y) * HORA_SEC_PER_DAY + r->start.time -
	       r->std_off;
}

static int64_t rule_end(const tz__rule *r, int y)
{
	return rule_days(&r->end, y) * HORA_SEC_PER_DAY + r->end.time -
	       r->dst_off;
}

typedef struct span {
	int64_t a;
	int64_t b;
} span;

void tz__rule_year(const tz__rule *r, int year, tz__year *out)
{
	span sp[6];
	int n = 0;
	int m = 0;
	int64_t end_next;

	out->lo = civil_days_from_date(year, 1, 1) * HORA_SEC_PER_DAY;
	out->hi = civil_days_from_date(year + 1, 1, 1) * HORA_SEC_PER_DAY;
	out->n = 0;
	out->entry_dst = 0;
	if (!r->has_dst)
		return;

	/* DST periods of years Y-3..Y+2.  Each event lands within nine
	 * days of its own year (|time| <= 167h, |offset| < 26h), so only
	 * the periods of Y-2..Y+1 can meet [lo, hi); the margin is free. */
	end_next = rule_end(r, year - 3);
	for (int y = year - 3; y <= year + 2; y++) {
		int64_t a = rule_start(r, y);
		int64_t b = end_next;
		end_next = rule_end(r, y + 1);
		if (a > b)
			b = end_next; /* southern: ends the next year */
		if (a >= b)
			continue; /* empty (or, in a broken rule, reversed) */
		/* insertion sort by start */
		int j = n++;
		while (j > 0 && sp[j - 1].a > a) {
			sp[j] = sp[j - 1];
			j--;
		}
		sp[j] = (span){a, b};
	}
	/* Merge overlapping and touching periods: DST is in effect in
	 * their union, and a period ending where the next starts is no
	 * change. */
	for (int i = 1; i < n; i++) {
		if (sp[i].a <= sp[m].b) {
			if (sp[i].b > sp[m].b)
				sp[m].b = sp[i].b;
		} else {
			sp[++m] = sp[i];
		}
	}
	if (n > 0)
		m++;
	/* Entry state is the state at lo - 1, so a change exactly at lo
	 * is listed here and tz__rule_next finds it from the year
	 * before. */
	for (int i = 0; i < m; i++) {
		if (sp[i].a < out->lo && out->lo <= sp[i].b)
			out->entry_dst = 1;
		if (sp[i].a >= out->lo && sp[i].a < out->hi &&
		    out->n < TZ__YEAR_MAX)
			out->at[out->n++] = sp[i].a;
		if (sp[i].b >= out->lo && sp[i].b < out->hi &&
		    out->n < TZ__YEAR_MAX)
			out->at[out->n++] = sp[i].b;
	}
}

/* Whether the rule ever changes the offset; if not, *entry_dst is the
 * state it stays in.  The Gregorian calendar repeats every 400 years
 * (146097 days, a whole number of weeks), so one cycle decides. */
static bool rule_changes(const tz__rule *r, int *entry_dst)
{
	tz__year w;

	for (int y = 2000; y < 2400; y++) {
		tz__rule_year(r, y, &w);
		if (y == 2000)
			*entry_dst = w.entry_dst;
		if (w.n > 0)
			return true;
	}
	return false;
}

/* The cached year containing second s, computing it on a miss. */
static const tz__year *rule_window(const tz__rule *r, tz__year *cache,
				   int64_t s)
{
	int y;
	int m;
	int d;
	tz__year *w;

	for (int i = 0; i < TZ__YEAR_SLOTS; i++)
		if (cache[i].lo <= s && s < cache[i].hi)
			return &cache[i];
	civil_date_from_days(civil_floor_div(s, HORA_SEC_PER_DAY), &y, &m, &d);
	w = &cache[(unsigned)y % TZ__YEAR_SLOTS];
	tz__rule_year(r, y, w);
	return w;
}

int32_t tz__rule_offset(const tz__rule *r, tz__year *cache, int64_t s)
{
	const tz__year *w;
	unsigned dst;

	if (!r->has_dst)
		return r->std_off;
	w = rule_window(r, cache, s);
	dst = w->entry_dst;
	for (unsigned i = 0; i < w->n && w->at[i] <= s; i++)
		dst ^= 1u;
	return dst ? r->dst_off : r->std_off;
}

int64_t tz__rule_next(const tz__rule *r, tz__year *cache, int64_t s)
{
	const tz__year *w;
	int64_t lo = s;

	if (!r->has_dst)
		return TZ__NEVER;
	/* A normalised rule changes at least once per 400 years; real ones
	 * within the year. */
	for (int k = 0; k <= 400; k++) {
		w = rule_window(r, cache, lo);
		for (unsigned i = 0; i < w->n; i++)
			if (w->at[i] > s)
				return w->at[i];
		lo = w->hi;
	}
	return TZ__NEVER;
}

int tz__from_rule(const char *s, size_t len, const char *name,
		  hora_tz **out, hora_error *err)
{
	tz__rule r;
	const char *why = "";
	char q[TZ__QUOTE_MAX];
	hora_tz *z;
	int rv;

	*out = NULL;
	rv = tz__rule_parse(s, len, &r, &why);
	if (rv != 0)
		return hora_error_set(err, rv, NULL,
				      "'%s' is not a valid TZ string: %s",
				      tz__quote(s, len, q), why);
	z = tz__alloc(0, 1, name);
	if (z == NULL)
		return hora_error_set(err, -HORA_ENOMEM, NULL,
				      "out of memory loading time zone '%s'",
				      tz__quote(name, strlen(name), q));
	z->offs[0] = r.std_off;
	z->off0 = r.std_off;
	z->has_rule = true;
	z->rule_from = INT64_MIN;
	z->rule = r;
	tz__finish(z);
	*out = z;
	return 0;
}
