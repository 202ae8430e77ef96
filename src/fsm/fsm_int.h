/*
 * fsm_int.h - the state machine's insides, shared by fsm.c (jobs, nodes,
 * snapshots) and fsm_runs.c (runs).  Not a public contract.
 */
#ifndef HORA_FSM_FSM_INT_H
#define HORA_FSM_FSM_INT_H

#include "fsm/fsm.h"
#include "fsm/wire.h"
#include "sched/run.h"

/* Runs by id (chained hash), and finished runs in finishing order. */
typedef struct fsm_runs_state {
	run **buckets;
	size_t mask; /* buckets - 1; 0 when no table */
	size_t count;
	run *done_head, *done_tail;
	size_t done_count;
	size_t bytes; /* run_size of every run */
} fsm_runs_state;

struct fsm {
	store *jobs;
	uint64_t last_index;
	hora_time clock;
	fsm_node_info nodes[FSM_NODES_MAX];
	size_t node_count;
	fsm_runs_state runs;
	size_t hist_per_job;
	size_t hist_bytes;
	fsm_observer observer;
	fsm_run_stats stats;
};

void fsm__runs_state_init(fsm_runs_state *rs);
/* Free every run of rs (jobs' lists are not touched). */
void fsm__runs_state_clear(fsm_runs_state *rs, store *jobs);
/* Free every run of f (jobs keep dangling list heads: call before
 * freeing the store, or reset them). */
void fsm__runs_clear(fsm *f);

/* A replaced job record hands its history to the new one. */
void fsm__runs_move(job *from, job *to);
/* A deleted job: cancel what is active, detach its history. */
void fsm__runs_job_deleted(fsm *f, job *j, hora_time stamp);

int fsm__apply_fire(fsm *f, const entry_header *h, wire_reader *r,
		    uint64_t index, fsm_result *res);
int fsm__apply_lease(fsm *f, const entry_header *h, wire_reader *r,
		     fsm_result *res);
int fsm__apply_complete(fsm *f, const entry_header *h, wire_reader *r,
			fsm_result *res);
int fsm__apply_expire(fsm *f, const entry_header *h, wire_reader *r,
		      fsm_result *res);
int fsm__apply_overlap(fsm *f, const entry_header *h, wire_reader *r,
		       fsm_result *res);
/* A paused job: its planned first attempts are cancelled. */
void fsm__runs_job_paused(fsm *f, job *j, hora_time stamp);

void fsm__runs_snapshot(const fsm *f, wire_writer *w);
/* Read the runs section (if present) into rs, linking runs to the jobs
 * of `jobs`. */
int fsm__runs_restore(fsm_runs_state *rs, store *jobs, wire_reader *r);

#endif
