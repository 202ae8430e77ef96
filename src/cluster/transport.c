#include "cluster/transport.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/log.h"
#include "net/crypto.h"
#include "net/tls.h"

/* ---- wire constants ----------------------------------------------------- */

#define MAGIC "HORAraft" /* 8 bytes: a keyed handshake follows */
#define HS_VERSION 1
#define NONCE_LEN 32
#define HELLO_LEN (8 + 8 + NONCE_LEN) /* magic, version+mode+pad, nonce */
#define CHALLENGE_LEN (8 + 8 + NONCE_LEN + CRYPTO_MAC_LEN)
#define RAFT_PREAMBLE_LEN 24 /* C-Raft: protocol, id, address length */
#define RAFT_PROTOCOL 1
#define MODE_KEY 1
#define MODE_TLS 2
#define LABEL_ACCEPTOR "hora-raft-v1 acceptor"
#define LABEL_CONNECTOR "hora-raft-v1 connector"
#define HS_BUF (RAFT_PREAMBLE_LEN + TRANSPORT_ADDRESS_MAX + CRYPTO_MAC_LEN)

#define READ_CHUNK 65536
#define RELAY_HIGH (8u << 20) /* queued bytes that pause the other side */
#define RELAY_LOW (1u << 20)
#define WATCH_MAX 64 /* plain connections watched for EOF at once */
#define WARN_EVERY_MS 5000

enum stage {
	ST_CONNECTING, /* outgoing: resolving, connecting */
	ST_TLS,        /* TLS handshake */
	ST_FIRST,      /* incoming: first 8 bytes decide the mode */
	ST_HELLO,      /* incoming: rest of the keyed hello */
	ST_CHALLENGE,  /* outgoing: the acceptor's nonce and proof */
	ST_PREAMBLE,   /* incoming: C-Raft's 24-byte handshake */
	ST_ADDRESS,    /* incoming: address (and the connector's proof) */
	ST_RELAY,      /* TLS: relaying between TLS and C-Raft's pipe */
};

typedef struct conn conn;

typedef struct watched {
	uint64_t id;
	int fd;
	bool live;
} watched;

struct peer_transport {
	struct raft_uv_transport iface; /* first: raft sees this */
	uv_loop_t *loop;
	raft_id id;
	char address[TRANSPORT_ADDRESS_MAX]; /* ours, as peers know it */
	char bind[TRANSPORT_ADDRESS_MAX];
	raft_uv_accept_cb accept_cb;
	raft_uv_transport_close_cb close_cb;
	bool closing;
	uv_tcp_t listener;
	bool listener_open;
	unsigned char *key;
	size_t key_len;
	tls_ctx *tls;
	transport_peer_gone_cb gone;
	void *gone_ud;
	conn *conns; /* handshaking and relaying */
	unsigned handshaking_in;
	unsigned pending; /* our handles still closing */
	int epfd;
	uv_poll_t poll;
	bool poll_open;
	watched slots[WATCH_MAX];
	unsigned next_slot;
	uint64_t warned_at; /* ms, uv_now */
	unsigned suppressed;
	transport_stats st;
	char rbuf[READ_CHUNK]; /* every read lands here first */
};

struct conn {
	peer_transport *t;
	conn *prev, *next;
	bool incoming;
	enum stage stage;
	uv_tcp_t *tcp; /* raft_malloc: it may become C-Raft's */
	uv_timer_t timer;
	uv_pipe_t *pipe; /* relay: our end */
	tls_conn *tls;
	unsigned pending; /* close callbacks and lookups outstanding */
	bool closing;
	bool counted; /* in t->handshaking_in */
	bool tls_sniffed;
	bool paused_tcp, paused_pipe;
	int status; /* outgoing: what the connect callback gets */
	struct raft_uv_connect *req;
	raft_uv_connect_cb cb;
	uv_getaddrinfo_t gai;
	struct addrinfo *ai_list, *ai;
	uv_connect_t connect;
	raft_id peer_id;
	size_t have, need;
	unsigned char buf[HS_BUF];
	unsigned char nonce_c[NONCE_LEN], nonce_s[NONCE_LEN];
	unsigned char tb[TLS_BINDING_LEN];
	size_t tb_len;
	char remote[TRANSPORT_ADDRESS_MAX + 32]; /* for logs */
};

typedef struct wreq {
	uv_write_t w;
	uv_buf_t b;
	bool relay; /* write of a relayed stream: back-pressure applies */
	char data[];
} wreq;

static peer_transport *from_iface(struct raft_uv_transport *i)
{
	return (peer_transport *)(void *)i;
}

/* ---- small helpers ------------------------------------------------------ */

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Warnings about peers are rate-limited: a flood of bad connections
 * must not flood the log. */
__attribute__((format(printf, 2, 3))) static void
warn_limited(peer_transport *t, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	uint64_t now = uv_now(t->loop);

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (t->warned_at != 0 && now - t->warned_at < WARN_EVERY_MS) {
		t->suppressed++;
		log_debug("%s", line);
		return;
	}
	if (t->suppressed > 0)
		log_warn("%s (%u similar message(s) suppressed)", line,
			 t->suppressed);
	else
		log_warn("%s", line);
	t->warned_at = now;
	t->suppressed = 0;
}

