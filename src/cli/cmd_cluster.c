/* hora cluster: membership and leadership (GET /v1/cluster,
 * /v1/cluster/nodes, /v1/cluster/transfer; API.md "HTTP API"). */
/* The offline build (HORA_SERVER=OFF) has no libcurl or jansson. */
#ifndef HORA_CLI_OFFLINE_ONLY

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/args.h"
#include "cli/client.h"
#include "cli/out.h"

static const char cluster_usage[] =
	"usage: hora cluster COMMAND ...\n"
	"\n"
	"  status                      the leader and every member\n"
	"  transfer [ID]               hand leadership to node ID (or to the\n"
	"                              best other voter)\n"
	"  add ID RAFT_ADDR API_URL    add node ID as a voter, e.g.\n"
	"                              add 4 10.0.0.4:7071 http://10.0.0.4:7070\n"
	"  remove ID                   remove node ID from the cluster\n"
	"\n"
	"Every command takes --json (print the server's JSON answer) and\n"
	"--help.  Node ids are positive integers.\n";

/* Parse the positional arguments of a cluster subcommand into pos[], with
 * --json / --help.  Returns CLI_OK, -1 after printing help, or CLI_USAGE
 * (also when the count is outside [min, max]). */
static int cluster_args(cli_ctx *ctx, int argc, char **argv, int min,
			int max, const char *synopsis, const char **pos,
			int *npos)
{
	*npos = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			printf("usage: hora cluster %s\n\n%s", synopsis,
			       cluster_usage + strcspn(cluster_usage, "\n") + 2);
			return -1;
		}
		if (strcmp(a, "--json") == 0) {
			ctx->json = true;
		} else if (a[0] == '-' && a[1] != '\0') {
			return cli_fail(CLI_USAGE,
					"cluster %s: unknown option '%s'",
					argv[0], a);
		} else if (*npos >= max) {
			return cli_fail(CLI_USAGE,
					"cluster %s: unexpected argument '%s' "
					"(usage: hora cluster %s)",
					argv[0], a, synopsis);
		} else {
			pos[(*npos)++] = a;
		}
	}
	if (*npos < min)
		return cli_fail(CLI_USAGE, "cluster %s: missing arguments "
					   "(usage: hora cluster %s)",
				argv[0], synopsis);
	return CLI_OK;
}

static int cluster_node_id(const char *s, long *id)
{
	if (!args_long(s, 1, INT_MAX, id))
		return cli_fail(CLI_USAGE, "'%s' is not a node id (a positive "
					   "integer)",
				s);
	return CLI_OK;
}

/* One request; prints the raw answer with --json, else `done` (unless
 * NULL) when it succeeded.  Returns the CLI code; *out keeps the answer
 * when out is non-NULL (caller frees). */
static int cluster_call(cli_ctx *ctx, const char *method, const char *path,
			const json_t *body, client_resp *out)
{
	hora_client *c;
	int rv = client_open(ctx, &c);
	if (rv != CLI_OK)
		return rv;
	rv = client_call(c, method, path, body, out);
	client_close(c);
	if (rv == CLI_OK && ctx->json)
		rv = out_print_raw(out);
	return rv;
}

static int cluster_status(cli_ctx *ctx, int argc, char **argv)
{
	static const char *const header[] = {"ID", "API", "RAFT", "ROLE",
					     "STATE"};
	const char *pos[1];
	int npos, rv;
	client_resp r = {0};
	const json_t *leader, *nodes, *n;
	out_table *t;
	size_t i;
	char b1[32], b2[32], b3[32];

	rv = cluster_args(ctx, argc, argv, 0, 0, "status", pos, &npos);
	if (rv != CLI_OK)
		return rv < 0 ? CLI_OK : rv;
	rv = cluster_call(ctx, "GET", "/v1/cluster", NULL, &r);
	if (rv != CLI_OK || ctx->json)
		goto out;

	leader = json_object_get(r.json, "leader");
	const char *lid = out_json_cell(json_object_get(leader, "id"), b1,
					   sizeof b1);
	if (json_is_object(leader) && lid != NULL) {
		const char *api = json_string_value(json_object_get(leader, "api"));
		const char *raft =
			json_string_value(json_object_get(leader, "raft"));
		printf("leader: node %s (api %s, raft %s)\n", lid,
		       api ? api : "-", raft ? raft : "-");
	} else {
		printf("leader: none known\n");
	}
	const char *self = out_json_cell(json_object_get(r.json, "id"), b3,
					    sizeof b3);
	const char *term = out_json_cell(json_object_get(r.json, "term"),
					    b2, sizeof b2);
	printf("answered by node %s, term %s\n\n", self ? self : "-",
	       term ? term : "-");

	nodes = json_object_get(r.json, "nodes");
	t = out_table_new(5, header);
	if (t == NULL) {
		rv = cli_fail(CLI_FAILURE, "out of memory");
		goto out;
	}
	json_array_foreach(nodes, i, n)
	{
		char id[32];
		const char *row[5] = {
			out_json_cell(json_object_get(n, "id"), id, sizeof id),
			json_string_value(json_object_get(n, "api")),
			json_string_value(json_object_get(n, "raft")),
			json_string_value(json_object_get(n, "role")),
			json_string_value(json_object_get(n, "state")),
		};
		if (out_table_add(t, row) != 0) {
			out_table_free(t);
			rv = cli_fail(CLI_FAILURE, "out of memory");
			goto out;
		}
	}
	rv = out_table_print(t);
out:
	client_resp_free(&r);
	return rv;
}

