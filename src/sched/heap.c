#include "sched/heap.h"

#include "core/alloc.h"
#include "core/assert.h"
#include "core/err.h"

void heap_init(heap *h, heap_set_idx_fn set_idx)
{
	h->v = NULL;
	h->len = h->cap = 0;
	h->next_seq = 0;
	h->set_idx = set_idx;
}

void heap_free(heap *h)
{
	hora_free(h->v);
	h->v = NULL;
	h->len = h->cap = 0;
}

static inline int less(const heap_entry *a, const heap_entry *b)
{
	return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static inline void place(heap *h, uint32_t i, heap_entry e)
{
	h->v[i] = e;
	h->set_idx(e.item, i);
}

static void sift_up(heap *h, uint32_t i)
{
	heap_entry e = h->v[i];
	while (i > 0) {
		uint32_t parent = (i - 1) / 4;
		if (!less(&e, &h->v[parent]))
			break;
		place(h, i, h->v[parent]);
		i = parent;
	}
	place(h, i, e);
}

static void sift_down(heap *h, uint32_t i)
{
	heap_entry e = h->v[i];
	for (;;) {
		uint32_t first = 4 * i + 1;
		if (first >= h->len)
			break;
		uint32_t best = first;
		uint32_t end = first + 4 < h->len ? first + 4 : h->len;
		for (uint32_t c = first + 1; c < end; c++)
			if (less(&h->v[c], &h->v[best]))
				best = c;
		if (!less(&h->v[best], &e))
			break;
		place(h, i, h->v[best]);
		i = best;
	}
	place(h, i, e);
}

int heap_reserve(heap *h, uint32_t extra)
{
	if (h->len + (uint64_t)extra <= h->cap)
		return 0;
	uint64_t cap = h->cap ? h->cap : 64;
	while (cap < h->len + (uint64_t)extra)
		cap *= 2;
	if (cap >= HEAP_NONE)
		return -HORA_ENOMEM;
	heap_entry *v = hora_realloc(h->v, (size_t)cap * sizeof *v);
	if (v == NULL)
		return -HORA_ENOMEM;
	h->v = v;
	h->cap = (uint32_t)cap;
	return 0;
}

int heap_push(heap *h, int64_t key, void *item)
{
	int rv = heap_reserve(h, 1);
	if (rv != 0)
		return rv;
	h->v[h->len] = (heap_entry){key, h->next_seq++, item};
	h->len++;
	sift_up(h, h->len - 1);
	return 0;
}

void heap_remove(heap *h, uint32_t idx)
{
	HORA_ASSERT(idx < h->len);
	void *item = h->v[idx].item;
	h->len--;
	if (idx != h->len) {
		heap_entry last = h->v[h->len];
		h->v[idx] = last;
		if (idx > 0 && less(&last, &h->v[(idx - 1) / 4]))
			sift_up(h, idx);
		else
			sift_down(h, idx);
	}
	h->set_idx(item, HEAP_NONE);
}

void heap_update(heap *h, uint32_t idx, int64_t key)
{
	HORA_ASSERT(idx < h->len);
	int64_t old = h->v[idx].key;
	h->v[idx].key = key;
	if (key < old)
		sift_up(h, idx);
	else
		sift_down(h, idx);
}
