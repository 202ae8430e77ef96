/*
 * http.c - the HTTP server: libmicrohttpd 0.9.75 in "external epoll" mode
 * driven by libuv.  Accepting connections and their deadlines live in
 * http_conn.c; what both files share is in http_int.h.
 *
 * Driving MHD.  MHD runs without threads (MHD_USE_EPOLL): it keeps its
 * sockets in its own epoll set, whose fd we watch with a uv_poll_t.  After
 * every MHD_run() the uv_timer_t is re-armed from MHD_get_timeout() (idle
 * timeouts, and 0 when MHD has work left over).  MHD has no wake-up
 * channel in this mode, so MHD_resume_connection() called from outside
 * MHD_run() would go unnoticed: every resume "kicks" the timer to 0 ms
 * (or, if we are inside MHD_run() at the time, makes the post-run re-arm
 * use 0), and MHD_run() resumes the connection on the next loop turn.
 * MHD has no listening socket (MHD_USE_NO_LISTEN_SOCKET): http_conn.c
 * accepts, refuses what is over the limits, and hands the rest over with
 * MHD_add_connection().
 *
 * One request per connection.  MHD does not pipeline: it reads the next
 * request on a connection only after the previous one finished.  So the
 * http_request is the per-connection object (allocated when MHD accepts
 * the socket, freed when it closes it) and is reused request after
 * request, with its path, body and header buffers: a keep-alive request
 * costs no allocation of ours, only MHD's response object.
 *
 * Call sequence per request (MHD callbacks):
 *   on_uri        raw request target, before MHD decodes it: copy the raw
 *                 path, note NUL and control bytes
 *   on_access #1  headers parsed: refuse early (400 for the target, 413
 *                 from Content-Length, 503 while closing) or get ready
 *                 for the body
 *   on_access #n  body chunks: append; past the limit, answer 413 past
 *                 MHD and drop the rest (REQ_LINGER)
 *   on_access     final call: run the handler; if it did not answer,
 *                 MHD_suspend_connection() (the request is "parked")
 *   on_access     again after a resume: queue the stored answer
 *   on_completed  answer sent or connection dropped: reset the request
 * Deadlines follow it (http_conn.c): DL_HEAD from the accept or from the
 * previous answer to on_access #1, DL_BODY from there to the final call,
 * none while the handler has it or MHD writes the answer.
 *
 * Asynchronous answers.  http_respond() on a parked request builds the
 * MHD_Response, stores it, resumes the connection and kicks; MHD calls
 * on_access again for the same request and we queue it there, inside
 * MHD's state machine, which is where MHD_queue_response() is meant to be
 * called.
 *
 * Disconnects of parked requests.  MHD removes a suspended connection
 * from its epoll set and notices nothing until it is resumed.  We watch
 * the socket ourselves: while parked, a uv_poll_t on the connection fd
 * (MHD_CONNECTION_INFO_CONNECTION_FD) waits for UV_DISCONNECT, i.e.
 * EPOLLRDHUP, plus the EPOLLHUP/EPOLLERR epoll always reports: the peer
 * sent FIN or RST.  A client that half-closes its side and waits for the
 * answer is treated as gone, as MHD itself does when it reads EOF.  Data
 * a client sends while parked (pipelining, unsupported) does not wake the
 * watcher.  On that event the owner's abort callback runs, and the
 * connection is resumed so MHD closes it (on_access answers MHD_NO).  The
 * watcher is stopped (libuv removes the fd from its epoll at once) before
 * every resume, so it never sees the fd after MHD closes it.
 *
 * Closing.  See http_server_close() in http.h.  MHD_stop_daemon() must
 * not run inside MHD_run() nor with suspended connections, so the close
 * resumes every parked request with a 503 and finishes from a timer.
 */
#include "api/http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/http_int.h"

#include "api/courier.h"
#include "core/alloc.h"
#include "core/assert.h"
#include "core/buf.h"
#include "core/http_token.h"

#define BODY_KEEP (64 * 1024) /* body buffer kept between requests */
#define BUF_KEEP 4096         /* heap path/header buffer kept */
#define ADDR_TEXT_MAX (INET6_ADDRSTRLEN + 16)

static void server_arm(http_server *s);
static void on_close_timer(uv_timer_t *t);

/* --- driving MHD -------------------------------------------------------- */

static void server_run(http_server *s)
{
	if (s->stopped)
		return;
	HORA_ASSERT(!s->in_run);
	s->in_run = true;
	s->kick = false;
	MHD_run(s->mhd);
	s->in_run = false;
	server_arm(s);
}

static void on_mhd_timer(uv_timer_t *t)
{
	server_run(t->data);
}

static void on_mhd_poll(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	server_run(p->data);
}

/* Re-arm the timer after MHD_run(): 0 if a resume is outstanding or MHD
 * has buffered work, else MHD's earliest idle timeout, else nothing. */
static void server_arm(http_server *s)
{
	MHD_UNSIGNED_LONG_LONG ms;

	if (s->stopped)
		return;
	if (s->kick)
		ms = 0;
	else if (MHD_get_timeout(s->mhd, &ms) != MHD_YES) {
		uv_timer_stop(&s->timer);
		return;
	}
	uv_timer_start(&s->timer, on_mhd_timer, (uint64_t)ms, 0);
}

/* A connection was resumed (or shut down by us): make sure MHD_run()
 * comes soon. */
static void server_kick(http_server *s)
{
	if (s->stopped)
		return;
	s->kick = true;
	if (!s->in_run)
		uv_timer_start(&s->timer, on_mhd_timer, 0, 0);
}

void http__run(http_server *s)
{
	if (!s->in_run)
		server_run(s);
}

void http__kick(http_server *s)
{
	server_kick(s);
}

void http__logf(http_server *s, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (s->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	s->log(s->log_ud, line);
}

__attribute__((format(printf, 2, 0))) static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	http_server *s = cls;
	size_t n;

	if (s->quiet) {
		/* "Application reported internal error, closing connection"
		 * after a deliberate MHD_NO from on_access. */
		s->quiet = false;
		return;
	}
	vsnprintf(s->last_log, sizeof s->last_log, fmt, ap);
	n = strlen(s->last_log);
	while (n > 0 && (s->last_log[n - 1] == '\n' ||
			 s->last_log[n - 1] == '\r' ||
			 s->last_log[n - 1] == '.'))
		s->last_log[--n] = '\0';
	if (s->log != NULL)
		s->log(s->log_ud, s->last_log);
}

/* --- parked requests ---------------------------------------------------- */

static void parked_add(http_server *s, http_request *r)
{
	r->prev = NULL;
	r->next = s->parked;
	if (s->parked != NULL)
		s->parked->prev = r;
	s->parked = r;
	s->st.pending++;
}

static void parked_remove(http_server *s, http_request *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		s->parked = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	s->st.pending--;
}

static void on_peer_event(uv_poll_t *p, int status, int events);

