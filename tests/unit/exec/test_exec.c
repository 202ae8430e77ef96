/* Unit tests for src/exec: commands (argv, HORA_* environment, exit codes,
 * signals, the bounded output tail, timeouts with SIGTERM then SIGKILL,
 * cancellation, spawn failures, grandchildren holding the pipes) and HTTP
 * requests (method, headers, body, status, transport errors, timeouts)
 * against a small HTTP server running on the same libuv loop, plus the
 * executor's shutdown with work in flight.  Every test runs a real loop
 * and ends with uv_loop_close() == 0: no handle is left behind. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "core/alloc.h"
#include "exec/exec.h"
#include "exec/exec_int.h"

/* ---- a tiny HTTP/1.1 server on the test loop ------------------------ */

typedef struct srv srv;

typedef struct conn {
	uv_tcp_t tcp;
	srv *s;
	struct conn *prev, *next;
	char *buf;
	size_t len, cap;
	bool handled, closing;
	uv_write_t wr;
	uv_shutdown_t sh;
	char *resp;
} conn;

typedef struct srv_req {
	char method[16];
	char path[128];
	char headers[4096];
	char body[8192];
	size_t body_len;
} srv_req;

struct srv {
	uv_tcp_t tcp;
	bool on;
	int port;
	int nreq;
	srv_req last;
	conn *conns;
};

static void conn_closed(uv_handle_t *h)
{
	conn *c = h->data;
	free(c->buf);
	free(c->resp);
	free(c);
}

static void conn_close(conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		c->s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void on_shutdown(uv_shutdown_t *r, int status)
{
	(void)status;
	conn_close(r->data);
}

static void on_written(uv_write_t *w, int status)
{
	conn *c = w->data;
	if (status != 0 || c->closing) {
		conn_close(c);
		return;
	}
	c->sh.data = c;
	if (uv_shutdown(&c->sh, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
		conn_close(c);
}

static void respond(conn *c, int code, const char *reason, const char *extra,
		    const char *body, size_t body_len)
{
	size_t cap = body_len + 512;
	int n;
	uv_buf_t b;

	c->resp = malloc(cap);
	assert_non_null(c->resp);
	n = snprintf(c->resp, cap,
		     "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n"
		     "Connection: close\r\n%s\r\n",
		     code, reason, body_len, extra);
	assert_true(n > 0 && (size_t)n + body_len < cap);
	memcpy(c->resp + n, body, body_len);
	b = uv_buf_init(c->resp, (unsigned)((size_t)n + body_len));
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
		conn_close(c);
}

static void try_handle(conn *c)
{
	srv *s = c->s;
	char *end, *cl, *sp1, *sp2;
	size_t hlen, blen = 0;

	if (c->handled)
		return;
	if ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
		return;
	hlen = (size_t)(end - c->buf) + 4;
	*end = '\0'; /* headers as a string (restored below) */
	if ((cl = strcasestr(c->buf, "\r\nContent-Length:")) != NULL)
		blen = (size_t)strtoul(cl + 17, NULL, 10);
	if (c->len < hlen + blen) {
		*end = '\r';
		return;
	}
	c->handled = true;
	memset(&s->last, 0, sizeof s->last);
	sp1 = strchr(c->buf, ' ');
	sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
	assert_non_null(sp2);
	snprintf(s->last.method, sizeof s->last.method, "%.*s",
		 (int)(sp1 - c->buf), c->buf);
	snprintf(s->last.path, sizeof s->last.path, "%.*s",
		 (int)(sp2 - sp1 - 1), sp1 + 1);
	snprintf(s->last.headers, sizeof s->last.headers, "%s", c->buf);
	assert_true(blen < sizeof s->last.body);
	memcpy(s->last.body, c->buf + hlen, blen);
	s->last.body_len = blen;
	s->nreq++;

	if (strcmp(s->last.path, "/ok") == 0) {
		respond(c, 200, "OK", "", "hello", 5);
	} else if (strcmp(s->last.path, "/fail") == 0) {
		respond(c, 500, "Internal Server Error", "", "boom", 4);
	} else if (strcmp(s->last.path, "/redir") == 0) {
		respond(c, 302, "Found", "Location: /ok\r\n", "moved", 5);
	} else if (strcmp(s->last.path, "/big") == 0) {
		size_t n = 100000;
		char *big = malloc(n + 4);
		assert_non_null(big);
		memset(big, 'b', n);
		memcpy(big + n, "TAIL", 4);
		respond(c, 200, "OK", "", big, n + 4);
		free(big);
	} else if (strcmp(s->last.path, "/slow") == 0) {
		/* never answer; the client gives up */
	} else {
		respond(c, 404, "Not Found", "", "", 0);
	}
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	conn *c = h->data;
	(void)suggested;
	if (c->cap - c->len < 4096) {
		c->cap = c->cap * 2 + 8192;
		c->buf = realloc(c->buf, c->cap);
		assert_non_null(c->buf);
	}
	*buf = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len - 1));
}

static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	conn *c = st->data;
	(void)buf;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	c->len += (size_t)nread;
	c->buf[c->len] = '\0';
	try_handle(c);
}

