/* /v1/cluster..., /healthz, /readyz, /metrics. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "api/job_json.h"
#include "cluster/transport.h"
#include "core/alloc.h"
#include "fsm/entry.h"
#include "fsm/fsm.h"

static const char *route_labels[] = {
#define API__ROUTE_LABEL(name, label) label,
	API_ROUTES(API__ROUTE_LABEL)
#undef API__ROUTE_LABEL
};

static json_t *member_json(api *a, uint64_t id, const char *raft,
			   const char *role, const char *state)
{
	const char *url = fsm_node_api(node_fsm(a->node), id);
	return json_pack("{s:I,s:s?,s:s,s:s,s:s}", "id", (json_int_t)id, "api",
			 url, "raft", raft ? raft : "", "role", role, "state",
			 state);
}

static void cluster_status(api_call *c)
{
	api *a = c->a;
	node *n = a->node;
	node_member members[NODE_MAX_MEMBERS];
	size_t count = node_members(n, members, NODE_MAX_MEMBERS);
	const char *leader_raft = NULL;
	uint64_t leader = node_leader(n, &leader_raft);
	json_t *nodes = json_array();

	for (size_t i = 0; i < count; i++) {
		const char *role = members[i].voter ? "voter" : "spare";
		const char *state;
		if (members[i].id == leader)
			state = "leader";
		else if (members[i].id == node_id(n))
			state = node_role_name(n);
		else
			state = "follower";
		json_array_append_new(nodes,
				      member_json(a, members[i].id,
						  members[i].raft, role, state));
	}
	json_t *leader_json = json_null();
	if (leader != 0) {
		const char *url = fsm_node_api(node_fsm(n), leader);
		leader_json = json_pack("{s:I,s:s?,s:s}", "id",
					(json_int_t)leader, "api", url, "raft",
					leader_raft ? leader_raft : "");
	}
	api_reply_json(c, 200,
		       json_pack("{s:I,s:I,s:o,s:o}", "id",
				 (json_int_t)node_id(n), "term",
				 (json_int_t)node_term(n), "leader", leader_json,
				 "nodes", nodes));
}

/* ---- membership ------------------------------------------------------- */

/* Membership bodies may be empty ({} then). */
static json_t *cluster_body(api_call *c)
{
	size_t len;
	http_request_body(c->req, &len);
	return len == 0 ? json_object() : api_body_object(c);
}

static void change_failed(api_call *c, int status)
{
	switch (status) {
	case -HORA_ENOTLEADER:
	case -HORA_ESHUTDOWN:
		api_reply_unavailable(c, status);
		break;
	case -HORA_EBUSY:
		http_response_header(c->req, "Retry-After", "1");
		api_reply_error(c, 409, "conflict",
				"another membership change is in progress; "
				"retry",
				NULL);
		break;
	case -HORA_EEXIST:
		api_reply_error(c, 409, "already_exists",
				"that node id is a member at another Raft "
				"address",
				"id");
		break;
	case -HORA_ENOENT:
		api_reply_error(c, 404, "not_found", "no such member", "id");
		break;
	default:
		api_reply_error(c, 500, "internal", hora_strerror(status), NULL);
	}
}

typedef struct add_ctx {
	api_pending base; /* first: api_pending_free frees the struct */
	uint64_t id;
	char raft[64];
	char api[128];
} add_ctx;

static void add_info_committed(void *ud, int status, const fsm_result *res)
{
	add_ctx *x = ud;
	(void)res;
	if (api_pending_settle(&x->base)) {
		if (status != 0)
			change_failed(&x->base.call, status);
		else
			api_reply_json(&x->base.call, 201,
				       json_pack("{s:I,s:s,s:s}", "id",
						 (json_int_t)x->id, "raft",
						 x->raft, "api", x->api));
	}
	api_pending_free(&x->base);
}

