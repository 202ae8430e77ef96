#include "fsm/entry.h"

#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/utf8.h"

/* TLV tags of a job spec.  Never renumber; add new ones at the end. */
enum {
	TAG_END = 0,
	TAG_NAME = 1,
	TAG_SCHEDULE = 2,
	TAG_TIMEZONE = 3,
	TAG_QUEUE = 4,
	TAG_LABELS = 5,
	TAG_EXTRA = 6,
	TAG_PRIORITY = 7,
	TAG_OVERLAP = 8,
	TAG_MISFIRE = 9,
	TAG_PAUSED = 10,
	TAG_MAX_ATTEMPTS = 11,
	TAG_OPT_FIRST = 16, /* 16 + job_opt */
};

static void header(wire_writer *w, entry_type type, uint8_t flags,
		   uint32_t count, hora_time stamp)
{
	wire_u8(w, ENTRY_MAGIC);
	wire_u8(w, ENTRY_FORMAT_VERSION);
	wire_u8(w, (uint8_t)type);
	wire_u8(w, flags);
	wire_u32(w, count);
	wire_u64(w, (uint64_t)stamp);
}

static int finish(wire_writer *w, uint8_t **buf, size_t *len)
{
	if (wire_failed(w)) {
		wire_writer_free(w);
		return -HORA_ENOMEM;
	}
	*buf = wire_writer_take(w, len);
	return 0;
}

static void tlv(wire_writer *w, uint16_t tag, const void *p, size_t n)
{
	wire_u16(w, tag);
	wire_u32(w, (uint32_t)n);
	wire_put(w, p, n);
}

static void tlv_u64(wire_writer *w, uint16_t tag, uint64_t v)
{
	wire_u16(w, tag);
	wire_u32(w, 8);
	wire_u64(w, v);
}

void entry_put_str(wire_writer *w, const char *s)
{
	size_t n = strlen(s);
	wire_u32(w, (uint32_t)n);
	wire_put(w, s, n);
}

char *entry_get_str(wire_reader *r, size_t max)
{
	uint32_t n = wire_get_u32(r);
	if (r->bad || n > max) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = wire_get(r, n);
	if (p == NULL || memchr(p, '\0', n) != NULL) {
		r->bad = true;
		return NULL;
	}
	return hora_strndup((const char *)p, n);
}

void entry_put_spec(wire_writer *w, const job_spec *spec)
{
	tlv(w, TAG_NAME, spec->name, strlen(spec->name));
	tlv(w, TAG_SCHEDULE, spec->schedule, strlen(spec->schedule));
	if (spec->timezone)
		tlv(w, TAG_TIMEZONE, spec->timezone, strlen(spec->timezone));
	if (spec->queue)
		tlv(w, TAG_QUEUE, spec->queue, strlen(spec->queue));
	if (spec->labels_len)
		tlv(w, TAG_LABELS, spec->labels, spec->labels_len);
	if (spec->extra_len)
		tlv(w, TAG_EXTRA, spec->extra, spec->extra_len);
	tlv_u64(w, TAG_PRIORITY, spec->priority);
	tlv_u64(w, TAG_OVERLAP, spec->overlap);
	tlv_u64(w, TAG_MISFIRE, spec->misfire);
	tlv_u64(w, TAG_PAUSED, spec->paused);
	tlv_u64(w, TAG_MAX_ATTEMPTS, spec->max_attempts);
	for (int i = 0; i < JOB_OPT_COUNT_; i++)
		if (spec->opt_mask >> i & 1)
			tlv_u64(w, (uint16_t)(TAG_OPT_FIRST + i),
				(uint64_t)spec->opt[i]);
	wire_u16(w, TAG_END);
}

/* Copy a TLV string value; rejects embedded NULs. */
static int take_str(char **dst, const uint8_t *p, uint32_t n)
{
	if (memchr(p, '\0', n) != NULL)
		return -HORA_ECORRUPT;
	hora_free(*dst);
	*dst = hora_strndup((const char *)p, n);
	return *dst ? 0 : -HORA_ENOMEM;
}

/* Labels are "k\0v\0..." pairs: an even number of NUL-terminated
 * strings. */
static bool labels_ok(const uint8_t *p, uint32_t n)
{
	uint32_t strings = 0;
	if (n == 0)
		return true;
	if (p[n - 1] != '\0')
		return false;
	for (uint32_t i = 0; i < n; i++)
		if (p[i] == '\0')
			strings++;
	return strings % 2 == 0 && strings / 2 <= JOB_LABELS_MAX;
}

static int check_token(const char *s, size_t max)
{
	hora_error err;
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return -HORA_ECORRUPT;
	return job_queue_check(s, "", &err) == 0 ? 0 : -HORA_ECORRUPT;
}

