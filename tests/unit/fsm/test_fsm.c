/* Unit tests for src/fsm: entry codec, apply, snapshots, corruption. */
#include "../test_util.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/timefmt.h"
#include "fsm/entry.h"
#include "fsm/fsm.h"

#define STAMP INT64_C(1767225600000000) /* 2026-01-01T00:00:00Z */

static void spec_fill(job_spec *s, const char *name, const char *sched)
{
	job_spec_init(s);
	s->name = hora_strdup(name);
	s->schedule = hora_strdup(sched);
	s->timezone = hora_strdup("Europe/Berlin");
	s->queue = hora_strdup("mail");
	s->extra = hora_strdup("{\"payload\":{\"to\":\"x@y\"}}");
	s->extra_len = strlen(s->extra);
	s->labels = hora_malloc(9);
	memcpy(s->labels, "env\0prod\0", 9);
	s->labels_len = 9;
	s->priority = 7;
	s->overlap = JOB_OVERLAP_FORBID;
	s->misfire = JOB_MISFIRE_ALL;
	s->max_attempts = 4;
	job_spec_set_opt(s, JOB_OPT_TIMEOUT, 5 * HORA_USEC_PER_SEC);
}

static uint8_t *put_entry(const char *name, const char *sched, uint8_t flags,
			  hora_time stamp, size_t *len)
{
	job_spec s;
	uint8_t *buf;
	spec_fill(&s, name, sched);
	assert_int_equal(entry_encode_put(&s, 1, flags, stamp, &buf, len), 0);
	job_spec_free(&s);
	return buf;
}

static fsm_outcome apply1(fsm *f, uint8_t *buf, size_t len, uint64_t index)
{
	fsm_result *res = NULL;
	assert_int_equal(fsm_apply(f, buf, len, index, &res), 0);
	fsm_outcome o = res->count ? (fsm_outcome)res->outcome[0] : FSM_OK;
	hora_free(res);
	hora_free(buf);
	return o;
}

static void test_put_create_replace(void **state)
{
	(void)state;
	fsm *f;
	size_t len;
	uint8_t *b;
	assert_int_equal(fsm_new(&f), 0);

	b = put_entry("report", "0 3 * * *", 0, STAMP, &len);
	assert_int_equal(apply1(f, b, len, 1), FSM_CREATED);
	job *j = store_get(fsm_store(f), "report");
	assert_non_null(j);
	assert_true(j->created_at == STAMP && j->updated_at == STAMP);
	assert_int_equal(j->version, 1);
	assert_string_equal(j->queue, "mail");
	assert_string_equal(tz_name(j->tz), "Europe/Berlin");
	assert_int_equal(j->priority, 7);
	assert_int_equal(j->max_attempts, 4);
	/* 03:00 Berlin (CET) on 2026-01-01 is 02:00Z */
	char t[HORA_TIME_STRLEN];
	timefmt_format(j->next_run_at, 0, TIMEFMT_Z, t);
	assert_string_equal(t, "2026-01-01T02:00:00Z");
	assert_ptr_equal(store_first_due(fsm_store(f)), j);

	/* create-only on an existing name: conflict, nothing changes */
	b = put_entry("report", "0 4 * * *", ENTRY_PUT_CREATE_ONLY,
		      STAMP + 10, &len);
	assert_int_equal(apply1(f, b, len, 2), FSM_CONFLICT);
	assert_ptr_equal(store_get(fsm_store(f), "report"), j);
	assert_string_equal(job_schedule_text(j), "0 3 * * *");

	/* replace keeps created_at and bumps version and updated_at */
	b = put_entry("report", "0 4 * * *", 0, STAMP + 20, &len);
	assert_int_equal(apply1(f, b, len, 3), FSM_REPLACED);
	j = store_get(fsm_store(f), "report");
	assert_true(j->created_at == STAMP);
	assert_true(j->updated_at == STAMP + 20);
	assert_int_equal(j->version, 3);
	assert_int_equal(fsm_last_index(f), 3);
	assert_int_equal(store_count(fsm_store(f)), 1);

	/* pause, resume, delete */
	const char *names[] = {"report", "ghost"};
	assert_int_equal(entry_encode_names(ENTRY_SET_PAUSED, 1, names, 2,
					    STAMP + 30, &b, &len),
			 0);
	fsm_result *res;
	assert_int_equal(fsm_apply(f, b, len, 4, &res), 0);
	assert_int_equal(res->outcome[0], FSM_OK);
	assert_int_equal(res->outcome[1], FSM_NOT_FOUND);
	hora_free(res);
	hora_free(b);
	assert_true(j->flags & JOB_F_PAUSED);
	assert_true(j->next_run_at == HORA_TIME_NONE);
	assert_null(store_first_due(fsm_store(f)));

	assert_int_equal(entry_encode_names(ENTRY_SET_PAUSED, 0, names, 1,
					    STAMP + 40, &b, &len),
			 0);
	assert_int_equal(apply1(f, b, len, 5), FSM_OK);
	assert_false(j->flags & JOB_F_PAUSED);
	assert_true(j->next_run_at != HORA_TIME_NONE);

	assert_int_equal(entry_encode_names(ENTRY_DELETE_JOBS, 0, names, 1,
					    STAMP + 50, &b, &len),
			 0);
	assert_int_equal(apply1(f, b, len, 6), FSM_OK);
	assert_null(store_get(fsm_store(f), "report"));
	assert_int_equal(entry_encode_names(ENTRY_DELETE_JOBS, 0, names, 1,
					    STAMP + 60, &b, &len),
			 0);
	assert_int_equal(apply1(f, b, len, 7), FSM_NOT_FOUND);
	assert_true(fsm_clock(f) == STAMP + 60);
	fsm_free(f);
}

