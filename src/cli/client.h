/*
 * client.h - the CLI's HTTP client for the horad API (API.md "HTTP API"),
 * and the option helpers its commands share (printing is in out.h).
 *
 * One hora_client per command invocation: it holds a libcurl easy handle,
 * the base URL (cli_ctx.addr without a trailing '/', "http://" added when
 * no scheme is given) and the bearer token (cli_ctx.token).  Requests and
 * answers are JSON (jansson).  Every call is synchronous, with a 5 s
 * connect timeout and a 60 s total timeout; a 503 or 429 answer (no leader
 * during an election, or back-pressure) is retried, honouring Retry-After,
 * for up to CLIENT_RETRY_BUDGET_MS before it is reported.
 *
 * Errors are reported to the user here, not by the callers: client_call()
 * prints "hora: <message>" (plus " (field: X)" when the server's error
 * object names a field) and returns CLI_FAILURE, so a command just
 * propagates the code.  Not thread-safe; the CLI runs on one thread.
 *
 * Memory: jansson is switched to hora_malloc/hora_free by
 * client_global_init(), so json_dumps() output is freed with hora_free().
 */
#ifndef HORA_CLI_CLIENT_H
#define HORA_CLI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "cli/cli.h"
#include "core/buf.h"

/* Total time spent retrying 503/429 answers before giving up. */
#define CLIENT_RETRY_BUDGET_MS 5000
#define CLIENT_CONNECT_TIMEOUT_MS 5000
#define CLIENT_TOTAL_TIMEOUT_MS 60000
/* Answers larger than this are refused (the API never sends them). */
#define CLIENT_MAX_BODY (64u << 20)

/* Route jansson's allocations through hora_malloc/hora_free.  Call before
 * the first jansson use; idempotent. */
void client_global_init(void);

typedef struct hora_client hora_client;

/* Create a client for ctx->addr / ctx->token (borrowed: ctx must outlive
 * the client).  Returns CLI_OK and sets *out, or prints the reason and
 * returns CLI_FAILURE. */
int client_open(const cli_ctx *ctx, hora_client **out);
void client_close(hora_client *c);

/* An answer.  Caller-allocated; client_call() fills it, and
 * client_resp_free() releases what it owns (safe on a zeroed value). */
typedef struct client_resp {
	long status;   /* HTTP status; 0 when no answer came */
	char *body;    /* raw body, NUL-terminated (maybe ""); owned */
	size_t len;    /* strlen-free length of body */
	json_t *json;  /* body parsed, or NULL when empty or not JSON; owned */
} client_resp;

void client_resp_free(client_resp *r);

/*
 * Send `method` `path` (path and query, already escaped, starting with
 * '/', e.g. "/v1/jobs/a%20b?limit=5") with `body` (borrowed; NULL for
 * none) serialized as JSON.
 *
 * Returns CLI_OK on a 2xx answer; otherwise prints the error (server
 * message, or "cannot reach <addr>: <reason>") and returns CLI_FAILURE.
 * In both cases *resp holds whatever answer arrived and must be freed with
 * client_resp_free().
 */
int client_call(hora_client *c, const char *method, const char *path,
		const json_t *body, client_resp *resp);

/*
 * Request paths are built in a hora_buf (core/buf.h), names escaped with
 * buf_add_pct(b, name, BUF_PCT_SEGMENT).  This appends "?key=value" (or
 * "&key=value" once the path has a query) with both escaped the same way.
 */
void client_query_add(hora_buf *b, const char *key, const char *value);


#endif
