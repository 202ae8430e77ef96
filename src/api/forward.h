/*
 * forward.h - relay an HTTP request to another node (the Raft leader) and
 * answer with what it said, all on the node's libuv loop; plus a small
 * asynchronous client for internal calls between nodes.
 *
 * API.md: "Any node accepts any request; writes and claims reach the
 * leader through the node that received them."  A follower's handler
 * hands the request to forwarder_forward() and returns without answering
 * (the request is parked); the answer goes out when the leader's arrives.
 *
 * Everything runs on one loop (DESIGN.md principle 1): libcurl's multi
 * interface is driven by uv_poll_t/uv_timer_t handles, name resolution is
 * libcurl's asynchronous resolver, nothing blocks.  One multi handle holds
 * the connection cache, so consecutive forwards to the same leader reuse a
 * kept-alive TCP connection (TCP_NODELAY, TCP keep-alive probes on) and
 * idle easy handles are pooled.
 *
 * Threading: every function must be called on the loop's thread.
 */
#ifndef HORA_API_FORWARD_H
#define HORA_API_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "api/http.h"
#include "core/err.h"

typedef struct forwarder forwarder;

/* Timeouts (ms). */
#define FORWARD_CONNECT_TIMEOUT_MS 2000L
#define FORWARD_TIMEOUT_MS 10000L        /* a forwarded request, total */
#define FORWARD_CLAIM_WAIT_MAX_MS 300000L /* wait_ms is capped at this */
#define FORWARD_CALL_TIMEOUT_MS 5000L     /* forwarder_call, total */
/* Largest answer body relayed or handed to a call's callback; a larger
 * one counts as a transfer failure. */
#define FORWARD_MAX_RESPONSE ((size_t)64 << 20)

/* -HORA_ENOMEM (sentence in *err, may be NULL). */
int forwarder_new(uv_loop_t *loop, forwarder **out, hora_error *err);

/* For https:// peers: the CA to verify them with (NULL: the system's),
 * and this node's certificate and key to present (NULL: none).  Paths
 * are copied.  0 or -HORA_ENOMEM. */
int forwarder_set_tls(forwarder *f, const char *ca, const char *cert,
		      const char *key);

/*
 * Abort every transfer in flight: each forwarded request is answered 503
 * (code "unavailable", Retry-After: 1; FORWARD_CLAIM too), each pending
 * forwarder_call's callback runs with status 0 ("... shutting down").
 * Then every handle is closed and `done(ud)` (may be NULL) runs from the
 * loop once all is released; `f` is invalid as soon as this returns.  The
 * callbacks run before forwarder_close() returns; a forwarder_call() made
 * from one of them is refused.  Call once; may be called from a call's
 * callback or an abort callback.
 */
void forwarder_close(forwarder *f, void (*done)(void *ud), void *ud);

enum {
	FORWARD_CLAIM = 1 << 0,  /* a long poll: on failure 200 {"runs":[]} */
	FORWARD_STREAM = 1 << 1, /* push delivery: a 200 is relayed as a
				  * stream (http_respond_stream), bytes as
				  * they come, ended cleanly when the leader
				  * ends it or goes away */
};
/* A relayed stream is cut when nothing (not even the leader's keep-alive
 * line, every 15 s) arrives for this long. */
#define FORWARD_STREAM_SILENCE_S 45L

/*
 * Relay `req` (method, raw path + query string as received, body, and the
 * headers Content-Type, Authorization, Accept) to base_url (e.g.
 * "http://127.0.0.1:7070"; "http://" is assumed without a scheme, a
 * trailing '/' is dropped) and answer `req` with the status, body,
 * Content-Type, Retry-After and Location of the answer.  Adds
 * "X-Hora-Forwarded: <from_id>" so the receiver can refuse a second hop.
 *
 * If the transfer fails (connect refused, reset, timeout, an answer that
 * is not HTTP or is too large): answer 503
 *   {"error":{"code":"unavailable","message":"the leader at <url> did not
 *   answer: <why>; retry"}}
 * with Retry-After: 1 -- except with FORWARD_CLAIM, where the worker gets
 * 200 {"runs":[]} (long polls survive a leader change; the worker sees at
 * worst an empty answer).  An answer of the leader, 5xx included, is
 * relayed as it is.
 *
 * If the client leaves first, the transfer is cancelled (its connection to
 * the leader is closed, so the leader sees its client leave too).  This
 * takes the request's abort callback (http_request_on_abort): the caller
 * must not set another one afterwards.
 *
 * Timeouts: connect FORWARD_CONNECT_TIMEOUT_MS; total FORWARD_TIMEOUT_MS,
 * or for FORWARD_CLAIM the claim's own wait_ms (from the JSON body,
 * default 0, at most FORWARD_CLAIM_WAIT_MAX_MS) plus FORWARD_TIMEOUT_MS;
 * for FORWARD_STREAM none, but FORWARD_STREAM_SILENCE_S of silence.
 *
 * The query string is rebuilt from the decoded arguments (http.h has no
 * accessor for the raw one): each name and value is percent-encoded
 * again, so the receiver decodes the same arguments in the same order;
 * only "?a" and "?a=" (both read as "") become alike.
 *
 * Returns 0: `req` will be answered (from inside this call only when it
 * is made from a callback run by forwarder_close(): 503, shutting down).
 * -HORA_ENOMEM: nothing was done, the caller answers.
 */
int forwarder_forward(forwarder *f, http_request *req, const char *base_url,
		      uint64_t from_id, int flags);

/*
 * An internal call: `method` ("GET", "POST", ...), the full URL, an
 * optional JSON body (sent with Content-Type: application/json) and
 * bearer token (both copied, may be NULL).  `cb(ud, status, body, len)`
 * runs exactly once, from the loop and never from inside this function:
 * with the HTTP status and the answer's body, or with status 0 and an
 * error sentence in `body` on a transport failure (or forwarder_close()).
 * `body` is '\0'-terminated (not counted in len) and valid during `cb`.
 * Timeouts: connect FORWARD_CONNECT_TIMEOUT_MS, total
 * FORWARD_CALL_TIMEOUT_MS.
 *
 * Returns 0, or (and `cb` will not run) -HORA_EINVAL for a NULL or empty
 * method or URL or a missing cb, -HORA_ENOMEM, -HORA_ESHUTDOWN after
 * forwarder_close().
 */
typedef void (*forwarder_call_cb)(void *ud, int status, const char *body,
				  size_t len);
int forwarder_call(forwarder *f, const char *method, const char *url,
		   const char *json_body, const char *token,
		   forwarder_call_cb cb, void *ud);

/* Counters since forwarder_new(), for metrics and tests. */
typedef struct forwarder_stats {
	uint64_t forwarded; /* forwarder_forward() calls accepted */
	uint64_t relayed;   /* answers of the leader relayed */
	uint64_t failed;    /* transfer failures answered 503 / {"runs":[]} */
	uint64_t cancelled; /* clients gone first */
	uint64_t calls;     /* forwarder_call() accepted */
	uint64_t calls_failed; /* callbacks run with status 0 */
	uint32_t in_flight; /* transfers now, forwards and calls */
} forwarder_stats;

void forwarder_stats_get(const forwarder *f, forwarder_stats *out);

#endif
