/*
 * engine.c - slots, claims, a run's life, stopping (see engine.h).
 */
#include "worker/engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/utf8.h"
#include "exec/exec.h"
#include "sched/run.h"

typedef struct equeue equeue;
typedef struct erun erun;

struct equeue {
	engine *e;
	const char *name;
	engine_call *claim; /* in flight */
	unsigned asked;     /* slots reserved by that claim */
	uint64_t claim_sent;
	engine_call *stream;  /* open (push delivery) */
	unsigned share;       /* its max_inflight */
	uint64_t stream_sent; /* uv_now when opened */
	uv_timer_t retry;
	bool waiting; /* retry timer armed: backoff or pause */
	unsigned backoff_ms;
};

typedef enum {
	R_FETCH,   /* getting the job's timeout */
	R_EXEC,    /* executing */
	R_REPORT,  /* reporting the result (maybe between tries) */
	R_RELEASE, /* handing the run back */
	R_DONE,    /* handles closing */
} erun_state;

struct erun {
	engine *e;
	erun *prev, *next; /* e->runs while held */
	erun_state state;
	char *id, *job, *scheduled_at;
	uint32_t attempt;
	json_t *payload, *command, *http; /* references, or NULL */
	int64_t timeout_usec;
	uint64_t started_ns; /* uv_hrtime at executor_run */

	engine_call *req; /* fetch, complete or release in flight */
	engine_call *hb;  /* heartbeat in flight */
	exec_task *task;
	uv_timer_t hb_timer;
	uv_timer_t retry_timer;
	unsigned nhandles;
	unsigned tries;
	bool lost;              /* the scheduler says we no longer hold it */
	bool release_on_cancel; /* cancelled at the end of the grace period */
	engine_result result;   /* once executed; output and error owned */
};

struct engine {
	uv_loop_t *loop;
	executor *ex;
	const engine_transport *tp;
	void *t;
	engine_conf conf;

	equeue queues[ENGINE_QUEUES_MAX];
	size_t rr;
	unsigned nruns;    /* held */
	unsigned reserved; /* asked by claims in flight */
	bool streaming;    /* push delivery instead of claims */
	erun *runs;

	uv_timer_t grace_timer;
	unsigned nhandles; /* the engine's own, open */
	bool stopping, closing;
	void (*done)(void *ud);
	void *done_ud;
};

static void fill_slots(engine *e);
static void maybe_finish(engine *e);
static void run_release(erun *r);

/* ------------------------------------------------------------------ */
/* Logging */

static void elog(const engine *e, engine_log_level level, const char *fmt,
		 ...) __attribute__((format(printf, 3, 4)));

