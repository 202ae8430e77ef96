/*
 * test_curl_loop.c - the libcurl multi driver (net/curl_loop.h) on a real
 * loop, against a tiny HTTP server on the same loop: "/ok" is answered at
 * once, "/hang" never.  What the users rely on: `done` exactly once and
 * never from inside curl_loop_add(); curl_loop_remove() silences it;
 * curl_loop_close() finishes what is in flight before it returns, refuses
 * new transfers, may be called from a `done`, and reports `closed` from
 * the loop once nothing is left on it.
 */
#include "../test_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <uv.h>

#include "core/alloc.h"
#include "core/err.h"
#include "net/curl_loop.h"
#include "net/http_client.h"

/* ---- the server ----------------------------------------------------------- */

typedef struct srv {
	uv_tcp_t tcp;
	int port;
	int requests; /* heads received */
	int gone;     /* connections closed by the client */
} srv;

typedef struct conn {
	uv_tcp_t tcp;
	srv *s;
	char buf[4096];
	size_t len;
	uv_write_t wr;
} conn;

static void conn_closed(uv_handle_t *h)
{
	free(h->data);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	conn *c = h->data;
	(void)hint;
	*b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len - 1));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	static const char ok[] =
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	conn *c = st->data;
	(void)b;
	if (n < 0) {
		c->s->gone++;
		uv_close((uv_handle_t *)st, conn_closed);
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	if (strstr(c->buf, "\r\n\r\n") == NULL)
		return;
	c->s->requests++;
	if (strncmp(c->buf, "GET /ok ", 8) == 0) {
		uv_buf_t out = uv_buf_init((char *)ok, sizeof ok - 1);
		uv_write(&c->wr, st, &out, 1, NULL);
	}
	c->len = 0;
}

static void on_conn(uv_stream_t *server, int status)
{
	srv *s = server->data;
	conn *c = calloc(1, sizeof *c);
	assert_int_equal(status, 0);
	assert_non_null(c);
	c->s = s;
	uv_tcp_init(server->loop, &c->tcp);
	c->tcp.data = c;
	assert_int_equal(uv_accept(server, (uv_stream_t *)&c->tcp), 0);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void srv_start(uv_loop_t *loop, srv *s)
{
	struct sockaddr_in a;
	struct sockaddr_storage got;
	int len = sizeof got;

	memset(s, 0, sizeof *s);
	uv_tcp_init(loop, &s->tcp);
	s->tcp.data = s;
	uv_ip4_addr("127.0.0.1", 0, &a);
	assert_int_equal(uv_tcp_bind(&s->tcp, (struct sockaddr *)&a, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&s->tcp, 16, on_conn), 0);
	uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&got, &len);
	s->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
}

/* Whatever the server still holds (accepted connections). */
static void close_walk(uv_handle_t *h, void *ud)
{
	(void)ud;
	if (!uv_is_closing(h))
		uv_close(h, conn_closed);
}

/* ---- transfers ------------------------------------------------------------ */

typedef struct xfer {
	curl_loop_xfer x; /* first */
	curl_loop *cl;
	httpc_body body;
	int calls;
	CURLcode result;
	bool closing_seen;
	int add_in_cb; /* curl_loop_add from the callback */
	bool close_in_cb;
	bool *closed_flag;
} xfer;

static bool in_add; /* done must never run inside curl_loop_add */

static void on_closed(void *ud)
{
	*(bool *)ud = true;
}

static void on_done(curl_loop_xfer *x, CURLcode result)
{
	xfer *t = (xfer *)(void *)x;

	assert_false(in_add);
	assert_false(curl_loop_active(x));
	t->calls++;
	t->result = result;
	t->closing_seen = curl_loop_closing(t->cl);
	if (t->closing_seen) {
		xfer other = {0};
		other.x.easy = t->x.easy; /* never started: refused */
		other.x.done = on_done;
		t->add_in_cb = curl_loop_add(t->cl, &other.x);
	}
	if (t->close_in_cb)
		curl_loop_close(t->cl, on_closed, t->closed_flag);
}

static void xfer_start(xfer *t, curl_loop *cl, const srv *s, const char *path)
{
	static const httpc_conf conf = {.connect_timeout_ms = 2000};
	char url[128];

	memset(t, 0, sizeof *t);
	t->cl = cl;
	t->body.max = 1024;
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
	assert_non_null(t->x.easy = curl_easy_init());
	assert_int_equal(httpc_prepare(t->x.easy, &conf,
				       &(httpc_req){.method = "GET",
						    .url = url,
						    .timeout_ms = 10000}),
			 CURLE_OK);
	curl_easy_setopt(t->x.easy, CURLOPT_WRITEFUNCTION, httpc_body_write);
	curl_easy_setopt(t->x.easy, CURLOPT_WRITEDATA, (void *)&t->body);
	t->x.done = on_done;
	in_add = true;
	assert_int_equal(curl_loop_add(cl, &t->x), 0);
	in_add = false;
	assert_true(curl_loop_active(&t->x));
}

static void xfer_free(xfer *t)
{
	curl_easy_cleanup(t->x.easy);
	buf_free(&t->body.buf);
}