/* Watch a parked connection's socket for the client going away.  Without
 * the watch (uv_poll_init failing: should not happen) the request simply
 * waits for its answer. */
static void watch_start(http_request *r)
{
	http_server *s = r->s;
	const union MHD_ConnectionInfo *ci;
	int rv;

	if (!r->poll_init) {
		ci = MHD_get_connection_info(r->mc,
					     MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci == NULL)
			return;
		rv = uv_poll_init(s->loop, &r->poll, ci->connect_fd);
		if (rv != 0) {
			http__logf(s, "cannot watch parked connection: %s",
				   uv_strerror(rv));
			return;
		}
		r->poll.data = r;
		r->poll_init = true;
	}
	uv_poll_start(&r->poll, UV_DISCONNECT, on_peer_event);
}

static void watch_stop(http_request *r)
{
	if (r->poll_init)
		uv_poll_stop(&r->poll);
}

static void run_abort_cb(http_request *r)
{
	http_abort_cb cb = r->abort_cb;

	r->abort_cb = NULL;
	if (cb != NULL)
		cb(r, r->abort_ud);
}

/*
 * Drop a parked request: tell the owner (the accessors still work inside
 * its callback), then resume the connection, either to answer `resp` (the
 * shared 503 at shutdown) or, when NULL, for MHD to close it.
 */
static void abort_parked(http_request *r, struct MHD_Response *resp,
			 unsigned status)
{
	http_server *s = r->s;

	parked_remove(s, r);
	watch_stop(r);
	r->state = REQ_ABORTED; /* http_respond() now refuses it */
	run_abort_cb(r);
	if (resp != NULL) {
		r->resp = resp;
		r->resp_owned = false;
		r->resp_len = 0;
		r->status = status;
		r->state = REQ_RESUMING;
	}
	MHD_resume_connection(r->mc);
	server_kick(s);
}

/* --- streamed answers ---------------------------------------------------- */

/* A clean end waits this long for the client to take what was written. */
#define STREAM_FINISH_GRACE_MS 5000

static void stream_link(http_server *s, http_request *r)
{
	r->s_prev = NULL;
	r->s_next = s->streams;
	if (s->streams != NULL)
		s->streams->s_prev = r;
	s->streams = r;
}

static void stream_unlink(http_server *s, http_request *r)
{
	if (r->s_prev != NULL)
		r->s_prev->s_next = r->s_next;
	else if (s->streams == r)
		s->streams = r->s_next;
	if (r->s_next != NULL)
		r->s_next->s_prev = r->s_prev;
	r->s_prev = r->s_next = NULL;
}

/* The reader suspended the connection for want of bytes: let MHD go on.
 * (A stream's disconnect watch stays on for its whole life: starting and
 * stopping it at every pause cost two epoll_ctl calls per run written.) */
static void stream_wake(http_request *r)
{
	if (!r->s_wait || r->cline != NULL)
		return; /* direct: the courier owns the socket until it is done */
	r->s_wait = false;
	MHD_resume_connection(r->mc);
	server_kick(r->s);
}

/* The courier lets go of the socket now (nothing it held goes out). */
static void direct_stop(http_request *r)
{
	if (r->cline == NULL)
		return;
	courier_line_abort(r->cline);
	r->cline = NULL;
	r->s_finishing = false;
}

/* Client gone (or cut by us): tell the owner (who may still take back
 * timed writes), let MHD close it. */
static void stream_cut(http_request *r)
{
	r->s_abort = true;
	run_abort_cb(r);
	direct_stop(r);
	stream_wake(r);
}

static void direct_written(void *ud, uint64_t tag, hora_time at)
{
	http_request *r = ud;
	if (r->s_written != NULL)
		r->s_written(r->s_written_ud, tag, at);
}

/* The courier sent all it had after http_stream_end(): MHD ends the
 * stream (or closes the connection, if the client did not take it). */
static void direct_done(void *ud, bool ok)
{
	http_request *r = ud;
	r->cline = NULL; /* freed by the courier after this returns */
	r->s_finishing = false;
	if (!ok)
		r->s_abort = true;
	stream_wake(r);
}

/* Hand the socket's writes to the courier: MHD has sent everything (the
 * reader is only called with its write buffer empty) and the connection
 * is being suspended.  Plain HTTP/1.1 only: TLS records and HTTP/1.0's
 * unframed bodies are MHD's to write. */
static void direct_start(http_request *r)
{
	http_server *s = r->s;
	if (s->tls || !r->http11 || r->fd < 0 || s->closing)
		return;
	if (s->courier == NULL && courier_new(s->loop, &s->courier) != 0) {
		s->courier = NULL;
		return;
	}
	r->cline = courier_line_open(s->courier, r->fd, direct_written,
				     direct_done, r);
}

/* One chunk of the chunked encoding, as MHD frames them. */
static int direct_send(http_request *r, hora_time at, const char *data,
		       size_t len, uint64_t tag)
{
	char head[24];
	int n = snprintf(head, sizeof head, "%zx\r\n", len);
	struct iovec iov[3] = {{head, (size_t)n},
			       {(void *)data, len},
			       {(void *)"\r\n", 2}};
	int rv = courier_sendv_at(r->cline, at, iov, 3, tag);
	if (rv == 0)
		r->s->st.bytes_out += len;
	return rv;
}

/* MHD asks for the next bytes of a streamed answer. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	http_request *r = cls;
	size_t avail = r->sbuf.len - r->soff;

	(void)pos;
	if (r->s_abort)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (avail > 0) {
		size_t n = avail < max ? avail : max;
		memcpy(buf, r->sbuf.p + r->soff, n);
		r->soff += n;
		if (r->soff == r->sbuf.len) {
			buf_clear(&r->sbuf);
			r->soff = 0;
		}
		r->s->st.bytes_out += n;
		return (ssize_t)n;
	}
	if (r->s_end)
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* nothing to send: park until http_stream_write() (microhttpd.h:
	 * return 0 only together with a suspend, else MHD spins) */
	r->s_wait = true;
	MHD_suspend_connection(r->mc);
	if (r->cline == NULL)
		direct_start(r);
	return 0;
}

static void on_peer_event(uv_poll_t *p, int status, int events)
{
	http_request *r = p->data;

	(void)status;
	(void)events;
	if (r->streaming) {
		/* suspended or not: MHD would notice only on its next write */
		uv_poll_stop(p);
		if (!r->s_abort && !r->s_end) {
			r->s->st.aborted++;
			stream_cut(r);
		}
		return;
	}
	if (r->state != REQ_PENDING) {
		uv_poll_stop(p);
		return;
	}
	r->s->st.aborted++;
	abort_parked(r, NULL, 0);
}

/* --- building answers --------------------------------------------------- */

void http__count_answer(http_server *s, unsigned status, size_t len)
{
	s->st.responses++;
	if (status / 100 < 6)
		s->st.status[status / 100]++;
	s->st.bytes_out += len;
}

