#include "cluster/node.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <raft.h>
#include <raft/uv.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/log.h"
#include "cluster/snapfork.h"
#include "cluster/transport.h"
#include "fsm/frame.h"

#define NODE_MAX_APPEND_BYTES ((size_t)4 << 30)

/* Snapshots: C-Raft triggers one every `threshold` applied entries.  The
 * count is adapted to the entries' average size so that a log of large
 * batch entries is compacted after about SNAPSHOT_BYTES, and the entries
 * kept behind a snapshot stay within TRAILING_BYTES.  Every snapshot
 * stalls the loop while the kernel tears down an AIO context (DESIGN.md,
 * rule 7), so small entries keep the large count. */
#define SNAPSHOT_THRESHOLD_DEFAULT 16384
#define SNAPSHOT_TRAILING_DEFAULT 8192
#define SNAPSHOT_BYTES (32u << 20)
#define TRAILING_BYTES (8u << 20)
#define SNAPSHOT_MIN_ENTRIES 64

typedef struct proposal {
	struct raft_apply req;
	node *n;
	node_commit_cb cb;
	void *ud;
	uint64_t t0; /* uv_hrtime at proposal */
	struct proposal *prev, *next;
} proposal;

struct node {
	uv_loop_t *loop;
	struct raft raft;
	struct raft_io io;
	peer_transport *transport;
	unsigned heartbeat_ms;
	unsigned election_ms;
	uint64_t gone_leader; /* its connection closed; fast election on */
	struct raft_fsm rfsm;
	fsm *f;
	uv_timer_t tick;
	uint64_t id;
	char *data_dir;
	char *raft_dir;
	char *raft_addr;
	char *api_url;
	bool leader;
	bool closing;
	int pending_closes;
	void (*close_done)(void *);
	void *close_ud;
	node_role_cb role_cb;
	void *role_ud;
	/* proposals in log-index order, to know which applies have a
	 * waiting caller (followers apply without one) */
	proposal *head, *tail;
	unsigned threshold_default;
	unsigned trailing_default;
	uint64_t applied;
	uint64_t applied_bytes;
	double entry_bytes_avg; /* recent entries (EWMA over ~64) */
	uint64_t snapshots;
	bool node_info_sent;
	hora_hist commit_hist;
};

/* ---- fsm callbacks ---------------------------------------------------- */

static proposal *waiting_for(node *n, raft_index index)
{
	for (proposal *p = n->head; p != NULL; p = p->next) {
		if (p->req.index == index)
			return p;
		if (p->req.index > index)
			break;
	}
	return NULL;
}

static void adapt_snapshot_sizes(node *n)
{
	if (n->applied == 0)
		return;
	/* the recent size, not the lifetime one: after a bulk load of large
	 * batch entries, small run entries must get the large count back */
	uint64_t avg = (uint64_t)n->entry_bytes_avg;
	if (avg == 0)
		avg = 1;
	uint64_t threshold = SNAPSHOT_BYTES / avg;
	uint64_t trailing = TRAILING_BYTES / avg;
	if (threshold > n->threshold_default)
		threshold = n->threshold_default;
	if (threshold < SNAPSHOT_MIN_ENTRIES)
		threshold = SNAPSHOT_MIN_ENTRIES;
	if (trailing > n->trailing_default)
		trailing = n->trailing_default;
	if (trailing < SNAPSHOT_MIN_ENTRIES)
		trailing = SNAPSHOT_MIN_ENTRIES;
	raft_set_snapshot_threshold(&n->raft, (unsigned)threshold);
	raft_set_snapshot_trailing(&n->raft, (unsigned)trailing);
}

