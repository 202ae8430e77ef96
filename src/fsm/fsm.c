#include "fsm/fsm.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/err.h"
#include "core/log.h"
#include "fsm/fsm_int.h"


int fsm_new(fsm **out)
{
	fsm *f = hora_calloc(1, sizeof *f);
	int rv;
	if (f == NULL)
		return -HORA_ENOMEM;
	if ((rv = store_new(&f->jobs)) != 0) {
		hora_free(f);
		return rv;
	}
	f->hist_per_job = FSM_HISTORY_PER_JOB_DEFAULT;
	f->hist_bytes = FSM_HISTORY_BYTES_DEFAULT;
	*out = f;
	return 0;
}

void fsm_free(fsm *f)
{
	if (f == NULL)
		return;
	fsm__runs_clear(f);
	store_free(f->jobs);
	hora_free(f);
}

store *fsm_store(fsm *f)
{
	return f->jobs;
}

uint64_t fsm_last_index(const fsm *f)
{
	return f->last_index;
}

hora_time fsm_clock(const fsm *f)
{
	return f->clock;
}

hora_time fsm_next_fire(const job *j, hora_time after)
{
	hora_schedule s;
	hora_time from = after;
	hora_time t;

	if (j->flags & (JOB_F_PAUSED | JOB_F_DONE))
		return HORA_TIME_NONE;
	if (job_has_opt(j, JOB_OPT_MAX_RUNS) &&
	    j->run_count >= (uint64_t)job_opt_get(j, JOB_OPT_MAX_RUNS, 0))
		return HORA_TIME_NONE;
	if (job_has_opt(j, JOB_OPT_START_AT)) {
		hora_time start = job_opt_get(j, JOB_OPT_START_AT, 0);
		if (from < start - 1)
			from = start - 1; /* "strictly after" start - 1us */
	}
	job_schedule(j, &s);
	t = schedule_next(&s, j->anchor, from);
	if (t != HORA_TIME_NONE && job_has_opt(j, JOB_OPT_END_AT) &&
	    t > job_opt_get(j, JOB_OPT_END_AT, 0))
		return HORA_TIME_NONE;
	return t;
}

/* The next instant of j once a PUT or a resume has applied at `after`.
 * A one-shot `@at` job that has never fired and whose instant has already
 * passed (created late, a clock a little behind, paused over it) keeps
 * that instant: it is a missed run, fired late once or skipped by the
 * job's misfire policy, never silently nothing. */
static hora_time next_after_change(const job *j, hora_time after)
{
	hora_schedule s;
	job_schedule(j, &s);
	if (s.kind == SCHEDULE_AT && j->last_fired < s.at && s.at <= after)
		after = s.at - 1;
	return fsm_next_fire(j, after);
}

/* Zones are validated by the leader before proposing; a replica whose
 * tzdata lacks the zone must still apply the entry, so it falls back to
 * UTC and says so. */
static const hora_tz *apply_zone(const char *name)
{
	const hora_tz *tz;
	hora_error err;
	if (name == NULL || tz_load(name, &tz, "timezone", &err) != 0) {
		if (name != NULL)
			log_warn("%s; the job uses UTC on this node", err.msg);
		return tz_utc();
	}
	return tz;
}

