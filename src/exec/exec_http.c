/*
 * exec_http.c - a run's `http` request, a transfer on the executor's
 * libcurl multi driver (net/curl_loop.h: sockets and timer on the loop,
 * libcurl's asynchronous resolver, nothing blocks), with the transport
 * options of net/http_client.h (http/https only, no signals, hora's
 * User-Agent).
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
#include "core/http_token.h"
#include "net/http_client.h"

static const char *const methods[] = {
	"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
};
#define NMETHODS (sizeof methods / sizeof methods[0])

static const char *const own_headers[] = {
	"X-Hora-Run-Id", "X-Hora-Job", "X-Hora-Scheduled-At", "X-Hora-Attempt",
};
#define NOWN (sizeof own_headers / sizeof own_headers[0])

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
				if (!http_token_char((unsigned char)*k))
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
/* One transfer */

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	exec_task *t = ud;

	exec_tail_append(&t->out, ptr, size * nmemb);
	return size * nmemb;
}

static void transfer_done(curl_loop_xfer *x, CURLcode code);

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

int exec_http_start(exec_task *t, const exec_request *req, hora_error *err)
{
	exec_http_state *h = &t->u.http;
	const json_t *http = req->http, *hs, *b, *m;
	const char *method = "GET";
	char attempt[16];
	bool has_ct = false;
	size_t body_len = 0;
	const httpc_conf conf = {0}; /* hora/VERSION, no connect timeout */
	httpc_req hr;
	CURLcode cc;
	int64_t ms = 0;
	int rv;

	m = json_object_get(http, "method");
	if (m != NULL)
		method = method_canonical(json_string_value(m));
	HORA_ASSERT(method != NULL);
	b = json_object_get(http, "body");
	hs = json_object_get(http, "headers");

	if ((h->x.easy = curl_easy_init()) == NULL)
		goto nomem;

	snprintf(attempt, sizeof attempt, "%u", (unsigned)req->attempt);
	if (httpc_header(&h->headers, "X-Hora-Run-Id",
			 header_safe(req->run_id)) != 0 ||
	    httpc_header(&h->headers, "X-Hora-Job", header_safe(req->job)) !=
		    0 ||
	    httpc_header(&h->headers, "X-Hora-Scheduled-At",
			 header_safe(req->scheduled_at)) != 0 ||
	    httpc_header(&h->headers, "X-Hora-Attempt", attempt) != 0)
		goto nomem;
	if (hs != NULL) {
		const char *key;
		json_t *val;
		json_object_foreach((json_t *)hs, key, val) {
			if (own_header(key))
				continue;
			if (strcasecmp(key, "Content-Type") == 0)
				has_ct = true;
			if (httpc_header(&h->headers, key,
					 json_string_value(val)) != 0)
				goto nomem;
		}
	}

	/* The body is the job's, copied (POSTFIELDS points here).  POST,
	 * PUT and PATCH send one even without it (Content-Length: 0), HEAD
	 * never does: httpc_prepare's rule.  A body goes without a type
	 * unless the job gives one: libcurl would claim a form. */
	if (b != NULL && strcmp(method, "HEAD") != 0) {
		body_len = json_string_length(b);
		if ((h->body = hora_malloc(body_len + 1)) == NULL)
			goto nomem;
		memcpy(h->body, json_string_value(b), body_len);
		h->body[body_len] = '\0';
	}
	if (!has_ct && (h->body != NULL || strcmp(method, "POST") == 0 ||
			strcmp(method, "PUT") == 0 ||
			strcmp(method, "PATCH") == 0) &&
	    httpc_header(&h->headers, "Content-Type", NULL) != 0)
		goto nomem;
	if (httpc_header(&h->headers, "Expect", NULL) != 0)
		goto nomem;

	if (t->timeout_usec > 0) {
		ms = (t->timeout_usec + 999) / 1000;
		if (ms > (int64_t)LONG_MAX)
			ms = (int64_t)LONG_MAX;
	}
	hr = (httpc_req){
		.method = method,
		.url = json_string_value(json_object_get(http, "url")),
		.body = h->body,
		.body_len = body_len,
		.headers = h->headers,
		.timeout_ms = (long)ms,
		.errbuf = h->errbuf,
	};
	if ((cc = httpc_prepare(h->x.easy, &conf, &hr)) != CURLE_OK ||
	    (cc = curl_easy_setopt(h->x.easy, CURLOPT_WRITEFUNCTION,
				   write_cb)) != CURLE_OK ||
	    (cc = curl_easy_setopt(h->x.easy, CURLOPT_WRITEDATA, (void *)t)) !=
		    CURLE_OK)
		goto setopt_failed;

	h->x.done = transfer_done;
	rv = curl_loop_add(t->ex->curl, &h->x);
	if (rv == -HORA_ENOMEM)
		goto nomem;
	if (rv != 0) {
		t->status = EXEC_FAILED;
		exec_task_set_error(t, "cannot start the HTTP request: %s",
				    hora_strerror(rv));
		exec_task_report_soon(t);
	}
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

/* The transfer is over (out of the multi): decide the result. */
static void transfer_done(curl_loop_xfer *x, CURLcode code)
{
	exec_http_state *h = (exec_http_state *)(void *)((char *)x -
					offsetof(exec_http_state, x));
	exec_task *t = (exec_task *)(void *)((char *)h -
					    offsetof(exec_task, u.http));
	long status = 0;

	curl_easy_getinfo(h->x.easy, CURLINFO_RESPONSE_CODE, &status);
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
		httpc_error_text(h->x.easy, code, h->errbuf, t->error,
				 sizeof t->error);
	}
	exec_task_finish(t);
}

void exec_http_stop(exec_task *t)
{
	curl_loop_remove(&t->u.http.x);
}

void exec_http_release(exec_task *t)
{
	exec_http_state *h = &t->u.http;

	exec_http_stop(t);
	if (h->x.easy != NULL) {
		curl_easy_cleanup(h->x.easy);
		h->x.easy = NULL;
	}
	curl_slist_free_all(h->headers);
	h->headers = NULL;
	hora_free(h->body);
	h->body = NULL;
}
