#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const err_text[] = {
	[0] = "success",
#define HORA__ERR_TEXT(name, text) [HORA_##name] = text,
	HORA_ERRNO_MAP(HORA__ERR_TEXT)
#undef HORA__ERR_TEXT
};

static const char *const err_name[] = {
	[0] = "OK",
#define HORA__ERR_NAME(name, text) [HORA_##name] = #name,
	HORA_ERRNO_MAP(HORA__ERR_NAME)
#undef HORA__ERR_NAME
};

const char *hora_strerror(int rv)
{
	int i = rv < 0 ? -rv : rv;
	if (i >= HORA__ERR_COUNT_)
		return "unknown error";
	return err_text[i];
}

const char *hora_errname(int rv)
{
	int i = rv < 0 ? -rv : rv;
	if (i >= HORA__ERR_COUNT_)
		return "EUNKNOWN";
	return err_name[i];
}

void hora_error_clear(hora_error *err)
{
	if (err == NULL)
		return;
	err->code = 0;
	err->field[0] = '\0';
	err->msg[0] = '\0';
}

int hora_error_set(hora_error *err, int code, const char *field,
		   const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	snprintf(err->field, sizeof err->field, "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	return code;
}

void hora_error_prefix(hora_error *err, const char *field, const char *fmt,
		       ...)
{
	char old[HORA_ERROR_MSG_MAX];
	va_list ap;
	int n;

	if (err == NULL)
		return;
	memcpy(old, err->msg, sizeof old);
	va_start(ap, fmt);
	n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n + 2 < sizeof err->msg) {
		size_t used = (size_t)n;
		size_t room = sizeof err->msg - used;
		size_t olen = strnlen(old, sizeof old);
		err->msg[used] = ':';
		err->msg[used + 1] = ' ';
		used += 2;
		room -= 2;
		if (olen >= room)
			olen = room - 1;
		memcpy(err->msg + used, old, olen);
		err->msg[used + olen] = '\0';
	}
	if (field != NULL)
		snprintf(err->field, sizeof err->field, "%s", field);
}
