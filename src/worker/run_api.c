#include "worker/run_api.h"

#include <stdio.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/err.h"
#include "sched/run.h"

static char *queue_path(const char *queue, const char *what)
{
	hora_buf b = HORA_BUF_INIT;
	buf_adds(&b, "/v1/queues/");
	buf_add_pct(&b, queue, BUF_PCT_SEGMENT);
	buf_addc(&b, '/');
	buf_adds(&b, what);
	return buf_take(&b, NULL);
}

char *run_api_claim_path(const char *queue)
{
	return queue_path(queue, "claim");
}

char *run_api_stream_path(const char *queue)
{
	return queue_path(queue, "stream");
}

json_t *run_api_stream_body(const char *worker, unsigned max_inflight,
			    int64_t lease_ms)
{
	return json_pack("{s:s,s:i,s:I}", "worker", worker, "max_inflight",
			 (int)max_inflight, "lease_ms", (json_int_t)lease_ms);
}

char *run_api_run_path(const char *id, const char *what)
{
	hora_buf b = HORA_BUF_INIT;
	buf_adds(&b, "/v1/runs/");
	buf_add_pct(&b, id, BUF_PCT_SEGMENT);
	buf_addc(&b, '/');
	buf_adds(&b, what);
	return buf_take(&b, NULL);
}

json_t *run_api_claim_body(const char *worker, unsigned max, int64_t wait_ms,
			   int64_t lease_ms)
{
	return json_pack("{s:s,s:i,s:I,s:I}", "worker", worker, "max",
			 (int)max, "wait_ms", (json_int_t)wait_ms, "lease_ms",
			 (json_int_t)lease_ms);
}

json_t *run_api_heartbeat_body(const char *worker, int64_t lease_ms)
{
	return json_pack("{s:s,s:I}", "worker", worker, "lease_ms",
			 (json_int_t)lease_ms);
}

json_t *run_api_complete_body(const char *worker, const engine_result *res)
{
	json_t *o = json_pack("{s:s,s:s,s:i,s:I,s:s%}", "worker", worker,
			      "status", run_status_str(res->status),
			      "exit_code", res->exit_code, "attempt",
			      (json_int_t)res->attempt, "output",
			      res->output ? res->output : "",
			      res->output ? res->output_len : 0);
	if (o != NULL && res->error != NULL && res->error[0] != '\0' &&
	    json_object_set_new(o, "error", json_string(res->error)) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int run_api_claimed(const json_t *answer, engine_claimed **out, size_t *n)
{
	const json_t *runs = json_object_get(answer, "runs");
	const json_t *rj;
	size_t i;

	*out = NULL;
	*n = 0;
	if (!json_is_array(runs))
		return -HORA_EINVAL;
	if (json_array_size(runs) == 0)
		return 0;
	*out = hora_calloc(json_array_size(runs), sizeof **out);
	if (*out == NULL)
		return -HORA_ENOMEM;
	json_array_foreach(runs, i, rj) (*out)[i] = run_api_claimed_one(rj);
	*n = json_array_size(runs);
	return 0;
}

engine_claimed run_api_claimed_one(const json_t *rj)
{
	json_int_t attempt = json_integer_value(json_object_get(rj, "attempt"));
	return (engine_claimed){
		.id = json_string_value(json_object_get(rj, "id")),
		.job = json_string_value(json_object_get(rj, "job")),
		.scheduled_at =
			json_string_value(json_object_get(rj, "scheduled_at")),
		.attempt = attempt > 0 && attempt <= UINT32_MAX
				   ? (uint32_t)attempt
				   : 1,
		.payload = json_object_get(rj, "payload"),
		.command = json_object_get(rj, "command"),
		.http = json_object_get(rj, "http"),
	};
}

engine_outcome run_api_outcome(long status)
{
	if (status >= 200 && status < 300)
		return ENGINE_OK;
	/* worth trying again: no answer, back-pressure, or a server-side
	 * failure (no leader, leader changing) */
	if (status == 0 || status == 429 || status >= 500)
		return ENGINE_TRANSIENT;
	if (status == 409 || status == 404)
		return ENGINE_LOST;
	return ENGINE_REJECTED;
}

const char *run_api_why(run_api_call call, long status, const json_t *answer,
			char *buf, size_t n)
{
	if (status == 409 &&
	    (call == RUN_API_HEARTBEAT || call == RUN_API_COMPLETE))
		return ENGINE_WHY_LEASE_LOST;
	if (status == 404 && call == RUN_API_HEARTBEAT)
		return ENGINE_WHY_NO_RUN;

	const json_t *e = json_object_get(answer, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));
	const char *code = json_string_value(json_object_get(e, "code"));

	if (msg != NULL)
		snprintf(buf, n, "HTTP %ld %s: %s", status,
			 code ? code : "error", msg);
	else
		snprintf(buf, n, "HTTP %ld", status);
	return buf;
}
