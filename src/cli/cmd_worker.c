/*
 * cmd_worker.c - `hora worker`: an executor out of process (API.md "hora
 * — the CLI", "Runs", claim/heartbeat/complete).
 *
 * Everything runs on one libuv loop, on one thread: the worker engine
 * (worker/engine.h: slots, claims, a run's life, stopping) speaks the
 * API through its HTTP transport (worker/transport_http.h), and runs
 * execute in the built-in executor (src/exec), the same engine and
 * executor horad's built-in slots use.  What is left here: the flags,
 * the signals and the log on stderr.
 *
 * SIGTERM/SIGINT: the engine stops (claims abandoned, runs not started
 * handed back, running ones get --grace to finish and report, then are
 * cancelled and handed back); then exit 0.  A second signal cancels the
 * executions and exits at once (status 1).
 *
 * Server errors are logged and retried with backoff (1 s doubling to
 * 10 s); only bad usage is fatal.
 */
/* The offline build (HORA_SERVER=OFF) has no libcurl, jansson or libuv. */
#ifndef HORA_CLI_OFFLINE_ONLY

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "cli/cli.h"
#include "cli/args.h"
#include "cli/client.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/timefmt.h"
#include "net/http_client.h"
#include "sched/job.h"
#include "worker/engine.h"
#include "worker/transport_http.h"

#define W_QUEUES_MAX ENGINE_QUEUES_MAX
#define W_CONCURRENCY_MAX 1024
#define W_ID_MAX 255
#define W_LEASE_MS_DEFAULT 60000
#define W_LEASE_MS_MIN 1000
#define W_LEASE_MS_MAX 3600000
#define W_WAIT_MS_DEFAULT 30000
#define W_WAIT_MS_MAX 300000
#define W_GRACE_DEFAULT_MS 10000
#define W_GRACE_MAX_MS 3600000
#define W_BACKOFF_MIN_MS 1000
#define W_BACKOFF_MAX_MS 10000
#define W_CONNECT_TIMEOUT_MS 5000

static const char worker_usage[] =
	"usage: hora worker [--queue Q]... [--concurrency N] [--worker-id ID]\n"
	"                   [--lease-ms MS] [--wait-ms MS] [--grace DURATION]\n"
	"                   [--claim]\n"
	"\n"
	"Run an executor out of process: take runs from the queues of the\n"
	"horad node at --addr, execute them and report their results.  Runs\n"
	"are pushed to the worker the instant they are due (one stream per\n"
	"queue, the --concurrency slots split among them), or claimed with\n"
	"long polls with --claim, or when there are more queues than slots,\n"
	"or when the server has no streams.\n"
	"\n"
	"A `command` run executes its argv (no shell) with HORA_RUN_ID,\n"
	"HORA_JOB, HORA_SCHEDULED_AT, HORA_ATTEMPT and HORA_PAYLOAD in its\n"
	"environment; an `http` run sends its request (2xx = success).  The\n"
	"output tail (64 KiB) and exit code (HTTP status) are reported.  Each\n"
	"run is logged to stderr when it ends.\n"
	"\n"
	"options:\n"
	"  --queue Q          claim from queue Q (repeatable; default: default)\n"
	"  --concurrency N    runs executed at once (1-1024, default 4)\n"
	"  --worker-id ID     name given to the server (default HOSTNAME-PID)\n"
	"  --lease-ms MS      lease asked for each run, renewed every MS/3\n"
	"                     (1000-3600000, default 60000)\n"
	"  --wait-ms MS       how long a claim waits for a due run (long poll,\n"
	"                     0-300000, default 30000)\n"
	"  --claim            claim runs with long polls instead of streams\n"
	"  --grace DURATION   after SIGTERM/SIGINT, how long running runs may\n"
	"                     take to finish (e.g. 10s, 500ms, 0s; default 10s)\n"
	"\n"
	"SIGTERM or SIGINT stops claiming, hands back the runs not started,\n"
	"lets running ones finish within --grace, then cancels the rest and\n"
	"hands them back (they are delivered again), and exits 0.  A second\n"
	"signal stops the executions and exits at once (status 1).\n"
	"Errors talking to the server are logged and retried.\n"
	"\n"
	"exit codes: 0 stopped by a signal, 1 failure to start, 2 bad usage\n";

typedef struct worker {
	uv_loop_t loop;
	engine *eng;
	transport_http *tp;
	char *base;
	const char *token;
	httpc_conf conf; /* --cacert, User-Agent, connect timeout */
	char id[W_ID_MAX + 1];
	const char *queues[W_QUEUES_MAX];
	size_t nqueues;
	unsigned concurrency;
	int64_t lease_ms, wait_ms, grace_ms;
	bool claim; /* --claim: no streams */
	uv_signal_t sigterm, sigint;
	bool stopping;
} worker;

