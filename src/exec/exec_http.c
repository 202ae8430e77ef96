/*
 * exec_http.c - a run's `http` request through libcurl's multi interface,
 * driven by the loop: CURLMOPT_SOCKETFUNCTION gives each socket a
 * uv_poll_t, CURLMOPT_TIMERFUNCTION drives one uv_timer_t, and both call
 * curl_multi_socket_action (the curl-multi-uv pattern).  Name resolution
 * uses libcurl's asynchronous resolver, so nothing blocks the loop.
 *
 * The request: method, headers, body as stored by job_json.c, plus
 * X-Hora-Run-Id, X-Hora-Job, X-Hora-Scheduled-At and X-Hora-Attempt (these
 * four cannot be overridden by the job's headers).  No redirects are
 * followed, only http and https are spoken.  A body is sent without a
 * Content-Type unless the job gives one (libcurl would otherwise claim
 * application/x-www-form-urlencoded).  2xx is success; the response
 * body's tail is the output and the status the exit code.
 */
#include "exec/exec_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/assert.h"

struct exec_poll {
	uv_poll_t poll;
	executor *ex;
	curl_socket_t fd;
	exec_poll *prev, *next; /* ex->polls, until the close callback */
	bool closing;
};

static const char *const methods[] = {
	"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
};
#define NMETHODS (sizeof methods / sizeof methods[0])

static const char *const own_headers[] = {
	"X-Hora-Run-Id", "X-Hora-Job", "X-Hora-Scheduled-At", "X-Hora-Attempt",
};
#define NOWN (sizeof own_headers / sizeof own_headers[0])

#ifndef HORA_VERSION
#define HORA_VERSION "0"
#endif

/* ------------------------------------------------------------------ */
/* Validation (the job API validated already; a worker may be handed
 * anything, so check again what the code below relies on). */

static const char *method_canonical(const char *m)
{
	for (size_t i = 0; i < NMETHODS; i++)
		if (strcasecmp(m, methods[i]) == 0)
			return methods[i];
	return NULL;
}

static bool token_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int exec_http_validate(const json_t *http, hora_error *err)
{
	const json_t *u, *m, *h, *b;
	const char *url;

	if (!json_is_object(http))
		return hora_error_set(err, -HORA_EINVAL, "http",
				      "http must be an object {url, method, "
				      "headers, body}");
	u = json_object_get(http, "url");
	if (!json_is_string(u))
		return hora_error_set(err, -HORA_EINVAL, "http.url",
				      "http.url is required and must be a "
				      "string");
	url = json_string_value(u);
	if (strncasecmp(url, "http://", 7) != 0 &&
	    strncasecmp(url, "https://", 8) != 0)
		return hora_error_set(err, -HORA_EINVAL, "http.url",
				      "http.url must start with http:// or "
				      "https://");
	for (size_t i = 0; i < json_string_length(u); i++) {
		unsigned char c = (unsigned char)url[i];
		if (c <= 0x20 || c == 0x7f)
			return hora_error_set(
				err, -HORA_EINVAL, "http.url",
				"http.url must not contain spaces or control "
				"characters (position %zu)",
				i + 1);
	}
	m = json_object_get(http, "method");
	if (m != NULL && (!json_is_string(m) ||
			  method_canonical(json_string_value(m)) == NULL))
		return hora_error_set(err, -HORA_EINVAL, "http.method",
				      "http.method must be one of GET, POST, "
				      "PUT, PATCH, DELETE, HEAD, OPTIONS");
	h = json_object_get(http, "headers");
	if (h != NULL && !json_is_object(h))
		return hora_error_set(err, -HORA_EINVAL, "http.headers",
				      "http.headers must be an object of "
				      "strings");
	if (h != NULL) {
		const char *key;
		json_t *val;
		json_object_foreach((json_t *)h, key, val) {
			const char *v;
			if (*key == '\0')
				return hora_error_set(
					err, -HORA_EINVAL, "http.headers",
					"http.headers: a header name must "
					"not be empty");
			for (const char *k = key; *k != '\0'; k++)
				if (!token_char((unsigned char)*k))
					return hora_error_set(
						err, -HORA_EINVAL,
						"http.headers",
						"http.headers: '%.64s' is not "
						"a valid header name",
						key);
			if (!json_is_string(val))
				return hora_error_set(
					err, -HORA_EINVAL, "http.headers",
					"http.headers.%.64s must be a string",
					key);
			v = json_string_value(val);
			if (strlen(v) != json_string_length(val) ||
			    strpbrk(v, "\r\n") != NULL)
				return hora_error_set(
					err, -HORA_EINVAL, "http.headers",
					"http.headers.%.64s must not contain "
					"CR, LF or NUL",
					key);
		}
	}
	b = json_object_get(http, "body");
	if (b != NULL && !json_is_string(b))
		return hora_error_set(err, -HORA_EINVAL, "http.body",
				      "http.body must be a string");
	return 0;
}

