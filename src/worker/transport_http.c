#include "worker/transport_http.h"

#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/timefmt.h"
#include "net/curl_loop.h"
#include "worker/run_api.h"

typedef struct jcache_ent {
	char *job;
	int64_t timeout_usec;
	uint64_t at_ms;
} jcache_ent;

struct transport_http {
	uv_loop_t *loop;
	curl_loop *cl;
	const char *base;
	const char *token;
	const char *id;
	httpc_conf conf;
	jcache_ent cache[THTTP_JOB_CACHE_MAX];
	/* Runs read from streams wait here for the next loop turn: they
	 * arrive inside libcurl's write callback, where the engine's calls
	 * (new requests on the same multi handle) are refused. */
	uv_timer_t deliver;
	struct wreq *pending; /* streams with runs to hand over */
};

/* A request in flight; the engine sees it as an engine_call. */
typedef struct wreq {
	curl_loop_xfer x; /* x.easy; in flight while added */
	transport_http *t;
	run_api_call kind;
	struct curl_slist *hdrs;
	char *url;
	char *payload;
	char *job; /* RUN_API_JOB: the job's name */
	httpc_body body; /* the answer, '\0'-terminated */
	char errbuf[CURL_ERROR_SIZE];
	CURLcode rc;
	engine_cb cb;
	void *ud;
	/* RUN_API_STREAM: runs go to `pushed` line by line; `cb` ends it */
	engine_cb pushed;
	hora_buf line; /* a line not complete yet */
	int stream_ok; /* 0 not known yet, 1 a 200: lines, -1 an error */
	json_t *runs;  /* read, not yet handed over (an array), or NULL */
	struct wreq *pprev, *pnext; /* t->pending while `runs` */
} wreq;

/* ------------------------------------------------------------------ */
/* The job cache (for timeouts) */

static jcache_ent *jcache_find(transport_http *t, const char *name)
{
	uint64_t now = uv_now(t->loop);
	for (size_t i = 0; i < THTTP_JOB_CACHE_MAX; i++) {
		jcache_ent *e = &t->cache[i];
		if (e->job != NULL && strcmp(e->job, name) == 0)
			return now - e->at_ms < THTTP_JOB_CACHE_TTL_MS ? e
								       : NULL;
	}
	return NULL;
}

static void jcache_put(transport_http *t, const char *name,
		       int64_t timeout_usec)
{
	jcache_ent *slot = NULL;
	for (size_t i = 0; i < THTTP_JOB_CACHE_MAX && slot == NULL; i++)
		if (t->cache[i].job != NULL &&
		    strcmp(t->cache[i].job, name) == 0)
			slot = &t->cache[i];
	for (size_t i = 0; i < THTTP_JOB_CACHE_MAX && slot == NULL; i++)
		if (t->cache[i].job == NULL)
			slot = &t->cache[i];
	if (slot == NULL) { /* full: the oldest goes */
		slot = &t->cache[0];
		for (size_t i = 1; i < THTTP_JOB_CACHE_MAX; i++)
			if (t->cache[i].at_ms < slot->at_ms)
				slot = &t->cache[i];
	}
	if (slot->job == NULL || strcmp(slot->job, name) != 0) {
		char *copy = hora_strdup(name);
		if (copy == NULL)
			return;
		hora_free(slot->job);
		slot->job = copy;
	}
	slot->timeout_usec = timeout_usec;
	slot->at_ms = uv_now(t->loop);
}

/* ------------------------------------------------------------------ */
/* Requests on the curl driver */

static size_t stream_write(char *ptr, size_t size, size_t nmemb, void *ud);
static void deliver(struct wreq *r);

static void pending_unlink(wreq *r)
{
	transport_http *t = r->t;
	if (r->runs == NULL)
		return;
	if (r->pprev != NULL)
		r->pprev->pnext = r->pnext;
	else
		t->pending = r->pnext;
	if (r->pnext != NULL)
		r->pnext->pprev = r->pprev;
	r->pprev = r->pnext = NULL;
	json_decref(r->runs);
	r->runs = NULL;
}

