/*
 * courier.h - bytes written to sockets at given instants by a thread of
 * their own, so that what the event loop happens to be doing at a run's
 * due instant (applying a batch, answering a request, forking for a
 * snapshot) does not delay the run's delivery.
 *
 * The loop prepares a delivery ahead of time (the bytes of a stream's
 * chunk, the instant, a tag naming the run) and hands it to a line (one
 * socket).  At the instant the courier thread appends the bytes to the
 * line's output and sends what the socket takes; the rest goes out as
 * the socket drains.  Once a delivery's bytes are in the output it is
 * "written": it can no longer be revoked, and the loop is told (the
 * written callback, on the loop thread, in batches).
 *
 * A line owns its socket's writes from courier_line_open() until
 * courier_line_abort() or the done callback of courier_line_finish():
 * nobody else may write to it meanwhile (http.c keeps MHD's connection
 * suspended).  Everything here is called on the loop thread except the
 * thread's own work; the state the two share is under one mutex, and a
 * send never blocks (MSG_DONTWAIT), so the loop waits at most one send.
 */
#ifndef HORA_API_COURIER_H
#define HORA_API_COURIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <uv.h>

#include "core/clock.h"

typedef struct courier courier;
typedef struct courier_line courier_line;

/* A tagged delivery was written at `at` (wall clock, usec). */
typedef void (*courier_written_cb)(void *ud, uint64_t tag, hora_time at);
/* courier_line_finish() is over: everything was sent (ok) or the socket
 * failed or did not drain in time (!ok).  The line is freed after. */
typedef void (*courier_done_cb)(void *ud, bool ok);

/* The thread starts at once; 0 or -HORA_ENOMEM / -HORA_EIO. */
int courier_new(uv_loop_t *loop, courier **out);
/* Stops the thread.  Every line must be aborted or done before. */
void courier_free(courier *c);

/* The line of socket `fd` (not closed by the courier); NULL on ENOMEM. */
courier_line *courier_line_open(courier *c, int fd, courier_written_cb written,
				courier_done_cb done, void *ud);

/* Write a copy of `bytes` at `at` (now if in the past: by the thread,
 * after the current loop turn, with the turn's other lines).  tag 0: no
 * written callback, no revoking.  0 or -HORA_ENOMEM, -HORA_EINVAL (the
 * line is finishing or failed). */
int courier_send_at(courier_line *l, hora_time at, const void *bytes,
		    size_t len, uint64_t tag);

/* The same, the bytes gathered from `iovcnt` pieces (one copy). */
int courier_sendv_at(courier_line *l, hora_time at, const struct iovec *iov,
		     int iovcnt, uint64_t tag);

enum courier_revoked {
	COURIER_REVOKED, /* taken back before its instant: never written */
	COURIER_WRITTEN, /* written (*at says when); no callback will follow */
	COURIER_UNKNOWN, /* no such tag (its callback already ran) */
};
enum courier_revoked courier_revoke(courier_line *l, uint64_t tag,
				    hora_time *at);

/* Bytes written but not yet taken by the socket. */
size_t courier_line_backlog(courier_line *l);
/* Deliveries not yet written. */
size_t courier_line_waiting(courier_line *l);

/* Stop taking deliveries: drop the tagged ones not yet written and the
 * untagged ones not yet due (no callbacks), write the untagged ones due
 * now, send the output, then call `done` on the loop and free the line;
 * if the socket has not taken it all within `grace_ms`, done(false). */
void courier_line_finish(courier_line *l, unsigned grace_ms);
/* Stop now: when this returns the thread will not touch the socket
 * again; no callback of the line runs after it; the line is freed. */
void courier_line_abort(courier_line *l);

#endif
