/*
 * http_conn.c - the HTTP server's connections: accepting them, refusing
 * those over the limits, counting them per client address, and closing
 * those whose request head or body is too slow (DESIGN.md principle 8:
 * slow or many clients cannot starve the rest).
 *
 * Accepting.  MHD would accept from its listening socket only while it
 * is under its connection limit, leaving the rest in the kernel's
 * backlog, where clients hang until a slot frees (minutes, with idle
 * keep-alive connections).  So MHD gets no listening socket: a uv_poll_t
 * on ours accepts, at most ACCEPT_BATCH per loop turn so that a flood of
 * connections does not monopolise the loop (the poll is level-triggered:
 * the rest comes next turn).  A connection over max_connections or over
 * max_per_address gets a canned answer written without blocking (the
 * socket buffer of a new connection is empty) and is closed; the others
 * go to MHD_add_connection(), which over TLS also runs the handshake.
 * Out of descriptors (EMFILE), a spare descriptor is given up for one
 * accept so that the client is refused rather than left in the backlog
 * (the trick libuv and nginx use); failing that, accepting pauses for
 * ACCEPT_PAUSE_MS instead of spinning.
 *
 * Per-address counts.  An open-addressing table of (address, count),
 * one entry per address with open connections, so at most
 * max_connections entries; it grows at half full and shrinks at one
 * eighth.  Client addresses are chosen by clients, so the hash is keyed
 * (SipHash-1-3 with a random key): nobody can aim at one probe chain.
 *
 * Deadlines.  Four FIFO queues (enum dl_kind), one duration each, so each
 * is sorted by deadline; one uv_timer_t is armed at the earliest front
 * and, when it fires, first runs MHD (a head already in the socket is not
 * late) and then takes the expired entries off the fronts.  No scan: the
 * work is O(1) per connection per phase.  A connection past its deadline
 * is shut down (shutdown(SHUT_RDWR)) and MHD kicked: MHD reads EOF and
 * closes it the usual way, calling NOTIFY_CLOSED before close(2), where
 * the connection leaves every queue, so no fd is touched after MHD
 * closed it.  Parked connections are in no queue.
 *
 * The keep-alive head.  A head on a fresh connection must be complete
 * head_timeout_ms after the accept, whatever arrived or not.  After an
 * answer the connection may legitimately sit idle until idle_timeout_s,
 * so the deadline cannot simply cut it.  Neither MHD nor epoll tell us
 * when the first byte of the next head arrives, but the kernel does:
 * TCP_INFO's tcpi_last_data_recv is the age of the last data segment.
 * At each check (every head_timeout_ms from the answer), if data came
 * after the start of the window the head is under way and late: the
 * connection is cut, after a short grace (DL_GRACE) when the last bytes
 * are fresh, for a head that merely straddles the check.  If none came,
 * the connection is idle and a new window starts.
 */
#include "api/http_int.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "net/crypto.h"

#define ACCEPT_BATCH 32      /* accepts per loop turn */
#define ACCEPT_PAUSE_MS 100u /* after an accept error we cannot shed */
#define LINGER_MS 1000u      /* after a mid-body answer */
#define ADDR_MIN_CAP 64u
/* tcpi_last_data_recv counts jiffies (4 ms at HZ=250): bytes less than
 * this much newer than the window start count as older. */
#define TCPI_SLACK_MS 20u

/* --- canned answers ----------------------------------------------------- */

static void raw_build(raw_answer *a, unsigned status, const char *reason,
		      const char *code, const char *message, bool retry)
{
	char body[256];
	int n;

	n = snprintf(body, sizeof body,
		     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code,
		     message);
	HORA_ASSERT(n > 0 && (size_t)n < sizeof body);
	a->status = status;
	a->body_len = (size_t)n;
	n = snprintf(a->text, sizeof a->text,
		     "HTTP/1.1 %u %s\r\n"
		     "Content-Type: application/json\r\n"
		     "Content-Length: %zu\r\n"
		     "Connection: close\r\n"
		     "%s"
		     "\r\n%s",
		     status, reason, a->body_len,
		     retry ? "Retry-After: 1\r\n" : "", body);
	HORA_ASSERT(n > 0 && (size_t)n < sizeof a->text);
	a->len = (size_t)n;
}

