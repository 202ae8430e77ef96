/* Runs and queues: claim, heartbeat, complete, history, trigger. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_int.h"
#include "api/job_json.h"
#include "api/run_json.h"
#include "cluster/dispatch.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "exec/exec.h"
#include "fsm/fsm.h"

#define WORKER_MAX 255
#define LEASE_MS_MIN 1000
#define LEASE_MS_MAX 3600000
#define HISTORY_LIMIT_DEFAULT 20
#define HISTORY_LIMIT_MAX 1000
#define COMPLETE_BATCH_MAX 1000

static fsm *fsm_of(api_call *c)
{
	return node_fsm(c->a->node);
}


/* Refuse keys outside `allowed` (NULL-terminated). */
static bool known_fields(api_call *c, json_t *obj, const char *prefix,
			 const char *const *allowed)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			if (strcmp(key, *a) == 0)
				ok = true;
		if (!ok) {
			char msg[300], field[128];
			snprintf(msg, sizeof msg, "unknown field '%.100s'", key);
			snprintf(field, sizeof field, "%s%.100s", prefix, key);
			api_reply_error(c, 400, "invalid_argument", msg, field);
			return false;
		}
	}
	return true;
}

/* Read an optional integer field in [min, max]; false after answering
 * 400. */
static bool int_field(api_call *c, json_t *obj, const char *name,
		      json_int_t min, json_int_t max, json_int_t *out)
{
	json_t *v = json_object_get(obj, name);
	if (v == NULL || json_is_null(v))
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max) {
		char msg[200];
		snprintf(msg, sizeof msg,
			 "%s must be a whole number from %lld to %lld", name,
			 (long long)min, (long long)max);
		api_reply_error(c, 400, "invalid_argument", msg, name);
		return false;
	}
	*out = json_integer_value(v);
	return true;
}

/* The required "worker" field. */
static const char *worker_field(api_call *c, json_t *obj)
{
	json_t *v = json_object_get(obj, "worker");
	const char *w = json_is_string(v) ? json_string_value(v) : NULL;
	size_t n = w ? strlen(w) : 0;
	if (w == NULL || n == 0 || n > WORKER_MAX) {
		api_reply_error(c, 400, "invalid_argument",
				"worker is required: a string of 1-255 "
				"characters naming the worker",
				"worker");
		return NULL;
	}
	return w;
}

static bool parse_run_id(api_call *c, const char *s, uint64_t *id)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (*s == '\0' || *end != '\0' || s[0] == '-') {
		api_reply_error(c, 404, "not_found", "no such run", NULL);
		return false;
	}
	*id = v;
	return true;
}

static void reply_unavailable_or(api_call *c, int rv)
{
	if (rv == -HORA_ENOTLEADER || rv == -HORA_ESHUTDOWN)
		api_reply_unavailable(c, rv);
	else if (rv == -HORA_ENOENT)
		api_reply_error(c, 404, "not_found", "no such run", NULL);
	else if (rv == -HORA_ECONFLICT)
		api_reply_error(c, 409, "lease_lost",
				"this worker no longer holds the run's lease "
				"(it expired, was released, or the run was "
				"cancelled)",
				NULL);
	else
		api_reply_error(c, 500, "internal", hora_strerror(rv), NULL);
}

/* ---- claim ------------------------------------------------------------ */

typedef struct claim_ctx {
	api_call call;
	char worker[WORKER_MAX + 1];
	int64_t lease_ms;
	dispatch_waiter *claim;
	bool gone;
} claim_ctx;

static void claim_abort(http_request *req, void *ud)
{
	claim_ctx *cc = ud;
	(void)req;
	if (cc->claim)
		dispatch_claim_cancel(cc->claim);
	hora_free(cc);
}

/* A run just handed out, as claim and stream answers show it: with the
 * lease this answer grants (its LEASE entry follows). */
static json_t *handed_out_json(api_call *c, const run *r, const char *worker,
			       int64_t lease_ms, hora_time now)
{
	job *j = store_get(fsm_store(fsm_of(c)), r->job);
	json_t *o = run_to_json(r, j, now);
	char t[HORA_TIME_STRLEN], exp[HORA_TIME_STRLEN];
	if (o == NULL)
		return NULL;
	timefmt_format(now, 0, TIMEFMT_Z, t);
	timefmt_format(now + lease_ms * HORA_USEC_PER_MS, 0, TIMEFMT_Z, exp);
	json_object_set_new(o, "status", json_string("running"));
	json_object_set_new(o, "worker", json_string(worker));
	json_object_set_new(o, "started_at", json_string(t));
	if (r->dispatched_at == 0)
		json_object_set_new(o, "dispatched_at", json_string(t));
	json_object_set_new(o, "lease_expires_at", json_string(exp));
	return o;
}

