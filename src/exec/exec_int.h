/*
 * exec_int.h - the executor's internals, shared by exec.c (tasks, the
 * output tail, the executor's life cycle), exec_cmd.c (uv_spawn) and
 * exec_http.c (a transfer on net/curl_loop.h), and the test-only
 * setters.
 *
 * Life of a task:
 *   executor_run  -> validated, copied, started (spawn / add to multi);
 *                    anything that must be reported at once (spawn
 *                    failure, nothing to run) goes through a zero timer so
 *                    `done` never runs inside executor_run
 *   ...           -> exec_task_finish: the result is built, `done` runs,
 *                    every uv handle of the task is closed
 *   last close cb -> the task is freed; when the executor is closing and
 *                    this was the last task, the executor shuts down.
 * Every task owns at least its timer, so it is only ever freed from a
 * close callback, never under the feet of a caller.
 */
#ifndef HORA_EXEC_EXEC_INT_H
#define HORA_EXEC_EXEC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <uv.h>

#include "exec/exec.h"
#include "net/curl_loop.h"

/* After the main child exits, how long its pipes may stay open (held by
 * a grandchild) before they are closed and the run reported. */
#define EXEC_DRAIN_MS 100

/* ------------------------------------------------------------------ */
/* Bounded output tail: the last `EXEC_OUTPUT_MAX` bytes, grown on demand
 * (so a quiet job costs nothing), then used as a ring. */

typedef struct exec_tail {
	char *buf;
	size_t cap;   /* allocated, <= EXEC_OUTPUT_MAX */
	size_t start; /* ring: index of the oldest byte (0 until wrapped) */
	size_t len;   /* bytes held, <= cap */
} exec_tail;

void exec_tail_append(exec_tail *t, const char *p, size_t n);
/* Make the bytes contiguous (in place); returns them, *len their count.
 * Never NULL (an empty tail gives ""). */
const char *exec_tail_linear(exec_tail *t, size_t *len);
void exec_tail_free(exec_tail *t);

/* ------------------------------------------------------------------ */

typedef enum {
	EXEC_KIND_NONE = 0,
	EXEC_KIND_CMD,
	EXEC_KIND_HTTP,
} exec_kind;

typedef enum {
	EXEC_STOP_NONE = 0,
	EXEC_STOP_TIMEOUT,
	EXEC_STOP_CANCEL,
} exec_stop;

/* What the task's timer is counting down to. */
typedef enum {
	EXEC_PHASE_IDLE = 0,
	EXEC_PHASE_REPORT,  /* report the result already decided */
	EXEC_PHASE_TIMEOUT, /* the command's timeout */
	EXEC_PHASE_GRACE,   /* SIGTERM sent; SIGKILL at expiry */
	EXEC_PHASE_DRAIN,   /* child exited; close the pipes at expiry */
} exec_phase;

#define EXEC_ERROR_MAX 512

typedef struct exec_cmd_state {
	uv_process_t proc;
	uv_pipe_t pipes[2]; /* stdout, stderr */
	int pid;            /* process group id too (the child is detached) */
	bool pipe_open[2];  /* reading, not yet closed */
	bool spawned;
	bool term_sent; /* SIGTERM sent, SIGKILL scheduled */
	bool exited;
	int64_t exit_status;
	int term_signal;
} exec_cmd_state;

typedef struct exec_http_state {
	curl_loop_xfer x; /* x.easy: the request; in flight while added */
	struct curl_slist *headers;
	char *body; /* POSTFIELDS points here (not copied by libcurl) */
	char errbuf[CURL_ERROR_SIZE];
} exec_http_state;

struct exec_task {
	executor *ex;
	exec_task *prev, *next; /* ex->tasks, until freed */
	exec_kind kind;
	exec_done_cb done;
	void *ud;
	int64_t timeout_usec;

	bool reported; /* done has run (or never will: failed start) */
	exec_stop stop;
	/* the result, as decided by the kind-specific code */
	exec_status status;
	int exit_code;
	char error[EXEC_ERROR_MAX];
	exec_tail out;

	uv_timer_t timer;
	exec_phase phase;
	unsigned nhandles; /* open uv handles (close callbacks pending) */

	union {
		exec_cmd_state cmd;
		exec_http_state http;
	} u;
};

struct executor {
	uv_loop_t *loop;
	exec_task *tasks;
	unsigned active; /* not yet reported */
	unsigned ntasks; /* not yet freed */

	curl_loop *curl; /* the `http` transfers */

	bool closing;
	bool shutting; /* every task gone: closing the curl driver */
	void (*closed)(void *ud);
	void *closed_ud;

	uint64_t kill_grace_ms;
	uint64_t drain_ms;

	/* Shared read buffer for the pipes: libuv calls alloc_cb, read(2)
	 * and read_cb back to back, and everything runs on one thread. */
	char readbuf[16 * 1024];
};

/* exec.c */
void exec_task_close_cb(uv_handle_t *h); /* h->data is the task */
void exec_task_finish(exec_task *t);      /* report + close the handles */
void exec_task_report_soon(exec_task *t); /* exec_task_finish via timer */
void exec_task_timer_start(exec_task *t, exec_phase phase, uint64_t ms);
void exec_task_set_error(exec_task *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* exec_cmd.c */
int exec_cmd_validate(const json_t *cmd, hora_error *err);
/* Spawn; a spawn failure is not an error here (it is reported through
 * `done`).  Errors: -HORA_ENOMEM before anything was started. */
int exec_cmd_start(exec_task *t, const exec_request *req, hora_error *err);
void exec_cmd_stop(exec_task *t); /* cancel or timeout: the kill sequence */
void exec_cmd_timer(exec_task *t);
void exec_cmd_result(exec_task *t); /* fill status/exit_code/error */

/* exec_http.c */
int exec_http_validate(const json_t *http, hora_error *err);
int exec_http_start(exec_task *t, const exec_request *req, hora_error *err);
void exec_http_stop(exec_task *t);     /* cancel: abort the transfer */
void exec_http_release(exec_task *t);  /* free the easy handle & co. */

/* Test hooks: the SIGTERM-to-SIGKILL grace (default EXEC_KILL_GRACE_MS)
 * and the pipe drain after exit (default EXEC_DRAIN_MS). */
void executor_set_kill_grace_ms(executor *ex, uint64_t ms);
void executor_set_drain_ms(executor *ex, uint64_t ms);

#endif