int entry_get_spec(wire_reader *r, job_spec *out)
{
	int rv = 0;

	job_spec_init(out);
	for (;;) {
		uint16_t tag = wire_get_u16(r);
		if (r->bad) {
			rv = -HORA_ECORRUPT;
			break;
		}
		if (tag == TAG_END)
			break;
		uint32_t n = wire_get_u32(r);
		const uint8_t *p = wire_get(r, n);
		if (p == NULL) {
			rv = -HORA_ECORRUPT;
			break;
		}
		uint64_t v = 0;
		if (tag >= TAG_PRIORITY && n == 8) {
			for (int i = 7; i >= 0; i--)
				v = v << 8 | p[i];
		} else if (tag >= TAG_PRIORITY && tag < TAG_OPT_FIRST +
							 JOB_OPT_COUNT_) {
			rv = -HORA_ECORRUPT;
			break;
		}
		switch (tag) {
		case TAG_NAME:
			rv = n > JOB_NAME_MAX ? -HORA_ECORRUPT
					      : take_str(&out->name, p, n);
			break;
		case TAG_SCHEDULE:
			rv = n > JOB_SCHEDULE_MAX
				     ? -HORA_ECORRUPT
				     : take_str(&out->schedule, p, n);
			break;
		case TAG_TIMEZONE:
			rv = n > 255 ? -HORA_ECORRUPT
				     : take_str(&out->timezone, p, n);
			break;
		case TAG_QUEUE:
			rv = n > JOB_QUEUE_MAX ? -HORA_ECORRUPT
					       : take_str(&out->queue, p, n);
			break;
		case TAG_LABELS:
			if (n >= UINT16_MAX || !labels_ok(p, n)) {
				rv = -HORA_ECORRUPT;
				break;
			}
			hora_free(out->labels);
			out->labels = hora_malloc(n);
			if (out->labels == NULL) {
				rv = -HORA_ENOMEM;
				break;
			}
			memcpy(out->labels, p, n);
			out->labels_len = n;
			break;
		case TAG_EXTRA:
			if (n > JOB_EXTRA_MAX) {
				rv = -HORA_ECORRUPT;
				break;
			}
			rv = take_str(&out->extra, p, n);
			out->extra_len = rv == 0 ? n : 0;
			break;
		case TAG_PRIORITY:
			if (v > JOB_PRIORITY_MAX)
				rv = -HORA_ECORRUPT;
			out->priority = (uint8_t)v;
			break;
		case TAG_OVERLAP:
			if (v > JOB_OVERLAP_REPLACE)
				rv = -HORA_ECORRUPT;
			out->overlap = (uint8_t)v;
			break;
		case TAG_MISFIRE:
			if (v > JOB_MISFIRE_ALL)
				rv = -HORA_ECORRUPT;
			out->misfire = (uint8_t)v;
			break;
		case TAG_PAUSED:
			out->paused = v != 0;
			break;
		case TAG_MAX_ATTEMPTS:
			if (v < 1 || v > JOB_ATTEMPTS_MAX)
				rv = -HORA_ECORRUPT;
			out->max_attempts = (uint16_t)v;
			break;
		default:
			if (tag >= TAG_OPT_FIRST &&
			    tag < TAG_OPT_FIRST + JOB_OPT_COUNT_)
				job_spec_set_opt(out,
						 (job_opt)(tag - TAG_OPT_FIRST),
						 (int64_t)v);
			/* unknown tags: written by a later release, skip */
			break;
		}
		if (rv != 0)
			break;
	}
	if (rv == 0 && (out->name == NULL || out->schedule == NULL))
		rv = -HORA_ECORRUPT;
	if (rv == 0) {
		hora_error err;
		hora_schedule sched;
		/* the leader validated all of this; a record built from an
		 * entry that fails it again would break invariants later */
		if (job_name_check(out->name, "", &err) != 0 ||
		    (out->queue && check_token(out->queue, JOB_QUEUE_MAX) != 0) ||
		    schedule_parse(out->schedule, NULL, &sched, "", &err) != 0)
			rv = -HORA_ECORRUPT;
	}
	if (rv != 0)
		job_spec_free(out);
	return rv;
}

int entry_encode_put(const job_spec *specs, size_t n, uint8_t flags,
		     hora_time stamp, uint8_t **buf, size_t *len)
{
	wire_writer w;
	wire_writer_init(&w);
	header(&w, ENTRY_PUT_JOBS, flags, (uint32_t)n, stamp);
	for (size_t i = 0; i < n; i++)
		entry_put_spec(&w, &specs[i]);
	return finish(&w, buf, len);
}

int entry_encode_names(entry_type type, uint8_t flags,
		       const char *const *names, size_t n, hora_time stamp,
		       uint8_t **buf, size_t *len)
{
	wire_writer w;
	wire_writer_init(&w);
	header(&w, type, flags, (uint32_t)n, stamp);
	for (size_t i = 0; i < n; i++)
		entry_put_str(&w, names[i]);
	return finish(&w, buf, len);
}

