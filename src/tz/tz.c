/*
 * tz.c - zone registry, loading, and the lookups of tz.h.
 *
 * Everything reduces to two primitives on whole seconds, tz__offset_sec
 * and tz__next_sec (see tz_int.h for the representation): a binary search
 * in the file's table before rule_from, the footer rule's per-year cache
 * after it.  tz_from_local scans only the instants that can carry a given
 * wall-clock time, [local - max_off, local - min_off], which is an hour or
 * two wide for real zones, so it costs one or two of those primitives.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "tz/tz_int.h"

#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
#define TZ_NAME_MAX 255
#define TZ_PATH_MAX 4096

/* The built-in UTC zone: no table, no rule, no file. */
static hora_tz utc_zone = {
	.name = "UTC",
	.rule_from = INT64_MIN,
};

/* Loaded zones, sorted by name for binary search; owns the zones. */
static struct {
	hora_tz **v;
	size_t n;
	size_t cap;
} registry;

/* ---- construction ----------------------------------------------------- */

hora_tz *tz__alloc(uint32_t ntrans, uint16_t ntypes, const char *name)
{
	/* One block: struct, int64 times, int32 offsets, uint8 types, name;
	 * in that order each part is aligned for its type. */
	size_t nlen = strlen(name);
	size_t size = sizeof(hora_tz) + (size_t)ntrans * sizeof(int64_t) +
		      (size_t)ntypes * sizeof(int32_t) + ntrans + nlen + 1;
	hora_tz *z = hora_malloc(size);
	char *p;

	if (z == NULL)
		return NULL;
	memset(z, 0, sizeof *z);
	p = (char *)(z + 1);
	z->trans = (int64_t *)(void *)p;
	p += (size_t)ntrans * sizeof(int64_t);
	z->offs = (int32_t *)(void *)p;
	p += (size_t)ntypes * sizeof(int32_t);
	z->types = (uint8_t *)p;
	p += ntrans;
	memcpy(p, name, nlen + 1);
	z->name = p;
	z->ntypes = ntypes;
	z->rule_from = INT64_MIN;
	return z;
}

void tz__finish(hora_tz *z)
{
	int32_t lo = z->off0;
	int32_t hi = z->off0;

	for (int i = 0; i < TZ__YEAR_SLOTS; i++) {
		z->years[i].lo = INT64_MAX;
		z->years[i].hi = INT64_MIN;
		z->years[i].n = 0;
	}
	for (uint32_t i = 0; i < z->ntrans; i++) {
		int32_t o = z->offs[z->types[i]];
		lo = o < lo ? o : lo;
		hi = o > hi ? o : hi;
	}
	if (z->has_rule) {
		if (z->rule_from == INT64_MIN)
			lo = hi = z->rule.std_off; /* off0 never applies */
		lo = z->rule.std_off < lo ? z->rule.std_off : lo;
		hi = z->rule.std_off > hi ? z->rule.std_off : hi;
		if (z->rule.has_dst) {
			lo = z->rule.dst_off < lo ? z->rule.dst_off : lo;
			hi = z->rule.dst_off > hi ? z->rule.dst_off : hi;
		}
	}
	z->min_off = lo;
	z->max_off = hi;
}

void tz__free(hora_tz *z)
{
	HORA_ASSERT(z != &utc_zone);
	hora_free(z);
}

const char *tz__quote(const char *s, size_t len, char buf[TZ__QUOTE_MAX])
{
	size_t n = len < 64 ? len : 64;
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		buf[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	if (n < len) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

bool tz__name_valid(const char *name)
{
	size_t len = strnlen(name, TZ_NAME_MAX + 1);
	size_t comp = 0; /* length of the current component */

	if (len == 0 || len > TZ_NAME_MAX || name[0] == '/')
		return false;
	if (strstr(name, "..") != NULL)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char ch = name[i];
		if (ch == '/' || ch == '\0') {
			/* No "a//b", "a/", or "./" components. */
			if (comp == 0 || (comp == 1 && name[i - 1] == '.'))
				return false;
			comp = 0;
			continue;
		}
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '+' ||
		      ch == '-' || ch == '.'))
			return false;
		comp++;
	}
	return true;
}

/* ---- the two primitives ----------------------------------------------- */

