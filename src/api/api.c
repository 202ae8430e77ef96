#include "api/api.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/api_int.h"
#include "api/forward.h"
#include "api/guard.h"
#include "api/job_json.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"

#define API_MAX_SEGMENTS 8
#define API_SEGMENT_MAX 256

/* ---- replies ---------------------------------------------------------- */

static void count(api_call *c, int status)
{
	api_route_stats *st = &c->a->routes[c->route];
	if (status >= 0 && status < API_STATUS_SLOTS)
		st->by_status[status]++;
	hist_record(&st->latency, (int64_t)((uv_hrtime() - c->t0) / 1000));
}

void api_count(api_call *c, int status)
{
	count(c, status);
}

void api_reply_text(api_call *c, int status, const char *type,
		    const char *text, size_t len)
{
	count(c, status);
	http_respond(c->req, status, type, text, len);
}

void api_reply_json(api_call *c, int status, json_t *body)
{
	char *text;
	if (body == NULL)
		body = json_object();
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (text == NULL) {
		api_reply_text(c, 500, "application/json",
			       "{\"error\":{\"code\":\"internal\",\"message\":"
			       "\"out of memory\"}}",
			       62);
		return;
	}
	api_reply_text(c, status, "application/json", text, strlen(text));
	free(text);
}

void api_reply_error(api_call *c, int status, const char *code,
		     const char *message, const char *field)
{
	api_reply_json(c, status, api_error_json(code, message, field));
}

void api_reply_hora_error(api_call *c, const hora_error *err)
{
	int status = 400;
	switch (err->code) {
	case -HORA_EINVAL:
		status = 400;
		break;
	case -HORA_ENOENT:
		status = 404;
		break;
	case -HORA_EEXIST:
	case -HORA_ECONFLICT:
		status = 409;
		break;
	case -HORA_ETOOBIG:
		status = 413;
		break;
	case -HORA_ENOTLEADER:
	case -HORA_EUNAVAIL:
	case -HORA_ESHUTDOWN:
		api_reply_unavailable(c, err->code);
		return;
	default:
		status = 500;
		break;
	}
	api_reply_error(c, status, api_error_code_for(err->code), err->msg,
			err->field[0] ? err->field : NULL);
}

json_t *api_body_object(api_call *c)
{
	size_t len;
	const char *body = http_request_body(c->req, &len);
	json_t *obj;
	hora_error err;
	hora_error_clear(&err);
	if (json_parse_object(body, len, &obj, &err) != 0) {
		api_reply_hora_error(c, &err);
		return NULL;
	}
	return obj;
}

void api_reply_unavailable(api_call *c, int rv)
{
	const char *msg;
	switch (rv) {
	case -HORA_ESHUTDOWN:
		msg = "this node is shutting down; retry on another node";
		break;
	case -HORA_ENOTLEADER:
		msg = "no leader is available to take writes right now "
		      "(an election is under way); retry";
		break;
	default:
		msg = "the cluster cannot take this request right now; retry";
		break;
	}
	http_response_header(c->req, "Retry-After", "1");
	api_reply_error(c, 503, "unavailable", msg, NULL);
}

hora_time api_stamp(api *a)
{
	hora_time now = hora_wallclock_usec();
	hora_time seen = fsm_clock(node_fsm(a->node));
	return now > seen ? now : seen + 1;
}

/* ---- pending writes --------------------------------------------------- */

static void pending_abort(http_request *req, void *ud)
{
	api_pending *p = ud;
	(void)req;
	p->gone = true; /* the commit callback frees p */
}

void api_pending_init(api_pending *p, const api_call *c, int kind)
{
	p->call = *c;
	p->kind = kind;
	http_request_on_abort(c->req, pending_abort, p);
}

api_pending *api_pending_new(const api_call *c, int kind)
{
	api_pending *p = hora_calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	api_pending_init(p, c, kind);
	return p;
}

bool api_pending_settle(api_pending *p)
{
	if (p->gone)
		return false;
	http_request_on_abort(p->call.req, NULL, NULL);
	return true;
}

api_pending *api_pending_take(void *ud)
{
	api_pending *p = ud;
	if (api_pending_settle(p))
		return p;
	api_pending_free(p);
	return NULL;
}

