/* Runs in the state machine: FIRE, LEASE, COMPLETE, EXPIRE, history
 * retention and the runs section of snapshots. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/err.h"
#include "fsm/fsm_int.h"

/* ---- the id table and lists ------------------------------------------- */

void fsm__runs_state_init(fsm_runs_state *rs)
{
	memset(rs, 0, sizeof *rs);
}

static size_t bucket_of(const fsm_runs_state *rs, uint64_t id)
{
	uint64_t h = id * UINT64_C(0x9e3779b97f4a7c15);
	return (size_t)(h >> 32) & rs->mask;
}

static int table_grow(fsm_runs_state *rs)
{
	size_t n = rs->mask ? (rs->mask + 1) * 2 : 1024;
	run **b = hora_calloc(n, sizeof *b);
	if (b == NULL)
		return -HORA_ENOMEM;
	size_t old_n = rs->mask ? rs->mask + 1 : 0;
	run **old = rs->buckets;
	rs->buckets = b;
	rs->mask = n - 1;
	for (size_t i = 0; i < old_n; i++) {
		for (run *r = old[i], *next; r; r = next) {
			next = r->hash_next;
			size_t k = bucket_of(rs, r->id);
			r->hash_next = b[k];
			b[k] = r;
		}
	}
	hora_free(old);
	return 0;
}

/* Room for `extra` more runs without allocating in the apply loop. */
static int table_reserve(fsm_runs_state *rs, size_t extra)
{
	while (rs->count + extra > (rs->mask ? rs->mask + 1 : 0)) {
		int rv = table_grow(rs);
		if (rv != 0)
			return rv;
	}
	return 0;
}

static void table_insert(fsm_runs_state *rs, run *r)
{
	size_t k = bucket_of(rs, r->id);
	r->hash_next = rs->buckets[k];
	rs->buckets[k] = r;
	rs->count++;
	rs->bytes += run_size(r);
}

static run *table_get(const fsm_runs_state *rs, uint64_t id)
{
	if (rs->mask == 0)
		return NULL;
	for (run *r = rs->buckets[bucket_of(rs, id)]; r; r = r->hash_next)
		if (r->id == id)
			return r;
	return NULL;
}

static void table_remove(fsm_runs_state *rs, run *r)
{
	run **p = &rs->buckets[bucket_of(rs, r->id)];
	while (*p != r)
		p = &(*p)->hash_next;
	*p = r->hash_next;
	rs->count--;
	rs->bytes -= run_size(r);
}

static void done_append(fsm_runs_state *rs, run *r)
{
	r->done_prev = rs->done_tail;
	r->done_next = NULL;
	if (rs->done_tail)
		rs->done_tail->done_next = r;
	else
		rs->done_head = r;
	rs->done_tail = r;
	rs->done_count++;
}

static void done_remove(fsm_runs_state *rs, run *r)
{
	if (r->done_prev)
		r->done_prev->done_next = r->done_next;
	else
		rs->done_head = r->done_next;
	if (r->done_next)
		r->done_next->done_prev = r->done_prev;
	else
		rs->done_tail = r->done_prev;
	r->done_prev = r->done_next = NULL;
	rs->done_count--;
}

/* Put r in j's history, which is kept newest (largest id) first. */
static void job_attach(job *j, run *r)
{
	run **p = &j->runs;
	run *prev = NULL;
	while (*p && (*p)->id > r->id) {
		prev = *p;
		p = &(*p)->job_next;
	}
	r->job_next = *p;
	r->job_prev = prev;
	if (*p)
		(*p)->job_prev = r;
	*p = r;
	r->attached = true;
	j->run_hist++;
}

static void job_detach(job *j, run *r)
{
	if (r->job_prev)
		r->job_prev->job_next = r->job_next;
	else
		j->runs = r->job_next;
	if (r->job_next)
		r->job_next->job_prev = r->job_prev;
	r->job_prev = r->job_next = NULL;
	r->attached = false;
	j->run_hist--;
}