/* Index of the first transition after s (all before it are <= s). */
static uint32_t upper_bound(const int64_t *a, uint32_t n, int64_t s)
{
	uint32_t lo = 0;
	uint32_t hi = n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (a[mid] <= s)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int32_t tz__offset_sec(const hora_tz *tz, int64_t s)
{
	uint32_t i;

	if (tz->has_rule && s >= tz->rule_from)
		return tz__rule_offset(&tz->rule, ((hora_tz *)tz)->years, s);
	i = upper_bound(tz->trans, tz->ntrans, s);
	return i ? tz->offs[tz->types[i - 1]] : tz->off0;
}

int64_t tz__next_sec(const hora_tz *tz, int64_t s)
{
	uint32_t i;

	if (tz->has_rule && s >= tz->rule_from)
		return tz__rule_next(&tz->rule, ((hora_tz *)tz)->years, s);
	/* The table holds every change before the rule takes over (one at
	 * rule_from included), so it answers first. */
	i = upper_bound(tz->trans, tz->ntrans, s);
	if (i < tz->ntrans)
		return tz->trans[i];
	if (tz->has_rule)
		return tz__rule_next(&tz->rule, ((hora_tz *)tz)->years,
				     tz->rule_from);
	return TZ__NEVER;
}

/* ---- public lookups --------------------------------------------------- */

static int64_t to_sec(hora_time t)
{
	return civil_floor_div(t, HORA_USEC_PER_SEC);
}

/* s seconds + usec microseconds as hora_time, saturated to the int64
 * range (never HORA_TIME_NONE). */
static hora_time to_usec(int64_t s, int64_t usec)
{
	int64_t t;

	if (__builtin_mul_overflow(s, HORA_USEC_PER_SEC, &t) ||
	    __builtin_add_overflow(t, usec, &t))
		return s < 0 ? INT64_MIN + 1 : INT64_MAX;
	return t == INT64_MIN ? INT64_MIN + 1 : t;
}

const hora_tz *tz_utc(void)
{
	return &utc_zone;
}

const char *tz_name(const hora_tz *tz)
{
	return tz->name;
}

int32_t tz_offset_at(const hora_tz *tz, hora_time t)
{
	return tz__offset_sec(tz, to_sec(t));
}

hora_time tz_to_local(const hora_tz *tz, hora_time t)
{
	hora_time r;

	if (__builtin_add_overflow(t, (int64_t)tz_offset_at(tz, t) *
					      HORA_USEC_PER_SEC,
				   &r))
		return t < 0 ? INT64_MIN + 1 : INT64_MAX;
	return r;
}

hora_time tz_next_transition(const hora_tz *tz, hora_time t)
{
	int64_t s = tz__next_sec(tz, to_sec(t));

	if (s == TZ__NEVER || s > INT64_MAX / HORA_USEC_PER_SEC)
		return HORA_TIME_NONE;
	return s * HORA_USEC_PER_SEC;
}

void tz_from_local(const hora_tz *tz, hora_time local, tz_local_result *out)
{
	int64_t ls = to_sec(local);
	/* (not local - ls * USEC: that overflows near INT64_MIN) */
	int64_t frac = local % HORA_USEC_PER_SEC;
	/* Instant x (whole seconds) carries wall time ls iff the segment
	 * containing x has offset o with x + o == ls, so x lies in: */
	int64_t lo = ls - tz->max_off;
	int64_t hi = ls - tz->min_off;
	int64_t cur = lo;
	int32_t off = tz__offset_sec(tz, lo);
	int64_t first = TZ__NEVER;
	int64_t last = TZ__NEVER;
	int64_t gap = TZ__NEVER;

	if (frac < 0)
		frac += HORA_USEC_PER_SEC;

	/* Walk the segments [cur, next) that meet [lo, hi]; each holds at
	 * most one solution. */
	for (;;) {
		int64_t next = tz__next_sec(tz, cur);
		int64_t x = ls - off;
		int32_t noff;

		if (x >= cur && x < next) {
			if (first == TZ__NEVER)
				first = x;
			last = x;
		}
		if (next > hi)
			break;
		noff = tz__offset_sec(tz, next);
		/* The first segment whose wall clock starts past ls: with
		 * no solution, its start is the first instant after the
		 * gap (everything earlier shows an earlier wall time). */
		if (gap == TZ__NEVER && next + noff > ls)
			gap = next;
		cur = next;
		off = noff;
	}

	if (first != TZ__NEVER) {
		out->kind = first == last ? TZ_LOCAL_UNIQUE : TZ_LOCAL_FOLD;
		out->first = to_usec(first, frac);
		out->second = to_usec(last, frac);
	} else if (gap != TZ__NEVER) {
		out->kind = TZ_LOCAL_GAP;
		out->first = out->second = to_usec(gap, 0);
	} else {
		/* Unreachable while offsets stay in [min_off, max_off]
		 * (the first segment starts at or before ls on the wall
		 * clock); answer something sane rather than abort. */
		out->kind = TZ_LOCAL_UNIQUE;
		out->first = out->second = to_usec(ls - off, frac);
	}
}

/* ---- registry and files ----------------------------------------------- */

/* Position of `name` in the registry, or where it would go. */
static size_t registry_find(const char *name, bool *found)
{
	size_t lo = 0;
	size_t hi = registry.n;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(registry.v[mid]->name, name);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Read a whole zone file into a new buffer (caller frees).  A missing
 * file, a directory ("America") or anything not a regular file is an
 * unknown zone. */
static int read_zone_file(const char *path, const char *name,
			  const char *field, uint8_t **buf, size_t *len,
			  hora_error *err)
{
	struct stat st;
	uint8_t *b;
	size_t n = 0;
	int fd;
	int e;

	*buf = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		goto open_failed;
	}
	if (fstat(fd, &st) != 0) {
		e = errno;
		close(fd);
		goto open_failed;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return hora_error_set(err, -HORA_ENOENT, field,
				      "unknown time zone '%s'", name);
	}
	if (st.st_size > (off_t)TZ__FILE_MAX) {
		close(fd);
		return hora_error_set(err, -HORA_EINVAL, field,
				      "time zone '%s' is not a valid TZif "
				      "file: file too large",
				      name);
	}
	b = hora_malloc((size_t)st.st_size);
	if (b == NULL) {
		close(fd);
		return hora_error_set(err, -HORA_ENOMEM, field,
				      "out of memory loading time zone '%s'",
				      name);
	}
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, b + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = errno;
			close(fd);
			hora_free(b);
			return hora_error_set(err, -HORA_EIO, field,
					      "cannot read time zone '%s' "
					      "(%s): %s",
					      name, path, strerror(e));
		}
		if (r == 0)
			break; /* shrank under us: parse what is there */
		n += (size_t)r;
	}
	close(fd);
	*buf = b;
	*len = n;
	return 0;

