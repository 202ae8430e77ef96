/*
 * client.c - libcurl + jansson client for the horad API.  See client.h.
 *
 * One curl easy handle per hora_client, reset before every request so no
 * option leaks from one call into the next, but kept so that follow-up
 * requests (pagination) reuse the connection.
 */
/* The offline build (HORA_SERVER=OFF) has no libcurl or jansson. */
#ifndef HORA_CLI_OFFLINE_ONLY

#include "cli/client.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "core/alloc.h"
#include "core/err.h"

struct hora_client {
	CURL *curl;
	char *base;        /* "http://host:port", no trailing '/'; owned */
	const char *token; /* borrowed from cli_ctx, NULL for none */
	const char *cacert; /* borrowed from cli_ctx, NULL for none */
	char errbuf[CURL_ERROR_SIZE];
};

/* ---- global set-up ---------------------------------------------------- */

static bool client_inited;

void client_global_init(void)
{
	if (client_inited)
		return;
	json_set_alloc_funcs(hora_malloc, hora_free);
	client_inited = true;
}

static bool curl_inited;

static void client_curl_cleanup(void)
{
	curl_global_cleanup();
}

int client_open(const cli_ctx *ctx, hora_client **out)
{
	hora_client *c;
	const char *addr = ctx->addr;
	size_t alen;
	bool has_scheme;

	client_global_init();
	*out = NULL;
	if (addr == NULL || *addr == '\0')
		return cli_fail(CLI_USAGE, "--addr is empty");
	if (!curl_inited) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return cli_fail(CLI_FAILURE, "cannot initialise libcurl");
		atexit(client_curl_cleanup);
		curl_inited = true;
	}
	c = hora_calloc(1, sizeof *c);
	if (c == NULL)
		return cli_fail(CLI_FAILURE, "out of memory");

	/* "127.0.0.1:7070" means "http://127.0.0.1:7070"; drop trailing '/'
	 * so paths can always start with one. */
	alen = strlen(addr);
	while (alen > 0 && addr[alen - 1] == '/')
		alen--;
	has_scheme = strstr(addr, "://") != NULL;
	c->base = hora_malloc(alen + sizeof "http://");
	if (c->base == NULL)
		goto err_after_alloc;
	snprintf(c->base, alen + sizeof "http://", "%s%.*s",
		 has_scheme ? "" : "http://", (int)alen, addr);

	c->curl = curl_easy_init();
	if (c->curl == NULL)
		goto err_after_base;
	c->token = ctx->token;
	c->cacert = ctx->cacert;
	*out = c;
	return CLI_OK;

err_after_base:
	hora_free(c->base);
err_after_alloc:
	hora_free(c);
	return cli_fail(CLI_FAILURE, "out of memory");
}

void client_close(hora_client *c)
{
	if (c == NULL)
		return;
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	hora_free(c->base);
	hora_free(c);
}

void client_resp_free(client_resp *r)
{
	hora_free(r->body);
	if (r->json != NULL)
		json_decref(r->json);
	r->body = NULL;
	r->json = NULL;
	r->len = 0;
	r->status = 0;
}

/* ---- growable strings ------------------------------------------------- */

static void client_buf_addn(client_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *p;
		while (cap < b->len + n + 1)
			cap *= 2;
		p = hora_realloc(b->s, cap);
		if (p == NULL) {
			b->oom = true;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void client_buf_add(client_buf *b, const char *s)
{
	client_buf_addn(b, s, strlen(s));
}

void client_buf_escape(client_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	/* a segment "." or ".." would be taken out of the path by URL
	 * normalisation (curl's included); escaped dots stay a name */
	if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
		client_buf_add(b, s[1] ? "%2E%2E" : "%2E");
		return;
	}
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char ch = *p;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
		    ch == '_' || ch == '~') {
			client_buf_addn(b, (const char *)p, 1);
		} else {
			char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
			client_buf_addn(b, enc, 3);
		}
	}
}

void client_buf_query(client_buf *b, const char *key, const char *value)
{
	client_buf_add(b, b->has_query ? "&" : "?");
	b->has_query = true;
	client_buf_escape(b, key);
	client_buf_add(b, "=");
	client_buf_escape(b, value);
}