void fsm__runs_state_clear(fsm_runs_state *rs, store *jobs)
{
	(void)jobs;
	for (size_t i = 0; rs->mask && i <= rs->mask; i++) {
		for (run *r = rs->buckets[i], *next; r; r = next) {
			next = r->hash_next;
			run_free(r);
		}
	}
	hora_free(rs->buckets);
	fsm__runs_state_init(rs);
}

static int clear_job_lists(job *j, void *ud)
{
	(void)ud;
	j->runs = NULL;
	j->run_hist = 0;
	j->active_runs = 0;
	return 0;
}

void fsm__runs_clear(fsm *f)
{
	store_each(f->jobs, clear_job_lists, NULL);
	fsm__runs_state_clear(&f->runs, f->jobs);
}

void fsm__runs_move(job *from, job *to)
{
	to->runs = from->runs;
	to->run_hist = from->run_hist;
	to->active_runs = from->active_runs;
	from->runs = NULL;
	from->run_hist = 0;
	from->active_runs = 0;
}

/* ---- state changes ---------------------------------------------------- */

static void notify(fsm *f, run *r)
{
	if (f->observer.run_changed)
		f->observer.run_changed(f->observer.ud, r);
}

static void evict(fsm *f, run *r)
{
	job *j = r->attached ? store_get(f->jobs, r->job) : NULL;
	HORA_ASSERT(run_is_final(r));
	if (j)
		job_detach(j, r);
	done_remove(&f->runs, r);
	table_remove(&f->runs, r);
	if (f->observer.run_freed)
		f->observer.run_freed(f->observer.ud, r);
	f->stats.evicted++;
	run_free(r);
}

/* Keep at most hist_per_job finished runs per job and hist_bytes in all,
 * dropping the oldest finished first. */
static void enforce_retention(fsm *f, job *j)
{
	if (j != NULL && j->run_hist > f->hist_per_job) {
		run *last = j->runs;
		while (last && last->job_next)
			last = last->job_next;
		for (run *r = last, *prev; r && j->run_hist > f->hist_per_job;
		     r = prev) {
			prev = r->job_prev;
			if (run_is_final(r))
				evict(f, r);
		}
	}
	while (f->runs.bytes > f->hist_bytes && f->runs.done_head)
		evict(f, f->runs.done_head);
}

/* Byte accounting around string changes. */
static void account_begin(fsm *f, run *r)
{
	f->runs.bytes -= run_size(r);
}

static void account_end(fsm *f, run *r)
{
	f->runs.bytes += run_size(r);
}

/* End a run for good: it leaves the active set and joins the finished
 * list.  `j` is its job (NULL if deleted). */
static void finalize(fsm *f, job *j, run *r, run_status status,
		     hora_time stamp)
{
	bool was_active = !run_is_final(r);
	r->status = (uint8_t)status;
	r->finished_at = stamp;
	r->lease_expires_at = 0;
	if (was_active && j && r->attached)
		j->active_runs--;
	done_append(&f->runs, r);
	f->stats.finished[status]++;
	notify(f, r);
}

static void set_error(fsm *f, run *r, const char *msg)
{
	account_begin(f, r);
	run_set_str(&r->error, msg, strlen(msg));
	account_end(f, r);
}

void fsm__runs_job_deleted(fsm *f, job *j, hora_time stamp)
{
	for (run *r = j->runs, *next; r; r = next) {
		next = r->job_next;
		bool active = !run_is_final(r);
		job_detach(j, r);
		if (active) {
			set_error(f, r, "cancelled: the job was deleted");
			finalize(f, NULL, r, RUN_CANCELLED, stamp);
		}
	}
	j->active_runs = 0;
	enforce_retention(f, NULL);
}

int64_t fsm_retry_delay(const job *j, uint32_t attempt)
{
	int64_t base = job_opt_get(j, JOB_OPT_BACKOFF, JOB_BACKOFF_DEFAULT);
	int64_t cap = job_opt_get(j, JOB_OPT_MAX_BACKOFF,
				  JOB_MAX_BACKOFF_DEFAULT);
	int64_t d = base;
	for (uint32_t i = 1; i < attempt && d < cap; i++)
		d = d > INT64_MAX / 2 ? INT64_MAX : d * 2;
	return d < cap ? d : cap;
}

/* Apply the job's overlap policy to run x, due now: forbid skips it if
 * an older run of the job is still active, replace cancels those. */
