#include "sched/store.h"

#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/err.h"

typedef struct intern_entry {
	struct intern_entry *next;
	char s[];
} intern_entry;

struct store {
	job *root;
	size_t count;
	size_t job_bytes;
	heap fire;
	intern_entry *interned; /* few distinct queues: a list is enough */
	size_t intern_count;
};

static uint32_t name_hash(const char *s)
{
	/* FNV-1a, then a final mix so similar names spread */
	uint32_t h = 2166136261u;
	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 16777619u;
	}
	h ^= h >> 16;
	h *= 0x7feb352du;
	h ^= h >> 15;
	return h;
}

static void job_set_heap_idx(void *item, uint32_t idx)
{
	((job *)item)->heap_idx = idx;
}

int store_new(store **out)
{
	store *s = hora_calloc(1, sizeof *s);
	if (s == NULL)
		return -HORA_ENOMEM;
	heap_init(&s->fire, job_set_heap_idx);
	*out = s;
	return 0;
}

static void free_tree(job *j)
{
	while (j != NULL) {
		job *r = j->right;
		free_tree(j->left);
		job_free(j);
		j = r;
	}
}

void store_free(store *s)
{
	if (s == NULL)
		return;
	free_tree(s->root);
	heap_free(&s->fire);
	for (intern_entry *e = s->interned, *n; e; e = n) {
		n = e->next;
		hora_free(e);
	}
	hora_free(s);
}

size_t store_count(const store *s)
{
	return s->count;
}

size_t store_job_bytes(const store *s)
{
	return s->job_bytes;
}

job *store_get(const store *s, const char *name)
{
	job *j = s->root;
	while (j != NULL) {
		int c = strcmp(name, job_name(j));
		if (c == 0)
			return j;
		j = c < 0 ? j->left : j->right;
	}
	return NULL;
}

/* Split tree t into keys < key (*l) and keys > key (*r); a node equal to
 * key is returned (detached) or NULL. */
static job *split(job *t, const char *key, job **l, job **r)
{
	if (t == NULL) {
		*l = *r = NULL;
		return NULL;
	}
	int c = strcmp(key, job_name(t));
	job *eq;
	if (c == 0) {
		*l = t->left;
		*r = t->right;
		t->left = t->right = NULL;
		return t;
	}
	if (c < 0) {
		eq = split(t->left, key, l, &t->left);
		*r = t;
	} else {
		eq = split(t->right, key, &t->right, r);
		*l = t;
	}
	return eq;
}

/* Merge trees where every key of a < every key of b. */
static job *merge(job *a, job *b)
{
	if (a == NULL)
		return b;
	if (b == NULL)
		return a;
	if (a->treap_prio >= b->treap_prio) {
		a->right = merge(a->right, b);
		return a;
	}
	b->left = merge(a, b->left);
	return b;
}

/* Insert n (no equal key in t) into t. */
static job *insert(job *t, job *n)
{
	if (t == NULL)
		return n;
	if (n->treap_prio > t->treap_prio) {
		split(t, job_name(n), &n->left, &n->right);
		return n;
	}
	if (strcmp(job_name(n), job_name(t)) < 0)
		t->left = insert(t->left, n);
	else
		t->right = insert(t->right, n);
	return t;
}

static job *erase(job **t, const char *key)
{
	while (*t != NULL) {
		int c = strcmp(key, job_name(*t));
		if (c == 0) {
			job *found = *t;
			*t = merge(found->left, found->right);
			found->left = found->right = NULL;
			return found;
		}
		t = c < 0 ? &(*t)->left : &(*t)->right;
	}
	return NULL;
}

static void leave_heap(store *s, job *j)
{
	if (j->heap_idx != JOB_NOT_QUEUED)
		heap_remove(&s->fire, j->heap_idx);
}

void store_put(store *s, job *j, job **replaced)
{
	job *old;

	j->left = j->right = NULL;
	j->treap_prio = name_hash(job_name(j));
	old = erase(&s->root, job_name(j));
	if (old != NULL) {
		leave_heap(s, old);
		s->count--;
		s->job_bytes -= job_size(old);
	}
	s->root = insert(s->root, j);
	s->count++;
	s->job_bytes += job_size(j);
	*replaced = old;
}

job *store_remove(store *s, const char *name)
{
	job *j = erase(&s->root, name);
	if (j == NULL)
		return NULL;
	leave_heap(s, j);
	s->count--;
	s->job_bytes -= job_size(j);
	return j;
}

job *store_seek(const store *s, const char *key, bool inclusive)
{
	job *best = NULL;
	job *t = s->root;
	if (key == NULL) {
		while (t && t->left)
			t = t->left;
		return t;
	}
	while (t != NULL) {
		int c = strcmp(job_name(t), key);
		if (c > 0 || (c == 0 && inclusive)) {
			best = t;
			if (c == 0)
				break;
			t = t->left;
		} else {
			t = t->right;
		}
	}
	return best;
}

static int each(job *t, int (*fn)(job *, void *), void *ud)
{
	while (t != NULL) {
		int rv = each(t->left, fn, ud);
		if (rv != 0)
			return rv;
		job *r = t->right; /* fn may not free t, but read first */
		if ((rv = fn(t, ud)) != 0)
			return rv;
		t = r;
	}
	return 0;
}

int store_each(const store *s, int (*fn)(job *j, void *ud), void *ud)
{
	return each(s->root, fn, ud);
}

int store_set_next(store *s, job *j, hora_time next)
{
	j->next_run_at = next;
	if (next == HORA_TIME_NONE) {
		leave_heap(s, j);
		return 0;
	}
	if (j->heap_idx != JOB_NOT_QUEUED) {
		heap_update(&s->fire, j->heap_idx, next);
		return 0;
	}
	return heap_push(&s->fire, next, j);
}

int store_reserve(store *s, size_t extra)
{
	if (extra >= HEAP_NONE)
		return -HORA_ENOMEM;
	return heap_reserve(&s->fire, (uint32_t)extra);
}

uint32_t store_fire_heap(const store *s, const heap_entry **v)
{
	*v = s->fire.v;
	return s->fire.len;
}

job *store_first_due(const store *s)
{
	const heap_entry *e = heap_top(&s->fire);
	return e ? e->item : NULL;
}

const char *store_intern(store *s, const char *name)
{
	for (intern_entry *e = s->interned; e; e = e->next)
		if (strcmp(e->s, name) == 0)
			return e->s;
	size_t n = strlen(name);
	intern_entry *e = hora_malloc(sizeof *e + n + 1);
	if (e == NULL)
		return NULL;
	memcpy(e->s, name, n + 1);
	e->next = s->interned;
	s->interned = e;
	s->intern_count++;
	return e->s;
}

size_t store_intern_count(const store *s)
{
	return s->intern_count;
}

int store_each_intern(const store *s, int (*fn)(const char *name, void *ud),
		      void *ud)
{
	for (intern_entry *e = s->interned; e; e = e->next) {
		int rv = fn(e->s, ud);
		if (rv != 0)
			return rv;
	}
	return 0;
}