static int rfsm_apply(struct raft_fsm *rf, const struct raft_buffer *buf,
		      void **result)
{
	node *n = rf->data;
	/* C-Raft applies in order and sets last_applied after each apply */
	raft_index index = raft_last_applied(&n->raft) + 1;
	proposal *p = waiting_for(n, index);
	fsm_result *res = NULL;
	size_t len = frame_entry_len(buf->base, buf->len);
	int rv;

	rv = fsm_apply(n->f, buf->base, len, index, p ? &res : NULL);
	if (rv == -HORA_ENOMEM) {
		/* replicas must not diverge: stopping is the only safe move */
		log_error("out of memory applying log entry %llu; stopping",
			  (unsigned long long)index);
		abort();
	}
	if (rv == -HORA_EVERSION) {
		log_error("log entry %llu was written by a newer hora release "
			  "that this one cannot read; upgrade this node",
			  (unsigned long long)index);
		exit(1);
	}
	if (rv == -HORA_ECORRUPT) {
		/* every replica skips the same bytes the same way */
		log_error("log entry %llu is malformed; skipped",
			  (unsigned long long)index);
	}
	n->applied++;
	n->applied_bytes += buf->len;
	n->entry_bytes_avg = n->applied == 1
				     ? (double)buf->len
				     : n->entry_bytes_avg +
					       ((double)buf->len - n->entry_bytes_avg) /
						       64.0;
	if ((n->applied & 63) == 1)
		adapt_snapshot_sizes(n);
	*result = res;
	return 0;
}

static int rfsm_snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[],
			 unsigned *n_bufs)
{
	node *n = rf->data;
	uint8_t *data;
	size_t len;
	uint64_t t0 = uv_hrtime();
	snapfork *sf;

	*bufs = hora_malloc(sizeof **bufs);
	if (*bufs == NULL)
		return RAFT_NOMEM;
	/* a forked child encodes; C-Raft's thread pool copies (snapfork.h) */
	if (snapfork_start(n->f, &sf) == 0) {
		(*bufs)[0].base = sf;
		(*bufs)[0].len = 0;
		*n_bufs = 1;
		n->snapshots++;
		log_debug("snapshot at index %llu: %zu jobs, forked in %.1f ms",
			  (unsigned long long)fsm_last_index(n->f),
			  store_count(fsm_store(n->f)),
			  (double)sf->fork_ns / 1e6);
		return 0;
	}
	hora_free(*bufs);
	*bufs = NULL;
	/* no fork: encode here, stalling the loop (logged as a warning) */
	int rv = fsm_snapshot_encode(n->f, &data, &len);
	if (rv != 0)
		return RAFT_NOMEM;
	*bufs = hora_malloc(sizeof **bufs);
	if (*bufs == NULL) {
		hora_free(data);
		return RAFT_NOMEM;
	}
	(*bufs)[0].base = data;
	(*bufs)[0].len = len;
	*n_bufs = 1;
	n->snapshots++;
	log_warn("snapshot at index %llu: %zu jobs, %zu bytes, encoded on "
		 "the loop in %.1f ms (fork failed)",
		 (unsigned long long)fsm_last_index(n->f),
		 store_count(fsm_store(n->f)), len,
		 (double)(uv_hrtime() - t0) / 1e6);
	return 0;
}

static int rfsm_snapshot_finalize(struct raft_fsm *rf,
				  struct raft_buffer *bufs[], unsigned *n_bufs)
{
	node *n = rf->data;
	if (*n_bufs == 1 && (*bufs)[0].len == 0 && (*bufs)[0].base != NULL) {
		snapfork *sf = (*bufs)[0].base;
		if (sf->reaped && WIFEXITED(sf->status) &&
		    WEXITSTATUS(sf->status) == 0)
			log_info("snapshot at index %llu: %llu bytes, fork %.1f "
				 "ms on the loop, encoded and written in %.1f "
				 "ms off it",
				 (unsigned long long)sf->index,
				 (unsigned long long)sf->bytes,
				 (double)sf->fork_ns / 1e6,
				 (double)sf->copy_ns / 1e6);
		else
			log_warn("snapshot abandoned: its child %s",
				 sf->reaped ? "failed" : "was not waited for");
		snapfork_free(sf);
		(*bufs)[0].base = NULL;
	}
	bool encoded_here = *n_bufs > 0 && (*bufs)[0].base != NULL;
	for (unsigned i = 0; i < *n_bufs; i++)
		hora_free((*bufs)[i].base);
	hora_free(*bufs);
	*bufs = NULL;
	*n_bufs = 0;
	adapt_snapshot_sizes(n);
	/* give an encoding's pages back; a forked snapshot left none here,
	 * and malloc_trim walks the whole heap (tens of ms at 1M jobs) */
	if (encoded_here)
		malloc_trim(0);
	return 0;
}