static void describe_peer(uv_tcp_t *tcp, char *buf, size_t cap)
{
	struct sockaddr_storage ss;
	int len = sizeof ss;
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			uv_ip4_name(a, ip, sizeof ip);
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			uv_ip6_name(a, ip, sizeof ip);
			port = ntohs(a->sin6_port);
		}
	}
	snprintf(buf, cap, strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, port);
}

/* ---- watching plain connections for EOF ---------------------------------- */

static void on_watch_events(uv_poll_t *p, int status, int events)
{
	peer_transport *t = p->data;
	struct epoll_event ev[16];
	(void)status;
	(void)events;
	int n = epoll_wait(t->epfd, ev, 16, 0);
	for (int i = 0; i < n; i++) {
		watched *s = ev[i].data.ptr;
		if (!s->live)
			continue;
		s->live = false;
		epoll_ctl(t->epfd, EPOLL_CTL_DEL, s->fd, NULL);
		log_debug("raft connection from node %llu closed",
			  (unsigned long long)s->id);
		if (t->gone)
			t->gone(t->gone_ud, s->id);
	}
}

/* Watch a socket handed to C-Raft (the fd itself, never a dup, so the
 * registration dies with the socket when C-Raft closes it). */
static void watch(peer_transport *t, uint64_t id, uv_tcp_t *tcp)
{
	uv_os_fd_t fd;
	if (!t->poll_open || uv_fileno((uv_handle_t *)tcp, &fd) != 0)
		return;
	watched *s = &t->slots[t->next_slot++ % WATCH_MAX];
	if (s->live) /* the oldest watch gives way */
		epoll_ctl(t->epfd, EPOLL_CTL_DEL, s->fd, NULL);
	s->id = id;
	s->fd = fd;
	s->live = true;
	struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET, .data.ptr = s};
	if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		if (errno == EEXIST)
			epoll_ctl(t->epfd, EPOLL_CTL_MOD, fd, &ev);
		else
			s->live = false;
	}
}

/* ---- closing ------------------------------------------------------------- */

static void maybe_closed(peer_transport *t)
{
	if (!t->closing || t->conns != NULL || t->pending > 0)
		return;
	raft_uv_transport_close_cb cb = t->close_cb;
	t->close_cb = NULL;
	if (cb)
		cb(&t->iface);
}

static void conn_final(conn *c)
{
	peer_transport *t = c->t;
	if (c->req != NULL) {
		/* an outgoing connection that never reached C-Raft */
		struct raft_uv_connect *req = c->req;
		c->req = NULL;
		req->cb(req, NULL, c->status);
	}
	if (c->ai_list)
		uv_freeaddrinfo(c->ai_list);
	tls_conn_free(c->tls);
	if (c->prev)
		c->prev->next = c->next;
	else
		t->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	hora_free(c);
	maybe_closed(t);
}

static void conn_unref(conn *c)
{
	HORA_ASSERT(c->pending > 0);
	if (--c->pending == 0 && c->closing)
		conn_final(c);
}

static void on_tcp_closed(uv_handle_t *h)
{
	conn *c = h->data;
	raft_free(h);
	conn_unref(c);
}

static void on_pipe_closed(uv_handle_t *h)
{
	conn *c = h->data;
	hora_free(h);
	conn_unref(c);
}

static void on_timer_closed(uv_handle_t *h)
{
	conn_unref(h->data);
}

static void uncount(conn *c)
{
	if (c->counted) {
		c->counted = false;
		c->t->handshaking_in--;
		c->t->st.handshaking--;
	}
}

/* Close everything the connection still owns; the connect callback (for
 * an outgoing one) and the free follow once the handles are closed. */
static void conn_close(conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uncount(c);
	if (c->stage == ST_RELAY)
		c->t->st.relayed--;
	c->pending++; /* hold until every close is under way */
	c->pending++;
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
	if (c->tcp != NULL) {
		c->pending++;
		uv_close((uv_handle_t *)c->tcp, on_tcp_closed);
		c->tcp = NULL;
	}
	if (c->pipe != NULL) {
		c->pending++;
		uv_close((uv_handle_t *)c->pipe, on_pipe_closed);
		c->pipe = NULL;
	}
	/* a lookup in flight ends in on_resolved, which drops its ref */
	uv_cancel((uv_req_t *)&c->gai);
	conn_unref(c);
}

/* A check failed: log it and drop the connection. */
__attribute__((format(printf, 2, 3))) static void
conn_fail(conn *c, const char *fmt, ...)
{
	char why[384];
	va_list ap;

	if (c->closing)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (c->incoming) {
		c->t->st.refused++;
		warn_limited(c->t, "refused a Raft connection from %s: %s",
			     c->remote, why);
	} else {
		c->t->st.failed_out++;
		c->status = RAFT_NOCONNECTION;
		if (c->stage == ST_CONNECTING)
			log_debug("raft: cannot reach node %llu at %s: %s",
				  (unsigned long long)c->peer_id, c->remote,
				  why);
		else
			warn_limited(c->t,
				     "raft: connection to node %llu at %s "
				     "failed: %s",
				     (unsigned long long)c->peer_id,
				     c->remote, why);
	}
	conn_close(c);
}

