/*
 * cmd_worker.c - `hora worker`: an executor out of process (API.md "hora
 * — the CLI", "Runs", claim/heartbeat/complete).
 *
 * Everything runs on one libuv loop, on one thread:
 *
 *   - the API is spoken through a small asynchronous HTTP client (the
 *     requests of net/http_client.h as transfers on a net/curl_loop.h
 *     driver), so long-poll claims, heartbeats and completions never
 *     block each other or the runs;
 *   - runs execute in the built-in executor (src/exec: uv_spawn for
 *     `command`, its own curl driver for `http`), the same one horad
 *     uses.
 *
 * Slots.  --concurrency N bounds the runs held at once, from the claim
 * answer until the result is reported (or the run handed back).  Each
 * queue has at most one claim in flight; a claim asks for `max` runs and
 * reserves that many slots until it answers.  Free slots are shared among
 * the idle queues (round robin); when there are fewer free slots than
 * idle queues, claims use a short wait so that the queues take turns.
 *
 * A run: claimed -> job fetched (GET /v1/jobs/{job}, cached briefly, for
 * its timeout; without it the leader still enforces the timeout) ->
 * executed -> reported (POST /v1/runs/{id}/complete, retried on network
 * errors, 429 and 5xx).  From the claim on it is heartbeated every
 * lease_ms/3; a 409 (or 404) from a heartbeat means the lease is gone
 * (cancelled, expired, taken over): the execution is stopped and nothing
 * is reported.
 *
 * SIGTERM/SIGINT: claims are abandoned, runs not yet started are handed
 * back (heartbeat with lease_ms 0), running ones get --grace to finish and
 * report, then are cancelled and handed back; then exit 0.  A second
 * signal cancels the executions and exits at once (status 1).
 *
 * Server errors are logged and retried with backoff (1 s doubling to
 * 10 s); only bad usage is fatal.
 */
/* The offline build (HORA_SERVER=OFF) has no libcurl, jansson or libuv. */
#ifndef HORA_CLI_OFFLINE_ONLY

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <uv.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/timefmt.h"
#include "core/utf8.h"
#include "exec/exec.h"
#include "net/curl_loop.h"
#include "net/http_client.h"
#include "sched/job.h"
#include "sched/run_status.h"

#define W_QUEUES_MAX 64
#define W_CONCURRENCY_MAX 1024
#define W_ID_MAX 255
#define W_LEASE_MS_DEFAULT 60000
#define W_LEASE_MS_MIN 1000
#define W_LEASE_MS_MAX 3600000
#define W_WAIT_MS_DEFAULT 30000
#define W_WAIT_MS_MAX 300000
#define W_GRACE_DEFAULT_MS 10000
#define W_GRACE_MAX_MS 3600000
/* while queues take turns for too few slots */
#define W_STARVED_WAIT_MS 2000
/* an empty claim answer that came this early is followed by a pause */
#define W_EARLY_EMPTY_MS 500
#define W_BACKOFF_MIN_MS 1000
#define W_BACKOFF_MAX_MS 10000
#define W_CONNECT_TIMEOUT_MS 5000
#define W_REQUEST_TIMEOUT_MS 15000
/* a claim may take wait_ms, plus this */
#define W_CLAIM_SLACK_MS 15000
#define W_COMPLETE_TRIES 8
#define W_RELEASE_TRIES 3
#define W_JOB_CACHE_MAX 64
#define W_JOB_CACHE_TTL_MS 5000
#define W_MAX_BODY (64u << 20)

static const char worker_usage[] =
	"usage: hora worker [--queue Q]... [--concurrency N] [--worker-id ID]\n"
	"                   [--lease-ms MS] [--wait-ms MS] [--grace DURATION]\n"
	"\n"
	"Run an executor out of process: claim runs from the queues of the\n"
	"horad node at --addr, execute them and report their results.  A\n"
	"`command` run executes its argv (no shell) with HORA_RUN_ID,\n"
	"HORA_JOB, HORA_SCHEDULED_AT, HORA_ATTEMPT and HORA_PAYLOAD in its\n"
	"environment; an `http` run sends its request (2xx = success).  The\n"
	"output tail (64 KiB) and exit code (HTTP status) are reported.  Each\n"
	"run is logged to stderr when it ends.\n"
	"\n"
	"options:\n"
	"  --queue Q          claim from queue Q (repeatable; default: default)\n"
	"  --concurrency N    runs executed at once (1-1024, default 4)\n"
	"  --worker-id ID     name given to the server (default HOSTNAME-PID)\n"
	"  --lease-ms MS      lease asked for each run, renewed every MS/3\n"
	"                     (1000-3600000, default 60000)\n"
	"  --wait-ms MS       how long a claim waits for a due run (long poll,\n"
	"                     0-300000, default 30000)\n"
	"  --grace DURATION   after SIGTERM/SIGINT, how long running runs may\n"
	"                     take to finish (e.g. 10s, 500ms, 0s; default 10s)\n"
	"\n"
	"SIGTERM or SIGINT stops claiming, hands back the runs not started,\n"
	"lets running ones finish within --grace, then cancels the rest and\n"
	"hands them back (they are delivered again), and exits 0.  A second\n"
	"signal stops the executions and exits at once (status 1).\n"
	"Errors talking to the server are logged and retried.\n"
	"\n"
	"exit codes: 0 stopped by a signal, 1 failure to start, 2 bad usage\n";

typedef struct worker worker;
typedef struct wreq wreq;
typedef struct wqueue wqueue;
typedef struct wrun wrun;

/* ------------------------------------------------------------------ */
/* Logging */

