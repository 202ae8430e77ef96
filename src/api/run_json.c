#include "api/run_json.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cluster/dispatch.h"
#include "core/timefmt.h"

static json_t *time_or_null(hora_time t)
{
	char buf[HORA_TIME_STRLEN];
	if (t == 0 || t == HORA_TIME_NONE)
		return json_null();
	timefmt_format(t, 0, TIMEFMT_Z, buf);
	return json_string(buf);
}

static json_t *id_json(uint64_t id)
{
	char buf[24];
	snprintf(buf, sizeof buf, "%llu", (unsigned long long)id);
	return json_string(buf);
}

/* The jobs' extra objects, parsed once per job version: every run handed
 * out, streamed or listed shows its job's payload, command and http, and
 * parsing them again each time (a payload may be 64 KiB) cost more than
 * the rest of the run's JSON.  Direct-mapped by the job's address; an
 * entry is valid for the same job object at the same version (a job
 * object is never reused at a version it had: a newer PUT has a newer
 * index).  The values are shared and never modified.  Loop thread only,
 * like everything in src/api. */
#define EXTRA_CACHE_SLOTS 256

static struct extra_slot {
	const job *j;
	uint64_t version;
	size_t len;
	json_t *v;
} extra_cache[EXTRA_CACHE_SLOTS];

json_t *job_extra_json(const job *j)
{
	if (j == NULL || j->extra_len == 0)
		return NULL;
	struct extra_slot *e =
		&extra_cache[((uintptr_t)j / sizeof(void *)) % EXTRA_CACHE_SLOTS];
	if (e->v != NULL && e->j == j && e->version == j->version &&
	    e->len == j->extra_len)
		return json_incref(e->v);
	json_t *v = json_loadb(job_extra(j), j->extra_len, 0, NULL);
	if (v != NULL) {
		json_decref(e->v);
		*e = (struct extra_slot){j, j->version, j->extra_len,
					 json_incref(v)};
	}
	return v;
}

json_t *run_to_json(const run *r, const job *j, hora_time now)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", id_json(r->id));
	json_object_set_new(o, "job", json_string(r->job));
	json_object_set_new(o, "queue", json_string(r->queue));
	json_object_set_new(o, "scheduled_at", time_or_null(r->scheduled_at));
	json_object_set_new(o, "due_at", time_or_null(r->due_at));
	json_object_set_new(o, "dispatched_at", time_or_null(r->dispatched_at));
	json_object_set_new(o, "started_at", time_or_null(r->started_at));
	json_object_set_new(o, "finished_at", time_or_null(r->finished_at));
	json_object_set_new(o, "attempt", json_integer(r->attempt));
	json_object_set_new(o, "status",
			    json_string(run_status_name(r, now)));
	json_object_set_new(o, "priority", json_integer(r->priority));
	json_object_set_new(o, "manual", json_boolean(r->flags & RUN_F_MANUAL));
	json_object_set_new(o, "worker",
			    r->worker ? json_string(r->worker) : json_null());
	json_object_set_new(o, "exit_code",
			    r->exit_code >= 0 || run_is_final(r)
				    ? (r->exit_code == -1 ? json_null()
							  : json_integer(r->exit_code))
				    : json_null());
	json_object_set_new(o, "output",
			    r->output ? json_stringn(r->output, r->output_len)
				      : json_null());
	json_object_set_new(o, "error",
			    r->error ? json_string(r->error) : json_null());
	json_object_set_new(o, "lease_expires_at",
			    r->status == RUN_RUNNING
				    ? time_or_null(r->lease_expires_at)
				    : json_null());
	dispatch_handout h;
	if (r->status == RUN_SCHEDULED && dispatch_handout_of(r, &h) &&
	    h.worker) {
		/* handed out by this leader; its LEASE entry is on its way
		 * (runs are handed out from memory, docs/runs.md) */
		json_object_set_new(o, "status", json_string("running"));
		json_object_set_new(o, "worker", json_string(h.worker));
		json_object_set_new(o, "started_at", time_or_null(h.started));
		if (r->dispatched_at == 0)
			json_object_set_new(o, "dispatched_at",
					    time_or_null(h.started));
		json_object_set_new(o, "lease_expires_at",
				    time_or_null(h.expires));
	}
	json_t *extra = job_extra_json(j);
	json_t *payload = extra ? json_object_get(extra, "payload") : NULL;
	json_object_set(o, "payload", payload ? payload : json_null());
	json_t *cmd = extra ? json_object_get(extra, "command") : NULL;
	json_t *http = extra ? json_object_get(extra, "http") : NULL;
	json_object_set(o, "command", cmd ? cmd : json_null());
	json_object_set(o, "http", http ? http : json_null());
	json_decref(extra);
	return o;
}

json_t *run_summary_json(const run *r, hora_time now)
{
	return json_pack("{s:o,s:s,s:o,s:o,s:i}", "id", id_json(r->id),
			 "status", run_status_name(r, now), "scheduled_at",
			 time_or_null(r->scheduled_at), "finished_at",
			 time_or_null(r->finished_at), "attempt",
			 (int)r->attempt);
}
