/*
 * forward.c - relay requests to the leader, and internal calls, through
 * one libcurl multi handle driven by the loop.
 *
 * The loop glue is exec_http.c's (the curl-multi-uv pattern):
 * CURLMOPT_SOCKETFUNCTION gives each socket a uv_poll_t,
 * CURLMOPT_TIMERFUNCTION drives one uv_timer_t, both call
 * curl_multi_socket_action() and then drain curl_multi_info_read().
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
 * check_info(), after curl_multi_socket_action() returned, with the
 * transfer already out of the multi and off the list.  From there it may
 * start transfers, abort requests (our abort callback removes the easy
 * handle), or close the forwarder: the multi handle is then cleaned up at
 * once and check_info() stops, but `f` itself is only freed from the last
 * uv close callback, never under a caller's feet.
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

#ifndef HORA_VERSION
#define HORA_VERSION "0"
#endif

#define POOL_MAX 16      /* idle easy handles kept */
#define MAX_CONNECTS 64L /* idle connections kept in the cache */
#define BODY_INITIAL 1024

typedef struct fwd_poll fwd_poll;
typedef struct fwd_xfer fwd_xfer;

struct fwd_poll {
	uv_poll_t poll;
	forwarder *f;
	curl_socket_t fd;
	fwd_poll *prev, *next; /* f->polls, until the close callback */
	bool closing;
};

struct fwd_xfer {
	forwarder *f;
	fwd_xfer *prev, *next; /* f->xfers while in the multi */
	CURL *easy;
	struct curl_slist *headers;
	http_request *req; /* a forward; NULL for a call */
	int flags;
	forwarder_call_cb cb;
	void *ud;
	char *target; /* forward: the leader's base URL; call: the URL */
	char *body;   /* the answer's body, '\0'-terminated when set */
	size_t len, cap;
	char *ctype, *retry_after, *location; /* the answer's headers */
	bool too_large, oom;
	char errbuf[CURL_ERROR_SIZE];
};

struct forwarder {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	fwd_poll *polls;
	fwd_xfer *xfers;
	CURL *pool[POOL_MAX];
	size_t npool;
	unsigned handles; /* uv handles not yet closed */
	bool closing;
	void (*done)(void *ud);
	void *done_ud;
	char *tls_ca, *tls_cert, *tls_key; /* forwarder_set_tls */
	forwarder_stats st;
};

/* ------------------------------------------------------------------ */
/* Growing strings (hora_malloc'd) */

typedef struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
} sbuf;

static void sb_reserve(sbuf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->oom)
		return;
	if (b->len + more + 1 <= b->cap)
		return;
	cap = b->cap < 256 ? 256 : b->cap;
	while (cap < b->len + more + 1)
		cap *= 2;
	if ((p = hora_realloc(b->p, cap)) == NULL) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void sb_add(sbuf *b, const char *s, size_t n)
{
	sb_reserve(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_adds(sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static const char hexdig[] = "0123456789ABCDEF";

static void sb_pct(sbuf *b, unsigned char c)
{
	char e[3] = {'%', hexdig[c >> 4], hexdig[c & 15]};
	sb_add(b, e, 3);
}

/* A query name or value: everything but RFC 3986 unreserved escaped. */
static void sb_add_query_part(sbuf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~')
			sb_add(b, s, 1);
		else
			sb_pct(b, c);
	}
}

/* The raw path, kept as it is (its escapes included) except for bytes a
 * URL cannot carry raw. */
static void sb_add_path(sbuf *b, const char *s)
{
	if (*s != '/')
		sb_add(b, "/", 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= 0x20 || c >= 0x7f || c == '#' || c == '?')
			sb_pct(b, c);
		else
			sb_add(b, s, 1);
	}
}

/* JSON string contents. */
static void sb_add_json(sbuf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			sb_add(b, e, 2);
		} else if (c < 0x20) {
			char e[7];
			snprintf(e, sizeof e, "\\u%04x", c);
			sb_add(b, e, 6);
		} else {
			sb_add(b, s, 1);
		}
	}
}

