/*
 * utf8.h - the one UTF-8 validator (RFC 3629).
 *
 * Valid means: no overlong forms, no UTF-16 surrogates (U+D800-DFFF), no
 * code point past U+10FFFF, no sequence cut short by the end of the
 * input.  Whether NUL counts as valid is the caller's explicit choice:
 * JSON text from jansson may hold it (UTF8_NUL_OK), text stored in log
 * entries or handed to jansson's C-string API may not (UTF8_NUL_BAD).
 *
 * Pure functions: no allocation, no state.
 */
#ifndef HORA_CORE_UTF8_H
#define HORA_CORE_UTF8_H

#include <stddef.h>

typedef enum {
	UTF8_NUL_BAD = 0, /* a NUL byte is invalid */
	UTF8_NUL_OK = 1,  /* a NUL byte is a valid one-byte sequence */
} utf8_nul;

/* Length (1-4) of the valid sequence starting at s[0] (n >= 1 bytes
 * available), or 0 when s[0] does not start one. */
size_t utf8_seq(const void *s, size_t n, utf8_nul nul);

/* Replace, in place, every byte of s[0..n) that does not start a valid
 * sequence with '?' (a cut character becomes one '?' per byte). */
void utf8_scrub(char *s, size_t n, utf8_nul nul);

/* Room utf8_repair needs for n bytes of input. */
#define UTF8_REPAIR_MAX(n) ((n) * 3)

/*
 * Copy s[0..n) to out as valid UTF-8 without NUL (what jansson and the
 * log entries take), for text that can be anything, such as a command's
 * output: every byte that does not start a valid sequence, NUL
 * included, becomes U+FFFD; continuation bytes at the very start (up to
 * three: a character cut by keeping only a tail) are dropped.  `out`
 * has room for UTF8_REPAIR_MAX(n) bytes; returns the length written (no
 * terminator).
 */
size_t utf8_repair(const void *s, size_t n, char *out);

#endif
