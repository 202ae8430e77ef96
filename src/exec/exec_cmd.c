/*
 * exec_cmd.c - running a run's `command`: uv_spawn with argv (no shell),
 * the parent's environment plus HORA_*, stdin from /dev/null, stdout and
 * stderr into one bounded tail, the child in its own session (and so its
 * own process group) so that signals reach whatever it started.
 *
 * A run is reported once the child has been reaped and both pipes are
 * closed.  A grandchild that keeps a pipe open does not hold the run: after
 * the child exits its pipes get ex->drain_ms, then they are closed.
 */
#include "exec/exec_int.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"

extern char **environ;

static const char *const hora_vars[] = {
	"HORA_RUN_ID", "HORA_JOB", "HORA_SCHEDULED_AT", "HORA_ATTEMPT",
	"HORA_PAYLOAD",
};
#define NVARS (sizeof hora_vars / sizeof hora_vars[0])

int exec_cmd_validate(const json_t *cmd, hora_error *err)
{
	size_t n;

	if (!json_is_array(cmd))
		return hora_error_set(err, -HORA_EINVAL, "command",
				      "command must be an array of strings "
				      "(the program and its arguments)");
	if ((n = json_array_size(cmd)) == 0)
		return hora_error_set(err, -HORA_EINVAL, "command",
				      "command must not be empty: its first "
				      "element is the program to run");
	for (size_t i = 0; i < n; i++) {
		const json_t *a = json_array_get(cmd, i);
		char field[HORA_ERROR_FIELD_MAX];
		const char *s;

		snprintf(field, sizeof field, "command[%zu]", i);
		if (!json_is_string(a))
			return hora_error_set(err, -HORA_EINVAL, field,
					      "%s must be a string", field);
		s = json_string_value(a);
		if (strlen(s) != json_string_length(a))
			return hora_error_set(err, -HORA_EINVAL, field,
					      "%s must not contain a NUL "
					      "character",
					      field);
		if (i == 0 && *s == '\0')
			return hora_error_set(err, -HORA_EINVAL, field,
					      "command[0] (the program to "
					      "run) must not be empty");
	}
	return 0;
}

static bool is_hora_var(const char *entry)
{
	for (size_t i = 0; i < NVARS; i++) {
		size_t n = strlen(hora_vars[i]);
		if (strncmp(entry, hora_vars[i], n) == 0 && entry[n] == '=')
			return true;
	}
	return false;
}

static char *env_entry(const char *name, const char *value)
{
	size_t nl = strlen(name), vl;
	char *s;

	if (value == NULL)
		value = "";
	vl = strlen(value);
	if ((s = hora_malloc(nl + vl + 2)) == NULL)
		return NULL;
	memcpy(s, name, nl);
	s[nl] = '=';
	memcpy(s + nl + 1, value, vl + 1);
	return s;
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGHUP: return "SIGHUP";
	case SIGINT: return "SIGINT";
	case SIGQUIT: return "SIGQUIT";
	case SIGILL: return "SIGILL";
	case SIGTRAP: return "SIGTRAP";
	case SIGABRT: return "SIGABRT";
	case SIGBUS: return "SIGBUS";
	case SIGFPE: return "SIGFPE";
	case SIGKILL: return "SIGKILL";
	case SIGUSR1: return "SIGUSR1";
	case SIGSEGV: return "SIGSEGV";
	case SIGUSR2: return "SIGUSR2";
	case SIGPIPE: return "SIGPIPE";
	case SIGALRM: return "SIGALRM";
	case SIGTERM: return "SIGTERM";
	case SIGXCPU: return "SIGXCPU";
	case SIGXFSZ: return "SIGXFSZ";
	case SIGSYS: return "SIGSYS";
	default: return NULL;
	}
}

/* Signal the child's process group (it is a session leader). */
static void kill_group(exec_task *t, int sig)
{
	if (t->u.cmd.pid > 0)
		(void)uv_kill(-t->u.cmd.pid, sig);
}