/* Queue `resp` now (we are inside on_access).  Does not consume `resp`. */
static enum MHD_Result queue(http_request *r, unsigned status,
			     struct MHD_Response *resp, size_t len)
{
	if (MHD_queue_response(r->mc, status, resp) != MHD_YES) {
		r->state = REQ_FAILED;
		return MHD_NO;
	}
	r->state = r->streaming ? REQ_STREAM : REQ_ANSWERED;
	http__count_answer(r->s, status, len);
	return MHD_YES;
}

static struct MHD_Response *static_json(const char *json, bool close)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(strlen(json), (void *)json,
					       MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return NULL;
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				    "application/json") != MHD_YES ||
	    (close && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
					      "close") != MHD_YES)) {
		MHD_destroy_response(resp);
		return NULL;
	}
	return resp;
}

/* The user's answer as an MHD_Response, or NULL on allocation failure. */
static struct MHD_Response *build(http_request *r, const char *ctype,
				  const char *body, size_t len)
{
	struct MHD_Response *resp;
	size_t off;

	if (len == 0) {
		resp = MHD_create_response_from_buffer(0, NULL,
						       MHD_RESPMEM_PERSISTENT);
	} else {
		char *copy = hora_malloc(len);
		if (copy == NULL)
			return NULL;
		memcpy(copy, body, len);
		resp = MHD_create_response_from_buffer_with_free_callback(
			len, copy, hora_free);
		if (resp == NULL) {
			hora_free(copy);
			return NULL;
		}
	}
	if (resp == NULL)
		return NULL;
	if (ctype != NULL &&
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				    ctype) != MHD_YES)
		goto fail;
	for (off = 0; off < r->hdrs_len;) {
		const char *name = r->hdrs + off;
		const char *value = name + strlen(name) + 1;
		if (MHD_add_response_header(resp, name, value) != MHD_YES)
			goto fail;
		off = (size_t)(value - r->hdrs) + strlen(value) + 1;
	}
	return resp;
fail:
	MHD_destroy_response(resp);
	return NULL;
}

/* --- buffers ------------------------------------------------------------ */

static void request_reset(http_request *r)
{
	if (r->resp != NULL && r->resp_owned)
		MHD_destroy_response(r->resp);
	r->resp = NULL;
	r->resp_owned = false;
	r->reject = NULL;
	r->state = REQ_IDLE;
	r->method = NULL;
	r->raw_uri = NULL;
	r->raw_len = 0;
	r->bad_target = false;
	r->discarded = 0;
	r->hdrs_len = 0;
	r->abort_cb = NULL;
	r->abort_ud = NULL;
	r->streaming = r->s_wait = r->s_end = r->s_abort = false;
	HORA_ASSERT(r->cline == NULL);
	r->s_finishing = false;
	r->s_written = NULL;
	r->s_written_ud = NULL;
	buf_free(&r->sbuf);
	r->soff = 0;
	if (r->body.cap > BODY_KEEP)
		buf_free(&r->body);
	else
		buf_clear(&r->body);
	if (r->path != r->path_inline && r->path_cap > BUF_KEEP) {
		hora_free(r->path);
		r->path = r->path_inline;
		r->path_cap = sizeof r->path_inline;
	}
	r->path[0] = '\0';
	if (r->hdrs != r->hdrs_inline && r->hdrs_cap > BUF_KEEP) {
		hora_free(r->hdrs);
		r->hdrs = r->hdrs_inline;
		r->hdrs_cap = sizeof r->hdrs_inline;
	}
}

/* --- MHD callbacks ------------------------------------------------------ */

static void format_addr(const struct sockaddr *sa, char *buf, size_t cap)
{
	char ip[INET6_ADDRSTRLEN];

	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
		snprintf(buf, cap, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
			(const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
		snprintf(buf, cap, "[%s]:%u", ip,
			 (unsigned)ntohs(in6->sin6_port));
	} else {
		snprintf(buf, cap, "unknown");
	}
}

/* A close callback of ours ran; the last one after the stop frees the
 * server. */
static void server_handle_released(http_server *s)
{
	void (*done)(void *);
	void *ud;

	HORA_ASSERT(s->handles > 0);
	if (--s->handles > 0 || !s->stopped)
		return;
	done = s->done;
	ud = s->done_ud;
	hora_free(s);
	if (done != NULL)
		done(ud);
}

static void on_request_poll_closed(uv_handle_t *h)
{
	http_request *r = h->data;
	http_server *s = r->s;

	hora_free(r);
	server_handle_released(s);
}

static void request_free(http_request *r)
{
	http_server *s = r->s;

	buf_free(&r->body);
	if (r->path != r->path_inline)
		hora_free(r->path);
	if (r->hdrs != r->hdrs_inline)
		hora_free(r->hdrs);
	if (r->poll_init) {
		s->handles++;
		uv_close((uv_handle_t *)&r->poll, on_request_poll_closed);
	} else {
		hora_free(r);
	}
}

static void on_connection(void *cls, struct MHD_Connection *mc,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	http_server *s = cls;
	http_request *r;
	const union MHD_ConnectionInfo *ci;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		s->st.connections++;
		s->st.open_connections++;
		r = hora_calloc(1, sizeof *r);
		*socket_context = r;
		if (r == NULL)
			return; /* on_uri returns NULL, on_access MHD_NO */
		r->s = s;
		r->mc = mc;
		r->path = r->path_inline;
		r->path_cap = sizeof r->path_inline;
		r->hdrs = r->hdrs_inline;
		r->hdrs_cap = sizeof r->hdrs_inline;
		ci = MHD_get_connection_info(mc,
					     MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		format_addr(ci != NULL ? ci->client_addr : NULL, r->peer,
			    sizeof r->peer);
		ci = MHD_get_connection_info(mc,
					     MHD_CONNECTION_INFO_CONNECTION_FD);
		r->fd = ci != NULL ? ci->connect_fd : -1;
		http__conn_opened(s, r);
		return;
	}
	s->st.open_connections--;
	r = *socket_context;
	*socket_context = NULL;
	if (r == NULL)
		return;
	HORA_ASSERT(r->state == REQ_IDLE);
	/* MHD closes the socket after this returns. */
	http__conn_closed(s, r);
	request_free(r);
}

/* A byte no request target may hold raw: C0 controls (NUL included) and
 * DEL.  RFC 3986 allows none of them; they must come percent-encoded. */
static bool has_ctl(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return true;
	return false;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
	http_server *s = cls;
	const union MHD_ConnectionInfo *ci;
	http_request *r;
	size_t len;

	ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	r = ci != NULL ? ci->socket_context : NULL;
	if (r == NULL)
		return NULL;
	HORA_ASSERT(r->state == REQ_IDLE);
	r->state = REQ_HEADERS;
	s->inflight++;
	s->st.requests++;
	/* The target as MHD cut it from the request line, not yet split at
	 * '?' nor decoded; see target_intact() for the NUL case. */
	r->raw_uri = uri;
	r->raw_len = uri != NULL ? strlen(uri) : 0;
	r->bad_target = uri == NULL || has_ctl(uri, r->raw_len);
	len = uri != NULL ? strcspn(uri, "?") : 0;
	if (len + 1 > r->path_cap) {
		char *p = hora_malloc(len + 1);
		if (p == NULL) {
			r->reject = s->r500;
			r->reject_status = MHD_HTTP_INTERNAL_SERVER_ERROR;
			len = 0;
		} else {
			if (r->path != r->path_inline)
				hora_free(r->path);
			r->path = p;
			r->path_cap = len + 1;
		}
	}
	if (len > 0)
		memcpy(r->path, uri, len);
	r->path[len] = '\0';
	return r;
}

static void on_completed(void *cls, struct MHD_Connection *mc,
			 void **con_cls, enum MHD_RequestTerminationCode toe)
{
	http_server *s = cls;
	http_request *r = *con_cls;

	(void)mc;
	s->quiet = false;
	if (r == NULL)
		return;
	*con_cls = NULL;
	/* MHD closes a parked connection only in MHD_stop_daemon(), which
	 * we never call with parked requests; tell the owner regardless. */
	if (r->state == REQ_PENDING) {
		parked_remove(s, r);
		watch_stop(r);
		r->state = REQ_ABORTED;
		run_abort_cb(r);
	}
	if (r->streaming) {
		/* ended by us, or cut: the client went away mid-stream */
		stream_unlink(s, r);
		watch_stop(r);
		run_abort_cb(r);
		direct_stop(r);
	}
	HORA_ASSERT(r->state != REQ_HANDLER);
	request_reset(r);
	HORA_ASSERT(s->inflight > 0);
	s->inflight--;
	/* Answer sent: the connection now waits for its next head (or is
	 * about to close, and NOTIFY_CLOSED takes it off the queue). */
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && !s->closing)
		http__idle_start(s, r);
	else
		http__dl_clear(s, r);
	if (s->closing && !s->stopped && s->inflight == 0)
		uv_timer_start(&s->close_timer, on_close_timer, 0, 0);
}

