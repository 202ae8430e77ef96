/*
 * loadgen: what bench_load and bench_runs share (see loadgen.h).
 */
#include "loadgen.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HEAD_MAX (64u * 1024u)  /* longest response head (or trailer) accepted */

void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", loadgen_prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

void *xzalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);
	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

size_t pct_rank(size_t n, double p)
{
	size_t k;
	if (!n)
		return 0;
	k = (size_t)((p / 100.0) * (double)n + 0.999999);
	return k < 1 ? 1 : k > n ? n : k;
}

long num_arg(const char *name, const char *v, long lo, long hi)
{
	char *end;
	long x;
	errno = 0;
	x = strtol(v, &end, 10);
	if (errno || end == v || *end || x < lo || x > hi)
		die("%s: expected an integer in [%ld, %ld], got '%s'", name, lo, hi, v);
	return x;
}

/* ---- the server ------------------------------------------------------ */

void target_addr(struct target *t, const char *a)
{
	struct addrinfo hints, *res;
	char host[256], port[16];
	const char *colon;
	size_t hl, pl;
	int rc;

	if (strncmp(a, "http://", 7) == 0)
		a += 7;
	colon = strrchr(a, ':');
	if (!colon || colon == a)
		die("--addr: expected HOST:PORT, got '%s'", a);
	hl = (size_t)(colon - a);
	if (a[0] == '[' && hl >= 2 && a[hl - 1] == ']') {
		if (hl - 2 >= sizeof host)
			die("--addr: host too long");
		memcpy(host, a + 1, hl - 2);
		host[hl - 2] = '\0';
	} else {
		if (hl >= sizeof host)
			die("--addr: host too long");
		memcpy(host, a, hl);
		host[hl] = '\0';
	}
	snprintf(port, sizeof port, "%s", colon + 1);
	pl = strlen(port);
	if (pl && port[pl - 1] == '/')
		port[pl - 1] = '\0';
	num_arg("--addr port", port, 1, 65535);
	snprintf(t->hosthdr, sizeof t->hosthdr, "%.*s:%s", (int)hl, a, port);

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		die("--addr %s: %s", a, gai_strerror(rc));
	memcpy(&t->sa, res->ai_addr, res->ai_addrlen);
	t->salen = res->ai_addrlen;
	freeaddrinfo(res);
}

void target_token(struct target *t, const char *tok)
{
	int n = snprintf(t->auth, sizeof t->auth, "Authorization: Bearer %s\r\n", tok);
	if (n < 0 || (size_t)n >= sizeof t->auth || strpbrk(tok, "\r\n"))
		die("--token: too long or contains a line break");
}

/* ---- HTTP/1.1 response parser ----------------------------------------- */

void resp_init(struct resp *r, resp_body_fn *on_body, void *arg)
{
	r->on_body = on_body;
	r->body_arg = arg;
	resp_reset(r);
}

void resp_reset(struct resp *r)
{
	r->st = P_HEAD;
	r->status = 0;
	r->close = 0;
	r->left = 0;
	r->scan = 0;
}

/* ASCII lowercase of ch. */
static int lc(int ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch;
}

/* Does [s, s+n) contain tok (lowercase), case-insensitively? */
static int ci_contains(const char *s, size_t n, const char *tok)
{
	size_t tl = strlen(tok);
	for (size_t i = 0; i + tl <= n; i++) {
		size_t j = 0;
		while (j < tl && lc((unsigned char)s[i + j]) == tok[j])
			j++;
		if (j == tl)
			return 1;
	}
	return 0;
}

