/* hora job: create, list, inspect, delete, pause, resume and trigger jobs
 * through the HTTP API (API.md "Jobs", "HTTP API"). */
/* The offline build (HORA_SERVER=OFF) has no libcurl or jansson. */
#ifndef HORA_CLI_OFFLINE_ONLY

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/args.h"
#include "cli/client.h"
#include "cli/out.h"
#include "core/alloc.h"
#include "core/err.h"
#include "core/timefmt.h"

static const char job_usage[] =
	"usage: hora job COMMAND ...\n"
	"\n"
	"  put NAME --schedule S [flags] [-- CMD ARG...]\n"
	"                    create or replace a job (see hora job put --help)\n"
	"  put -f FILE       from a JSON file ('-' for stdin): one job, or\n"
	"                    {\"jobs\":[...]} applied all together or not at all\n"
	"  ls [--prefix P] [--label K=V]... [--limit N]\n"
	"                    list jobs\n"
	"  get NAME          print one job as JSON\n"
	"  rm NAME...        delete jobs (their pending runs are cancelled)\n"
	"  pause NAME...     stop a job from firing\n"
	"  resume NAME...    let a paused job fire again\n"
	"  trigger NAME...   run a job now\n"
	"\n"
	"Every command takes --json (print the server's JSON answer) and\n"
	"--help.  Exit codes: 0 success, 1 failure reported by the server or\n"
	"the network, 2 bad usage.\n";

static const char put_usage[] =
	"usage: hora job put NAME --schedule S [flags] [-- CMD ARG...]\n"
	"       hora job put [NAME] -f FILE\n"
	"\n"
	"Create or replace job NAME (PUT /v1/jobs/NAME).  Only the fields given\n"
	"are sent; the server applies the defaults for the rest.  Prints\n"
	"'created job NAME' or 'replaced job NAME' and the next run time.\n"
	"\n"
	"  --schedule S       cron (5 or 6 fields), @daily..., @every 90s,\n"
	"                     @at TIME, @after DURATION (required; quote it)\n"
	"  --tz ZONE          IANA zone for the cron fields (default UTC)\n"
	"  --queue Q          queue its runs go to (default 'default')\n"
	"  --payload JSON     any JSON value handed to the worker with every run\n"
	"  --timeout D        fail a run as timed_out after D (e.g. 90s, 1m30s)\n"
	"  --retries N        retry a failed run N more times (N >= 0; sent as\n"
	"                     retry.max_attempts = N + 1; default no retry)\n"
	"  --backoff D        first retry delay (default 1s), doubled each time\n"
	"  --max-backoff D    cap on the retry delay (default 1m)\n"
	"  --overlap P        allow | forbid | replace (default allow)\n"
	"  --misfire M        skip | once | all (default once)\n"
	"  --priority N       0-9, higher first among runs due at once\n"
	"                     (default 5)\n"
	"  --jitter D         shift each run by a stable delay <= D\n"
	"  --start-at TIME    RFC 3339; nothing fires before it\n"
	"  --end-at TIME      RFC 3339; nothing fires after it\n"
	"  --max-runs N       the job completes after N runs\n"
	"  --label K=V        a label for filtering (repeatable)\n"
	"  --paused           create it paused\n"
	"  --http URL         send an HTTP request instead of a command\n"
	"  --method M         its method (default chosen by the server)\n"
	"  --header 'K: V'    one of its headers (repeatable)\n"
	"  --body TEXT        its body\n"
	"  -- CMD ARG...      argv executed for each run (no shell)\n"
	"\n"
	"  -f, --file FILE    read the job from FILE instead ('-' = stdin):\n"
	"                     a job object with \"name\" (or NAME given here),\n"
	"                     or {\"jobs\":[...]} / [...] for POST /v1/jobs:batch\n"
	"  --json             print the server's JSON answer\n";

static const char ls_usage[] =
	"usage: hora job ls [--prefix P] [--label K=V]... [--limit N] [--json]\n"
	"\n"
	"List jobs (GET /v1/jobs, following next_cursor to the end).  Prints\n"
	"NAME SCHEDULE TZ QUEUE NEXT RUN (RFC 3339) PAUSED, or with --json one\n"
	"JSON array of all the jobs.\n"
	"\n"
	"  --prefix P   only names starting with P\n"
	"  --label K=V  only jobs with this label (repeatable: all must match)\n"
	"  --limit N    at most N jobs\n";

