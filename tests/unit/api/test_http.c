/*
 * test_http.c - the HTTP server on a real loopback socket.
 *
 * Each test runs the server on a libuv loop in the main thread and a
 * libcurl "script" in a second thread.  cmocka is not thread-safe, so the
 * script only records what it saw; the main thread asserts after joining
 * it.  When the script ends it wakes the loop (uv_async), which closes the
 * server unless the test already did; uv_run() returns once every handle
 * is closed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <uv.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "api/http.h"
#include "core/alloc.h"

/* --- fixture -------------------------------------------------------------- */

typedef struct reply {
	CURLcode rc;
	long status;
	long connects; /* new connections this transfer opened */
	double seconds;
	char body[8192];
	size_t body_len;
	char headers[4096];
	size_t headers_len;
} reply;

typedef struct fx fx;
typedef void (*script_fn)(fx *f);

struct fx {
	uv_loop_t loop;
	http_server *srv;
	uint16_t port;
	char base[64]; /* "http://127.0.0.1:port" */
	uv_async_t done_async;
	pthread_t thread;
	script_fn script;
	bool close_called, closed;
	http_server_stats stats; /* as http_server_close() found them */

	/* handler side (loop thread) */
	int handled;
	int aborted_while_closing;
	http_request *parked;
	int rv_bad_status, rv_bad_name, rv_bad_value, rv_bad_cl, rv_first,
		rv_again, rv_header_after;
	uint32_t max_pending;
	int rv_plain;
	double close_t0, closed_t;
	atomic_int aborted;
	atomic_int parked_flag;

	/* script side */
	reply r[8];
	int ok;           /* keep-alive run: 200s */
	long connects;    /* keep-alive run: connections opened */
	double rps;
	char last_log[512];
	double t[32];     /* raw-socket scripts: measured times, s */
	int n;            /* ... and how many */
	char raw[4][1024]; /* ... and what they read */
	const char *ca_pem; /* TLS: the server's certificate, to trust */
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void on_log(void *ud, const char *line)
{
	fx *f = ud;
	snprintf(f->last_log, sizeof f->last_log, "%s", line);
	if (getenv("HTTP_TEST_VERBOSE") != NULL)
		fprintf(stderr, "mhd: %s\n", line);
}

static void on_closed(void *ud)
{
	fx *f = ud;
	f->closed = true;
	f->closed_t = now_s();
}

static void fx_close(fx *f)
{
	if (f->close_called)
		return;
	f->close_called = true;
	f->close_t0 = now_s();
	http_server_stats_get(f->srv, &f->stats);
	http_server_close(f->srv, on_closed, f);
}

static void handler(http_request *req, void *ud);

static int fx_start(fx *f, const http_server_config *base_cfg)
{
	http_server_config cfg = {0};
	hora_error err;
	int rv;

	memset(f, 0, sizeof *f);
	if (base_cfg != NULL)
		cfg = *base_cfg;
	if (cfg.host == NULL)
		cfg.host = "127.0.0.1";
	cfg.log = on_log;
	cfg.log_ud = f;
	assert_int_equal(uv_loop_init(&f->loop), 0);
	rv = http_server_start(&f->loop, &cfg, handler, f, &f->srv, &err);
	if (rv != 0) {
		assert_int_equal(uv_loop_close(&f->loop), 0);
		return rv;
	}
	f->port = http_server_port(f->srv);
	assert_true(f->port != 0);
	if (cfg.tls_cert_pem != NULL)
		f->ca_pem = cfg.tls_cert_pem;
	if (strchr(cfg.host, ':') != NULL)
		snprintf(f->base, sizeof f->base, "%s://[%s]:%u",
			 f->ca_pem ? "https" : "http", cfg.host, f->port);
	else
		snprintf(f->base, sizeof f->base, "%s://%s:%u",
			 f->ca_pem ? "https" : "http", cfg.host, f->port);
	return 0;
}

static void on_script_done(uv_async_t *a)
{
	fx *f = a->data;
	uv_close((uv_handle_t *)a, NULL);
	fx_close(f);
}

static void *script_main(void *arg)
{
	fx *f = arg;
	f->script(f);
	uv_async_send(&f->done_async);
	return NULL;
}

/* Run `script` against the started server until everything is closed. */
static void fx_run(fx *f, script_fn script)
{
	f->script = script;
	f->done_async.data = f;
	assert_int_equal(uv_async_init(&f->loop, &f->done_async,
				       on_script_done),
			 0);
	assert_int_equal(pthread_create(&f->thread, NULL, script_main, f), 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	pthread_join(f->thread, NULL);
	assert_true(f->closed);
	assert_int_equal(uv_loop_close(&f->loop), 0);
}

/* --- client helpers (script thread) -------------------------------------- */

static size_t on_curl_body(char *p, size_t sz, size_t n, void *ud)
{
	reply *r = ud;
	size_t len = sz * n, room = sizeof r->body - 1 - r->body_len;
	memcpy(r->body + r->body_len, p, len < room ? len : room);
	r->body_len += len < room ? len : room;
	r->body[r->body_len] = '\0';
	return len;
}

static size_t on_curl_header(char *p, size_t sz, size_t n, void *ud)
{
	reply *r = ud;
	size_t len = sz * n, room = sizeof r->headers - 1 - r->headers_len;
	memcpy(r->headers + r->headers_len, p, len < room ? len : room);
	r->headers_len += len < room ? len : room;
	r->headers[r->headers_len] = '\0';
	return len;
}

typedef struct upload {
	const char *data;
	size_t len, off, chunk;
} upload;

static size_t on_curl_read(char *buf, size_t sz, size_t n, void *ud)
{
	upload *u = ud;
	size_t len = sz * n;
	if (len > u->len - u->off)
		len = u->len - u->off;
	if (len > u->chunk) /* several chunks */
		len = u->chunk;
	memcpy(buf, u->data + u->off, len);
	u->off += len;
	return len;
}

typedef struct req_opts {
	const char *method; /* NULL: GET, or POST when body set */
	const char *body;
	size_t body_len;
	bool chunked;
	size_t chunk; /* chunked: largest chunk; 0: 700 */
	const char *hdr[4];
	long timeout_ms;
	const char *iface; /* local address to connect from */
} req_opts;

/* One transfer on `c` (kept for keep-alive) or on a fresh handle. */
static void do_req(fx *f, CURL *c, const char *path, const req_opts *o,
		   reply *r)
{
	static const req_opts none;
	struct curl_slist *hdrs = NULL;
	char url[512];
	bool own = c == NULL;
	upload up;
	double t0;
	int i;

	if (o == NULL)
		o = &none;
	if (own)
		c = curl_easy_init();
	else
		curl_easy_reset(c);
	memset(r, 0, sizeof *r);
	snprintf(url, sizeof url, "%s%s", f->base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_curl_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_curl_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
			 o->timeout_ms ? o->timeout_ms : 10000L);
	if (o->iface != NULL)
		curl_easy_setopt(c, CURLOPT_INTERFACE, o->iface);
	if (f->ca_pem != NULL) {
		struct curl_blob ca = {(void *)f->ca_pem, strlen(f->ca_pem),
				       CURL_BLOB_COPY};
		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
	}
	for (i = 0; i < 4 && o->hdr[i] != NULL; i++)
		hdrs = curl_slist_append(hdrs, o->hdr[i]);
	if (o->chunked) {
		up.data = o->body;
		up.len = o->body_len;
		up.off = 0;
		up.chunk = o->chunk ? o->chunk : 700;
		hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_curl_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &up);
	} else if (o->body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, o->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)o->body_len);
	}
	if (o->method != NULL)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, o->method);
	if (hdrs != NULL)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	t0 = now_s();
	r->rc = curl_easy_perform(c);
	r->seconds = now_s() - t0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &r->connects);
	curl_slist_free_all(hdrs);
	if (own)
		curl_easy_cleanup(c);
}

/* --- raw sockets (script thread) ------------------------------------------ */

/* A blocking TCP connection to the server, from `src` (an IPv4 address
 * of this host, e.g. "127.0.0.2") when not NULL; -1 on failure. */