static void pipe_close(exec_task *t, int i)
{
	exec_cmd_state *c = &t->u.cmd;

	if (!c->pipe_open[i])
		return;
	c->pipe_open[i] = false;
	uv_read_stop((uv_stream_t *)&c->pipes[i]);
	uv_close((uv_handle_t *)&c->pipes[i], exec_task_close_cb);
}

static void maybe_done(exec_task *t)
{
	exec_cmd_state *c = &t->u.cmd;

	if (c->exited && !c->pipe_open[0] && !c->pipe_open[1])
		exec_task_finish(t);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	exec_task *t = h->data;

	(void)suggested;
	buf->base = t->ex->readbuf;
	buf->len = sizeof t->ex->readbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	exec_task *t = s->data;
	int i = s == (uv_stream_t *)&t->u.cmd.pipes[0] ? 0 : 1;

	if (nread > 0) {
		exec_tail_append(&t->out, buf->base, (size_t)nread);
	} else if (nread < 0) {
		/* UV_EOF, or an error: either way this pipe is done */
		pipe_close(t, i);
		maybe_done(t);
	}
}

static void on_child_exit(uv_process_t *p, int64_t exit_status,
			  int term_signal)
{
	exec_task *t = p->data;
	exec_cmd_state *c = &t->u.cmd;

	c->exited = true;
	c->exit_status = exit_status;
	c->term_signal = term_signal;
	uv_close((uv_handle_t *)p, exec_task_close_cb);
	/* Killing: whatever the child left behind in its group goes too. */
	if (t->stop != EXEC_STOP_NONE)
		kill_group(t, SIGKILL);
	uv_timer_stop(&t->timer);
	t->phase = EXEC_PHASE_IDLE;
	if (c->pipe_open[0] || c->pipe_open[1])
		exec_task_timer_start(t, EXEC_PHASE_DRAIN, t->ex->drain_ms);
	else
		maybe_done(t);
}

