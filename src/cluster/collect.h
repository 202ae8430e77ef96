/*
 * collect.h - which finished one-shot jobs the leader deletes.
 *
 * A job that will never fire again (one-shot fired, or max_runs reached:
 * JOB_F_DONE) and has no scheduled or running run is kept for its
 * history until `retention` after its last run ended (its last update if
 * it has no runs), then deleted through the log (DELETE_JOBS), in batches.
 *
 * Loop-free (no uv.h, no raft, no clock: the cutoff is an argument):
 * horad's dispatcher runs a scan every DISPATCH_GC_PERIOD_MS on the
 * leader (dispatch.c) and proposes what it finds.
 */
#ifndef HORA_CLUSTER_COLLECT_H
#define HORA_CLUSTER_COLLECT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/civil.h"
#include "sched/store.h"

/* Jobs deleted by one entry at most. */
#define COLLECT_BATCH_MAX 1000

/* Whether j is finished and its last run ended at or before `cutoff`
 * (now minus the retention). */
bool collect_due(const job *j, hora_time cutoff);

/* The names of up to `max` jobs of s that collect_due, in name order, into
 * names[]; returns how many.  The names point into the store's records:
 * encode them before the store changes. */
size_t collect_scan(const store *s, hora_time cutoff, const char **names,
		    size_t max);

#endif