/* ---- writing ------------------------------------------------------------ */

static void on_relay_drained(conn *c, uv_stream_t *s);

static void on_written(uv_write_t *w, int status)
{
	wreq *r = (wreq *)w;
	uv_stream_t *s = w->handle;
	bool relay = r->relay;
	(void)status;
	hora_free(r);
	/* only our own streams carry relay writes: their data is the conn */
	if (relay && status != UV_ECANCELED && s->data != NULL)
		on_relay_drained(s->data, s);
}

static int stream_write(uv_stream_t *s, const void *p, size_t n, bool relay)
{
	wreq *r = hora_malloc(sizeof *r + n);
	int rv;
	if (r == NULL)
		return UV_ENOMEM;
	memcpy(r->data, p, n);
	r->b = uv_buf_init(r->data, (unsigned)n);
	r->relay = relay;
	rv = uv_write(&r->w, s, &r->b, 1, on_written);
	if (rv != 0)
		hora_free(r);
	return rv;
}

/* Handshake bytes for the peer, through TLS when there is TLS. */
static void conn_send(conn *c, const void *p, size_t n)
{
	int rv;
	if (c->closing)
		return;
	if (c->tls != NULL)
		rv = tls_conn_write(c->tls, p, n);
	else
		rv = stream_write((uv_stream_t *)c->tcp, p, n, false);
	if (rv != 0)
		conn_fail(c, "cannot write: %s",
			  c->tls ? tls_conn_error(c->tls) : uv_strerror(rv));
}

/* ---- relaying TLS connections ------------------------------------------- */

static void alloc_shared(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	conn *c = h->data;
	(void)hint;
	*buf = uv_buf_init(c->t->rbuf, sizeof c->t->rbuf);
}

static size_t queued(void *stream)
{
	return stream ? uv_stream_get_write_queue_size(stream) : 0;
}

static void on_pipe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void on_tcp_read_tls(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* A write finished: resume the side that was paused for it. */
static void on_relay_drained(conn *c, uv_stream_t *s)
{
	if (c->closing)
		return;
	if (s == (uv_stream_t *)c->tcp && c->paused_pipe &&
	    queued(c->tcp) < RELAY_LOW) {
		c->paused_pipe = false;
		uv_read_start((uv_stream_t *)c->pipe, alloc_shared,
			      on_pipe_read);
	}
	if (s == (uv_stream_t *)c->pipe && c->paused_tcp &&
	    queued(c->pipe) < RELAY_LOW) {
		c->paused_tcp = false;
		uv_read_start((uv_stream_t *)c->tcp, alloc_shared,
			      on_tcp_read_tls);
	}
}

/* C-Raft wrote to its end of the pipe: encrypt it for the peer. */
static void on_pipe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	conn *c = s->data;
	if (n == 0)
		return;
	if (n < 0) { /* C-Raft closed its stream */
		conn_close(c);
		return;
	}
	if (c->incoming)
		return; /* C-Raft never writes on accepted streams */
	if (tls_conn_write(c->tls, buf->base, (size_t)n) != 0) {
		conn_fail(c, "%s", tls_conn_error(c->tls));
		return;
	}
	if (!c->closing && queued(c->tcp) > RELAY_HIGH) {
		c->paused_pipe = true;
		uv_read_stop(s);
	}
}

/* Make the socketpair; returns C-Raft's end, or NULL. */
static uv_stream_t *relay_start(conn *c)
{
	peer_transport *t = c->t;
	uv_pipe_t *theirs;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		conn_fail(c, "socketpair: %s", strerror(errno));
		return NULL;
	}
	c->pipe = hora_malloc(sizeof *c->pipe);
	theirs = raft_malloc(sizeof *theirs);
	if (c->pipe == NULL || theirs == NULL) {
		hora_free(c->pipe);
		c->pipe = NULL;
		raft_free(theirs);
		close(sv[0]);
		close(sv[1]);
		conn_fail(c, "out of memory");
		return NULL;
	}
	uv_pipe_init(t->loop, c->pipe, 0);
	uv_pipe_init(t->loop, theirs, 0);
	c->pipe->data = c;
	uv_pipe_open(c->pipe, sv[0]);
	uv_pipe_open(theirs, sv[1]);
	uv_read_start((uv_stream_t *)c->pipe, alloc_shared, on_pipe_read);
	c->stage = ST_RELAY;
	t->st.relayed++;
	return (uv_stream_t *)theirs;
}

/* Plaintext from the peer in relay mode. */
static void relay_in(conn *c, const void *p, size_t n)
{
	if (!c->incoming || c->closing)
		return; /* outgoing: C-Raft never reads what peers answer */
	int rv = stream_write((uv_stream_t *)c->pipe, p, n, true);
	if (rv != 0) {
		conn_fail(c, "relay: %s", uv_strerror(rv));
		return;
	}
	if (queued(c->pipe) > RELAY_HIGH) {
		c->paused_tcp = true;
		uv_read_stop((uv_stream_t *)c->tcp);
	}
}

/* ---- the end of a handshake ---------------------------------------------- */

