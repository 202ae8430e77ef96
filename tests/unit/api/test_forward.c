/*
 * test_forward.c - forwarding to the leader, on real loopback sockets.
 *
 * Two http_servers run on one libuv loop in the main thread: a "follower"
 * whose handler forwards everything to `fx.target` (normally the
 * "leader"), and the "leader", whose handler echoes what it received as
 * JSON (201, Retry-After, Location), parks answers, or answers 503.  A
 * libcurl "script" drives the follower from a second thread.  cmocka is
 * not thread-safe, so the script only records what it saw; the main
 * thread asserts after joining it.  When the script ends it wakes the loop
 * (uv_async), which closes the follower, the forwarder and the leader;
 * uv_run() returns once every handle is closed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../test_util.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include "api/forward.h"
#include "api/http.h"
#include "core/alloc.h"

#define FROM_ID 7
#define NKEEP 1000

/* --- fixture -------------------------------------------------------------- */

typedef struct reply {
	CURLcode rc;
	long status;
	long connects;
	double seconds;
	char *body; /* malloc'd, '\0'-terminated */
	size_t body_len, body_cap;
	char headers[4096];
	size_t headers_len;
} reply;

typedef struct call_result {
	int status;
	char body[1024];
	size_t len;
	int calls; /* times the callback ran */
	int rv_call_in_cb;
} call_result;

typedef struct fx fx;
typedef void (*script_fn)(fx *f);

struct fx {
	uv_loop_t loop;
	http_server *leader, *follower;
	forwarder *fwd;
	char leader_base[64], follower_base[64], down_base[64];
	const char *target; /* where the follower forwards */
	uv_async_t done_async, close_fwd_async;
	pthread_t thread;
	script_fn script;
	bool fwd_close_called, fwd_done, leader_close_called, leader_done,
		follower_close_called, follower_done;
	http_server_stats lstats, fstats; /* when closed */
	forwarder_stats wst;              /* when closed */

	/* loop side */
	atomic_int leader_handled, leader_parked, leader_aborted,
		leader_aborted_closing;
	int oom_500;
	call_result calls[6];
	atomic_int calls_done;
	int ncalls_close_at; /* close the forwarder from the n-th callback */

