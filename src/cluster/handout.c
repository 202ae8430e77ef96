/*
 * handout.c - dispatch on time: the dispatch clock (a timerfd armed at
 * the earliest due run), the per-queue ready heaps, waiting claims and
 * the hand-out of ready runs from memory.  Leader only; see dispatch.h.
 *
 * A run handed out is marked on its run_lead (handed_out, to whom, until
 * when) and its lease is batched into the next LEASE entry (leases.c);
 * the mark goes when the log moves the run (dispatch__place).
 */
#include "cluster/dispatch_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"

#define HELD_MAX 256 /* runs held for an OVERLAP entry per pass */

void dispatch__set_sched_idx(void *item, uint32_t idx)
{
	((run_lead *)item)->sched_idx = idx;
}

/* Ready order: higher priority first, then earlier due. */
static int64_t ready_key(const run *r)
{
	return ((int64_t)(JOB_PRIORITY_MAX - r->priority) << 58) + r->due_at;
}

dqueue *dispatch__queue(dispatch *d, const char *name, bool create)
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
	heap_init(&q->ready, dispatch__set_sched_idx);
	q->next = d->queues;
	d->queues = q;
	return q;
}

static void serve_waiting(dispatch *d, dqueue *q);
static void claim_link(dispatch_waiter *c);
static void claim_unlink(dispatch_waiter *c);

/* ---- the dispatch clock ----------------------------------------------- */

/* How long before their instant runs may be handed to streams: only
 * while a stream is open, else the clock would wake twice per run. */
static hora_time ahead_usec(const dispatch *d)
{
	return d->streams ? d->ahead : 0;
}

