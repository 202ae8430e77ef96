/* horad - the hora server: one libuv loop running Raft, the API and the
 * executors (DESIGN.md, principle 1). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "api/api.h"
#include "api/forward.h"
#include "api/http.h"
#include "cluster/dispatch.h"
#include "cluster/node.h"
#include "core/log.h"
#include "daemon/config.h"
#include "daemon/workers.h"
#include "net/loop_stats.h"

/* How long a stopping node waits for writes already proposed. */
#define DRAIN_MS 3000
/* How long running built-in executions may finish before they are
 * cancelled and handed back. */
#define WORKERS_GRACE_MS 10000

typedef struct horad {
	uv_loop_t *loop;
	daemon_config cfg;
	node *node;
	dispatch *dispatch;
	workers *workers;
	forwarder *forwarder;
	api *api;
	uv_timer_t publish;
	bool publishing; /* a call is in flight */
	bool joined;
	char api_url[256];
	uv_signal_t sigterm, sigint;
	uv_timer_t drain;
	uint64_t drain_started;
	loop_stats loop_stats; /* hora_loop_busy_seconds */
	int stopping;
	int exit_code;
	int lock_fd;
} horad;

static void node_closed(void *ud)
{
	horad *d = ud;
	d->node = NULL;
	uv_close((uv_handle_t *)&d->publish, NULL);
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
	uv_close((uv_handle_t *)&d->drain, NULL);
	loop_stats_stop(&d->loop_stats, NULL, NULL);
}

static void forwarder_closed(void *ud)
{
	(void)ud;
}

static void api_closed(void *ud)
{
	horad *d = ud;
	d->api = NULL;
	forwarder_close(d->forwarder, forwarder_closed, d);
	d->forwarder = NULL;
	dispatch_close(d->dispatch);
	d->dispatch = NULL;
	node_close(d->node, node_closed, d);
}

static void on_drain(uv_timer_t *t)
{
	horad *d = t->data;
	uint64_t waited = (uv_hrtime() - d->drain_started) / 1000000;
	if (node_pending_count(d->node) > 0 && waited < DRAIN_MS)
		return;
	uv_timer_stop(t);
	if (node_pending_count(d->node) > 0)
		log_warn("stopping with %zu write(s) still uncommitted",
			 node_pending_count(d->node));
	api_close(d->api, api_closed, d);
}

static void workers_stopped(void *ud)
{
	horad *d = ud;
	d->workers = NULL;
	/* what the workers reported is committed before the API closes */
	d->drain_started = uv_hrtime();
	uv_timer_start(&d->drain, on_drain, 0, 5);
}

/* After the hand-over (or at once on a follower): no new work; what was
 * proposed is committed before the API closes, so acknowledged writes
 * are never cut off. */
static void stop_serving(horad *d)
{
	api_stop_accepting(d->api);
	if (d->workers) {
		workers_stop(d->workers, WORKERS_GRACE_MS, workers_stopped, d);
		return;
	}
	workers_stopped(d);
}

static void handed_over(void *ud, int status)
{
	horad *d = ud;
	if (status != 0)
		log_warn("could not hand leadership over (%s); stopping anyway",
			 hora_strerror(status));
	stop_serving(d);
}

static bool has_other_voter(horad *d)
{
	node_member m[NODE_MAX_MEMBERS];
	size_t n = node_members(d->node, m, NODE_MAX_MEMBERS);
	for (size_t i = 0; i < n; i++)
		if (m[i].voter && m[i].id != node_id(d->node))
			return true;
	return false;
}

static void on_signal(uv_signal_t *s, int signum)
{
	horad *d = s->data;
	if (d->stopping++) {
		log_warn("second %s: exiting now", strsignal(signum));
		exit(1);
	}
	log_info("%s: stopping (send it again to exit at once)",
		 strsignal(signum));
	/* a leader hands over first, so the cluster keeps dispatching
	 * while this node drains */
	if (node_is_leader(d->node) && has_other_voter(d) &&
	    node_transfer(d->node, 0, handed_over, d) == 0) {
		log_info("handing leadership over before stopping");
		return;
	}
	stop_serving(d);
}

/* ---- joining and publishing this node's API address ------------------- */

static void published(void *ud, int status, const char *body, size_t len)
{
	horad *d = ud;
	d->publishing = false;
	if (status >= 200 && status < 300) {
		if (d->cfg.join && !d->joined)
			log_info("joined the cluster through %s", d->cfg.join);
		d->joined = true;
		return;
	}
	if (d->cfg.join && !d->joined)
		log_warn("joining through %s: %s%.*s", d->cfg.join,
			 status ? "HTTP answer: " : "",
			 (int)(len > 300 ? 300 : len), body ? body : "");
}

