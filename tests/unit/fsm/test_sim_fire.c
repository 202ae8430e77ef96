/* Simulated time: the state machine fires jobs the way the leader's
 * planner drives it (FIRE items expecting each job's next instant), with
 * no clock and no network.  Checks that every expected instant fires
 * exactly once, in order, across DST changes and for a large store. */
#include "../test_util.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/timefmt.h"
#include "cron/schedule.h"
#include "fsm/entry.h"
#include "fsm/fsm.h"

#define SEC HORA_USEC_PER_SEC

static uint64_t idx;

static hora_time T(const char *s)
{
	hora_time t;
	hora_error err;
	assert_int_equal(timefmt_parse(s, false, &t, NULL, "t", &err), 0);
	return t;
}

static void apply(fsm *f, uint8_t *buf, size_t len)
{
	assert_int_equal(fsm_apply(f, buf, len, ++idx, NULL), 0);
	hora_free(buf);
}

static void put(fsm *f, const char *name, const char *sched, const char *tz,
		hora_time stamp)
{
	job_spec s;
	uint8_t *buf;
	size_t len;
	job_spec_init(&s);
	s.name = hora_strdup(name);
	s.schedule = hora_strdup(sched);
	s.timezone = hora_strdup(tz);
	assert_int_equal(entry_encode_put(&s, 1, 0, stamp, &buf, &len), 0);
	job_spec_free(&s);
	apply(f, buf, len);
}

typedef struct fired {
	char job[32];
	hora_time at;
} fired;

/* Lease and complete the runs made so far, as a worker would. */
static void finish_runs(fsm *f, const uint64_t *ids, size_t n, hora_time at)
{
	static lease_item leases[512];
	static complete_item done[512];
	uint8_t *buf;
	size_t len;
	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++) {
		leases[i] = (lease_item){ids[i], 1, "sim", at + 60 * SEC};
		done[i] = (complete_item){ids[i], 1, "sim", RUN_SUCCEEDED, 0,
					  NULL, 0, NULL};
	}
	assert_int_equal(entry_encode_lease(leases, n, at, &buf, &len), 0);
	apply(f, buf, len);
	assert_int_equal(entry_encode_complete(done, n, at, &buf, &len), 0);
	apply(f, buf, len);
}

/* Fire everything due up to `until` in time order, one FIRE entry per
 * instant; runs are finished in batches so history stays small.  Calls
 * `seen` for each fired instant.  Returns the number fired. */
static size_t simulate(fsm *f, hora_time until,
		       void (*seen)(void *ud, const char *name, hora_time at),
		       void *ud)
{
	size_t total = 0;
	fire_item items[1];
	char names[1][32];
	uint64_t ids[512];
	size_t nids = 0;
	for (;;) {
		size_t n = 0;
		/* take due jobs from the heap in time order; the FIRE entry
		 * moves each past its instant, so re-reading the heap top
		 * after applying gives the next in order */
		job *j = store_first_due(fsm_store(f));
		if (j == NULL || j->next_run_at > until)
			break;
		hora_time t = j->next_run_at;
		snprintf(names[n], sizeof names[n], "%s", job_name(j));
		items[n] = (fire_item){names[n], t, t, t, t, 0};
		n++;
		uint8_t *buf;
		size_t len;
		assert_int_equal(entry_encode_fire(items, n, t, &buf, &len), 0);
		apply(f, buf, len);
		ids[nids++] = fsm_run_id(idx, 0);
		if (nids == 512) {
			finish_runs(f, ids, nids, t);
			nids = 0;
		}
		if (seen)
			seen(ud, names[0], t);
		total++;
	}
	finish_runs(f, ids, nids, until);
	return total;
}

typedef struct dst_check {
	hora_time last;
	size_t count;
	hora_time first;
} dst_check;

static void every_second(void *ud, const char *name, hora_time at)
{
	dst_check *c = ud;
	(void)name;
	if (c->count == 0)
		c->first = at;
	else
		assert_true(at == c->last + SEC); /* real time: no gap, no fold */
	c->last = at;
	c->count++;
}

static void test_every_second_for_a_week_across_dst(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	fsm_set_history(f, 1, 1 << 20);
	/* the week around Berlin's 2026-10-25 fall back */
	hora_time start = T("2026-10-22T00:00:00Z");
	put(f, "sec", "* * * * * *", "Europe/Berlin", start);
	dst_check c = {0, 0, 0};
	hora_time end = start + 7 * 86400 * SEC;
	size_t n = simulate(f, end, every_second, &c);
	assert_int_equal(n, 7 * 86400);
	assert_true(c.first == start + SEC);
	assert_true(c.last == end);
	fsm_free(f);
}

