/*
 * bench_runs: how many runs per second ONE horad node carries end to end.
 *
 *   bench_runs --addr 127.0.0.1:PORT --rate R --seconds S [options]
 *
 * Every run goes the whole way a real run goes:
 *
 *   fire      a feeder thread creates R*S one-shot jobs ("@at <instant>",
 *             queue --queue) with POST /v1/jobs:batch, job i due at
 *             t0 + i/R, t0 = start + --lead-ms, each about --lead-ms ahead
 *             of its instant, in batches of at most 1000 (100 ms of runs);
 *             the scheduler fires each at its instant;
 *   hand out  --streams push streams (POST /v1/queues/Q/stream, workers
 *             w0..wN-1, --inflight credit each) deliver the runs as NDJSON
 *             lines, which are queued per worker;
 *   complete  --completers keep-alive connections report them succeeded
 *             with POST /v1/runs:complete, up to --complete-batch runs of
 *             one worker per request, closed loop (the next request goes
 *             out when the answer is in).
 *
 * Figures: jobs created, runs delivered and completed (each run is tied to
 * its job's index by the job name, so duplicates and losses are exact);
 * end-to-end throughput = completed runs / (last completion - t0); the
 * delivery lateness of each run's first delivery (wall time its line was
 * read minus its scheduled_at) p50/p99/max; runs never delivered or never
 * completed by --grace-s after the last due instant.  When --rate is above
 * what the node sustains, runs wait for credit, lateness grows and the
 * throughput is the node's: nothing is trimmed.
 *
 * Raw sockets, libc and pthreads only, like bench_load: one thread per
 * connection, blocking sockets whose 200 ms timeouts let every loop see the
 * stop flag (end of the run or SIGINT) soon.  Responses are parsed with
 * the HTTP/1.1 parser of loadgen.c, which bench_load uses too
 * (Content-Length, chunked, read-until-close, 1xx); NDJSON lines are
 * scanned for "id", "attempt", "job" and "scheduled_at" without a JSON
 * library.  503 and 429 are retried after
 * 50 ms for up to 30 s; a request whose connection broke is sent once more
 * on a new connection; a stream that ends is reopened, at most 3 times.
 *
 * Exit status: 0 all R*S jobs were created and all their runs completed,
 * 1 otherwise (the figures are still printed), 2 bad usage or the server
 * could not be reached.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"

#define BODY_MAX (64u * 1024u * 1024u)  /* unconsumed body bytes kept */
#define SLICE_US 200000                 /* socket timeout: stop-flag poll */
#define REQ_TIMEOUT_NS (30ull * 1000000000ull) /* one request, 503s included */
#define BUSY_PAUSE_MS 50                /* pause after a 503 or 429 */
#define STREAM_REOPEN_MAX 3             /* reopens per stream */
#define BATCH_MAX 1000                  /* jobs per jobs:batch request */
#define ID_MAX 32                       /* longest run id kept */
#define N_MAX 20000000L                 /* jobs per benchmark */
#define ERRORS_SHOWN 5                  /* error answers printed */

enum { E_BROKEN = -1, E_TIMEOUT = -2, E_STOP = -3 };

static struct {
	long rate, seconds, streams, inflight, completers, cbatch;
	long lead_ms, grace_s, lease_ms;
	const char *queue, *token;
	int progress, metrics;
} opt = {
	.streams = 4, .inflight = 200, .completers = 4, .cbatch = 100,
	.lead_ms = 1500, .grace_s = 10, .lease_ms = 60000, .queue = "bq",
	.metrics = 1,
};

const char loadgen_prog[] = "bench_runs";

static struct target g_srv;     /* --addr, --token */
static char g_prefix[64];       /* job names: g_prefix + index */
static size_t g_prefix_len;
static long g_n;                /* jobs to create: rate * seconds */
static int64_t g_t0_us;         /* wall time job 0 is due */
static atomic_int g_stop;       /* end of the run: every loop returns */
static atomic_int g_sigint;
static atomic_int g_feeder_done;
static atomic_int g_errors_shown;

/* Per job index: created (feeder), deliveries, completed, lateness. */
static unsigned char *g_made;
static atomic_uchar *g_deliv;
static atomic_uchar *g_done;
static int32_t *g_late_us;      /* first delivery: read time - scheduled_at */

static struct {
	atomic_long created, create_failed, late_created, batches;
	atomic_llong batch_us_sum, batch_us_max, min_lead_us;
	atomic_long lines, first_deliveries, redeliveries, foreign, bad_lines;
	atomic_long completed, foreign_done, rejected, creqs, cruns;
	atomic_llong last_deliver_us, last_done_us;
	atomic_long stream_opens, streams_lost;
} g_st;

/* Counters of one kind of connection. */
struct role {
	const char *name;
	atomic_long requests, busy, reopens, failures, opened;
};
static struct role r_feed = {.name = "feeder"}, r_stream = {.name = "streams"},
		   r_compl = {.name = "completers"}, r_misc = {.name = "probe"};

static int64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(long ms)
{
	struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&d, &d) != 0 && errno == EINTR && !atomic_load(&g_sigint))
		;
}

static int stopping(void)
{
	return atomic_load_explicit(&g_stop, memory_order_relaxed) ||
	       atomic_load_explicit(&g_sigint, memory_order_relaxed);
}

static void atomic_max(atomic_llong *a, long long v)
{
	long long cur = atomic_load(a);
	while (v > cur && !atomic_compare_exchange_weak(a, &cur, v))
		;
}

static void atomic_min(atomic_llong *a, long long v)
{
	long long cur = atomic_load(a);
	while (v < cur && !atomic_compare_exchange_weak(a, &cur, v))
		;
}

