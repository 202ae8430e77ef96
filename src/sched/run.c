#include "sched/run.h"

#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/err.h"

run *run_new(uint64_t id, const char *job, const char *queue)
{
	size_t n = strlen(job);
	run *r = hora_calloc(1, sizeof *r + n + 1);
	if (r == NULL)
		return NULL;
	r->id = id;
	r->queue = queue;
	r->attempt = 1;
	r->exit_code = -1;
	r->status = RUN_SCHEDULED;
	memcpy(r->job, job, n + 1);
	return r;
}

void run_free(run *r)
{
	if (r == NULL)
		return;
	/* the dispatcher lets go of a run before the state machine frees
	 * it (fsm_observer.run_freed, .reset) */
	HORA_ASSERT(r->lead == NULL);
	hora_free(r->worker);
	hora_free(r->output);
	hora_free(r->error);
	hora_free(r);
}

static const char *const names[RUN_STATUS_COUNT] = {
	"scheduled", "running", "succeeded", "failed",
	"timed_out", "skipped", "cancelled",
};

const char *run_status_str(int status)
{
	return status >= 0 && status < RUN_STATUS_COUNT ? names[status]
							: "unknown";
}

const char *run_status_name(const run *r, hora_time now)
{
	if (r->status == RUN_SCHEDULED && r->due_at <= now)
		return "ready";
	return names[r->status];
}

int run_status_parse(const char *s, bool *ready)
{
	*ready = false;
	if (strcmp(s, "ready") == 0) {
		*ready = true;
		return RUN_SCHEDULED;
	}
	for (int i = 0; i < RUN_STATUS_COUNT; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

bool run_is_final(const run *r)
{
	return r->status >= RUN_SUCCEEDED;
}

int run_set_str(char **field, const char *s, size_t len)
{
	char *copy = NULL;
	if (s != NULL) {
		copy = hora_strndup(s, len);
		if (copy == NULL)
			return -HORA_ENOMEM;
	}
	hora_free(*field);
	*field = copy;
	return 0;
}

size_t run_size(const run *r)
{
	size_t n = sizeof *r + strlen(r->job) + 1;
	if (r->worker)
		n += strlen(r->worker) + 1;
	if (r->output)
		n += r->output_len + 1;
	if (r->error)
		n += strlen(r->error) + 1;
	return n;
}