static void test_window_and_once(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	job_spec s;
	uint8_t *b;
	size_t len;
	spec_fill(&s, "late", "@every 1h");
	job_spec_set_opt(&s, JOB_OPT_START_AT, STAMP + 10 * 3600 * HORA_USEC_PER_SEC);
	job_spec_set_opt(&s, JOB_OPT_END_AT, STAMP + 20 * 3600 * HORA_USEC_PER_SEC);
	assert_int_equal(entry_encode_put(&s, 1, 0, STAMP, &b, &len), 0);
	job_spec_free(&s);
	assert_int_equal(apply1(f, b, len, 1), FSM_CREATED);
	job *j = store_get(fsm_store(f), "late");
	/* @every counts from acceptance; the first tick inside the window */
	assert_true(j->next_run_at == STAMP + 10 * 3600 * HORA_USEC_PER_SEC);
	assert_true(fsm_next_fire(j, STAMP + 20 * 3600 * HORA_USEC_PER_SEC) ==
		    HORA_TIME_NONE);
	j->run_count = 3;
	assert_true(fsm_next_fire(j, STAMP) != HORA_TIME_NONE);

	b = put_entry("once", "@after 90s", 0, STAMP, &len);
	assert_int_equal(apply1(f, b, len, 2), FSM_CREATED);
	j = store_get(fsm_store(f), "once");
	assert_true(j->next_run_at == STAMP + 90 * HORA_USEC_PER_SEC);
	fsm_free(f);
}

