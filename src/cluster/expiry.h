/*
 * expiry.h - the leader's rules for a lease's end (DESIGN.md, principle 4:
 * leases, not locks).
 *
 * A running run ends on the leader at its deadline: its lease end, or its
 * job's timeout (started + timeout + a grace that lets an executor
 * enforcing the timeout itself report first) if that comes earlier.  At
 * the deadline the leader hands the attempt back (EXPIRE, carrying the
 * lease end it saw, so a lease extended meanwhile is left alone) or, if
 * the lease still runs, finishes it as timed out (COMPLETE).  A new
 * leader gives leases it inherits some grace, since heartbeats just
 * before a failover may not be in the log.  A worker holds a run's lease
 * if the log says so, or if this leader handed the run to it from memory
 * and the LEASE entry has not applied yet (apply then decides).
 *
 * Loop-free (no uv.h, no raft, no clock: `now` is an argument): linked by
 * horad's dispatcher (leases.c, dispatch.c) and by the cluster
 * simulation (tests/sim).
 */
#ifndef HORA_CLUSTER_EXPIRY_H
#define HORA_CLUSTER_EXPIRY_H

#include <stdbool.h>

#include "core/civil.h"
#include "fsm/entry.h"
#include "sched/job.h"
#include "sched/run.h"

/* New leaders give leases they inherit at least this long. */
#define EXPIRY_INHERIT_GRACE_MS 5000
/* A job timeout is enforced by the leader this long after it passes, so
 * an executor that enforces it itself reports first. */
#define EXPIRY_TIMEOUT_GRACE_MS 1000
/* Room for the error text of a timed-out run. */
#define EXPIRY_MSG_MAX 96

typedef enum {
	EXPIRY_NONE = 0, /* nothing to do yet */
	EXPIRY_LEASE,    /* the lease ran out: hand the attempt back */
	EXPIRY_TIMEOUT,  /* the job's timeout passed: finish as timed out */
} expiry_kind;

/* The instant the leader acts on running run r: min(max(lease end,
 * lease_floor), started + timeout + EXPIRY_TIMEOUT_GRACE_MS).  j: r's
 * job, NULL if deleted; lease_floor: the grace a new leader gives an
 * inherited lease (expiry_inherited; 0 for none), held by the leader
 * alone so that replicated state is the same on every node. */
hora_time expiry_deadline(const run *r, const job *j, hora_time lease_floor);

/* What to do about r at `now`, given the deadline it was queued with
 * (expiry_deadline when last placed): EXPIRY_NONE unless r is running
 * and the deadline has passed. */
expiry_kind expiry_decide(const run *r, hora_time deadline, hora_time now);

/* The EXPIRE item for EXPIRY_LEASE. */
expire_item expiry_expire_item(const run *r);

/* The COMPLETE item for EXPIRY_TIMEOUT; its error text is written into
 * msg, which must outlive the item.  j: r's job, NULL if deleted. */
complete_item expiry_timeout_item(const run *r, const job *j,
				  char msg[EXPIRY_MSG_MAX]);

/* The lease end a new leader gives a run it inherits at `now`. */
hora_time expiry_inherited(hora_time lease_end, hora_time now);

/* Whether `worker` holds r's lease: r is running and leased to it, or r
 * is scheduled and `handed_out` (given to a worker from memory, LEASE not
 * yet applied: the log decides who gets it).  The caller checks the
 * attempt. */
bool expiry_holds(const run *r, bool handed_out, const char *worker);

#endif