static const char get_usage[] =
	"usage: hora job get NAME [--json]\n"
	"\n"
	"Print job NAME as indented JSON (--json: exactly as the server sent\n"
	"it).\n";

static const char name_cmd_usage[] =
	"usage: hora job rm|pause|resume|trigger NAME... [--json]\n"
	"\n"
	"  rm       DELETE /v1/jobs/NAME; its pending runs are cancelled\n"
	"  pause    POST /v1/jobs/NAME/pause: no runs while paused\n"
	"  resume   POST /v1/jobs/NAME/resume\n"
	"  trigger  POST /v1/jobs/NAME/trigger: one run now\n"
	"\n"
	"Prints one confirmation line per job (--json: the server's answers).\n"
	"With several names each is tried; the exit code is 1 if any failed.\n";

/* ---- shared helpers --------------------------------------------------- */

/* "/v1/jobs/<name escaped><suffix>"; NULL on allocation failure (freed
 * by the caller with buf_free on `b`). */
static const char *job_path(hora_buf *b, const char *name,
			    const char *suffix)
{
	buf_adds(b, "/v1/jobs/");
	buf_add_pct(b, name, BUF_PCT_SEGMENT);
	if (suffix != NULL)
		buf_adds(b, suffix);
	return buf_str(b);
}

static int job_oom(void)
{
	return cli_fail(CLI_FAILURE, "out of memory");
}

/* ---- put ---------------------------------------------------------------- */

enum put_kind {
	PUT_STR,      /* string as given */
	PUT_DURATION, /* string, validated as a duration */
	PUT_TIME,     /* string, validated as RFC 3339 with an offset */
	PUT_INT,      /* integer in [min, max] */
	PUT_ENUM,     /* one of `choices` ("a|b|c") */
	PUT_JSON,     /* any JSON text */
	PUT_RETRIES,  /* N retries: max_attempts = N + 1 */
	PUT_ENTRY,    /* "K<sep>V" into the object at `path` (sep: choices) */
	PUT_TRUE,     /* no value: true */
};

/*
 * Every job flag of `hora job put`: the flag, where its value goes in the
 * job JSON (a dotted path: "retry.backoff" is job.retry.backoff), how it
 * is checked.  Adding a flag is adding a row.
 */
static const struct put_flag {
	const char *flag;
	const char *path;
	enum put_kind kind;
	long min, max;
	const char *choices;
} put_flags[] = {
	{"--schedule", "schedule", PUT_STR, 0, 0, NULL},
	{"--tz", "timezone", PUT_STR, 0, 0, NULL},
	{"--timezone", "timezone", PUT_STR, 0, 0, NULL},
	{"--queue", "queue", PUT_STR, 0, 0, NULL},
	{"--payload", "payload", PUT_JSON, 0, 0, NULL},
	{"--timeout", "timeout", PUT_DURATION, 0, 0, NULL},
	{"--overlap", "overlap", PUT_ENUM, 0, 0, "allow|forbid|replace"},
	{"--misfire", "misfire", PUT_ENUM, 0, 0, "skip|once|all"},
	{"--priority", "priority", PUT_INT, 0, 9, NULL},
	{"--jitter", "jitter", PUT_DURATION, 0, 0, NULL},
	{"--start-at", "start_at", PUT_TIME, 0, 0, NULL},
	{"--end-at", "end_at", PUT_TIME, 0, 0, NULL},
	{"--max-runs", "max_runs", PUT_INT, 1, LONG_MAX, NULL},
	{"--paused", "paused", PUT_TRUE, 0, 0, NULL},
	{"--retries", "retry.max_attempts", PUT_RETRIES, 0, 10000, NULL},
	{"--backoff", "retry.backoff", PUT_DURATION, 0, 0, NULL},
	{"--max-backoff", "retry.max_backoff", PUT_DURATION, 0, 0, NULL},
	{"--label", "labels", PUT_ENTRY, 0, 0, "="},
	{"--header", "http.headers", PUT_ENTRY, 0, 0, ":"},
	{"--http", "http.url", PUT_STR, 0, 0, NULL},
	{"--method", "http.method", PUT_STR, 0, 0, NULL},
	{"--body", "http.body", PUT_STR, 0, 0, NULL},
};

