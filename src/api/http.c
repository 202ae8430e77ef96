/*
 * http.c - the HTTP server: libmicrohttpd 0.9.75 in "external epoll" mode
 * driven by libuv.
 *
 * Driving MHD.  MHD runs without threads (MHD_USE_EPOLL): it keeps its
 * sockets in its own epoll set, whose fd we watch with a uv_poll_t.  After
 * every MHD_run() the uv_timer_t is re-armed from MHD_get_timeout() (idle
 * timeouts, and 0 when MHD has work left over).  MHD has no wake-up
 * channel in this mode, so MHD_resume_connection() called from outside
 * MHD_run() would go unnoticed: every resume "kicks" the timer to 0 ms
 * (or, if we are inside MHD_run() at the time, makes the post-run re-arm
 * use 0), and MHD_run() resumes the connection on the next loop turn.
 *
 * One request per connection.  MHD does not pipeline: it reads the next
 * request on a connection only after the previous one finished.  So the
 * http_request is the per-connection object (allocated when MHD accepts
 * the socket, freed when it closes it) and is reused request after
 * request, with its path, body and header buffers: a keep-alive request
 * costs no allocation of ours, only MHD's response object.
 *
 * Call sequence per request (MHD callbacks):
 *   on_uri        raw URI, before MHD decodes it: copy the raw path
 *   on_access #1  headers parsed: refuse early (413 from Content-Length,
 *                 503 while closing) or get ready for the body
 *   on_access #n  body chunks: append, or discard past the limit
 *   on_access     final call: run the handler; if it did not answer,
 *                 MHD_suspend_connection() (the request is "parked")
 *   on_access     again after a resume: queue the stored answer
 *   on_completed  answer sent or connection dropped: reset the request
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

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/assert.h"

#define PATH_INLINE 128
#define HDRS_INLINE 192
#define BODY_KEEP (64 * 1024) /* body buffer kept between requests */
#define BUF_KEEP 4096         /* heap path/header buffer kept */
#define PEER_MAX (INET6_ADDRSTRLEN + 8)
#define ADDR_TEXT_MAX (INET6_ADDRSTRLEN + 16)

enum req_state {
	REQ_IDLE = 0,  /* no request on this connection */
	REQ_HEADERS,   /* request line seen, first on_access not yet */
	REQ_BODY,      /* collecting the body */
	REQ_DISCARD,   /* body refused: drop it, answer `reject` at the end */
	REQ_HANDLER,   /* inside the user's handler */
	REQ_PENDING,   /* parked (suspended), waiting for http_respond() */
	REQ_RESUMING,  /* answer stored in `resp`, connection resumed */
	REQ_ABORTED,   /* owner told; MHD is to drop the connection */
	REQ_ANSWERED,  /* answer queued with MHD */
	REQ_FAILED,    /* MHD refused our answer: drop the connection */
};

struct http_request {
	http_server *s;
	struct MHD_Connection *mc;
	enum req_state state;
	unsigned status;           /* REQ_RESUMING: status of `resp` */
	struct MHD_Response *resp; /* REQ_RESUMING: the stored answer */
	size_t resp_len;           /* its body length, for the counters */
	bool resp_owned;           /* `resp` is ours to destroy */
	bool poll_init;            /* `poll` initialised (needs uv_close) */
	struct MHD_Response *reject; /* REQ_DISCARD: static answer */
	unsigned reject_status;
	const char *method; /* MHD's, valid for the request */
	char *path;         /* path_inline or heap; raw, '\0'-terminated */
	size_t path_cap;
	char *body; /* NULL until a body arrives */
	size_t body_len, body_cap;
	uint64_t discarded;
	char *hdrs; /* "name\0value\0" pairs, hdrs_inline or heap */
	size_t hdrs_len, hdrs_cap;
	http_abort_cb abort_cb;
	void *abort_ud;
	http_request *prev, *next; /* server's parked list */
	uv_poll_t poll;            /* disconnect watch while parked */
	char peer[PEER_MAX];
	char path_inline[PATH_INLINE];
	char hdrs_inline[HDRS_INLINE];
};