int entry_encode_node_info(uint64_t node_id, const char *api,
			   hora_time stamp, uint8_t **buf, size_t *len)
{
	wire_writer w;
	wire_writer_init(&w);
	header(&w, ENTRY_NODE_INFO, 0, 1, stamp);
	wire_u64(&w, node_id);
	entry_put_str(&w, api);
	return finish(&w, buf, len);
}

int entry_encode_noop(hora_time stamp, uint8_t **buf, size_t *len)
{
	wire_writer w;
	wire_writer_init(&w);
	header(&w, ENTRY_NOOP, 0, 0, stamp);
	return finish(&w, buf, len);
}

int entry_read_header(wire_reader *r, const void *buf, size_t len,
		      entry_header *out)
{
	wire_reader_init(r, buf, len);
	uint8_t magic = wire_get_u8(r);
	out->version = wire_get_u8(r);
	out->type = wire_get_u8(r);
	out->flags = wire_get_u8(r);
	out->count = wire_get_u32(r);
	out->stamp = (hora_time)wire_get_u64(r);
	if (r->bad || magic != ENTRY_MAGIC)
		return -HORA_ECORRUPT;
	if (out->version == 0 || out->version > ENTRY_FORMAT_VERSION)
		return -HORA_EVERSION;
	return 0;
}

void entry_put_text(wire_writer *w, const char *s, size_t len)
{
	wire_u32(w, (uint32_t)len);
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq(s + i, len - i, UTF8_NUL_BAD);
		if (n == 0) {
			wire_u8(w, '?');
			i++;
		} else {
			wire_put(w, s + i, n);
			i += n;
		}
	}
}

int entry_encode_fire(const fire_item *items, size_t n, hora_time stamp,
		      uint8_t **buf, size_t *len)
{
	wire_writer w;
	wire_writer_init(&w);
	header(&w, ENTRY_FIRE, 0, (uint32_t)n, stamp);
	for (size_t i = 0; i < n; i++) {
		entry_put_str(&w, items[i].job);
		wire_u64(&w, (uint64_t)items[i].expect);
		wire_u64(&w, (uint64_t)items[i].scheduled_at);
		wire_u64(&w, (uint64_t)items[i].due_at);
		wire_u64(&w, (uint64_t)items[i].resume_after);
		wire_u8(&w, items[i].flags);
	}
	return finish(&w, buf, len);
}

int entry_encode_lease(const lease_item *items, size_t n, hora_time stamp,
		       uint8_t **buf, size_t *len)
{
	wire_writer w;
	wire_writer_init(&w);
	header(&w, ENTRY_LEASE, 0, (uint32_t)n, stamp);
	for (size_t i = 0; i < n; i++) {
		wire_u64(&w, items[i].run);
		wire_u32(&w, items[i].attempt);
		entry_put_str(&w, items[i].worker);
		wire_u64(&w, (uint64_t)items[i].lease_expires_at);
	}
	return finish(&w, buf, len);
}

int entry_encode_complete(const complete_item *items, size_t n,
			  hora_time stamp, uint8_t **buf, size_t *len)
{
	wire_writer w;
	wire_writer_init(&w);
	header(&w, ENTRY_COMPLETE, 0, (uint32_t)n, stamp);
	for (size_t i = 0; i < n; i++) {
		const complete_item *c = &items[i];
		wire_u64(&w, c->run);
		wire_u32(&w, c->attempt);
		entry_put_str(&w, c->worker);
		wire_u8(&w, c->status);
		wire_u32(&w, (uint32_t)c->exit_code);
		entry_put_text(&w, c->output ? c->output : "",
			       c->output ? c->output_len : 0);
		entry_put_text(&w, c->error ? c->error : "",
			       c->error ? strlen(c->error) : 0);
	}
	return finish(&w, buf, len);
}

int entry_encode_expire(const expire_item *items, size_t n, hora_time stamp,
			uint8_t **buf, size_t *len)
{
	wire_writer w;
	wire_writer_init(&w);
	header(&w, ENTRY_EXPIRE2, 0, (uint32_t)n, stamp);
	for (size_t i = 0; i < n; i++) {
		wire_u64(&w, items[i].run);
		wire_u32(&w, items[i].attempt);
		wire_u64(&w, (uint64_t)items[i].lease_end);
	}
	return finish(&w, buf, len);
}

int entry_encode_overlap(const uint64_t *runs, size_t n, hora_time stamp,
			 uint8_t **buf, size_t *len)
{
	wire_writer w;
	wire_writer_init(&w);
	header(&w, ENTRY_OVERLAP, 0, (uint32_t)n, stamp);
	for (size_t i = 0; i < n; i++)
		wire_u64(&w, runs[i]);
	return finish(&w, buf, len);
}