static bool put_choice_ok(const char *choices, const char *v)
{
	size_t vl = strlen(v);
	const char *p = choices;
	while (*p) {
		const char *bar = strchr(p, '|');
		size_t l = bar ? (size_t)(bar - p) : strlen(p);
		if (l == vl && strncmp(p, v, l) == 0)
			return true;
		p += l + (bar ? 1 : 0);
	}
	return false;
}

/* Set obj[key] = v, taking the reference.  0 or -HORA_ENOMEM. */
static int put_set(json_t *obj, const char *key, json_t *v)
{
	if (v == NULL || json_object_set_new(obj, key, v) != 0)
		return -HORA_ENOMEM;
	return 0;
}

/* Get or create the sub-object obj[key]; NULL on allocation failure. */
static json_t *put_sub(json_t *obj, const char *key)
{
	json_t *sub = json_object_get(obj, key);
	if (sub != NULL)
		return sub;
	sub = json_object();
	if (put_set(obj, key, sub) != 0)
		return NULL;
	return sub;
}

/* The object holding the last part of `path` (created on the way) and
 * that part's name in *leaf (at most `cap` bytes); NULL on allocation
 * failure. */
static json_t *put_parent(json_t *obj, const char *path, char *leaf,
			  size_t cap)
{
	const char *dot;
	while ((dot = strchr(path, '.')) != NULL) {
		char part[64];
		snprintf(part, sizeof part, "%.*s", (int)(dot - path), path);
		if ((obj = put_sub(obj, part)) == NULL)
			return NULL;
		path = dot + 1;
	}
	snprintf(leaf, cap, "%s", path);
	return obj;
}

/* "K<sep>V" (--label K=V, --header 'K: V') into the object `into`. */
static int put_entry(json_t *into, const struct put_flag *f, const char *val)
{
	const char *sep = strchr(val, f->choices[0]);
	const char *v;
	char *key;
	int rv;

	if (sep == NULL || sep == val)
		return cli_fail(CLI_USAGE, "%s: '%s' is not %s", f->flag, val,
				f->choices[0] == '=' ? "KEY=VALUE"
						     : "'NAME: VALUE'");
	for (v = sep + 1; f->choices[0] == ':' && (*v == ' ' || *v == '\t');)
		v++;
	key = hora_strndup(val, (size_t)(sep - val));
	if (key == NULL)
		return job_oom();
	rv = put_set(into, key, json_string(v));
	hora_free(key);
	return rv != 0 ? job_oom() : CLI_OK;
}

/* Put one flag's value where its path says.  Returns CLI_OK, or prints
 * and returns CLI_USAGE / CLI_FAILURE. */
static int put_apply_flag(json_t *job, const struct put_flag *f,
			  const char *val)
{
	hora_error err;
	json_t *v = NULL;
	char leaf[64];
	json_t *obj = put_parent(job, f->path, leaf, sizeof leaf);

	if (obj == NULL)
		return job_oom();
	hora_error_clear(&err);
	switch (f->kind) {
	case PUT_STR:
		if (*val == '\0')
			return cli_fail(CLI_USAGE, "%s: empty value", f->flag);
		v = json_string(val);
		break;
	case PUT_DURATION: {
		int64_t us;
		if (duration_parse(val, &us, leaf, &err) != 0)
			return cli_fail(CLI_USAGE, "%s: %s", f->flag, err.msg);
		v = json_string(val);
		break;
	}
	case PUT_TIME: {
		hora_time t;
		if (timefmt_parse(val, false, &t, NULL, leaf, &err) != 0)
			return cli_fail(CLI_USAGE, "%s: %s", f->flag, err.msg);
		v = json_string(val);
		break;
	}
	case PUT_INT:
	case PUT_RETRIES: {
		long n;
		if (!args_long(val, f->min, f->max, &n)) {
			if (f->max == LONG_MAX)
				return cli_fail(CLI_USAGE,
						"%s: '%s' is not a whole number "
						">= %ld",
						f->flag, val, f->min);
			return cli_fail(CLI_USAGE,
					"%s: '%s' is not a whole number from "
					"%ld to %ld",
					f->flag, val, f->min, f->max);
		}
		v = json_integer((json_int_t)n + (f->kind == PUT_RETRIES));
		break;
	}
	case PUT_ENUM:
		if (!put_choice_ok(f->choices, val))
			return cli_fail(CLI_USAGE, "%s: '%s' is not one of %s",
					f->flag, val, f->choices);
		v = json_string(val);
		break;
	case PUT_JSON: {
		json_error_t jerr;
		v = json_loads(val, JSON_DECODE_ANY, &jerr);
		if (v == NULL)
			return cli_fail(CLI_USAGE,
					"%s is not valid JSON: %s (at column "
					"%d)",
					f->flag, jerr.text, jerr.column);
		break;
	}
	case PUT_ENTRY: {
		json_t *into = put_sub(obj, leaf);
		return into == NULL ? job_oom() : put_entry(into, f, val);
	}
	case PUT_TRUE:
		v = json_true();
		break;
	}
	if (put_set(obj, leaf, v) != 0)
		return job_oom();
	return CLI_OK;
}