static void claim_answer(void *ud, run *const *runs, size_t n)
{
	claim_ctx *cc = ud;
	api_call *c = &cc->call;
	hora_time now = hora_wallclock_usec();
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, handed_out_json(c, runs[i], cc->worker,
							   cc->lease_ms, now));
	cc->claim = NULL;
	http_request_on_abort(c->req, NULL, NULL);
	api_reply_json(c, 200, json_pack("{s:o}", "runs", arr));
	hora_free(cc);
}

/* What claim and stream bodies share: the queue name, a body object of
 * `allowed` fields, the worker and lease_ms.  false after answering 400
 * (*obj is then released). */
static bool worker_request(api_call *c, const char *queue,
			   const char *const *allowed, json_t **obj,
			   const char **worker, json_int_t *lease_ms)
{
	hora_error err;
	*lease_ms = DISPATCH_LEASE_MS_DEFAULT;
	*obj = NULL;
	if (job_queue_check(queue, "queue", &err) != 0) {
		api_reply_hora_error(c, &err);
		return false;
	}
	if ((*obj = api_body_object(c)) == NULL)
		return false;
	if (!known_fields(c, *obj, "", allowed) ||
	    (*worker = worker_field(c, *obj)) == NULL ||
	    !int_field(c, *obj, "lease_ms", LEASE_MS_MIN, LEASE_MS_MAX,
		       lease_ms)) {
		json_decref(*obj);
		*obj = NULL;
		return false;
	}
	return true;
}

static void claim(api_call *c, const char *queue)
{
	static const char *const allowed[] = {"worker", "max", "wait_ms",
					      "lease_ms", NULL};
	json_int_t max = 1, wait_ms = 0, lease_ms;
	const char *worker;
	json_t *obj;

	if (!worker_request(c, queue, allowed, &obj, &worker, &lease_ms))
		return;
	if (!int_field(c, obj, "max", 1, DISPATCH_CLAIM_MAX, &max) ||
	    !int_field(c, obj, "wait_ms", 0, DISPATCH_WAIT_MS_MAX, &wait_ms)) {
		json_decref(obj);
		return;
	}
	claim_ctx *cc = hora_calloc(1, sizeof *cc);
	if (cc == NULL) {
		json_decref(obj);
		api_reply_error(c, 500, "internal", "out of memory", NULL);
		return;
	}
	cc->call = *c;
	snprintf(cc->worker, sizeof cc->worker, "%s", worker);
	cc->lease_ms = lease_ms;
	dispatch *d = c->a->dispatch;
	http_request_on_abort(c->req, claim_abort, cc);
	int rv = d ? dispatch_claim(d, queue, worker, (unsigned)max, wait_ms,
				    lease_ms, claim_answer, cc, &cc->claim)
		   : -HORA_EUNAVAIL;
	json_decref(obj);
	if (rv != 0) {
		http_request_on_abort(c->req, NULL, NULL);
		hora_free(cc);
		reply_unavailable_or(c, rv);
	}
}

/* ---- stream (push delivery) ------------------------------------------ */

#define STREAM_KEEPALIVE_MS 15000
#define STREAM_INFLIGHT_DEFAULT 1
/* Unsent bytes a stream may hold before its client counts as not reading:
 * the credit bounds runs, not bytes (a run's line can be ~1 MiB). */
#define STREAM_BACKLOG_MAX ((size_t)16 << 20)

typedef struct stream_ctx {
	api_call call;
	char worker[WORKER_MAX + 1];
	int64_t lease_ms;
	dispatch_stream *ds;
	uv_timer_t keepalive;
	uint64_t last_write; /* uv_now */
} stream_ctx;

static void stream_ctx_closed(uv_handle_t *h)
{
	hora_free(h->data);
}

static void stream_ctx_free(stream_ctx *sc)
{
	uv_timer_stop(&sc->keepalive);
	uv_close((uv_handle_t *)&sc->keepalive, stream_ctx_closed);
}

