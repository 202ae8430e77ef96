/* Unit tests for runs in the state machine: FIRE (exactly once per
 * instant, overlap), LEASE, COMPLETE (retries), EXPIRE, retention,
 * snapshots with runs, determinism. */
#include "../test_util.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "fsm/entry.h"
#include "fsm/fsm.h"

#define T0 INT64_C(1767225600000000) /* 2026-01-01T00:00:00Z */
#define SEC HORA_USEC_PER_SEC

static uint64_t next_index;

static fsm_result *apply_buf(fsm *f, uint8_t *buf, size_t len)
{
	fsm_result *res = NULL;
	int rv = fsm_apply(f, buf, len, ++next_index, &res);
	hora_free(buf);
	assert_int_equal(rv, 0);
	return res;
}

static void put(fsm *f, const char *name, const char *sched, uint8_t overlap,
		uint16_t attempts, hora_time stamp)
{
	job_spec s;
	uint8_t *buf;
	size_t len;
	job_spec_init(&s);
	s.name = hora_strdup(name);
	s.schedule = hora_strdup(sched);
	s.overlap = overlap;
	s.max_attempts = attempts;
	assert_int_equal(entry_encode_put(&s, 1, 0, stamp, &buf, &len), 0);
	job_spec_free(&s);
	hora_free(apply_buf(f, buf, len));
}

/* Fire the job's current next instant; returns the outcome. */
static fsm_outcome fire(fsm *f, const char *name, hora_time expect,
			hora_time stamp, uint64_t *run_id)
{
	fire_item it = {name, expect, expect, expect, expect, 0};
	uint8_t *buf;
	size_t len;
	assert_int_equal(entry_encode_fire(&it, 1, stamp, &buf, &len), 0);
	uint64_t index = next_index + 1;
	fsm_result *res = apply_buf(f, buf, len);
	fsm_outcome o = (fsm_outcome)res->outcome[0];
	hora_free(res);
	if (run_id)
		*run_id = fsm_run_id(index, 0);
	return o;
}

static fsm_outcome lease(fsm *f, uint64_t id, uint32_t attempt,
			 const char *worker, hora_time stamp)
{
	lease_item it = {id, attempt, worker, stamp + 10 * SEC};
	uint8_t *buf;
	size_t len;
	assert_int_equal(entry_encode_lease(&it, 1, stamp, &buf, &len), 0);
	fsm_result *res = apply_buf(f, buf, len);
	fsm_outcome o = (fsm_outcome)res->outcome[0];
	hora_free(res);
	return o;
}

static fsm_outcome complete(fsm *f, uint64_t id, uint32_t attempt,
			    const char *worker, uint8_t status,
			    hora_time stamp)
{
	complete_item it = {id, attempt, worker, status, 0, "out", 3, NULL};
	uint8_t *buf;
	size_t len;
	assert_int_equal(entry_encode_complete(&it, 1, stamp, &buf, &len), 0);
	fsm_result *res = apply_buf(f, buf, len);
	fsm_outcome o = (fsm_outcome)res->outcome[0];
	hora_free(res);
	return o;
}

static fsm_outcome expire(fsm *f, uint64_t id, uint32_t attempt,
			  hora_time stamp)
{
	expire_item it = {id, attempt, 0};
	uint8_t *buf;
	size_t len;
	assert_int_equal(entry_encode_expire(&it, 1, stamp, &buf, &len), 0);
	fsm_result *res = apply_buf(f, buf, len);
	fsm_outcome o = (fsm_outcome)res->outcome[0];
	hora_free(res);
	return o;
}

static fsm_outcome overlap(fsm *f, uint64_t id, hora_time stamp)
{
	uint8_t *buf;
	size_t len;
	assert_int_equal(entry_encode_overlap(&id, 1, stamp, &buf, &len), 0);
	fsm_result *res = apply_buf(f, buf, len);
	fsm_outcome o = (fsm_outcome)res->outcome[0];
	hora_free(res);
	return o;
}