	/* script side */
	reply r[8];
	int ok;
	long connects;
	double direct_mean, fwd_mean, direct_p50, fwd_p50;
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

static void on_fwd_done(void *ud)
{
	((fx *)ud)->fwd_done = true;
}

static void on_leader_done(void *ud)
{
	((fx *)ud)->leader_done = true;
}

static void on_follower_done(void *ud)
{
	((fx *)ud)->follower_done = true;
}

static void fx_close_fwd(fx *f)
{
	if (f->fwd_close_called)
		return;
	f->fwd_close_called = true;
	forwarder_stats_get(f->fwd, &f->wst);
	forwarder_close(f->fwd, on_fwd_done, f);
}

static void fx_close_all(fx *f)
{
	if (!f->follower_close_called) {
		f->follower_close_called = true;
		http_server_stats_get(f->follower, &f->fstats);
		http_server_close(f->follower, on_follower_done, f);
	}
	fx_close_fwd(f);
	if (!f->leader_close_called) {
		f->leader_close_called = true;
		http_server_stats_get(f->leader, &f->lstats);
		http_server_close(f->leader, on_leader_done, f);
	}
}

static void leader_handler(http_request *req, void *ud);
static void follower_handler(http_request *req, void *ud);

/* A port nothing listens on: bound, then closed. */
static uint16_t dead_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t port;

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void fx_start(fx *f)
{
	http_server_config cfg = {.host = "127.0.0.1"};
	hora_error err;

	memset(f, 0, sizeof *f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(http_server_start(&f->loop, &cfg, leader_handler, f,
					   &f->leader, &err),
			 0);
	assert_int_equal(http_server_start(&f->loop, &cfg, follower_handler,
					   f, &f->follower, &err),
			 0);
	assert_int_equal(forwarder_new(&f->loop, &f->fwd, &err), 0);
	snprintf(f->leader_base, sizeof f->leader_base, "http://127.0.0.1:%u",
		 http_server_port(f->leader));
	snprintf(f->follower_base, sizeof f->follower_base,
		 "http://127.0.0.1:%u", http_server_port(f->follower));
	snprintf(f->down_base, sizeof f->down_base, "http://127.0.0.1:%u",
		 dead_port());
	f->target = f->leader_base;
}

static void on_script_done(uv_async_t *a)
{
	fx *f = a->data;
	uv_close((uv_handle_t *)a, NULL);
	uv_close((uv_handle_t *)&f->close_fwd_async, NULL);
	fx_close_all(f);
}

static void on_close_fwd_async(uv_async_t *a)
{
	fx_close_fwd(a->data);
}

static void *script_main(void *arg)
{
	fx *f = arg;
	f->script(f);
	uv_async_send(&f->done_async);
	return NULL;
}

static void fx_run(fx *f, script_fn script)
{
	f->script = script;
	f->done_async.data = f;
	f->close_fwd_async.data = f;
	assert_int_equal(uv_async_init(&f->loop, &f->done_async,
				       on_script_done),
			 0);
	assert_int_equal(uv_async_init(&f->loop, &f->close_fwd_async,
				       on_close_fwd_async),
			 0);
	assert_int_equal(pthread_create(&f->thread, NULL, script_main, f), 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	pthread_join(f->thread, NULL);
	assert_true(f->fwd_done);
	assert_true(f->leader_done);
	assert_true(f->follower_done);
	assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void fx_free(fx *f)
{
	for (size_t i = 0; i < ARRAY_LEN(f->r); i++)
		free(f->r[i].body);
}

/* --- client helpers (script thread; plain malloc, not hora_malloc, so
 * the allocation-failure hook of the loop thread is not disturbed) ------ */

static size_t on_curl_body(char *p, size_t sz, size_t n, void *ud)
{
	reply *r = ud;
	size_t len = sz * n;

	if (r->body_len + len + 1 > r->body_cap) {
		size_t cap = r->body_cap ? r->body_cap : 4096;
		while (cap < r->body_len + len + 1)
			cap *= 2;
		r->body = realloc(r->body, cap);
		if (r->body == NULL)
			return 0;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, p, len);
	r->body_len += len;
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

typedef struct req_opts {
	const char *method; /* NULL: GET, or POST when body set */
	const char *body;
	size_t body_len;
	const char *hdr[6];
	long timeout_ms;
} req_opts;

static void reply_reset(reply *r)
{
	char *b = r->body;
	size_t cap = r->body_cap;

	memset(r, 0, sizeof *r);
	r->body = b;
	r->body_cap = cap;
	if (b != NULL)
		b[0] = '\0';
}

/* One transfer to base+path on `c` (kept for keep-alive) or a fresh one. */
static void do_req(CURL *c, const char *base, const char *path,
		   const req_opts *o, reply *r)
{
	static const req_opts none;
	struct curl_slist *hdrs = NULL;
	char url[1024];
	bool own = c == NULL;
	double t0;

	if (o == NULL)
		o = &none;
	if (own)
		c = curl_easy_init();
	else
		curl_easy_reset(c);
	reply_reset(r);
	snprintf(url, sizeof url, "%s%s", base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_curl_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_curl_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
			 o->timeout_ms ? o->timeout_ms : 15000L);
	for (int i = 0; i < 6 && o->hdr[i] != NULL; i++)
		hdrs = curl_slist_append(hdrs, o->hdr[i]);
	if (o->body != NULL) {
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

static void wait_for(atomic_int *v, int want, long max_ms)
{
	for (long i = 0; i < max_ms / 5 && atomic_load(v) < want; i++)
		sleep_ms(5);
}

/* --- the leader (loop thread) -------------------------------------------- */

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
	assert_int_equal(http_respond(l->req, 200, "text/plain",
				      "parked-answer", 13),
			 0);
	uv_close((uv_handle_t *)&l->t, on_later_closed);
}

static void on_later_abort(http_request *req, void *ud)
{
	later *l = ud;
	(void)req;
	if (l->f->leader_close_called)
		atomic_fetch_add(&l->f->leader_aborted_closing, 1);
	else
		atomic_fetch_add(&l->f->leader_aborted, 1);
	uv_close((uv_handle_t *)&l->t, on_later_closed);
}

static int collect_query(void *ud, const char *name, const char *value)
{
	json_array_append_new(ud, json_pack("[ss]", name, value));
	return 0;
}

static json_t *header_or_null(http_request *req, const char *name)
{
	const char *v = http_request_header(req, name);
	return v != NULL ? json_string(v) : json_null();
}

static void respond_json(http_request *req, int status, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	assert_non_null(s);
	assert_int_equal(http_respond(req, status, "application/json", s,
				      strlen(s)),
			 0);
	free(s);
	json_decref(j);
}

static void leader_echo(http_request *req)
{
	json_t *q = json_array(), *h, *j;
	size_t blen;
	const char *body = http_request_body(req, &blen);

	http_request_query_each(req, NULL, collect_query, q);
	h = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "content-type",
		      header_or_null(req, "Content-Type"), "authorization",
		      header_or_null(req, "Authorization"), "accept",
		      header_or_null(req, "Accept"), "x-hora-forwarded",
		      header_or_null(req, "X-Hora-Forwarded"), "x-other",
		      header_or_null(req, "X-Other"), "expect",
		      header_or_null(req, "Expect"), "user-agent",
		      header_or_null(req, "User-Agent"));
	j = json_pack("{s:s,s:s,s:o,s:s%,s:I,s:o}", "method",
		      http_request_method(req), "path", http_request_path(req),
		      "query", q, "body", body, blen, "len", (json_int_t)blen,
		      "headers", h);
	assert_non_null(j);
	assert_int_equal(http_response_header(req, "Retry-After", "7"), 0);
	assert_int_equal(http_response_header(req, "Location", "/v1/jobs/x"),
			 0);
	assert_int_equal(http_response_header(req, "X-Not-Relayed", "1"), 0);
	respond_json(req, 201, j);
}

static void leader_handler(http_request *req, void *ud)
{
	fx *f = ud;
	const char *path = http_request_path(req);

	atomic_fetch_add(&f->leader_handled, 1);
	if (strncmp(path, "/park", 5) == 0) {
		const char *ms = http_request_query(req, "ms");
		later *l = hora_malloc(sizeof *l);
		assert_non_null(l);
		l->req = req;
		l->f = f;
		l->t.data = l;
		uv_timer_init(&f->loop, &l->t);
		uv_timer_start(&l->t, on_later,
			       ms ? strtoull(ms, NULL, 10) : 300, 0);
		http_request_on_abort(req, on_later_abort, l);
		atomic_fetch_add(&f->leader_parked, 1);
	} else if (strcmp(path, "/unavail") == 0) {
		static const char b[] = "{\"error\":{\"code\":\"unavailable\","
					"\"message\":\"no leader yet\"}}";
		http_response_header(req, "Retry-After", "2");
		http_respond(req, 503, "application/json", b, sizeof b - 1);
	} else if (strcmp(path, "/q") == 0) {
		json_t *q = json_array();
		http_request_query_each(req, NULL, collect_query, q);
		respond_json(req, 200, q);
	} else if (strcmp(path, "/big") == 0) {
		size_t n = 3u << 20; /* 3 MiB */
		char *b = hora_malloc(n);
		assert_non_null(b);
		memset(b, 'y', n);
		http_respond(req, 200, "application/octet-stream", b, n);
		hora_free(b);
	} else if (strcmp(path, "/nobody") == 0) {
		http_respond(req, 204, NULL, NULL, 0);
	} else {
		leader_echo(req);
	}
}

/* --- the follower (loop thread) ------------------------------------------ */

static void follower_handler(http_request *req, void *ud)
{
	fx *f = ud;
	const char *path = http_request_path(req);
	int flags = strstr(path, "/claim") != NULL ? FORWARD_CLAIM : 0;
	int rv;

	if (f->fwd_close_called) {
		http_respond(req, 503, "text/plain", "no forwarder", 12);
		return;
	}
	if (strcmp(path, "/oom") == 0) {
		hora_alloc_fail_after(
			strtol(http_request_query(req, "n"), NULL, 10));
		rv = forwarder_forward(f->fwd, req, f->target, FROM_ID, flags);
		hora_alloc_fail_reset();
		if (rv != 0) {
			assert_int_equal(rv, -HORA_ENOMEM);
			f->oom_500++;
			http_respond(req, 500, "text/plain", "oom", 3);
		}
		return;
	}
	rv = forwarder_forward(f->fwd, req, f->target, FROM_ID, flags);
	assert_int_equal(rv, 0);
}

/* --- helpers for assertions ---------------------------------------------- */

static json_t *parse(const reply *r)
{
	json_error_t jerr;
	json_t *j = json_loads(r->body != NULL ? r->body : "", 0, &jerr);
	if (j == NULL)
		fail_msg("not JSON (%s): %s", jerr.text,
			 r->body != NULL ? r->body : "");
	return j;
}

static const char *jstr(json_t *j, const char *path1, const char *path2)
{
	json_t *v = json_object_get(j, path1);
	if (path2 != NULL)
		v = json_object_get(v, path2);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool jnull(json_t *j, const char *path1, const char *path2)
{
	json_t *v = json_object_get(json_object_get(j, path1), path2);
	return json_is_null(v);
}

/* --- tests ---------------------------------------------------------------- */

static void script_relay(fx *f)
{
	static const char body[] = "{\"name\":\"a\",\"schedule\":\"@hourly\"}";
	req_opts post = {.body = body, .body_len = sizeof body - 1,
			 .hdr = {"Content-Type: application/json",
				 "Authorization: Bearer s3cret",
				 "Accept: application/json", "X-Other: no"}};
	req_opts put = {.method = "PUT", .body = "x", .body_len = 1,
			.hdr = {"Content-Type: text/plain", "Accept:"}};
	req_opts del = {.method = "DELETE", .hdr = {"Accept:"}};
	CURL *c = curl_easy_init();

	do_req(c, f->follower_base, "/v1/jobs?x=1", &post, &f->r[0]);
	do_req(c, f->follower_base, "/v1/jobs/a%2Fb%20c/./x", &put, &f->r[1]);
	do_req(c, f->follower_base, "/v1/jobs/a", &del, &f->r[2]);
	do_req(c, f->follower_base, "/unavail", NULL, &f->r[3]);
	do_req(c, f->follower_base, "/nobody", NULL, &f->r[4]);
	do_req(c, f->follower_base, "/big", NULL, &f->r[5]);
	curl_easy_cleanup(c);
}

static void test_relay(void **state)
{
	fx f;
	json_t *j;

	(void)state;
	fx_start(&f);
	fx_run(&f, script_relay);

	/* POST: status, body, headers both ways */
	assert_int_equal(f.r[0].rc, CURLE_OK);
	assert_int_equal(f.r[0].status, 201);
	assert_contains(f.r[0].headers, "Retry-After: 7\r\n");
	assert_contains(f.r[0].headers, "Location: /v1/jobs/x\r\n");
	assert_contains(f.r[0].headers, "Content-Type: application/json\r\n");
	assert_null(strstr(f.r[0].headers, "X-Not-Relayed"));
	j = parse(&f.r[0]);
	assert_string_equal(jstr(j, "method", NULL), "POST");
	assert_string_equal(jstr(j, "path", NULL), "/v1/jobs");
	assert_string_equal(jstr(j, "body", NULL),
			    "{\"name\":\"a\",\"schedule\":\"@hourly\"}");
	assert_string_equal(jstr(j, "headers", "content-type"),
			    "application/json");
	assert_string_equal(jstr(j, "headers", "authorization"),
			    "Bearer s3cret");
	assert_string_equal(jstr(j, "headers", "accept"), "application/json");
	assert_string_equal(jstr(j, "headers", "x-hora-forwarded"), "7");
	assert_true(jnull(j, "headers", "x-other"));
	assert_true(jnull(j, "headers", "expect"));
	assert_contains(jstr(j, "headers", "user-agent"), "hora/");
	assert_int_equal(json_array_size(json_object_get(j, "query")), 1);
	json_decref(j);

	/* PUT: raw path kept (escapes, dot segment), no Accept when none */
	assert_int_equal(f.r[1].status, 201);
	j = parse(&f.r[1]);
	assert_string_equal(jstr(j, "method", NULL), "PUT");
	assert_string_equal(jstr(j, "path", NULL), "/v1/jobs/a%2Fb%20c/./x");
	assert_string_equal(jstr(j, "body", NULL), "x");
	assert_string_equal(jstr(j, "headers", "content-type"), "text/plain");
	assert_true(jnull(j, "headers", "accept"));
	assert_true(jnull(j, "headers", "authorization"));
	json_decref(j);

	/* DELETE without a body: no Content-Type invented */
	assert_int_equal(f.r[2].status, 201);
	j = parse(&f.r[2]);
	assert_string_equal(jstr(j, "method", NULL), "DELETE");
	assert_int_equal(json_integer_value(json_object_get(j, "len")), 0);
	assert_true(jnull(j, "headers", "content-type"));
	json_decref(j);

	/* the leader's own 503 is relayed as it is */
	assert_int_equal(f.r[3].status, 503);
	assert_contains(f.r[3].headers, "Retry-After: 2\r\n");
	assert_string_equal(f.r[3].body, "{\"error\":{\"code\":\"unavailable\","
					 "\"message\":\"no leader yet\"}}");

	/* no body, no Content-Type */
	assert_int_equal(f.r[4].status, 204);
	assert_null(strstr(f.r[4].headers, "Content-Type"));

	/* a large answer */
	assert_int_equal(f.r[5].status, 200);
	assert_int_equal(f.r[5].body_len, 3u << 20);
	assert_true(f.r[5].body[0] == 'y' &&
		    f.r[5].body[f.r[5].body_len - 1] == 'y');
	assert_contains(f.r[5].headers,
			"Content-Type: application/octet-stream\r\n");

	/* one kept-alive connection from the forwarder to the leader */
	assert_int_equal(f.lstats.connections, 1);
	assert_int_equal(f.wst.forwarded, 6);
	assert_int_equal(f.wst.relayed, 6);
	assert_int_equal(f.wst.failed, 0);
	assert_int_equal(f.wst.in_flight, 0);
	fx_free(&f);
}

#define QUERY "/q?label=a%3D1&label=b=2&sp=a+b%21&flag&u=%E2%82%AC" \
	      "&amp=%26%3D%25%2B&k%20ey=v&empty=&label=c&sl=%2F%3F%23"

static void script_query(fx *f)
{
	do_req(NULL, f->leader_base, QUERY, NULL, &f->r[0]);
	do_req(NULL, f->follower_base, QUERY, NULL, &f->r[1]);
	do_req(NULL, f->follower_base, "/q", NULL, &f->r[2]);
	do_req(NULL, f->follower_base, "/v1/jobs/%E2%82%AC?prefix=%E2%82%AC",
	       NULL, &f->r[3]);
}

static void test_query(void **state)
{
	fx f;
	json_t *j;

	(void)state;
	fx_start(&f);
	fx_run(&f, script_query);
	assert_int_equal(f.r[0].status, 200);
	assert_int_equal(f.r[1].status, 200);
	/* the leader decodes the same arguments, in the same order */
	assert_string_equal(f.r[1].body, f.r[0].body);
	assert_string_equal(
		f.r[1].body,
		"[[\"label\",\"a=1\"],[\"label\",\"b=2\"],[\"sp\",\"a b!\"],"
		"[\"flag\",\"\"],[\"u\",\"\xe2\x82\xac\"],"
		"[\"amp\",\"&=%+\"],[\"k ey\",\"v\"],[\"empty\",\"\"],"
		"[\"label\",\"c\"],[\"sl\",\"/?#\"]]");
	assert_string_equal(f.r[2].body, "[]");
	j = parse(&f.r[3]);
	assert_string_equal(jstr(j, "path", NULL), "/v1/jobs/%E2%82%AC");
	assert_string_equal(
		json_string_value(json_array_get(
			json_array_get(json_object_get(j, "query"), 0), 1)),
		"\xe2\x82\xac");
	json_decref(j);
	fx_free(&f);
}

static void script_down(fx *f)
{
	static const char claim[] = "{\"worker\":\"w1\",\"wait_ms\":30000}";
	req_opts o = {.body = claim, .body_len = sizeof claim - 1,
		      .hdr = {"Content-Type: application/json"}};

	do_req(NULL, f->follower_base, "/v1/jobs", NULL, &f->r[0]);
	do_req(NULL, f->follower_base, "/v1/queues/default/claim", &o,
	       &f->r[1]);
}

static void test_leader_down(void **state)
{
	char want[160];
	fx f;
	json_t *j;

	(void)state;
	fx_start(&f);
	f.target = f.down_base;
	fx_run(&f, script_down);

	assert_int_equal(f.r[0].status, 503);
	assert_contains(f.r[0].headers, "Retry-After: 1\r\n");
	assert_contains(f.r[0].headers, "Content-Type: application/json\r\n");
	j = parse(&f.r[0]);
	assert_string_equal(jstr(j, "error", "code"), "unavailable");
	snprintf(want, sizeof want, "the leader at %s did not answer: ",
		 f.down_base);
	assert_contains(jstr(j, "error", "message"), want);
	assert_non_null(strstr(jstr(j, "error", "message"), "; retry"));
	print_message("leader down: %s\n", jstr(j, "error", "message"));
	json_decref(j);
	assert_true(f.r[0].seconds < 2.0);

	/* a claim sees at worst an empty answer, at once */
	assert_int_equal(f.r[1].status, 200);
	assert_string_equal(f.r[1].body, "{\"runs\":[]}");
	assert_contains(f.r[1].headers, "Content-Type: application/json\r\n");
	assert_true(f.r[1].seconds < 2.0);

	assert_int_equal(f.wst.failed, 2);
	assert_int_equal(f.wst.relayed, 0);
	fx_free(&f);
}

static void script_parked(fx *f)
{
	static const char claim[] = "{\"worker\":\"w1\",\"wait_ms\":100}";
	req_opts o = {.body = claim, .body_len = sizeof claim - 1};

	do_req(NULL, f->follower_base, "/park?ms=300", NULL, &f->r[0]);
	do_req(NULL, f->follower_base, "/v1/queues/q/claim", &o, &f->r[1]);
}

static void test_parked_answer(void **state)
{
	fx f;
	json_t *j;

	(void)state;
	fx_start(&f);
	fx_run(&f, script_parked);
	assert_int_equal(f.r[0].status, 200);
	assert_string_equal(f.r[0].body, "parked-answer");
	assert_contains(f.r[0].headers, "Content-Type: text/plain\r\n");
	assert_true(f.r[0].seconds >= 0.29);
	/* a claim the leader answers is relayed like anything else */
	assert_int_equal(f.r[1].status, 201);
	j = parse(&f.r[1]);
	assert_string_equal(jstr(j, "path", NULL), "/v1/queues/q/claim");
	assert_string_equal(jstr(j, "body", NULL),
			    "{\"worker\":\"w1\",\"wait_ms\":100}");
	json_decref(j);
	assert_int_equal(atomic_load(&f.leader_aborted), 0);
	fx_free(&f);
}

static void script_disconnect(fx *f)
{
	req_opts o = {.timeout_ms = 150};

	do_req(NULL, f->follower_base, "/park?ms=3000", &o, &f->r[0]);
	wait_for(&f->leader_aborted, 1, 3000);
	do_req(NULL, f->follower_base, "/v1/jobs", NULL, &f->r[1]);
}

static void test_client_disconnect(void **state)
{
	fx f;

	(void)state;
	fx_start(&f);
	fx_run(&f, script_disconnect);
	assert_int_equal(f.r[0].rc, CURLE_OPERATION_TIMEDOUT);
	/* the transfer was cancelled: the leader saw its client leave */
	assert_int_equal(atomic_load(&f.leader_aborted), 1);
	assert_int_equal(atomic_load(&f.leader_aborted_closing), 0);
	assert_int_equal(f.fstats.aborted, 1);
	assert_int_equal(f.wst.cancelled, 1);
	assert_int_equal(f.wst.in_flight, 0);
	/* and the next request gets through */
	assert_int_equal(f.r[1].status, 201);
	fx_free(&f);
}

/* Three forwarded requests and one call parked at the leader when the
 * forwarder closes. */
static void script_close_in_flight(fx *f)
{
	static const char claim[] = "{\"wait_ms\":5000}";
	CURLM *m = curl_multi_init();
	CURL *e[3];
	reply *r = f->r;
	int running = 1;
	bool signalled = false;
	double t0 = now_s();

	for (int i = 0; i < 3; i++) {
		char url[128];
		reply_reset(&r[i]);
		e[i] = curl_easy_init();
		snprintf(url, sizeof url, "%s%s", f->follower_base,
			 i == 2 ? "/park/claim?ms=5000" : "/park?ms=5000");
		curl_easy_setopt(e[i], CURLOPT_URL, url);
		curl_easy_setopt(e[i], CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, on_curl_body);
		curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &r[i]);
		curl_easy_setopt(e[i], CURLOPT_HEADERFUNCTION, on_curl_header);
		curl_easy_setopt(e[i], CURLOPT_HEADERDATA, &r[i]);
		curl_easy_setopt(e[i], CURLOPT_TIMEOUT_MS, 10000L);
		if (i == 2)
			curl_easy_setopt(e[i], CURLOPT_POSTFIELDS, claim);
		curl_multi_add_handle(m, e[i]);
	}
	while (running) {
		curl_multi_perform(m, &running);
		if (!signalled && atomic_load(&f->leader_parked) >= 4) {
			uv_async_send(&f->close_fwd_async);
			signalled = true;
			t0 = now_s();
		}
		if (running)
			curl_multi_poll(m, NULL, 0, 20, NULL);
	}
	f->r[3].seconds = now_s() - t0;
	for (int i = 0; i < 3; i++) {
		curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &r[i].status);
		curl_multi_remove_handle(m, e[i]);
		curl_easy_cleanup(e[i]);
	}
	curl_multi_cleanup(m);
	wait_for(&f->leader_aborted, 4, 3000);
}

static void on_call(void *ud, int status, const char *body, size_t len)
{
	call_result *c = ud;

	c->status = status;
	c->len = len;
	snprintf(c->body, sizeof c->body, "%.*s", (int)len, body);
	c->calls++;
}

static void test_close_in_flight(void **state)
{
	fx f;

	(void)state;
	fx_start(&f);
	/* the call parks at the leader too (the 4th parked request) */
	assert_int_equal(forwarder_call(f.fwd, "GET",
					"http://127.0.0.1:1/never", NULL,
					NULL, on_call, &f.calls[1]),
			 0);
	{
		char url[128];
		snprintf(url, sizeof url, "%s/park?ms=5000", f.leader_base);
		assert_int_equal(forwarder_call(f.fwd, "GET", url, NULL, NULL,
						on_call, &f.calls[0]),
				 0);
	}
	fx_run(&f, script_close_in_flight);

	for (int i = 0; i < 3; i++) {
		json_t *j;
		assert_int_equal(f.r[i].status, 503);
		assert_contains(f.r[i].headers, "Retry-After: 1\r\n");
		j = parse(&f.r[i]);
		assert_string_equal(jstr(j, "error", "code"), "unavailable");
		assert_contains(jstr(j, "error", "message"),
				"did not answer: this node is shutting down");
		json_decref(j);
	}
	/* answered when the forwarder closed, not after the leader's 5 s */
	assert_true(f.r[3].seconds < 2.0);
	assert_int_equal(f.calls[0].calls, 1);
	assert_int_equal(f.calls[0].status, 0);
	assert_contains(f.calls[0].body, "/park?ms=5000 did not answer: "
					 "this node is shutting down");
	/* the unreachable one failed on its own, long before */
	assert_int_equal(f.calls[1].calls, 1);
	assert_int_equal(f.calls[1].status, 0);
	assert_contains(f.calls[1].body, "http://127.0.0.1:1/never did not "
					 "answer: ");
	/* the leader saw all four clients leave */
	assert_int_equal(atomic_load(&f.leader_aborted), 4);
	assert_int_equal(f.wst.in_flight, 4);
	fx_free(&f);
}

static double mean(const double *v, int n)
{
	double s = 0;
	for (int i = 0; i < n; i++)
		s += v[i];
	return s / n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return v[n / 2];
}

static void script_keepalive(fx *f)
{
	static const char body[] = "{\"name\":\"k\",\"schedule\":\"@daily\"}";
	req_opts post = {.method = "PUT", .body = body,
			 .body_len = sizeof body - 1,
			 .hdr = {"Content-Type: application/json"}};
	double *direct = malloc(NKEEP * sizeof *direct);
	double *fwd = malloc(NKEEP * sizeof *fwd);
	CURL *cd = curl_easy_init(), *cf = curl_easy_init();
	reply *r = &f->r[0];
	char path[64];

	/* interleaved, so both see the same machine conditions */
	for (int i = 0; i < NKEEP; i++) {
		snprintf(path, sizeof path, "/v1/jobs/k?i=%d", i);
		do_req(cd, f->leader_base, path, &post, r);
		direct[i] = r->seconds;
		f->connects += r->connects;
		do_req(cf, f->follower_base, path, &post, r);
		fwd[i] = r->seconds;
		f->connects += r->connects;
		if (r->rc == CURLE_OK && r->status == 201)
			f->ok++;
	}
	f->direct_mean = mean(direct, NKEEP);
	f->fwd_mean = mean(fwd, NKEEP);
	f->direct_p50 = median(direct, NKEEP);
	f->fwd_p50 = median(fwd, NKEEP);
	curl_easy_cleanup(cd);
	curl_easy_cleanup(cf);
	free(direct);
	free(fwd);
}

static void test_keepalive_latency(void **state)
{
	fx f;

	(void)state;
	fx_start(&f);
	fx_run(&f, script_keepalive);
	assert_int_equal(f.ok, NKEEP);
	assert_int_equal(f.connects, 2); /* one per client */
	/* the client's connection and the forwarder's, nothing more */
	assert_int_equal(f.lstats.connections, 2);
	assert_int_equal(f.lstats.requests, 2 * NKEEP);
	assert_int_equal(f.wst.relayed, NKEEP);
	print_message("forwarding, %d sequential PUTs on keep-alive: direct "
		      "mean %.1f us (p50 %.1f), via follower mean %.1f us "
		      "(p50 %.1f): added mean %.1f us, p50 %.1f us\n",
		      NKEEP, f.direct_mean * 1e6, f.direct_p50 * 1e6,
		      f.fwd_mean * 1e6, f.fwd_p50 * 1e6,
		      (f.fwd_mean - f.direct_mean) * 1e6,
		      (f.fwd_p50 - f.direct_p50) * 1e6);
	fx_free(&f);
}

/* forwarder_call: success, failures, a close from inside a callback. */
typedef struct call_ctx {
	fx *f;
	call_result *res;
} call_ctx;

static call_ctx call_ctxs[6];

static void call_and_maybe_close(void *ud, int status, const char *body,
				 size_t len)
{
	call_ctx *c = ud;
	fx *f = c->f;

	on_call(c->res, status, body, len);
	if (c->res == &f->calls[3]) {
		/* called by forwarder_close(): new calls are refused */
		c->res->rv_call_in_cb =
			forwarder_call(f->fwd, "GET", f->leader_base, NULL,
				       NULL, on_call, &f->calls[5]);
	}
	if (atomic_fetch_add(&f->calls_done, 1) + 1 == f->ncalls_close_at)
		fx_close_fwd(f);
}

static void script_calls(fx *f)
{
	wait_for(&f->calls_done, 5, 10000);
	wait_for(&f->leader_aborted, 1, 3000);
}

static void test_call(void **state)
{
	char url[128], bad_port[128];
	fx f;
	json_t *j;

	(void)state;
	fx_start(&f);
	f.ncalls_close_at = 4;
	for (int i = 0; i < 5; i++)
		call_ctxs[i] = (call_ctx){&f, &f.calls[i]};
	snprintf(url, sizeof url, "%s/v1/cluster/nodes?x=1", f.leader_base);
	snprintf(bad_port, sizeof bad_port, "%s/v1/x", f.down_base);
	assert_int_equal(forwarder_call(f.fwd, "POST", url, "{\"id\":4}",
					"tok", call_and_maybe_close,
					&call_ctxs[0]),
			 0);
	assert_int_equal(forwarder_call(f.fwd, "GET", bad_port, NULL, NULL,
					call_and_maybe_close, &call_ctxs[1]),
			 0);
	assert_int_equal(forwarder_call(f.fwd, "GET", "gopher://x/", NULL,
					NULL, call_and_maybe_close,
					&call_ctxs[2]),
			 0);
	snprintf(url, sizeof url, "%s/park?ms=5000", f.leader_base);
	assert_int_equal(forwarder_call(f.fwd, "GET", url, NULL, NULL,
					call_and_maybe_close, &call_ctxs[3]),
			 0);
	snprintf(url, sizeof url, "%s/v1/jobs/z", f.leader_base);
	assert_int_equal(forwarder_call(f.fwd, "DELETE", url, NULL, NULL,
					call_and_maybe_close, &call_ctxs[4]),
			 0);
	assert_int_equal(forwarder_call(f.fwd, "GET", url, NULL, NULL, NULL,
					NULL),
			 -HORA_EINVAL);
	assert_int_equal(forwarder_call(f.fwd, "", url, NULL, NULL, on_call,
					NULL),
			 -HORA_EINVAL);
	/* nothing runs before the loop does */
	assert_int_equal(atomic_load(&f.calls_done), 0);
	fx_run(&f, script_calls);

	for (int i = 0; i < 5; i++)
		assert_int_equal(f.calls[i].calls, 1);
	assert_int_equal(f.calls[0].status, 201);
	j = json_loads(f.calls[0].body, 0, NULL);
	assert_non_null(j);
	assert_string_equal(jstr(j, "method", NULL), "POST");
	assert_string_equal(jstr(j, "path", NULL), "/v1/cluster/nodes");
	assert_string_equal(jstr(j, "body", NULL), "{\"id\":4}");
	assert_string_equal(jstr(j, "headers", "authorization"), "Bearer tok");
	assert_string_equal(jstr(j, "headers", "content-type"),
			    "application/json");
	assert_string_equal(jstr(j, "headers", "accept"), "application/json");
	assert_true(jnull(j, "headers", "x-hora-forwarded"));
	json_decref(j);
	assert_int_equal(f.calls[0].len, strlen(f.calls[0].body));

	assert_int_equal(f.calls[1].status, 0);
	assert_contains(f.calls[1].body, "/v1/x did not answer: ");
	print_message("call failed: %s\n", f.calls[1].body);
	assert_int_equal(f.calls[2].status, 0);
	assert_contains(f.calls[2].body, "gopher://x/ did not answer: ");
	print_message("call failed: %s\n", f.calls[2].body);
	/* the parked one was cut by the close from the 4th callback */
	assert_int_equal(f.calls[3].status, 0);
	assert_contains(f.calls[3].body, "shutting down");
	assert_int_equal(f.calls[3].rv_call_in_cb, -HORA_ESHUTDOWN);
	assert_int_equal(f.calls[5].calls, 0);
	assert_int_equal(f.calls[4].status, 201);
	assert_int_equal(atomic_load(&f.leader_aborted), 1);
	assert_int_equal(f.wst.calls, 5);
	assert_int_equal(f.wst.calls_failed, 2);
	fx_free(&f);
}

/* Timeouts (slow: about 11 s).  A plain forward gives up after 10 s; a
 * claim after its wait_ms plus 10 s. */
static void script_timeouts(fx *f)
{
	static const char wait0[] = "{\"wait_ms\":0}";
	static const char wait2[] = "{\"worker\":\"w\",\"wait_ms\":2000}";
	static const char *const paths[3] = {
		"/park?ms=60000", "/park/claim?ms=60000",
		"/park/claim?ms=11000"};
	const char *bodies[3] = {NULL, wait0, wait2};
	CURLM *m = curl_multi_init();
	CURL *e[3];
	int running = 1;
	double t0 = now_s();

	for (int i = 0; i < 3; i++) {
		char url[128];
		reply_reset(&f->r[i]);
		e[i] = curl_easy_init();
		snprintf(url, sizeof url, "%s%s", f->follower_base, paths[i]);
		curl_easy_setopt(e[i], CURLOPT_URL, url);
		curl_easy_setopt(e[i], CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, on_curl_body);
		curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &f->r[i]);
		curl_easy_setopt(e[i], CURLOPT_HEADERFUNCTION, on_curl_header);
		curl_easy_setopt(e[i], CURLOPT_HEADERDATA, &f->r[i]);
		curl_easy_setopt(e[i], CURLOPT_TIMEOUT_MS, 30000L);
		curl_easy_setopt(e[i], CURLOPT_PRIVATE, (void *)&f->r[i]);
		if (bodies[i] != NULL)
			curl_easy_setopt(e[i], CURLOPT_POSTFIELDS, bodies[i]);
		curl_multi_add_handle(m, e[i]);
	}
	while (running) {
		CURLMsg *msg;
		int left;
		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			char *priv = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  &priv);
			((reply *)(void *)priv)->seconds = now_s() - t0;
		}
		if (running)
			curl_multi_poll(m, NULL, 0, 20, NULL);
	}
	for (int i = 0; i < 3; i++) {
		curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &f->r[i].status);
		curl_multi_remove_handle(m, e[i]);
		curl_easy_cleanup(e[i]);
	}
	curl_multi_cleanup(m);
	wait_for(&f->leader_aborted, 2, 3000);
}

