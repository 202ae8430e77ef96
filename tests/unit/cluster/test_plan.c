/*
 * test_plan.c - src/cluster/plan.c, the leader's planner, on a state
 * machine fed by hand: the look-ahead window, one-shot jobs, the three
 * misfire policies and jitter.  (The cluster simulation runs the same
 * planner on every node of a faulty cluster.)
 */
#include "../test_util.h"

#include <stdio.h>

#include "cluster/plan.h"
#include "core/alloc.h"
#include "fsm/fsm.h"

#define SEC HORA_USEC_PER_SEC
#define MS HORA_USEC_PER_MS
#define T0 ((hora_time)1700000000 * SEC)

static uint64_t idx;
static plan p;

static void apply(fsm *f, uint8_t *buf, size_t len)
{
	assert_int_equal(fsm_apply(f, buf, len, ++idx, NULL), 0);
	hora_free(buf);
}

static void put(fsm *f, const char *name, const char *sched, uint8_t misfire,
		int64_t jitter, hora_time stamp)
{
	job_spec s;
	uint8_t *buf;
	size_t len;
	job_spec_init(&s);
	s.name = hora_strdup(name);
	s.schedule = hora_strdup(sched);
	s.misfire = misfire;
	if (jitter)
		job_spec_set_opt(&s, JOB_OPT_JITTER, jitter);
	assert_int_equal(entry_encode_put(&s, 1, 0, stamp, &buf, &len), 0);
	job_spec_free(&s);
	apply(f, buf, len);
}

/* Apply the plan as the leader would propose it. */
static void commit(fsm *f)
{
	uint8_t *buf;
	size_t len;
	assert_int_equal(entry_encode_fire(p.items, p.n, p.now, &buf, &len), 0);
	apply(f, buf, len);
}

static void test_window_and_order(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	put(f, "fast", "@every 250ms", 0, 0, T0);
	put(f, "slow", "@every 1s", 0, 0, T0);
	put(f, "later", "@every 10s", 0, 0, T0);
	plan_make(&p, fsm_store(f), T0);
	assert_true(p.horizon == T0 + PLAN_LOOKAHEAD_MS * MS);
	assert_int_equal(p.misfires, 0);
	/* fast: 250, 500, 750, 1000 ms; slow: 1000 ms; later: none */
	size_t nfast = 0, nslow = 0;
	hora_time last = 0;
	for (size_t i = 0; i < p.n; i++) {
		fire_item *it = &p.items[i];
		assert_true(it->scheduled_at == it->expect);
		assert_true(it->due_at == it->scheduled_at);
		assert_true(it->resume_after == it->scheduled_at);
		assert_int_equal(it->flags, 0);
		assert_true(it->scheduled_at <= p.horizon);
		if (strcmp(it->job, "fast") == 0) {
			/* one job's instants in order, each expecting the
			 * instant the item before it moves to */
			assert_true(it->scheduled_at == T0 + (hora_time)(nfast + 1) * 250 * MS);
			assert_true(it->scheduled_at > last);
			last = it->scheduled_at;
			nfast++;
		} else {
			assert_string_equal(it->job, "slow");
			nslow++;
		}
	}
	assert_int_equal(nfast, 4);
	assert_int_equal(nslow, 1);
	/* committed, the same pass plans nothing: every instant moved on */
	commit(f);
	plan_make(&p, fsm_store(f), T0);
	assert_int_equal(p.n, 0);
	/* and a replay of it would be refused by apply (expect) */
	fsm_free(f);
}

static void test_one_shot_fires_once(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	put(f, "once", "@after 500ms", 0, 0, T0);
	plan_make(&p, fsm_store(f), T0);
	assert_int_equal(p.n, 1);
	assert_true(p.items[0].scheduled_at == T0 + 500 * MS);
	commit(f);
	plan_make(&p, fsm_store(f), T0 + 10 * SEC);
	assert_int_equal(p.n, 0);
	fsm_free(f);
}

static void test_misfire_policies(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	put(f, "skip", "@every 1s", JOB_MISFIRE_SKIP, 0, T0);
	put(f, "once", "@every 1s", JOB_MISFIRE_ONCE, 0, T0);
	put(f, "all", "@every 1s", JOB_MISFIRE_ALL, 0, T0);
	/* no leader for 10.5 s: instants 1..10 s were missed */
	hora_time now = T0 + 10500 * MS;
	plan_make(&p, fsm_store(f), now);
	assert_int_equal(p.misfires, 3);
	size_t nall = 0;
	for (size_t i = 0; i < p.n; i++) {
		fire_item *it = &p.items[i];
		assert_true(it->expect == T0 + SEC || !strcmp(it->job, "all"));
		if (strcmp(it->job, "skip") == 0) {
			/* moves the schedule only, past now */
			assert_int_equal(it->flags, FIRE_NO_RUN);
			assert_true(it->resume_after == now);
		} else if (strcmp(it->job, "once") == 0) {
			/* one run, for the latest missed instant */
			assert_int_equal(it->flags, 0);
			assert_true(it->scheduled_at == T0 + 10 * SEC);
			assert_true(it->resume_after == now);
		} else {
			/* each missed instant in order, then the window */
			nall++;
			assert_true(it->scheduled_at == T0 + (hora_time)nall * SEC);
			assert_true(it->expect == it->scheduled_at);
		}
	}
	assert_int_equal(nall, 11); /* 1..10 s missed, 11 s in the window */
	commit(f);
	plan_make(&p, fsm_store(f), now);
	assert_int_equal(p.misfires, 0);
	for (size_t i = 0; i < p.n; i++)
		assert_true(p.items[i].scheduled_at > now);
	fsm_free(f);
}

static void test_jitter_is_stable_and_bounded(void **state)
{
	(void)state;
	/* pinned: a change moves every jittered run of every job */
	assert_int_equal(plan_jitter("backup", T0, SEC), 221360);
	assert_int_equal(plan_jitter("backup", T0 + SEC, SEC), 860627);
	assert_int_equal(plan_jitter("report", T0, 250 * MS), 77333);
	assert_int_equal(plan_jitter("backup", T0, 0), 0);
	assert_int_equal(plan_jitter("backup", T0, -5), 0);
	for (int i = 0; i < 1000; i++) {
		int64_t j = plan_jitter("x", T0 + i * SEC, 300 * MS);
		assert_true(j >= 0 && j <= 300 * MS);
	}

	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	put(f, "jit", "@every 1s", 0, 400 * MS, T0);
	plan_make(&p, fsm_store(f), T0);
	assert_int_equal(p.n, 1);
	job *j = store_get(fsm_store(f), "jit");
	assert_true(p.items[0].scheduled_at == T0 + SEC);
	assert_true(p.items[0].due_at ==
		    T0 + SEC + plan_jitter("jit", T0 + SEC, 400 * MS));
	assert_true(p.items[0].due_at == plan_due_at(j, T0 + SEC));
	fsm_free(f);
}

static void test_items_max(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	for (int i = 0; i < 40; i++) {
		char name[16];
		snprintf(name, sizeof name, "j%d", i);
		put(f, name, "@every 10ms", 0, 0, T0);
	}
	/* 40 jobs x 64 instants each would be 2560 items */
	plan_make(&p, fsm_store(f), T0);
	assert_int_equal(p.n, PLAN_ITEMS_MAX);
	fsm_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_and_order),
		cmocka_unit_test(test_one_shot_fires_once),
		cmocka_unit_test(test_misfire_policies),
		cmocka_unit_test(test_jitter_is_stable_and_bounded),
		cmocka_unit_test(test_items_max),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