/* Wall time job i is due, in microseconds. */
static int64_t due_us(long i)
{
	return g_t0_us + (int64_t)i * 1000000 / opt.rate;
}

/* ---- growable buffer ------------------------------------------------- */

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_reserve(struct buf *b, size_t extra)
{
	size_t cap = b->cap ? b->cap : 4096;
	if (b->cap - b->len > extra)
		return;
	while (cap - b->len <= extra)
		cap *= 2;
	b->p = realloc(b->p, cap);
	if (!b->p)
		die("out of memory (%zu bytes)", cap);
	b->cap = cap;
}

static void buf_add(struct buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_fmt(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_fmt(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	buf_reserve(b, 256);
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("vsnprintf failed");
	if ((size_t)n >= b->cap - b->len) {
		buf_reserve(b, (size_t)n);
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* Remove the first n bytes. */
static void buf_drop(struct buf *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

/* ---- blocking keep-alive connections ---------------------------------- */

struct hconn {
	int fd;                 /* -1 when closed */
	int nostop;             /* ignore the stop flag (the final /metrics) */
	struct role *role;
	struct buf in;          /* received bytes the parser has not consumed */
	struct resp r;
	struct buf body;        /* decoded body bytes not consumed yet */
	int overflow;           /* more than BODY_MAX body bytes piled up */
	int64_t t_recv_us;      /* wall time of the last receive */
};

/* The resp_body_fn of c->r: appends to c->body, up to BODY_MAX. */
static void hc_body(void *arg, int status, const char *p, size_t n)
{
	struct hconn *c = arg;
	(void)status;
	if (c->body.len + n > BODY_MAX) {
		c->overflow = 1;
		return;
	}
	buf_add(&c->body, p, n);
}

static void hc_init(struct hconn *c, struct role *role)
{
	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->role = role;
	resp_init(&c->r, hc_body, c);
}

/* Ready c for the next response. */
static void hc_reset(struct hconn *c)
{
	resp_reset(&c->r);
	c->overflow = 0;
	c->body.len = 0;
}

static void hc_close(struct hconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->in.len = 0;
}

static void hc_free(struct hconn *c)
{
	hc_close(c);
	free(c->in.p);
	free(c->body.p);
}

static int hc_stop(const struct hconn *c)
{
	return !c->nostop && stopping();
}

/* Connect (blocking, 200 ms socket timeouts).  0, or -1. */
static int hc_open(struct hconn *c)
{
	struct timeval tv = {0, SLICE_US};
	int one = 1, fd;

	hc_close(c);
	fd = socket(g_srv.sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&g_srv.sa, g_srv.salen) != 0) {
		close(fd);
		return -1;
	}
	c->fd = fd;
	atomic_fetch_add(&c->role->opened, 1);
	return 0;
}

/* Send head and body whole.  0, or -1 (connection broken, timeout, stop). */
static int hc_send(struct hconn *c, const char *head, size_t hl, const struct buf *body)
{
	struct iovec iov[2] = {{(void *)head, hl},
			       {body ? body->p : NULL, body ? body->len : 0}};
	struct msghdr m;
	uint64_t deadline = now_ns() + REQ_TIMEOUT_NS;

	memset(&m, 0, sizeof m);
	m.msg_iov = iov;
	m.msg_iovlen = 2;
	while (iov[0].iov_len + iov[1].iov_len > 0) {
		ssize_t n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
		size_t k = n > 0 ? (size_t)n : 0;
		if (n < 0 && (errno == EAGAIN || errno == EINTR) &&
		    !hc_stop(c) && now_ns() < deadline)
			continue;
		if (n < 0)
			return -1;
		for (int i = 0; i < 2; i++) {
			size_t t = k < iov[i].iov_len ? k : iov[i].iov_len;
			iov[i].iov_base = (char *)iov[i].iov_base + t;
			iov[i].iov_len -= t;
			k -= t;
		}
	}
	return 0;
}

/* One receive: bytes read, 0 closed by the peer, -1 error, -2 nothing
 * within the 200 ms slice. */
static ssize_t hc_recv(struct hconn *c)
{
	ssize_t n;

	buf_reserve(&c->in, 64 * 1024);
	n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len - 1, 0);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -2 : -1;
	if (n > 0) {
		c->t_recv_us = wall_us();
		c->in.len += (size_t)n;
	}
	return n;
}

/* Run the parser over what was received: 1 response complete, 0 more
 * needed, -1 protocol error. */
static int hc_parse(struct hconn *c)
{
	size_t used = 0;
	int rc = resp_parse(&c->r, c->in.p, c->in.len, &used);
	if (used)
		buf_drop(&c->in, used);
	return c->overflow ? -1 : rc;
}

/* Read until the response is complete: its status, or E_*. */
static int hc_await(struct hconn *c, uint64_t deadline)
{
	for (;;) {
		int rc = hc_parse(c);
		ssize_t n;
		if (rc > 0) {
			if (c->r.close || c->in.len)
				hc_close(c);
			return c->r.status;
		}
		if (rc < 0)
			break;
		n = hc_recv(c);
		if (n == 0 && c->r.st == P_BODY_EOF) {
			hc_close(c);
			return c->r.status;
		}
		if (n == 0 || n == -1)
			break;
		if (n == -2 && hc_stop(c)) {
			hc_close(c);
			return E_STOP;
		}
		if (n == -2 && now_ns() > deadline) {
			hc_close(c);
			return E_TIMEOUT;
		}
	}
	hc_close(c);
	return E_BROKEN;
}

static int request_head(char *out, size_t cap, const char *method,
			const char *path, const struct buf *body, const char *extra)
{
	int n;
	if (body)
		n = snprintf(out, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s"
			     "Content-Type: application/json\r\n"
			     "Content-Length: %zu\r\n\r\n",
			     method, path, g_srv.hosthdr, g_srv.auth, extra, body->len);
	else
		n = snprintf(out, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s\r\n",
			     method, path, g_srv.hosthdr, g_srv.auth, extra);
	if (n < 0 || (size_t)n >= cap)
		die("request head too long");
	return n;
}

/* Send one request and read its answer: the status, or E_*. */
static int hc_roundtrip(struct hconn *c, const char *method, const char *path,
			const struct buf *body, uint64_t deadline)
{
	char head[1024];
	int hl = request_head(head, sizeof head, method, path, body, "");

	hc_reset(c);
	c->in.len = 0;
	if (hc_send(c, head, (size_t)hl, body) != 0) {
		hc_close(c);
		return hc_stop(c) ? E_STOP : E_BROKEN;
	}
	return hc_await(c, deadline);
}

/*
 * A request with the retries: a broken connection is reopened and the
 * request sent once more; 503 and 429 are sent again after 50 ms until
 * 30 s have passed.  The status, or E_*; the body is in c->body.
 */
static int http_call(struct hconn *c, const char *method, const char *path,
		     const struct buf *body)
{
	uint64_t deadline = now_ns() + REQ_TIMEOUT_NS;
	int reopened = 0;

	for (;;) {
		int rc = E_BROKEN;
		if (hc_stop(c))
			return E_STOP;
		atomic_fetch_add(&c->role->requests, 1);
		if (c->fd >= 0 || hc_open(c) == 0)
			rc = hc_roundtrip(c, method, path, body, deadline);
		if (rc == E_BROKEN && !reopened) {
			reopened = 1;
			atomic_fetch_add(&c->role->reopens, 1);
			continue;
		}
		if ((rc == 503 || rc == 429) &&
		    now_ns() + BUSY_PAUSE_MS * 1000000ull < deadline) {
			atomic_fetch_add(&c->role->busy, 1);
			sleep_ms(BUSY_PAUSE_MS);
			continue;
		}
		if (rc != 200 && rc != 201 && rc != E_STOP)
			atomic_fetch_add(&c->role->failures, 1);
		return rc;
	}
}

/* Print an error answer (the first few of the whole run only). */
static void note_error(const char *who, int status, const char *text, size_t len)
{
	if (atomic_fetch_add(&g_errors_shown, 1) >= ERRORS_SHOWN)
		return;
	if (len > 300)
		len = 300;
	if (status == E_BROKEN)
		fprintf(stderr, "bench_runs: %s: connection failed\n", who);
	else if (status == E_TIMEOUT)
		fprintf(stderr, "bench_runs: %s: no answer within 30 s\n", who);
	else
		fprintf(stderr, "bench_runs: %s: %d %.*s\n", who, status, (int)len,
			text ? text : "");
}

/* ---- NDJSON / JSON scanning -------------------------------------------- */

/* The value of member key (quotes included, e.g. "\"id\"") in s[0..n):
 * a pointer to its first byte, or NULL.  Enough for horad's one-line
 * objects, whose strings hold no quoted keys. */
static const char *json_value(const char *s, size_t n, const char *key)
{
	const char *p = s, *e = s + n;
	size_t kl = strlen(key);

	while (p < e && (p = memmem(p, (size_t)(e - p), key, kl)) != NULL) {
		const char *v = p + kl;
		while (v < e && *v == ' ')
			v++;
		if (v < e && *v == ':') {
			v++;
			while (v < e && *v == ' ')
				v++;
			return v;
		}
		p += kl;
	}
	return NULL;
}

/* A string member without escapes: its length (copied into out, NUL
 * ended), or -1 if absent, not a string or longer than cap - 1. */
static int json_str(const char *s, size_t n, const char *key, char *out, size_t cap)
{
	const char *v = json_value(s, n, key), *e = s + n, *q;
	if (!v || v >= e || *v != '"')
		return -1;
	q = memchr(v + 1, '"', (size_t)(e - v - 1));
	if (!q || (size_t)(q - v - 1) >= cap)
		return -1;
	memcpy(out, v + 1, (size_t)(q - v - 1));
	out[q - v - 1] = '\0';
	return (int)(q - v - 1);
}

/* Days since 1970-01-01 of a civil date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;
	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DDTHH:MM:SS[.f...]Z" to microseconds since the epoch; -1 if
 * it is not that. */
static int64_t parse_utc_us(const char *s)
{
	int y, mo, d, h, mi, sec, used = 0;
	int64_t us = 0, scale = 100000;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec,
		   &used) != 6 || used != 19)
		return -1;
	s += 19;
	if (*s == '.')
		for (s++; is_digit(*s); s++, scale /= 10)
			us += (*s - '0') * scale;
	if (*s != 'Z')
		return -1;
	return ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000000LL +
	       (int64_t)sec * 1000000 + us;
}

/* The index of one of our jobs from its name, or -1 for anyone else's. */
static long job_index(const char *name, size_t len)
{
	long i = 0;
	if (len <= g_prefix_len || len - g_prefix_len > 10 ||
	    memcmp(name, g_prefix, g_prefix_len) != 0)
		return -1;
	for (size_t k = g_prefix_len; k < len; k++) {
		if (!is_digit(name[k]))
			return -1;
		i = i * 10 + (name[k] - '0');
	}
	return i < g_n ? i : -1;
}

/* ---- completion queue: delivered runs, per worker --------------------- */

struct item {
	char id[ID_MAX];
	int attempt;
	long idx;               /* job index, -1 for a foreign run */
};

struct ring {
	struct item *v;
	size_t cap, head, len;  /* cap a power of two */
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ring *q;         /* one per worker (stream) */
	long total;
} g_cq = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void ring_grow(struct ring *r)
{
	size_t cap = r->cap ? r->cap * 2 : 1024;
	struct item *v = xzalloc(cap * sizeof *v);
	for (size_t k = 0; k < r->len; k++)
		v[k] = r->v[(r->head + k) & (r->cap - 1)];
	free(r->v);
	r->v = v;
	r->cap = cap;
	r->head = 0;
}

static void cq_push(int w, const struct item *it)
{
	struct ring *r = &g_cq.q[w];
	pthread_mutex_lock(&g_cq.mu);
	if (r->len == r->cap)
		ring_grow(r);
	r->v[(r->head + r->len) & (r->cap - 1)] = *it;
	r->len++;
	g_cq.total++;
	pthread_cond_signal(&g_cq.cv);
	pthread_mutex_unlock(&g_cq.mu);
}

/* Take up to max runs of the worker with the most waiting, waiting up to
 * 100 ms for one.  Their number (0 if none), the worker in *w. */
static size_t cq_take(struct item *out, size_t max, int *w)
{
	struct timespec ts;
	size_t n = 0;

	pthread_mutex_lock(&g_cq.mu);
	if (g_cq.total == 0 && !stopping()) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 100000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&g_cq.cv, &g_cq.mu, &ts);
	}
	if (g_cq.total > 0) {
		struct ring *r;
		*w = 0;
		for (int k = 1; k < opt.streams; k++)
			if (g_cq.q[k].len > g_cq.q[*w].len)
				*w = k;
		r = &g_cq.q[*w];
		for (; n < max && r->len; n++, r->len--) {
			out[n] = r->v[r->head];
			r->head = (r->head + 1) & (r->cap - 1);
		}
		g_cq.total -= (long)n;
	}
	pthread_mutex_unlock(&g_cq.mu);
	return n;
}

