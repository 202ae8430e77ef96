/* hora cron next: offline next-fire-time computation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/clock.h"
#include "core/timefmt.h"
#include "cron/schedule.h"
#include "tz/tz.h"

#define CRON_COUNT_MAX 100000

static const char cron_usage[] =
	"usage: hora cron next [--tz ZONE] [--from TIME] [--count N] EXPR\n"
	"\n"
	"Print the next N (default 5) fire times of EXPR strictly after TIME\n"
	"(default now), one per line, in RFC 3339 with the zone's offset.\n"
	"\n"
	"  EXPR         a cron expression (5 fields, or 6 with seconds first),\n"
	"               a macro (@daily, ...), @every DURATION (counted from\n"
	"               TIME), @at TIME or @after DURATION; quote it\n"
	"  --tz ZONE    IANA time zone for the cron fields (default UTC)\n"
	"  --from TIME  RFC 3339; without an offset it is a wall time in ZONE\n"
	"  --count N    how many times to print (1-100000)\n"
	"\n"
	"Exits 2 with a message naming the field when EXPR, ZONE or TIME is\n"
	"invalid.\n";

static int cron_next_cmd(int argc, char **argv)
{
	const char *zone = "UTC";
	const char *from = NULL;
	long count = 5;
	char expr[1024] = "";
	size_t elen = 0;
	bool opts_done = false;
	hora_error err;
	const hora_tz *tz;
	hora_schedule sched;
	hora_time t;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
		if (!opts_done && strcmp(a, "--") == 0) {
			opts_done = true;
			continue;
		}
		if (!opts_done && cli_is_help(a)) {
			fputs(cron_usage, stdout);
			return CLI_OK;
		}
		if (!opts_done && a[0] == '-' && a[1] == '-') {
			const char *eq = strchr(a, '=');
			size_t nl = eq ? (size_t)(eq - a) : strlen(a);
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return cli_fail(CLI_USAGE, "%s needs a value", a);
			if (nl == 4 && strncmp(a, "--tz", nl) == 0) {
				zone = val;
			} else if (nl == 6 && strncmp(a, "--from", nl) == 0) {
				from = val;
			} else if (nl == 7 && strncmp(a, "--count", nl) == 0) {
				char *end;
				errno = 0;
				count = strtol(val, &end, 10);
				if (errno || *end || end == val || count < 1 ||
				    count > CRON_COUNT_MAX)
					return cli_fail(CLI_USAGE,
							"--count: '%s' is not a "
							"whole number from 1 to "
							"%d",
							val, CRON_COUNT_MAX);
			} else {
				return cli_fail(CLI_USAGE,
						"cron next: unknown option '%.*s' "
						"(see hora cron --help)",
						(int)nl, a);
			}
			continue;
		}
		/* unquoted expressions arrive as several words: join them */
		size_t al = strlen(a);
		if (elen + al + 2 > sizeof expr)
			return cli_fail(CLI_USAGE, "expression is too long");
		if (elen > 0)
			expr[elen++] = ' ';
		memcpy(expr + elen, a, al + 1);
		elen += al;
	}
	if (elen == 0) {
		fputs(cron_usage, stderr);
		return cli_fail(CLI_USAGE, "cron next: missing EXPR");
	}

	hora_error_clear(&err);
	if (tz_load(zone, &tz, "timezone", &err) != 0)
		return cli_fail(CLI_USAGE, "--tz: %s", err.msg);
	if (from != NULL) {
		bool has_offset;
		if (timefmt_parse(from, true, &t, &has_offset, "from", &err) != 0)
			return cli_fail(CLI_USAGE, "--from: %s", err.msg);
		if (!has_offset) {
			tz_local_result r;
			tz_from_local(tz, t, &r);
			t = r.first;
		}
	} else {
		t = hora_wallclock_usec();
	}
	if (schedule_parse(expr, tz, &sched, "schedule", &err) != 0)
		return cli_fail(CLI_USAGE, "invalid schedule '%s': %s", expr,
				err.msg);

	hora_time anchor = t;
	for (long n = 0; n < count; n++) {
		char buf[HORA_TIME_STRLEN];
		t = schedule_next(&sched, anchor, t);
		if (t == HORA_TIME_NONE)
			break;
		timefmt_format(t, tz_offset_at(tz, t), 0, buf);
		puts(buf);
	}
	if (fflush(stdout) != 0)
		return cli_fail(CLI_FAILURE, "cannot write output");
	return CLI_OK;
}

int cmd_cron(cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	if (argc < 2 || cli_is_help(argv[1])) {
		fputs(cron_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (strcmp(argv[1], "next") == 0)
		return cron_next_cmd(argc - 1, argv + 1);
	return cli_fail(CLI_USAGE, "cron: unknown subcommand '%s' (try 'hora "
				   "cron next')",
			argv[1]);
}
