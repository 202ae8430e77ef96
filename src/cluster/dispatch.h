/*
 * dispatch.h - the leader's side of runs: decide early, dispatch on time
 * (DESIGN.md, principles 3 and 4).
 *
 * A planner (plan.h) commits FIRE entries for every job instant due
 * within the look-ahead window, before it is due.  Committed runs wait in
 * a heap by due instant; a timerfd armed at the earliest (absolute
 * CLOCK_REALTIME, so wake-ups are not rounded to libuv's milliseconds)
 * moves due runs to per-queue ready heaps (priority, then due instant),
 * and waiting claims take them from memory at once.  Leases granted that
 * way are recorded in LEASE entries batched right after; expiries,
 * timeouts (expiry.h) and completions go through the log too, and
 * finished one-shot jobs are deleted after their retention (collect.h).
 *
 * Only the leader dispatches; on every node the dispatcher listens to
 * the state machine and rebuilds its queues when it gains leadership.
 * Its bookkeeping of a run (run->lead) exists on the leader only.
 * All calls on the loop thread.
 *
 * The implementation is split by concern (dispatch_int.h holds what the
 * files share):
 *   dispatch.c  lifecycle, leadership, the state machine observer, the
 *               planner and collector timers, trigger
 *   handout.c   the dispatch clock, ready queues, claims and hand-out
 *   leases.c    LEASE batches, heartbeats, completions, lease expiry
 * and the decisions are loop-free files that tests/sim links as well:
 * plan.c, expiry.c, collect.c.
 */
#ifndef HORA_CLUSTER_DISPATCH_H
#define HORA_CLUSTER_DISPATCH_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "cluster/node.h"
#include "core/hist.h"
#include "fsm/entry.h"
#include "sched/run.h"

#define DISPATCH_PLAN_PERIOD_MS 20
#define DISPATCH_LEASE_MS_DEFAULT 60000
#define DISPATCH_WAIT_MS_MAX 300000
#define DISPATCH_CLAIM_MAX 1000
/* Finished one-shot jobs are deleted this long after their last run
 * ended (they are kept that long for their history). */
#define DISPATCH_ONCE_RETENTION_DEFAULT_MS (3600 * 1000)
#define DISPATCH_GC_PERIOD_MS 60000

typedef struct dispatch dispatch;
typedef struct dispatch_waiter dispatch_waiter;

/* Runs handed out by a claim (n may be 0 when the wait ended).  The run
 * pointers are valid during the callback only. */
typedef void (*dispatch_claim_cb)(void *ud, run *const *runs, size_t n);

/* Told when a run ends while it may be executing (built-in workers). */
typedef void (*dispatch_final_cb)(void *ud, run *r);

typedef struct dispatch_stats {
	hora_hist lateness; /* due instant to hand-out */
	uint64_t handed_out;
	uint64_t handed_ahead; /* of which written by a stream's courier */
	uint64_t expired;
	uint64_t timed_out;
	uint64_t misfires;
	uint64_t collected; /* finished one-shot jobs deleted */
	uint32_t claims_waiting;
	uint32_t streams; /* open push streams */
} dispatch_stats;

int dispatch_new(uv_loop_t *loop, node *n, dispatch **out);
void dispatch_close(dispatch *d);
void dispatch_set_final_cb(dispatch *d, dispatch_final_cb cb, void *ud);

/*
 * Claim up to `max` ready runs of `queue` for `worker`, waiting up to
 * `wait_ms` for one to be due.  cb runs once (possibly before this
 * returns).  -HORA_ENOTLEADER if this node does not lead.  *out (may be
 * NULL) can cancel the wait until cb has run.
 */
int dispatch_claim(dispatch *d, const char *queue, const char *worker,
		   unsigned max, int64_t wait_ms, int64_t lease_ms,
		   dispatch_claim_cb cb, void *ud, dispatch_waiter **out);
/* Forget a waiting claim (client gone); cb will not run. */
void dispatch_claim_cancel(dispatch_waiter *c);

