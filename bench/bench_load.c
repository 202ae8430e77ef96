/*
 * bench_load: a closed-loop HTTP/1.1 keep-alive load generator for horad.
 *
 *   bench_load put   --addr HOST:PORT --conns C --total N [--prefix P] ...
 *   bench_load batch --addr HOST:PORT --conns C --total N --batch B ...
 *   bench_load get   --addr HOST:PORT --conns C --total N --path PATH
 *   bench_load wait  --addr HOST:PORT --path PATH [--timeout-ms T]
 *
 * Raw sockets, libc and pthreads only, so that the client costs as little
 * CPU as possible: each of --threads threads runs one epoll loop over its
 * share of the connections, and every connection keeps exactly one request
 * in flight (closed loop: the next request goes out when the previous
 * response is complete).  Responses are parsed for real (by loadgen.c,
 * shared with bench_runs): status line, Content-Length, chunked
 * transfer-encoding, read-until-close bodies, interim 1xx responses and
 * Connection: close.  A connection the server
 * closes or resets is reopened and counted; a request that got no complete
 * response is sent again up to --retries times.
 *
 * Latency is measured per request (per batch in batch mode) from the moment
 * the request is handed to the connection (including any reconnect and
 * retry) to the last byte of its response, in microseconds.
 *
 * Exit status: 0 every request got a 2xx, 1 some did not (figures are still
 * printed), 2 bad usage or the server could not be reached at all.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"

#define LAT_NONE UINT32_MAX      /* g_lat[] entry of a unit without response */
#define HDR_ROOM 2048u           /* bytes reserved in front of the body */
#define RBUF_MIN (64u * 1024u)   /* initial receive buffer */
#define SAMPLE_MAX 400u          /* bytes kept of one non-2xx body */
#define CONNECT_GIVEUP_NS (3000000000ull) /* connects failing this long: give up */
#define NSTATUS 1000

enum mode { MODE_PUT, MODE_BATCH, MODE_GET, MODE_WAIT };

static struct {
	enum mode mode;
	const char *mode_name;
	long conns, threads;
	long total, batch, start;
	const char *prefix;
	long name_len, payload_bytes;
	const char *schedule;
	const char *path;
	const char *token;
	int json, progress;
	long retries;
	long timeout_ms, interval_ms;
	long expect;
} opt = {
	.conns = 1, .threads = 1, .total = 0, .batch = 1000, .start = 0,
	.prefix = "bench-", .name_len = 40, .payload_bytes = 40,
	.schedule = "*/5 * * * *", .path = NULL, .token = NULL,
	.retries = 3, .timeout_ms = 30000, .interval_ms = 5, .expect = 200,
};

const char loadgen_prog[] = "bench_load";

static struct target g_srv;     /* --addr, --token */
static char *g_sched_esc;       /* the schedule as JSON string contents */
static long g_units;            /* requests to make */
static uint32_t *g_lat;         /* latency per unit, us; LAT_NONE if none */
static atomic_long g_next;      /* next unit to hand out */
static atomic_long g_done;      /* units finished (answered or failed) */
static atomic_int g_abort;
static atomic_int g_workers_left;

/* ---- request bodies ------------------------------------------------- */

