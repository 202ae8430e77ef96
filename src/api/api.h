/*
 * api.h - hora's HTTP API (API.md "HTTP API"), served from the node's
 * loop: /v1 routes, /healthz, /readyz, /metrics.
 *
 * Writes are validated completely, encoded as one log entry and answered
 * only once that entry is committed and applied (a 2xx means durable on a
 * majority).  Reads are answered from this node's state.
 */
#ifndef HORA_API_API_H
#define HORA_API_API_H

#include <uv.h>

#include "cluster/dispatch.h"
#include "cluster/node.h"
#include "core/err.h"

typedef struct api_config {
	const char *host;  /* listen address, e.g. "127.0.0.1" */
	const char *port;  /* "7070"; "0" for an ephemeral port */
	const char *token; /* bearer token for /v1, or NULL */
	node *node;        /* borrowed; outlives the api */
	dispatch *dispatch; /* borrowed; NULL: runs are not served */
	struct forwarder *forwarder; /* borrowed; NULL: followers answer 503 */
	/* Browser checks (guard.h): --allowed-hosts, --allowed-origins, and
	 * the names this node is known by (advertised API host, machine
	 * host name); all may be NULL. */
	const char *allowed_hosts;
	const char *allowed_origins;
	const char *own_hosts[3];
	/* TLS on the API (PEM text, borrowed during api_start); NULL: plain
	 * HTTP. */
	const char *tls_cert_pem;
	const char *tls_key_pem;
	/* Connection caps (http.h); 0: the server's defaults. */
	unsigned max_connections;
	unsigned max_per_address;
	/* The loop's busy-time histogram (net/loop_stats.h), borrowed;
	 * NULL: not exported. */
	const struct loop_stats *loop_stats;
} api_config;


typedef struct api api;

/* Start serving.  Errors (bind failures, ...) are described in err. */
int api_start(uv_loop_t *loop, const api_config *cfg, api **out,
	      hora_error *err);

typedef struct http_server_stats http_server_stats;
/* The HTTP server's counters (connections, refusals, deadlines). */
void api_http_stats(const api *a, http_server_stats *out);

/* The bound port. */
uint16_t api_port(const api *a);

/* Stop accepting connections (graceful shutdown, first step). */
void api_stop_accepting(api *a);

/* Close every connection and free; done(ud) runs once released. */
void api_close(api *a, void (*done)(void *ud), void *ud);

#endif