static int apply_put(fsm *f, const entry_header *h, wire_reader *r,
		     uint64_t index, fsm_result *res)
{
	job_spec *specs;
	int rv = 0;
	uint32_t n = h->count;

	/* Decode everything first: a corrupt entry changes nothing. */
	if (n > wire_left(r) / 4)
		return -HORA_ECORRUPT;
	specs = hora_calloc(n ? n : 1, sizeof *specs);
	if (specs == NULL)
		return -HORA_ENOMEM;
	uint32_t decoded = 0;
	for (; decoded < n; decoded++) {
		if ((rv = entry_get_spec(r, &specs[decoded])) != 0)
			break;
	}
	if (rv == 0 && wire_left(r) != 0)
		rv = -HORA_ECORRUPT;
	/* Build every record before touching the store (all or nothing). */
	job **built = NULL;
	if (rv == 0) {
		built = hora_calloc(n ? n : 1, sizeof *built);
		if (built == NULL)
			rv = -HORA_ENOMEM;
	}
	if (rv == 0)
		rv = store_reserve(f->jobs, n);
	for (uint32_t i = 0; rv == 0 && i < n; i++) {
		const char *q = store_intern(
			f->jobs, specs[i].queue ? specs[i].queue : "default");
		if (q == NULL) {
			rv = -HORA_ENOMEM;
			break;
		}
		rv = job_new(&specs[i], q, apply_zone(specs[i].timezone),
			     &built[i]);
	}
	if (rv != 0) {
		for (uint32_t i = 0; built && i < n; i++)
			if (built[i])
				job_free(built[i]);
		hora_free(built);
		for (uint32_t i = 0; i < decoded; i++)
			job_spec_free(&specs[i]);
		hora_free(specs);
		return rv;
	}

	for (uint32_t i = 0; i < n; i++) {
		job *j = built[i];
		job *old = store_get(f->jobs, job_name(j));
		if (old != NULL && (h->flags & ENTRY_PUT_CREATE_ONLY)) {
			res->outcome[i] = FSM_CONFLICT;
			job_free(j);
			continue;
		}
		if (old != NULL) {
			bool same_schedule =
				old->tz == j->tz &&
				strcmp(job_schedule_text(old),
				       job_schedule_text(j)) == 0;
			j->created_at = old->created_at;
			j->run_count = old->run_count;
			j->last_fired = old->last_fired;
			fsm__runs_move(old, j);
			/* a changed schedule starts over from now */
			j->anchor = same_schedule ? old->anchor : h->stamp;
			if (same_schedule)
				j->flags |= old->flags & JOB_F_DONE;
			res->outcome[i] = FSM_REPLACED;
		} else {
			j->created_at = h->stamp;
			j->anchor = h->stamp;
			res->outcome[i] = FSM_CREATED;
		}
		j->updated_at = h->stamp;
		j->version = index;
		job *replaced;
		store_put(f->jobs, j, &replaced);
		if (replaced)
			job_free(replaced);
		/* never an instant already fired (fired a second ahead, it may
		 * be after the stamp): at most one run per (job, instant) */
		hora_time after = h->stamp > j->last_fired ? h->stamp
							   : j->last_fired;
		/* cannot fail: room was reserved above */
		rv = store_set_next(f->jobs, j, next_after_change(j, after));
		HORA_ASSERT(rv == 0);
	}
	hora_free(built);
	for (uint32_t i = 0; i < n; i++)
		job_spec_free(&specs[i]);
	hora_free(specs);
	return 0;
}

static int apply_names(fsm *f, const entry_header *h, wire_reader *r,
		       uint64_t index, fsm_result *res)
{
	char **names;
	uint32_t n = h->count;
	int rv = 0;

	if (n > wire_left(r) / 4)
		return -HORA_ECORRUPT;
	names = hora_calloc(n ? n : 1, sizeof *names);
	if (names == NULL)
		return -HORA_ENOMEM;
	for (uint32_t i = 0; i < n && rv == 0; i++) {
		names[i] = entry_get_str(r, JOB_NAME_MAX);
		if (names[i] == NULL)
			rv = r->bad ? -HORA_ECORRUPT : -HORA_ENOMEM;
	}
	if (rv == 0 && wire_left(r) != 0)
		rv = -HORA_ECORRUPT;
	if (rv == 0 && h->type == ENTRY_SET_PAUSED)
		rv = store_reserve(f->jobs, n);
	for (uint32_t i = 0; i < n && rv == 0; i++) {
		if (h->type == ENTRY_DELETE_JOBS) {
			job *j = store_remove(f->jobs, names[i]);
			res->outcome[i] = j ? FSM_OK : FSM_NOT_FOUND;
			if (j) {
				fsm__runs_job_deleted(f, j, h->stamp);
				job_free(j);
			}
			continue;
		}
		job *j = store_get(f->jobs, names[i]);
		if (j == NULL) {
			res->outcome[i] = FSM_NOT_FOUND;
			continue;
		}
		res->outcome[i] = FSM_OK;
		bool pause = h->flags & 1;
		if (pause == ((j->flags & JOB_F_PAUSED) != 0))
			continue; /* already so: nothing changes */
		if (pause) {
			j->flags |= JOB_F_PAUSED;
			fsm__runs_job_paused(f, j, h->stamp);
		}
		else
			j->flags &= (uint8_t)~JOB_F_PAUSED;
		j->updated_at = h->stamp;
		j->version = index;
		hora_time after = h->stamp > j->last_fired ? h->stamp
							   : j->last_fired;
		int set = store_set_next(f->jobs, j, next_after_change(j, after));
		HORA_ASSERT(set == 0); /* room was reserved above */
	}
	for (uint32_t i = 0; i < n; i++)
		hora_free(names[i]);
	hora_free(names);
	return rv;
}

