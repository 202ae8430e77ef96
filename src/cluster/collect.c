#include "cluster/collect.h"

#include "sched/run.h"

bool collect_due(const job *j, hora_time cutoff)
{
	if (!(j->flags & JOB_F_DONE) || j->active_runs > 0)
		return false;
	/* newest run first: it ended last */
	hora_time ended = j->runs ? j->runs->finished_at : j->updated_at;
	return ended <= cutoff;
}

typedef struct scan {
	hora_time cutoff;
	const char **names;
	size_t n, max;
} scan;

static int visit(job *j, void *ud)
{
	scan *g = ud;
	if (!collect_due(j, g->cutoff))
		return 0;
	g->names[g->n++] = job_name(j);
	return g->n == g->max;
}

size_t collect_scan(const store *s, hora_time cutoff, const char **names,
		    size_t max)
{
	scan g = {cutoff, names, 0, max};
	if (max > 0)
		store_each(s, visit, &g);
	return g.n;
}