static void elog(const engine *e, engine_log_level level, const char *fmt,
		 ...)
{
	char line[2048];
	va_list ap;

	if (e->conf.log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	e->conf.log(e->conf.log_ud, level, line);
}

/* "3 s"; "100 ms" for horad's short retries */
static const char *secs_text(unsigned ms, char buf[32])
{
	if (ms < 1000)
		snprintf(buf, 32, "%u ms", ms);
	else if (ms % 1000 == 0)
		snprintf(buf, 32, "%u s", ms / 1000);
	else
		snprintf(buf, 32, "%.1f s", (double)ms / 1000.0);
	return buf;
}

static unsigned backoff_next(const engine *e, unsigned cur)
{
	if (cur < e->conf.backoff_min_ms)
		return e->conf.backoff_min_ms;
	return cur * 2 > e->conf.backoff_max_ms ? e->conf.backoff_max_ms
						: cur * 2;
}

/* ------------------------------------------------------------------ */
/* Runs */

static void run_close_cb(uv_handle_t *h)
{
	erun *r = h->data;
	if (--r->nhandles > 0)
		return;
	hora_free(r->id);
	hora_free(r->job);
	hora_free(r->scheduled_at);
	if (r->payload != NULL)
		json_decref(r->payload);
	if (r->command != NULL)
		json_decref(r->command);
	if (r->http != NULL)
		json_decref(r->http);
	hora_free((char *)r->result.output);
	hora_free((char *)r->result.error);
	hora_free(r);
}

static void call_abort(engine *e, engine_call **c)
{
	if (*c != NULL)
		e->tp->abort(e->t, *c);
	*c = NULL;
}

/* Done with the run (reported, handed back, lost): free its slot. */
static void run_finish(erun *r)
{
	engine *e = r->e;

	if (r->state == R_DONE)
		return;
	r->state = R_DONE;
	call_abort(e, &r->req);
	call_abort(e, &r->hb);
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		e->runs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	e->nruns--;
	uv_close((uv_handle_t *)&r->hb_timer, run_close_cb);
	uv_close((uv_handle_t *)&r->retry_timer, run_close_cb);
	fill_slots(e);
	maybe_finish(e);
}

/* -- heartbeats -- */

static void run_lost(erun *r, const char *why)
{
	engine *e = r->e;

	if (r->lost)
		return;
	r->lost = true;
	switch (r->state) {
	case R_FETCH:
		elog(e, ENGINE_LOG_INFO, "run %s job %s attempt %u: %s; not "
		     "started", r->id, r->job, r->attempt, why);
		run_finish(r);
		break;
	case R_EXEC:
		elog(e, ENGINE_LOG_INFO, "run %s job %s attempt %u: %s; "
		     "stopping it", r->id, r->job, r->attempt, why);
		executor_cancel(r->task);
		break;
	case R_REPORT:
		/* between two tries: nobody takes the result any more */
		if (r->req == NULL) {
			elog(e, ENGINE_LOG_INFO, "run %s job %s attempt %u: "
			     "%s; result dropped", r->id, r->job, r->attempt,
			     why);
			run_finish(r);
		}
		break;
	case R_RELEASE:
	case R_DONE:
		break;
	}
}

static void hb_done(void *ud, const engine_answer *a)
{
	erun *r = ud;

	r->hb = NULL;
	if (a->outcome == ENGINE_OK)
		return;
	if (a->outcome == ENGINE_LOST) {
		run_lost(r, a->why);
		return;
	}
	elog(r->e, ENGINE_LOG_WARN, "%s: heartbeat of run %s failed: %s",
	     r->e->conf.name, r->id, a->why);
}

static void hb_tick(uv_timer_t *t)
{
	erun *r = t->data;
	engine *e = r->e;

	if (r->hb != NULL || r->state == R_RELEASE || r->state == R_DONE ||
	    r->lost)
		return;
	if (e->tp->heartbeat(e->t, r->id, e->conf.lease_ms, hb_done, r,
			     &r->hb) != 0)
		r->hb = NULL; /* the next tick tries again */
}

/* -- handing back -- */

static void release_done(void *ud, const engine_answer *a);
static void report_done(void *ud, const engine_answer *a);
static int run_send(erun *r, erun_state st);

static void release_retry(uv_timer_t *t)
{
	run_release(t->data);
}

static void release_done(void *ud, const engine_answer *a)
{
	erun *r = ud;
	engine *e = r->e;

	r->req = NULL;
	if (a->outcome == ENGINE_OK) {
		elog(e, ENGINE_LOG_INFO, "run %s job %s attempt %u: handed "
		     "back", r->id, r->job, r->attempt);
	} else if (a->outcome == ENGINE_TRANSIENT &&
		   r->tries < ENGINE_RELEASE_TRIES) {
		elog(e, ENGINE_LOG_WARN, "%s: handing back run %s failed: %s; "
		     "retrying", e->conf.name, r->id, a->why);
		uv_timer_start(&r->retry_timer, release_retry,
			       e->conf.backoff_min_ms, 0);
		return;
	} else {
		elog(e, ENGINE_LOG_WARN, "%s: handing back run %s failed: %s "
		     "(its lease will expire)", e->conf.name, r->id, a->why);
	}
	run_finish(r);
}

/* One try at handing back (R_RELEASE) or reporting (R_REPORT): the
 * transport's error when the call cannot be made. */
static int run_send(erun *r, erun_state st)
{
	engine *e = r->e;
	int rv;

	r->state = st;
	r->tries++;
	if (st == R_RELEASE)
		rv = e->tp->heartbeat(e->t, r->id, 0, release_done, r, &r->req);
	else
		rv = e->tp->complete(e->t, &r->result, report_done, r,
				     &r->req);
	if (rv != 0)
		r->req = NULL;
	return rv;
}

static void run_release(erun *r)
{
	engine *e = r->e;
	int rv = run_send(r, R_RELEASE);

	if (rv != 0) {
		elog(e, ENGINE_LOG_WARN, "%s: cannot hand back run %s: %s",
		     e->conf.name, r->id, hora_strerror(rv));
		run_finish(r);
	}
}

/* -- reporting -- */

static void report_send(erun *r);

static void report_retry(uv_timer_t *t)
{
	report_send(t->data);
}

static void report_done(void *ud, const engine_answer *a)
{
	erun *r = ud;
	engine *e = r->e;
	char secs[32];

	r->req = NULL;
	if (a->outcome == ENGINE_OK) {
		run_finish(r);
		return;
	}
	if (a->outcome == ENGINE_TRANSIENT && !r->lost &&
	    r->tries < ENGINE_COMPLETE_TRIES) {
		unsigned delay = e->conf.backoff_min_ms;
		for (unsigned i = 1; i < r->tries; i++)
			delay = backoff_next(e, delay);
		elog(e, ENGINE_LOG_WARN, "%s: reporting run %s failed: %s; "
		     "retrying in %s", e->conf.name, r->id, a->why,
		     secs_text(delay, secs));
		uv_timer_start(&r->retry_timer, report_retry, delay, 0);
		return;
	}
	elog(e, ENGINE_LOG_WARN, "run %s job %s attempt %u: result not "
	     "accepted: %s", r->id, r->job, r->attempt, a->why);
	run_finish(r);
}

static void report_send(erun *r)
{
	engine *e = r->e;
	int rv = run_send(r, R_REPORT);

	if (rv != 0) {
		if (r->tries < ENGINE_COMPLETE_TRIES) {
			uv_timer_start(&r->retry_timer, report_retry,
				       e->conf.backoff_min_ms, 0);
			return;
		}
		elog(e, ENGINE_LOG_WARN, "%s: cannot report run %s: %s",
		     e->conf.name, r->id, hora_strerror(rv));
		run_finish(r);
	}
}

/* A copy of s[0..n) repaired to valid UTF-8; NULL when out of memory. */
static char *text_repaired(const char *s, size_t n, size_t *len)
{
	char *out = hora_malloc(UTF8_REPAIR_MAX(n) + 1);
	if (out == NULL)
		return NULL;
	*len = utf8_repair(s, n, out);
	out[*len] = '\0';
	return out;
}

/* Keep the result, log the run's line, report it. */
static void run_report(erun *r, const exec_result *res)
{
	engine *e = r->e;
	double secs = (double)(uv_hrtime() - r->started_ns) / 1e9;
	const char *err = res->error != NULL ? res->error : "";
	run_status st = exec_status_run(res->status);
	char code[48] = "";
	size_t elen;

	if (res->exit_code >= 0)
		snprintf(code, sizeof code, " (%s %d)",
			 r->http != NULL ? "HTTP" : "exit", res->exit_code);
	elog(e, ENGINE_LOG_DEBUG, "run %s job %s attempt %u: %s%s in %.2fs%s%s",
	     r->id, r->job, r->attempt, run_status_str(st), code, secs,
	     *err ? ": " : "", err);

	r->result = (engine_result){
		.run_id = r->id,
		.job = r->job,
		.attempt = r->attempt,
		.status = st,
		.exit_code = res->exit_code >= -1 ? res->exit_code : -1,
	};
	r->result.output = text_repaired(res->output ? res->output : "",
					 res->output ? res->output_len : 0,
					 &r->result.output_len);
	r->result.error = text_repaired(err, strlen(err), &elen);
	if (r->result.output == NULL || r->result.error == NULL) {
		elog(e, ENGINE_LOG_WARN, "%s: cannot report run %s: out of "
		     "memory", e->conf.name, r->id);
		run_finish(r);
		return;
	}
	r->tries = 0;
	report_send(r);
}

/* -- execution -- */

static void executing(erun *r, bool on)
{
	engine *e = r->e;
	if (e->tp->executing != NULL)
		e->tp->executing(e->t, r->id, on);
}

static void exec_done(void *ud, const exec_result *res)
{
	erun *r = ud;

	r->task = NULL;
	executing(r, false);
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
	run_report(r, res);
}

static void run_exec(erun *r)
{
	engine *e = r->e;
	hora_error err;
	char *payload_s = NULL;
	int rv;

	if (e->stopping) {
		run_release(r);
		return;
	}
	r->state = R_EXEC;
	if (r->payload != NULL)
		payload_s = json_dumps(r->payload,
				       JSON_COMPACT | JSON_ENCODE_ANY);
	exec_request req = {
		.run_id = r->id,
		.job = r->job,
		.scheduled_at = r->scheduled_at,
		.attempt = r->attempt,
		.payload_json = payload_s != NULL ? payload_s : "null",
		.command = r->command,
		.http = r->http,
		/* counted from here; the leader enforces it from the claim,
		 * plus a grace period, in case the worker does not */
		.timeout_usec = r->timeout_usec > 0 ? r->timeout_usec : 0,
	};
	hora_error_clear(&err);
	r->started_ns = uv_hrtime();
	rv = executor_run(e->ex, &req, exec_done, r, &r->task, &err);
	hora_free(payload_s);
	if (rv != 0) {
		/* nothing runs: report the failure like an execution's */
		exec_result res = {
			.status = EXEC_FAILED,
			.exit_code = -1,
			.output = "",
			.output_len = 0,
			.error = err.msg[0] ? err.msg : hora_strerror(rv),
		};
		r->task = NULL;
		run_report(r, &res);
		return;
	}
	executing(r, true);
}

static void fetch_done(void *ud, const engine_answer *a)
{
	erun *r = ud;

	r->req = NULL;
	if (a->outcome == ENGINE_OK)
		r->timeout_usec = a->timeout_usec;
	else
		elog(r->e, ENGINE_LOG_WARN, "%s: cannot read job %s: %s; "
		     "running run %s without its timeout (the server "
		     "enforces it)", r->e->conf.name, r->job, a->why, r->id);
	run_exec(r);
}

/* A JSON value kept by the run: NULL for none (absent or null). */
static json_t *json_keep(const json_t *v)
{
	return v != NULL && !json_is_null(v) ? json_incref((json_t *)v) : NULL;
}

static void run_start(engine *e, const engine_claimed *c)
{
	erun *r;

	if (c->id == NULL || c->job == NULL) {
		elog(e, ENGINE_LOG_WARN, "%s: the server handed out a run "
		     "without id or job; ignored", e->conf.name);
		return;
	}
	if ((r = hora_calloc(1, sizeof *r)) == NULL ||
	    (r->id = hora_strdup(c->id)) == NULL ||
	    (r->job = hora_strdup(c->job)) == NULL ||
	    (r->scheduled_at = hora_strdup(c->scheduled_at ? c->scheduled_at
							   : "")) == NULL) {
		if (r != NULL) {
			hora_free(r->id);
			hora_free(r->job);
			hora_free(r);
		}
		elog(e, ENGINE_LOG_WARN, "%s: out of memory taking run %s (its "
		     "lease will expire)", e->conf.name, c->id);
		return;
	}
	r->e = e;
	r->attempt = c->attempt > 0 ? c->attempt : 1;
	r->payload = json_keep(c->payload);
	r->command = json_keep(c->command);
	r->http = json_keep(c->http);
	r->timeout_usec = c->timeout_known ? c->timeout_usec : 0;
	uv_timer_init(e->loop, &r->hb_timer);
	uv_timer_init(e->loop, &r->retry_timer);
	r->hb_timer.data = r->retry_timer.data = r;
	r->nhandles = 2;
	r->next = e->runs;
	if (e->runs != NULL)
		e->runs->prev = r;
	e->runs = r;
	e->nruns++;

	uint64_t period = (uint64_t)e->conf.heartbeat_ms;
	uv_timer_start(&r->hb_timer, hb_tick, period, period);

	if (e->stopping) {
		run_release(r);
		return;
	}
	if (c->timeout_known || e->tp->job_timeout == NULL) {
		run_exec(r);
		return;
	}
	r->state = R_FETCH;
	if (e->tp->job_timeout(e->t, r->job, fetch_done, r, &r->req) != 0) {
		r->req = NULL;
		run_exec(r);
	}
}

/* ------------------------------------------------------------------ */
/* Claims */

static void queue_retry_cb(uv_timer_t *t)
{
	equeue *q = t->data;
	q->waiting = false;
	fill_slots(q->e);
}

static void queue_backoff(equeue *q)
{
	q->backoff_ms = backoff_next(q->e, q->backoff_ms);
	q->waiting = true;
	uv_timer_start(&q->retry, queue_retry_cb, q->backoff_ms, 0);
}

static void claim_done(void *ud, const engine_answer *a)
{
	equeue *q = ud;
	engine *e = q->e;
	char secs[32];

	q->claim = NULL;
	e->reserved -= q->asked;
	q->asked = 0;
	if (a->outcome == ENGINE_OK) {
		q->backoff_ms = 0;
		for (size_t i = 0; i < a->nruns; i++)
			run_start(e, &a->runs[i]);
		if (a->nruns == 0 &&
		    uv_now(e->loop) - q->claim_sent < ENGINE_EARLY_EMPTY_MS) {
			/* nothing, and at once (wait 0, a leader change): no
			 * busy loop */
			q->waiting = true;
			uv_timer_start(&q->retry, queue_retry_cb,
				       e->conf.backoff_min_ms, 0);
		}
	} else {
		/* retried until it works: a leader change is no news */
		queue_backoff(q);
		elog(e, a->outcome == ENGINE_TRANSIENT ? ENGINE_LOG_DEBUG
						       : ENGINE_LOG_WARN,
		     "%s: claim from queue %s failed: %s; retrying in %s",
		     e->conf.name, q->name, a->why,
		     secs_text(q->backoff_ms, secs));
	}
	fill_slots(e);
}

static void claim_send(equeue *q, unsigned max, int64_t wait_ms)
{
	engine *e = q->e;
	int rv;

	q->claim_sent = uv_now(e->loop);
	rv = e->tp->claim(e->t, q->name, max, wait_ms, e->conf.lease_ms,
			  claim_done, q, &q->claim);
	if (rv != 0) {
		q->claim = NULL;
		queue_backoff(q);
		elog(e, ENGINE_LOG_DEBUG, "%s: cannot claim from queue %s: %s",
		     e->conf.name, q->name, hora_strerror(rv));
		return;
	}
	q->asked = max;
	e->reserved += max;
}

/* ------------------------------------------------------------------ */
/* Streams (push delivery) */

static void stream_pushed(void *ud, const engine_answer *a)
{
	equeue *q = ud;
	q->backoff_ms = 0;
	for (size_t i = 0; i < a->nruns; i++)
		run_start(q->e, &a->runs[i]);
}

static void stream_ended(void *ud, const engine_answer *a)
{
	equeue *q = ud;
	engine *e = q->e;
	char secs[32];

	q->stream = NULL;
	if (a->outcome == ENGINE_REJECTED) {
		/* refused outright (a server without streams, 404): claims */
		elog(e, ENGINE_LOG_WARN, "%s: stream of queue %s refused: %s; "
		     "claiming instead", e->conf.name, q->name, a->why);
		e->streaming = false;
		fill_slots(e);
		return;
	}
	if (a->outcome == ENGINE_OK &&
	    uv_now(e->loop) - q->stream_sent >= ENGINE_EARLY_EMPTY_MS) {
		/* a clean end (the leader changed): connect again now */
		elog(e, ENGINE_LOG_DEBUG, "%s: stream of queue %s ended; "
		     "opening another", e->conf.name, q->name);
	} else {
		queue_backoff(q);
		if (a->outcome == ENGINE_OK)
			elog(e, ENGINE_LOG_DEBUG, "%s: stream of queue %s "
			     "ended at once; again in %s", e->conf.name,
			     q->name, secs_text(q->backoff_ms, secs));
		else /* a stream is how this worker claims: same words */
			elog(e, ENGINE_LOG_DEBUG, "%s: stream claim from "
			     "queue %s failed: %s; retrying in %s",
			     e->conf.name, q->name, a->why,
			     secs_text(q->backoff_ms, secs));
	}
	fill_slots(e);
}

static void stream_open(equeue *q)
{
	engine *e = q->e;
	q->stream_sent = uv_now(e->loop);
	int rv = e->tp->stream(e->t, q->name, q->share, e->conf.lease_ms,
			       stream_pushed, stream_ended, q, &q->stream);
	if (rv != 0) {
		q->stream = NULL;
		queue_backoff(q);
		elog(e, ENGINE_LOG_DEBUG, "%s: cannot open a stream of queue "
		     "%s: %s", e->conf.name, q->name, hora_strerror(rv));
	}
}

/* Share the free slots among the idle queues. */
static void fill_slots(engine *e)
{
	equeue *idle[ENGINE_QUEUES_MAX];
	size_t nidle = 0, nq = e->conf.nqueues;
	unsigned used, free_slots;

	if (e->stopping)
		return;
	if (e->streaming) {
		for (size_t k = 0; k < nq; k++)
			if (e->queues[k].stream == NULL && !e->queues[k].waiting)
				stream_open(&e->queues[k]);
		return;
	}
	used = e->nruns + e->reserved;
	free_slots = used >= e->conf.concurrency ? 0
						 : e->conf.concurrency - used;
	if (free_slots == 0)
		return;
	for (size_t k = 0; k < nq; k++) {
		equeue *q = &e->queues[(e->rr + k) % nq];
		if (q->claim == NULL && !q->waiting)
			idle[nidle++] = q;
	}
	if (nidle == 0)
		return;
	bool starved = free_slots < nidle;
	int64_t wait = starved && e->conf.wait_ms > ENGINE_STARVED_WAIT_MS
			       ? ENGINE_STARVED_WAIT_MS
			       : e->conf.wait_ms;
	for (size_t k = 0; k < nidle && free_slots > 0; k++) {
		unsigned share = free_slots / (unsigned)(nidle - k);
		if (share == 0)
			share = 1;
		claim_send(idle[k], share, wait);
		if (idle[k]->claim != NULL)
			free_slots -= share;
	}
	e->rr = (e->rr + 1) % nq;
}

/* ------------------------------------------------------------------ */
/* Life */

int engine_new(uv_loop_t *loop, const engine_conf *conf,
	       const engine_transport *tp, void *t, engine **out,
	       hora_error *err)
{
	engine *e;
	int rv;

	if (conf->nqueues == 0 || conf->nqueues > ENGINE_QUEUES_MAX ||
	    conf->concurrency == 0 || conf->lease_ms <= 0 ||
	    conf->backoff_min_ms == 0 ||
	    conf->backoff_max_ms < conf->backoff_min_ms || tp->claim == NULL ||
	    tp->heartbeat == NULL || tp->complete == NULL || tp->abort == NULL)
		return hora_error_set(err, -HORA_EINVAL, "",
				      "bad worker engine configuration");
	if ((e = hora_calloc(1, sizeof *e)) == NULL)
		return hora_error_set(err, -HORA_ENOMEM, "", "out of memory");
	if ((rv = executor_new(loop, &e->ex, err)) != 0) {
		hora_free(e);
		return rv;
	}
	e->loop = loop;
	e->tp = tp;
	e->t = t;
	e->conf = *conf;
	if (e->conf.heartbeat_ms <= 0)
		e->conf.heartbeat_ms = e->conf.lease_ms / 3;
	if (e->conf.name == NULL)
		e->conf.name = "worker";
	uv_timer_init(loop, &e->grace_timer);
	e->grace_timer.data = e;
	e->nhandles = 1;
	/* push delivery needs a slot per queue: the slots are split */
	e->streaming = conf->stream && tp->stream != NULL &&
		       conf->concurrency >= conf->nqueues;
	for (size_t i = 0; i < conf->nqueues; i++) {
		equeue *q = &e->queues[i];
		q->e = e;
		q->name = conf->queues[i];
		q->share = conf->concurrency / (unsigned)conf->nqueues +
			   (i < conf->concurrency % conf->nqueues ? 1 : 0);
		uv_timer_init(loop, &q->retry);
		q->retry.data = q;
		e->nhandles++;
	}
	*out = e;
	return 0;
}

void engine_start(engine *e)
{
	fill_slots(e);
}

unsigned engine_held(const engine *e)
{
	return e->nruns;
}

unsigned engine_executing(const engine *e)
{
	unsigned n = 0;
	for (const erun *r = e->runs; r != NULL; r = r->next)
		n += r->state == R_EXEC;
	return n;
}

void engine_cancel_run(engine *e, const char *id)
{
	for (erun *r = e->runs; r != NULL; r = r->next)
		if (r->state == R_EXEC && r->task != NULL &&
		    strcmp(r->id, id) == 0)
			executor_cancel(r->task);
}

void engine_kill(engine *e)
{
	for (erun *r = e->runs; r != NULL; r = r->next)
		if (r->state == R_EXEC && r->task != NULL)
			executor_cancel(r->task); /* SIGTERM now */
}

static void handle_closed(uv_handle_t *h)
{
	engine *e = h->data;
	void (*done)(void *ud);
	void *ud;

	if (--e->nhandles > 0)
		return;
	done = e->done;
	ud = e->done_ud;
	hora_free(e);
	if (done != NULL)
		done(ud);
}

static void ex_closed(void *ud)
{
	engine *e = ud;

	e->ex = NULL;
	uv_close((uv_handle_t *)&e->grace_timer, handle_closed);
	for (size_t i = 0; i < e->conf.nqueues; i++) {
		e->queues[i].retry.data = e;
		uv_close((uv_handle_t *)&e->queues[i].retry, handle_closed);
	}
}

static void maybe_finish(engine *e)
{
	if (!e->stopping || e->closing || e->nruns > 0)
		return;
	e->closing = true;
	uv_timer_stop(&e->grace_timer);
	elog(e, ENGINE_LOG_INFO, "%s: stopped", e->conf.name);
	executor_close(e->ex, ex_closed, e);
}

static void grace_cb(uv_timer_t *t)
{
	engine *e = t->data;

	for (erun *r = e->runs; r != NULL; r = r->next) {
		if (r->state != R_EXEC || r->task == NULL)
			continue;
		elog(e, ENGINE_LOG_INFO, "run %s job %s attempt %u: still "
		     "running after the grace period; cancelling it and "
		     "handing it back", r->id, r->job, r->attempt);
		r->release_on_cancel = true;
		executor_cancel(r->task);
	}
}

void engine_stop(engine *e, int64_t grace_ms, void (*done)(void *ud),
		 void *ud)
{
	if (e->stopping)
		return;
	e->stopping = true;
	e->done = done;
	e->done_ud = ud;
	for (size_t i = 0; i < e->conf.nqueues; i++) {
		equeue *q = &e->queues[i];
		call_abort(e, &q->claim);
		call_abort(e, &q->stream);
		q->asked = 0;
		uv_timer_stop(&q->retry);
		q->waiting = false;
	}
	e->reserved = 0;
	/* runs not started go back at once */
	for (erun *r = e->runs, *next; r != NULL; r = next) {
		next = r->next;
		if (r->state == R_FETCH) {
			call_abort(e, &r->req);
			run_release(r);
		}
	}
	if (engine_executing(e) > 0)
		uv_timer_start(&e->grace_timer, grace_cb,
			       (uint64_t)(grace_ms > 0 ? grace_ms : 0), 0);
	maybe_finish(e);
}