static void accepted(conn *c, raft_id id, const char *address)
{
	peer_transport *t = c->t;
	uv_stream_t *stream;

	uv_timer_stop(&c->timer);
	uncount(c);
	t->st.accepted++;
	log_debug("raft: node %llu (%s) connected from %s",
		  (unsigned long long)id, address, c->remote);
	if (c->tls == NULL) {
		/* the socket itself goes to C-Raft, read exactly up to here */
		stream = (uv_stream_t *)c->tcp;
		uv_read_stop(stream);
		c->tcp = NULL;
		stream->data = NULL;
		watch(t, id, (uv_tcp_t *)stream);
		conn_close(c);
	} else {
		c->peer_id = id;
		if ((stream = relay_start(c)) == NULL)
			return;
	}
	t->accept_cb(&t->iface, id, address, stream);
}

static void connected(conn *c)
{
	struct raft_uv_connect *req = c->req;
	uv_stream_t *stream;

	uv_timer_stop(&c->timer);
	c->t->st.connected++;
	if (c->tls == NULL) {
		stream = (uv_stream_t *)c->tcp;
		uv_read_stop(stream);
		c->tcp = NULL;
		stream->data = NULL;
		c->req = NULL;
		conn_close(c);
	} else {
		if ((stream = relay_start(c)) == NULL)
			return; /* conn_fail: req->cb runs when closed */
		c->req = NULL;
	}
	req->cb(req, stream, 0);
}

/* C-Raft's own handshake: protocol, id, address padded to 8. */
static size_t raft_handshake(const peer_transport *t, unsigned char *out)
{
	size_t alen = strlen(t->address) + 1;
	size_t padded = (alen + 7) / 8 * 8;
	put64(out, RAFT_PROTOCOL);
	put64(out + 8, t->id);
	put64(out + 16, padded);
	memset(out + 24, 0, padded);
	memcpy(out + 24, t->address, alen);
	return RAFT_PREAMBLE_LEN + padded;
}

static int mac(const conn *c, const char *label, const void *extra,
	       size_t extra_len, unsigned char out[CRYPTO_MAC_LEN])
{
	const crypto_part parts[] = {
		{label, strlen(label) + 1},
		{c->nonce_c, NONCE_LEN},
		{c->nonce_s, NONCE_LEN},
		{c->tb, c->tb_len},
		{extra, extra_len},
	};
	return crypto_hmac(c->t->key, c->t->key_len, parts,
			   sizeof parts / sizeof parts[0], out);
}

/* Expect `n` more handshake bytes (exact reads when the socket is read
 * directly: nothing past the handshake may be consumed). */
static void expect(conn *c, enum stage stage, size_t total)
{
	c->stage = stage;
	c->need = total;
}

static void bind_tls(conn *c)
{
	c->tb_len = 0;
	if (c->tls != NULL) {
		if (tls_conn_binding(c->tls, c->tb) == 0)
			c->tb_len = TLS_BINDING_LEN;
	}
}

/* Outgoing, once connected (and TLS is up): say who we are. */
static void out_begin(conn *c)
{
	peer_transport *t = c->t;
	unsigned char hs[HS_BUF];

	if (t->key == NULL) {
		size_t n = raft_handshake(t, hs);
		conn_send(c, hs, n);
		if (!c->closing)
			connected(c);
		return;
	}
	bind_tls(c);
	if (crypto_random(c->nonce_c, NONCE_LEN) != 0) {
		conn_fail(c, "no random bytes");
		return;
	}
	memset(hs, 0, HELLO_LEN);
	memcpy(hs, MAGIC, 8);
	hs[8] = HS_VERSION;
	hs[9] = (unsigned char)(MODE_KEY | (c->tls ? MODE_TLS : 0));
	memcpy(hs + 16, c->nonce_c, NONCE_LEN);
	c->have = 0;
	expect(c, ST_CHALLENGE, CHALLENGE_LEN);
	conn_send(c, hs, HELLO_LEN);
}

static void out_challenge(conn *c)
{
	unsigned char want[CRYPTO_MAC_LEN], hs[HS_BUF + CRYPTO_MAC_LEN];
	const unsigned char *b = c->buf;

	if (memcmp(b, MAGIC, 8) != 0)
		return conn_fail(c, "the peer is not a hora node with a "
				    "cluster key");
	if (b[8] != HS_VERSION)
		return conn_fail(c, "the peer speaks handshake version %u, "
				    "this node %u",
				 b[8], HS_VERSION);
	if (b[9] != 0)
		return conn_fail(c, "the peer refused the handshake");
	memcpy(c->nonce_s, b + 16, NONCE_LEN);
	if (mac(c, LABEL_ACCEPTOR, NULL, 0, want) != 0)
		return conn_fail(c, "cannot compute HMAC");
	if (!crypto_equal(want, b + 16 + NONCE_LEN, CRYPTO_MAC_LEN))
		return conn_fail(c, "the peer failed the cluster key check: "
				    "its --cluster-key-file differs from "
				    "this node's");
	size_t n = raft_handshake(c->t, hs);
	if (mac(c, LABEL_CONNECTOR, hs, n, hs + n) != 0)
		return conn_fail(c, "cannot compute HMAC");
	conn_send(c, hs, n + CRYPTO_MAC_LEN);
	if (!c->closing)
		connected(c);
}

