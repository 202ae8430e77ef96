/*
 * workers.c - horad's built-in slots: the worker engine (worker/engine.h)
 * with an in-process transport.  While this node leads, claims,
 * heartbeats and completions go to the dispatcher directly; while it
 * follows, they are relayed to the leader's API by the forwarder (the
 * same bodies `hora worker` sends, worker/run_api.h).  The path is
 * chosen at each call, so a run claimed before a leader change is
 * heartbeated and reported the other way after it.
 */
#include "daemon/workers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/forward.h"
#include "api/run_json.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "fsm/fsm.h"
#include "worker/engine.h"
#include "worker/run_api.h"

#ifndef WORKER_LEASE_MS /* overridable for tests of long runs */
#define WORKER_LEASE_MS 60000
#endif
#ifndef WORKER_HEARTBEAT_MS
#define WORKER_HEARTBEAT_MS (WORKER_LEASE_MS / 3)
#endif
#define WORKER_WAIT_MS 30000
/* claim and report retries: this, doubling up to WORKER_RETRY_MAX_MS */
#define WORKER_RETRY_MS 100
#define WORKER_RETRY_MAX_MS 2000
/* A relayed claim must answer within the forwarder's call timeout. */
#define WORKER_REMOTE_WAIT_MS (FORWARD_CALL_TIMEOUT_MS - 1000)

typedef struct wcall wcall;

struct workers {
	uv_loop_t *loop;
	node *node;
	dispatch *d;
	forwarder *fw;
	char *token;
	char id[64];
	engine *eng;
	const char **queues; /* copies */
	unsigned nqueues;
	/* answers that came before their call returned, for `later` */
	wcall *ready;
	uv_timer_t later;
	void (*stop_done)(void *);
	void *stop_ud;
};

/*
 * One call of the engine's (an engine_call).  Answered by the
 * dispatcher's callbacks or the forwarder's; an answer that comes
 * before the call returns waits on w->ready (the engine takes answers
 * from the loop only).  Aborted: `w` is NULL and the answer, when it
 * comes, only frees the call.
 */
struct wcall {
	workers *w;
	run_api_call kind;
	engine_cb cb;
	void *ud;
	dispatch_waiter *waiter; /* an in-process claim, waiting */
	bool in_call;
	bool lost; /* dispatch_complete: the lease is visibly lost */
	wcall *next; /* on w->ready */
	/* the answer */
	engine_outcome outcome;
	char why[512];
	json_t *runs; /* a claim's answer, {"runs":[...]} as the API's */
};

static void call_free(wcall *c)
{
	if (c->runs != NULL)
		json_decref(c->runs);
	hora_free(c);
}

static void call_deliver(wcall *c)
{
	workers *w = c->w;
	engine_answer a = {.outcome = c->outcome, .why = c->why};
	engine_claimed *runs = NULL;
	size_t n = 0;

	if (c->outcome == ENGINE_OK && c->kind == RUN_API_CLAIM) {
		int rv = run_api_claimed(c->runs, &runs, &n);
		if (rv != 0) {
			a.outcome = rv == -HORA_ENOMEM ? ENGINE_TRANSIENT
						       : ENGINE_REJECTED;
			a.why = rv == -HORA_ENOMEM
					? "out of memory"
					: "the answer has no runs array";
		}
		/* the job's timeout, from the replicated definitions */
		for (size_t i = 0; i < n; i++) {
			job *j = runs[i].job ? store_get(fsm_store(node_fsm(
							       w->node)),
						       runs[i].job)
					     : NULL;
			runs[i].timeout_known = true;
			runs[i].timeout_usec =
				j ? job_opt_get(j, JOB_OPT_TIMEOUT, 0) : 0;
		}
		a.runs = runs;
		a.nruns = n;
	}
	c->cb(c->ud, &a);
	hora_free(runs);
	call_free(c);
}

static void on_later(uv_timer_t *t)
{
	workers *w = t->data;
	wcall *list = w->ready;

	w->ready = NULL;
	while (list != NULL) {
		wcall *c = list;
		list = c->next;
		call_deliver(c);
	}
}

/* The answer is in c: hand it over now, or from the loop when the call
 * has not returned yet; dropped when the call was aborted. */