static int rfsm_restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
	node *n = rf->data;
	uint64_t t0 = uv_hrtime();
	int rv = fsm_snapshot_restore(n->f, buf->base, buf->len);
	if (rv != 0) {
		log_error("cannot restore snapshot (%zu bytes): %s", buf->len,
			  hora_strerror(rv));
		return rv == -HORA_ENOMEM ? RAFT_NOMEM : RAFT_CORRUPT;
	}
	log_info("restored snapshot at index %llu: %zu jobs in %.1f ms",
		 (unsigned long long)fsm_last_index(n->f),
		 store_count(fsm_store(n->f)),
		 (double)(uv_hrtime() - t0) / 1e6);
	raft_free(buf->base);
	malloc_trim(0);
	return 0;
}

/* ---- proposals -------------------------------------------------------- */

static void unlink_proposal(node *n, proposal *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		n->head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		n->tail = p->prev;
}

static int map_raft_status(int status)
{
	switch (status) {
	case 0:
		return 0;
	case RAFT_NOTLEADER:
	case RAFT_LEADERSHIPLOST:
		return -HORA_ENOTLEADER;
	case RAFT_SHUTDOWN:
		return -HORA_ESHUTDOWN;
	case RAFT_NOMEM:
		return -HORA_ENOMEM;
	case RAFT_TOOBIG:
		return -HORA_ETOOBIG;
	default:
		return -HORA_EIO;
	}
}

static void apply_done(struct raft_apply *req, int status, void *result)
{
	proposal *p = req->data;
	node *n = p->n;
	unlink_proposal(n, p);
	if (status == 0)
		hist_record(&n->commit_hist,
			    (int64_t)((uv_hrtime() - p->t0) / 1000));
	if (p->cb)
		p->cb(p->ud, map_raft_status(status), status == 0 ? result : NULL);
	hora_free(result);
	hora_free(p);
}

int node_propose(node *n, uint8_t *buf, size_t len, node_commit_cb cb,
		 void *ud)
{
	struct raft_buffer rb;
	proposal *p;
	int rv;

	if (n->closing) {
		hora_free(buf);
		return -HORA_ESHUTDOWN;
	}
	if (raft_state(&n->raft) != RAFT_LEADER) {
		hora_free(buf);
		return -HORA_ENOTLEADER;
	}
	p = hora_calloc(1, sizeof *p);
	rb.len = frame_len(len); /* C-Raft's disk backend: see fsm/frame.h */
	rb.base = raft_malloc(rb.len);
	if (p == NULL || rb.base == NULL) {
		hora_free(p);
		raft_free(rb.base);
		hora_free(buf);
		return -HORA_ENOMEM;
	}
	frame_write(rb.base, buf, len);
	hora_free(buf);
	p->req.data = p;
	p->n = n;
	p->cb = cb;
	p->ud = ud;
	p->t0 = uv_hrtime();
	rv = raft_apply(&n->raft, &p->req, &rb, 1, apply_done);
	if (rv != 0) {
		/* Refused before C-Raft took the entry (ClientSubmit checks
		 * leadership, a transfer under way and capacity first): the
		 * buffer is still ours.  On later error paths C-Raft 0.22.1
		 * may already have released it (legacyHandleUpdateEntries), so
		 * it is not freed then: a rare leak beats a double free. */
		if (rv == RAFT_NOTLEADER || rv == RAFT_NOSPACE)
			raft_free(rb.base);
		else
			log_warn("raft_apply: %s (%s)", raft_strerror(rv),
				 raft_errmsg(&n->raft));
		hora_free(p);
		return map_raft_status(rv);
	}
	/* raft_apply set req.index; indices only grow */
	p->prev = n->tail;
	if (n->tail)
		n->tail->next = p;
	else
		n->head = p;
	n->tail = p;
	return 0;
}

/* ---- role changes ----------------------------------------------------- */

static void node_info_done(void *ud, int status, const fsm_result *res)
{
	node *n = ud;
	(void)res;
	if (status != 0)
		n->node_info_sent = false; /* try again on the next tick */
}

/* Publish this node's API address through the log so every node can
 * tell clients where the leader's API is. */
static void publish_node_info(node *n)
{
	const char *known = fsm_node_api(n->f, n->id);
	uint8_t *buf;
	size_t len;

	if (n->node_info_sent || (known && strcmp(known, n->api_url) == 0))
		return;
	if (entry_encode_node_info(n->id, n->api_url, 0, &buf, &len) != 0)
		return;
	n->node_info_sent = true;
	if (node_propose(n, buf, len, node_info_done, n) != 0)
		n->node_info_sent = false;
}