static void on_connection(uv_stream_t *server, int status)
{
	srv *s = server->data;
	conn *c;

	assert_int_equal(status, 0);
	c = calloc(1, sizeof *c);
	assert_non_null(c);
	c->s = s;
	uv_tcp_init(server->loop, &c->tcp);
	c->tcp.data = c;
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
	    uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read) != 0)
		conn_close(c);
}

static void srv_start(uv_loop_t *loop, srv *s)
{
	struct sockaddr_in a;
	struct sockaddr_storage got;
	int len = sizeof got;

	memset(s, 0, sizeof *s);
	assert_int_equal(uv_tcp_init(loop, &s->tcp), 0);
	s->tcp.data = s;
	assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &a), 0);
	assert_int_equal(uv_tcp_bind(&s->tcp, (struct sockaddr *)&a, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&s->tcp, 16, on_connection),
			 0);
	assert_int_equal(uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&got,
					    &len),
			 0);
	s->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
	s->on = true;
}

static void srv_stop(srv *s)
{
	if (!s->on)
		return;
	while (s->conns != NULL)
		conn_close(s->conns);
	uv_close((uv_handle_t *)&s->tcp, NULL);
	s->on = false;
}

/* ---- fixture --------------------------------------------------------- */

typedef struct fx {
	uv_loop_t loop;
	executor *ex;
	uv_timer_t watchdog;
	srv srv;
	int closed;
	char url[256];
} fx;

typedef struct rec {
	int calls;
	exec_status status;
	int exit_code;
	char *output;
	size_t output_len;
	char error[EXEC_ERROR_MAX];
	uint64_t start_ms, done_ms;
	/* optional: close this executor from inside done */
	executor *close_ex;
	int *closed_flag;
} rec;

static uint64_t now_ms(void)
{
	return uv_hrtime() / 1000000;
}

static void on_watchdog(uv_timer_t *t)
{
	(void)t; /* only wakes UV_RUN_ONCE up */
}

static void on_closed(void *ud)
{
	(*(int *)ud)++;
}

static void on_done(void *ud, const exec_result *res)
{
	rec *r = ud;

	r->calls++;
	r->done_ms = now_ms();
	r->status = res->status;
	r->exit_code = res->exit_code;
	assert_non_null(res->output);
	assert_non_null(res->error);
	assert_true(res->output_len <= EXEC_OUTPUT_MAX);
	free(r->output);
	r->output = malloc(res->output_len + 1);
	assert_non_null(r->output);
	memcpy(r->output, res->output, res->output_len);
	r->output[res->output_len] = '\0';
	r->output_len = res->output_len;
	snprintf(r->error, sizeof r->error, "%s", res->error);
	if (r->close_ex != NULL)
		executor_close(r->close_ex, on_closed, r->closed_flag);
}

static void rec_free(rec *r)
{
	free(r->output);
	r->output = NULL;
}

