/*
 * store.h - the set of jobs: ordered by name, and by next fire instant.
 *
 * Names live in a treap whose priorities are hashes of the names, so the
 * shape is a pure function of the set of names (replicas agree, and no
 * randomness is needed) and listing in name order with a cursor costs
 * O(log n) per step.  (DESIGN.md suggests an open-addressing hash; the
 * treap is chosen because pagination by name needs order: see
 * docs/store.md.)  Fire instants live in a 4-ary heap indexed from the
 * job (heap.h).  Queue names are interned here.
 *
 * Ownership: the store owns the jobs it holds; store_put takes ownership
 * of the new job and hands back the replaced one, store_remove hands back
 * the removed one; the caller frees those.
 */
#ifndef HORA_SCHED_STORE_H
#define HORA_SCHED_STORE_H

#include <stddef.h>

#include "sched/heap.h"
#include "sched/job.h"

typedef struct store store;

int store_new(store **out);
/* Frees the store and every job in it. */
void store_free(store *s);

size_t store_count(const store *s);
/* Bytes held by job records (not counting the store's own arrays). */
size_t store_job_bytes(const store *s);

job *store_get(const store *s, const char *name);

/*
 * Insert `j`, replacing a job of the same name (returned in *replaced, or
 * NULL).  The replaced job leaves the fire heap.  Never fails: the treap
 * needs no allocation.
 */
void store_put(store *s, job *j, job **replaced);

/* Remove and return the job `name` (NULL if absent); it leaves the heap. */
job *store_remove(store *s, const char *name);

/* First job (name order) whose name is > key, or >= key when `inclusive`;
 * key NULL means the first job. */
job *store_seek(const store *s, const char *key, bool inclusive);

/* Call fn for every job in name order; stops when fn returns non-zero and
 * returns that value. */
int store_each(const store *s, int (*fn)(job *j, void *ud), void *ud);

/* Set the job's next fire instant (HORA_TIME_NONE: not queued) and
 * place it in the fire heap.  -HORA_ENOMEM if the heap cannot grow (the
 * job is then not queued). */
int store_set_next(store *s, job *j, hora_time next);

/* Make room in the fire heap for `extra` more jobs so that the next
 * store_set_next calls cannot fail (all-or-nothing batches). */
int store_reserve(store *s, size_t extra);

/* The fire heap's array (read-only), for walking every job due by some
 * instant without popping: returns its length. */
uint32_t store_fire_heap(const store *s, const heap_entry **v);

/* The job that fires first, or NULL. */
job *store_first_due(const store *s);

/* Interned copy of a queue name; NULL on allocation failure.  Interned
 * strings live as long as the store. */
const char *store_intern(store *s, const char *name);
size_t store_intern_count(const store *s);
/* Call fn for every interned name; stops on non-zero. */
int store_each_intern(const store *s, int (*fn)(const char *name, void *ud),
		      void *ud);

#endif
