#include "api/guard.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"

#define GUARD_NAME_MAX 256
#define GUARD_LIST_MAX 64

typedef struct origin_key {
	char scheme[8]; /* "http" or "https" */
	char host[GUARD_NAME_MAX]; /* lower case, IPv6 without brackets */
	unsigned port; /* explicit or the scheme's default */
} origin_key;

struct guard {
	bool any_host;
	bool any_origin;
	bool tls;
	size_t nhosts, norigins;
	char hosts[GUARD_LIST_MAX][GUARD_NAME_MAX]; /* exact or ".suffix" */
	origin_key origins[GUARD_LIST_MAX];
};

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/*
 * Split "host[:port]" or "[v6]:port" (a Host header, or what follows
 * "scheme://" in an origin) into a lower-case host without brackets or a
 * trailing dot, and the port (0 when absent).  -1 when malformed.
 */
static int split_authority(const char *s, char *host, size_t cap,
			   unsigned *port)
{
	const char *end, *colon = NULL;
	size_t n;

	*port = 0;
	if (s[0] == '[') {
		end = strchr(s, ']');
		if (end == NULL)
			return -1;
		n = (size_t)(end - s - 1);
		if (n == 0 || n >= cap)
			return -1;
		memcpy(host, s + 1, n);
		host[n] = '\0';
		if (end[1] == ':')
			colon = end + 1;
		else if (end[1] != '\0')
			return -1;
	} else {
		colon = strchr(s, ':');
		n = colon ? (size_t)(colon - s) : strlen(s);
		if (n == 0 || n >= cap)
			return -1;
		memcpy(host, s, n);
		host[n] = '\0';
	}
	if (colon != NULL) {
		unsigned long v = 0;
		const char *p = colon + 1;
		if (*p == '\0')
			return -1;
		for (; *p >= '0' && *p <= '9' && v <= 65535; p++)
			v = v * 10 + (unsigned long)(*p - '0');
		if (*p != '\0' || v == 0 || v > 65535)
			return -1;
		*port = (unsigned)v;
	}
	for (const char *p = host; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == '/' || *p == '@' ||
		    *p == '\\' || (unsigned char)*p >= 0x7f)
			return -1;
	lower(host);
	n = strlen(host);
	if (n > 1 && host[n - 1] == '.')
		host[n - 1] = '\0';
	return 0;
}

static bool is_ip_literal(const char *host)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, host, buf) == 1 ||
	       inet_pton(AF_INET6, host, buf) == 1;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* "scheme://authority" with nothing after it. */
static int parse_origin(const char *s, origin_key *o)
{
	const char *sep = strstr(s, "://");
	size_t n;

	if (sep == NULL)
		return -1;
	n = (size_t)(sep - s);
	if (n == 0 || n >= sizeof o->scheme)
		return -1;
	memcpy(o->scheme, s, n);
	o->scheme[n] = '\0';
	lower(o->scheme);
	if (strcmp(o->scheme, "http") != 0 && strcmp(o->scheme, "https") != 0)
		return -1;
	if (split_authority(sep + 3, o->host, sizeof o->host, &o->port) != 0)
		return -1;
	if (o->port == 0)
		o->port = strcmp(o->scheme, "https") == 0 ? 443 : 80;
	return 0;
}

static bool origin_eq(const origin_key *a, const origin_key *b)
{
	return strcmp(a->scheme, b->scheme) == 0 &&
	       strcmp(a->host, b->host) == 0 && a->port == b->port;
}

/* Visit the trimmed, non-empty items of a comma-separated list. */
static int each_item(const char *list, const char *flag, hora_error *err,
		     int (*cb)(guard *, const char *, const char *,
			       hora_error *),
		     guard *g)
{
	char item[GUARD_NAME_MAX + 16];
	const char *p = list;

	while (p != NULL && *p != '\0') {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		while (n > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n >= sizeof item)
			return hora_error_set(err, -HORA_EINVAL, flag,
					      "%s: '%.*s...' is too long", flag,
					      40, p);
		if (n > 0) {
			memcpy(item, p, n);
			item[n] = '\0';
			int rv = cb(g, item, flag, err);
			if (rv != 0)
				return rv;
		}
		p = comma ? comma + 1 : NULL;
	}
	return 0;
}