/* Read -f FILE ('-' = stdin).  NULL after printing the reason. */
static json_t *put_read_file(const char *file)
{
	json_error_t jerr;
	json_t *v;

	if (strcmp(file, "-") == 0)
		v = json_loadf(stdin, 0, &jerr);
	else
		v = json_load_file(file, 0, &jerr);
	if (v == NULL) {
		if (jerr.line > 0)
			cli_fail(CLI_USAGE, "%s: invalid JSON at line %d, "
					    "column %d: %s",
				 strcmp(file, "-") == 0 ? "stdin" : file,
				 jerr.line, jerr.column, jerr.text);
		else
			cli_fail(CLI_USAGE, "%s", jerr.text);
	}
	return v;
}

/* Print the outcome of a single-job PUT. */
static int put_report(cli_ctx *ctx, const char *name, const client_resp *r)
{
	const char *next;

	if (ctx->json)
		return out_print_raw(r);
	printf("%s job %s\n", r->status == 201 ? "created" : "replaced", name);
	next = r->json ? json_string_value(json_object_get(r->json,
							   "next_run_at"))
		       : NULL;
	if (next != NULL)
		printf("next run at %s\n", next);
	if (fflush(stdout) != 0)
		return cli_fail(CLI_FAILURE, "cannot write output");
	return CLI_OK;
}

static int put_single(cli_ctx *ctx, const char *name, const json_t *job)
{
	hora_client *c;
	hora_buf path = HORA_BUF_INIT;
	client_resp r = {0};
	int rv;

	if (job_path(&path, name, NULL) == NULL) {
		buf_free(&path);
		return job_oom();
	}
	rv = client_open(ctx, &c);
	if (rv == CLI_OK) {
		rv = client_call(c, "PUT", path.p, job, &r);
		if (rv == CLI_OK)
			rv = put_report(ctx, name, &r);
		client_resp_free(&r);
		client_close(c);
	}
	buf_free(&path);
	return rv;
}

static int put_batch(cli_ctx *ctx, const json_t *batch)
{
	const json_t *jobs = json_object_get(batch, "jobs");
	hora_client *c;
	client_resp r = {0};
	int rv;

	rv = client_open(ctx, &c);
	if (rv != CLI_OK)
		return rv;
	rv = client_call(c, "POST", "/v1/jobs:batch", batch, &r);
	if (rv == CLI_OK) {
		if (ctx->json) {
			rv = out_print_raw(&r);
		} else {
			size_t i, n = json_array_size(jobs);
			const json_t *j;
			printf("applied %zu job%s\n", n, n == 1 ? "" : "s");
			json_array_foreach(jobs, i, j)
			{
				const char *nm = json_string_value(
					json_object_get(j, "name"));
				printf("  %s\n", nm ? nm : "(unnamed)");
			}
			if (fflush(stdout) != 0)
				rv = cli_fail(CLI_FAILURE,
					      "cannot write output");
		}
	}
	client_resp_free(&r);
	client_close(c);
	return rv;
}

