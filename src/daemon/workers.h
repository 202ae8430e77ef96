/*
 * workers.h - horad's built-in executor slots (--workers N,
 * --exec-queues Q1,Q2).
 *
 * The slots claim runs in-process from the dispatcher while this node
 * leads, and through the leader's API (relayed by the forwarder) while
 * it follows; they execute them with the executor of src/exec, keep
 * their leases alive with heartbeats and report completions through the
 * log like any worker -- in-process if this node leads when the run
 * ends, through the leader's API otherwise (after a hand-over too).
 */
#ifndef HORA_DAEMON_WORKERS_H
#define HORA_DAEMON_WORKERS_H

#include <uv.h>

#include "cluster/dispatch.h"
#include "cluster/node.h"

typedef struct workers workers;

struct forwarder;
/* `fw` relays claims and reports to the leader while this node follows
 * (NULL: slots only work on the leader); `token` is the bearer token for
 * the leader's API (NULL: none). */
int workers_start(uv_loop_t *loop, node *n, dispatch *d,
		  struct forwarder *fw, const char *token, unsigned slots,
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