static void apply_overlap_policy(fsm *f, job *j, run *x, hora_time stamp)
{
	bool busy = false;
	x->flags |= RUN_F_OVERLAP;
	for (run *o = j->runs; o; o = o->job_next)
		if (o != x && o->id < x->id && !run_is_final(o))
			busy = true;
	if (busy && j->overlap == JOB_OVERLAP_FORBID) {
		set_error(f, x,
			  "skipped: the previous run was still active when "
			  "this one was due (overlap forbid)");
		f->stats.skipped_overlap++;
		finalize(f, j, x, RUN_SKIPPED, stamp);
		enforce_retention(f, j);
		return;
	}
	if (busy && j->overlap == JOB_OVERLAP_REPLACE) {
		char msg[96];
		snprintf(msg, sizeof msg,
			 "cancelled: replaced by run %llu (overlap replace)",
			 (unsigned long long)x->id);
		for (run *o = j->runs, *next; o; o = next) {
			next = o->job_next;
			if (o == x || o->id > x->id || run_is_final(o))
				continue;
			set_error(f, o, msg);
			finalize(f, j, o, RUN_CANCELLED, stamp);
		}
		enforce_retention(f, j);
	}
	notify(f, x);
}

/* ---- FIRE ------------------------------------------------------------- */

typedef struct fire_decoded {
	char *job;
	hora_time expect, scheduled_at, due_at, resume_after;
	uint8_t flags;
} fire_decoded;

int fsm__apply_fire(fsm *f, const entry_header *h, wire_reader *r,
		    uint64_t index, fsm_result *res)
{
	uint32_t n = h->count;
	fire_decoded *items;
	int rv = 0;

	if (n > FSM_FIRE_ITEMS_MAX || n > wire_left(r) / 37)
		return -HORA_ECORRUPT;
	items = hora_calloc(n ? n : 1, sizeof *items);
	if (items == NULL)
		return -HORA_ENOMEM;
	for (uint32_t i = 0; i < n && rv == 0; i++) {
		items[i].job = entry_get_str(r, JOB_NAME_MAX);
		if (items[i].job == NULL) {
			rv = r->bad ? -HORA_ECORRUPT : -HORA_ENOMEM;
			break;
		}
		items[i].expect = (hora_time)wire_get_u64(r);
		items[i].scheduled_at = (hora_time)wire_get_u64(r);
		items[i].due_at = (hora_time)wire_get_u64(r);
		items[i].resume_after = (hora_time)wire_get_u64(r);
		items[i].flags = wire_get_u8(r);
		if (r->bad)
			rv = -HORA_ECORRUPT;
	}
	if (rv == 0 && wire_left(r) != 0)
		rv = -HORA_ECORRUPT;
	/* allocate everything first: applying cannot fail halfway */
	run **made = NULL;
	if (rv == 0 && (made = hora_calloc(n ? n : 1, sizeof *made)) == NULL)
		rv = -HORA_ENOMEM;
	if (rv == 0)
		rv = table_reserve(&f->runs, n);
	if (rv == 0)
		rv = store_reserve(f->jobs, n);
	for (uint32_t i = 0; rv == 0 && i < n; i++) {
		job *j = store_get(f->jobs, items[i].job);
		if (j == NULL || (items[i].flags & FIRE_NO_RUN))
			continue;
		made[i] = run_new(fsm_run_id(index, i), items[i].job, j->queue);
		if (made[i] == NULL)
			rv = -HORA_ENOMEM;
	}
	if (rv != 0) {
		for (uint32_t i = 0; made && i < n; i++)
			run_free(made[i]);
		hora_free(made);
		for (uint32_t i = 0; i < n; i++)
			hora_free(items[i].job);
		hora_free(items);
		return rv;
	}

	for (uint32_t i = 0; i < n; i++) {
		fire_decoded *it = &items[i];
		job *j = store_get(f->jobs, it->job);
		run *nr = made[i];
		if (j == NULL) {
			res->outcome[i] = FSM_NOT_FOUND;
			continue;
		}
		if (!(it->flags & FIRE_TRIGGER) && j->next_run_at != it->expect) {
			/* at most one run per (job, instant): the instant
			 * must still be the job's next one */
			res->outcome[i] = FSM_CONFLICT;
			run_free(nr);
			made[i] = NULL;
			continue;
		}
		res->outcome[i] = FSM_OK;
		if (!(it->flags & FIRE_NO_RUN)) {
			nr->scheduled_at = it->scheduled_at;
			nr->due_at = it->due_at;
			nr->priority = j->priority;
			if (it->flags & FIRE_TRIGGER)
				nr->flags |= RUN_F_MANUAL;
			table_insert(&f->runs, nr);
			/* overlap is decided when the run is due (OVERLAP) */
			job_attach(j, nr);
			j->active_runs++;
			j->run_count++;
			f->stats.fired++;
		} else {
			f->stats.misfire_skipped++;
		}
		if (!(it->flags & FIRE_TRIGGER)) {
			if (it->resume_after > j->last_fired)
				j->last_fired = it->resume_after;
			/* after counting the run, so max_runs holds exactly */
			hora_time next = fsm_next_fire(j, it->resume_after);
			if (next == HORA_TIME_NONE) {
				hora_schedule s;
				job_schedule(j, &s);
				if (schedule_is_once(&s))
					j->flags |= JOB_F_DONE;
			}
			int set = store_set_next(f->jobs, j, next);
			HORA_ASSERT(set == 0); /* reserved above */
		}
		if (nr && !(it->flags & FIRE_NO_RUN)) {
			if (nr->due_at <= h->stamp && j->overlap != JOB_OVERLAP_ALLOW)
				/* due already (a trigger, a late instant):
				 * decide now rather than through OVERLAP */
				apply_overlap_policy(f, j, nr, h->stamp);
			else
				notify(f, nr);
			enforce_retention(f, j);
		}
	}
	hora_free(made);
	for (uint32_t i = 0; i < n; i++)
		hora_free(items[i].job);
	hora_free(items);
	return 0;
}

