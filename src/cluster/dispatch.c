/*
 * dispatch.c - the dispatcher's life: creation and closing, gaining and
 * losing leadership, following the state machine (where each run
 * belongs), and the timers that drive the planner (plan.c) and the
 * collector of finished one-shot jobs (collect.c).  See dispatch.h.
 */
#include "cluster/dispatch_int.h"

#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "cluster/expiry.h"
#include "core/alloc.h"
#include "core/assert.h"
#include "core/clock.h"
#include "core/log.h"

/* ---- the leader's bookkeeping of runs --------------------------------- */

/* r's run_lead, made if it has none; NULL on ENOMEM. */
static run_lead *lead_get(dispatch *d, run *r)
{
	run_lead *l = r->lead;
	if (l != NULL)
		return l;
	l = hora_calloc(1, sizeof *l);
	if (l == NULL)
		return NULL;
	l->run = r;
	l->sched_idx = HEAP_NONE;
	l->lease_idx = HEAP_NONE;
	l->next = d->leads;
	if (d->leads)
		d->leads->prev = l;
	d->leads = l;
	r->lead = l;
	return l;
}

/* Take l out of every heap it is in. */
static void unqueue(dispatch *d, run_lead *l)
{
	if (l->where == WHERE_DUE) {
		heap_remove(&d->due, l->sched_idx);
	} else if (l->where == WHERE_SOON) {
		heap_remove(&d->soon, l->sched_idx);
	} else if (l->where == WHERE_READY) {
		dqueue *q = dispatch__queue(d, l->run->queue, false);
		HORA_ASSERT(q != NULL);
		heap_remove(&q->ready, l->sched_idx);
	}
	l->where = WHERE_NONE;
	if (l->lease_idx != HEAP_NONE)
		heap_remove(&d->lease, l->lease_idx);
}

void dispatch__handout_clear(run_lead *l)
{
	l->handed_out = false;
	hora_free(l->worker);
	l->worker = NULL;
}

/* The log ended the attempt a stream was given: its credit comes back. */
static void stream_settle(dispatch *d, run_lead *l)
{
	if (l->stream_id == 0)
		return;
	uint64_t id = l->stream_id;
	l->stream_id = 0;
	dispatch__stream_credit(d, id);
}

static void lead_free(dispatch *d, run_lead *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else
		d->leads = l->next;
	if (l->next)
		l->next->prev = l->prev;
	l->run->lead = NULL;
	hora_free(l->worker);
	hora_free(l);
}

/* Forget r (finished, freed): out of every heap, its run_lead freed. */
static void lead_drop(dispatch *d, run *r)
{
	if (r->lead == NULL)
		return;
	if (r->lead->ahead)
		dispatch__ahead_take_back(d, r->lead, false);
	if (d->leader)
		stream_settle(d, r->lead);
	unqueue(d, r->lead);
	lead_free(d, r->lead);
}

void dispatch__place(dispatch *d, run *r)
{
	if (run_is_final(r)) {
		lead_drop(d, r);
		return;
	}
	run_lead *l = lead_get(d, r);
	if (l == NULL) {
		log_error("out of memory queueing run %llu",
			  (unsigned long long)r->id);
		return;
	}
	if (l->ahead)
		dispatch__ahead_take_back(d, l, true); /* then as any */
	unqueue(d, l);
	l->overlap_pending = false;
	/* the log moved it: a hand-out from memory is settled; unless it
	 * now runs (its LEASE applied), the attempt a stream got is over */
	dispatch__handout_clear(l);
	if (r->status != RUN_RUNNING)
		stream_settle(d, l);
	if (r->status == RUN_SCHEDULED) {
		if (heap_push(&d->due, r->due_at, l) == 0)
			l->where = WHERE_DUE;
		else
			log_error("out of memory queueing run %llu",
				  (unsigned long long)r->id);
	} else if (r->status == RUN_RUNNING) {
		job *j = store_get(fsm_store(d->f), r->job);
		if (heap_push(&d->lease, expiry_deadline(r, j, l->lease_floor),
			      l) != 0)
			log_error("out of memory tracking run %llu",
				  (unsigned long long)r->id);
	}
}

/* ---- state machine observer ------------------------------------------- */

static void on_run_changed(void *ud, run *r)
{
	dispatch *d = ud;
	if (run_is_final(r) && r->exec && d->final_cb)
		d->final_cb(d->final_ud, r);
	if (!d->leader)
		return;
	dispatch__place(d, r);
	if (r->status == RUN_SCHEDULED)
		dispatch__arm_clock(d);
	else if (r->status == RUN_RUNNING)
		dispatch__arm_lease_timer(d);
}