static bool is_raft_protocol(const unsigned char *b)
{
	return get64(b) == RAFT_PROTOCOL;
}

static void in_first(conn *c)
{
	peer_transport *t = c->t;
	const unsigned char *b = c->buf;

	if (memcmp(b, MAGIC, 8) == 0) {
		if (t->key == NULL)
			return conn_fail(c, "the peer proves a cluster key but "
					    "this node has none: give every "
					    "node the same --cluster-key-file");
		return expect(c, ST_HELLO, HELLO_LEN);
	}
	if (is_raft_protocol(b)) {
		if (t->key != NULL)
			return conn_fail(c, "the peer did not prove the "
					    "cluster key (is "
					    "--cluster-key-file set on every "
					    "node?)");
		return expect(c, ST_PREAMBLE, RAFT_PREAMBLE_LEN);
	}
	if (b[0] == 0x16 && b[1] == 0x03 && c->tls == NULL)
		return conn_fail(c, "the peer speaks TLS but this node has no "
				    "--tls-cert");
	conn_fail(c, "the peer sent bytes that are not a hora Raft "
		     "handshake");
}

static void in_hello(conn *c)
{
	unsigned char out[CHALLENGE_LEN];

	if (c->buf[8] != HS_VERSION)
		return conn_fail(c, "the peer speaks handshake version %u, this "
				    "node %u",
				 c->buf[8], HS_VERSION);
	memcpy(c->nonce_c, c->buf + 16, NONCE_LEN);
	bind_tls(c);
	if (crypto_random(c->nonce_s, NONCE_LEN) != 0)
		return conn_fail(c, "no random bytes");
	memset(out, 0, sizeof out);
	memcpy(out, MAGIC, 8);
	out[8] = HS_VERSION;
	memcpy(out + 16, c->nonce_s, NONCE_LEN);
	if (mac(c, LABEL_ACCEPTOR, NULL, 0, out + 16 + NONCE_LEN) != 0)
		return conn_fail(c, "cannot compute HMAC");
	c->have = 0;
	expect(c, ST_PREAMBLE, RAFT_PREAMBLE_LEN);
	conn_send(c, out, sizeof out);
}

static void in_preamble(conn *c)
{
	uint64_t proto = get64(c->buf), id = get64(c->buf + 8);
	uint64_t alen = get64(c->buf + 16);

	if (proto != RAFT_PROTOCOL)
		return conn_fail(c, "Raft handshake protocol %llu, not %d",
				 (unsigned long long)proto, RAFT_PROTOCOL);
	if (id == 0)
		return conn_fail(c, "the peer claims node id 0");
	if (alen < 8 || alen > TRANSPORT_ADDRESS_MAX || alen % 8 != 0)
		return conn_fail(c, "the peer's address length %llu is not a "
				    "multiple of 8 from 8 to %d",
				 (unsigned long long)alen,
				 TRANSPORT_ADDRESS_MAX);
	c->peer_id = id;
	expect(c, ST_ADDRESS,
	       RAFT_PREAMBLE_LEN + alen + (c->t->key ? CRYPTO_MAC_LEN : 0));
}

static void in_address(conn *c)
{
	size_t alen = (size_t)get64(c->buf + 16);
	char *address = (char *)c->buf + RAFT_PREAMBLE_LEN;

	if (memchr(address, '\0', alen) == NULL || address[0] == '\0')
		return conn_fail(c, "the peer's address is empty or not "
				    "terminated");
	if (c->t->key != NULL) {
		unsigned char want[CRYPTO_MAC_LEN];
		size_t n = RAFT_PREAMBLE_LEN + alen;
		if (mac(c, LABEL_CONNECTOR, c->buf, n, want) != 0)
			return conn_fail(c, "cannot compute HMAC");
		if (!crypto_equal(want, c->buf + n, CRYPTO_MAC_LEN))
			return conn_fail(c, "the peer failed the cluster key "
					    "check: its --cluster-key-file "
					    "differs from this node's");
	}
	accepted(c, c->peer_id, address);
}

/* `need` bytes are in: act on them. */
static void step(conn *c)
{
	switch (c->stage) {
	case ST_FIRST:
		in_first(c);
		break;
	case ST_HELLO:
		in_hello(c);
		break;
	case ST_CHALLENGE:
		out_challenge(c);
		break;
	case ST_PREAMBLE:
		in_preamble(c);
		break;
	case ST_ADDRESS:
		in_address(c);
		break;
	case ST_CONNECTING:
	case ST_TLS:
	case ST_RELAY:
		HORA_UNREACHABLE();
	}
}

/* Handshake plaintext (from TLS, in chunks of any size). */
static void hs_input(conn *c, const unsigned char *p, size_t n)
{
	while (n > 0 && !c->closing && c->stage != ST_RELAY) {
		size_t take = c->need - c->have;
		if (take > n)
			take = n;
		memcpy(c->buf + c->have, p, take);
		c->have += take;
		p += take;
		n -= take;
		if (c->have == c->need)
			step(c);
	}
	if (n > 0 && !c->closing && c->stage == ST_RELAY)
		relay_in(c, p, n);
}