/* ---- LEASE / COMPLETE / EXPIRE ---------------------------------------- */

int fsm__apply_lease(fsm *f, const entry_header *h, wire_reader *r,
		     fsm_result *res)
{
	uint32_t n = h->count;
	int rv = 0;

	/* decode and check the whole entry before changing anything */
	wire_reader probe = *r;
	for (uint32_t i = 0; i < n; i++) {
		wire_get_u64(&probe);
		wire_get_u32(&probe);
		uint32_t wl = wire_get_u32(&probe);
		if (probe.bad || wl > 255 || wire_get(&probe, wl) == NULL)
			return -HORA_ECORRUPT;
		wire_get_u64(&probe);
	}
	if (probe.bad || wire_left(&probe) != 0)
		return -HORA_ECORRUPT;

	for (uint32_t i = 0; i < n && rv == 0; i++) {
		uint64_t id = wire_get_u64(r);
		uint32_t attempt = wire_get_u32(r);
		char *worker = entry_get_str(r, 255);
		hora_time exp = (hora_time)wire_get_u64(r);
		if (worker == NULL)
			return -HORA_ENOMEM; /* earlier items stay applied:
						the node stops on ENOMEM */
		run *x = table_get(&f->runs, id);
		if (x == NULL) {
			res->outcome[i] = FSM_NOT_FOUND;
		} else if (x->attempt != attempt) {
			res->outcome[i] = FSM_CONFLICT;
		} else if (x->status == RUN_SCHEDULED) {
			account_begin(f, x);
			hora_free(x->worker);
			x->worker = worker;
			worker = NULL;
			account_end(f, x);
			x->status = RUN_RUNNING;
			x->started_at = h->stamp;
			if (x->dispatched_at == 0)
				x->dispatched_at = h->stamp;
			x->lease_expires_at = exp;
			res->outcome[i] = FSM_OK;
			notify(f, x);
		} else if (x->status == RUN_RUNNING && x->worker &&
			   strcmp(x->worker, worker) == 0) {
			if (exp > x->lease_expires_at)
				x->lease_expires_at = exp;
			res->outcome[i] = FSM_OK;
			notify(f, x);
		} else {
			res->outcome[i] = FSM_CONFLICT;
		}
		hora_free(worker);
	}
	return rv;
}

