/*
 * http.h - a small HTTP/1.1 server on libmicrohttpd, run from one libuv
 * loop (principle 1 of DESIGN.md: no MHD threads, no locks).
 *
 * One handler gets every request once its whole body has arrived.  It
 * answers with http_respond() either before it returns (synchronous) or
 * later from the same loop (asynchronous: after a Raft commit, at the end
 * of a long poll).  Returning without answering parks the request: MHD
 * stops reading that connection until http_respond() is called.
 *
 * Threading: every function here must be called on the loop's thread.
 *
 * Lifetimes.  An http_request belongs to the server.  It stays valid from
 * the handler call until one of
 *   - http_respond() returns (whatever it returned; the request is then
 *     answered, by a 500 if the answer could not be built), or
 *   - its abort callback returns (client gone, or server closing).
 * The memory is reused for the next request on the same connection, so a
 * stale pointer is not caught: owners must drop it at those two points.
 * Strings returned by the accessors live exactly as long as the request.
 */
#ifndef HORA_API_HTTP_H
#define HORA_API_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/err.h"

typedef struct http_server http_server;
typedef struct http_request http_request;

#define HTTP_DEFAULT_HOST "127.0.0.1"
#define HTTP_DEFAULT_MAX_CONNECTIONS 1024u
#define HTTP_DEFAULT_IDLE_TIMEOUT_S 120u
#define HTTP_DEFAULT_MAX_BODY ((size_t)(1u << 20) + 64u * 1024u)
#define HTTP_DEFAULT_BACKLOG 511
#define HTTP_DEFAULT_CLOSE_GRACE_MS 1000u

/*
 * Server settings; a zeroed struct gives the defaults above.  Strings are
 * borrowed for the duration of http_server_start() only.
 */
typedef struct http_server_config {
	/* IPv4 or IPv6 literal ("127.0.0.1", "::1", "[::1]", "0.0.0.0",
	 * "::"); NULL: HTTP_DEFAULT_HOST.  "::" listens on IPv6 only. */
	const char *host;
	/* Decimal port "0".."65535"; "0" or NULL: an ephemeral port, see
	 * http_server_port(). */
	const char *port;
	unsigned max_connections; /* open connections, parked ones included */
	/* A connection with no traffic for this long is closed.  Parked
	 * requests are exempt (MHD does not time out suspended connections
	 * and restarts the clock on resume), so long polls are not cut. */
	unsigned idle_timeout_s;
	/* Largest accepted request body.  A larger one is answered 413
	 * payload_too_large without calling the handler: refused from its
	 * Content-Length before any of it is read, or, for a chunked body,
	 * read and dropped once the limit is crossed (MHD cannot answer in
	 * mid-body); a chunked body going past 8 times the limit gets the
	 * connection closed instead. */
	size_t max_body;
	int backlog; /* listen(2) backlog */
	/* How long http_server_close() waits for answers already queued
	 * to be written before it drops the remaining connections. */
	unsigned close_grace_ms;
	/* MHD's diagnostics, one line each without the newline; NULL drops
	 * them.  Called on the loop thread. */
	void (*log)(void *log_ud, const char *line);
	void *log_ud;
} http_server_config;

/* Called once per request, body complete.  See the lifetime rules above. */
typedef void (*http_handler)(http_request *req, void *ud);

typedef void (*http_abort_cb)(http_request *req, void *ud);

/* Counters since start, for metrics. */
typedef struct http_server_stats {
	uint64_t connections;      /* accepted */
	uint64_t requests;         /* request lines parsed */
	uint64_t responses;        /* answers queued, automatic ones included */
	uint64_t status[6];        /* responses by class: [2] is 2xx ... [5] */
	uint64_t too_large;        /* automatic 413s */
	uint64_t aborted;          /* parked requests dropped (client gone) */
	uint64_t bytes_in;         /* request header + body bytes */
	uint64_t bytes_out;        /* response body bytes (headers excluded) */
	uint32_t open_connections; /* now */
	uint32_t pending;          /* parked requests now */
	uint32_t in_flight;        /* requests begun, not yet finished, now */
} http_server_stats;

/*
 * Bind, listen and start serving on `loop`.  On success *out is the server
 * (caller closes it with http_server_close()).  Errors:
 *   -HORA_EINVAL  bad host or port ("port: \"x\" is not a number 0-65535")
 *   -HORA_EBUSY   address in use ("cannot listen on 127.0.0.1:7070:
 *                 address already in use")
 *   -HORA_EUNAVAIL address not available on this host (e.g. no IPv6)
 *   -HORA_EIO / -HORA_ENOMEM  other socket, MHD or allocation failures
 * with the sentence in *err (may be NULL).  Nothing is left open on error.
 */
