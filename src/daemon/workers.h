/*
 * workers.h - horad's built-in executor slots (--workers N,
 * --exec-queues Q1,Q2).
 *
 * The slots claim runs in-process from the dispatcher while this node
 * leads (a follower's slots wait: claims go to the leader), execute them
 * with the executor of src/exec, keep their leases alive with
 * heartbeats and report completions through the log like any worker.
 */
#ifndef HORA_DAEMON_WORKERS_H
#define HORA_DAEMON_WORKERS_H

#include <uv.h>

#include "cluster/dispatch.h"
#include "cluster/node.h"

typedef struct workers workers;

int workers_start(uv_loop_t *loop, node *n, dispatch *d, unsigned slots,
		  const char *const *queues, unsigned nqueues, workers **out,
		  hora_error *err);

/* Running executions now. */
unsigned workers_active(const workers *w);

/*
 * Stop claiming; let running executions finish for up to grace_ms, then
 * cancel what is left and hand those runs back (released leases are
 * delivered again).  done(ud) runs when every slot is idle and the
 * executor is closed; `w` is freed then.
 */
void workers_stop(workers *w, unsigned grace_ms, void (*done)(void *ud),
		  void *ud);

#endif