/* Client gone, or the server closing. */
static void stream_abort(http_request *req, void *ud)
{
	stream_ctx *sc = ud;
	(void)req;
	dispatch_stream_close(sc->ds);
	sc->ds = NULL;
	stream_ctx_free(sc);
}

/* This node stopped leading: end cleanly, the worker connects again. */
static void stream_end(void *ud)
{
	stream_ctx *sc = ud;
	sc->ds = NULL;
	http_stream_end(sc->call.req);
	stream_ctx_free(sc);
}

/* r's line as the stream sends it, handed out at `at`; NULL on ENOMEM.
 * *len counts the newline that ends it (no NUL after it). */
static char *stream_line(stream_ctx *sc, const run *r, hora_time at,
			 size_t *len)
{
	json_t *o = handed_out_json(&sc->call, r, sc->worker, sc->lease_ms, at);
	char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (line != NULL) {
		*len = strlen(line) + 1;
		line[*len - 1] = '\n'; /* replaces the NUL */
	}
	return line;
}

/* A client that does not read: cut it; what it did not get goes out
 * again when those leases expire.  true if cut (sc is going). */
static bool stream_cut_if_stuck(stream_ctx *sc)
{
	if (http_stream_backlog(sc->call.req) <= STREAM_BACKLOG_MAX)
		return false;
	log_warn("stream to %s: %zu bytes unread; cutting it", sc->worker,
		 http_stream_backlog(sc->call.req));
	dispatch_stream_close(sc->ds);
	sc->ds = NULL;
	http_stream_cut(sc->call.req);
	stream_ctx_free(sc);
	return true;
}

/* One line per run, written the instant it is handed out. */
static void stream_push(void *ud, run *const *runs, size_t n)
{
	stream_ctx *sc = ud;
	hora_time now = hora_wallclock_usec();
	for (size_t i = 0; i < n; i++) {
		size_t len;
		char *line = stream_line(sc, runs[i], now, &len);
		int rv = -HORA_ENOMEM;
		if (line != NULL) {
			rv = http_stream_write(sc->call.req, line, len);
			free(line);
		}
		if (rv != 0) {
			/* the stream is cut (abort callback to come); runs not
			 * written go out again when their lease expires */
			log_warn("stream to %s: cannot write run %llu: %s",
				 sc->worker, (unsigned long long)runs[i]->id,
				 hora_strerror(rv));
			return;
		}
	}
	sc->last_write = uv_now(sc->call.a->loop);
	stream_cut_if_stuck(sc);
}

/* Hand-out ahead (dispatch.h): the line is written by the HTTP server's
 * courier thread at the run's due instant, whatever the loop does then. */
static bool stream_can_ahead(void *ud)
{
	stream_ctx *sc = ud;
	return http_stream_can_write_at(sc->call.req);
}

static int stream_ahead(void *ud, run *r)
{
	stream_ctx *sc = ud;
	size_t len;
	char *line = stream_line(sc, r, r->due_at, &len);
	if (line == NULL)
		return -HORA_ENOMEM;
	int rv = http_stream_write_at(sc->call.req, r->due_at, line, len,
				      r->id);
	free(line);
	return rv;
}

static int stream_revoke(void *ud, uint64_t id, hora_time *at)
{
	stream_ctx *sc = ud;
	switch (http_stream_revoke(sc->call.req, id, at)) {
	case HTTP_REVOKED:
		return DISPATCH_REVOKED;
	case HTTP_WRITTEN:
		return DISPATCH_WRITTEN;
	default:
		return DISPATCH_UNKNOWN;
	}
}

static void stream_written(void *ud, uint64_t id, int64_t at)
{
	stream_ctx *sc = ud;
	if (sc->ds == NULL)
		return;
	dispatch_stream_written(sc->ds, id, at);
	sc->last_write = uv_now(sc->call.a->loop);
	stream_cut_if_stuck(sc);
}

static const dispatch_stream_ops stream_ops = {
	.push = stream_push,
	.can_ahead = stream_can_ahead,
	.ahead = stream_ahead,
	.revoke = stream_revoke,
	.end = stream_end,
};

/* An empty line while idle, so proxies and clients see a live stream. */
static void stream_keepalive(uv_timer_t *t)
{
	stream_ctx *sc = t->data;
	uint64_t now = uv_now(sc->call.a->loop);
	if (now - sc->last_write + 50 < STREAM_KEEPALIVE_MS)
		return;
	if (http_stream_write(sc->call.req, "\n", 1) == 0)
		sc->last_write = now;
}