static int raw_open(fx *f, const char *src)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(f->port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	if (src != NULL) {
		struct sockaddr_in me = {.sin_family = AF_INET};
		inet_pton(AF_INET, src, &me.sin_addr);
		if (bind(fd, (struct sockaddr *)&me, sizeof me) != 0) {
			close(fd);
			return -1;
		}
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool raw_send(int fd, const void *p, size_t n)
{
	return send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n;
}

/*
 * Read into buf (NUL-terminated, `*len` bytes so far) for up to `ms`,
 * until EOF or an error, or, with `whole`, until one response with its
 * Content-Length body is in.  Returns 1 if the server closed (EOF or
 * reset), 0 otherwise.
 */
static int raw_read(int fd, char *buf, size_t cap, size_t *len, long ms,
		    bool whole)
{
	double end = now_s() + (double)ms / 1000.0;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long left = (long)((end - now_s()) * 1000.0);
		char tmp[4096];
		ssize_t n;

		if (whole) {
			const char *eoh = strstr(buf, "\r\n\r\n");
			const char *cl = strstr(buf, "Content-Length: ");
			if (eoh != NULL && cl != NULL &&
			    *len >= (size_t)(eoh + 4 - buf) +
					    strtoul(cl + 16, NULL, 10))
				return 0;
		}
		if (left <= 0)
			return 0;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		n = recv(fd, tmp, sizeof tmp, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 1;
		if ((size_t)n > cap - 1 - *len)
			n = (ssize_t)(cap - 1 - *len);
		memcpy(buf + *len, tmp, (size_t)n);
		*len += (size_t)n;
		buf[*len] = '\0';
	}
}

/* Whether the server has closed `fd`, without waiting. */
static bool raw_closed(int fd)
{
	char tmp[4096];
	ssize_t n = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);

	while (n > 0)
		n = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
	return n == 0 || (errno != EAGAIN && errno != EINTR);
}

/* One request on `fd` and its response, into buf; true if it came. */
static bool raw_exchange(int fd, const char *req, size_t req_len, char *buf,
			 size_t cap)
{
	size_t len = 0;

	buf[0] = '\0';
	if (!raw_send(fd, req, req_len))
		return false;
	raw_read(fd, buf, cap, &len, 3000, true);
	return strstr(buf, "\r\n\r\n") != NULL;
}

static const char get_echo[] = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";

/* --- the handler (loop thread) ------------------------------------------- */

typedef struct later {
	uv_timer_t t;
	http_request *req;
	fx *f;
} later;

static void on_later_closed(uv_handle_t *h)
{
	hora_free(h->data);
}

static void on_later(uv_timer_t *t)
{
	later *l = t->data;
	http_response_header(l->req, "Retry-After", "1");
	assert_int_equal(http_respond(l->req, 200, "text/plain", "late", 4),
			 0);
	uv_close((uv_handle_t *)&l->t, on_later_closed);
}

static void on_later_abort(http_request *req, void *ud)
{
	later *l = ud;
	(void)req;
	atomic_fetch_add(&l->f->aborted, 1);
	uv_close((uv_handle_t *)&l->t, on_later_closed);
}

/* A streamed answer: `left` lines, one every `ms` (0: keep it open after
 * the first line until the client or the server goes). */
typedef struct streamer {
	uv_timer_t t;
	http_request *req;
	fx *f;
	int left, sent;
} streamer;

static void streamer_closed(uv_handle_t *h)
{
	hora_free(h->data);
}

static void on_stream_tick(uv_timer_t *t)
{
	streamer *s = t->data;
	char line[32];
	int n = snprintf(line, sizeof line, "line %d\n", s->sent++);
	assert_int_equal(http_stream_write(s->req, line, (size_t)n), 0);
	if (--s->left > 0)
		return;
	uv_timer_stop(&s->t);
	http_stream_end(s->req);
	uv_close((uv_handle_t *)&s->t, streamer_closed);
}

static void on_stream_abort(http_request *req, void *ud)
{
	streamer *s = ud;
	(void)req;
	if (s->f->close_called)
		s->f->aborted_while_closing++;
	atomic_fetch_add(&s->f->aborted, 1);
	uv_timer_stop(&s->t);
	uv_close((uv_handle_t *)&s->t, streamer_closed);
}

static void on_hang_abort(http_request *req, void *ud)
{
	fx *f = ud;
	assert_ptr_equal(req, f->parked);
	/* The request still reads as before inside the callback. */
	assert_string_equal(http_request_path(req), "/hang");
	if (f->close_called)
		f->aborted_while_closing++;
	f->parked = NULL;
	atomic_fetch_add(&f->aborted, 1);
}

static void on_handle_free(uv_handle_t *h)
{
	hora_free(h);
}

static void on_close_timer(uv_timer_t *t)
{
	fx_close(t->data);
	uv_close((uv_handle_t *)t, on_handle_free);
}

static int join_labels(void *ud, const char *name, const char *value)
{
	char *buf = ud;
	size_t n = strlen(buf);
	(void)name;
	snprintf(buf + n, 256 - n, "%s%s", n ? "," : "", value);
	return 0;
}

static int count_all(void *ud, const char *name, const char *value)
{
	(void)name;
	(void)value;
	return ++*(int *)ud >= 100;
}

static const char *nz(const char *s)
{
	return s != NULL ? s : "(null)";
}

static void echo(http_request *req)
{
	char out[4096], labels[256] = "";
	const char *flag = http_request_query(req, "flag");
	const char *missing = http_request_query(req, "missing");
	const char *xt = http_request_header(req, "x-TEST");
	size_t blen, nl;
	const char *body = http_request_body(req, &blen);
	int all = 0, n;

	nl = http_request_query_each(req, "label", join_labels, labels);
	http_request_query_each(req, NULL, count_all, &all);
	n = snprintf(out, sizeof out,
		     "method=%s path=%s limit=%s labels=%s nlabels=%zu all=%d "
		     "flag=[%s] missing=%s sp=[%s] xtest=%s len=%zu peer=%s "
		     "tls=%d body=%.*s",
		     http_request_method(req), http_request_path(req),
		     nz(http_request_query(req, "limit")), labels, nl, all,
		     nz(flag), nz(missing), nz(http_request_query(req, "sp")),
		     nz(xt), blen, http_request_peer(req),
		     http_request_is_tls(req), blen > 200 ? 200 : (int)blen,
		     body);
	assert_int_equal(http_response_header(req, "X-Resp", "yes"), 0);
	assert_int_equal(http_respond(req, 200, "text/plain", out,
				      (size_t)n),
			 0);
}

static void handler(http_request *req, void *ud)
{
	fx *f = ud;
	const char *path = http_request_path(req);
	http_server_stats st;

	f->handled++;
	if (strcmp(path, "/echo") == 0) {
		echo(req);
	} else if (strncmp(path, "/seg/", 5) == 0) {
		char seg[256];
		size_t n;
		if (http_url_decode(path + 5, strlen(path + 5), seg,
				    sizeof seg, &n) != 0)
			http_respond(req, 400, "text/plain", "bad", 3);
		else
			http_respond(req, 200, "text/plain", seg, n);
	} else if (strcmp(path, "/async") == 0) {
		const char *ms = http_request_query(req, "ms");
		later *l = hora_malloc(sizeof *l);
		assert_non_null(l);
		l->req = req;
		l->f = f;
		l->t.data = l;
		uv_timer_init(&f->loop, &l->t);
		uv_timer_start(&l->t, on_later, ms ? strtoull(ms, NULL, 10) : 50,
			       0);
		http_request_on_abort(req, on_later_abort, l);
		/* Returning without an answer parks the request. */
	} else if (strcmp(path, "/hang") == 0) {
		f->parked = req;
		http_request_on_abort(req, on_hang_abort, f);
		if (http_request_query(req, "close") != NULL) {
			uv_timer_t *t = hora_malloc(sizeof *t);
			assert_non_null(t);
			t->data = f;
			uv_timer_init(&f->loop, t);
			uv_timer_start(t, on_close_timer, 100, 0);
		}
		atomic_store(&f->parked_flag, 1);
	} else if (strcmp(path, "/stream") == 0) {
		const char *n = http_request_query(req, "n");
		streamer *s = hora_calloc(1, sizeof *s);
		assert_non_null(s);
		s->req = req;
		s->f = f;
		s->left = n ? atoi(n) : 0;
		s->t.data = s;
		uv_timer_init(&f->loop, &s->t);
		assert_int_equal(http_response_header(req, "X-Stream", "1"), 0);
		assert_int_equal(http_respond_stream(req, 200, "text/plain"), 0);
		/* a second answer is refused */
		assert_int_equal(http_respond(req, 200, NULL, "x", 1),
				 -HORA_EINVAL);
		assert_int_equal(http_stream_write(req, "first\n", 6), 0);
		if (s->left > 0)
			uv_timer_start(&s->t, on_stream_tick, 5, 5);
		else
			http_request_on_abort(req, on_stream_abort, s);
		if (http_request_query(req, "close") != NULL) {
			uv_timer_t *t = hora_malloc(sizeof *t);
			assert_non_null(t);
			t->data = f;
			uv_timer_init(&f->loop, t);
			uv_timer_start(t, on_close_timer, 100, 0);
		}
	} else if (strcmp(path, "/stream-cut") == 0) {
		assert_int_equal(http_respond_stream(req, 200, "text/plain"), 0);
		assert_int_equal(http_stream_write(req, "gone\n", 5), 0);
		http_stream_cut(req); /* no abort callback follows */
	} else if (strcmp(path, "/wake") == 0) {
		/* Answer another, parked request from inside this handler. */
		assert_non_null(f->parked);
		assert_int_equal(http_respond(f->parked, 200, "text/plain",
					      "woken", 5),
				 0);
		f->parked = NULL;
		http_respond(req, 200, "text/plain", "ok", 2);
	} else if (strcmp(path, "/twice") == 0) {
		f->rv_bad_status = http_respond(req, 42, NULL, "x", 1);
		f->rv_bad_name = http_response_header(req, "Bad Name", "v");
		f->rv_bad_value = http_response_header(req, "X-A", "a\r\nB: c");
		f->rv_bad_cl = http_response_header(req, "content-length", "1");
		f->rv_first = http_respond(req, 201, NULL, NULL, 0);
		f->rv_again = http_respond(req, 200, NULL, "x", 1);
		f->rv_header_after = http_response_header(req, "X-B", "b");
	} else if (strcmp(path, "/quiesce") == 0) {
		http_server_stop_accepting(f->srv);
		http_server_stop_accepting(f->srv);
		http_respond(req, 200, NULL, "q", 1);
	} else if (strcmp(path, "/arm") == 0) {
		/* End the previous injection, answer (its copy is
		 * allocated), then arm: the n+1-th allocation of ours from
		 * now on fails, and all after it until the next /arm. */
		hora_alloc_fail_reset();
		http_respond(req, 200, NULL, "armed", 5);
		hora_alloc_fail_after(strtol(http_request_query(req, "n"),
					     NULL, 10));
	} else if (strcmp(path, "/plain") == 0) {
		f->rv_plain = http_respond(req, 200, "text/plain", "plain", 5);
	} else if (strcmp(path, "/closeme") == 0) {
		fx_close(f);
		http_respond(req, 200, NULL, "bye", 3);
	} else {
		const char *nf = "{\"error\":{\"code\":\"not_found\"}}";
		http_respond(req, 404, "application/json", nf, strlen(nf));
	}
	http_server_stats_get(f->srv, &st);
	if (st.pending > f->max_pending)
		f->max_pending = st.pending;
}

/* --- tests ---------------------------------------------------------------- */

static void test_url_decode(void **state)
{
	char buf[16];
	size_t n;

	(void)state;
	assert_int_equal(http_url_decode("a%2Fb%20c+d", 11, buf, sizeof buf,
					 &n),
			 0);
	assert_string_equal(buf, "a/b c+d");
	assert_int_equal(n, 7);
	assert_int_equal(http_url_decode("", 0, buf, sizeof buf, &n), 0);
	assert_string_equal(buf, "");
	assert_int_equal(http_url_decode("%e2%82%AC", 9, buf, sizeof buf, &n),
			 0);
	assert_string_equal(buf, "\xe2\x82\xac");
	assert_int_equal(http_url_decode("%2", 2, buf, sizeof buf, NULL),
			 -HORA_EINVAL);
	assert_int_equal(http_url_decode("%zz", 3, buf, sizeof buf, NULL),
			 -HORA_EINVAL);
	assert_int_equal(http_url_decode("a%00", 4, buf, sizeof buf, NULL),
			 -HORA_EINVAL);
	assert_int_equal(http_url_decode("abcd", 4, buf, 4, NULL),
			 -HORA_ERANGE);
	assert_int_equal(http_url_decode("abcd", 4, buf, 5, NULL), 0);
	assert_int_equal(http_url_decode("", 0, buf, 0, NULL), -HORA_ERANGE);
	/* In place. */
	strcpy(buf, "x%41y");
	assert_int_equal(http_url_decode(buf, 5, buf, sizeof buf, &n), 0);
	assert_string_equal(buf, "xAy");
}

static void script_basic(fx *f)
{
	req_opts hx = {.hdr = {"X-Test: hello"}};
	req_opts post = {.body = "hello world", .body_len = 11,
			 .hdr = {"Content-Type: text/plain"}};
	CURL *c = curl_easy_init();

	do_req(f, c, "/echo?limit=10&label=a%3D1&label=b=2&flag&sp=a+b%21",
	       &hx, &f->r[0]);
	do_req(f, c, "/echo", &post, &f->r[1]);
	do_req(f, c, "/nope", NULL, &f->r[2]);
	do_req(f, c, "/seg/a%2Fb%20c", NULL, &f->r[3]);
	do_req(f, c, "/seg/%zz", NULL, &f->r[4]);
	do_req(f, c, "/twice", NULL, &f->r[5]);
	curl_easy_cleanup(c);
}

static void test_basic(void **state)
{
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, NULL), 0);
	fx_run(&f, script_basic);

	assert_int_equal(f.r[0].rc, CURLE_OK);
	assert_int_equal(f.r[0].status, 200);
	assert_non_null(strstr(f.r[0].body, "method=GET path=/echo limit=10 "));
	assert_non_null(strstr(f.r[0].body, "labels=a=1,b=2 nlabels=2 all=5"));
	assert_non_null(strstr(f.r[0].body, "flag=[] missing=(null)"));
	assert_non_null(strstr(f.r[0].body, "sp=[a b!] xtest=hello len=0"));
	assert_non_null(strstr(f.r[0].body, "peer=127.0.0.1:"));
	assert_non_null(strstr(f.r[0].body, "tls=0 "));
	assert_non_null(strstr(f.r[0].headers, "X-Resp: yes\r\n"));
	assert_non_null(strstr(f.r[0].headers, "Content-Type: text/plain"));

	assert_int_equal(f.r[1].status, 200);
	assert_non_null(strstr(f.r[1].body, "method=POST path=/echo"));
	assert_non_null(strstr(f.r[1].body, "len=11 "));
	assert_non_null(strstr(f.r[1].body, "body=hello world"));

	assert_int_equal(f.r[2].status, 404);
	assert_string_equal(f.r[2].body, "{\"error\":{\"code\":\"not_found\"}}");
	assert_non_null(strstr(f.r[2].headers,
			       "Content-Type: application/json"));

	assert_int_equal(f.r[3].status, 200);
	assert_string_equal(f.r[3].body, "a/b c");
	assert_int_equal(f.r[4].status, 400);

	assert_int_equal(f.r[5].status, 201);
	assert_int_equal(f.rv_bad_status, -HORA_EINVAL);
	assert_int_equal(f.rv_bad_name, -HORA_EINVAL);
	assert_int_equal(f.rv_bad_value, -HORA_EINVAL);
	assert_int_equal(f.rv_bad_cl, -HORA_EINVAL);
	assert_int_equal(f.rv_first, 0);
	assert_int_equal(f.rv_again, -HORA_EINVAL);
	assert_int_equal(f.rv_header_after, -HORA_EINVAL);

	/* All six on one keep-alive connection. */
	assert_int_equal(f.r[0].connects, 1);
	for (int i = 1; i < 6; i++)
		assert_int_equal(f.r[i].connects, 0);
	assert_int_equal(f.handled, 6);
	assert_int_equal(f.stats.requests, 6);
	assert_int_equal(f.stats.responses, 6);
	assert_int_equal(f.stats.status[2], 4);
	assert_int_equal(f.stats.status[4], 2);
	assert_int_equal(f.stats.connections, 1);
	assert_true(f.stats.open_connections <= 1);
	assert_true(f.stats.bytes_in > 11);
	assert_true(f.stats.bytes_out > 0);
}