static void test_timeouts(void **state)
{
	fx f;
	json_t *j;

	(void)state;
	fx_start(&f);
	fx_run(&f, script_timeouts);
	/* plain: 503 after 10 s */
	assert_int_equal(f.r[0].status, 503);
	assert_true(f.r[0].seconds >= 9.9 && f.r[0].seconds < 11.5);
	j = parse(&f.r[0]);
	assert_contains(jstr(j, "error", "message"), "timed out");
	print_message("timeout: %s\n", jstr(j, "error", "message"));
	json_decref(j);
	/* claim with wait_ms 0: the worker sees an empty answer at 10 s */
	assert_int_equal(f.r[1].status, 200);
	assert_string_equal(f.r[1].body, "{\"runs\":[]}");
	assert_true(f.r[1].seconds >= 9.9 && f.r[1].seconds < 11.5);
	/* claim with wait_ms 2000: the leader's answer at 11 s still comes */
	assert_int_equal(f.r[2].status, 200);
	assert_string_equal(f.r[2].body, "parked-answer");
	assert_true(f.r[2].seconds >= 10.9);
	/* the two cut transfers were dropped at the leader too */
	assert_int_equal(atomic_load(&f.leader_aborted), 2);
	assert_int_equal(f.wst.failed, 2);
	assert_int_equal(f.wst.relayed, 1);
	fx_free(&f);
}