static void stream(api_call *c, const char *queue)
{
	static const char *const allowed[] = {"worker", "max_inflight",
					      "lease_ms", NULL};
	json_int_t max = STREAM_INFLIGHT_DEFAULT, lease_ms;
	dispatch *d = c->a->dispatch;
	const char *worker;
	json_t *obj;

	if (!worker_request(c, queue, allowed, &obj, &worker, &lease_ms))
		return;
	if (!int_field(c, obj, "max_inflight", 1, DISPATCH_CLAIM_MAX, &max)) {
		json_decref(obj);
		return;
	}
	if (d == NULL || !dispatch_leading(d)) {
		json_decref(obj);
		reply_unavailable_or(c, -HORA_ENOTLEADER);
		return;
	}
	stream_ctx *sc = hora_calloc(1, sizeof *sc);
	if (sc == NULL) {
		json_decref(obj);
		api_reply_error(c, 500, "internal", "out of memory", NULL);
		return;
	}
	sc->call = *c;
	snprintf(sc->worker, sizeof sc->worker, "%s", worker);
	sc->lease_ms = lease_ms;
	json_decref(obj);
	http_response_header(c->req, "Cache-Control", "no-store");
	api_count(c, 200);
	if (http_respond_stream(c->req, 200, "application/x-ndjson") != 0) {
		hora_free(sc);
		return; /* answered 500 */
	}
	uv_timer_init(c->a->loop, &sc->keepalive);
	sc->keepalive.data = sc;
	sc->last_write = uv_now(c->a->loop);
	uv_timer_start(&sc->keepalive, stream_keepalive, STREAM_KEEPALIVE_MS,
		       STREAM_KEEPALIVE_MS);
	http_request_on_abort(c->req, stream_abort, sc);
	http_stream_on_written(c->req, stream_written, sc);
	/* may push runs already ready before it returns */
	int rv = dispatch_stream_open(d, queue, sc->worker, (unsigned)max,
				      lease_ms, &stream_ops, sc, &sc->ds);
	if (rv != 0) {
		/* leadership went in between, or out of memory: a clean end,
		 * the worker connects again */
		http_request_on_abort(c->req, NULL, NULL);
		http_stream_end(c->req);
		stream_ctx_free(sc);
	}
}

/* ---- heartbeat -------------------------------------------------------- */

static void heartbeat_committed(void *ud, int status, const fsm_result *res)
{
	api_pending *p = api_pending_take(ud);
	if (p == NULL)
		return; /* the client left */
	api_call *c = &p->call;
	if (status != 0) {
		reply_unavailable_or(c, status);
	} else if (res == NULL || res->count < 1 ||
		   res->outcome[0] != FSM_OK) {
		reply_unavailable_or(c, -HORA_ECONFLICT);
	} else {
		uint64_t id = strtoull(p->name, NULL, 10);
		run *r = fsm_run(fsm_of(c), id);
		char buf[HORA_TIME_STRLEN] = "";
		if (r && r->status == RUN_RUNNING)
			timefmt_format(r->lease_expires_at, 0, TIMEFMT_Z, buf);
		api_reply_json(c, 200,
			       json_pack("{s:s,s:s?,s:b}", "id", p->name,
					 "lease_expires_at", buf[0] ? buf : NULL,
					 "released", p->kind == 1));
	}
	api_pending_free(p);
}

static void heartbeat(api_call *c, const char *id_s)
{
	static const char *const allowed[] = {"worker", "lease_ms", NULL};
	uint64_t id;
	json_int_t lease_ms = DISPATCH_LEASE_MS_DEFAULT;
	if (!parse_run_id(c, id_s, &id))
		return;
	json_t *obj = api_body_object(c);
	if (obj == NULL)
		return;
	const char *worker;
	json_t *lv = json_object_get(obj, "lease_ms");
	bool release = json_is_integer(lv) && json_integer_value(lv) == 0;
	if (!known_fields(c, obj, "", allowed) ||
	    (worker = worker_field(c, obj)) == NULL ||
	    (!release && !int_field(c, obj, "lease_ms", LEASE_MS_MIN,
				    LEASE_MS_MAX, &lease_ms))) {
		json_decref(obj);
		return;
	}
	if (release)
		lease_ms = 0; /* lease_ms 0 hands the run back */
	api_pending *p = api_pending_new(c, lease_ms == 0 ? 1 : 0);
	if (p == NULL) {
		json_decref(obj);
		api_reply_error(c, 500, "internal", "out of memory", NULL);
		return;
	}
	snprintf(p->name, sizeof p->name, "%llu", (unsigned long long)id);
	dispatch *d = c->a->dispatch;
	int rv = d ? dispatch_heartbeat(d, id, worker, lease_ms,
					heartbeat_committed, p)
		   : -HORA_EUNAVAIL;
	json_decref(obj);
	if (rv != 0) {
		api_pending_settle(p);
		api_pending_free(p);
		reply_unavailable_or(c, rv);
	}
}