static int put_from_file(cli_ctx *ctx, const char *name, const char *file)
{
	json_t *v = put_read_file(file);
	int rv;

	if (v == NULL)
		return CLI_USAGE;
	if (json_is_array(v)) {
		/* a bare array of jobs is a batch */
		json_t *batch = json_object();
		if (batch == NULL || json_object_set(batch, "jobs", v) != 0) {
			json_decref(batch);
			json_decref(v);
			return job_oom();
		}
		json_decref(v);
		v = batch;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		return cli_fail(CLI_USAGE, "%s: expected a job object or "
					   "{\"jobs\":[...]}",
				file);
	}
	const json_t *jobs = json_object_get(v, "jobs");
	const char *fname = json_string_value(json_object_get(v, "name"));
	if (jobs != NULL) {
		if (!json_is_array(jobs))
			rv = cli_fail(CLI_USAGE, "%s: \"jobs\" must be an array",
				      file);
		else if (name != NULL)
			rv = cli_fail(CLI_USAGE, "a batch file takes no NAME "
						 "argument");
		else
			rv = put_batch(ctx, v);
	} else if (name != NULL && fname != NULL && strcmp(name, fname) != 0) {
		rv = cli_fail(CLI_USAGE, "NAME '%s' differs from \"name\" "
					 "'%s' in %s",
			      name, fname, file);
	} else if (name == NULL && fname == NULL) {
		rv = cli_fail(CLI_USAGE, "%s: the job has no \"name\" (give "
					 "NAME, or use {\"jobs\":[...]})",
			      file);
	} else if (name == NULL && *fname == '\0') {
		rv = cli_fail(CLI_USAGE, "%s: \"name\" is empty", file);
	} else {
		rv = put_single(ctx, name ? name : fname, v);
	}
	json_decref(v);
	return rv;
}

static int job_put(cli_ctx *ctx, int argc, char **argv)
{
	json_t *job = json_object();
	const char *name = NULL, *file = NULL, *val;
	bool flags_given = false;
	int rv = CLI_OK, i, m;

	if (job == NULL)
		return job_oom();
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		size_t f;

		if (strcmp(a, "--") == 0) {
			json_t *cmd = json_array();
			if (i + 1 >= argc) {
				rv = cli_fail(CLI_USAGE,
					      "job put: '--' must be followed "
					      "by a command");
				json_decref(cmd);
				goto out;
			}
			if (put_set(job, "command", cmd) != 0) {
				rv = job_oom();
				goto out;
			}
			for (i++; i < argc; i++)
				if (json_array_append_new(
					    cmd, json_string(argv[i])) != 0) {
					rv = job_oom();
					goto out;
				}
			flags_given = true;
			break;
		}
		if (cli_is_help(a)) {
			fputs(put_usage, stdout);
			goto out;
		}
		if (strcmp(a, "--json") == 0) {
			ctx->json = true;
			continue;
		}
		if ((m = args_opt(argc, argv, &i, "-f", &val)) != 0 ||
		    (m = args_opt(argc, argv, &i, "--file", &val)) != 0) {
			if (m < 0) {
				rv = CLI_USAGE;
				goto out;
			}
			file = val;
			continue;
		}
		for (f = 0, m = 0; f < sizeof put_flags / sizeof put_flags[0];
		     f++) {
			if (put_flags[f].kind == PUT_TRUE) {
				if (strcmp(a, put_flags[f].flag) == 0) {
					m = 1;
					break;
				}
				continue;
			}
			m = args_opt(argc, argv, &i, put_flags[f].flag, &val);
			if (m != 0)
				break;
		}
		if (m < 0) {
			rv = CLI_USAGE;
			goto out;
		}
		if (m > 0) {
			rv = put_apply_flag(job, &put_flags[f], val);
			if (rv != CLI_OK)
				goto out;
			flags_given = true;
			continue;
		}
		if (a[0] == '-' && a[1] != '\0') {
			rv = cli_fail(CLI_USAGE,
				      "job put: unknown option '%s' (see hora "
				      "job put --help)",
				      a);
			goto out;
		}
		if (name != NULL) {
			rv = cli_fail(CLI_USAGE,
				      "job put: unexpected argument '%s' (put "
				      "the command after --)",
				      a);
			goto out;
		}
		if (*a == '\0') {
			rv = cli_fail(CLI_USAGE, "job put: NAME is empty");
			goto out;
		}
		name = a;
	}

	if (file != NULL) {
		if (flags_given) {
			rv = cli_fail(CLI_USAGE, "job put: -f takes no other "
						 "job flags (edit the file)");
			goto out;
		}
		rv = put_from_file(ctx, name, file);
		goto out;
	}
	if (name == NULL) {
		fputs(put_usage, stderr);
		rv = cli_fail(CLI_USAGE, "job put: missing NAME");
		goto out;
	}
	if (json_object_get(job, "schedule") == NULL) {
		rv = cli_fail(CLI_USAGE, "job put: --schedule is required");
		goto out;
	}
	rv = put_single(ctx, name, job);
