/*
 * C-Raft 0.22.1 on the wire: whoever can reach a node's Raft port must not
 * be able to crash it, make it allocate what it claims, or change its term
 * with malformed bytes (scripts/raft-patches/0004 and 0005, docs/raft.md).
 *
 * Each test starts a real single-node C-Raft (raft_uv_init and
 * raft_uv_tcp_init on 127.0.0.1, a temporary data dir, bootstrap, start),
 * waits until it leads, then opens raw TCP connections to its Raft port,
 * sends C-Raft's handshake (protocol 1, id, address) and crafted messages,
 * and runs the loop until the node closes the connection (bounded time).
 * It checks that the process survives, that the connection was closed,
 * and that the node's term, in memory and in its metadata files, did not
 * change.  Unpatched, the first messages below crash the node (SIGSEGV in
 * uvDecodeMessage, a double free in configurationDecode, reads past the
 * header) and the 8 GiB header prefix is accepted and waited for.
 *
 * Legal traffic still works: RequestVotes (v1 and v2) and AppendEntries
 * with a lower term, an InstallSnapshot with its data, a RequestVote that
 * makes the node step down; the node's replies are read on a listener of
 * ours.  (Unpatched, the AppendEntries whose entries are all empty crashed
 * the node too: the core freed an uninitialized batch pointer.)
 *
 * Well-formed messages that no correct peer sends (patch 0005): an
 * AppendEntries or InstallSnapshot for the term the node leads, which
 * unpatched corrupted its leader state, and a message from its own ID;
 * afterwards the node must still commit.
 *
 * The node's payload caps are lowered to 1 MiB with
 * raft_uv_set_max_message_size() (added by patch 0004) except in the test
 * of the defaults.  Set HORA_SIM_TRACE to see the Raft core's trace and
 * LIBRAFT_TRACE the uv backend's, on stderr.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#define NODE_ID 1
#define PEER_ID 2
#define CAP ((size_t)1 << 20) /* payload caps of the node, but in one test */
#define WAIT_MS 3000          /* longest wait for anything */

/* C-Raft's message types and entry types on the wire (raft.h). */
enum { T_AE = 1, T_AER, T_RV, T_RVR, T_IS, T_TN };

/* ------------------------------------------------------------------ */
/* A byte buffer for crafting messages, little endian like C-Raft. */

struct bytes {
	uint8_t *p;
	size_t n, cap;
};

static void b_need(struct bytes *b, size_t more)
{
	if (b->n + more <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->n + more)
		cap *= 2;
	b->p = realloc(b->p, cap);
	assert_non_null(b->p);
	b->cap = cap;
}

