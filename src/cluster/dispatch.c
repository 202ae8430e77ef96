#include "cluster/dispatch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "fsm/fsm.h"
#include "sched/heap.h"

#define PLAN_ITEMS_MAX 1024  /* FIRE items per entry */
#define PLAN_PER_JOB_MAX 64  /* instants of one job per planning pass */
#define MISFIRE_ALL_MAX 1000 /* missed instants fired per pass (all) */
#define LEASE_BATCH_MAX 1024

enum { WHERE_NONE = 0, WHERE_DUE = 1, WHERE_READY = 2 };

struct dispatch_waiter {
	dispatch *d;
	struct dqueue *q;
	char worker[256];
	unsigned max;
	int64_t lease_ms;
	dispatch_claim_cb cb;
	void *ud;
	uv_timer_t timer;
	bool timer_live;
	struct dispatch_waiter *prev, *next;
};

typedef struct dqueue {
	const char *name; /* interned */
	heap ready;
	bool touched; /* got runs in this release pass */
	dispatch_waiter *wait_head, *wait_tail;
	struct dqueue *next;
} dqueue;

typedef struct lease_pending {
	uint64_t run;
	uint32_t attempt;
	char *worker;
	hora_time exp;
} lease_pending;

struct dispatch {
	uv_loop_t *loop;
	node *node;
	fsm *f;
	bool leader;
	heap due;   /* scheduled runs by due instant */
	heap lease; /* running runs by min(lease end, timeout) */
	dqueue *queues;
	int tfd; /* the dispatch clock */
	uv_poll_t tfd_poll;
	hora_time armed_at;
	uv_timer_t plan_timer;
	uv_timer_t lease_timer;
	uv_timer_t flush_timer;
	uv_timer_t gc_timer;
	int64_t once_retention;
	int closing; /* handles still to close */
	bool planning; /* a FIRE entry is in flight */
	lease_pending *leases;
	size_t nleases, cap_leases;
	dispatch_final_cb final_cb;
	void *final_ud;
	dispatch_stats stats;
};

static hora_time now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (hora_time)ts.tv_sec * HORA_USEC_PER_SEC + ts.tv_nsec / 1000;
}

/* ---- heaps of runs ---------------------------------------------------- */

static void set_sched_idx(void *item, uint32_t idx)
{
	((run *)item)->sched_idx = idx;
}

static void set_lease_idx(void *item, uint32_t idx)
{
	((run *)item)->lease_idx = idx;
}

/* Ready order: higher priority first, then earlier due. */
static int64_t ready_key(const run *r)
{
	return ((int64_t)(JOB_PRIORITY_MAX - r->priority) << 58) + r->due_at;
}

static dqueue *queue_for(dispatch *d, const char *name, bool create)
{
	for (dqueue *q = d->queues; q; q = q->next)
		if (q->name == name || strcmp(q->name, name) == 0)
			return q;
	if (!create)
		return NULL;
	dqueue *q = hora_calloc(1, sizeof *q);
	if (q == NULL)
		return NULL;
	q->name = name;
	heap_init(&q->ready, set_sched_idx);
	q->next = d->queues;
	d->queues = q;
	return q;
}

static void unqueue(dispatch *d, run *r)
{
	if (r->sched_where == WHERE_DUE) {
		heap_remove(&d->due, r->sched_idx);
	} else if (r->sched_where == WHERE_READY) {
		dqueue *q = queue_for(d, r->queue, false);
		HORA_ASSERT(q != NULL);
		heap_remove(&q->ready, r->sched_idx);
	}
	r->sched_where = WHERE_NONE;
	if (r->lease_idx != HEAP_NONE)
		heap_remove(&d->lease, r->lease_idx);
}

static void arm_clock(dispatch *d);
static void serve_waiting(dispatch *d, dqueue *q);

/* The deadline the leader watches for a running run. */
static hora_time lease_deadline(dispatch *d, const run *r)
{
	hora_time t = r->lease_expires_at;
	job *j = store_get(fsm_store(d->f), r->job);
	if (j && job_has_opt(j, JOB_OPT_TIMEOUT)) {
		hora_time to = r->started_at + job_opt_get(j, JOB_OPT_TIMEOUT, 0) +
			       DISPATCH_TIMEOUT_GRACE_MS * HORA_USEC_PER_MS;
		if (to < t)
			t = to;
	}
	return t;
}

