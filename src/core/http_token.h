/*
 * http_token.h - the RFC 9110 "token" (section 5.6.2): what a header
 * name, a method or a media-type part may consist of.  One check for the
 * HTTP server's response headers, the job validator's http.headers and
 * the executor's.  Pure functions.
 */
#ifndef HORA_CORE_HTTP_TOKEN_H
#define HORA_CORE_HTTP_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

/* tchar: ALPHA / DIGIT / one of !#$%&'*+-.^_`|~ (never NUL). */
bool http_token_char(unsigned char c);

/* s[0..n) is a token: at least one byte, every one a tchar. */
bool http_token_valid(const char *s, size_t n);

#endif