static long cq_waiting(void)
{
	long n;
	pthread_mutex_lock(&g_cq.mu);
	n = g_cq.total;
	pthread_mutex_unlock(&g_cq.mu);
	return n;
}

/* ---- feeder ------------------------------------------------------------- */

/* Jobs due by wall time t: how many of the g_n. */
static long jobs_due_by(int64_t t)
{
	long k;
	if (t < g_t0_us)
		return 0;
	k = (long)((t - g_t0_us) * opt.rate / 1000000) + 1;
	while (k > 0 && due_us(k - 1) > t)     /* integer rounding */
		k--;
	return k < g_n ? k : g_n;
}

static void put_at(char *out, size_t cap, int64_t us)
{
	time_t sec = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(us % 1000000));
}

static void build_batch(struct buf *b, long first, long end)
{
	char at[64];
	b->len = 0;
	buf_add(b, "{\"jobs\":[", 9);
	for (long i = first; i < end; i++) {
		put_at(at, sizeof at, due_us(i));
		buf_fmt(b, "%s{\"name\":\"%s%ld\",\"schedule\":\"@at %s\",\"queue\":\"%s\"}",
			i > first ? "," : "", g_prefix, i, at, opt.queue);
	}
	buf_add(b, "]}", 2);
}

/* Account for the answer to the batch [first, end). */
static void batch_answer(const struct hconn *c, long first, long end, int status,
			 uint64_t took_ns)
{
	int64_t now = wall_us();
	long late = 0;

	if (status != 200 && status != 201) {
		atomic_fetch_add(&g_st.create_failed, end - first);
		note_error("jobs:batch", status, c->body.p, c->body.len);
		return;
	}
	for (long i = first; i < end; i++) {
		g_made[i] = 1;
		late += due_us(i) < now;
	}
	atomic_fetch_add(&g_st.created, end - first);
	atomic_fetch_add(&g_st.late_created, late);
	atomic_fetch_add(&g_st.batches, 1);
	atomic_fetch_add(&g_st.batch_us_sum, (long long)(took_ns / 1000));
	atomic_max(&g_st.batch_us_max, (long long)(took_ns / 1000));
	atomic_min(&g_st.min_lead_us, due_us(first) - now);
}