/* Is [s, s+n) the header name `name`, case-insensitively? */
static int name_is(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

/* The value of hex digit ch, or -1. */
static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* One header line, name line[0..nlen), value v[0..vlen): notes
 * Content-Length, Transfer-Encoding: chunked and Connection.  0, or -1 on
 * a bad or conflicting Content-Length. */
static int parse_header(const char *line, size_t nlen, const char *v, size_t vlen,
			uint64_t *cl, int *have_cl, int *chunked, int *keepalive)
{
	if (name_is(line, nlen, "content-length")) {
		uint64_t x = 0;
		if (vlen == 0 || vlen > 18)
			return -1;
		for (size_t i = 0; i < vlen; i++) {
			if (!is_digit(v[i]))
				return -1;
			x = x * 10 + (uint64_t)(v[i] - '0');
		}
		if (*have_cl && x != *cl)
			return -1;
		*cl = x;
		*have_cl = 1;
	} else if (name_is(line, nlen, "transfer-encoding")) {
		if (ci_contains(v, vlen, "chunked"))
			*chunked = 1;
	} else if (name_is(line, nlen, "connection")) {
		if (ci_contains(v, vlen, "close"))
			*keepalive = 0;
		else if (ci_contains(v, vlen, "keep-alive"))
			*keepalive = 1;
	}
	return 0;
}

/* Parse a complete response head p[0..n) (ending in an empty line) and set
 * up the body state.  Returns 0, or -1 on a malformed head. */
static int parse_head(struct resp *r, const char *p, size_t n)
{
	const char *end = p + n, *line;
	int keepalive, chunked = 0, have_cl = 0, status;
	uint64_t cl = 0;

	if (n < 14 || memcmp(p, "HTTP/1.", 7) != 0 || !is_digit(p[7]) ||
	    p[8] != ' ' || !is_digit(p[9]) || !is_digit(p[10]) ||
	    !is_digit(p[11]) || (p[12] != ' ' && p[12] != '\r' && p[12] != '\n'))
		return -1;
	status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (status < 100)
		return -1;
	keepalive = p[7] != '0';
	line = memchr(p, '\n', n);
	line = line ? line + 1 : end;
	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *le, *colon, *v;
		if (!nl)
			break;
		le = nl;
		if (le > line && le[-1] == '\r')
			le--;
		if (le == line)
			break;          /* the empty line */
		colon = memchr(line, ':', (size_t)(le - line));
		if (!colon)
			return -1;
		v = colon + 1;
		while (v < le && (*v == ' ' || *v == '\t'))
			v++;
		while (le > v && (le[-1] == ' ' || le[-1] == '\t'))
			le--;
		if (parse_header(line, (size_t)(colon - line), v, (size_t)(le - v),
				 &cl, &have_cl, &chunked, &keepalive) != 0)
			return -1;
		line = nl + 1;
	}

	r->status = status;
	r->close = !keepalive;
	r->left = 0;
	if (status < 200) {
		if (status == 101)
			return -1;      /* we never ask to switch protocols */
		r->st = P_HEAD;         /* interim response: the real one follows */
	} else if (status == 204 || status == 304) {
		r->st = P_DONE;
	} else if (chunked) {
		r->st = P_CHUNK_SIZE;
	} else if (have_cl) {
		r->left = cl;
		r->st = cl ? P_BODY_CL : P_DONE;
	} else {
		r->st = P_BODY_EOF;
		r->close = 1;
	}
	return 0;
}

/* Hand body bytes p[0..n) (n may be 0) to the caller's callback. */
static void capture(struct resp *r, const char *p, size_t n)
{
	if (r->on_body)
		r->on_body(r->body_arg, r->status, p, n);
}

/* A chunk-size line at p[0..n): 1 parsed (*used set), 0 incomplete, -1 bad. */
static int chunk_size(struct resp *r, const char *p, size_t n, size_t *used)
{
	const char *e = memchr(p, '\n', n);
	uint64_t sz = 0;
	int digits = 0, h;

	if (!e)
		return n > 1024 ? -1 : 0;
	while (p + digits < e && (h = hexval(p[digits])) >= 0) {
		if (++digits > 15)
			return -1;
		sz = sz * 16 + (uint64_t)h;
	}
	if (!digits)
		return -1;
	*used = (size_t)(e - p) + 1;   /* extensions ignored */
	r->st = sz ? P_CHUNK_DATA : P_TRAILER;
	r->left = sz;
	return 1;
}

int resp_parse(struct resp *r, const char *buf, size_t len, size_t *used)
{
	size_t pos = 0;

	while (r->st != P_DONE) {
		const char *p = buf + pos, *e;
		size_t n = len - pos, take;
		int rc;

		switch (r->st) {
		case P_HEAD: {
			size_t from = r->scan > 3 ? r->scan - 3 : 0;
			e = from < n ? memmem(p + from, n - from, "\r\n\r\n", 4) : NULL;
			if (!e) {
				r->scan = n;
				if (n > HEAD_MAX)
					return -1;
				goto more;
			}
			take = (size_t)(e - p) + 4;
			r->scan = 0;
			if (parse_head(r, p, take) != 0)
				return -1;
			pos += take;
			break;
		}
		case P_BODY_EOF:
			capture(r, p, n);
			pos += n;
			goto more;
		case P_BODY_CL:
		case P_CHUNK_DATA:
			take = n < r->left ? n : (size_t)r->left;
			capture(r, p, take);
			pos += take;
			r->left -= take;
			if (r->left)
				goto more;
			r->st = r->st == P_BODY_CL ? P_DONE : P_CHUNK_CRLF;
			break;
		case P_CHUNK_CRLF:
			if (n < 1)
				goto more;
			if (p[0] == '\n') {
				pos += 1;
			} else {
				if (n < 2)
					goto more;
				if (p[0] != '\r' || p[1] != '\n')
					return -1;
				pos += 2;
			}
			r->st = P_CHUNK_SIZE;
			break;
		case P_CHUNK_SIZE:
			rc = chunk_size(r, p, n, &take);
			if (rc < 0)
				return -1;
			if (rc == 0)
				goto more;
			pos += take;
			break;
		case P_TRAILER: {
			size_t l;
			e = memchr(p, '\n', n);
			if (!e) {
				if (n > HEAD_MAX)
					return -1;
				goto more;
			}
			l = (size_t)(e - p);
			pos += l + 1;
			if (l == 0 || (l == 1 && p[0] == '\r'))
				r->st = P_DONE;
			break;
		}
		case P_DONE:
			break;
		}
	}
	*used = pos;
	return 1;
more:
	*used = pos;
	return 0;
}
