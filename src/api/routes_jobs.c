/* /v1/jobs...: create, replace, read, list, delete, pause, resume. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "api/api_int.h"
#include "api/job_json.h"
#include "api/run_json.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "fsm/entry.h"
#include "fsm/fsm.h"

#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000
#define LIST_LABELS_MAX 16

enum {
	PK_PUT,
	PK_CREATE,
	PK_BATCH,
	PK_DELETE,
	PK_PAUSE,
	PK_RESUME,
};

static const char *method_of(api_call *c)
{
	return http_request_method(c->req);
}

static bool is(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static void method_not_allowed(api_call *c, const char *allow)
{
	http_response_header(c->req, "Allow", allow);
	api_reply_error(c, 405, "method_not_allowed",
			"this route does not take that method", NULL);
}


/* The job as JSON for a reply, with its last run. */
static json_t *job_json(const job *j)
{
	json_t *o = job_to_json(j);
	if (o && j->runs)
		json_object_set_new(o, "last_run",
				    run_summary_json(j->runs,
						     hora_wallclock_usec()));
	return o;
}

static store *jobs_of(api_call *c)
{
	return fsm_store(node_fsm(c->a->node));
}

/* A write whose outcome is unknown: the leader changed before it was
 * committed, so it may or may not be in the log. */
static void reply_commit_failed(api_call *c, int status)
{
	if (status == -HORA_ENOTLEADER || status == -HORA_ESHUTDOWN) {
		http_response_header(c->req, "Retry-After", "1");
		api_reply_error(c, 503, "unavailable",
				"leadership changed before the write was "
				"committed; it may or may not have been "
				"applied: retry it (PUT is idempotent)",
				NULL);
		return;
	}
	api_reply_error(c, 500, "internal", hora_strerror(status), NULL);
}

static void not_found(api_call *c, const char *name)
{
	char msg[300];
	snprintf(msg, sizeof msg, "no job named '%s'", name);
	api_reply_error(c, 404, "not_found", msg, NULL);
}

/* ---- writes ----------------------------------------------------------- */

static void put_committed(void *ud, int status, const fsm_result *res)
{
	api_pending *p = api_pending_take(ud);
	if (p == NULL)
		return; /* the client left */
	api_call *c = &p->call;
	if (status != 0) {
		reply_commit_failed(c, status);
	} else if (res == NULL || res->count < 1) {
		api_reply_error(c, 500, "internal", "no result for the write",
				NULL);
	} else if (res->outcome[0] == FSM_CONFLICT) {
		char msg[300];
		snprintf(msg, sizeof msg, "a job named '%s' already exists",
			 p->name);
		api_reply_error(c, 409, "already_exists", msg, "name");
	} else {
		job *j = store_get(jobs_of(c), p->name);
		if (j == NULL) /* deleted by a later entry already */
			not_found(c, p->name);
		else
			api_reply_json(c,
				       res->outcome[0] == FSM_CREATED ? 201 : 200,
				       job_json(j));
	}
	api_pending_free(p);
}

/* A name for a one-shot job created without one. */
static void generate_name(char out[JOB_NAME_MAX + 1])
{
	uint64_t r = 0;
	if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
		r = (uint64_t)uv_hrtime();
	snprintf(out, JOB_NAME_MAX + 1, "once-%016llx", (unsigned long long)r);
}

static void put_job(api_call *c, const char *url_name, bool create)
{
	json_t *obj = api_body_object(c);
	job_spec spec;
	hora_error err;
	uint8_t *buf;
	size_t len;

	if (obj == NULL)
		return;
	hora_error_clear(&err);
	if (job_spec_from_json(obj, url_name, create, &spec, &err) != 0) {
		json_decref(obj);
		api_reply_hora_error(c, &err);
		return;
	}
	json_decref(obj);
	if (spec.name == NULL) {
		char name[JOB_NAME_MAX + 1];
		generate_name(name);
		spec.name = hora_strdup(name);
		if (spec.name == NULL) {
			job_spec_free(&spec);
			api_reply_error(c, 500, "internal", "out of memory",
					NULL);
			return;
		}
	}
	api_pending *p = api_pending_new(c, create ? PK_CREATE : PK_PUT);
	int rv = p ? entry_encode_put(&spec, 1,
				      create ? ENTRY_PUT_CREATE_ONLY : 0,
				      api_stamp(c->a), &buf, &len)
		   : -HORA_ENOMEM;
	if (rv != 0) {
		job_spec_free(&spec);
		if (p) {
			api_pending_settle(p);
			api_pending_free(p);
		}
		api_reply_error(c, 500, "internal", "out of memory", NULL);
		return;
	}
	snprintf(p->name, sizeof p->name, "%s", spec.name);
	job_spec_free(&spec);
	api_pending_propose(p, buf, len, put_committed);
}

