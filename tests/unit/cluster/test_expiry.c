/*
 * test_expiry.c - src/cluster/expiry.c, the leader's lease rules, on runs
 * made by a state machine fed by hand: deadlines with and without a job
 * timeout, what the leader does at the deadline, the grace given to
 * inherited leases, and who holds a lease.
 */
#include "../test_util.h"

#include "cluster/expiry.h"
#include "core/alloc.h"
#include "fsm/fsm.h"

#define SEC HORA_USEC_PER_SEC
#define MS HORA_USEC_PER_MS
#define T0 ((hora_time)1700000000 * SEC)

static uint64_t idx;

static void apply(fsm *f, uint8_t *buf, size_t len)
{
	assert_int_equal(fsm_apply(f, buf, len, ++idx, NULL), 0);
	hora_free(buf);
}

/* A job (timeout 0: none) and its first run, fired at T0 + 1 s and, if
 * `lease_until`, leased to w1 then. */
static run *make_run(fsm *f, const char *name, int64_t timeout,
		     hora_time lease_until)
{
	job_spec s;
	uint8_t *buf;
	size_t len;
	job_spec_init(&s);
	s.name = hora_strdup(name);
	s.schedule = hora_strdup("@every 1h");
	if (timeout)
		job_spec_set_opt(&s, JOB_OPT_TIMEOUT, timeout);
	assert_int_equal(entry_encode_put(&s, 1, 0, T0 - 3600 * SEC + SEC, &buf,
					  &len),
			 0);
	job_spec_free(&s);
	apply(f, buf, len);
	fire_item it = {name, T0 + SEC, T0 + SEC, T0 + SEC, T0 + SEC, 0};
	assert_int_equal(entry_encode_fire(&it, 1, T0, &buf, &len), 0);
	apply(f, buf, len);
	uint64_t id = fsm_run_id(idx, 0);
	if (lease_until) {
		lease_item l = {id, 1, "w1", lease_until};
		assert_int_equal(entry_encode_lease(&l, 1, T0 + SEC, &buf, &len),
				 0);
		apply(f, buf, len);
	}
	run *r = fsm_run(f, id);
	assert_non_null(r);
	return r;
}

static void test_deadline_and_decision(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	store *st = fsm_store(f);

	/* no timeout: the lease end */
	run *a = make_run(f, "a", 0, T0 + 31 * SEC);
	hora_time da = expiry_deadline(a, store_get(st, "a"), 0);
	assert_true(da == T0 + 31 * SEC);
	assert_int_equal(expiry_decide(a, da, da - 1), EXPIRY_NONE);
	assert_int_equal(expiry_decide(a, da, da), EXPIRY_LEASE);
	expire_item e = expiry_expire_item(a);
	assert_true(e.run == a->id && e.attempt == 1 &&
		    e.lease_end == T0 + 31 * SEC);

	/* a timeout before the lease end: started + timeout + grace */
	run *b = make_run(f, "b", 10 * SEC, T0 + 61 * SEC);
	job *jb = store_get(st, "b");
	hora_time db = expiry_deadline(b, jb, 0);
	assert_true(db == T0 + SEC + 10 * SEC + EXPIRY_TIMEOUT_GRACE_MS * MS);
	assert_int_equal(expiry_decide(b, db, db), EXPIRY_TIMEOUT);
	char msg[EXPIRY_MSG_MAX];
	complete_item c = expiry_timeout_item(b, jb, msg);
	assert_true(c.run == b->id && c.attempt == 1);
	assert_string_equal(c.worker, "w1");
	assert_int_equal(c.status, RUN_TIMED_OUT);
	assert_int_equal(c.exit_code, -1);
	assert_string_equal(c.error, "timed out after 10s");
	/* the job deleted: no timeout known */
	c = expiry_timeout_item(b, NULL, msg);
	assert_string_equal(c.error, "timed out after 0s");
	assert_true(expiry_deadline(b, NULL, 0) == T0 + 61 * SEC);
	/* an inherited lease's grace moves the lease end, not the timeout */
	assert_true(expiry_deadline(b, NULL, T0 + 90 * SEC) == T0 + 90 * SEC);
	assert_true(expiry_deadline(b, NULL, T0) == T0 + 61 * SEC);
	assert_true(expiry_deadline(b, jb, T0 + 90 * SEC) == db);

	/* a timeout after the lease end: the lease decides */
	run *c2 = make_run(f, "c", 600 * SEC, T0 + 31 * SEC);
	assert_true(expiry_deadline(c2, store_get(st, "c"), 0) == T0 + 31 * SEC);

	/* only running runs expire */
	run *d = make_run(f, "d", 0, 0);
	assert_int_equal(d->status, RUN_SCHEDULED);
	assert_int_equal(expiry_decide(d, 0, T0 + 3600 * SEC), EXPIRY_NONE);
	fsm_free(f);
}

static void test_inherited_grace(void **state)
{
	(void)state;
	hora_time grace = EXPIRY_INHERIT_GRACE_MS * MS;
	assert_true(expiry_inherited(T0, T0) == T0 + grace);
	assert_true(expiry_inherited(T0 - SEC, T0) == T0 + grace);
	assert_true(expiry_inherited(T0 + grace + 1, T0) == T0 + grace + 1);
}

static void test_holds(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	run *a = make_run(f, "a", 0, T0 + 31 * SEC);
	assert_true(expiry_holds(a, false, "w1"));
	assert_false(expiry_holds(a, false, "w2"));
	assert_true(expiry_holds(a, true, "w1")); /* the log decides */
	assert_false(expiry_holds(a, true, "w2"));
	run *b = make_run(f, "b", 0, 0);
	/* scheduled: only while handed out from memory */
	assert_false(expiry_holds(b, false, "w1"));
	assert_true(expiry_holds(b, true, "w1"));
	assert_true(expiry_holds(b, true, "anyone"));
	fsm_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deadline_and_decision),
		cmocka_unit_test(test_inherited_grace),
		cmocka_unit_test(test_holds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
