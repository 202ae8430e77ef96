/*
 * run.h - one execution of a job for one scheduled instant (API.md
 * "Runs").
 *
 * Runs are replicated state: the state machine creates them (FIRE),
 * leases them (LEASE), finishes or retries them (COMPLETE) and hands them
 * back (EXPIRE).  Two pointers at the end are local to a node and never
 * replicated or snapshotted: the leader's dispatcher hangs its
 * bookkeeping on `lead`, and the built-in executor its execution on
 * `exec`; neither is read or written here or in the state machine.
 *
 * One allocation holds the fixed part and the job name; worker, output
 * and error change over the run's life and are separate (hora_malloc).
 */
#ifndef HORA_SCHED_RUN_H
#define HORA_SCHED_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/civil.h"

struct run_lead;

typedef enum {
	RUN_SCHEDULED = 0, /* waiting for due_at ("ready" once due) */
	RUN_RUNNING = 1,   /* leased to a worker */
	RUN_SUCCEEDED = 2,
	RUN_FAILED = 3,
	RUN_TIMED_OUT = 4,
	RUN_SKIPPED = 5,
	RUN_CANCELLED = 6,
} run_status;

#define RUN_STATUS_COUNT 7

enum {
	RUN_F_MANUAL = 1 << 0,  /* made by /trigger */
	RUN_F_OVERLAP = 1 << 1, /* its overlap policy was applied when due */
};

typedef struct run {
	uint64_t id;
	struct run *hash_next; /* id table (fsm.c) */
	/* the job's history, newest first (fsm.c) */
	struct run *job_prev, *job_next;
	/* finished runs in finishing order, for the byte budget (fsm.c) */
	struct run *done_prev, *done_next;
	const char *queue; /* interned */
	hora_time scheduled_at;
	hora_time due_at; /* scheduled_at + jitter, or the retry instant */
	hora_time dispatched_at;
	hora_time started_at;
	hora_time finished_at;
	hora_time lease_expires_at;
	uint32_t attempt;
	int32_t exit_code; /* -1: none */
	uint8_t status;    /* run_status */
	uint8_t priority;
	uint8_t flags;     /* RUN_F_* */
	bool attached;     /* in its job's history list */
	char *worker;
	char *output;
	uint32_t output_len;
	char *error;
	/* Leader only: the dispatcher's bookkeeping of this active run
	 * (struct run_lead, src/cluster/dispatch_int.h), NULL on other
	 * nodes and once the run is final.  Owned by the dispatcher, which
	 * clears it before the run is freed. */
	struct run_lead *lead;
	void *exec;         /* built-in execution (src/daemon/workers.c) */
	char job[];         /* the job's name */
} run;

/* A new run (status SCHEDULED, attempt 1); NULL on ENOMEM. */
run *run_new(uint64_t id, const char *job, const char *queue);
void run_free(run *r);

/* The API names of the run states (API.md "Runs"), one table for the
 * metrics, the CLI, the worker engine and the JSON of a run:
 * "scheduled", "running", "succeeded", "failed", "timed_out", "skipped",
 * "cancelled" for the run_status values; "unknown" for anything else.
 * The eighth name, "ready", is a scheduled run that is due: see
 * run_status_name() and run_status_parse(). */
const char *run_status_str(int status);
/* "scheduled", ..., with "ready" for a due scheduled run. */
const char *run_status_name(const run *r, hora_time now);
/* Parse an API status name (any of the eight); -1 if unknown. */
int run_status_parse(const char *s, bool *ready);
bool run_is_final(const run *r);

/* Replace a string field (worker, output, error) with a copy; -ENOMEM. */
int run_set_str(char **field, const char *s, size_t len);

/* Bytes held by the run, for the history budget. */
size_t run_size(const run *r);

#endif