static void batch_committed(void *ud, int status, const fsm_result *res)
{
	api_pending *p = api_pending_take(ud);
	if (p == NULL)
		return; /* the client left */
	api_call *c = &p->call;
	if (status != 0) {
		reply_commit_failed(c, status);
	} else if (res == NULL || res->count != p->n) {
		api_reply_error(c, 500, "internal", "no result for the batch",
				NULL);
	} else {
		json_t *arr = json_array();
		size_t created = 0;
		for (size_t i = 0; i < p->n; i++) {
			bool cr = res->outcome[i] == FSM_CREATED;
			created += cr;
			json_array_append_new(
				arr, json_pack("{s:s,s:s}", "name", p->names[i],
					       "result",
					       cr ? "created" : "replaced"));
		}
		api_reply_json(c, 200,
			       json_pack("{s:I,s:I,s:o}", "created",
					 (json_int_t)created, "replaced",
					 (json_int_t)(p->n - created), "jobs",
					 arr));
	}
	api_pending_free(p);
}

static void batch_jobs(api_call *c)
{
	json_t *obj = api_body_object(c);
	job_spec *specs;
	size_t n;
	hora_error err;
	uint8_t *buf = NULL;
	size_t len;
	int rv;

	if (obj == NULL)
		return;
	hora_error_clear(&err);
	if (job_batch_from_json(obj, &specs, &n, &err) != 0) {
		json_decref(obj);
		api_reply_hora_error(c, &err);
		return;
	}
	json_decref(obj);
	api_pending *p = api_pending_new(c, PK_BATCH);
	rv = p ? 0 : -HORA_ENOMEM;
	if (rv == 0 && (p->names = hora_calloc(n, sizeof *p->names)) == NULL)
		rv = -HORA_ENOMEM;
	for (size_t i = 0; rv == 0 && i < n; i++, p->n++) {
		p->names[i] = hora_strdup(specs[i].name);
		if (p->names[i] == NULL)
			rv = -HORA_ENOMEM;
	}
	if (rv == 0)
		rv = entry_encode_put(specs, n, 0, api_stamp(c->a), &buf, &len);
	job_batch_free(specs, n);
	if (rv != 0) {
		if (p) {
			api_pending_settle(p);
			api_pending_free(p);
		}
		api_reply_error(c, 500, "internal", "out of memory", NULL);
		return;
	}
	api_pending_propose(p, buf, len, batch_committed);
}

static void names_committed(void *ud, int status, const fsm_result *res)
{
	api_pending *p = api_pending_take(ud);
	if (p == NULL)
		return; /* the client left */
	api_call *c = &p->call;
	if (status != 0) {
		reply_commit_failed(c, status);
	} else if (res == NULL || res->count < 1) {
		api_reply_error(c, 500, "internal", "no result for the write",
				NULL);
	} else if (res->outcome[0] == FSM_NOT_FOUND) {
		not_found(c, p->name);
	} else if (p->kind == PK_DELETE) {
		api_reply_json(c, 200,
			       json_pack("{s:s,s:b}", "name", p->name,
					 "deleted", 1));
	} else {
		job *j = store_get(jobs_of(c), p->name);
		if (j == NULL)
			not_found(c, p->name);
		else
			api_reply_json(c, 200, job_json(j));
	}
	api_pending_free(p);
}

static void name_write(api_call *c, const char *name, int kind)
{
	uint8_t *buf;
	size_t len;
	const char *names[1] = {name};
	int rv;

	if (store_get(jobs_of(c), name) == NULL) {
		not_found(c, name);
		return;
	}
	api_pending *p = api_pending_new(c, kind);
	if (p == NULL) {
		api_reply_error(c, 500, "internal", "out of memory", NULL);
		return;
	}
	snprintf(p->name, sizeof p->name, "%s", name);
	if (kind == PK_DELETE)
		rv = entry_encode_names(ENTRY_DELETE_JOBS, 0, names, 1,
					api_stamp(c->a), &buf, &len);
	else
		rv = entry_encode_names(ENTRY_SET_PAUSED,
					kind == PK_PAUSE ? 1 : 0, names, 1,
					api_stamp(c->a), &buf, &len);
	if (rv != 0) {
		api_pending_settle(p);
		api_pending_free(p);
		api_reply_error(c, 500, "internal", "out of memory", NULL);
		return;
	}
	api_pending_propose(p, buf, len, names_committed);
}

/* ---- reads ------------------------------------------------------------ */

typedef struct label_filter {
	char key[JOB_LABEL_KEY_MAX + 1];
	const char *value;
} label_filter;

typedef struct label_filters {
	label_filter f[LIST_LABELS_MAX];
	size_t n;
	bool bad;
} label_filters;

static int collect_label(void *ud, const char *name, const char *value)
{
	label_filters *lf = ud;
	const char *eq = strchr(value, '=');
	(void)name;
	if (eq == NULL || eq == value ||
	    (size_t)(eq - value) > JOB_LABEL_KEY_MAX ||
	    lf->n == LIST_LABELS_MAX) {
		lf->bad = true;
		return 1;
	}
	label_filter *f = &lf->f[lf->n++];
	memcpy(f->key, value, (size_t)(eq - value));
	f->key[eq - value] = '\0';
	f->value = eq + 1;
	return 0;
}

static bool labels_match(const job *j, const label_filters *lf)
{
	for (size_t i = 0; i < lf->n; i++) {
		const char *v = job_label(j, lf->f[i].key);
		if (v == NULL || strcmp(v, lf->f[i].value) != 0)
			return false;
	}
	return true;
}