static void on_run_freed(void *ud, run *r)
{
	lead_drop(ud, r);
}

static void forget_all(dispatch *d);

static void on_reset(void *ud)
{
	dispatch *d = ud;
	forget_all(d); /* the runs are about to be freed */
}

/* ---- the planner (plan.c decides, this proposes) ---------------------- */

static void plan_committed(void *ud, int status, const fsm_result *res)
{
	dispatch *d = ud;
	(void)res;
	if (status != 0)
		log_debug("FIRE entry not committed: %s", hora_strerror(status));
	d->planning = false;
}

/* One FIRE entry in flight at a time: a pass planned before the last one
 * applied would expect instants that entry moves (apply refuses them). */
static void on_plan_timer(uv_timer_t *t)
{
	dispatch *d = t->data;
	plan *p = &d->plan;
	if (!d->leader || d->planning)
		return;
	plan_make(p, fsm_store(d->f), hora_wallclock_usec());
	d->stats.misfires += p->misfires;
	if (p->n == 0)
		return;
	uint8_t *buf;
	size_t len;
	int rv = entry_encode_fire(p->items, p->n, p->now, &buf, &len);
	if (rv == 0) {
		d->planning = true;
		rv = node_propose(d->node, buf, len, plan_committed, d);
	}
	if (rv != 0) {
		d->planning = true;
		plan_committed(d, rv, NULL);
	}
}

/* ---- collecting finished one-shot jobs (collect.c decides) ------------ */

static void gc_done(void *ud, int status, const fsm_result *res)
{
	dispatch *d = ud;
	if (status == 0 && res)
		for (uint32_t i = 0; i < res->count; i++)
			d->stats.collected += res->outcome[i] == FSM_OK;
}

static void on_gc_timer(uv_timer_t *t)
{
	dispatch *d = t->data;
	if (!d->leader)
		return;
	hora_time now = hora_wallclock_usec();
	size_t n = collect_scan(fsm_store(d->f), now - d->once_retention,
				d->gc_names, COLLECT_BATCH_MAX);
	if (n == 0)
		return;
	uint8_t *buf;
	size_t len;
	if (entry_encode_names(ENTRY_DELETE_JOBS, 0, d->gc_names, n, now, &buf,
			       &len) == 0)
		node_propose(d->node, buf, len, gc_done, d);
}

void dispatch_set_ahead(dispatch *d, unsigned ms)
{
	d->ahead = (hora_time)ms * HORA_USEC_PER_MS;
	d->armed_at = HORA_TIME_NONE;
	dispatch__arm_clock(d);
}

void dispatch_set_once_retention(dispatch *d, int64_t usec)
{
	d->once_retention = usec;
}

/* ---- trigger ---------------------------------------------------------- */

int dispatch_trigger(dispatch *d, const char *name, node_commit_cb cb,
		     void *ud)
{
	if (!d->leader)
		return -HORA_ENOTLEADER;
	hora_time now = hora_wallclock_usec();
	fire_item it = {
		.job = name,
		.scheduled_at = now,
		.due_at = now,
		.flags = FIRE_TRIGGER,
	};
	uint8_t *buf;
	size_t len;
	int rv = entry_encode_fire(&it, 1, now, &buf, &len);
	if (rv != 0)
		return rv;
	return node_propose(d->node, buf, len, cb, ud);
}

/* ---- leadership ------------------------------------------------------- */

static int adopt_run(run *r, void *ud)
{
	dispatch *d = ud;
	if (run_is_final(r))
		return 0;
	if (r->status == RUN_RUNNING) {
		run_lead *l = lead_get(d, r);
		if (l != NULL)
			l->lease_floor = expiry_inherited(
				r->lease_expires_at, hora_wallclock_usec());
	}
	dispatch__place(d, r);
	return 0;
}

static void forget_all(dispatch *d)
{
	/* answer every waiting claim with nothing: at worst an empty
	 * answer, never an error (API.md, long polls) */
	dispatch__forget_queues(d);
	while (heap_len(&d->due))
		heap_remove(&d->due, 0);
	while (heap_len(&d->soon))
		heap_remove(&d->soon, 0);
	while (heap_len(&d->lease))
		heap_remove(&d->lease, 0);
	dispatch__forget_leases(d);
	while (d->leads)
		lead_free(d, d->leads);
	d->armed_at = HORA_TIME_NONE;
}