int fsm__apply_complete(fsm *f, const entry_header *h, wire_reader *r,
			fsm_result *res)
{
	uint32_t n = h->count;

	wire_reader probe = *r;
	for (uint32_t i = 0; i < n; i++) {
		wire_get_u64(&probe);
		wire_get_u32(&probe);
		uint32_t wl = wire_get_u32(&probe);
		if (probe.bad || wl > 255 || wire_get(&probe, wl) == NULL)
			return -HORA_ECORRUPT;
		uint8_t st = wire_get_u8(&probe);
		if (st < RUN_SUCCEEDED || st > RUN_CANCELLED || st == RUN_SKIPPED)
			return -HORA_ECORRUPT;
		wire_get_u32(&probe);
		for (int k = 0; k < 2; k++) {
			uint32_t l = wire_get_u32(&probe);
			if (probe.bad || l > (1u << 20) || wire_get(&probe, l) == NULL)
				return -HORA_ECORRUPT;
		}
	}
	if (probe.bad || wire_left(&probe) != 0)
		return -HORA_ECORRUPT;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t id = wire_get_u64(r);
		uint32_t attempt = wire_get_u32(r);
		uint32_t wl = wire_get_u32(r);
		const char *worker = (const char *)wire_get(r, wl);
		uint8_t status = wire_get_u8(r);
		int32_t exit_code = (int32_t)wire_get_u32(r);
		uint32_t ol = wire_get_u32(r);
		const char *output = (const char *)wire_get(r, ol);
		uint32_t el = wire_get_u32(r);
		const char *error = (const char *)wire_get(r, el);

		run *x = table_get(&f->runs, id);
		if (x == NULL) {
			res->outcome[i] = FSM_NOT_FOUND;
			continue;
		}
		if (x->status != RUN_RUNNING || x->attempt != attempt ||
		    x->worker == NULL || strlen(x->worker) != wl ||
		    memcmp(x->worker, worker, wl) != 0) {
			res->outcome[i] = FSM_CONFLICT; /* lease lost */
			continue;
		}
		account_begin(f, x);
		run_set_str(&x->output, ol ? output : NULL, ol);
		x->output_len = x->output ? ol : 0;
		run_set_str(&x->error, el ? error : NULL, el);
		account_end(f, x);
		x->exit_code = exit_code;
		res->outcome[i] = FSM_OK;

		job *j = x->attached ? store_get(f->jobs, x->job) : NULL;
		uint32_t max_attempts = j ? j->max_attempts : 1;
		if ((status == RUN_FAILED || status == RUN_TIMED_OUT) &&
		    x->attempt < max_attempts) {
			x->status = RUN_SCHEDULED;
			x->due_at = h->stamp + fsm_retry_delay(j, x->attempt);
			x->attempt++;
			x->lease_expires_at = 0;
			f->stats.retries++;
			notify(f, x);
			continue;
		}
		finalize(f, j, x, (run_status)status, h->stamp);
		enforce_retention(f, j);
	}
	return 0;
}

int fsm__apply_expire(fsm *f, const entry_header *h, wire_reader *r,
		      fsm_result *res)
{
	uint32_t n = h->count;
	/* ENTRY_EXPIRE (format 1's first form) has no lease end */
	size_t item = h->type == ENTRY_EXPIRE2 ? 20 : 12;
	if (wire_left(r) != (size_t)n * item)
		return -HORA_ECORRUPT;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t id = wire_get_u64(r);
		uint32_t attempt = wire_get_u32(r);
		hora_time lease_end = h->type == ENTRY_EXPIRE2
					      ? (hora_time)wire_get_u64(r)
					      : 0;
		run *x = table_get(&f->runs, id);
		if (x == NULL) {
			res->outcome[i] = FSM_NOT_FOUND;
			continue;
		}
		if (x->status != RUN_RUNNING || x->attempt != attempt ||
		    (lease_end != 0 && x->lease_expires_at > lease_end)) {
			/* not running that attempt, or its lease was extended
			 * after the leader saw it expire */
			res->outcome[i] = FSM_CONFLICT;
			continue;
		}
		res->outcome[i] = FSM_OK;
		job *j = x->attached ? store_get(f->jobs, x->job) : NULL;
		uint32_t max_attempts = j ? j->max_attempts : 1;
		f->stats.expired++;
		if (x->attempt >= max_attempts + FSM_EXPIRIES_MAX) {
			set_error(f, x, "failed: the lease expired on every "
					"attempt");
			finalize(f, j, x, RUN_FAILED, h->stamp);
			enforce_retention(f, j);
			continue;
		}
		/* delivered again, with the next attempt number */
		x->status = RUN_SCHEDULED;
		x->attempt++;
		x->due_at = h->stamp;
		x->lease_expires_at = 0;
		notify(f, x);
	}
	return 0;
}

