/*
 * forward.c - relay requests to the leader, and internal calls, as
 * transfers on one libcurl multi driver (net/curl_loop.h), set up by the
 * request builder (net/http_client.h).
 *
 * Connection reuse.  The multi handle owns the connection cache, so every
 * transfer to the leader looks for an idle kept-alive connection first;
 * CURLMOPT_MAXCONNECTS keeps enough of them for concurrent long polls.
 * CURLOPT_MAXAGE_CONN (libcurl's default 118 s) stays under the HTTP
 * server's 120 s idle timeout, and libcurl retries a request once on a
 * fresh connection when a reused one turns out dead before any answer
 * arrived.  Idle easy handles are pooled (reset, not freed).
 *
 * Zero copy of the request.  The forwarded body is handed to libcurl as
 * CURLOPT_POSTFIELDS pointing into the http_request: the request stays
 * valid until it is answered or aborted, and the easy handle is removed
 * from the multi before either happens.
 *
 * Re-entrancy.  User code (http_respond, a call's callback) runs only from
 * xfer_done(), which the driver calls with the transfer already out of
 * the multi (curl_loop.h).  From there it may start transfers, abort
 * requests (our abort callback removes the easy handle), or close the
 * forwarder: `f` itself is only freed once the driver's last uv handle is
 * closed, never under a caller's feet.
 */
#include "api/forward.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/buf.h"
#include "net/curl_loop.h"
#include "net/http_client.h"

#define POOL_MAX 16      /* idle easy handles kept */
#define MAX_CONNECTS 64L /* idle connections kept in the cache */

typedef struct fwd_xfer fwd_xfer;

struct fwd_xfer {
	curl_loop_xfer x; /* x.easy */
	forwarder *f;
	struct curl_slist *headers;
	http_request *req; /* a forward; NULL for a call */
	int flags;
	forwarder_call_cb cb;
	void *ud;
	char *target; /* forward: the leader's base URL; call: the URL */
	httpc_body body; /* the answer's body */
	char *ctype, *retry_after, *location; /* the answer's headers */
	bool oom; /* keeping a header failed */
	bool streaming; /* FORWARD_STREAM: relaying a 200 as a stream */
	char errbuf[CURL_ERROR_SIZE];
};

struct forwarder {
	curl_loop *cl;
	CURL *pool[POOL_MAX];
	size_t npool;
	bool closing;
	void (*done)(void *ud);
	void *done_ud;
	char *tls_ca, *tls_cert, *tls_key; /* forwarder_set_tls */
	httpc_conf conf; /* points at the tls_* strings */
	forwarder_stats st;
};

/* ------------------------------------------------------------------ */
/* Text */

/* JSON string contents. */
static void add_json_text(hora_buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			buf_add(b, e, 2);
		} else if (c < 0x20) {
			buf_printf(b, "\\u%04x", c);
		} else {
			buf_addc(b, (char)c);
		}
	}
}

/* ------------------------------------------------------------------ */
/* The forwarder */

static void xfer_done(curl_loop_xfer *x, CURLcode code);

static void cl_closed(void *ud)
{
	forwarder *f = ud;
	void (*done)(void *) = f->done;
	void *done_ud = f->done_ud;

	forwarder_set_tls(f, NULL, NULL, NULL);
	hora_free(f);
	if (done != NULL)
		done(done_ud);
}

int forwarder_new(uv_loop_t *loop, forwarder **out, hora_error *err)
{
	forwarder *f;
	int rv;

	*out = NULL;
	if ((f = hora_calloc(1, sizeof *f)) == NULL)
		return hora_error_set(err, -HORA_ENOMEM, "",
				      "out of memory creating the forwarder");
	if ((rv = curl_loop_new(loop, &f->cl, err)) != 0) {
		hora_free(f);
		return rv;
	}
	curl_loop_set_max_connects(f->cl, MAX_CONNECTS);
	f->conf.connect_timeout_ms = FORWARD_CONNECT_TIMEOUT_MS;
	*out = f;
	return 0;
}

void forwarder_stats_get(const forwarder *f, forwarder_stats *out)
{
	*out = f->st;
	out->in_flight = curl_loop_pending(f->cl);
}

