#include "cron/cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/assert.h"

/* ---- parsing ---------------------------------------------------------- */

typedef enum {
	F_SECOND,
	F_MINUTE,
	F_HOUR,
	F_DOM,
	F_MONTH,
	F_DOW,
} field_id;

static const struct field_info {
	const char *name;
	int min;
	int max; /* largest value accepted as written (7 for day-of-week) */
} fields[] = {
	[F_SECOND] = {"second", 0, 59},
	[F_MINUTE] = {"minute", 0, 59},
	[F_HOUR] = {"hour", 0, 23},
	[F_DOM] = {"day-of-month", 1, 31},
	[F_MONTH] = {"month", 1, 12},
	[F_DOW] = {"day-of-week", 0, 7},
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR",
					  "MAY", "JUN", "JUL", "AUG",
					  "SEP", "OCT", "NOV", "DEC"};
static const char *const dow_names[] = {"SUN", "MON", "TUE", "WED",
					"THU", "FRI", "SAT"};

static const struct {
	const char *name;
	const char *expr;
} macros[] = {
	{"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
	{"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
	{"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
	{"@hourly", "0 * * * *"},
};

/* Parsing state for one field: the text of the field (for messages). */
typedef struct field_ctx {
	field_id id;
	const char *text; /* the whole field, NUL-terminated */
	const char *api_field;
	hora_error *err;
} field_ctx;

__attribute__((format(printf, 2, 3))) static int
field_error(const field_ctx *f, const char *fmt, ...)
{
	char why[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	return hora_error_set(f->err, -HORA_EINVAL, f->api_field,
			      "%s field: %s", fields[f->id].name, why);
}

/*
 * Read a value (number or name) at *p, advancing it.  `named_sunday` is
 * set when the value was written as the name SUN (so "FRI-SUN" can end
 * at 7).  Returns 0, or an error naming the token.
 */
static int parse_value(const field_ctx *f, const char **p, int *out,
		       bool *named_sunday)
{
	const char *s = *p;
	char tok[16];
	size_t n = 0;

	if (named_sunday)
		*named_sunday = false;
	if (isdigit((unsigned char)*s)) {
		long v = 0;
		while (isdigit((unsigned char)*s)) {
			/* saturate: anything this large is out of range */
			v = v < 100000 ? v * 10 + (*s - '0') : 999999;
			s++;
		}
		*out = (int)v;
		*p = s;
		return 0;
	}
	while (isalpha((unsigned char)s[n]) && n < sizeof tok - 1) {
		tok[n] = s[n];
		n++;
	}
	tok[n] = '\0';
	if (n == 3 && (f->id == F_MONTH || f->id == F_DOW)) {
		const char *const *names =
			f->id == F_MONTH ? month_names : dow_names;
		int count = f->id == F_MONTH ? 12 : 7;
		for (int i = 0; i < count; i++) {
			if (strcasecmp(tok, names[i]) == 0) {
				*out = f->id == F_MONTH ? i + 1 : i;
				if (f->id == F_DOW && i == 0 && named_sunday)
					*named_sunday = true;
				*p = s + 3;
				return 0;
			}
		}
		return field_error(f, "unknown name '%s' in '%s'", tok,
				   f->text);
	}
	if (n > 0)
		return field_error(f, "unexpected '%s' in '%s'", tok, f->text);
	if (*s == '\0' || *s == ',')
		return field_error(f, "missing value in '%s'%s", f->text, "");
	tok[0] = *s;
	tok[1] = '\0';
	return field_error(f, "unexpected '%s' in '%s'", tok, f->text);
}

static int check_range(const field_ctx *f, int v)
{
	const struct field_info *fi = &fields[f->id];
	if (v < fi->min || v > fi->max) {
		char val[16], rule[32];
		snprintf(val, sizeof val, "%d", v);
		snprintf(rule, sizeof rule, "%d-%d", fi->min, fi->max);
		return field_error(f, "%s is out of range %s", val, rule);
	}
	return 0;
}

/* Set bits lo..hi step `step` in the field's bit set. */
static void set_bits(cron_expr *e, field_id id, int lo, int hi, int step)
{
	for (int v = lo; v <= hi; v += step) {
		switch (id) {
		case F_SECOND:
			e->seconds |= UINT64_C(1) << v;
			break;
		case F_MINUTE:
			e->minutes |= UINT64_C(1) << v;
			break;
		case F_HOUR:
			e->hours |= UINT32_C(1) << v;
			break;
		case F_DOM:
			e->dom |= UINT32_C(1) << v;
			break;
		case F_MONTH:
			e->months = (uint16_t)(e->months | (1u << v));
			break;
		case F_DOW:
			e->dow = (uint8_t)(e->dow | (1u << (v % 7)));
			break;
		}
	}
}

/* Day-of-month specials: L, L-n, LW, nW.  Returns 1 if the item was one,
 * 0 if not, negative on error. */
static int parse_dom_special(const field_ctx *f, const char *item,
			     cron_expr *e)
{
	size_t len = strlen(item);

	if (strcasecmp(item, "L") == 0) {
		e->dom_last |= 1;
		return 1;
	}
	if (strcasecmp(item, "LW") == 0 || strcasecmp(item, "WL") == 0) {
		e->flags |= CRON_LAST_WEEKDAY;
		return 1;
	}
	if ((item[0] == 'L' || item[0] == 'l') && item[1] == '-') {
		const char *p = item + 2;
		int n = 0;
		if (!isdigit((unsigned char)*p))
			return field_error(f, "'%s' needs a day count after "
					      "L-, e.g. L-3%s",
					   item, "");
		while (isdigit((unsigned char)*p) && n < 100)
			n = n * 10 + (*p++ - '0');
		if (*p != '\0')
			return field_error(f, "unexpected text in '%s'%s",
					   item, "");
		if (n > 30)
			return field_error(f, "'%s': at most L-30%s", item,
					   "");
		e->dom_last |= UINT32_C(1) << n;
		return 1;
	}
	if (len >= 2 && (item[len - 1] == 'W' || item[len - 1] == 'w') &&
	    isdigit((unsigned char)item[0])) {
		int n = 0;
		for (size_t i = 0; i + 1 < len; i++) {
			if (!isdigit((unsigned char)item[i]))
				return field_error(f, "unexpected text in "
						      "'%s'%s",
						   item, "");
			if (n < 1000)
				n = n * 10 + (item[i] - '0');
		}
		if (n < 1 || n > 31) {
			char v[16];
			snprintf(v, sizeof v, "%d", n);
			return field_error(f, "%sW: day %s is out of range 1-31",
					   v, v);
		}
		e->dom_nearest |= UINT32_C(1) << n;
		return 1;
	}
	if (strcasecmp(item, "W") == 0)
		return field_error(f, "'W' needs a day before it, e.g. 15W%s%s",
				   "", "");
	return 0;
}

/* Day-of-week specials: nL, n#k.  Same return convention. */
static int parse_dow_special(const field_ctx *f, const char *item,
			     cron_expr *e)
{
	const char *p = item;
	int w;
	int rv;

	if (strcasecmp(item, "L") == 0)
		return field_error(f, "'L' needs a weekday before it, e.g. "
				      "5L for the last Friday%s%s",
				   "", "");
	if (strchr(item, '#') == NULL) {
		size_t len = strlen(item);
		if (len < 2 || (item[len - 1] != 'L' && item[len - 1] != 'l'))
			return 0;
		/* "5L", "FRIL" */
		char head[16];
		if (len - 1 >= sizeof head)
			return field_error(f, "unexpected '%s'%s", item, "");
		memcpy(head, item, len - 1);
		head[len - 1] = '\0';
		p = head;
		if ((rv = parse_value(f, &p, &w, NULL)) != 0)
			return rv;
		if (*p != '\0')
			return field_error(f, "unexpected text in '%s'%s",
					   item, "");
		if ((rv = check_range(f, w)) != 0)
			return rv;
		e->dow_last = (uint8_t)(e->dow_last | (1u << (w % 7)));
		return 1;
	}
	if ((rv = parse_value(f, &p, &w, NULL)) != 0)
		return rv;
	if (*p != '#')
		return field_error(f, "unexpected text in '%s'%s", item, "");
	if ((rv = check_range(f, w)) != 0)
		return rv;
	p++;
	if (!isdigit((unsigned char)p[0]) || p[1] != '\0' || p[0] < '1' ||
	    p[0] > '5')
		return field_error(f, "'%s': the occurrence after '#' must be "
				      "1-5%s",
				   item, "");
	e->dow_nth |= UINT64_C(1) << ((w % 7) * 5 + (p[0] - '1'));
	return 1;
}

/* One list item: '*' or '?', value, range, each optionally /step, or a
 * day special. */
static int parse_item(const field_ctx *f, const char *item, cron_expr *e)
{
	const struct field_info *fi = &fields[f->id];
	const char *p = item;
	int lo, hi, step = 1;
	bool star = false, range = false, named_sunday = false;
	int rv;

	if (f->id == F_DOM && (rv = parse_dom_special(f, item, e)) != 0)
		return rv < 0 ? rv : 0;
	if (f->id == F_DOW && (rv = parse_dow_special(f, item, e)) != 0)
		return rv < 0 ? rv : 0;

	if (*p == '*' || *p == '?') {
		star = true;
		lo = fi->min;
		hi = f->id == F_DOW ? 6 : fi->max;
		p++;
	} else {
		if ((rv = parse_value(f, &p, &lo, NULL)) != 0)
			return rv;
		if ((rv = check_range(f, lo)) != 0)
			return rv;
		hi = lo;
		if (*p == '-') {
			p++;
			range = true;
			if ((rv = parse_value(f, &p, &hi, &named_sunday)) != 0)
				return rv;
			if ((rv = check_range(f, hi)) != 0)
				return rv;
			/* "FRI-SUN": a range may end on Sunday written 7 */
			if (f->id == F_DOW && named_sunday && lo > 0)
				hi = 7;
			if (lo > hi) {
				char r[64];
				snprintf(r, sizeof r, "%d-%d", lo, hi);
				return field_error(f, "range %s starts after "
						      "it ends (in '%s')",
						   r, f->text);
			}
		}
	}
	if (*p == '/') {
		long s = 0;
		p++;
		if (!isdigit((unsigned char)*p))
			return field_error(f, "'%s' needs a number after "
					      "'/'%s",
					   item, "");
		while (isdigit((unsigned char)*p)) {
			if (s < 100000)
				s = s * 10 + (*p - '0');
			p++;
		}
		if (s == 0)
			return field_error(f, "step 0 in '%s' is not allowed%s",
					   item, "");
		int span = (f->id == F_DOW ? 7 : fi->max - fi->min + 1);
		if (s > span) {
			char v[32], r[32];
			snprintf(v, sizeof v, "%ld", s);
			snprintf(r, sizeof r, "%d-%d", fi->min,
				 f->id == F_DOW ? 6 : fi->max);
			return field_error(f, "step %s is larger than the "
					      "range %s",
					   v, r);
		}
		step = (int)s;
		/* "a/n" means from a to the end of the range */
		if (!star && !range)
			hi = f->id == F_DOW ? 6 : fi->max;
	}
	if (*p != '\0') {
		char c[2] = {*p, '\0'};
		return field_error(f, "unexpected '%s' in '%s'", c, f->text);
	}
	set_bits(e, f->id, lo, hi, step);
	return 0;
}

static int parse_field(field_ctx *f, cron_expr *e)
{
	const char *s = f->text;
	char item[64];

	if (*s == '*' || *s == '?') {
		if (f->id == F_DOM)
			e->flags |= CRON_DOM_STAR;
		if (f->id == F_DOW)
			e->flags |= CRON_DOW_STAR;
	}
	for (;;) {
		const char *comma = strchr(s, ',');
		size_t n = comma ? (size_t)(comma - s) : strlen(s);
		int rv;
		if (n == 0)
			return field_error(f, "empty list item in '%s'%s",
					   f->text, "");
		if (n >= sizeof item)
			return field_error(f, "list item too long in '%.40s'%s",
					   f->text, "");
		memcpy(item, s, n);
		item[n] = '\0';
		if ((rv = parse_item(f, item, e)) != 0)
			return rv;
		if (comma == NULL)
			break;
		s = comma + 1;
	}
	return 0;
}

bool cron_is_macro(const char *text)
{
	while (isspace((unsigned char)*text))
		text++;
	for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++) {
		size_t l = strlen(macros[i].name);
		if (strncasecmp(text, macros[i].name, l) == 0) {
			const char *rest = text + l;
			while (isspace((unsigned char)*rest))
				rest++;
			if (*rest == '\0')
				return true;
		}
	}
	return false;
}

int cron_parse(const char *text, cron_expr *out, const char *field,
	       hora_error *err)
{
	char buf[512];
	char *tok[8];
	int ntok = 0;
	char *p;
	cron_expr e;
	int rv;

	memset(&e, 0, sizeof e);
	while (isspace((unsigned char)*text))
		text++;
	if (*text == '@') {
		size_t l = strcspn(text, " \t\r\n");
		const char *rest = text + l;
		while (isspace((unsigned char)*rest))
			rest++;
		for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++) {
			if (strlen(macros[i].name) == l &&
			    strncasecmp(text, macros[i].name, l) == 0) {
				if (*rest != '\0')
					return hora_error_set(
						err, -HORA_EINVAL, field,
						"%s takes no argument",
						macros[i].name);
				return cron_parse(macros[i].expr, out, field,
						  err);
			}
		}
		return hora_error_set(err, -HORA_EINVAL, field,
				      "unknown macro '%.*s' (use @yearly, "
				      "@annually, @monthly, @weekly, @daily, "
				      "@midnight, @hourly, @every, @at or "
				      "@after)",
				      (int)(l > 40 ? 40 : l), text);
	}
	if (strlen(text) >= sizeof buf)
		return hora_error_set(err, -HORA_EINVAL, field,
				      "cron expression is too long (at most "
				      "%zu characters)",
				      sizeof buf - 1);
	strcpy(buf, text);
	p = buf;
	while (*p != '\0') {
		while (isspace((unsigned char)*p))
			*p++ = '\0';
		if (*p == '\0')
			break;
		if (ntok < 8)
			tok[ntok] = p;
		ntok++;
		while (*p != '\0' && !isspace((unsigned char)*p))
			p++;
	}
	if (ntok != 5 && ntok != 6)
		return hora_error_set(err, -HORA_EINVAL, field,
				      "expected 5 fields (minute hour "
				      "day-of-month month day-of-week) or 6 "
				      "(seconds first), got %d",
				      ntok);

	int first = ntok == 6 ? F_SECOND : F_MINUTE;
	if (ntok == 5)
		e.seconds = 1; /* second 0 */
	for (int i = 0; i < ntok; i++) {
		field_ctx f = {
			.id = (field_id)(first + i),
			.text = tok[i],
			.api_field = field,
			.err = err,
		};
		if ((rv = parse_field(&f, &e)) != 0)
			return rv;
	}
	/* Fixed-time unless seconds, minute or hour starts with '*' or '?'. */
	{
		bool fixed = true;
		for (int i = 0; i < ntok; i++) {
			int id = first + i;
			if (id > F_HOUR)
				break;
			if (tok[i][0] == '*' || tok[i][0] == '?')
				fixed = false;
		}
		if (fixed)
			e.flags |= CRON_FIXED_TIME;
	}
	/* The day fields leave their bit sets empty when they hold only
	 * specials; a star field matches every day. */
	if (cron_next_local(&e, civil_to_time(&(hora_civil){.year = 2000,
							  .month = 1,
							  .day = 1})) ==
	    HORA_TIME_NONE)
		return hora_error_set(err, -HORA_EINVAL, field,
				      "'%s' can never fire: no month in the "
				      "month field has a day that matches "
				      "the day fields",
				      text);
	*out = e;
	return 0;
}

/* ---- next-instant search ---------------------------------------------- */

static inline int next_bit64(uint64_t set, int from)
{
	if (from >= 64)
		return -1;
	uint64_t m = set & (~UINT64_C(0) << from);
	return m ? __builtin_ctzll(m) : -1;
}

/*
 * Bit set (bit d for day d) of the days of (year, month) that match the
 * day fields, with the OR/AND rule applied.
 */
static uint32_t day_mask(const cron_expr *e, int year, int month)
{
	int ndays = civil_days_in_month(year, month);
	uint32_t all = ((UINT32_C(1) << ndays) - 1) << 1;
	int wd1 = civil_weekday(civil_days_from_date(year, month, 1));
	uint32_t dom, dow = 0;

	dom = e->dom & all;
	if (e->dom_last) {
		for (int n = 0; n <= 30; n++)
			if ((e->dom_last >> n & 1) && ndays - n >= 1)
				dom |= UINT32_C(1) << (ndays - n);
	}
	if (e->flags & CRON_LAST_WEEKDAY) {
		int d = ndays;
		int wd = (wd1 + d - 1) % 7;
		if (wd == 6)
			d -= 1;
		else if (wd == 0)
			d -= 2;
		dom |= UINT32_C(1) << d;
	}
	if (e->dom_nearest) {
		for (int d = 1; d <= 31; d++) {
			if (!(e->dom_nearest >> d & 1) || d > ndays)
				continue;
			int wd = (wd1 + d - 1) % 7;
			int t = d;
			if (wd == 6) /* Saturday: Friday, or Monday on the 1st */
				t = d > 1 ? d - 1 : d + 2;
			else if (wd == 0) /* Sunday: Monday, or Friday at the end */
				t = d < ndays ? d + 1 : d - 2;
			dom |= UINT32_C(1) << t;
		}
	}
	/* weekday w falls on days first(w), first(w)+7, ... */
	for (int w = 0; w < 7; w++) {
		bool plain = e->dow >> w & 1;
		bool last = e->dow_last >> w & 1;
		unsigned nth = (unsigned)(e->dow_nth >> (w * 5)) & 0x1f;
		if (!plain && !last && !nth)
			continue;
		int first = 1 + (w - wd1 + 7) % 7;
		int k = 0;
		int d;
		for (d = first; d <= ndays; d += 7, k++) {
			if (plain || (nth >> k & 1))
				dow |= UINT32_C(1) << d;
		}
		if (last)
			dow |= UINT32_C(1) << (d - 7);
	}
	if (e->flags & (CRON_DOM_STAR | CRON_DOW_STAR))
		return dom & dow;
	return dom | dow;
}

bool cron_day_matches(const cron_expr *e, int year, int month, int day)
{
	if (!(e->months >> month & 1))
		return false;
	return day_mask(e, year, month) >> day & 1;
}

hora_time cron_next_local(const cron_expr *e, hora_time local)
{
	hora_civil c;
	hora_time start = civil_floor_div(local, HORA_USEC_PER_SEC) + 1;
	int year_limit;

	if (local >= HORA_TIME_MAX)
		return HORA_TIME_NONE;
	civil_from_time(start * HORA_USEC_PER_SEC, &c);
	/* The calendar repeats every 400 years: nothing found by then means
	 * nothing ever. */
	year_limit = c.year + 401;
	if (year_limit > 9999)
		year_limit = 9999;

	int y = c.year, mo = c.month, d = c.day, h = c.hour, mi = c.minute,
	    s = c.second;
	uint32_t mask = 0;
	int mask_y = 0, mask_mo = 0;

	for (;;) {
		if (y > year_limit)
			return HORA_TIME_NONE;
		if (!(e->months >> mo & 1)) {
			int nm = next_bit64(e->months, mo + 1);
			if (nm < 0) {
				y++;
				nm = next_bit64(e->months, 1);
			}
			mo = nm;
			d = 1;
			h = mi = s = 0;
			continue;
		}
		if (mask_y != y || mask_mo != mo) {
			mask = day_mask(e, y, mo);
			mask_y = y;
			mask_mo = mo;
		}
		int nd = next_bit64(mask, d);
		if (nd < 0) {
			if (++mo > 12) {
				mo = 1;
				y++;
			}
			d = 1;
			h = mi = s = 0;
			continue;
		}
		if (nd != d) {
			d = nd;
			h = mi = s = 0;
		}
		int nh = next_bit64(e->hours, h);
		if (nh < 0) {
			d++;
			h = mi = s = 0;
			continue;
		}
		if (nh != h) {
			h = nh;
			mi = s = 0;
		}
		int nmi = next_bit64(e->minutes, mi);
		if (nmi < 0) {
			h++;
			mi = s = 0;
			continue;
		}
		if (nmi != mi) {
			mi = nmi;
			s = 0;
		}
		int ns = next_bit64(e->seconds, s);
		if (ns < 0) {
			mi++;
			s = 0;
			continue;
		}
		s = ns;
		break;
	}
	hora_civil r = {y, mo, d, h, mi, s, 0};
	return civil_to_time(&r);
}

/* Fixed-time expressions work on the wall clock (see cron.h). */
static hora_time next_fixed_time(const cron_expr *e, const hora_tz *tz,
				 hora_time after)
{
	hora_time la = tz_to_local(tz, after);
	tz_local_result r;

	for (int guard = 0; guard < 1000; guard++) {
		hora_time l = cron_next_local(e, la);
		if (l == HORA_TIME_NONE)
			return HORA_TIME_NONE;
		tz_from_local(tz, l, &r);
		/* map: unique -> itself, fold -> first occurrence, gap -> the
		 * first instant after the gap.  It is monotone in l. */
		if (r.first > after)
			return r.first;
		if (r.kind == TZ_LOCAL_FOLD) {
			/* `after` lies in the second pass of a repeated hour:
			 * every wall time left in it already fired in the
			 * first pass.  Jump to the end of the fold. */
			hora_time t = tz_next_transition(tz, r.first);
			int32_t off_before = tz_offset_at(tz, r.first);
			HORA_ASSERT(t != HORA_TIME_NONE);
			la = t + (hora_time)off_before * HORA_USEC_PER_SEC - 1;
			if (la < l)
				la = l;
		} else {
			la = l;
		}
	}
	return HORA_TIME_NONE;
}

/* Other expressions follow real time: search each stretch of constant
 * offset in turn. */
static hora_time next_real_time(const cron_expr *e, const hora_tz *tz,
				hora_time after)
{
	hora_time t = after;
	hora_time off = (hora_time)tz_offset_at(tz, after) * HORA_USEC_PER_SEC;
	hora_time seg_end = tz_next_transition(tz, after);

	for (;;) {
		hora_time l = cron_next_local(e, t + off);
		if (l == HORA_TIME_NONE)
			return HORA_TIME_NONE;
		hora_time u = l - off;
		if (seg_end == HORA_TIME_NONE || u < seg_end)
			return u;
		t = seg_end - 1;
		off = (hora_time)tz_offset_at(tz, seg_end) * HORA_USEC_PER_SEC;
		seg_end = tz_next_transition(tz, seg_end);
	}
}

hora_time cron_next(const cron_expr *e, const hora_tz *tz, hora_time after)
{
	if (after >= HORA_TIME_MAX)
		return HORA_TIME_NONE;
	if (tz == NULL || tz == tz_utc())
		return cron_next_local(e, after);
	if (e->flags & CRON_FIXED_TIME)
		return next_fixed_time(e, tz, after);
	return next_real_time(e, tz, after);
}
