/*
 * http_int.h - what http.c and http_conn.c share: the server and
 * per-connection structs, and the connection-level services of
 * http_conn.c (accepting and refusing connections, per-address counts,
 * deadlines, answers written past MHD).  Private to src/api/http*.c.
 *
 * Threading: everything on the loop's thread, like http.h.
 */
#ifndef HORA_API_HTTP_INT_H
#define HORA_API_HTTP_INT_H

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "api/http.h"
#include "core/buf.h"

#define PATH_INLINE 128
#define HDRS_INLINE 192
#define PEER_MAX (INET6_ADDRSTRLEN + 8)

enum req_state {
	REQ_IDLE = 0,  /* no request on this connection */
	REQ_HEADERS,   /* request line seen, first on_access not yet */
	REQ_BODY,      /* collecting the body */
	REQ_LINGER,    /* refused mid-body, answer written past MHD: drop
			* the rest until the client or the deadline closes */
	REQ_HANDLER,   /* inside the user's handler */
	REQ_PENDING,   /* parked (suspended), waiting for http_respond() */
	REQ_RESUMING,  /* answer stored in `resp`, connection resumed */
	REQ_ABORTED,   /* owner told; MHD is to drop the connection */
	REQ_ANSWERED,  /* answer queued with MHD */
	REQ_STREAM,    /* streamed answer queued: body via http_stream_write */
	REQ_FAILED,    /* MHD refused our answer: drop the connection */
};

/*
 * Deadline queues (http_conn.c).  Every queue has one fixed duration, so
 * appending keeps it sorted by deadline: insertion and removal are O(1)
 * and expiry only looks at the fronts.  A connection is in at most one.
 */
enum dl_kind {
	DL_NONE = 0,
	DL_HEAD,   /* waiting for a request head (head_timeout_ms) */
	DL_GRACE,  /* keep-alive head caught half-way at a check */
	DL_BODY,   /* waiting for the rest of a body (body_timeout_ms) */
	DL_LINGER, /* answered past MHD; draining until the close */
	DL_KINDS
};

/* Canned answers written by us, not MHD: to refused connections and in
 * the middle of a body, where MHD 0.9.75 accepts no response. */
enum raw_kind {
	RAW_503, /* server full */
	RAW_429, /* too many connections from one address */
	RAW_413, /* body over max_body */
	RAW_500, /* out of memory */
	RAW_408, /* body deadline */
	RAW_KINDS
};

#define RAW_MAX 400

typedef struct raw_answer {
	unsigned status;
	size_t len;      /* of text */
	size_t body_len; /* for bytes_out */
	char text[RAW_MAX];
} raw_answer;

/* A client address as max_per_address counts it: IPv4 as its
 * IPv4-mapped IPv6 form, IPv6 by its /64 prefix (low half zero). */
typedef struct http_addr_key {
	uint64_t w[2];
} http_addr_key;

typedef struct http_addr_slot {
	http_addr_key key;
	uint32_t hash;
	uint32_t count; /* 0: empty slot */
} http_addr_slot;

/*
 * The per-connection object (see http.c): allocated when MHD announces
 * the connection, freed when MHD closes it, reused request after request.
 */