int forwarder_set_tls(forwarder *f, const char *ca, const char *cert,
		      const char *key)
{
	char *c = ca ? hora_strdup(ca) : NULL;
	char *e = cert ? hora_strdup(cert) : NULL;
	char *k = key ? hora_strdup(key) : NULL;
	if ((ca && !c) || (cert && !e) || (key && !k)) {
		hora_free(c);
		hora_free(e);
		hora_free(k);
		return -HORA_ENOMEM;
	}
	hora_free(f->tls_ca);
	hora_free(f->tls_cert);
	hora_free(f->tls_key);
	f->tls_ca = c;
	f->tls_cert = e;
	f->tls_key = k;
	f->conf.ca_file = c;
	f->conf.cert_file = e;
	f->conf.key_file = k;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Transfers */

/* Keep the value of `line` ("Name: value\r\n") in *slot if its name is
 * `name`.  Returns false on allocation failure. */
static bool keep_header(const char *line, size_t n, const char *name,
			char **slot)
{
	size_t nl = strlen(name);
	const char *v, *end = line + n;

	if (n <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
		return true;
	v = line + nl + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' ||
			   end[-1] == ' ' || end[-1] == '\t'))
		end--;
	hora_free(*slot);
	*slot = hora_strndup(v, (size_t)(end - v));
	return *slot != NULL;
}

static void reset_answer(fwd_xfer *t)
{
	hora_free(t->ctype);
	hora_free(t->retry_after);
	hora_free(t->location);
	t->ctype = t->retry_after = t->location = NULL;
	if (!t->body.buf.oom)
		buf_clear(&t->body.buf);
}

/* FORWARD_STREAM: the leader answered 200; relay it as a stream from
 * now on.  false if the stream could not be started. */
static bool stream_start(fwd_xfer *t)
{
	long status = 0;
	if (t->streaming || t->req == NULL)
		return true;
	curl_easy_getinfo(t->x.easy, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200)
		return true; /* an error answer: relayed whole at the end */
	http_response_header(t->req, "Cache-Control", "no-store");
	if (http_respond_stream(t->req, 200,
				t->ctype ? t->ctype : "application/x-ndjson") !=
	    0)
		return false;
	t->streaming = true;
	return true;
}

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	fwd_xfer *t = ud;
	size_t n = size * nmemb;

	/* the end of the head: a stream's client gets it at once */
	if ((t->flags & FORWARD_STREAM) && n <= 2 &&
	    (n == 0 || ptr[0] == '\r' || ptr[0] == '\n'))
		return stream_start(t) ? n : 0;
	/* A status line starts a new answer (after a 1xx, or a retry). */
	if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
		reset_answer(t);
		return n;
	}
	if (!keep_header(ptr, n, "Content-Type", &t->ctype) ||
	    !keep_header(ptr, n, "Retry-After", &t->retry_after) ||
	    !keep_header(ptr, n, "Location", &t->location)) {
		t->oom = true;
		return 0;
	}
	return n;
}

static fwd_xfer *xfer_new(forwarder *f)
{
	fwd_xfer *t = hora_calloc(1, sizeof *t);

	if (t == NULL)
		return NULL;
	t->f = f;
	t->body.max = FORWARD_MAX_RESPONSE;
	if (f->npool > 0) {
		t->x.easy = f->pool[--f->npool];
	} else if ((t->x.easy = curl_easy_init()) == NULL) {
		hora_free(t);
		return NULL;
	}
	return t;
}

/* Free `t`, which is not in flight. */
static void xfer_free(fwd_xfer *t)
{
	forwarder *f = t->f;

	if (t->x.easy != NULL) {
		if (!f->closing && f->npool < POOL_MAX) {
			curl_easy_reset(t->x.easy);
			f->pool[f->npool++] = t->x.easy;
		} else {
			curl_easy_cleanup(t->x.easy);
		}
	}
	curl_slist_free_all(t->headers);
	hora_free(t->target);
	buf_free(&t->body.buf);
	hora_free(t->ctype);
	hora_free(t->retry_after);
	hora_free(t->location);
	hora_free(t);
}

/* Set up and start `t`: the builder's options, then the forwarder's own
 * (the raw path as is, HTTP/1.1 and TCP keep-alive probes on the
 * connections to the leader, the answer's headers kept).  0 or
 * -HORA_ENOMEM. */