/* The leader's connection closed: it is probably dead.  Followers
 * refuse votes while they remember a leader, so every survivor
 * shortening its election timeout is what makes failover fast; the
 * normal timeout comes back once a leader is known again. */
static void on_peer_gone(void *ud, uint64_t id)
{
	node *n = ud;
	if (n->closing || raft_state(&n->raft) == RAFT_LEADER ||
	    node_leader(n, NULL) != id)
		return;
	unsigned fast = 2 * n->heartbeat_ms;
	if (fast >= n->election_ms)
		return;
	n->gone_leader = id;
	raft_set_election_timeout(&n->raft, fast);
	log_debug("leader %llu's connection closed: election timeout %u ms",
		  (unsigned long long)id, fast);
}

static void on_tick(uv_timer_t *t)
{
	node *n = t->data;
	bool leader = raft_state(&n->raft) == RAFT_LEADER;
	if (n->gone_leader != 0) {
		uint64_t now_leader = node_leader(n, NULL);
		if (leader || (now_leader != 0 && now_leader != n->gone_leader)) {
			raft_set_election_timeout(&n->raft, n->election_ms);
			n->gone_leader = 0;
		}
	}
	if (leader != n->leader) {
		n->leader = leader;
		log_info("%s (term %llu)",
			 leader ? "became leader" : "no longer leader",
			 (unsigned long long)raft_current_term(&n->raft));
		if (!leader)
			n->node_info_sent = false;
		if (n->role_cb)
			n->role_cb(n->role_ud, leader);
	}
	if (leader)
		publish_node_info(n);
}

/* ---- setup ------------------------------------------------------------ */

int node_parse_cluster(const char *list, uint64_t ids[NODE_MAX_MEMBERS],
		       char addrs[NODE_MAX_MEMBERS][64], hora_error *err)
{
	int count = 0;
	const char *p = list;

	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char item[128];
		char *eq, *end;
		if (len == 0 || len >= sizeof item)
			return hora_error_set(err, -HORA_EINVAL, "cluster",
					      "--cluster: empty or overlong "
					      "member in '%s'",
					      list);
		memcpy(item, p, len);
		item[len] = '\0';
		eq = strchr(item, '=');
		if (eq == NULL)
			return hora_error_set(err, -HORA_EINVAL, "cluster",
					      "--cluster: '%s' is not "
					      "ID=HOST:PORT",
					      item);
		*eq = '\0';
		errno = 0;
		unsigned long long id = strtoull(item, &end, 10);
		if (errno || *end || end == item || id == 0)
			return hora_error_set(err, -HORA_EINVAL, "cluster",
					      "--cluster: '%s' is not a positive "
					      "node id",
					      item);
		if (strchr(eq + 1, ':') == NULL || strlen(eq + 1) >= 64)
			return hora_error_set(err, -HORA_EINVAL, "cluster",
					      "--cluster: '%s' is not HOST:PORT",
					      eq + 1);
		if (count == NODE_MAX_MEMBERS)
			return hora_error_set(err, -HORA_EINVAL, "cluster",
					      "--cluster: at most %d members",
					      NODE_MAX_MEMBERS);
		for (int i = 0; i < count; i++)
			if (ids[i] == id)
				return hora_error_set(
					err, -HORA_EINVAL, "cluster",
					"--cluster: node id %llu appears twice",
					id);
		ids[count] = id;
		snprintf(addrs[count], 64, "%s", eq + 1);
		count++;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if (count == 0)
		return hora_error_set(err, -HORA_EINVAL, "cluster",
				      "--cluster: no members");
	return count;
}

static int mkdir_p(const char *path)
{
	char buf[4096];
	size_t len = strlen(path);
	if (len >= sizeof buf)
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] == '/' || buf[i] == '\0') {
			char c = buf[i];
			buf[i] = '\0';
			if (mkdir(buf, 0755) != 0 && errno != EEXIST)
				return -errno;
			buf[i] = c;
		}
	}
	return 0;
}