/* A fatal TLS alert record (internal_error), the refusal for a TLS
 * client: it is read where the ServerHello would be. */
static const unsigned char tls_alert[] = {0x15, 0x03, 0x03, 0x00,
					  0x02, 0x02, 0x50};

/* --- per-address table -------------------------------------------------- */

static uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIPROUND(v0, v1, v2, v3)                                          \
	do {                                                              \
		v0 += v1;                                                 \
		v1 = rotl(v1, 13);                                        \
		v1 ^= v0;                                                 \
		v0 = rotl(v0, 32);                                        \
		v2 += v3;                                                 \
		v3 = rotl(v3, 16);                                        \
		v3 ^= v2;                                                 \
		v0 += v3;                                                 \
		v3 = rotl(v3, 21);                                        \
		v3 ^= v0;                                                 \
		v2 += v1;                                                 \
		v1 = rotl(v1, 17);                                        \
		v1 ^= v2;                                                 \
		v2 = rotl(v2, 32);                                        \
	} while (0)

/* SipHash-1-3 of the key's 16 bytes (two words) under `seed`. */
static uint32_t addr_hash(const uint64_t seed[2], const http_addr_key *k)
{
	uint64_t v0 = seed[0] ^ 0x736f6d6570736575ull;
	uint64_t v1 = seed[1] ^ 0x646f72616e646f6dull;
	uint64_t v2 = seed[0] ^ 0x6c7967656e657261ull;
	uint64_t v3 = seed[1] ^ 0x7465646279746573ull;
	uint64_t last = (uint64_t)16 << 56;
	int i;

	for (i = 0; i < 2; i++) {
		v3 ^= k->w[i];
		SIPROUND(v0, v1, v2, v3);
		v0 ^= k->w[i];
	}
	v3 ^= last;
	SIPROUND(v0, v1, v2, v3);
	v0 ^= last;
	v2 ^= 0xff;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	return (uint32_t)((v0 ^ v1 ^ v2 ^ v3) >> 32);
}

static void addr_key_of(const struct sockaddr_storage *ss, http_addr_key *k)
{
	unsigned char b[16];

	memset(b, 0, sizeof b);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		b[10] = b[11] = 0xff;
		memcpy(b + 12, &in->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
			(const struct sockaddr_in6 *)ss;
		/* An IPv4-mapped address is that IPv4 address; any other
		 * counts by its /64 (the low half stays zero). */
		memcpy(b, in6->sin6_addr.s6_addr,
		       IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) ? 16 : 8);
	}
	memcpy(k->w, b, sizeof b);
}

static bool addr_equal(const http_addr_key *a, const http_addr_key *b)
{
	return a->w[0] == b->w[0] && a->w[1] == b->w[1];
}

/* Slot holding `k`, or the empty slot where it would go. */
static size_t addr_slot(const http_server *s, const http_addr_key *k,
			uint32_t h)
{
	size_t mask = s->addr_cap - 1, i = h & mask;

	while (s->addr_tab[i].count != 0 &&
	       !(s->addr_tab[i].hash == h && addr_equal(&s->addr_tab[i].key, k)))
		i = (i + 1) & mask;
	return i;
}

static uint32_t addr_count(const http_server *s, const http_addr_key *k)
{
	return s->addr_tab[addr_slot(s, k, addr_hash(s->addr_seed, k))].count;
}

static int addr_rehash(http_server *s, size_t cap)
{
	http_addr_slot *old = s->addr_tab, *tab;
	size_t old_cap = s->addr_cap, i;

	tab = hora_calloc(cap, sizeof *tab);
	if (tab == NULL)
		return -HORA_ENOMEM;
	s->addr_tab = tab;
	s->addr_cap = cap;
	for (i = 0; i < old_cap; i++)
		if (old[i].count != 0)
			tab[addr_slot(s, &old[i].key, old[i].hash)] = old[i];
	hora_free(old);
	return 0;
}

/* Room for one more address (at most half full). */
static int addr_reserve(http_server *s)
{
	if ((s->addr_used + 1) * 2 <= s->addr_cap)
		return 0;
	return addr_rehash(s, s->addr_cap * 2);
}

