/*
 * args.h - the CLI's option parsing: "--name VALUE" / "--name=VALUE" and
 * bounded whole numbers.  Used by every command, the offline ones too.
 */
#ifndef HORA_CLI_ARGS_H
#define HORA_CLI_ARGS_H

#include <stdbool.h>

/*
 * args_opt(argc, argv, &i, "--name", &val) matches argv[i] against
 * "--name VALUE" or "--name=VALUE".  Returns 1 and sets *val (advancing *i
 * past a separate value) on a match, 0 when argv[i] is another option, or
 * -1 after printing "NAME needs a value" (usage error).
 */
int args_opt(int argc, char **argv, int *i, const char *name,
	     const char **val);

/* Parse a decimal integer in [min, max]; false when it is not one. */
bool args_long(const char *s, long min, long max, long *out);

#endif
