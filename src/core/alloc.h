/*
 * alloc.h - every allocation in hora goes through these.
 *
 * They behave like their libc namesakes (NULL on failure, the caller
 * handles it) and add one hook for tests: hora_alloc_fail_after(n) makes
 * the (n+1)-th allocation from now fail, so each out-of-memory path can be
 * exercised (raft's test/lib/heap.c, beanstalkd's falloc).
 */
#ifndef HORA_CORE_ALLOC_H
#define HORA_CORE_ALLOC_H

#include <stddef.h>

void *hora_malloc(size_t size);
void *hora_calloc(size_t count, size_t size);
void *hora_realloc(void *ptr, size_t size);
void hora_free(void *ptr);
/* Copies of strings; NULL on allocation failure. */
char *hora_strdup(const char *s);
char *hora_strndup(const char *s, size_t n);

/* Test hook: let `n` more allocations succeed, then fail every one until
 * hora_alloc_fail_reset().  n < 0 disables the hook. */
void hora_alloc_fail_after(long n);
void hora_alloc_fail_reset(void);
/* Number of allocations refused by the hook since the last reset. */
long hora_alloc_failures(void);

#endif