/* "http://host:port" from base_url: scheme assumed, trailing '/' off. */
static void sb_add_base(sbuf *b, const char *base)
{
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	if (strstr(base, "://") == NULL)
		sb_adds(b, "http://");
	sb_add(b, base, n);
}

/* ------------------------------------------------------------------ */
/* The multi interface on the loop */

static void check_info(forwarder *f);

static void handle_closed(forwarder *f)
{
	HORA_ASSERT(f->handles > 0);
	if (--f->handles == 0 && f->closing) {
		void (*done)(void *) = f->done;
		void *ud = f->done_ud;
		forwarder_set_tls(f, NULL, NULL, NULL);
		hora_free(f);
		if (done != NULL)
			done(ud);
	}
}

static void poll_close_cb(uv_handle_t *h)
{
	fwd_poll *p = h->data;
	forwarder *f = p->f;

	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		f->polls = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	hora_free(p);
	handle_closed(f);
}

static void poll_close(fwd_poll *p)
{
	if (p->closing)
		return;
	p->closing = true;
	uv_close((uv_handle_t *)&p->poll, poll_close_cb);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
	fwd_poll *p = h->data;
	forwarder *f = p->f;
	int flags = 0, running;

	if (f->multi == NULL)
		return;
	if (status < 0) {
		flags = CURL_CSELECT_ERR;
	} else {
		if (events & UV_READABLE)
			flags |= CURL_CSELECT_IN;
		if (events & UV_WRITABLE)
			flags |= CURL_CSELECT_OUT;
	}
	curl_multi_socket_action(f->multi, p->fd, flags, &running);
	check_info(f);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp,
		     void *socketp)
{
	forwarder *f = userp;
	fwd_poll *p = socketp;
	int events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (p != NULL) {
			curl_multi_assign(f->multi, s, NULL);
			poll_close(p);
		}
		return 0;
	}
	if (f->closing)
		return 0;
	if (p == NULL) {
		if ((p = hora_calloc(1, sizeof *p)) == NULL)
			return -1;
		if (uv_poll_init_socket(f->loop, &p->poll, s) != 0) {
			hora_free(p);
			return -1;
		}
		p->poll.data = p;
		p->f = f;
		p->fd = s;
		p->next = f->polls;
		if (f->polls != NULL)
			f->polls->prev = p;
		f->polls = p;
		f->handles++;
		curl_multi_assign(f->multi, s, p);
	}
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&p->poll, events, poll_cb);
	return 0;
}

static void timer_cb(uv_timer_t *h)
{
	forwarder *f = h->data;
	int running;

	if (f->multi == NULL)
		return;
	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_info(f);
}

static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
	forwarder *f = userp;

	(void)multi;
	if (f->closing)
		return 0;
	if (timeout_ms < 0)
		uv_timer_stop(&f->timer);
	else /* 0 too: on the next iteration, not from inside libcurl */
		uv_timer_start(&f->timer, timer_cb, (uint64_t)timeout_ms, 0);
	return 0;
}

static void timer_close_cb(uv_handle_t *h)
{
	handle_closed(h->data);
}

int forwarder_new(uv_loop_t *loop, forwarder **out, hora_error *err)
{
	static bool global_done;
	forwarder *f;

	*out = NULL;
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return hora_error_set(err, -HORA_ENOMEM, "",
					      "cannot initialise libcurl");
		global_done = true;
	}
	if ((f = hora_calloc(1, sizeof *f)) == NULL)
		return hora_error_set(err, -HORA_ENOMEM, "",
				      "out of memory creating the forwarder");
	if ((f->multi = curl_multi_init()) == NULL) {
		hora_free(f);
		return hora_error_set(err, -HORA_ENOMEM, "",
				      "cannot create a libcurl multi handle");
	}
	f->loop = loop;
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, MAX_CONNECTS);
	uv_timer_init(loop, &f->timer);
	f->timer.data = f;
	f->handles = 1;
	*out = f;
	return 0;
}