const char *client_buf_str(const client_buf *b)
{
	if (b->oom)
		return NULL;
	return b->s != NULL ? b->s : "";
}

void client_buf_free(client_buf *b)
{
	hora_free(b->s);
	memset(b, 0, sizeof *b);
}

/* ---- one request ------------------------------------------------------ */

typedef struct recv_state {
	client_buf buf;
	bool too_big;
} recv_state;

static size_t client_on_data(char *ptr, size_t size, size_t nmemb,
			     void *userdata)
{
	recv_state *st = userdata;
	size_t n = size * nmemb;
	if (st->buf.len + n > CLIENT_MAX_BODY) {
		st->too_big = true;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	client_buf_addn(&st->buf, ptr, n);
	return st->buf.oom ? 0 : n;
}

static int64_t client_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void client_sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
			      .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* True for curl failures that mean no connection was made. */
static bool client_is_connect_error(CURLcode rc)
{
	return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
	       rc == CURLE_COULDNT_RESOLVE_PROXY ||
	       rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT;
}

static int client_report_curl(hora_client *c, CURLcode rc,
			      const recv_state *st)
{
	long os_errno = 0;
	curl_off_t connect_us = 0;
	const char *reason;

	if (st->too_big)
		return cli_fail(CLI_FAILURE,
				"answer from %s is larger than %u bytes",
				c->base, CLIENT_MAX_BODY);
	if (st->buf.oom || rc == CURLE_OUT_OF_MEMORY)
		return cli_fail(CLI_FAILURE, "out of memory");
	curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
	curl_easy_getinfo(c->curl, CURLINFO_CONNECT_TIME_T, &connect_us);
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		if (connect_us == 0)
			return cli_fail(CLI_FAILURE,
					"cannot reach %s: connection timed "
					"out after %d s",
					c->base,
					CLIENT_CONNECT_TIMEOUT_MS / 1000);
		return cli_fail(CLI_FAILURE, "no answer from %s within %d s",
				c->base, CLIENT_TOTAL_TIMEOUT_MS / 1000);
	}
	if (rc == CURLE_COULDNT_CONNECT && os_errno != 0)
		reason = strerror((int)os_errno);
	else if (c->errbuf[0] != '\0')
		reason = c->errbuf;
	else
		reason = curl_easy_strerror(rc);
	if (client_is_connect_error(rc))
		return cli_fail(CLI_FAILURE, "cannot reach %s: %s", c->base,
				reason);
	return cli_fail(CLI_FAILURE, "request to %s failed: %s", c->base,
			reason);
}

/* Print the server's error object, or a description of a non-JSON
 * error answer. */
static int client_report_http(hora_client *c, const client_resp *r)
{
	const json_t *e = r->json ? json_object_get(r->json, "error") : NULL;
	const char *msg = NULL, *field = NULL, *code = NULL;

	if (json_is_object(e)) {
		msg = json_string_value(json_object_get(e, "message"));
		field = json_string_value(json_object_get(e, "field"));
		code = json_string_value(json_object_get(e, "code"));
	} else if (json_is_string(e)) {
		msg = json_string_value(e);
	}
	if (msg == NULL || *msg == '\0')
		msg = code;
	if (msg != NULL && *msg != '\0') {
		if (field != NULL && *field != '\0')
			return cli_fail(CLI_FAILURE, "%s (field: %s)", msg,
					field);
		return cli_fail(CLI_FAILURE, "%s", msg);
	}

	/* no error object: quote the first line of the body */
	size_t n = 0;
	if (r->body != NULL) {
		while (n < r->len && n < 200 && r->body[n] != '\n' &&
		       r->body[n] != '\r')
			n++;
	}
	const char *hint = "";
	if (r->status == 401)
		hint = " (unauthorized: check --token or $HORA_TOKEN)";
	else if (r->status == 404)
		hint = " (not found: is --addr a horad node?)";
	if (n > 0)
		return cli_fail(CLI_FAILURE, "%s answered HTTP %ld%s: %.*s",
				c->base, r->status, hint, (int)n, r->body);
	return cli_fail(CLI_FAILURE, "%s answered HTTP %ld%s", c->base,
			r->status, hint);
}

/* One attempt.  Returns CURLE_OK with *resp filled (any status), or the
 * curl failure (resp left empty, recv state for the report). */
