#include "daemon/workers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/forward.h"
#include "api/run_json.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "exec/exec.h"
#include "fsm/entry.h"
#include "fsm/fsm.h"
#include "sched/run_status.h"

#ifndef WORKER_LEASE_MS /* overridable for tests of long runs */
#define WORKER_LEASE_MS 60000
#endif
#ifndef WORKER_HEARTBEAT_MS
#define WORKER_HEARTBEAT_MS (WORKER_LEASE_MS / 3)
#endif
#define WORKER_WAIT_MS 30000
#define WORKER_RETRY_MS 100
/* A relayed claim must answer within the forwarder's call timeout. */
#define WORKER_REMOTE_WAIT_MS (FORWARD_CALL_TIMEOUT_MS - 1000)

typedef struct execution {
	workers *w;
	uint64_t run_id;
	uint32_t attempt;
	exec_task *task;
	uv_timer_t heartbeat;
	bool cancelled_by_us; /* stopping: hand the run back, no report */
	bool remote; /* claimed through the leader's API */
	struct execution *prev, *next;
} execution;

typedef struct slot_claim {
	workers *w;
	const char *queue;
	dispatch_waiter *waiter;
	bool outstanding;
} slot_claim;

struct workers {
	uv_loop_t *loop;
	node *node;
	dispatch *d;
	forwarder *fw;
	char *token;
	executor *ex;
	unsigned slots;
	unsigned active;
	char id[64];
	slot_claim *claims;
	unsigned nclaims;
	uv_timer_t kick;
	execution *running;
	bool stopping;
	uv_timer_t grace;
	void (*stop_done)(void *);
	void *stop_ud;
	unsigned closes;
};

static void kick_soon(workers *w, uint64_t ms);
static void report_done(void *ud, int status, const fsm_result *res);

/* The leader's API URL when another node leads and its address is
 * known; NULL otherwise. */
static const char *leader_url(workers *w)
{
	if (w->fw == NULL || node_is_leader(w->node))
		return NULL;
	uint64_t leader = node_leader(w->node, NULL);
	return leader ? fsm_node_api(node_fsm(w->node), leader) : NULL;
}

static void relayed_done(void *ud, int status, const char *body, size_t len)
{
	uint64_t *id = ud;
	if (status < 200 || status >= 300)
		log_warn("run %llu: the leader did not take the report (%d: "
			 "%.*s); it will be delivered again",
			 (unsigned long long)*id, status,
			 (int)(len > 200 ? 200 : len), body ? body : "");
	hora_free(id);
}

/* POST body (stolen JSON) to the leader's `path`; cb(ud) as for
 * forwarder_call.  Returns 0 or a negative error. */
static int relay(workers *w, const char *path, json_t *body,
		 forwarder_call_cb cb, void *ud)
{
	const char *base = leader_url(w);
	char url[512];
	if (base == NULL) {
		json_decref(body);
		return -HORA_ENOTLEADER;
	}
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (text == NULL)
		return -HORA_ENOMEM;
	snprintf(url, sizeof url, "%s%s", base, path);
	int rv = forwarder_call(w->fw, "POST", url, text, w->token, cb, ud);
	free(text);
	return rv;
}

typedef struct beat_ctx {
	workers *w;
	uint64_t id;
} beat_ctx;

static void relayed_beat(void *ud, int status, const char *body, size_t len)
{
	beat_ctx *b = ud;
	(void)body;
	(void)len;
	if ((status == 409 || status == 404) && !b->w->stopping) {
		/* the run was taken away: stop working on it */
		for (execution *e = b->w->running; e; e = e->next)
			if (e->run_id == b->id && e->task)
				executor_cancel(e->task);
	}
	hora_free(b);
}