/* Non-negative decimal Content-Length, or -1 (absent or unparsable: MHD
 * answers malformed ones itself). */
static int64_t content_length(struct MHD_Connection *mc)
{
	const char *v = MHD_lookup_connection_value(
		mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	uint64_t n = 0;

	if (v == NULL || *v == '\0')
		return -1;
	for (; *v >= '0' && *v <= '9'; v++) {
		if (n > (uint64_t)INT64_MAX / 10)
			return INT64_MAX;
		n = n * 10 + (uint64_t)(*v - '0');
	}
	return n > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)n;
}

/*
 * Whether the request line held no raw NUL.  MHD 0.9.75 hands us C
 * strings cut from its read buffer, so "PUT /v1/jobs/zz\0evil HTTP/1.1"
 * reaches on_uri as "/v1/jobs/zz".  What MHD does with the line
 * (parse_initial_message_line() in connection.c), all in place:
 *   - the method runs from the line's start to its first space, which
 *     becomes '\0'; spaces after it are skipped; the target starts there;
 *   - the version is the text after the line's last space (trailing
 *     spaces skipped), which becomes '\0'; the target ends before it;
 *   - on_uri gets the target's start; on_access later gets the same
 *     pointer as `url` (decoded in place) and `method` and `version`
 *     pointing into the same line.
 * So the target had no NUL iff strlen() of it in on_uri (r->raw_len)
 * reaches the '\0' MHD wrote just before the version, i.e. version ==
 * raw_uri + raw_len + 1; likewise the method had none iff only spaces
 * lie between the end of its string + 1 and the target.  The checks are
 * exact for 0.9.75; should a later MHD lay the line out differently they
 * fail closed (every request a 400, which the unit tests catch), never
 * open.  Raw control bytes other than NUL are visible in the strings and
 * caught by has_ctl() in on_uri.
 */
static bool target_intact(const http_request *r, const char *url,
			  const char *method, const char *version)
{
	uintptr_t m, u, v, p;

	if (r->raw_uri == NULL || url == NULL || method == NULL ||
	    version == NULL || url != r->raw_uri)
		return false;
	m = (uintptr_t)method;
	u = (uintptr_t)r->raw_uri;
	v = (uintptr_t)version;
	if (v != u + r->raw_len + 1)
		return false;
	p = m + strlen(method) + 1;
	if (m >= u || p > u)
		return false;
	for (; p < u; p++)
		if (*(const char *)p != ' ')
			return false;
	return true;
}