static void run_until(fx *f, const int *flag)
{
	uint64_t start = now_ms();
	while (*flag == 0) {
		if (now_ms() - start > 20000)
			fail_msg("timed out waiting on the loop");
		uv_run(&f->loop, UV_RUN_ONCE);
	}
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	hora_error err;

	assert_non_null(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(executor_new(&f->loop, &f->ex, &err), 0);
	uv_timer_init(&f->loop, &f->watchdog);
	uv_timer_start(&f->watchdog, on_watchdog, 50, 50);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;

	if (f->ex != NULL) {
		executor_close(f->ex, on_closed, &f->closed);
		run_until(f, &f->closed);
		assert_int_equal(f->closed, 1);
	}
	srv_stop(&f->srv);
	uv_close((uv_handle_t *)&f->watchdog, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

static exec_request base_req(void)
{
	exec_request r;
	memset(&r, 0, sizeof r);
	r.run_id = "r-123";
	r.job = "nightly";
	r.scheduled_at = "2026-11-28T03:00:00Z";
	r.attempt = 2;
	r.payload_json = "{\"a\":1}";
	return r;
}

/* NULL-terminated argv -> JSON array */
static json_t *argv_json(const char *const *argv)
{
	json_t *a = json_array();
	for (; *argv != NULL; argv++)
		json_array_append_new(a, json_string(*argv));
	return a;
}

static exec_task *start_req(fx *f, const exec_request *req, rec *r)
{
	exec_task *task = NULL;
	hora_error err;
	int rv;

	r->start_ms = now_ms();
	rv = executor_run(f->ex, req, on_done, r, &task, &err);
	if (rv != 0)
		fail_msg("executor_run: %d %s", rv, err.msg);
	assert_non_null(task);
	assert_int_equal(r->calls, 0); /* never from inside executor_run */
	return task;
}

static exec_task *start_cmd(fx *f, const char *const *argv,
			    int64_t timeout_usec, rec *r)
{
	exec_request req = base_req();
	json_t *cmd = argv_json(argv);
	exec_task *t;

	req.command = cmd;
	req.timeout_usec = timeout_usec;
	t = start_req(f, &req, r);
	json_decref(cmd); /* borrowed only for the call */
	return t;
}

static void run_cmd(fx *f, const char *const *argv, int64_t timeout_usec,
		    rec *r)
{
	start_cmd(f, argv, timeout_usec, r);
	run_until(f, &r->calls);
	assert_int_equal(r->calls, 1);
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- commands -------------------------------------------------------- */

static void test_echo(void **state)
{
	fx *f = *state;
	rec r = {0};

	run_cmd(f, ARGV("/bin/echo", "hi"), 0, &r);
	assert_int_equal(r.status, EXEC_SUCCEEDED);
	assert_int_equal(r.exit_code, 0);
	assert_string_equal(r.output, "hi\n");
	assert_string_equal(r.error, "");
	assert_int_equal(executor_active(f->ex), 0);
	rec_free(&r);
}

static void test_no_shell(void **state)
{
	fx *f = *state;
	rec r = {0};

	/* argv goes as is: no globbing, no variable expansion */
	run_cmd(f, ARGV("/bin/echo", "$HOME", "*", "a b"), 0, &r);
	assert_int_equal(r.status, EXEC_SUCCEEDED);
	assert_string_equal(r.output, "$HOME * a b\n");
	rec_free(&r);
}

static void test_env(void **state)
{
	fx *f = *state;
	rec r = {0};

	setenv("HORA_TEST_PARENT", "inherited", 1);
	setenv("HORA_JOB", "stale", 1); /* replaced, not duplicated */
	run_cmd(f,
		ARGV("/bin/sh", "-c",
		     "echo $HORA_JOB $HORA_ATTEMPT $HORA_PAYLOAD; "
		     "echo $HORA_RUN_ID $HORA_SCHEDULED_AT $HORA_TEST_PARENT; "
		     "env | grep -c '^HORA_JOB='"),
		0, &r);
	unsetenv("HORA_TEST_PARENT");
	unsetenv("HORA_JOB");
	assert_int_equal(r.status, EXEC_SUCCEEDED);
	assert_string_equal(r.output, "nightly 2 {\"a\":1}\n"
				      "r-123 2026-11-28T03:00:00Z inherited\n"
				      "1\n");
	rec_free(&r);
}

static void test_env_null_payload(void **state)
{
	fx *f = *state;
	rec r = {0};
	exec_request req = base_req();
	json_t *cmd = argv_json(ARGV("/bin/sh", "-c", "echo $HORA_PAYLOAD"));

	req.payload_json = NULL;
	req.command = cmd;
	start_req(f, &req, &r);
	json_decref(cmd);
	run_until(f, &r.calls);
	assert_string_equal(r.output, "null\n");
	rec_free(&r);
}

static void test_exit_code(void **state)
{
	fx *f = *state;
	rec r = {0};

	run_cmd(f, ARGV("/bin/sh", "-c", "echo partial; exit 3"), 0, &r);
	assert_int_equal(r.status, EXEC_FAILED);
	assert_int_equal(r.exit_code, 3);
	assert_string_equal(r.error, "exited with code 3");
	assert_string_equal(r.output, "partial\n");
	rec_free(&r);
}

static void test_killed_by_signal(void **state)
{
	fx *f = *state;
	rec r = {0};

	run_cmd(f, ARGV("/bin/sh", "-c", "kill -9 $$"), 0, &r);
	assert_int_equal(r.status, EXEC_FAILED);
	assert_int_equal(r.exit_code, -1);
	assert_string_equal(r.error, "killed by signal 9 (SIGKILL)");
	rec_free(&r);
}

static void test_stderr_interleaved(void **state)
{
	fx *f = *state;
	rec r = {0};

	run_cmd(f,
		ARGV("/bin/sh", "-c",
		     "echo out1; sleep 0.1; echo err1 >&2; sleep 0.1; "
		     "echo out2; sleep 0.1; echo err2 >&2"),
		0, &r);
	assert_int_equal(r.status, EXEC_SUCCEEDED);
	assert_string_equal(r.output, "out1\nerr1\nout2\nerr2\n");
	rec_free(&r);
}

static void test_output_tail(void **state)
{
	fx *f = *state;
	rec r = {0};

	run_cmd(f,
		ARGV("/bin/sh", "-c",
		     "head -c 200000 /dev/zero | tr '\\0' a; echo END"),
		0, &r);
	assert_int_equal(r.status, EXEC_SUCCEEDED);
	assert_int_equal(r.output_len, EXEC_OUTPUT_MAX);
	assert_string_equal(r.output + r.output_len - 4, "END\n");
	for (size_t i = 0; i < r.output_len - 4; i++)
		if (r.output[i] != 'a')
			fail_msg("byte %zu is %d", i, r.output[i]);
	rec_free(&r);
}

static void test_output_tail_stderr(void **state)
{
	fx *f = *state;
	rec r = {0};

	/* exactly the maximum, then a little more on stderr */
	run_cmd(f,
		ARGV("/bin/sh", "-c",
		     "head -c 65536 /dev/zero | tr '\\0' a; sleep 0.1; "
		     "echo ERR >&2"),
		0, &r);
	assert_int_equal(r.output_len, EXEC_OUTPUT_MAX);
	assert_string_equal(r.output + r.output_len - 4, "ERR\n");
	assert_int_equal(r.output[0], 'a');
	rec_free(&r);
}

static void test_tail_unit(void **state)
{
	exec_tail t = {0};
	size_t len;
	const char *p;
	char chunk[1000];

	(void)state;
	p = exec_tail_linear(&t, &len);
	assert_int_equal(len, 0);
	assert_string_equal(p, "");
	/* many small odd-sized writes wrap the ring at odd offsets */
	for (size_t i = 0; i < 300; i++) {
		memset(chunk, 'a' + (int)(i % 26), sizeof chunk);
		exec_tail_append(&t, chunk, 777);
		assert_true(t.cap <= EXEC_OUTPUT_MAX);
	}
	p = exec_tail_linear(&t, &len);
	assert_int_equal(len, EXEC_OUTPUT_MAX);
	/* the last write was chunk 299 ('n'), 777 bytes */
	for (size_t i = len - 777; i < len; i++)
		assert_int_equal(p[i], 'a' + 299 % 26);
	assert_int_equal(p[len - 778], 'a' + 298 % 26);
	/* one write larger than the tail keeps its end only */
	{
		char *big = malloc(EXEC_OUTPUT_MAX + 10);
		assert_non_null(big);
		memset(big, 'x', EXEC_OUTPUT_MAX + 10);
		big[EXEC_OUTPUT_MAX + 9] = 'y';
		exec_tail_append(&t, big, EXEC_OUTPUT_MAX + 10);
		free(big);
	}
	p = exec_tail_linear(&t, &len);
	assert_int_equal(len, EXEC_OUTPUT_MAX);
	assert_int_equal(p[0], 'x');
	assert_int_equal(p[len - 1], 'y');
	exec_tail_free(&t);
}

static void test_timeout(void **state)
{
	fx *f = *state;
	rec r = {0};

	run_cmd(f, ARGV("/bin/sleep", "10"), 200 * 1000, &r);
	assert_int_equal(r.status, EXEC_TIMED_OUT);
	assert_string_equal(r.error, "timed out after 200ms");
	assert_int_equal(r.exit_code, -1); /* SIGTERM */
	assert_true(r.done_ms - r.start_ms >= 190);
	assert_true(r.done_ms - r.start_ms < 2000);
	rec_free(&r);
}

static void test_timeout_kills_group(void **state)
{
	fx *f = *state;
	rec r = {0};

	/* sh waits for sleep; both must die for the pipes to close */
	run_cmd(f, ARGV("/bin/sh", "-c", "sleep 10; echo never"), 200 * 1000,
		&r);
	assert_int_equal(r.status, EXEC_TIMED_OUT);
	assert_true(r.done_ms - r.start_ms < 2000);
	assert_null(strstr(r.output, "never"));
	rec_free(&r);
}

static void test_timeout_sigkill_after_grace(void **state)
{
	fx *f = *state;
	rec r = {0};
	uint64_t took;

	executor_set_kill_grace_ms(f->ex, 300);
	run_cmd(f,
		ARGV("/bin/sh", "-c", "trap '' TERM; echo ready; sleep 10"),
		200 * 1000, &r);
	took = r.done_ms - r.start_ms;
	assert_int_equal(r.status, EXEC_TIMED_OUT);
	assert_string_equal(r.error, "timed out after 200ms");
	assert_int_equal(r.exit_code, -1);
	assert_string_equal(r.output, "ready\n");
	assert_true(took >= 480);
	assert_true(took < 3000);
	rec_free(&r);
}

static void on_cancel_timer(uv_timer_t *t)
{
	executor_cancel(t->data);
	uv_close((uv_handle_t *)t, NULL);
}

static void test_cancel(void **state)
{
	fx *f = *state;
	rec r = {0};
	uv_timer_t tm;
	exec_task *task;

	task = start_cmd(f, ARGV("/bin/sh", "-c", "echo started; sleep 10"), 0,
			 &r);
	assert_int_equal(executor_active(f->ex), 1);
	uv_timer_init(&f->loop, &tm);
	tm.data = task;
	uv_timer_start(&tm, on_cancel_timer, 100, 0);
	run_until(f, &r.calls);
	assert_int_equal(r.status, EXEC_CANCELLED);
	assert_string_equal(r.error, "cancelled");
	assert_string_equal(r.output, "started\n");
	assert_true(r.done_ms - r.start_ms < 2000);
	assert_int_equal(executor_active(f->ex), 0);
	rec_free(&r);
}

static void test_cancel_right_away(void **state)
{
	fx *f = *state;
	rec r = {0};
	exec_task *task;

	task = start_cmd(f, ARGV("/bin/sleep", "10"), 0, &r);
	executor_cancel(task);
	executor_cancel(task); /* twice is harmless */
	assert_int_equal(r.calls, 0); /* reported later, on the loop */
	run_until(f, &r.calls);
	assert_int_equal(r.status, EXEC_CANCELLED);
	rec_free(&r);
}

static void test_missing_program(void **state)
{
	fx *f = *state;
	rec r = {0};

	run_cmd(f, ARGV("/nonexistent/prog", "x"), 0, &r);
	assert_int_equal(r.status, EXEC_FAILED);
	assert_int_equal(r.exit_code, -1);
	assert_string_equal(r.error, "cannot run '/nonexistent/prog': no "
				     "such file or directory");
	assert_string_equal(r.output, "");
	rec_free(&r);

	memset(&r, 0, sizeof r);
	run_cmd(f, ARGV("no-such-program-hora-test"), 0, &r);
	assert_int_equal(r.status, EXEC_FAILED);
	assert_string_equal(r.error, "cannot run 'no-such-program-hora-test': "
				     "no such file or directory");
	rec_free(&r);
}

static void test_grandchild_holds_pipe(void **state)
{
	fx *f = *state;
	rec r = {0};

	run_cmd(f, ARGV("/bin/sh", "-c", "sleep 3 & echo x"), 0, &r);
	assert_int_equal(r.status, EXEC_SUCCEEDED);
	assert_string_equal(r.output, "x\n");
	assert_true(r.done_ms - r.start_ms < 1500);
	rec_free(&r);
}

static void test_nothing_to_run(void **state)
{
	fx *f = *state;
	rec r = {0};
	exec_request req = base_req();

	start_req(f, &req, &r);
	assert_int_equal(executor_active(f->ex), 1);
	run_until(f, &r.calls);
	assert_int_equal(r.status, EXEC_SUCCEEDED);
	assert_int_equal(r.exit_code, 0);
	assert_int_equal(r.output_len, 0);
	assert_string_equal(r.error, "");
	rec_free(&r);
}

static void expect_invalid(fx *f, const char *cmd_json, const char *http_json,
			   const char *field)
{
	exec_request req = base_req();
	json_t *cmd = cmd_json ? json_loads(cmd_json,
					    JSON_DECODE_ANY | JSON_ALLOW_NUL,
					    NULL)
			       : NULL;
	json_t *http = http_json ? json_loads(http_json, 0, NULL) : NULL;
	exec_task *task = (exec_task *)1;
	hora_error err;
	rec r = {0};
	int rv;

	if (cmd_json != NULL)
		assert_non_null(cmd);
	if (http_json != NULL)
		assert_non_null(http);
	req.command = cmd;
	req.http = http;
	hora_error_clear(&err);
	rv = executor_run(f->ex, &req, on_done, &r, &task, &err);
	assert_int_equal(rv, -HORA_EINVAL);
	assert_null(task);
	assert_string_equal(err.field, field);
	json_decref(cmd);
	json_decref(http);
	assert_int_equal(executor_active(f->ex), 0);
}

static void test_invalid(void **state)
{
	fx *f = *state;

	expect_invalid(f, "\"ls\"", NULL, "command");
	expect_invalid(f, "[]", NULL, "command");
	expect_invalid(f, "[\"ls\", 3]", NULL, "command[1]");
	expect_invalid(f, "[\"\"]", NULL, "command[0]");
	expect_invalid(f, "[\"a\\u0000b\"]", NULL, "command[0]");
	expect_invalid(f, "[\"ls\"]", "{\"url\":\"http://x/\"}", "command");
	expect_invalid(f, NULL, "{}", "http.url");
	expect_invalid(f, NULL, "{\"url\":\"ftp://x/\"}", "http.url");
	expect_invalid(f, NULL, "{\"url\":\"http://x/\",\"method\":\"GRAB\"}",
		       "http.method");
	expect_invalid(f, NULL,
		       "{\"url\":\"http://x/\",\"headers\":{\"a b\":\"1\"}}",
		       "http.headers");
	expect_invalid(f, NULL,
		       "{\"url\":\"http://x/\",\"headers\":{\"A\":\"1\\r\\nB: "
		       "2\"}}",
		       "http.headers");
	expect_invalid(f, NULL, "{\"url\":\"http://x/\",\"body\":{}}",
		       "http.body");
}

static void test_out_of_memory(void **state)
{
	fx *f = *state;
	int failures = 0;

	for (long n = 0;; n++) {
		exec_request req = base_req();
		json_t *cmd = argv_json(ARGV("/bin/echo", "oom"));
		exec_task *task = NULL;
		hora_error err;
		rec r = {0};
		int rv;

		req.command = cmd;
		hora_alloc_fail_after(n);
		rv = executor_run(f->ex, &req, on_done, &r, &task, &err);
		hora_alloc_fail_reset();
		json_decref(cmd);
		if (rv == -HORA_ENOMEM) {
			failures++;
			assert_null(task);
			assert_int_equal(executor_active(f->ex), 0);
			uv_run(&f->loop, UV_RUN_NOWAIT);
			assert_int_equal(r.calls, 0);
			continue;
		}
		assert_int_equal(rv, 0);
		run_until(f, &r.calls);
		assert_int_equal(r.status, EXEC_SUCCEEDED);
		assert_string_equal(r.output, "oom\n");
		rec_free(&r);
		break;
	}
	assert_true(failures > 0);
}

/* ---- HTTP ------------------------------------------------------------ */

static void http_url(fx *f, const char *path)
{
	if (!f->srv.on)
		srv_start(&f->loop, &f->srv);
	snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d%s", f->srv.port,
		 path);
}

static exec_task *start_http(fx *f, json_t *http, int64_t timeout_usec,
			     rec *r)
{
	exec_request req = base_req();
	exec_task *t;

	req.http = http;
	req.timeout_usec = timeout_usec;
	t = start_req(f, &req, r);
	json_decref(http);
	return t;
}

static void test_http_ok(void **state)
{
	fx *f = *state;
	rec r = {0};

	http_url(f, "/ok");
	start_http(f,
		   json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:s}", "url",
			     f->url, "method", "POST", "headers", "X-Test",
			     "yes", "Content-Type", "application/json",
			     "X-Hora-Job", "spoofed", "body",
			     "{\"k\":\"v\"}"),
		   0, &r);
	run_until(f, &r.calls);
	assert_int_equal(r.status, EXEC_SUCCEEDED);
	assert_int_equal(r.exit_code, 200);
	assert_string_equal(r.output, "hello");
	assert_string_equal(r.error, "");
	assert_int_equal(f->srv.nreq, 1);
	assert_string_equal(f->srv.last.method, "POST");
	assert_string_equal(f->srv.last.path, "/ok");
	assert_string_equal(f->srv.last.body, "{\"k\":\"v\"}");
	assert_contains(f->srv.last.headers, "\r\nX-Test: yes");
	assert_contains(f->srv.last.headers,
			"\r\nContent-Type: application/json");
	assert_contains(f->srv.last.headers, "\r\nX-Hora-Run-Id: r-123");
	assert_contains(f->srv.last.headers, "\r\nX-Hora-Job: nightly");
	assert_null(strstr(f->srv.last.headers, "spoofed"));
	assert_contains(f->srv.last.headers,
			"\r\nX-Hora-Scheduled-At: 2026-11-28T03:00:00Z");
	assert_contains(f->srv.last.headers, "\r\nX-Hora-Attempt: 2");
	assert_contains(f->srv.last.headers, "\r\nUser-Agent: hora/");
	assert_null(strstr(f->srv.last.headers, "Expect:"));
	rec_free(&r);
}

static void test_http_get_default(void **state)
{
	fx *f = *state;
	rec r = {0};

	http_url(f, "/ok");
	start_http(f, json_pack("{s:s}", "url", f->url), 0, &r);
	run_until(f, &r.calls);
	assert_int_equal(r.status, EXEC_SUCCEEDED);
	assert_string_equal(f->srv.last.method, "GET");
	assert_int_equal(f->srv.last.body_len, 0);
	assert_null(strstr(f->srv.last.headers, "Content-Type"));
	rec_free(&r);
}

static void test_http_put_body_no_content_type(void **state)
{
	fx *f = *state;
	rec r = {0};

	http_url(f, "/ok");
	start_http(f,
		   json_pack("{s:s, s:s, s:s, s:{s:s}}", "url", f->url,
			     "method", "PUT", "body", "raw", "headers",
			     "X-Empty", ""),
		   0, &r);
	run_until(f, &r.calls);
	assert_int_equal(r.status, EXEC_SUCCEEDED);
	assert_string_equal(f->srv.last.method, "PUT");
	assert_string_equal(f->srv.last.body, "raw");
	assert_contains(f->srv.last.headers, "\r\nX-Empty:");
	/* no made-up application/x-www-form-urlencoded */
	assert_null(strcasestr(f->srv.last.headers, "Content-Type"));
	rec_free(&r);

	memset(&r, 0, sizeof r);
	start_http(f,
		   json_pack("{s:s, s:s}", "url", f->url, "method", "DELETE"),
		   0, &r);
	run_until(f, &r.calls);
	assert_int_equal(r.status, EXEC_SUCCEEDED);
	assert_string_equal(f->srv.last.method, "DELETE");
	rec_free(&r);

	memset(&r, 0, sizeof r);
	start_http(f, json_pack("{s:s, s:s}", "url", f->url, "method", "HEAD"),
		   0, &r);
	run_until(f, &r.calls);
	assert_int_equal(r.status, EXEC_SUCCEEDED);
	assert_string_equal(f->srv.last.method, "HEAD");
	assert_int_equal(r.output_len, 0);
	rec_free(&r);
}

static void test_http_500(void **state)
{
	fx *f = *state;
	rec r = {0};

	http_url(f, "/fail");
	start_http(f, json_pack("{s:s}", "url", f->url), 0, &r);
	run_until(f, &r.calls);
	assert_int_equal(r.status, EXEC_FAILED);
	assert_int_equal(r.exit_code, 500);
	assert_string_equal(r.error, "HTTP 500");
	assert_string_equal(r.output, "boom");
	rec_free(&r);
}

static void test_http_no_redirects(void **state)
{
	fx *f = *state;
	rec r = {0};

	http_url(f, "/redir");
	start_http(f, json_pack("{s:s}", "url", f->url), 0, &r);
	run_until(f, &r.calls);
	assert_int_equal(r.status, EXEC_FAILED);
	assert_int_equal(r.exit_code, 302);
	assert_string_equal(r.error, "HTTP 302");
	assert_int_equal(f->srv.nreq, 1);
	rec_free(&r);
}

static void test_http_body_tail(void **state)
{
	fx *f = *state;
	rec r = {0};

	http_url(f, "/big");
	start_http(f, json_pack("{s:s}", "url", f->url), 0, &r);
	run_until(f, &r.calls);
	assert_int_equal(r.status, EXEC_SUCCEEDED);
	assert_int_equal(r.output_len, EXEC_OUTPUT_MAX);
	assert_string_equal(r.output + r.output_len - 4, "TAIL");
	assert_int_equal(r.output[0], 'b');
	rec_free(&r);
}

static void test_http_timeout(void **state)
{
	fx *f = *state;
	rec r = {0};

	http_url(f, "/slow");
	start_http(f, json_pack("{s:s}", "url", f->url), 200 * 1000, &r);
	run_until(f, &r.calls);
	assert_int_equal(r.status, EXEC_TIMED_OUT);
	assert_string_equal(r.error, "timed out after 200ms");
	assert_int_equal(r.exit_code, -1);
	assert_true(r.done_ms - r.start_ms >= 190);
	assert_true(r.done_ms - r.start_ms < 2000);
	rec_free(&r);
}

static void test_http_cancel(void **state)
{
	fx *f = *state;
	rec r = {0};
	uv_timer_t tm;
	exec_task *task;

	http_url(f, "/slow");
	task = start_http(f, json_pack("{s:s}", "url", f->url), 0, &r);
	uv_timer_init(&f->loop, &tm);
	tm.data = task;
	uv_timer_start(&tm, on_cancel_timer, 100, 0);
	run_until(f, &r.calls);
	assert_int_equal(r.status, EXEC_CANCELLED);
	assert_string_equal(r.error, "cancelled");
	assert_true(r.done_ms - r.start_ms < 2000);
	rec_free(&r);
}

static void test_http_refused(void **state)
{
	fx *f = *state;
	rec r = {0};
	struct sockaddr_in a;
	socklen_t alen = sizeof a;
	int fd;

	/* a bound socket that does not listen: connecting is refused, and
	 * nobody else can take the port meanwhile */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/",
		 ntohs(a.sin_port));
	start_http(f, json_pack("{s:s}", "url", f->url), 0, &r);
	run_until(f, &r.calls);
	close(fd);
	assert_int_equal(r.status, EXEC_FAILED);
	assert_int_equal(r.exit_code, -1);
	assert_contains(r.error, "127.0.0.1");
	assert_contains(r.error, "Connection refused");
	rec_free(&r);
}

