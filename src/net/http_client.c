/*
 * http_client.c - the request builder.  See http_client.h.
 */
#include "net/http_client.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"

static bool global_done;

static void global_cleanup(void)
{
	curl_global_cleanup();
}

int httpc_global_init(void)
{
	if (global_done)
		return 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -HORA_ENOMEM;
	atexit(global_cleanup);
	global_done = true;
	return 0;
}

#define SETOPT(opt, val)                                                  \
	do {                                                              \
		CURLcode cc_ = curl_easy_setopt(e, opt, val);             \
		if (cc_ != CURLE_OK)                                      \
			return cc_;                                       \
	} while (0)

/* Method and body (see httpc_req). */
static CURLcode set_method(CURL *e, const httpc_req *r)
{
	const char *m = r->method;
	bool send_body = r->body != NULL || strcmp(m, "POST") == 0 ||
			 strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;

	if (strcmp(m, "HEAD") == 0) {
		SETOPT(CURLOPT_NOBODY, 1L);
	} else if (send_body) {
		const char *body = r->body != NULL ? r->body : "";
		size_t len = r->body != NULL ? r->body_len : 0;
		/* the size first: COPYPOSTFIELDS copies that many bytes */
		SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		if (r->body_copy)
			SETOPT(CURLOPT_COPYPOSTFIELDS, body);
		else
			SETOPT(CURLOPT_POSTFIELDS, body);
		if (strcmp(m, "POST") != 0)
			SETOPT(CURLOPT_CUSTOMREQUEST, m);
	} else if (strcmp(m, "GET") == 0) {
		SETOPT(CURLOPT_HTTPGET, 1L);
	} else {
		SETOPT(CURLOPT_CUSTOMREQUEST, m);
	}
	return CURLE_OK;
}

CURLcode httpc_prepare(CURL *e, const httpc_conf *conf, const httpc_req *req)
{
	SETOPT(CURLOPT_URL, req->url);
	if (req->errbuf != NULL) {
		req->errbuf[0] = '\0';
		SETOPT(CURLOPT_ERRORBUFFER, req->errbuf);
	}
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	SETOPT(CURLOPT_REDIR_PROTOCOLS,
	       (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SETOPT(CURLOPT_TCP_NODELAY, 1L);
	if (conf->connect_timeout_ms > 0)
		SETOPT(CURLOPT_CONNECTTIMEOUT_MS, conf->connect_timeout_ms);
	if (req->timeout_ms > 0)
		SETOPT(CURLOPT_TIMEOUT_MS, req->timeout_ms);
	SETOPT(CURLOPT_USERAGENT, conf->user_agent != NULL ? conf->user_agent
							   : HTTPC_USER_AGENT);
	if (conf->ca_file != NULL)
		SETOPT(CURLOPT_CAINFO, conf->ca_file);
	if (conf->cert_file != NULL) {
		SETOPT(CURLOPT_SSLCERT, conf->cert_file);
		if (conf->key_file != NULL)
			SETOPT(CURLOPT_SSLKEY, conf->key_file);
	}
	if (req->headers != NULL)
		SETOPT(CURLOPT_HTTPHEADER, req->headers);
	return set_method(e, req);
}

#undef SETOPT

int httpc_header(struct curl_slist **list, const char *name,
		 const char *value)
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
	l = curl_slist_append(*list, line); /* copies */
	if (line != small)
		hora_free(line);
	if (l == NULL)
		return -HORA_ENOMEM;
	*list = l;
	return 0;
}

int httpc_api_headers(struct curl_slist **list, const char *method,
		      bool has_body, const char *token)
{
	bool write = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
	int rv;

	if ((rv = httpc_header(list, "Accept", "application/json")) != 0 ||
	    (rv = httpc_header(list, "Expect", NULL)) != 0)
		return rv;
	if ((has_body || write) &&
	    (rv = httpc_header(list, "Content-Type", "application/json")) != 0)
		return rv;
	if (token != NULL) {
		hora_buf b = HORA_BUF_INIT;
		buf_adds(&b, "Bearer ");
		buf_adds(&b, token);
		rv = b.oom ? -HORA_ENOMEM
			   : httpc_header(list, "Authorization", b.p);
		buf_free(&b);
	}
	return rv;
}

size_t httpc_body_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	httpc_body *b = ud;
	size_t n = size * nmemb;

	if (n > b->max - b->buf.len) {
		b->too_large = true;
		return 0;
	}
	buf_add(&b->buf, ptr, n);
	return b->buf.oom ? 0 : n;
}

void httpc_base_url(hora_buf *b, const char *addr)
{
	size_t n = strlen(addr);

	while (n > 0 && addr[n - 1] == '/')
		n--;
	if (strstr(addr, "://") == NULL)
		buf_adds(b, "http://");
	buf_add(b, addr, n);
}

void httpc_error_text(CURL *e, CURLcode code, const char *errbuf, char *out,
		      size_t cap)
{
	long oserr = 0;
	size_t n;

	if (cap == 0)
		return;
	snprintf(out, cap, "%s",
		 errbuf != NULL && errbuf[0] != '\0' ? errbuf
						     : curl_easy_strerror(code));
	n = strlen(out);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' ||
			 out[n - 1] == '.'))
		out[--n] = '\0';
	if (curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &oserr) == CURLE_OK &&
	    oserr > 0 && oserr <= INT32_MAX) {
		const char *os = strerror((int)oserr);
		if (strstr(out, os) == NULL && n < cap)
			snprintf(out + n, cap - n, " (%s)", os);
	}
}