static int set_node(fsm *f, uint64_t id, const char *api)
{
	for (size_t i = 0; i < f->node_count; i++) {
		if (f->nodes[i].id == id) {
			snprintf(f->nodes[i].api, sizeof f->nodes[i].api, "%s",
				 api);
			return 0;
		}
	}
	if (f->node_count == FSM_NODES_MAX)
		return 0; /* more nodes than hora supports: ignore */
	f->nodes[f->node_count].id = id;
	snprintf(f->nodes[f->node_count].api, sizeof f->nodes[0].api, "%s",
		 api);
	f->node_count++;
	return 0;
}

static int apply_node_info(fsm *f, const entry_header *h, wire_reader *r)
{
	if (h->count != 1)
		return -HORA_ECORRUPT;
	uint64_t id = wire_get_u64(r);
	char *api = entry_get_str(r, sizeof f->nodes[0].api - 1);
	if (api == NULL)
		return r->bad ? -HORA_ECORRUPT : -HORA_ENOMEM;
	if (wire_left(r) != 0) {
		hora_free(api);
		return -HORA_ECORRUPT;
	}
	set_node(f, id, api);
	hora_free(api);
	return 0;
}

int fsm_apply(fsm *f, const void *buf, size_t len, uint64_t index,
	      fsm_result **result)
{
	wire_reader r;
	entry_header h;
	fsm_result *res;
	int rv;

	if ((rv = entry_read_header(&r, buf, len, &h)) != 0)
		return rv;
	if (h.count > len)
		return -HORA_ECORRUPT;
	res = hora_calloc(1, sizeof *res + h.count);
	if (res == NULL)
		return -HORA_ENOMEM;
	res->type = (entry_type)h.type;
	res->index = index;
	res->count = h.count;

	switch (h.type) {
	case ENTRY_PUT_JOBS:
		rv = apply_put(f, &h, &r, index, res);
		break;
	case ENTRY_DELETE_JOBS:
	case ENTRY_SET_PAUSED:
		rv = apply_names(f, &h, &r, index, res);
		break;
	case ENTRY_NODE_INFO:
		rv = apply_node_info(f, &h, &r);
		break;
	case ENTRY_NOOP:
		rv = h.count == 0 && wire_left(&r) == 0 ? 0 : -HORA_ECORRUPT;
		break;
	case ENTRY_FIRE:
		rv = fsm__apply_fire(f, &h, &r, index, res);
		break;
	case ENTRY_LEASE:
		rv = fsm__apply_lease(f, &h, &r, res);
		break;
	case ENTRY_COMPLETE:
		rv = fsm__apply_complete(f, &h, &r, res);
		break;
	case ENTRY_EXPIRE:
	case ENTRY_EXPIRE2:
		rv = fsm__apply_expire(f, &h, &r, res);
		break;
	case ENTRY_OVERLAP:
		rv = fsm__apply_overlap(f, &h, &r, res);
		break;
	default:
		/* a type from a later release that this one cannot apply */
		rv = -HORA_EVERSION;
		break;
	}
	if (rv != 0) {
		hora_free(res);
		return rv;
	}
	f->last_index = index;
	if (h.stamp > f->clock)
		f->clock = h.stamp;
	if (result)
		*result = res;
	else
		hora_free(res);
	return 0;
}