static void wreq_free(wreq *r)
{
	pending_unlink(r);
	curl_loop_remove(&r->x);
	if (r->x.easy != NULL)
		curl_easy_cleanup(r->x.easy);
	curl_slist_free_all(r->hdrs);
	hora_free(r->url);
	hora_free(r->payload);
	hora_free(r->job);
	buf_free(&r->body.buf);
	buf_free(&r->line);
	hora_free(r);
}

/* A sentence for a failed request. */
static const char *wreq_describe(const wreq *r, long status,
				 const json_t *json, char *buf, size_t n)
{
	if (status != 0)
		return run_api_why(r->kind, status, json, buf, n);
	if (r->body.too_large) {
		snprintf(buf, n, "answer from %s is too large", r->t->base);
	} else if (r->body.buf.oom) {
		snprintf(buf, n, "out of memory");
	} else {
		char why[CURL_ERROR_SIZE + 64];
		httpc_error_text(r->x.easy, r->rc, r->errbuf, why,
				 sizeof why);
		snprintf(buf, n, "cannot reach %s: %s", r->t->base, why);
	}
	return buf;
}

/* A claim's runs, with the cached timeouts of their jobs. */
static void claim_answer(wreq *r, const json_t *json, engine_answer *a)
{
	engine_claimed *runs;
	size_t n;
	int rv = run_api_claimed(json, &runs, &n);

	if (rv != 0) {
		a->outcome = rv == -HORA_ENOMEM ? ENGINE_TRANSIENT
						: ENGINE_REJECTED;
		a->why = rv == -HORA_ENOMEM ? "out of memory"
					    : "the answer has no runs array";
		r->cb(r->ud, a);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		jcache_ent *e = runs[i].job ? jcache_find(r->t, runs[i].job)
					    : NULL;
		if (e != NULL) {
			runs[i].timeout_known = true;
			runs[i].timeout_usec = e->timeout_usec;
		}
	}
	a->runs = runs;
	a->nruns = n;
	r->cb(r->ud, a);
	hora_free(runs);
}

/* A job's timeout ("timeout" as a duration; absent: none). */
static bool job_answer(wreq *r, const json_t *json, engine_answer *a)
{
	const json_t *to = json_object_get(json, "timeout");
	int64_t usec = 0;
	hora_error err;

	if (!json_is_object(json))
		return false;
	if (json_is_string(to) &&
	    duration_parse(json_string_value(to), &usec, "timeout", &err) != 0)
		usec = 0;
	jcache_put(r->t, r->job, usec);
	a->timeout_usec = usec;
	return true;
}

static void wreq_done(curl_loop_xfer *x, CURLcode rc)
{
	wreq *r = (wreq *)(void *)x; /* x is the first member */
	engine_answer a = {.why = ""};
	json_t *json = NULL;
	long status = 0;
	char buf[512];

	if (curl_loop_closing(r->t->cl)) {
		/* shutting down: nobody waits for it any more */
		wreq_free(r);
		return;
	}
	r->rc = rc;
	if (rc == CURLE_OK && !r->body.buf.oom) {
		curl_easy_getinfo(r->x.easy, CURLINFO_RESPONSE_CODE, &status);
		if (r->body.buf.len > 0)
			json = json_loadb(r->body.buf.p, r->body.buf.len,
					  JSON_DECODE_ANY, NULL);
	}
	a.outcome = run_api_outcome(status);
	if (r->kind == RUN_API_STREAM && r->stream_ok == 1) {
		/* the stream is over: a clean end, or cut (no answer); what
		 * it brought goes first */
		if (r->runs != NULL)
			deliver(r);
		if (rc != CURLE_OK) {
			a.outcome = ENGINE_TRANSIENT;
			a.why = wreq_describe(r, 0, NULL, buf, sizeof buf);
		}
		r->cb(r->ud, &a);
		goto out;
	}
	if (a.outcome == ENGINE_OK && r->kind == RUN_API_CLAIM) {
		claim_answer(r, json, &a);
		goto out;
	}
	if (a.outcome == ENGINE_OK && r->kind == RUN_API_JOB &&
	    !job_answer(r, json, &a))
		a.outcome = ENGINE_REJECTED;
	if (a.outcome != ENGINE_OK)
		a.why = wreq_describe(r, status, json, buf, sizeof buf);
	r->cb(r->ud, &a);
out:
	if (json != NULL)
		json_decref(json);
	wreq_free(r);
}