/* Heartbeat or release (lease_ms 0) through the leader's API. */
static void relay_heartbeat(workers *w, uint64_t id, int64_t lease_ms)
{
	char path[96];
	beat_ctx *b = hora_malloc(sizeof *b);
	if (b == NULL)
		return;
	b->w = w;
	b->id = id;
	snprintf(path, sizeof path, "/v1/runs/%llu/heartbeat",
		 (unsigned long long)id);
	if (relay(w, path,
		  json_pack("{s:s,s:I}", "worker", w->id, "lease_ms",
			    (json_int_t)lease_ms),
		  relayed_beat, b) != 0)
		hora_free(b);
}

/* Report an attempt: in-process while this node leads, through the
 * leader's API otherwise. */
static void report(workers *w, const complete_item *item)
{
	uint64_t *id = hora_malloc(sizeof *id);
	int rv = -HORA_ENOMEM;
	if (id == NULL)
		goto fail;
	*id = item->run;
	if (node_is_leader(w->node)) {
		bool lost = false;
		rv = dispatch_complete(w->d, item, 1, &lost, report_done, id);
	} else {
		char path[96];
		char *out = NULL;
		if (item->output_len) {
			out = hora_malloc(item->output_len + 1);
			if (out) {
				memcpy(out, item->output, item->output_len);
				out[item->output_len] = '\0';
				entry_sanitize_text(out, item->output_len);
			}
		}
		char err[512] = "";
		if (item->error) {
			snprintf(err, sizeof err, "%s", item->error);
			entry_sanitize_text(err, strlen(err));
		}
		snprintf(path, sizeof path, "/v1/runs/%llu/complete",
			 (unsigned long long)item->run);
		json_t *body = json_pack(
			"{s:s,s:s,s:i,s:I,s:s?,s:s?}", "worker", w->id,
			"status", run_status_str(item->status), "exit_code",
			item->exit_code, "attempt", (json_int_t)item->attempt,
			"output", out, "error", err[0] ? err : NULL);
		hora_free(out);
		rv = body ? relay(w, path, body, relayed_done, id)
			  : -HORA_ENOMEM;
	}
	if (rv == 0)
		return;
fail:
	hora_free(id);
	log_warn("run %llu: cannot report its result (%s); it will be "
		 "delivered again",
		 (unsigned long long)item->run, hora_strerror(rv));
}

static void heartbeat_closed(uv_handle_t *h)
{
	hora_free(h->data);
}

static void execution_end(execution *e)
{
	workers *w = e->w;
	run *r = fsm_run(node_fsm(w->node), e->run_id);
	if (r && r->exec == e)
		r->exec = NULL;
	if (e->prev)
		e->prev->next = e->next;
	else
		w->running = e->next;
	if (e->next)
		e->next->prev = e->prev;
	w->active--;
	uv_timer_stop(&e->heartbeat);
	uv_close((uv_handle_t *)&e->heartbeat, heartbeat_closed);
	kick_soon(w, 0);
}

static void report_done(void *ud, int status, const fsm_result *res)
{
	(void)res;
	uint64_t *id = ud;
	if (status != 0)
		log_warn("run %llu: completion not committed (%s); it will be "
			 "delivered again",
			 (unsigned long long)*id, hora_strerror(status));
	hora_free(id);
}

static void release_done(void *ud, int status, const fsm_result *res)
{
	(void)ud;
	(void)status;
	(void)res;
}

static void on_exec_done(void *ud, const exec_result *res)
{
	execution *e = ud;
	workers *w = e->w;
	e->task = NULL;
	if (e->cancelled_by_us) {
		/* stopping: hand the run back so it is delivered again */
		if (node_is_leader(w->node))
			dispatch_heartbeat(w->d, e->run_id, w->id, 0,
					   release_done, NULL);
		else
			relay_heartbeat(w, e->run_id, 0);
	} else if (res->status != EXEC_CANCELLED) {
		complete_item item = {
			.run = e->run_id,
			.attempt = e->attempt,
			.worker = w->id,
			.status = (uint8_t)exec_status_run(res->status),
			.exit_code = res->exit_code,
			.output = res->output,
			.output_len = res->output_len,
			.error = res->error,
		};
		report(w, &item);
		log_debug("run %llu attempt %u: %s (exit %d)",
			  (unsigned long long)e->run_id, e->attempt,
			  res->status == EXEC_SUCCEEDED
				  ? run_status_str(RUN_SUCCEEDED)
				  : res->error,
			  res->exit_code);
	}
	execution_end(e);
}