static void test_http_parallel(void **state)
{
	fx *f = *state;
	rec r[6];
	int all = 0;

	memset(r, 0, sizeof r);
	http_url(f, "/ok");
	for (size_t i = 0; i < ARRAY_LEN(r); i++)
		start_http(f, json_pack("{s:s}", "url", f->url), 0, &r[i]);
	assert_int_equal(executor_active(f->ex), ARRAY_LEN(r));
	while (!all) {
		uv_run(&f->loop, UV_RUN_ONCE);
		all = 1;
		for (size_t i = 0; i < ARRAY_LEN(r); i++)
			all &= r[i].calls == 1;
	}
	for (size_t i = 0; i < ARRAY_LEN(r); i++) {
		assert_int_equal(r[i].status, EXEC_SUCCEEDED);
		assert_string_equal(r[i].output, "hello");
		rec_free(&r[i]);
	}
	assert_int_equal(f->srv.nreq, ARRAY_LEN(r));
}

static void test_http_localhost(void **state)
{
	fx *f = *state;
	rec r = {0};

	/* a name goes through libcurl's asynchronous resolver */
	http_url(f, "/ok");
	snprintf(f->url, sizeof f->url, "http://localhost:%d/ok", f->srv.port);
	start_http(f, json_pack("{s:s}", "url", f->url), 0, &r);
	run_until(f, &r.calls);
	assert_int_equal(r.status, EXEC_SUCCEEDED);
	assert_string_equal(r.output, "hello");
	rec_free(&r);
}

