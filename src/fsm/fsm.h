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

/* API address published by node `id` (NODE_INFO entries), or NULL. */
const char *fsm_node_api(const fsm *f, uint64_t id);
size_t fsm_nodes(const fsm *f, const fsm_node_info **out);

/* Serialize the whole state into one hora_malloc buffer. */
int fsm_snapshot_encode(const fsm *f, uint8_t **buf, size_t *len);
/* Replace the state by a snapshot.  On error the state is unchanged. */
int fsm_snapshot_restore(fsm *f, const void *buf, size_t len);

#endif