/* ---- reading the socket -------------------------------------------------- */

/* Plain connections: read exactly what the handshake still needs. */
static void alloc_exact(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	conn *c = h->data;
	(void)hint;
	*buf = uv_buf_init((char *)c->buf + c->have,
			   (unsigned)(c->need - c->have));
}

static void on_tcp_read_plain(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	conn *c = s->data;
	(void)buf;
	if (n == 0)
		return;
	if (n < 0) {
		conn_fail(c, "closed during the handshake (%s)",
			  uv_strerror((int)n));
		return;
	}
	c->have += (size_t)n;
	if (c->have == c->need)
		step(c);
}

static void tls_send(void *ud, const void *p, size_t n)
{
	conn *c = ud;
	if (c->closing || c->tcp == NULL)
		return;
	int rv = stream_write((uv_stream_t *)c->tcp, p, n,
			      c->stage == ST_RELAY);
	if (rv != 0)
		conn_fail(c, "cannot write: %s", uv_strerror(rv));
}

static void tls_recv(void *ud, const void *p, size_t n)
{
	conn *c = ud;
	if (c->stage == ST_TLS) {
		/* the first plaintext may come with the handshake's end */
		if (!c->incoming)
			return conn_fail(c, "the peer spoke before this node");
		expect(c, ST_FIRST, 8);
	}
	if (c->stage == ST_RELAY)
		relay_in(c, p, n);
	else
		hs_input(c, p, n);
}

static void on_tcp_read_tls(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	conn *c = s->data;
	if (n == 0)
		return;
	if (n < 0) {
		if (c->stage == ST_RELAY) {
			if (c->incoming && c->t->gone) {
				log_debug("raft connection from node %llu "
					  "closed",
					  (unsigned long long)c->peer_id);
				c->t->gone(c->t->gone_ud, c->peer_id);
			}
			conn_close(c);
		} else {
			conn_fail(c, "closed during the handshake (%s)",
				  uv_strerror((int)n));
		}
		return;
	}
	if (c->incoming && !c->tls_sniffed) {
		c->tls_sniffed = true;
		if (buf->base[0] != 0x16)
			return conn_fail(c, "the peer does not speak TLS but "
					    "this node requires it "
					    "(--tls-cert)");
	}
	bool was_ready = tls_conn_ready(c->tls);
	if (tls_conn_feed(c->tls, buf->base, (size_t)n) != 0)
		return conn_fail(c, "TLS: %s", tls_conn_error(c->tls));
	if (!was_ready && tls_conn_ready(c->tls) && !c->closing &&
	    c->stage == ST_TLS) {
		if (c->incoming) {
			expect(c, ST_FIRST, 8);
		} else {
			out_begin(c);
		}
	}
}

static void start_reading(conn *c)
{
	if (c->tls != NULL)
		uv_read_start((uv_stream_t *)c->tcp, alloc_shared,
			      on_tcp_read_tls);
	else
		uv_read_start((uv_stream_t *)c->tcp, alloc_exact,
			      on_tcp_read_plain);
}

/* ---- connections: common start ------------------------------------------- */

static void on_deadline(uv_timer_t *timer)
{
	conn *c = timer->data;
	conn_fail(c, "no complete handshake within %d ms",
		  TRANSPORT_HANDSHAKE_MS);
}

static conn *conn_new(peer_transport *t, bool incoming)
{
	conn *c = hora_calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->t = t;
	c->incoming = incoming;
	c->status = RAFT_NOCONNECTION;
	uv_timer_init(t->loop, &c->timer);
	c->timer.data = c;
	uv_timer_start(&c->timer, on_deadline, TRANSPORT_HANDSHAKE_MS, 0);
	c->next = t->conns;
	if (t->conns)
		t->conns->prev = c;
	t->conns = c;
	return c;
}

static int conn_tls(conn *c)
{
	static const tls_io io = {tls_send, tls_recv};
	if (c->t->tls == NULL)
		return 0;
	c->stage = ST_TLS;
	return tls_conn_new(c->t->tls, c->incoming, &io, c, &c->tls);
}

/* ---- incoming ------------------------------------------------------------- */

static void on_listen(uv_stream_t *server, int status)
{
	peer_transport *t = server->data;
	conn *c;

	if (status != 0 || t->closing)
		return;
	c = conn_new(t, true);
	uv_tcp_t *tcp = raft_malloc(sizeof *tcp);
	if (c == NULL || tcp == NULL) {
		raft_free(tcp);
		if (c)
			conn_close(c);
		log_warn("raft: out of memory accepting a connection");
		return;
	}
	uv_tcp_init(t->loop, tcp);
	tcp->data = c;
	c->tcp = tcp;
	if (uv_accept(server, (uv_stream_t *)tcp) != 0) {
		conn_close(c);
		return;
	}
	describe_peer(tcp, c->remote, sizeof c->remote);
	if (t->handshaking_in >= TRANSPORT_HANDSHAKES_MAX) {
		t->st.busy++;
		warn_limited(t, "refused a Raft connection from %s: %d "
				"handshakes already under way",
			     c->remote, TRANSPORT_HANDSHAKES_MAX);
		conn_close(c);
		return;
	}
	c->counted = true;
	t->handshaking_in++;
	t->st.handshaking++;
	uv_tcp_nodelay(tcp, 1);
	if (conn_tls(c) != 0) {
		conn_fail(c, "out of memory");
		return;
	}
	if (c->tls == NULL)
		expect(c, ST_FIRST, 8);
	start_reading(c);
}

