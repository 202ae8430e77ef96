/*
 * loadgen: the pieces bench_load and bench_runs share, libc only.
 *
 *   - errors and memory: die(), xmalloc(), xzalloc();
 *   - clock: now_ns() (monotonic); percentiles: pct_rank();
 *   - options: num_arg() (a bounded integer) and struct target, the server
 *     from --addr HOST:PORT (resolved) and --token (the Authorization line);
 *   - an incremental HTTP/1.1 response parser (struct resp, resp_parse):
 *     status line, Content-Length, chunked transfer-encoding with trailers,
 *     bodies that run until the server closes, interim 1xx responses and
 *     Connection: close.  Decoded body bytes go to a callback, so each
 *     program keeps of them what it needs.
 *
 * Errors in options or out of memory end the program with die() (exit 2).
 */
#ifndef HORA_BENCH_LOADGEN_H
#define HORA_BENCH_LOADGEN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The program's name, the prefix of die()'s messages: each program that
 * uses loadgen defines it, e.g. const char loadgen_prog[] = "bench_load"; */
extern const char loadgen_prog[];

/* Print "PROG: " and the message to stderr and exit with status 2. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* malloc(n) (n may be 0), uninitialised; dies when out of memory. */
void *xmalloc(size_t n);

/* calloc(1, n) (n may be 0), zeroed; dies when out of memory. */
void *xzalloc(size_t n);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

/* Is ch an ASCII decimal digit? */
int is_digit(char ch);

/* The nearest rank (1-based) of percentile p (0-100) among n sorted
 * values: the p-th percentile is value number pct_rank(n, p); 0 if n is 0. */
size_t pct_rank(size_t n, double p);

/* v as a decimal integer in [lo, hi]; dies naming option `name` if it is
 * not one. */
long num_arg(const char *name, const char *v, long lo, long hi);

/* ---- the server ------------------------------------------------------ */

struct target {
	char hosthdr[300];      /* "HOST:PORT": the Host header, also in reports */
	char auth[600];         /* "Authorization: Bearer ...\r\n" or "" */
	struct sockaddr_storage sa;     /* the first address HOST resolves to */
	socklen_t salen;
};

/* Set t's hosthdr and address from a: HOST:PORT or [V6]:PORT, an http://
 * prefix and a trailing '/' accepted, HOST resolved with getaddrinfo.
 * Dies naming --addr if a is not that or does not resolve. */
void target_addr(struct target *t, const char *a);

/* Set t->auth to the Authorization line of bearer token tok; dies if tok
 * holds a line break or the line does not fit. */
void target_token(struct target *t, const char *tok);

/* ---- HTTP/1.1 response parser ----------------------------------------- */

enum pst {
	P_HEAD,         /* waiting for the whole status line + headers */
	P_BODY_CL,      /* Content-Length body, `left` bytes to go */
	P_CHUNK_SIZE,   /* waiting for a chunk-size line */
	P_CHUNK_DATA,   /* chunk data, `left` bytes to go */
	P_CHUNK_CRLF,   /* the CRLF after chunk data */
	P_TRAILER,      /* trailer lines after the last chunk */
	P_BODY_EOF,     /* no length: the body runs until the server closes */
	P_DONE,
};

/* Takes the next n decoded body bytes p[0..n) (n may be 0) of a response
 * with this status; arg is the one given to resp_init. */
typedef void resp_body_fn(void *arg, int status, const char *p, size_t n);

struct resp {
	enum pst st;
	int status;
	int close;      /* the connection cannot be reused after this one */
	uint64_t left;
	size_t scan;    /* head bytes already searched for CRLFCRLF */
	resp_body_fn *on_body;  /* NULL: body bytes are dropped */
	void *body_arg;
};

/* Set r's body callback (NULL drops the body) and resp_reset it. */
void resp_init(struct resp *r, resp_body_fn *on_body, void *arg);

/* Ready r for the next response; the body callback stays. */
void resp_reset(struct resp *r);

/*
 * Feed buf[0..len) to the parser; decoded body bytes go to r->on_body.
 * *used is set to the bytes consumed; the caller keeps the rest (a partial
 * head or line) and feeds it again with more data appended.  Returns 1
 * when a response is complete (r->status, r->close set), 0 when more input
 * is needed, -1 on a protocol error.  A response in state P_BODY_EOF is
 * complete when the server closes: the caller sees to that.
 */
int resp_parse(struct resp *r, const char *buf, size_t len, size_t *used);

#endif
