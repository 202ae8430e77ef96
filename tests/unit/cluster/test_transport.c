/*
 * test_transport.c - src/cluster/transport.c between two transports on
 * one loop, with C-Raft's side played by the test: a connection is made
 * through raft_uv_transport.connect, bytes written on the stream it
 * yields must come out, unchanged and in order, of the stream the other
 * side's accept callback gets.  Every mode (plain, cluster key, TLS, key
 * inside TLS) and the refusals between mismatched peers.
 */
#include "../test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <raft.h>
#include <uv.h>

#include "cluster/transport.h"
#include "core/alloc.h"

#define BIG (24u << 20) /* through the TLS relay, past its pause mark */

static uv_loop_t loop;
static char pki[256];

typedef struct side {
	peer_transport *t;
	struct raft_uv_transport *i;
	bool closed;
} side;

/* What the accepting side's "C-Raft" saw. */
static struct {
	int accepted;
	uint64_t id;
	char address[64];
	uv_stream_t *stream;
	size_t got;
	uint32_t sum;
	bool eof;
} acc;

/* The connecting side's result. */
static struct {
	bool done;
	int status;
	uv_stream_t *stream;
	bool written;
} con;

static char rbuf[65536];

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)h;
	(void)hint;
	*buf = uv_buf_init(rbuf, sizeof rbuf);
}

static uint32_t mix(uint32_t sum, const unsigned char *p, size_t n)
{
	for (size_t k = 0; k < n; k++)
		sum = sum * 31u + p[k];
	return sum;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	(void)s;
	if (n < 0) {
		acc.eof = true;
		return;
	}
	acc.sum = mix(acc.sum, (const unsigned char *)buf->base, (size_t)n);
	acc.got += (size_t)n;
}

static void on_accept(struct raft_uv_transport *t, raft_id id,
		      const char *address, struct uv_stream_s *stream)
{
	(void)t;
	acc.accepted++;
	acc.id = id;
	snprintf(acc.address, sizeof acc.address, "%s", address);
	acc.stream = stream;
	uv_read_start(stream, alloc_cb, on_read);
}

static void on_connect(struct raft_uv_connect *req, struct uv_stream_s *stream,
		       int status)
{
	(void)req;
	con.done = true;
	con.status = status;
	con.stream = stream;
}

static void free_stream(uv_handle_t *h)
{
	raft_free(h);
}

static void on_written(uv_write_t *w, int status)
{
	(void)status;
	con.written = true;
	free(w->data);
	free(w);
}

/* Run the loop until *flag or `ms` pass. */
static void run_until(const bool *flag, unsigned ms)
{
	uint64_t end = uv_now(&loop) + ms;
	while (!*flag && uv_now(&loop) < end) {
		uv_run(&loop, UV_RUN_NOWAIT);
		usleep(200);
		uv_update_time(&loop);
	}
}

static void run_ms(unsigned ms)
{
	bool never = false;
	run_until(&never, ms);
}

static side make(uint64_t id, const char *key, bool tls, const char *cert,
		 const char *ca)
{
	char c[300], k[300], a[300];
	side s = {0};
	hora_error err;
	snprintf(c, sizeof c, "%s/%s.pem", pki, cert ? cert : "node");
	snprintf(k, sizeof k, "%s/%s.key", pki, cert ? cert : "node");
	snprintf(a, sizeof a, "%s/%s.pem", pki, ca ? ca : "ca");
	transport_config cfg = {
		.bind = "127.0.0.1:0",
		.key = (const unsigned char *)key,
		.key_len = key ? strlen(key) : 0,
		.tls_cert = tls ? c : NULL,
		.tls_key = tls ? k : NULL,
		.tls_ca = tls ? a : NULL,
	};
	if (transport_init(&s.t, &loop, &cfg, &err) != 0)
		fail_msg("transport_init: %s", err.msg);
	s.i = transport_raft(s.t);
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%llu", 7000ull + id);
	assert_int_equal(s.i->init(s.i, id, addr), 0);
	assert_int_equal(s.i->listen(s.i, on_accept), 0);
	assert_true(transport_port(s.t) > 0);
	return s;
}

