/*
 * job_json.h - the JSON face of jobs (API.md "Jobs", "HTTP API" errors).
 *
 * Request bodies come in as bytes, are parsed strictly (json_parse_object)
 * and validated field by field into a job_spec (job_spec_from_json,
 * job_batch_from_json).  Stored job records go out as the JSON object that
 * GET /v1/jobs/{name} returns (job_to_json), and failures as API.md's
 * error envelope (api_error_json).
 *
 * Validation contract.  Every rejection returns -HORA_EINVAL and fills the
 * hora_error with
 *   field  the dotted path of the culprit: "schedule", "retry.backoff",
 *          "labels.env", "http.headers.X-Foo", "command[2]",
 *          "jobs[3].schedule" ("" only for the body as a whole);
 *   msg    a sentence naming the field, the value where short, and the
 *          rule: "schedule must be a string, got number",
 *          "hour field: 25 is out of range 0-23",
 *          "unknown field 'schedul'; did you mean 'schedule'?".
 * -HORA_ENOMEM is returned (field "", msg "out of memory") when an
 * allocation fails, hora's or jansson's, and -HORA_EIO when a zoneinfo
 * file exists but cannot be read (tz_load): both are the server's
 * failures, not the client's.  err may be NULL.  Field and message are
 * always valid UTF-8 (user bytes quoted in messages are cut at 64 bytes,
 * control characters shown as '?').
 *
 * A JSON null counts as an absent field (so a client can reset a field to
 * its default by sending null); for "payload" null is the default value
 * too, so it is not stored either.  The read-only fields job_to_json adds
 * (created_at, updated_at, next_run_at, run_count, last_run, version) are
 * accepted with any value and ignored, so GET-modify-PUT works.
 *
 * Strings in the specs are allocated with hora_malloc and owned by the
 * spec (job_spec_free).  The json_t values are jansson's (its own
 * allocator), borrowed unless said otherwise.  Not thread-safe, because
 * tz_load is not (tz.h).
 */
#ifndef HORA_API_JOB_JSON_H
#define HORA_API_JOB_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"
#include "sched/job.h"

/* Limits of API.md's job fields that job.h does not define. */
#define JOB_JSON_COMMAND_ARGS_MAX 256  /* elements of "command" */
#define JOB_JSON_COMMAND_ARG_MAX 4096  /* bytes per element */
#define JOB_JSON_URL_MAX 2048          /* bytes of "http.url" */
#define JOB_JSON_HEADERS_MAX 64        /* entries of "http.headers" */
#define JOB_JSON_MAX_RUNS_MAX (INT64_C(1) << 53) /* exact in a double */
#define JOB_JSON_BATCH_MAX 10000       /* entries of {"jobs":[...]} */

/*
 * Parse a request body strictly: it must be one JSON object (RFC 8259)
 * and nothing after it but white space; duplicate keys are rejected at
 * every depth; strings may not contain \u0000.  On success *out is a new
 * reference the caller json_decref()s.  Errors (-HORA_EINVAL, field ""):
 *   "request body is empty; expected a JSON object"   (len 0 or blanks)
 *   "malformed JSON at line 3, column 14: unexpected token near '}'"
 *   "request body must be a JSON object, got array"
 * `body` need not be NUL-terminated.
 */
int json_parse_object(const char *body, size_t len, json_t **out,
		      hora_error *err);

/*
 * Validate job object `obj` against API.md's job table and fill *out
 * (starting from job_spec_init's defaults).  `url_name` is the {name} of
 * PUT /v1/jobs/{name} or NULL: when given it is the job's name, and a
 * "name" in the body must equal it.  Without url_name the body's name is
 * used; when absent it is an error unless `name_optional` (POST /v1/jobs)
 * and the schedule is one-shot (@at, @after): then out->name is left NULL
 * and the caller generates one.
 *
 * On success the caller owns *out (job_spec_free).  On error *out is left
 * initialized and empty (nothing to free).  *out is overwritten, never
 * freed: pass a spec that owns nothing.
 *
 * What is filled: name, schedule (as written), timezone, queue, priority,
 * overlap, misfire, paused, max_attempts, the JOB_OPT_* values that
 * differ from their defaults, labels ("k\0v\0..." sorted by key), and
 * extra: the compact JSON {"command":..,"http":..,"payload":..} holding
 * only the keys sent with a non-null value (http normalized: method
 * upper-cased, "GET" filled in), NULL when none.  A spec rendered by
 * job_to_json and validated again is identical (GET-modify-PUT is a
 * no-op).
 */
int job_spec_from_json(const json_t *obj, const char *url_name,
		       bool name_optional, job_spec *out, hora_error *err);

/*
 * Validate {"jobs":[...]} (POST /v1/jobs:batch): "jobs" is required, an
 * array of 1..JOB_JSON_BATCH_MAX job objects, each with a name, no name
 * twice; no other top-level key.  Errors name the index: field
 * "jobs[3].schedule", message "jobs[3]: hour field: ...".  On success
 * *out is a hora_malloc'd array of *n specs the caller frees with
 * job_batch_free; on error nothing is returned (*out NULL, *n 0).
 */
int job_batch_from_json(const json_t *obj, job_spec **out, size_t *n,
			hora_error *err);

/* Free a batch from job_batch_from_json (NULL is fine). */
void job_batch_free(job_spec *specs, size_t n);

/*
 * The job as API.md shows it: every user field with its effective value
 * (defaults included: timezone, queue, priority, retry, overlap, misfire,
 * jitter, paused, labels {}, payload null), command/http and timeout,
 * start_at, end_at, max_runs only when set, then the read-only created_at,
 * updated_at, next_run_at (null when HORA_TIME_NONE), run_count,
 * last_run (null: run summaries are added by the layer that has runs),
 * version.  Times are RFC 3339 UTC with 'Z', durations canonical
 * ("1m30s").  Returns a new reference, or NULL when jansson runs out of
 * memory or the record's extra is not valid JSON (a bug upstream).
 */
json_t *job_to_json(const job *j);

/*
 * {"error":{"code":code,"message":message,"field":field}}, "field"
 * omitted when field is NULL or "".  Bytes that are not valid UTF-8 are
 * replaced by '?' (jansson refuses them).  New reference, NULL on OOM.
 */
json_t *api_error_json(const char *code, const char *message,
		       const char *field);

/*
 * API.md's error code for a hora return value: -HORA_EINVAL
 * "invalid_argument", -HORA_ENOENT "not_found", -HORA_EEXIST
 * "already_exists", -HORA_ETOOBIG "payload_too_large", -HORA_ENOTLEADER
 * and -HORA_EUNAVAIL "unavailable", -HORA_ECONFLICT "conflict", anything
 * else "internal".  Static strings.
 */
const char *api_error_code_for(int hora_rv);

#endif
