/*
 * run_api.h - the worker side of the runs API (API.md "Runs"): the paths
 * and bodies of claim, heartbeat and complete, what a claim answer holds,
 * and how an answer's status maps onto an engine outcome.  Written once
 * for the two transports that speak it: `hora worker` over HTTP
 * (transport_http.c) and horad's slots relaying to the leader
 * (daemon/workers.c).
 *
 * Pure functions on the caller's thread; results are the caller's to
 * free (hora_free for strings, json_decref for JSON).
 */
#ifndef HORA_WORKER_RUN_API_H
#define HORA_WORKER_RUN_API_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "worker/engine.h"

/* "/v1/queues/<queue>/claim", percent-encoded; NULL: out of memory. */
char *run_api_claim_path(const char *queue);
/* "/v1/queues/<queue>/stream", the same way. */
char *run_api_stream_path(const char *queue);
json_t *run_api_stream_body(const char *worker, unsigned max_inflight,
			    int64_t lease_ms);
/* "/v1/runs/<id>/<what>", percent-encoded; NULL: out of memory. */
char *run_api_run_path(const char *id, const char *what);

/* The bodies (NULL: out of memory).  lease_ms 0 hands the run back. */
json_t *run_api_claim_body(const char *worker, unsigned max, int64_t wait_ms,
			   int64_t lease_ms);
json_t *run_api_heartbeat_body(const char *worker, int64_t lease_ms);
json_t *run_api_complete_body(const char *worker, const engine_result *res);

/*
 * The runs of a claim answer ({"runs":[...]}) into a new array *out of
 * *n entries (hora_free it; it borrows the strings and values of
 * `answer`, and knows no timeout).  -HORA_EINVAL when there is no runs
 * array, -HORA_ENOMEM.
 */
int run_api_claimed(const json_t *answer, engine_claimed **out, size_t *n);

/* One run as a claim answer or a stream line shows it (borrows from
 * `rj`, knows no timeout). */
engine_claimed run_api_claimed_one(const json_t *rj);

/* 2xx OK; no answer (0), 429, 5xx TRANSIENT; 409 and 404 LOST; else
 * REJECTED. */
engine_outcome run_api_outcome(long status);

/* The calls, for run_api_why. */
typedef enum {
	RUN_API_CLAIM,
	RUN_API_HEARTBEAT,
	RUN_API_RELEASE, /* a heartbeat with lease_ms 0 */
	RUN_API_COMPLETE,
	RUN_API_JOB, /* GET /v1/jobs/{job} */
	RUN_API_STREAM,
} run_api_call;

/*
 * A sentence for an answer (status != 0) that is not 2xx: a lost lease
 * or run as engine.h words it for heartbeats (409, 404) and completions
 * (409), else "HTTP 400 invalid_argument: ..." from the error envelope,
 * or "HTTP 400".  Returns buf or a static string.
 */
const char *run_api_why(run_api_call call, long status, const json_t *answer,
			char *buf, size_t n);

#endif