void dispatch__arm_clock(dispatch *d)
{
	const heap_entry *e = heap_top(&d->due), *s = heap_top(&d->soon);
	struct itimerspec its;
	memset(&its, 0, sizeof its);
	if (e == NULL && s == NULL) {
		d->armed_at = HORA_TIME_NONE;
		timerfd_settime(d->tfd, TFD_TIMER_ABSTIME, &its, NULL);
		return;
	}
	hora_time at = e ? e->key - ahead_usec(d) : HORA_TIME_NONE;
	if (s != NULL && (e == NULL || s->key < at))
		at = s->key;
	if (d->armed_at == at)
		return;
	d->armed_at = at;
	hora_time t = at > 0 ? at : 1;
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

static dispatch_waiter *stream_by_id(dispatch *d, uint64_t id)
{
	for (dispatch_waiter *c = d->streams; c; c = c->s_next)
		if (c->id == id)
			return c;
	return NULL;
}

static void ahead_link(dispatch_waiter *c, run_lead *l)
{
	l->ahead = true;
	l->a_prev = NULL;
	l->a_next = c->ahead;
	if (c->ahead)
		c->ahead->a_prev = l;
	c->ahead = l;
}

static void ahead_unlink(dispatch_waiter *c, run_lead *l)
{
	if (l->a_prev)
		l->a_prev->a_next = l->a_next;
	else if (c && c->ahead == l)
		c->ahead = l->a_next;
	if (l->a_next)
		l->a_next->a_prev = l->a_prev;
	l->a_prev = l->a_next = NULL;
	l->ahead = false;
}

/* l's line went out at `at`: the hand-out is real now, its lease too. */
static void ahead_written(dispatch *d, run_lead *l, hora_time at)
{
	run *r = l->run;
	l->started = at;
	hist_record(&d->stats.lateness, at - r->due_at);
	d->stats.handed_out++;
	d->stats.handed_ahead++;
	if (l->worker == NULL ||
	    dispatch__queue_lease(d, r, l->worker, l->expires) != 0)
		log_error("out of memory leasing run %llu; it will be "
			  "delivered again", (unsigned long long)r->id);
}

bool dispatch__ahead_take_back(dispatch *d, run_lead *l, bool lease)
{
	dispatch_waiter *c = stream_by_id(d, l->stream_id);
	hora_time at = hora_wallclock_usec();
	int res = DISPATCH_UNKNOWN;
	if (c != NULL && c->ops->revoke)
		res = c->ops->revoke(c->ud, l->run->id, &at);
	ahead_unlink(c, l);
	if (res != DISPATCH_REVOKED) {
		if (lease)
			ahead_written(d, l, at);
		return false;
	}
	dispatch__handout_clear(l);
	uint64_t id = l->stream_id;
	l->stream_id = 0;
	dispatch__stream_credit(d, id);
	return true;
}

/* Hand r (due within the look-ahead, not yet due) to the stream at the
 * head of its queue's line if that stream can write it at its instant;
 * false otherwise (a claim, or a stream that cannot, is next in line:
 * the run waits for its instant and goes to it then, in turn). */
static bool hand_ahead(dispatch *d, run_lead *l)
{
	run *r = l->run;
	dqueue *q = dispatch__queue(d, r->queue, false);
	dispatch_waiter *c = q ? q->wait_head : NULL;
	if (c == NULL || !c->stream || c->inflight >= c->max ||
	    c->ops->ahead == NULL || c->ops->can_ahead == NULL ||
	    !c->ops->can_ahead(c->ud))
		return false;
	char *worker = hora_strdup(c->worker);
	if (worker == NULL)
		return false;
	l->handed_out = true;
	hora_free(l->worker);
	l->worker = worker;
	l->started = r->due_at;
	l->expires = r->due_at + c->lease_ms * HORA_USEC_PER_MS;
	l->stream_id = c->id;
	ahead_link(c, l);
	c->inflight++;
	/* to the back of the line, as serve_waiting does */
	claim_unlink(c);
	if (c->inflight < c->max)
		claim_link(c);
	if (c->ops->ahead(c->ud, r) == 0)
		return true;
	ahead_unlink(c, l);
	dispatch__handout_clear(l);
	l->stream_id = 0;
	c->inflight--;
	if (!c->waiting)
		claim_link(c);
	return false;
}

/* Ahead of their instant, runs due together go by priority, as the
 * ready heaps would order them once due. */
static int ahead_order(const void *a, const void *b)
{
	const run *x = (*(run_lead *const *)a)->run;
	const run *y = (*(run_lead *const *)b)->run;
	if (x->due_at != y->due_at)
		return x->due_at < y->due_at ? -1 : 1;
	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Runs due by `until` (not yet due): to a stream ahead, else to the
 * soon heap to wait for their instant. */
static void release_ahead(dispatch *d, hora_time until)
{
	const heap_entry *e;
	size_t n = 0;
	while ((e = heap_top(&d->due)) != NULL && e->key <= until) {
		run_lead *l = e->item;
		if (n == d->cap_ahead_buf) {
			size_t cap = n ? n * 2 : 64;
			run_lead **v = hora_realloc(d->ahead_buf,
						    cap * sizeof *v);
			if (v == NULL)
				break; /* the rest on the next pass */
			d->ahead_buf = v;
			d->cap_ahead_buf = cap;
		}
		heap_remove(&d->due, l->sched_idx);
		l->where = WHERE_NONE;
		d->ahead_buf[n++] = l;
	}
	if (n > 1)
		qsort(d->ahead_buf, n, sizeof *d->ahead_buf, ahead_order);
	for (size_t i = 0; i < n; i++) {
		run_lead *l = d->ahead_buf[i];
		run *r = l->run;
		if (!l->overlap_pending && !needs_overlap_check(d, r) &&
		    hand_ahead(d, l))
			continue;
		if (heap_push(&d->soon, r->due_at, l) == 0)
			l->where = WHERE_SOON;
		else
			log_error("out of memory queueing run %llu",
				  (unsigned long long)r->id);
	}
}

/* l is due: into its queue's ready heap (or held for an OVERLAP entry).
 * false if held[] is full: l went back to the due heap for next pass. */
static bool make_ready(dispatch *d, run_lead *l, uint64_t *held,
		       size_t *nheld, bool *any)
{
	run *r = l->run;
	if (l->overlap_pending)
		return true;
	if (needs_overlap_check(d, r)) {
		if (*nheld >= HELD_MAX) {
			heap_push(&d->due, r->due_at, l);
			l->where = WHERE_DUE;
			return false;
		}
		l->overlap_pending = true;
		held[(*nheld)++] = r->id;
		return true;
	}
	dqueue *q = dispatch__queue(d, r->queue, true);
	if (q == NULL || heap_push(&q->ready, ready_key(r), l) != 0) {
		log_error("out of memory readying run %llu",
			  (unsigned long long)r->id);
		return true;
	}
	l->where = WHERE_READY;
	q->touched = true;
	*any = true;
	return true;
}

/* Move every due run to its queue's ready heap, then serve claims: all
 * runs first, so a waiting claim gets up to its `max` at once rather
 * than one run each.  Runs due within the look-ahead go to a stream
 * ahead if one can take them, else wait in the soon heap. */
static void release_due(dispatch *d)
{
	hora_time now = hora_wallclock_usec();
	hora_time ahead = ahead_usec(d);
	const heap_entry *e;
	bool any = false;
	uint64_t held[HELD_MAX];
	size_t nheld = 0;
	while ((e = heap_top(&d->soon)) != NULL && e->key <= now) {
		run_lead *l = e->item;
		heap_remove(&d->soon, l->sched_idx);
		l->where = WHERE_NONE;
		if (!make_ready(d, l, held, &nheld, &any))
			break;
	}
	while ((e = heap_top(&d->due)) != NULL && e->key <= now) {
		run_lead *l = e->item;
		heap_remove(&d->due, l->sched_idx);
		l->where = WHERE_NONE;
		if (!make_ready(d, l, held, &nheld, &any))
			break;
	}
	if (ahead > 0)
		release_ahead(d, now + ahead);
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
				if (r)
					dispatch__place(d, r);
			}
		}
	}
	d->armed_at = HORA_TIME_NONE;
	dispatch__arm_clock(d);
}