int fsm__apply_overlap(fsm *f, const entry_header *h, wire_reader *r,
		       fsm_result *res)
{
	uint32_t n = h->count;
	if (wire_left(r) != (size_t)n * 8)
		return -HORA_ECORRUPT;
	for (uint32_t i = 0; i < n; i++) {
		run *x = table_get(&f->runs, wire_get_u64(r));
		job *j = x && x->attached ? store_get(f->jobs, x->job) : NULL;
		if (x == NULL || j == NULL) {
			res->outcome[i] = FSM_NOT_FOUND;
			continue;
		}
		if (x->status != RUN_SCHEDULED || (x->flags & RUN_F_OVERLAP)) {
			res->outcome[i] = FSM_CONFLICT;
			continue;
		}
		res->outcome[i] = FSM_OK;
		apply_overlap_policy(f, j, x, h->stamp);
	}
	return 0;
}

/* Forget a run that never started: it leaves every structure as if it
 * had not been fired. */
static void unfire(fsm *f, job *j, run *o)
{
	job_detach(j, o);
	j->active_runs--;
	j->run_count--;
	table_remove(&f->runs, o);
	if (f->observer.run_freed)
		f->observer.run_freed(f->observer.ud, o);
	run_free(o);
}

void fsm__runs_job_paused(fsm *f, job *j, hora_time stamp)
{
	/* "no runs while paused": first attempts fired ahead for instants
	 * after the pause are taken back (a resume fires those instants
	 * again, once); those already due are cancelled; retries of runs
	 * already started and manual runs stay */
	for (run *o = j->runs, *next; o; o = next) {
		next = o->job_next;
		if (o->status != RUN_SCHEDULED || o->attempt != 1 ||
		    (o->flags & RUN_F_MANUAL))
			continue;
		if (o->scheduled_at > stamp) {
			unfire(f, j, o);
			continue;
		}
		set_error(f, o, "cancelled: the job was paused");
		finalize(f, j, o, RUN_CANCELLED, stamp);
	}
	if (j->last_fired > stamp)
		j->last_fired = stamp;
	enforce_retention(f, j);
}

/* ---- queries ---------------------------------------------------------- */

void fsm_set_observer(fsm *f, const fsm_observer *obs)
{
	f->observer = *obs;
}

void fsm_set_history(fsm *f, size_t per_job, size_t bytes)
{
	f->hist_per_job = per_job ? per_job : 1;
	f->hist_bytes = bytes;
}

run *fsm_run(const fsm *f, uint64_t id)
{
	return table_get(&f->runs, id);
}

size_t fsm_run_count(const fsm *f)
{
	return f->runs.count;
}

size_t fsm_run_bytes(const fsm *f)
{
	return f->runs.bytes;
}

const fsm_run_stats *fsm_stats(const fsm *f)
{
	return &f->stats;
}

int fsm_each_run(const fsm *f, int (*fn)(run *r, void *ud), void *ud)
{
	for (size_t i = 0; f->runs.mask && i <= f->runs.mask; i++) {
		for (run *r = f->runs.buckets[i], *next; r; r = next) {
			next = r->hash_next;
			int rv = fn(r, ud);
			if (rv != 0)
				return rv;
		}
	}
	return 0;
}

/* ---- snapshots -------------------------------------------------------- */

