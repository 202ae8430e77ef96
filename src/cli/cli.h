/*
 * cli.h - shared pieces of the `hora` command-line tool.
 *
 * Each command lives in its own cmd_<name>.c and has the signature of
 * cli_command_fn.  Exit codes (API.md): 0 success, 1 failure reported by
 * the server or the network, 2 bad usage.
 */
#ifndef HORA_CLI_CLI_H
#define HORA_CLI_CLI_H

#include <stdbool.h>
#include <stdio.h>

enum {
	CLI_OK = 0,
	CLI_FAILURE = 1,
	CLI_USAGE = 2,
};

typedef struct cli_ctx {
	const char *addr;  /* --addr, $HORA_ADDR, or the default */
	const char *token; /* --token, $HORA_TOKEN, or NULL */
	const char *cacert; /* --cacert, $HORA_CACERT: CA for https, or NULL */
	bool json;         /* --json: print raw JSON answers */
} cli_ctx;

typedef int (*cli_command_fn)(cli_ctx *ctx, int argc, char **argv);

/* Print "hora: <message>" to stderr and return `code`. */
int cli_fail(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* True when argv[i] is -h or --help. */
bool cli_is_help(const char *arg);

int cmd_cron(cli_ctx *ctx, int argc, char **argv);
int cmd_job(cli_ctx *ctx, int argc, char **argv);
int cmd_runs(cli_ctx *ctx, int argc, char **argv);
int cmd_worker(cli_ctx *ctx, int argc, char **argv);
int cmd_cluster(cli_ctx *ctx, int argc, char **argv);

#endif