/* Creates the jobs, each about --lead-ms ahead of its instant, in batches
 * of 100 ms of runs (at most BATCH_MAX; more than 100 ms when behind). */
static void *feeder_main(void *arg)
{
	struct hconn c;
	struct buf body = {0};
	long next = 0, chunk = opt.rate / 10;

	(void)arg;
	hc_init(&c, &r_feed);
	chunk = chunk < 1 ? 1 : chunk > BATCH_MAX ? BATCH_MAX : chunk;
	while (next < g_n && !stopping()) {
		long ready = jobs_due_by(wall_us() + opt.lead_ms * 1000);
		long want = next + chunk < g_n ? next + chunk : g_n, end;
		uint64_t t;
		int status;
		if (ready < want) {
			int64_t wait = due_us(want - 1) - opt.lead_ms * 1000 - wall_us();
			sleep_ms(wait < 1000 ? 1 : wait > 20000 ? 20 : (long)(wait / 1000));
			continue;
		}
		/* behind: catch up in bigger batches */
		end = ready < next + BATCH_MAX ? ready : next + BATCH_MAX;
		build_batch(&body, next, end);
		t = now_ns();
		status = http_call(&c, "POST", "/v1/jobs:batch", &body);
		if (status == E_STOP)
			break;
		batch_answer(&c, next, end, status, now_ns() - t);
		next = end;
	}
	hc_free(&c);
	free(body.p);
	atomic_store(&g_feeder_done, 1);
	return NULL;
}

/* ---- streams ------------------------------------------------------------- */

struct stream {
	pthread_t th;
	int w;                  /* worker index: name "w<w>" */
	struct hconn c;
};