/* Every second: a node started with --join asks to be added until it
 * is; a follower whose API address is not in the log yet asks the
 * leader to publish it (POST /v1/cluster/nodes is idempotent). */
static void on_publish(uv_timer_t *t)
{
	horad *d = t->data;
	char url[512], body[512];
	if (d->publishing || d->stopping || node_is_leader(d->node))
		return;
	if (d->cfg.join && !d->joined) {
		snprintf(url, sizeof url, "%s/v1/cluster/nodes", d->cfg.join);
	} else {
		uint64_t leader = node_leader(d->node, NULL);
		const char *mine = fsm_node_api(node_fsm(d->node), node_id(d->node));
		const char *lurl = leader ? fsm_node_api(node_fsm(d->node), leader)
					  : NULL;
		if (lurl == NULL || (mine && strcmp(mine, d->api_url) == 0))
			return;
		snprintf(url, sizeof url, "%s/v1/cluster/nodes", lurl);
	}
	snprintf(body, sizeof body, "{\"id\":%llu,\"raft\":\"%s\",\"api\":\"%s\"}",
		 (unsigned long long)d->cfg.id,
		 d->cfg.advertise_raft ? d->cfg.advertise_raft
				       : d->cfg.raft_addr,
		 d->api_url);
	if (forwarder_call(d->forwarder, "POST", url, body, d->cfg.token,
			   published, d) == 0)
		d->publishing = true;
}

/* The host of "scheme://host:port" (brackets kept off), for the API's
 * Host check. */
static const char *url_host(const char *url, char *buf, size_t cap)
{
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	snprintf(buf, cap, "%s", p);
	char *end = buf[0] == '[' ? strchr(buf, ']') : strrchr(buf, ':');
	if (end != NULL)
		*end = '\0';
	return buf[0] == '[' ? buf + 1 : buf;
}

/* Raise the open-file limit to its hard maximum and leave 256
 * descriptors for Raft, the disk, executions and relays: the rest may be
 * API connections (at most 16384). */
static unsigned default_max_connections(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 768;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 16384 + 256)
		return 16384;
	return rl.rlim_cur > 256 + 64 ? (unsigned)(rl.rlim_cur - 256) : 64;
}

