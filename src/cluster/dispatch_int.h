/*
 * dispatch_int.h - what the dispatcher's files share (dispatch.c,
 * handout.c, leases.c); nothing outside src/cluster includes it.
 *
 * Leader only: everything here is this node's bookkeeping while it
 * leads, never replicated or snapshotted, and rebuilt from the
 * replicated runs when it gains leadership (dispatch.c, on_role).
 * All on the loop thread.
 */
#ifndef HORA_CLUSTER_DISPATCH_INT_H
#define HORA_CLUSTER_DISPATCH_INT_H

#include "cluster/collect.h"
#include "cluster/dispatch.h"
#include "cluster/plan.h"
#include "fsm/fsm.h"
#include "sched/heap.h"

enum { WHERE_NONE = 0, WHERE_DUE = 1, WHERE_READY = 2, WHERE_SOON = 3 };

/*
 * The leader's bookkeeping of one active (scheduled or running) run,
 * hung on run->lead.  Owned by the dispatcher: made when the run is first
 * queued (dispatch.c, place), freed when the run finishes, is freed by
 * the state machine, or leadership ends (forget_all), which also clears
 * run->lead.  Finished runs and every run on a follower have none, so the
 * replicated record does not carry these bytes.
 */
typedef struct run_lead {
	run *run;
	struct run_lead *prev, *next; /* dispatch.leads */
	uint32_t sched_idx;   /* in the due heap or a ready heap */
	uint32_t lease_idx;   /* in the lease heap */
	uint8_t where;        /* WHERE_*: which of those heaps */
	bool overlap_pending; /* an OVERLAP entry is in flight */
	bool handed_out;      /* claimed from memory, LEASE not applied: */
	char *worker;         /*   to whom (hora_malloc; NULL on ENOMEM) */
	hora_time started;    /*   when */
	hora_time expires;    /*   until when */
	/* An inherited lease is not ended before this (expiry_inherited):
	 * kept here, not in the replicated lease end, so the leader's state
	 * stays the followers'. */
	hora_time lease_floor;
	/* The stream it was handed to (dispatch_stream.id; 0: none) until
	 * the log ends that attempt: the stream's credit comes back then. */
	uint64_t stream_id;
	/* Handed ahead to that stream (dispatch_stream_open): its line may
	 * not be written yet, and no LEASE is queued until it is. */
	bool ahead;
	struct run_lead *a_prev, *a_next; /* the stream's ahead list */
} run_lead;

/* A waiting claim, or a stream (which never stops waiting while it has
 * credit: it goes back to the tail of the queue's line after each
 * hand-out). */
struct dispatch_waiter {
	dispatch *d;
	struct dqueue *q;
	char worker[256];
	unsigned max; /* a claim's max; a stream's max_inflight */
	int64_t lease_ms;
	dispatch_claim_cb cb;
	void *ud;
	const dispatch_stream_ops *ops; /* streams */
	run_lead *ahead; /* runs handed ahead, maybe not written yet */
	uv_timer_t timer;
	bool timer_live;
	bool waiting; /* in q's line (wait_head..wait_tail) */
	struct dispatch_waiter *prev, *next;
	/* streams only */
	bool stream;
	uint64_t id;       /* > 0 */
	unsigned inflight; /* runs handed out whose attempt has not ended */
	dispatch_stream_end_cb end;
	struct dispatch_waiter *s_prev, *s_next; /* d->streams */
};

/* A queue the leader hands out from: its ready runs and waiting claims. */
typedef struct dqueue {
	const char *name; /* interned */
	heap ready;       /* items: run_lead, by priority then due instant */
	bool touched;     /* got runs, or a waiter got credit back */
	dispatch_waiter *wait_head, *wait_tail;
	struct dqueue *next;
} dqueue;

/* A lease handed out, waiting for the next LEASE batch. */
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
	run_lead *leads; /* every run_lead made while leading */
	heap due;   /* scheduled runs by due instant (items: run_lead) */
	/* runs due within DISPATCH_AHEAD_MS that no stream could take
	 * ahead: they wait for their instant here (WHERE_SOON) */
	heap soon;
	run_lead **ahead_buf; /* release_due's scratch */
	size_t cap_ahead_buf;
	heap lease; /* running runs by expiry_deadline (items: run_lead) */
	dqueue *queues;
	int tfd; /* the dispatch clock */
	uv_poll_t tfd_poll;
	hora_time armed_at;
	uv_timer_t plan_timer;
	uv_timer_t lease_timer;
	uv_timer_t flush_timer;
	uv_timer_t gc_timer;
	int64_t once_retention;
	hora_time ahead; /* dispatch_set_ahead, usec */
	int closing;   /* handles still to close */
	bool planning; /* a FIRE entry is in flight */
	lease_pending *leases;
	size_t nleases, cap_leases;
	dispatch_waiter *streams; /* open streams */
	uint64_t stream_seq;
	uv_timer_t serve_timer; /* serve queues whose waiters got credit */
	dispatch_final_cb final_cb;
	void *final_ud;
	dispatch_stats stats;
	plan plan; /* the planner's pass (one at a time) */
	const char *gc_names[COLLECT_BATCH_MAX];
};

/* Put r back where its replicated state says it belongs (dispatch.c). */
void dispatch__place(dispatch *d, run *r);
/* Forget l's hand-out from memory (not its stream's credit). */
void dispatch__handout_clear(run_lead *l);

/* handout.c */
void dispatch__set_sched_idx(void *item, uint32_t idx);
/* The queue named `name`, made if `create` (NULL on ENOMEM). */
dqueue *dispatch__queue(dispatch *d, const char *name, bool create);
/* Answer every waiting claim with nothing, end every stream and free
 * every queue. */
void dispatch__forget_queues(dispatch *d);
/* The attempt of a run handed to stream `id` ended: credit back (served
 * on the next loop turn, never from inside an apply). */
void dispatch__stream_credit(dispatch *d, uint64_t id);
/* r's lead was handed ahead: take it back from its stream.  true if it
 * was never written (the hand-out is undone, credit back); false if it
 * was (its LEASE is queued, if `lease`, as if handed out then). */
bool dispatch__ahead_take_back(dispatch *d, run_lead *l, bool lease);
void dispatch__on_serve_timer(uv_timer_t *t);
/* Arm the dispatch clock at the earliest due run (disarm if none). */
void dispatch__arm_clock(dispatch *d);
void dispatch__on_clock(uv_poll_t *p, int status, int events);

/* leases.c */
void dispatch__set_lease_idx(void *item, uint32_t idx);
/* Batch a LEASE of r to worker until exp (flushed on the next loop
 * turn, or at once when the batch is full); -HORA_ENOMEM. */
int dispatch__queue_lease(dispatch *d, run *r, const char *worker,
			  hora_time exp);
/* Propose every batched LEASE now. */
void dispatch__flush_leases(dispatch *d);
void dispatch__forget_leases(dispatch *d);
/* Arm the lease timer at the earliest deadline (stop it if none). */
void dispatch__arm_lease_timer(dispatch *d);

#endif