static void script_async(fx *f)
{
	CURL *c = curl_easy_init();
	do_req(f, c, "/async?ms=50", NULL, &f->r[0]);
	do_req(f, c, "/async?ms=0", NULL, &f->r[1]);
	do_req(f, c, "/echo", NULL, &f->r[2]);
	curl_easy_cleanup(c);
}

static void test_async(void **state)
{
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, NULL), 0);
	fx_run(&f, script_async);
	assert_int_equal(f.r[0].status, 200);
	assert_string_equal(f.r[0].body, "late");
	assert_non_null(strstr(f.r[0].headers, "Retry-After: 1\r\n"));
	assert_true(f.r[0].seconds >= 0.045);
	assert_int_equal(f.r[1].status, 200);
	assert_int_equal(f.r[2].status, 200);
	assert_int_equal(f.r[1].connects + f.r[2].connects, 0);
	assert_int_equal(atomic_load(&f.aborted), 0);
	assert_int_equal(f.stats.pending, 0);
	assert_int_equal(f.stats.aborted, 0);
}

/* Many parked at once, answered by timers in any order. */
static void script_parallel(fx *f)
{
	CURLM *m = curl_multi_init();
	CURL *e[20];
	reply *r = hora_calloc(20, sizeof *r);
	char url[128];
	int running = 1, i, ok = 0;

	for (i = 0; i < 20; i++) {
		e[i] = curl_easy_init();
		snprintf(url, sizeof url, "%s/async?ms=%d", f->base,
			 100 - 4 * i);
		curl_easy_setopt(e[i], CURLOPT_URL, url);
		curl_easy_setopt(e[i], CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, on_curl_body);
		curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &r[i]);
		curl_easy_setopt(e[i], CURLOPT_TIMEOUT_MS, 5000L);
		curl_multi_add_handle(m, e[i]);
	}
	while (running) {
		curl_multi_perform(m, &running);
		if (running)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	for (i = 0; i < 20; i++) {
		long st = 0;
		curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &st);
		if (st == 200 && strcmp(r[i].body, "late") == 0)
			ok++;
		curl_multi_remove_handle(m, e[i]);
		curl_easy_cleanup(e[i]);
	}
	curl_multi_cleanup(m);
	hora_free(r);
	f->ok = ok;
}

