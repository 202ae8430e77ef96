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
#include "net/http_client.h"

struct hora_client {
	CURL *curl;
	char *base;        /* "http://host:port", no trailing '/'; owned */
	const char *token; /* borrowed from cli_ctx, NULL for none */
	httpc_conf conf;   /* ca_file borrowed from cli_ctx */
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

int client_open(const cli_ctx *ctx, hora_client **out)
{
	hora_client *c;
	const char *addr = ctx->addr;
	hora_buf base = HORA_BUF_INIT;

	client_global_init();
	*out = NULL;
	if (addr == NULL || *addr == '\0')
		return cli_fail(CLI_USAGE, "--addr is empty");
	if (httpc_global_init() != 0)
		return cli_fail(CLI_FAILURE, "cannot initialise libcurl");
	c = hora_calloc(1, sizeof *c);
	if (c == NULL)
		return cli_fail(CLI_FAILURE, "out of memory");

	/* "127.0.0.1:7070" means "http://127.0.0.1:7070"; no trailing '/'
	 * so paths can always start with one. */
	httpc_base_url(&base, addr);
	if ((c->base = buf_take(&base, NULL)) == NULL)
		goto err_after_alloc;

	c->curl = curl_easy_init();
	if (c->curl == NULL)
		goto err_after_base;
	c->token = ctx->token;
	c->conf = (httpc_conf){
		.ca_file = ctx->cacert,
		.connect_timeout_ms = CLIENT_CONNECT_TIMEOUT_MS,
	};
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

/* ---- paths ------------------------------------------------------------ */

void client_query_add(hora_buf *b, const char *key, const char *value)
{
	bool has_query = b->p != NULL && memchr(b->p, '?', b->len) != NULL;

	buf_addc(b, has_query ? '&' : '?');
	buf_add_pct(b, key, BUF_PCT_SEGMENT);
	buf_addc(b, '=');
	buf_add_pct(b, value, BUF_PCT_SEGMENT);
}

/* ---- one request ------------------------------------------------------ */


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
			      const httpc_body *st)
{
	long os_errno = 0;
	curl_off_t connect_us = 0;
	const char *reason;

	if (st->too_large)
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
 * curl failure (resp left empty, the body state for the report). */
static CURLcode client_perform(hora_client *c, const char *method,
			       const char *url, const char *payload,
			       client_resp *resp, httpc_body *st,
			       curl_off_t *retry_after)
{
	CURL *h = c->curl;
	struct curl_slist *hdrs = NULL;
	CURLcode rc;

	curl_easy_reset(h);
	memset(st, 0, sizeof *st);
	st->max = CLIENT_MAX_BODY;
	*retry_after = -1;

	if (httpc_api_headers(&hdrs, method, payload != NULL, c->token) != 0) {
		curl_slist_free_all(hdrs);
		st->buf.oom = true;
		return CURLE_OUT_OF_MEMORY;
	}
	rc = httpc_prepare(h, &c->conf,
			   &(httpc_req){
				   .method = method,
				   .url = url,
				   .body = payload,
				   .body_len = payload != NULL ? strlen(payload)
							       : 0,
				   .headers = hdrs,
				   .timeout_ms = CLIENT_TOTAL_TIMEOUT_MS,
				   .errbuf = c->errbuf,
			   });
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION,
				      httpc_body_write);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(h, CURLOPT_WRITEDATA, (void *)st);
	if (rc == CURLE_OK)
		rc = curl_easy_perform(h);
	curl_slist_free_all(hdrs);
	if (rc == CURLE_OK && st->buf.oom)
		rc = CURLE_OUT_OF_MEMORY;
	if (rc != CURLE_OK) {
		buf_free(&st->buf);
		return rc;
	}

	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, retry_after);
	buf_adds(&st->buf, ""); /* "" rather than NULL for an empty body */
	resp->body = buf_take(&st->buf, &resp->len);
	if (resp->body == NULL) {
		st->buf.oom = true;
		return CURLE_OUT_OF_MEMORY;
	}
	if (resp->len > 0)
		resp->json = json_loadb(resp->body, resp->len,
					JSON_DECODE_ANY, NULL);
	return CURLE_OK;
}

int client_call(hora_client *c, const char *method, const char *path,
		const json_t *body, client_resp *resp)
{
	char *payload = NULL;
	hora_buf url = HORA_BUF_INIT;
	int64_t start = client_now_ms();
	int rv;

	memset(resp, 0, sizeof *resp);
	if (body != NULL) {
		payload = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
		if (payload == NULL)
			return cli_fail(CLI_FAILURE, "out of memory");
	}
	buf_adds(&url, c->base);
	buf_adds(&url, path);
	if (buf_str(&url) == NULL) {
		rv = cli_fail(CLI_FAILURE, "out of memory");
		goto out;
	}

	for (;;) {
		httpc_body st;
		curl_off_t retry_after;
		CURLcode rc = client_perform(c, method, url.p, payload, resp,
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
	buf_free(&url);
	hora_free(payload);
	return rv;
}

#endif /* HORA_CLI_OFFLINE_ONLY */
