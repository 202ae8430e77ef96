/*
 * tzif.c - the TZif reader (RFC 8536; versions 1-3, and 4 of RFC 9636,
 * whose changes concern only leap-second tables).
 *
 * Hostile input is the design case: every count is checked against the
 * bytes actually present before anything is read or allocated, the file
 * size is capped (TZ__FILE_MAX), and every RFC "MUST" we rely on is
 * verified, so a malformed file gives -HORA_EINVAL and a reason rather
 * than a wrong zone.
 */
#include <string.h>

#include "core/alloc.h"
#include "tz/tz_int.h"

/* RFC 8536 section 3.1: magic, version, 15 unused bytes, six counts. */
#define TZIF_HDR_LEN 44

typedef struct tzif_hdr {
	uint8_t version; /* 0, '2', '3' or '4' */
	uint32_t isutcnt;
	uint32_t isstdcnt;
	uint32_t leapcnt;
	uint32_t timecnt;
	uint32_t typecnt;
	uint32_t charcnt;
} tzif_hdr;

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int64_t be64(const uint8_t *p)
{
	uint64_t v = (uint64_t)be32(p) << 32 | be32(p + 4);
	int64_t s;
	memcpy(&s, &v, sizeof s); /* two's complement, no UB */
	return s;
}

/* A signed time of `size` (4 or 8) bytes. */
static int64_t read_time(const uint8_t *p, unsigned size)
{
	return size == 4 ? (int64_t)(int32_t)be32(p) : be64(p);
}

/* Parse a header at p (len bytes available); NULL or the reason. */
static const char *read_header(const uint8_t *p, size_t len, tzif_hdr *h)
{
	if (len < TZIF_HDR_LEN)
		return "truncated header";
	if (memcmp(p, "TZif", 4) != 0)
		return "bad magic (not a TZif file)";
	h->version = p[4];
	if (h->version != 0 && (h->version < '2' || h->version > '4'))
		return "unsupported TZif version";
	h->isutcnt = be32(p + 20);
	h->isstdcnt = be32(p + 24);
	h->leapcnt = be32(p + 28);
	h->timecnt = be32(p + 32);
	h->typecnt = be32(p + 36);
	h->charcnt = be32(p + 40);
	return NULL;
}

/* Counts of a block we are going to read (the v1 block of a v2+ file is
 * only skipped, and "zic -b slim" leaves it empty).  NULL or the
 * reason. */
static const char *check_counts(const tzif_hdr *h)
{
	/* RFC 8536 section 3.1: typecnt and charcnt MUST NOT be zero; the
	 * indicator counts are zero or typecnt.  Type indices are one
	 * byte, so at most 256 types are addressable. */
	if (h->typecnt == 0 || h->typecnt > 256)
		return "local time type count out of range";
	if (h->charcnt == 0)
		return "no time zone designations";
	if (h->isutcnt != 0 && h->isutcnt != h->typecnt)
		return "UT indicator count differs from type count";
	if (h->isstdcnt != 0 && h->isstdcnt != h->typecnt)
		return "standard indicator count differs from type count";
	return NULL;
}

/* Bytes of the data block that follows header h, with `tsize`-byte
 * times (4 in the v1 block, 8 in the v2+ one).  Counts are < 2^32, so
 * the 64-bit sum cannot overflow. */