/* ---- complete --------------------------------------------------------- */

typedef struct complete_ctx {
	api_pending base;
	bool batch;
	size_t n;
	uint64_t *ids;
	bool *lost;
	bool *missing; /* no such run */
} complete_ctx;

/* Decode one completion object into *it (strings borrowed from obj). */
static bool complete_item_from(api_call *c, json_t *o, const char *prefix,
			       const char *worker, complete_item *it)
{
	static const char *const allowed[] = {"worker", "status", "exit_code",
					      "output", "error", "attempt",
					      "id", NULL};
	char field[64];
	if (!json_is_object(o)) {
		api_reply_error(c, 400, "invalid_argument",
				"each completion must be an object", prefix);
		return false;
	}
	if (!known_fields(c, o, prefix, allowed))
		return false;
	json_t *st = json_object_get(o, "status");
	const char *s = json_is_string(st) ? json_string_value(st) : "";
	if (strcmp(s, "succeeded") == 0)
		it->status = RUN_SUCCEEDED;
	else if (strcmp(s, "failed") == 0)
		it->status = RUN_FAILED;
	else if (strcmp(s, "timed_out") == 0)
		it->status = RUN_TIMED_OUT;
	else {
		snprintf(field, sizeof field, "%sstatus", prefix);
		api_reply_error(c, 400, "invalid_argument",
				"status must be succeeded, failed or timed_out",
				field);
		return false;
	}
	json_int_t code = -1, attempt = 0;
	if (!int_field(c, o, "exit_code", -1, INT32_MAX, &code) ||
	    !int_field(c, o, "attempt", 1, UINT32_MAX, &attempt))
		return false;
	json_t *out = json_object_get(o, "output");
	json_t *er = json_object_get(o, "error");
	if ((out && !json_is_string(out) && !json_is_null(out)) ||
	    (er && !json_is_string(er) && !json_is_null(er))) {
		snprintf(field, sizeof field, "%s%s", prefix,
			 out && !json_is_string(out) ? "output" : "error");
		api_reply_error(c, 400, "invalid_argument",
				"output and error must be strings", field);
		return false;
	}
	it->worker = worker;
	it->exit_code = (int32_t)code;
	it->attempt = (uint32_t)attempt; /* 0: the current one */
	if (json_is_string(out)) {
		size_t len = json_string_length(out);
		const char *text = json_string_value(out);
		/* keep the tail, as executors do */
		if (len > EXEC_OUTPUT_MAX) {
			text += len - EXEC_OUTPUT_MAX;
			len = EXEC_OUTPUT_MAX;
		}
		it->output = text;
		it->output_len = len;
	}
	if (json_is_string(er)) {
		const char *e = json_string_value(er);
		it->error = strlen(e) > 4096 ? e + strlen(e) - 4096 : e;
	}
	return true;
}