out:
	json_decref(job);
	return rv;
}

/* ---- ls ----------------------------------------------------------------- */

static int ls_print_table(const json_t *jobs)
{
	static const char *const header[] = {"NAME",  "SCHEDULE", "TZ",
					     "QUEUE", "NEXT RUN", "PAUSED"};
	out_table *t = out_table_new(6, header);
	const json_t *j;
	size_t i;

	if (t == NULL)
		return job_oom();
	json_array_foreach(jobs, i, j)
	{
		const char *tz = json_string_value(json_object_get(j, "timezone"));
		const char *q = json_string_value(json_object_get(j, "queue"));
		const char *row[6] = {
			json_string_value(json_object_get(j, "name")),
			json_string_value(json_object_get(j, "schedule")),
			tz ? tz : "UTC",
			q ? q : "default",
			json_string_value(json_object_get(j, "next_run_at")),
			json_is_true(json_object_get(j, "paused")) ? "yes"
								   : "no",
		};
		if (out_table_add(t, row) != 0) {
			out_table_free(t);
			return job_oom();
		}
	}
	return out_table_print(t);
}

static int job_ls(cli_ctx *ctx, int argc, char **argv)
{
	const char *prefix = NULL, *val;
	const char *labels[64];
	size_t nlabels = 0;
	long limit = -1;
	json_t *all = NULL;
	char *cursor = NULL;
	hora_client *c = NULL;
	int rv, m;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			fputs(ls_usage, stdout);
			return CLI_OK;
		}
		if (strcmp(a, "--json") == 0) {
			ctx->json = true;
		} else if ((m = args_opt(argc, argv, &i, "--prefix", &val)) !=
			   0) {
			if (m < 0)
				return CLI_USAGE;
			prefix = val;
		} else if ((m = args_opt(argc, argv, &i, "--label", &val)) !=
			   0) {
			if (m < 0)
				return CLI_USAGE;
			if (strchr(val, '=') == NULL || *val == '=')
				return cli_fail(CLI_USAGE,
						"--label: '%s' is not KEY=VALUE",
						val);
			if (nlabels == sizeof labels / sizeof labels[0])
				return cli_fail(CLI_USAGE, "too many --label");
			labels[nlabels++] = val;
		} else if ((m = args_opt(argc, argv, &i, "--limit", &val)) !=
			   0) {
			if (m < 0)
				return CLI_USAGE;
			if (!args_long(val, 1, INT_MAX, &limit))
				return cli_fail(CLI_USAGE,
						"--limit: '%s' is not a whole "
						"number >= 1",
						val);
		} else if (a[0] == '-') {
			return cli_fail(CLI_USAGE,
					"job ls: unknown option '%s' (see hora "
					"job ls --help)",
					a);
		} else {
			return cli_fail(CLI_USAGE,
					"job ls: unexpected argument '%s' (use "
					"--prefix)",
					a);
		}
	}

	all = json_array();
	if (all == NULL)
		return job_oom();
	rv = client_open(ctx, &c);
	while (rv == CLI_OK) {
		hora_buf path = HORA_BUF_INIT;
		client_resp r = {0};
		const json_t *jobs, *j;
		const char *next;
		size_t i;

		buf_adds(&path, "/v1/jobs");
		if (prefix != NULL)
			client_query_add(&path, "prefix", prefix);
		for (size_t l = 0; l < nlabels; l++)
			client_query_add(&path, "label", labels[l]);
		if (limit > 0) {
			char n[32];
			snprintf(n, sizeof n, "%zu",
				 (size_t)limit - json_array_size(all));
			client_query_add(&path, "limit", n);
		}
		if (cursor != NULL)
			client_query_add(&path, "cursor", cursor);
		if (buf_str(&path) == NULL) {
			buf_free(&path);
			rv = job_oom();
			break;
		}
		rv = client_call(c, "GET", path.p, NULL, &r);
		buf_free(&path);
		if (rv != CLI_OK) {
			client_resp_free(&r);
			break;
		}
		jobs = json_is_array(r.json) ? r.json
					     : json_object_get(r.json, "jobs");
		if (!json_is_array(jobs)) {
			client_resp_free(&r);
			rv = cli_fail(CLI_FAILURE, "unexpected answer to GET "
						   "/v1/jobs (no \"jobs\" "
						   "array)");
			break;
		}
		json_array_foreach(jobs, i, j)
		{
			if (limit > 0 && json_array_size(all) >= (size_t)limit)
				break;
			if (json_array_append(all, (json_t *)j) != 0) {
				rv = job_oom();
				break;
			}
		}
		next = json_is_object(r.json)
			       ? json_string_value(
					 json_object_get(r.json, "next_cursor"))
			       : NULL;
		if (rv != CLI_OK || next == NULL || *next == '\0' ||
		    (limit > 0 && json_array_size(all) >= (size_t)limit)) {
			client_resp_free(&r);
			break;
		}
		if (cursor != NULL && strcmp(cursor, next) == 0) {
			client_resp_free(&r);
			rv = cli_fail(CLI_FAILURE, "the server repeated cursor "
						   "'%s'; stopping",
				      next);
			break;
		}
		hora_free(cursor);
		cursor = hora_strdup(next);
		client_resp_free(&r);
		if (cursor == NULL)
			rv = job_oom();
	}
	client_close(c);
	hora_free(cursor);
	if (rv == CLI_OK)
		rv = ctx->json ? out_print_pretty(all) : ls_print_table(all);
	json_decref(all);
	return rv;
}