static void on_role(void *ud, bool leader)
{
	dispatch *d = ud;
	if (leader == d->leader)
		return;
	d->leader = leader;
	if (leader) {
		d->planning = false;
		fsm_each_run(d->f, adopt_run, d);
		dispatch__arm_clock(d);
		dispatch__arm_lease_timer(d);
		uv_timer_start(&d->plan_timer, on_plan_timer, 0,
			       DISPATCH_PLAN_PERIOD_MS);
		uv_timer_start(&d->gc_timer, on_gc_timer, DISPATCH_GC_PERIOD_MS,
			       DISPATCH_GC_PERIOD_MS);
	} else {
		uv_timer_stop(&d->plan_timer);
		uv_timer_stop(&d->lease_timer);
		uv_timer_stop(&d->gc_timer);
		forget_all(d);
		struct itimerspec its;
		memset(&its, 0, sizeof its);
		timerfd_settime(d->tfd, TFD_TIMER_ABSTIME, &its, NULL);
	}
}

/* ---- lifecycle -------------------------------------------------------- */

int dispatch_new(uv_loop_t *loop, node *n, dispatch **out)
{
	dispatch *d = hora_calloc(1, sizeof *d);
	if (d == NULL)
		return -HORA_ENOMEM;
	d->loop = loop;
	d->node = n;
	d->f = node_fsm(n);
	d->armed_at = HORA_TIME_NONE;
	d->ahead = DISPATCH_AHEAD_MS * HORA_USEC_PER_MS;
	heap_init(&d->due, dispatch__set_sched_idx);
	heap_init(&d->soon, dispatch__set_sched_idx);
	heap_init(&d->lease, dispatch__set_lease_idx);
	d->tfd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d->tfd < 0) {
		hora_free(d);
		return -HORA_EIO;
	}
	uv_poll_init(loop, &d->tfd_poll, d->tfd);
	d->tfd_poll.data = d;
	uv_poll_start(&d->tfd_poll, UV_READABLE, dispatch__on_clock);
	uv_timer_init(loop, &d->plan_timer);
	uv_timer_init(loop, &d->lease_timer);
	uv_timer_init(loop, &d->flush_timer);
	uv_timer_init(loop, &d->gc_timer);
	uv_timer_init(loop, &d->serve_timer);
	d->plan_timer.data = d->lease_timer.data = d->flush_timer.data = d;
	d->gc_timer.data = d->serve_timer.data = d;
	d->once_retention = DISPATCH_ONCE_RETENTION_DEFAULT_MS * HORA_USEC_PER_MS;
	fsm_observer obs = {
		.ud = d,
		.run_changed = on_run_changed,
		.run_freed = on_run_freed,
		.reset = on_reset,
	};
	fsm_set_observer(d->f, &obs);
	node_set_role_cb(n, on_role, d);
	if (node_is_leader(n))
		on_role(d, true);
	*out = d;
	return 0;
}

static void handle_closed(uv_handle_t *h)
{
	dispatch *d = h->data;
	/* libuv runs close callbacks in no promised order: count them */
	if (--d->closing > 0)
		return;
	close(d->tfd);
	hora_free(d->leases);
	hora_free(d);
}

void dispatch_close(dispatch *d)
{
	dispatch__flush_leases(d);
	d->leader = false;
	forget_all(d);
	heap_free(&d->due);
	heap_free(&d->soon);
	hora_free(d->ahead_buf);
	heap_free(&d->lease);
	fsm_observer none = {0};
	fsm_set_observer(d->f, &none);
	node_set_role_cb(d->node, NULL, NULL);
	d->closing = 6;
	uv_close((uv_handle_t *)&d->serve_timer, handle_closed);
	uv_close((uv_handle_t *)&d->tfd_poll, handle_closed);
	uv_close((uv_handle_t *)&d->plan_timer, handle_closed);
	uv_close((uv_handle_t *)&d->lease_timer, handle_closed);
	uv_close((uv_handle_t *)&d->gc_timer, handle_closed);
	uv_close((uv_handle_t *)&d->flush_timer, handle_closed);
}

void dispatch_set_final_cb(dispatch *d, dispatch_final_cb cb, void *ud)
{
	d->final_cb = cb;
	d->final_ud = ud;
}

const dispatch_stats *dispatch_get_stats(const dispatch *d)
{
	return &d->stats;
}
