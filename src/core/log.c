#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "core/clock.h"
#include "core/timefmt.h"

static log_level min_level = LOG_INFO;
static bool json_format;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

void log_configure(log_level min, bool json)
{
	min_level = min;
	json_format = json;
}

bool log_enabled(log_level level)
{
	return level >= min_level;
}

static void json_escape(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

void log_write(log_level level, const char *fmt, ...)
{
	char msg[2048];
	char ts[HORA_TIME_STRLEN];
	va_list ap;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	hora_time t = hora_wallclock_usec();
	t -= t % 1000; /* milliseconds are enough for logs */
	timefmt_format(t, 0, TIMEFMT_Z, ts);
	if (json_format) {
		fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"",
			ts, level_names[level]);
		json_escape(stderr, msg);
		fputs("\"}\n", stderr);
	} else {
		fprintf(stderr, "%s %-5s %s\n", ts, level_names[level], msg);
	}
}