static void addr_inc(http_server *s, const http_addr_key *k)
{
	uint32_t h = addr_hash(s->addr_seed, k);
	size_t i = addr_slot(s, k, h);

	if (s->addr_tab[i].count == 0) {
		HORA_ASSERT((s->addr_used + 1) * 2 <= s->addr_cap);
		s->addr_tab[i].key = *k;
		s->addr_tab[i].hash = h;
		s->addr_used++;
	}
	s->addr_tab[i].count++;
}

static void addr_dec(http_server *s, const http_addr_key *k)
{
	size_t mask = s->addr_cap - 1, i, j;
	uint32_t h = addr_hash(s->addr_seed, k);

	i = addr_slot(s, k, h);
	HORA_ASSERT(s->addr_tab[i].count > 0);
	if (--s->addr_tab[i].count > 0)
		return;
	/* Backward-shift deletion: pull later entries of the probe run
	 * into the hole when their home slot allows it. */
	for (j = i;;) {
		size_t home;
		j = (j + 1) & mask;
		if (s->addr_tab[j].count == 0)
			break;
		home = s->addr_tab[j].hash & mask;
		if (j > i ? (home <= i || home > j) : (home <= i && home > j)) {
			s->addr_tab[i] = s->addr_tab[j];
			s->addr_tab[j].count = 0;
			i = j;
		}
	}
	s->addr_used--;
	if (s->addr_cap > ADDR_MIN_CAP && s->addr_used * 8 < s->addr_cap)
		(void)addr_rehash(s, s->addr_cap / 2); /* keep it if no memory */
}

/* --- setup -------------------------------------------------------------- */

int http__conn_setup(http_server *s, const http_server_config *cfg)
{
	unsigned head;
	char msg[128];

	s->max_conn = cfg->max_connections ? cfg->max_connections
					   : HTTP_DEFAULT_MAX_CONNECTIONS;
	s->max_per_addr = cfg->max_per_address == 0
				  ? HTTP_DEFAULT_MAX_PER_ADDRESS
			  : cfg->max_per_address == HTTP_NO_LIMIT
				  ? 0
				  : cfg->max_per_address;
	head = cfg->head_timeout_ms ? cfg->head_timeout_ms
				    : HTTP_DEFAULT_HEAD_TIMEOUT_MS;
	s->dl_ms[DL_HEAD] = head;
	s->dl_ms[DL_GRACE] = head / 8 > 0 ? head / 8 : 1;
	s->dl_ms[DL_BODY] = cfg->body_timeout_ms
				    ? cfg->body_timeout_ms
				    : HTTP_DEFAULT_BODY_TIMEOUT_MS;
	s->dl_ms[DL_LINGER] = LINGER_MS;

	raw_build(&s->raw[RAW_503], 503, "Service Unavailable", "unavailable",
		  "the server has too many open connections; try again "
		  "later",
		  true);
	raw_build(&s->raw[RAW_429], 429, "Too Many Requests", "overloaded",
		  "too many open connections from your address; close some "
		  "or try again later",
		  true);
	snprintf(msg, sizeof msg, "request body exceeds %zu bytes",
		 s->max_body);
	raw_build(&s->raw[RAW_413], 413, "Content Too Large",
		  "payload_too_large", msg, false);
	raw_build(&s->raw[RAW_500], 500, "Internal Server Error", "internal",
		  "out of memory", false);
	snprintf(msg, sizeof msg,
		 "the request body did not arrive within %llu ms",
		 (unsigned long long)s->dl_ms[DL_BODY]);
	raw_build(&s->raw[RAW_408], 408, "Request Timeout", "request_timeout",
		  msg, false);

	if (s->max_per_addr != 0) {
		if (crypto_random(s->addr_seed, sizeof s->addr_seed) != 0) {
			/* Weaker, but still unknown to clients. */
			s->addr_seed[0] = uv_hrtime() ^ (uintptr_t)s;
			s->addr_seed[1] = (uint64_t)getpid() << 32 ^
					  (uintptr_t)&s->addr_seed;
		}
		s->addr_tab = hora_calloc(ADDR_MIN_CAP, sizeof *s->addr_tab);
		if (s->addr_tab == NULL)
			return -HORA_ENOMEM;
		s->addr_cap = ADDR_MIN_CAP;
	}
	return 0;
}