static void test_http_out_of_memory(void **state)
{
	fx *f = *state;
	int failures = 0;

	http_url(f, "/ok");
	for (long n = 0;; n++) {
		exec_request req = base_req();
		exec_task *task = NULL;
		hora_error err;
		rec r = {0};
		int rv;

		req.http = json_pack("{s:s, s:s, s:{s:s}}", "url", f->url,
				     "body", "b", "headers", "X-A", "1");
		hora_alloc_fail_after(n);
		rv = executor_run(f->ex, &req, on_done, &r, &task, &err);
		hora_alloc_fail_reset();
		json_decref((json_t *)req.http);
		if (rv == -HORA_ENOMEM) {
			failures++;
			assert_null(task);
			assert_int_equal(executor_active(f->ex), 0);
			uv_run(&f->loop, UV_RUN_NOWAIT);
			assert_int_equal(r.calls, 0);
			continue;
		}
		assert_int_equal(rv, 0);
		run_until(f, &r.calls);
		assert_int_equal(r.status, EXEC_SUCCEEDED);
		assert_string_equal(f->srv.last.body, "b");
		rec_free(&r);
		break;
	}
	assert_true(failures > 0);
}

static void test_tail_growth_failure(void **state)
{
	exec_tail t = {0};
	size_t len;
	const char *p;

	(void)state;
	exec_tail_append(&t, "0123456789", 10); /* 4 KiB buffer */
	hora_alloc_fail_after(0);
	for (int i = 0; i < 1000; i++) /* cannot grow: wraps at 4 KiB */
		exec_tail_append(&t, "abcdefg", 7);
	assert_true(hora_alloc_failures() > 0);
	hora_alloc_fail_reset();
	assert_int_equal(t.cap, 4096);
	assert_int_equal(t.len, 4096);
	exec_tail_append(&t, "END", 3); /* grows again, from a wrapped ring */
	p = exec_tail_linear(&t, &len);
	assert_int_equal(len, 4096 + 3);
	assert_memory_equal(p + len - 10, "abcdefgEND", 10);
	/* the last 4096 of 7010 bytes start at 2914: 2904 % 7 == 6, 'g' */
	assert_memory_equal(p, "gabcdefgabcd", 12);
	exec_tail_free(&t);
}