static uint64_t splitmix64(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

/* The name of job i: prefix + i zero-padded to --name-len characters. */
static size_t put_name(char *out, long i)
{
	size_t pl = strlen(opt.prefix);
	long w = opt.name_len - (long)pl;
	int n;
	if (w < 1)
		w = 1;
	n = snprintf(out, 256, "%s%0*ld", opt.prefix, (int)w, i);
	return (size_t)n;
}

/* --payload-bytes pseudo-random alphanumerics derived from i. */
static size_t put_payload(char *out, long i)
{
	static const char al[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	uint64_t x = splitmix64((uint64_t)i);
	for (long k = 0; k < opt.payload_bytes; k++) {
		if (k % 10 == 0)
			x = splitmix64(x + (uint64_t)k);
		out[k] = al[x % 62];
		x /= 62;
	}
	return (size_t)opt.payload_bytes;
}

static size_t append(char *dst, const char *s)
{
	size_t n = strlen(s);
	memcpy(dst, s, n);
	return n;
}

/* One job object's members (without braces) for job i. */
static size_t job_members(char *out, long i, int with_name)
{
	size_t n = 0;
	if (with_name) {
		n += append(out + n, "\"name\":\"");
		n += put_name(out + n, i);
		n += append(out + n, "\",");
	}
	n += append(out + n, "\"schedule\":\"");
	n += append(out + n, g_sched_esc);
	n += append(out + n, "\",\"payload\":\"");
	n += put_payload(out + n, i);
	out[n++] = '"';
	return n;
}

/* Upper bound of the request size for any unit. */
static size_t request_cap(void)
{
	size_t job = 64 + (size_t)opt.name_len + strlen(opt.prefix) + 24 +
		     strlen(g_sched_esc) + (size_t)opt.payload_bytes;
	size_t body = opt.mode == MODE_BATCH ? 16 + (size_t)opt.batch * job : job;
	size_t path = opt.path ? strlen(opt.path) : 0;
	return HDR_ROOM + body + path + 64;
}

/* ---- connections ---------------------------------------------------- */

struct worker;

struct conn {
	struct worker *w;
	uint32_t idx;           /* in w->c[] */
	uint32_t gen;           /* bumped on every socket, tags epoll events */
	int fd;                 /* -1 when closed */
	int connecting;
	int want_out;           /* EPOLLOUT is registered */
	int busy;               /* a unit is assigned and not finished */
	int done;               /* no more units for this connection */
	long attempts;
	long unit;
	uint64_t t0, deadline;
	int fails;              /* consecutive failed connects */
	uint64_t fail_since;    /* when the first of them failed */
	char *wbuf;
	size_t wcap, wstart, wend, woff;
	char *rbuf;
	size_t rcap, rpos, rlen;
	struct resp r;
	size_t caplen;          /* body bytes kept of a non-2xx response */
	char cap[SAMPLE_MAX + 1];
};

struct worker {
	pthread_t th;
	int ep;
	struct conn *c;
	uint32_t nc;
	uint32_t live;
	uint64_t t_end;
	uint64_t status[NSTATUS];
	uint64_t failed, timeouts, closed, reconnects, retries, proto_errors;
	uint64_t connect_errors, bytes_out, bytes_in, opened;
	uint64_t ok_jobs;       /* jobs in requests answered 2xx */
	int last_errno;
	int sample_status;
	char sample[SAMPLE_MAX + 1];
};

/* The resp_body_fn of c->r: keeps the first SAMPLE_MAX body bytes of a
 * non-2xx response in c->cap. */
static void capture(void *arg, int status, const char *p, size_t n)
{
	struct conn *c = arg;
	if (status >= 200 && status < 300)
		return;
	if (n > SAMPLE_MAX - c->caplen)
		n = SAMPLE_MAX - c->caplen;
	memcpy(c->cap + c->caplen, p, n);
	c->caplen += n;
}

static void conn_next(struct conn *c);
static void conn_open(struct conn *c);
static void conn_send(struct conn *c);

static void conn_close_fd(struct conn *c)
{
	if (c->fd >= 0) {
		close(c->fd);   /* also drops it from the epoll set */
		c->fd = -1;
	}
	c->connecting = 0;
	c->want_out = 0;
	c->rpos = c->rlen = 0;
}

static void set_events(struct conn *c, uint32_t events, int op)
{
	struct epoll_event ev;
	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.u64 = ((uint64_t)c->gen << 32) | c->idx;
	if (epoll_ctl(c->w->ep, op, c->fd, &ev) != 0)
		die("epoll_ctl: %s", strerror(errno));
}

static void want_out(struct conn *c, int on)
{
	if (c->want_out == on)
		return;
	c->want_out = on;
	set_events(c, EPOLLIN | (on ? (uint32_t)EPOLLOUT : 0u), EPOLL_CTL_MOD);
}

/* Build unit c->unit's request into c->wbuf[wstart..wend). */
static void build_request(struct conn *c)
{
	char head[HDR_ROOM], name[256];
	char *body = c->wbuf + HDR_ROOM;
	size_t blen = 0, nlen = 0;
	const char *method;
	int h;

	switch (opt.mode) {
	case MODE_PUT:
		method = "PUT";
		nlen = put_name(name, opt.start + c->unit);
		body[blen++] = '{';
		blen += job_members(body + blen, opt.start + c->unit, 0);
		body[blen++] = '}';
		break;
	case MODE_BATCH: {
		long first = c->unit * opt.batch;
		long last = first + opt.batch;
		if (last > opt.total)
			last = opt.total;
		method = "POST";
		blen += append(body, "{\"jobs\":[");
		for (long i = first; i < last; i++) {
			if (i > first)
				body[blen++] = ',';
			body[blen++] = '{';
			blen += job_members(body + blen, opt.start + i, 1);
			body[blen++] = '}';
		}
		body[blen++] = ']';
		body[blen++] = '}';
		break;
	}
	default:
		method = "GET";
		break;
	}

	if (opt.mode == MODE_PUT)
		h = snprintf(head, sizeof head,
			     "PUT /v1/jobs/%.*s HTTP/1.1\r\nHost: %s\r\n%s"
			     "Content-Type: application/json\r\n"
			     "Content-Length: %zu\r\n\r\n",
			     (int)nlen, name, g_srv.hosthdr, g_srv.auth, blen);
	else if (opt.mode == MODE_BATCH)
		h = snprintf(head, sizeof head,
			     "%s /v1/jobs:batch HTTP/1.1\r\nHost: %s\r\n%s"
			     "Content-Type: application/json\r\n"
			     "Content-Length: %zu\r\n\r\n",
			     method, g_srv.hosthdr, g_srv.auth, blen);
	else
		h = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n",
			     method, opt.path, g_srv.hosthdr, g_srv.auth);
	if (h < 0 || (size_t)h >= sizeof head)
		die("request head too long");
	c->wstart = HDR_ROOM - (size_t)h;
	memcpy(c->wbuf + c->wstart, head, (size_t)h);
	c->wend = HDR_ROOM + blen;
	if (c->wend > c->wcap)
		die("internal: request buffer overflow");
}

/* Jobs carried by unit u. */
static uint64_t unit_jobs(long u)
{
	long n;
	if (opt.mode == MODE_PUT)
		return 1;
	if (opt.mode != MODE_BATCH)
		return 0;
	n = opt.total - u * opt.batch;
	return (uint64_t)(n < opt.batch ? n : opt.batch);
}

static void conn_finish_unit(struct conn *c, uint32_t lat_us)
{
	g_lat[c->unit] = lat_us;
	c->busy = 0;
	atomic_fetch_add_explicit(&g_done, 1, memory_order_relaxed);
}

static void conn_fail_unit(struct conn *c)
{
	c->w->failed++;
	conn_finish_unit(c, LAT_NONE);
}

static void conn_retire(struct conn *c)
{
	conn_close_fd(c);
	c->busy = 0;
	if (!c->done) {
		c->done = 1;
		c->w->live--;
	}
}

/* The connection broke before the current response was complete. */
static void conn_broken(struct conn *c, int proto)
{
	struct worker *w = c->w;
	if (proto)
		w->proto_errors++;
	else
		w->closed++;
	conn_close_fd(c);
	if (!c->busy) {
		conn_next(c);
		return;
	}
	if (!proto && c->attempts < opt.retries) {
		c->attempts++;
		w->retries++;
		conn_send(c);
		return;
	}
	conn_fail_unit(c);
	conn_next(c);
}

static void connect_failed(struct conn *c, int err)
{
	struct worker *w = c->w;
	conn_close_fd(c);
	w->connect_errors++;
	w->last_errno = err;
	if (c->fails++ == 0)
		c->fail_since = now_ns();
	if (now_ns() - c->fail_since >= CONNECT_GIVEUP_NS) {
		if (!atomic_exchange(&g_abort, 1))
			fprintf(stderr, "bench_load: cannot connect to %s: %s (giving up)\n",
				g_srv.hosthdr, strerror(err));
		if (c->busy)
			conn_fail_unit(c);
		conn_retire(c);
		return;
	}
	usleep(10000);
	conn_open(c);
}

static void conn_open(struct conn *c)
{
	int one = 1, fd;

	c->gen++;
	fd = socket(g_srv.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->fd = fd;
	c->w->opened++;
	if (connect(fd, (struct sockaddr *)&g_srv.sa, g_srv.salen) == 0) {
		c->connecting = 0;
		c->fails = 0;
		c->want_out = 0;
		set_events(c, EPOLLIN, EPOLL_CTL_ADD);
		if (c->busy)
			conn_send(c);
		return;
	}
	if (errno != EINPROGRESS) {
		connect_failed(c, errno);
		return;
	}
	c->connecting = 1;
	c->want_out = 1;
	set_events(c, EPOLLOUT, EPOLL_CTL_ADD);
}

/* Push out what is left of the request. */
static void conn_write(struct conn *c)
{
	while (c->woff < c->wend) {
		ssize_t n = send(c->fd, c->wbuf + c->woff, c->wend - c->woff,
				 MSG_NOSIGNAL);
		if (n > 0) {
			c->woff += (size_t)n;
			c->w->bytes_out += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			want_out(c, 1);
			return;
		}
		conn_broken(c, 0);
		return;
	}
	want_out(c, 0);
}

/* Send (or resend) the current unit's request, opening a socket if need be. */
static void conn_send(struct conn *c)
{
	if (c->fd < 0) {
		conn_open(c);   /* sends once connected */
		return;
	}
	if (c->connecting)
		return;
	resp_reset(&c->r);
	c->caplen = 0;
	c->woff = c->wstart;
	conn_write(c);
}

/* Take the next unit, or retire the connection when there is none. */
static void conn_next(struct conn *c)
{
	long u;
	if (atomic_load_explicit(&g_abort, memory_order_relaxed)) {
		conn_retire(c);
		return;
	}
	u = atomic_fetch_add_explicit(&g_next, 1, memory_order_relaxed);
	if (u >= g_units) {
		conn_retire(c);
		return;
	}
	c->unit = u;
	c->busy = 1;
	c->attempts = 0;
	build_request(c);
	c->t0 = now_ns();
	c->deadline = c->t0 + (uint64_t)opt.timeout_ms * 1000000u;
	conn_send(c);
}

static void conn_response(struct conn *c)
{
	struct worker *w = c->w;
	uint64_t us = (now_ns() - c->t0) / 1000u;
	int must_close = c->r.close || c->rpos != c->rlen || c->woff < c->wend;
	int st = c->r.status;

	w->status[st < NSTATUS ? st : 0]++;
	if (st >= 200 && st < 300)
		w->ok_jobs += unit_jobs(c->unit);
	if ((st < 200 || st >= 300) && !w->sample_status) {
		w->sample_status = st;
		memcpy(w->sample, c->cap, c->caplen);
		w->sample[c->caplen] = '\0';
	}
	conn_finish_unit(c, us >= LAT_NONE ? LAT_NONE - 1 : (uint32_t)us);
	if (must_close) {
		conn_close_fd(c);
		w->reconnects++;
	} else {
		c->rpos = c->rlen = 0;
	}
	conn_next(c);
}

static void conn_readable(struct conn *c)
{
	ssize_t n;
	size_t used;
	int rc;

	if (c->rpos == c->rlen)
		c->rpos = c->rlen = 0;
	if (c->rcap - c->rlen < 4096) {
		if (c->rpos > 0) {
			memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
			c->rlen -= c->rpos;
			c->rpos = 0;
		}
		if (c->rcap - c->rlen < 4096) {
			c->rcap *= 2;
			c->rbuf = realloc(c->rbuf, c->rcap);
			if (!c->rbuf)
				die("out of memory");
		}
	}
	n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_broken(c, 0);
		return;
	}
	if (n == 0) {
		if (c->busy && c->r.st == P_BODY_EOF) {
			c->r.st = P_DONE;
			c->r.close = 1;
			conn_response(c);
		} else {
			conn_broken(c, 0);
		}
		return;
	}
	c->w->bytes_in += (uint64_t)n;
	c->rlen += (size_t)n;
	if (!c->busy) {
		conn_broken(c, 1);      /* data nobody asked for */
		return;
	}
	rc = resp_parse(&c->r, c->rbuf + c->rpos, c->rlen - c->rpos, &used);
	c->rpos += used;
	if (rc < 0)
		conn_broken(c, 1);
	else if (rc > 0)
		conn_response(c);
	else if (c->rpos == c->rlen)
		c->rpos = c->rlen = 0;
}

static void conn_event(struct conn *c, uint32_t ev)
{
	uint32_t gen = c->gen;

	if (c->connecting) {
		int err = 0;
		socklen_t el = sizeof err;
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
			err = errno;
		if (!err && (ev & (EPOLLERR | EPOLLHUP)))
			err = ECONNREFUSED;
		if (err) {
			connect_failed(c, err);
			return;
		}
		c->connecting = 0;
		c->fails = 0;
		c->want_out = 0;
		set_events(c, EPOLLIN, EPOLL_CTL_MOD);
		if (c->busy)
			conn_send(c);
		return;
	}
	if ((ev & EPOLLOUT) && c->woff < c->wend) {
		conn_write(c);
		if (c->gen != gen || c->fd < 0)
			return;
	}
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
		conn_readable(c);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[256];
	uint64_t next_scan;

	w->ep = epoll_create1(EPOLL_CLOEXEC);
	if (w->ep < 0)
		die("epoll_create1: %s", strerror(errno));
	w->live = w->nc;
	for (uint32_t i = 0; i < w->nc; i++)
		conn_next(&w->c[i]);
	next_scan = now_ns() + 100000000u;
	while (w->live > 0) {
		int n = epoll_wait(w->ep, evs, 256, 100);
		uint64_t t;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (int i = 0; i < n; i++) {
			uint32_t idx = (uint32_t)(evs[i].data.u64 & 0xffffffffu);
			uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
			struct conn *c = &w->c[idx];
			if (c->gen != gen || c->fd < 0)
				continue;       /* event of a socket since closed */
			conn_event(c, evs[i].events);
		}
		if (atomic_load_explicit(&g_abort, memory_order_relaxed)) {
			for (uint32_t i = 0; i < w->nc; i++) {
				if (w->c[i].busy)
					conn_fail_unit(&w->c[i]);
				conn_retire(&w->c[i]);
			}
			break;
		}
		t = now_ns();
		if (t < next_scan)
			continue;
		next_scan = t + 100000000u;
		for (uint32_t i = 0; i < w->nc; i++) {
			struct conn *c = &w->c[i];
			if (!c->busy || t < c->deadline)
				continue;
			w->timeouts++;
			conn_close_fd(c);
			conn_fail_unit(c);
			conn_next(c);
		}
	}
	w->t_end = now_ns();
	close(w->ep);
	atomic_fetch_sub(&g_workers_left, 1);
	return NULL;
}

/* ---- wait mode ------------------------------------------------------ */

/* One blocking GET of opt.path; the status, or -1 with *err set. */
static int probe_once(int *err)
{
	char req[2048], buf[16384];
	struct resp r;
	struct timeval tv = {1, 0};
	size_t have = 0, used;
	int fd, rc, len;

	fd = socket(g_srv.sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&g_srv.sa, g_srv.salen) != 0)
		goto fail;
	len = snprintf(req, sizeof req,
		       "GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n",
		       opt.path, g_srv.hosthdr, g_srv.auth);
	if (len < 0 || (size_t)len >= sizeof req)
		die("path too long");
	if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len)
		goto fail;
	resp_init(&r, NULL, NULL);     /* only the status counts */
	for (;;) {
		ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0) {
			if (r.st == P_BODY_EOF)
				break;
			errno = ECONNRESET;
			goto fail;
		}
		have += (size_t)n;
		rc = resp_parse(&r, buf, have, &used);
		if (rc < 0) {
			errno = EPROTO;
			goto fail;
		}
		memmove(buf, buf + used, have - used);
		have -= used;
		if (rc > 0)
			break;
		if (have == sizeof buf) {
			errno = EMSGSIZE;
			goto fail;
		}
	}
	close(fd);
	return r.status;
