#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

/* Countdown for fault injection: -1 means off.  Not thread-safe; hora's
 * core runs on one thread and tests drive it from one thread. */
static long fail_countdown = -1;
static long fail_count;

static int alloc_should_fail(void)
{
	if (fail_countdown < 0)
		return 0;
	if (fail_countdown == 0) {
		fail_count++;
		return 1;
	}
	fail_countdown--;
	return 0;
}

void *hora_malloc(size_t size)
{
	if (alloc_should_fail())
		return NULL;
	return malloc(size ? size : 1);
}

void *hora_calloc(size_t count, size_t size)
{
	if (alloc_should_fail())
		return NULL;
	return calloc(count ? count : 1, size ? size : 1);
}

void *hora_realloc(void *ptr, size_t size)
{
	if (alloc_should_fail())
		return NULL;
	return realloc(ptr, size ? size : 1);
}

void hora_free(void *ptr)
{
	free(ptr);
}

char *hora_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = hora_malloc(len + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *hora_strdup(const char *s)
{
	return hora_strndup(s, strlen(s));
}

void hora_alloc_fail_after(long n)
{
	fail_countdown = n;
	fail_count = 0;
}

void hora_alloc_fail_reset(void)
{
	fail_countdown = -1;
}

long hora_alloc_failures(void)
{
	return fail_count;
}