const char *fsm_node_api(const fsm *f, uint64_t id)
{
	for (size_t i = 0; i < f->node_count; i++)
		if (f->nodes[i].id == id)
			return f->nodes[i].api;
	return NULL;
}

size_t fsm_nodes(const fsm *f, const fsm_node_info **out)
{
	*out = f->nodes;
	return f->node_count;
}

/* ---- snapshots -------------------------------------------------------- */

/* State TLV tags, after a job's spec.  Never renumber. */
enum {
	STATE_END = 0,
	STATE_CREATED_AT = 1,
	STATE_UPDATED_AT = 2,
	STATE_ANCHOR = 3,
	STATE_VERSION = 4,
	STATE_RUN_COUNT = 5,
	STATE_NEXT_RUN_AT = 6,
	STATE_FLAGS = 7,
	STATE_LAST_FIRED = 8,
};

static void state_u64(wire_writer *w, uint16_t tag, uint64_t v)
{
	wire_u16(w, tag);
	wire_u32(w, 8);
	wire_u64(w, v);
}

static int snapshot_job(job *j, void *ud)
{
	wire_writer *w = ud;
	job_spec view;
	job_spec_view(j, &view);
	entry_put_spec(w, &view);
	state_u64(w, STATE_CREATED_AT, (uint64_t)j->created_at);
	state_u64(w, STATE_UPDATED_AT, (uint64_t)j->updated_at);
	state_u64(w, STATE_ANCHOR, (uint64_t)j->anchor);
	state_u64(w, STATE_VERSION, j->version);
	state_u64(w, STATE_RUN_COUNT, j->run_count);
	state_u64(w, STATE_NEXT_RUN_AT, (uint64_t)j->next_run_at);
	state_u64(w, STATE_FLAGS, j->flags);
	state_u64(w, STATE_LAST_FIRED, (uint64_t)j->last_fired);
	wire_u16(w, STATE_END);
	wire_flush(w, FSM_SNAPSHOT_CHUNK);
	return wire_failed(w) ? -HORA_ENOMEM : 0;
}

static void snapshot_put_all(const fsm *f, wire_writer *w);

int fsm_snapshot_encode(const fsm *f, uint8_t **buf, size_t *len)
{
	wire_writer w;
	wire_writer_init(&w);
	snapshot_put_all(f, &w);
	if (wire_failed(&w)) {
		wire_writer_free(&w);
		return -HORA_ENOMEM;
	}
	*buf = wire_writer_take(&w, len);
	return 0;
}

int fsm_snapshot_write(const fsm *f, wire_sink sink, void *ud)
{
	wire_writer w;
	wire_writer_init_sink(&w, sink, ud);
	snapshot_put_all(f, &w);
	wire_flush(&w, 0);
	int rv = w.sink_failed ? -HORA_EIO : w.b.oom ? -HORA_ENOMEM : 0;
	wire_writer_free(&w);
	return rv;
}

/* The whole state, in the order every replica writes it. */
static void snapshot_put_all(const fsm *f, wire_writer *w)
{
	wire_put(w, FSM_SNAPSHOT_MAGIC, 8);
	wire_u32(w, FSM_SNAPSHOT_VERSION);
	wire_u32(w, 0); /* flags */
	wire_u64(w, f->last_index);
	wire_u64(w, (uint64_t)f->clock);
	wire_u32(w, (uint32_t)f->node_count);
	for (size_t i = 0; i < f->node_count; i++) {
		wire_u64(w, f->nodes[i].id);
		entry_put_str(w, f->nodes[i].api);
	}
	wire_u64(w, store_count(f->jobs));
	store_each(f->jobs, snapshot_job, w);
	fsm__runs_snapshot(f, w);
}