/*
 * Send `method` `path` with `body` (stolen; NULL for none); the answer
 * goes to cb(ud) as `kind` prescribes.  0, or -HORA_ENOMEM when the
 * request cannot even be made.
 */
static int w_http(transport_http *t, run_api_call kind, const char *method,
		  const char *path, json_t *body, long timeout_ms,
		  engine_cb cb, void *ud, engine_call **out)
{
	wreq *r = hora_calloc(1, sizeof *r);
	size_t ul;

	if (r == NULL)
		goto fail;
	*r = (wreq){.t = t, .kind = kind, .cb = cb, .ud = ud,
		    .body.max = THTTP_MAX_BODY};
	if (body != NULL) {
		r->payload = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(body);
		body = NULL;
		if (r->payload == NULL)
			goto fail;
	}
	ul = strlen(t->base) + strlen(path) + 1;
	if ((r->url = hora_malloc(ul)) == NULL)
		goto fail;
	snprintf(r->url, ul, "%s%s", t->base, path);
	if ((r->x.easy = curl_easy_init()) == NULL ||
	    httpc_api_headers(&r->hdrs, method, r->payload != NULL,
			      t->token) != 0)
		goto fail;
	if (httpc_prepare(r->x.easy, &t->conf,
			  &(httpc_req){
				  .method = method,
				  .url = r->url,
				  .body = r->payload,
				  .body_len = r->payload != NULL
						      ? strlen(r->payload)
						      : 0,
				  .headers = r->hdrs,
				  .timeout_ms = timeout_ms,
				  .errbuf = r->errbuf,
			  }) != CURLE_OK ||
	    curl_easy_setopt(r->x.easy, CURLOPT_WRITEFUNCTION,
			     kind == RUN_API_STREAM ? stream_write
						    : httpc_body_write) !=
		    CURLE_OK ||
	    curl_easy_setopt(r->x.easy, CURLOPT_WRITEDATA,
			     kind == RUN_API_STREAM ? (void *)r
						    : (void *)&r->body) !=
		    CURLE_OK)
		goto fail;
	/* a stream has no total timeout; 45 s without a byte (the server
	 * writes a line every 15 s) means the server is gone */
	if (kind == RUN_API_STREAM &&
	    (curl_easy_setopt(r->x.easy, CURLOPT_LOW_SPEED_LIMIT, 1L) !=
		     CURLE_OK ||
	     curl_easy_setopt(r->x.easy, CURLOPT_LOW_SPEED_TIME, 45L) !=
		     CURLE_OK))
		goto fail;
	r->x.done = wreq_done;
	if (curl_loop_add(t->cl, &r->x) != 0)
		goto fail;
	*out = (engine_call *)(void *)r;
	return 0;

fail:
	if (body != NULL)
		json_decref(body);
	if (r != NULL)
		wreq_free(r);
	return -HORA_ENOMEM;
}

/* Hand the runs read from stream r to the engine (on the loop, outside
 * libcurl's callbacks). */
