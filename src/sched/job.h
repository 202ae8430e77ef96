/*
 * job.h - a job's validated definition (job_spec) and its compact stored
 * record (job).
 *
 * job_spec is what a client asked for, after validation: the API layer
 * builds it from JSON, the log codec carries it, the state machine turns
 * it into a job record.  Strings in a spec are owned by the spec
 * (job_spec_free).
 *
 * A job record is ONE allocation (principle 5 of DESIGN.md): a fixed part,
 * then the optional policy values that differ from their defaults, then
 * the strings name, schedule, labels and extra.  `extra` is the compact
 * JSON text of the parts hora passes through without interpreting on the
 * hot path: {"command":[...],"http":{...},"payload":...}, each key present
 * only when set.  `labels` is "k\0v\0k\0v\0" (labels_len bytes).
 */
#ifndef HORA_SCHED_JOB_H
#define HORA_SCHED_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/civil.h"
#include "core/err.h"
#include "cron/schedule.h"
#include "tz/tz.h"

#define JOB_NAME_MAX 200
#define JOB_QUEUE_MAX 100
#define JOB_SCHEDULE_MAX 256
#define JOB_PAYLOAD_MAX (64 * 1024)
#define JOB_EXTRA_MAX (256 * 1024) /* command + http + payload, compact */
#define JOB_LABELS_MAX 64          /* number of labels */
#define JOB_LABEL_KEY_MAX 63
#define JOB_LABEL_VALUE_MAX 255
#define JOB_PRIORITY_DEFAULT 5
#define JOB_PRIORITY_MAX 9
#define JOB_ATTEMPTS_MAX 1000

typedef enum {
	JOB_OVERLAP_ALLOW = 0,
	JOB_OVERLAP_FORBID = 1,
	JOB_OVERLAP_REPLACE = 2,
} job_overlap;

typedef enum {
	JOB_MISFIRE_ONCE = 0, /* the default */
	JOB_MISFIRE_SKIP = 1,
	JOB_MISFIRE_ALL = 2,
} job_misfire;

/* Optional policy values, stored in a record only when set. */
typedef enum {
	JOB_OPT_TIMEOUT = 0,     /* microseconds; unset: no timeout */
	JOB_OPT_JITTER = 1,      /* microseconds; unset: 0 */
	JOB_OPT_BACKOFF = 2,     /* microseconds; unset: 1s */
	JOB_OPT_MAX_BACKOFF = 3, /* microseconds; unset: 1m */
	JOB_OPT_START_AT = 4,    /* instant; unset: none */
	JOB_OPT_END_AT = 5,      /* instant; unset: none */
	JOB_OPT_MAX_RUNS = 6,    /* count; unset: none */
	JOB_OPT_COUNT_ = 7,
} job_opt;

#define JOB_BACKOFF_DEFAULT HORA_USEC_PER_SEC
#define JOB_MAX_BACKOFF_DEFAULT (60 * HORA_USEC_PER_SEC)

/* The validated definition of a job. */
typedef struct job_spec {
	char *name;     /* 1-200 of [A-Za-z0-9._-] */
	char *schedule; /* as written by the client (validated) */
	char *timezone; /* IANA name; "UTC" by default */
	char *queue;    /* "default" by default */
	char *labels;   /* "k\0v\0..." or NULL; labels_len bytes */
	size_t labels_len;
	char *extra; /* compact JSON object text, or NULL when empty */
	size_t extra_len;
	int64_t opt[JOB_OPT_COUNT_];
	uint8_t opt_mask; /* bit i: opt[i] is set */
	uint8_t priority;
	uint8_t overlap; /* job_overlap */
	uint8_t misfire; /* job_misfire */
	bool paused;
	uint16_t max_attempts; /* >= 1; 1 by default */
} job_spec;

/* A spec with every default of API.md and no strings set. */
void job_spec_init(job_spec *spec);
void job_spec_free(job_spec *spec);
void job_spec_set_opt(job_spec *spec, job_opt which, int64_t value);

/* Name rules of API.md; `what` names the field in the message. */
int job_name_check(const char *name, const char *field, hora_error *err);
/* For a name being created: also refuses "." and "..", which a URL path
 * cannot carry (jobs of earlier releases so named still load). */
int job_name_check_new(const char *name, const char *field, hora_error *err);
/* Queue names: 1-100 of [A-Za-z0-9._-]. */
int job_queue_check(const char *queue, const char *field, hora_error *err);

enum {
	JOB_F_PAUSED = 1 << 0,
	JOB_F_DONE = 1 << 1, /* one-shot fired, or max_runs reached */
};

#define JOB_NOT_QUEUED UINT32_MAX

/* A stored job (see the top of this file). */
typedef struct job {
	struct job *left, *right; /* name treap (store.c) */
	uint32_t treap_prio;      /* hash of the name */
	uint32_t heap_idx;        /* position in the fire heap */
	hora_time next_run_at;    /* HORA_TIME_NONE when nothing is due */
	hora_time anchor;         /* @every/@after count from here */
	hora_time last_fired;     /* latest instant fired (0: none) */
	hora_time created_at;
	hora_time updated_at;
	uint64_t version; /* log index of the last write */
	uint64_t run_count;
	struct run *runs;     /* history, newest first (fsm) */
	uint32_t run_hist;    /* runs in that list */
	uint32_t active_runs; /* scheduled or running */
	const char *queue; /* interned (store.c) */
	const hora_tz *tz; /* shared (tz.c) */
	uint16_t max_attempts;
	uint8_t priority;
	uint8_t overlap;
	uint8_t misfire;
	uint8_t flags; /* JOB_F_* */
	uint8_t opt_mask;
	uint8_t name_len;
	uint16_t schedule_len;
	uint16_t labels_len;
	uint32_t extra_len;
	/* int64_t opt[popcount(opt_mask)], then name\0 schedule\0 labels
	 * extra\0 */
	char data[];
} job;

/*
 * Build a record from a spec (copying everything).  Fails with
 * -HORA_ENOMEM.  `queue` must be the interned queue name and `tz` the
 * loaded zone of spec->timezone.  Times and counters are zero: the state
 * machine fills them in.
 */
int job_new(const job_spec *spec, const char *queue, const hora_tz *tz,
	    job **out);
void job_free(job *j);

/* Accessors into the tail of the record. */
const char *job_name(const job *j);
const char *job_schedule_text(const job *j);
const char *job_labels(const job *j); /* labels_len bytes */
const char *job_extra(const job *j);  /* "" when none */
bool job_has_opt(const job *j, job_opt which);
int64_t job_opt_get(const job *j, job_opt which, int64_t dflt);

/* The job's parsed schedule (parsing the stored text again: it was valid
 * when accepted, so this only fails on a bug). */
void job_schedule(const job *j, hora_schedule *out);

/* Look up label `key`; NULL if absent. */
const char *job_label(const job *j, const char *key);

/* A spec whose strings point into the record (no copies; do not free,
 * valid while the record lives). */
void job_spec_view(const job *j, job_spec *view);

/* Bytes the record takes, for memory accounting. */
size_t job_size(const job *j);

#endif