static void add_done(void *ud, int status)
{
	add_ctx *x = ud;
	api *a = x->base.call.a;
	uint8_t *buf;
	size_t len;
	if (status == 0 && x->api[0] &&
	    entry_encode_node_info(x->id, x->api, api_stamp(a), &buf, &len) ==
		    0 &&
	    node_propose(a->node, buf, len, add_info_committed, x) == 0)
		return;
	if (api_pending_settle(&x->base)) {
		if (status == -HORA_EIO) {
			char msg[320];
			snprintf(msg, sizeof msg,
				 "node %llu was added but did not catch up with "
				 "the log, so it is not a voter: start it with "
				 "--join (a node started with neither --cluster "
				 "nor --join bootstraps a cluster of its own and "
				 "cannot join this one)",
				 (unsigned long long)x->id);
			api_reply_error(&x->base.call, 409, "conflict", msg,
					"id");
		} else if (status != 0) {
			change_failed(&x->base.call, status);
		} else {
			api_reply_json(&x->base.call, 201,
				       json_pack("{s:I,s:s}", "id",
						 (json_int_t)x->id, "raft",
						 x->raft));
		}
	}
	api_pending_free(&x->base);
}

static void add_node(api_call *c)
{
	json_t *obj = cluster_body(c);
	if (obj == NULL)
		return;
	json_t *idv = json_object_get(obj, "id");
	json_t *rv_ = json_object_get(obj, "raft");
	json_t *av = json_object_get(obj, "api");
	const char *key;
	json_t *val;
	json_object_foreach(obj, key, val)
	{
		if (strcmp(key, "id") && strcmp(key, "raft") && strcmp(key, "api")) {
			char msg[160];
			snprintf(msg, sizeof msg, "unknown field '%.64s'", key);
			api_reply_error(c, 400, "invalid_argument", msg, key);
			json_decref(obj);
			return;
		}
	}
	if (!json_is_integer(idv) || json_integer_value(idv) < 1 ||
	    json_integer_value(idv) > UINT32_MAX) {
		api_reply_error(c, 400, "invalid_argument",
				"id must be a positive node id", "id");
		json_decref(obj);
		return;
	}
	const char *raft = json_is_string(rv_) ? json_string_value(rv_) : NULL;
	if (raft == NULL || strchr(raft, ':') == NULL || strlen(raft) >= 64) {
		api_reply_error(c, 400, "invalid_argument",
				"raft must be the node's Raft address HOST:PORT",
				"raft");
		json_decref(obj);
		return;
	}
	const char *url = json_is_string(av) ? json_string_value(av) : "";
	if (av && !json_is_null(av) &&
	    (!json_is_string(av) || strlen(url) >= 128 ||
	     (strncmp(url, "http://", 7) != 0 &&
	      strncmp(url, "https://", 8) != 0))) {
		api_reply_error(c, 400, "invalid_argument",
				"api must be the node's API URL (http://...)",
				"api");
		json_decref(obj);
		return;
	}
	add_ctx *x = hora_calloc(1, sizeof *x);
	if (x == NULL) {
		json_decref(obj);
		api_reply_error(c, 500, "internal", "out of memory", NULL);
		return;
	}
	x->id = (uint64_t)json_integer_value(idv);
	snprintf(x->raft, sizeof x->raft, "%s", raft);
	snprintf(x->api, sizeof x->api, "%s", url);
	json_decref(obj);
	api_pending_init(&x->base, c, 0);
	int rv = node_add_voter(c->a->node, x->id, x->raft, add_done, x);
	if (rv != 0) {
		api_pending_settle(&x->base);
		api_pending_free(&x->base);
		change_failed(c, rv);
	}
}

typedef struct change_ctx {
	api_pending base;
	uint64_t id;
	bool transfer;
} change_ctx;

static void change_done(void *ud, int status)
{
	change_ctx *x = ud;
	if (api_pending_settle(&x->base)) {
		api_call *c = &x->base.call;
		if (status != 0 && !(x->transfer && status == -HORA_EIO)) {
			change_failed(c, status);
		} else if (x->transfer) {
			const char *raft = NULL;
			uint64_t leader = node_leader(c->a->node, &raft);
			if (status != 0)
				api_reply_error(c, 503, "unavailable",
						"the transfer did not complete; "
						"this node still leads",
						NULL);
			else
				api_reply_json(
					c, 200,
					json_pack("{s:b,s:I,s:I}", "transferred",
						  1, "from",
						  (json_int_t)node_id(c->a->node),
						  "leader", (json_int_t)leader));
		} else {
			api_reply_json(c, 200,
				       json_pack("{s:I,s:b}", "id",
						 (json_int_t)x->id, "removed", 1));
		}
	}
	api_pending_free(&x->base);
}

