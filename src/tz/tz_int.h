/*
 * tz_int.h - the inside of the time-zone module, shared by tz.c (registry
 * and lookups), tzif.c (RFC 8536 reader), posix_tz.c (TZ string rules),
 * the unit tests and the fuzzer.  Not for other modules.
 *
 * Representation.  A zone is one allocation: the struct, then its
 * transition table, then the name.  The table keeps only transitions that
 * change the UT offset (RFC 8536 allows, and zic writes, transitions that
 * change only the abbreviation or isdst; tz.h does not report those), so
 * tz_offset_at is one binary search and tz_next_transition is the entry
 * after it.  For instants at or after `rule_from` (the last transition of
 * the file, RFC 8536 section 3.3) the POSIX TZ footer governs; its
 * transitions are computed per calendar year and cached in `years`.
 * All times inside the module are whole seconds (int64); the public
 * functions convert to and from hora_time microseconds.
 */
#ifndef HORA_TZ_TZ_INT_H
#define HORA_TZ_TZ_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "tz/tz.h"

/* Largest TZif file accepted.  Real ones are under 10 KiB (a "fat" file
 * with transitions to 2037 is about 3.5 KiB); the cap bounds every count
 * read from a hostile file. */
#define TZ__FILE_MAX (1u << 20)
/* Longest POSIX TZ string accepted (real footers are under 50 bytes). */
#define TZ__RULE_MAX 255
/* Largest |UT offset| in seconds: RFC 8536 section 3.2 says utoff SHOULD
 * be in -89999..93599; we enforce it so offset arithmetic stays small. */
#define TZ__OFF_MIN (-89999)
#define TZ__OFF_MAX 93599
/* "No transition" inside the module (seconds). */
#define TZ__NEVER INT64_MAX

/* How a rule date is written (POSIX TZ, RFC 8536 section 3.3.1). */
enum {
	TZ__DATE_JULIAN = 1, /* Jn: 1..365, February 29 never counted */
	TZ__DATE_ZERO,       /* n: 0..365, February 29 counted in leap years */
	TZ__DATE_MWD,        /* Mm.w.d: weekday d of week w (5 = last) of m */
};

/* One end of the DST period: a date and a local time on it. */
typedef struct tz__rule_date {
	uint8_t kind;   /* TZ__DATE_* */
	uint8_t month;  /* M: 1-12 */
	uint8_t week;   /* M: 1-5 */
	uint8_t wday;   /* M: 0=Sunday..6 */
	int16_t day;    /* J: 1-365, n: 0-365 */
	int32_t time;   /* seconds after local midnight; v3 allows
			   -167h..167h (RFC 8536 section 3.3.1) */
} tz__rule_date;

/* A parsed POSIX TZ string.  Offsets are seconds east of UTC (the string
 * itself counts west).  has_dst is false for fixed-offset strings and for
 * rules that, after normalisation, never change the offset (DST all year,
 * or a DST offset equal to the standard one); then std_off is the offset
 * in force. */
typedef struct tz__rule {
	int32_t std_off;
	int32_t dst_off;
	bool has_dst;
	tz__rule_date start; /* local standard time */
	tz__rule_date end;   /* local daylight time */
} tz__rule;

/* Most offset changes a rule can make inside one calendar year: the
 * bounds of at most four DST periods (those of years Y-2..Y+1, see
 * posix_tz.c), so 8; sized with room to spare. */
#define TZ__YEAR_MAX 10

/* The rule's effect on one UTC calendar year [lo, hi) (seconds): the
 * state on entry and the instants where the offset flips.  Offsets
 * alternate, so states need not be stored: after at[i] the zone is in DST
 * iff entry_dst ^ !(i & 1). */
typedef struct tz__year {
	int64_t lo;
	int64_t hi;
	uint8_t entry_dst;
	uint8_t n;
	int64_t at[TZ__YEAR_MAX];
} tz__year;

/* Cached years per zone (direct-mapped by year & 3): next-fire loops
 * cross year boundaries and come back. */
#define TZ__YEAR_SLOTS 4