static void b_put(struct bytes *b, const void *p, size_t n)
{
	b_need(b, n);
	if (n > 0)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void b_u8(struct bytes *b, uint8_t v)
{
	b_put(b, &v, 1);
}

static void b_u32(struct bytes *b, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		b_u8(b, (uint8_t)(v >> (8 * i)));
}

static void b_u64(struct bytes *b, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		b_u8(b, (uint8_t)(v >> (8 * i)));
}

static void b_zero(struct bytes *b, size_t n)
{
	b_need(b, n);
	memset(b->p + b->n, 0, n);
	b->n += n;
}

static void b_free(struct bytes *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Message preamble: type in byte 0, version in byte 2, header length. */
static void b_preamble(struct bytes *b, uint8_t type, uint8_t version,
		       uint64_t header_len)
{
	b_u8(b, type);
	b_u8(b, 0);
	b_u8(b, version);
	b_u8(b, 0);
	b_u32(b, 0);
	b_u64(b, header_len);
}

/* C-Raft's TCP handshake: protocol, id, address padded with NULs. */
static void b_handshake(struct bytes *b, uint64_t id, const char *address)
{
	size_t len = strlen(address) + 1;
	size_t padded = (len + 7) / 8 * 8;
	b_u64(b, 1);
	b_u64(b, id);
	b_u64(b, padded);
	b_put(b, address, len - 1);
	b_zero(b, padded - len + 1);
}

/* A RequestVote v2 (40 bytes) as C-Raft encodes it. */
static void b_request_vote(struct bytes *b, uint64_t term, uint64_t candidate,
			   uint64_t last_index, uint64_t last_term,
			   uint64_t flags)
{
	b_preamble(b, T_RV, 2, 40);
	b_u64(b, term);
	b_u64(b, candidate);
	b_u64(b, last_index);
	b_u64(b, last_term);
	b_u64(b, flags);
}

struct entry {
	uint64_t term;
	uint8_t type; /* RAFT_COMMAND, RAFT_BARRIER, RAFT_CHANGE */
	uint32_t len; /* as claimed in the header */
};

/* An AppendEntries header with entry headers (no payload). */
static void b_append_entries(struct bytes *b, uint64_t term,
			     uint64_t prev_index, uint64_t prev_term,
			     const struct entry *e, unsigned n)
{
	b_preamble(b, T_AE, 0, 48 + 16 * (uint64_t)n);
	b_u64(b, term);
	b_u64(b, prev_index);
	b_u64(b, prev_term);
	b_u64(b, 0); /* commit index */
	b_u64(b, n);
	for (unsigned i = 0; i < n; i++) {
		b_u64(b, e[i].term);
		b_u8(b, e[i].type);
		b_zero(b, 3);
		b_u32(b, e[i].len);
	}
	b_u64(b, 0); /* unused */
}

/* An encoded configuration of n servers (ids 1..n, addresses "s<id>"),
 * padded to 8 bytes like configurationEncode(). */
static void b_configuration(struct bytes *b, unsigned n)
{
	size_t start = b->n;
	b_u8(b, 1); /* format */
	b_u64(b, n);
	for (unsigned i = 1; i <= n; i++) {
		char addr[16];
		snprintf(addr, sizeof addr, "s%u", i);
		b_u64(b, i);
		b_put(b, addr, strlen(addr) + 1);
		b_u8(b, RAFT_VOTER);
	}
	while ((b->n - start) % 8 != 0)
		b_u8(b, 0);
}

/* An InstallSnapshot header whose configuration bytes are @conf. */
static void b_install_snapshot(struct bytes *b, uint64_t term,
			       uint64_t last_index, uint64_t last_term,
			       const struct bytes *conf, uint64_t data_len)
{
	b_preamble(b, T_IS, 0, 56 + (uint64_t)conf->n);
	b_u64(b, term);
	b_u64(b, last_index);
	b_u64(b, last_term);
	b_u64(b, 1); /* configuration index */
	b_u64(b, conf->n);
	b_put(b, conf->p, conf->n);
	b_u64(b, data_len);
	b_u64(b, 0); /* unused */
}

/* ------------------------------------------------------------------ */
/* The node. */

struct node {
	uv_loop_t loop;
	struct raft_uv_transport transport;
	struct raft_io io;
	struct raft_fsm fsm;
	struct raft raft;
	char dir[64];
	char address[32];
	bool closed;
	unsigned n_applied;
	raft_term term; /* after the first election */
};

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
		     void **result)
{
	struct node *n = fsm->data;
	(void)buf;
	n->n_applied++;
	*result = NULL;
	return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
			unsigned *n_bufs)
{
	(void)fsm;
	(void)bufs;
	(void)n_bufs;
	return RAFT_NOTFOUND; /* never reached: threshold not met */
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	(void)fsm;
	raft_free(buf->base);
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run the node's loop for about 1 ms. */
static void pump(struct node *n)
{
	uv_run(&n->loop, UV_RUN_NOWAIT);
	poll(NULL, 0, 1);
	uv_run(&n->loop, UV_RUN_NOWAIT);
}

static unsigned free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* The term in the node's metadata files (the newer of the two). */
static uint64_t persisted_term(const struct node *n)
{
	uint64_t best_version = 0, term = 0;
	for (unsigned i = 1; i <= 2; i++) {
		char path[96];
		uint8_t buf[32];
		snprintf(path, sizeof path, "%s/metadata%u", n->dir, i);
		FILE *f = fopen(path, "rb");
		if (f == NULL)
			continue;
		size_t got = fread(buf, 1, sizeof buf, f);
		fclose(f);
		if (got != sizeof buf || get64(buf) != 1)
			continue;
		if (get64(buf + 8) > best_version) {
			best_version = get64(buf + 8);
			term = get64(buf + 16);
		}
	}
	assert_true(best_version > 0);
	return term;
}

static void wait_leader(struct node *n)
{
	uint64_t end = now_ms() + WAIT_MS;
	while (raft_state(&n->raft) != RAFT_LEADER && now_ms() < end)
		pump(n);
	assert_int_equal(raft_state(&n->raft), RAFT_LEADER);
}

static void node_start(struct node *n, bool caps)
{
	struct raft_configuration conf;

	memset(n, 0, sizeof *n);
	n->raft.data = n;
	snprintf(n->dir, sizeof n->dir, "/tmp/hora-raft-wire-XXXXXX");
	assert_non_null(mkdtemp(n->dir));
	snprintf(n->address, sizeof n->address, "127.0.0.1:%u", free_port());

	assert_int_equal(uv_loop_init(&n->loop), 0);
	n->transport.version = 1;
	n->transport.data = NULL;
	assert_int_equal(raft_uv_tcp_init(&n->transport, &n->loop), 0);
	assert_int_equal(raft_uv_init(&n->io, &n->loop, n->dir, &n->transport),
			 0);
	if (caps)
		raft_uv_set_max_message_size(&n->io, CAP, CAP);

	n->fsm.version = 1;
	n->fsm.data = n;
	n->fsm.apply = fsm_apply;
	n->fsm.snapshot = fsm_snapshot;
	n->fsm.restore = fsm_restore;
	assert_int_equal(raft_init(&n->raft, &n->io, &n->fsm, NODE_ID,
				   n->address),
			 0);
	if (getenv("HORA_SIM_TRACE") == NULL)
		n->raft.tracer = NULL;
	raft_set_heartbeat_timeout(&n->raft, 20);
	raft_set_election_timeout(&n->raft, 100);

	raft_configuration_init(&conf);
	assert_int_equal(raft_configuration_add(&conf, NODE_ID, n->address,
						RAFT_VOTER),
			 0);
	assert_int_equal(raft_bootstrap(&n->raft, &conf), 0);
	raft_configuration_close(&conf);

	uv_update_time(&n->loop);
	assert_int_equal(raft_start(&n->raft), 0);
	wait_leader(n);
	n->term = raft_current_term(&n->raft);
	assert_true(n->term >= 1);
	assert_int_equal(persisted_term(n), n->term);
}

static void close_cb(struct raft *r)
{
	struct node *n = r->data;
	raft_uv_close(&n->io);
	raft_uv_tcp_close(&n->transport);
	n->closed = true;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void node_stop(struct node *n)
{
	raft_close(&n->raft, close_cb);
	uint64_t end = now_ms() + WAIT_MS;
	while (!n->closed && now_ms() < end)
		pump(n);
	assert_true(n->closed);
	uv_run(&n->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&n->loop), 0);
	nftw(n->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The node still leads in the same term, in memory and on disk. */
static void assert_term_unchanged(struct node *n)
{
	assert_int_equal(raft_state(&n->raft), RAFT_LEADER);
	assert_int_equal(raft_current_term(&n->raft), n->term);
	assert_int_equal(persisted_term(n), n->term);
}

/* ------------------------------------------------------------------ */
/* Peer connections: raw non-blocking sockets, the node's loop pumped
 * while waiting. */

static int peer_connect(struct node *n)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	const char *colon = strrchr(n->address, ':');
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	/* The listen backlog accepts without the loop running. */
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK),
			 0);
	return fd;
}

/* Send all of @b; false if the node closed the connection first. */
static bool peer_send(struct node *n, int fd, const struct bytes *b)
{
	size_t off = 0;
	uint64_t end = now_ms() + WAIT_MS;
	while (off < b->n && now_ms() < end) {
		ssize_t w = send(fd, b->p + off, b->n - off, MSG_NOSIGNAL);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
			return false;
		assert_true(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
		pump(n);
	}
	assert_int_equal(off, b->n);
	return true;
}

/* Run the loop until the node closes the connection (C-Raft's inbound
 * connections are one-way: the node never writes on them, so any read
 * result but EAGAIN means it closed). */
static bool peer_wait_closed(struct node *n, int fd, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	do {
		uint8_t c;
		ssize_t r;
		pump(n);
		r = recv(fd, &c, 1, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			return true;
		assert_true(r < 0);
	} while (now_ms() < end);
	return false;
}

/* Connect with a valid handshake, send @msg, expect the node to close the
 * connection and keep its term. */
static void expect_closed(struct node *n, const char *what,
			  const struct bytes *msg)
{
	struct bytes b = {0};
	int fd = peer_connect(n);
	b_handshake(&b, PEER_ID, "127.0.0.1:9");
	b_put(&b, msg->p, msg->n);
	/* A reset before all was sent is fine: the node refused early. */
	(void)peer_send(n, fd, &b);
	if (!peer_wait_closed(n, fd, WAIT_MS))
		fail_msg("%s: the node did not close the connection", what);
	close(fd);
	b_free(&b);
	assert_term_unchanged(n);
}

/* ------------------------------------------------------------------ */
/* A listener of ours that receives the node's replies. */

struct replies {
	int lfd, fd;
	unsigned port;
	char address[32];
	struct bytes in;
	size_t off; /* parsed so far */
	bool handshake_seen;
};

static void replies_open(struct replies *r)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof sa;
	memset(r, 0, sizeof *r);
	r->fd = -1;
	r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(r->lfd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(r->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(r->lfd, 4), 0);
	assert_int_equal(getsockname(r->lfd, (struct sockaddr *)&sa, &len), 0);
	r->port = ntohs(sa.sin_port);
	snprintf(r->address, sizeof r->address, "127.0.0.1:%u", r->port);
}

static void replies_close(struct replies *r)
{
	if (r->fd >= 0)
		close(r->fd);
	close(r->lfd);
	b_free(&r->in);
}

/* Wait for the node's next message on its connection to us; return its
 * type, header in *header (pointing into r->in). */
static uint8_t replies_next(struct node *n, struct replies *r,
			    const uint8_t **header, uint64_t *header_len)
{
	uint64_t end = now_ms() + WAIT_MS;
	while (now_ms() < end) {
		pump(n);
		if (r->fd < 0) {
			r->fd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK);
			if (r->fd < 0)
				continue;
		}
		uint8_t buf[4096];
		ssize_t got = recv(r->fd, buf, sizeof buf, 0);
		if (got > 0)
			b_put(&r->in, buf, (size_t)got);
		if (!r->handshake_seen) {
			if (r->in.n - r->off < 24)
				continue;
			const uint8_t *h = r->in.p + r->off;
			uint64_t alen = get64(h + 16);
			assert_int_equal(get64(h), 1);
			assert_int_equal(get64(h + 8), NODE_ID);
			assert_true(alen <= 256);
			if (r->in.n - r->off < 24 + alen)
				continue;
			r->off += 24 + (size_t)alen;
			r->handshake_seen = true;
		}
		if (r->in.n - r->off < 16)
			continue;
		const uint8_t *p = r->in.p + r->off;
		uint64_t hlen = get64(p + 8);
		assert_true(hlen <= 4096);
		if (r->in.n - r->off < 16 + hlen)
			continue;
		*header = p + 16;
		*header_len = hlen;
		r->off += 16 + (size_t)hlen;
		return p[0];
	}
	fail_msg("no reply from the node");
	return 0;
}

/* ------------------------------------------------------------------ */

static int setup_caps(void **state)
{
	static struct node n;
	node_start(&n, true);
	*state = &n;
	return 0;
}

static int setup_defaults(void **state)
{
	static struct node n;
	node_start(&n, false);
	*state = &n;
	return 0;
}

static int teardown(void **state)
{
	node_stop(*state);
	return 0;
}

/* The reported crashes and their relatives: each closes the connection. */
static void test_malformed_messages(void **state)
{
	struct node *n = *state;
	uint64_t t = n->term;
	struct bytes m = {0}, conf = {0};

	/* One 32-byte packet: an AppendEntries whose header is 16 bytes
	 * (SIGSEGV in uvDecodeMessage unpatched). */
	b_preamble(&m, T_AE, 0, 16);
	b_zero(&m, 16);
	memset(m.p + 16, 0xff, 16);
	expect_closed(n, "16-byte AppendEntries header", &m);
	m.n = 0;

	/* Truncated AppendEntries: 5 entries announced, header for none. */
	b_preamble(&m, T_AE, 0, 48);
	b_u64(&m, t);
	b_zero(&m, 24);
	b_u64(&m, 5);
	b_u64(&m, 0);
	expect_closed(n, "truncated AppendEntries", &m);
	m.n = 0;

	/* A huge entry count in a header with room for one. */
	b_preamble(&m, T_AE, 0, 64);
	b_u64(&m, t);
	b_zero(&m, 24);
	b_u64(&m, (uint64_t)1 << 40);
	b_zero(&m, 24);
	expect_closed(n, "entry count 2^40", &m);
	m.n = 0;

	/* A header length that is not 48 + 16n. */
	b_preamble(&m, T_AE, 0, 50);
	b_zero(&m, 50);
	expect_closed(n, "AppendEntries header of 50 bytes", &m);
	m.n = 0;

	/* InstallSnapshot whose configuration length is 2^40. */
	b_configuration(&conf, 1);
	b_preamble(&m, T_IS, 0, 56 + (uint64_t)conf.n);
	b_u64(&m, t + 1);
	b_u64(&m, 10);
	b_u64(&m, t + 1);
	b_u64(&m, 1);
	b_u64(&m, (uint64_t)1 << 40);
	b_put(&m, conf.p, conf.n);
	b_u64(&m, 8);
	b_u64(&m, 0);
	expect_closed(n, "configuration length 2^40", &m);
	m.n = 0;

	/* A RequestVote with a 1-byte header and a huge term: unpatched, the
	 * node read past the byte and persisted a garbage term. */
	b_preamble(&m, T_RV, 2, 1);
	b_u8(&m, 0xff);
	expect_closed(n, "1-byte RequestVote", &m);
	m.n = 0;

	/* A RequestVote v2 (flags expected) with only the 32 bytes of v1. */
	b_preamble(&m, T_RV, 2, 32);
	b_u64(&m, t + 1000);
	b_u64(&m, PEER_ID);
	b_u64(&m, 1000);
	b_u64(&m, 1000);
	expect_closed(n, "RequestVote v2 of 32 bytes", &m);
	m.n = 0;

	/* A term the node could not increment: unpatched, it took it and
	 * its next election wrapped the term to 0. */
	b_request_vote(&m, UINT64_MAX, PEER_ID, 1000, 1000, 1);
	expect_closed(n, "RequestVote for term 2^64-1", &m);
	m.n = 0;
	b_append_entries(&m, (uint64_t)1 << 63, 0, 0, NULL, 0);
	expect_closed(n, "heartbeat for term 2^63", &m);
	m.n = 0;

	/* Header lengths 0 and between the versions' sizes. */
	b_preamble(&m, T_RV, 0, 0);
	expect_closed(n, "zero header length", &m);
	m.n = 0;
	b_preamble(&m, T_AER, 2, 26);
	b_zero(&m, 26);
	expect_closed(n, "AppendEntriesResult of 26 bytes", &m);
	m.n = 0;
	b_preamble(&m, T_RVR, 2, 16);
	b_zero(&m, 16);
	expect_closed(n, "RequestVoteResult v2 of 16 bytes", &m);
	m.n = 0;
	b_preamble(&m, T_TN, 0, 16);
	b_zero(&m, 16);
	expect_closed(n, "TimeoutNow of 16 bytes", &m);
	m.n = 0;

	/* Unknown message type. */
	b_preamble(&m, 7, 0, 8);
	b_zero(&m, 8);
	expect_closed(n, "message type 7", &m);
	m.n = 0;

	/* Entry headers that no leader sends. */
	struct entry bad_type = {t, 9, 8};
	b_append_entries(&m, t + 1, 0, 0, &bad_type, 1);
	expect_closed(n, "entry type 9", &m);
	m.n = 0;
	struct entry unaligned = {t, RAFT_COMMAND, 12};
	b_append_entries(&m, t + 1, 0, 0, &unaligned, 1);
	b_zero(&m, 16);
	expect_closed(n, "entry of 12 bytes", &m);
	m.n = 0;
	struct entry zero_term = {0, RAFT_COMMAND, 8};
	b_append_entries(&m, t + 1, 0, 0, &zero_term, 1);
	b_zero(&m, 8);
	expect_closed(n, "entry of term 0", &m);
	m.n = 0;
	struct entry future_term = {t + 5, RAFT_COMMAND, 8};
	b_append_entries(&m, t + 1, 0, 0, &future_term, 1);
	b_zero(&m, 8);
	expect_closed(n, "entry term above the message's", &m);
	m.n = 0;
	struct entry decreasing[2] = {{t, RAFT_COMMAND, 8},
				      {t - 1 > 0 ? t - 1 : 0, RAFT_COMMAND, 8}};
	b_append_entries(&m, t + 1, 0, 0, decreasing, 2);
	b_zero(&m, 16);
	expect_closed(n, "decreasing entry terms", &m);
	m.n = 0;

	/* A configuration change entry holding garbage: the core would fail
	 * halfway through appending it. */
	struct entry change = {t + 1, RAFT_CHANGE, 16};
	b_append_entries(&m, t + 1, 1, 1, &change, 1);
	b_u8(&m, 1);
	b_u64(&m, 1000); /* 1000 servers in 7 bytes */
	b_zero(&m, 7);
	expect_closed(n, "RAFT_CHANGE entry with a garbage configuration", &m);
	m.n = 0;

	/* InstallSnapshot configurations: duplicate IDs (a double free in
	 * configurationDecode's error path unpatched), a bad role, zero
	 * servers, server ID 0, more servers than bytes. */
	struct {
		const char *what;
		unsigned patch_at; /* byte of the configuration to change */
		uint8_t value;
	} confs[] = {
		{"duplicate server IDs", 9 + 8 + 3 + 1, 1}, /* id 2 -> 1 */
		{"role 7", 9 + 8 + 3, 7},
		{"zero servers", 1, 0},
		{"server ID 0", 9, 0},
		{"200 servers in 40 bytes", 1, 200},
	};
	for (unsigned i = 0; i < sizeof confs / sizeof confs[0]; i++) {
		conf.n = 0;
		b_configuration(&conf, 2);
		conf.p[confs[i].patch_at] = confs[i].value;
		b_install_snapshot(&m, t + 1, 10, t + 1, &conf, 8);
		b_zero(&m, 8);
		expect_closed(n, confs[i].what, &m);
		m.n = 0;
	}

	/* An address that runs to the end of the configuration. */
	conf.n = 0;
	b_u8(&conf, 1);
	b_u64(&conf, 1);
	b_u64(&conf, 1);
	b_put(&conf, "1234567", 7);
	b_install_snapshot(&m, t + 1, 10, t + 1, &conf, 8);
	b_zero(&m, 8);
	expect_closed(n, "address without NUL", &m);
	m.n = 0;

	/* InstallSnapshot with a zero index or a configuration that does not
	 * fill the header. */
	conf.n = 0;
	b_configuration(&conf, 1);
	b_install_snapshot(&m, t + 1, 0, t + 1, &conf, 8);
	b_zero(&m, 8);
	expect_closed(n, "snapshot index 0", &m);
	m.n = 0;
	b_install_snapshot(&m, t + 1, 10, t + 1, &conf, 8);
	m.p[16 + 32] = (uint8_t)(conf.n - 8); /* configuration length */
	b_zero(&m, 8);
	expect_closed(n, "configuration shorter than its room", &m);
	m.n = 0;

	b_free(&m);
	b_free(&conf);
}

/* An 8 GiB header length is refused on the preamble alone: the node closes
 * the connection without waiting for (or allocating) the header. */
static void test_huge_length_prefix(void **state)
{
	struct node *n = *state;
	struct {
		uint8_t type;
		uint64_t len;
	} cases[] = {
		{T_AE, (uint64_t)8 << 30},
		{T_IS, (uint64_t)8 << 30},
		{T_AE, (16u << 20) + 48}, /* just above 16 MiB */
		{T_RV, 1 << 20},
		{T_AE, UINT64_MAX},
	};
	for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct bytes b = {0};
		int fd = peer_connect(n);
		b_handshake(&b, PEER_ID, "127.0.0.1:9");
		b_preamble(&b, cases[i].type, 0, cases[i].len);
		assert_true(peer_send(n, fd, &b));
		/* Nothing more is sent: only a decision on the preamble can
		 * close the connection. */
		if (!peer_wait_closed(n, fd, WAIT_MS))
			fail_msg("header length %llu (type %u) not refused",
				 (unsigned long long)cases[i].len,
				 cases[i].type);
		close(fd);
		b_free(&b);
		assert_term_unchanged(n);
	}
}

/* Payloads above the caps (1 MiB here) are refused on the header alone. */
static void test_payload_caps(void **state)
{
	struct node *n = *state;
	uint64_t t = n->term;
	struct bytes m = {0}, conf = {0};

	struct entry big = {t, RAFT_COMMAND, 2u << 20};
	b_append_entries(&m, t + 1, 0, 0, &big, 1);
	expect_closed(n, "entry of 2 MiB", &m);
	m.n = 0;

	/* Two entries of almost 4 GiB: the sum overflows 32 bits. */
	struct entry huge[2] = {{t, RAFT_COMMAND, 0xfffffff8u},
				{t, RAFT_COMMAND, 0xfffffff8u}};
	b_append_entries(&m, t + 1, 0, 0, huge, 2);
	expect_closed(n, "entries of 8 GiB", &m);
	m.n = 0;

	b_configuration(&conf, 1);
	b_install_snapshot(&m, t + 1, 10, t, &conf, 2u << 20);
	expect_closed(n, "snapshot of 2 MiB", &m);
	m.n = 0;

	b_free(&m);
	b_free(&conf);
}

/* With the default caps (64 GiB) a 2^50-byte snapshot is refused too. */
static void test_default_caps(void **state)
{
	struct node *n = *state;
	struct bytes m = {0}, conf = {0};
	b_configuration(&conf, 1);
	b_install_snapshot(&m, n->term + 1, 10, n->term, &conf,
			   (uint64_t)1 << 50);
	expect_closed(n, "snapshot of 2^50 bytes", &m);
	m.n = 0;
	b_install_snapshot(&m, n->term + 1, 10, n->term, &conf,
			   ((uint64_t)64 << 30) + 8);
	expect_closed(n, "snapshot just above 64 GiB", &m);
	b_free(&m);
	b_free(&conf);
}

/* Bad handshakes: closed by C-Raft's TCP transport before uv_recv.c. */
static void test_bad_handshakes(void **state)
{
	struct node *n = *state;
	struct {
		const char *what;
		uint64_t protocol, id, len;
		const char *address; /* sent as is, @len bytes */
	} cases[] = {
		{"protocol 2", 2, PEER_ID, 16, "127.0.0.1:9"},
		{"server ID 0", 1, 0, 16, "127.0.0.1:9"},
		{"address length 0", 1, PEER_ID, 0, ""},
		{"address length 264", 1, PEER_ID, 264, NULL},
		{"address length 2^40", 1, PEER_ID, (uint64_t)1 << 40, NULL},
		{"address without NUL", 1, PEER_ID, 16, "aaaaaaaaaaaaaaaa"},
	};
	for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct bytes b = {0};
		int fd = peer_connect(n);
		b_u64(&b, cases[i].protocol);
		b_u64(&b, cases[i].id);
		b_u64(&b, cases[i].len);
		if (cases[i].address != NULL) {
			size_t len = (size_t)cases[i].len;
			size_t have = strlen(cases[i].address);
			b_put(&b, cases[i].address, have < len ? have : len);
			if (have < len)
				b_zero(&b, len - have);
		}
		(void)peer_send(n, fd, &b);
		if (!peer_wait_closed(n, fd, WAIT_MS))
			fail_msg("%s: the node did not close the connection",
				 cases[i].what);
		close(fd);
		b_free(&b);
		assert_term_unchanged(n);
	}
}