static void test_fire_once_per_instant(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	put(f, "tick", "@every 1s", JOB_OVERLAP_ALLOW, 1, T0);
	job *j = store_get(fsm_store(f), "tick");
	assert_true(j->next_run_at == T0 + SEC);

	uint64_t id;
	assert_int_equal(fire(f, "tick", T0 + SEC, T0, &id), FSM_OK);
	assert_true(j->next_run_at == T0 + 2 * SEC);
	/* the same instant again (a replayed or duplicated plan): refused */
	assert_int_equal(fire(f, "tick", T0 + SEC, T0, NULL), FSM_CONFLICT);
	assert_int_equal(fsm_run_count(f), 1);
	run *r = fsm_run(f, id);
	assert_non_null(r);
	assert_true(r->scheduled_at == T0 + SEC);
	assert_int_equal(r->status, RUN_SCHEDULED);
	assert_int_equal(j->run_count, 1);
	assert_int_equal(j->active_runs, 1);
	assert_ptr_equal(j->runs, r);
	/* a missing job */
	assert_int_equal(fire(f, "ghost", T0, T0, NULL), FSM_NOT_FOUND);
	fsm_free(f);
}

static void test_lease_complete_retry(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	put(f, "r", "@every 1h", JOB_OVERLAP_ALLOW, 3, T0);
	uint64_t id;
	assert_int_equal(fire(f, "r", T0 + 3600 * SEC, T0, &id), FSM_OK);
	run *r = fsm_run(f, id);

	hora_time now = T0 + 3600 * SEC;
	assert_int_equal(lease(f, id, 2, "w1", now), FSM_CONFLICT); /* attempt */
	assert_int_equal(lease(f, id, 1, "w1", now), FSM_OK);
	assert_int_equal(r->status, RUN_RUNNING);
	assert_string_equal(r->worker, "w1");
	assert_int_equal(lease(f, id, 1, "w2", now), FSM_CONFLICT); /* taken */
	/* another worker's completion: lease lost */
	assert_int_equal(complete(f, id, 1, "w2", RUN_SUCCEEDED, now),
			 FSM_CONFLICT);
	/* failure with attempts left: retried after the backoff */
	assert_int_equal(complete(f, id, 1, "w1", RUN_FAILED, now + SEC),
			 FSM_OK);
	assert_int_equal(r->status, RUN_SCHEDULED);
	assert_int_equal(r->attempt, 2);
	assert_true(r->due_at == now + SEC + 1 * SEC); /* backoff 1s */
	assert_int_equal(lease(f, id, 2, "w1", now + 3 * SEC), FSM_OK);
	assert_int_equal(complete(f, id, 2, "w1", RUN_TIMED_OUT, now + 4 * SEC),
			 FSM_OK);
	assert_int_equal(r->attempt, 3);
	assert_true(r->due_at == now + 4 * SEC + 2 * SEC); /* doubled */
	assert_int_equal(lease(f, id, 3, "w1", now + 7 * SEC), FSM_OK);
	/* the last attempt fails: the run ends failed */
	assert_int_equal(complete(f, id, 3, "w1", RUN_FAILED, now + 8 * SEC),
			 FSM_OK);
	assert_int_equal(r->status, RUN_FAILED);
	assert_true(r->finished_at == now + 8 * SEC);
	assert_string_equal(r->output, "out");
	job *j = store_get(fsm_store(f), "r");
	assert_int_equal(j->active_runs, 0);
	assert_int_equal(fsm_stats(f)->retries, 2);
	/* completing a finished run is refused */
	assert_int_equal(complete(f, id, 3, "w1", RUN_SUCCEEDED, now + 9 * SEC),
			 FSM_CONFLICT);

	/* exponential backoff is capped */
	job_spec s;
	job_spec_init(&s);
	job_spec_view(j, &s);
	assert_true(fsm_retry_delay(j, 1) == 1 * SEC);
	assert_true(fsm_retry_delay(j, 3) == 4 * SEC);
	assert_true(fsm_retry_delay(j, 30) == 60 * SEC);
	fsm_free(f);
}