static void test_parallel_async(void **state)
{
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, NULL), 0);
	fx_run(&f, script_parallel);
	assert_int_equal(f.ok, 20);
	assert_true(f.max_pending >= 5);
	assert_int_equal(f.stats.pending, 0);
	assert_int_equal(f.stats.connections, 20);
}

static void script_wake(fx *f);

static void *hang_thread(void *arg)
{
	fx *f = arg;
	do_req(f, NULL, "/hang", NULL, &f->r[0]);
	return NULL;
}

static void script_wake(fx *f)
{
	pthread_t t;
	int i;

	pthread_create(&t, NULL, hang_thread, f);
	for (i = 0; i < 500 && !atomic_load(&f->parked_flag); i++)
		sleep_ms(5);
	do_req(f, NULL, "/wake", NULL, &f->r[1]);
	pthread_join(t, NULL);
}

static void test_respond_from_other_handler(void **state)
{
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, NULL), 0);
	fx_run(&f, script_wake);
	assert_int_equal(f.r[0].status, 200);
	assert_string_equal(f.r[0].body, "woken");
	assert_int_equal(f.r[1].status, 200);
	assert_true(f.r[0].seconds < 2.0);
	assert_int_equal(atomic_load(&f.aborted), 0);
}

static char *filled(size_t n)
{
	char *p = hora_malloc(n + 1);
	assert_non_null(p);
	memset(p, 'x', n);
	p[n] = '\0';
	return p;
}

static void script_too_large(fx *f)
{
	char *big = filled(5000), *fit = filled(1024), *huge = filled(20000);
	req_opts o1 = {.body = big, .body_len = 5000, .hdr = {"Expect:"}};
	req_opts o2 = {.body = big, .body_len = 5000,
		       .hdr = {"Expect: 100-continue"}};
	req_opts o3 = {.body = big, .body_len = 5000, .chunked = true,
		       .hdr = {"Expect:"}};
	req_opts o4 = {.body = fit, .body_len = 1024, .hdr = {"Expect:"}};
	req_opts o5 = {.body = fit, .body_len = 1024, .chunked = true,
		       .hdr = {"Expect:"}};
	req_opts o6 = {.body = huge, .body_len = 20000, .chunked = true,
		       .hdr = {"Expect:"}};
	CURL *c = curl_easy_init();

	do_req(f, c, "/echo", &o1, &f->r[0]);
	do_req(f, c, "/echo", &o2, &f->r[1]);
	do_req(f, c, "/echo", &o3, &f->r[2]);
	do_req(f, c, "/echo", &o4, &f->r[3]);
	do_req(f, c, "/echo", &o5, &f->r[4]);
	do_req(f, c, "/echo", &o6, &f->r[5]);
	do_req(f, c, "/echo", NULL, &f->r[6]);
	curl_easy_cleanup(c);
	hora_free(huge);
	hora_free(big);
	hora_free(fit);
}

static void test_too_large(void **state)
{
	http_server_config cfg = {.max_body = 1024};
	const char *want = "{\"error\":{\"code\":\"payload_too_large\","
			   "\"message\":\"request body exceeds 1024 bytes\"}}";
	fx f;
	int i;

	(void)state;
	assert_int_equal(fx_start(&f, &cfg), 0);
	fx_run(&f, script_too_large);
	for (i = 0; i < 3; i++) {
		assert_int_equal(f.r[i].rc, CURLE_OK);
		assert_int_equal(f.r[i].status, 413);
		assert_string_equal(f.r[i].body, want);
		assert_non_null(strstr(f.r[i].headers,
				       "Content-Type: application/json"));
	}
	assert_int_equal(f.r[3].status, 200);
	assert_non_null(strstr(f.r[3].body, "len=1024 "));
	assert_int_equal(f.r[4].status, 200);
	assert_non_null(strstr(f.r[4].body, "len=1024 "));
	/* Chunked, far past the limit: the 413 is written as soon as the
	 * limit is crossed (past MHD), and the next request is fine. */
	assert_int_equal(f.r[5].rc, CURLE_OK);
	assert_int_equal(f.r[5].status, 413);
	assert_string_equal(f.r[5].body, want);
	assert_non_null(strstr(f.r[5].headers, "Connection: close"));
	assert_int_equal(f.r[6].status, 200);
	/* The handler saw only those that fit. */
	assert_int_equal(f.handled, 3);
	assert_int_equal(f.stats.too_large, 4);
}

static void script_disconnect(fx *f)
{
	req_opts o = {.timeout_ms = 200};
	int i;

	do_req(f, NULL, "/hang", &o, &f->r[0]);
	for (i = 0; i < 600 && atomic_load(&f->aborted) == 0; i++)
		sleep_ms(5);
	do_req(f, NULL, "/echo", NULL, &f->r[1]);
}

static void test_client_disconnect(void **state)
{
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, NULL), 0);
	fx_run(&f, script_disconnect);
	assert_int_equal(f.r[0].rc, CURLE_OPERATION_TIMEDOUT);
	assert_int_equal(atomic_load(&f.aborted), 1);
	assert_int_equal(f.aborted_while_closing, 0);
	assert_null(f.parked);
	assert_int_equal(f.r[1].status, 200);
	assert_int_equal(f.stats.aborted, 1);
	assert_int_equal(f.stats.pending, 0);
	assert_true(f.stats.open_connections <= 1);
}

static void script_stream(fx *f)
{
	do_req(f, NULL, "/stream?n=3", NULL, &f->r[0]);
	do_req(f, NULL, "/stream", &(req_opts){.timeout_ms = 300}, &f->r[1]);
	for (int i = 0; i < 600 && atomic_load(&f->aborted) == 0; i++)
		sleep_ms(5);
	do_req(f, NULL, "/echo", NULL, &f->r[2]);
}

static void test_stream(void **state)
{
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, NULL), 0);
	fx_run(&f, script_stream);
	/* written piece by piece, chunked, ended cleanly */
	assert_int_equal(f.r[0].rc, CURLE_OK);
	assert_int_equal(f.r[0].status, 200);
	assert_string_equal(f.r[0].body, "first\nline 0\nline 1\nline 2\n");
	assert_non_null(strstr(f.r[0].headers, "chunked"));
	assert_non_null(strstr(f.r[0].headers, "X-Stream: 1"));
	/* a client that leaves an open stream: the owner is told */
	assert_int_equal(f.r[1].rc, CURLE_OPERATION_TIMEDOUT);
	assert_int_equal(atomic_load(&f.aborted), 1);
	assert_int_equal(f.aborted_while_closing, 0);
	assert_int_equal(f.r[2].status, 200);
	assert_int_equal(f.stats.pending, 0);
}

static void script_stream_cut(fx *f)
{
	do_req(f, NULL, "/stream-cut", NULL, &f->r[0]);
	do_req(f, NULL, "/echo", NULL, &f->r[1]);
}