void forwarder_stats_get(const forwarder *f, forwarder_stats *out)
{
	*out = f->st;
}

/* ------------------------------------------------------------------ */
/* Transfers */

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	fwd_xfer *t = ud;
	size_t n = size * nmemb;

	if (n > FORWARD_MAX_RESPONSE - t->len) {
		t->too_large = true;
		return 0;
	}
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap < BODY_INITIAL ? BODY_INITIAL : t->cap;
		char *p;
		while (cap < t->len + n + 1)
			cap *= 2;
		if ((p = hora_realloc(t->body, cap)) == NULL) {
			t->oom = true;
			return 0;
		}
		t->body = p;
		t->cap = cap;
	}
	memcpy(t->body + t->len, ptr, n);
	t->len += n;
	t->body[t->len] = '\0';
	return n;
}

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
	t->len = 0;
	if (t->body != NULL)
		t->body[0] = '\0';
}

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	fwd_xfer *t = ud;
	size_t n = size * nmemb;

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

/* Append "Name: value" ("Name;" for an empty value, libcurl's way of
 * sending an empty header; "Name:" with value NULL removes a header
 * libcurl would add). */
static int add_header(fwd_xfer *t, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = value != NULL ? strlen(value) : 0;
	char small[256], *line = small;
	struct curl_slist *l;

	if (nl + vl + 3 > sizeof small &&
	    (line = hora_malloc(nl + vl + 3)) == NULL)
		return -HORA_ENOMEM;
	memcpy(line, name, nl);
	if (value == NULL) {
		line[nl] = ':';
		line[nl + 1] = '\0';
	} else if (vl == 0) {
		line[nl] = ';';
		line[nl + 1] = '\0';
	} else {
		line[nl] = ':';
		line[nl + 1] = ' ';
		memcpy(line + nl + 2, value, vl + 1);
	}
	l = curl_slist_append(t->headers, line);
	if (line != small)
		hora_free(line);
	if (l == NULL)
		return -HORA_ENOMEM;
	t->headers = l;
	return 0;
}

static fwd_xfer *xfer_new(forwarder *f)
{
	fwd_xfer *t = hora_calloc(1, sizeof *t);

	if (t == NULL)
		return NULL;
	t->f = f;
	if (f->npool > 0) {
		t->easy = f->pool[--f->npool];
	} else if ((t->easy = curl_easy_init()) == NULL) {
		hora_free(t);
		return NULL;
	}
	return t;
}

/* Free `t`, which is out of the multi and off the list. */
static void xfer_free(fwd_xfer *t)
{
	forwarder *f = t->f;

	if (t->easy != NULL) {
		if (!f->closing && f->npool < POOL_MAX) {
			curl_easy_reset(t->easy);
			f->pool[f->npool++] = t->easy;
		} else {
			curl_easy_cleanup(t->easy);
		}
	}
	curl_slist_free_all(t->headers);
	hora_free(t->target);
	hora_free(t->body);
	hora_free(t->ctype);
	hora_free(t->retry_after);
	hora_free(t->location);
	hora_free(t);
}

static void xfer_link(fwd_xfer *t)
{
	forwarder *f = t->f;

	t->prev = NULL;
	t->next = f->xfers;
	if (f->xfers != NULL)
		f->xfers->prev = t;
	f->xfers = t;
	f->st.in_flight++;
}

/* Out of the multi and off the list. */
static void xfer_detach(fwd_xfer *t)
{
	forwarder *f = t->f;

	if (f->multi != NULL)
		curl_multi_remove_handle(f->multi, t->easy);
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		f->xfers = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	t->prev = t->next = NULL;
	f->st.in_flight--;
}

#define SETOPT(opt, val)                                                  \
	do {                                                              \
		if (curl_easy_setopt(e, opt, val) != CURLE_OK)            \
			return -HORA_ENOMEM;                              \
	} while (0)

