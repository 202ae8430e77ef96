#include "cluster/plan.h"

#include <string.h>

#include "core/hash.h"
#include "cron/schedule.h"
#include "fsm/fsm.h"
#include "sched/heap.h"

int64_t plan_jitter(const char *name, hora_time instant, int64_t jitter)
{
	if (jitter <= 0)
		return 0;
	uint64_t h = hora_fnv1a64(HORA_FNV1A64_INIT, name, strlen(name));
	h ^= (uint64_t)instant;
	h *= 0xff51afd7ed558ccdu;
	h ^= h >> 33;
	return (int64_t)(h % (uint64_t)(jitter + 1));
}

hora_time plan_due_at(const job *j, hora_time instant)
{
	return instant + plan_jitter(job_name(j), instant,
				     job_opt_get(j, JOB_OPT_JITTER, 0));
}

static void plan_add(plan *p, job *j, hora_time expect, hora_time at,
		     hora_time resume, uint8_t flags)
{
	p->items[p->n++] = (fire_item){
		.job = job_name(j),
		.expect = expect,
		.scheduled_at = at,
		.due_at = plan_due_at(j, at),
		.resume_after = resume,
		.flags = flags,
	};
}

/* Plan the instants of j due by the horizon (or missed). */
static void plan_job(plan *p, job *j)
{
	hora_time t = j->next_run_at;
	hora_time grace = PLAN_MISFIRE_GRACE_MS * HORA_USEC_PER_MS;

	if (t < p->now - grace) {
		/* instants that fell due while no leader was up */
		p->misfires++;
		if (j->misfire == JOB_MISFIRE_SKIP) {
			plan_add(p, j, t, 0, p->now, FIRE_NO_RUN);
			return;
		}
		if (j->misfire == JOB_MISFIRE_ONCE) {
			hora_time last = t, k = t;
			for (int guard = 0; guard < 100000; guard++) {
				k = fsm_next_fire(j, k);
				if (k == HORA_TIME_NONE || k > p->now)
					break;
				last = k;
			}
			plan_add(p, j, t, last, p->now, 0);
			return;
		}
		/* all: each missed instant, in order */
	}
	for (int k = 0; k < (t < p->now - grace ? PLAN_MISFIRE_ALL_MAX
					       : PLAN_PER_JOB_MAX) &&
			p->n < PLAN_ITEMS_MAX;
	     k++) {
		plan_add(p, j, t, t, t, 0);
		hora_time next = fsm_next_fire(j, t);
		if (next == HORA_TIME_NONE || next > p->horizon)
			break;
		/* the next item's expect is what applying this one sets */
		hora_schedule s;
		job_schedule(j, &s);
		if (schedule_is_once(&s))
			break;
		t = next;
	}
}

/* Depth-first walk of the fire heap: only subtrees whose root is due by
 * the horizon can hold due jobs, so this costs O(due jobs). */
static void plan_walk(plan *p, const heap_entry *v, uint32_t len, uint32_t i)
{
	if (i >= len || p->n >= PLAN_ITEMS_MAX || v[i].key > p->horizon)
		return;
	plan_job(p, v[i].item);
	for (uint32_t c = 4 * i + 1; c <= 4 * i + 4; c++)
		plan_walk(p, v, len, c);
}

void plan_make(plan *p, const store *s, hora_time now)
{
	const heap_entry *v;
	uint32_t len = store_fire_heap(s, &v);
	p->now = now;
	p->horizon = now + PLAN_LOOKAHEAD_MS * HORA_USEC_PER_MS;
	p->misfires = 0;
	p->n = 0;
	plan_walk(p, v, len, 0);
}
