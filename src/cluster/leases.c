/*
 * leases.c - the leader's leases (DESIGN.md, principle 4): LEASE entries
 * batched after hand-outs, heartbeats (extend or release), completions,
 * and the lease heap whose timer hands expired attempts back or finishes
 * timed-out ones (expiry.c decides which).  Leader only; see dispatch.h.
 */
#include "cluster/dispatch_int.h"

#include "cluster/expiry.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"

#define LEASE_BATCH_MAX 1024
#define EXPIRE_BATCH_MAX 256 /* per entry, per timer pass */

void dispatch__set_lease_idx(void *item, uint32_t idx)
{
	((run_lead *)item)->lease_idx = idx;
}

/* ---- LEASE batches ---------------------------------------------------- */

static void flush_done(void *ud, int status, const fsm_result *res)
{
	(void)ud;
	(void)res;
	if (status != 0)
		log_debug("lease batch not committed: %s",
			  hora_strerror(status));
}

void dispatch__flush_leases(dispatch *d)
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
		rv = entry_encode_lease(items, d->nleases, hora_wallclock_usec(),
					&buf, &len);
		hora_free(items);
	}
	if (rv == 0)
		rv = node_propose(d->node, buf, len, flush_done, d);
	if (rv != 0)
		log_warn("cannot record %zu lease(s): %s; they will be "
			 "delivered again",
			 d->nleases, hora_strerror(rv));
	dispatch__forget_leases(d);
}

void dispatch__forget_leases(dispatch *d)
{
	for (size_t i = 0; i < d->nleases; i++)
		hora_free(d->leases[i].worker);
	d->nleases = 0;
}

static void on_flush_timer(uv_timer_t *t)
{
	dispatch__flush_leases(t->data);
}

int dispatch__queue_lease(dispatch *d, run *r, const char *worker,
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
		dispatch__flush_leases(d);
	else if (!uv_is_active((uv_handle_t *)&d->flush_timer))
		uv_timer_start(&d->flush_timer, on_flush_timer, 0, 0);
	return 0;
}

/* ---- expiry ----------------------------------------------------------- */

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
	hora_time now = hora_wallclock_usec();
	expire_item expires[EXPIRE_BATCH_MAX];
	complete_item timeouts[EXPIRE_BATCH_MAX];
	char msgs[EXPIRE_BATCH_MAX][EXPIRY_MSG_MAX];
	size_t ne = 0, nt = 0;
	const heap_entry *e;

	if (!d->leader)
		return;
	while ((e = heap_top(&d->lease)) != NULL && e->key <= now &&
	       ne < EXPIRE_BATCH_MAX && nt < EXPIRE_BATCH_MAX) {
		run_lead *l = e->item;
		run *r = l->run;
		expiry_kind k = expiry_decide(r, e->key, now);
		heap_remove(&d->lease, l->lease_idx);
		if (k == EXPIRY_LEASE) {
			expires[ne++] = expiry_expire_item(r);
		} else if (k == EXPIRY_TIMEOUT) {
			job *j = store_get(fsm_store(d->f), r->job);
			timeouts[nt] = expiry_timeout_item(r, j, msgs[nt]);
			nt++;
		}
	}
	uint8_t *buf;
	size_t len;
	if (ne && entry_encode_expire(expires, ne, now, &buf, &len) == 0 &&
	    node_propose(d->node, buf, len, expire_done, d) == 0)
		d->stats.expired += ne;
	if (nt && entry_encode_complete(timeouts, nt, now, &buf, &len) == 0 &&
	    node_propose(d->node, buf, len, expire_done, d) == 0)
		d->stats.timed_out += nt;
	dispatch__arm_lease_timer(d);
}

void dispatch__arm_lease_timer(dispatch *d)
{
	const heap_entry *e = heap_top(&d->lease);
	if (e == NULL) {
		uv_timer_stop(&d->lease_timer);
		return;
	}
	int64_t ms = (e->key - hora_wallclock_usec()) / 1000 + 1;
	uv_timer_start(&d->lease_timer, on_lease_timer,
		       (uint64_t)(ms < 0 ? 0 : ms), 0);
}

/* ---- heartbeat, complete ---------------------------------------------- */

/* The lease is the worker's if the log says so, or if it was just handed
 * out and its LEASE entry is still pending (the log decides).  A run
 * handed ahead whose write the loop has not heard of yet is settled
 * first: a worker naming it got its line (else it goes back). */
static bool owns(dispatch *d, run *r, const char *worker)
{
	run_lead *l = r->lead;
	if (l != NULL && l->ahead && dispatch__ahead_take_back(d, l, true)) {
		dispatch__place(d, r);
		dispatch__arm_clock(d);
	}
	return expiry_holds(r, dispatch_handout_of(r, NULL), worker);
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
	dispatch__flush_leases(d);
	uint8_t *buf;
	size_t len;
	hora_time now = hora_wallclock_usec();
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
	dispatch__flush_leases(d);
	uint8_t *buf;
	size_t len;
	int rv = entry_encode_complete(keep, k, hora_wallclock_usec(), &buf, &len);
	hora_free(keep);
	if (rv != 0)
		return rv;
	return node_propose(d->node, buf, len, cb, ud);
}
