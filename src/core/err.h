/*
 * err.h - hora's error codes and the error-context object.
 *
 * Every fallible function returns int: 0 on success, a negative HORA_E*
 * code otherwise (the libuv convention).  Where a caller needs to tell a
 * human what went wrong, the function also takes a `hora_error *` that it
 * fills with the offending field and a sentence naming the value and the
 * rule ("hour field: 25 is out of range 0-23").
 */
#ifndef HORA_CORE_ERR_H
#define HORA_CORE_ERR_H

#include <stddef.h>

/* X(name, text) */
#define HORA_ERRNO_MAP(X)                                         \
	X(EINVAL, "invalid argument")                             \
	X(ENOMEM, "out of memory")                                \
	X(ENOENT, "not found")                                    \
	X(EEXIST, "already exists")                               \
	X(ERANGE, "out of range")                                 \
	X(EIO, "input/output error")                              \
	X(ECORRUPT, "corrupt data")                               \
	X(ETOOBIG, "too large")                                   \
	X(ENOTLEADER, "not the leader")                           \
	X(EBUSY, "busy")                                          \
	X(ESHUTDOWN, "shutting down")                             \
	X(ECONFLICT, "conflict")                                  \
	X(ENEVER, "never fires")                                  \
	X(EVERSION, "unsupported format version")                 \
	X(EUNAVAIL, "unavailable")                                \
	X(ETIMEDOUT, "timed out")

enum {
	HORA_OK = 0,
#define HORA__ERR_ENUM(name, text) HORA_##name,
	HORA__ERR_FIRST_ = 0,
	HORA_ERRNO_MAP(HORA__ERR_ENUM)
#undef HORA__ERR_ENUM
	HORA__ERR_COUNT_
};

/* Static text for a (negative) error code; never NULL. */
const char *hora_strerror(int rv);

/* Short machine name of a code ("EINVAL"), for logs. */
const char *hora_errname(int rv);

#define HORA_ERROR_FIELD_MAX 64
#define HORA_ERROR_MSG_MAX 512

/* Context for a failure: which field and what rule.  Plain value type,
 * caller-allocated, no ownership. */
typedef struct hora_error {
	int code;                         /* negative HORA_E*, 0 if unset */
	char field[HORA_ERROR_FIELD_MAX]; /* "" when no single field is at fault */
	char msg[HORA_ERROR_MSG_MAX];
} hora_error;

void hora_error_clear(hora_error *err);

/*
 * Record an error and return `code` so callers can write
 *     return hora_error_set(err, -HORA_EINVAL, "schedule", "fmt", ...);
 * `err` may be NULL (the context is dropped, the code returned).
 */
int hora_error_set(hora_error *err, int code, const char *field,
		   const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Prefix the message with "prefix: " (used when a nested parser's error is
 * reported under an outer field name).  Keeps code and field unless
 * `field` is non-NULL, in which case it replaces the field. */
void hora_error_prefix(hora_error *err, const char *field, const char *fmt,
		       ...) __attribute__((format(printf, 3, 4)));

#endif
