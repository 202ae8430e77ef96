#include "cluster/expiry.h"

#include <stdio.h>
#include <string.h>

#include "core/timefmt.h"

hora_time expiry_deadline(const run *r, const job *j, hora_time lease_floor)
{
	hora_time t = r->lease_expires_at > lease_floor ? r->lease_expires_at
						       : lease_floor;
	if (j && job_has_opt(j, JOB_OPT_TIMEOUT)) {
		hora_time to = r->started_at + job_opt_get(j, JOB_OPT_TIMEOUT, 0) +
			       EXPIRY_TIMEOUT_GRACE_MS * HORA_USEC_PER_MS;
		if (to < t)
			t = to;
	}
	return t;
}

expiry_kind expiry_decide(const run *r, hora_time deadline, hora_time now)
{
	if (r->status != RUN_RUNNING || deadline > now)
		return EXPIRY_NONE;
	return r->lease_expires_at <= now ? EXPIRY_LEASE : EXPIRY_TIMEOUT;
}

expire_item expiry_expire_item(const run *r)
{
	return (expire_item){r->id, r->attempt, r->lease_expires_at};
}

complete_item expiry_timeout_item(const run *r, const job *j,
				  char msg[EXPIRY_MSG_MAX])
{
	char dur[HORA_DURATION_STRLEN];
	duration_format(j ? job_opt_get(j, JOB_OPT_TIMEOUT, 0) : 0, dur);
	snprintf(msg, EXPIRY_MSG_MAX, "timed out after %s", dur);
	return (complete_item){
		.run = r->id,
		.attempt = r->attempt,
		.worker = r->worker ? r->worker : "",
		.status = RUN_TIMED_OUT,
		.exit_code = -1,
		.error = msg,
	};
}

hora_time expiry_inherited(hora_time lease_end, hora_time now)
{
	hora_time floor = now + EXPIRY_INHERIT_GRACE_MS * HORA_USEC_PER_MS;
	return lease_end < floor ? floor : lease_end;
}

bool expiry_holds(const run *r, bool handed_out, const char *worker)
{
	if (r->status == RUN_RUNNING)
		return r->worker && strcmp(r->worker, worker) == 0;
	return r->status == RUN_SCHEDULED && handed_out;
}