enum {
	RT_END = 0,
	RT_ID = 1,
	RT_JOB = 2,
	RT_QUEUE = 3,
	RT_SCHEDULED_AT = 4,
	RT_DUE_AT = 5,
	RT_DISPATCHED_AT = 6,
	RT_STARTED_AT = 7,
	RT_FINISHED_AT = 8,
	RT_LEASE = 9,
	RT_ATTEMPT = 10,
	RT_EXIT = 11,
	RT_STATUS = 12,
	RT_PRIORITY = 13,
	RT_FLAGS = 14,
	RT_ATTACHED = 15,
	RT_WORKER = 16,
	RT_OUTPUT = 17,
	RT_ERROR = 18,
};

static void rt_u64(wire_writer *w, uint16_t tag, uint64_t v)
{
	wire_u16(w, tag);
	wire_u32(w, 8);
	wire_u64(w, v);
}

static void rt_str(wire_writer *w, uint16_t tag, const char *s, size_t n)
{
	wire_u16(w, tag);
	wire_u32(w, (uint32_t)n);
	wire_put(w, s, n);
}

static void snapshot_run(wire_writer *w, const run *r)
{
	rt_u64(w, RT_ID, r->id);
	rt_str(w, RT_JOB, r->job, strlen(r->job));
	rt_str(w, RT_QUEUE, r->queue, strlen(r->queue));
	rt_u64(w, RT_SCHEDULED_AT, (uint64_t)r->scheduled_at);
	rt_u64(w, RT_DUE_AT, (uint64_t)r->due_at);
	rt_u64(w, RT_DISPATCHED_AT, (uint64_t)r->dispatched_at);
	rt_u64(w, RT_STARTED_AT, (uint64_t)r->started_at);
	rt_u64(w, RT_FINISHED_AT, (uint64_t)r->finished_at);
	rt_u64(w, RT_LEASE, (uint64_t)r->lease_expires_at);
	rt_u64(w, RT_ATTEMPT, r->attempt);
	rt_u64(w, RT_EXIT, (uint64_t)(int64_t)r->exit_code);
	rt_u64(w, RT_STATUS, r->status);
	rt_u64(w, RT_PRIORITY, r->priority);
	rt_u64(w, RT_FLAGS, r->flags);
	rt_u64(w, RT_ATTACHED, r->attached);
	if (r->worker)
		rt_str(w, RT_WORKER, r->worker, strlen(r->worker));
	if (r->output)
		rt_str(w, RT_OUTPUT, r->output, r->output_len);
	if (r->error)
		rt_str(w, RT_ERROR, r->error, strlen(r->error));
	wire_u16(w, RT_END);
	wire_flush(w, FSM_SNAPSHOT_CHUNK);
}

static int snapshot_active(job *j, void *ud)
{
	wire_writer *w = ud;
	for (run *r = j->runs; r; r = r->job_next)
		if (!run_is_final(r))
			snapshot_run(w, r);
	return 0;
}

/* Finished runs in finishing order (that order decides evictions), then
 * the active ones by job name and id: deterministic on every replica. */
void fsm__runs_snapshot(const fsm *f, wire_writer *w)
{
	wire_u64(w, f->runs.count);
	for (run *r = f->runs.done_head; r; r = r->done_next)
		snapshot_run(w, r);
	store_each(f->jobs, snapshot_active, w);
}