open_failed:
	if (e == ENOENT || e == ENOTDIR || e == ENAMETOOLONG || e == ELOOP)
		return hora_error_set(err, -HORA_ENOENT, field,
				      "unknown time zone '%s'", name);
	return hora_error_set(err, -HORA_EIO, field,
			      "cannot open time zone '%s' (%s): %s", name,
			      path, strerror(e));
}

int tz_load(const char *name, const hora_tz **out, const char *field,
	    hora_error *err)
{
	char path[TZ_PATH_MAX];
	char q[TZ__QUOTE_MAX];
	const char *dir;
	uint8_t *buf;
	size_t len = 0;
	size_t pos;
	bool found;
	hora_tz *z;
	int n;
	int rv;

	*out = NULL;
	if (name == NULL)
		return hora_error_set(err, -HORA_EINVAL, field,
				      "missing time zone name");
	if (!tz__name_valid(name))
		return hora_error_set(err, -HORA_EINVAL, field,
				      "'%s' is not a valid time zone name",
				      tz__quote(name, strlen(name), q));
	if (strcmp(name, "UTC") == 0) {
		*out = &utc_zone;
		return 0;
	}
	pos = registry_find(name, &found);
	if (found) {
		*out = registry.v[pos];
		return 0;
	}

	/* Make room first, so a failure after parsing has nothing to undo
	 * but the zone itself. */
	if (registry.n == registry.cap) {
		size_t cap = registry.cap ? registry.cap * 2 : 16;
		hora_tz **v = hora_realloc(registry.v, cap * sizeof *v);
		if (v == NULL)
			return hora_error_set(err, -HORA_ENOMEM, field,
					      "out of memory loading time "
					      "zone '%s'",
					      name);
		registry.v = v;
		registry.cap = cap;
	}

	dir = getenv("HORA_ZONEINFO");
	if (dir == NULL || dir[0] == '\0')
		dir = TZ_DEFAULT_DIR;
	n = snprintf(path, sizeof path, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof path)
		return hora_error_set(err, -HORA_EINVAL, field,
				      "zoneinfo path too long for time zone "
				      "'%s'",
				      name);

	rv = read_zone_file(path, name, field, &buf, &len, err);
	if (rv != 0)
		return rv;
	rv = tz__parse_field(buf, len, name, field, &z, err);
	hora_free(buf);
	if (rv != 0)
		return rv;

	memmove(registry.v + pos + 1, registry.v + pos,
		(registry.n - pos) * sizeof *registry.v);
	registry.v[pos] = z;
	registry.n++;
	*out = z;
	return 0;
}

void tz_registry_clear(void)
{
	for (size_t i = 0; i < registry.n; i++)
		tz__free(registry.v[i]);
	hora_free(registry.v);
	registry.v = NULL;
	registry.n = 0;
	registry.cap = 0;
}

size_t tz_registry_count(void)
{
	return registry.n;
}