/* First call: headers are in, no body read yet. */
static enum MHD_Result access_first(http_server *s, http_request *r,
				    const char *url, const char *method,
				    const char *version)
{
	const union MHD_ConnectionInfo *ci;
	int64_t cl;

	r->method = method;
	r->http11 = version != NULL && strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
	r->fresh = false;
	http__dl_clear(s, r);
	ci = MHD_get_connection_info(r->mc,
				     MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	if (ci != NULL)
		s->st.bytes_in += ci->header_size;
	/* An answer queued now makes MHD skip the body and close. */
	if (r->bad_target || !target_intact(r, url, method, version))
		return queue(r, MHD_HTTP_BAD_REQUEST, s->r400, 0);
	if (r->reject != NULL)
		return queue(r, r->reject_status, r->reject, 0);
	if (s->closing)
		return queue(r, MHD_HTTP_SERVICE_UNAVAILABLE, s->r503, 0);
	cl = content_length(r->mc);
	if (cl > 0 && (uint64_t)cl > s->max_body) {
		s->st.too_large++;
		return queue(r, MHD_HTTP_CONTENT_TOO_LARGE, s->r413, 0);
	}
	if (cl > 0 && buf_reserve(&r->body, (size_t)cl) != 0)
		return queue(r, MHD_HTTP_INTERNAL_SERVER_ERROR, s->r500, 0);
	r->state = REQ_BODY;
	http__dl_set(s, r, DL_BODY);
	return MHD_YES;
}

/* Have MHD close the connection, without the log line MHD_NO causes. */
static enum MHD_Result drop(http_server *s)
{
	s->quiet = true;
	return MHD_NO;
}

/*
 * Refuse a body in mid-flight.  MHD 0.9.75 takes a response only before
 * the body (MHD_CONNECTION_HEADERS_PROCESSED) or after all of it
 * (MHD_CONNECTION_FULL_REQ_RECEIVED), so the canned answer is written to
 * the socket past MHD (http__write_raw()).  The rest of the body is then
 * read and dropped (REQ_LINGER) rather than the socket closed at once: a
 * close with unread data sends a RST, which can make the client lose
 * the answer while it is still sending.  The client, seeing the answer
 * and its Connection: close, stops and closes; DL_LINGER and discard_max
 * bound the wait.  MHD never writes on this connection again: the final
 * on_access of the request closes it.
 */
static enum MHD_Result refuse_body(http_server *s, http_request *r,
				   enum raw_kind k, size_t n)
{
	r->state = REQ_LINGER;
	r->discarded = n;
	buf_clear(&r->body);
	if (!http__write_raw(r, k))
		return drop(s);
	http__dl_set(s, r, DL_LINGER);
	return MHD_YES;
}

static enum MHD_Result access_data(http_server *s, http_request *r,
				   const char *data, size_t *size)
{
	size_t n = *size;

	*size = 0;
	s->st.bytes_in += n;
	if (r->state == REQ_LINGER) {
		r->discarded += n;
		if (r->discarded <= s->discard_max)
			return MHD_YES;
		http__logf(s,
			   "closing connection from %s: refused body goes "
			   "on past %zu bytes",
			   r->peer, s->discard_max);
		return drop(s);
	}
	if (n > s->max_body - r->body.len) {
		s->st.too_large++;
		return refuse_body(s, r, RAW_413, n);
	}
	buf_add(&r->body, data, n); /* '\0'-terminated as it grows */
	if (r->body.oom)
		return refuse_body(s, r, RAW_500, n);
	return MHD_YES;
}

/* Final call: the whole request is in. */
static enum MHD_Result access_final(http_server *s, http_request *r)
{
	http__dl_clear(s, r);
	/* No handler calls once http_server_close() has been called. */
	if (s->closing)
		return queue(r, MHD_HTTP_SERVICE_UNAVAILABLE, s->r503, 0);
	r->state = REQ_HANDLER;
	s->cb(r, s->ud);
	if (r->state == REQ_ANSWERED || r->state == REQ_STREAM)
		return MHD_YES;
	if (r->state == REQ_FAILED)
		return MHD_NO;
	HORA_ASSERT(r->state == REQ_HANDLER);
	if (s->closing) {
		/* The handler closed the server and parked its own request:
		 * same fate as the other parked ones. */
		r->state = REQ_ABORTED;
		run_abort_cb(r);
		return queue(r, MHD_HTTP_SERVICE_UNAVAILABLE, s->r503, 0);
	}
	r->state = REQ_PENDING;
	parked_add(s, r);
	MHD_suspend_connection(r->mc);
	watch_start(r);
	return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *mc,
				 const char *url, const char *method,
				 const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	http_server *s = cls;
	http_request *r = *con_cls;
	enum MHD_Result rv;

	(void)mc;
	if (r == NULL) {
		/* hora_calloc failed in on_connection. */
		http__logf(s, "closing connection: out of memory");
		return drop(s);
	}
	if (r->cut)
		return drop(s); /* past its deadline: closing anyway */
	switch (r->state) {
	case REQ_HEADERS:
		return access_first(s, r, url, method, version);
	case REQ_BODY:
	case REQ_LINGER:
		if (*upload_data_size != 0)
			return access_data(s, r, upload_data,
					   upload_data_size);
		if (r->state == REQ_LINGER)
			return drop(s); /* answered already: close */
		return access_final(s, r);
	case REQ_RESUMING:
		rv = queue(r, r->status, r->resp, r->resp_len);
		if (r->resp_owned)
			MHD_destroy_response(r->resp);
		r->resp = NULL;
		r->resp_owned = false;
		return rv;
	case REQ_ABORTED:
		return drop(s);
	case REQ_FAILED:
		return MHD_NO;
	case REQ_IDLE:
	case REQ_HANDLER:
	case REQ_PENDING:
	case REQ_ANSWERED:
	case REQ_STREAM:
		break;
	}
	HORA_UNREACHABLE();
}

/* --- start -------------------------------------------------------------- */

static int parse_port(const char *port, uint16_t *out, hora_error *err)
{
	unsigned long v = 0;
	const char *p = port;

	if (port == NULL || *port == '\0') {
		*out = 0;
		return 0;
	}
	for (; *p >= '0' && *p <= '9' && v <= 65535; p++)
		v = v * 10 + (unsigned long)(*p - '0');
	if (*p != '\0' || v > 65535 || p - port > 5)
		return hora_error_set(err, -HORA_EINVAL, "port",
				      "port: \"%s\" is not a number 0-65535",
				      port);
	*out = (uint16_t)v;
	return 0;
}

static int parse_host(const char *host, uint16_t port,
		      struct sockaddr_storage *ss, socklen_t *len,
		      char *text, size_t text_cap, hora_error *err)
{
	char buf[INET6_ADDRSTRLEN + 2];
	size_t n;

	if (host == NULL || *host == '\0')
		host = HTTP_DEFAULT_HOST;
	memset(ss, 0, sizeof *ss);
	n = strlen(host);
	if (n >= sizeof buf)
		goto bad;
	memcpy(buf, host, n + 1);
	if (n >= 2 && buf[0] == '[' && buf[n - 1] == ']') {
		memmove(buf, buf + 1, n - 2);
		buf[n - 2] = '\0';
	}
	{
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		if (inet_pton(AF_INET, buf, &in->sin_addr) == 1) {
			in->sin_family = AF_INET;
			in->sin_port = htons(port);
			*len = sizeof *in;
			snprintf(text, text_cap, "%s:%u", buf, (unsigned)port);
			return 0;
		}
	}
	{
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, buf, &in6->sin6_addr) == 1) {
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons(port);
			*len = sizeof *in6;
			snprintf(text, text_cap, "[%s]:%u", buf,
				 (unsigned)port);
			return 0;
		}
	}
bad:
	return hora_error_set(err, -HORA_EINVAL, "host",
			      "host: \"%s\" is not an IPv4 or IPv6 address",
			      host);
}

static int errno_code(int e)
{
	switch (e) {
	case EADDRINUSE:
		return -HORA_EBUSY;
	case EADDRNOTAVAIL:
	case EAFNOSUPPORT:
		return -HORA_EUNAVAIL;
	case ENOMEM:
	case ENOBUFS:
		return -HORA_ENOMEM;
	case EACCES:
	case EPERM:
		return -HORA_EINVAL;
	default:
		return -HORA_EIO;
	}
}

/* A listening, non-blocking socket for `ss`, or -1 with *err set. */
static int open_listener(const struct sockaddr_storage *ss, socklen_t len,
			 int backlog, const char *text, uint16_t *port,
			 hora_error *err)
{
	int fd, one = 1, e;
	struct sockaddr_storage bound;
	socklen_t blen = sizeof bound;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
		goto fail;
	if (ss->ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)ss, len) != 0 ||
	    listen(fd, backlog) != 0 ||
	    getsockname(fd, (struct sockaddr *)&bound, &blen) != 0)
		goto fail;
	*port = ntohs(bound.ss_family == AF_INET6
			      ? ((struct sockaddr_in6 *)&bound)->sin6_port
			      : ((struct sockaddr_in *)&bound)->sin_port);
	return fd;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	hora_error_set(err, errno_code(e), "listen",
		       "cannot listen on %s: %s", text, uv_strerror(-e));
	return -1;
}