void http__conn_free(http_server *s)
{
	hora_free(s->addr_tab);
	s->addr_tab = NULL;
	s->addr_cap = s->addr_used = 0;
}

/* --- refusing and accepting -------------------------------------------- */

/*
 * Answer a connection we will not serve and close it, without blocking:
 * the answer fits in the empty socket buffer.  What the client already
 * sent is read first, as far as it is there, because close(2) with
 * unread data sends a RST, and a RST reaching the client before it read
 * the answer can destroy it.
 */
static void refuse(http_server *s, int fd, enum raw_kind k)
{
	char sink[512];
	int i;

	if (s->tls)
		(void)send(fd, tls_alert, sizeof tls_alert,
			   MSG_DONTWAIT | MSG_NOSIGNAL);
	else
		(void)send(fd, s->raw[k].text, s->raw[k].len,
			   MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)shutdown(fd, SHUT_WR);
	for (i = 0; i < 8 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0;
	     i++)
		;
	close(fd);
}

static void admit(http_server *s, int fd, const struct sockaddr_storage *ss,
		  socklen_t len)
{
	http_addr_key key;

	if (s->st.open_connections >= s->max_conn) {
		s->st.refused_full++;
		refuse(s, fd, RAW_503);
		return;
	}
	if (s->max_per_addr != 0) {
		addr_key_of(ss, &key);
		if (addr_count(s, &key) >= s->max_per_addr) {
			s->st.refused_per_address++;
			refuse(s, fd, RAW_429);
			return;
		}
		if (addr_reserve(s) != 0) {
			s->st.refused_full++;
			refuse(s, fd, RAW_503);
			return;
		}
		s->adding = &key; /* for http__conn_opened(), called inside */
	}
	/* MHD owns the socket from here, closing it itself on failure. */
	if (MHD_add_connection(s->mhd, fd, (const struct sockaddr *)ss, len) !=
	    MHD_YES)
		http__logf(s, "cannot serve a new connection: %s",
			   strerror(errno));
	s->adding = NULL;
}

static void on_accept(uv_poll_t *p, int status, int events);

static void on_accept_timer(uv_timer_t *t)
{
	http_server *s = t->data;

	if (s->listen_fd >= 0)
		uv_poll_start(&s->accept_poll, UV_READABLE, on_accept);
}

static void accept_pause(http_server *s, int e)
{
	http__logf(s, "cannot accept connections: %s; pausing %u ms",
		   strerror(e), ACCEPT_PAUSE_MS);
	uv_poll_stop(&s->accept_poll);
	uv_timer_start(&s->accept_timer, on_accept_timer, ACCEPT_PAUSE_MS, 0);
}

/* Out of descriptors: give the spare one up to accept and refuse one
 * connection.  0 done, 1 backlog empty, -1 not possible (errno set). */
static int shed_one(http_server *s)
{
	int fd, e;

	if (s->reserve_fd < 0)
		return -1;
	close(s->reserve_fd);
	fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	e = errno;
	if (fd >= 0) {
		s->st.refused_full++;
		refuse(s, fd, RAW_503);
	}
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		return 0;
	errno = e;
	return e == EAGAIN ? 1 : -1;
}

static void on_accept(uv_poll_t *p, int status, int events)
{
	http_server *s = p->data;
	int i, e, rv;

	(void)status;
	(void)events;
	/* Lost to another thread after a shed: take it back if we can. */
	if (s->reserve_fd < 0)
		s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (i = 0; i < ACCEPT_BATCH && s->listen_fd >= 0; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			admit(s, fd, &ss, len);
			continue;
		}
		e = errno;
		switch (e) {
		case EAGAIN:
			return;
		case EMFILE:
		case ENFILE:
			rv = shed_one(s);
			if (rv == 0)
				continue;
			if (rv == 1)
				return;
			accept_pause(s, e);
			return;
		case ENOBUFS:
		case ENOMEM:
			accept_pause(s, e);
			return;
		default:
			/* EINTR, ECONNABORTED, and the new socket's own
			 * network errors that accept(2) says to treat like
			 * EAGAIN: try the next one. */
			continue;
		}
	}
}

