/*
 * heap.h - a 4-ary min-heap of (key, seq, item) with O(log n) update and
 * removal of any item.
 *
 * Items record their own position: the heap calls set_idx(item, i) on
 * every move and set_idx(item, HEAP_NONE) when an item leaves, so the
 * owner can remove or re-key an item without searching (beanstalkd's
 * heap.c, libuv's heap-inl.h).  Equal keys pop in insertion order (seq),
 * so every replica that applies the same log pops the same order.
 */
#ifndef HORA_SCHED_HEAP_H
#define HORA_SCHED_HEAP_H

#include <stddef.h>
#include <stdint.h>

#define HEAP_NONE UINT32_MAX

typedef struct heap_entry {
	int64_t key;
	uint64_t seq;
	void *item;
} heap_entry;

typedef void (*heap_set_idx_fn)(void *item, uint32_t idx);

typedef struct heap {
	heap_entry *v;
	uint32_t len;
	uint32_t cap;
	uint64_t next_seq;
	heap_set_idx_fn set_idx;
} heap;

void heap_init(heap *h, heap_set_idx_fn set_idx);
void heap_free(heap *h);

/* Make room for `extra` more entries, so the next pushes cannot fail;
 * -HORA_ENOMEM. */
int heap_reserve(heap *h, uint32_t extra);
/* Insert; -HORA_ENOMEM on failure (the heap is unchanged). */
int heap_push(heap *h, int64_t key, void *item);
/* The smallest entry, or NULL when empty. */
static inline const heap_entry *heap_top(const heap *h)
{
	return h->len ? &h->v[0] : NULL;
}
/* Remove the entry at idx (as recorded through set_idx). */
void heap_remove(heap *h, uint32_t idx);
/* Change the key of the entry at idx (keeps its seq). */
void heap_update(heap *h, uint32_t idx, int64_t key);
static inline uint32_t heap_len(const heap *h)
{
	return h->len;
}

#endif
