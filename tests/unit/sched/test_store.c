/* Unit tests for src/sched: heap, job records, the store. */
#include "../test_util.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "sched/heap.h"
#include "sched/job.h"
#include "sched/store.h"

typedef struct item {
	uint32_t idx;
	int64_t key;
} item;

static void item_set_idx(void *p, uint32_t idx)
{
	((item *)p)->idx = idx;
}

static void test_heap_order_and_remove(void **state)
{
	(void)state;
	enum { N = 5000 };
	static item items[N];
	heap h;
	heap_init(&h, item_set_idx);
	srand(7);
	for (int i = 0; i < N; i++) {
		items[i].key = rand() % 1000;
		assert_int_equal(heap_push(&h, items[i].key, &items[i]), 0);
	}
	/* remove every third, re-key every fifth */
	for (int i = 0; i < N; i += 3)
		heap_remove(&h, items[i].idx);
	for (int i = 1; i < N; i += 5) {
		if (items[i].idx == HEAP_NONE)
			continue;
		items[i].key = rand() % 1000;
		heap_update(&h, items[i].idx, items[i].key);
	}
	int64_t last = -1;
	uint64_t last_seq = 0;
	uint32_t popped = 0;
	while (heap_len(&h) > 0) {
		const heap_entry *e = heap_top(&h);
		item *it = e->item;
		assert_true(e->key >= last);
		if (e->key == last)
			assert_true(e->seq > last_seq); /* ties: insertion order */
		assert_true(e->key == it->key);
		last = e->key;
		last_seq = e->seq;
		heap_remove(&h, it->idx);
		assert_int_equal(it->idx, HEAP_NONE);
		popped++;
	}
	assert_int_equal(popped, N - (N + 2) / 3);
	heap_free(&h);
}

static job *make_job(const char *name, const char *queue)
{
	job_spec spec;
	job *j;
	job_spec_init(&spec);
	spec.name = (char *)name;
	spec.schedule = (char *)"*/5 * * * *";
	spec.labels = (char *)"env\0prod\0team\0core\0";
	spec.labels_len = 19;
	spec.extra = (char *)"{\"payload\":1}";
	spec.extra_len = 13;
	job_spec_set_opt(&spec, JOB_OPT_TIMEOUT, 30000000);
	job_spec_set_opt(&spec, JOB_OPT_MAX_RUNS, 3);
	assert_int_equal(job_new(&spec, queue, tz_utc(), &j), 0);
	return j;
}

static void test_job_record(void **state)
{
	(void)state;
	job *j = make_job("nightly.backup", "default");
	assert_string_equal(job_name(j), "nightly.backup");
	assert_string_equal(job_schedule_text(j), "*/5 * * * *");
	assert_string_equal(job_extra(j), "{\"payload\":1}");
	assert_string_equal(job_label(j, "team"), "core");
	assert_null(job_label(j, "nope"));
	assert_true(job_opt_get(j, JOB_OPT_TIMEOUT, 0) == 30000000);
	assert_true(job_opt_get(j, JOB_OPT_MAX_RUNS, 0) == 3);
	assert_true(job_opt_get(j, JOB_OPT_JITTER, 77) == 77);
	assert_false(job_has_opt(j, JOB_OPT_END_AT));
	job_spec view;
	job_spec_view(j, &view);
	assert_string_equal(view.name, "nightly.backup");
	assert_int_equal(view.opt_mask,
			 (1 << JOB_OPT_TIMEOUT) | (1 << JOB_OPT_MAX_RUNS));
	job_free(j);

	hora_error err;
	assert_int_equal(job_name_check("a-b_c.9", "name", &err), 0);
	assert_int_equal(job_name_check("", "name", &err), -HORA_EINVAL);
	assert_contains(err.msg, "must not be empty");
	assert_int_equal(job_name_check("a b", "name", &err), -HORA_EINVAL);
	assert_contains(err.msg, "outside [A-Za-z0-9._-] at position 2");
	char longname[202];
	memset(longname, 'x', 201);
	longname[201] = '\0';
	assert_int_equal(job_name_check(longname, "name", &err), -HORA_EINVAL);
	assert_contains(err.msg, "201 characters long; at most 200");

	hora_alloc_fail_after(0);
	job_spec spec;
	job_spec_init(&spec);
	spec.name = (char *)"x";
	spec.schedule = (char *)"@daily";
	assert_int_equal(job_new(&spec, "q", tz_utc(), &j), -HORA_ENOMEM);
	hora_alloc_fail_reset();
}