static int add_host(guard *g, const char *item, const char *flag,
		    hora_error *err)
{
	char host[GUARD_NAME_MAX];
	unsigned port;

	if (strcmp(item, "*") == 0) {
		g->any_host = true;
		return 0;
	}
	if (g->nhosts == GUARD_LIST_MAX)
		return hora_error_set(err, -HORA_EINVAL, flag,
				      "%s: at most %d names", flag,
				      GUARD_LIST_MAX);
	/* ".example.com" is kept with its dot: a suffix pattern */
	if (split_authority(item[0] == '.' ? item + 1 : item, host,
			    sizeof host - 1, &port) != 0 ||
	    port != 0 || host[0] == '.')
		return hora_error_set(err, -HORA_EINVAL, flag,
				      "%s: '%s' is not a host name (like "
				      "hora.example.com or .example.com, no "
				      "port)",
				      flag, item);
	char *dst = g->hosts[g->nhosts++];
	size_t off = item[0] == '.';
	dst[0] = '.';
	memcpy(dst + off, host, strlen(host) + 1); /* fits: host < cap - 1 */
	return 0;
}

static int add_origin(guard *g, const char *item, const char *flag,
		      hora_error *err)
{
	if (strcmp(item, "*") == 0) {
		g->any_origin = true;
		return 0;
	}
	if (g->norigins == GUARD_LIST_MAX)
		return hora_error_set(err, -HORA_EINVAL, flag,
				      "%s: at most %d origins", flag,
				      GUARD_LIST_MAX);
	size_t n = strlen(item);
	if (n > 0 && item[n - 1] == '/') /* "https://x/" as users paste it */
		n--;
	char buf[GUARD_NAME_MAX + 16];
	if (n >= sizeof buf)
		n = sizeof buf - 1;
	memcpy(buf, item, n);
	buf[n] = '\0';
	if (parse_origin(buf, &g->origins[g->norigins]) != 0)
		return hora_error_set(err, -HORA_EINVAL, flag,
				      "%s: '%s' is not an origin like "
				      "https://app.example.com or "
				      "http://10.0.0.5:8080",
				      flag, item);
	g->norigins++;
	return 0;
}

int guard_new(const guard_config *cfg, guard **out, hora_error *err)
{
	guard *g = hora_calloc(1, sizeof *g);
	int rv;

	if (g == NULL)
		return hora_error_set(err, -HORA_ENOMEM, "", "out of memory");
	g->tls = cfg->tls;
	for (size_t i = 0; i < sizeof cfg->own_hosts / sizeof cfg->own_hosts[0];
	     i++) {
		const char *h = cfg->own_hosts[i];
		char host[GUARD_NAME_MAX];
		unsigned port;
		if (h == NULL || *h == '\0' ||
		    split_authority(h, host, sizeof host, &port) != 0 ||
		    is_ip_literal(host) || g->nhosts == GUARD_LIST_MAX)
			continue;
		snprintf(g->hosts[g->nhosts++], GUARD_NAME_MAX, "%s", host);
	}
	if ((rv = each_item(cfg->allowed_hosts, "--allowed-hosts", err,
			    add_host, g)) != 0 ||
	    (rv = each_item(cfg->allowed_origins, "--allowed-origins", err,
			    add_origin, g)) != 0) {
		hora_free(g);
		return rv;
	}
	*out = g;
	return 0;
}

void guard_free(guard *g)
{
	hora_free(g);
}

static bool host_allowed(const guard *g, const char *host)
{
	if (g->any_host || is_ip_literal(host) ||
	    strcmp(host, "localhost") == 0 || ends_with(host, ".localhost"))
		return true;
	for (size_t i = 0; i < g->nhosts; i++) {
		const char *h = g->hosts[i];
		if (h[0] == '.') {
			/* ".example.com": example.com and any name below it */
			if (strcmp(host, h + 1) == 0 || ends_with(host, h))
				return true;
		} else if (strcmp(host, h) == 0) {
			return true;
		}
	}
	return false;
}

/* The origin this node serves the request from: scheme and Host. */
static int own_origin(const guard *g, const char *host_header, origin_key *o)
{
	snprintf(o->scheme, sizeof o->scheme, "%s", g->tls ? "https" : "http");
	if (host_header == NULL ||
	    split_authority(host_header, o->host, sizeof o->host, &o->port) != 0)
		return -1;
	if (o->port == 0)
		o->port = g->tls ? 443 : 80;
	return 0;
}