static void complete_committed(void *ud, int status, const fsm_result *res)
{
	complete_ctx *cx = ud;
	api_pending *p = &cx->base;
	api_call *c = &p->call;
	if (!api_pending_settle(p))
		goto out;
	if (status != 0) {
		reply_unavailable_or(c, status);
		goto out;
	}
	/* map the committed outcomes back onto the request's items */
	size_t k = 0;
	bool ok[COMPLETE_BATCH_MAX];
	for (size_t i = 0; i < cx->n; i++) {
		if (cx->lost[i]) {
			ok[i] = false;
			continue;
		}
		ok[i] = res && k < res->count && res->outcome[k] == FSM_OK;
		k++;
	}
	fsm *f = fsm_of(c);
	hora_time now = hora_wallclock_usec();
	if (!cx->batch) {
		if (!ok[0]) {
			reply_unavailable_or(c, -HORA_ECONFLICT);
		} else {
			run *r = fsm_run(f, cx->ids[0]);
			job *j = r ? store_get(fsm_store(f), r->job) : NULL;
			api_reply_json(c, 200,
				       r ? run_to_json(r, j, now) : NULL);
		}
		goto out;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < cx->n; i++) {
		char id[24];
		snprintf(id, sizeof id, "%llu", (unsigned long long)cx->ids[i]);
		if (ok[i]) {
			json_array_append_new(arr, json_pack("{s:s,s:b}", "id",
							     id, "ok", 1));
			continue;
		}
		/* the per-run error is the inner object of the envelope */
		json_t *env = cx->missing[i]
				      ? api_error_json("not_found",
						       "no such run", NULL)
				      : api_error_json("lease_lost",
						       "this worker no longer "
						       "holds the run's lease",
						       NULL);
		json_t *inner = json_incref(json_object_get(env, "error"));
		json_decref(env);
		json_array_append_new(arr, json_pack("{s:s,s:b,s:o}", "id", id,
						     "ok", 0, "error", inner));
	}
	api_reply_json(c, 200, json_pack("{s:o}", "results", arr));
out:
	hora_free(cx->ids);
	hora_free(cx->lost);
	hora_free(cx->missing);
	api_pending_free(p);
}

static void complete_common(api_call *c, json_t *obj, json_t *list,
			    const char *worker, const uint64_t *single_id)
{
	size_t n = single_id ? 1 : json_array_size(list);
	complete_ctx *cx = hora_calloc(1, sizeof *cx);
	complete_item *items = hora_calloc(n ? n : 1, sizeof *items);
	if (cx == NULL || items == NULL ||
	    (cx->ids = hora_calloc(n ? n : 1, sizeof *cx->ids)) == NULL ||
	    (cx->lost = hora_calloc(n ? n : 1, sizeof *cx->lost)) == NULL ||
	    (cx->missing = hora_calloc(n ? n : 1, sizeof *cx->missing)) ==
		    NULL) {
		if (cx) {
			hora_free(cx->ids);
			hora_free(cx->lost);
			hora_free(cx);
		}
		hora_free(items);
		api_reply_error(c, 500, "internal", "out of memory", NULL);
		return;
	}
	cx->batch = single_id == NULL;
	cx->n = n;
	fsm *f = fsm_of(c);
	for (size_t i = 0; i < n; i++) {
		char prefix[32] = "";
		json_t *o = single_id ? obj : json_array_get(list, i);
		if (!single_id)
			snprintf(prefix, sizeof prefix, "runs[%zu].", i);
		if (!complete_item_from(c, o, prefix, worker, &items[i]))
			goto fail;
		if (single_id) {
			cx->ids[i] = *single_id;
		} else {
			json_t *idv = json_object_get(o, "id");
			char *end;
			const char *ids = json_is_string(idv)
						  ? json_string_value(idv)
						  : "";
			cx->ids[i] = strtoull(ids, &end, 10);
			if (*ids == '\0' || *end != '\0') {
				char field[48];
				snprintf(field, sizeof field, "runs[%zu].id", i);
				api_reply_error(c, 400, "invalid_argument",
						"id must be a run id string",
						field);
				goto fail;
			}
		}
		items[i].run = cx->ids[i];
		run *r = fsm_run(f, cx->ids[i]);
		cx->missing[i] = r == NULL;
		if (items[i].attempt == 0)
			items[i].attempt = r ? r->attempt : 1;
		if (single_id && r == NULL) {
			api_reply_error(c, 404, "not_found", "no such run",
					NULL);
			goto fail;
		}
	}
	api_pending_init(&cx->base, c, 0);
	dispatch *d = c->a->dispatch;
	int rv = d ? dispatch_complete(d, items, n, cx->lost,
				       complete_committed, cx)
		   : -HORA_EUNAVAIL;
	hora_free(items);
	if (rv != 0) {
		api_pending_settle(&cx->base);
		hora_free(cx->ids);
		hora_free(cx->lost);
		hora_free(cx->missing);
		hora_free(cx);
		reply_unavailable_or(c, rv);
	}
	return;
fail:
	hora_free(items);
	hora_free(cx->ids);
	hora_free(cx->lost);
	hora_free(cx->missing);
	hora_free(cx);
}

static void complete_one(api_call *c, const char *id_s)
{
	uint64_t id;
	if (!parse_run_id(c, id_s, &id))
		return;
	json_t *obj = api_body_object(c);
	if (obj == NULL)
		return;
	const char *worker = worker_field(c, obj);
	if (worker)
		complete_common(c, obj, NULL, worker, &id);
	json_decref(obj);
}