static int bootstrap(node *n, const node_config *cfg, hora_error *err)
{
	struct raft_configuration conf;
	uint64_t ids[NODE_MAX_MEMBERS];
	char addrs[NODE_MAX_MEMBERS][64];
	int count = 1;
	int rv;

	if (cfg->cluster && *cfg->cluster) {
		count = node_parse_cluster(cfg->cluster, ids, addrs, err);
		if (count < 0)
			return count;
		bool self = false;
		for (int i = 0; i < count; i++)
			if (ids[i] == cfg->id)
				self = true;
		if (!self)
			return hora_error_set(err, -HORA_EINVAL, "cluster",
					      "--cluster does not list this "
					      "node's id %llu",
					      (unsigned long long)cfg->id);
	} else {
		ids[0] = cfg->id;
		snprintf(addrs[0], sizeof addrs[0], "%s", cfg->raft_addr);
	}
	raft_configuration_init(&conf);
	for (int i = 0; i < count; i++) {
		rv = raft_configuration_add(&conf, ids[i], addrs[i], RAFT_VOTER);
		if (rv != 0) {
			raft_configuration_close(&conf);
			return hora_error_set(err, -HORA_ENOMEM, "",
					      "raft configuration: %s",
					      raft_strerror(rv));
		}
	}
	rv = raft_bootstrap(&n->raft, &conf);
	raft_configuration_close(&conf);
	if (rv == RAFT_CANTBOOTSTRAP)
		return 0; /* existing state: --cluster is ignored */
	if (rv != 0)
		return hora_error_set(err, -HORA_EIO, "",
				      "cannot bootstrap %s: %s", n->raft_dir,
				      raft_errmsg(&n->raft));
	log_info("bootstrapped a new cluster of %d voter(s) in %s", count,
		 n->raft_dir);
	return 0;
}

