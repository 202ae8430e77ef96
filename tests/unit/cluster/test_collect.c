/*
 * test_collect.c - src/cluster/collect.c: which finished one-shot jobs
 * the leader deletes, on a state machine fed by hand.
 */
#include "../test_util.h"

#include <stdio.h>

#include "cluster/collect.h"
#include "core/alloc.h"
#include "fsm/fsm.h"

#define SEC HORA_USEC_PER_SEC
#define T0 ((hora_time)1700000000 * SEC)

static uint64_t idx;

static void apply(fsm *f, uint8_t *buf, size_t len)
{
	assert_int_equal(fsm_apply(f, buf, len, ++idx, NULL), 0);
	hora_free(buf);
}

static void put(fsm *f, const char *name, const char *sched)
{
	job_spec s;
	uint8_t *buf;
	size_t len;
	job_spec_init(&s);
	s.name = hora_strdup(name);
	s.schedule = hora_strdup(sched);
	assert_int_equal(entry_encode_put(&s, 1, 0, T0, &buf, &len), 0);
	job_spec_free(&s);
	apply(f, buf, len);
}

/* Fire job `name` at `at`; returns the run id. */
static uint64_t fire(fsm *f, const char *name, hora_time at)
{
	uint8_t *buf;
	size_t len;
	fire_item it = {name, at, at, at, at, 0};
	assert_int_equal(entry_encode_fire(&it, 1, at, &buf, &len), 0);
	apply(f, buf, len);
	return fsm_run_id(idx, 0);
}

static void finish(fsm *f, uint64_t id, hora_time at)
{
	uint8_t *buf;
	size_t len;
	lease_item l = {id, 1, "w", at + 60 * SEC};
	complete_item c = {id, 1, "w", RUN_SUCCEEDED, 0, NULL, 0, NULL};
	assert_int_equal(entry_encode_lease(&l, 1, at, &buf, &len), 0);
	apply(f, buf, len);
	assert_int_equal(entry_encode_complete(&c, 1, at, &buf, &len), 0);
	apply(f, buf, len);
}

static void test_finished_one_shots_after_retention(void **state)
{
	(void)state;
	fsm *f;
	const char *names[8];
	assert_int_equal(fsm_new(&f), 0);
	store *st = fsm_store(f);
	put(f, "done", "@after 1s");
	put(f, "running", "@after 1s");
	put(f, "pending", "@after 1h");
	put(f, "repeat", "@every 1s");
	uint64_t d = fire(f, "done", T0 + SEC);
	fire(f, "running", T0 + SEC);
	finish(f, d, T0 + 5 * SEC);

	job *jd = store_get(st, "done");
	assert_true(jd->flags & JOB_F_DONE);
	/* kept until its last run ended, plus the retention */
	assert_false(collect_due(jd, T0 + 5 * SEC - 1));
	assert_true(collect_due(jd, T0 + 5 * SEC));
	/* fired but its run not finished; not fired; not one-shot */
	assert_false(collect_due(store_get(st, "running"), T0 + 3600 * SEC));
	assert_false(collect_due(store_get(st, "pending"), T0 + 3600 * SEC));
	assert_false(collect_due(store_get(st, "repeat"), T0 + 3600 * SEC));

	assert_int_equal(collect_scan(st, T0 + 4 * SEC, names, 8), 0);
	assert_int_equal(collect_scan(st, T0 + 3600 * SEC, names, 8), 1);
	assert_string_equal(names[0], "done");
	fsm_free(f);
}

static void test_scan_stops_at_max_in_name_order(void **state)
{
	(void)state;
	fsm *f;
	const char *names[4];
	assert_int_equal(fsm_new(&f), 0);
	for (int i = 0; i < 6; i++) {
		char name[16];
		snprintf(name, sizeof name, "once%d", i);
		put(f, name, "@after 1s");
		finish(f, fire(f, name, T0 + SEC), T0 + 2 * SEC);
	}
	store *st = fsm_store(f);
	assert_int_equal(collect_scan(st, T0 + 2 * SEC, names, 4), 4);
	for (int i = 0; i < 4; i++) {
		char want[16];
		snprintf(want, sizeof want, "once%d", i);
		assert_string_equal(names[i], want);
	}
	assert_int_equal(collect_scan(st, T0 + 2 * SEC, names, 0), 0);
	fsm_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_finished_one_shots_after_retention),
		cmocka_unit_test(test_scan_stops_at_max_in_name_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
