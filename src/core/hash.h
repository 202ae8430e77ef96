/*
 * hash.h - FNV-1a (64-bit) over bytes, for places that need a fast,
 * stable, non-cryptographic hash: the parsed-schedule cache (sched/job.c)
 * and the jitter of an instant (cluster/plan.c, whose value every node
 * and every version must compute alike: do not change the constants).
 */
#ifndef HORA_CORE_HASH_H
#define HORA_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HORA_FNV1A64_INIT 1469598103934665603ull

/* Continue hash `h` (HORA_FNV1A64_INIT to start) over `n` bytes at `p`. */
static inline uint64_t hora_fnv1a64(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

#endif