int node_open(uv_loop_t *loop, const node_config *cfg, node **out,
	      hora_error *err)
{
	node *n;
	int rv;
	char path[4096];

	n = hora_calloc(1, sizeof *n);
	if (n == NULL)
		return hora_error_set(err, -HORA_ENOMEM, "", "out of memory");
	n->loop = loop;
	n->id = cfg->id;
	snprintf(path, sizeof path, "%s/raft", cfg->data_dir);
	n->data_dir = hora_strdup(cfg->data_dir);
	n->raft_dir = hora_strdup(path);
	n->raft_addr = hora_strdup(cfg->raft_addr);
	n->api_url = hora_strdup(cfg->api_url);
	if (!n->data_dir || !n->raft_dir || !n->raft_addr || !n->api_url) {
		rv = hora_error_set(err, -HORA_ENOMEM, "", "out of memory");
		goto err_after_alloc;
	}
	if ((rv = mkdir_p(n->raft_dir)) != 0) {
		rv = hora_error_set(err, -HORA_EIO, "data_dir",
				    "cannot create %s: %s", n->raft_dir,
				    strerror(-rv));
		goto err_after_alloc;
	}
	if ((rv = fsm_new(&n->f)) != 0) {
		rv = hora_error_set(err, rv, "", "out of memory");
		goto err_after_alloc;
	}
	/* before the log is replayed: retention is applied as it applies */
	if (cfg->history_per_job > 0)
		fsm_set_history(n->f, cfg->history_per_job, cfg->history_bytes);

	transport_config tc = {
		.bind = cfg->raft_bind ? cfg->raft_bind : cfg->raft_addr,
		.key = cfg->cluster_key,
		.key_len = cfg->cluster_key_len,
		.tls_cert = cfg->tls_cert,
		.tls_key = cfg->tls_key,
		.tls_ca = cfg->tls_ca,
		.gone = on_peer_gone,
		.gone_ud = n,
	};
	if ((rv = transport_init(&n->transport, loop, &tc, err)) != 0)
		goto err_after_fsm;
	n->io.version = 2;
	n->io.data = n;
	if ((rv = raft_uv_init(&n->io, loop, n->raft_dir,
			       transport_raft(n->transport))) != 0) {
		rv = hora_error_set(err, -HORA_EIO, "data_dir",
				    "raft storage in %s: %s", n->raft_dir,
				    n->io.errmsg);
		goto err_after_transport;
	}
	/* what one AppendEntries may make this node allocate: 1024 entries
	 * in flight (below) of at most a few MiB each (bodies are capped at
	 * ~1.1 MiB, internal batches at 1024 items); snapshots keep C-Raft's
	 * 64 GiB (docs/raft.md, "Wire limits") */
	raft_uv_set_max_message_size(&n->io, NODE_MAX_APPEND_BYTES, 0);
	/* every log write on the thread pool: io_submit on the loop took
	 * 2-5 ms per write (patch 0006, docs/dispatch.md) */
	raft_uv_set_loop_io(&n->io, false);
	n->rfsm.version = 2;
	n->rfsm.data = n;
	n->rfsm.apply = rfsm_apply;
	n->rfsm.snapshot = rfsm_snapshot;
	n->rfsm.snapshot_finalize = rfsm_snapshot_finalize;
	n->rfsm.restore = rfsm_restore;
	if ((rv = raft_init(&n->raft, &n->io, &n->rfsm, cfg->id,
			    cfg->raft_addr)) != 0) {
		rv = hora_error_set(err, -HORA_EIO, "", "raft: %s",
				    raft_errmsg(&n->raft));
		goto err_after_io;
	}
	n->raft.data = n;
	raft_set_heartbeat_timeout(&n->raft, cfg->heartbeat_ms);
	raft_set_election_timeout(&n->raft, cfg->election_ms);
	n->heartbeat_ms = cfg->heartbeat_ms;
	n->election_ms = cfg->election_ms;
	raft_set_pre_vote(&n->raft, true);
	raft_set_max_inflight_entries(&n->raft, 1024);
	n->threshold_default = cfg->snapshot_threshold
				       ? cfg->snapshot_threshold
				       : SNAPSHOT_THRESHOLD_DEFAULT;
	n->trailing_default = cfg->snapshot_trailing
				      ? cfg->snapshot_trailing
				      : SNAPSHOT_TRAILING_DEFAULT;
	raft_set_snapshot_threshold(&n->raft, n->threshold_default);
	raft_set_snapshot_trailing(&n->raft, n->trailing_default);

	/* a joining node never bootstraps: the cluster adds it */
	if (!cfg->joining && (rv = bootstrap(n, cfg, err)) != 0)
		goto err_after_raft;

	uv_update_time(loop); /* DESIGN.md rule 5 */
	if ((rv = raft_start(&n->raft)) != 0) {
		/* a listen failure leaves its reason in the transport only */
		const char *why = raft_errmsg(&n->raft);
		if (why == NULL || *why == '\0')
			why = transport_raft(n->transport)->errmsg;
		if (why == NULL || *why == '\0')
			why = raft_strerror(rv);
		rv = hora_error_set(err, -HORA_EIO, "", "cannot start raft: %s",
				    why);
		goto err_after_raft;
	}
	uv_timer_init(loop, &n->tick);
	n->tick.data = n;
	uv_timer_start(&n->tick, on_tick, 5, 5);
	*out = n;
	return 0;

err_after_raft:
	/* raft_close needs the loop to run; the caller exits anyway */
	*out = NULL;
	return rv;
err_after_io:
	raft_uv_close(&n->io);
err_after_transport:
	transport_free(n->transport);
err_after_fsm:
	fsm_free(n->f);
err_after_alloc:
	hora_free(n->data_dir);
	hora_free(n->raft_dir);
	hora_free(n->raft_addr);
	hora_free(n->api_url);
	hora_free(n);
	HORA_ASSERT(rv != 0);
	return rv;
}

void node_set_role_cb(node *n, node_role_cb cb, void *ud)
{
	n->role_cb = cb;
	n->role_ud = ud;
}

fsm *node_fsm(node *n)
{
	return n->f;
}

bool node_is_leader(const node *n)
{
	return raft_state((struct raft *)&n->raft) == RAFT_LEADER;
}

uint64_t node_leader(const node *n, const char **raft_addr)
{
	raft_id id = 0;
	const char *addr = NULL;
	raft_leader((struct raft *)&n->raft, &id, &addr);
	if (raft_addr)
		*raft_addr = addr;
	return id;
}

uint64_t node_id(const node *n)
{
	return n->id;
}

uint64_t node_term(const node *n)
{
	return raft_current_term(&n->raft);
}

const char *node_role_name(const node *n)
{
	return raft_state_name(raft_state((struct raft *)&n->raft));
}