static void destroy_responses(http_server *s)
{
	struct MHD_Response **all[] = {&s->r400, &s->r413, &s->r500,
				       &s->r503};
	size_t i;

	for (i = 0; i < sizeof all / sizeof all[0]; i++) {
		if (*all[i] != NULL)
			MHD_destroy_response(*all[i]);
		*all[i] = NULL;
	}
}

void http__handle_closed(uv_handle_t *h)
{
	server_handle_released(h->data);
}

int http_server_start(uv_loop_t *loop, const http_server_config *cfg,
		      http_handler cb, void *ud, http_server **out,
		      hora_error *err)
{
	static const http_server_config zero;
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	char text[ADDR_TEXT_MAX], msg[128];
	struct MHD_OptionItem tls_opts[3];
	const union MHD_DaemonInfo *di;
	http_server *s;
	uint16_t port = 0;
	unsigned flags, idle;
	bool tls;
	int rv;

	if (loop == NULL || cb == NULL || out == NULL)
		return hora_error_set(err, -HORA_EINVAL, "",
				      "http_server_start: missing argument");
	if (cfg == NULL)
		cfg = &zero;
	tls = cfg->tls_cert_pem != NULL || cfg->tls_key_pem != NULL;
	if (tls && (cfg->tls_cert_pem == NULL || cfg->tls_key_pem == NULL))
		return hora_error_set(err, -HORA_EINVAL, "tls",
				      "tls: a certificate needs its key and "
				      "a key its certificate; only the %s "
				      "was given",
				      cfg->tls_cert_pem ? "certificate"
							: "key");
	if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		return hora_error_set(err, -HORA_EUNAVAIL, "tls",
				      "tls: this libmicrohttpd was built "
				      "without TLS support");
	rv = parse_port(cfg->port, &port, err);
	if (rv != 0)
		return rv;
	rv = parse_host(cfg->host, port, &ss, &sslen, text, sizeof text, err);
	if (rv != 0)
		return rv;

	s = hora_calloc(1, sizeof *s);
	if (s == NULL)
		return hora_error_set(err, -HORA_ENOMEM, "",
				      "cannot start HTTP server on %s: %s",
				      text, hora_strerror(-HORA_ENOMEM));
	s->loop = loop;
	s->cb = cb;
	s->ud = ud;
	s->log = cfg->log;
	s->log_ud = cfg->log_ud;
	s->tls = tls;
	s->listen_fd = -1;
	s->reserve_fd = -1;
	s->max_body = cfg->max_body ? cfg->max_body : HTTP_DEFAULT_MAX_BODY;
	s->discard_max = s->max_body > SIZE_MAX / 8 ? SIZE_MAX
						    : s->max_body * 8;
	s->close_grace_ms = cfg->close_grace_ms ? cfg->close_grace_ms
						: HTTP_DEFAULT_CLOSE_GRACE_MS;
	idle = cfg->idle_timeout_s ? cfg->idle_timeout_s
				   : HTTP_DEFAULT_IDLE_TIMEOUT_S;

	snprintf(msg, sizeof msg,
		 "{\"error\":{\"code\":\"payload_too_large\",\"message\":"
		 "\"request body exceeds %zu bytes\"}}",
		 s->max_body);
	s->r413 = static_json(msg, true);
	s->r400 = static_json("{\"error\":{\"code\":\"invalid_argument\","
			      "\"message\":\"the request target contains a "
			      "NUL or control byte\"}}",
			      true);
	s->r500 = static_json("{\"error\":{\"code\":\"internal\",\"message\":"
			      "\"out of memory\"}}",
			      true);
	s->r503 = static_json("{\"error\":{\"code\":\"shutting_down\","
			      "\"message\":\"server is shutting down\"}}",
			      true);
	if (s->r400 == NULL || s->r413 == NULL || s->r500 == NULL ||
	    s->r503 == NULL || http__conn_setup(s, cfg) != 0) {
		rv = hora_error_set(err, -HORA_ENOMEM, "",
				    "cannot start HTTP server on %s: %s", text,
				    hora_strerror(-HORA_ENOMEM));
		goto err_after_alloc;
	}

	s->listen_fd = open_listener(&ss, sslen,
				     cfg->backlog > 0 ? cfg->backlog
						      : HTTP_DEFAULT_BACKLOG,
				     text, &s->port, err);
	if (s->listen_fd < 0) {
		rv = err != NULL ? err->code : -HORA_EIO;
		goto err_after_alloc;
	}

	/* MHD has no listening socket: http_conn.c accepts. */
	flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
		MHD_USE_NO_LISTEN_SOCKET;
	memset(tls_opts, 0, sizeof tls_opts);
	tls_opts[0].option = MHD_OPTION_END;
	if (tls) {
		/* MHD hands them to GnuTLS, which copies them, during
		 * MHD_start_daemon(): borrowed for the call only. */
		flags |= MHD_USE_TLS;
		tls_opts[0].option = MHD_OPTION_HTTPS_MEM_KEY;
		tls_opts[0].ptr_value = (void *)cfg->tls_key_pem;
		tls_opts[1].option = MHD_OPTION_HTTPS_MEM_CERT;
		tls_opts[1].ptr_value = (void *)cfg->tls_cert_pem;
		tls_opts[2].option = MHD_OPTION_END;
	}
	s->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, on_access, s,
		/* First, or MHD logs the options' errors to stderr. */
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
		MHD_OPTION_ARRAY, tls_opts,
		/* http_conn.c keeps below it; MHD's check is a backstop. */
		MHD_OPTION_CONNECTION_LIMIT, s->max_conn,
		MHD_OPTION_CONNECTION_TIMEOUT, idle,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_END);
	if (s->mhd == NULL) {
		rv = hora_error_set(err, tls ? -HORA_EINVAL : -HORA_EIO,
				    tls ? "tls" : "listen",
				    "cannot start HTTP%s server on %s: %s",
				    tls ? "S" : "", text,
				    s->last_log[0] ? s->last_log
						   : "libmicrohttpd failed");
		goto err_after_alloc;
	}
	di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	rv = di != NULL ? uv_poll_init(loop, &s->mhd_poll, di->epoll_fd)
			: UV_EINVAL;
	if (rv != 0) {
		MHD_stop_daemon(s->mhd);
		rv = hora_error_set(err, -HORA_EIO, "listen",
				    "cannot start HTTP server on %s: %s", text,
				    uv_strerror(rv));
		goto err_after_alloc;
	}
	s->mhd_poll.data = s;
	rv = http__conn_start(s);
	if (rv != 0) {
		/* Should not happen (a fresh fd in this loop's epoll).  The
		 * initialised poll handle must be closed through the loop:
		 * the server is freed from its close callback. */
		rv = hora_error_set(err, -HORA_EIO, "listen",
				    "cannot start HTTP server on %s: %s", text,
				    uv_strerror(rv));
		s->stopped = true;
		s->handles++;
		uv_close((uv_handle_t *)&s->mhd_poll, http__handle_closed);
		MHD_stop_daemon(s->mhd);
		close(s->listen_fd);
		destroy_responses(s);
		http__conn_free(s);
		return rv;
	}
	uv_timer_init(loop, &s->timer);
	uv_timer_init(loop, &s->close_timer);
	s->timer.data = s;
	s->close_timer.data = s;
	uv_poll_start(&s->mhd_poll, UV_READABLE, on_mhd_poll);
	s->accepting = true;
	server_arm(s);
	*out = s;
	return 0;