/* FORWARD_STREAM's body: to the client as it comes once streaming,
 * else (an error answer) kept whole like any other. */
static size_t stream_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	fwd_xfer *t = ud;
	size_t n = size * nmemb;
	if (!stream_start(t))
		return 0;
	if (!t->streaming)
		return httpc_body_write(ptr, size, nmemb, &t->body);
	if (t->req == NULL || http_stream_write(t->req, ptr, n) != 0)
		return 0; /* the client's stream is cut: stop */
	return n;
}

static int xfer_start(fwd_xfer *t, const httpc_req *hr)
{
	CURL *e = t->x.easy;
	bool stream = (t->flags & FORWARD_STREAM) != 0;

	if (httpc_prepare(e, &t->f->conf, hr) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION,
			     stream ? stream_body : httpc_body_write) !=
		    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA,
			     stream ? (void *)t : (void *)&t->body) !=
		    CURLE_OK ||
	    (stream && (curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L) !=
				CURLE_OK ||
			curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
					 FORWARD_STREAM_SILENCE_S) !=
				CURLE_OK)) ||
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb) !=
		    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)t) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
			     (long)CURL_HTTP_VERSION_1_1) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L) != CURLE_OK)
		return -HORA_ENOMEM;
	t->x.done = xfer_done;
	return curl_loop_add(t->f->cl, &t->x) == 0 ? 0 : -HORA_ENOMEM;
}

/* Why a transfer failed, as a phrase. */
static void why(fwd_xfer *t, CURLcode code, char *out, size_t cap)
{
	if (t->body.too_large)
		snprintf(out, cap, "its answer is larger than %zu bytes",
			 FORWARD_MAX_RESPONSE);
	else if (t->oom || t->body.buf.oom)
		snprintf(out, cap, "out of memory reading its answer");
	else
		httpc_error_text(t->x.easy, code, t->errbuf, out, cap);
}

static const char runs_empty[] = "{\"runs\":[]}";
static const char unavailable_fallback[] =
	"{\"error\":{\"code\":\"unavailable\",\"message\":\"the leader did "
	"not answer; retry\"}}";

/* 503 unavailable naming the leader and the reason. */
static void answer_unavailable(http_request *req, const char *target,
			       const char *reason)
{
	hora_buf b = HORA_BUF_INIT;

	buf_adds(&b, "{\"error\":{\"code\":\"unavailable\",\"message\":\""
		     "the leader at ");
	add_json_text(&b, target);
	buf_adds(&b, " did not answer: ");
	add_json_text(&b, reason);
	buf_adds(&b, "; retry\"}}");
	http_response_header(req, "Retry-After", "1");
	if (b.oom)
		http_respond(req, 503, "application/json",
			     unavailable_fallback,
			     sizeof unavailable_fallback - 1);
	else
		http_respond(req, 503, "application/json", b.p, b.len);
	buf_free(&b);
}

static void forward_failed(fwd_xfer *t, const char *reason)
{
	http_request *req = t->req;

	t->f->st.failed++;
	if (t->flags & FORWARD_CLAIM)
		http_respond(req, 200, "application/json", runs_empty,
			     sizeof runs_empty - 1);
	else
		answer_unavailable(req, t->target, reason);
}

/* The transfer of a forward is over. */
static void forward_done(fwd_xfer *t, CURLcode code)
{
	http_request *req = t->req;
	long status = 0;
	char reason[CURL_ERROR_SIZE + 128];

	http_request_on_abort(req, NULL, NULL);
	if (t->streaming) {
		/* the leader ended it, went away or we close: a clean end,
		 * the worker connects again */
		t->f->st.relayed++;
		http_stream_end(req);
		return;
	}
	if (curl_loop_closing(t->f->cl)) {
		/* forwarder_close(): claims too get the 503 */
		t->f->st.failed++;
		answer_unavailable(req, t->target,
				   "this node is shutting down");
		return;
	}
	curl_easy_getinfo(t->x.easy, CURLINFO_RESPONSE_CODE, &status);
	if (code != CURLE_OK) {
		why(t, code, reason, sizeof reason);
		forward_failed(t, reason);
		return;
	}
	if (status < 200 || status > 599) {
		snprintf(reason, sizeof reason,
			 "it answered with HTTP status %ld", status);
		forward_failed(t, reason);
		return;
	}
	t->f->st.relayed++;
	if (t->retry_after != NULL)
		http_response_header(req, "Retry-After", t->retry_after);
	if (t->location != NULL)
		http_response_header(req, "Location", t->location);
	http_respond(req, (int)status, t->ctype,
		     t->body.buf.p != NULL ? t->body.buf.p : "",
		     t->body.buf.len);
}