static void test_stream_cut(void **state)
{
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, NULL), 0);
	fx_run(&f, script_stream_cut);
	/* closed without the chunked end: the client sees a broken body */
	assert_true(f.r[0].rc != CURLE_OK);
	assert_int_equal(atomic_load(&f.aborted), 0);
	assert_int_equal(f.r[1].status, 200);
}

static void script_stream_close(fx *f)
{
	do_req(f, NULL, "/stream?close=1", NULL, &f->r[0]);
}

static void test_close_ends_streams(void **state)
{
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, NULL), 0);
	fx_run(&f, script_stream_close);
	/* the server closing ends the stream cleanly after what it had */
	assert_int_equal(f.r[0].rc, CURLE_OK);
	assert_int_equal(f.r[0].status, 200);
	assert_string_equal(f.r[0].body, "first\n");
	assert_int_equal(atomic_load(&f.aborted), 1);
	assert_int_equal(f.aborted_while_closing, 1);
}

static void script_close_pending(fx *f)
{
	do_req(f, NULL, "/hang?close=1", NULL, &f->r[0]);
}

static void test_close_with_pending(void **state)
{
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, NULL), 0);
	fx_run(&f, script_close_pending);
	assert_int_equal(f.r[0].rc, CURLE_OK);
	assert_int_equal(f.r[0].status, 503);
	assert_non_null(strstr(f.r[0].body, "\"code\":\"shutting_down\""));
	assert_int_equal(atomic_load(&f.aborted), 1);
	assert_int_equal(f.aborted_while_closing, 1);
	assert_int_equal(f.stats.pending, 1); /* when close was called */
}

static void script_closeme(fx *f)
{
	do_req(f, NULL, "/closeme", NULL, &f->r[0]);
	do_req(f, NULL, "/echo", &(req_opts){.timeout_ms = 1000}, &f->r[1]);
}

static void test_close_from_handler(void **state)
{
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, NULL), 0);
	fx_run(&f, script_closeme);
	assert_int_equal(f.r[0].status, 200);
	assert_string_equal(f.r[0].body, "bye");
	/* Not accepting any more. */
	assert_int_equal(f.r[1].rc, CURLE_COULDNT_CONNECT);
	assert_int_equal(f.handled, 1);
}

static void script_keepalive(fx *f)
{
	CURL *c = curl_easy_init();
	reply *r = hora_malloc(sizeof *r);
	char path[64];
	double t0;
	int i;

	assert_non_null(r);
	t0 = now_s();
	for (i = 0; i < 2000; i++) {
		snprintf(path, sizeof path, "/echo?limit=%d", i);
		do_req(f, c, path, NULL, r);
		f->connects += r->connects;
		if (r->status == 200 && r->rc == CURLE_OK)
			f->ok++;
	}
	f->rps = 2000.0 / (now_s() - t0);
	hora_free(r);
	curl_easy_cleanup(c);
}

static void test_keepalive_many(void **state)
{
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, NULL), 0);
	fx_run(&f, script_keepalive);
	assert_int_equal(f.ok, 2000);
	assert_int_equal(f.connects, 1);
	assert_int_equal(f.stats.requests, 2000);
	assert_int_equal(f.stats.connections, 1);
	print_message("keep-alive: %.0f sequential requests/s (libcurl "
		      "client, one connection)\n",
		      f.rps);
}

static void script_idle(fx *f)
{
	CURL *c = curl_easy_init();
	do_req(f, c, "/async?ms=1500", NULL, &f->r[0]);
	sleep_ms(1700);
	do_req(f, c, "/echo", NULL, &f->r[1]);
	curl_easy_cleanup(c);
}

/* A parked request outlives the idle timeout; an idle connection not. */
static void test_idle_timeout_spares_long_poll(void **state)
{
	http_server_config cfg = {.idle_timeout_s = 1};
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, &cfg), 0);
	fx_run(&f, script_idle);
	assert_int_equal(f.r[0].rc, CURLE_OK);
	assert_int_equal(f.r[0].status, 200);
	assert_true(f.r[0].seconds >= 1.4);
	assert_int_equal(f.r[1].status, 200);
	assert_int_equal(f.r[1].connects, 1); /* the old one was closed */
}

static void script_quiesce(fx *f)
{
	CURL *c = curl_easy_init();
	do_req(f, c, "/echo", NULL, &f->r[0]);
	do_req(f, c, "/quiesce", NULL, &f->r[1]);
	do_req(f, NULL, "/echo", &(req_opts){.timeout_ms = 1000}, &f->r[2]);
	do_req(f, c, "/echo", NULL, &f->r[3]);
	curl_easy_cleanup(c);
}

static void test_stop_accepting(void **state)
{
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, NULL), 0);
	fx_run(&f, script_quiesce);
	assert_int_equal(f.r[1].status, 200);
	assert_int_equal(f.r[2].rc, CURLE_COULDNT_CONNECT);
	assert_int_equal(f.r[3].status, 200);
	assert_int_equal(f.r[3].connects, 0);
}

static void script_ipv6(fx *f)
{
	do_req(f, NULL, "/echo?limit=6", NULL, &f->r[0]);
}

static void test_ipv6(void **state)
{
	http_server_config cfg = {.host = "::1"};
	fx f;
	int rv;

	(void)state;
	rv = fx_start(&f, &cfg);
	if (rv == -HORA_EUNAVAIL || rv == -HORA_EIO) {
		print_message("no IPv6 loopback here: %s\n", hora_strerror(rv));
		skip();
	}
	assert_int_equal(rv, 0);
	fx_run(&f, script_ipv6);
	assert_int_equal(f.r[0].status, 200);
	assert_non_null(strstr(f.r[0].body, "limit=6 "));
	assert_non_null(strstr(f.r[0].body, "peer=[::1]:"));
}

static void script_nothing(fx *f)
{
	(void)f;
}

static void test_start_errors(void **state)
{
	http_server_config cfg = {0};
	char port[16], want[128];
	http_server *s2 = NULL;
	hora_error err;
	fx f;

	(void)state;
	cfg.host = "nope";
	assert_int_equal(fx_start(&f, &cfg), -HORA_EINVAL);
	uv_loop_init(&f.loop);
	assert_int_equal(http_server_start(&f.loop, &cfg, handler, &f, &s2,
					   &err),
			 -HORA_EINVAL);
	assert_string_equal(err.field, "host");
	assert_string_equal(err.msg,
			    "host: \"nope\" is not an IPv4 or IPv6 address");
	cfg.host = NULL;
	cfg.port = "70000";
	assert_int_equal(http_server_start(&f.loop, &cfg, handler, &f, &s2,
					   &err),
			 -HORA_EINVAL);
	assert_string_equal(err.msg, "port: \"70000\" is not a number 0-65535");
	cfg.port = "12a";
	assert_int_equal(http_server_start(&f.loop, &cfg, handler, &f, &s2,
					   &err),
			 -HORA_EINVAL);
	assert_null(s2);
	uv_loop_close(&f.loop);

	/* Address in use. */
	assert_int_equal(fx_start(&f, NULL), 0);
	snprintf(port, sizeof port, "%u", f.port);
	cfg.port = port;
	cfg.host = "127.0.0.1";
	assert_int_equal(http_server_start(&f.loop, &cfg, handler, &f, &s2,
					   &err),
			 -HORA_EBUSY);
	snprintf(want, sizeof want,
		 "cannot listen on 127.0.0.1:%u: address already in use",
		 f.port);
	assert_string_equal(err.msg, want);
	assert_null(s2);
	fx_run(&f, script_nothing);
}

static void on_done_flag(void *ud)
{
	*(bool *)ud = true;
}

static void script_oom(fx *f)
{
	CURL *c = curl_easy_init();
	char *body = filled(1000), path[400];
	req_opts post = {.body = body, .body_len = 1000, .hdr = {"Expect:"}};

	memset(path, 'p', sizeof path);
	memcpy(path, "/long", 5);
	path[sizeof path - 1] = '\0';
	/* Each /arm goes over the connection `c` already has, then the
	 * victim opens a new one.  The connection object: */
	do_req(f, c, "/arm?n=0", NULL, &f->r[0]);
	do_req(f, NULL, "/plain", NULL, &f->r[1]);
	/* The body buffer (connection object first). */
	do_req(f, c, "/arm?n=1", NULL, &f->r[2]);
	do_req(f, NULL, "/echo", &post, &f->r[3]);
	/* The copy of the answer. */
	do_req(f, c, "/arm?n=1", NULL, &f->r[4]);
	do_req(f, NULL, "/plain", NULL, &f->r[5]);
	/* A path too long for the inline buffer. */
	do_req(f, c, "/arm?n=1", NULL, &f->r[6]);
	do_req(f, NULL, path, NULL, &f->r[7]);
	curl_easy_cleanup(c);
	hora_free(body);
}