static void script_oom(fx *f)
{
	char path[64];

	for (int n = 0; n < 40; n++) {
		snprintf(path, sizeof path, "/oom?n=%d", n);
		do_req(NULL, f->follower_base, path, NULL, &f->r[0]);
		if (f->r[0].status != 500)
			break;
		f->ok++;
	}
}

static void test_forward_oom(void **state)
{
	fx f;

	(void)state;
	fx_start(&f);
	fx_run(&f, script_oom);
	/* each allocation failed once, answered 500 by the caller, then it
	 * went through */
	assert_true(f.ok >= 2);
	assert_int_equal(f.oom_500, f.ok);
	assert_int_equal(f.r[0].status, 201);
	assert_int_equal(f.wst.forwarded, 1);
	assert_int_equal(f.wst.in_flight, 0);
	fx_free(&f);
}

static void on_done_flag(void *ud)
{
	*(bool *)ud = true;
}

static void test_new_oom(void **state)
{
	uv_loop_t loop;
	forwarder *fw = NULL;
	bool closed = false;
	int rv = -1;
	long n;

	(void)state;
	uv_loop_init(&loop);
	for (n = 0; n < 10; n++) {
		hora_alloc_fail_after(n);
		rv = forwarder_new(&loop, &fw, NULL);
		hora_alloc_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -HORA_ENOMEM);
		assert_null(fw);
	}
	assert_int_equal(rv, 0);
	forwarder_close(fw, on_done_flag, &closed);
	assert_false(closed); /* from the loop, never inside the call */
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_true(closed);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relay),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_leader_down),
		cmocka_unit_test(test_parked_answer),
		cmocka_unit_test(test_client_disconnect),
		cmocka_unit_test(test_close_in_flight),
		cmocka_unit_test(test_keepalive_latency),
		cmocka_unit_test(test_call),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_forward_oom),
		cmocka_unit_test(test_new_oom),
	};
	int rv;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rv = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rv;
}
