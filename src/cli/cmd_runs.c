/* hora runs: recent runs of a job (GET /v1/jobs/{name}/runs, API.md
 * "Runs"). */
/* The offline build (HORA_SERVER=OFF) has no libcurl or jansson. */
#ifndef HORA_CLI_OFFLINE_ONLY

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/args.h"
#include "cli/client.h"
#include "cli/out.h"
#include "sched/run.h"

static const char runs_usage[] =
	"usage: hora runs NAME [--limit N] [--status S] [--json]\n"
	"\n"
	"Print the recent runs of job NAME, newest first: ID SCHEDULED STATUS\n"
	"ATTEMPT WORKER EXIT FINISHED (--json: the server's answer as is).\n"
	"\n"
	"  --limit N    at most N runs (default: the server's page size)\n"
	"  --status S   only runs in state S: scheduled, ready, running,\n"
	"               succeeded, failed, timed_out, skipped or cancelled\n";

/* The API's names, from the one table (sched/run.c). */
static bool runs_status_ok(const char *s)
{
	bool ready;
	return run_status_parse(s, &ready) >= 0;
}

static int runs_print_table(const json_t *runs)
{
	static const char *const header[] = {"ID",     "SCHEDULED", "STATUS",
					     "ATTEMPT", "WORKER",   "EXIT",
					     "FINISHED"};
	out_table *t = out_table_new(7, header);
	const json_t *r;
	size_t i;

	if (t == NULL)
		return cli_fail(CLI_FAILURE, "out of memory");
	json_array_foreach(runs, i, r)
	{
		char attempt[32], exit_code[32], id[64];
		const char *row[7] = {
			out_json_cell(json_object_get(r, "id"), id, sizeof id),
			json_string_value(json_object_get(r, "scheduled_at")),
			json_string_value(json_object_get(r, "status")),
			out_json_cell(json_object_get(r, "attempt"), attempt,
					 sizeof attempt),
			json_string_value(json_object_get(r, "worker")),
			out_json_cell(json_object_get(r, "exit_code"),
					 exit_code, sizeof exit_code),
			json_string_value(json_object_get(r, "finished_at")),
		};
		if (out_table_add(t, row) != 0) {
			out_table_free(t);
			return cli_fail(CLI_FAILURE, "out of memory");
		}
	}
	return out_table_print(t);
}

int cmd_runs(cli_ctx *ctx, int argc, char **argv)
{
	const char *name = NULL, *status = NULL, *limit = NULL, *val;
	long n;
	int rv, m;
	hora_client *c;
	hora_buf path = HORA_BUF_INIT;
	client_resp r = {0};

	client_global_init();
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			fputs(runs_usage, stdout);
			return CLI_OK;
		}
		if (strcmp(a, "--json") == 0) {
			ctx->json = true;
		} else if ((m = args_opt(argc, argv, &i, "--limit", &val)) !=
			   0) {
			if (m < 0)
				return CLI_USAGE;
			if (!args_long(val, 1, INT_MAX, &n))
				return cli_fail(CLI_USAGE,
						"--limit: '%s' is not a whole "
						"number >= 1",
						val);
			limit = val;
		} else if ((m = args_opt(argc, argv, &i, "--status", &val)) !=
			   0) {
			if (m < 0)
				return CLI_USAGE;
			if (!runs_status_ok(val))
				return cli_fail(CLI_USAGE,
						"--status: '%s' is not a run "
						"status (see hora runs --help)",
						val);
			status = val;
		} else if (a[0] == '-' && a[1] != '\0') {
			return cli_fail(CLI_USAGE,
					"runs: unknown option '%s' (see hora "
					"runs --help)",
					a);
		} else if (name != NULL) {
			return cli_fail(CLI_USAGE,
					"runs: unexpected argument '%s'", a);
		} else if (*a == '\0') {
			return cli_fail(CLI_USAGE, "runs: NAME is empty");
		} else {
			name = a;
		}
	}
	if (name == NULL) {
		fputs(runs_usage, stderr);
		return cli_fail(CLI_USAGE, "runs: missing NAME");
	}

	buf_adds(&path, "/v1/jobs/");
	buf_add_pct(&path, name, BUF_PCT_SEGMENT);
	buf_adds(&path, "/runs");
	if (limit != NULL)
		client_query_add(&path, "limit", limit);
	if (status != NULL)
		client_query_add(&path, "status", status);
	if (buf_str(&path) == NULL) {
		buf_free(&path);
		return cli_fail(CLI_FAILURE, "out of memory");
	}
	rv = client_open(ctx, &c);
	if (rv != CLI_OK) {
		buf_free(&path);
		return rv;
	}
	rv = client_call(c, "GET", path.p, NULL, &r);
	if (rv == CLI_OK) {
		const json_t *runs = json_is_array(r.json)
					     ? r.json
					     : json_object_get(r.json, "runs");
		if (ctx->json)
			rv = out_print_raw(&r);
		else if (!json_is_array(runs))
			rv = cli_fail(CLI_FAILURE, "unexpected answer (no "
						   "\"runs\" array)");
		else
			rv = runs_print_table(runs);
	}
	client_resp_free(&r);
	client_close(c);
	buf_free(&path);
	return rv;
}

#endif /* HORA_CLI_OFFLINE_ONLY */
