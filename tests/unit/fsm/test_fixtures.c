/* Every release reads what earlier releases wrote: the log entries and
 * the snapshot in tests/fixtures/v1 (written by tests/tools/gen_fixtures.c
 * in format version 1) must decode and apply to the state they meant. */
#include "../test_util.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "fsm/fsm.h"

static uint8_t *load(const char *version, const char *name, size_t *len)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/tests/fixtures/%s/%s", HORA_SOURCE_DIR,
		 version, name);
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open fixture %s", path);
	static uint8_t buf[1 << 16];
	*len = fread(buf, 1, sizeof buf, f);
	fclose(f);
	return buf;
}

static uint64_t idx;

static fsm_outcome apply(fsm *f, const char *name)
{
	size_t len;
	uint8_t *b = load("v1", name, &len);
	fsm_result *res = NULL;
	int rv = fsm_apply(f, b, len, ++idx, &res);
	if (rv != 0)
		fail_msg("%s: %s", name, hora_strerror(rv));
	fsm_outcome o = res && res->count ? (fsm_outcome)res->outcome[0]
					  : FSM_OK;
	hora_free(res);
	return o;
}

static void check_job(fsm *f)
{
	job *j = store_get(fsm_store(f), "fixture-job");
	assert_non_null(j);
	assert_string_equal(job_schedule_text(j), "*/5 * * * *");
	assert_string_equal(tz_name(j->tz), "Europe/Berlin");
	assert_string_equal(j->queue, "mail");
	assert_string_equal(job_label(j, "env"), "prod");
	assert_contains(job_extra(j), "\"payload\":{\"a\":1}");
	assert_int_equal(j->priority, 7);
	assert_int_equal(j->overlap, JOB_OVERLAP_FORBID);
	assert_int_equal(j->misfire, JOB_MISFIRE_ALL);
	assert_int_equal(j->max_attempts, 3);
	assert_true(job_opt_get(j, JOB_OPT_TIMEOUT, 0) == 30000000);
	assert_true(job_opt_get(j, JOB_OPT_JITTER, 0) == 2000000);
}

static void test_v1_entries(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	assert_int_equal(apply(f, "put_jobs.bin"), FSM_CREATED);
	check_job(f);
	assert_int_equal(apply(f, "node_info.bin"), FSM_OK);
	assert_string_equal(fsm_node_api(f, 1), "http://127.0.0.1:7070");
	assert_int_equal(apply(f, "fire.bin"), FSM_OK);
	assert_int_equal(fsm_run_count(f), 1);
	assert_int_equal(apply(f, "lease.bin"), FSM_OK);
	assert_int_equal(apply(f, "overlap.bin"), FSM_CONFLICT); /* running */
	assert_int_equal(apply(f, "complete.bin"), FSM_OK);
	job *j = store_get(fsm_store(f), "fixture-job");
	run *r = j->runs;
	assert_int_equal(r->attempt, 2); /* failed, retried */
	assert_string_equal(r->error, "boom");
	assert_int_equal(apply(f, "expire.bin"), FSM_CONFLICT); /* not running */
	assert_int_equal(apply(f, "pause.bin"), FSM_OK);
	assert_true(j->flags & JOB_F_PAUSED);
	assert_int_equal(apply(f, "noop.bin"), FSM_OK);
	assert_int_equal(apply(f, "delete.bin"), FSM_OK);
	assert_null(store_get(fsm_store(f), "fixture-job"));
	fsm_free(f);
}

static void test_v1_snapshot(void **state)
{
	(void)state;
	fsm *f;
	size_t len;
	uint8_t *b = load("v1", "snapshot.bin", &len);
	assert_int_equal(fsm_new(&f), 0);
	assert_int_equal(fsm_snapshot_restore(f, b, len), 0);
	check_job(f);
	assert_string_equal(fsm_node_api(f, 1), "http://127.0.0.1:7070");
	assert_int_equal(fsm_run_count(f), 1);
	job *j = store_get(fsm_store(f), "fixture-job");
	assert_int_equal(j->runs->attempt, 2);
	assert_int_equal(j->runs->status, RUN_SCHEDULED);
	assert_int_equal(j->run_count, 1);
	fsm_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_entries),
		cmocka_unit_test(test_v1_snapshot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