/* ---- get, rm, pause, resume, trigger ----------------------------------- */

/* Collect NAME arguments (and --json / --help) for the one-job commands.
 * Returns CLI_OK with names[0..*n) pointing into argv, -1 after printing
 * help, or CLI_USAGE. */
static int job_names(cli_ctx *ctx, int argc, char **argv, const char *usage,
		     bool many, char **names, int *n)
{
	*n = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			fputs(usage, stdout);
			return -1;
		}
		if (strcmp(a, "--json") == 0) {
			ctx->json = true;
		} else if (a[0] == '-' && a[1] != '\0') {
			return cli_fail(CLI_USAGE,
					"job %s: unknown option '%s' (see hora "
					"job %s --help)",
					argv[0], a, argv[0]);
		} else if (*a == '\0') {
			return cli_fail(CLI_USAGE, "job %s: NAME is empty",
					argv[0]);
		} else if (*n > 0 && !many) {
			return cli_fail(CLI_USAGE,
					"job %s: unexpected argument '%s'",
					argv[0], a);
		} else {
			names[(*n)++] = argv[i];
		}
	}
	if (*n == 0) {
		fputs(usage, stderr);
		return cli_fail(CLI_USAGE, "job %s: missing NAME", argv[0]);
	}
	return CLI_OK;
}

static int job_get(cli_ctx *ctx, int argc, char **argv)
{
	int n, rv;
	hora_client *c;
	hora_buf path = HORA_BUF_INIT;
	client_resp r = {0};
	char **nv = hora_calloc((size_t)argc, sizeof *nv);

	if (nv == NULL)
		return job_oom();
	rv = job_names(ctx, argc, argv, get_usage, false, nv, &n);
	if (rv != CLI_OK) {
		hora_free(nv);
		return rv < 0 ? CLI_OK : rv;
	}
	if (job_path(&path, nv[0], NULL) == NULL) {
		rv = job_oom();
		goto out;
	}
	rv = client_open(ctx, &c);
	if (rv != CLI_OK)
		goto out;
	rv = client_call(c, "GET", path.p, NULL, &r);
	if (rv == CLI_OK) {
		if (ctx->json || r.json == NULL)
			rv = out_print_raw(&r);
		else
			rv = out_print_pretty(r.json);
	}
	client_resp_free(&r);
	client_close(c);
out:
	buf_free(&path);
	hora_free(nv);
	return rv;
}