static void deliver(wreq *r)
{
	transport_http *t = r->t;
	json_t *runs = json_incref(r->runs);
	size_t n = json_array_size(runs), k = 0;
	engine_claimed *c = hora_calloc(n ? n : 1, sizeof *c);

	pending_unlink(r);
	for (size_t i = 0; c != NULL && i < n; i++) {
		c[k] = run_api_claimed_one(json_array_get(runs, i));
		if (c[k].id == NULL || c[k].job == NULL)
			continue;
		jcache_ent *e = jcache_find(t, c[k].job);
		if (e != NULL) {
			c[k].timeout_known = true;
			c[k].timeout_usec = e->timeout_usec;
		}
		k++;
	}
	/* (out of memory: the runs' leases expire, they come again) */
	engine_answer a = {.outcome = ENGINE_OK, .why = "", .runs = c,
			   .nruns = k};
	if (k > 0)
		r->pushed(r->ud, &a);
	hora_free(c);
	json_decref(runs);
}

static void deliver_cb(uv_timer_t *h)
{
	transport_http *t = h->data;
	while (t->pending != NULL)
		deliver(t->pending);
}

/* Keep a run read from stream r until the next loop turn. */
static int stream_keep(wreq *r, json_t *rj)
{
	transport_http *t = r->t;
	if (r->runs == NULL) {
		if ((r->runs = json_array()) == NULL)
			return -1;
		r->pprev = NULL;
		r->pnext = t->pending;
		if (t->pending != NULL)
			t->pending->pprev = r;
		t->pending = r;
		uv_timer_start(&t->deliver, deliver_cb, 0, 0);
	}
	return json_array_append(r->runs, rj);
}

/* A stream's body: one run per line, an empty line now and then; an
 * answer other than 200 is kept whole for the error sentence. */
