#include "core/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"

/* Small enough for a URL path, big enough that most answers and log
 * entries fit without a second realloc. */
#define BUF_MIN_CAP 256

int buf_reserve(hora_buf *b, size_t more)
{
	size_t need, cap;
	char *p;

	if (b->oom)
		return -HORA_ENOMEM;
	if (more > SIZE_MAX - 1 - b->len)
		goto oom;
	need = b->len + more + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if ((p = hora_realloc(b->p, cap)) == NULL)
		goto oom;
	b->p = p;
	b->cap = cap;
	return 0;
oom:
	b->oom = true;
	return -HORA_ENOMEM;
}

void buf_add(hora_buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) != 0)
		return;
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void buf_adds(hora_buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void buf_addc(hora_buf *b, char c)
{
	buf_add(b, &c, 1);
}

void buf_vprintf(hora_buf *b, const char *fmt, va_list ap)
{
	va_list aq;
	size_t room;
	int n;

	if (b->oom)
		return;
	room = b->cap > b->len ? b->cap - b->len : 0;
	va_copy(aq, ap);
	n = vsnprintf(room > 0 ? b->p + b->len : NULL, room, fmt, aq);
	va_end(aq);
	if (n < 0) {
		/* only an encoding error; the buffer is what it was */
		if (b->p != NULL)
			b->p[b->len] = '\0';
		b->oom = true;
		return;
	}
	if ((size_t)n >= room) {
		if (buf_reserve(b, (size_t)n) != 0)
			return;
		vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	}
	b->len += (size_t)n;
}

void buf_printf(hora_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

void buf_add_pct(hora_buf *b, const char *s, buf_pct_mode mode)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *run = s; /* bytes kept as they are, not yet appended */

	if (mode == BUF_PCT_SEGMENT &&
	    (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)) {
		buf_adds(b, s[1] != '\0' ? "%2E%2E" : "%2E");
		return;
	}
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		bool keep = mode == BUF_PCT_RAW_PATH
				    ? c > 0x20 && c < 0x7f && c != '#' && c != '?'
				    : unreserved(c);
		if (keep)
			continue;
		char e[3] = {'%', hex[c >> 4], hex[c & 15]};
		buf_add(b, run, (size_t)(s - run));
		buf_add(b, e, 3);
		run = s + 1;
	}
	buf_add(b, run, (size_t)(s - run));
}

const char *buf_str(const hora_buf *b)
{
	if (b->oom)
		return NULL;
	return b->p != NULL ? b->p : "";
}

void buf_clear(hora_buf *b)
{
	b->len = 0;
	b->oom = false;
	if (b->p != NULL)
		b->p[0] = '\0';
}

char *buf_take(hora_buf *b, size_t *len)
{
	char *p = b->oom ? NULL : b->p;

	if (b->oom)
		hora_free(b->p);
	if (len != NULL)
		*len = p != NULL ? b->len : 0;
	b->p = NULL;
	b->len = b->cap = 0;
	b->oom = false;
	return p;
}

void buf_free(hora_buf *b)
{
	hora_free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}