/* The run id in a trigger answer: the run itself, or {"run":{...}}. */
static const char *trigger_run_id(const json_t *answer)
{
	const json_t *run = json_object_get(answer, "run");
	const char *id;
	if (!json_is_object(run))
		run = answer;
	id = json_string_value(json_object_get(run, "id"));
	return id;
}

enum job_action { ACT_RM, ACT_PAUSE, ACT_RESUME, ACT_TRIGGER };

static int job_action(cli_ctx *ctx, int argc, char **argv,
		      enum job_action act)
{
	static const char *const method[] = {"DELETE", "POST", "POST", "POST"};
	static const char *const suffix[] = {NULL, "/pause", "/resume",
					     "/trigger"};
	static const char *const done[] = {"deleted", "paused", "resumed",
					   "triggered"};
	char **names = hora_calloc((size_t)argc, sizeof *names);
	hora_client *c;
	int n, rv, worst = CLI_OK;

	if (names == NULL)
		return job_oom();
	rv = job_names(ctx, argc, argv, name_cmd_usage, true, names, &n);
	if (rv != CLI_OK) {
		hora_free(names);
		return rv < 0 ? CLI_OK : rv;
	}
	rv = client_open(ctx, &c);
	if (rv != CLI_OK) {
		hora_free(names);
		return rv;
	}
	for (int k = 0; k < n; k++) {
		hora_buf path = HORA_BUF_INIT;
		client_resp r = {0};

		if (job_path(&path, names[k], suffix[act]) == NULL) {
			buf_free(&path);
			worst = job_oom();
			break;
		}
		rv = client_call(c, method[act], path.p, NULL, &r);
		buf_free(&path);
		if (rv == CLI_OK && ctx->json) {
			rv = out_print_raw(&r);
		} else if (rv == CLI_OK) {
			const char *extra = NULL, *label = "";
			if (act == ACT_TRIGGER && r.json != NULL) {
				extra = trigger_run_id(r.json);
				label = "run ";
			} else if (act == ACT_RESUME && r.json != NULL) {
				extra = json_string_value(
					json_object_get(r.json, "next_run_at"));
				label = "next run at ";
			}
			if (extra != NULL)
				printf("%s job %s (%s%s)\n", done[act],
				       names[k], label, extra);
			else
				printf("%s job %s\n", done[act], names[k]);
			if (fflush(stdout) != 0)
				rv = cli_fail(CLI_FAILURE,
					      "cannot write output");
		}
		client_resp_free(&r);
		if (rv != CLI_OK)
			worst = rv;
	}
	client_close(c);
	hora_free(names);
	return worst;
}

int cmd_job(cli_ctx *ctx, int argc, char **argv)
{
	const char *sub;

	client_global_init();
	if (argc < 2 || cli_is_help(argv[1])) {
		fputs(job_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	sub = argv[1];
	argc--;
	argv++;
	if (strcmp(sub, "put") == 0)
		return job_put(ctx, argc, argv);
	if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
		return job_ls(ctx, argc, argv);
	if (strcmp(sub, "get") == 0)
		return job_get(ctx, argc, argv);
	if (strcmp(sub, "rm") == 0 || strcmp(sub, "delete") == 0)
		return job_action(ctx, argc, argv, ACT_RM);
	if (strcmp(sub, "pause") == 0)
		return job_action(ctx, argc, argv, ACT_PAUSE);
	if (strcmp(sub, "resume") == 0)
		return job_action(ctx, argc, argv, ACT_RESUME);
	if (strcmp(sub, "trigger") == 0)
		return job_action(ctx, argc, argv, ACT_TRIGGER);
	fputs(job_usage, stderr);
	return cli_fail(CLI_USAGE, "job: unknown subcommand '%s'", sub);
}

#endif /* HORA_CLI_OFFLINE_ONLY */
