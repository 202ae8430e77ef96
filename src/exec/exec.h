/*
 * exec.h - the built-in executor: runs a run's `command` (uv_spawn, argv,
 * no shell) or `http` request (libcurl multi on the loop), with a
 * timeout, a bounded output tail and cancellation.
 *
 * Used by horad (--workers N slots) and by `hora worker`.  All calls on
 * the loop thread.
 */
#ifndef HORA_EXEC_EXEC_H
#define HORA_EXEC_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "core/civil.h"
#include "core/err.h"
#include "sched/run.h"

#define EXEC_OUTPUT_MAX (64 * 1024)   /* tail kept of stdout+stderr/body */
#define EXEC_KILL_GRACE_MS 5000       /* SIGTERM, then SIGKILL after this */

typedef enum {
	EXEC_SUCCEEDED = 0,
	EXEC_FAILED = 1,
	EXEC_TIMED_OUT = 2,
	EXEC_CANCELLED = 3,
} exec_status;

/* What to run.  Borrowed by executor_run for the duration of the call
 * only (the executor copies what it needs). */
typedef struct exec_request {
	/* for the HORA_* environment of API.md */
	const char *run_id;
	const char *job;
	const char *scheduled_at; /* RFC 3339 */
	uint32_t attempt;
	const char *payload_json; /* HORA_PAYLOAD; "null" when none */
	/* the job's "command" and "http", as stored (see job.h "extra");
	 * exactly one of them is non-NULL, or neither (then the run
	 * succeeds at once with nothing to do) */
	const json_t *command; /* array of strings */
	const json_t *http;    /* {url, method, headers, body} */
	int64_t timeout_usec;  /* 0: none */
} exec_request;

/* The run status a result reports (RUN_SUCCEEDED, RUN_FAILED,
 * RUN_TIMED_OUT, RUN_CANCELLED): one mapping for both worker engines. */
run_status exec_status_run(exec_status s);

typedef struct exec_result {
	exec_status status;
	int exit_code; /* process exit code, or HTTP status; -1 if none */
	const char *output; /* tail, output_len bytes (valid during the cb) */
	size_t output_len;
	const char *error; /* "" on success, else a sentence */
} exec_result;

typedef struct executor executor;
typedef struct exec_task exec_task;

typedef void (*exec_done_cb)(void *ud, const exec_result *res);

int executor_new(uv_loop_t *loop, executor **out, hora_error *err);

/*
 * Start one execution.  `done` runs exactly once, later, on the loop
 * (never from inside executor_run).  *task (may be NULL) identifies it for
 * executor_cancel until `done` has run.  Errors: -HORA_EINVAL (malformed
 * command/http, with err), -HORA_ENOMEM.
 */
int executor_run(executor *ex, const exec_request *req, exec_done_cb done,
		 void *ud, exec_task **task, hora_error *err);

/* Stop an execution: SIGTERM to the child (then SIGKILL after the grace
 * period), or abort the HTTP transfer.  `done` reports EXEC_CANCELLED. */
void executor_cancel(exec_task *task);

/* Running executions. */
unsigned executor_active(const executor *ex);

/* Cancel everything, wait for the children, release; `closed(ud)` runs
 * when done. */
void executor_close(executor *ex, void (*closed)(void *ud), void *ud);

#endif