/* One NDJSON line: a run handed to worker s->w, read at t. */
static void stream_run(struct stream *s, const char *line, size_t len, int64_t t)
{
	struct item it;
	char job[256], at[64];
	const char *v = json_value(line, len, "\"attempt\"");
	int jl = json_str(line, len, "\"job\"", job, sizeof job);
	int64_t sched;

	atomic_fetch_add(&g_st.lines, 1);
	if (json_str(line, len, "\"id\"", it.id, sizeof it.id) <= 0) {
		atomic_fetch_add(&g_st.bad_lines, 1);
		return;
	}
	it.attempt = v ? atoi(v) : 0;
	it.idx = jl > 0 ? job_index(job, (size_t)jl) : -1;
	if (it.idx < 0) {
		atomic_fetch_add(&g_st.foreign, 1);
	} else if (atomic_fetch_add(&g_deliv[it.idx], 1) == 0) {
		sched = json_str(line, len, "\"scheduled_at\"", at, sizeof at) > 0
				? parse_utc_us(at) : -1;
		if (sched < 0)
			atomic_fetch_add(&g_st.bad_lines, 1);
		else
			g_late_us[it.idx] = t - sched > INT32_MAX ? INT32_MAX
					    : t - sched < INT32_MIN ? INT32_MIN
					    : (int32_t)(t - sched);
		atomic_fetch_add(&g_st.first_deliveries, 1);
		atomic_max(&g_st.last_deliver_us, t);
	} else {
		atomic_fetch_add(&g_st.redeliveries, 1);
	}
	cq_push(s->w, &it);
}

/* Consume the complete lines of the stream's body (empty ones are
 * keep-alives). */
static void stream_lines(struct stream *s)
{
	struct buf *b = &s->c.body;
	size_t pos = 0;
	const char *nl;

	while (pos < b->len && (nl = memchr(b->p + pos, '\n', b->len - pos)) != NULL) {
		size_t len = (size_t)(nl - (b->p + pos));
		if (len && b->p[pos + len - 1] == '\r')
			len--;
		if (len)
			stream_run(s, b->p + pos, len, s->c.t_recv_us);
		pos = (size_t)(nl - b->p) + 1;
	}
	if (pos)
		buf_drop(b, pos);
}

/* Open the stream: 0 once a 200 head is in (lines may follow), else the
 * error status or E_*. */
static int stream_open(struct stream *s)
{
	struct hconn *c = &s->c;
	struct buf body = {0};
	char head[1024], path[300];
	uint64_t deadline = now_ns() + REQ_TIMEOUT_NS;
	int hl, rc;

	if (hc_open(c) != 0)
		return E_BROKEN;
	snprintf(path, sizeof path, "/v1/queues/%s/stream", opt.queue);
	buf_fmt(&body, "{\"worker\":\"w%d\",\"max_inflight\":%ld,\"lease_ms\":%ld}",
		s->w, opt.inflight, opt.lease_ms);
	hl = request_head(head, sizeof head, "POST", path, &body,
			  "Accept: application/x-ndjson\r\n");
	hc_reset(c);
	rc = hc_send(c, head, (size_t)hl, &body);
	free(body.p);
	atomic_fetch_add(&r_stream.requests, 1);
	if (rc != 0) {
		hc_close(c);
		return E_BROKEN;
	}
	for (;;) {
		ssize_t n;
		rc = hc_parse(c);
		if (rc == 0 && c->r.st != P_HEAD && c->r.status == 200)
			return 0;
		if (rc != 0)
			break;
		n = hc_recv(c);
		if (n == 0 || n == -1 || hc_stop(c) || now_ns() > deadline)
			break;
	}
	rc = c->r.status;
	hc_close(c);
	if (hc_stop(c))
		return E_STOP;
	return rc > 0 && rc != 200 ? rc : E_BROKEN;
}

/* Read lines until the stream ends, breaks or the run stops. */
static void stream_read(struct stream *s)
{
	struct hconn *c = &s->c;
	for (;;) {
		ssize_t n;
		int rc;
		stream_lines(s);
		if (stopping())
			return;
		n = hc_recv(c);
		if (n == -2)
			continue;
		if (n <= 0)
			return;
		rc = hc_parse(c);
		if (rc != 0) {
			stream_lines(s);
			return;
		}
	}
}

static void *stream_main(void *arg)
{
	struct stream *s = arg;
	int reopens = 0;
	char who[32];

	snprintf(who, sizeof who, "stream w%d", s->w);
	while (!stopping()) {
		int rc = stream_open(s);
		if (rc == 0) {
			atomic_fetch_add(&g_st.stream_opens, 1);
			stream_read(s);
			hc_close(&s->c);
			if (stopping())
				break;
			rc = E_BROKEN;
		}
		if (rc == 503 || rc == 429) {
			atomic_fetch_add(&r_stream.busy, 1);
			sleep_ms(BUSY_PAUSE_MS);
			continue;
		}
		if (rc == E_STOP)
			break;
		atomic_fetch_add(&r_stream.failures, 1);
		if (rc != E_BROKEN || reopens++ >= STREAM_REOPEN_MAX) {
			note_error(who, rc, s->c.body.p, s->c.body.len);
			atomic_fetch_add(&g_st.streams_lost, 1);
			break;
		}
		atomic_fetch_add(&r_stream.reopens, 1);
		sleep_ms(BUSY_PAUSE_MS);
	}
	hc_free(&s->c);
	return NULL;
}

/* ---- completers ---------------------------------------------------------- */

static void build_complete(struct buf *b, int w, const struct item *it, size_t n)
{
	b->len = 0;
	buf_fmt(b, "{\"worker\":\"w%d\",\"runs\":[", w);
	for (size_t k = 0; k < n; k++)
		buf_fmt(b, "%s{\"id\":\"%s\",\"attempt\":%d,\"status\":\"succeeded\"}",
			k ? "," : "", it[k].id, it[k].attempt);
	buf_add(b, "]}", 2);
}