/* ------------------------------------------------------------------ */
/* Logging */

static void wlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void wlog(const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof line - 2)
		n = (int)(sizeof line - 2);
	line[n++] = '\n';
	/* one write: lines of concurrent workers sharing stderr stay whole */
	fwrite(line, 1, (size_t)n, stderr);
	fflush(stderr);
}

/* Every engine line, whatever its level: one per run at least. */
static void engine_log(void *ud, engine_log_level level, const char *line)
{
	(void)ud;
	(void)level;
	wlog("%s", line);
}

/* ------------------------------------------------------------------ */
/* Shutdown */

static void w_handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void engine_stopped(void *ud)
{
	worker *w = ud;

	w->eng = NULL;
	transport_http_close(w->tp);
	w->tp = NULL;
	uv_close((uv_handle_t *)&w->sigterm, w_handle_closed);
	uv_close((uv_handle_t *)&w->sigint, w_handle_closed);
}

static void on_signal(uv_signal_t *s, int signum)
{
	worker *w = s->data;
	unsigned running;

	if (w->stopping) {
		wlog("hora worker: %s again: exiting now", strsignal(signum));
		engine_kill(w->eng);
		_exit(CLI_FAILURE);
	}
	w->stopping = true;
	running = engine_executing(w->eng);
	wlog("hora worker: %s: stopping; %u run%s executing (grace %.1fs)",
	     strsignal(signum), running, running == 1 ? "" : "s",
	     (double)w->grace_ms / 1000.0);
	engine_stop(w->eng, w->grace_ms, engine_stopped, w);
}

/* ------------------------------------------------------------------ */
/* Command line */

static int worker_usage_error(const char *what, const char *arg)
{
	fputs(worker_usage, stderr);
	return cli_fail(CLI_USAGE, "%s '%s'", what, arg);
}

static int parse_grace(const char *s, int64_t *ms)
{
	long secs;
	int64_t usec;
	hora_error err;

	if (args_long(s, 0, W_GRACE_MAX_MS / 1000, &secs)) {
		*ms = (int64_t)secs * 1000;
		return 0;
	}
	if (duration_parse(s, &usec, "grace", &err) != 0 ||
	    usec > (int64_t)W_GRACE_MAX_MS * HORA_USEC_PER_MS)
		return -1;
	*ms = usec / HORA_USEC_PER_MS;
	return 0;
}

static int worker_setup(worker *w, const cli_ctx *ctx)
{
	hora_error err;
	int rv;

	hora_buf base = HORA_BUF_INIT;

	httpc_base_url(&base, ctx->addr);
	if ((w->base = buf_take(&base, NULL)) == NULL)
		return cli_fail(CLI_FAILURE, "out of memory");
	w->token = ctx->token;
	w->conf = (httpc_conf){
		.user_agent = "hora-worker/" HORA_VERSION,
		.ca_file = ctx->cacert,
		.connect_timeout_ms = W_CONNECT_TIMEOUT_MS,
	};
	if ((rv = uv_loop_init(&w->loop)) != 0)
		return cli_fail(CLI_FAILURE, "cannot create the event loop: %s",
				uv_strerror(rv));
	hora_error_clear(&err);
	if ((rv = transport_http_new(&w->loop, w->base, w->token, w->id,
				     &w->conf, &w->tp, &err)) != 0) {
		uv_loop_close(&w->loop);
		return cli_fail(CLI_FAILURE, "cannot initialise libcurl: %s",
				err.msg[0] ? err.msg : hora_strerror(rv));
	}
	engine_conf conf = {
		.queues = w->queues,
		.nqueues = w->nqueues,
		.concurrency = w->concurrency,
		.lease_ms = w->lease_ms,
		.wait_ms = w->wait_ms,
		.stream = !w->claim,
		.backoff_min_ms = W_BACKOFF_MIN_MS,
		.backoff_max_ms = W_BACKOFF_MAX_MS,
		.name = "hora worker",
		.log = engine_log,
	};
	if ((rv = engine_new(&w->loop, &conf, &transport_http_ops, w->tp,
			     &w->eng, &err)) != 0) {
		transport_http_close(w->tp);
		uv_run(&w->loop, UV_RUN_DEFAULT); /* its handles close */
		uv_loop_close(&w->loop);
		return cli_fail(CLI_FAILURE, "cannot start the executor: %s",
				err.msg[0] ? err.msg : hora_strerror(rv));
	}
	uv_signal_init(&w->loop, &w->sigterm);
	uv_signal_init(&w->loop, &w->sigint);
	w->sigterm.data = w->sigint.data = w;
	uv_signal_start(&w->sigterm, on_signal, SIGTERM);
	uv_signal_start(&w->sigint, on_signal, SIGINT);
	return CLI_OK;
}

