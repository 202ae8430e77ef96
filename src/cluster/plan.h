/*
 * plan.h - the leader's planner: which (job, instant) pairs to fire now
 * (DESIGN.md, principle 3: decide early, dispatch on time).
 *
 * A planning pass walks the store's fire heap and turns every instant due
 * within the look-ahead window into a FIRE item, each expecting the
 * job's next instant as this node's state machine sees it, so a stale or
 * repeated plan is refused by apply and a (job, instant) never fires
 * twice.  Instants missed while no leader was up (older than the misfire
 * grace) follow the job's misfire policy: skip moves the schedule only,
 * once fires the latest missed instant, all fires each in order.  Each
 * run is due at its instant plus the job's jitter, a hash of job name
 * and instant (principle 2: no randomness), so every leader computes the
 * same due time.
 *
 * Loop-free (no uv.h, no raft, no clock: `now` is an argument): linked by
 * horad's dispatcher (dispatch.c proposes the items) and by the cluster
 * simulation (tests/sim), which runs it on every node that believes it
 * leads.
 */
#ifndef HORA_CLUSTER_PLAN_H
#define HORA_CLUSTER_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "core/civil.h"
#include "fsm/entry.h"
#include "sched/store.h"

/* Instants due by now + this are planned. */
#define PLAN_LOOKAHEAD_MS 1000
/* Instants older than this when planned are misfires (API.md misfire). */
#define PLAN_MISFIRE_GRACE_MS 5000
#define PLAN_ITEMS_MAX 1024      /* FIRE items per entry */
#define PLAN_PER_JOB_MAX 64      /* instants of one job per pass */
#define PLAN_MISFIRE_ALL_MAX 1000 /* missed instants fired per pass (all) */

/* One planning pass.  Large (tens of KiB): keep one per planner. */
typedef struct plan {
	hora_time now;
	hora_time horizon;  /* now + PLAN_LOOKAHEAD_MS */
	uint64_t misfires;  /* jobs found with missed instants */
	size_t n;           /* items[0, n) */
	fire_item items[PLAN_ITEMS_MAX];
} plan;

/*
 * Plan the instants of the jobs in `s` due by now + PLAN_LOOKAHEAD_MS
 * (and the missed ones) into p->items, in fire-heap order, at most
 * PLAN_ITEMS_MAX.  The items' job names point into the store's records:
 * encode them before the store changes.  Costs O(due jobs).
 */
void plan_make(plan *p, const store *s, hora_time now);

/* The stable jitter of (job, instant): in [0, jitter]. */
int64_t plan_jitter(const char *job, hora_time instant, int64_t jitter);

/* When the run of j for `instant` is due: the instant plus its jitter. */
hora_time plan_due_at(const job *j, hora_time instant);

#endif