static void remove_node(api_call *c, const char *id_s)
{
	char *end;
	unsigned long long id = strtoull(id_s, &end, 10);
	if (*id_s == '\0' || *end || id == 0) {
		api_reply_error(c, 404, "not_found", "no such member", NULL);
		return;
	}
	change_ctx *x = hora_calloc(1, sizeof *x);
	if (x == NULL) {
		api_reply_error(c, 500, "internal", "out of memory", NULL);
		return;
	}
	x->id = id;
	api_pending_init(&x->base, c, 0);
	int rv = node_remove_member(c->a->node, id, change_done, x);
	if (rv != 0) {
		api_pending_settle(&x->base);
		api_pending_free(&x->base);
		change_failed(c, rv);
	}
}

static void transfer(api_call *c)
{
	json_t *obj = cluster_body(c);
	if (obj == NULL)
		return;
	json_t *to = json_object_get(obj, "to");
	if (to && !json_is_null(to) &&
	    (!json_is_integer(to) || json_integer_value(to) < 1)) {
		json_decref(obj);
		api_reply_error(c, 400, "invalid_argument",
				"to must be a node id (or absent: the most "
				"up-to-date voter)",
				"to");
		return;
	}
	uint64_t target = json_is_integer(to) ? (uint64_t)json_integer_value(to)
					      : 0;
	json_decref(obj);
	change_ctx *x = hora_calloc(1, sizeof *x);
	if (x == NULL) {
		api_reply_error(c, 500, "internal", "out of memory", NULL);
		return;
	}
	x->id = target;
	x->transfer = true;
	api_pending_init(&x->base, c, 0);
	int rv = node_transfer(c->a->node, target, change_done, x);
	if (rv != 0) {
		api_pending_settle(&x->base);
		api_pending_free(&x->base);
		change_failed(c, rv);
	}
}

void api_cluster_route(api_call *c, const char *const *seg, size_t nseg)
{
	const char *m = http_request_method(c->req);
	if (nseg == 2 && strcmp(seg[1], "nodes") == 0) {
		c->route = API_ROUTE_CLUSTER_ADD;
		if (strcmp(m, "POST") == 0)
			return add_node(c);
	} else if (nseg == 3 && strcmp(seg[1], "nodes") == 0) {
		c->route = API_ROUTE_CLUSTER_REMOVE;
		if (strcmp(m, "DELETE") == 0)
			return remove_node(c, seg[2]);
	} else if (nseg == 2 && strcmp(seg[1], "transfer") == 0) {
		c->route = API_ROUTE_CLUSTER_TRANSFER;
		if (strcmp(m, "POST") == 0)
			return transfer(c);
	}
	if (nseg == 1) {
		c->route = API_ROUTE_CLUSTER;
		if (strcmp(m, "GET") != 0) {
			http_response_header(c->req, "Allow", "GET");
			api_reply_error(c, 405, "method_not_allowed",
					"this route does not take that method",
					NULL);
			return;
		}
		cluster_status(c);
		return;
	}
	if (nseg >= 2 && nseg <= 3) {
		http_response_header(c->req, "Allow",
				     nseg == 3 ? "DELETE" : "POST");
		api_reply_error(c, 405, "method_not_allowed",
				"this route does not take that method", NULL);
		return;
	}
	api_reply_error(c, 404, "not_found", "no such route", NULL);
}

void api_healthz(api_call *c)
{
	static const char ok[] = "{\"status\":\"ok\"}";
	api_reply_text(c, 200, "application/json", ok, sizeof ok - 1);
}

