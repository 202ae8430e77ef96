/*
 * fsm.h - hora's replicated state machine: committed log entries in,
 * state out.
 *
 * Deterministic (DESIGN.md, principle 2): the only inputs are the entry
 * bytes and the log index; every instant comes from the entry's stamp.
 * Replicas that apply the same log hold the same jobs with the same
 * fields, next fire instants and versions.
 *
 * Snapshots: fsm_snapshot_encode writes the whole state as one versioned
 * buffer; fsm_snapshot_restore replaces the state with one.  Format in
 * docs/formats.md.
 */
#ifndef HORA_FSM_FSM_H
#define HORA_FSM_FSM_H

#include <stddef.h>
#include <stdint.h>

#include "core/civil.h"
#include "fsm/entry.h"
#include "sched/run.h"
#include "sched/store.h"

#define FSM_SNAPSHOT_MAGIC "HORASNAP"
#define FSM_SNAPSHOT_VERSION 1
#define FSM_NODES_MAX 16

typedef enum {
	FSM_OK = 0,
	FSM_CREATED = 1,
	FSM_REPLACED = 2,
	FSM_CONFLICT = 3,  /* create-only put of an existing name */
	FSM_NOT_FOUND = 4, /* delete/pause/resume of an absent name */
} fsm_outcome;

/* What applying one entry did, item by item (in entry order). */
typedef struct fsm_result {
	entry_type type;
	uint64_t index;
	uint32_t count;
	uint8_t outcome[]; /* fsm_outcome per item */
} fsm_result;

typedef struct fsm_node_info {
	uint64_t id;
	char api[128];
} fsm_node_info;

typedef struct fsm fsm;

/* Defaults of the history retention (horad flags change them; every
 * node of a cluster must use the same values). */
#define FSM_HISTORY_PER_JOB_DEFAULT 100
#define FSM_HISTORY_BYTES_DEFAULT ((size_t)256 << 20)
/* Lease expiries tolerated beyond max_attempts before a run fails. */
#define FSM_EXPIRIES_MAX 10

/*
 * Told about every change to runs as entries apply, so the leader's
 * dispatcher can keep its queues without scanning.  All optional.
 */
typedef struct fsm_observer {
	void *ud;
	/* created, leased, retried, handed back or finished */
	void (*run_changed)(void *ud, run *r);
	/* about to be freed (history eviction) */
	void (*run_freed)(void *ud, run *r);
	/* the whole state is about to be replaced by a snapshot */
	void (*reset)(void *ud);
} fsm_observer;

/* Counters of what applying did (replicated, so equal on every node). */
typedef struct fsm_run_stats {
	uint64_t fired;
	uint64_t skipped_overlap;
	uint64_t misfire_skipped; /* FIRE_NO_RUN items */
	uint64_t finished[RUN_STATUS_COUNT];
	uint64_t retries;
	uint64_t expired;
	uint64_t evicted;
} fsm_run_stats;

int fsm_new(fsm **out);
void fsm_free(fsm *f);

store *fsm_store(fsm *f);
/* Index of the last entry applied (0 before any). */
uint64_t fsm_last_index(const fsm *f);
/* The largest stamp applied so far: the state machine's notion of now. */
hora_time fsm_clock(const fsm *f);

/*
 * Apply one committed entry.  On success *result (if not NULL) gets a
 * hora_malloc'd fsm_result the caller frees.  Errors: -HORA_ECORRUPT
 * (malformed entry), -HORA_EVERSION (written by a newer, incompatible
 * release), -HORA_ENOMEM.  An entry that fails to decode changes nothing.
 */
int fsm_apply(fsm *f, const void *buf, size_t len, uint64_t index,
	      fsm_result **result);

/*
 * The next instant strictly after `after` at which job j should fire,
 * applying paused, start_at, end_at and max_runs; HORA_TIME_NONE if none.
 */
hora_time fsm_next_fire(const job *j, hora_time after);

void fsm_set_observer(fsm *f, const fsm_observer *obs);
/* History retention: finished runs kept per job and bytes for all. */
void fsm_set_history(fsm *f, size_t per_job, size_t bytes);

/* The id of the run made by item `item` of the FIRE entry at `index`. */
static inline uint64_t fsm_run_id(uint64_t index, uint32_t item)
{
	return index << 12 | item;
}
#define FSM_FIRE_ITEMS_MAX 4096

run *fsm_run(const fsm *f, uint64_t id);
size_t fsm_run_count(const fsm *f);
size_t fsm_run_bytes(const fsm *f);
const fsm_run_stats *fsm_stats(const fsm *f);
/* Call fn for every run (any order); stops on non-zero. */
int fsm_each_run(const fsm *f, int (*fn)(run *r, void *ud), void *ud);

/* Delay before retry `attempt` + 1 after attempt `attempt` failed:
 * backoff * 2^(attempt-1), at most max_backoff. */
int64_t fsm_retry_delay(const job *j, uint32_t attempt);

/* API address published by node `id` (NODE_INFO entries), or NULL. */
const char *fsm_node_api(const fsm *f, uint64_t id);
size_t fsm_nodes(const fsm *f, const fsm_node_info **out);

/* Serialize the whole state into one hora_malloc buffer. */
int fsm_snapshot_encode(const fsm *f, uint8_t **buf, size_t *len);
/* The same bytes, handed to `sink` in pieces of about FSM_SNAPSHOT_CHUNK
 * (memory stays small).  0, -HORA_ENOMEM, or -HORA_EIO (the sink
 * failed). */
#define FSM_SNAPSHOT_CHUNK ((size_t)1 << 20)
int fsm_snapshot_write(const fsm *f, wire_sink sink, void *ud);
/* Replace the state by a snapshot.  On error the state is unchanged. */
int fsm_snapshot_restore(fsm *f, const void *buf, size_t len);

#endif