fail:
	*err = errno;
	close(fd);
	return -1;
}

static int run_wait(void)
{
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)opt.timeout_ms * 1000000u;
	long attempts = 0;
	int last = -1, err = 0;

	for (;;) {
		attempts++;
		last = probe_once(&err);
		if (last == opt.expect)
			break;
		if (now_ns() >= end) {
			if (last < 0)
				fprintf(stderr, "bench_load wait: %s%s not %ld after %ld ms: %s\n",
					g_srv.hosthdr, opt.path, opt.expect,
					opt.timeout_ms, strerror(err));
			else
				fprintf(stderr, "bench_load wait: %s%s not %ld after %ld ms: last status %d\n",
					g_srv.hosthdr, opt.path, opt.expect,
					opt.timeout_ms, last);
			if (opt.json)
				printf("{\"mode\":\"wait\",\"ok\":false,\"ms\":%.3f,\"attempts\":%ld,\"status\":%d}\n",
				       (double)(now_ns() - t0) / 1e6, attempts, last);
			return 1;
		}
		usleep((useconds_t)(opt.interval_ms * 1000));
	}
	double ms = (double)(now_ns() - t0) / 1e6;
	if (opt.json)
		printf("{\"mode\":\"wait\",\"ok\":true,\"ms\":%.3f,\"attempts\":%ld,\"status\":%d}\n",
		       ms, attempts, last);
	else
		printf("%s%s answered %d after %.1f ms (%ld attempts)\n",
		       g_srv.hosthdr, opt.path, last, ms, attempts);
	return 0;
}