bool node_ready(const node *n)
{
	struct raft *r = (struct raft *)&n->raft;
	return node_leader(n, NULL) != 0 &&
	       raft_last_applied(r) >= raft_commit_index(r);
}

size_t node_members(const node *n, node_member *out, size_t max)
{
	const struct raft_configuration *c = &n->raft.configuration;
	size_t k = 0;
	for (unsigned i = 0; i < c->n && k < max; i++, k++) {
		out[k].id = c->servers[i].id;
		snprintf(out[k].raft, sizeof out[k].raft, "%s",
			 c->servers[i].address);
		out[k].voter = c->servers[i].role == RAFT_VOTER;
	}
	return k;
}

size_t node_pending_count(const node *n)
{
	size_t k = 0;
	for (const proposal *p = n->head; p; p = p->next)
		k++;
	return k;
}

const hora_hist *node_commit_hist(const node *n)
{
	return &n->commit_hist;
}

void node_transport_stats(const node *n, transport_stats *out)
{
	transport_stats_get(n->transport, out);
}

uint64_t node_applied_count(const node *n)
{
	return n->applied;
}

uint64_t node_snapshot_count(const node *n)
{
	return n->snapshots;
}

/* ---- membership ------------------------------------------------------- */

typedef struct change_req {
	struct raft_change change;
	struct raft_transfer transfer;
	node *n;
	uint64_t id;
	int attempts;
	node_change_cb cb;
	void *ud;
} change_req;

static int map_change_status(int rv)
{
	switch (rv) {
	case 0:
		return 0;
	case RAFT_NOTLEADER:
	case RAFT_LEADERSHIPLOST:
		return -HORA_ENOTLEADER;
	case RAFT_CANTCHANGE:
		return -HORA_EBUSY;
	case RAFT_DUPLICATEID:
	case RAFT_DUPLICATEADDRESS:
		return -HORA_EEXIST;
	case RAFT_BADID:
		return -HORA_ENOENT;
	case RAFT_NOMEM:
		return -HORA_ENOMEM;
	default:
		return -HORA_EIO;
	}
}

static void change_finish(change_req *c, int status)
{
	if (c->cb)
		c->cb(c->ud, status);
	hora_free(c);
}

static void assigned(struct raft_change *req, int status)
{
	change_req *c = req->data;
	if (status != 0)
		log_warn("promoting node %llu to voter: %s",
			 (unsigned long long)c->id, raft_strerror(status));
	else
		log_info("node %llu is a voter", (unsigned long long)c->id);
	change_finish(c, map_change_status(status));
}

static void added(struct raft_change *req, int status)
{
	change_req *c = req->data;
	if (status != 0) {
		change_finish(c, map_change_status(status));
		return;
	}
	log_info("added node %llu; promoting it once it has caught up",
		 (unsigned long long)c->id);
	c->change.data = c;
	int rv = raft_assign(&c->n->raft, &c->change, c->id, RAFT_VOTER,
			     assigned);
	if (rv != 0)
		change_finish(c, map_change_status(rv));
}

static const struct raft_server *member(const node *n, uint64_t id)
{
	const struct raft_configuration *conf = &n->raft.configuration;
	for (unsigned i = 0; i < conf->n; i++)
		if (conf->servers[i].id == id)
			return &conf->servers[i];
	return NULL;
}

int node_add_voter(node *n, uint64_t id, const char *raft_addr,
		   node_change_cb cb, void *ud)
{
	if (raft_state(&n->raft) != RAFT_LEADER)
		return -HORA_ENOTLEADER;
	const struct raft_server *m = member(n, id);
	if (m != NULL && strcmp(m->address, raft_addr) != 0)
		return -HORA_EEXIST; /* the id is taken by another address */
	change_req *c = hora_calloc(1, sizeof *c);
	if (c == NULL)
		return -HORA_ENOMEM;
	c->n = n;
	c->id = id;
	c->cb = cb;
	c->ud = ud;
	c->change.data = c;
	int rv;
	if (m != NULL && m->role == RAFT_VOTER) {
		hora_free(c);
		if (cb)
			cb(ud, 0); /* already there: joining is idempotent */
		return 0;
	}
	if (m != NULL)
		rv = raft_assign(&n->raft, &c->change, id, RAFT_VOTER, assigned);
	else
		rv = raft_add(&n->raft, &c->change, id, raft_addr, added);
	if (rv != 0) {
		hora_free(c);
		return map_change_status(rv);
	}
	return 0;
}