static int restore_state(wire_reader *r, job *j)
{
	for (;;) {
		uint16_t tag = wire_get_u16(r);
		if (r->bad)
			return -HORA_ECORRUPT;
		if (tag == STATE_END)
			return 0;
		uint32_t n = wire_get_u32(r);
		if (n != 8) {
			if (wire_get(r, n) == NULL)
				return -HORA_ECORRUPT;
			continue; /* a later release's field */
		}
		uint64_t v = wire_get_u64(r);
		switch (tag) {
		case STATE_CREATED_AT:
			j->created_at = (hora_time)v;
			break;
		case STATE_UPDATED_AT:
			j->updated_at = (hora_time)v;
			break;
		case STATE_ANCHOR:
			j->anchor = (hora_time)v;
			break;
		case STATE_VERSION:
			j->version = v;
			break;
		case STATE_RUN_COUNT:
			j->run_count = v;
			break;
		case STATE_NEXT_RUN_AT:
			j->next_run_at = (hora_time)v;
			break;
		case STATE_FLAGS:
			j->flags = (uint8_t)v;
			break;
		case STATE_LAST_FIRED:
			j->last_fired = (hora_time)v;
			break;
		default:
			break;
		}
	}
}

int fsm_snapshot_restore(fsm *f, const void *buf, size_t len)
{
	wire_reader r;
	store *jobs;
	fsm_node_info nodes[FSM_NODES_MAX];
	size_t node_count;
	int rv;

	wire_reader_init(&r, buf, len);
	const uint8_t *magic = wire_get(&r, 8);
	if (magic == NULL || memcmp(magic, FSM_SNAPSHOT_MAGIC, 8) != 0)
		return -HORA_ECORRUPT;
	uint32_t version = wire_get_u32(&r);
	if (r.bad)
		return -HORA_ECORRUPT;
	if (version == 0 || version > FSM_SNAPSHOT_VERSION)
		return -HORA_EVERSION;
	(void)wire_get_u32(&r); /* flags */
	uint64_t last_index = wire_get_u64(&r);
	hora_time clock = (hora_time)wire_get_u64(&r);
	node_count = wire_get_u32(&r);
	if (r.bad || node_count > FSM_NODES_MAX)
		return -HORA_ECORRUPT;
	for (size_t i = 0; i < node_count; i++) {
		nodes[i].id = wire_get_u64(&r);
		char *api = entry_get_str(&r, sizeof nodes[i].api - 1);
		if (api == NULL)
			return r.bad ? -HORA_ECORRUPT : -HORA_ENOMEM;
		snprintf(nodes[i].api, sizeof nodes[i].api, "%s", api);
		hora_free(api);
	}
	uint64_t count = wire_get_u64(&r);
	if (r.bad || count > wire_left(&r))
		return -HORA_ECORRUPT;
	if ((rv = store_new(&jobs)) != 0)
		return rv;
	for (uint64_t i = 0; i < count; i++) {
		job_spec spec;
		job *j, *dup;
		if ((rv = entry_get_spec(&r, &spec)) != 0)
			break;
		const char *q = store_intern(jobs, spec.queue ? spec.queue
							      : "default");
		rv = q ? job_new(&spec, q, apply_zone(spec.timezone), &j)
		       : -HORA_ENOMEM;
		job_spec_free(&spec);
		if (rv != 0)
			break;
		if ((rv = restore_state(&r, j)) != 0) {
			job_free(j);
			break;
		}
		store_put(jobs, j, &dup);
		if (dup != NULL) { /* two jobs of one name: not ours */
			job_free(dup);
			rv = -HORA_ECORRUPT;
			break;
		}
		if ((rv = store_set_next(jobs, j, j->next_run_at)) != 0)
			break;
	}
	fsm_runs_state runs;
	fsm__runs_state_init(&runs);
	if (rv == 0)
		rv = fsm__runs_restore(&runs, jobs, &r);
	if (rv == 0 && wire_left(&r) != 0)
		rv = -HORA_ECORRUPT;
	if (rv != 0) {
		fsm__runs_state_clear(&runs, jobs);
		store_free(jobs);
		return rv;
	}
	if (f->observer.reset)
		f->observer.reset(f->observer.ud);
	fsm__runs_clear(f);
	store_free(f->jobs);
	f->jobs = jobs;
	f->runs = runs;
	f->last_index = last_index;
	f->clock = clock;
	memcpy(f->nodes, nodes, sizeof nodes[0] * node_count);
	f->node_count = node_count;
	return 0;
}