err_after_alloc:
	HORA_ASSERT(rv != 0);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	destroy_responses(s);
	http__conn_free(s);
	hora_free(s);
	return rv;
}

uint16_t http_server_port(const http_server *s)
{
	return s->port;
}

void http_server_stop_accepting(http_server *s)
{
	if (!s->accepting || s->stopped)
		return;
	s->accepting = false;
	http__accept_stop(s);
}

void http_server_stats_get(const http_server *s, http_server_stats *out)
{
	*out = s->st;
	out->in_flight = (uint32_t)s->inflight;
}

/* --- close -------------------------------------------------------------- */

/* Grace over or nothing in flight: stop MHD and release everything. */
static void on_close_timer(uv_timer_t *t)
{
	http_server *s = t->data;

	if (s->stopped)
		return;
	HORA_ASSERT(!s->in_run);
	HORA_ASSERT(s->parked == NULL);
	s->stopped = true;
	/* libuv must drop MHD's epoll fd before MHD closes it. */
	s->handles += 3;
	uv_close((uv_handle_t *)&s->mhd_poll, http__handle_closed);
	uv_close((uv_handle_t *)&s->timer, http__handle_closed);
	uv_close((uv_handle_t *)&s->close_timer, http__handle_closed);
	http__conn_close_handles(s);
	for (http_request *r = s->streams; r != NULL; r = r->s_next)
		direct_stop(r); /* before MHD closes their sockets */
	courier_free(s->courier);
	s->courier = NULL;
	/* Closes every connection: on_completed, then on_connection, which
	 * closes the requests' poll handles (counted in s->handles) and
	 * takes them off the deadline queues and the address table. */
	MHD_stop_daemon(s->mhd);
	s->mhd = NULL;
	destroy_responses(s);
	http__conn_free(s);
}

void http_server_close(http_server *s, void (*done)(void *ud), void *ud)
{
	http_request *r;

	HORA_ASSERT(!s->closing);
	s->closing = true;
	s->done = done;
	s->done_ud = ud;
	http_server_stop_accepting(s);
	while ((r = s->parked) != NULL)
		abort_parked(r, s->r503, MHD_HTTP_SERVICE_UNAVAILABLE);
	/* streams end cleanly after what was written: the owner is told
	 * (abort callback) and must not write any more */
	for (r = s->streams; r != NULL; r = r->s_next) {
		r->s_end = true;
		run_abort_cb(r);
		if (r->cline != NULL && !r->s_finishing) {
			r->s_finishing = true;
			courier_line_finish(r->cline, s->close_grace_ms);
		}
		stream_wake(r);
	}
	uv_timer_start(&s->close_timer, on_close_timer,
		       s->inflight == 0 ? 0 : s->close_grace_ms, 0);
}

/* --- request accessors -------------------------------------------------- */

const char *http_request_method(const http_request *req)
{
	return req->method != NULL ? req->method : "";
}

const char *http_request_path(const http_request *req)
{
	return req->path;
}

struct query_walk {
	const char *name;
	size_t name_len;
	http_kv_cb cb;
	void *ud;
	size_t calls;
	const char *found;
};

static enum MHD_Result query_visit(void *cls, enum MHD_ValueKind kind,
				   const char *key, size_t key_size,
				   const char *value, size_t value_size)
{
	struct query_walk *w = cls;

	(void)kind;
	(void)value_size;
	if (key == NULL)
		return MHD_YES;
	if (w->name != NULL &&
	    (key_size != w->name_len || memcmp(key, w->name, key_size) != 0))
		return MHD_YES;
	if (value == NULL)
		value = "";
	if (w->cb == NULL) {
		w->found = value;
		return MHD_NO;
	}
	w->calls++;
	return w->cb(w->ud, key, value) != 0 ? MHD_NO : MHD_YES;
}

const char *http_request_query(const http_request *req, const char *name)
{
	struct query_walk w = {name, strlen(name), NULL, NULL, 0, NULL};

	MHD_get_connection_values_n(req->mc, MHD_GET_ARGUMENT_KIND,
				    query_visit, &w);
	return w.found;
}

size_t http_request_query_each(const http_request *req, const char *name,
			       http_kv_cb cb, void *ud)
{
	struct query_walk w = {name, name ? strlen(name) : 0, cb, ud, 0,
			       NULL};

	if (cb == NULL)
		return 0;
	MHD_get_connection_values_n(req->mc, MHD_GET_ARGUMENT_KIND,
				    query_visit, &w);
	return w.calls;
}

const char *http_request_header(const http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->mc, MHD_HEADER_KIND, name);
}

const char *http_request_body(const http_request *req, size_t *len)
{
	if (len != NULL)
		*len = req->body.len;
	return req->body.p != NULL ? req->body.p : "";
}

const char *http_request_peer(const http_request *req)
{
	return req->peer;
}

bool http_request_is_tls(const http_request *req)
{
	return req->s->tls;
}

void http_request_on_abort(http_request *req, http_abort_cb cb, void *ud)
{
	req->abort_cb = cb;
	req->abort_ud = ud;
}

