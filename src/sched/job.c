#include "sched/job.h"

#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "core/hash.h"
#include "core/assert.h"

void job_spec_init(job_spec *spec)
{
	memset(spec, 0, sizeof *spec);
	spec->priority = JOB_PRIORITY_DEFAULT;
	spec->overlap = JOB_OVERLAP_ALLOW;
	spec->misfire = JOB_MISFIRE_ONCE;
	spec->max_attempts = 1;
}

void job_spec_free(job_spec *spec)
{
	hora_free(spec->name);
	hora_free(spec->schedule);
	hora_free(spec->timezone);
	hora_free(spec->queue);
	hora_free(spec->labels);
	hora_free(spec->extra);
	memset(spec, 0, sizeof *spec);
}

void job_spec_set_opt(job_spec *spec, job_opt which, int64_t value)
{
	spec->opt[which] = value;
	spec->opt_mask = (uint8_t)(spec->opt_mask | (1u << which));
}

static bool name_char_ok(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static int token_check(const char *s, size_t max, const char *what,
		       const char *field, hora_error *err)
{
	size_t n = strlen(s);
	if (n == 0)
		return hora_error_set(err, -HORA_EINVAL, field,
				      "%s must not be empty", what);
	if (n > max)
		return hora_error_set(err, -HORA_EINVAL, field,
				      "%s is %zu characters long; at most %zu "
				      "are allowed",
				      what, n, max);
	for (size_t i = 0; i < n; i++) {
		if (!name_char_ok(s[i]))
			return hora_error_set(
				err, -HORA_EINVAL, field,
				"%s '%.64s' has a character outside "
				"[A-Za-z0-9._-] at position %zu",
				what, s, i + 1);
	}
	return 0;
}

int job_name_check(const char *name, const char *field, hora_error *err)
{
	return token_check(name, JOB_NAME_MAX, "name", field, err);
}

int job_name_check_new(const char *name, const char *field, hora_error *err)
{
	int rv = job_name_check(name, field, err);
	if (rv == 0 && (strcmp(name, ".") == 0 || strcmp(name, "..") == 0))
		return hora_error_set(err, -HORA_EINVAL, field,
				      "name '%s' is not allowed: URLs treat "
				      "'.' and '..' as directories, so the "
				      "job could not be named in a path",
				      name);
	return rv;
}

int job_queue_check(const char *queue, const char *field, hora_error *err)
{
	return token_check(queue, JOB_QUEUE_MAX, "queue", field, err);
}

static size_t opt_count(uint8_t mask)
{
	return (size_t)__builtin_popcount(mask);
}

int job_new(const job_spec *spec, const char *queue, const hora_tz *tz,
	    job **out)
{
	size_t name_len = strlen(spec->name);
	size_t sched_len = strlen(spec->schedule);
	size_t nopt = opt_count(spec->opt_mask);
	size_t size;
	job *j;
	char *p;

	HORA_ASSERT(name_len <= JOB_NAME_MAX && sched_len < UINT16_MAX);
	HORA_ASSERT(spec->labels_len < UINT16_MAX);
	HORA_ASSERT(spec->extra_len < UINT32_MAX);
	size = sizeof *j + nopt * sizeof(int64_t) + name_len + 1 +
	       sched_len + 1 + spec->labels_len + spec->extra_len + 1;
	j = hora_malloc(size);
	if (j == NULL)
		return -HORA_ENOMEM;
	memset(j, 0, sizeof *j);
	j->heap_idx = JOB_NOT_QUEUED;
	j->next_run_at = HORA_TIME_NONE;
	j->queue = queue;
	j->tz = tz;
	j->max_attempts = spec->max_attempts;
	j->priority = spec->priority;
	j->overlap = spec->overlap;
	j->misfire = spec->misfire;
	j->flags = spec->paused ? JOB_F_PAUSED : 0;
	j->opt_mask = spec->opt_mask;
	j->name_len = (uint8_t)name_len;
	j->schedule_len = (uint16_t)sched_len;
	j->labels_len = (uint16_t)spec->labels_len;
	j->extra_len = (uint32_t)spec->extra_len;

	int64_t *opt = (int64_t *)(void *)j->data;
	for (int i = 0; i < JOB_OPT_COUNT_; i++)
		if (spec->opt_mask >> i & 1)
			*opt++ = spec->opt[i];
	p = (char *)opt;
	memcpy(p, spec->name, name_len + 1);
	p += name_len + 1;
	memcpy(p, spec->schedule, sched_len + 1);
	p += sched_len + 1;
	if (spec->labels_len)
		memcpy(p, spec->labels, spec->labels_len);
	p += spec->labels_len;
	if (spec->extra_len)
		memcpy(p, spec->extra, spec->extra_len);
	p[spec->extra_len] = '\0';
	*out = j;
	return 0;
}

void job_free(job *j)
{
	hora_free(j);
}

static const char *strings(const job *j)
{
	return j->data + opt_count(j->opt_mask) * sizeof(int64_t);
}

const char *job_name(const job *j)
{
	return strings(j);
}

const char *job_schedule_text(const job *j)
{
	return strings(j) + j->name_len + 1;
}

const char *job_labels(const job *j)
{
	return job_schedule_text(j) + j->schedule_len + 1;
}

const char *job_extra(const job *j)
{
	return job_labels(j) + j->labels_len;
}

bool job_has_opt(const job *j, job_opt which)
{
	return j->opt_mask >> which & 1;
}

int64_t job_opt_get(const job *j, job_opt which, int64_t dflt)
{
	if (!job_has_opt(j, which))
		return dflt;
	/* index = number of set bits below `which` */
	unsigned below = j->opt_mask & ((1u << which) - 1);
	const int64_t *opt = (const int64_t *)(const void *)j->data;
	return opt[__builtin_popcount(below)];
}

/* Parsed schedules by (text, zone).  The next instant of a job is
 * computed at every fire, put and resume, and jobs share few schedules:
 * parsing the text each time was 8% of horad's CPU while loading jobs.
 * Direct-mapped, overwritten on collision; parsing is a pure function of
 * (text, zone), so a hit gives exactly what a parse would.  Loop thread
 * only, like the state machine. */
#define SCHEDULE_CACHE_SLOTS 512

static struct schedule_slot {
	char *text; /* hora_malloc; NULL: empty */
	uint16_t len;
	const hora_tz *tz;
	hora_schedule s;
} schedule_cache[SCHEDULE_CACHE_SLOTS];

void job_schedule(const job *j, hora_schedule *out)
{
	const char *text = job_schedule_text(j);
	uint64_t h = hora_fnv1a64(HORA_FNV1A64_INIT, text, j->schedule_len);
	h ^= (uint64_t)(uintptr_t)j->tz >> 4;
	struct schedule_slot *e = &schedule_cache[h % SCHEDULE_CACHE_SLOTS];
	if (e->text != NULL && e->tz == j->tz && e->len == j->schedule_len &&
	    memcmp(e->text, text, j->schedule_len) == 0) {
		*out = e->s;
		return;
	}
	hora_error err;
	int rv = schedule_parse(text, j->tz, out, "schedule", &err);
	HORA_ASSERT(rv == 0);
	char *copy = hora_malloc((size_t)j->schedule_len + 1);
	if (copy == NULL)
		return; /* parsed all the same; just not kept */
	memcpy(copy, text, (size_t)j->schedule_len + 1);
	hora_free(e->text);
	*e = (struct schedule_slot){copy, j->schedule_len, j->tz, *out};
}

const char *job_label(const job *j, const char *key)
{
	const char *p = job_labels(j);
	const char *end = p + j->labels_len;
	while (p < end) {
		const char *v = p + strlen(p) + 1;
		if (strcmp(p, key) == 0)
			return v;
		p = v + strlen(v) + 1;
	}
	return NULL;
}

size_t job_size(const job *j)
{
	return sizeof *j + opt_count(j->opt_mask) * sizeof(int64_t) +
	       j->name_len + 1u + j->schedule_len + 1u + j->labels_len +
	       j->extra_len + 1u;
}

void job_spec_view(const job *j, job_spec *view)
{
	memset(view, 0, sizeof *view);
	view->name = (char *)job_name(j);
	view->schedule = (char *)job_schedule_text(j);
	view->timezone = (char *)tz_name(j->tz);
	view->queue = (char *)j->queue;
	view->labels = j->labels_len ? (char *)job_labels(j) : NULL;
	view->labels_len = j->labels_len;
	view->extra = j->extra_len ? (char *)job_extra(j) : NULL;
	view->extra_len = j->extra_len;
	for (int i = 0; i < JOB_OPT_COUNT_; i++)
		if (job_has_opt(j, (job_opt)i))
			job_spec_set_opt(view, (job_opt)i,
					 job_opt_get(j, (job_opt)i, 0));
	view->priority = j->priority;
	view->overlap = j->overlap;
	view->misfire = j->misfire;
	view->paused = (j->flags & JOB_F_PAUSED) != 0;
	view->max_attempts = j->max_attempts;
}