static void on_lease_timer(uv_timer_t *t);

static void arm_lease_timer(dispatch *d)
{
	const heap_entry *e = heap_top(&d->lease);
	if (e == NULL) {
		uv_timer_stop(&d->lease_timer);
		return;
	}
	int64_t ms = (e->key - now_us()) / 1000 + 1;
	uv_timer_start(&d->lease_timer, on_lease_timer,
		       (uint64_t)(ms < 0 ? 0 : ms), 0);
}

/* Place a run where its replicated state says it belongs. */
static void place(dispatch *d, run *r)
{
	unqueue(d, r);
	r->overlap_pending = false;
	if (r->status != RUN_SCHEDULED || !r->leased_local) {
		hora_free(r->local_worker);
		r->local_worker = NULL;
	}
	if (r->status == RUN_SCHEDULED) {
		r->leased_local = false;
		hora_free(r->local_worker);
		r->local_worker = NULL;
		if (heap_push(&d->due, r->due_at, r) == 0)
			r->sched_where = WHERE_DUE;
		else
			log_error("out of memory queueing run %llu",
				  (unsigned long long)r->id);
	} else if (r->status == RUN_RUNNING) {
		r->leased_local = false;
		if (heap_push(&d->lease, lease_deadline(d, r), r) != 0)
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
	place(d, r);
	if (r->status == RUN_SCHEDULED)
		arm_clock(d);
	else if (r->status == RUN_RUNNING)
		arm_lease_timer(d);
}

static void on_run_freed(void *ud, run *r)
{
	dispatch *d = ud;
	if (d->leader)
		unqueue(d, r);
}

static void forget_all(dispatch *d);

static void on_reset(void *ud)
{
	dispatch *d = ud;
	forget_all(d); /* the runs are about to be freed */
}

/* ---- the dispatch clock ----------------------------------------------- */

static void arm_clock(dispatch *d)
{
	const heap_entry *e = heap_top(&d->due);
	struct itimerspec its;
	memset(&its, 0, sizeof its);
	if (e == NULL) {
		d->armed_at = HORA_TIME_NONE;
		timerfd_settime(d->tfd, TFD_TIMER_ABSTIME, &its, NULL);
		return;
	}
	if (d->armed_at == e->key)
		return;
	d->armed_at = e->key;
	hora_time t = e->key > 0 ? e->key : 1;
	its.it_value.tv_sec = (time_t)(t / HORA_USEC_PER_SEC);
	its.it_value.tv_nsec = (long)(t % HORA_USEC_PER_SEC) * 1000;
	/* a time in the past fires at once */
	timerfd_settime(d->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void overlap_done(void *ud, int status, const fsm_result *res)
{
	dispatch *d = ud;
	(void)res;
	if (status == 0 || !d->leader)
		return;
	/* not committed: put the held runs back where they belong */
	log_warn("overlap entry not committed: %s", hora_strerror(status));
}

/* A first attempt of a forbid/replace job whose job still has an older
 * active run: the policy is applied now that it is due, through the log
 * (OVERLAP), before anyone may claim it. */
static bool needs_overlap_check(dispatch *d, const run *r)
{
	if (r->attempt != 1 || (r->flags & RUN_F_OVERLAP))
		return false;
	job *j = store_get(fsm_store(d->f), r->job);
	if (j == NULL || j->overlap == JOB_OVERLAP_ALLOW || j->active_runs < 2)
		return false;
	for (run *o = j->runs; o; o = o->job_next)
		if (o != r && o->id < r->id && !run_is_final(o))
			return true;
	return false;
}

/* Move every due run to its queue's ready heap, then serve claims: all
 * runs first, so a waiting claim gets up to its `max` at once rather
 * than one run each. */
static void release_due(dispatch *d)
{
	hora_time now = now_us();
	const heap_entry *e;
	bool any = false;
	uint64_t held[256];
	size_t nheld = 0;
	while ((e = heap_top(&d->due)) != NULL && e->key <= now) {
		run *r = e->item;
		heap_remove(&d->due, r->sched_idx);
		r->sched_where = WHERE_NONE;
		if (r->overlap_pending)
			continue;
		if (needs_overlap_check(d, r)) {
			if (nheld < 256) {
				r->overlap_pending = true;
				held[nheld++] = r->id;
			} else {
				/* next pass */
				heap_push(&d->due, r->due_at, r);
				r->sched_where = WHERE_DUE;
				break;
			}
			continue;
		}
		dqueue *q = queue_for(d, r->queue, true);
		if (q == NULL || heap_push(&q->ready, ready_key(r), r) != 0) {
			log_error("out of memory readying run %llu",
				  (unsigned long long)r->id);
			continue;
		}
		r->sched_where = WHERE_READY;
		q->touched = true;
		any = true;
	}
	for (dqueue *q = d->queues; any && q; q = q->next) {
		if (q->touched && q->wait_head)
			serve_waiting(d, q);
		q->touched = false;
	}
	if (nheld > 0) {
		uint8_t *buf;
		size_t len;
		int rv = entry_encode_overlap(held, nheld, now, &buf, &len);
		if (rv == 0)
			rv = node_propose(d->node, buf, len, overlap_done, d);
		if (rv != 0) {
			/* give them back to the clock: tried again next pass */
			for (size_t i = 0; i < nheld; i++) {
				run *r = fsm_run(d->f, held[i]);
				if (r) {
					r->overlap_pending = false;
					place(d, r);
				}
			}
		}
	}
	d->armed_at = HORA_TIME_NONE;
	arm_clock(d);
}

static void on_clock(uv_poll_t *p, int status, int events)
{
	dispatch *d = p->data;
	uint64_t expirations;
	(void)status;
	(void)events;
	if (read(d->tfd, &expirations, sizeof expirations) < 0 &&
	    errno != EAGAIN)
		log_warn("timerfd read: %s", strerror(errno));
	if (d->leader) {
		const heap_entry *top = heap_top(&d->due);
		hora_time late = top ? now_us() - top->key : 0;
		release_due(d);
		log_debug("dispatch clock woke %lld us after the first due run",
			  (long long)late);
	}
}

/* ---- leases ----------------------------------------------------------- */

static void flush_done(void *ud, int status, const fsm_result *res)
{
	(void)ud;
	(void)res;
	if (status != 0)
		log_debug("lease batch not committed: %s",
			  hora_strerror(status));
}

static void flush_leases(dispatch *d)
{
	uv_timer_stop(&d->flush_timer);
	if (d->nleases == 0)
		return;
	lease_item *items = hora_calloc(d->nleases, sizeof *items);
	uint8_t *buf;
	size_t len;
	int rv = -HORA_ENOMEM;
	if (items) {
		for (size_t i = 0; i < d->nleases; i++)
			items[i] = (lease_item){d->leases[i].run,
						d->leases[i].attempt,
						d->leases[i].worker,
						d->leases[i].exp};
		rv = entry_encode_lease(items, d->nleases, now_us(), &buf, &len);
		hora_free(items);
	}
	if (rv == 0)
		rv = node_propose(d->node, buf, len, flush_done, d);
	if (rv != 0)
		log_warn("cannot record %zu lease(s): %s; they will be "
			 "delivered again",
			 d->nleases, hora_strerror(rv));
	for (size_t i = 0; i < d->nleases; i++)
		hora_free(d->leases[i].worker);
	d->nleases = 0;
}

static void on_flush_timer(uv_timer_t *t)
{
	flush_leases(t->data);
}

static int queue_lease(dispatch *d, run *r, const char *worker,
		       hora_time exp)
{
	if (d->nleases == d->cap_leases) {
		size_t cap = d->cap_leases ? d->cap_leases * 2 : 64;
		lease_pending *l = hora_realloc(d->leases, cap * sizeof *l);
		if (l == NULL)
			return -HORA_ENOMEM;
		d->leases = l;
		d->cap_leases = cap;
	}
	char *w = hora_strdup(worker);
	if (w == NULL)
		return -HORA_ENOMEM;
	d->leases[d->nleases++] = (lease_pending){r->id, r->attempt, w, exp};
	if (d->nleases >= LEASE_BATCH_MAX)
		flush_leases(d);
	else if (!uv_is_active((uv_handle_t *)&d->flush_timer))
		uv_timer_start(&d->flush_timer, on_flush_timer, 0, 0);
	return 0;
}

static void expire_done(void *ud, int status, const fsm_result *res)
{
	(void)ud;
	(void)status;
	(void)res;
}

/* Leases that ran out, and runs past their timeout. */
static void on_lease_timer(uv_timer_t *t)
{
	dispatch *d = t->data;
	hora_time now = now_us();
	expire_item expires[256];
	complete_item timeouts[256];
	char msgs[256][96];
	size_t ne = 0, nt = 0;
	const heap_entry *e;

	if (!d->leader)
		return;
	while ((e = heap_top(&d->lease)) != NULL && e->key <= now &&
	       ne < 256 && nt < 256) {
		run *r = e->item;
		heap_remove(&d->lease, r->lease_idx);
		if (r->lease_expires_at <= now) {
			expires[ne++] = (expire_item){r->id, r->attempt,
						      r->lease_expires_at};
			continue;
		}
		job *j = store_get(fsm_store(d->f), r->job);
		char dur[HORA_DURATION_STRLEN];
		duration_format(j ? job_opt_get(j, JOB_OPT_TIMEOUT, 0) : 0, dur);
		snprintf(msgs[nt], sizeof msgs[nt], "timed out after %s", dur);
		timeouts[nt] = (complete_item){
			.run = r->id,
			.attempt = r->attempt,
			.worker = r->worker ? r->worker : "",
			.status = RUN_TIMED_OUT,
			.exit_code = -1,
			.error = msgs[nt],
		};
		nt++;
	}
	uint8_t *buf;
	size_t len;
	if (ne && entry_encode_expire(expires, ne, now, &buf, &len) == 0 &&
	    node_propose(d->node, buf, len, expire_done, d) == 0)
		d->stats.expired += ne;
	if (nt && entry_encode_complete(timeouts, nt, now, &buf, &len) == 0 &&
	    node_propose(d->node, buf, len, expire_done, d) == 0)
		d->stats.timed_out += nt;
	arm_lease_timer(d);
}

/* ---- claims ----------------------------------------------------------- */

static void claim_unlink(dispatch_waiter *c)
{
	dqueue *q = c->q;
	if (c->prev)
		c->prev->next = c->next;
	else
		q->wait_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		q->wait_tail = c->prev;
	c->prev = c->next = NULL;
	c->d->stats.claims_waiting--;
}

static void claim_timer_closed(uv_handle_t *h)
{
	hora_free(h->data);
}

static void claim_free(dispatch_waiter *c)
{
	if (c->timer_live) {
		uv_timer_stop(&c->timer);
		uv_close((uv_handle_t *)&c->timer, claim_timer_closed);
	} else {
		hora_free(c);
	}
}

/* Take up to `max` ready runs of q for `worker`. */
static size_t take_ready(dispatch *d, dqueue *q, const char *worker,
			 unsigned max, int64_t lease_ms, run **out)
{
	size_t n = 0;
	hora_time now = now_us();
	const heap_entry *e;
	while (n < max && (e = heap_top(&q->ready)) != NULL) {
		run *r = e->item;
		heap_remove(&q->ready, r->sched_idx);
		r->sched_where = WHERE_NONE;
		if (queue_lease(d, r, worker,
				now + lease_ms * HORA_USEC_PER_MS) != 0) {
			/* put it back; it is still ready */
			heap_push(&q->ready, ready_key(r), r);
			r->sched_where = WHERE_READY;
			break;
		}
		r->leased_local = true;
		hora_free(r->local_worker);
		r->local_worker = hora_strdup(worker);
		r->local_started = now;
		r->local_exp = now + lease_ms * HORA_USEC_PER_MS;
		hist_record(&d->stats.lateness, now - r->due_at);
		out[n++] = r;
	}
	d->stats.handed_out += n;
	return n;
}

static void serve_waiting(dispatch *d, dqueue *q)
{
	run *got[DISPATCH_CLAIM_MAX];
	while (q->wait_head && heap_len(&q->ready) > 0) {
		dispatch_waiter *c = q->wait_head;
		size_t n = take_ready(d, q, c->worker, c->max, c->lease_ms, got);
		claim_unlink(c);
		c->cb(c->ud, got, n);
		claim_free(c);
	}
}

static void on_claim_timeout(uv_timer_t *t)
{
	dispatch_waiter *c = t->data;

	claim_unlink(c);
	c->cb(c->ud, NULL, 0);
	claim_free(c);
}

int dispatch_claim(dispatch *d, const char *queue, const char *worker,
		   unsigned max, int64_t wait_ms, int64_t lease_ms,
		   dispatch_claim_cb cb, void *ud, dispatch_waiter **out)
{
	run *got[DISPATCH_CLAIM_MAX];
	if (out)
		*out = NULL;
	if (!d->leader)
		return -HORA_ENOTLEADER;
	if (max > DISPATCH_CLAIM_MAX)
		max = DISPATCH_CLAIM_MAX;
	const char *interned = store_intern(fsm_store(d->f), queue);
	dqueue *q = interned ? queue_for(d, interned, true) : NULL;
	if (q == NULL)
		return -HORA_ENOMEM;
	/* runs may be due since the last clock tick */
	release_due(d);
	if (heap_len(&q->ready) > 0 || wait_ms <= 0) {
		size_t n = take_ready(d, q, worker, max, lease_ms, got);

		cb(ud, got, n);
		return 0;
	}
	dispatch_waiter *c = hora_calloc(1, sizeof *c);
	if (c == NULL)
		return -HORA_ENOMEM;
	c->d = d;
	c->q = q;
	snprintf(c->worker, sizeof c->worker, "%s", worker);
	c->max = max;
	c->lease_ms = lease_ms;
	c->cb = cb;
	c->ud = ud;
	uv_timer_init(d->loop, &c->timer);
	c->timer.data = c;
	c->timer_live = true;
	uv_timer_start(&c->timer, on_claim_timeout, (uint64_t)wait_ms, 0);
	c->prev = q->wait_tail;
	if (q->wait_tail)
		q->wait_tail->next = c;
	else
		q->wait_head = c;
	q->wait_tail = c;
	d->stats.claims_waiting++;
	if (out)
		*out = c;
	return 0;
}

void dispatch_claim_cancel(dispatch_waiter *c)
{

	claim_unlink(c);
	claim_free(c);
}

/* ---- heartbeat, complete, trigger ------------------------------------- */

/* The lease is the worker's if the log says so, or if it was just handed
 * out and its LEASE entry is still pending. */
static bool owns(dispatch *d, const run *r, const char *worker)
{
	if (r->status == RUN_RUNNING)
		return r->worker && strcmp(r->worker, worker) == 0;
	if (r->status == RUN_SCHEDULED && r->leased_local) {
		for (size_t i = 0; i < d->nleases; i++)
			if (d->leases[i].run == r->id &&
			    d->leases[i].attempt == r->attempt &&
			    strcmp(d->leases[i].worker, worker) == 0)
				return true;
		/* proposed but not applied yet: the log decides */
		return true;
	}
	return false;
}

int dispatch_heartbeat(dispatch *d, uint64_t id, const char *worker,
		       int64_t lease_ms, node_commit_cb cb, void *ud)
{
	if (!d->leader)
		return -HORA_ENOTLEADER;
	run *r = fsm_run(d->f, id);
	if (r == NULL)
		return -HORA_ENOENT;
	if (!owns(d, r, worker))
		return -HORA_ECONFLICT;
	flush_leases(d);
	uint8_t *buf;
	size_t len;
	hora_time now = now_us();
	int rv;
	if (lease_ms <= 0) {
		expire_item it = {r->id, r->attempt, 0}; /* a release */
		rv = entry_encode_expire(&it, 1, now, &buf, &len);
	} else {
		lease_item it = {r->id, r->attempt, worker,
				 now + lease_ms * HORA_USEC_PER_MS};
		rv = entry_encode_lease(&it, 1, now, &buf, &len);
	}
	if (rv != 0)
		return rv;
	return node_propose(d->node, buf, len, cb, ud);
}

int dispatch_complete(dispatch *d, const complete_item *items, size_t n,
		      bool *lost, node_commit_cb cb, void *ud)
{
	if (!d->leader)
		return -HORA_ENOTLEADER;
	complete_item *keep = hora_calloc(n ? n : 1, sizeof *keep);
	if (keep == NULL)
		return -HORA_ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		run *r = fsm_run(d->f, items[i].run);
		lost[i] = r == NULL || r->attempt != items[i].attempt ||
			  !owns(d, r, items[i].worker);
		if (!lost[i])
			keep[k++] = items[i];
	}
	if (k == 0) {
		hora_free(keep);
		cb(ud, 0, NULL);
		return 0;
	}
	/* a LEASE still batched must reach the log before its COMPLETE */
	flush_leases(d);
	uint8_t *buf;
	size_t len;
	int rv = entry_encode_complete(keep, k, now_us(), &buf, &len);
	hora_free(keep);
	if (rv != 0)
		return rv;
	return node_propose(d->node, buf, len, cb, ud);
}

int dispatch_trigger(dispatch *d, const char *name, node_commit_cb cb,
		     void *ud)
{
	if (!d->leader)
		return -HORA_ENOTLEADER;
	hora_time now = now_us();
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

/* ---- the planner ------------------------------------------------------ */

int64_t dispatch_jitter(const char *name, hora_time instant, int64_t jitter)
{
	if (jitter <= 0)
		return 0;
	uint64_t h = 1469598103934665603u;
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211u;
	h ^= (uint64_t)instant;
	h *= 0xff51afd7ed558ccdu;
	h ^= h >> 33;
	return (int64_t)(h % (uint64_t)(jitter + 1));
}

typedef struct plan {
	dispatch *d;
	hora_time now;
	hora_time horizon;
	fire_item items[PLAN_ITEMS_MAX];
	job *jobs[PLAN_ITEMS_MAX];
	size_t n;
} plan;

static void plan_add(plan *p, job *j, hora_time expect, hora_time at,
		     hora_time resume, uint8_t flags)
{
	p->items[p->n] = (fire_item){
		.job = job_name(j),
		.expect = expect,
		.scheduled_at = at,
		.due_at = at + dispatch_jitter(job_name(j), at,
					       job_opt_get(j, JOB_OPT_JITTER, 0)),
		.resume_after = resume,
		.flags = flags,
	};
	p->jobs[p->n] = j;
	p->n++;
}

/* Plan the instants of j due by the horizon (or missed). */
static void plan_job(plan *p, job *j)
{
	hora_time t = j->next_run_at;
	hora_time grace = DISPATCH_MISFIRE_GRACE_MS * HORA_USEC_PER_MS;

	if (t < p->now - grace) {
		/* instants that fell due while no leader was up */
		p->d->stats.misfires++;
		if (j->misfire == JOB_MISFIRE_SKIP) {
			plan_add(p, j, t, 0, p->now, FIRE_NO_RUN);
			return;
		}
		if (j->misfire == JOB_MISFIRE_ONCE) {
			hora_time last = t, k = t;
			for (int guard = 0; guard < 100000; guard++) {
				k = fsm_next_fire(j, k);
				if (k == HORA_TIME_NONE || k > p->now)
					break;
				last = k;
			}
			plan_add(p, j, t, last, p->now, 0);
			return;
		}
		/* all: each missed instant, in order */
	}
	for (int k = 0; k < (t < p->now - grace ? MISFIRE_ALL_MAX
					       : PLAN_PER_JOB_MAX) &&
			p->n < PLAN_ITEMS_MAX;
	     k++) {
		plan_add(p, j, t, t, t, 0);
		hora_time next = fsm_next_fire(j, t);
		if (next == HORA_TIME_NONE || next > p->horizon)
			break;
		/* the next item's expect is what applying this one sets */
		hora_schedule s;
		job_schedule(j, &s);
		if (schedule_is_once(&s))
			break;
		t = next;
	}
}

/* Depth-first walk of the fire heap: only subtrees whose root is due by
 * the horizon can hold due jobs, so this costs O(due jobs). */
static void plan_walk(plan *p, const heap_entry *v, uint32_t len, uint32_t i)
{
	if (i >= len || p->n >= PLAN_ITEMS_MAX || v[i].key > p->horizon)
		return;
	job *j = v[i].item;
	if (!(j->local_flags & JOB_L_PLANNED))
		plan_job(p, j);
	for (uint32_t c = 4 * i + 1; c <= 4 * i + 4; c++)
		plan_walk(p, v, len, c);
}

typedef struct plan_flight {
	dispatch *d;
	size_t n;
	char *names[];
} plan_flight;

static void plan_committed(void *ud, int status, const fsm_result *res)
{
	plan_flight *pf = ud;
	dispatch *d = pf->d;
	(void)res;
	if (status != 0)
		log_debug("FIRE entry not committed: %s", hora_strerror(status));
	for (size_t i = 0; i < pf->n; i++) {
		job *j = store_get(fsm_store(d->f), pf->names[i]);
		if (j)
			j->local_flags &= (uint8_t)~JOB_L_PLANNED;
		hora_free(pf->names[i]);
	}
	hora_free(pf);
	d->planning = false;
}

static void on_plan_timer(uv_timer_t *t)
{
	dispatch *d = t->data;
	static plan p; /* large; one planner runs at a time */
	if (!d->leader || d->planning)
		return;
	p.d = d;
	p.now = now_us();
	p.horizon = p.now + DISPATCH_LOOKAHEAD_MS * HORA_USEC_PER_MS;
	p.n = 0;
	const heap_entry *v;
	uint32_t len = store_fire_heap(fsm_store(d->f), &v);
	plan_walk(&p, v, len, 0);
	if (p.n == 0)
		return;

	/* remember which jobs are in flight (by name: records may be
	 * replaced before the entry commits) */
	size_t distinct = 0;
	plan_flight *pf = hora_malloc(sizeof *pf + p.n * sizeof(char *));
	if (pf == NULL)
		return;
	pf->d = d;
	for (size_t i = 0; i < p.n; i++) {
		job *j = p.jobs[i];
		if (j->local_flags & JOB_L_PLANNED)
			continue;
		j->local_flags |= JOB_L_PLANNED;
		pf->names[distinct] = hora_strdup(job_name(j));
		if (pf->names[distinct])
			distinct++;
	}
	pf->n = distinct;
	uint8_t *buf;
	size_t blen;
	int rv = entry_encode_fire(p.items, p.n, p.now, &buf, &blen);
	if (rv == 0) {
		d->planning = true;
		rv = node_propose(d->node, buf, blen, plan_committed, pf);
	}
	if (rv != 0) {
		d->planning = true;
		plan_committed(pf, rv, NULL);
	}
}

/* ---- collecting finished one-shot jobs -------------------------------- */

#define GC_BATCH_MAX 1000

typedef struct gc_scan {
	hora_time cutoff;
	const char *names[GC_BATCH_MAX];
	size_t n;
} gc_scan;

static int gc_visit(job *j, void *ud)
{
	gc_scan *g = ud;
	if (!(j->flags & JOB_F_DONE) || j->active_runs > 0)
		return 0;
	/* newest run first: it ended last */
	hora_time ended = j->runs ? j->runs->finished_at : j->updated_at;
	if (ended > g->cutoff)
		return 0;
	g->names[g->n++] = job_name(j);
	return g->n == GC_BATCH_MAX;
}

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
	static gc_scan g;
	if (!d->leader)
		return;
	g.n = 0;
	g.cutoff = now_us() - d->once_retention;
	store_each(fsm_store(d->f), gc_visit, &g);
	if (g.n == 0)
		return;
	uint8_t *buf;
	size_t len;
	if (entry_encode_names(ENTRY_DELETE_JOBS, 0, g.names, g.n, now_us(),
			       &buf, &len) == 0)
		node_propose(d->node, buf, len, gc_done, d);
}

void dispatch_set_once_retention(dispatch *d, int64_t usec)
{
	d->once_retention = usec;
}

/* ---- leadership ------------------------------------------------------- */

static int adopt_run(run *r, void *ud)
{
	dispatch *d = ud;
	r->sched_where = WHERE_NONE;
	r->sched_idx = HEAP_NONE;
	r->lease_idx = HEAP_NONE;
	r->leased_local = false;
	r->overlap_pending = false;
	hora_free(r->local_worker);
	r->local_worker = NULL;
	if (run_is_final(r))
		return 0;
	if (r->status == RUN_RUNNING) {
		/* a lease extended just before the old leader died may not
		 * be in the log: give it some grace */
		hora_time floor = now_us() + DISPATCH_LEASE_GRACE_MS *
						     HORA_USEC_PER_MS;
		if (r->lease_expires_at < floor)
			r->lease_expires_at = floor;
	}
	place(d, r);
	return 0;
}

static int clear_planned(job *j, void *ud)
{
	(void)ud;
	j->local_flags = 0;
	return 0;
}

static void forget_all(dispatch *d)
{
	/* answer every waiting claim with nothing: at worst an empty
	 * answer, never an error (API.md, long polls) */
	for (dqueue *q = d->queues, *next; q; q = next) {
		next = q->next;
		while (q->wait_head) {
			dispatch_waiter *c = q->wait_head;
			claim_unlink(c);
			c->cb(c->ud, NULL, 0);
			claim_free(c);
		}
		while (heap_len(&q->ready))
			heap_remove(&q->ready, 0);
		heap_free(&q->ready);
		hora_free(q);
	}
	d->queues = NULL;
	while (heap_len(&d->due))
		heap_remove(&d->due, 0);
	while (heap_len(&d->lease))
		heap_remove(&d->lease, 0);
	for (size_t i = 0; i < d->nleases; i++)
		hora_free(d->leases[i].worker);
	d->nleases = 0;
	d->armed_at = HORA_TIME_NONE;
}

static void on_role(void *ud, bool leader)
{
	dispatch *d = ud;
	if (leader == d->leader)
		return;
	d->leader = leader;
	if (leader) {
		store_each(fsm_store(d->f), clear_planned, NULL);
		d->planning = false;
		fsm_each_run(d->f, adopt_run, d);
		arm_clock(d);
		arm_lease_timer(d);
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

int dispatch_new(uv_loop_t *loop, node *n, dispatch **out)
{
	dispatch *d = hora_calloc(1, sizeof *d);
	if (d == NULL)
		return -HORA_ENOMEM;
	d->loop = loop;
	d->node = n;
	d->f = node_fsm(n);
	d->armed_at = HORA_TIME_NONE;
	heap_init(&d->due, set_sched_idx);
	heap_init(&d->lease, set_lease_idx);
	d->tfd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d->tfd < 0) {
		hora_free(d);
		return -HORA_EIO;
	}
	uv_poll_init(loop, &d->tfd_poll, d->tfd);
	d->tfd_poll.data = d;
	uv_poll_start(&d->tfd_poll, UV_READABLE, on_clock);
	uv_timer_init(loop, &d->plan_timer);
	uv_timer_init(loop, &d->lease_timer);
	uv_timer_init(loop, &d->flush_timer);
	uv_timer_init(loop, &d->gc_timer);
	d->plan_timer.data = d->lease_timer.data = d->flush_timer.data = d;
	d->gc_timer.data = d;
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
	flush_leases(d);
	d->leader = false;
	forget_all(d);
	heap_free(&d->due);
	heap_free(&d->lease);
	fsm_observer none = {0};
	fsm_set_observer(d->f, &none);
	node_set_role_cb(d->node, NULL, NULL);
	d->closing = 5;
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

size_t dispatch_ready_count(const dispatch *d, const char *queue)
{
	for (dqueue *q = d->queues; q; q = q->next)
		if (strcmp(q->name, queue) == 0)
			return heap_len(&q->ready);
	return 0;
}