void api_readyz(api_call *c)
{
	node *n = c->a->node;
	if (node_ready(n)) {
		static const char ok[] = "{\"status\":\"ready\"}";
		api_reply_text(c, 200, "application/json", ok, sizeof ok - 1);
		return;
	}
	http_response_header(c->req, "Retry-After", "1");
	api_reply_error(c, 503, "unavailable",
			node_leader(n, NULL) == 0
				? "no leader is known yet"
				: "this node has not applied the committed log "
				  "yet",
			NULL);
}

/* ---- metrics ---------------------------------------------------------- */

typedef struct text {
	char *buf;
	size_t len, cap;
	bool failed;
} text;

__attribute__((format(printf, 2, 3))) static void out(text *t,
						      const char *fmt, ...)
{
	va_list ap;
	if (t->failed)
		return;
	for (;;) {
		size_t room = t->cap - t->len;
		va_start(ap, fmt);
		int n = vsnprintf(t->buf + t->len, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = true;
			return;
		}
		if ((size_t)n < room) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap * 2 + (size_t)n;
		char *b = hora_realloc(t->buf, cap);
		if (b == NULL) {
			t->failed = true;
			return;
		}
		t->buf = b;
		t->cap = cap;
	}
}

static void hist_out(text *t, const char *name, const char *labels,
		     const hora_hist *h)
{
	uint64_t cum = 0;
	const char *sep = labels[0] ? "," : "";
	for (int i = 0; i < HIST_BUCKETS; i++) {
		cum += h->counts[i];
		out(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
		    hist_bounds[i], (unsigned long long)cum);
	}
	cum += h->counts[HIST_BUCKETS];
	out(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
	    (unsigned long long)cum);
	const char *open = labels[0] ? "{" : "", *close = labels[0] ? "}" : "";
	out(t, "%s_sum%s%s%s %.6f\n", name, open, labels, close,
	    h->sum_seconds);
	out(t, "%s_count%s%s%s %llu\n", name, open, labels, close,
	    (unsigned long long)h->count);
}

typedef struct queue_depth_ctx {
	text *t;
	const dispatch *d;
} queue_depth_ctx;

static int queue_depth(const char *name, void *ud)
{
	queue_depth_ctx *q = ud;
	out(q->t, "hora_queue_ready{queue=\"%s\"} %zu\n", name,
	    dispatch_ready_count(q->d, name));
	return 0;
}