static uint64_t block_size(const tzif_hdr *h, unsigned tsize)
{
	return (uint64_t)h->timecnt * tsize + h->timecnt +
	       (uint64_t)h->typecnt * 6 + h->charcnt +
	       (uint64_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

/* Read the data block at p (already known to hold block_size bytes) into
 * a new zone.  RFC 8536 section 3.2.  NULL reason on success; *out stays
 * NULL on failure (and *oom says whether that was allocation). */
static const char *read_block(const uint8_t *p, const tzif_hdr *h,
			      unsigned tsize, const char *name, hora_tz **out,
			      bool *oom)
{
	const uint8_t *times = p;
	const uint8_t *idx = times + (size_t)h->timecnt * tsize;
	const uint8_t *ttinfo = idx + h->timecnt;
	const uint8_t *chars = ttinfo + (size_t)h->typecnt * 6;
	const uint8_t *leaps = chars + h->charcnt;
	const uint8_t *isstd = leaps + (size_t)h->leapcnt * (tsize + 4);
	const uint8_t *isut = isstd + h->isstdcnt;
	const char *why = NULL;
	hora_tz *z;
	int64_t prev_t = INT64_MIN;
	int64_t prev_occ = INT64_MIN;
	int64_t corr = 0;
	uint32_t leap = 0;
	int32_t prev_off;
	uint32_t n = 0;

	*out = NULL;
	*oom = false;

	/* Leap-second records: strictly ascending, first nonnegative
	 * (section 3.2).  Files from "right/" have them. */
	for (uint32_t i = 0; i < h->leapcnt; i++) {
		int64_t occ = read_time(leaps + (size_t)i * (tsize + 4), tsize);
		if (occ <= prev_occ || (i == 0 && occ < 0))
			return "leap second records out of order";
		prev_occ = occ;
	}
	for (uint32_t i = 0; i < h->isstdcnt; i++)
		if (isstd[i] > 1)
			return "bad standard/wall indicator";
	for (uint32_t i = 0; i < h->isutcnt; i++) {
		if (isut[i] > 1)
			return "bad UT/local indicator";
		if (isut[i] == 1 && h->isstdcnt != 0 && isstd[i] != 1)
			return "UT indicator set without standard indicator";
	}

	z = tz__alloc(h->timecnt, (uint16_t)h->typecnt, name);
	if (z == NULL) {
		*oom = true;
		return "out of memory";
	}
	for (uint32_t i = 0; i < h->typecnt; i++) {
		const uint8_t *t = ttinfo + (size_t)i * 6;
		int32_t off = (int32_t)be32(t);
		if (off < TZ__OFF_MIN || off > TZ__OFF_MAX) {
			why = "UT offset out of range";
			goto fail;
		}
		if (t[4] > 1) {
			why = "bad isdst flag";
			goto fail;
		}
		if (t[5] >= h->charcnt) {
			why = "designation index out of range";
			goto fail;
		}
		z->offs[i] = off;
	}

	/* Section 3.2: before the first transition, type 0 applies. */
	z->off0 = z->offs[0];
	prev_off = z->off0;
	for (uint32_t i = 0; i < h->timecnt; i++) {
		int64_t raw = read_time(times + (size_t)i * tsize, tsize);
		int64_t t;
		uint8_t type = idx[i];

		if (type >= h->typecnt) {
			why = "transition type index out of range";
			goto fail;
		}
		/* Leap-second files count leap seconds in their times;
		 * hora_time does not, so subtract the correction in force. */
		while (leap < h->leapcnt) {
			const uint8_t *l = leaps + (size_t)leap * (tsize + 4);
			if (read_time(l, tsize) > raw)
				break;
			corr = (int32_t)be32(l + tsize);
			leap++;
		}
		if (__builtin_sub_overflow(raw, corr, &t) ||
		    (i > 0 && t <= prev_t)) {
			why = "transition times not ascending";
			goto fail;
		}
		prev_t = t;
		z->rule_from = t;
		/* Keep only changes of UT offset (see tz_int.h). */
		if (z->offs[type] != prev_off) {
			z->trans[n] = t;
			z->types[n] = type;
			n++;
			prev_off = z->offs[type];
		}
	}
	z->ntrans = n;
	if (h->timecnt == 0)
		z->rule_from = INT64_MIN;
	*out = z;
	return NULL;

fail:
	tz__free(z);
	return why;
}

int tz__parse_field(const uint8_t *buf, size_t len, const char *name,
		    const char *field, hora_tz **out, hora_error *err)
{
	tzif_hdr h;
	tzif_hdr h2;
	const char *why;
	const uint8_t *p = buf;
	size_t left = len;
	uint64_t size;
	bool oom = false;
	hora_tz *z = NULL;
	char q[TZ__QUOTE_MAX];
	const char *qname = tz__quote(name, strlen(name), q);

	*out = NULL;
	if (len > TZ__FILE_MAX) {
		why = "file too large";
		goto bad;
	}
	why = read_header(p, left, &h);
	if (why == NULL && h.version == 0)
		why = check_counts(&h);
	if (why != NULL)
		goto bad;
	size = block_size(&h, 4);
	if (size > left - TZIF_HDR_LEN) {
		why = "truncated data block";
		goto bad;
	}
	if (h.version == 0) {
		/* Version 1: 32-bit data, no footer; bytes after are
		 * ignored, as a v1 reader would. */
		why = read_block(p + TZIF_HDR_LEN, &h, 4, name, &z, &oom);
		if (why != NULL)
			goto bad;
		tz__finish(z);
		*out = z;
		return 0;
	}

	/* Section 4: v2+ readers skip the v1 block and use the 64-bit
	 * one. */
	p += TZIF_HDR_LEN + size;
	left -= TZIF_HDR_LEN + (size_t)size;
	why = read_header(p, left, &h2);
	if (why == NULL)
		why = check_counts(&h2);
	if (why != NULL)
		goto bad;
	size = block_size(&h2, 8);
	if (size > left - TZIF_HDR_LEN) {
		why = "truncated data block";
		goto bad;
	}
	why = read_block(p + TZIF_HDR_LEN, &h2, 8, name, &z, &oom);
	if (why != NULL)
		goto bad;
	p += TZIF_HDR_LEN + size;
	left -= TZIF_HDR_LEN + (size_t)size;

	/* Section 3.3: the footer is "\n" TZ-string "\n"; an empty string
	 * means no rule (the last type stays in force). */
	if (left < 2 || p[0] != '\n') {
		why = "missing TZ string footer";
		goto bad;
	}
	{
		const uint8_t *s = p + 1;
		const uint8_t *nl = memchr(s, '\n', left - 1);
		const char *rwhy = "";
		char qr[TZ__QUOTE_MAX];

		if (nl == NULL) {
			why = "unterminated TZ string footer";
			goto bad;
		}
		if (nl > s) {
			if (tz__rule_parse((const char *)s, (size_t)(nl - s),
					   &z->rule, &rwhy) != 0) {
				tz__free(z);
				return hora_error_set(
					err, -HORA_EINVAL, field,
					"time zone '%s' is not a valid TZif "
					"file: bad TZ string footer '%s': %s",
					qname,
					tz__quote((const char *)s,
						  (size_t)(nl - s), qr),
					rwhy);
			}
			z->has_rule = true;
		}
	}
	tz__finish(z);
	/* Section 3.3: the footer is meant to agree with the last
	 * transition (zic guarantees it; every system zone does).  One that
	 * does not is treated as corrupt: accepting it would make the
	 * offset jump at an instant the file does not list. */
	if (z->has_rule && z->rule_from != INT64_MIN) {
		int32_t before = z->ntrans ? z->offs[z->types[z->ntrans - 1]]
					   : z->off0;
		if (tz__rule_offset(&z->rule, z->years, z->rule_from) !=
		    before) {
			why = "TZ string footer disagrees with the last "
			      "transition";
			goto bad;
		}
	}
	*out = z;
	return 0;

bad:
	tz__free(z);
	if (oom)
		return hora_error_set(err, -HORA_ENOMEM, field,
				      "out of memory loading time zone '%s'",
				      qname);
	return hora_error_set(err, -HORA_EINVAL, field,
			      "time zone '%s' is not a valid TZif file: %s",
			      qname, why);
}

int tz__parse(const uint8_t *buf, size_t len, const char *name,
	      hora_tz **out, hora_error *err)
{
	return tz__parse_field(buf, len, name, NULL, out, err);
}