/* ---- shutdown -------------------------------------------------------- */

static void test_close_with_running_tasks(void **state)
{
	fx *f = *state;
	rec r[5];
	exec_request req = base_req();
	uint64_t start = now_ms();

	memset(r, 0, sizeof r);
	executor_set_kill_grace_ms(f->ex, 300);
	start_cmd(f, ARGV("/bin/sleep", "10"), 0, &r[0]);
	start_cmd(f, ARGV("/bin/sh", "-c", "trap '' TERM; sleep 10"), 0,
		  &r[1]);
	http_url(f, "/slow");
	start_http(f, json_pack("{s:s}", "url", f->url), 0, &r[2]);
	start_req(f, &req, &r[3]); /* nothing to run */
	start_cmd(f, ARGV("/nonexistent"), 0, &r[4]);
	/* let the children start and the request reach the server */
	while (f->srv.nreq == 0 || r[3].calls == 0 || r[4].calls == 0)
		uv_run(&f->loop, UV_RUN_ONCE);
	assert_int_equal(executor_active(f->ex), 3);

	executor_close(f->ex, on_closed, &f->closed);
	executor_close(f->ex, on_closed, &f->closed); /* ignored */
	run_until(f, &f->closed);
	f->ex = NULL;
	assert_int_equal(f->closed, 1);
	assert_true(now_ms() - start < 3000);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].status, EXEC_CANCELLED);
		rec_free(&r[i]);
	}
	assert_int_equal(r[3].calls, 1);
	assert_int_equal(r[3].status, EXEC_SUCCEEDED);
	assert_int_equal(r[4].calls, 1);
	assert_int_equal(r[4].status, EXEC_FAILED);
	rec_free(&r[3]);
	rec_free(&r[4]);
}