void api_metrics(api_call *c)
{
	api *a = c->a;
	node *n = a->node;
	fsm *f = node_fsm(n);
	text t = {hora_malloc(16384), 0, 16384, false};
	if (t.buf == NULL) {
		api_reply_error(c, 500, "internal", "out of memory", NULL);
		return;
	}
	out(&t, "# HELP hora_jobs Jobs in the store.\n# TYPE hora_jobs gauge\n"
		"hora_jobs %zu\n",
	    store_count(fsm_store(f)));
	out(&t, "# HELP hora_job_bytes Bytes held by job records.\n"
		"# TYPE hora_job_bytes gauge\nhora_job_bytes %zu\n",
	    store_job_bytes(fsm_store(f)));
	out(&t, "# HELP hora_raft_term Current Raft term.\n"
		"# TYPE hora_raft_term gauge\nhora_raft_term %llu\n",
	    (unsigned long long)node_term(n));
	out(&t, "# HELP hora_raft_leader 1 if this node leads.\n"
		"# TYPE hora_raft_leader gauge\nhora_raft_leader %d\n",
	    node_is_leader(n) ? 1 : 0);
	out(&t, "# HELP hora_raft_applied_index Last applied log index.\n"
		"# TYPE hora_raft_applied_index gauge\n"
		"hora_raft_applied_index %llu\n",
	    (unsigned long long)fsm_last_index(f));
	out(&t, "# HELP hora_raft_applied_entries_total Entries applied.\n"
		"# TYPE hora_raft_applied_entries_total counter\n"
		"hora_raft_applied_entries_total %llu\n",
	    (unsigned long long)node_applied_count(n));
	out(&t, "# HELP hora_raft_snapshots_total Snapshots taken.\n"
		"# TYPE hora_raft_snapshots_total counter\n"
		"hora_raft_snapshots_total %llu\n",
	    (unsigned long long)node_snapshot_count(n));
	out(&t, "# HELP hora_raft_commit_seconds Proposal to apply on the "
		"leader.\n# TYPE hora_raft_commit_seconds histogram\n");
	hist_out(&t, "hora_raft_commit_seconds", "", node_commit_hist(n));

	const fsm_run_stats *rs = fsm_stats(f);
	static const char *const status_names[RUN_STATUS_COUNT] = {
		"scheduled", "running", "succeeded", "failed",
		"timed_out", "skipped", "cancelled"};
	out(&t, "# HELP hora_runs_fired_total Runs fired (replicated).\n"
		"# TYPE hora_runs_fired_total counter\n"
		"hora_runs_fired_total %llu\n",
	    (unsigned long long)rs->fired);
	out(&t, "# HELP hora_runs_finished_total Runs finished, by status.\n"
		"# TYPE hora_runs_finished_total counter\n");
	for (int i = RUN_SUCCEEDED; i < RUN_STATUS_COUNT; i++)
		out(&t, "hora_runs_finished_total{status=\"%s\"} %llu\n",
		    status_names[i], (unsigned long long)rs->finished[i]);
	out(&t, "# HELP hora_runs_retries_total Attempts scheduled again after "
		"a failure.\n# TYPE hora_runs_retries_total counter\n"
		"hora_runs_retries_total %llu\n",
	    (unsigned long long)rs->retries);
	out(&t, "# HELP hora_runs_expired_total Leases that expired.\n"
		"# TYPE hora_runs_expired_total counter\n"
		"hora_runs_expired_total %llu\n",
	    (unsigned long long)rs->expired);
	out(&t, "# HELP hora_instants_skipped_total Instants skipped: by "
		"overlap forbid or by misfire skip.\n"
		"# TYPE hora_instants_skipped_total counter\n"
		"hora_instants_skipped_total{reason=\"overlap\"} %llu\n"
		"hora_instants_skipped_total{reason=\"misfire\"} %llu\n",
	    (unsigned long long)rs->skipped_overlap,
	    (unsigned long long)rs->misfire_skipped);
	out(&t, "# HELP hora_runs_stored Runs held (active and history).\n"
		"# TYPE hora_runs_stored gauge\nhora_runs_stored %zu\n"
		"# HELP hora_run_history_bytes Bytes held by runs.\n"
		"# TYPE hora_run_history_bytes gauge\n"
		"hora_run_history_bytes %zu\n",
	    fsm_run_count(f), fsm_run_bytes(f));
	if (a->dispatch) {
		const dispatch_stats *ds = dispatch_get_stats(a->dispatch);
		out(&t, "# HELP hora_dispatch_lateness_seconds Due instant to "
			"hand-out, on this leader.\n"
			"# TYPE hora_dispatch_lateness_seconds histogram\n");
		hist_out(&t, "hora_dispatch_lateness_seconds", "",
			 &ds->lateness);
		out(&t, "# HELP hora_dispatch_handed_out_total Runs handed to "
			"workers by this leader.\n"
			"# TYPE hora_dispatch_handed_out_total counter\n"
			"hora_dispatch_handed_out_total %llu\n"
			"# HELP hora_dispatch_misfires_total Jobs found with "
			"missed instants.\n"
			"# TYPE hora_dispatch_misfires_total counter\n"
			"hora_dispatch_misfires_total %llu\n"
			"# HELP hora_dispatch_timeouts_total Runs timed out by "
			"the leader.\n"
			"# TYPE hora_dispatch_timeouts_total counter\n"
			"hora_dispatch_timeouts_total %llu\n"
			"# HELP hora_jobs_collected_total Finished one-shot jobs "
			"deleted after their retention.\n"
			"# TYPE hora_jobs_collected_total counter\n"
			"hora_jobs_collected_total %llu\n"
			"# HELP hora_claims_waiting Long polls waiting.\n"
			"# TYPE hora_claims_waiting gauge\n"
			"hora_claims_waiting %u\n",
		    (unsigned long long)ds->handed_out,
		    (unsigned long long)ds->misfires,
		    (unsigned long long)ds->timed_out,
		    (unsigned long long)ds->collected, ds->claims_waiting);
		out(&t, "# HELP hora_queue_ready Due runs waiting for a worker, "
			"by queue (leader).\n# TYPE hora_queue_ready gauge\n");
		queue_depth_ctx qd = {&t, a->dispatch};
		store_each_intern(fsm_store(f), queue_depth, &qd);
	}

	transport_stats ts;
	node_transport_stats(n, &ts);
	out(&t, "# HELP hora_raft_peer_handshakes_total Raft connections by "
		"handshake outcome (refused: failed a check; busy: too many "
		"handshakes at once).\n"
		"# TYPE hora_raft_peer_handshakes_total counter\n"
		"hora_raft_peer_handshakes_total{result=\"accepted\"} %llu\n"
		"hora_raft_peer_handshakes_total{result=\"connected\"} %llu\n"
		"hora_raft_peer_handshakes_total{result=\"refused\"} %llu\n"
		"hora_raft_peer_handshakes_total{result=\"busy\"} %llu\n"
		"hora_raft_peer_handshakes_total{result=\"failed_out\"} %llu\n"
		"# HELP hora_raft_tls_connections Raft connections relayed "
		"over TLS now.\n# TYPE hora_raft_tls_connections gauge\n"
		"hora_raft_tls_connections %u\n",
	    (unsigned long long)ts.accepted, (unsigned long long)ts.connected,
	    (unsigned long long)ts.refused, (unsigned long long)ts.busy,
	    (unsigned long long)ts.failed_out, ts.relayed);
	http_server_stats hs;
	api_http_stats(a, &hs);
	out(&t, "# HELP hora_http_connections Open API connections.\n"
		"# TYPE hora_http_connections gauge\n"
		"hora_http_connections %u\n"
		"# HELP hora_http_refused_total Connections answered at once "
		"and closed: server full (503) or too many from one address "
		"(429).\n# TYPE hora_http_refused_total counter\n"
		"hora_http_refused_total{reason=\"full\"} %llu\n"
		"hora_http_refused_total{reason=\"per_address\"} %llu\n"
		"# HELP hora_http_deadlines_total Connections closed because "
		"a request head or body was too slow.\n"
		"# TYPE hora_http_deadlines_total counter\n"
		"hora_http_deadlines_total{part=\"head\"} %llu\n"
		"hora_http_deadlines_total{part=\"body\"} %llu\n",
	    hs.open_connections, (unsigned long long)hs.refused_full,
	    (unsigned long long)hs.refused_per_address,
	    (unsigned long long)hs.head_timeouts,
	    (unsigned long long)hs.body_timeouts);
	out(&t, "# HELP hora_http_forwarded_total Requests relayed to the "
		"leader.\n# TYPE hora_http_forwarded_total counter\n"
		"hora_http_forwarded_total %llu\n",
	    (unsigned long long)a->forwarded);
	out(&t, "# HELP hora_http_requests_total API requests by route and "
		"status.\n# TYPE hora_http_requests_total counter\n");
	for (int r = 0; r < API_ROUTE_COUNT_; r++)
		for (int s = 0; s < API_STATUS_SLOTS; s++)
			if (a->routes[r].by_status[s])
				out(&t,
				    "hora_http_requests_total{route=\"%s\","
				    "status=\"%d\"} %llu\n",
				    route_labels[r], s,
				    (unsigned long long)a->routes[r]
					    .by_status[s]);
	out(&t, "# HELP hora_http_request_seconds API latency by route.\n"
		"# TYPE hora_http_request_seconds histogram\n");
	for (int r = 0; r < API_ROUTE_COUNT_; r++) {
		char labels[128];
		if (a->routes[r].latency.count == 0)
			continue;
		snprintf(labels, sizeof labels, "route=\"%s\"", route_labels[r]);
		hist_out(&t, "hora_http_request_seconds", labels,
			 &a->routes[r].latency);
	}
	if (t.failed) {
		hora_free(t.buf);
		api_reply_error(c, 500, "internal", "out of memory", NULL);
		return;
	}
	api_reply_text(c, 200, "text/plain; version=0.0.4", t.buf, t.len);
	hora_free(t.buf);
}