/* Options every transfer has.  libcurl copies `url`. */
static int setup_common(fwd_xfer *t, const char *url, long timeout_ms)
{
	CURL *e = t->easy;

	SETOPT(CURLOPT_URL, url);
	SETOPT(CURLOPT_PRIVATE, (void *)t);
	SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
	SETOPT(CURLOPT_WRITEDATA, (void *)t);
	SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
	SETOPT(CURLOPT_HEADERDATA, (void *)t);
	SETOPT(CURLOPT_ERRORBUFFER, t->errbuf);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_PATH_AS_IS, 1L); /* no "/../" squashing */
#if LIBCURL_VERSION_NUM >= 0x075500
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
	SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SETOPT(CURLOPT_TCP_NODELAY, 1L);
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(CURLOPT_TCP_KEEPIDLE, 30L);
	SETOPT(CURLOPT_TCP_KEEPINTVL, 10L);
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, FORWARD_CONNECT_TIMEOUT_MS);
	SETOPT(CURLOPT_TIMEOUT_MS, timeout_ms);
	SETOPT(CURLOPT_USERAGENT, "hora/" HORA_VERSION);
	SETOPT(CURLOPT_HTTPHEADER, t->headers);
	if (t->f->tls_ca != NULL)
		SETOPT(CURLOPT_CAINFO, t->f->tls_ca);
	if (t->f->tls_cert != NULL) {
		SETOPT(CURLOPT_SSLCERT, t->f->tls_cert);
		SETOPT(CURLOPT_SSLKEY, t->f->tls_key);
	}
	return 0;
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
	return 0;
}

/* Method and body.  With `copy`, libcurl copies the body; otherwise it
 * must outlive the transfer. */
static int setup_method(fwd_xfer *t, const char *method, const char *body,
			size_t len, bool copy)
{
	CURL *e = t->easy;
	bool send_body = len > 0 || strcmp(method, "POST") == 0 ||
			 strcmp(method, "PUT") == 0 ||
			 strcmp(method, "PATCH") == 0;

	if (strcmp(method, "HEAD") == 0) {
		SETOPT(CURLOPT_NOBODY, 1L);
	} else if (send_body) {
		SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		if (copy)
			SETOPT(CURLOPT_COPYPOSTFIELDS, body);
		else
			SETOPT(CURLOPT_POSTFIELDS, body);
		if (strcmp(method, "POST") != 0)
			SETOPT(CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") != 0) {
		SETOPT(CURLOPT_CUSTOMREQUEST, method);
	}
	return 0;
}

#undef SETOPT

static int xfer_start(fwd_xfer *t)
{
	CURLMcode mc = curl_multi_add_handle(t->f->multi, t->easy);

	if (mc != CURLM_OK)
		return -HORA_ENOMEM;
	xfer_link(t);
	return 0;
}

/* Why a transfer failed, as a phrase. */
static void why(const fwd_xfer *t, CURLcode code, char *out, size_t cap)
{
	long oserr = 0;
	size_t n;

	if (t->too_large) {
		snprintf(out, cap, "its answer is larger than %zu bytes",
			 FORWARD_MAX_RESPONSE);
		return;
	}
	if (t->oom) {
		snprintf(out, cap, "out of memory reading its answer");
		return;
	}
	snprintf(out, cap, "%s",
		 t->errbuf[0] != '\0' ? t->errbuf : curl_easy_strerror(code));
	n = strlen(out);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' ||
			 out[n - 1] == '.'))
		out[--n] = '\0';
	if (curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &oserr) ==
		    CURLE_OK &&
	    oserr > 0 && oserr <= INT32_MAX) {
		const char *os = strerror((int)oserr);
		if (strstr(out, os) == NULL && n < cap)
			snprintf(out + n, cap - n, " (%s)", os);
	}
}

static const char runs_empty[] = "{\"runs\":[]}";
static const char unavailable_fallback[] =
	"{\"error\":{\"code\":\"unavailable\",\"message\":\"the leader did "
	"not answer; retry\"}}";