typedef enum { ORIGIN_NONE, ORIGIN_SAME, ORIGIN_LISTED, ORIGIN_FOREIGN } origin_kind;

static origin_kind classify_origin(const guard *g, const guard_request *r)
{
	origin_key theirs, ours;

	if (r->origin == NULL)
		return ORIGIN_NONE;
	if (parse_origin(r->origin, &theirs) != 0)
		return ORIGIN_FOREIGN; /* "null", garbage */
	if (own_origin(g, r->host, &ours) == 0 && origin_eq(&theirs, &ours))
		return ORIGIN_SAME;
	if (g->any_origin)
		return ORIGIN_LISTED;
	for (size_t i = 0; i < g->norigins; i++)
		if (origin_eq(&theirs, &g->origins[i]))
			return ORIGIN_LISTED;
	return ORIGIN_FOREIGN;
}

/* "application/json; charset=utf-8" -> is it one of ours? */
static bool json_type(const char *ct)
{
	size_t n;

	if (ct == NULL)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	n = strcspn(ct, ";");
	while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	return (n == 16 && strncasecmp(ct, "application/json", n) == 0) ||
	       (n == 28 && strncasecmp(ct, "application/merge-patch+json",
				       n) == 0);
}

static bool writes(const char *m)
{
	return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
	       strcmp(m, "PATCH") == 0 || strcmp(m, "DELETE") == 0;
}

__attribute__((format(printf, 4, 5))) static int
refuse(guard_refusal *out, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	out->status = status;
	out->code = code;
	va_start(ap, fmt);
	vsnprintf(out->message, sizeof out->message, fmt, ap);
	va_end(ap);
	return -HORA_EINVAL;
}

/* A header value fit to quote in a message: printable, cut short. */
static void quote(char *dst, size_t cap, const char *v)
{
	size_t n = 0;
	for (; v != NULL && *v && n + 4 < cap; v++)
		dst[n++] = (*v >= 0x20 && *v < 0x7f && *v != '"') ? *v : '?';
	if (v != NULL && *v)
		dst[n++] = '.', dst[n++] = '.', dst[n++] = '.';
	dst[n] = '\0';
}

int guard_check(const guard *g, const guard_request *r, guard_refusal *out)
{
	char shown[96];

	if (!r->probe && r->host != NULL) {
		char host[GUARD_NAME_MAX];
		unsigned port;
		if (split_authority(r->host, host, sizeof host, &port) != 0) {
			quote(shown, sizeof shown, r->host);
			return refuse(out, 400, "invalid_argument",
				      "the Host header '%s' is malformed",
				      shown);
		}
		if (!host_allowed(g, host)) {
			quote(shown, sizeof shown, host);
			return refuse(
				out, 403, "host_not_allowed",
				"Host '%s' is not a name this node serves: name "
				"it by IP address or localhost, or start horad "
				"with --allowed-hosts %s (this check stops DNS "
				"rebinding)",
				shown, shown);
		}
	}
	if (!r->api)
		return 0;
	if (classify_origin(g, r) == ORIGIN_FOREIGN) {
		quote(shown, sizeof shown, r->origin);
		return refuse(out, 403, "origin_not_allowed",
			      "Origin '%s' may not call this API: only pages "
			      "served by this node, or origins given with "
			      "--allowed-origins, may",
			      shown);
	}
	/* A write without a body and without a type (curl -X POST .../pause)
	 * is let through: a browser sends Origin with every POST, so a
	 * cross-site one was refused above. */
	if (writes(r->method) &&
	    (r->body_len > 0 || r->content_type != NULL) &&
	    !json_type(r->content_type)) {
		if (r->content_type == NULL)
			snprintf(shown, sizeof shown, "none");
		else
			quote(shown, sizeof shown, r->content_type);
		return refuse(out, 415, "unsupported_media_type",
			      "%s requests need 'Content-Type: "
			      "application/json' (got %s%s%s); with curl, "
			      "add -H 'Content-Type: application/json'",
			      r->method, r->content_type ? "'" : "", shown,
			      r->content_type ? "'" : "");
	}
	return 0;
}

const char *guard_cors_origin(const guard *g, const guard_request *r)
{
	return classify_origin(g, r) == ORIGIN_LISTED ? r->origin : NULL;
}