int cmd_worker(cli_ctx *ctx, int argc, char **argv)
{
	static worker wk; /* one per process */
	worker *w = &wk;
	const char *val, *id = NULL;
	int64_t concurrency = 4;
	long n;
	int rv;
	const struct {
		const char *flag;
		long min, max;
		int64_t *dst;
	} nums[] = {
		{"--concurrency", 1, W_CONCURRENCY_MAX, &concurrency},
		{"--lease-ms", W_LEASE_MS_MIN, W_LEASE_MS_MAX, &w->lease_ms},
		{"--wait-ms", 0, W_WAIT_MS_MAX, &w->wait_ms},
	};

	client_global_init();
	memset(w, 0, sizeof *w);
	w->lease_ms = W_LEASE_MS_DEFAULT;
	w->wait_ms = W_WAIT_MS_DEFAULT;
	w->grace_ms = W_GRACE_DEFAULT_MS;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			fputs(worker_usage, stdout);
			return CLI_OK;
		}
		if (strcmp(a, "--claim") == 0) {
			w->claim = true;
			continue;
		}
		size_t k = 0, nnums = sizeof nums / sizeof nums[0];
		while (k < nnums && (rv = args_opt(argc, argv, &i,
						     nums[k].flag, &val)) == 0)
			k++;
		if (k < nnums) {
			if (rv < 0)
				return CLI_USAGE;
			if (!args_long(val, nums[k].min, nums[k].max,
					       &n))
				return cli_fail(CLI_USAGE,
						"%s must be a whole number "
						"from %ld to %ld, got '%s'",
						nums[k].flag, nums[k].min,
						nums[k].max, val);
			*nums[k].dst = n;
		} else if ((rv = args_opt(argc, argv, &i, "--queue", &val)) !=
			   0) {
			hora_error err;
			if (rv < 0)
				return CLI_USAGE;
			if (job_queue_check(val, "queue", &err) != 0)
				return cli_fail(CLI_USAGE, "--queue: %s",
						err.msg);
			bool dup = false;
			for (size_t q = 0; q < w->nqueues; q++)
				if (strcmp(w->queues[q], val) == 0)
					dup = true;
			if (dup)
				continue;
			if (w->nqueues == W_QUEUES_MAX)
				return cli_fail(CLI_USAGE,
						"at most %d queues per worker",
						W_QUEUES_MAX);
			w->queues[w->nqueues++] = val;
		} else if ((rv = args_opt(argc, argv, &i, "--worker-id",
					    &val)) != 0) {
			if (rv < 0)
				return CLI_USAGE;
			if (*val == '\0' || strlen(val) > W_ID_MAX)
				return cli_fail(CLI_USAGE,
						"--worker-id must have 1 to %d "
						"characters",
						W_ID_MAX);
			id = val;
		} else if ((rv = args_opt(argc, argv, &i, "--grace", &val)) !=
			   0) {
			if (rv < 0)
				return CLI_USAGE;
			if (parse_grace(val, &w->grace_ms) != 0)
				return cli_fail(CLI_USAGE,
						"--grace must be a duration "
						"such as 10s or 500ms (at most "
						"1h), got '%s'",
						val);
		} else if (a[0] == '-') {
			return worker_usage_error("unknown option", a);
		} else {
			return worker_usage_error("unexpected argument", a);
		}
	}
	if (w->nqueues == 0)
		w->queues[w->nqueues++] = "default";
	w->concurrency = (unsigned)concurrency;
	if (id != NULL) {
		snprintf(w->id, sizeof w->id, "%s", id);
	} else {
		char host[128] = "";
		if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
			snprintf(host, sizeof host, "worker");
		snprintf(w->id, sizeof w->id, "%s-%ld", host, (long)getpid());
	}

	if ((rv = worker_setup(w, ctx)) != CLI_OK) {
		hora_free(w->base);
		return rv;
	}
	{
		char qs[512] = "";
		size_t off = 0;
		for (size_t i = 0; i < w->nqueues && off < sizeof qs; i++)
			off += (size_t)snprintf(qs + off, sizeof qs - off,
						"%s%s", i ? "," : "",
						w->queues[i]);
		wlog("hora worker: %s claiming from %s at %s (concurrency %u, "
		     "lease %lld ms, %s)",
		     w->id, qs, w->base, w->concurrency,
		     (long long)w->lease_ms,
		     w->claim || w->concurrency < w->nqueues ? "long polls"
							     : "streams");
	}
	engine_start(w->eng);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&w->loop) != 0)
		wlog("hora worker: event loop not empty at exit");
	hora_free(w->base);
	return CLI_OK;
}

#endif /* HORA_CLI_OFFLINE_ONLY */