void api_pending_free(api_pending *p)
{
	for (size_t i = 0; i < p->n; i++)
		hora_free(p->names[i]);
	hora_free(p->names);
	hora_free(p);
}

void api_pending_propose(api_pending *p, uint8_t *buf, size_t len,
			 node_commit_cb cb)
{
	int rv = node_propose(p->call.a->node, buf, len, cb, p);
	if (rv == 0)
		return;
	http_request_on_abort(p->call.req, NULL, NULL);
	if (rv == -HORA_ENOTLEADER || rv == -HORA_ESHUTDOWN)
		api_reply_unavailable(&p->call, rv);
	else
		api_reply_error(&p->call, 500, "internal", hora_strerror(rv),
				NULL);
	api_pending_free(p);
}

/* ---- dispatch --------------------------------------------------------- */

static void count_forwarded(api_call *c)
{
	c->a->forwarded++;
}

/*
 * Bearer token check in time independent of where the first difference
 * is and of the token's length: every byte of what was sent is compared
 * (against the token, repeated), and a length mismatch only flips the
 * result.
 */
static bool authorized(api *a, http_request *req)
{
	if (a->token == NULL)
		return true;
	const char *h = http_request_header(req, "Authorization");
	if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
		return false;
	const char *given = h + 7;
	size_t n = strlen(a->token), m = strlen(given);
	unsigned char diff = (unsigned char)(n != m);
	for (size_t i = 0; i < m; i++)
		diff |= (unsigned char)(given[i] ^ a->token[i % n]);
	return diff == 0;
}

/* Split "/v1/jobs/a%20b/runs" into decoded segments in `store`. */
static int split_path(const char *path, char segbuf[][API_SEGMENT_MAX],
		      const char **seg, size_t *nseg)
{
	size_t n = 0;
	const char *p = path;
	if (*p != '/')
		return -HORA_EINVAL;
	while (*p == '/') {
		p++;
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == 0 && end == NULL)
			break; /* trailing slash */
		if (n == API_MAX_SEGMENTS)
			return -HORA_EINVAL;
		if (http_url_decode(p, len, segbuf[n], API_SEGMENT_MAX, NULL) !=
		    0)
			return -HORA_EINVAL;
		seg[n] = segbuf[n];
		n++;
		p += len;
	}
	*nseg = n;
	return 0;
}

/* Whether this request is answered from the leader's state: every /v1
 * route except the cluster status, unless the caller asks for a local
 * read (?local=true or X-Hora-Local: 1) of a GET. */
static bool wants_leader(http_request *req, const char *const *seg,
			 size_t nseg)
{
	const char *m = http_request_method(req);
	bool get = strcmp(m, "GET") == 0;
	if (nseg == 2 && strcmp(seg[1], "cluster") == 0 && get)
		return false;
	if (get) {
		const char *q = http_request_query(req, "local");
		const char *h = http_request_header(req, "X-Hora-Local");
		if ((q && (strcmp(q, "true") == 0 || strcmp(q, "1") == 0)) ||
		    (h && strcmp(h, "1") == 0))
			return false;
	}
	return true;
}

/* Relay a request to the leader (API.md: any node accepts any request).
 * Returns true when the request was taken care of. */
static bool forward_to_leader(api_call *c, const char *const *seg,
			      size_t nseg)
{
	api *a = c->a;
	if (node_is_leader(a->node) || !wants_leader(c->req, seg, nseg))
		return false;
	if (http_request_header(c->req, "X-Hora-Forwarded") != NULL) {
		/* one hop only: leadership moved while it travelled */
		api_reply_unavailable(c, -HORA_ENOTLEADER);
		return true;
	}
	uint64_t leader = node_leader(a->node, NULL);
	const char *url = leader ? fsm_node_api(node_fsm(a->node), leader)
				 : NULL;
	if (a->forwarder == NULL || url == NULL) {
		api_reply_unavailable(c, -HORA_ENOTLEADER);
		return true;
	}
	bool queue = nseg == 4 && strcmp(seg[1], "queues") == 0;
	bool claim = queue && strcmp(seg[3], "claim") == 0;
	bool stream = queue && strcmp(seg[3], "stream") == 0;
	count_forwarded(c);
	if (forwarder_forward(a->forwarder, c->req, url, node_id(a->node),
			      claim ? FORWARD_CLAIM
				    : stream ? FORWARD_STREAM : 0) != 0)
		api_reply_error(c, 500, "internal", "out of memory", NULL);
	return true;
}