static void test_expire_redelivers(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	put(f, "e", "@every 1h", JOB_OVERLAP_ALLOW, 1, T0);
	uint64_t id;
	hora_time now = T0 + 3600 * SEC;
	assert_int_equal(fire(f, "e", now, T0, &id), FSM_OK);
	assert_int_equal(lease(f, id, 1, "w1", now), FSM_OK);
	assert_int_equal(expire(f, id, 2, now + SEC), FSM_CONFLICT);
	{
		/* an EXPIRE based on a lease end that a heartbeat has since
		 * extended is refused */
		expire_item it = {id, 1, now + 5 * SEC};
		uint8_t *buf;
		size_t len;
		assert_int_equal(entry_encode_expire(&it, 1, now + 6 * SEC,
						     &buf, &len),
				 0);
		fsm_result *res = apply_buf(f, buf, len);
		assert_int_equal(res->outcome[0], FSM_CONFLICT);
		hora_free(res);
		assert_int_equal(fsm_run(f, id)->status, RUN_RUNNING);
	}
	assert_int_equal(expire(f, id, 1, now + 20 * SEC), FSM_OK);
	run *r = fsm_run(f, id);
	assert_int_equal(r->status, RUN_SCHEDULED);
	assert_int_equal(r->attempt, 2);
	assert_true(r->due_at == now + 20 * SEC);
	/* the old worker's late completion is refused */
	assert_int_equal(complete(f, id, 1, "w1", RUN_SUCCEEDED, now + 21 * SEC),
			 FSM_CONFLICT);
	/* leases expiring forever end in failure */
	for (uint32_t a = 2; a < 1 + FSM_EXPIRIES_MAX + 1; a++) {
		assert_int_equal(lease(f, id, a, "w", now), FSM_OK);
		assert_int_equal(expire(f, id, a, now), FSM_OK);
	}
	assert_int_equal(r->status, RUN_FAILED);
	fsm_free(f);
}

static void test_overlap(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	put(f, "fb", "@every 1s", JOB_OVERLAP_FORBID, 1, T0);
	put(f, "rp", "@every 1s", JOB_OVERLAP_REPLACE, 1, T0);
	put(f, "al", "@every 1s", JOB_OVERLAP_ALLOW, 1, T0);

	uint64_t a, b;
	/* firing decides nothing about overlap: the policy is applied when
	 * the run is due (OVERLAP), against the runs active then */
	assert_int_equal(fire(f, "fb", T0 + SEC, T0, &a), FSM_OK);
	assert_int_equal(fire(f, "fb", T0 + 2 * SEC, T0, &b), FSM_OK);
	assert_int_equal(fsm_run(f, b)->status, RUN_SCHEDULED);
	/* forbid: due while the first is still active -> skipped */
	assert_int_equal(overlap(f, b, T0 + 2 * SEC), FSM_OK);
	assert_int_equal(fsm_run(f, a)->status, RUN_SCHEDULED);
	assert_int_equal(fsm_run(f, b)->status, RUN_SKIPPED);
	assert_contains(fsm_run(f, b)->error, "overlap forbid");
	assert_int_equal(store_get(fsm_store(f), "fb")->active_runs, 1);
	assert_int_equal(overlap(f, b, T0 + 2 * SEC), FSM_CONFLICT); /* once */
	/* ... but not if the first ended before the second was due */
	uint64_t c;
	assert_int_equal(fire(f, "fb", T0 + 3 * SEC, T0, &c), FSM_OK);
	assert_int_equal(lease(f, a, 1, "w1", T0 + SEC), FSM_OK);
	assert_int_equal(complete(f, a, 1, "w1", RUN_SUCCEEDED, T0 + SEC),
			 FSM_OK);
	assert_int_equal(overlap(f, c, T0 + 3 * SEC), FSM_OK);
	assert_int_equal(fsm_run(f, c)->status, RUN_SCHEDULED);
	/* replace: the first is cancelled, the second proceeds */
	assert_int_equal(fire(f, "rp", T0 + SEC, T0, &a), FSM_OK);
	assert_int_equal(lease(f, a, 1, "w1", T0 + SEC), FSM_OK);
	assert_int_equal(fire(f, "rp", T0 + 2 * SEC, T0, &b), FSM_OK);
	assert_int_equal(overlap(f, b, T0 + 2 * SEC), FSM_OK);
	assert_int_equal(fsm_run(f, a)->status, RUN_CANCELLED);
	assert_int_equal(fsm_run(f, b)->status, RUN_SCHEDULED);
	assert_int_equal(complete(f, a, 1, "w1", RUN_SUCCEEDED, T0 + 3 * SEC),
			 FSM_CONFLICT);
	/* allow: both */
	assert_int_equal(fire(f, "al", T0 + SEC, T0, &a), FSM_OK);
	assert_int_equal(fire(f, "al", T0 + 2 * SEC, T0, &b), FSM_OK);
	assert_int_equal(overlap(f, b, T0 + 2 * SEC), FSM_OK);
	assert_int_equal(store_get(fsm_store(f), "al")->active_runs, 2);

	/* a manual trigger needs no expected instant, moves no schedule */
	job *j = store_get(fsm_store(f), "al");
	hora_time next = j->next_run_at;
	fire_item it = {"al", 0, T0 + 5, T0 + 5, 0, FIRE_TRIGGER};
	uint8_t *buf;
	size_t len;
	assert_int_equal(entry_encode_fire(&it, 1, T0 + 5, &buf, &len), 0);
	hora_free(apply_buf(f, buf, len));
	assert_true(j->next_run_at == next);
	assert_true(j->runs->flags & RUN_F_MANUAL);

	/* deleting a job cancels what is active */
	const char *names[] = {"al"};
	assert_int_equal(entry_encode_names(ENTRY_DELETE_JOBS, 0, names, 1,
					    T0 + 9 * SEC, &buf, &len),
			 0);
	hora_free(apply_buf(f, buf, len));
	assert_int_equal(fsm_run(f, a)->status, RUN_CANCELLED);
	assert_false(fsm_run(f, a)->attached);
	fsm_free(f);
}