/* Apply a stream of entries to two state machines: same snapshot bytes. */
static void test_determinism_and_snapshot(void **state)
{
	(void)state;
	fsm *a, *b;
	assert_int_equal(fsm_new(&a), 0);
	assert_int_equal(fsm_new(&b), 0);
	srand(3);
	for (uint64_t i = 1; i <= 400; i++) {
		char name[32];
		uint8_t *buf;
		size_t len;
		snprintf(name, sizeof name, "j%d", rand() % 150);
		if (rand() % 5 == 0) {
			const char *n[] = {name};
			assert_int_equal(entry_encode_names(
						 ENTRY_DELETE_JOBS, 0, n, 1,
						 STAMP + (hora_time)i, &buf, &len),
					 0);
		} else {
			buf = put_entry(name, rand() % 2 ? "*/7 * * * *" : "@every 5s",
					0, STAMP + (hora_time)i * 1000, &len);
		}
		uint8_t *copy = hora_malloc(len);
		memcpy(copy, buf, len);
		apply1(a, buf, len, i);
		apply1(b, copy, len, i);
	}
	uint8_t *ia, *ib;
	size_t la, lb;
	assert_int_equal(entry_encode_node_info(2, "http://127.0.0.1:7080",
						STAMP, &ia, &la),
			 0);
	apply1(a, ia, la, 401);
	assert_int_equal(fsm_snapshot_encode(a, &ia, &la), 0);
	assert_int_equal(entry_encode_node_info(2, "http://127.0.0.1:7080",
						STAMP, &ib, &lb),
			 0);
	apply1(b, ib, lb, 401);
	assert_int_equal(fsm_snapshot_encode(b, &ib, &lb), 0);
	assert_int_equal(la, lb);
	assert_memory_equal(ia, ib, la);

	/* restore into a fresh machine: same bytes again */
	fsm *c;
	assert_int_equal(fsm_new(&c), 0);
	assert_int_equal(fsm_snapshot_restore(c, ia, la), 0);
	assert_int_equal(fsm_last_index(c), 401);
	assert_string_equal(fsm_node_api(c, 2), "http://127.0.0.1:7080");
	assert_int_equal(store_count(fsm_store(c)), store_count(fsm_store(a)));
	uint8_t *ic;
	size_t lc;
	assert_int_equal(fsm_snapshot_encode(c, &ic, &lc), 0);
	assert_int_equal(lc, la);
	assert_memory_equal(ic, ia, la);

	/* every truncation of the snapshot is rejected, state untouched */
	for (size_t cut = 0; cut < la; cut += 1 + cut / 50) {
		assert_int_not_equal(fsm_snapshot_restore(c, ia, cut), 0);
		assert_int_equal(fsm_last_index(c), 401);
	}
	/* a snapshot from a future format version is refused as such */
	ic[8] = 99;
	assert_int_equal(fsm_snapshot_restore(c, ic, lc), -HORA_EVERSION);
	hora_free(ic);
	hora_free(ia);
	hora_free(ib);
	fsm_free(a);
	fsm_free(b);
	fsm_free(c);
}

static void test_corrupt_entries(void **state)
{
	(void)state;
	fsm *f;
	size_t len;
	assert_int_equal(fsm_new(&f), 0);
	uint8_t *b = put_entry("x", "@daily", 0, STAMP, &len);
	/* every truncation fails cleanly and changes nothing */
	for (size_t cut = 0; cut < len; cut++) {
		int rv = fsm_apply(f, b, cut, 1, NULL);
		assert_true(rv == -HORA_ECORRUPT);
		assert_int_equal(store_count(fsm_store(f)), 0);
		assert_int_equal(fsm_last_index(f), 0);
	}
	/* flipped bytes never crash; they apply or are refused */
	for (size_t i = 0; i < len; i++) {
		uint8_t *c = hora_malloc(len);
		memcpy(c, b, len);
		c[i] ^= 0x5a;
		(void)fsm_apply(f, c, len, 2, NULL);
		hora_free(c);
	}
	/* newer format version / unknown type */
	b[1] = ENTRY_FORMAT_VERSION + 1;
	assert_int_equal(fsm_apply(f, b, len, 3, NULL), -HORA_EVERSION);
	b[1] = ENTRY_FORMAT_VERSION;
	b[2] = 200;
	assert_int_equal(fsm_apply(f, b, len, 3, NULL), -HORA_EVERSION);
	hora_free(b);
	fsm_free(f);
}

static void test_apply_oom(void **state)
{
	(void)state;
	size_t len;
	uint8_t *b = put_entry("x", "@daily", 0, STAMP, &len);
	for (long n = 0;; n++) {
		fsm *f;
		assert_int_equal(fsm_new(&f), 0);
		hora_alloc_fail_after(n);
		int rv = fsm_apply(f, b, len, 1, NULL);
		hora_alloc_fail_reset();
		if (rv == 0) {
			assert_non_null(store_get(fsm_store(f), "x"));
			fsm_free(f);
			break;
		}
		assert_int_equal(rv, -HORA_ENOMEM);
		assert_int_equal(store_count(fsm_store(f)), 0);
		fsm_free(f);
	}
	hora_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_create_replace),
		cmocka_unit_test(test_window_and_once),
		cmocka_unit_test(test_determinism_and_snapshot),
		cmocka_unit_test(test_corrupt_entries),
		cmocka_unit_test(test_apply_oom),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