/* ------------------------------------------------------------------ */
/* The multi interface on the loop */

static void check_info(executor *ex);

static void poll_close_cb(uv_handle_t *h)
{
	exec_poll *p = h->data;
	executor *ex = p->ex;

	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		ex->polls = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	hora_free(p);
	exec_ex_handle_closed(ex);
}

static void poll_close(exec_poll *p)
{
	if (p->closing)
		return;
	p->closing = true;
	uv_close((uv_handle_t *)&p->poll, poll_close_cb);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
	exec_poll *p = h->data;
	executor *ex = p->ex;
	int flags = 0, running;

	if (status < 0) {
		flags = CURL_CSELECT_ERR;
	} else {
		if (events & UV_READABLE)
			flags |= CURL_CSELECT_IN;
		if (events & UV_WRITABLE)
			flags |= CURL_CSELECT_OUT;
	}
	curl_multi_socket_action(ex->multi, p->fd, flags, &running);
	check_info(ex);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp,
		     void *socketp)
{
	executor *ex = userp;
	exec_poll *p = socketp;
	int events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (p != NULL) {
			curl_multi_assign(ex->multi, s, NULL);
			poll_close(p);
		}
		return 0;
	}
	if (p == NULL) {
		if ((p = hora_calloc(1, sizeof *p)) == NULL)
			return -1;
		if (uv_poll_init_socket(ex->loop, &p->poll, s) != 0) {
			hora_free(p);
			return -1;
		}
		p->poll.data = p;
		p->ex = ex;
		p->fd = s;
		p->next = ex->polls;
		if (ex->polls != NULL)
			ex->polls->prev = p;
		ex->polls = p;
		ex->nhandles++;
		curl_multi_assign(ex->multi, s, p);
	}
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&p->poll, events, poll_cb);
	return 0;
}

static void curl_timer_cb(uv_timer_t *h)
{
	executor *ex = h->data;
	int running;

	curl_multi_socket_action(ex->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_info(ex);
}

static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
	executor *ex = userp;

	(void)multi;
	if (timeout_ms < 0)
		uv_timer_stop(&ex->curl_timer);
	else /* 0 too: on the next iteration, not from inside libcurl */
		uv_timer_start(&ex->curl_timer, curl_timer_cb,
			       (uint64_t)timeout_ms, 0);
	return 0;
}

int exec_http_init(executor *ex, hora_error *err)
{
	static bool global_done;

	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return hora_error_set(err, -HORA_ENOMEM, "",
					      "cannot initialise libcurl");
		global_done = true;
	}
	if ((ex->multi = curl_multi_init()) == NULL)
		return hora_error_set(err, -HORA_ENOMEM, "",
				      "cannot create a libcurl multi handle");
	curl_multi_setopt(ex->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(ex->multi, CURLMOPT_SOCKETDATA, ex);
	curl_multi_setopt(ex->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
	curl_multi_setopt(ex->multi, CURLMOPT_TIMERDATA, ex);
	return 0;
}

void exec_http_shutdown(executor *ex)
{
	for (exec_poll *p = ex->polls; p != NULL; p = p->next) {
		if (p->closing)
			continue;
		curl_multi_assign(ex->multi, p->fd, NULL);
		poll_close(p);
	}
	if (ex->multi != NULL) {
		curl_multi_cleanup(ex->multi);
		ex->multi = NULL;
	}
	uv_timer_stop(&ex->curl_timer);
}

/* ------------------------------------------------------------------ */
/* One transfer */

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	exec_task *t = ud;

	exec_tail_append(&t->out, ptr, size * nmemb);
	return size * nmemb;
}

/* Append "Name: value" ("Name;" for an empty value, libcurl's way of
 * sending an empty header). */
