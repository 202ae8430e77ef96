/* /v1/cluster: status, membership changes, leadership transfer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "api/job_json.h"
#include "core/alloc.h"
#include "fsm/entry.h"
#include "fsm/fsm.h"

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
