/* The operator's routes outside /v1: /healthz, /readyz, /metrics
 * (Prometheus text). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "cluster/transport.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "fsm/fsm.h"
#include "net/loop_stats.h"
#include "sched/run.h"

static const char *route_labels[] = {
#define API__ROUTE_LABEL(name, label) label,
	API_ROUTES(API__ROUTE_LABEL)
#undef API__ROUTE_LABEL
};

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

static void hist_out(hora_buf *t, const char *name, const char *labels,
		     const hora_hist *h)
{
	uint64_t cum = 0;
	const char *sep = labels[0] ? "," : "";
	for (int i = 0; i < HIST_BUCKETS; i++) {
		cum += h->counts[i];
		buf_printf(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
			   hist_bounds[i], (unsigned long long)cum);
	}
	cum += h->counts[HIST_BUCKETS];
	buf_printf(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
		   (unsigned long long)cum);
	const char *open = labels[0] ? "{" : "", *close = labels[0] ? "}" : "";
	buf_printf(t, "%s_sum%s%s%s %.6f\n", name, open, labels, close,
		   h->sum_seconds);
	buf_printf(t, "%s_count%s%s%s %llu\n", name, open, labels, close,
		   (unsigned long long)h->count);
}

typedef struct queue_depth_ctx {
	hora_buf *t;
	const dispatch *d;
} queue_depth_ctx;

static int queue_depth(const char *name, void *ud)
{
	queue_depth_ctx *q = ud;
	buf_printf(q->t, "hora_queue_ready{queue=\"%s\"} %zu\n", name,
		   dispatch_ready_count(q->d, name));
	return 0;
}

void api_metrics(api_call *c)
{
	api *a = c->a;
	node *n = a->node;
	fsm *f = node_fsm(n);
	hora_buf t = HORA_BUF_INIT;
	if (buf_reserve(&t, 16384) != 0) {
		api_reply_error(c, 500, "internal", "out of memory", NULL);
		return;
	}
	buf_printf(&t, "# HELP hora_jobs Jobs in the store.\n# TYPE hora_jobs gauge\n"
		"hora_jobs %zu\n",
		   store_count(fsm_store(f)));
	buf_printf(&t, "# HELP hora_job_bytes Bytes held by job records.\n"
		"# TYPE hora_job_bytes gauge\nhora_job_bytes %zu\n",
		   store_job_bytes(fsm_store(f)));
	buf_printf(&t, "# HELP hora_raft_term Current Raft term.\n"
		"# TYPE hora_raft_term gauge\nhora_raft_term %llu\n",
		   (unsigned long long)node_term(n));
	buf_printf(&t, "# HELP hora_raft_leader 1 if this node leads.\n"
		"# TYPE hora_raft_leader gauge\nhora_raft_leader %d\n",
		   node_is_leader(n) ? 1 : 0);
	buf_printf(&t, "# HELP hora_raft_applied_index Last applied log index.\n"
		"# TYPE hora_raft_applied_index gauge\n"
		"hora_raft_applied_index %llu\n",
		   (unsigned long long)fsm_last_index(f));
	buf_printf(&t, "# HELP hora_raft_applied_entries_total Entries applied.\n"
		"# TYPE hora_raft_applied_entries_total counter\n"
		"hora_raft_applied_entries_total %llu\n",
		   (unsigned long long)node_applied_count(n));
	buf_printf(&t, "# HELP hora_raft_snapshots_total Snapshots taken.\n"
		"# TYPE hora_raft_snapshots_total counter\n"
		"hora_raft_snapshots_total %llu\n",
		   (unsigned long long)node_snapshot_count(n));
	buf_printf(&t, "# HELP hora_raft_commit_seconds Proposal to apply on the "
		"leader.\n# TYPE hora_raft_commit_seconds histogram\n");
	hist_out(&t, "hora_raft_commit_seconds", "", node_commit_hist(n));
	if (c->a->loop_stats != NULL) {
		const loop_stats *ls = c->a->loop_stats;
		buf_printf(&t, "# HELP hora_loop_busy_seconds Time the event "
			"loop that hands out runs spends in one iteration "
			"outside waiting for events.\n"
			"# TYPE hora_loop_busy_seconds histogram\n");
		hist_out(&t, "hora_loop_busy_seconds", "", &ls->busy);
		buf_printf(&t, "# HELP hora_loop_busy_max_seconds Longest "
			"busy iteration since start.\n"
			"# TYPE hora_loop_busy_max_seconds gauge\n"
			"hora_loop_busy_max_seconds %.6f\n",
			   (double)ls->max_ns / 1e9);
	}

	const fsm_run_stats *rs = fsm_stats(f);
	buf_printf(&t, "# HELP hora_runs_fired_total Runs fired (replicated).\n"
		"# TYPE hora_runs_fired_total counter\n"
		"hora_runs_fired_total %llu\n",
		   (unsigned long long)rs->fired);
	buf_printf(&t, "# HELP hora_runs_finished_total Runs finished, by status.\n"
		"# TYPE hora_runs_finished_total counter\n");
	for (int i = RUN_SUCCEEDED; i < RUN_STATUS_COUNT; i++)
		buf_printf(&t, "hora_runs_finished_total{status=\"%s\"} %llu\n",
			   run_status_str(i), (unsigned long long)rs->finished[i]);
	buf_printf(&t, "# HELP hora_runs_retries_total Attempts scheduled again after "
		"a failure.\n# TYPE hora_runs_retries_total counter\n"
		"hora_runs_retries_total %llu\n",
		   (unsigned long long)rs->retries);
	buf_printf(&t, "# HELP hora_runs_expired_total Leases that expired.\n"
		"# TYPE hora_runs_expired_total counter\n"
		"hora_runs_expired_total %llu\n",
		   (unsigned long long)rs->expired);
	buf_printf(&t, "# HELP hora_instants_skipped_total Instants skipped: by "
		"overlap forbid or by misfire skip.\n"
		"# TYPE hora_instants_skipped_total counter\n"
		"hora_instants_skipped_total{reason=\"overlap\"} %llu\n"
		"hora_instants_skipped_total{reason=\"misfire\"} %llu\n",
		   (unsigned long long)rs->skipped_overlap,
		   (unsigned long long)rs->misfire_skipped);
	buf_printf(&t, "# HELP hora_runs_stored Runs held (active and history).\n"
		"# TYPE hora_runs_stored gauge\nhora_runs_stored %zu\n"
		"# HELP hora_run_history_bytes Bytes held by runs.\n"
		"# TYPE hora_run_history_bytes gauge\n"
		"hora_run_history_bytes %zu\n",
		   fsm_run_count(f), fsm_run_bytes(f));
	if (a->dispatch) {
		const dispatch_stats *ds = dispatch_get_stats(a->dispatch);
		buf_printf(&t, "# HELP hora_dispatch_lateness_seconds Due instant to "
			"hand-out, on this leader.\n"
			"# TYPE hora_dispatch_lateness_seconds histogram\n");
		hist_out(&t, "hora_dispatch_lateness_seconds", "",
			 &ds->lateness);
		buf_printf(&t, "# HELP hora_dispatch_handed_out_total Runs handed to "
			"workers by this leader.\n"
			"# TYPE hora_dispatch_handed_out_total counter\n"
			"hora_dispatch_handed_out_total %llu\n"
			"# HELP hora_dispatch_handed_ahead_total Of those, runs "
			"prepared before their instant and written by the "
			"courier thread at it (push streams).\n"
			"# TYPE hora_dispatch_handed_ahead_total counter\n"
			"hora_dispatch_handed_ahead_total %llu\n"
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
			"hora_claims_waiting %u\n"
			"# HELP hora_streams_open Push streams open on this "
			"leader.\n"
			"# TYPE hora_streams_open gauge\n"
			"hora_streams_open %u\n",
			   (unsigned long long)ds->handed_out,
			   (unsigned long long)ds->handed_ahead,
			   (unsigned long long)ds->misfires,
			   (unsigned long long)ds->timed_out,
			   (unsigned long long)ds->collected, ds->claims_waiting,
			   ds->streams);
		buf_printf(&t, "# HELP hora_queue_ready Due runs waiting for a worker, "
			"by queue (leader).\n# TYPE hora_queue_ready gauge\n");
		queue_depth_ctx qd = {&t, a->dispatch};
		store_each_intern(fsm_store(f), queue_depth, &qd);
	}

	transport_stats ts;
	node_transport_stats(n, &ts);
	buf_printf(&t, "# HELP hora_raft_peer_handshakes_total Raft connections by "
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
	buf_printf(&t, "# HELP hora_http_connections Open API connections.\n"
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
	buf_printf(&t, "# HELP hora_http_forwarded_total Requests relayed to the "
		"leader.\n# TYPE hora_http_forwarded_total counter\n"
		"hora_http_forwarded_total %llu\n",
		   (unsigned long long)a->forwarded);
	buf_printf(&t, "# HELP hora_http_requests_total API requests by route and "
		"status.\n# TYPE hora_http_requests_total counter\n");
	for (int r = 0; r < API_ROUTE_COUNT_; r++)
		for (int s = 0; s < API_STATUS_SLOTS; s++)
			if (a->routes[r].by_status[s])
				buf_printf(&t,
					   "hora_http_requests_total{route=\"%s\","
					   "status=\"%d\"} %llu\n",
					   route_labels[r], s,
					   (unsigned long long)a->routes[r]
					    .by_status[s]);
	buf_printf(&t, "# HELP hora_http_request_seconds API latency by route.\n"
		"# TYPE hora_http_request_seconds histogram\n");
	for (int r = 0; r < API_ROUTE_COUNT_; r++) {
		char labels[128];
		if (a->routes[r].latency.count == 0)
			continue;
		snprintf(labels, sizeof labels, "route=\"%s\"", route_labels[r]);
		hist_out(&t, "hora_http_request_seconds", labels,
			 &a->routes[r].latency);
	}
	if (t.oom) {
		buf_free(&t);
		api_reply_error(c, 500, "internal", "out of memory", NULL);
		return;
	}
	api_reply_text(c, 200, "text/plain; version=0.0.4", t.p, t.len);
	buf_free(&t);
}
