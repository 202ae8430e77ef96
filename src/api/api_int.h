/*
 * api_int.h - what the route files of src/api share.  Not a public
 * contract: only the files of src/api include it.
 */
#ifndef HORA_API_API_INT_H
#define HORA_API_API_INT_H

#include <jansson.h>

#include "api/api.h"
#include "api/http.h"
#include "cluster/dispatch.h"
#include "core/hist.h"
#include "sched/job.h"

/* Routes, for metrics labels. */
#define API_ROUTES(X)                                        \
	X(JOB_PUT, "PUT /v1/jobs/{name}")                    \
	X(JOB_CREATE, "POST /v1/jobs")                       \
	X(JOB_BATCH, "POST /v1/jobs:batch")                  \
	X(JOB_LIST, "GET /v1/jobs")                          \
	X(JOB_GET, "GET /v1/jobs/{name}")                    \
	X(JOB_DELETE, "DELETE /v1/jobs/{name}")              \
	X(JOB_PAUSE, "POST /v1/jobs/{name}/pause")           \
	X(JOB_RESUME, "POST /v1/jobs/{name}/resume")         \
	X(JOB_TRIGGER, "POST /v1/jobs/{name}/trigger")       \
	X(JOB_RUNS, "GET /v1/jobs/{name}/runs")              \
	X(RUN_GET, "GET /v1/runs/{id}")                      \
	X(CLAIM, "POST /v1/queues/{queue}/claim")            \
	X(STREAM, "POST /v1/queues/{queue}/stream")          \
	X(HEARTBEAT, "POST /v1/runs/{id}/heartbeat")         \
	X(COMPLETE, "POST /v1/runs/{id}/complete")           \
	X(COMPLETE_BATCH, "POST /v1/runs:complete")          \
	X(QUEUES, "GET /v1/queues")                          \
	X(CLUSTER, "GET /v1/cluster")                        \
	X(CLUSTER_ADD, "POST /v1/cluster/nodes")             \
	X(CLUSTER_REMOVE, "DELETE /v1/cluster/nodes/{id}")   \
	X(CLUSTER_TRANSFER, "POST /v1/cluster/transfer")     \
	X(HEALTHZ, "GET /healthz")                           \
	X(READYZ, "GET /readyz")                             \
	X(METRICS, "GET /metrics")                           \
	X(UI, "GET /ui/")                                    \
	X(OTHER, "other")

typedef enum {
#define API__ROUTE_ENUM(name, label) API_ROUTE_##name,
	API_ROUTES(API__ROUTE_ENUM)
#undef API__ROUTE_ENUM
	API_ROUTE_COUNT_
} api_route;

#define API_STATUS_SLOTS 600

typedef struct api_route_stats {
	uint64_t by_status[API_STATUS_SLOTS];
	hora_hist latency;
} api_route_stats;

struct api {
	uv_loop_t *loop;
	http_server *http;
	node *node;
	dispatch *dispatch;
	struct forwarder *forwarder;
	const struct loop_stats *loop_stats; /* may be NULL */
	char *token;
	struct guard *guard; /* browser checks, guard.h */
	api_route_stats routes[API_ROUTE_COUNT_];
	uint64_t forwarded; /* requests relayed to the leader */
	void (*close_done)(void *);
	void *close_ud;
};

/* One request being handled: the route for metrics and when it began. */
typedef struct api_call {
	api *a;
	http_request *req;
	api_route route;
	uint64_t t0; /* uv_hrtime() at the handler */
} api_call;

/* Answer and count.  Takes ownership of `body` (may be NULL: {}). */
void api_reply_json(api_call *c, int status, json_t *body);
void api_reply_text(api_call *c, int status, const char *type,
		    const char *text, size_t len);
/* Count a streamed answer's status (http_respond_stream sends it). */
void api_count(api_call *c, int status);
/* {"error":{...}} with the status of API.md. */
void api_reply_error(api_call *c, int status, const char *code,
		     const char *message, const char *field);
/* A rejection from a validator (err->code negative): 400 etc. */
void api_reply_hora_error(api_call *c, const hora_error *err);
/* The request body as a JSON object, or NULL after answering 400 with
 * the parser's line and column.  Caller decrefs. */
json_t *api_body_object(api_call *c);
/* 503 with Retry-After when there is no leader to take a write. */
void api_reply_unavailable(api_call *c, int rv);

/* The leader's clock for a new entry: never earlier than what the state
 * machine has seen. */
hora_time api_stamp(api *a);

/* Per-request state for a write waiting on its commit. */
typedef struct api_pending {
	api_call call;
	bool gone; /* client disconnected: do not answer */
	int kind;
	char name[JOB_NAME_MAX + 1];
	char **names; /* batches: the names, in entry order (owned) */
	size_t n;
} api_pending;

api_pending *api_pending_new(const api_call *c, int kind);
/* Set up a pending record embedded first in a larger hora_malloc'd
 * struct (api_pending_free frees that struct). */
void api_pending_init(api_pending *p, const api_call *c, int kind);
/* Propose `buf` for `p`; answers and frees p itself on failure. */
void api_pending_propose(api_pending *p, uint8_t *buf, size_t len,
			 node_commit_cb cb);
/* In the commit callback, before answering: false if the client is gone
 * (then do not answer).  Detaches the abort callback. */
bool api_pending_settle(api_pending *p);
/* In a commit callback that owns nothing else: the settled pending
 * record, or NULL (already freed) when the client is gone. */
api_pending *api_pending_take(void *ud);
/* Free p (after answering, or when the client is gone). */
void api_pending_free(api_pending *p);

/* Route handlers: routes_jobs.c */
void api_jobs_route(api_call *c, const char *const *seg, size_t nseg);
/* routes_cluster.c: /v1/cluster..., /healthz, /readyz, /metrics */
void api_cluster_route(api_call *c, const char *const *seg, size_t nseg);
/* routes_runs.c: /v1/runs..., /v1/queues..., trigger, job history */
void api_runs_route(api_call *c, const char *const *seg, size_t nseg);
void api_trigger(api_call *c, const char *name);
void api_job_runs(api_call *c, const char *name);
void api_healthz(api_call *c);
/* GET /ui/: the dashboard */
void api_ui(api_call *c, const char *path);
void api_readyz(api_call *c);
void api_metrics(api_call *c);

#endif