/* ---- outgoing ------------------------------------------------------------- */

static void try_connect(conn *c);

static void on_connect(uv_connect_t *req, int status)
{
	conn *c = req->data;
	if (c->closing)
		return;
	if (status != 0) {
		if (c->ai != NULL && c->ai->ai_next != NULL) {
			/* next address: a new socket */
			c->ai = c->ai->ai_next;
			c->pending++;
			uv_close((uv_handle_t *)c->tcp, on_tcp_closed);
			c->tcp = NULL;
			try_connect(c);
			return;
		}
		conn_fail(c, "%s", uv_strerror(status));
		return;
	}
	uv_tcp_nodelay(c->tcp, 1);
	if (conn_tls(c) != 0)
		return conn_fail(c, "out of memory");
	if (c->tls != NULL) {
		start_reading(c);
		if (tls_conn_start(c->tls) != 0)
			conn_fail(c, "TLS: %s", tls_conn_error(c->tls));
		return;
	}
	out_begin(c);
	if (!c->closing && c->stage == ST_CHALLENGE)
		start_reading(c); /* exact reads of the challenge */
}

static void try_connect(conn *c)
{
	uv_tcp_t *tcp = raft_malloc(sizeof *tcp);
	int rv;
	if (tcp == NULL)
		return conn_fail(c, "out of memory");
	uv_tcp_init(c->t->loop, tcp);
	tcp->data = c;
	c->tcp = tcp;
	c->connect.data = c;
	rv = uv_tcp_connect(&c->connect, tcp, c->ai->ai_addr, on_connect);
	if (rv != 0)
		conn_fail(c, "%s", uv_strerror(rv));
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	conn *c = req->data;
	c->ai_list = res;
	c->ai = res;
	if (!c->closing) {
		if (status != 0 || res == NULL)
			conn_fail(c, "cannot resolve: %s",
				  uv_strerror(status ? status : UV_EAI_NONAME));
		else
			try_connect(c);
	}
	conn_unref(c); /* the lookup's reference */
}

/* "host:port" or "[v6]:port" into parts. */
static int split_address(const char *address, char *host, size_t hcap,
			 char *port, size_t pcap)
{
	const char *colon = strrchr(address, ':');
	size_t hl;
	if (colon == NULL || colon == address || colon[1] == '\0')
		return -1;
	hl = (size_t)(colon - address);
	if (address[0] == '[' && hl >= 2 && address[hl - 1] == ']') {
		address++;
		hl -= 2;
	}
	if (hl == 0 || hl >= hcap || strlen(colon + 1) >= pcap)
		return -1;
	memcpy(host, address, hl);
	host[hl] = '\0';
	strcpy(port, colon + 1);
	return 0;
}

static int iface_connect(struct raft_uv_transport *i,
			 struct raft_uv_connect *req, raft_id id,
			 const char *address, raft_uv_connect_cb cb)
{
	peer_transport *t = from_iface(i);
	static const struct addrinfo hints = {.ai_family = AF_UNSPEC,
					      .ai_socktype = SOCK_STREAM};
	char host[TRANSPORT_ADDRESS_MAX], port[16];
	conn *c;
	int rv;

	HORA_ASSERT(!t->closing);
	if (split_address(address, host, sizeof host, port, sizeof port) != 0) {
		snprintf(i->errmsg, sizeof i->errmsg,
			 "'%.64s' is not HOST:PORT", address);
		return RAFT_NOCONNECTION;
	}
	c = conn_new(t, false);
	if (c == NULL)
		return RAFT_NOMEM;
	req->cb = cb;
	c->req = req;
	c->peer_id = id;
	snprintf(c->remote, sizeof c->remote, "%s", address);
	c->gai.data = c;
	c->pending++; /* the lookup */
	rv = uv_getaddrinfo(t->loop, &c->gai, on_resolved, host, port, &hints);
	if (rv != 0) {
		c->pending--;
		c->req = NULL; /* failing synchronously: no callback */
		conn_close(c);
		snprintf(i->errmsg, sizeof i->errmsg, "getaddrinfo(%.64s): %.64s",
			 address, uv_strerror(rv));
		return RAFT_NOCONNECTION;
	}
	return 0;
}

/* ---- the raft_uv_transport interface --------------------------------------- */

static int iface_init(struct raft_uv_transport *i, raft_id id,
		      const char *address)
{
	peer_transport *t = from_iface(i);
	if (strlen(address) + 1 > TRANSPORT_ADDRESS_MAX) {
		snprintf(i->errmsg, sizeof i->errmsg,
			 "address '%.40s...' longer than %d bytes", address,
			 TRANSPORT_ADDRESS_MAX - 1);
		return RAFT_INVALID;
	}
	t->id = id;
	snprintf(t->address, sizeof t->address, "%s", address);
	return 0;
}

