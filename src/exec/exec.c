/*
 * exec.c - the executor: tasks, their life cycle, the output tail, and
 * the executor's own start and shutdown.  The command side is in
 * exec_cmd.c, the HTTP side in exec_http.c (see exec_int.h).
 */
#include "exec/exec_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/timefmt.h"

/* ------------------------------------------------------------------ */
/* Output tail */

#define TAIL_INITIAL 4096

/* Append to a ring of t->cap bytes (t->cap > 0), dropping the oldest. */
static void ring_write(exec_tail *t, const char *p, size_t n)
{
	size_t cap = t->cap, pos, first;

	if (n >= cap) {
		memcpy(t->buf, p + (n - cap), cap);
		t->start = 0;
		t->len = cap;
		return;
	}
	pos = (t->start + t->len) % cap;
	first = cap - pos < n ? cap - pos : n;
	memcpy(t->buf + pos, p, first);
	memcpy(t->buf, p + first, n - first);
	if (t->len + n > cap) {
		t->start = (t->start + (t->len + n - cap)) % cap;
		t->len = cap;
	} else {
		t->len += n;
	}
}

void exec_tail_append(exec_tail *t, const char *p, size_t n)
{
	if (n == 0)
		return;
	if (t->len + n > t->cap && t->cap < EXEC_OUTPUT_MAX) {
		size_t want = t->cap * 2, dummy;
		char *nb;

		/* normally still linear below the maximum, unless an earlier
		 * growth failed and the smaller buffer wrapped */
		if (t->start != 0)
			(void)exec_tail_linear(t, &dummy);
		if (want < TAIL_INITIAL)
			want = TAIL_INITIAL;
		if (want < t->len + n)
			want = t->len + n;
		if (want > EXEC_OUTPUT_MAX)
			want = EXEC_OUTPUT_MAX;
		nb = hora_realloc(t->buf, want);
		if (nb != NULL) {
			t->buf = nb;
			t->cap = want;
		}
		/* else: keep the smaller ring; the output is a tail anyway */
	}
	if (t->cap == 0)
		return;
	ring_write(t, p, n);
}

static void reverse(char *p, size_t n)
{
	for (size_t i = 0, j = n; i + 1 < j; i++) {
		char c = p[i];
		p[i] = p[--j];
		p[j] = c;
	}
}

const char *exec_tail_linear(exec_tail *t, size_t *len)
{
	if (t->len == 0) {
		*len = 0;
		return "";
	}
	if (t->start != 0) {
		/* wrapped: the ring is full; rotate left by start */
		HORA_ASSERT(t->len == t->cap);
		reverse(t->buf, t->start);
		reverse(t->buf + t->start, t->cap - t->start);
		reverse(t->buf, t->cap);
		t->start = 0;
	}
	*len = t->len;
	return t->buf;
}

void exec_tail_free(exec_tail *t)
{
	hora_free(t->buf);
	memset(t, 0, sizeof *t);
}

run_status exec_status_run(exec_status s)
{
	switch (s) {
	case EXEC_SUCCEEDED:
		return RUN_SUCCEEDED;
	case EXEC_TIMED_OUT:
		return RUN_TIMED_OUT;
	case EXEC_CANCELLED:
		return RUN_CANCELLED;
	case EXEC_FAILED:
	default:
		return RUN_FAILED;
	}
}

/* ------------------------------------------------------------------ */
/* Tasks */

static void maybe_shutdown(executor *ex);

static void task_free(exec_task *t)
{
	executor *ex = t->ex;

	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		ex->tasks = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	exec_tail_free(&t->out);
	hora_free(t);
	HORA_ASSERT(ex->ntasks > 0);
	ex->ntasks--;
	maybe_shutdown(ex);
}

void exec_task_close_cb(uv_handle_t *h)
{
	exec_task *t = h->data;

	HORA_ASSERT(t->nhandles > 0);
	if (--t->nhandles == 0 && t->reported)
		task_free(t);
}

void exec_task_set_error(exec_task *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->error, sizeof t->error, fmt, ap);
	va_end(ap);
}

static void task_timer_cb(uv_timer_t *h)
{
	exec_task *t = h->data;

	if (t->phase == EXEC_PHASE_REPORT) {
		exec_task_finish(t);
		return;
	}
	HORA_ASSERT(t->kind == EXEC_KIND_CMD);
	exec_cmd_timer(t);
}

void exec_task_timer_start(exec_task *t, exec_phase phase, uint64_t ms)
{
	t->phase = phase;
	uv_timer_start(&t->timer, task_timer_cb, ms, 0);
}

void exec_task_report_soon(exec_task *t)
{
	if (t->reported)
		return;
	exec_task_timer_start(t, EXEC_PHASE_REPORT, 0);
}

void exec_task_finish(exec_task *t)
{
	executor *ex = t->ex;
	exec_result res;
	char dur[HORA_DURATION_STRLEN];

	if (t->reported)
		return;
	if (t->kind == EXEC_KIND_CMD)
		exec_cmd_result(t);
	if (t->stop == EXEC_STOP_CANCEL) {
		t->status = EXEC_CANCELLED;
		exec_task_set_error(t, "cancelled");
	} else if (t->stop == EXEC_STOP_TIMEOUT) {
		t->status = EXEC_TIMED_OUT;
		duration_format(t->timeout_usec, dur);
		exec_task_set_error(t, "timed out after %s", dur);
	} else if (t->status == EXEC_SUCCEEDED) {
		t->error[0] = '\0';
	}
	if (t->kind == EXEC_KIND_HTTP)
		exec_http_release(t);

	t->reported = true;
	HORA_ASSERT(ex->active > 0);
	ex->active--;
	uv_timer_stop(&t->timer);
	t->phase = EXEC_PHASE_IDLE;

	res.status = t->status;
	res.exit_code = t->exit_code;
	res.output = exec_tail_linear(&t->out, &res.output_len);
	res.error = t->error;
	if (t->done != NULL)
		t->done(t->ud, &res);

	/* The command side closed its process and pipes already. */
	uv_close((uv_handle_t *)&t->timer, exec_task_close_cb);
}