/* 503 unavailable naming the leader and the reason. */
static void answer_unavailable(http_request *req, const char *target,
			       const char *reason)
{
	sbuf b = {0};

	sb_adds(&b, "{\"error\":{\"code\":\"unavailable\",\"message\":\""
		    "the leader at ");
	sb_add_json(&b, target);
	sb_adds(&b, " did not answer: ");
	sb_add_json(&b, reason);
	sb_adds(&b, "; retry\"}}");
	http_response_header(req, "Retry-After", "1");
	if (b.oom)
		http_respond(req, 503, "application/json",
			     unavailable_fallback,
			     sizeof unavailable_fallback - 1);
	else
		http_respond(req, 503, "application/json", b.p, b.len);
	hora_free(b.p);
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

/* The transfer of a forward is over (out of the multi, off the list). */
static void forward_done(fwd_xfer *t, CURLcode code)
{
	http_request *req = t->req;
	long status = 0;
	char reason[CURL_ERROR_SIZE + 128];

	http_request_on_abort(req, NULL, NULL);
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
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
		     t->body != NULL ? t->body : "", t->len);
}

static void call_done(fwd_xfer *t, CURLcode code)
{
	long status = 0;

	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	if (code == CURLE_OK && status >= 100 && status <= 999) {
		t->cb(t->ud, (int)status, t->body != NULL ? t->body : "",
		      t->len);
	} else {
		char reason[CURL_ERROR_SIZE + 128], msg[CURL_ERROR_SIZE + 400];
		int n;

		t->f->st.calls_failed++;
		if (code == CURLE_OK)
			snprintf(reason, sizeof reason,
				 "it answered with HTTP status %ld", status);
		else
			why(t, code, reason, sizeof reason);
		n = snprintf(msg, sizeof msg, "%.256s did not answer: %s",
			     t->target, reason);
		if (n < 0)
			n = 0;
		if ((size_t)n >= sizeof msg)
			n = (int)sizeof msg - 1;
		t->cb(t->ud, 0, msg, (size_t)n);
	}
}

static void check_info(forwarder *f)
{
	CURLMsg *msg;
	int pending;

	while (f->multi != NULL &&
	       (msg = curl_multi_info_read(f->multi, &pending)) != NULL) {
		CURLcode code = msg->data.result;
		char *priv = NULL;
		fwd_xfer *t;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		t = (fwd_xfer *)(void *)priv;
		HORA_ASSERT(t != NULL && t->easy == msg->easy_handle);
		xfer_detach(t);
		if (t->req != NULL)
			forward_done(t, code);
		else
			call_done(t, code);
		xfer_free(t);
	}
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
	xfer_detach(t);
	xfer_free(t);
}

struct query_build {
	sbuf *b;
	bool first;
};