static CURLcode client_perform(hora_client *c, const char *method,
			       const char *url, const char *payload,
			       client_resp *resp, recv_state *st,
			       curl_off_t *retry_after)
{
	CURL *h = c->curl;
	struct curl_slist *hdrs = NULL, *tmp;
	client_buf auth = {0};
	CURLcode rc;
	bool ok = true;

	curl_easy_reset(h);
	c->errbuf[0] = '\0';
	memset(st, 0, sizeof *st);
	*retry_after = -1;

#define ADD_HDR(s)                                  \
	do {                                        \
		tmp = curl_slist_append(hdrs, (s)); \
		if (tmp == NULL)                    \
			ok = false;                 \
		else                                \
			hdrs = tmp;                 \
	} while (0)
	ADD_HDR("Accept: application/json");
	ADD_HDR("Expect:"); /* no 100-continue round trip */
	/* every write says JSON, even without a body: horad refuses other
	 * types on writes (docs/security.md), and curl would call an empty
	 * POST a form */
	if (payload != NULL || strcmp(method, "GET") != 0)
		ADD_HDR("Content-Type: application/json");
	if (c->token != NULL) {
		client_buf_add(&auth, "Authorization: Bearer ");
		client_buf_add(&auth, c->token);
		if (client_buf_str(&auth) == NULL)
			ok = false;
		else
			ADD_HDR(auth.s);
		client_buf_free(&auth); /* curl_slist_append copies */
	}
#undef ADD_HDR
	if (!ok) {
		curl_slist_free_all(hdrs);
		st->buf.oom = true;
		return CURLE_OUT_OF_MEMORY;
	}

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)CLIENT_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)CLIENT_TOTAL_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "hora/" HORA_VERSION);
	if (c->cacert != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, client_on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, st);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		/* Content-Length: 0 when there is no body */
		const char *p = payload ? payload : "";
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, p);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)strlen(p));
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	} else {
		if (payload != NULL) {
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)strlen(payload));
		}
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}

	rc = curl_easy_perform(h);
	curl_slist_free_all(hdrs);
	if (rc == CURLE_OK && st->buf.oom)
		rc = CURLE_OUT_OF_MEMORY;
	if (rc != CURLE_OK) {
		client_buf_free(&st->buf);
		return rc;
	}

	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, retry_after);
	if (st->buf.s == NULL) {
		st->buf.s = hora_strdup("");
		if (st->buf.s == NULL) {
			st->buf.oom = true;
			return CURLE_OUT_OF_MEMORY;
		}
	}
	resp->body = st->buf.s;
	resp->len = st->buf.len;
	st->buf.s = NULL; /* ownership moved to resp */
	if (resp->len > 0)
		resp->json = json_loadb(resp->body, resp->len,
					JSON_DECODE_ANY, NULL);
	return CURLE_OK;
}

int client_call(hora_client *c, const char *method, const char *path,
		const json_t *body, client_resp *resp)
{
	char *payload = NULL;
	client_buf url = {0};
	int64_t start = client_now_ms();
	int rv;

	memset(resp, 0, sizeof *resp);
	if (body != NULL) {
		payload = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
		if (payload == NULL)
			return cli_fail(CLI_FAILURE, "out of memory");
	}
	client_buf_add(&url, c->base);
	client_buf_add(&url, path);
	if (client_buf_str(&url) == NULL) {
		rv = cli_fail(CLI_FAILURE, "out of memory");
		goto out;
	}

	for (;;) {
		recv_state st;
		curl_off_t retry_after;
		CURLcode rc = client_perform(c, method, url.s, payload, resp,
					     &st, &retry_after);
		if (rc != CURLE_OK) {
			rv = client_report_curl(c, rc, &st);
			goto out;
		}
		if (resp->status == 503 || resp->status == 429) {
			/* No leader yet (election) or back-pressure: wait
			 * as told, within the budget, then try again. */
			int64_t delay = retry_after >= 0
						? (int64_t)retry_after * 1000
						: 500;
			if (delay < 100)
				delay = 100;
			if (delay > 2000)
				delay = 2000;
			if (client_now_ms() - start + delay <=
			    CLIENT_RETRY_BUDGET_MS) {
				client_resp_free(resp);
				client_sleep_ms(delay);
				continue;
			}
		}
		break;
	}
	if (resp->status >= 200 && resp->status < 300)
		rv = CLI_OK;
	else
		rv = client_report_http(c, resp);
out:
	client_buf_free(&url);
	hora_free(payload);
	return rv;
}

