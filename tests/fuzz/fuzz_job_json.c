/* libFuzzer target: request bytes -> json_parse_object -> job_spec_from_json
 * (or job_batch_from_json for {"jobs":[...]}) -> job_new -> job_to_json.
 * Must never crash or leak, every rejection must carry a message that is
 * valid UTF-8, and every accepted job must survive GET-modify-PUT: its
 * rendering, validated again, gives the same spec. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/job_json.h"
#include "core/alloc.h"
#include "core/assert.h"
#include "sched/job.h"
#include "tz/tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(int rv, const hora_error *err)
{
	HORA_ASSERT(rv == -HORA_EINVAL || rv == -HORA_ENOMEM ||
		    rv == -HORA_EIO);
	HORA_ASSERT(err->code == rv);
	HORA_ASSERT(err->msg[0] != '\0');
	/* jansson refuses invalid UTF-8: the envelope must still build */
	json_t *e = api_error_json(api_error_code_for(rv), err->msg,
				   err->field);
	HORA_ASSERT(e != NULL);
	json_t *f = json_object_get(json_object_get(e, "error"), "field");
	HORA_ASSERT(err->field[0] == '\0' ||
		    strcmp(json_string_value(f), err->field) == 0);
	json_decref(e);
}

static bool same_spec(const job_spec *a, const job_spec *b)
{
	return strcmp(a->schedule, b->schedule) == 0 &&
	       strcmp(a->timezone, b->timezone) == 0 &&
	       strcmp(a->queue, b->queue) == 0 &&
	       a->labels_len == b->labels_len &&
	       (a->labels_len == 0 ||
		memcmp(a->labels, b->labels, a->labels_len) == 0) &&
	       a->extra_len == b->extra_len &&
	       (a->extra_len == 0 ||
		memcmp(a->extra, b->extra, a->extra_len) == 0) &&
	       a->opt_mask == b->opt_mask &&
	       memcmp(a->opt, b->opt, sizeof a->opt) == 0 &&
	       a->priority == b->priority && a->overlap == b->overlap &&
	       a->misfire == b->misfire && a->paused == b->paused &&
	       a->max_attempts == b->max_attempts;
}

/* job_new + job_to_json + json_dumps, then validate the rendering again
 * under the job's own name, as a PUT of what GET returned. */
static void render(job_spec *spec)
{
	const hora_tz *tz;
	hora_error err;
	job_spec again;
	job *j;
	int rv;

	if (spec->name == NULL) /* the API layer generates one */
		spec->name = hora_strdup("generated-name");
	HORA_ASSERT(spec->name != NULL);
	rv = tz_load(spec->timezone, &tz, "timezone", &err);
	HORA_ASSERT(rv == 0); /* it loaded during validation */
	HORA_ASSERT(job_new(spec, spec->queue, tz, &j) == 0);
	json_t *o = job_to_json(j);
	HORA_ASSERT(o != NULL);
	char *text = json_dumps(o, JSON_COMPACT);
	HORA_ASSERT(text != NULL);
	free(text);
	rv = job_spec_from_json(o, job_name(j), false, &again, &err);
	HORA_ASSERT(rv == 0);
	HORA_ASSERT(same_spec(spec, &again));
	job_spec_free(&again);
	json_decref(o);
	job_free(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hora_error err;
	json_t *o;
	int rv;

	if (size > (1u << 20))
		return 0;
	rv = json_parse_object((const char *)data, size, &o, &err);
	if (rv != 0) {
		check_error(rv, &err);
		return 0;
	}
	if (json_object_get(o, "jobs") != NULL) {
		job_spec *specs;
		size_t n;
		rv = job_batch_from_json(o, &specs, &n, &err);
		if (rv != 0) {
			HORA_ASSERT(specs == NULL && n == 0);
			check_error(rv, &err);
		} else {
			HORA_ASSERT(n >= 1 && n <= JOB_JSON_BATCH_MAX);
			for (size_t i = 0; i < n && i < 64; i++)
				render(&specs[i]);
			job_batch_free(specs, n);
		}
	} else {
		/* odd sizes go the PUT /v1/jobs/{name} way, even ones POST */
		const char *url_name = (size & 1) ? "fuzz-job" : NULL;
		job_spec spec;
		rv = job_spec_from_json(o, url_name, url_name == NULL, &spec,
					&err);
		if (rv != 0) {
			check_error(rv, &err);
		} else {
			render(&spec);
			job_spec_free(&spec);
		}
	}
	json_decref(o);
	return 0;
}