/* ------------------------------------------------------------------ */
/* Executor */

/* The curl driver's last handle is closed: the executor is gone. */
static void curl_closed(void *ud)
{
	executor *ex = ud;
	void (*closed)(void *) = ex->closed;
	void *closed_ud = ex->closed_ud;

	hora_free(ex);
	if (closed != NULL)
		closed(closed_ud);
}

static void maybe_shutdown(executor *ex)
{
	if (!ex->closing || ex->shutting || ex->ntasks > 0)
		return;
	ex->shutting = true;
	/* no transfer is left: every task was freed */
	curl_loop_close(ex->curl, curl_closed, ex);
}

void executor_set_kill_grace_ms(executor *ex, uint64_t ms)
{
	ex->kill_grace_ms = ms;
}

void executor_set_drain_ms(executor *ex, uint64_t ms)
{
	ex->drain_ms = ms;
}

int executor_new(uv_loop_t *loop, executor **out, hora_error *err)
{
	executor *ex;
	int rv;

	*out = NULL;
	if ((ex = hora_calloc(1, sizeof *ex)) == NULL)
		return hora_error_set(err, -HORA_ENOMEM, "",
				      "out of memory creating the executor");
	ex->loop = loop;
	ex->kill_grace_ms = EXEC_KILL_GRACE_MS;
	ex->drain_ms = EXEC_DRAIN_MS;
	if ((rv = curl_loop_new(loop, &ex->curl, err)) != 0) {
		hora_free(ex);
		return rv;
	}
	*out = ex;
	return 0;
}

int executor_run(executor *ex, const exec_request *req, exec_done_cb done,
		 void *ud, exec_task **task, hora_error *err)
{
	exec_task *t;
	int rv;

	if (task != NULL)
		*task = NULL;
	if (ex->closing)
		return hora_error_set(err, -HORA_ESHUTDOWN, "",
				      "the executor is shutting down");
	if (req->command != NULL && req->http != NULL)
		return hora_error_set(err, -HORA_EINVAL, "command",
				      "command and http are mutually "
				      "exclusive: a run executes a command or "
				      "sends an HTTP request");
	if (req->command != NULL &&
	    (rv = exec_cmd_validate(req->command, err)) != 0)
		return rv;
	if (req->http != NULL && (rv = exec_http_validate(req->http, err)) != 0)
		return rv;
	if (req->timeout_usec < 0)
		return hora_error_set(err, -HORA_EINVAL, "timeout",
				      "timeout must not be negative");

	if ((t = hora_calloc(1, sizeof *t)) == NULL)
		return hora_error_set(err, -HORA_ENOMEM, "",
				      "out of memory starting a run");
	t->ex = ex;
	t->done = done;
	t->ud = ud;
	t->timeout_usec = req->timeout_usec;
	t->status = EXEC_SUCCEEDED;
	t->exit_code = -1;
	uv_timer_init(ex->loop, &t->timer);
	t->timer.data = t;
	t->nhandles = 1;
	t->next = ex->tasks;
	if (ex->tasks != NULL)
		ex->tasks->prev = t;
	ex->tasks = t;
	ex->ntasks++;
	ex->active++;

	if (req->command != NULL) {
		t->kind = EXEC_KIND_CMD;
		rv = exec_cmd_start(t, req, err);
	} else if (req->http != NULL) {
		t->kind = EXEC_KIND_HTTP;
		rv = exec_http_start(t, req, err);
	} else {
		t->kind = EXEC_KIND_NONE;
		t->exit_code = 0;
		exec_task_report_soon(t);
		rv = 0;
	}
	if (rv != 0) {
		/* Nothing was started: drop the task without reporting. */
		t->reported = true;
		ex->active--;
		uv_close((uv_handle_t *)&t->timer, exec_task_close_cb);
		return rv;
	}
	if (task != NULL)
		*task = t;
	return 0;
}

void executor_cancel(exec_task *t)
{
	if (t == NULL || t->reported || t->stop == EXEC_STOP_CANCEL)
		return;
	switch (t->kind) {
	case EXEC_KIND_CMD:
		if (t->stop == EXEC_STOP_NONE)
			t->stop = EXEC_STOP_CANCEL;
		exec_cmd_stop(t);
		break;
	case EXEC_KIND_HTTP:
		t->stop = EXEC_STOP_CANCEL;
		exec_http_stop(t);
		exec_task_report_soon(t);
		break;
	case EXEC_KIND_NONE:
		t->stop = EXEC_STOP_CANCEL;
		exec_task_report_soon(t);
		break;
	}
}

unsigned executor_active(const executor *ex)
{
	return ex->active;
}

void executor_close(executor *ex, void (*closed)(void *ud), void *ud)
{
	if (ex->closing)
		return;
	ex->closing = true;
	ex->closed = closed;
	ex->closed_ud = ud;
	for (exec_task *t = ex->tasks; t != NULL; t = t->next)
		executor_cancel(t);
	maybe_shutdown(ex);
}