/* ---- options, report ------------------------------------------------ */

static void usage(FILE *f)
{
	fputs(
"usage: bench_load MODE --addr HOST:PORT [options]\n"
"\n"
"modes:\n"
"  put    N requests PUT /v1/jobs/<name> {\"schedule\":S,\"payload\":\"...\"}\n"
"  batch  POST /v1/jobs:batch {\"jobs\":[...]} with --batch jobs each (named),\n"
"         until --total jobs are sent (the last batch may be shorter)\n"
"  get    N requests GET --path\n"
"  wait   GET --path once per --interval-ms until it answers --expect\n"
"         (default 200) or --timeout-ms passes; prints the time it took\n"
"\n"
"options:\n"
"  --addr HOST:PORT      server (default 127.0.0.1:7070; http:// accepted)\n"
"  --conns C             connections, one request in flight each (default 1)\n"
"  --threads T           client threads, each one epoll loop (default 1)\n"
"  --total N             put: jobs = requests; batch: jobs; get: requests\n"
"  --batch B             jobs per batch request (default 1000)\n"
"  --prefix P            job name prefix (default bench-); names are P plus\n"
"                        the index zero-padded to --name-len characters\n"
"  --name-len L          job name length (default 40)\n"
"  --start I             first job index (default 0)\n"
"  --payload-bytes K     payload: a JSON string of K alphanumerics (default 40)\n"
"  --schedule S          job schedule (default '*/5 * * * *')\n"
"  --path PATH           get/wait: request path, e.g. /v1/jobs/x or /readyz\n"
"  --token TOKEN         send Authorization: Bearer TOKEN\n"
"  --retries R           resend a request whose connection broke before its\n"
"                        response was complete, up to R times (default 3)\n"
"  --timeout-ms T        per request (wait: overall) timeout (default 30000)\n"
"  --interval-ms T       wait: pause between probes (default 5)\n"
"  --expect STATUS       wait: status to wait for (default 200)\n"
"  --progress            print completed requests per second to stderr\n"
"  --json                one JSON line with the figures on stdout (the\n"
"                        human-readable summary then goes to stderr)\n"
"\n"
"exit status: 0 all 2xx, 1 some requests failed or were not 2xx, 2 usage\n"
"or the server could not be reached\n", f);
}