static void call_answer(wcall *c, engine_outcome outcome, const char *why)
{
	workers *w = c->w;

	c->outcome = outcome;
	snprintf(c->why, sizeof c->why, "%s", why ? why : "");
	if (w == NULL) {
		call_free(c);
	} else if (c->in_call) {
		c->next = w->ready;
		w->ready = c;
		uv_timer_start(&w->later, on_later, 0, 0);
	} else {
		call_deliver(c);
	}
}

static wcall *call_new(workers *w, run_api_call kind, engine_cb cb, void *ud)
{
	wcall *c = hora_malloc(sizeof *c);
	if (c != NULL)
		*c = (wcall){.w = w, .kind = kind, .cb = cb, .ud = ud,
			     .in_call = true};
	return c;
}

/* A call made: 0 and *out, or the error (c freed). */
static int call_made(wcall *c, int rv, engine_call **out)
{
	c->in_call = false;
	if (rv != 0) {
		call_free(c);
		return rv;
	}
	*out = (engine_call *)(void *)c;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Through the leader's API */

/* The leader's API URL when another node leads and its address is
 * known; NULL otherwise. */
static const char *leader_url(workers *w)
{
	if (w->fw == NULL || node_is_leader(w->node))
		return NULL;
	uint64_t leader = node_leader(w->node, NULL);
	return leader ? fsm_node_api(node_fsm(w->node), leader) : NULL;
}

static void relayed(void *ud, int status, const char *body, size_t len)
{
	wcall *c = ud;
	engine_outcome outcome = run_api_outcome(status);
	json_t *json = NULL;
	char buf[512];
	const char *why = "";

	if (c->w == NULL) { /* aborted */
		call_free(c);
		return;
	}
	if (status != 0 && len > 0)
		json = json_loadb(body, len, JSON_DECODE_ANY, NULL);
	if (status == 0)
		why = body; /* the forwarder's sentence */
	else if (outcome != ENGINE_OK)
		why = run_api_why(c->kind, status, json, buf, sizeof buf);
	else if (c->kind == RUN_API_CLAIM)
		c->runs = json_incref(json);
	call_answer(c, outcome, why);
	if (json != NULL)
		json_decref(json);
}

/* POST body (stolen JSON) to the leader's `path`; the answer to c. */
static int relay(wcall *c, char *path, json_t *body)
{
	workers *w = c->w;
	const char *base = leader_url(w);
	char url[512];
	char *text = NULL;
	int rv = -HORA_ENOMEM;

	if (base == NULL)
		rv = -HORA_ENOTLEADER;
	else if (path != NULL && body != NULL &&
		 (text = json_dumps(body, JSON_COMPACT)) != NULL) {
		snprintf(url, sizeof url, "%s%s", base, path);
		rv = forwarder_call(w->fw, "POST", url, text, w->token, relayed,
				    c);
	}
	free(text);
	hora_free(path);
	if (body != NULL)
		json_decref(body);
	return rv;
}

/* ------------------------------------------------------------------ */
/* In-process, on the leader */

static void on_claimed(void *ud, run *const *runs, size_t n)
{
	wcall *c = ud;
	workers *w = c->w;
	hora_time now = hora_wallclock_usec();
	fsm *f = node_fsm(w->node);
	json_t *arr = json_array();

	c->waiter = NULL;
	for (size_t i = 0; i < n && arr != NULL; i++)
		json_array_append_new(
			arr, run_to_json(runs[i],
					 store_get(fsm_store(f), runs[i]->job),
					 now));
	c->runs = arr ? json_pack("{s:o}", "runs", arr) : NULL;
	if (c->runs == NULL) /* the runs' leases expire: delivered again */
		call_answer(c, ENGINE_TRANSIENT, "out of memory");
	else
		call_answer(c, ENGINE_OK, NULL);
}

static void beat_committed(void *ud, int status, const fsm_result *res)
{
	wcall *c = ud;

	if (status != 0)
		call_answer(c, ENGINE_TRANSIENT, hora_strerror(status));
	else if (res == NULL || res->count < 1 || res->outcome[0] != FSM_OK)
		call_answer(c, ENGINE_LOST, ENGINE_WHY_LEASE_LOST);
	else
		call_answer(c, ENGINE_OK, NULL);
}

static void complete_committed(void *ud, int status, const fsm_result *res)
{
	wcall *c = ud;

	if (c->lost)
		call_answer(c, ENGINE_LOST, ENGINE_WHY_LEASE_LOST);
	else if (status != 0)
		call_answer(c, ENGINE_TRANSIENT, hora_strerror(status));
	else if (res == NULL || res->count < 1 || res->outcome[0] != FSM_OK)
		call_answer(c, ENGINE_LOST, ENGINE_WHY_LEASE_LOST);
	else
		call_answer(c, ENGINE_OK, NULL);
}

/* ------------------------------------------------------------------ */
/* The transport */

static int wt_claim(void *t, const char *queue, unsigned max, int64_t wait_ms,
		    int64_t lease_ms, engine_cb cb, void *ud, engine_call **out)
{
	workers *w = t;
	wcall *c = call_new(w, RUN_API_CLAIM, cb, ud);
	int rv;

	if (c == NULL)
		return -HORA_ENOMEM;
	if (node_is_leader(w->node)) {
		rv = dispatch_claim(w->d, queue, w->id, max, wait_ms, lease_ms,
				    on_claimed, c, &c->waiter);
	} else {
		/* a follower's slots claim through the leader */
		if (wait_ms > WORKER_REMOTE_WAIT_MS)
			wait_ms = WORKER_REMOTE_WAIT_MS;
		rv = relay(c, run_api_claim_path(queue),
			   run_api_claim_body(w->id, max, wait_ms, lease_ms));
	}
	return call_made(c, rv, out);
}

static int wt_heartbeat(void *t, const char *id, int64_t lease_ms,
			engine_cb cb, void *ud, engine_call **out)
{
	workers *w = t;
	wcall *c = call_new(w, lease_ms > 0 ? RUN_API_HEARTBEAT
					    : RUN_API_RELEASE,
			    cb, ud);
	int rv;

	if (c == NULL)
		return -HORA_ENOMEM;
	if (!node_is_leader(w->node))
		return call_made(c, relay(c, run_api_run_path(id, "heartbeat"),
					  run_api_heartbeat_body(w->id,
								 lease_ms)),
				 out);
	rv = dispatch_heartbeat(w->d, strtoull(id, NULL, 10), w->id, lease_ms,
				beat_committed, c);
	if (rv == -HORA_ECONFLICT || rv == -HORA_ENOENT) {
		/* the run was taken away */
		call_answer(c, ENGINE_LOST, rv == -HORA_ECONFLICT
						    ? ENGINE_WHY_LEASE_LOST
						    : ENGINE_WHY_NO_RUN);
		rv = 0;
	}
	return call_made(c, rv, out);
}

static int wt_complete(void *t, const engine_result *res, engine_cb cb,
		       void *ud, engine_call **out)
{
	workers *w = t;
	wcall *c = call_new(w, RUN_API_COMPLETE, cb, ud);

	if (c == NULL)
		return -HORA_ENOMEM;
	if (!node_is_leader(w->node))
		return call_made(c, relay(c, run_api_run_path(res->run_id,
							      "complete"),
					  run_api_complete_body(w->id, res)),
				 out);
	complete_item item = {
		.run = strtoull(res->run_id, NULL, 10),
		.attempt = res->attempt,
		.worker = w->id,
		.status = (uint8_t)res->status,
		.exit_code = res->exit_code,
		.output = res->output,
		.output_len = res->output_len,
		.error = res->error[0] ? res->error : NULL,
	};
	return call_made(c, dispatch_complete(w->d, &item, 1, &c->lost,
					      complete_committed, c),
			 out);
}

static void wt_abort(void *t, engine_call *ec)
{
	workers *w = t;
	wcall *c = (wcall *)(void *)ec;

	for (wcall **p = &w->ready; *p != NULL; p = &(*p)->next) {
		if (*p == c) { /* answered, not yet delivered */
			*p = c->next;
			call_free(c);
			return;
		}
	}
	if (c->waiter != NULL) {
		dispatch_claim_cancel(c->waiter);
		call_free(c);
		return;
	}
	c->w = NULL; /* a commit or the leader's answer is still to come */
}

/* So that dispatch's final callback (on_run_final) reaches the
 * execution of a run cancelled meanwhile (overlap replace, deletion). */
static void wt_executing(void *t, const char *id, bool on)
{
	workers *w = t;
	run *r = fsm_run(node_fsm(w->node), strtoull(id, NULL, 10));

	if (r != NULL && on)
		r->exec = w;
	else if (r != NULL && r->exec == w)
		r->exec = NULL;
}

static const engine_transport workers_transport = {
	.claim = wt_claim,
	.heartbeat = wt_heartbeat,
	.complete = wt_complete,
	.abort = wt_abort,
	.executing = wt_executing,
};

/* A run ended (cancelled by overlap replace or deletion) while one of
 * our slots executes it. */
static void on_run_final(void *ud, run *r)
{
	workers *w = ud;
	char id[24];

	snprintf(id, sizeof id, "%llu", (unsigned long long)r->id);
	engine_cancel_run(w->eng, id);
}

static void engine_log(void *ud, engine_log_level level, const char *line)
{
	(void)ud;
	log_write(level == ENGINE_LOG_WARN   ? LOG_WARN
		  : level == ENGINE_LOG_INFO ? LOG_INFO
					     : LOG_DEBUG,
		  "%s", line);
}

/* ------------------------------------------------------------------ */
/* Life */

static void workers_free(workers *w)
{
	hora_free(w->queues);
	hora_free(w->token);
	hora_free(w);
}

int workers_start(uv_loop_t *loop, node *n, dispatch *d,
		  struct forwarder *fw, const char *token, unsigned slots,
		  const char *const *queues, unsigned nqueues, workers **out,
		  hora_error *err)
{
	workers *w = hora_calloc(1, sizeof *w);
	int rv;

	if (w == NULL ||
	    (w->queues = hora_calloc(nqueues ? nqueues : 1,
				     sizeof *w->queues)) == NULL ||
	    (token != NULL && (w->token = hora_strdup(token)) == NULL)) {
		if (w != NULL)
			workers_free(w);
		return hora_error_set(err, -HORA_ENOMEM, "", "out of memory");
	}
	w->loop = loop;
	w->node = n;
	w->d = d;
	w->fw = fw;
	w->nqueues = nqueues;
	for (unsigned i = 0; i < nqueues; i++)
		w->queues[i] = queues[i];
	snprintf(w->id, sizeof w->id, "horad-%llu",
		 (unsigned long long)node_id(n));
	engine_conf conf = {
		.queues = w->queues,
		.nqueues = nqueues,
		.concurrency = slots,
		.lease_ms = WORKER_LEASE_MS,
		.heartbeat_ms = WORKER_HEARTBEAT_MS,
		.wait_ms = WORKER_WAIT_MS,
		.backoff_min_ms = WORKER_RETRY_MS,
		.backoff_max_ms = WORKER_RETRY_MAX_MS,
		.name = "built-in workers",
		.log = engine_log,
	};
	if ((rv = engine_new(loop, &conf, &workers_transport, w, &w->eng,
			     err)) != 0) {
		workers_free(w);
		return rv;
	}
	uv_timer_init(loop, &w->later);
	w->later.data = w;
	dispatch_set_final_cb(d, on_run_final, w);
	engine_start(w->eng);
	*out = w;
	return 0;
}

unsigned workers_active(const workers *w)
{
	return w->eng != NULL ? engine_executing(w->eng) : 0;
}

static void later_closed(uv_handle_t *h)
{
	workers *w = h->data;
	void (*done)(void *) = w->stop_done;
	void *ud = w->stop_ud;

	workers_free(w);
	if (done)
		done(ud);
}

static void engine_stopped(void *ud)
{
	workers *w = ud;

	w->eng = NULL;
	uv_close((uv_handle_t *)&w->later, later_closed);
}

void workers_stop(workers *w, unsigned grace_ms, void (*done)(void *ud),
		  void *ud)
{
	unsigned running = engine_executing(w->eng);

	w->stop_done = done;
	w->stop_ud = ud;
	dispatch_set_final_cb(w->d, NULL, NULL);
	if (running > 0)
		log_info("waiting up to %u ms for %u built-in execution(s)",
			 grace_ms, running);
	engine_stop(w->eng, grace_ms, engine_stopped, w);
}
