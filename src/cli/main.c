/* hora - the command-line tool.  See API.md "hora — the CLI". */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char usage[] =
	"usage: hora [--addr URL] [--token TOKEN] [--cacert FILE] [--json] "
	"COMMAND [ARGS]\n"
	"\n"
	"hora talks to a horad node (default --addr $HORA_ADDR, else\n"
	"http://127.0.0.1:7070; --token defaults to $HORA_TOKEN).\n"
	"\n"
	"commands:\n"
	"  cron next [--tz ZONE] [--from TIME] [--count N] EXPR\n"
	"                       print the next fire times of a schedule (offline)\n"
	"  job put|ls|get|rm|pause|resume|trigger ...\n"
	"                       manage jobs\n"
	"  runs NAME [--limit N] recent runs of a job\n"
	"  worker [--queue Q]... [--concurrency N]\n"
	"                       execute runs out of process\n"
	"  cluster status|transfer|add|remove ...\n"
	"                       cluster membership\n"
	"\n"
	"options:\n"
	"  --addr URL     API address of any node\n"
	"  --token TOKEN  bearer token (when horad runs with --token-file)\n"
	"  --cacert FILE  CA certificate to verify an https:// node with\n"
	"                 (default $HORA_CACERT, else the system's CAs)\n"
	"  --json         print JSON answers as they come\n"
	"  --version      print the version\n"
	"  -h, --help     this text; 'hora COMMAND --help' for a command\n"
	"\n"
	"exit codes: 0 success, 1 failure reported by the server or the\n"
	"network, 2 bad usage\n";

int cli_fail(int code, const char *fmt, ...)
{
	va_list ap;
	fputs("hora: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

bool cli_is_help(const char *arg)
{
	return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

static const struct {
	const char *name;
	cli_command_fn fn;
} commands[] = {
	{"cron", cmd_cron},
#ifndef HORA_CLI_OFFLINE_ONLY
	{"job", cmd_job},
	{"runs", cmd_runs},
	{"cluster", cmd_cluster},
	{"worker", cmd_worker},
#endif
};

int main(int argc, char **argv)
{
	cli_ctx ctx = {0};
	int i;

	ctx.addr = getenv("HORA_ADDR");
	if (ctx.addr == NULL || *ctx.addr == '\0')
		ctx.addr = "http://127.0.0.1:7070";
	ctx.token = getenv("HORA_TOKEN");
	if (ctx.token != NULL && *ctx.token == '\0')
		ctx.token = NULL;
	ctx.cacert = getenv("HORA_CACERT");
	if (ctx.cacert != NULL && *ctx.cacert == '\0')
		ctx.cacert = NULL;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-')
			break;
		if (cli_is_help(a)) {
			fputs(usage, stdout);
			return CLI_OK;
		} else if (strcmp(a, "--version") == 0) {
			printf("hora %s\n", HORA_VERSION);
			return CLI_OK;
		} else if (strcmp(a, "--json") == 0) {
			ctx.json = true;
		} else if (strcmp(a, "--addr") == 0 || strcmp(a, "--token") == 0 ||
			   strcmp(a, "--cacert") == 0) {
			if (i + 1 >= argc)
				return cli_fail(CLI_USAGE, "%s needs a value", a);
			if (a[2] == 'a')
				ctx.addr = argv[++i];
			else if (a[2] == 't')
				ctx.token = argv[++i];
			else
				ctx.cacert = argv[++i];
		} else if (strncmp(a, "--addr=", 7) == 0) {
			ctx.addr = a + 7;
		} else if (strncmp(a, "--token=", 8) == 0) {
			ctx.token = a + 8;
		} else if (strncmp(a, "--cacert=", 9) == 0) {
			ctx.cacert = a + 9;
		} else {
			fputs(usage, stderr);
			return cli_fail(CLI_USAGE, "unknown option '%s'", a);
		}
	}
	if (i >= argc) {
		fputs(usage, stderr);
		return CLI_USAGE;
	}
	for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
		if (strcmp(argv[i], commands[c].name) == 0)
			return commands[c].fn(&ctx, argc - i, argv + i);
	}
	fputs(usage, stderr);
	return cli_fail(CLI_USAGE, "unknown command '%s'", argv[i]);
}