static void test_misfire_items_and_once_jobs(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	put(f, "m", "@every 1s", JOB_OVERLAP_ALLOW, 1, T0);
	job *j = store_get(fsm_store(f), "m");
	/* skip: move the schedule past now without a run */
	fire_item it = {"m", T0 + SEC, 0, 0, T0 + 100 * SEC, FIRE_NO_RUN};
	uint8_t *buf;
	size_t len;
	assert_int_equal(entry_encode_fire(&it, 1, T0 + 100 * SEC, &buf, &len),
			 0);
	hora_free(apply_buf(f, buf, len));
	assert_int_equal(fsm_run_count(f), 0);
	assert_true(j->next_run_at == T0 + 101 * SEC);
	assert_int_equal(fsm_stats(f)->misfire_skipped, 1);

	/* a one-shot job is done after its run */
	put(f, "once", "@after 10s", JOB_OVERLAP_ALLOW, 1, T0);
	job *o = store_get(fsm_store(f), "once");
	assert_true(o->next_run_at == T0 + 10 * SEC);
	assert_int_equal(fire(f, "once", T0 + 10 * SEC, T0, NULL), FSM_OK);
	assert_true(o->next_run_at == HORA_TIME_NONE);
	assert_true(o->flags & JOB_F_DONE);
	fsm_free(f);
}

