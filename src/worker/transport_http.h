/*
 * transport_http.h - the worker engine's transport over the HTTP API
 * (`hora worker`): claim, heartbeat and complete as asynchronous
 * requests (net/http_client.h) on a net/curl_loop.h driver of the
 * engine's loop, so long-poll claims, heartbeats and completions never
 * block each other or the runs; a job's timeout is read with
 * GET /v1/jobs/{job} and cached briefly.
 *
 * Threading: the loop's thread only.
 */
#ifndef HORA_WORKER_TRANSPORT_HTTP_H
#define HORA_WORKER_TRANSPORT_HTTP_H

#include <uv.h>

#include "core/err.h"
#include "net/http_client.h"
#include "worker/engine.h"

#define THTTP_REQUEST_TIMEOUT_MS 15000
/* a claim may take wait_ms, plus this */
#define THTTP_CLAIM_SLACK_MS 15000
#define THTTP_JOB_CACHE_MAX 64
#define THTTP_JOB_CACHE_TTL_MS 5000
#define THTTP_MAX_BODY (64u << 20)

typedef struct transport_http transport_http;

/* The calls, for engine_new with the transport as its context. */
extern const engine_transport transport_http_ops;

/*
 * A transport to the API at `base` ("http://host:port") for worker
 * `worker_id`, with bearer `token` (may be NULL).  base, token, worker_id
 * and `conf` (its strings too) are borrowed until transport_http_close.
 * -HORA_ENOMEM or libcurl's failure, with a sentence in *err.
 */
int transport_http_new(uv_loop_t *loop, const char *base, const char *token,
		       const char *worker_id, const httpc_conf *conf,
		       transport_http **out, hora_error *err);

/* Drop the requests in flight (their callbacks do not run) and free `t`;
 * its handles finish closing on the loop. */
void transport_http_close(transport_http *t);

#endif
