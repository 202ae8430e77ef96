/*
 * loop_stats.h - how long the loop is busy between two waits for events
 * (the hora_loop_busy_seconds histogram of /metrics).
 *
 * One iteration's busy time is the time from the end of one wait for
 * events to the start of the next: timers, I/O callbacks, idle, check
 * and close callbacks.  It is measured with a uv_prepare_t (just before
 * the loop waits) and libuv's idle-time metric, so it includes the I/O
 * callbacks that run inside the poll phase.  A long busy iteration is a
 * stall: every claim, stream and timer on the loop waited that long.
 *
 * On the loop thread only.  The stats object lives until loop_stats_stop
 * has closed its handle (then `done`).
 */
#ifndef HORA_NET_LOOP_STATS_H
#define HORA_NET_LOOP_STATS_H

#include <stdint.h>

#include <uv.h>

#include "core/hist.h"

typedef struct loop_stats {
	uv_prepare_t prepare;
	uint64_t last_ns;      /* uv_hrtime at the previous prepare */
	uint64_t last_idle_ns; /* uv_metrics_idle_time then */
	uint64_t max_ns;       /* longest busy iteration seen */
	hora_hist busy;        /* busy time per iteration */
	void (*done)(void *ud);
	void *ud;
} loop_stats;

/* Start measuring `loop`.  Call before the loop first runs: libuv's
 * idle-time metric must be switched on before uv_run (UV_METRICS_IDLE_TIME).
 * Returns 0 or a negative libuv error. */
int loop_stats_start(uv_loop_t *loop, loop_stats *s);

/* Stop; done(ud) (may be NULL) once the handle is closed. */
void loop_stats_stop(loop_stats *s, void (*done)(void *ud), void *ud);

#endif