/*
 * Push delivery (API.md "Push delivery").  A stream is a claim that does
 * not end: ready runs of `queue` are handed to it, with their leases,
 * as soon as they are due, while fewer than `max_inflight` runs it got
 * are unfinished.  A run stops counting when its attempt ends in the log
 * (completed, released with lease_ms 0, expired, cancelled).  Streams
 * and waiting claims of a queue take turns, first come first served, so
 * no run goes to two of them.
 *
 * ops->push(ud, runs, n) hands runs out (pointers valid during the
 * call; it may run before dispatch_stream_open returns, and may close the
 * stream).  ops->end(ud) runs once when this node stops leading (or the
 * dispatcher closes); the stream is freed right after it returns.
 *
 * Hand-out ahead: when ops->can_ahead(ud) says the stream's connection
 * can write at a given instant (a thread of its own does it, so a busy
 * loop at the due instant does not delay it), a run due within
 * DISPATCH_AHEAD_MS is handed to the stream before its instant:
 * ops->ahead(ud, r) prepares its line to be written at r->due_at (0, or
 * an error and the run waits for its instant).  The stream reports the
 * write with dispatch_stream_written(); only then is the lease recorded.
 * Until then the dispatcher may take the run back with ops->revoke(ud,
 * id, &at): DISPATCH_REVOKED (never written; the run is handed out again),
 * DISPATCH_WRITTEN (written at `at`, no report will follow) or
 * DISPATCH_UNKNOWN (counted as written).  can_ahead, ahead and revoke may
 * be NULL.
 * -HORA_ENOTLEADER, -HORA_ENOMEM.
 */
#define DISPATCH_AHEAD_MS 20 /* default of dispatch_set_ahead() */
enum { DISPATCH_REVOKED, DISPATCH_WRITTEN, DISPATCH_UNKNOWN };
typedef struct dispatch_stream dispatch_stream;
typedef void (*dispatch_stream_end_cb)(void *ud);
typedef struct dispatch_stream_ops {
	dispatch_claim_cb push;
	bool (*can_ahead)(void *ud);
	int (*ahead)(void *ud, run *r);
	int (*revoke)(void *ud, uint64_t id, hora_time *at);
	dispatch_stream_end_cb end;
} dispatch_stream_ops;
int dispatch_stream_open(dispatch *d, const char *queue, const char *worker,
			 unsigned max_inflight, int64_t lease_ms,
			 const dispatch_stream_ops *ops, void *ud,
			 dispatch_stream **out);
/* How long before their instant runs go to streams (0: at the instant). */
void dispatch_set_ahead(dispatch *d, unsigned ms);
/* The client went away: hand it nothing more.  Runs it was handed ahead
 * and that were not written are taken back; the others keep their
 * leases.  Not from inside end(). */
void dispatch_stream_close(dispatch_stream *s);
/* Run `id`, handed ahead to s, was written at `at`: its lease starts. */
void dispatch_stream_written(dispatch_stream *s, uint64_t id, hora_time at);

/* Whether this dispatcher hands out runs (this node leads). */
bool dispatch_leading(const dispatch *d);

/*
 * Extend (lease_ms > 0) or release (lease_ms == 0: the run is handed back
 * and delivered again) the lease `worker` holds on run `id`.  Returns
 * -HORA_ENOENT (no such run), -HORA_ECONFLICT (lease lost),
 * -HORA_ENOTLEADER, or 0 and cb runs after the commit.
 */
int dispatch_heartbeat(dispatch *d, uint64_t id, const char *worker,
		       int64_t lease_ms, node_commit_cb cb, void *ud);

/*
 * Report finished attempts.  Items whose lease is visibly lost are not
 * proposed: their index is marked in lost[i] (caller answers 409);
 * `lost` has n entries.  Returns -HORA_ENOTLEADER, -HORA_ENOMEM, or 0
 * (cb runs after the commit; if every item was lost cb runs at once with
 * a NULL result).
 */
int dispatch_complete(dispatch *d, const complete_item *items, size_t n,
		      bool *lost, node_commit_cb cb, void *ud);

/* Run a job now (POST /trigger); overlap applies. */
int dispatch_trigger(dispatch *d, const char *job, node_commit_cb cb,
		     void *ud);

/* How long finished one-shot jobs are kept (microseconds). */
void dispatch_set_once_retention(dispatch *d, int64_t usec);

const dispatch_stats *dispatch_get_stats(const dispatch *d);
/* Ready (due, unclaimed) runs of a queue on the leader. */
size_t dispatch_ready_count(const dispatch *d, const char *queue);

/* A run this leader handed out from memory whose LEASE entry has not
 * applied yet (docs/runs.md): to whom (NULL if it could not be copied),
 * when, until when. */
typedef struct dispatch_handout {
	const char *worker;
	hora_time started;
	hora_time expires;
} dispatch_handout;

/* Whether r is so handed out, and if so (out may be NULL) how.  Always
 * false on a node that does not lead. */
bool dispatch_handout_of(const run *r, dispatch_handout *out);

#endif