struct hora_tz {
	const char *name;
	int64_t *trans;        /* offset-changing transitions, ascending */
	uint8_t *types;        /* type index per transition */
	int32_t *offs;         /* UT offset per type */
	uint32_t ntrans;
	uint16_t ntypes;
	bool has_rule;         /* footer governs from rule_from on */
	int32_t off0;          /* before the first transition (type 0) */
	int32_t min_off;       /* bounds over every offset in use, so */
	int32_t max_off;       /* tz_from_local scans a narrow window */
	int64_t rule_from;     /* last file transition, INT64_MIN if none */
	tz__rule rule;
	/* Mutable cache inside a logically const zone; the module is
	 * single-threaded (tz.h). */
	tz__year years[TZ__YEAR_SLOTS];
};

/*
 * Parse a TZif buffer (RFC 8536 versions 1-4).  `name` is copied into the
 * zone and used in messages.  On success *out is a new zone the caller
 * frees with tz__free.  Errors: -HORA_EINVAL (malformed, with the reason
 * in `err`), -HORA_ENOMEM.  Never reads outside [buf, buf + len).
 */
int tz__parse(const uint8_t *buf, size_t len, const char *name,
	      hora_tz **out, hora_error *err);

/* As tz__parse, reporting errors under `field`. */
int tz__parse_field(const uint8_t *buf, size_t len, const char *name,
		    const char *field, hora_tz **out, hora_error *err);

/* Free a zone from tz__parse or tz__from_rule (NULL is fine).  Never
 * pass tz_utc() or a registry zone. */
void tz__free(hora_tz *tz);

/*
 * Parse the POSIX TZ string s[0..len) (no NUL needed), with the RFC 8536
 * section 3.3.1 extensions (rule hours -167..167).  "std offset" alone is
 * a fixed zone; "std offset dst [offset]" without a rule uses the US rule
 * M3.2.0,M11.1.0 (as glibc and posixrules do).  The result is normalised
 * (see tz__rule).  Returns 0 or -HORA_EINVAL with a static reason in
 * *why.
 */
int tz__rule_parse(const char *s, size_t len, tz__rule *out,
		   const char **why);

/* A zone with no table, governed by TZ string s[0..len) at all instants
 * (tests and fuzzing).  Ownership and errors as tz__parse. */
int tz__from_rule(const char *s, size_t len, const char *name,
		  hora_tz **out, hora_error *err);

/* Compute the rule's changes for UTC year `year` into *out. */
void tz__rule_year(const tz__rule *r, int year, tz__year *out);

/* Offset in force at second `s` under the rule alone. */
int32_t tz__rule_offset(const tz__rule *r, tz__year *cache, int64_t s);

/* First offset change strictly after `s` under the rule, or TZ__NEVER. */
int64_t tz__rule_next(const tz__rule *r, tz__year *cache, int64_t s);

/* Allocate a zone with room for `ntrans` transitions, `ntypes` types and
 * the name; fields zeroed, arrays pointed into the block.  The builder
 * fills them and calls tz__finish.  NULL on allocation failure. */
hora_tz *tz__alloc(uint32_t ntrans, uint16_t ntypes, const char *name);

/* Empty the year cache and compute min_off/max_off. */
void tz__finish(hora_tz *tz);

/* Offset at second `s` and the first offset change after it, or
 * TZ__NEVER: the module's two primitives, on whole seconds. */
int32_t tz__offset_sec(const hora_tz *tz, int64_t s);
int64_t tz__next_sec(const hora_tz *tz, int64_t s);

/* Copy s[0..len) into buf for an error message: at most 64 bytes,
 * anything but printable ASCII shown as '?', "..." if cut.  Returns buf. */
#define TZ__QUOTE_MAX 72
const char *tz__quote(const char *s, size_t len, char buf[TZ__QUOTE_MAX]);

/* Name rule of tz_load: 1-255 chars of [A-Za-z0-9/_+.-], no "..", no
 * leading '/', no empty or "." components. */
bool tz__name_valid(const char *name);

#endif