static void wlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void wlog(const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof line - 2)
		n = (int)(sizeof line - 2);
	line[n++] = '\n';
	/* one write: lines of concurrent workers sharing stderr stay whole */
	fwrite(line, 1, (size_t)n, stderr);
	fflush(stderr);
}

/* ------------------------------------------------------------------ */
/* UTF-8: jansson only takes valid UTF-8 without NUL, and command output
 * is anything (its tail may even start inside a character). */

/* A JSON string of `n` bytes at `s`: invalid bytes and NUL become
 * U+FFFD, continuation bytes at the very start (a cut character) are
 * dropped.  NULL on allocation failure. */
static json_t *json_text(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, o = 0, lead = 0;
	char *buf;
	json_t *v;

	while (lead < n && lead < 3 && (p[lead] & 0xc0) == 0x80)
		lead++;
	i = lead;
	buf = hora_malloc((n - lead) * 3 + 1);
	if (buf == NULL)
		return NULL;
	while (i < n) {
		size_t l = utf8_seq(p + i, n - i, UTF8_NUL_BAD);
		if (l == 0) {
			memcpy(buf + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(buf + o, p + i, l);
			o += l;
			i += l;
		}
	}
	v = json_stringn(buf, o);
	hora_free(buf);
	return v;
}

/* ------------------------------------------------------------------ */
/* The worker */

typedef void (*wreq_cb)(wreq *r);

struct wreq {
	curl_loop_xfer x; /* x.easy; in flight while added */
	worker *w;
	struct curl_slist *hdrs;
	char *url;
	char *payload;
	httpc_body body; /* the answer, '\0'-terminated */
	char errbuf[CURL_ERROR_SIZE];
	CURLcode rc;
	long status; /* 0: no answer */
	json_t *json; /* the answer parsed, or NULL */
	wreq_cb cb;
	void *ud;
};

struct wqueue {
	worker *w;
	const char *name;
	char *claim_path;
	wreq *claim;    /* in flight */
	unsigned asked; /* slots reserved by that claim */
	uint64_t claim_sent;
	uv_timer_t retry;
	bool waiting; /* retry timer armed: backoff or pause */
	unsigned backoff_ms;
};

typedef enum {
	R_FETCH,   /* getting the job's timeout */
	R_EXEC,    /* executing */
	R_REPORT,  /* posting the result (maybe between tries) */
	R_RELEASE, /* handing the run back */
	R_DONE,    /* handles closing */
} wrun_state;

struct wrun {
	worker *w;
	wrun *prev, *next; /* w->runs while held */
	wrun_state state;
	char *id, *job, *scheduled_at;
	uint32_t attempt;
	json_t *run; /* the claimed run's JSON (command, http, payload) */
	int64_t timeout_usec;
	uint64_t started_ns;  /* uv_hrtime at executor_run */

	wreq *req; /* fetch, complete or release in flight */
	wreq *hb;  /* heartbeat in flight */
	exec_task *task;
	uv_timer_t hb_timer;
	uv_timer_t retry_timer;
	unsigned nhandles;
	unsigned tries;
	bool lost;             /* the server says we no longer hold it */
	bool release_on_cancel; /* cancelled at the end of the grace period */
	json_t *result;        /* the completion body */
};

typedef struct jcache_ent {
	char *job;
	int64_t timeout_usec;
	uint64_t at_ms;
} jcache_ent;

struct worker {
	uv_loop_t loop;
	executor *ex;
	curl_loop *cl; /* the requests to the API */
	char *base;
	const char *token;
	httpc_conf conf; /* --cacert, User-Agent, connect timeout */
	char id[W_ID_MAX + 1];

	wqueue queues[W_QUEUES_MAX];
	size_t nqueues;
	size_t rr;
	unsigned concurrency;
	unsigned nruns;   /* held */
	unsigned reserved; /* asked by claims in flight */
	int64_t lease_ms, wait_ms, grace_ms;
	wrun *runs;
	jcache_ent cache[W_JOB_CACHE_MAX];

	uv_signal_t sigterm, sigint;
	uv_timer_t grace_timer;
	bool stopping, grace_over, closing;
};

static void fill_slots(worker *w);
static void maybe_finish(worker *w);
static void run_release(wrun *r);
static void run_finish(wrun *r);

/* ------------------------------------------------------------------ */
/* Asynchronous HTTP: requests on the curl driver */

static void wreq_free(wreq *r)
{
	curl_loop_remove(&r->x);
	if (r->x.easy != NULL)
		curl_easy_cleanup(r->x.easy);
	curl_slist_free_all(r->hdrs);
	hora_free(r->url);
	hora_free(r->payload);
	buf_free(&r->body.buf);
	if (r->json != NULL)
		json_decref(r->json);
	hora_free(r);
}

/* Forget a request in flight: its callback will not run.  NULL is
 * fine. */
static void wreq_abort(wreq *r)
{
	if (r != NULL)
		wreq_free(r);
}

static void wreq_done(curl_loop_xfer *x, CURLcode rc)
{
	wreq *r = (wreq *)(void *)x; /* x is the first member */

	if (curl_loop_closing(r->w->cl)) {
		/* shutting down: nobody waits for it any more */
		wreq_free(r);
		return;
	}
	r->rc = rc;
	if (rc == CURLE_OK && !r->body.buf.oom) {
		curl_easy_getinfo(r->x.easy, CURLINFO_RESPONSE_CODE,
				  &r->status);
		if (r->body.buf.len > 0)
			r->json = json_loadb(r->body.buf.p, r->body.buf.len,
					     JSON_DECODE_ANY, NULL);
	} else {
		r->status = 0;
	}
	r->cb(r);
	wreq_free(r);
}

/*
 * Send `method` `path` with `body` (stolen; NULL for none).  `cb` runs
 * once, later, on the loop (status 0 when no answer came), unless the
 * request is aborted first.  NULL when the request cannot even be made
 * (out of memory): the caller treats it like a network failure.
 */
static wreq *w_http(worker *w, const char *method, const char *path,
		    json_t *body, long timeout_ms, wreq_cb cb, void *ud)
{
	wreq *r = hora_calloc(1, sizeof *r);
	size_t ul;

	if (r == NULL)
		goto fail;
	r->w = w;
	r->cb = cb;
	r->ud = ud;
	r->body.max = W_MAX_BODY;
	if (body != NULL) {
		r->payload = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(body);
		body = NULL;
		if (r->payload == NULL)
			goto fail;
	}
	ul = strlen(w->base) + strlen(path) + 1;
	if ((r->url = hora_malloc(ul)) == NULL)
		goto fail;
	snprintf(r->url, ul, "%s%s", w->base, path);
	if ((r->x.easy = curl_easy_init()) == NULL ||
	    httpc_api_headers(&r->hdrs, method, r->payload != NULL,
			      w->token) != 0)
		goto fail;
	if (httpc_prepare(r->x.easy, &w->conf,
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
			     httpc_body_write) != CURLE_OK ||
	    curl_easy_setopt(r->x.easy, CURLOPT_WRITEDATA,
			     (void *)&r->body) != CURLE_OK)
		goto fail;
	r->x.done = wreq_done;
	if (curl_loop_add(w->cl, &r->x) != 0)
		goto fail;
	return r;

fail:
	if (body != NULL)
		json_decref(body);
	if (r != NULL)
		wreq_free(r);
	return NULL;
}

static bool wreq_ok(const wreq *r)
{
	return r->status >= 200 && r->status < 300;
}

/* Worth trying again: no answer, back-pressure, or a server-side
 * failure (no leader, leader changing). */
static bool wreq_transient(const wreq *r)
{
	return r->status == 0 || r->status == 429 || r->status >= 500;
}

/* A sentence for the log. */
static const char *wreq_describe(const wreq *r, char *buf, size_t n)
{
	if (r == NULL) {
		snprintf(buf, n, "out of memory");
	} else if (r->status == 0) {
		if (r->body.too_large) {
			snprintf(buf, n, "answer from %s is too large",
				 r->w->base);
		} else if (r->body.buf.oom) {
			snprintf(buf, n, "out of memory");
		} else {
			char why[CURL_ERROR_SIZE + 64];
			httpc_error_text(r->x.easy, r->rc, r->errbuf, why,
					 sizeof why);
			snprintf(buf, n, "cannot reach %s: %s", r->w->base,
				 why);
		}
	} else {
		const json_t *e = r->json ? json_object_get(r->json, "error")
					  : NULL;
		const char *msg = json_string_value(json_object_get(e, "message"));
		const char *code = json_string_value(json_object_get(e, "code"));
		if (msg != NULL)
			snprintf(buf, n, "HTTP %ld %s: %s", r->status,
				 code ? code : "error", msg);
		else
			snprintf(buf, n, "HTTP %ld", r->status);
	}
	return buf;
}

static unsigned backoff_next(unsigned cur)
{
	if (cur < W_BACKOFF_MIN_MS)
		return W_BACKOFF_MIN_MS;
	return cur * 2 > W_BACKOFF_MAX_MS ? W_BACKOFF_MAX_MS : cur * 2;
}

/* "/v1/runs/<id>/<what>" */
static char *run_path(const wrun *r, const char *what)
{
	hora_buf b = HORA_BUF_INIT;
	buf_adds(&b, "/v1/runs/");
	buf_add_pct(&b, r->id, BUF_PCT_SEGMENT);
	buf_addc(&b, '/');
	buf_adds(&b, what);
	return buf_take(&b, NULL);
}

static wreq *run_http(wrun *r, const char *what, json_t *body,
		      long timeout_ms, wreq_cb cb)
{
	char *path = run_path(r, what);
	wreq *q;
	if (path == NULL) {
		json_decref(body);
		return NULL;
	}
	q = w_http(r->w, "POST", path, body, timeout_ms, cb, r);
	hora_free(path);
	return q;
}

/* ------------------------------------------------------------------ */
/* The job cache (for timeouts) */

static jcache_ent *jcache_find(worker *w, const char *name)
{
	uint64_t now = uv_now(&w->loop);
	for (size_t i = 0; i < W_JOB_CACHE_MAX; i++) {
		jcache_ent *e = &w->cache[i];
		if (e->job != NULL && strcmp(e->job, name) == 0)
			return now - e->at_ms < W_JOB_CACHE_TTL_MS ? e : NULL;
	}
	return NULL;
}

static void jcache_put(worker *w, const char *name, int64_t timeout_usec)
{
	jcache_ent *slot = NULL;
	for (size_t i = 0; i < W_JOB_CACHE_MAX && slot == NULL; i++)
		if (w->cache[i].job != NULL &&
		    strcmp(w->cache[i].job, name) == 0)
			slot = &w->cache[i];
	for (size_t i = 0; i < W_JOB_CACHE_MAX && slot == NULL; i++)
		if (w->cache[i].job == NULL)
			slot = &w->cache[i];
	if (slot == NULL) { /* full: the oldest goes */
		slot = &w->cache[0];
		for (size_t i = 1; i < W_JOB_CACHE_MAX; i++)
			if (w->cache[i].at_ms < slot->at_ms)
				slot = &w->cache[i];
	}
	if (slot->job == NULL || strcmp(slot->job, name) != 0) {
		char *copy = hora_strdup(name);
		if (copy == NULL)
			return;
		hora_free(slot->job);
		slot->job = copy;
	}
	slot->timeout_usec = timeout_usec;
	slot->at_ms = uv_now(&w->loop);
}

/* ------------------------------------------------------------------ */
/* Runs */

static void run_close_cb(uv_handle_t *h)
{
	wrun *r = h->data;
	if (--r->nhandles > 0)
		return;
	hora_free(r->id);
	hora_free(r->job);
	hora_free(r->scheduled_at);
	if (r->run != NULL)
		json_decref(r->run);
	if (r->result != NULL)
		json_decref(r->result);
	hora_free(r);
}

/* Done with the run (reported, handed back, lost): free its slot. */
static void run_finish(wrun *r)
{
	worker *w = r->w;

	if (r->state == R_DONE)
		return;
	r->state = R_DONE;
	wreq_abort(r->req);
	wreq_abort(r->hb);
	r->req = r->hb = NULL;
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		w->runs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	w->nruns--;
	uv_close((uv_handle_t *)&r->hb_timer, run_close_cb);
	uv_close((uv_handle_t *)&r->retry_timer, run_close_cb);
	fill_slots(w);
	maybe_finish(w);
}

/* -- heartbeats -- */

static void run_lost(wrun *r, const char *why)
{
	if (r->lost)
		return;
	r->lost = true;
	switch (r->state) {
	case R_FETCH:
		wlog("run %s job %s attempt %u: %s; not started", r->id, r->job,
		     r->attempt, why);
		run_finish(r);
		break;
	case R_EXEC:
		wlog("run %s job %s attempt %u: %s; stopping it", r->id,
		     r->job, r->attempt, why);
		executor_cancel(r->task);
		break;
	case R_REPORT:
		/* between two tries: nobody takes the result any more */
		if (r->req == NULL) {
			wlog("run %s job %s attempt %u: %s; result dropped",
			     r->id, r->job, r->attempt, why);
			run_finish(r);
		}
		break;
	case R_RELEASE:
	case R_DONE:
		break;
	}
}

static void hb_done(wreq *q)
{
	wrun *r = q->ud;
	char buf[512];

	r->hb = NULL;
	if (wreq_ok(q))
		return;
	if (q->status == 409 || q->status == 404) {
		run_lost(r, q->status == 409
				    ? "lease lost (cancelled, expired or taken "
				      "over)"
				    : "the run no longer exists");
		return;
	}
	wlog("hora worker: heartbeat of run %s failed: %s", r->id,
	     wreq_describe(q, buf, sizeof buf));
}

static void hb_tick(uv_timer_t *t)
{
	wrun *r = t->data;
	worker *w = r->w;

	if (r->hb != NULL || r->state == R_RELEASE || r->state == R_DONE ||
	    r->lost)
		return;
	long timeout = (long)(w->lease_ms / 3);
	if (timeout < 1000)
		timeout = 1000;
	r->hb = run_http(r, "heartbeat",
			 json_pack("{s:s,s:I}", "worker", w->id, "lease_ms",
				   (json_int_t)w->lease_ms),
			 timeout, hb_done);
}

/* -- handing back -- */

static void release_done(wreq *q);

static void release_retry(uv_timer_t *t)
{
	run_release(t->data);
}

static void run_release(wrun *r)
{
	worker *w = r->w;

	r->state = R_RELEASE;
	r->tries++;
	r->req = run_http(r, "heartbeat",
			  json_pack("{s:s,s:i}", "worker", w->id, "lease_ms", 0),
			  W_REQUEST_TIMEOUT_MS, release_done);
	if (r->req == NULL) {
		wlog("hora worker: cannot hand back run %s: out of memory",
		     r->id);
		run_finish(r);
	}
}

static void release_done(wreq *q)
{
	wrun *r = q->ud;
	char buf[512];

	r->req = NULL;
	if (wreq_ok(q)) {
		wlog("run %s job %s attempt %u: handed back", r->id, r->job,
		     r->attempt);
	} else if (wreq_transient(q) && r->tries < W_RELEASE_TRIES) {
		wlog("hora worker: handing back run %s failed: %s; retrying",
		     r->id, wreq_describe(q, buf, sizeof buf));
		uv_timer_start(&r->retry_timer, release_retry,
			       W_BACKOFF_MIN_MS, 0);
		return;
	} else {
		wlog("hora worker: handing back run %s failed: %s (its lease "
		     "will expire)",
		     r->id, wreq_describe(q, buf, sizeof buf));
	}
	run_finish(r);
}

/* -- reporting -- */

static void report_send(wrun *r);

static void report_retry(uv_timer_t *t)
{
	report_send(t->data);
}

static void report_done(wreq *q)
{
	wrun *r = q->ud;
	char buf[512];

	r->req = NULL;
	if (wreq_ok(q)) {
		run_finish(r);
		return;
	}
	if (wreq_transient(q) && !r->lost && r->tries < W_COMPLETE_TRIES) {
		unsigned delay = W_BACKOFF_MIN_MS;
		for (unsigned i = 1; i < r->tries; i++)
			delay = backoff_next(delay);
		wlog("hora worker: reporting run %s failed: %s; retrying in "
		     "%u s",
		     r->id, wreq_describe(q, buf, sizeof buf), delay / 1000);
		uv_timer_start(&r->retry_timer, report_retry, delay, 0);
		return;
	}
	if (q->status == 409)
		wlog("run %s job %s attempt %u: result not accepted: lease "
		     "lost (cancelled, expired or taken over)",
		     r->id, r->job, r->attempt);
	else
		wlog("run %s job %s attempt %u: result not accepted: %s",
		     r->id, r->job, r->attempt,
		     wreq_describe(q, buf, sizeof buf));
	run_finish(r);
}

static void report_send(wrun *r)
{
	r->state = R_REPORT;
	r->tries++;
	r->req = run_http(r, "complete", json_incref(r->result),
			  W_REQUEST_TIMEOUT_MS, report_done);
	if (r->req == NULL) {
		if (r->tries < W_COMPLETE_TRIES) {
			uv_timer_start(&r->retry_timer, report_retry,
				       W_BACKOFF_MIN_MS, 0);
			return;
		}
		wlog("hora worker: cannot report run %s: out of memory", r->id);
		run_finish(r);
	}
}

/* Build the completion, log the run's line, report it. */
static void run_report(wrun *r, const exec_result *res, bool is_http)
{
	worker *w = r->w;
	double secs = (double)(uv_hrtime() - r->started_ns) / 1e9;
	const char *err = res->error != NULL ? res->error : "";
	char code[48] = "";
	json_t *o;

	if (res->exit_code >= 0)
		snprintf(code, sizeof code, " (%s %d)", is_http ? "HTTP" : "exit",
			 res->exit_code);
	wlog("run %s job %s attempt %u: %s%s in %.2fs%s%s", r->id, r->job,
	     r->attempt, run_status_str(exec_status_run(res->status)), code, secs,
	     *err ? ": " : "", err);

	o = json_pack("{s:s,s:s,s:i,s:I}", "worker", w->id, "status",
		      run_status_str(exec_status_run(res->status)), "exit_code",
		      res->exit_code >= -1 ? res->exit_code : -1, "attempt",
		      (json_int_t)r->attempt);
	if (o != NULL) {
		json_object_set_new(o, "output",
				    json_text(res->output ? res->output : "",
					      res->output ? res->output_len : 0));
		if (*err)
			json_object_set_new(o, "error",
					    json_text(err, strlen(err)));
	}
	if (o == NULL) {
		wlog("hora worker: cannot report run %s: out of memory", r->id);
		run_finish(r);
		return;
	}
	r->result = o;
	r->tries = 0;
	report_send(r);
}

/* -- execution -- */

static void exec_done(void *ud, const exec_result *res)
{
	wrun *r = ud;
	bool is_http = json_is_object(json_object_get(r->run, "http"));

	r->task = NULL;
	if (r->lost) {
		run_finish(r);
		return;
	}
	if (res->status == EXEC_CANCELLED) {
		if (r->release_on_cancel) {
			run_release(r);
			return;
		}
		/* not ours to cancel otherwise; report nothing */
		run_finish(r);
		return;
	}
	run_report(r, res, is_http);
}

static void run_exec(wrun *r)
{
	worker *w = r->w;
	exec_request req = {0};
	hora_error err;
	const json_t *payload, *cmd, *http;
	char *payload_s = NULL;
	int rv;

	if (w->stopping) {
		run_release(r);
		return;
	}
	r->state = R_EXEC;
	payload = json_object_get(r->run, "payload");
	if (payload != NULL && !json_is_null(payload))
		payload_s = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
	cmd = json_object_get(r->run, "command");
	http = json_object_get(r->run, "http");
	req.run_id = r->id;
	req.job = r->job;
	req.scheduled_at = r->scheduled_at;
	req.attempt = r->attempt;
	req.payload_json = payload_s != NULL ? payload_s : "null";
	req.command = json_is_null(cmd) ? NULL : cmd;
	req.http = json_is_null(http) ? NULL : http;
	/* counted from here; the leader enforces it from the claim, plus a
	 * grace period, in case the worker does not */
	req.timeout_usec = r->timeout_usec > 0 ? r->timeout_usec : 0;
	hora_error_clear(&err);
	r->started_ns = uv_hrtime();
	rv = executor_run(w->ex, &req, exec_done, r, &r->task, &err);
	hora_free(payload_s);
	if (rv != 0) {
		exec_result res = {
			.status = EXEC_FAILED,
			.exit_code = -1,
			.output = "",
			.output_len = 0,
			.error = err.msg[0] ? err.msg : hora_strerror(rv),
		};
		r->task = NULL;
		run_report(r, &res, false);
	}
}

static void fetch_done(wreq *q)
{
	wrun *r = q->ud;
	worker *w = r->w;
	char buf[512];

	r->req = NULL;
	if (wreq_ok(q) && json_is_object(q->json)) {
		const json_t *t = json_object_get(q->json, "timeout");
		int64_t usec = 0;
		hora_error err;
		if (json_is_string(t) &&
		    duration_parse(json_string_value(t), &usec, "timeout",
				   &err) != 0)
			usec = 0;
		jcache_put(w, r->job, usec);
		r->timeout_usec = usec;
	} else {
		wlog("hora worker: cannot read job %s: %s; running run %s "
		     "without its timeout (the server enforces it)",
		     r->job, wreq_describe(q, buf, sizeof buf), r->id);
	}
	run_exec(r);
}

static void run_start(worker *w, const json_t *rj)
{
	const char *id = json_string_value(json_object_get(rj, "id"));
	const char *jname = json_string_value(json_object_get(rj, "job"));
	const char *sched = json_string_value(json_object_get(rj, "scheduled_at"));
	json_int_t attempt = json_integer_value(json_object_get(rj, "attempt"));
	wrun *r;

	if (id == NULL || jname == NULL) {
		wlog("hora worker: the server handed out a run without id or "
		     "job; ignored");
		return;
	}
	if ((r = hora_calloc(1, sizeof *r)) == NULL ||
	    (r->id = hora_strdup(id)) == NULL ||
	    (r->job = hora_strdup(jname)) == NULL ||
	    (r->scheduled_at = hora_strdup(sched ? sched : "")) == NULL) {
		if (r != NULL) {
			hora_free(r->id);
			hora_free(r->job);
			hora_free(r);
		}
		wlog("hora worker: out of memory taking run %s (its lease will "
		     "expire)",
		     id);
		return;
	}
	r->w = w;
	r->attempt = attempt > 0 && attempt <= UINT32_MAX ? (uint32_t)attempt
							   : 1;
	r->run = json_incref((json_t *)rj);
	uv_timer_init(&w->loop, &r->hb_timer);
	uv_timer_init(&w->loop, &r->retry_timer);
	r->hb_timer.data = r->retry_timer.data = r;
	r->nhandles = 2;
	r->next = w->runs;
	if (w->runs != NULL)
		w->runs->prev = r;
	w->runs = r;
	w->nruns++;

	uint64_t period = (uint64_t)(w->lease_ms / 3);
	uv_timer_start(&r->hb_timer, hb_tick, period, period);

	if (w->stopping) {
		run_release(r);
		return;
	}
	jcache_ent *e = jcache_find(w, jname);
	if (e != NULL) {
		r->timeout_usec = e->timeout_usec;
		run_exec(r);
		return;
	}
	hora_buf b = HORA_BUF_INIT;
	buf_adds(&b, "/v1/jobs/");
	buf_add_pct(&b, jname, BUF_PCT_SEGMENT);
	r->state = R_FETCH;
	if (buf_str(&b) != NULL)
		r->req = w_http(w, "GET", b.p, NULL, W_REQUEST_TIMEOUT_MS,
				fetch_done, r);
	buf_free(&b);
	if (r->req == NULL)
		run_exec(r);
}

/* ------------------------------------------------------------------ */
/* Claims */

static void queue_retry_cb(uv_timer_t *t)
{
	wqueue *q = t->data;
	q->waiting = false;
	fill_slots(q->w);
}

static void claim_done(wreq *req)
{
	wqueue *q = req->ud;
	worker *w = q->w;
	char buf[512];
	const json_t *runs;

	q->claim = NULL;
	w->reserved -= q->asked;
	q->asked = 0;
	runs = wreq_ok(req) ? json_object_get(req->json, "runs") : NULL;
	if (json_is_array(runs)) {
		size_t i;
		const json_t *rj;
		q->backoff_ms = 0;
		json_array_foreach(runs, i, rj) run_start(w, rj);
		if (json_array_size(runs) == 0 &&
		    uv_now(&w->loop) - q->claim_sent < W_EARLY_EMPTY_MS) {
			/* nothing, and at once (--wait-ms 0, a leader
			 * change): no busy loop */
			q->waiting = true;
			uv_timer_start(&q->retry, queue_retry_cb,
				       W_BACKOFF_MIN_MS, 0);
		}
	} else {
		q->backoff_ms = backoff_next(q->backoff_ms);
		wlog("hora worker: claim from queue %s failed: %s; retrying in "
		     "%u s",
		     q->name,
		     wreq_ok(req) ? "the answer has no runs array"
				  : wreq_describe(req, buf, sizeof buf),
		     q->backoff_ms / 1000);
		q->waiting = true;
		uv_timer_start(&q->retry, queue_retry_cb, q->backoff_ms, 0);
	}
	fill_slots(w);
}

static void claim_send(wqueue *q, unsigned max, int64_t wait_ms)
{
	worker *w = q->w;

	q->claim_sent = uv_now(&w->loop);
	q->claim = w_http(w, "POST", q->claim_path,
			  json_pack("{s:s,s:i,s:I,s:I}", "worker", w->id, "max",
				    (int)max, "wait_ms", (json_int_t)wait_ms,
				    "lease_ms", (json_int_t)w->lease_ms),
			  (long)(wait_ms + W_CLAIM_SLACK_MS), claim_done, q);
	if (q->claim == NULL) {
		q->backoff_ms = backoff_next(q->backoff_ms);
		wlog("hora worker: cannot claim from queue %s: out of memory",
		     q->name);
		q->waiting = true;
		uv_timer_start(&q->retry, queue_retry_cb, q->backoff_ms, 0);
		return;
	}
	q->asked = max;
	w->reserved += max;
}

/* Share the free slots among the idle queues. */
static void fill_slots(worker *w)
{
	wqueue *idle[W_QUEUES_MAX];
	size_t nidle = 0;
	unsigned used, free_slots;

	if (w->stopping)
		return;
	used = w->nruns + w->reserved;
	free_slots = used >= w->concurrency ? 0 : w->concurrency - used;
	if (free_slots == 0)
		return;
	for (size_t k = 0; k < w->nqueues; k++) {
		wqueue *q = &w->queues[(w->rr + k) % w->nqueues];
		if (q->claim == NULL && !q->waiting)
			idle[nidle++] = q;
	}
	if (nidle == 0)
		return;
	bool starved = free_slots < nidle;
	int64_t wait = starved && w->wait_ms > W_STARVED_WAIT_MS
			       ? W_STARVED_WAIT_MS
			       : w->wait_ms;
	for (size_t k = 0; k < nidle && free_slots > 0; k++) {
		unsigned share = free_slots / (unsigned)(nidle - k);
		if (share == 0)
			share = 1;
		claim_send(idle[k], share, wait);
		if (idle[k]->claim != NULL)
			free_slots -= share;
	}
	w->rr = (w->rr + 1) % w->nqueues;
}

/* ------------------------------------------------------------------ */
/* Shutdown */

static void w_handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void ex_closed(void *ud)
{
	worker *w = ud;

	w->ex = NULL;
	/* requests still in flight are dropped, their callbacks not run */
	curl_loop_close(w->cl, NULL, NULL);
	w->cl = NULL;
	uv_close((uv_handle_t *)&w->grace_timer, w_handle_closed);
	uv_close((uv_handle_t *)&w->sigterm, w_handle_closed);
	uv_close((uv_handle_t *)&w->sigint, w_handle_closed);
	for (size_t i = 0; i < w->nqueues; i++)
		uv_close((uv_handle_t *)&w->queues[i].retry, w_handle_closed);
}

static void maybe_finish(worker *w)
{
	if (!w->stopping || w->closing || w->nruns > 0)
		return;
	w->closing = true;
	uv_timer_stop(&w->grace_timer);
	wlog("hora worker: stopped");
	executor_close(w->ex, ex_closed, w);
}

static void grace_cb(uv_timer_t *t)
{
	worker *w = t->data;

	w->grace_over = true;
	for (wrun *r = w->runs; r != NULL; r = r->next) {
		if (r->state != R_EXEC || r->task == NULL)
			continue;
		wlog("run %s job %s attempt %u: still running after the grace "
		     "period; cancelling it and handing it back",
		     r->id, r->job, r->attempt);
		r->release_on_cancel = true;
		executor_cancel(r->task);
	}
}

static void on_signal(uv_signal_t *s, int signum)
{
	worker *w = s->data;
	unsigned running = 0;

	if (w->stopping) {
		wlog("hora worker: %s again: exiting now", strsignal(signum));
		for (wrun *r = w->runs; r != NULL; r = r->next)
			if (r->state == R_EXEC && r->task != NULL)
				executor_cancel(r->task); /* SIGTERM now */
		_exit(CLI_FAILURE);
	}
	w->stopping = true;
	for (size_t i = 0; i < w->nqueues; i++) {
		wqueue *q = &w->queues[i];
		wreq_abort(q->claim);
		q->claim = NULL;
		q->asked = 0;
		uv_timer_stop(&q->retry);
		q->waiting = false;
	}
	w->reserved = 0;
	/* runs not started go back at once */
	for (wrun *r = w->runs, *next; r != NULL; r = next) {
		next = r->next;
		if (r->state == R_FETCH) {
			wreq_abort(r->req);
			r->req = NULL;
			run_release(r);
		} else if (r->state == R_EXEC) {
			running++;
		}
	}
	wlog("hora worker: %s: stopping; %u run%s executing (grace %.1fs)",
	     strsignal(signum), running, running == 1 ? "" : "s",
	     (double)w->grace_ms / 1000.0);
	if (running > 0)
		uv_timer_start(&w->grace_timer, grace_cb, (uint64_t)w->grace_ms,
			       0);
	maybe_finish(w);
}

/* ------------------------------------------------------------------ */
/* Command line */

static int worker_usage_error(const char *what, const char *arg)
{
	fputs(worker_usage, stderr);
	return cli_fail(CLI_USAGE, "%s '%s'", what, arg);
}

static int parse_grace(const char *s, int64_t *ms)
{
	long secs;
	int64_t usec;
	hora_error err;

	if (client_parse_long(s, 0, W_GRACE_MAX_MS / 1000, &secs)) {
		*ms = (int64_t)secs * 1000;
		return 0;
	}
	if (duration_parse(s, &usec, "grace", &err) != 0 ||
	    usec > (int64_t)W_GRACE_MAX_MS * HORA_USEC_PER_MS)
		return -1;
	*ms = usec / HORA_USEC_PER_MS;
	return 0;
}

static int worker_setup(worker *w, const cli_ctx *ctx)
{
	hora_error err;
	int rv;

	hora_buf base = HORA_BUF_INIT;

	httpc_base_url(&base, ctx->addr);
	if ((w->base = buf_take(&base, NULL)) == NULL)
		return cli_fail(CLI_FAILURE, "out of memory");
	w->token = ctx->token;
	w->conf = (httpc_conf){
		.user_agent = "hora-worker/" HORA_VERSION,
		.ca_file = ctx->cacert,
		.connect_timeout_ms = W_CONNECT_TIMEOUT_MS,
	};
	for (size_t i = 0; i < w->nqueues; i++) {
		hora_buf b = HORA_BUF_INIT;
		buf_adds(&b, "/v1/queues/");
		buf_add_pct(&b, w->queues[i].name, BUF_PCT_SEGMENT);
		buf_adds(&b, "/claim");
		if ((w->queues[i].claim_path = buf_take(&b, NULL)) == NULL)
			return cli_fail(CLI_FAILURE, "out of memory");
	}
	if ((rv = uv_loop_init(&w->loop)) != 0)
		return cli_fail(CLI_FAILURE, "cannot create the event loop: %s",
				uv_strerror(rv));
	hora_error_clear(&err);
	if ((rv = curl_loop_new(&w->loop, &w->cl, &err)) != 0) {
		uv_loop_close(&w->loop);
		return cli_fail(CLI_FAILURE, "cannot initialise libcurl: %s",
				err.msg[0] ? err.msg : hora_strerror(rv));
	}
	if ((rv = executor_new(&w->loop, &w->ex, &err)) != 0) {
		curl_loop_close(w->cl, NULL, NULL);
		uv_run(&w->loop, UV_RUN_DEFAULT); /* its handles close */
		uv_loop_close(&w->loop);
		return cli_fail(CLI_FAILURE, "cannot start the executor: %s",
				err.msg[0] ? err.msg : hora_strerror(rv));
	}
	uv_timer_init(&w->loop, &w->grace_timer);
	w->grace_timer.data = w;
	for (size_t i = 0; i < w->nqueues; i++) {
		w->queues[i].w = w;
		uv_timer_init(&w->loop, &w->queues[i].retry);
		w->queues[i].retry.data = &w->queues[i];
	}
	uv_signal_init(&w->loop, &w->sigterm);
	uv_signal_init(&w->loop, &w->sigint);
	w->sigterm.data = w->sigint.data = w;
	uv_signal_start(&w->sigterm, on_signal, SIGTERM);
	uv_signal_start(&w->sigint, on_signal, SIGINT);
	return CLI_OK;
}

static void worker_free(worker *w)
{
	hora_free(w->base);
	for (size_t i = 0; i < w->nqueues; i++)
		hora_free(w->queues[i].claim_path);
	for (size_t i = 0; i < W_JOB_CACHE_MAX; i++)
		hora_free(w->cache[i].job);
}

int cmd_worker(cli_ctx *ctx, int argc, char **argv)
{
	static worker wk; /* big (the queues); one per process */
	worker *w = &wk;
	const char *val, *id = NULL;
	long n;
	int rv;

	client_global_init();
	memset(w, 0, sizeof *w);
	w->concurrency = 4;
	w->lease_ms = W_LEASE_MS_DEFAULT;
	w->wait_ms = W_WAIT_MS_DEFAULT;
	w->grace_ms = W_GRACE_DEFAULT_MS;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			fputs(worker_usage, stdout);
			return CLI_OK;
		}
		if ((rv = client_opt(argc, argv, &i, "--queue", &val)) != 0) {
			hora_error err;
			if (rv < 0)
				return CLI_USAGE;
			if (job_queue_check(val, "queue", &err) != 0)
				return cli_fail(CLI_USAGE, "--queue: %s",
						err.msg);
			bool dup = false;
			for (size_t k = 0; k < w->nqueues; k++)
				if (strcmp(w->queues[k].name, val) == 0)
					dup = true;
			if (dup)
				continue;
			if (w->nqueues == W_QUEUES_MAX)
				return cli_fail(CLI_USAGE,
						"at most %d queues per worker",
						W_QUEUES_MAX);
			w->queues[w->nqueues++].name = val;
		} else if ((rv = client_opt(argc, argv, &i, "--concurrency",
					    &val)) != 0) {
			if (rv < 0)
				return CLI_USAGE;
			if (!client_parse_long(val, 1, W_CONCURRENCY_MAX, &n))
				return cli_fail(CLI_USAGE,
						"--concurrency must be a whole "
						"number from 1 to %d, got '%s'",
						W_CONCURRENCY_MAX, val);
			w->concurrency = (unsigned)n;
		} else if ((rv = client_opt(argc, argv, &i, "--worker-id",
					    &val)) != 0) {
			if (rv < 0)
				return CLI_USAGE;
			if (*val == '\0' || strlen(val) > W_ID_MAX)
				return cli_fail(CLI_USAGE,
						"--worker-id must have 1 to %d "
						"characters",
						W_ID_MAX);
			id = val;
		} else if ((rv = client_opt(argc, argv, &i, "--lease-ms",
					    &val)) != 0) {
			if (rv < 0)
				return CLI_USAGE;
			if (!client_parse_long(val, W_LEASE_MS_MIN,
					       W_LEASE_MS_MAX, &n))
				return cli_fail(CLI_USAGE,
						"--lease-ms must be a whole "
						"number from %d to %d, got '%s'",
						W_LEASE_MS_MIN, W_LEASE_MS_MAX,
						val);
			w->lease_ms = n;
		} else if ((rv = client_opt(argc, argv, &i, "--wait-ms",
					    &val)) != 0) {
			if (rv < 0)
				return CLI_USAGE;
			if (!client_parse_long(val, 0, W_WAIT_MS_MAX, &n))
				return cli_fail(CLI_USAGE,
						"--wait-ms must be a whole "
						"number from 0 to %d, got '%s'",
						W_WAIT_MS_MAX, val);
			w->wait_ms = n;
		} else if ((rv = client_opt(argc, argv, &i, "--grace", &val)) !=
			   0) {
			if (rv < 0)
				return CLI_USAGE;
			if (parse_grace(val, &w->grace_ms) != 0)
				return cli_fail(CLI_USAGE,
						"--grace must be a duration "
						"such as 10s or 500ms (at most "
						"1h), got '%s'",
						val);
		} else if (a[0] == '-') {
			return worker_usage_error("unknown option", a);
		} else {
			return worker_usage_error("unexpected argument", a);
		}
	}
	if (w->nqueues == 0)
		w->queues[w->nqueues++].name = "default";
	if (id != NULL) {
		snprintf(w->id, sizeof w->id, "%s", id);
	} else {
		char host[128] = "";
		if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
			snprintf(host, sizeof host, "worker");
		snprintf(w->id, sizeof w->id, "%s-%ld", host, (long)getpid());
	}

	if ((rv = worker_setup(w, ctx)) != CLI_OK) {
		worker_free(w);
		return rv;
	}
	{
		char qs[512] = "";
		size_t off = 0;
		for (size_t i = 0; i < w->nqueues && off < sizeof qs; i++)
			off += (size_t)snprintf(qs + off, sizeof qs - off,
						"%s%s", i ? "," : "",
						w->queues[i].name);
		wlog("hora worker: %s claiming from %s at %s (concurrency %u, "
		     "lease %lld ms)",
		     w->id, qs, w->base, w->concurrency,
		     (long long)w->lease_ms);
	}
	fill_slots(w);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&w->loop) != 0)
		wlog("hora worker: event loop not empty at exit");
	worker_free(w);
	return CLI_OK;
}

#endif /* HORA_CLI_OFFLINE_ONLY */