/* Answer a CORS preflight for an origin listed with --allowed-origins. */
static void preflight(api_call *c, const char *origin)
{
	http_request *req = c->req;
	http_response_header(req, "Access-Control-Allow-Methods",
			     GUARD_CORS_METHODS);
	http_response_header(req, "Access-Control-Allow-Headers",
			     GUARD_CORS_HEADERS);
	http_response_header(req, "Access-Control-Max-Age", "600");
	if (origin == NULL)
		http_response_header(req, "Allow", GUARD_CORS_METHODS);
	api_reply_text(c, 204, NULL, "", 0);
}

/*
 * The browser checks of guard.h, before any route runs.  Returns false
 * when the request was answered (refused, or a preflight).
 */
static bool guarded(api_call *c, const char *const *seg, size_t nseg)
{
	http_request *req = c->req;
	size_t blen = 0;
	guard_refusal no;
	bool probe = nseg == 1 && (strcmp(seg[0], "healthz") == 0 ||
				   strcmp(seg[0], "readyz") == 0);
	guard_request gr = {
		.method = http_request_method(req),
		.host = http_request_header(req, "Host"),
		.origin = http_request_header(req, "Origin"),
		.content_type = http_request_header(req, "Content-Type"),
		.api = nseg >= 1 && strcmp(seg[0], "v1") == 0,
		.probe = probe,
	};
	http_request_body(req, &blen);
	gr.body_len = blen;
	if (guard_check(c->a->guard, &gr, &no) != 0) {
		api_reply_error(c, no.status, no.code, no.message, NULL);
		return false;
	}
	const char *cors = guard_cors_origin(c->a->guard, &gr);
	if (cors != NULL) {
		http_response_header(req, "Access-Control-Allow-Origin", cors);
		http_response_header(req, "Vary", "Origin");
	}
	if (gr.api && strcmp(gr.method, "OPTIONS") == 0) {
		preflight(c, cors);
		return false;
	}
	return true;
}

static void handle(http_request *req, void *ud)
{
	api *a = ud;
	api_call c = {a, req, API_ROUTE_OTHER, uv_hrtime()};
	char segbuf[API_MAX_SEGMENTS][API_SEGMENT_MAX];
	const char *seg[API_MAX_SEGMENTS];
	size_t nseg = 0;
	const char *method = http_request_method(req);
	const char *path = http_request_path(req);

	if (split_path(path, segbuf, seg, &nseg) != 0) {
		api_reply_error(&c, 400, "invalid_argument",
				"the URL path is malformed or too long", NULL);
		return;
	}
	if (!guarded(&c, seg, nseg))
		return;
	if (nseg == 1 && strcmp(seg[0], "healthz") == 0 &&
	    strcmp(method, "GET") == 0) {
		c.route = API_ROUTE_HEALTHZ;
		api_healthz(&c);
		return;
	}
	if (nseg == 1 && strcmp(seg[0], "readyz") == 0 &&
	    strcmp(method, "GET") == 0) {
		c.route = API_ROUTE_READYZ;
		api_readyz(&c);
		return;
	}
	if (nseg == 1 && strcmp(seg[0], "metrics") == 0 &&
	    strcmp(method, "GET") == 0) {
		c.route = API_ROUTE_METRICS;
		api_metrics(&c);
		return;
	}
	if (nseg >= 1 && strcmp(seg[0], "ui") == 0 && strcmp(method, "GET") == 0) {
		c.route = API_ROUTE_UI;
		api_ui(&c, path);
		return;
	}
	if (nseg >= 1 && strcmp(seg[0], "v1") == 0) {
		if (!authorized(a, req)) {
			http_response_header(req, "WWW-Authenticate", "Bearer");
			api_reply_error(&c, 401, "unauthenticated",
					"this node requires 'Authorization: "
					"Bearer <token>'",
					NULL);
			return;
		}
		if (forward_to_leader(&c, seg, nseg))
			return;
		if (nseg >= 2 && (strcmp(seg[1], "jobs") == 0 ||
				  strncmp(seg[1], "jobs:", 5) == 0 ||
				  strcmp(seg[1], "runs") == 0 ||
				  strncmp(seg[1], "runs:", 5) == 0 ||
				  strcmp(seg[1], "queues") == 0)) {
			api_jobs_route(&c, seg + 1, nseg - 1);
			return;
		}
		if (nseg >= 2 && strcmp(seg[1], "cluster") == 0) {
			api_cluster_route(&c, seg + 1, nseg - 1);
			return;
		}
	}
	api_reply_error(&c, 404, "not_found", "no such route", NULL);
}