static void test_close_cancels_unstarted(void **state)
{
	fx *f = *state;
	rec r = {0};
	exec_request req = base_req();
	exec_task *task = NULL;
	hora_error err;

	start_req(f, &req, &r);
	executor_close(f->ex, on_closed, &f->closed);
	assert_int_equal(r.calls, 0);
	assert_int_equal(executor_run(f->ex, &req, on_done, &r, &task, &err),
			 -HORA_ESHUTDOWN);
	run_until(f, &f->closed);
	f->ex = NULL;
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.status, EXEC_CANCELLED);
	rec_free(&r);
}

static void test_close_from_done(void **state)
{
	fx *f = *state;
	rec r = {0}, other = {0};

	r.close_ex = f->ex;
	r.closed_flag = &f->closed;
	start_cmd(f, ARGV("/bin/sleep", "10"), 0, &other);
	run_cmd(f, ARGV("/bin/echo", "bye"), 0, &r);
	run_until(f, &f->closed);
	f->ex = NULL;
	assert_int_equal(r.status, EXEC_SUCCEEDED);
	assert_int_equal(other.calls, 1);
	assert_int_equal(other.status, EXEC_CANCELLED);
	rec_free(&r);
	rec_free(&other);
}

static void test_close_idle(void **state)
{
	fx *f = *state;

	executor_close(f->ex, on_closed, &f->closed);
	assert_int_equal(f->closed, 0); /* later, on the loop */
	run_until(f, &f->closed);
	f->ex = NULL;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tail_unit),
		cmocka_unit_test(test_tail_growth_failure),
		T(test_echo),
		T(test_no_shell),
		T(test_env),
		T(test_env_null_payload),
		T(test_exit_code),
		T(test_killed_by_signal),
		T(test_stderr_interleaved),
		T(test_output_tail),
		T(test_output_tail_stderr),
		T(test_timeout),
		T(test_timeout_kills_group),
		T(test_timeout_sigkill_after_grace),
		T(test_cancel),
		T(test_cancel_right_away),
		T(test_missing_program),
		T(test_grandchild_holds_pipe),
		T(test_nothing_to_run),
		T(test_invalid),
		T(test_out_of_memory),
		T(test_http_ok),
		T(test_http_get_default),
		T(test_http_put_body_no_content_type),
		T(test_http_500),
		T(test_http_no_redirects),
		T(test_http_body_tail),
		T(test_http_timeout),
		T(test_http_cancel),
		T(test_http_refused),
		T(test_http_parallel),
		T(test_http_localhost),
		T(test_http_out_of_memory),
		T(test_close_with_running_tasks),
		T(test_close_cancels_unstarted),
		T(test_close_from_done),
		T(test_close_idle),
	};
	/* a closed pipe must not kill the test */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