/* ---- output ----------------------------------------------------------- */

static int client_flush(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return cli_fail(CLI_FAILURE, "cannot write output");
	return CLI_OK;
}

int client_print_raw(const client_resp *resp)
{
	if (resp->len > 0) {
		fwrite(resp->body, 1, resp->len, stdout);
		if (resp->body[resp->len - 1] != '\n')
			fputc('\n', stdout);
	}
	return client_flush();
}

int client_print_pretty(const json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
	if (s == NULL)
		return cli_fail(CLI_FAILURE, "out of memory");
	puts(s);
	hora_free(s);
	return client_flush();
}

/* ---- tables ----------------------------------------------------------- */

struct client_table {
	size_t ncols;
	size_t nrows; /* including the header */
	size_t cap;
	char **cells; /* nrows * ncols, owned */
};

client_table *client_table_new(size_t ncols, const char *const *header)
{
	client_table *t = hora_calloc(1, sizeof *t);
	if (t == NULL)
		return NULL;
	t->ncols = ncols;
	if (client_table_add(t, header) != 0) {
		client_table_free(t);
		return NULL;
	}
	return t;
}

int client_table_add(client_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **p = hora_realloc(t->cells, cap * t->ncols * sizeof *p);
		if (p == NULL)
			return -HORA_ENOMEM;
		t->cells = p;
		t->cap = cap;
	}
	char **row = t->cells + t->nrows * t->ncols;
	for (size_t i = 0; i < t->ncols; i++) {
		row[i] = hora_strdup(cells[i] != NULL ? cells[i] : "-");
		if (row[i] == NULL) {
			while (i-- > 0)
				hora_free(row[i]);
			return -HORA_ENOMEM;
		}
	}
	t->nrows++;
	return 0;
}

void client_table_free(client_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		hora_free(t->cells[i]);
	hora_free(t->cells);
	hora_free(t);
}

int client_table_print(client_table *t)
{
	size_t *w = hora_calloc(t->ncols, sizeof *w);
	if (w == NULL) {
		client_table_free(t);
		return cli_fail(CLI_FAILURE, "out of memory");
	}
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t l = strlen(t->cells[r * t->ncols + c]);
			if (l > w[c])
				w[c] = l;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			if (c + 1 < t->ncols)
				printf("%-*s  ", (int)w[c], cell);
			else
				printf("%s\n", cell);
		}
	}
	hora_free(w);
	client_table_free(t);
	return client_flush();
}

/* ---- option helpers --------------------------------------------------- */

int client_opt(int argc, char **argv, int *i, const char *name,
	       const char **val)
{
	const char *a = argv[*i];
	size_t nl = strlen(name);
	if (strncmp(a, name, nl) != 0)
		return 0;
	if (a[nl] == '=') {
		*val = a + nl + 1;
		return 1;
	}
	if (a[nl] != '\0')
		return 0;
	if (*i + 1 >= argc) {
		cli_fail(CLI_USAGE, "%s needs a value", name);
		return -1;
	}
	*val = argv[++*i];
	return 1;
}

bool client_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;
	if (s == NULL || *s == '\0' || *s == ' ' || *s == '+')
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

const char *client_json_cell(const json_t *v, char *buf, size_t bufsize)
{
	switch (v == NULL ? JSON_NULL : json_typeof(v)) {
	case JSON_STRING:
		return json_string_value(v);
	case JSON_INTEGER:
		snprintf(buf, bufsize, "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		return buf;
	case JSON_REAL:
		snprintf(buf, bufsize, "%g", json_real_value(v));
		return buf;
	case JSON_TRUE:
		return "true";
	case JSON_FALSE:
		return "false";
	case JSON_OBJECT:
	case JSON_ARRAY: {
		char *s = json_dumps(v, JSON_COMPACT);
		if (s == NULL)
			return NULL;
		snprintf(buf, bufsize, "%s", s);
		hora_free(s);
		return buf;
	}
	case JSON_NULL:
	default:
		return NULL;
	}
}

#endif /* HORA_CLI_OFFLINE_ONLY */