static void mark_done(const struct item *it, int64_t now)
{
	if (it->idx < 0) {
		atomic_fetch_add(&g_st.foreign_done, 1);
	} else if (atomic_exchange(&g_done[it->idx], 1) == 0) {
		atomic_fetch_add(&g_st.completed, 1);
		atomic_max(&g_st.last_done_us, now);
	}
}

/* The next "ok" of a runs:complete answer: 1 true, 0 false, -1 none. */
static int next_ok(const char **pp, const char *end)
{
	const char *v = json_value(*pp, (size_t)(end - *pp), "\"ok\"");
	if (!v)
		return -1;
	*pp = v;
	return v < end && *v == 't';
}

/* Account for the answer to completing it[0..n): per run "ok" in order. */
static void complete_answer(const struct hconn *c, const struct item *it,
			    size_t n, int status)
{
	const char *p = c->body.p, *end = p + c->body.len;
	int64_t now = wall_us();

	if (status != 200) {
		atomic_fetch_add(&g_st.rejected, (long)n);
		note_error("runs:complete", status, p, c->body.len);
		return;
	}
	for (size_t k = 0; k < n; k++) {
		int ok = next_ok(&p, end);
		if (ok == 1) {
			mark_done(&it[k], now);
			continue;
		}
		atomic_fetch_add(&g_st.rejected, 1);
		if (ok == 0)
			note_error("runs:complete (one run)", 200, p,
				   (size_t)(end - p));
	}
}

static void *completer_main(void *arg)
{
	struct hconn c;
	struct buf body = {0};
	struct item *items = xzalloc((size_t)opt.cbatch * sizeof *items);

	(void)arg;
	hc_init(&c, &r_compl);
	while (!stopping()) {
		int w = 0, status;
		size_t n = cq_take(items, (size_t)opt.cbatch, &w);
		if (!n)
			continue;
		build_complete(&body, w, items, n);
		status = http_call(&c, "POST", "/v1/runs:complete", &body);
		if (status == E_STOP)
			break;
		atomic_fetch_add(&g_st.creqs, 1);
		atomic_fetch_add(&g_st.cruns, (long)n);
		complete_answer(&c, items, n, status);
	}
	hc_free(&c);
	free(body.p);
	free(items);
	return NULL;
}

/* ---- options --------------------------------------------------------------- */

static void usage(FILE *f)
{
	fputs(
"usage: bench_runs --addr HOST:PORT --rate R --seconds S [options]\n"
"\n"
"Creates R*S one-shot jobs due at R per second, receives their runs on push\n"
"streams and completes them; prints the end-to-end runs/s of the node.\n"
"\n"
"options:\n"
"  --addr HOST:PORT      horad's API (default 127.0.0.1:7070; http:// accepted)\n"
"  --rate R              runs due per second (required)\n"
"  --seconds S           for S seconds (required); R*S jobs in all\n"
"  --streams N           push streams, workers w0..wN-1 (default 4)\n"
"  --inflight K          max_inflight of each stream, 1-1000 (default 200)\n"
"  --completers C        connections completing runs (default 4)\n"
"  --complete-batch B    runs per runs:complete request, 1-1000 (default 100)\n"
"  --queue Q             queue of the jobs and streams (default bq)\n"
"  --lead-ms L           jobs are created about L ms before they are due\n"
"                        (default 1500); the first is due L ms after start\n"
"  --grace-s G           wait at most G s after the last due instant for the\n"
"                        last completions (default 10)\n"
"  --lease-ms T          the streams' lease (default 60000)\n"
"  --token TOKEN         send Authorization: Bearer TOKEN\n"
"  --progress            print the counts every second to stderr\n"
"  --no-metrics          do not print horad's /metrics counters at the end\n"
"\n"
"exit status: 0 all jobs created and all runs completed, 1 otherwise,\n"
"2 bad usage or the server could not be reached\n", f);
}

static void set_option(const char *name, const char *v)
{
	if (!strcmp(name, "--addr"))
		target_addr(&g_srv, v);
	else if (!strcmp(name, "--rate"))
		opt.rate = num_arg(name, v, 1, 1000000);
	else if (!strcmp(name, "--seconds"))
		opt.seconds = num_arg(name, v, 1, 3600);
	else if (!strcmp(name, "--streams"))
		opt.streams = num_arg(name, v, 1, 64);
	else if (!strcmp(name, "--inflight"))
		opt.inflight = num_arg(name, v, 1, 1000);
	else if (!strcmp(name, "--completers"))
		opt.completers = num_arg(name, v, 1, 64);
	else if (!strcmp(name, "--complete-batch"))
		opt.cbatch = num_arg(name, v, 1, 1000);
	else if (!strcmp(name, "--queue"))
		opt.queue = v;
	else if (!strcmp(name, "--lead-ms"))
		opt.lead_ms = num_arg(name, v, 100, 600000);
	else if (!strcmp(name, "--grace-s"))
		opt.grace_s = num_arg(name, v, 1, 3600);
	else if (!strcmp(name, "--lease-ms"))
		opt.lease_ms = num_arg(name, v, 1000, 3600000);
	else if (!strcmp(name, "--token"))
		opt.token = v;
	else {
		usage(stderr);
		die("unknown option '%s'", name);
	}
}