static void on_heartbeat(uv_timer_t *t)
{
	execution *e = t->data;
	if (!node_is_leader(e->w->node)) {
		relay_heartbeat(e->w, e->run_id, WORKER_LEASE_MS);
		return;
	}
	int rv = dispatch_heartbeat(e->w->d, e->run_id, e->w->id,
				    WORKER_LEASE_MS, release_done, NULL);
	if (rv == -HORA_ECONFLICT || rv == -HORA_ENOENT) {
		/* the run was taken away: stop working on it */
		if (e->task)
			executor_cancel(e->task);
	}
}

/* A run ended (cancelled by overlap replace or deletion) while one of
 * our slots executes it. */
static void on_run_final(void *ud, run *r)
{
	(void)ud;
	execution *e = r->exec;
	if (e && e->task)
		executor_cancel(e->task);
}

/* Start executing attempt `attempt` of run `id` of job `jobname`;
 * command/http/payload come from the job's definition.  On a failure to
 * start, the failure is reported like an execution's. */
static void start_exec(workers *w, uint64_t id, uint32_t attempt,
		       const char *jobname, hora_time scheduled_at,
		       const json_t *payload, const json_t *command,
		       const json_t *http, bool remote)
{
	fsm *f = node_fsm(w->node);
	job *j = store_get(fsm_store(f), jobname);
	execution *e = hora_calloc(1, sizeof *e);
	if (e == NULL) {
		log_error("out of memory starting run %llu",
			  (unsigned long long)id);
		return;
	}
	e->w = w;
	e->run_id = id;
	e->attempt = attempt;
	e->remote = remote;

	char ids[24], sched[HORA_TIME_STRLEN];
	snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
	timefmt_format(scheduled_at, 0, TIMEFMT_Z, sched);
	char *payload_text = payload && !json_is_null(payload)
				     ? json_dumps(payload, JSON_COMPACT |
							      JSON_ENCODE_ANY)
				     : NULL;
	exec_request req = {
		.run_id = ids,
		.job = jobname,
		.scheduled_at = sched,
		.attempt = attempt,
		.payload_json = payload_text ? payload_text : "null",
		.command = command && !json_is_null(command) ? command : NULL,
		.http = http && !json_is_null(http) ? http : NULL,
		.timeout_usec = j ? job_opt_get(j, JOB_OPT_TIMEOUT, 0) : 0,
	};
	hora_error err;
	hora_error_clear(&err);
	int rv = executor_run(w->ex, &req, on_exec_done, e, &e->task, &err);
	free(payload_text);
	if (rv != 0) {
		/* nothing runs: report the failure like an execution */
		complete_item item = {
			.run = id,
			.attempt = attempt,
			.worker = w->id,
			.status = RUN_FAILED,
			.exit_code = -1,
			.error = err.msg[0] ? err.msg : hora_strerror(rv),
		};
		report(w, &item);
		hora_free(e);
		return;
	}
	run *r = fsm_run(f, id);
	if (r)
		r->exec = e; /* so a cancel (overlap, delete) reaches it */
	uv_timer_init(w->loop, &e->heartbeat);
	e->heartbeat.data = e;
	uv_timer_start(&e->heartbeat, on_heartbeat, WORKER_HEARTBEAT_MS,
		       WORKER_HEARTBEAT_MS);
	e->next = w->running;
	if (w->running)
		w->running->prev = e;
	w->running = e;
	w->active++;
}

