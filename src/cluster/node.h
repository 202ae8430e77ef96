/*
 * node.h - one hora node's Raft replica: C-Raft 0.22.1 with its libuv disk
 * backend and TCP transport, driving the state machine of fsm.h.
 *
 * All calls on the loop thread (DESIGN.md, rule 6).  The node owns the
 * fsm.  Proposals are whole entries (fsm/entry.h) given as hora_malloc
 * buffers; exactly one buffer goes to each raft_apply (rule 2).  The
 * commit callback runs once per proposal: after the entry is applied on
 * this node (status 0, with the fsm_result), or when it cannot be
 * (status -HORA_ENOTLEADER, -HORA_ESHUTDOWN, -HORA_EIO).
 *
 * Snapshots are taken by size as well as by count: the threshold adapts
 * to the average entry size so that large batch entries do not pile up in
 * memory (docs/raft.md).
 */
#ifndef HORA_CLUSTER_NODE_H
#define HORA_CLUSTER_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "core/err.h"
#include "core/hist.h"
#include "fsm/fsm.h"

#define NODE_MAX_MEMBERS 16

typedef struct node_config {
	uint64_t id;          /* this node's Raft id, >= 1 */
	const char *data_dir; /* created if missing */
	const char *raft_addr; /* this node's address in the configuration */
	const char *raft_bind; /* where to listen; NULL: raft_addr */
	/* Raft port protection (transport.h); all may be NULL. */
	const unsigned char *cluster_key;
	size_t cluster_key_len;
	const char *tls_cert, *tls_key, *tls_ca;
	const char *api_url;  /* published through the log (NODE_INFO) */
	const char *cluster;  /* "1=host:port,2=host:port", NULL: alone */
	unsigned heartbeat_ms;
	unsigned election_ms;
	unsigned snapshot_threshold; /* entries; 0: default */
	unsigned snapshot_trailing;  /* entries; 0: default */
	size_t history_per_job;      /* 0: default (see fsm_set_history) */
	size_t history_bytes;        /* used when history_per_job > 0 */
	bool joining; /* --join: never bootstrap; wait to be added */
} node_config;

typedef struct node node;

typedef void (*node_commit_cb)(void *ud, int status, const fsm_result *res);

/* Called on the loop whenever this node gains or loses leadership. */
typedef void (*node_role_cb)(void *ud, bool leader);

/*
 * Open the data dir, bootstrap it if empty (with cfg->cluster, or this
 * node alone), and start Raft.  Errors (-HORA_EIO, -HORA_EINVAL,
 * -HORA_ENOMEM) are described in err.
 */
int node_open(uv_loop_t *loop, const node_config *cfg, node **out,
	      hora_error *err);

/* Parse a --cluster list into ids and addresses (also used by config
 * validation).  Returns the member count or a negative error. */
int node_parse_cluster(const char *list, uint64_t ids[NODE_MAX_MEMBERS],
		       char addrs[NODE_MAX_MEMBERS][64], hora_error *err);

void node_set_role_cb(node *n, node_role_cb cb, void *ud);

fsm *node_fsm(node *n);

/*
 * Propose an entry.  Takes ownership of buf (hora_malloc) in every case.
 * Returns 0 (cb will run) or a negative error (cb will not run):
 * -HORA_ENOTLEADER when this node does not lead, -HORA_ESHUTDOWN when
 * closing.
 */
int node_propose(node *n, uint8_t *buf, size_t len, node_commit_cb cb,
		 void *ud);

bool node_is_leader(const node *n);
/* Leader id (0 if unknown) and its Raft address (may be NULL). */
uint64_t node_leader(const node *n, const char **raft_addr);
uint64_t node_id(const node *n);
uint64_t node_term(const node *n);
const char *node_role_name(const node *n);
/* A leader is known and everything committed is applied here. */
bool node_ready(const node *n);

/* Members of the current configuration. */
typedef struct node_member {
	uint64_t id;
	char raft[64];
	bool voter;
} node_member;
size_t node_members(const node *n, node_member *out, size_t max);

/* Membership changes and leadership transfer (leader only).  cb(ud,
 * status) runs once: 0, or -HORA_ENOTLEADER, -HORA_EBUSY (another change
 * is in progress), -HORA_EEXIST, -HORA_ENOENT, -HORA_EIO. */
typedef void (*node_change_cb)(void *ud, int status);
/* Add `id` at `raft_addr` and make it a voter once it has caught up.
 * Already a voter at that address: success. */
int node_add_voter(node *n, uint64_t id, const char *raft_addr,
		   node_change_cb cb, void *ud);
int node_remove_member(node *n, uint64_t id, node_change_cb cb, void *ud);
/* Hand leadership to `to` (0: the most up-to-date voter); cb runs when
 * the transfer ended, status 0 if this node no longer leads. */
int node_transfer(node *n, uint64_t to, node_change_cb cb, void *ud);

/* Proposals waiting for their commit. */
size_t node_pending_count(const node *n);

/* Latency from proposal to apply on this node. */
const hora_hist *node_commit_hist(const node *n);
/* Entries applied, snapshots taken, bytes applied. */
uint64_t node_applied_count(const node *n);
uint64_t node_snapshot_count(const node *n);

/* The Raft transport's counters (handshakes accepted, refused, ...). */
struct transport_stats;
void node_transport_stats(const node *n, struct transport_stats *out);

/* Stop Raft and release everything; done(ud) runs when all handles are
 * closed.  Pending proposals fail with -HORA_ESHUTDOWN. */
void node_close(node *n, void (*done)(void *ud), void *ud);

#endif