static int restore_run(wire_reader *r, store *jobs, run **out)
{
	uint64_t id = 0;
	const uint8_t *jname = NULL, *queue = NULL;
	uint32_t job_len = 0, queue_len = 0;
	struct {
		const uint8_t *p;
		uint32_t n;
		bool set;
	} str[3] = {{0}};
	uint64_t v[RT_ERROR + 1] = {0};
	bool seen_id = false;

	for (;;) {
		uint16_t tag = wire_get_u16(r);
		if (r->bad)
			return -HORA_ECORRUPT;
		if (tag == RT_END)
			break;
		uint32_t n = wire_get_u32(r);
		const uint8_t *p = wire_get(r, n);
		if (p == NULL)
			return -HORA_ECORRUPT;
		if (tag == RT_JOB) {
			jname = p;
			job_len = n;
		} else if (tag == RT_QUEUE) {
			queue = p;
			queue_len = n;
		} else if (tag >= RT_WORKER && tag <= RT_ERROR) {
			str[tag - RT_WORKER].p = p;
			str[tag - RT_WORKER].n = n;
			str[tag - RT_WORKER].set = true;
		} else if (tag <= RT_ATTACHED) {
			if (n != 8)
				return -HORA_ECORRUPT;
			uint64_t x = 0;
			for (int i = 7; i >= 0; i--)
				x = x << 8 | p[i];
			v[tag] = x;
			if (tag == RT_ID) {
				id = x;
				seen_id = true;
			}
		}
	}
	if (!seen_id || jname == NULL || queue == NULL || job_len == 0 ||
	    job_len > JOB_NAME_MAX || queue_len == 0 ||
	    queue_len > JOB_QUEUE_MAX || v[RT_STATUS] >= RUN_STATUS_COUNT ||
	    memchr(jname, 0, job_len) || memchr(queue, 0, queue_len) ||
	    v[RT_ATTEMPT] == 0 || v[RT_ATTEMPT] > UINT32_MAX ||
	    v[RT_PRIORITY] > JOB_PRIORITY_MAX)
		return -HORA_ECORRUPT;
	char name[JOB_NAME_MAX + 1], qname[JOB_QUEUE_MAX + 1];
	memcpy(name, jname, job_len);
	name[job_len] = '\0';
	memcpy(qname, queue, queue_len);
	qname[queue_len] = '\0';
	const char *q = store_intern(jobs, qname);
	if (q == NULL)
		return -HORA_ENOMEM;
	run *x = run_new(id, name, q);
	if (x == NULL)
		return -HORA_ENOMEM;
	x->scheduled_at = (hora_time)v[RT_SCHEDULED_AT];
	x->due_at = (hora_time)v[RT_DUE_AT];
	x->dispatched_at = (hora_time)v[RT_DISPATCHED_AT];
	x->started_at = (hora_time)v[RT_STARTED_AT];
	x->finished_at = (hora_time)v[RT_FINISHED_AT];
	x->lease_expires_at = (hora_time)v[RT_LEASE];
	x->attempt = (uint32_t)v[RT_ATTEMPT];
	x->exit_code = (int32_t)(int64_t)v[RT_EXIT];
	x->status = (uint8_t)v[RT_STATUS];
	x->priority = (uint8_t)v[RT_PRIORITY];
	x->flags = (uint8_t)v[RT_FLAGS];
	x->attached = v[RT_ATTACHED] != 0;
	char **fields[3] = {&x->worker, &x->output, &x->error};
	for (int k = 0; k < 3; k++) {
		if (!str[k].set)
			continue;
		if (memchr(str[k].p, 0, str[k].n) ||
		    run_set_str(fields[k], (const char *)str[k].p, str[k].n) !=
			    0) {
			run_free(x);
			return memchr(str[k].p, 0, str[k].n) ? -HORA_ECORRUPT
							     : -HORA_ENOMEM;
		}
	}
	x->output_len = x->output ? str[1].n : 0;
	*out = x;
	return 0;
}

int fsm__runs_restore(fsm_runs_state *rs, store *jobs, wire_reader *r)
{
	if (wire_left(r) == 0)
		return 0; /* a snapshot without runs */
	uint64_t count = wire_get_u64(r);
	int rv;
	if (r->bad || count > wire_left(r) / 2)
		return -HORA_ECORRUPT;
	if ((rv = table_reserve(rs, count)) != 0)
		return rv;
	for (uint64_t i = 0; i < count; i++) {
		run *x;
		if ((rv = restore_run(r, jobs, &x)) != 0)
			return rv;
		if (table_get(rs, x->id) != NULL) {
			run_free(x);
			return -HORA_ECORRUPT;
		}
		job *j = x->attached ? store_get(jobs, x->job) : NULL;
		if ((x->attached && j == NULL) ||
		    (!run_is_final(x) && !x->attached)) {
			run_free(x);
			return -HORA_ECORRUPT;
		}
		table_insert(rs, x);
		if (run_is_final(x))
			done_append(rs, x);
		if (j) {
			job_attach(j, x);
			if (!run_is_final(x))
				j->active_runs++;
		}
	}
	return 0;
}