static void call_done(fwd_xfer *t, CURLcode code)
{
	long status = 0;
	char reason[CURL_ERROR_SIZE + 128], msg[CURL_ERROR_SIZE + 400];
	int n;

	curl_easy_getinfo(t->x.easy, CURLINFO_RESPONSE_CODE, &status);
	if (curl_loop_closing(t->f->cl)) {
		snprintf(reason, sizeof reason, "this node is shutting down");
	} else if (code == CURLE_OK && status >= 100 && status <= 999) {
		t->cb(t->ud, (int)status,
		      t->body.buf.p != NULL ? t->body.buf.p : "",
		      t->body.buf.len);
		return;
	} else if (code == CURLE_OK) {
		snprintf(reason, sizeof reason,
			 "it answered with HTTP status %ld", status);
	} else {
		why(t, code, reason, sizeof reason);
	}
	t->f->st.calls_failed++;
	n = snprintf(msg, sizeof msg, "%.256s did not answer: %s", t->target,
		     reason);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof msg)
		n = (int)sizeof msg - 1;
	t->cb(t->ud, 0, msg, (size_t)n);
}

/* The driver's callback: finished, failed, or cut by forwarder_close. */
static void xfer_done(curl_loop_xfer *x, CURLcode code)
{
	fwd_xfer *t = (fwd_xfer *)(void *)x; /* x is the first member */

	if (t->req != NULL)
		forward_done(t, code);
	else
		call_done(t, code);
	xfer_free(t);
}

/* ------------------------------------------------------------------ */
/* Forwarding */

/* The client left first: drop the transfer (libcurl closes a connection
 * removed mid-answer, so the leader sees its client leave). */
static void on_client_abort(http_request *req, void *ud)
{
	fwd_xfer *t = ud;

	(void)req;
	HORA_ASSERT(t->req == req);
	t->f->st.cancelled++;
	t->req = NULL;
	curl_loop_remove(&t->x);
	xfer_free(t);
}

struct query_build {
	hora_buf *b;
	bool first;
};

static int query_add(void *ud, const char *name, const char *value)
{
	struct query_build *q = ud;

	buf_addc(q->b, q->first ? '?' : '&');
	q->first = false;
	buf_add_pct(q->b, name, BUF_PCT_COMPONENT);
	if (*value != '\0') {
		buf_addc(q->b, '=');
		buf_add_pct(q->b, value, BUF_PCT_COMPONENT);
	}
	return q->b->oom;
}

/* The claim's wait_ms from its JSON body: 0 when absent or unreadable,
 * capped at FORWARD_CLAIM_WAIT_MAX_MS. */
static long claim_wait_ms(const char *body, size_t len)
{
	json_t *j;
	long ms = 0;

	if (len == 0)
		return 0;
	j = json_loadb(body, len, 0, NULL);
	if (j == NULL)
		return 0;
	if (json_is_object(j)) {
		json_t *w = json_object_get(j, "wait_ms");
		if (json_is_integer(w)) {
			json_int_t v = json_integer_value(w);
			if (v > FORWARD_CLAIM_WAIT_MAX_MS)
				v = FORWARD_CLAIM_WAIT_MAX_MS;
			ms = v > 0 ? (long)v : 0;
		}
	}
	json_decref(j);
	return ms;
}