/* Legal traffic still passes: messages with a lower term are decoded and
 * answered, and a RequestVote that disrupts the leader makes it step down
 * and win again in a later term. */
static void test_legal_traffic(void **state)
{
	struct node *n = *state;
	struct replies r;
	struct bytes b = {0}, conf = {0};
	const uint8_t *h;
	uint64_t hlen;
	raft_term t;
	int fd;

	replies_open(&r);
	fd = peer_connect(n);
	b_handshake(&b, PEER_ID, r.address);

	/* Disrupt: term t+10, a log that looks newer: vote granted. */
	t = n->term;
	b_request_vote(&b, t + 10, PEER_ID, 1000, t + 10, 1 /* disrupt */);
	assert_true(peer_send(n, fd, &b));
	assert_int_equal(replies_next(n, &r, &h, &hlen), T_RVR);
	assert_int_equal(hlen, 24);
	assert_int_equal(get64(h), t + 10);
	assert_int_equal(get64(h + 8), 1); /* granted */
	assert_int_equal(persisted_term(n), t + 10);
	/* It campaigns again, alone (a single voter self-elects without a
	 * new term in 0.22.1). */
	wait_leader(n);
	n->term = raft_current_term(&n->raft);
	assert_true(n->term >= t + 10);
	t = n->term;

	/* RequestVote v2 with a lower term: rejected, answered. */
	b.n = 0;
	b_request_vote(&b, t - 1, PEER_ID, 1, 1, 0);
	assert_true(peer_send(n, fd, &b));
	assert_int_equal(replies_next(n, &r, &h, &hlen), T_RVR);
	assert_int_equal(get64(h), t);
	assert_int_equal(get64(h + 8), 0);

	/* The 32-byte v1 form (no flags), version byte 1. */
	b.n = 0;
	b_preamble(&b, T_RV, 1, 32);
	b_u64(&b, t - 1);
	b_u64(&b, PEER_ID);
	b_u64(&b, 1);
	b_u64(&b, 1);
	assert_true(peer_send(n, fd, &b));
	assert_int_equal(replies_next(n, &r, &h, &hlen), T_RVR);
	assert_int_equal(get64(h), t);

	/* AppendEntries with two entries and their payload, lower term. */
	struct entry two[2] = {{1, RAFT_COMMAND, 8}, {t - 1, RAFT_COMMAND, 16}};
	b.n = 0;
	b_append_entries(&b, t - 1, 1, 1, two, 2);
	b_zero(&b, 24);
	assert_true(peer_send(n, fd, &b));
	assert_int_equal(replies_next(n, &r, &h, &hlen), T_AER);
	assert_int_equal(get64(h), t);

	/* A heartbeat and entries that are all empty (no payload). */
	b.n = 0;
	b_append_entries(&b, t - 1, 0, 0, NULL, 0);
	assert_true(peer_send(n, fd, &b));
	assert_int_equal(replies_next(n, &r, &h, &hlen), T_AER);
	assert_int_equal(get64(h), t);
	struct entry empty[2] = {{1, RAFT_COMMAND, 0}, {1, RAFT_BARRIER, 0}};
	b.n = 0;
	b_append_entries(&b, t - 1, 0, 0, empty, 2);
	assert_true(peer_send(n, fd, &b));
	assert_int_equal(replies_next(n, &r, &h, &hlen), T_AER);
	assert_int_equal(get64(h), t);

	/* InstallSnapshot with 3 servers and 24 bytes of data. */
	b_configuration(&conf, 3);
	b.n = 0;
	b_install_snapshot(&b, t - 1, 10, 1, &conf, 24);
	b_zero(&b, 24);
	assert_true(peer_send(n, fd, &b));
	assert_int_equal(replies_next(n, &r, &h, &hlen), T_AER);
	assert_int_equal(get64(h), t);

	/* The connection stayed open through all of it. */
	assert_false(peer_wait_closed(n, fd, 50));
	assert_term_unchanged(n);

	close(fd);
	replies_close(&r);
	b_free(&b);
	b_free(&conf);
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	(void)result;
	*(int *)req->data = status == 0 ? 1 : -1;
}

