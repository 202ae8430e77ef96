/*
 * log.h - leveled logging to stderr, as text or one JSON object a line.
 *
 * Text:  2026-12-01T17:51:37.123Z info  became leader (term 2)
 * JSON:  {"ts":"2026-12-01T17:51:37.123Z","level":"info","msg":"..."}
 * The only module in the core that reads the clock, and only to stamp
 * lines: nothing it does feeds back into state.
 */
#ifndef HORA_CORE_LOG_H
#define HORA_CORE_LOG_H

#include <stdbool.h>

typedef enum {
	LOG_DEBUG = 0,
	LOG_INFO = 1,
	LOG_WARN = 2,
	LOG_ERROR = 3,
} log_level;

/* Parse "debug|info|warn|error"; -1 if unknown. */
int log_level_parse(const char *s);
void log_configure(log_level min, bool json);
bool log_enabled(log_level level);

void log_write(log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
