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
 * Slow and many clients (DESIGN.md principle 8).  The server accepts
 * connections itself, so that none waits in the listen backlog: past
 * max_connections, or past max_per_address from one client address, a
 * new connection is answered at once (503 unavailable, 429 overloaded,
 * both with Retry-After: 1) and closed.  A request head must arrive
 * within head_timeout_ms and a body within body_timeout_ms (see the
 * config), else the connection is closed; parked requests are exempt.
 * A raw NUL or control byte in the request target is refused with 400
 * before the handler runs.
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

#include <stdbool.h>
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
#define HTTP_DEFAULT_MAX_PER_ADDRESS 256u
#define HTTP_DEFAULT_HEAD_TIMEOUT_MS 10000u
#define HTTP_DEFAULT_BODY_TIMEOUT_MS 60000u
/* For max_per_address: no per-address limit. */
#define HTTP_NO_LIMIT (~0u)

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
	/* Open connections, parked ones included (default 1024).  One more
	 * is answered 503 {"error":{"code":"unavailable",...}} with
	 * Retry-After: 1 and Connection: close as soon as it is accepted,
	 * then closed.  Over TLS the refusal is a fatal TLS alert
	 * (internal_error) instead: an HTTP answer would need the handshake
	 * the refusal is there to avoid. */
	unsigned max_connections;
	/* Open connections from one client address (default 256): one more
	 * is answered like a full server but 429 overloaded.  IPv4 addresses
	 * count one by one, IPv6 ones by their /64 prefix (a host usually
	 * holds a whole /64).  HTTP_NO_LIMIT: no per-address limit. */
	unsigned max_per_address;
	/* A request head (request line and headers, and for TLS the
	 * handshake) must be complete within this many ms (default 10000)
	 * of the connection being accepted, else the connection is closed.
	 * On a keep-alive connection the clock starts when the previous
	 * answer has been sent, and it is checked every head_timeout_ms from
	 * then: a check that finds the next head incomplete closes the
	 * connection if any of it has arrived since the previous check (after
	 * a short grace, head_timeout_ms / 8, when the latest bytes are
	 * fresh, so a head caught mid-flight by the check is not cut); if
	 * nothing has arrived the connection is only idle and is left to
	 * idle_timeout_s. */
	unsigned head_timeout_ms;
	/* A body must be complete within this many ms (default 60000) of
	 * the end of its head, else the client gets 408 request_timeout and
	 * the connection is closed.  Parked requests are exempt from both
	 * deadlines. */
	unsigned body_timeout_ms;
	/* A connection with no traffic for this long is closed.  Parked
	 * requests are exempt (MHD does not time out suspended connections
	 * and restarts the clock on resume), so long polls are not cut. */
	unsigned idle_timeout_s;
	/* Largest accepted request body.  A larger one is answered 413
	 * payload_too_large without calling the handler: refused from its
	 * Content-Length before any of it is read, or, for a chunked body,
	 * as soon as the limit is crossed (the answer is written past MHD,
	 * which cannot answer mid-body); the connection is then closed once
	 * the client stops sending, at the latest 1 s later or after 8
	 * times the limit more. */
	size_t max_body;
	int backlog; /* listen(2) backlog */
	/* HTTPS: PEM text of the certificate (chain) and of its unencrypted
	 * private key, borrowed during http_server_start() only.  Both or
	 * neither; with both, every connection is TLS (GnuTLS, in MHD). */
	const char *tls_cert_pem;
	const char *tls_key_pem;
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
	/* Connections refused at accept (not counted in `connections` nor
	 * in the responses): server full (or out of memory), or too many
	 * from the client's address. */
	uint64_t refused_full;
	uint64_t refused_per_address;
	uint64_t head_timeouts; /* closed: head not in by its deadline */
	uint64_t body_timeouts; /* closed (after a 408): body too slow */
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
 *   -HORA_EINVAL  (field "tls") only one of the PEMs, or MHD refused
 *                 them ("... GnuTLS failed to setup x509 certificate/key")
 *   -HORA_EUNAVAIL (field "tls") libmicrohttpd built without TLS
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

/* Whether the request came over TLS (the scheme is https). */
bool http_request_is_tls(const http_request *req);

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

/*
 * Streamed answers (push delivery): `status`, a Content-Type (NULL: none)
 * and the headers added so far now, then a body that does not end by
 * itself, sent with chunked transfer encoding as http_stream_write()
 * supplies it.  Call instead of http_respond(), from the handler or on a
 * parked request.  Returns 0, -HORA_EINVAL (bad status, already
 * answered) or -HORA_ENOMEM (the client gets a 500; the request is
 * finished).
 *
 * The request stays valid until http_stream_end() returns or its abort
 * callback returns: the client went away (the stream is cut), or the
 * server is closing (the stream ends cleanly after what was written;
 * write no more).  While nothing is to be written the
 * connection is suspended and watched for the client going away, as a
 * parked request is; it is exempt from the deadlines and idle timeout
 * then, so an owner that writes nothing for long should send something
 * now and then (a keep-alive line).
 */
int http_respond_stream(http_request *req, int status,
			const char *content_type);

/* Append `len` bytes to the stream; they go out on the next loop turn.
 * -HORA_EINVAL if `req` is not a live stream; -HORA_ENOMEM: the stream
 * is cut and the abort callback follows (later, not from this call). */
int http_stream_write(http_request *req, const char *data, size_t len);

/*
 * Timed writes.  On a plain HTTP/1.1 stream, once its headers are out,
 * the stream's writes go through a thread of the server's own (the
 * courier, api/courier.h), and a write may be prepared ahead: its bytes
 * go out at `at` (wall clock, usec) even if the loop is busy then.
 * `tag` (> 0) names it: `written` is called on the loop when its bytes
 * went out, unless http_stream_revoke() took it back first.
 */
typedef void (*http_written_cb)(void *ud, uint64_t tag, int64_t at);
/* Whether http_stream_write_at() can be used now. */
bool http_stream_can_write_at(const http_request *req);
void http_stream_on_written(http_request *req, http_written_cb cb, void *ud);
/* 0, -HORA_EINVAL (not a live direct stream: write at the instant
 * instead), -HORA_ENOMEM. */
int http_stream_write_at(http_request *req, int64_t at, const char *data,
			 size_t len, uint64_t tag);
/* Take back a timed write: HTTP_REVOKED (never written),
 * HTTP_WRITTEN (*at: when; no callback follows) or HTTP_UNKNOWN (its
 * callback already ran, or no such tag). */
enum http_revoked { HTTP_REVOKED, HTTP_WRITTEN, HTTP_UNKNOWN };
enum http_revoked http_stream_revoke(http_request *req, uint64_t tag,
				     int64_t *at);

/* Bytes written with http_stream_write() that have not gone out yet (a
 * client that does not read makes this grow). */
size_t http_stream_backlog(const http_request *req);

/* End the stream cleanly once what was written has gone out.  `req` is
 * invalid for the caller from then on; its abort callback is removed. */
void http_stream_end(http_request *req);

/* End it now, dropping what was not sent (a client that does not read):
 * the connection is closed.  Same rules as http_stream_end. */
void http_stream_cut(http_request *req);

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