static void on_closed(struct raft_uv_transport *i)
{
	(void)i;
}

static void finish(side *a, side *b)
{
	if (acc.stream != NULL)
		uv_close((uv_handle_t *)acc.stream, free_stream);
	if (con.stream != NULL)
		uv_close((uv_handle_t *)con.stream, free_stream);
	a->i->close(a->i, on_closed);
	b->i->close(b->i, on_closed);
	run_ms(100);
	transport_free(a->t);
	transport_free(b->t);
	memset(&acc, 0, sizeof acc);
	memset(&con, 0, sizeof con);
}

/* b connects to a and, when it gets a stream, writes `n` bytes; with
 * `deliver` they must all arrive. */
static void connect_and_send(side *a, side *b, size_t n, bool deliver)
{
	static struct raft_uv_connect req;
	char target[32];
	snprintf(target, sizeof target, "127.0.0.1:%d", transport_port(a->t));
	assert_int_equal(b->i->connect(b->i, &req, 2, target, on_connect), 0);
	run_until(&con.done, 5000);
	if (!con.done || con.status != 0 || n == 0)
		return;
	unsigned char *data = malloc(n);
	for (size_t k = 0; k < n; k++)
		data[k] = (unsigned char)(k * 7 + k / 251);
	uv_write_t *w = malloc(sizeof *w);
	uv_buf_t buf = uv_buf_init((char *)data, (unsigned)n);
	w->data = data;
	assert_int_equal(uv_write(w, con.stream, &buf, 1, on_written), 0);
	uint32_t want = mix(0, data, n);
	if (!deliver)
		return;
	uint64_t end = uv_now(&loop) + 20000;
	while (acc.got < n && uv_now(&loop) < end) {
		uv_run(&loop, UV_RUN_NOWAIT);
		uv_update_time(&loop);
	}
	assert_int_equal(acc.got, n);
	assert_int_equal(acc.sum, want);
}

static void check_pair(const char *key_a, const char *key_b, bool tls,
		       size_t n)
{
	side a = make(1, key_a, tls, NULL, NULL);
	side b = make(2, key_b, tls, NULL, NULL);
	connect_and_send(&a, &b, n, true);
	assert_true(con.done);
	assert_int_equal(con.status, 0);
	assert_int_equal(acc.accepted, 1);
	assert_int_equal(acc.id, 2);
	assert_string_equal(acc.address, "127.0.0.1:7002");
	transport_stats st;
	transport_stats_get(a.t, &st);
	assert_int_equal(st.accepted, 1);
	assert_int_equal(st.refused, 0);
	finish(&a, &b);
}

static void test_plain(void **state)
{
	(void)state;
	check_pair(NULL, NULL, false, 1 << 20);
}

static void test_key(void **state)
{
	(void)state;
	check_pair("0123456789abcdef-key", "0123456789abcdef-key", false,
		   1 << 20);
}

static void test_tls(void **state)
{
	(void)state;
	check_pair(NULL, NULL, true, BIG);
}

static void test_key_in_tls(void **state)
{
	(void)state;
	check_pair("0123456789abcdef-key", "0123456789abcdef-key", true,
		   4096);
}

/* The acceptor refuses; the accept callback never runs. */
static void check_refused(side *a, side *b, bool connector_fails)
{
	connect_and_send(a, b, 64, false);
	run_ms(300);
	assert_int_equal(acc.accepted, 0);
	transport_stats st;
	transport_stats_get(a->t, &st);
	if (connector_fails) {
		assert_true(con.done);
		assert_int_not_equal(con.status, 0);
	} else {
		assert_int_equal(st.refused, 1);
	}
	finish(a, b);
}