static size_t stream_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	wreq *r = ud;
	size_t n = size * nmemb;

	if (r->stream_ok == 0) {
		long status = 0;
		curl_easy_getinfo(r->x.easy, CURLINFO_RESPONSE_CODE, &status);
		r->stream_ok = status == 200 ? 1 : -1;
	}
	if (r->stream_ok < 0)
		return httpc_body_write(ptr, size, nmemb, &r->body);
	buf_add(&r->line, ptr, n);
	if (r->line.oom || r->line.len > THTTP_MAX_BODY)
		return 0; /* cut: the engine opens another */
	size_t start = 0;
	for (size_t i = 0; i < r->line.len; i++) {
		if (r->line.p[i] != '\n')
			continue;
		size_t len = i - start;
		if (len > 0) {
			json_t *rj = json_loadb(r->line.p + start, len, 0, NULL);
			if (json_is_object(rj) && stream_keep(r, rj) != 0) {
				json_decref(rj);
				return 0; /* out of memory: cut */
			}
			if (rj != NULL)
				json_decref(rj);
		}
		start = i + 1;
	}
	if (start > 0) {
		memmove(r->line.p, r->line.p + start, r->line.len - start);
		r->line.len -= start;
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* The engine's calls */

static int th_claim(void *ctx, const char *queue, unsigned max,
		    int64_t wait_ms, int64_t lease_ms, engine_cb cb, void *ud,
		    engine_call **out)
{
	transport_http *t = ctx;
	char *path = run_api_claim_path(queue);
	int rv;

	if (path == NULL)
		return -HORA_ENOMEM;
	rv = w_http(t, RUN_API_CLAIM, "POST", path,
		    run_api_claim_body(t->id, max, wait_ms, lease_ms),
		    (long)(wait_ms + THTTP_CLAIM_SLACK_MS), cb, ud, out);
	hora_free(path);
	return rv;
}

static int th_heartbeat(void *ctx, const char *id, int64_t lease_ms,
			engine_cb cb, void *ud, engine_call **out)
{
	transport_http *t = ctx;
	char *path = run_api_run_path(id, "heartbeat");
	long timeout = THTTP_REQUEST_TIMEOUT_MS;
	int rv;

	if (path == NULL)
		return -HORA_ENOMEM;
	if (lease_ms > 0) /* due again in lease_ms/3 */
		timeout = lease_ms / 3 < 1000 ? 1000 : (long)(lease_ms / 3);
	rv = w_http(t, lease_ms > 0 ? RUN_API_HEARTBEAT : RUN_API_RELEASE,
		    "POST", path, run_api_heartbeat_body(t->id, lease_ms),
		    timeout, cb, ud, out);
	hora_free(path);
	return rv;
}

static int th_complete(void *ctx, const engine_result *res, engine_cb cb,
		       void *ud, engine_call **out)
{
	transport_http *t = ctx;
	char *path = run_api_run_path(res->run_id, "complete");
	json_t *body;
	int rv;

	if (path == NULL)
		return -HORA_ENOMEM;
	if ((body = run_api_complete_body(t->id, res)) == NULL) {
		hora_free(path);
		return -HORA_ENOMEM;
	}
	rv = w_http(t, RUN_API_COMPLETE, "POST", path, body,
		    THTTP_REQUEST_TIMEOUT_MS, cb, ud, out);
	hora_free(path);
	return rv;
}

static int th_job_timeout(void *ctx, const char *job, engine_cb cb, void *ud,
			  engine_call **out)
{
	transport_http *t = ctx;
	hora_buf b = HORA_BUF_INIT;
	char *name = hora_strdup(job);
	int rv = -HORA_ENOMEM;

	buf_adds(&b, "/v1/jobs/");
	buf_add_pct(&b, job, BUF_PCT_SEGMENT);
	if (name != NULL && buf_str(&b) != NULL)
		rv = w_http(t, RUN_API_JOB, "GET", b.p, NULL,
			    THTTP_REQUEST_TIMEOUT_MS, cb, ud, out);
	buf_free(&b);
	if (rv != 0)
		hora_free(name);
	else
		((wreq *)(void *)*out)->job = name;
	return rv;
}

static int th_stream(void *ctx, const char *queue, unsigned max_inflight,
		     int64_t lease_ms, engine_cb pushed, engine_cb ended,
		     void *ud, engine_call **out)
{
	transport_http *t = ctx;
	char *path = run_api_stream_path(queue);
	int rv;

	if (path == NULL)
		return -HORA_ENOMEM;
	rv = w_http(t, RUN_API_STREAM, "POST", path,
		    run_api_stream_body(t->id, max_inflight, lease_ms), 0,
		    ended, ud, out);
	hora_free(path);
	if (rv == 0) /* no transfer runs before the next loop turn */
		((wreq *)(void *)*out)->pushed = pushed;
	return rv;
}

static void th_abort(void *ctx, engine_call *c)
{
	(void)ctx;
	wreq_free((wreq *)(void *)c);
}

const engine_transport transport_http_ops = {
	.claim = th_claim,
	.heartbeat = th_heartbeat,
	.complete = th_complete,
	.job_timeout = th_job_timeout,
	.abort = th_abort,
	.stream = th_stream,
};

int transport_http_new(uv_loop_t *loop, const char *base, const char *token,
		       const char *worker_id, const httpc_conf *conf,
		       transport_http **out, hora_error *err)
{
	transport_http *t = hora_calloc(1, sizeof *t);
	int rv;

	if (t == NULL)
		return hora_error_set(err, -HORA_ENOMEM, "", "out of memory");
	*t = (transport_http){.loop = loop, .base = base, .token = token,
			      .id = worker_id, .conf = *conf};
	if ((rv = curl_loop_new(loop, &t->cl, err)) != 0) {
		hora_free(t);
		return rv;
	}
	uv_timer_init(loop, &t->deliver);
	t->deliver.data = t;
	*out = t;
	return 0;
}

static void deliver_closed(uv_handle_t *h)
{
	hora_free(h->data);
}

void transport_http_close(transport_http *t)
{
	/* requests still in flight are dropped, their callbacks not run */
	curl_loop_close(t->cl, NULL, NULL);
	while (t->pending != NULL)
		pending_unlink(t->pending);
	for (size_t i = 0; i < THTTP_JOB_CACHE_MAX; i++)
		hora_free(t->cache[i].job);
	uv_timer_stop(&t->deliver);
	uv_close((uv_handle_t *)&t->deliver, deliver_closed);
}