static int cluster_transfer(cli_ctx *ctx, int argc, char **argv)
{
	const char *pos[1];
	int npos, rv;
	long id = 0;
	json_t *body;
	client_resp r = {0};

	rv = cluster_args(ctx, argc, argv, 0, 1, "transfer [ID]", pos, &npos);
	if (rv != CLI_OK)
		return rv < 0 ? CLI_OK : rv;
	if (npos == 1 && (rv = cluster_node_id(pos[0], &id)) != CLI_OK)
		return rv;
	body = npos == 1 ? json_pack("{sI}", "to", (json_int_t)id)
			 : json_object();
	if (body == NULL)
		return cli_fail(CLI_FAILURE, "out of memory");
	rv = cluster_call(ctx, "POST", "/v1/cluster/transfer", body, &r);
	json_decref(body);
	if (rv == CLI_OK && !ctx->json) {
		char b[32];
		const char *now = out_json_cell(
			json_object_get(json_object_get(r.json, "leader"), "id"),
			b, sizeof b);
		if (now != NULL)
			printf("leader is now node %s\n", now);
		else if (npos == 1)
			printf("leadership transfer to node %ld requested\n",
			       id);
		else
			printf("leadership transfer requested\n");
		if (fflush(stdout) != 0)
			rv = cli_fail(CLI_FAILURE, "cannot write output");
	}
	client_resp_free(&r);
	return rv;
}

static int cluster_add(cli_ctx *ctx, int argc, char **argv)
{
	const char *pos[3];
	int npos, rv;
	long id;
	json_t *body;
	client_resp r = {0};

	rv = cluster_args(ctx, argc, argv, 3, 3, "add ID RAFT_ADDR API_URL",
			  pos, &npos);
	if (rv != CLI_OK)
		return rv < 0 ? CLI_OK : rv;
	if ((rv = cluster_node_id(pos[0], &id)) != CLI_OK)
		return rv;
	if (strchr(pos[1], ':') == NULL)
		return cli_fail(CLI_USAGE, "RAFT_ADDR '%s' is not HOST:PORT",
				pos[1]);
	if (*pos[2] == '\0')
		return cli_fail(CLI_USAGE, "API_URL is empty");
	body = json_pack("{sIssss}", "id", (json_int_t)id, "raft", pos[1],
			 "api", pos[2]);
	if (body == NULL)
		return cli_fail(CLI_FAILURE, "out of memory");
	rv = cluster_call(ctx, "POST", "/v1/cluster/nodes", body, &r);
	json_decref(body);
	if (rv == CLI_OK && !ctx->json) {
		printf("added node %ld (raft %s, api %s)\n", id, pos[1],
		       pos[2]);
		if (fflush(stdout) != 0)
			rv = cli_fail(CLI_FAILURE, "cannot write output");
	}
	client_resp_free(&r);
	return rv;
}

static int cluster_remove(cli_ctx *ctx, int argc, char **argv)
{
	const char *pos[1];
	int npos, rv;
	long id;
	char path[64];
	client_resp r = {0};

	rv = cluster_args(ctx, argc, argv, 1, 1, "remove ID", pos, &npos);
	if (rv != CLI_OK)
		return rv < 0 ? CLI_OK : rv;
	if ((rv = cluster_node_id(pos[0], &id)) != CLI_OK)
		return rv;
	snprintf(path, sizeof path, "/v1/cluster/nodes/%ld", id);
	rv = cluster_call(ctx, "DELETE", path, NULL, &r);
	if (rv == CLI_OK && !ctx->json) {
		printf("removed node %ld\n", id);
		if (fflush(stdout) != 0)
			rv = cli_fail(CLI_FAILURE, "cannot write output");
	}
	client_resp_free(&r);
	return rv;
}

int cmd_cluster(cli_ctx *ctx, int argc, char **argv)
{
	const char *sub;

	client_global_init();
	if (argc < 2 || cli_is_help(argv[1])) {
		fputs(cluster_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	sub = argv[1];
	argc--;
	argv++;
	if (strcmp(sub, "status") == 0)
		return cluster_status(ctx, argc, argv);
	if (strcmp(sub, "transfer") == 0)
		return cluster_transfer(ctx, argc, argv);
	if (strcmp(sub, "add") == 0)
		return cluster_add(ctx, argc, argv);
	if (strcmp(sub, "remove") == 0 || strcmp(sub, "rm") == 0)
		return cluster_remove(ctx, argc, argv);
	fputs(cluster_usage, stderr);
	return cli_fail(CLI_USAGE, "cluster: unknown subcommand '%s'", sub);
}

#endif /* HORA_CLI_OFFLINE_ONLY */