static char *json_escape(const char *s)
{
	char *out = xmalloc(strlen(s) * 6 + 1), *o = out;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			*o++ = '\\';
			*o++ = (char)ch;
		} else if (ch < 0x20) {
			o += sprintf(o, "\\u%04x", ch);
		} else {
			*o++ = (char)ch;
		}
	}
	*o = '\0';
	return out;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static uint32_t pct(const uint32_t *v, size_t n, double p)
{
	size_t k = pct_rank(n, p);
	return k ? v[k - 1] : 0;
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1:7070";
	struct worker *ws;
	struct conn *cs;
	uint64_t t0, t_end = 0;
	int i;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	opt.mode_name = argv[1];
	if (!strcmp(argv[1], "put"))
		opt.mode = MODE_PUT;
	else if (!strcmp(argv[1], "batch"))
		opt.mode = MODE_BATCH;
	else if (!strcmp(argv[1], "get"))
		opt.mode = MODE_GET;
	else if (!strcmp(argv[1], "wait"))
		opt.mode = MODE_WAIT;
	else {
		usage(stderr);
		die("unknown mode '%s'", argv[1]);
	}
	for (i = 2; i < argc; i++) {
		char *a = argv[i], *v = NULL, *eq;
		char name[64];
		if (strncmp(a, "--", 2) != 0) {
			usage(stderr);
			die("unexpected argument '%s'", a);
		}
		eq = strchr(a, '=');
		if (eq) {
			snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
			v = eq + 1;
		} else {
			snprintf(name, sizeof name, "%s", a);
		}
		if (!strcmp(name, "--json")) {
			opt.json = 1;
			continue;
		}
		if (!strcmp(name, "--progress")) {
			opt.progress = 1;
			continue;
		}
		if (!strcmp(name, "--help")) {
			usage(stdout);
			return 0;
		}
		{
			static const char *known[] = {
				"--addr", "--conns", "--threads", "--total", "--batch",
				"--start", "--prefix", "--name-len", "--payload-bytes",
				"--schedule", "--path", "--token", "--retries",
				"--timeout-ms", "--interval-ms", "--expect", NULL};
			int k = 0;
			while (known[k] && strcmp(known[k], name) != 0)
				k++;
			if (!known[k]) {
				usage(stderr);
				die("unknown option '%s'", name);
			}
		}
		if (!v) {
			if (i + 1 >= argc)
				die("%s needs a value", name);
			v = argv[++i];
		}
		if (!strcmp(name, "--addr"))
			addr = v;
		else if (!strcmp(name, "--conns"))
			opt.conns = num_arg(name, v, 1, 100000);
		else if (!strcmp(name, "--threads"))
			opt.threads = num_arg(name, v, 1, 256);
		else if (!strcmp(name, "--total"))
			opt.total = num_arg(name, v, 1, 1000000000L);
		else if (!strcmp(name, "--batch"))
			opt.batch = num_arg(name, v, 1, 1000000);
		else if (!strcmp(name, "--start"))
			opt.start = num_arg(name, v, 0, 1000000000000L);
		else if (!strcmp(name, "--prefix"))
			opt.prefix = v;
		else if (!strcmp(name, "--name-len"))
			opt.name_len = num_arg(name, v, 1, 200);
		else if (!strcmp(name, "--payload-bytes"))
			opt.payload_bytes = num_arg(name, v, 0, 1 << 20);
		else if (!strcmp(name, "--schedule"))
			opt.schedule = v;
		else if (!strcmp(name, "--path"))
			opt.path = v;
		else if (!strcmp(name, "--token"))
			opt.token = v;
		else if (!strcmp(name, "--retries"))
			opt.retries = num_arg(name, v, 0, 1000);
		else if (!strcmp(name, "--timeout-ms"))
			opt.timeout_ms = num_arg(name, v, 1, 86400000L);
		else if (!strcmp(name, "--interval-ms"))
			opt.interval_ms = num_arg(name, v, 0, 60000);
		else if (!strcmp(name, "--expect"))
			opt.expect = num_arg(name, v, 100, 999);
		else {
			usage(stderr);
			die("unknown option '%s'", name);
		}
	}

	signal(SIGPIPE, SIG_IGN);
	target_addr(&g_srv, addr);
	if (opt.token)
		target_token(&g_srv, opt.token);
	if (opt.mode == MODE_GET || opt.mode == MODE_WAIT) {
		if (!opt.path || opt.path[0] != '/' || strpbrk(opt.path, " \r\n") ||
		    strlen(opt.path) > 900)
			die("%s needs --path /... (no spaces, at most 900 bytes)",
			    opt.mode_name);
	}
	if (opt.mode == MODE_WAIT)
		return run_wait();
	if (!opt.total)
		die("%s needs --total N", opt.mode_name);
	for (const char *p = opt.prefix; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      is_digit(*p) || *p == '.' || *p == '_' || *p == '-'))
			die("--prefix: only [A-Za-z0-9._-] is allowed in job names");
	if (strlen(opt.prefix) > 150)
		die("--prefix: too long");
	g_sched_esc = json_escape(opt.schedule);
	if (strlen(g_sched_esc) > 4096)
		die("--schedule: too long");

	g_units = opt.mode == MODE_BATCH ? (opt.total + opt.batch - 1) / opt.batch
					 : opt.total;
	if (opt.conns > g_units)
		opt.conns = g_units;
	if (opt.threads > opt.conns)
		opt.threads = opt.conns;
	g_lat = xmalloc((size_t)g_units * sizeof *g_lat);
	memset(g_lat, 0xff, (size_t)g_units * sizeof *g_lat);

	ws = calloc((size_t)opt.threads, sizeof *ws);
	cs = calloc((size_t)opt.conns, sizeof *cs);
	if (!ws || !cs)
		die("out of memory");
	{
		size_t wcap = request_cap();
		long off = 0;
		for (long t = 0; t < opt.threads; t++) {
			struct worker *w = &ws[t];
			long n = opt.conns / opt.threads + (t < opt.conns % opt.threads);
			w->c = cs + off;
			w->nc = (uint32_t)n;
			off += n;
			for (long k = 0; k < n; k++) {
				struct conn *c = &w->c[k];
				c->w = w;
				c->idx = (uint32_t)k;
				c->fd = -1;
				c->wcap = wcap;
				c->wbuf = xmalloc(wcap);
				c->rcap = RBUF_MIN;
				c->rbuf = xmalloc(c->rcap);
				resp_init(&c->r, capture, c);
			}
		}
	}

	atomic_store(&g_workers_left, (int)opt.threads);
	t0 = now_ns();
	for (long t = 0; t < opt.threads; t++) {
		int rc = pthread_create(&ws[t].th, NULL, worker_main, &ws[t]);
		if (rc)
			die("pthread_create: %s", strerror(rc));
	}
	if (opt.progress) {
		long last = 0;
		uint64_t tl = t0;
		while (atomic_load(&g_workers_left) > 0) {
			struct timespec d = {0, 50000000};
			uint64_t t = now_ns();
			nanosleep(&d, NULL);
			if (t - tl >= 1000000000u) {
				long dn = atomic_load(&g_done);
				fprintf(stderr, "  [%6.1fs] %ld/%ld done, %.0f/s\n",
					(double)(t - t0) / 1e9, dn, g_units,
					(double)(dn - last) * 1e9 / (double)(t - tl));
				last = dn;
				tl = t;
			}
		}
	}
	for (long t = 0; t < opt.threads; t++) {
		pthread_join(ws[t].th, NULL);
		if (ws[t].t_end > t_end)
			t_end = ws[t].t_end;
	}

	/* ---- aggregate ---- */
	struct worker sum;
	memset(&sum, 0, sizeof sum);
	for (long t = 0; t < opt.threads; t++) {
		struct worker *w = &ws[t];
		for (int s = 0; s < NSTATUS; s++)
			sum.status[s] += w->status[s];
		sum.failed += w->failed;
		sum.timeouts += w->timeouts;
		sum.closed += w->closed;
		sum.reconnects += w->reconnects;
		sum.retries += w->retries;
		sum.proto_errors += w->proto_errors;
		sum.connect_errors += w->connect_errors;
		sum.bytes_out += w->bytes_out;
		sum.bytes_in += w->bytes_in;
		sum.opened += w->opened;
		sum.ok_jobs += w->ok_jobs;
		if (w->last_errno)
			sum.last_errno = w->last_errno;
		if (!sum.sample_status && w->sample_status) {
			sum.sample_status = w->sample_status;
			memcpy(sum.sample, w->sample, sizeof sum.sample);
		}
	}
	size_t nl = 0;
	uint64_t lsum = 0;
	for (long u = 0; u < g_units; u++)
		if (g_lat[u] != LAT_NONE) {
			lsum += g_lat[u];
			g_lat[nl++] = g_lat[u];
		}
	qsort(g_lat, nl, sizeof *g_lat, cmp_u32);
	uint64_t ok = 0, responses = 0;
	for (int s = 0; s < NSTATUS; s++) {
		responses += sum.status[s];
		if (s >= 200 && s < 300)
			ok += sum.status[s];
	}
	long jobs = opt.mode == MODE_BATCH || opt.mode == MODE_PUT ? opt.total : 0;
	double el = (double)(t_end - t0) / 1e9;
	double rps = el > 0 ? (double)responses / el : 0;
	double jps = el > 0 ? (double)sum.ok_jobs / el : 0;
	uint32_t p50 = pct(g_lat, nl, 50), p90 = pct(g_lat, nl, 90),
		 p99 = pct(g_lat, nl, 99), p999 = pct(g_lat, nl, 99.9),
		 mx = nl ? g_lat[nl - 1] : 0, mn = nl ? g_lat[0] : 0;
	double mean = nl ? (double)lsum / (double)nl : 0;
	uint64_t non2xx = responses - ok;

	FILE *h = opt.json ? stderr : stdout;
	fprintf(h, "bench_load %s: %s, conns %ld, threads %ld", opt.mode_name,
		g_srv.hosthdr, opt.conns, opt.threads);
	if (opt.mode == MODE_BATCH)
		fprintf(h, ", %ld jobs in batches of %ld", opt.total, opt.batch);
	else if (opt.mode == MODE_GET)
		fprintf(h, ", GET %s", opt.path);
	fputc('\n', h);
	fprintf(h, "  requests    %" PRIu64 " answered of %ld in %.3f s: %.1f req/s\n",
		responses, g_units, el, rps);
	if (jobs)
		fprintf(h, "  jobs        %" PRIu64 " of %ld accepted (2xx): %.1f jobs/s\n",
			sum.ok_jobs, jobs, jps);
	fprintf(h, "  latency us  min %u  p50 %u  p90 %u  p99 %u  p99.9 %u  max %u  mean %.0f\n",
		mn, p50, p90, p99, p999, mx, mean);
	fprintf(h, "  status     ");
	for (int s = 0; s < NSTATUS; s++)
		if (sum.status[s])
			fprintf(h, " %d: %" PRIu64, s, sum.status[s]);
	if (!responses)
		fprintf(h, " (no responses)");
	fputc('\n', h);
	if (atomic_load(&g_abort))
		fprintf(h, "  aborted     %ld requests never sent\n",
			g_units - atomic_load(&g_done));
	fprintf(h, "  errors      non-2xx %" PRIu64 ", failed %" PRIu64 ", timeouts %" PRIu64
		   ", closed by server %" PRIu64 ", protocol %" PRIu64 ", retries %" PRIu64
		   ", reconnects %" PRIu64 ", connect errors %" PRIu64 "\n",
		non2xx, sum.failed, sum.timeouts, sum.closed, sum.proto_errors,
		sum.retries, sum.reconnects, sum.connect_errors);
	fprintf(h, "  traffic     %.1f MB out, %.1f MB in, %" PRIu64 " connections opened\n",
		(double)sum.bytes_out / 1e6, (double)sum.bytes_in / 1e6, sum.opened);
	if (sum.connect_errors && sum.last_errno)
		fprintf(h, "  last connect error: %s\n", strerror(sum.last_errno));
	if (sum.sample_status) {
		char *p;
		for (p = sum.sample; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		fprintf(h, "  first non-2xx (%d): %s\n", sum.sample_status, sum.sample);
	}

	if (opt.json) {
		printf("{\"mode\":\"%s\",\"addr\":\"%s\",\"conns\":%ld,\"threads\":%ld,"
		       "\"total\":%ld,\"batch\":%ld,\"requests\":%ld,\"responses\":%" PRIu64
		       ",\"ok\":%" PRIu64 ",\"non2xx\":%" PRIu64 ",\"failed\":%" PRIu64
		       ",\"timeouts\":%" PRIu64 ",\"closed\":%" PRIu64 ",\"protocol_errors\":%" PRIu64
		       ",\"retries\":%" PRIu64 ",\"reconnects\":%" PRIu64
		       ",\"connect_errors\":%" PRIu64 ",\"unsent\":%ld,\"elapsed_s\":%.6f,\"req_per_s\":%.1f,"
		       "\"jobs\":%" PRIu64 ",\"jobs_per_s\":%.1f,\"min_us\":%u,\"p50_us\":%u,\"p90_us\":%u,"
		       "\"p99_us\":%u,\"p999_us\":%u,\"max_us\":%u,\"mean_us\":%.1f,"
		       "\"bytes_out\":%" PRIu64 ",\"bytes_in\":%" PRIu64 ",\"status\":{",
		       opt.mode_name, g_srv.hosthdr, opt.conns, opt.threads, opt.total,
		       opt.mode == MODE_BATCH ? opt.batch : 1, g_units, responses, ok,
		       non2xx, sum.failed, sum.timeouts, sum.closed, sum.proto_errors,
		       sum.retries, sum.reconnects, sum.connect_errors,
		       g_units - atomic_load(&g_done), el, rps,
		       sum.ok_jobs, jps,
		       mn, p50, p90, p99, p999, mx, mean, sum.bytes_out, sum.bytes_in);
		int first = 1;
		for (int s = 0; s < NSTATUS; s++)
			if (sum.status[s]) {
				printf("%s\"%d\":%" PRIu64, first ? "" : ",", s, sum.status[s]);
				first = 0;
			}
		printf("}}\n");
	}
	fflush(stdout);

	for (long k = 0; k < opt.conns; k++) {
		free(cs[k].wbuf);
		free(cs[k].rbuf);
	}
	free(cs);
	free(ws);
	free(g_lat);
	free(g_sched_esc);
	if (atomic_load(&g_abort) && !responses)
		return 2;
	return ok == (uint64_t)g_units ? 0 : 1;
}