static void test_mismatches(void **state)
{
	(void)state;
	side a, b;
	/* no key -> key */
	a = make(1, "0123456789abcdef-key", false, NULL, NULL);
	b = make(2, NULL, false, NULL, NULL);
	check_refused(&a, &b, false);
	/* key -> no key: the acceptor says nothing, the connector gives up
	 * at its deadline or when closed; the acceptor refuses */
	a = make(1, NULL, false, NULL, NULL);
	b = make(2, "0123456789abcdef-key", false, NULL, NULL);
	check_refused(&a, &b, false);
	/* another key: the connector sees the acceptor's proof fail */
	a = make(1, "0123456789abcdef-key", false, NULL, NULL);
	b = make(2, "0123456789abcdef-KEY", false, NULL, NULL);
	check_refused(&a, &b, true);
	/* plain -> TLS */
	a = make(1, NULL, true, NULL, NULL);
	b = make(2, NULL, false, NULL, NULL);
	check_refused(&a, &b, false);
	/* a certificate of another CA, both ways */
	a = make(1, NULL, true, NULL, NULL);
	b = make(2, NULL, true, "rogue", "other-ca");
	check_refused(&a, &b, true);
}

/* Closing cancels a connection still being made. */
static void test_close_cancels(void **state)
{
	(void)state;
	static struct raft_uv_connect req;
	/* a port that accepts and never answers the keyed hello */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof sa;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, 4), 0);
	getsockname(fd, (struct sockaddr *)&sa, &len);
	side k = make(3, "0123456789abcdef-key", false, NULL, NULL);
	char target[32];
	snprintf(target, sizeof target, "127.0.0.1:%u", ntohs(sa.sin_port));
	assert_int_equal(k.i->connect(k.i, &req, 1, target, on_connect), 0);
	run_ms(100);
	assert_false(con.done);
	k.i->close(k.i, on_closed);
	run_until(&con.done, 2000);
	assert_true(con.done);
	assert_int_equal(con.status, RAFT_CANCELED);
	run_ms(50);
	transport_free(k.t);
	close(fd);
	memset(&acc, 0, sizeof acc);
	memset(&con, 0, sizeof con);
}

/* A peer that connects and says nothing is cut at the deadline. */
static void test_deadline(void **state)
{
	(void)state;
	side a = make(1, NULL, false, NULL, NULL);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)transport_port(a.t))};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	run_ms(200);
	transport_stats st;
	transport_stats_get(a.t, &st);
	assert_int_equal(st.handshaking, 1);
	run_ms(TRANSPORT_HANDSHAKE_MS + 300);
	transport_stats_get(a.t, &st);
	assert_int_equal(st.handshaking, 0);
	assert_int_equal(st.refused, 1);
	char c;
	assert_int_equal(read(fd, &c, 1), 0); /* closed by the transport */
	close(fd);
	a.i->close(a.i, on_closed);
	run_ms(50);
	transport_free(a.t);
}

static int setup(void **state)
{
	(void)state;
	char cmd[2048];
	snprintf(pki, sizeof pki, "/tmp/hora-test-pki-XXXXXX");
	if (mkdtemp(pki) == NULL)
		return -1;
	snprintf(cmd, sizeof cmd,
		 "(cd %s && printf 'subjectAltName=IP:127.0.0.1\\n' > ext && "
		 "for ca in ca other-ca; do openssl req -x509 -newkey ec "
		 "-pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "
		 "/CN=$ca -keyout $ca.key -out $ca.pem; done && "
		 "for p in node:ca rogue:other-ca; do n=${p%%:*}; c=${p#*:}; "
		 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
		 "-nodes -subj /CN=$n -keyout $n.key -out $n.csr && "
		 "openssl x509 -req -in $n.csr -CA $c.pem -CAkey $c.key "
		 "-CAcreateserial -days 2 -extfile ext -out $n.pem; done) "
		 ">/dev/null 2>&1",
		 pki);
	if (system(cmd) != 0)
		return -1;
	return uv_loop_init(&loop);
}

static int teardown(void **state)
{
	char cmd[300];
	(void)state;
	uv_run(&loop, UV_RUN_NOWAIT);
	uv_loop_close(&loop);
	snprintf(cmd, sizeof cmd, "rm -rf %s", pki);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_key_in_tls),
		cmocka_unit_test(test_mismatches),
		cmocka_unit_test(test_close_cancels),
		cmocka_unit_test(test_deadline),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