static int iface_listen(struct raft_uv_transport *i, raft_uv_accept_cb cb)
{
	peer_transport *t = from_iface(i);
	char host[TRANSPORT_ADDRESS_MAX], port[16];
	struct sockaddr_storage ss;
	int rv;

	t->accept_cb = cb;
	if (split_address(t->bind, host, sizeof host, port, sizeof port) != 0) {
		snprintf(i->errmsg, sizeof i->errmsg,
			 "'%.64s' is not HOST:PORT", t->bind);
		return RAFT_INVALID;
	}
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	int p = atoi(port);
	if (uv_ip4_addr(host, p, (struct sockaddr_in *)&ss) != 0 &&
	    uv_ip6_addr(host, p, (struct sockaddr_in6 *)&ss) != 0) {
		snprintf(i->errmsg, sizeof i->errmsg,
			 "'%.64s' is not an IP address", host);
		return RAFT_INVALID;
	}
	uv_tcp_init(t->loop, &t->listener);
	t->listener.data = t;
	t->listener_open = true;
	if ((rv = uv_tcp_bind(&t->listener, (struct sockaddr *)&ss,
			      ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY
						       : 0)) != 0 ||
	    (rv = uv_listen((uv_stream_t *)&t->listener, 128, on_listen)) !=
		    0) {
		snprintf(i->errmsg, sizeof i->errmsg,
			 "cannot listen on %.64s: %.64s", t->bind,
			 uv_strerror(rv));
		log_error("raft: cannot listen on %s: %s", t->bind,
			  uv_strerror(rv));
		return RAFT_IOERR;
	}
	return 0;
}

static void on_own_closed(uv_handle_t *h)
{
	peer_transport *t = h->data;
	t->pending--;
	maybe_closed(t);
}

static void iface_close(struct raft_uv_transport *i,
			raft_uv_transport_close_cb cb)
{
	peer_transport *t = from_iface(i);
	HORA_ASSERT(!t->closing);
	t->closing = true;
	t->close_cb = cb;
	if (t->listener_open) {
		t->listener_open = false;
		t->pending++;
		uv_close((uv_handle_t *)&t->listener, on_own_closed);
	}
	if (t->poll_open) {
		t->poll_open = false;
		t->pending++;
		uv_close((uv_handle_t *)&t->poll, on_own_closed);
	}
	for (conn *c = t->conns; c != NULL; c = c->next) {
		if (!c->incoming && c->req != NULL)
			c->status = RAFT_CANCELED;
		conn_close(c);
	}
	maybe_closed(t);
}

int transport_init(peer_transport **out, uv_loop_t *loop,
		   const transport_config *cfg, hora_error *err)
{
	peer_transport *t = hora_calloc(1, sizeof *t);
	int rv;

	if (t == NULL)
		return hora_error_set(err, -HORA_ENOMEM, "", "out of memory");
	t->loop = loop;
	t->gone = cfg->gone;
	t->gone_ud = cfg->gone_ud;
	t->epfd = -1;
	snprintf(t->bind, sizeof t->bind, "%s", cfg->bind);
	if (cfg->key != NULL) {
		t->key = hora_malloc(cfg->key_len);
		if (t->key == NULL) {
			hora_free(t);
			return hora_error_set(err, -HORA_ENOMEM, "",
					      "out of memory");
		}
		memcpy(t->key, cfg->key, cfg->key_len);
		t->key_len = cfg->key_len;
	}
	if (cfg->tls_cert != NULL &&
	    (rv = tls_ctx_new(cfg->tls_cert, cfg->tls_key, cfg->tls_ca,
			      &t->tls, err)) != 0) {
		transport_free(t);
		return rv;
	}
	t->iface.version = 1;
	t->iface.init = iface_init;
	t->iface.listen = iface_listen;
	t->iface.connect = iface_connect;
	t->iface.close = iface_close;
	t->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (t->epfd >= 0 && uv_poll_init(loop, &t->poll, t->epfd) == 0) {
		t->poll.data = t;
		t->poll_open = true;
		uv_poll_start(&t->poll, UV_READABLE, on_watch_events);
	} else {
		log_warn("cannot watch raft connections: %s; failover waits "
			 "for the election timeout",
			 strerror(errno));
	}
	*out = t;
	return 0;
}

struct raft_uv_transport *transport_raft(peer_transport *t)
{
	return &t->iface;
}

int transport_port(const peer_transport *t)
{
	struct sockaddr_storage ss;
	int len = sizeof ss;
	if (!t->listener_open ||
	    uv_tcp_getsockname(&t->listener, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	return ntohs(ss.ss_family == AF_INET6
			     ? ((struct sockaddr_in6 *)&ss)->sin6_port
			     : ((struct sockaddr_in *)&ss)->sin_port);
}

void transport_stats_get(const peer_transport *t, transport_stats *out)
{
	*out = t->st;
}

void transport_free(peer_transport *t)
{
	if (t == NULL)
		return;
	HORA_ASSERT(t->conns == NULL);
	if (t->epfd >= 0)
		close(t->epfd);
	tls_ctx_free(t->tls);
	if (t->key != NULL) {
		explicit_bzero(t->key, t->key_len);
		hora_free(t->key);
	}
	hora_free(t);
}