static void complete_batch(api_call *c)
{
	static const char *const allowed[] = {"worker", "runs", NULL};
	json_t *obj = api_body_object(c);
	if (obj == NULL)
		return;
	const char *worker;
	json_t *list = json_object_get(obj, "runs");
	if (known_fields(c, obj, "", allowed) &&
	    (worker = worker_field(c, obj)) != NULL) {
		if (!json_is_array(list) || json_array_size(list) == 0 ||
		    json_array_size(list) > COMPLETE_BATCH_MAX)
			api_reply_error(c, 400, "invalid_argument",
					"runs must be an array of 1-1000 "
					"completions",
					"runs");
		else
			complete_common(c, obj, list, worker, NULL);
	}
	json_decref(obj);
}

/* ---- history, queues, trigger ----------------------------------------- */

static void job_runs(api_call *c, const char *name)
{
	fsm *f = fsm_of(c);
	job *j = store_get(fsm_store(f), name);
	const char *limit_s = http_request_query(c->req, "limit");
	const char *status_s = http_request_query(c->req, "status");
	long limit = HISTORY_LIMIT_DEFAULT;
	int want = -1;
	bool want_ready = false;

	if (j == NULL) {
		char msg[300];
		snprintf(msg, sizeof msg, "no job named '%s'", name);
		api_reply_error(c, 404, "not_found", msg, NULL);
		return;
	}
	if (limit_s) {
		char *end;
		limit = strtol(limit_s, &end, 10);
		if (*limit_s == '\0' || *end || limit < 1 ||
		    limit > HISTORY_LIMIT_MAX) {
			api_reply_error(c, 400, "invalid_argument",
					"limit must be a whole number from 1 to "
					"1000",
					"limit");
			return;
		}
	}
	if (status_s && *status_s) {
		want = run_status_parse(status_s, &want_ready);
		if (want < 0) {
			api_reply_error(c, 400, "invalid_argument",
					"status must be one of scheduled, ready, "
					"running, succeeded, failed, timed_out, "
					"skipped, cancelled",
					"status");
			return;
		}
	}
	hora_time now = hora_wallclock_usec();
	json_t *arr = json_array();
	long n = 0;
	for (run *r = j->runs; r && n < limit; r = r->job_next) {
		if (want >= 0) {
			if (r->status != want)
				continue;
			if (want == RUN_SCHEDULED &&
			    want_ready != (r->due_at <= now))
				continue;
		}
		json_array_append_new(arr, run_to_json(r, j, now));
		n++;
	}
	api_reply_json(c, 200, json_pack("{s:o}", "runs", arr));
}

static void get_run(api_call *c, const char *id_s)
{
	uint64_t id;
	if (!parse_run_id(c, id_s, &id))
		return;
	fsm *f = fsm_of(c);
	run *r = fsm_run(f, id);
	if (r == NULL) {
		api_reply_error(c, 404, "not_found", "no such run", NULL);
		return;
	}
	api_reply_json(c, 200,
		       run_to_json(r, store_get(fsm_store(f), r->job),
				   hora_wallclock_usec()));
}

typedef struct queue_count {
	const char *name;
	uint64_t scheduled, ready, running;
} queue_count;

typedef struct queue_tally {
	queue_count q[256];
	size_t n;
	hora_time now;
} queue_tally;

static queue_count *tally_slot(queue_tally *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->q[i].name, name) == 0)
			return &t->q[i];
	if (t->n == 256)
		return NULL;
	t->q[t->n] = (queue_count){name, 0, 0, 0};
	return &t->q[t->n++];
}

static int tally_run(run *r, void *ud)
{
	queue_tally *t = ud;
	if (run_is_final(r))
		return 0;
	queue_count *q = tally_slot(t, r->queue);
	if (q == NULL)
		return 0;
	if (r->status == RUN_RUNNING || dispatch_handout_of(r, NULL))
		q->running++;
	else if (r->due_at <= t->now)
		q->ready++;
	else
		q->scheduled++;
	return 0;
}

static int tally_queue(const char *name, void *ud)
{
	tally_slot(ud, name);
	return 0;
}