static void test_max_runs_and_pause(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	job_spec s;
	uint8_t *buf;
	size_t len;
	job_spec_init(&s);
	s.name = hora_strdup("m3");
	s.schedule = hora_strdup("@every 1s");
	job_spec_set_opt(&s, JOB_OPT_MAX_RUNS, 3);
	assert_int_equal(entry_encode_put(&s, 1, 0, T0, &buf, &len), 0);
	job_spec_free(&s);
	hora_free(apply_buf(f, buf, len));
	job *j = store_get(fsm_store(f), "m3");
	for (int k = 1; k <= 3; k++)
		assert_int_equal(fire(f, "m3", T0 + k * SEC, T0, NULL), FSM_OK);
	/* exactly max_runs runs: no fourth instant */
	assert_int_equal(j->run_count, 3);
	assert_true(j->next_run_at == HORA_TIME_NONE);

	/* pausing takes back the first attempts fired ahead of the pause;
	 * resuming fires those instants again, once */
	put(f, "p", "@every 1s", JOB_OVERLAP_ALLOW, 1, T0);
	uint64_t id;
	assert_int_equal(fire(f, "p", T0 + SEC, T0, &id), FSM_OK);
	const char *names[] = {"p"};
	assert_int_equal(entry_encode_names(ENTRY_SET_PAUSED, 1, names, 1,
					    T0 + 1, &buf, &len),
			 0);
	hora_free(apply_buf(f, buf, len));
	job *p = store_get(fsm_store(f), "p");
	assert_null(fsm_run(f, id));
	assert_int_equal(p->run_count, 0);
	assert_true(p->next_run_at == HORA_TIME_NONE);
	assert_int_equal(entry_encode_names(ENTRY_SET_PAUSED, 0, names, 1,
					    T0 + 2, &buf, &len),
			 0);
	hora_free(apply_buf(f, buf, len));
	assert_true(p->next_run_at == T0 + SEC);

	/* replacing a job does not move it back to an instant already
	 * fired ahead (the simulation's seed 19) */
	put(f, "again", "@every 1s", JOB_OVERLAP_ALLOW, 1, T0);
	assert_int_equal(fire(f, "again", T0 + SEC, T0 + 1, NULL), FSM_OK);
	put(f, "again", "@every 1s", JOB_OVERLAP_ALLOW, 2, T0 + 2);
	job *a = store_get(fsm_store(f), "again");
	assert_true(a->next_run_at == T0 + 2 * SEC);
	assert_int_equal(fire(f, "again", T0 + SEC, T0 + 3, NULL),
			 FSM_CONFLICT);
	fsm_free(f);
}

static void test_retention(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	fsm_set_history(f, 3, (size_t)1 << 30);
	put(f, "h", "@every 1s", JOB_OVERLAP_ALLOW, 1, T0);
	job *j = store_get(fsm_store(f), "h");
	for (int i = 1; i <= 10; i++) {
		uint64_t id;
		hora_time t = T0 + i * SEC;
		assert_int_equal(fire(f, "h", t, t, &id), FSM_OK);
		assert_int_equal(lease(f, id, 1, "w", t), FSM_OK);
		assert_int_equal(complete(f, id, 1, "w", RUN_SUCCEEDED, t),
				 FSM_OK);
	}
	assert_int_equal(j->run_hist, 3);
	assert_int_equal(fsm_run_count(f), 3);
	assert_true(j->runs->scheduled_at == T0 + 10 * SEC); /* newest first */
	/* a byte budget evicts the oldest finished runs everywhere */
	fsm_set_history(f, 100, 1);
	uint64_t id;
	assert_int_equal(fire(f, "h", T0 + 11 * SEC, T0, &id), FSM_OK);
	assert_int_equal(lease(f, id, 1, "w", T0), FSM_OK);
	assert_int_equal(complete(f, id, 1, "w", RUN_SUCCEEDED, T0), FSM_OK);
	assert_int_equal(fsm_run_count(f), 0);
	assert_int_equal(j->run_hist, 0);
	fsm_free(f);
}

/* Two replicas apply a random stream of job and run entries: equal
 * snapshots; a third restored from the snapshot encodes the same bytes. */