/* Run the loop until *counter reaches n. */
static void run_until(uv_loop_t *loop, const int *counter, int n)
{
	for (int i = 0; i < 5000 && *counter < n; i++)
		uv_run(loop, UV_RUN_ONCE);
	assert_true(*counter >= n);
}

static void run_until_flag(uv_loop_t *loop, const bool *flag)
{
	for (int i = 0; i < 5000 && !*flag; i++)
		uv_run(loop, UV_RUN_ONCE);
	assert_true(*flag);
}

/* A loop, the server and a driver on it (cmocka setup/teardown). */
typedef struct fx {
	uv_loop_t loop;
	srv s;
	curl_loop *cl;
	bool closed; /* the driver's `closed` ran */
} fx;

static int fx_setup(void **state)
{
	fx *f = calloc(1, sizeof *f);

	assert_non_null(f);
	uv_loop_init(&f->loop);
	srv_start(&f->loop, &f->s);
	assert_int_equal(curl_loop_new(&f->loop, &f->cl, NULL), 0);
	*state = f;
	return 0;
}

/* The driver was closed by the test: wait for it, then stop the server;
 * nothing may be left on the loop. */
static int fx_teardown(void **state)
{
	fx *f = *state;

	run_until_flag(&f->loop, &f->closed);
	uv_close((uv_handle_t *)&f->s.tcp, NULL);
	uv_walk(&f->loop, close_walk, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

static void test_transfers(void **state)
{
	fx *f = *state;
	xfer a, b;

	xfer_start(&a, f->cl, &f->s, "/ok");
	xfer_start(&b, f->cl, &f->s, "/ok");
	assert_int_equal(curl_loop_pending(f->cl), 2);
	while (a.calls + b.calls < 2 && uv_run(&f->loop, UV_RUN_ONCE) != 0)
		;
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_int_equal(a.result, CURLE_OK);
	assert_string_equal(buf_str(&a.body.buf), "ok");
	assert_string_equal(buf_str(&b.body.buf), "ok");
	assert_false(a.closing_seen);
	assert_int_equal(curl_loop_pending(f->cl), 0);

	curl_loop_close(f->cl, on_closed, &f->closed);
	assert_false(f->closed); /* from the loop, never inside the call */
	xfer_free(&a);
	xfer_free(&b);
}

static void test_close_in_flight(void **state)
{
	fx *f = *state;
	xfer a;

	xfer_start(&a, f->cl, &f->s, "/hang");
	run_until(&f->loop, &f->s.requests, 1);
	assert_int_equal(a.calls, 0);

	curl_loop_close(f->cl, on_closed, &f->closed);
	/* finished inside the close, told why, new work refused */
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.result, CURLE_ABORTED_BY_CALLBACK);
	assert_true(a.closing_seen);
	assert_int_equal(a.add_in_cb, -HORA_ESHUTDOWN);
	assert_false(f->closed);
	xfer_free(&a);
	run_until(&f->loop, &f->s.gone, 1); /* the connection went with it */
}

static void test_close_from_callback(void **state)
{
	fx *f = *state;
	xfer a, b;

	xfer_start(&b, f->cl, &f->s, "/hang");
	run_until(&f->loop, &f->s.requests, 1);
	xfer_start(&a, f->cl, &f->s, "/ok");
	a.close_in_cb = true;
	a.closed_flag = &f->closed;
	while (a.calls == 0 && uv_run(&f->loop, UV_RUN_ONCE) != 0)
		;
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.result, CURLE_OK);
	assert_false(a.closing_seen);
	/* a's callback closed the driver: b was finished by that close */
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.result, CURLE_ABORTED_BY_CALLBACK);
	xfer_free(&a);
	xfer_free(&b);
}

static void test_remove(void **state)
{
	fx *f = *state;
	xfer a;

	xfer_start(&a, f->cl, &f->s, "/hang");
	run_until(&f->loop, &f->s.requests, 1);
	curl_loop_remove(&a.x);
	curl_loop_remove(&a.x); /* twice is harmless */
	assert_false(curl_loop_active(&a.x));
	assert_int_equal(curl_loop_pending(f->cl), 0);
	run_until(&f->loop, &f->s.gone, 1); /* the peer sees its client leave */
	curl_loop_close(f->cl, on_closed, &f->closed);
	assert_int_equal(a.calls, 0);
	xfer_free(&a);
}

static void test_new_oom(void **state)
{
	uv_loop_t loop;
	curl_loop *cl = NULL;
	hora_error err;
	bool closed = false;
	int rv;

	(void)state;
	uv_loop_init(&loop);
	hora_alloc_fail_after(0);
	rv = curl_loop_new(&loop, &cl, &err);
	hora_alloc_fail_reset();
	assert_int_equal(rv, -HORA_ENOMEM);
	assert_null(cl);
	assert_int_equal(uv_loop_alive(&loop), 0); /* nothing left on it */
	assert_int_equal(curl_loop_new(&loop, &cl, &err), 0);
	curl_loop_close(cl, on_closed, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_true(closed);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_transfers, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_in_flight, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_from_callback,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_remove, fx_setup,
						fx_teardown),
		cmocka_unit_test(test_new_oom),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