struct http_request {
	http_server *s;
	struct MHD_Connection *mc;
	enum req_state state;
	unsigned status;           /* REQ_RESUMING: status of `resp` */
	struct MHD_Response *resp; /* REQ_RESUMING: the stored answer */
	size_t resp_len;           /* its body length, for the counters */
	bool resp_owned;           /* `resp` is ours to destroy */
	bool poll_init;            /* `poll` initialised (needs uv_close) */
	bool bad_target;           /* raw NUL or control byte in the target */
	bool fresh;  /* no request head yet on this connection */
	bool cut;    /* shut down by us; MHD closes it on its next run */
	bool counted; /* holds one count under `addr` in the address table */
	uint8_t dl;  /* enum dl_kind: the queue it is in */
	struct MHD_Response *reject; /* refuse at the first on_access */
	unsigned reject_status;
	const char *method; /* MHD's, valid for the request */
	const char *raw_uri; /* on_uri's pointer into MHD's read buffer */
	size_t raw_len;      /* strlen(raw_uri) before MHD touched it */
	char *path;         /* path_inline or heap; raw, '\0'-terminated */
	size_t path_cap;
	hora_buf body; /* body.p NULL until a body arrives */
	uint64_t discarded; /* REQ_LINGER: body bytes dropped */
	char *hdrs; /* "name\0value\0" pairs, hdrs_inline or heap */
	size_t hdrs_len, hdrs_cap;
	http_abort_cb abort_cb;
	void *abort_ud;
	/* A streamed answer (REQ_STREAM, or REQ_RESUMING with `streaming`):
	 * bytes not yet handed to MHD are sbuf.p[soff..len). */
	bool streaming;
	bool s_wait;  /* suspended by the reader: nothing to send */
	bool s_end;   /* http_stream_end(): finish once sbuf drains */
	bool s_abort; /* client gone or server closing: cut the stream */
	hora_buf sbuf;
	size_t soff;
	/* Direct mode (plain HTTP/1.1 only): once MHD has sent everything
	 * and suspended the connection, the courier thread writes the
	 * stream's chunks itself, timed ones included (http_stream_write_at);
	 * MHD gets the connection back to end or cut it. */
	bool http11;
	bool s_finishing; /* cline flushing before MHD ends the stream */
	struct courier_line *cline; /* non-NULL: it owns the socket's writes */
	http_written_cb s_written;
	void *s_written_ud;
	http_request *s_prev, *s_next; /* server's stream list */
	http_request *prev, *next; /* server's parked list */
	http_request *dl_prev, *dl_next; /* deadline queue `dl` */
	uint64_t deadline; /* loop time (uv_now), ms */
	/* Keep-alive: bytes received after this instant (uv_hrtime, ms)
	 * belong to the next request head. */
	uint64_t window;
	int fd; /* the socket; valid until MHD_CONNECTION_NOTIFY_CLOSED */
	http_addr_key addr;
	uv_poll_t poll; /* disconnect watch while parked */
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
	bool tls;
	bool accepting;
	bool in_run;  /* inside MHD_run() */
	bool kick;    /* a resume happened: run MHD again at once */
	bool closing; /* http_server_close() called */
	bool stopped; /* MHD stopped, handles closing */
	bool quiet;   /* drop MHD's next line: we closed on purpose */
	unsigned handles; /* uv handles whose close callback is due */
	uint64_t inflight; /* requests between on_uri and on_completed */
	struct MHD_Response *r400, *r413, *r500, *r503; /* shared */
	http_request *parked;
	http_request *streams; /* streamed answers not finished */
	struct courier *courier; /* made with the first direct stream */
	void (*done)(void *);
	void *done_ud;
	char last_log[256]; /* for start-up failures */
	http_server_stats st;

	/* --- http_conn.c ------------------------------------------------ */
	int listen_fd;  /* ours, not MHD's; -1 once closed */
	int reserve_fd; /* spare descriptor for EMFILE; -1 if none */
	uv_poll_t accept_poll;
	uv_timer_t accept_timer; /* resumes accepting after a pause */
	uv_timer_t dl_timer;
	unsigned max_conn;
	unsigned max_per_addr; /* 0: no per-address limit */
	const http_addr_key *adding; /* key of the socket being added */
	bool dl_armed;
	uint64_t dl_due;
	uint64_t dl_ms[DL_KINDS];
	http_request *dlq_head[DL_KINDS], *dlq_tail[DL_KINDS];
	http_addr_slot *addr_tab; /* open addressing, linear probing */
	size_t addr_cap, addr_used;
	uint64_t addr_seed[2];
	raw_answer raw[RAW_KINDS];
};

/* --- http.c, for http_conn.c ------------------------------------------- */

/* MHD_run() now (no-op once stopped); see http.c. */
void http__run(http_server *s);
/* Make sure MHD_run() comes on the next loop turn. */
void http__kick(http_server *s);
void http__count_answer(http_server *s, unsigned status, size_t len);
/* Close callback for the server's handles (h->data is the server): the
 * last one after the stop frees the server. */
void http__handle_closed(uv_handle_t *h);
void http__logf(http_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* --- http_conn.c ------------------------------------------------------- */

/*
 * Settings, canned answers and the address table, before any handle:
 * 0 or -HORA_ENOMEM (nothing to undo but http__conn_free()).
 */
int http__conn_setup(http_server *s, const http_server_config *cfg);
/* Free what http__conn_setup() allocated; no handle involved. */
void http__conn_free(http_server *s);
/*
 * Initialise the handles and start accepting on s->listen_fd.  Returns 0,
 * or a libuv error with nothing initialised.
 */
int http__conn_start(http_server *s);
/* Stop accepting and close the listening socket.  Idempotent. */
void http__accept_stop(http_server *s);
/* uv_close() this module's remaining handles (counted in s->handles). */
void http__conn_close_handles(http_server *s);

/* MHD announced (NOTIFY_STARTED) or closed (NOTIFY_CLOSED) `r`. */
void http__conn_opened(http_server *s, http_request *r);
void http__conn_closed(http_server *s, http_request *r);

/* Put `r` in queue `k` (leaving any other), deadline from now. */
void http__dl_set(http_server *s, http_request *r, enum dl_kind k);
void http__dl_clear(http_server *s, http_request *r);
/* An answer has been sent and the connection stays open: the next
 * head's clock starts now. */
void http__idle_start(http_server *s, http_request *r);

/*
 * Write canned answer `k` straight to the connection (through its TLS
 * session if any), for when MHD cannot answer: mid-body.  Counts it as
 * a response.  false if it could not be written whole (then close).
 */
bool http__write_raw(http_request *r, enum raw_kind k);

#endif