void dispatch__on_clock(uv_poll_t *p, int status, int events)
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
		hora_time late = top ? hora_wallclock_usec() - top->key : 0;
		release_due(d);
		log_debug("dispatch clock woke %lld us after the first due run",
			  (long long)late);
	}
}

/* ---- claims ----------------------------------------------------------- */

/* A claim or stream waiting on q, not yet in its line; NULL on ENOMEM. */
static dispatch_waiter *waiter_new(dispatch *d, dqueue *q, const char *worker,
				   unsigned max, int64_t lease_ms,
				   dispatch_claim_cb cb, void *ud)
{
	dispatch_waiter *c = hora_calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->d = d;
	c->q = q;
	snprintf(c->worker, sizeof c->worker, "%s", worker);
	c->max = max;
	c->lease_ms = lease_ms;
	c->cb = cb;
	c->ud = ud;
	return c;
}

/* Into q's line, at its tail. */
static void claim_link(dispatch_waiter *c)
{
	dqueue *q = c->q;
	c->next = NULL;
	c->prev = q->wait_tail;
	if (q->wait_tail)
		q->wait_tail->next = c;
	else
		q->wait_head = c;
	q->wait_tail = c;
	c->waiting = true;
	if (!c->stream)
		c->d->stats.claims_waiting++;
}