static int collect(job *j, void *ud)
{
	char *buf = ud;
	strcat(buf, job_name(j));
	strcat(buf, ",");
	return 0;
}

static void test_store_order_and_seek(void **state)
{
	(void)state;
	store *s;
	assert_int_equal(store_new(&s), 0);
	const char *q = store_intern(s, "default");
	assert_ptr_equal(q, store_intern(s, "default"));
	const char *names[] = {"m", "c", "x", "a", "e", "ab", "z", "b"};
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		job *old;
		store_put(s, make_job(names[i], q), &old);
		assert_null(old);
	}
	assert_int_equal(store_count(s), 8);
	char buf[128] = "";
	store_each(s, collect, buf);
	assert_string_equal(buf, "a,ab,b,c,e,m,x,z,");
	assert_string_equal(job_name(store_seek(s, NULL, false)), "a");
	assert_string_equal(job_name(store_seek(s, "ab", false)), "b");
	assert_string_equal(job_name(store_seek(s, "ab", true)), "ab");
	assert_string_equal(job_name(store_seek(s, "d", true)), "e");
	assert_null(store_seek(s, "z", false));

	/* replace hands back the old record */
	job *old;
	job *n = make_job("c", q);
	store_put(s, n, &old);
	assert_non_null(old);
	assert_true(old != n);
	job_free(old);
	assert_ptr_equal(store_get(s, "c"), n);
	assert_int_equal(store_count(s), 8);

	job *r = store_remove(s, "m");
	assert_non_null(r);
	job_free(r);
	assert_null(store_remove(s, "m"));
	assert_null(store_get(s, "m"));
	assert_int_equal(store_count(s), 7);

	/* fire heap */
	assert_int_equal(store_set_next(s, store_get(s, "x"), 300), 0);
	assert_int_equal(store_set_next(s, store_get(s, "a"), 100), 0);
	assert_int_equal(store_set_next(s, store_get(s, "b"), 200), 0);
	assert_string_equal(job_name(store_first_due(s)), "a");
	assert_int_equal(store_set_next(s, store_get(s, "a"), 400), 0);
	assert_string_equal(job_name(store_first_due(s)), "b");
	r = store_remove(s, "b");
	job_free(r);
	assert_string_equal(job_name(store_first_due(s)), "x");
	assert_int_equal(store_set_next(s, store_get(s, "x"), HORA_TIME_NONE),
			 0);
	assert_string_equal(job_name(store_first_due(s)), "a");
	store_free(s);
}

static void test_store_many(void **state)
{
	(void)state;
	enum { N = 20000 };
	store *s;
	char name[32];
	assert_int_equal(store_new(&s), 0);
	const char *q = store_intern(s, "default");
	for (int i = 0; i < N; i++) {
		job *old;
		snprintf(name, sizeof name, "job-%07d", (i * 7919) % N);
		store_put(s, make_job(name, q), &old);
		assert_null(old);
	}
	/* walk with a cursor, as pagination does */
	int seen = 0;
	const char *cursor = NULL;
	for (job *j = store_seek(s, NULL, false); j;
	     j = store_seek(s, cursor, false)) {
		snprintf(name, sizeof name, "job-%07d", seen);
		assert_string_equal(job_name(j), name);
		cursor = job_name(j);
		seen++;
	}
	assert_int_equal(seen, N);
	for (int i = 0; i < N; i += 2) {
		snprintf(name, sizeof name, "job-%07d", i);
		job_free(store_remove(s, name));
	}
	assert_int_equal(store_count(s), N / 2);
	store_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heap_order_and_remove),
		cmocka_unit_test(test_job_record),
		cmocka_unit_test(test_store_order_and_seek),
		cmocka_unit_test(test_store_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