static void parse_args(int argc, char **argv)
{
	int have_addr = 0;
	for (int i = 1; i < argc; i++) {
		char *a = argv[i], *v = NULL, *eq, name[64];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		}
		if (strncmp(a, "--", 2) != 0) {
			usage(stderr);
			die("unexpected argument '%s'", a);
		}
		if (!strcmp(a, "--progress")) {
			opt.progress = 1;
			continue;
		}
		if (!strcmp(a, "--no-metrics")) {
			opt.metrics = 0;
			continue;
		}
		eq = strchr(a, '=');
		snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
		v = eq ? eq + 1 : NULL;
		if (!v && i + 1 >= argc)
			die("%s needs a value", name);
		set_option(name, v ? v : argv[++i]);
		have_addr |= !strcmp(name, "--addr");
	}
	if (!have_addr)
		target_addr(&g_srv, "127.0.0.1:7070");
	if (!opt.rate || !opt.seconds) {
		usage(stderr);
		die("--rate and --seconds are required");
	}
}

static void check_args(void)
{
	if (opt.rate * opt.seconds > N_MAX)
		die("--rate x --seconds: at most %ld jobs", N_MAX);
	g_n = opt.rate * opt.seconds;
	if (!*opt.queue || strlen(opt.queue) > 200 ||
	    strspn(opt.queue, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			      "0123456789._-") != strlen(opt.queue))
		die("--queue: 1-200 of [A-Za-z0-9._-]");
	if (opt.token)
		target_token(&g_srv, opt.token);
}

/* ---- run and report --------------------------------------------------------- */

static void on_sigint(int sig)
{
	(void)sig;
	atomic_store(&g_sigint, 1);
}

static void setup(void)
{
	struct sigaction sa;
	pthread_condattr_t ca;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigint;
	sa.sa_flags = SA_RESETHAND;     /* a second ^C kills */
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g_cq.cv, &ca);
	g_cq.q = xzalloc((size_t)opt.streams * sizeof *g_cq.q);
	g_made = xzalloc((size_t)g_n);
	g_deliv = xzalloc((size_t)g_n * sizeof *g_deliv);
	g_done = xzalloc((size_t)g_n * sizeof *g_done);
	g_late_us = xzalloc((size_t)g_n * sizeof *g_late_us);
	atomic_store(&g_st.min_lead_us, INT64_MAX);
	snprintf(g_prefix, sizeof g_prefix, "br-%lld-%ld-",
		 (long long)(wall_us() / 1000000), (long)getpid());
	g_prefix_len = strlen(g_prefix);
}

/* GET /readyz once: exit 2 if the server cannot be reached or is not ready. */
static void probe(void)
{
	struct hconn c;
	int status;
	hc_init(&c, &r_misc);
	if (hc_open(&c) != 0)
		die("cannot connect to %s: %s", g_srv.hosthdr, strerror(errno));
	status = http_call(&c, "GET", "/readyz", NULL);
	if (status < 0)
		die("%s/readyz: no answer", g_srv.hosthdr);
	if (status != 200)
		die("%s/readyz answered %d", g_srv.hosthdr, status);
	hc_free(&c);
}

static int all_done(void)
{
	return atomic_load(&g_feeder_done) &&
	       atomic_load(&g_st.completed) >= atomic_load(&g_st.created);
}

/* Wait for the end: every created run completed, the grace period over
 * or SIGINT. */
static void wait_end(void)
{
	int64_t end = due_us(g_n - 1) + opt.grace_s * 1000000;
	int64_t next_progress = wall_us() + 1000000;

	while (!atomic_load(&g_sigint) && !all_done() && wall_us() < end) {
		sleep_ms(20);
		if (!opt.progress || wall_us() < next_progress)
			continue;
		next_progress += 1000000;
		fprintf(stderr, "  [%+7.1fs] created %ld  delivered %ld  completed %ld"
			"  waiting for completion %ld\n",
			(double)(wall_us() - g_t0_us) / 1e6, atomic_load(&g_st.created),
			atomic_load(&g_st.first_deliveries),
			atomic_load(&g_st.completed), cq_waiting());
	}
	atomic_store(&g_stop, 1);
	pthread_mutex_lock(&g_cq.mu);
	pthread_cond_broadcast(&g_cq.cv);
	pthread_mutex_unlock(&g_cq.mu);
}

static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static int32_t pct(const int32_t *v, size_t n, double p)
{
	size_t k = pct_rank(n, p);
	return k ? v[k - 1] : 0;
}