static void queues(api_call *c)
{
	static queue_tally t;
	fsm *f = fsm_of(c);
	t.n = 0;
	t.now = hora_wallclock_usec();
	store_each_intern(fsm_store(f), tally_queue, &t);
	fsm_each_run(f, tally_run, &t);
	json_t *arr = json_array();
	for (size_t i = 0; i < t.n; i++)
		json_array_append_new(
			arr, json_pack("{s:s,s:I,s:I,s:I}", "name", t.q[i].name,
				       "scheduled", (json_int_t)t.q[i].scheduled,
				       "ready", (json_int_t)t.q[i].ready,
				       "running", (json_int_t)t.q[i].running));
	api_reply_json(c, 200, json_pack("{s:o}", "queues", arr));
}

static void trigger_committed(void *ud, int status, const fsm_result *res)
{
	api_pending *p = api_pending_take(ud);
	if (p == NULL)
		return; /* the client left */
	api_call *c = &p->call;
	if (status != 0) {
		reply_unavailable_or(c, status);
	} else if (res == NULL || res->count < 1 ||
		   res->outcome[0] == FSM_NOT_FOUND) {
		char msg[300];
		snprintf(msg, sizeof msg, "no job named '%s'", p->name);
		api_reply_error(c, 404, "not_found", msg, NULL);
	} else {
		fsm *f = fsm_of(c);
		run *r = fsm_run(f, fsm_run_id(res->index, 0));
		api_reply_json(c, 201,
			       r ? run_to_json(r, store_get(fsm_store(f), p->name),
					       hora_wallclock_usec())
				 : NULL);
	}
	api_pending_free(p);
}

void api_trigger(api_call *c, const char *name)
{
	if (store_get(fsm_store(fsm_of(c)), name) == NULL) {
		char msg[300];
		snprintf(msg, sizeof msg, "no job named '%s'", name);
		api_reply_error(c, 404, "not_found", msg, NULL);
		return;
	}
	api_pending *p = api_pending_new(c, 0);
	if (p == NULL) {
		api_reply_error(c, 500, "internal", "out of memory", NULL);
		return;
	}
	snprintf(p->name, sizeof p->name, "%s", name);
	dispatch *d = c->a->dispatch;
	int rv = d ? dispatch_trigger(d, name, trigger_committed, p)
		   : -HORA_EUNAVAIL;
	if (rv != 0) {
		api_pending_settle(p);
		api_pending_free(p);
		reply_unavailable_or(c, rv);
	}
}

void api_job_runs(api_call *c, const char *name)
{
	job_runs(c, name);
}

/* /v1/runs..., /v1/runs:complete, /v1/queues... */
void api_runs_route(api_call *c, const char *const *seg, size_t nseg)
{
	const char *m = http_request_method(c->req);
	bool post = strcmp(m, "POST") == 0, get = strcmp(m, "GET") == 0;

	if (strcmp(seg[0], "runs:complete") == 0 && nseg == 1) {
		c->route = API_ROUTE_COMPLETE_BATCH;
		if (post)
			return complete_batch(c);
	} else if (strcmp(seg[0], "runs") == 0 && nseg == 2) {
		c->route = API_ROUTE_RUN_GET;
		if (get)
			return get_run(c, seg[1]);
	} else if (strcmp(seg[0], "runs") == 0 && nseg == 3 &&
		   strcmp(seg[2], "heartbeat") == 0) {
		c->route = API_ROUTE_HEARTBEAT;
		if (post)
			return heartbeat(c, seg[1]);
	} else if (strcmp(seg[0], "runs") == 0 && nseg == 3 &&
		   strcmp(seg[2], "complete") == 0) {
		c->route = API_ROUTE_COMPLETE;
		if (post)
			return complete_one(c, seg[1]);
	} else if (strcmp(seg[0], "queues") == 0 && nseg == 1) {
		c->route = API_ROUTE_QUEUES;
		if (get)
			return queues(c);
	} else if (strcmp(seg[0], "queues") == 0 && nseg == 3 &&
		   strcmp(seg[2], "claim") == 0) {
		c->route = API_ROUTE_CLAIM;
		if (post)
			return claim(c, seg[1]);
	} else if (strcmp(seg[0], "queues") == 0 && nseg == 3 &&
		   strcmp(seg[2], "stream") == 0) {
		c->route = API_ROUTE_STREAM;
		if (post)
			return stream(c, seg[1]);
	} else {
		api_reply_error(c, 404, "not_found", "no such route", NULL);
		return;
	}
	http_response_header(c->req, "Allow", get ? "POST" : "GET");
	api_reply_error(c, 405, "method_not_allowed",
			"this route does not take that method", NULL);
}