int http_server_start(uv_loop_t *loop, const http_server_config *cfg,
		      http_handler cb, void *ud, http_server **out,
		      hora_error *err);

/* The bound port (useful with port "0"). */
uint16_t http_server_port(const http_server *s);

/* Close the listening socket; open connections go on being served.  Safe
 * to call more than once, and from inside the handler. */
void http_server_stop_accepting(http_server *s);

/*
 * Shut down: stop accepting; run the abort callback of every parked
 * request (before this function returns) and answer its client 503
 * shutting_down; answer 503 to every request completing meanwhile,
 * without calling the handler; give queued answers up to close_grace_ms
 * to be written (less if none is in flight); then close every connection
 * and libuv handle and free the server.  Once this returns, the only
 * callback left is `done(ud)` (may be NULL), run from the loop when
 * everything is released; `s` is invalid from then on.  May be called
 * from inside the handler or an abort callback.  Call once.
 */
void http_server_close(http_server *s, void (*done)(void *ud), void *ud);

void http_server_stats_get(const http_server *s, http_server_stats *out);

/* --- the request ------------------------------------------------------ */

/* "GET", "POST", ... as sent. */
const char *http_request_method(const http_request *req);

/* The path as received, without the query string and still
 * percent-encoded ("/jobs/a%2Fb"), so a "%2F" inside a segment is not
 * taken for a separator; decode each segment with http_url_decode().
 * Never NULL. */
const char *http_request_path(const http_request *req);

/* First query argument called `name` (case-sensitive), decoded ('+' and
 * %XX); "" for "?name" without '='; NULL when absent.  A decoded %00 ends
 * the string early. */
const char *http_request_query(const http_request *req, const char *name);

/* Visit the query arguments in order: those called `name`, or all of them
 * when `name` is NULL (repeated ones like label=a=1&label=b=2 each once).
 * `value` is "" for an argument without '='.  Stop early when `cb`
 * returns non-zero.  Returns the number of calls made. */
typedef int (*http_kv_cb)(void *ud, const char *name, const char *value);
size_t http_request_query_each(const http_request *req, const char *name,
			       http_kv_cb cb, void *ud);

/* Request header, name case-insensitive; NULL when absent. */
const char *http_request_header(const http_request *req, const char *name);

/* The body: `len` bytes (may be 0), followed by a '\0' not counted in
 * len, so text bodies can be used as strings.  Never NULL. */
const char *http_request_body(const http_request *req, size_t *len);

/* Client address, "127.0.0.1:51234" or "[::1]:51234". */
const char *http_request_peer(const http_request *req);

/*
 * Tell `cb(req, ud)` if the request is dropped before it is answered: the
 * client disconnected while it was parked, or the server is closing.  The
 * request is invalid once `cb` returns; http_respond() must not be called
 * on it, in or after `cb`.  Replaces an earlier callback; NULL removes it.
 */
void http_request_on_abort(http_request *req, http_abort_cb cb, void *ud);

/*
 * Add a response header (Retry-After, Location, ...) for the coming
 * http_respond().  Copies both strings.  -HORA_EINVAL if the name is not
 * an HTTP token or is Content-Length / Transfer-Encoding (the server sets
 * those), the value holds CR or LF, or the request was already answered;
 * -HORA_ENOMEM.
 */
int http_response_header(http_request *req, const char *name,
			 const char *value);

/*
 * Answer the request: `status` (200-599), a Content-Type (NULL: none) and
 * `len` body bytes, copied.  Exactly once per request, from the handler or
 * later from the loop.  Returns 0; -HORA_EINVAL for a bad status or a
 * request already answered or aborted (nothing is sent); -HORA_ENOMEM if
 * the answer could not be built (the client gets a 500 instead, the
 * request is finished all the same).
 */
int http_respond(http_request *req, int status, const char *content_type,
		 const char *body, size_t len);

/* --- helpers ---------------------------------------------------------- */

/*
 * Percent-decode `len` bytes of `src` into `dst` (capacity `cap`, '\0'
 * appended), for one path segment: '+' stays '+'.  dst == src is allowed.
 * -HORA_EINVAL on a malformed escape, an escaped or raw NUL;
 * -HORA_ERANGE if `dst` is too small.  *out_len (may be NULL) gets the
 * decoded length.
 */
int http_url_decode(const char *src, size_t len, char *dst, size_t cap,
		    size_t *out_len);

#endif