int http__conn_start(http_server *s)
{
	int rv;

	rv = uv_poll_init(s->loop, &s->accept_poll, s->listen_fd);
	if (rv != 0)
		return rv;
	s->accept_poll.data = s;
	uv_timer_init(s->loop, &s->accept_timer);
	uv_timer_init(s->loop, &s->dl_timer);
	s->accept_timer.data = s;
	s->dl_timer.data = s;
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	uv_poll_start(&s->accept_poll, UV_READABLE, on_accept);
	return 0;
}

void http__accept_stop(http_server *s)
{
	if (s->listen_fd < 0)
		return;
	/* uv_close() takes the fd out of libuv's epoll at once, so it can
	 * be closed now. */
	s->handles++;
	uv_close((uv_handle_t *)&s->accept_poll, http__handle_closed);
	uv_timer_stop(&s->accept_timer);
	close(s->listen_fd);
	s->listen_fd = -1;
	if (s->reserve_fd >= 0)
		close(s->reserve_fd);
	s->reserve_fd = -1;
}

/* --- deadlines ---------------------------------------------------------- */

static uint64_t hr_ms(void)
{
	return uv_hrtime() / 1000000u;
}

static void on_dl_timer(uv_timer_t *t);

static void dl_arm(http_server *s, uint64_t due)
{
	uint64_t now = uv_now(s->loop);

	if (s->stopped || (s->dl_armed && s->dl_due <= due))
		return;
	s->dl_armed = true;
	s->dl_due = due;
	uv_timer_start(&s->dl_timer, on_dl_timer, due > now ? due - now : 0,
		       0);
}

void http__dl_clear(http_server *s, http_request *r)
{
	enum dl_kind k = (enum dl_kind)r->dl;

	if (k == DL_NONE)
		return;
	if (r->dl_prev != NULL)
		r->dl_prev->dl_next = r->dl_next;
	else
		s->dlq_head[k] = r->dl_next;
	if (r->dl_next != NULL)
		r->dl_next->dl_prev = r->dl_prev;
	else
		s->dlq_tail[k] = r->dl_prev;
	r->dl_prev = r->dl_next = NULL;
	r->dl = DL_NONE;
}

void http__dl_set(http_server *s, http_request *r, enum dl_kind k)
{
	http__dl_clear(s, r);
	if (r->cut || s->stopped)
		return;
	r->dl = (uint8_t)k;
	r->deadline = uv_now(s->loop) + s->dl_ms[k];
	r->dl_next = NULL;
	r->dl_prev = s->dlq_tail[k];
	if (s->dlq_tail[k] != NULL)
		s->dlq_tail[k]->dl_next = r;
	else
		s->dlq_head[k] = r;
	s->dlq_tail[k] = r;
	dl_arm(s, r->deadline);
}

void http__idle_start(http_server *s, http_request *r)
{
	r->window = hr_ms();
	http__dl_set(s, r, DL_HEAD);
}

/* Close `r` from outside MHD: MHD sees EOF on its next run. */
static void cut(http_server *s, http_request *r)
{
	http__dl_clear(s, r);
	if (r->cut)
		return;
	r->cut = true;
	(void)shutdown(r->fd, SHUT_RDWR);
	http__kick(s);
}

/*
 * Keep-alive connection at a check: has part of a new head arrived since
 * r->window?  0 no (or cannot tell: then the idle timeout is what
 * applies), 1 yes and the latest bytes are fresh (within DL_GRACE),
 * 2 yes.
 */
static int head_under_way(http_server *s, http_request *r)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	uint64_t now = hr_ms(), last;

	memset(&ti, 0, sizeof ti);
	if (getsockopt(r->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
	    len < offsetof(struct tcp_info, tcpi_last_data_recv) +
			  sizeof ti.tcpi_last_data_recv)
		return 0;
	if (ti.tcpi_last_data_recv > now)
		return 0;
	last = now - ti.tcpi_last_data_recv;
	if (last <= r->window + TCPI_SLACK_MS)
		return 0;
	return now - last < s->dl_ms[DL_GRACE] ? 1 : 2;
}

