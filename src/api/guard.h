/*
 * guard.h - who may call the HTTP API from a browser (docs/security.md).
 *
 * A web page on another site can make a browser send "simple" requests
 * to horad: a POST with a text/plain or form body, with no way for horad
 * to tell it from a script's, and DNS rebinding lets that page name horad
 * by the attacker's own host name.  Three checks close that door:
 *
 *   Host     every request but /healthz and /readyz must name this node
 *            by an IP literal, localhost (or *.localhost), this machine's
 *            host name, the advertised API host, or a name allowed with
 *            --allowed-hosts.  A rebinding page can only send its own
 *            name, which is none of these.
 *   Origin   when a /v1 request carries Origin, it must be this node's
 *            own origin (scheme and Host as sent) or one listed with
 *            --allowed-origins; "null" is never accepted.
 *   Content-Type  a /v1 write (POST, PUT, PATCH, DELETE) with a body
 *            or with a Content-Type must be application/json or
 *            application/merge-patch+json: a type a browser cannot send
 *            cross-site without a CORS preflight, which only allowed
 *            origins pass.  A write with neither body nor type (curl -X
 *            POST .../pause) passes: browsers send Origin with every
 *            POST, so a cross-site one is refused by the Origin check.
 *
 * Listed origins also get CORS answers (preflight and the response
 * headers) so that a dashboard hosted elsewhere can use the API.
 *
 * Pure logic on header strings: no libuv, no MHD.  A guard is immutable
 * once made, so one may be shared by every request on the loop.
 */
#ifndef HORA_API_GUARD_H
#define HORA_API_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

typedef struct guard guard;

typedef struct guard_config {
	/* Comma-separated names: "hora.example.com", ".example.com" (the
	 * domain and every name under it), or "*" (any Host: the check is
	 * off).  NULL or "": none beyond the built-in ones. */
	const char *allowed_hosts;
	/* Comma-separated origins "https://app.example.com[:port]", or
	 * "*" (any origin; the token is then the only protection). */
	const char *allowed_origins;
	/* Host names this node is known by besides the built-in ones (the
	 * advertised API host, ...); NULL entries are skipped. */
	const char *own_hosts[4];
	/* The scheme this node serves: false "http", true "https". */
	bool tls;
} guard_config;

/* Build a guard; strings are copied.  -HORA_EINVAL with the bad entry
 * named in err ("--allowed-origins: 'x' is not scheme://host[:port]"),
 * -HORA_ENOMEM. */
int guard_new(const guard_config *cfg, guard **out, hora_error *err);
void guard_free(guard *g);

/* The request, as far as the guard looks at it.  Header values may be
 * NULL when absent. */
typedef struct guard_request {
	const char *method;
	const char *host;
	const char *origin;
	const char *content_type;
	size_t body_len;
	bool api; /* a /v1 route */
	bool probe; /* /healthz or /readyz: no Host check */
} guard_request;

/* Why a request is refused: HTTP status, error code and a sentence. */
typedef struct guard_refusal {
	int status;
	const char *code;
	char message[384];
} guard_refusal;

/* 0 when the request may go on; otherwise -HORA_EINVAL and *out says
 * how to answer.  An OPTIONS request is for guard_preflight(). */
int guard_check(const guard *g, const guard_request *r, guard_refusal *out);

/* The Origin value to echo in Access-Control-Allow-Origin, or NULL when
 * the request needs no CORS headers (no Origin, or same origin). */
const char *guard_cors_origin(const guard *g, const guard_request *r);

/* Methods and headers a preflight is answered with. */
#define GUARD_CORS_METHODS "GET, POST, PUT, PATCH, DELETE"
#define GUARD_CORS_HEADERS \
	"Authorization, Content-Type, Idempotency-Key, X-Hora-Local"

#endif
