/*
 * http_client.h - how hora sets up a libcurl request: the one builder
 * for the CLI's client (cli/client.c), `hora worker` (cli/cmd_worker.c),
 * the forwarder (api/forward.c) and, for its transport options, the
 * executor's `http` runs (exec/exec_http.c).
 *
 * What every request gets (httpc_prepare): the URL; http and https only
 * (CURLOPT_PROTOCOLS_STR from libcurl 7.85, CURLOPT_PROTOCOLS before it;
 * redirects too, though none is followed); no signals (NOSIGNAL: the
 * loop's threads and libuv's own handlers); TCP_NODELAY; a connect and a
 * total timeout; a User-Agent; the CA file and client certificate when
 * given; the method and body; the header list.
 *
 * What a call to a hora API adds (httpc_api_headers): Accept:
 * application/json; Content-Type: application/json on every write (and
 * with every body): horad refuses other types on writes with a body
 * (docs/security.md), and libcurl would call an empty POST a form;
 * "Expect:" (no 100-continue round trip); Authorization: Bearer TOKEN.
 *
 * Also here: the answer's body collected into a bounded hora_buf, the
 * base URL from an --addr, and the sentence for a transport failure.
 *
 * Nothing here touches a loop: the asynchronous users hand the prepared
 * handle to curl_loop.h, the CLI calls curl_easy_perform().
 */
#ifndef HORA_NET_HTTP_CLIENT_H
#define HORA_NET_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "core/buf.h"

#ifndef HORA_VERSION
#define HORA_VERSION "0"
#endif

/* The default User-Agent. */
#define HTTPC_USER_AGENT "hora/" HORA_VERSION

/* libcurl's process-wide set-up (curl_global_init), done once, undone
 * at exit.  Call before the first easy or multi handle, on the main
 * thread (curl_loop_new() and client_open() do).  0 or -HORA_ENOMEM. */
int httpc_global_init(void);

/* Per client: borrowed strings, must outlive every request prepared with
 * it (libcurl copies strings, but the conf is read at each prepare). */
typedef struct httpc_conf {
	const char *user_agent; /* NULL: HTTPC_USER_AGENT */
	const char *ca_file;    /* https: verify with this CA; NULL: system */
	const char *cert_file;  /* client certificate; NULL: none */
	const char *key_file;   /*   and its key (with cert_file) */
	long connect_timeout_ms; /* 0: libcurl's default */
} httpc_conf;

/* One request.  Borrowed for the call. */
typedef struct httpc_req {
	const char *method; /* "GET", "POST", ...: upper case */
	const char *url;    /* copied by libcurl */
	/* The body, or NULL for none.  POST, PUT and PATCH always send one
	 * (Content-Length: 0 when NULL); HEAD never does. */
	const char *body;
	size_t body_len;
	bool body_copy; /* libcurl copies the body; else it must outlive the
			 * transfer */
	struct curl_slist *headers; /* borrowed, must outlive the transfer */
	long timeout_ms;            /* total; 0: none */
	char *errbuf;               /* CURL_ERROR_SIZE bytes, or NULL */
} httpc_req;

/* Set up `e` (fresh or reset) for `req`.  CURLE_OK, or the first
 * failing setopt's code (CURLE_OUT_OF_MEMORY among them). */
CURLcode httpc_prepare(CURL *e, const httpc_conf *conf, const httpc_req *req);

/*
 * Append "Name: value" to *list: "Name;" for an empty value (libcurl's
 * way to send an empty header), "Name:" for a NULL value (removes a
 * header libcurl would add).  0 or -HORA_ENOMEM (*list unchanged).
 */
int httpc_header(struct curl_slist **list, const char *name,
		 const char *value);

/* The headers of a call to a hora API (see above); a write is any method
 * but GET and HEAD.  token may be NULL.  0 or -HORA_ENOMEM (*list may
 * hold some of them: the caller frees it either way). */
int httpc_api_headers(struct curl_slist **list, const char *method,
		      bool has_body, const char *token);

/*
 * An answer's body: CURLOPT_WRITEFUNCTION httpc_body_write with
 * CURLOPT_WRITEDATA a httpc_body.  More than `max` bytes, or an
 * allocation failure (buf.oom), stops the transfer (CURLE_WRITE_ERROR).
 */
typedef struct httpc_body {
	hora_buf buf;
	size_t max;
	bool too_large;
} httpc_body;

size_t httpc_body_write(char *ptr, size_t size, size_t nmemb, void *ud);

/* "http://host:port" from an address as given (--addr, a node's API
 * URL): "http://" added when there is no scheme, trailing '/' dropped. */
void httpc_base_url(hora_buf *b, const char *addr);

/* Why a transfer failed, as a phrase for a message: libcurl's error
 * buffer (else its text for `code`) without a trailing newline or '.',
 * plus " (<strerror>)" of the OS error when it adds something. */
void httpc_error_text(CURL *e, CURLcode code, const char *errbuf, char *out,
		      size_t cap);

#endif