/* Print the selected counters of horad's /metrics (those not zero). */
static void print_metrics(void)
{
	static const char *want[] = {
		"hora_runs_fired_total", "hora_dispatch_handed_out_total",
		"hora_dispatch_handed_ahead_total", "hora_runs_finished_total",
		"hora_dispatch_misfires_total", "hora_dispatch_timeouts_total",
		"hora_runs_expired_total", "hora_http_refused_total",
		"hora_dispatch_lateness_seconds_count",
		"hora_dispatch_lateness_seconds_sum", "hora_loop_busy_max_seconds",
		NULL};
	struct hconn c;
	char *line, *save = NULL;

	hc_init(&c, &r_misc);
	c.nostop = 1;
	if (http_call(&c, "GET", "/metrics", NULL) != 200 || !c.body.p) {
		printf("  server      (GET /metrics failed)\n");
		hc_free(&c);
		return;
	}
	for (line = strtok_r(c.body.p, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		size_t len = strlen(line);
		if (len >= 2 && !strcmp(line + len - 2, " 0"))
			continue;       /* zero counters are left out */
		for (int k = 0; want[k]; k++)
			if (!strncmp(line, want[k], strlen(want[k])) &&
			    (line[strlen(want[k])] == ' ' || line[strlen(want[k])] == '{')) {
				printf("  server      %s\n", line);
				break;
			}
	}
	hc_free(&c);
}

struct tally {
	long made, delivered, completed, undelivered, uncompleted;
	int32_t *late;          /* first-delivery lateness, sorted */
	size_t nlate;
};

static void tally(struct tally *t)
{
	memset(t, 0, sizeof *t);
	t->late = xzalloc((size_t)g_n * sizeof *t->late);
	for (long i = 0; i < g_n; i++) {
		int d = atomic_load(&g_deliv[i]) > 0, c = atomic_load(&g_done[i]);
		if (!g_made[i])
			continue;
		t->made++;
		t->delivered += d;
		t->completed += c;
		t->undelivered += !d;
		t->uncompleted += d && !c;
		if (d)
			t->late[t->nlate++] = g_late_us[i];
	}
	qsort(t->late, t->nlate, sizeof *t->late, cmp_i32);
}

static void print_role(const struct role *r)
{
	printf("  http        %-10s %ld requests, %ld answered 503/429 (retried),"
	       " %ld reopened, %ld failed, %ld connections\n", r->name,
	       atomic_load(&r->requests), atomic_load(&r->busy),
	       atomic_load(&r->reopens), atomic_load(&r->failures),
	       atomic_load(&r->opened));
}

static double since_t0(long long us)
{
	return us > g_t0_us ? (double)(us - g_t0_us) / 1e6 : 0;
}

static void report(const struct tally *t, double cpu_s)
{
	long long last_done = atomic_load(&g_st.last_done_us);
	long long last_deliv = atomic_load(&g_st.last_deliver_us);
	long batches = atomic_load(&g_st.batches), creqs = atomic_load(&g_st.creqs);
	long long min_lead = atomic_load(&g_st.min_lead_us);
	double span = since_t0(last_done), dspan = since_t0(last_deliv);

	printf("bench_runs: %s, %ld runs/s for %ld s (%ld runs), queue %s; %ld streams x"
	       " inflight %ld, %ld completers x batch %ld, lead %ld ms\n",
	       g_srv.hosthdr, opt.rate, opt.seconds, g_n, opt.queue, opt.streams,
	       opt.inflight, opt.completers, opt.cbatch, opt.lead_ms);
	printf("  created     %ld of %ld jobs in %ld batches (mean %.1f ms, max %.1f ms),"
	       " %ld in failed batches; min lead %.3f s; %ld created after their instant\n",
	       t->made, g_n, batches,
	       batches ? (double)atomic_load(&g_st.batch_us_sum) / (double)batches / 1e3 : 0,
	       (double)atomic_load(&g_st.batch_us_max) / 1e3,
	       atomic_load(&g_st.create_failed),
	       min_lead == INT64_MAX ? 0 : (double)min_lead / 1e6,
	       atomic_load(&g_st.late_created));
	printf("  delivered   %ld runs (+%ld redeliveries, %ld foreign, %ld bad lines),"
	       " last at t0+%.3f s: %.1f runs/s\n",
	       t->delivered, atomic_load(&g_st.redeliveries), atomic_load(&g_st.foreign),
	       atomic_load(&g_st.bad_lines), dspan,
	       dspan > 0 ? (double)t->delivered / dspan : 0);
	printf("  completed   %ld runs in %ld requests (mean %.1f runs each),"
	       " %ld rejected by the server, %ld foreign\n",
	       t->completed, creqs,
	       creqs ? (double)atomic_load(&g_st.cruns) / (double)creqs : 0,
	       atomic_load(&g_st.rejected), atomic_load(&g_st.foreign_done));
	printf("  throughput  %.1f runs/s end to end (%ld completed, last at t0+%.3f s;"
	       " offered %ld/s)\n",
	       span > 0 ? (double)t->completed / span : 0, t->completed, span, opt.rate);
	printf("  lateness    p50 %.3f ms  p99 %.3f ms  max %.3f ms (line read minus"
	       " scheduled_at, first deliveries)\n",
	       pct(t->late, t->nlate, 50) / 1e3, pct(t->late, t->nlate, 99) / 1e3,
	       t->nlate ? t->late[t->nlate - 1] / 1e3 : 0.0);
	printf("  missing     %ld never delivered, %ld delivered but not completed"
	       " (grace %ld s after the last instant)%s\n",
	       t->undelivered, t->uncompleted, opt.grace_s,
	       atomic_load(&g_sigint) ? "; interrupted" : "");
	printf("  streams     %ld opened, %ld given up\n",
	       atomic_load(&g_st.stream_opens), atomic_load(&g_st.streams_lost));
	print_role(&r_feed);
	print_role(&r_stream);
	print_role(&r_compl);
	printf("  client CPU  %.2f s\n", cpu_s);
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void start(pthread_t *th, void *(*fn)(void *), void *arg)
{
	int rc = pthread_create(th, NULL, fn, arg);
	if (rc)
		die("pthread_create: %s", strerror(rc));
}

int main(int argc, char **argv)
{
	struct stream *ss;
	pthread_t feeder, *cs;
	struct tally t;

	parse_args(argc, argv);
	check_args();
	setup();
	probe();
	ss = xzalloc((size_t)opt.streams * sizeof *ss);
	cs = xzalloc((size_t)opt.completers * sizeof *cs);
	g_t0_us = wall_us() + opt.lead_ms * 1000;
	for (long k = 0; k < opt.completers; k++)
		start(&cs[k], completer_main, NULL);
	for (int k = 0; k < opt.streams; k++) {
		ss[k].w = k;
		hc_init(&ss[k].c, &r_stream);
		start(&ss[k].th, stream_main, &ss[k]);
	}
	start(&feeder, feeder_main, NULL);
	wait_end();
	pthread_join(feeder, NULL);
	for (int k = 0; k < opt.streams; k++)
		pthread_join(ss[k].th, NULL);
	for (long k = 0; k < opt.completers; k++)
		pthread_join(cs[k], NULL);

	tally(&t);
	report(&t, cpu_seconds());
	if (opt.metrics && !atomic_load(&g_sigint))
		print_metrics();
	fflush(stdout);
	free(t.late);
	return t.made == g_n && t.completed == g_n ? 0 : 1;
}