static void list_jobs(api_call *c)
{
	const char *prefix = http_request_query(c->req, "prefix");
	const char *cursor = http_request_query(c->req, "cursor");
	const char *limit_s = http_request_query(c->req, "limit");
	long limit = LIST_LIMIT_DEFAULT;
	label_filters lf = {.n = 0, .bad = false};
	store *s = jobs_of(c);

	if (limit_s != NULL) {
		char *end;
		limit = strtol(limit_s, &end, 10);
		if (*limit_s == '\0' || *end != '\0' || limit < 1 ||
		    limit > LIST_LIMIT_MAX) {
			char msg[128];
			snprintf(msg, sizeof msg,
				 "limit must be a whole number from 1 to %d",
				 LIST_LIMIT_MAX);
			api_reply_error(c, 400, "invalid_argument", msg,
					"limit");
			return;
		}
	}
	http_request_query_each(c->req, "label", collect_label, &lf);
	if (lf.bad) {
		api_reply_error(c, 400, "invalid_argument",
				"label filters look like label=key=value "
				"(at most 16)",
				"label");
		return;
	}
	if (prefix && *prefix == '\0')
		prefix = NULL;
	if (cursor && *cursor == '\0')
		cursor = NULL;
	size_t plen = prefix ? strlen(prefix) : 0;

	json_t *arr = json_array();
	long n = 0;
	const char *last = NULL;
	job *j;
	if (cursor != NULL)
		j = store_seek(s, cursor, false);
	else
		j = store_seek(s, prefix, true);
	bool more = false;
	for (; j != NULL; j = store_seek(s, job_name(j), false)) {
		if (prefix && strncmp(job_name(j), prefix, plen) != 0) {
			if (strncmp(job_name(j), prefix, plen) > 0)
				break; /* sorted: past the prefix range */
			continue;
		}
		if (!labels_match(j, &lf))
			continue;
		if (n == limit) {
			more = true;
			break;
		}
		json_array_append_new(arr, job_json(j));
		last = job_name(j);
		n++;
	}
	json_t *body = json_object();
	json_object_set_new(body, "jobs", arr);
	json_object_set_new(body, "next_cursor",
			    more && last ? json_string(last) : json_null());
	api_reply_json(c, 200, body);
}

static void get_job(api_call *c, const char *name)
{
	job *j = store_get(jobs_of(c), name);
	if (j == NULL) {
		not_found(c, name);
		return;
	}
	api_reply_json(c, 200, job_json(j));
}

/* ---- routing ---------------------------------------------------------- */

void api_jobs_route(api_call *c, const char *const *seg, size_t nseg)
{
	const char *m = method_of(c);

	if (is(seg[0], "jobs:batch") && nseg == 1) {
		c->route = API_ROUTE_JOB_BATCH;
		if (!is(m, "POST"))
			return method_not_allowed(c, "POST");
		return batch_jobs(c);
	}
	if (is(seg[0], "jobs") && nseg == 1) {
		if (is(m, "GET")) {
			c->route = API_ROUTE_JOB_LIST;
			return list_jobs(c);
		}
		c->route = API_ROUTE_JOB_CREATE;
		if (!is(m, "POST"))
			return method_not_allowed(c, "GET, POST");
		return put_job(c, NULL, true);
	}
	if (is(seg[0], "jobs") && nseg == 2) {
		const char *name = seg[1];
		if (is(m, "GET")) {
			c->route = API_ROUTE_JOB_GET;
			return get_job(c, name);
		}
		if (is(m, "PUT")) {
			c->route = API_ROUTE_JOB_PUT;
			return put_job(c, name, false);
		}
		if (is(m, "DELETE")) {
			c->route = API_ROUTE_JOB_DELETE;
			return name_write(c, name, PK_DELETE);
		}
		return method_not_allowed(c, "GET, PUT, DELETE");
	}
	if (is(seg[0], "jobs") && nseg == 3) {
		const char *name = seg[1];
		const char *verb = seg[2];
		if (is(verb, "pause") || is(verb, "resume")) {
			c->route = is(verb, "pause") ? API_ROUTE_JOB_PAUSE
						     : API_ROUTE_JOB_RESUME;
			if (!is(m, "POST"))
				return method_not_allowed(c, "POST");
			return name_write(c, name,
					  is(verb, "pause") ? PK_PAUSE
							    : PK_RESUME);
		}
		if (is(verb, "trigger")) {
			c->route = API_ROUTE_JOB_TRIGGER;
			if (!is(m, "POST"))
				return method_not_allowed(c, "POST");
			return api_trigger(c, name);
		}
		if (is(verb, "runs")) {
			c->route = API_ROUTE_JOB_RUNS;
			if (!is(m, "GET"))
				return method_not_allowed(c, "GET");
			return api_job_runs(c, name);
		}
	}
	if (is(seg[0], "runs") || is(seg[0], "runs:complete") ||
	    is(seg[0], "queues"))
		return api_runs_route(c, seg, nseg);
	api_reply_error(c, 404, "not_found", "no such route", NULL);
}