static void dl_expired(http_server *s, http_request *r, enum dl_kind k)
{
	int got;

	switch (k) {
	case DL_HEAD:
		if (!r->fresh) {
			got = head_under_way(s, r);
			if (got == 0) {
				http__idle_start(s, r);
				return;
			}
			if (got == 1) {
				http__dl_set(s, r, DL_GRACE);
				return;
			}
		}
		/* fall through */
	case DL_GRACE:
		s->st.head_timeouts++;
		http__logf(s,
			   "closing connection from %s: no complete request "
			   "head within %llu ms",
			   r->peer, (unsigned long long)s->dl_ms[DL_HEAD]);
		cut(s, r);
		return;
	case DL_BODY:
		s->st.body_timeouts++;
		http__logf(s,
			   "closing connection from %s: request body not "
			   "complete within %llu ms",
			   r->peer, (unsigned long long)s->dl_ms[DL_BODY]);
		(void)http__write_raw(r, RAW_408);
		cut(s, r);
		return;
	case DL_LINGER:
		cut(s, r);
		return;
	case DL_NONE:
	case DL_KINDS:
		break;
	}
	HORA_UNREACHABLE();
}

static void on_dl_timer(uv_timer_t *t)
{
	http_server *s = t->data;
	uint64_t now, due = UINT64_MAX;
	http_request *r;
	int k;

	s->dl_armed = false;
	/* What is in the sockets already is not late: let MHD parse it. */
	http__run(s);
	if (s->stopped)
		return;
	now = uv_now(s->loop);
	for (k = DL_NONE + 1; k < DL_KINDS; k++) {
		/* Re-queued entries go to a tail with a later deadline, so
		 * this ends. */
		while ((r = s->dlq_head[k]) != NULL && r->deadline <= now) {
			http__dl_clear(s, r);
			dl_expired(s, r, (enum dl_kind)k);
		}
	}
	for (k = DL_NONE + 1; k < DL_KINDS; k++)
		if (s->dlq_head[k] != NULL && s->dlq_head[k]->deadline < due)
			due = s->dlq_head[k]->deadline;
	if (due != UINT64_MAX)
		dl_arm(s, due);
}

void http__conn_close_handles(http_server *s)
{
	HORA_ASSERT(s->listen_fd < 0); /* the accept poll is closed */
	s->handles += 2;
	uv_close((uv_handle_t *)&s->accept_timer, http__handle_closed);
	uv_close((uv_handle_t *)&s->dl_timer, http__handle_closed);
}

/* --- connections -------------------------------------------------------- */

void http__conn_opened(http_server *s, http_request *r)
{
	r->fresh = true;
	if (s->adding != NULL) {
		r->addr = *s->adding;
		addr_inc(s, &r->addr);
		r->counted = true;
	}
	http__dl_set(s, r, DL_HEAD);
}

void http__conn_closed(http_server *s, http_request *r)
{
	http__dl_clear(s, r);
	if (r->counted)
		addr_dec(s, &r->addr);
	r->counted = false;
}

bool http__write_raw(http_request *r, enum raw_kind k)
{
	http_server *s = r->s;
	const raw_answer *a = &s->raw[k];
	ssize_t n = -1;
	int off = 0;

	if (r->fd < 0)
		return false;
	if (s->tls) {
		/* MHD's session, used by MHD only to read at this point
		 * (it writes nothing while a request body comes in). */
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
			r->mc, MHD_CONNECTION_INFO_GNUTLS_SESSION);
		if (ci != NULL && ci->tls_session != NULL)
			n = gnutls_record_send(
				(gnutls_session_t)ci->tls_session, a->text,
				a->len);
	} else {
		n = send(r->fd, a->text, a->len, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	/* MHD may have left TCP_CORK set after its last write; clearing
	 * it sends what is queued now rather than up to 200 ms later. */
	(void)setsockopt(r->fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
	if (n != (ssize_t)a->len)
		return false;
	http__count_answer(s, a->status, a->body_len);
	return true;
}