static void test_determinism_with_runs(void **state)
{
	(void)state;
	fsm *a, *b;
	assert_int_equal(fsm_new(&a), 0);
	assert_int_equal(fsm_new(&b), 0);
	fsm_set_history(a, 5, (size_t)1 << 20);
	fsm_set_history(b, 5, (size_t)1 << 20);
	srand(11);
	uint64_t idx = 0;
	uint64_t ids[512];
	size_t nids = 0;
	for (int step = 0; step < 3000; step++) {
		uint8_t *buf = NULL;
		size_t len = 0;
		char name[16];
		hora_time stamp = T0 + step * SEC;
		snprintf(name, sizeof name, "j%d", rand() % 20);
		int k = rand() % 10;
		job *j = store_get(fsm_store(a), name);
		if (k < 2 || j == NULL) {
			job_spec s;
			job_spec_init(&s);
			s.name = hora_strdup(name);
			s.schedule = hora_strdup("@every 1s");
			s.overlap = (uint8_t)(rand() % 3);
			s.max_attempts = (uint16_t)(1 + rand() % 3);
			assert_int_equal(entry_encode_put(&s, 1, 0, stamp, &buf,
							  &len),
					 0);
			job_spec_free(&s);
		} else if (k < 5) {
			fire_item it = {name, j->next_run_at, j->next_run_at,
					j->next_run_at, j->next_run_at, 0};
			assert_int_equal(entry_encode_fire(&it, 1, stamp, &buf,
							   &len),
					 0);
			if (nids < 512)
				ids[nids++] = fsm_run_id(idx + 1, 0);
		} else if (nids > 0) {
			uint64_t id = ids[rand() % nids];
			run *r = fsm_run(a, id);
			uint32_t att = r ? r->attempt : 1;
			if (k < 7) {
				lease_item it = {id, att, "w", stamp + SEC};
				assert_int_equal(entry_encode_lease(&it, 1, stamp,
								    &buf, &len),
						 0);
			} else if (k < 9) {
				complete_item it = {id, att, "w",
						    (uint8_t)(rand() % 2
								      ? RUN_SUCCEEDED
								      : RUN_FAILED),
						    rand() % 3, "x", 1, NULL};
				assert_int_equal(entry_encode_complete(
							 &it, 1, stamp, &buf, &len),
						 0);
			} else {
				expire_item it = {id, att, 0};
				assert_int_equal(entry_encode_expire(&it, 1, stamp,
								     &buf, &len),
						 0);
			}
		}
		if (buf == NULL)
			continue;
		idx++;
		uint8_t *copy = hora_malloc(len);
		memcpy(copy, buf, len);
		assert_int_equal(fsm_apply(a, buf, len, idx, NULL), 0);
		assert_int_equal(fsm_apply(b, copy, len, idx, NULL), 0);
		hora_free(buf);
		hora_free(copy);
	}
	assert_true(fsm_run_count(a) > 0);
	uint8_t *sa, *sb, *sc;
	size_t la, lb, lc;
	assert_int_equal(fsm_snapshot_encode(a, &sa, &la), 0);
	assert_int_equal(fsm_snapshot_encode(b, &sb, &lb), 0);
	assert_int_equal(la, lb);
	assert_memory_equal(sa, sb, la);
	fsm *c;
	assert_int_equal(fsm_new(&c), 0);
	fsm_set_history(c, 5, (size_t)1 << 20);
	assert_int_equal(fsm_snapshot_restore(c, sa, la), 0);
	assert_int_equal(fsm_run_count(c), fsm_run_count(a));
	assert_int_equal(fsm_snapshot_encode(c, &sc, &lc), 0);
	assert_int_equal(lc, la);
	assert_memory_equal(sc, sa, la);
	/* truncated snapshots are refused without touching c */
	for (size_t cut = 0; cut < la; cut += 1 + cut / 20)
		assert_int_not_equal(fsm_snapshot_restore(c, sa, cut), 0);
	assert_int_equal(fsm_run_count(c), fsm_run_count(a));
	hora_free(sa);
	hora_free(sb);
	hora_free(sc);
	fsm_free(a);
	fsm_free(b);
	fsm_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fire_once_per_instant),
		cmocka_unit_test(test_lease_complete_retry),
		cmocka_unit_test(test_expire_redelivers),
		cmocka_unit_test(test_overlap),
		cmocka_unit_test(test_misfire_items_and_once_jobs),
		cmocka_unit_test(test_max_runs_and_pause),
		cmocka_unit_test(test_retention),
		cmocka_unit_test(test_determinism_with_runs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
