/*
 * curl_loop.h - libcurl's multi interface driven by a libuv loop: the one
 * place that does it, for the executor's `http` runs, the forwarder
 * (relays to the leader, internal calls) and `hora worker`'s client.
 *
 * The curl-multi-uv pattern: CURLMOPT_SOCKETFUNCTION gives each socket a
 * uv_poll_t, CURLMOPT_TIMERFUNCTION drives one uv_timer_t, both let
 * libcurl act on what happened (the multi socket API) and then hand every
 * finished transfer to its owner.  Name resolution is libcurl's asynchronous resolver: nothing
 * blocks the loop.  One multi handle holds the connection cache, so
 * consecutive transfers to the same host reuse kept-alive connections.
 *
 * Transfers.  The owner embeds a curl_loop_xfer in its own record, sets
 * `easy` (fully configured) and `done`, and calls curl_loop_add(); the
 * driver takes CURLOPT_PRIVATE for itself.  `done(x, result)` runs
 * exactly once per added transfer unless curl_loop_remove() comes first:
 *   - when the transfer finishes (any result), from the loop, once
 *     libcurl has returned to the driver;
 *   - or from curl_loop_close() (result CURLE_ABORTED_BY_CALLBACK, and
 *     curl_loop_closing() is then true).
 * Either way the easy handle is already out of the multi, so `done` may
 * free it, reuse it, add new transfers (refused while closing), remove
 * others, or close the driver.  The easy handle stays the owner's.
 *
 * Lifetime.  curl_loop_close() finishes every transfer in flight (as
 * above), cleans up the multi handle (closing the cached connections) and
 * closes the uv handles; `closed(ud)` runs from the loop once the last
 * one is closed, and only then is the driver's memory freed, so a close
 * from inside a callback never frees anything under a caller's feet.
 * Nothing but curl_loop_remove() may be called after curl_loop_close().
 *
 * Threading: every function on the loop's thread.
 */
#ifndef HORA_NET_CURL_LOOP_H
#define HORA_NET_CURL_LOOP_H

#include <stdbool.h>

#include <curl/curl.h>
#include <uv.h>

#include "core/err.h"

typedef struct curl_loop curl_loop;
typedef struct curl_loop_xfer curl_loop_xfer;

typedef void (*curl_loop_done_cb)(curl_loop_xfer *x, CURLcode result);

struct curl_loop_xfer {
	CURL *easy;             /* the owner's, configured before add */
	curl_loop_done_cb done; /* the owner's */
	/* private to curl_loop.c */
	curl_loop *cl;          /* while added */
	curl_loop_xfer *prev, *next;
};

/* Also sets up libcurl for the process (httpc_global_init).
 * -HORA_ENOMEM (sentence in *err, may be NULL).  On failure nothing is
 * left on the loop. */
int curl_loop_new(uv_loop_t *loop, curl_loop **out, hora_error *err);

/* CURLMOPT_MAXCONNECTS: idle connections kept in the cache. */
void curl_loop_set_max_connects(curl_loop *cl, long n);

/*
 * Start `x` (x->easy and x->done set).  0; -HORA_ESHUTDOWN after
 * curl_loop_close() (or while it runs); -HORA_ENOMEM, or -HORA_EIO for
 * any other refusal of the multi handle.  `done` never runs from inside
 * this call.
 */
int curl_loop_add(curl_loop *cl, curl_loop_xfer *x);

/* Cancel `x`: out of the multi (a connection in use is closed, so the
 * peer sees its client leave), `done` will not run.  A no-op when `x` is
 * not in flight. */
void curl_loop_remove(curl_loop_xfer *x);

/* Whether `x` was added and has not finished or been removed. */
bool curl_loop_active(const curl_loop_xfer *x);

/* Transfers in flight. */
unsigned curl_loop_pending(const curl_loop *cl);

/* True from the start of curl_loop_close(). */
bool curl_loop_closing(const curl_loop *cl);

/* See "Lifetime" above.  `closed` may be NULL.  Call once. */
void curl_loop_close(curl_loop *cl, void (*closed)(void *ud), void *ud);

#endif