/* The dashboard: one page, embedded at build time (web/index.html). */
extern const unsigned char ui_index_html[];
extern const size_t ui_index_html_len;

void api_ui(api_call *c, const char *path)
{
	if (strcmp(path, "/ui") == 0) {
		http_response_header(c->req, "Location", "/ui/");
		api_reply_text(c, 301, "text/plain", "see /ui/\n", 9);
		return;
	}
	http_response_header(c->req, "Cache-Control", "no-cache");
	api_reply_text(c, 200, "text/html; charset=utf-8",
		       (const char *)ui_index_html, ui_index_html_len);
}

static void http_log(void *ud, const char *line)
{
	(void)ud;
	log_debug("http: %s", line);
}

int api_start(uv_loop_t *loop, const api_config *cfg, api **out,
	      hora_error *err)
{
	api *a = hora_calloc(1, sizeof *a);
	http_server_config hc;
	int rv;

	if (a == NULL)
		return hora_error_set(err, -HORA_ENOMEM, "", "out of memory");
	a->loop = loop;
	a->node = cfg->node;
	a->dispatch = cfg->dispatch;
	a->forwarder = cfg->forwarder;
	a->loop_stats = cfg->loop_stats;
	if (cfg->token) {
		a->token = hora_strdup(cfg->token);
		if (a->token == NULL) {
			hora_free(a);
			return hora_error_set(err, -HORA_ENOMEM, "",
					      "out of memory");
		}
	}
	guard_config gc = {
		.allowed_hosts = cfg->allowed_hosts,
		.allowed_origins = cfg->allowed_origins,
		.own_hosts = {cfg->own_hosts[0], cfg->own_hosts[1],
			      cfg->own_hosts[2]},
		.tls = cfg->tls_cert_pem != NULL,
	};
	if ((rv = guard_new(&gc, &a->guard, err)) != 0) {
		hora_free(a->token);
		hora_free(a);
		return rv;
	}
	memset(&hc, 0, sizeof hc);
	hc.host = cfg->host;
	hc.port = cfg->port;
	hc.log = http_log;
	hc.tls_cert_pem = cfg->tls_cert_pem;
	hc.tls_key_pem = cfg->tls_key_pem;
	hc.max_connections = cfg->max_connections;
	hc.max_per_address = cfg->max_per_address;
	rv = http_server_start(loop, &hc, handle, a, &a->http, err);
	if (rv != 0) {
		guard_free(a->guard);
		hora_free(a->token);
		hora_free(a);
		return rv;
	}
	*out = a;
	return 0;
}

void api_http_stats(const api *a, http_server_stats *out)
{
	http_server_stats_get(a->http, out);
}

uint16_t api_port(const api *a)
{
	return http_server_port(a->http);
}

void api_stop_accepting(api *a)
{
	http_server_stop_accepting(a->http);
}

static void http_closed(void *ud)
{
	api *a = ud;
	void (*done)(void *) = a->close_done;
	void *dud = a->close_ud;
	guard_free(a->guard);
	hora_free(a->token);
	hora_free(a);
	if (done)
		done(dud);
}

void api_close(api *a, void (*done)(void *ud), void *ud)
{
	a->close_done = done;
	a->close_ud = ud;
	http_server_close(a->http, http_closed, a);
}