static void start_run(workers *w, run *r)
{
	job *j = store_get(fsm_store(node_fsm(w->node)), r->job);
	json_t *extra = job_extra_json(j);
	start_exec(w, r->id, r->attempt, r->job, r->scheduled_at,
		   extra ? json_object_get(extra, "payload") : NULL,
		   extra ? json_object_get(extra, "command") : NULL,
		   extra ? json_object_get(extra, "http") : NULL, false);
	json_decref(extra);
}

/* The answer of a claim relayed to the leader. */
static void remote_claimed(void *ud, int status, const char *body, size_t len)
{
	slot_claim *sc = ud;
	workers *w = sc->w;
	sc->outstanding = false;
	json_t *obj = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *runs = json_object_get(obj, "runs");
	size_t i;
	json_t *rj;
	json_array_foreach(runs, i, rj)
	{
		const char *ids = json_string_value(json_object_get(rj, "id"));
		const char *jobname =
			json_string_value(json_object_get(rj, "job"));
		const char *sched =
			json_string_value(json_object_get(rj, "scheduled_at"));
		json_int_t attempt =
			json_integer_value(json_object_get(rj, "attempt"));
		hora_time at = 0;
		hora_error err;
		if (ids == NULL || jobname == NULL || sched == NULL ||
		    attempt < 1 ||
		    timefmt_parse(sched, false, &at, NULL, "", &err) != 0)
			continue;
		uint64_t id = strtoull(ids, NULL, 10);
		if (w->stopping) {
			relay_heartbeat(w, id, 0);
			continue;
		}
		start_exec(w, id, (uint32_t)attempt, jobname, at,
			   json_object_get(rj, "payload"),
			   json_object_get(rj, "command"),
			   json_object_get(rj, "http"), true);
	}
	bool empty = json_array_size(runs) == 0;
	json_decref(obj);
	kick_soon(w, status == 200 ? 0 : (empty ? 1000 : 0));
}

static void on_claimed(void *ud, run *const *runs, size_t n)
{
	slot_claim *sc = ud;
	workers *w = sc->w;
	sc->outstanding = false;
	sc->waiter = NULL;
	for (size_t i = 0; i < n; i++) {
		if (w->stopping) {
			/* claimed as we stopped: hand it straight back */
			dispatch_heartbeat(w->d, runs[i]->id, w->id, 0,
					   release_done, NULL);
			continue;
		}
		start_run(w, runs[i]);
	}
	kick_soon(w, n == 0 && !node_is_leader(w->node) ? WORKER_RETRY_MS : 0);
}

static void claim_more(workers *w)
{
	if (w->stopping || w->active >= w->slots)
		return;
	unsigned free_slots = w->slots - w->active;
	bool retry = false;
	for (unsigned i = 0; i < w->nclaims; i++) {
		slot_claim *sc = &w->claims[i];
		if (sc->outstanding)
			continue;
		sc->outstanding = true;
		int rv;
		if (node_is_leader(w->node)) {
			rv = dispatch_claim(w->d, sc->queue, w->id, free_slots,
					    WORKER_WAIT_MS, WORKER_LEASE_MS,
					    on_claimed, sc, &sc->waiter);
		} else {
			/* a follower's slots claim through the leader */
			char path[160];
			snprintf(path, sizeof path, "/v1/queues/%s/claim",
				 sc->queue);
			rv = relay(w, path,
				   json_pack("{s:s,s:i,s:i,s:i}", "worker", w->id,
					     "max", (int)free_slots, "wait_ms",
					     (int)WORKER_REMOTE_WAIT_MS,
					     "lease_ms", WORKER_LEASE_MS),
				   remote_claimed, sc);
		}
		if (rv != 0) {
			sc->outstanding = false;
			retry = true;
		}
	}
	if (retry)
		kick_soon(w, WORKER_RETRY_MS);
}

static void on_kick(uv_timer_t *t)
{
	claim_more(t->data);
}

static void kick_soon(workers *w, uint64_t ms)
{
	if (w->stopping)
		return;
	uv_timer_start(&w->kick, on_kick, ms, 0);
}