static void test_runtime_oom(void **state)
{
	const char *oom = "{\"error\":{\"code\":\"internal\","
			  "\"message\":\"out of memory\"}}";
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, NULL), 0);
	fx_run(&f, script_oom);
	hora_alloc_fail_reset();

	/* No connection object: MHD drops the connection. */
	assert_int_equal(f.r[1].rc, CURLE_GOT_NOTHING);
	/* No body buffer: 500 before the body is read. */
	assert_int_equal(f.r[3].status, 500);
	assert_string_equal(f.r[3].body, oom);
	/* No copy of the answer: 500 instead, and the handler is told. */
	assert_int_equal(f.r[5].status, 500);
	assert_string_equal(f.r[5].body, oom);
	assert_int_equal(f.rv_plain, -HORA_ENOMEM);
	assert_int_equal(f.r[7].status, 500);
	for (int i = 0; i < 8; i += 2)
		assert_int_equal(f.r[i].status, 200);
}

static void script_half_request(fx *f)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(f->port)};
	static const char partial[] = "GET /echo HTTP/1.1\r\nHost: x\r\n";
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
	    write(fd, partial, sizeof partial - 1) > 0)
		f->ok = fd;
	sleep_ms(100); /* let the server read the request line */
}

/* A request that never completes holds the close for the grace period. */
static void test_close_grace(void **state)
{
	http_server_config cfg = {.close_grace_ms = 300};
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, &cfg), 0);
	fx_run(&f, script_half_request);
	assert_true(f.ok > 0);
	assert_int_equal(f.stats.in_flight, 1);
	assert_true(f.closed_t - f.close_t0 >= 0.28);
	assert_true(f.closed_t - f.close_t0 < 2.0);
	assert_int_equal(f.handled, 0);
	close(f.ok);
}

static void test_start_oom(void **state)
{
	uv_loop_t loop;
	http_server *s = NULL;
	bool closed = false;
	long n;
	int rv = -1;

	(void)state;
	uv_loop_init(&loop);
	for (n = 0; n < 50; n++) {
		hora_alloc_fail_after(n);
		rv = http_server_start(&loop, NULL, handler, NULL, &s, NULL);
		hora_alloc_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -HORA_ENOMEM);
	}
	assert_int_equal(rv, 0);
	http_server_close(s, on_done_flag, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_true(closed);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* --- slow and many clients ------------------------------------------------ */

enum { SLOW_N = 16 };

/* Connections dripping a head one byte every 50 ms, and a normal request
 * made meanwhile. */
static void script_slowloris(fx *f)
{
	static const char start[] = "GET /echo HTTP/1.1\r\nHost: x\r\n";
	static const char drip[] = "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
	int fd[SLOW_N], i, step, open_n = SLOW_N;
	double t0[SLOW_N];

	for (i = 0; i < SLOW_N; i++) {
		t0[i] = now_s();
		fd[i] = raw_open(f, NULL);
		f->t[i] = -1;
		if (fd[i] >= 0)
			raw_send(fd[i], start, sizeof start - 1);
	}
	for (step = 0; step < 60 && open_n > 0; step++) {
		for (i = 0; i < SLOW_N; i++) {
			if (fd[i] < 0)
				continue;
			(void)send(fd[i], &drip[step % (sizeof drip - 1)], 1,
				   MSG_NOSIGNAL | MSG_DONTWAIT);
			if (raw_closed(fd[i])) {
				f->t[i] = now_s() - t0[i];
				close(fd[i]);
				fd[i] = -1;
				open_n--;
			}
		}
		if (step == 2)
			do_req(f, NULL, "/echo", NULL, &f->r[0]);
		sleep_ms(50);
	}
	for (i = 0; i < SLOW_N; i++)
		if (fd[i] >= 0)
			close(fd[i]);
}

static void test_head_deadline(void **state)
{
	http_server_config cfg = {.head_timeout_ms = 300};
	fx f;
	int i;

	(void)state;
	assert_int_equal(fx_start(&f, &cfg), 0);
	fx_run(&f, script_slowloris);
	/* Served promptly while the slow ones hold their connections. */
	assert_int_equal(f.r[0].status, 200);
	assert_true(f.r[0].seconds < 0.5);
	for (i = 0; i < SLOW_N; i++) {
		/* Closed at the deadline, not at MHD's idle timeout (each
		 * byte restarts that one). */
		assert_true(f.t[i] >= 0.25);
		assert_true(f.t[i] < 1.2);
	}
	assert_int_equal(f.stats.head_timeouts, SLOW_N);
	assert_int_equal(f.handled, 1);
}

/* Keep-alive connections: one drips its next head right after an
 * answer, one sits idle for 3 deadlines then asks again, one sits idle
 * for 2 deadlines then drips. */
static void script_keepalive_heads(fx *f)
{
	static const char next[] = "GET /echo HTTP/1.1\r\nHost: x\r\nX-A: b";
	char buf[2048];
	int a = raw_open(f, NULL), b = raw_open(f, NULL), c = raw_open(f, NULL);
	double t_a, t_c = 0;
	size_t i;

	f->t[0] = f->t[1] = -1;
	f->ok = raw_exchange(a, get_echo, sizeof get_echo - 1, buf, sizeof buf) &&
		raw_exchange(b, get_echo, sizeof get_echo - 1, buf, sizeof buf) &&
		raw_exchange(c, get_echo, sizeof get_echo - 1, buf, sizeof buf);
	t_a = now_s();
	/* a: drip the next head at once; b and c: idle. */
	for (i = 0; i < 40 && f->t[0] < 0; i++) {
		(void)send(a, &next[i % (sizeof next - 1)], 1,
			   MSG_NOSIGNAL | MSG_DONTWAIT);
		if (raw_closed(a))
			f->t[0] = now_s() - t_a;
		sleep_ms(50);
	}
	while (now_s() - t_a < 0.9)
		sleep_ms(10);
	/* b, idle for three deadlines, is still there and served. */
	f->n = raw_exchange(b, get_echo, sizeof get_echo - 1, f->raw[0],
			    sizeof f->raw[0]);
	/* c starts dripping after its idle time. */
	t_c = now_s();
	for (i = 0; i < 40 && f->t[1] < 0; i++) {
		(void)send(c, &next[i % (sizeof next - 1)], 1,
			   MSG_NOSIGNAL | MSG_DONTWAIT);
		if (raw_closed(c))
			f->t[1] = now_s() - t_c;
		sleep_ms(50);
	}
	close(a);
	close(b);
	close(c);
}

static void test_head_deadline_keepalive(void **state)
{
	http_server_config cfg = {.head_timeout_ms = 300};
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, &cfg), 0);
	fx_run(&f, script_keepalive_heads);
	assert_true(f.ok);
	/* The head must be in 300 ms after the answer (plus, at most, the
	 * grace of 300 / 8 ms for bytes fresh at the check). */
	assert_true(f.t[0] >= 0.25);
	assert_true(f.t[0] < 1.0);
	/* Idle is not slow. */
	assert_true(f.n);
	assert_non_null(strstr(f.raw[0], "HTTP/1.1 200"));
	/* Dripping after an idle spell: cut within one check period. */
	assert_true(f.t[1] >= 0);
	assert_true(f.t[1] < 0.9);
	assert_int_equal(f.stats.head_timeouts, 2);
	assert_int_equal(f.handled, 4);
}

static void script_slow_body(fx *f)
{
	static const char head[] = "POST /echo HTTP/1.1\r\nHost: x\r\n"
				   "Content-Type: text/plain\r\n"
				   "Content-Length: 100\r\n\r\n";
	int fd = raw_open(f, NULL), i;
	size_t len = 0;
	double t0 = now_s();

	f->t[0] = -1;
	raw_send(fd, head, sizeof head - 1);
	for (i = 0; i < 60; i++) {
		(void)send(fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (raw_read(fd, f->raw[0], sizeof f->raw[0], &len, 50,
			     false)) {
			f->t[0] = now_s() - t0;
			break;
		}
	}
	close(fd);
	/* A body that comes in time is fine. */
	do_req(f, NULL, "/echo",
	       &(req_opts){.body = "quick", .body_len = 5,
			   .hdr = {"Content-Type: text/plain"}},
	       &f->r[0]);
}

static void test_body_deadline(void **state)
{
	http_server_config cfg = {.head_timeout_ms = 300,
				  .body_timeout_ms = 300};
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, &cfg), 0);
	fx_run(&f, script_slow_body);
	assert_true(f.t[0] >= 0.25);
	assert_true(f.t[0] < 1.2);
	assert_non_null(strstr(f.raw[0], "HTTP/1.1 408 Request Timeout\r\n"));
	assert_non_null(strstr(f.raw[0], "\"code\":\"request_timeout\""));
	assert_int_equal(f.r[0].status, 200);
	assert_int_equal(f.stats.body_timeouts, 1);
	assert_int_equal(f.stats.head_timeouts, 0);
	assert_int_equal(f.handled, 1);
}