struct http_server {
	uv_loop_t *loop;
	struct MHD_Daemon *mhd;
	uv_poll_t mhd_poll;    /* MHD's epoll fd */
	uv_timer_t timer;      /* MHD_get_timeout() and kicks */
	uv_timer_t close_timer;
	http_handler cb;
	void *ud;
	void (*log)(void *, const char *);
	void *log_ud;
	size_t max_body;
	size_t discard_max; /* refused chunked bytes read before closing */
	unsigned close_grace_ms;
	uint16_t port;
	bool accepting;
	bool in_run;  /* inside MHD_run() */
	bool kick;    /* a resume happened: run MHD again at once */
	bool closing; /* http_server_close() called */
	bool stopped; /* MHD stopped, handles closing */
	bool quiet;   /* drop MHD's next line: we closed on purpose */
	unsigned handles; /* uv handles whose close callback is due */
	uint64_t inflight; /* requests between on_uri and on_completed */
	struct MHD_Response *r413, *r500, *r503; /* shared, refcounted */
	http_request *parked;
	void (*done)(void *);
	void *done_ud;
	char last_log[256]; /* for start-up failures */
	http_server_stats st;
};

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

/* A connection was resumed: make sure MHD_run() comes soon. */
static void server_kick(http_server *s)
{
	if (s->stopped)
		return;
	s->kick = true;
	if (!s->in_run)
		uv_timer_start(&s->timer, on_mhd_timer, 0, 0);
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
			if (s->log != NULL) {
				char line[128];
				snprintf(line, sizeof line,
					 "cannot watch parked connection: %s",
					 uv_strerror(rv));
				s->log(s->log_ud, line);
			}
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

static void on_peer_event(uv_poll_t *p, int status, int events)
{
	http_request *r = p->data;

	(void)status;
	(void)events;
	if (r->state != REQ_PENDING) {
		uv_poll_stop(p);
		return;
	}
	r->s->st.aborted++;
	abort_parked(r, NULL, 0);
}

/* --- building answers --------------------------------------------------- */

static void count_answer(http_server *s, unsigned status, size_t len)
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
	r->state = REQ_ANSWERED;
	count_answer(r->s, status, len);
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

/* Room for `need` body bytes plus the '\0'. */
static int body_reserve(http_request *r, size_t need)
{
	size_t cap;
	char *p;

	if (need + 1 <= r->body_cap)
		return 0;
	cap = r->body_cap < 256 ? 256 : r->body_cap;
	while (cap < need + 1)
		cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
	p = hora_realloc(r->body, cap);
	if (p == NULL)
		return -HORA_ENOMEM;
	r->body = p;
	r->body_cap = cap;
	return 0;
}

static void request_reset(http_request *r)
{
	if (r->resp != NULL && r->resp_owned)
		MHD_destroy_response(r->resp);
	r->resp = NULL;
	r->resp_owned = false;
	r->reject = NULL;
	r->state = REQ_IDLE;
	r->method = NULL;
	r->body_len = 0;
	r->discarded = 0;
	r->hdrs_len = 0;
	r->abort_cb = NULL;
	r->abort_ud = NULL;
	if (r->body_cap > BODY_KEEP) {
		hora_free(r->body);
		r->body = NULL;
		r->body_cap = 0;
	}
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

	hora_free(r->body);
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
		return;
	}
	s->st.open_connections--;
	r = *socket_context;
	*socket_context = NULL;
	if (r == NULL)
		return;
	HORA_ASSERT(r->state == REQ_IDLE);
	request_free(r);
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
	(void)toe;
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
	HORA_ASSERT(r->state != REQ_HANDLER);
	request_reset(r);
	HORA_ASSERT(s->inflight > 0);
	s->inflight--;
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

/* First call: headers are in, no body read yet. */
static enum MHD_Result access_first(http_server *s, http_request *r,
				    const char *method)
{
	const union MHD_ConnectionInfo *ci;
	int64_t cl;

	r->method = method;
	ci = MHD_get_connection_info(r->mc,
				     MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	if (ci != NULL)
		s->st.bytes_in += ci->header_size;
	/* An answer queued now makes MHD skip the body and close. */
	if (r->reject != NULL)
		return queue(r, r->reject_status, r->reject, 0);
	if (s->closing)
		return queue(r, MHD_HTTP_SERVICE_UNAVAILABLE, s->r503, 0);
	cl = content_length(r->mc);
	if (cl > 0 && (uint64_t)cl > s->max_body) {
		s->st.too_large++;
		return queue(r, MHD_HTTP_CONTENT_TOO_LARGE, s->r413, 0);
	}
	if (cl > 0 && body_reserve(r, (size_t)cl) != 0)
		return queue(r, MHD_HTTP_INTERNAL_SERVER_ERROR, s->r500, 0);
	r->state = REQ_BODY;
	return MHD_YES;
}

/* Have MHD close the connection, without the log line MHD_NO causes. */
static enum MHD_Result drop(http_server *s)
{
	s->quiet = true;
	return MHD_NO;
}

static void discard_from_now(http_request *r, struct MHD_Response *resp,
			     unsigned status, size_t n)
{
	r->state = REQ_DISCARD;
	r->reject = resp;
	r->reject_status = status;
	r->discarded = n;
	r->body_len = 0;
}

static enum MHD_Result access_data(http_server *s, http_request *r,
				   const char *data, size_t *size)
{
	size_t n = *size;

	*size = 0;
	s->st.bytes_in += n;
	if (r->state == REQ_DISCARD) {
		/* Read and drop a refused chunked body so the client gets
		 * its 413, up to a point: past discard_max, close. */
		r->discarded += n;
		if (r->discarded <= s->discard_max)
			return MHD_YES;
		if (s->log != NULL) {
			char line[160];
			snprintf(line, sizeof line,
				 "closing connection from %s: refused body "
				 "goes on past %zu bytes",
				 r->peer, s->discard_max);
			s->log(s->log_ud, line);
		}
		return drop(s);
	}
	if (n > s->max_body - r->body_len) {
		s->st.too_large++;
		discard_from_now(r, s->r413, MHD_HTTP_CONTENT_TOO_LARGE, n);
		return MHD_YES;
	}
	if (body_reserve(r, r->body_len + n) != 0) {
		discard_from_now(r, s->r500, MHD_HTTP_INTERNAL_SERVER_ERROR, n);
		return MHD_YES;
	}
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	return MHD_YES;
}

/* Final call: the whole request is in. */
static enum MHD_Result access_final(http_server *s, http_request *r)
{
	/* No handler calls once http_server_close() has been called. */
	if (s->closing)
		return queue(r, MHD_HTTP_SERVICE_UNAVAILABLE, s->r503, 0);
	if (r->body != NULL)
		r->body[r->body_len] = '\0';
	r->state = REQ_HANDLER;
	s->cb(r, s->ud);
	if (r->state == REQ_ANSWERED)
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
	(void)url;
	(void)version;
	if (r == NULL) {
		/* hora_calloc failed in on_connection. */
		if (s->log != NULL)
			s->log(s->log_ud, "closing connection: out of memory");
		return drop(s);
	}
	switch (r->state) {
	case REQ_HEADERS:
		return access_first(s, r, method);
	case REQ_BODY:
	case REQ_DISCARD:
		if (*upload_data_size != 0)
			return access_data(s, r, upload_data,
					   upload_data_size);
		if (r->state == REQ_DISCARD)
			return queue(r, r->reject_status, r->reject, 0);
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

/* After a failed MHD_start_daemon() the listening socket may or may not
 * have been closed by MHD, depending on where it failed: close it only if
 * the fd still names the same socket. */
static void close_if_same(int fd, const struct stat *before)
{
	struct stat now;

	if (fstat(fd, &now) == 0 && now.st_ino == before->st_ino &&
	    now.st_dev == before->st_dev)
		close(fd);
}

int http_server_start(uv_loop_t *loop, const http_server_config *cfg,
		      http_handler cb, void *ud, http_server **out,
		      hora_error *err)
{
	static const http_server_config zero;
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	char text[ADDR_TEXT_MAX], msg[128];
	const union MHD_DaemonInfo *di;
	http_server *s;
	struct stat st;
	uint16_t port = 0;
	unsigned flags, max_conn, idle;
	int rv, fd;

	if (loop == NULL || cb == NULL || out == NULL)
		return hora_error_set(err, -HORA_EINVAL, "",
				      "http_server_start: missing argument");
	if (cfg == NULL)
		cfg = &zero;
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
	s->max_body = cfg->max_body ? cfg->max_body : HTTP_DEFAULT_MAX_BODY;
	s->discard_max = s->max_body > SIZE_MAX / 8 ? SIZE_MAX
						    : s->max_body * 8;
	s->close_grace_ms = cfg->close_grace_ms ? cfg->close_grace_ms
						: HTTP_DEFAULT_CLOSE_GRACE_MS;
	max_conn = cfg->max_connections ? cfg->max_connections
					: HTTP_DEFAULT_MAX_CONNECTIONS;
	idle = cfg->idle_timeout_s ? cfg->idle_timeout_s
				   : HTTP_DEFAULT_IDLE_TIMEOUT_S;

	snprintf(msg, sizeof msg,
		 "{\"error\":{\"code\":\"payload_too_large\",\"message\":"
		 "\"request body exceeds %zu bytes\"}}",
		 s->max_body);
	s->r413 = static_json(msg, true);
	s->r500 = static_json("{\"error\":{\"code\":\"internal\",\"message\":"
			      "\"out of memory\"}}",
			      true);
	s->r503 = static_json("{\"error\":{\"code\":\"shutting_down\","
			      "\"message\":\"server is shutting down\"}}",
			      true);
	if (s->r413 == NULL || s->r500 == NULL || s->r503 == NULL) {
		rv = hora_error_set(err, -HORA_ENOMEM, "",
				    "cannot start HTTP server on %s: %s", text,
				    hora_strerror(-HORA_ENOMEM));
		goto err_after_alloc;
	}

	fd = open_listener(&ss, sslen,
			   cfg->backlog > 0 ? cfg->backlog
					    : HTTP_DEFAULT_BACKLOG,
			   text, &s->port, err);
	if (fd < 0) {
		rv = err != NULL ? err->code : -HORA_EIO;
		goto err_after_alloc;
	}
	if (fstat(fd, &st) != 0)
		memset(&st, 0, sizeof st);

	flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, on_access, s,
		/* First, or MHD logs the options' errors to stderr. */
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
		MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
		MHD_OPTION_CONNECTION_LIMIT, max_conn,
		MHD_OPTION_CONNECTION_TIMEOUT, idle,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_END);
	if (s->mhd == NULL) {
		close_if_same(fd, &st);
		rv = hora_error_set(err, -HORA_EIO, "listen",
				    "cannot start HTTP server on %s: %s", text,
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
	uv_timer_init(loop, &s->timer);
	uv_timer_init(loop, &s->close_timer);
	s->mhd_poll.data = s;
	s->timer.data = s;
	s->close_timer.data = s;
	uv_poll_start(&s->mhd_poll, UV_READABLE, on_mhd_poll);
	s->accepting = true;
	server_arm(s);
	*out = s;
	return 0;

err_after_alloc:
	HORA_ASSERT(rv != 0);
	if (s->r413 != NULL)
		MHD_destroy_response(s->r413);
	if (s->r500 != NULL)
		MHD_destroy_response(s->r500);
	if (s->r503 != NULL)
		MHD_destroy_response(s->r503);
	hora_free(s);
	return rv;
}

uint16_t http_server_port(const http_server *s)
{
	return s->port;
}

void http_server_stop_accepting(http_server *s)
{
	MHD_socket fd;

	if (!s->accepting || s->stopped)
		return;
	s->accepting = false;
	/* In external-poll mode MHD never touches the socket again. */
	fd = MHD_quiesce_daemon(s->mhd);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
}

void http_server_stats_get(const http_server *s, http_server_stats *out)
{
	*out = s->st;
	out->in_flight = (uint32_t)s->inflight;
}

/* --- close -------------------------------------------------------------- */

static void on_server_handle_closed(uv_handle_t *h)
{
	server_handle_released(h->data);
}

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
	uv_close((uv_handle_t *)&s->mhd_poll, on_server_handle_closed);
	uv_close((uv_handle_t *)&s->timer, on_server_handle_closed);
	uv_close((uv_handle_t *)&s->close_timer, on_server_handle_closed);
	/* Closes every connection: on_completed, then on_connection, which
	 * closes the requests' poll handles (counted in s->handles). */
	MHD_stop_daemon(s->mhd);
	s->mhd = NULL;
	MHD_destroy_response(s->r413);
	MHD_destroy_response(s->r500);
	MHD_destroy_response(s->r503);
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
		*len = req->body_len;
	return req->body != NULL ? req->body : "";
}

const char *http_request_peer(const http_request *req)
{
	return req->peer;
}

void http_request_on_abort(http_request *req, http_abort_cb cb, void *ud)
{
	req->abort_cb = cb;
	req->abort_ud = ud;
}

/* RFC 9110 token characters. */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int http_response_header(http_request *req, const char *name,
			 const char *value)
{
	size_t nl, vl, need, i;

	if (req->state != REQ_HANDLER && req->state != REQ_PENDING)
		return -HORA_EINVAL;
	if (name == NULL || value == NULL || name[0] == '\0')
		return -HORA_EINVAL;
	nl = strlen(name);
	vl = strlen(value);
	for (i = 0; i < nl; i++)
		if (!is_tchar((unsigned char)name[i]))
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