/* Commit one command: the node's leader state is intact. */
static void assert_can_commit(struct node *n)
{
	struct raft_apply req;
	struct raft_buffer buf;
	int done = 0;
	unsigned before = n->n_applied;
	buf.len = 8;
	buf.base = raft_malloc(buf.len);
	assert_non_null(buf.base);
	memset(buf.base, 0, buf.len);
	req.data = &done;
	assert_int_equal(raft_apply(&n->raft, &req, &buf, 1, apply_cb), 0);
	uint64_t end = now_ms() + WAIT_MS;
	while (done == 0 && now_ms() < end)
		pump(n);
	assert_int_equal(done, 1);
	assert_int_equal(n->n_applied, before + 1);
}

/* Well-formed messages no correct peer sends (patch 0005): an
 * AppendEntries and an InstallSnapshot for the term the node leads, and a
 * message claiming to come from the node itself.  Unpatched, the first
 * wrote follower state over the leader's. */
static void test_adversarial_well_formed(void **state)
{
	struct node *n = *state;
	raft_term t = n->term;
	struct bytes b = {0}, conf = {0};
	int fd = peer_connect(n);

	b_handshake(&b, PEER_ID, "127.0.0.1:9");
	struct entry e = {t, RAFT_COMMAND, 8};
	b_append_entries(&b, t, raft_last_index(&n->raft), t, &e, 1);
	b_zero(&b, 8);
	b_append_entries(&b, t, 0, 0, NULL, 0);
	b_configuration(&conf, 2);
	b_install_snapshot(&b, t, 100, t, &conf, 16);
	b_zero(&b, 16);
	assert_true(peer_send(n, fd, &b));
	assert_false(peer_wait_closed(n, fd, 200));
	close(fd);
	assert_term_unchanged(n);
	assert_can_commit(n);

	/* From the node's own ID: a RequestVote that would otherwise make it
	 * step down to a much higher term. */
	b.n = 0;
	fd = peer_connect(n);
	b_handshake(&b, NODE_ID, "127.0.0.1:9");
	b_request_vote(&b, t + 100, NODE_ID, 1000, t + 100, 1);
	assert_true(peer_send(n, fd, &b));
	assert_false(peer_wait_closed(n, fd, 200));
	close(fd);
	assert_term_unchanged(n);
	assert_can_commit(n);

	b_free(&b);
	b_free(&conf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_malformed_messages,
						setup_caps, teardown),
		cmocka_unit_test_setup_teardown(test_huge_length_prefix,
						setup_caps, teardown),
		cmocka_unit_test_setup_teardown(test_payload_caps, setup_caps,
						teardown),
		cmocka_unit_test_setup_teardown(test_default_caps,
						setup_defaults, teardown),
		cmocka_unit_test_setup_teardown(test_bad_handshakes,
						setup_caps, teardown),
		cmocka_unit_test_setup_teardown(test_legal_traffic, setup_caps,
						teardown),
		cmocka_unit_test_setup_teardown(test_adversarial_well_formed,
						setup_caps, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