enum { CAP_K = 4 };

static void script_full(fx *f)
{
	int fd[CAP_K], i, tries;
	char buf[2048];

	f->ok = 0;
	for (i = 0; i < CAP_K; i++) {
		fd[i] = raw_open(f, NULL);
		/* Served, so accepted and open (kept alive). */
		if (raw_exchange(fd[i], get_echo, sizeof get_echo - 1, buf,
				 sizeof buf) &&
		    strstr(buf, "HTTP/1.1 200") != NULL)
			f->ok++;
	}
	/* K+1-th: answered at once, not left in the backlog. */
	do_req(f, NULL, "/echo", &(req_opts){.timeout_ms = 5000}, &f->r[0]);
	/* Again and again: every refusal arrives whole. */
	f->n = 0;
	for (i = 0; i < 20; i++) {
		do_req(f, NULL, "/echo", &(req_opts){.timeout_ms = 5000},
		       &f->r[1]);
		if (f->r[1].rc == CURLE_OK && f->r[1].status == 503)
			f->n++;
	}
	close(fd[0]);
	close(fd[1]);
	for (tries = 0; tries < 40; tries++) {
		do_req(f, NULL, "/echo", NULL, &f->r[2]);
		if (f->r[2].status == 200)
			break;
		sleep_ms(25);
	}
	f->t[0] = tries;
	for (i = 2; i < CAP_K; i++)
		close(fd[i]);
}

static void test_max_connections(void **state)
{
	http_server_config cfg = {.max_connections = CAP_K};
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, &cfg), 0);
	fx_run(&f, script_full);
	assert_int_equal(f.ok, CAP_K);
	assert_int_equal(f.r[0].rc, CURLE_OK);
	assert_int_equal(f.r[0].status, 503);
	assert_true(f.r[0].seconds < 1.0);
	assert_string_equal(f.r[0].body,
			    "{\"error\":{\"code\":\"unavailable\",\"message\":"
			    "\"the server has too many open connections; try "
			    "again later\"}}");
	assert_non_null(strstr(f.r[0].headers, "Retry-After: 1\r\n"));
	assert_non_null(strstr(f.r[0].headers, "Connection: close\r\n"));
	assert_non_null(strstr(f.r[0].headers,
			       "Content-Type: application/json\r\n"));
	assert_int_equal(f.n, 20);
	/* Room again once some closed. */
	assert_int_equal(f.r[2].status, 200);
	assert_true(f.t[0] < 40);
	assert_int_equal(f.stats.refused_full, 21);
	assert_int_equal(f.stats.connections, CAP_K + 1 + (long)f.t[0]);
	assert_int_equal(f.handled, CAP_K + 1);
}

static void script_per_address(fx *f)
{
	int a = raw_open(f, NULL), b = raw_open(f, NULL);
	char buf[2048];

	f->ok = raw_exchange(a, get_echo, sizeof get_echo - 1, buf,
			     sizeof buf) &&
		raw_exchange(b, get_echo, sizeof get_echo - 1, buf,
			     sizeof buf);
	do_req(f, NULL, "/echo", NULL, &f->r[0]);
	/* Another address of this host is not affected. */
	do_req(f, NULL, "/echo", &(req_opts){.iface = "127.0.0.2"}, &f->r[1]);
	close(a);
	sleep_ms(100);
	do_req(f, NULL, "/echo", NULL, &f->r[2]);
	close(b);
}

static void test_per_address(void **state)
{
	http_server_config cfg = {.max_per_address = 2};
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, &cfg), 0);
	fx_run(&f, script_per_address);
	assert_true(f.ok);
	assert_int_equal(f.r[0].rc, CURLE_OK);
	assert_int_equal(f.r[0].status, 429);
	assert_true(f.r[0].seconds < 1.0);
	assert_non_null(strstr(f.r[0].body, "\"code\":\"overloaded\""));
	assert_non_null(strstr(f.r[0].headers, "Retry-After: 1\r\n"));
	assert_int_equal(f.r[1].status, 200);
	assert_non_null(strstr(f.r[1].body, "peer=127.0.0.2:"));
	assert_int_equal(f.r[2].status, 200);
	assert_int_equal(f.stats.refused_per_address, 1);
	assert_int_equal(f.stats.refused_full, 0);
}

static void script_parked_deadlines(fx *f)
{
	CURL *c = curl_easy_init();
	req_opts post = {.method = "POST", .body = "payload", .body_len = 7,
			 .hdr = {"Content-Type: text/plain"}};

	/* Parked well past both deadlines. */
	do_req(f, c, "/async?ms=1000", NULL, &f->r[0]);
	do_req(f, c, "/async?ms=800", &post, &f->r[1]);
	/* Then idle on the same connection past several head deadlines. */
	sleep_ms(700);
	do_req(f, c, "/echo", NULL, &f->r[2]);
	curl_easy_cleanup(c);
}

static void test_deadlines_spare_parked(void **state)
{
	http_server_config cfg = {.head_timeout_ms = 300,
				  .body_timeout_ms = 300};
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, &cfg), 0);
	fx_run(&f, script_parked_deadlines);
	assert_int_equal(f.r[0].status, 200);
	assert_string_equal(f.r[0].body, "late");
	assert_true(f.r[0].seconds >= 0.95);
	assert_int_equal(f.r[1].status, 200);
	assert_true(f.r[1].seconds >= 0.75);
	assert_int_equal(f.r[2].status, 200);
	assert_int_equal(f.r[1].connects + f.r[2].connects, 0);
	assert_int_equal(f.stats.head_timeouts, 0);
	assert_int_equal(f.stats.body_timeouts, 0);
	assert_int_equal(atomic_load(&f.aborted), 0);
}

static void script_chunked_10mb(fx *f)
{
	size_t n = 10u << 20;
	char *big = filled(n);
	req_opts o = {.body = big, .body_len = n, .chunked = true,
		      .chunk = 64 * 1024, .timeout_ms = 20000};

	do_req(f, NULL, "/echo", &o, &f->r[0]);
	do_req(f, NULL, "/echo", NULL, &f->r[1]);
	hora_free(big);
}

static void test_chunked_too_large(void **state)
{
	char want[160];
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, NULL), 0);
	fx_run(&f, script_chunked_10mb);
	snprintf(want, sizeof want,
		 "{\"error\":{\"code\":\"payload_too_large\",\"message\":"
		 "\"request body exceeds %zu bytes\"}}",
		 (size_t)HTTP_DEFAULT_MAX_BODY);
	assert_int_equal(f.r[0].rc, CURLE_OK);
	assert_int_equal(f.r[0].status, 413);
	assert_string_equal(f.r[0].body, want);
	assert_non_null(strstr(f.r[0].headers,
			       "Content-Type: application/json\r\n"));
	assert_true(f.r[0].seconds < 5.0);
	assert_int_equal(f.r[1].status, 200);
	assert_int_equal(f.stats.too_large, 1);
	assert_int_equal(f.stats.status[4], 1);
	assert_int_equal(f.handled, 1);
}

static void script_raw_nul(fx *f)
{
	static const char nul_path[] = "PUT /v1/jobs/zz\0evil HTTP/1.1\r\n"
				       "Host: x\r\nContent-Length: 0\r\n\r\n";
	static const char nul_query[] = "GET /echo?a=b\0c HTTP/1.1\r\n"
					"Host: x\r\n\r\n";
	static const char ctl_path[] = "GET /ec\x01ho HTTP/1.1\r\n"
				       "Host: x\r\n\r\n";
	static const char nul_method[] = "GE\0T /echo HTTP/1.1\r\n"
					 "Host: x\r\n\r\n";
	const struct {
		const char *p;
		size_t n;
	} reqs[] = {
		{nul_path, sizeof nul_path - 1},
		{nul_query, sizeof nul_query - 1},
		{ctl_path, sizeof ctl_path - 1},
		{nul_method, sizeof nul_method - 1},
	};
	size_t i;

	for (i = 0; i < 4; i++) {
		int fd = raw_open(f, NULL);
		raw_exchange(fd, reqs[i].p, reqs[i].n, f->raw[i],
			     sizeof f->raw[i]);
		close(fd);
	}
	/* The same, clean, is served. */
	do_req(f, NULL, "/echo?a=b", NULL, &f->r[0]);
}

