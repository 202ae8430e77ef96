/*
 * buf.h - the growable byte buffer: one for the whole code base.
 *
 * A hora_buf is a plain value (zero-initialise it: HORA_BUF_INIT or
 * `= {0}`), grown by doubling through hora_realloc.  The first failed
 * allocation latches `oom`: every later append is ignored, so a sequence
 * of appends needs one check at the end (buf_str() returns NULL then).
 * The bytes are always '\0'-terminated once anything was appended (the
 * terminator is not counted in len), so a buffer of text is a C string.
 *
 * Ownership: the buffer owns `p` (hora_malloc); buf_free() releases it,
 * buf_take() hands it to the caller (who frees it with hora_free).
 * No locking: a buffer belongs to one thread.
 *
 * Percent-encoding (RFC 3986) lives here too, as an append mode, so that
 * URLs are built one way everywhere (see buf_add_pct).
 */
#ifndef HORA_CORE_BUF_H
#define HORA_CORE_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct hora_buf {
	char *p;    /* NULL until the first append; then '\0'-terminated */
	size_t len; /* bytes held, the terminator not counted */
	size_t cap; /* bytes allocated */
	bool oom;   /* an allocation failed: appends are ignored */
} hora_buf;

#define HORA_BUF_INIT {NULL, 0, 0, false}

/* Make room for `more` bytes after len (plus the terminator).  0, or
 * -HORA_ENOMEM (and oom latches) when the room cannot be had. */
int buf_reserve(hora_buf *b, size_t more);

void buf_add(hora_buf *b, const void *p, size_t n);
void buf_adds(hora_buf *b, const char *s);
void buf_addc(hora_buf *b, char c);
void buf_printf(hora_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_vprintf(hora_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* How buf_add_pct encodes (uppercase %XX in every mode). */
typedef enum {
	/* A query name or value: every byte but the RFC 3986 unreserved
	 * ones (A-Z a-z 0-9 - . _ ~) becomes %XX. */
	BUF_PCT_COMPONENT = 0,
	/* A path segment: as COMPONENT, and a whole segment "." or ".."
	 * becomes "%2E" / "%2E%2E" (URL normalisation, libcurl's included,
	 * would otherwise take it out of the path). */
	BUF_PCT_SEGMENT,
	/* A raw path passed on as received: its own escapes and '/' are
	 * kept, only bytes a URL cannot carry raw are encoded (controls,
	 * space, '#', '?', DEL and every byte >= 0x80). */
	BUF_PCT_RAW_PATH,
} buf_pct_mode;

void buf_add_pct(hora_buf *b, const char *s, buf_pct_mode mode);

/* The text built so far: "" when nothing was appended, NULL after an
 * allocation failure. */
const char *buf_str(const hora_buf *b);

/* Forget the contents (len 0, oom cleared), keep the memory. */
void buf_clear(hora_buf *b);

/* Hand the bytes over ('\0'-terminated; NULL when nothing was appended or
 * after an allocation failure, which frees them); *len (may be NULL)
 * gets their count.  The buffer is empty afterwards. */
char *buf_take(hora_buf *b, size_t *len);

void buf_free(hora_buf *b);

#endif