typedef struct daily {
	hora_time at[16];
	size_t n;
} daily;

static void collect(void *ud, const char *name, hora_time at)
{
	daily *d = ud;
	(void)name;
	if (d->n < 16)
		d->at[d->n++] = at;
}

static void test_fixed_time_daily_across_spring_forward(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	put(f, "night", "30 2 * * *", "America/New_York",
	    T("2026-03-05T12:00:00Z"));
	daily d = {{0}, 0};
	simulate(f, T("2026-03-11T12:00:00Z"), collect, &d);
	/* Mar 6, 7, 8 (in the gap: 03:00 EDT = 07:00Z), 9, 10, 11 */
	static const char *want[] = {
		"2026-03-06T07:30:00Z", "2026-03-07T07:30:00Z",
		"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z",
		"2026-03-10T06:30:00Z", "2026-03-11T06:30:00Z",
	};
	assert_int_equal(d.n, ARRAY_LEN(want));
	for (size_t i = 0; i < d.n; i++)
		assert_true(d.at[i] == T(want[i]));
	fsm_free(f);
}

typedef struct big {
	hora_time *last;  /* per job index */
	hora_time *anchor;
	hora_schedule *sched;
	hora_time clock; /* global order */
	size_t fired;
} big;

static void check_big(void *ud, const char *name, hora_time at)
{
	big *b = ud;
	int i = atoi(name + 1);
	/* in global time order, and each instant the schedule's next */
	assert_true(at >= b->clock);
	b->clock = at;
	hora_time want = schedule_next(&b->sched[i], b->anchor[i], b->last[i]);
	assert_true(at == want);
	b->last[i] = at;
	b->fired++;
}

static void test_large_store_fires_each_instant_once_in_order(void **state)
{
	(void)state;
	enum { N = 100000 };
	static const char *exprs[] = {
		"*/5 * * * *", "0 * * * *", "*/7 * * * * *", "30 */2 * * *",
		"@every 17s",  "@every 2500ms", "0 0 * * *", "15,45 * * * *",
		"@every 1m",   "*/13 * * * * *",
	};
	static const char *zones[] = {"UTC", "Europe/Berlin",
				      "America/New_York", "Asia/Kolkata"};
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	fsm_set_history(f, 1, 1 << 20);
	big b;
	b.last = hora_calloc(N, sizeof *b.last);
	b.anchor = hora_calloc(N, sizeof *b.anchor);
	b.sched = hora_calloc(N, sizeof *b.sched);
	b.fired = 0;
	hora_time start = T("2026-06-01T00:00:00Z");
	b.clock = start;

	/* batches of 1000 creations, as the API would send them */
	srand(5);
	for (int base = 0; base < N; base += 1000) {
		job_spec specs[1000];
		for (int k = 0; k < 1000; k++) {
			int i = base + k;
			char name[16];
			snprintf(name, sizeof name, "j%d", i);
			job_spec_init(&specs[k]);
			specs[k].name = hora_strdup(name);
			specs[k].schedule =
				hora_strdup(exprs[rand() % ARRAY_LEN(exprs)]);
			specs[k].timezone =
				hora_strdup(zones[rand() % ARRAY_LEN(zones)]);
		}
		uint8_t *buf;
		size_t len;
		assert_int_equal(entry_encode_put(specs, 1000, 0, start, &buf,
						  &len),
				 0);
		apply(f, buf, len);
		for (int k = 0; k < 1000; k++) {
			int i = base + k;
			job *j = store_get(fsm_store(f), specs[k].name);
			b.anchor[i] = j->anchor;
			b.last[i] = start;
			job_schedule(j, &b.sched[i]);
			job_spec_free(&specs[k]);
		}
	}
	/* two simulated minutes */
	size_t n = simulate(f, start + 120 * SEC, check_big, &b);
	assert_true(n == b.fired && n > 100000);
	/* nothing left behind: every job's next instant is in the future */
	for (int i = 0; i < N; i += 997) {
		char name[16];
		snprintf(name, sizeof name, "j%d", i);
		job *j = store_get(fsm_store(f), name);
		assert_true(j->next_run_at > start + 120 * SEC);
		assert_true(j->next_run_at ==
			    schedule_next(&b.sched[i], b.anchor[i], b.last[i]));
	}
	printf("fired %zu runs for %d jobs in 2 simulated minutes\n", n, N);
	hora_free(b.last);
	hora_free(b.anchor);
	hora_free(b.sched);
	fsm_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_second_for_a_week_across_dst),
		cmocka_unit_test(test_fixed_time_daily_across_spring_forward),
		cmocka_unit_test(test_large_store_fires_each_instant_once_in_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