static void test_nul_in_target(void **state)
{
	fx f;
	int i;

	(void)state;
	assert_int_equal(fx_start(&f, NULL), 0);
	fx_run(&f, script_raw_nul);
	for (i = 0; i < 4; i++) {
		assert_non_null(strstr(f.raw[i], "HTTP/1.1 400 "));
		assert_non_null(strstr(f.raw[i],
				       "{\"error\":{\"code\":\"invalid_argument"
				       "\",\"message\":\"the request target "
				       "contains a NUL or control byte\"}}"));
	}
	assert_int_equal(f.r[0].status, 200);
	/* The handler saw only the clean one. */
	assert_int_equal(f.handled, 1);
	assert_int_equal(f.stats.status[4], 4);
}

enum { EMFILE_K = 6 };

/* The server out of descriptors: connections are still answered (503),
 * not left in the backlog. */
static void script_emfile(fx *f)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(f->port)};
	struct rlimit old, low;
	int fd[EMFILE_K], i, probe;
	size_t len;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* Sockets first: while the limit is down nobody gets a new fd. */
	for (i = 0; i < EMFILE_K; i++)
		fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
	close(probe);
	getrlimit(RLIMIT_NOFILE, &old);
	low = old;
	low.rlim_cur = (rlim_t)probe; /* every fd below is in use */
	f->ok = setrlimit(RLIMIT_NOFILE, &low) == 0;
	for (i = 0; i < EMFILE_K; i++) {
		if (connect(fd[i], (struct sockaddr *)&sa, sizeof sa) == 0)
			raw_send(fd[i], get_echo, sizeof get_echo - 1);
	}
	f->n = 0;
	for (i = 0; i < EMFILE_K; i++) {
		char buf[1024] = "";
		len = 0;
		raw_read(fd[i], buf, sizeof buf, &len, 2000, true);
		if (strstr(buf, "HTTP/1.1 503 ") != NULL)
			f->n++;
	}
	setrlimit(RLIMIT_NOFILE, &old);
	for (i = 0; i < EMFILE_K; i++)
		close(fd[i]);
	/* Descriptors again: served. */
	do_req(f, NULL, "/echo", NULL, &f->r[0]);
}

static void test_out_of_descriptors(void **state)
{
	fx f;

	(void)state;
	assert_int_equal(fx_start(&f, NULL), 0);
	fx_run(&f, script_emfile);
	assert_true(f.ok);
	assert_int_equal(f.n, EMFILE_K);
	assert_int_equal(f.stats.refused_full, EMFILE_K);
	assert_int_equal(f.r[0].status, 200);
}

/* --- TLS ------------------------------------------------------------------ */

static char *bio_text(BIO *b)
{
	char *data, *out;
	long n = BIO_get_mem_data(b, &data);

	out = hora_malloc((size_t)n + 1);
	assert_non_null(out);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	return out;
}

/* A throwaway self-signed P-256 certificate for 127.0.0.1, as PEM. */
static void make_cert(char **cert_pem, char **key_pem)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX ctx;
	BIO *b;
	const char *exts[][2] = {{"basicConstraints", "critical,CA:TRUE"},
				 {"subjectAltName", "IP:127.0.0.1"}};
	size_t i;

	assert_non_null(key);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1,
				   0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	for (i = 0; i < 2; i++) {
		X509_EXTENSION *e =
			X509V3_EXT_conf(NULL, &ctx, exts[i][0], exts[i][1]);
		assert_non_null(e);
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(b, x);
	*cert_pem = bio_text(b);
	BIO_free(b);
	b = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
	*key_pem = bio_text(b);
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(key);
}

static void script_tls(fx *f)
{
	CURL *c = curl_easy_init();
	char *big = filled(20000);
	req_opts post = {.body = "over tls", .body_len = 8,
			 .hdr = {"Content-Type: text/plain"}};
	req_opts chunked = {.body = big, .body_len = 20000, .chunked = true,
			    .hdr = {"Expect:"}};
	int a, b;

	do_req(f, c, "/echo?limit=1", NULL, &f->r[0]);
	do_req(f, c, "/echo", &post, &f->r[1]);
	/* 413 in mid-body, written through MHD's TLS session. */
	do_req(f, NULL, "/echo", &chunked, &f->r[2]);
	/* Full (c holds one of 3, a and b the others): refused with a TLS
	 * alert, at once. */
	a = raw_open(f, NULL);
	b = raw_open(f, NULL);
	sleep_ms(100);
	do_req(f, NULL, "/echo", &(req_opts){.timeout_ms = 5000}, &f->r[3]);
	close(a);
	close(b);
	curl_easy_cleanup(c);
	hora_free(big);
}

static void test_tls(void **state)
{
	char *cert, *key;
	http_server_config cfg = {.max_body = 1024, .max_connections = 3};
	fx f;

	(void)state;
	make_cert(&cert, &key);
	cfg.tls_cert_pem = cert;
	cfg.tls_key_pem = key;
	assert_int_equal(fx_start(&f, &cfg), 0);
	/* Borrowed for the start only. */
	memset(key, 'k', strlen(key));
	fx_run(&f, script_tls);
	assert_int_equal(f.r[0].rc, CURLE_OK);
	assert_int_equal(f.r[0].status, 200);
	assert_non_null(strstr(f.r[0].body, "limit=1 "));
	assert_non_null(strstr(f.r[0].body, "tls=1 "));
	assert_int_equal(f.r[1].status, 200);
	assert_non_null(strstr(f.r[1].body, "body=over tls"));
	assert_int_equal(f.r[1].connects, 0);
	assert_int_equal(f.r[2].rc, CURLE_OK);
	assert_int_equal(f.r[2].status, 413);
	assert_non_null(strstr(f.r[2].body, "payload_too_large"));
	assert_int_not_equal(f.r[3].rc, CURLE_OK);
	assert_true(f.r[3].seconds < 1.0);
	assert_int_equal(f.stats.refused_full, 1);
	assert_int_equal(f.handled, 2);
	hora_free(cert);
	hora_free(key);
}

static void test_tls_start_errors(void **state)
{
	http_server_config cfg = {0};
	http_server *s = NULL;
	hora_error err;
	uv_loop_t loop;
	char *cert, *key;

	(void)state;
	make_cert(&cert, &key);
	uv_loop_init(&loop);
	cfg.tls_cert_pem = cert;
	assert_int_equal(http_server_start(&loop, &cfg, handler, NULL, &s,
					   &err),
			 -HORA_EINVAL);
	assert_string_equal(err.field, "tls");
	assert_non_null(strstr(err.msg, "only the certificate was given"));
	cfg.tls_key_pem = "-----BEGIN PRIVATE KEY-----\nnope\n"
			  "-----END PRIVATE KEY-----\n";
	assert_int_equal(http_server_start(&loop, &cfg, handler, NULL, &s,
					   &err),
			 -HORA_EINVAL);
	assert_string_equal(err.field, "tls");
	assert_non_null(strstr(err.msg, "cannot start HTTPS server on "));
	assert_null(s);
	assert_int_equal(uv_loop_close(&loop), 0);
	hora_free(cert);
	hora_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_decode),
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_async),
		cmocka_unit_test(test_parallel_async),
		cmocka_unit_test(test_respond_from_other_handler),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_client_disconnect),
		cmocka_unit_test(test_close_with_pending),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_close_ends_streams),
		cmocka_unit_test(test_stream_cut),
		cmocka_unit_test(test_close_from_handler),
		cmocka_unit_test(test_keepalive_many),
		cmocka_unit_test(test_idle_timeout_spares_long_poll),
		cmocka_unit_test(test_stop_accepting),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_start_errors),
		cmocka_unit_test(test_runtime_oom),
		cmocka_unit_test(test_close_grace),
		cmocka_unit_test(test_start_oom),
		cmocka_unit_test(test_head_deadline),
		cmocka_unit_test(test_head_deadline_keepalive),
		cmocka_unit_test(test_body_deadline),
		cmocka_unit_test(test_max_connections),
		cmocka_unit_test(test_per_address),
		cmocka_unit_test(test_deadlines_spare_parked),
		cmocka_unit_test(test_chunked_too_large),
		cmocka_unit_test(test_nul_in_target),
		cmocka_unit_test(test_out_of_descriptors),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_tls_start_errors),
	};
	int rv;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rv = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rv;
}