int forwarder_forward(forwarder *f, http_request *req, const char *base_url,
		      uint64_t from_id, int flags)
{
	const char *method = http_request_method(req);
	const char *ct, *auth, *accept, *path;
	char id[24];
	size_t blen;
	const char *body = http_request_body(req, &blen);
	hora_buf url = HORA_BUF_INIT;
	long timeout = FORWARD_TIMEOUT_MS;
	fwd_xfer *t;

	if (f->closing) {
		hora_buf b = HORA_BUF_INIT;
		httpc_base_url(&b, base_url);
		answer_unavailable(req, b.oom ? "(the leader)" : b.p,
				   "this node is shutting down");
		buf_free(&b);
		return 0;
	}
	if ((t = xfer_new(f)) == NULL)
		return -HORA_ENOMEM;
	t->req = req;
	t->flags = flags;

	/* base + raw path + rebuilt query */
	httpc_base_url(&url, base_url);
	if (!url.oom && (t->target = hora_strdup(url.p)) == NULL)
		goto nomem;
	path = http_request_path(req);
	if (*path != '/')
		buf_addc(&url, '/');
	buf_add_pct(&url, path, BUF_PCT_RAW_PATH);
	if (!url.oom) {
		struct query_build q = {&url, true};
		http_request_query_each(req, NULL, query_add, &q);
	}
	if (url.oom)
		goto nomem;

	snprintf(id, sizeof id, "%" PRIu64, from_id);
	ct = http_request_header(req, "Content-Type");
	auth = http_request_header(req, "Authorization");
	accept = http_request_header(req, "Accept");
	if (httpc_header(&t->headers, "X-Hora-Forwarded", id) != 0 ||
	    httpc_header(&t->headers, "Content-Type", ct) != 0 ||
	    (auth != NULL &&
	     httpc_header(&t->headers, "Authorization", auth) != 0) ||
	    httpc_header(&t->headers, "Accept", accept) != 0 ||
	    httpc_header(&t->headers, "Expect", NULL) != 0)
		goto nomem;

	if (flags & FORWARD_CLAIM)
		timeout += claim_wait_ms(body, blen);
	if (flags & FORWARD_STREAM)
		timeout = 0; /* none; FORWARD_STREAM_SILENCE_S instead */
	if (xfer_start(t, &(httpc_req){
				  .method = method,
				  .url = url.p,
				  .body = blen > 0 ? body : NULL,
				  .body_len = blen,
				  .headers = t->headers,
				  .timeout_ms = timeout,
				  .errbuf = t->errbuf,
			  }) != 0)
		goto nomem;
	buf_free(&url);
	http_request_on_abort(req, on_client_abort, t);
	f->st.forwarded++;
	return 0;

nomem:
	buf_free(&url);
	xfer_free(t);
	return -HORA_ENOMEM;
}

/* ------------------------------------------------------------------ */
/* Internal calls */

int forwarder_call(forwarder *f, const char *method, const char *url,
		   const char *json_body, const char *token,
		   forwarder_call_cb cb, void *ud)
{
	fwd_xfer *t;

	if (method == NULL || *method == '\0' || url == NULL ||
	    *url == '\0' || cb == NULL)
		return -HORA_EINVAL;
	if (f->closing)
		return -HORA_ESHUTDOWN;
	if ((t = xfer_new(f)) == NULL)
		return -HORA_ENOMEM;
	t->cb = cb;
	t->ud = ud;
	if ((t->target = hora_strdup(url)) == NULL ||
	    httpc_api_headers(&t->headers, method, json_body != NULL,
			      token) != 0 ||
	    xfer_start(t, &(httpc_req){
				  .method = method,
				  .url = url,
				  .body = json_body,
				  .body_len = json_body != NULL
						      ? strlen(json_body)
						      : 0,
				  .body_copy = true,
				  .headers = t->headers,
				  .timeout_ms = FORWARD_CALL_TIMEOUT_MS,
				  .errbuf = t->errbuf,
			  }) != 0) {
		xfer_free(t);
		return -HORA_ENOMEM;
	}
	f->st.calls++;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Closing */

void forwarder_close(forwarder *f, void (*done)(void *ud), void *ud)
{
	HORA_ASSERT(!f->closing);
	f->closing = true;
	f->done = done;
	f->done_ud = ud;
	while (f->npool > 0)
		curl_easy_cleanup(f->pool[--f->npool]);
	/* Every transfer in flight is told (xfer_done: 503, or the call's
	 * callback with status 0), then the driver closes; cl_closed frees
	 * `f` from the loop. */
	curl_loop_close(f->cl, cl_closed, f);
}