int exec_cmd_start(exec_task *t, const exec_request *req, hora_error *err)
{
	executor *ex = t->ex;
	exec_cmd_state *c = &t->u.cmd;
	size_t argc = json_array_size(req->command), nenv = 0, k = 0;
	char **argv, **envp = NULL, *vars[NVARS] = {0};
	char attempt[16];
	const char *values[NVARS];
	uv_process_options_t o;
	uv_stdio_container_t stdio[3];
	int rv = 0;

	if ((argv = hora_calloc(argc + 1, sizeof *argv)) == NULL)
		goto nomem;
	for (size_t i = 0; i < argc; i++)
		argv[i] = (char *)json_string_value(
			json_array_get(req->command, i));
	for (char **e = environ; e != NULL && *e != NULL; e++)
		nenv++;
	if ((envp = hora_calloc(nenv + NVARS + 1, sizeof *envp)) == NULL)
		goto nomem;
	snprintf(attempt, sizeof attempt, "%" PRIu32, req->attempt);
	values[0] = req->run_id;
	values[1] = req->job;
	values[2] = req->scheduled_at;
	values[3] = attempt;
	values[4] = req->payload_json != NULL ? req->payload_json : "null";
	for (size_t i = 0; i < NVARS; i++)
		if ((vars[i] = env_entry(hora_vars[i], values[i])) == NULL)
			goto nomem;
	for (char **e = environ; e != NULL && *e != NULL; e++)
		if (!is_hora_var(*e))
			envp[k++] = *e;
	for (size_t i = 0; i < NVARS; i++)
		envp[k++] = vars[i];
	envp[k] = NULL;

	for (int i = 0; i < 2; i++) {
		uv_pipe_init(ex->loop, &c->pipes[i], 0);
		c->pipes[i].data = t;
		t->nhandles++;
	}
	memset(&o, 0, sizeof o);
	memset(stdio, 0, sizeof stdio);
	stdio[0].flags = UV_IGNORE; /* libuv opens /dev/null */
	for (int i = 0; i < 2; i++) {
		stdio[i + 1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
		stdio[i + 1].data.stream = (uv_stream_t *)&c->pipes[i];
	}
	o.exit_cb = on_child_exit;
	o.file = argv[0];
	o.args = argv;
	o.env = envp;
	o.stdio = stdio;
	o.stdio_count = 3;
	o.flags = UV_PROCESS_DETACHED; /* setsid(): own process group */
	c->proc.data = t;
	rv = uv_spawn(ex->loop, &c->proc, &o);
	t->nhandles++; /* initialized even when the spawn fails */
	if (rv != 0) {
		uv_close((uv_handle_t *)&c->proc, exec_task_close_cb);
		for (int i = 0; i < 2; i++)
			uv_close((uv_handle_t *)&c->pipes[i],
				 exec_task_close_cb);
		t->status = EXEC_FAILED;
		exec_task_set_error(t, "cannot run '%.200s': %s", argv[0],
				    uv_strerror(rv));
		exec_task_report_soon(t);
	} else {
		c->spawned = true;
		c->pid = c->proc.pid;
		for (int i = 0; i < 2; i++) {
			c->pipe_open[i] = true;
			if (uv_read_start((uv_stream_t *)&c->pipes[i],
					  on_alloc, on_read) != 0)
				pipe_close(t, i);
		}
		if (t->timeout_usec > 0) {
			uint64_t ms = ((uint64_t)t->timeout_usec + 999) / 1000;
			exec_task_timer_start(t, EXEC_PHASE_TIMEOUT, ms);
		}
	}
	rv = 0;
	goto out;

nomem:
	rv = hora_error_set(err, -HORA_ENOMEM, "",
			    "out of memory starting a command");
out:
	for (size_t i = 0; i < NVARS; i++)
		hora_free(vars[i]);
	hora_free(envp);
	hora_free(argv);
	return rv;
}

void exec_cmd_stop(exec_task *t)
{
	exec_cmd_state *c = &t->u.cmd;

	if (!c->spawned) {
		/* already failed; the report is on its way */
		exec_task_report_soon(t);
		return;
	}
	if (c->exited) {
		/* only the pipes are left (held by a grandchild) */
		pipe_close(t, 0);
		pipe_close(t, 1);
		exec_task_report_soon(t);
		return;
	}
	if (c->term_sent)
		return; /* the kill sequence is under way */
	c->term_sent = true;
	kill_group(t, SIGTERM);
	exec_task_timer_start(t, EXEC_PHASE_GRACE, t->ex->kill_grace_ms);
}

void exec_cmd_timer(exec_task *t)
{
	exec_phase phase = t->phase;

	t->phase = EXEC_PHASE_IDLE;
	switch (phase) {
	case EXEC_PHASE_TIMEOUT:
		if (t->stop == EXEC_STOP_NONE)
			t->stop = EXEC_STOP_TIMEOUT;
		exec_cmd_stop(t);
		break;
	case EXEC_PHASE_GRACE:
		kill_group(t, SIGKILL);
		break;
	case EXEC_PHASE_DRAIN:
		pipe_close(t, 0);
		pipe_close(t, 1);
		maybe_done(t);
		break;
	default:
		break;
	}
}

void exec_cmd_result(exec_task *t)
{
	exec_cmd_state *c = &t->u.cmd;
	const char *name;

	if (!c->spawned)
		return; /* status and error set at the spawn failure */
	if (c->term_signal != 0) {
		t->exit_code = -1;
		t->status = EXEC_FAILED;
		name = signal_name(c->term_signal);
		if (name != NULL)
			exec_task_set_error(t, "killed by signal %d (%s)",
					    c->term_signal, name);
		else
			exec_task_set_error(t, "killed by signal %d",
					    c->term_signal);
	} else {
		t->exit_code = (int)c->exit_status;
		if (c->exit_status == 0) {
			t->status = EXEC_SUCCEEDED;
		} else {
			t->status = EXEC_FAILED;
			exec_task_set_error(t, "exited with code %d",
					    t->exit_code);
		}
	}
}