static void removed(struct raft_change *req, int status)
{
	change_req *c = req->data;
	if (status == 0)
		log_info("removed node %llu", (unsigned long long)c->id);
	change_finish(c, map_change_status(status));
}

int node_remove_member(node *n, uint64_t id, node_change_cb cb, void *ud)
{
	if (raft_state(&n->raft) != RAFT_LEADER)
		return -HORA_ENOTLEADER;
	if (member(n, id) == NULL)
		return -HORA_ENOENT;
	change_req *c = hora_calloc(1, sizeof *c);
	if (c == NULL)
		return -HORA_ENOMEM;
	c->n = n;
	c->id = id;
	c->cb = cb;
	c->ud = ud;
	c->change.data = c;
	int rv = raft_remove(&n->raft, &c->change, id, removed);
	if (rv != 0) {
		hora_free(c);
		return map_change_status(rv);
	}
	return 0;
}

#define TRANSFER_ATTEMPTS 3

static void transferred(struct raft_transfer *req)
{
	change_req *c = req->data;
	bool still = raft_state(&c->n->raft) == RAFT_LEADER;
	if (still && !c->n->closing && ++c->attempts < TRANSFER_ATTEMPTS) {
		/* the target did not win in time (it may have been behind):
		 * try again rather than fail the caller */
		memset(&c->transfer, 0, sizeof c->transfer);
		c->transfer.data = c;
		if (raft_transfer(&c->n->raft, &c->transfer, c->id,
				  transferred) == 0)
			return;
	}
	if (!still)
		log_info("leadership handed over");
	change_finish(c, still ? -HORA_EIO : 0);
}

int node_transfer(node *n, uint64_t to, node_change_cb cb, void *ud)
{
	if (raft_state(&n->raft) != RAFT_LEADER)
		return -HORA_ENOTLEADER;
	if (to != 0) {
		const struct raft_server *m = member(n, to);
		if (m == NULL || m->role != RAFT_VOTER)
			return -HORA_ENOENT;
		if (to == n->id) {
			if (cb)
				cb(ud, 0);
			return 0;
		}
	}
	change_req *c = hora_calloc(1, sizeof *c);
	if (c == NULL)
		return -HORA_ENOMEM;
	c->n = n;
	c->id = to;
	c->cb = cb;
	c->ud = ud;
	c->transfer.data = c;
	int rv = raft_transfer(&n->raft, &c->transfer, to, transferred);
	if (rv != 0) {
		hora_free(c);
		return map_change_status(rv);
	}
	return 0;
}

/* ---- shutdown --------------------------------------------------------- */

static void close_step(node *n)
{
	if (--n->pending_closes > 0)
		return;
	void (*done)(void *) = n->close_done;
	void *ud = n->close_ud;
	fsm_free(n->f);
	hora_free(n->data_dir);
	hora_free(n->raft_dir);
	hora_free(n->raft_addr);
	hora_free(n->api_url);
	hora_free(n);
	if (done)
		done(ud);
}

static void raft_closed(struct raft *r)
{
	node *n = r->data;
	/* raft_close closed the io and its transport; release them */
	raft_uv_close(&n->io);
	transport_free(n->transport);
	/* C-Raft calls nothing back any more: a proposal it dropped without
	 * its callback (seen when a leader closes right after handing
	 * leadership over) is released here.  Its owner is not told: the
	 * API and the dispatcher are closed before the node. */
	while (n->head != NULL) {
		proposal *p = n->head;
		unlink_proposal(n, p);
		log_debug("closing with proposal %llu unanswered",
			  (unsigned long long)p->req.index);
		hora_free(p);
	}
	close_step(n);
}

static void tick_closed(uv_handle_t *h)
{
	close_step(h->data);
}

void node_close(node *n, void (*done)(void *ud), void *ud)
{
	HORA_ASSERT(!n->closing);
	n->closing = true;
	n->close_done = done;
	n->close_ud = ud;
	n->pending_closes = 2; /* tick timer, raft chain */
	uv_timer_stop(&n->tick);
	uv_close((uv_handle_t *)&n->tick, tick_closed);
	raft_close(&n->raft, raft_closed);
}