/* One horad per data dir: a second would corrupt the Raft log. */
static int lock_data_dir(horad *d)
{
	char path[4096];
	if (mkdir(d->cfg.data_dir, 0755) != 0 && errno != EEXIST) {
		log_error("cannot create data dir %s: %s", d->cfg.data_dir,
			  strerror(errno));
		return -1;
	}
	snprintf(path, sizeof path, "%s/LOCK", d->cfg.data_dir);
	d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (d->lock_fd < 0) {
		log_error("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		log_error("data dir %s is in use by another horad", d->cfg.data_dir);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	horad d;
	hora_error err;
	char api_url[256], own_host[256];
	int rv;

	memset(&d, 0, sizeof d);
	hora_error_clear(&err);
	/* the dispatch clock (a timerfd) wakes the loop at a run's instant,
	 * not up to 50 us after it (the default timer slack) */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	if (config_parse(argc, argv, &d.cfg, &err) != 0) {
		fprintf(stderr, "horad: %s\n", err.msg);
		config_free(&d.cfg);
		return 2;
	}
	if (d.cfg.help) {
		config_usage(stdout);
		return 0;
	}
	if (d.cfg.version) {
		printf("horad %s\n", HORA_VERSION);
		return 0;
	}
	log_configure(d.cfg.log_level, d.cfg.log_json);
	signal(SIGPIPE, SIG_IGN); /* DESIGN.md rule 1 */
	d.loop = uv_default_loop();
	if (lock_data_dir(&d) != 0)
		return 1;
	if ((rv = loop_stats_start(d.loop, &d.loop_stats)) != 0) {
		log_error("cannot measure the event loop: %s", uv_strerror(rv));
		return 1;
	}

	char hostname[256] = "";
	gethostname(hostname, sizeof hostname - 1);
	api_config ac = {
		.host = d.cfg.api_host,
		.port = d.cfg.api_port,
		.token = d.cfg.token,
		.node = NULL,
		.allowed_hosts = d.cfg.allowed_hosts,
		.allowed_origins = d.cfg.allowed_origins,
		.own_hosts = {url_host(d.cfg.api_url, own_host,
				       sizeof own_host),
			      hostname},
	};
	snprintf(api_url, sizeof api_url, "%s", d.cfg.api_url);
	node_config nc = {
		.id = d.cfg.id,
		.data_dir = d.cfg.data_dir,
		.raft_addr = d.cfg.advertise_raft ? d.cfg.advertise_raft
						  : d.cfg.raft_addr,
		.raft_bind = d.cfg.raft_addr,
		.cluster_key = d.cfg.cluster_key,
		.cluster_key_len = d.cfg.cluster_key_len,
		.tls_cert = d.cfg.tls_cert,
		.tls_key = d.cfg.tls_key,
		.tls_ca = d.cfg.tls_ca,
		.api_url = api_url,
		.cluster = d.cfg.cluster,
		.heartbeat_ms = d.cfg.heartbeat_ms,
		.election_ms = d.cfg.election_ms,
		.snapshot_threshold = d.cfg.snapshot_threshold,
		.snapshot_trailing = d.cfg.snapshot_trailing,
		.history_per_job = d.cfg.history_per_job,
		.history_bytes = d.cfg.history_bytes,
		.joining = d.cfg.join != NULL,
	};
	if ((rv = node_open(d.loop, &nc, &d.node, &err)) != 0) {
		log_error("%s", err.msg);
		return rv == -HORA_EINVAL ? 2 : 1;
	}
	if ((rv = dispatch_new(d.loop, d.node, &d.dispatch)) != 0) {
		log_error("cannot start the dispatcher: %s", hora_strerror(rv));
		return 1;
	}
	dispatch_set_once_retention(d.dispatch, d.cfg.once_retention);
	dispatch_set_ahead(d.dispatch, d.cfg.dispatch_ahead_ms);

	ac.node = d.node;
	ac.dispatch = d.dispatch;
	ac.loop_stats = &d.loop_stats;
	ac.tls_cert_pem = d.cfg.tls_cert_pem;
	ac.tls_key_pem = d.cfg.tls_key_pem;
	ac.max_connections = d.cfg.max_connections
				     ? d.cfg.max_connections
				     : default_max_connections();
	ac.max_per_address = d.cfg.max_per_address ? d.cfg.max_per_address
						   : HTTP_NO_LIMIT;
	if ((rv = forwarder_new(d.loop, &d.forwarder, &err)) != 0) {
		log_error("%s", err.msg);
		return 1;
	}
	if (d.cfg.tls_cert != NULL &&
	    forwarder_set_tls(d.forwarder, d.cfg.tls_ca, d.cfg.tls_cert,
			      d.cfg.tls_key) != 0) {
		log_error("out of memory");
		return 1;
	}
	ac.forwarder = d.forwarder;
	if (d.cfg.workers > 0 &&
	    (rv = workers_start(d.loop, d.node, d.dispatch, d.forwarder,
				d.cfg.token, d.cfg.workers,
				d.cfg.exec_queues, d.cfg.exec_queue_count,
				&d.workers, &err)) != 0) {
		log_error("cannot start the built-in workers: %s", err.msg);
		return 1;
	}
	if ((rv = api_start(d.loop, &ac, &d.api, &err)) != 0) {
		log_error("%s", err.msg);
		return rv == -HORA_EINVAL ? 2 : 1;
	}
	log_info("horad %s node %llu: API on %s, Raft on %s, data in %s",
		 HORA_VERSION, (unsigned long long)d.cfg.id, api_url,
		 d.cfg.raft_addr, d.cfg.data_dir);

	uv_signal_init(d.loop, &d.sigterm);
	uv_signal_init(d.loop, &d.sigint);
	d.sigterm.data = d.sigint.data = &d;
	uv_signal_start(&d.sigterm, on_signal, SIGTERM);
	uv_signal_start(&d.sigint, on_signal, SIGINT);
	uv_timer_init(d.loop, &d.drain);
	d.drain.data = &d;
	snprintf(d.api_url, sizeof d.api_url, "%s", api_url);
	uv_timer_init(d.loop, &d.publish);
	d.publish.data = &d;
	uv_timer_start(&d.publish, on_publish, 200, 1000);

	uv_run(d.loop, UV_RUN_DEFAULT);
	uv_loop_close(d.loop);
	config_free(&d.cfg);
	log_info("stopped");
	return d.exit_code;
}