static void claim_unlink(dispatch_waiter *c)
{
	dqueue *q = c->q;
	if (!c->waiting)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		q->wait_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		q->wait_tail = c->prev;
	c->prev = c->next = NULL;
	c->waiting = false;
	if (!c->stream)
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
	hora_time now = hora_wallclock_usec();
	hora_time exp = now + lease_ms * HORA_USEC_PER_MS;
	const heap_entry *e;
	while (n < max && (e = heap_top(&q->ready)) != NULL) {
		run_lead *l = e->item;
		run *r = l->run;
		heap_remove(&q->ready, l->sched_idx);
		l->where = WHERE_NONE;
		if (dispatch__queue_lease(d, r, worker, exp) != 0) {
			/* put it back; it is still ready */
			heap_push(&q->ready, ready_key(r), l);
			l->where = WHERE_READY;
			break;
		}
		l->handed_out = true;
		hora_free(l->worker);
		l->worker = hora_strdup(worker);
		l->started = now;
		l->expires = exp;
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
		if (!c->stream) {
			size_t n = take_ready(d, q, c->worker, c->max,
					      c->lease_ms, got);
			claim_unlink(c);
			c->cb(c->ud, got, n);
			claim_free(c);
			continue;
		}
		/* a stream takes what its credit allows, then goes to the
		 * back of the line (if it still has credit) before its
		 * callback, which may close it */
		size_t n = take_ready(d, q, c->worker, c->max - c->inflight,
				      c->lease_ms, got);
		for (size_t i = 0; i < n; i++)
			got[i]->lead->stream_id = c->id;
		c->inflight += (unsigned)n;
		claim_unlink(c);
		if (c->inflight < c->max)
			claim_link(c);
		if (n > 0)
			c->cb(c->ud, got, n);
		else
			break; /* could not lease (out of memory): later */
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
	dqueue *q = interned ? dispatch__queue(d, interned, true) : NULL;
	if (q == NULL)
		return -HORA_ENOMEM;
	/* runs may be due since the last clock tick */
	release_due(d);
	if (heap_len(&q->ready) > 0 || wait_ms <= 0) {
		size_t n = take_ready(d, q, worker, max, lease_ms, got);

		cb(ud, got, n);
		return 0;
	}
	dispatch_waiter *c = waiter_new(d, q, worker, max, lease_ms, cb, ud);
	if (c == NULL)
		return -HORA_ENOMEM;
	uv_timer_init(d->loop, &c->timer);
	c->timer.data = c;
	c->timer_live = true;
	uv_timer_start(&c->timer, on_claim_timeout, (uint64_t)wait_ms, 0);
	claim_link(c);
	if (out)
		*out = c;
	return 0;
}

void dispatch_claim_cancel(dispatch_waiter *c)
{

	claim_unlink(c);
	claim_free(c);
}

/* ---- streams ---------------------------------------------------------- */

int dispatch_stream_open(dispatch *d, const char *queue, const char *worker,
			 unsigned max_inflight, int64_t lease_ms,
			 const dispatch_stream_ops *ops, void *ud,
			 dispatch_stream **out)
{
	*out = NULL;
	if (!d->leader)
		return -HORA_ENOTLEADER;
	if (max_inflight == 0)
		max_inflight = 1;
	if (max_inflight > DISPATCH_CLAIM_MAX)
		max_inflight = DISPATCH_CLAIM_MAX;
	const char *interned = store_intern(fsm_store(d->f), queue);
	dqueue *q = interned ? dispatch__queue(d, interned, true) : NULL;
	dispatch_waiter *c =
		q ? waiter_new(d, q, worker, max_inflight, lease_ms, ops->push,
			       ud)
		  : NULL;
	if (c == NULL)
		return -HORA_ENOMEM;
	c->ops = ops;
	c->end = ops->end;
	c->stream = true;
	c->id = ++d->stream_seq;
	c->s_next = d->streams;
	if (d->streams)
		d->streams->s_prev = c;
	d->streams = c;
	d->stats.streams++;
	claim_link(c);
	*out = (dispatch_stream *)c;
	/* runs may be due since the last clock tick; hand out what is ready
	 * (the clock may wake earlier now: hand-out ahead) */
	d->armed_at = HORA_TIME_NONE;
	release_due(d);
	if (c->waiting && heap_len(&q->ready) > 0)
		serve_waiting(d, q);
	return 0;
}

static void stream_free(dispatch_waiter *c)
{
	dispatch *d = c->d;
	while (c->ahead)
		ahead_unlink(c, c->ahead);
	claim_unlink(c);
	if (c->s_prev)
		c->s_prev->s_next = c->s_next;
	else
		d->streams = c->s_next;
	if (c->s_next)
		c->s_next->s_prev = c->s_prev;
	d->stats.streams--;
	hora_free(c);
}

void dispatch_stream_close(dispatch_stream *s)
{
	if (s == NULL)
		return;
	dispatch_waiter *c = (dispatch_waiter *)s;
	dispatch *d = c->d;
	/* what it was handed ahead and did not write goes to others */
	while (c->ahead) {
		run_lead *l = c->ahead;
		if (dispatch__ahead_take_back(d, l, true))
			dispatch__place(d, l->run);
	}
	stream_free(c);
	dispatch__arm_clock(d);
}

void dispatch_stream_written(dispatch_stream *s, uint64_t id, hora_time at)
{
	dispatch_waiter *c = (dispatch_waiter *)s;
	dispatch *d = c->d;
	run *r = fsm_run(d->f, id);
	run_lead *l = r ? r->lead : NULL;
	if (l == NULL || !l->ahead || l->stream_id != c->id)
		return; /* taken back meanwhile */
	ahead_unlink(c, l);
	ahead_written(d, l, at);
}

void dispatch__stream_credit(dispatch *d, uint64_t id)
{
	dispatch_waiter *c = stream_by_id(d, id);
	if (c == NULL)
		return;
	if (c->inflight > 0)
		c->inflight--;
	if (!c->waiting && c->inflight < c->max)
		claim_link(c);
	if (heap_len(&c->q->ready) > 0) {
		c->q->touched = true;
		uv_timer_start(&d->serve_timer, dispatch__on_serve_timer, 0, 0);
	}
}

void dispatch__on_serve_timer(uv_timer_t *t)
{
	dispatch *d = t->data;
	if (!d->leader)
		return;
	for (dqueue *q = d->queues; q; q = q->next) {
		if (q->touched && q->wait_head)
			serve_waiting(d, q);
		q->touched = false;
	}
}

bool dispatch_leading(const dispatch *d)
{
	return d->leader;
}

void dispatch__forget_queues(dispatch *d)
{
	/* streams first: told once, freed (their runs keep their leases) */
	while (d->streams) {
		dispatch_waiter *c = d->streams;
		dispatch_stream_end_cb end = c->end;
		void *ud = c->ud;
		stream_free(c);
		end(ud);
	}
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
}

size_t dispatch_ready_count(const dispatch *d, const char *queue)
{
	for (dqueue *q = d->queues; q; q = q->next)
		if (strcmp(q->name, queue) == 0)
			return heap_len(&q->ready);
	return 0;
}

bool dispatch_handout_of(const run *r, dispatch_handout *out)
{
	const run_lead *l = r->lead;
	if (l == NULL || !l->handed_out || l->ahead)
		return false;
	if (out)
		*out = (dispatch_handout){l->worker, l->started, l->expires};
	return true;
}