int http_response_header(http_request *req, const char *name,
			 const char *value)
{
	size_t nl, vl, need;

	if (req->state != REQ_HANDLER && req->state != REQ_PENDING)
		return -HORA_EINVAL;
	if (name == NULL || value == NULL || name[0] == '\0')
		return -HORA_EINVAL;
	nl = strlen(name);
	vl = strlen(value);
	if (!http_token_valid(name, nl))
		return -HORA_EINVAL;
	if (strpbrk(value, "\r\n") != NULL)
		return -HORA_EINVAL;
	/* MHD frames the body itself and refuses these. */
	if (strcasecmp(name, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0 ||
	    strcasecmp(name, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
		return -HORA_EINVAL;
	need = req->hdrs_len + nl + vl + 2;
	if (need > req->hdrs_cap) {
		size_t cap = req->hdrs_cap * 2 > need ? req->hdrs_cap * 2 : need;
		char *p = hora_malloc(cap);
		if (p == NULL)
			return -HORA_ENOMEM;
		memcpy(p, req->hdrs, req->hdrs_len);
		if (req->hdrs != req->hdrs_inline)
			hora_free(req->hdrs);
		req->hdrs = p;
		req->hdrs_cap = cap;
	}
	memcpy(req->hdrs + req->hdrs_len, name, nl + 1);
	memcpy(req->hdrs + req->hdrs_len + nl + 1, value, vl + 1);
	req->hdrs_len = need;
	return 0;
}

int http_respond(http_request *req, int status, const char *content_type,
		 const char *body, size_t len)
{
	http_server *s = req->s;
	struct MHD_Response *resp;
	bool owned = true;
	int rv = 0;

	if (status < 200 || status > 599 || (body == NULL && len > 0))
		return -HORA_EINVAL;
	if (req->state != REQ_HANDLER && req->state != REQ_PENDING)
		return -HORA_EINVAL;
	resp = build(req, content_type, body, len);
	if (resp == NULL) {
		resp = s->r500;
		owned = false;
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		len = 0;
		rv = -HORA_ENOMEM;
	}
	if (req->state == REQ_HANDLER) {
		/* Inside on_access: MHD takes its own reference. */
		queue(req, (unsigned)status, resp, len);
		if (owned)
			MHD_destroy_response(resp);
		return rv;
	}
	/* Parked: resume; on_access queues it (REQ_RESUMING). */
	parked_remove(s, req);
	watch_stop(req);
	req->resp = resp;
	req->resp_owned = owned;
	req->resp_len = len;
	req->status = (unsigned)status;
	req->state = REQ_RESUMING;
	MHD_resume_connection(req->mc);
	server_kick(s);
	return rv;
}

int http_respond_stream(http_request *req, int status,
			const char *content_type)
{
	http_server *s = req->s;
	struct MHD_Response *resp;
	size_t off;

	if (status < 200 || status > 599)
		return -HORA_EINVAL;
	if (req->state != REQ_HANDLER && req->state != REQ_PENDING)
		return -HORA_EINVAL;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
						 stream_reader, req, NULL);
	if (resp != NULL && content_type != NULL &&
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				    content_type) != MHD_YES) {
		MHD_destroy_response(resp);
		resp = NULL;
	}
	for (off = 0; resp != NULL && off < req->hdrs_len;) {
		const char *name = req->hdrs + off;
		const char *value = name + strlen(name) + 1;
		if (MHD_add_response_header(resp, name, value) != MHD_YES) {
			MHD_destroy_response(resp);
			resp = NULL;
		}
		off = (size_t)(value - req->hdrs) + strlen(value) + 1;
	}
	if (resp == NULL) {
		http_respond(req, 500, NULL, NULL, 0); /* s->r500 */
		return -HORA_ENOMEM;
	}
	req->streaming = true;
	stream_link(s, req);
	if (req->state == REQ_HANDLER) {
		queue(req, (unsigned)status, resp, 0);
		MHD_destroy_response(resp);
		watch_start(req);
		return 0;
	}
	parked_remove(s, req); /* its watch goes on for the stream */
	req->resp = resp;
	req->resp_owned = true;
	req->resp_len = 0;
	req->status = (unsigned)status;
	req->state = REQ_RESUMING;
	MHD_resume_connection(req->mc);
	server_kick(s);
	return 0;
}

static bool stream_live(const http_request *req)
{
	return req->streaming && !req->s_end && !req->s_abort &&
	       (req->state == REQ_STREAM || req->state == REQ_RESUMING);
}

int http_stream_write(http_request *req, const char *data, size_t len)
{
	if (!stream_live(req))
		return -HORA_EINVAL;
	if (len == 0)
		return 0;
	if (req->cline != NULL) {
		int rv = direct_send(req, 0, data, len, 0);
		if (rv == -HORA_ENOMEM)
			http_stream_cut(req);
		return rv;
	}
	buf_add(&req->sbuf, data, len);
	if (req->sbuf.oom) {
		/* bytes lost: the stream cannot go on; MHD cuts it and the
		 * abort callback follows (on_completed) */
		req->s_abort = true;
		stream_wake(req);
		return -HORA_ENOMEM;
	}
	stream_wake(req);
	return 0;
}

size_t http_stream_backlog(const http_request *req)
{
	if (req->cline != NULL)
		return courier_line_backlog(req->cline);
	return req->streaming ? req->sbuf.len - req->soff : 0;
}

bool http_stream_can_write_at(const http_request *req)
{
	return stream_live(req) && req->cline != NULL && !req->s_finishing;
}

void http_stream_on_written(http_request *req, http_written_cb cb, void *ud)
{
	req->s_written = cb;
	req->s_written_ud = ud;
}

int http_stream_write_at(http_request *req, int64_t at, const char *data,
			 size_t len, uint64_t tag)
{
	if (!http_stream_can_write_at(req) || tag == 0 || len == 0)
		return -HORA_EINVAL;
	return direct_send(req, at, data, len, tag);
}

enum http_revoked http_stream_revoke(http_request *req, uint64_t tag,
				     int64_t *at)
{
	if (req->cline == NULL)
		return HTTP_UNKNOWN;
	switch (courier_revoke(req->cline, tag, at)) {
	case COURIER_REVOKED:
		return HTTP_REVOKED;
	case COURIER_WRITTEN:
		return HTTP_WRITTEN;
	default:
		return HTTP_UNKNOWN;
	}
}

void http_stream_cut(http_request *req)
{
	if (!req->streaming || req->s_abort)
		return;
	req->abort_cb = NULL;
	req->abort_ud = NULL;
	stream_cut(req); /* no callback left to run */
}

void http_stream_end(http_request *req)
{
	if (!req->streaming || req->s_end)
		return;
	req->s_end = true;
	req->abort_cb = NULL;
	req->abort_ud = NULL;
	req->s_written = NULL;
	if (req->cline != NULL && !req->s_finishing) {
		/* MHD ends it (direct_done) once the courier has sent all */
		req->s_finishing = true;
		courier_line_finish(req->cline, STREAM_FINISH_GRACE_MS);
		return;
	}
	stream_wake(req);
}

/* --- helpers ------------------------------------------------------------ */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int http_url_decode(const char *src, size_t len, char *dst, size_t cap,
		    size_t *out_len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		char c = src[i];
		if (c == '%') {
			int hi, lo;
			if (len - i < 3)
				return -HORA_EINVAL;
			hi = hexval(src[i + 1]);
			lo = hexval(src[i + 2]);
			if (hi < 0 || lo < 0 || (hi | lo) == 0)
				return -HORA_EINVAL;
			c = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '\0') {
			return -HORA_EINVAL;
		}
		if (n + 1 >= cap)
			return -HORA_ERANGE;
		dst[n++] = c;
	}
	if (cap == 0)
		return -HORA_ERANGE;
	dst[n] = '\0';
	if (out_len != NULL)
		*out_len = n;
	return 0;
}