static int add_header(exec_http_state *h, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = value != NULL ? strlen(value) : 0;
	struct curl_slist *l;
	char *line;

	if ((line = hora_malloc(nl + vl + 3)) == NULL)
		return -1;
	memcpy(line, name, nl);
	if (vl == 0) {
		line[nl] = ';';
		line[nl + 1] = '\0';
	} else {
		line[nl] = ':';
		line[nl + 1] = ' ';
		memcpy(line + nl + 2, value, vl + 1);
	}
	l = curl_slist_append(h->headers, line);
	hora_free(line);
	if (l == NULL)
		return -1;
	h->headers = l;
	return 0;
}

static bool own_header(const char *name)
{
	for (size_t i = 0; i < NOWN; i++)
		if (strcasecmp(name, own_headers[i]) == 0)
			return true;
	return false;
}

/* Identity values go into headers: drop any that could break one. */
static const char *header_safe(const char *v)
{
	return v != NULL && strpbrk(v, "\r\n") == NULL ? v : "";
}

#define SETOPT(opt, val)                                                  \
	do {                                                              \
		if ((cc = curl_easy_setopt(e, opt, val)) != CURLE_OK)     \
			goto setopt_failed;                               \
	} while (0)

int exec_http_start(exec_task *t, const exec_request *req, hora_error *err)
{
	executor *ex = t->ex;
	exec_http_state *h = &t->u.http;
	const json_t *http = req->http, *hs, *b, *m;
	const char *method = "GET";
	char attempt[16];
	bool send_body, has_ct = false;
	size_t body_len = 0;
	CURLcode cc = CURLE_OK;
	CURLMcode mc;
	CURL *e;

	m = json_object_get(http, "method");
	if (m != NULL)
		method = method_canonical(json_string_value(m));
	HORA_ASSERT(method != NULL);
	b = json_object_get(http, "body");
	hs = json_object_get(http, "headers");

	if ((e = curl_easy_init()) == NULL)
		goto nomem;
	h->easy = e;

	snprintf(attempt, sizeof attempt, "%u", (unsigned)req->attempt);
	if (add_header(h, "X-Hora-Run-Id", header_safe(req->run_id)) != 0 ||
	    add_header(h, "X-Hora-Job", header_safe(req->job)) != 0 ||
	    add_header(h, "X-Hora-Scheduled-At",
		       header_safe(req->scheduled_at)) != 0 ||
	    add_header(h, "X-Hora-Attempt", attempt) != 0)
		goto nomem;
	if (hs != NULL) {
		const char *key;
		json_t *val;
		json_object_foreach((json_t *)hs, key, val) {
			if (own_header(key))
				continue;
			if (strcasecmp(key, "Content-Type") == 0)
				has_ct = true;
			if (add_header(h, key, json_string_value(val)) != 0)
				goto nomem;
		}
	}

	/* Which methods carry a body: POST, PUT and PATCH always (empty
	 * when none is given: Content-Length: 0), the others when given. */
	send_body = b != NULL || strcmp(method, "POST") == 0 ||
		    strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0;
	if (strcmp(method, "HEAD") == 0)
		send_body = false;
	if (send_body) {
		if (b != NULL)
			body_len = json_string_length(b);
		if ((h->body = hora_malloc(body_len + 1)) == NULL)
			goto nomem;
		if (body_len > 0)
			memcpy(h->body, json_string_value(b), body_len);
		h->body[body_len] = '\0';
		if (!has_ct) {
			struct curl_slist *l =
				curl_slist_append(h->headers, "Content-Type:");
			if (l == NULL)
				goto nomem;
			h->headers = l;
		}
	}
	{
		struct curl_slist *l = curl_slist_append(h->headers, "Expect:");
		if (l == NULL)
			goto nomem;
		h->headers = l;
	}

	SETOPT(CURLOPT_URL, json_string_value(json_object_get(http, "url")));
	SETOPT(CURLOPT_PRIVATE, (void *)t);
	SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
	SETOPT(CURLOPT_WRITEDATA, (void *)t);
	SETOPT(CURLOPT_ERRORBUFFER, h->errbuf);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	SETOPT(CURLOPT_REDIR_PROTOCOLS,
	       (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SETOPT(CURLOPT_USERAGENT, "hora/" HORA_VERSION);
	SETOPT(CURLOPT_HTTPHEADER, h->headers);
	if (strcmp(method, "HEAD") == 0) {
		SETOPT(CURLOPT_NOBODY, 1L);
	} else if (send_body) {
		SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		SETOPT(CURLOPT_POSTFIELDS, h->body);
		if (strcmp(method, "POST") != 0)
			SETOPT(CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") != 0) {
		SETOPT(CURLOPT_CUSTOMREQUEST, method);
	}
	if (t->timeout_usec > 0) {
		int64_t ms = (t->timeout_usec + 999) / 1000;
		if (ms > (int64_t)LONG_MAX)
			ms = (int64_t)LONG_MAX;
		SETOPT(CURLOPT_TIMEOUT_MS, (long)ms);
	}

	mc = curl_multi_add_handle(ex->multi, e);
	if (mc == CURLM_OUT_OF_MEMORY)
		goto nomem;
	if (mc != CURLM_OK) {
		t->status = EXEC_FAILED;
		exec_task_set_error(t, "cannot start the HTTP request: %s",
				    curl_multi_strerror(mc));
		exec_task_report_soon(t);
		return 0;
	}
	h->in_multi = true;
	return 0;

setopt_failed:
	if (cc != CURLE_OUT_OF_MEMORY) {
		exec_http_release(t);
		return hora_error_set(err, -HORA_EINVAL, "http",
				      "cannot set up the HTTP request: %s",
				      curl_easy_strerror(cc));
	}
nomem:
	exec_http_release(t);
	return hora_error_set(err, -HORA_ENOMEM, "",
			      "out of memory starting an HTTP request");
}

#undef SETOPT

static void transport_error(exec_task *t, CURLcode code)
{
	exec_http_state *h = &t->u.http;
	const char *text = h->errbuf[0] != '\0' ? h->errbuf
						: curl_easy_strerror(code);
	long oserr = 0;
	size_t n;

	/* libcurl's buffer may end in a newline */
	exec_task_set_error(t, "%s", text);
	n = strlen(t->error);
	while (n > 0 && (t->error[n - 1] == '\n' || t->error[n - 1] == '\r'))
		t->error[--n] = '\0';
	if (curl_easy_getinfo(h->easy, CURLINFO_OS_ERRNO, &oserr) ==
		    CURLE_OK &&
	    oserr > 0 && oserr <= INT32_MAX) {
		const char *os = strerror((int)oserr);
		if (strstr(t->error, os) == NULL)
			snprintf(t->error + n, sizeof t->error - n, " (%s)",
				 os);
	}
}

static void transfer_done(exec_task *t, CURLcode code)
{
	exec_http_state *h = &t->u.http;
	long status = 0;

	curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
	t->exit_code = status > 0 && status < 1000 ? (int)status : -1;
	if (code == CURLE_OK) {
		if (status >= 200 && status < 300) {
			t->status = EXEC_SUCCEEDED;
		} else {
			t->status = EXEC_FAILED;
			exec_task_set_error(t, "HTTP %ld", status);
		}
	} else if (code == CURLE_OPERATION_TIMEDOUT && t->timeout_usec > 0) {
		if (t->stop == EXEC_STOP_NONE)
			t->stop = EXEC_STOP_TIMEOUT;
	} else {
		t->status = EXEC_FAILED;
		transport_error(t, code);
	}
	exec_task_finish(t);
}

static void check_info(executor *ex)
{
	CURLMsg *msg;
	int pending;

	while (ex->multi != NULL &&
	       (msg = curl_multi_info_read(ex->multi, &pending)) != NULL) {
		CURL *e = msg->easy_handle;
		CURLcode code = msg->data.result;
		char *priv = NULL;
		exec_task *t;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
		t = (exec_task *)(void *)priv;
		HORA_ASSERT(t != NULL && t->u.http.easy == e);
		curl_multi_remove_handle(ex->multi, e);
		t->u.http.in_multi = false;
		transfer_done(t, code);
	}
}

void exec_http_stop(exec_task *t)
{
	exec_http_state *h = &t->u.http;

	if (h->in_multi) {
		curl_multi_remove_handle(t->ex->multi, h->easy);
		h->in_multi = false;
	}
}

void exec_http_release(exec_task *t)
{
	exec_http_state *h = &t->u.http;

	exec_http_stop(t);
	if (h->easy != NULL) {
		curl_easy_cleanup(h->easy);
		h->easy = NULL;
	}
	curl_slist_free_all(h->headers);
	h->headers = NULL;
	hora_free(h->body);
	h->body = NULL;
}