static int query_add(void *ud, const char *name, const char *value)
{
	struct query_build *q = ud;

	sb_add(q->b, q->first ? "?" : "&", 1);
	q->first = false;
	sb_add_query_part(q->b, name);
	if (*value != '\0') {
		sb_add(q->b, "=", 1);
		sb_add_query_part(q->b, value);
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
	const char *ct, *auth, *accept;
	char id[24];
	size_t blen;
	const char *body = http_request_body(req, &blen);
	sbuf url = {0};
	long timeout = FORWARD_TIMEOUT_MS;
	fwd_xfer *t;
	int rv;

	if (f->closing) {
		sbuf b = {0};
		sb_add_base(&b, base_url);
		answer_unavailable(req, b.oom ? "(the leader)" : b.p,
				   "this node is shutting down");
		hora_free(b.p);
		return 0;
	}
	if ((t = xfer_new(f)) == NULL)
		return -HORA_ENOMEM;
	t->req = req;
	t->flags = flags;

	/* base + raw path + rebuilt query */
	sb_add_base(&url, base_url);
	if (!url.oom && (t->target = hora_strdup(url.p)) == NULL)
		url.oom = true;
	sb_add_path(&url, http_request_path(req));
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
	if (add_header(t, "X-Hora-Forwarded", id) != 0 ||
	    add_header(t, "Content-Type", ct) != 0 ||
	    (auth != NULL && add_header(t, "Authorization", auth) != 0) ||
	    add_header(t, "Accept", accept) != 0 ||
	    add_header(t, "Expect", NULL) != 0)
		goto nomem;

	if (flags & FORWARD_CLAIM)
		timeout += claim_wait_ms(body, blen);
	if ((rv = setup_common(t, url.p, timeout)) != 0 ||
	    (rv = setup_method(t, method, body, blen, false)) != 0 ||
	    (rv = xfer_start(t)) != 0)
		goto nomem;
	hora_free(url.p);
	http_request_on_abort(req, on_client_abort, t);
	f->st.forwarded++;
	return 0;

nomem:
	hora_free(url.p);
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
	int rv;

	if (method == NULL || *method == '\0' || url == NULL ||
	    *url == '\0' || cb == NULL)
		return -HORA_EINVAL;
	if (f->closing)
		return -HORA_ESHUTDOWN;
	if ((t = xfer_new(f)) == NULL)
		return -HORA_ENOMEM;
	t->cb = cb;
	t->ud = ud;
	if ((t->target = hora_strdup(url)) == NULL)
		goto nomem;
	if (add_header(t, "Content-Type",
		       json_body != NULL ? "application/json" : NULL) != 0 ||
	    add_header(t, "Accept", "application/json") != 0 ||
	    add_header(t, "Expect", NULL) != 0)
		goto nomem;
	if (token != NULL) {
		sbuf b = {0};
		sb_adds(&b, "Bearer ");
		sb_adds(&b, token);
		rv = b.oom ? -HORA_ENOMEM
			   : add_header(t, "Authorization", b.p);
		hora_free(b.p);
		if (rv != 0)
			goto nomem;
	}
	if (setup_common(t, url, FORWARD_CALL_TIMEOUT_MS) != 0 ||
	    setup_method(t, method, json_body != NULL ? json_body : "",
			 json_body != NULL ? strlen(json_body) : 0,
			 true) != 0 ||
	    xfer_start(t) != 0)
		goto nomem;
	f->st.calls++;
	return 0;

nomem:
	xfer_free(t);
	return -HORA_ENOMEM;
}

/* ------------------------------------------------------------------ */
/* Closing */

void forwarder_close(forwarder *f, void (*done)(void *ud), void *ud)
{
	fwd_xfer *t;

	HORA_ASSERT(!f->closing);
	f->closing = true;
	f->done = done;
	f->done_ud = ud;
	uv_timer_stop(&f->timer);

	/* Every transfer in flight: out of the multi, then its owner told. */
	while ((t = f->xfers) != NULL) {
		xfer_detach(t);
		if (t->req != NULL) {
			http_request_on_abort(t->req, NULL, NULL);
			f->st.failed++;
			answer_unavailable(t->req, t->target,
					   "this node is shutting down");
		} else {
			char msg[512];
			int n = snprintf(msg, sizeof msg,
					 "%.256s did not answer: this node "
					 "is shutting down",
					 t->target);
			f->st.calls_failed++;
			t->cb(t->ud, 0, msg,
			      n > 0 && (size_t)n < sizeof msg ? (size_t)n : 0);
		}
		xfer_free(t);
	}

	for (fwd_poll *p = f->polls; p != NULL; p = p->next) {
		if (p->closing)
			continue;
		curl_multi_assign(f->multi, p->fd, NULL);
		poll_close(p);
	}
	while (f->npool > 0)
		curl_easy_cleanup(f->pool[--f->npool]);
	curl_multi_cleanup(f->multi); /* closes the cached connections */
	f->multi = NULL;
	uv_close((uv_handle_t *)&f->timer, timer_close_cb);
}