int workers_start(uv_loop_t *loop, node *n, dispatch *d,
		  struct forwarder *fw, const char *token, unsigned slots,
		  const char *const *queues, unsigned nqueues, workers **out,
		  hora_error *err)
{
	workers *w = hora_calloc(1, sizeof *w);
	if (w == NULL)
		return hora_error_set(err, -HORA_ENOMEM, "", "out of memory");
	w->claims = hora_calloc(nqueues ? nqueues : 1, sizeof *w->claims);
	if (w->claims == NULL) {
		hora_free(w);
		return hora_error_set(err, -HORA_ENOMEM, "", "out of memory");
	}
	int rv = executor_new(loop, &w->ex, err);
	if (rv != 0) {
		hora_free(w->claims);
		hora_free(w);
		return rv;
	}
	w->loop = loop;
	w->node = n;
	w->d = d;
	w->fw = fw;
	w->token = token ? hora_strdup(token) : NULL;
	w->slots = slots;
	snprintf(w->id, sizeof w->id, "horad-%llu",
		 (unsigned long long)node_id(n));
	w->nclaims = nqueues;
	for (unsigned i = 0; i < nqueues; i++) {
		w->claims[i].w = w;
		w->claims[i].queue = queues[i];
	}
	uv_timer_init(loop, &w->kick);
	w->kick.data = w;
	uv_timer_init(loop, &w->grace);
	w->grace.data = w;
	dispatch_set_final_cb(d, on_run_final, w);
	kick_soon(w, 0);
	*out = w;
	return 0;
}

unsigned workers_active(const workers *w)
{
	return w->active;
}

static void stop_step(workers *w)
{
	if (--w->closes > 0)
		return;
	void (*done)(void *) = w->stop_done;
	void *ud = w->stop_ud;
	hora_free(w->claims);
	hora_free(w->token);
	hora_free(w);
	if (done)
		done(ud);
}

static void handle_closed(uv_handle_t *h)
{
	stop_step(h->data);
}

static void executor_closed(void *ud)
{
	stop_step(ud);
}

static void finish_stop(workers *w)
{
	uv_timer_stop(&w->grace);
	w->closes = 3;
	uv_close((uv_handle_t *)&w->kick, handle_closed);
	uv_close((uv_handle_t *)&w->grace, handle_closed);
	executor_close(w->ex, executor_closed, w);
}

/* Polled every few ms while stopping. */
static void on_grace_poll(uv_timer_t *t)
{
	workers *w = t->data;
	if (w->active == 0)
		finish_stop(w);
}

static void on_grace_over(uv_timer_t *t)
{
	workers *w = t->data;
	/* time is up: cancel what still runs and hand it back */
	for (execution *e = w->running; e; e = e->next) {
		e->cancelled_by_us = true;
		if (e->task)
			executor_cancel(e->task);
	}
	uv_timer_start(t, on_grace_poll, 5, 5);
}

void workers_stop(workers *w, unsigned grace_ms, void (*done)(void *ud),
		  void *ud)
{
	w->stopping = true;
	w->stop_done = done;
	w->stop_ud = ud;
	uv_timer_stop(&w->kick);
	for (unsigned i = 0; i < w->nclaims; i++) {
		if (w->claims[i].waiter)
			dispatch_claim_cancel(w->claims[i].waiter);
		w->claims[i].waiter = NULL;
		w->claims[i].outstanding = false;
	}
	dispatch_set_final_cb(w->d, NULL, NULL);
	if (w->active == 0) {
		finish_stop(w);
		return;
	}
	log_info("waiting up to %u ms for %u built-in execution(s)", grace_ms,
		 w->active);
	uv_timer_start(&w->grace, on_grace_over, grace_ms, 0);
	/* finish early if they all end within the grace period */
	uv_timer_start(&w->kick, on_grace_poll, 5, 5);
}
