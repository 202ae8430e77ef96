/*
 * entry.h - the log entries of hora's state machine, encoded and decoded.
 *
 * Every entry starts with an 16-byte header:
 *   u8  magic 0xB7
 *   u8  format version (ENTRY_FORMAT_VERSION)
 *   u8  type (entry_type)
 *   u8  flags (per type)
 *   u32 count of items that follow
 *   u64 stamp: the leader's clock (microseconds) when it proposed the
 *       entry.  Apply uses this and never reads a clock (DESIGN.md,
 *       principle 2).
 * Items are type-specific.  Jobs are a sequence of TLV fields
 * (u16 tag, u32 length, bytes) closed by tag 0, so a later release can add
 * fields that this one skips, and read every field this one writes.
 *
 * Changing the format (docs/formats.md): add tags or types freely; never
 * change the meaning of an existing tag or type; bump
 * ENTRY_FORMAT_VERSION only for an incompatible change, and keep decoding
 * every older version.
 */
#ifndef HORA_FSM_ENTRY_H
#define HORA_FSM_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "core/civil.h"
#include "fsm/wire.h"
#include "sched/job.h"

#define ENTRY_MAGIC 0xB7
#define ENTRY_FORMAT_VERSION 1
#define ENTRY_HEADER_SIZE 16

typedef enum {
	ENTRY_PUT_JOBS = 1,    /* count job specs; flags ENTRY_PUT_* */
	ENTRY_DELETE_JOBS = 2, /* count names */
	ENTRY_SET_PAUSED = 3,  /* count names; flags: 1 = pause, 0 = resume */
	ENTRY_NODE_INFO = 4,   /* count 1: u64 node id, string api address */
	ENTRY_NOOP = 5,        /* count 0: a barrier */
	ENTRY_FIRE = 6,        /* count fire_item */
	ENTRY_LEASE = 7,       /* count lease_item */
	ENTRY_COMPLETE = 8,    /* count complete_item */
	ENTRY_EXPIRE = 9,      /* count expire_item */
	ENTRY_OVERLAP = 10,    /* count u64 run ids: apply the overlap policy
				  now that the run is due */
	ENTRY_EXPIRE2 = 11,    /* count expire_item with lease_end (written
				  instead of ENTRY_EXPIRE, which still reads) */
} entry_type;

/* ENTRY_FIRE item flags */
enum {
	FIRE_TRIGGER = 1 << 0, /* a manual run: no `expect`, no schedule move */
	FIRE_NO_RUN = 1 << 1,  /* misfire skip: move the schedule only */
};

/* Fire one run of `job` for `scheduled_at`, due at `due_at` (jitter),
 * provided the job's next fire instant is still `expect` (so a (job,
 * instant) never fires twice); then the job's next instant is the first
 * after `resume_after`. */
typedef struct fire_item {
	const char *job;
	hora_time expect;
	hora_time scheduled_at;
	hora_time due_at;
	hora_time resume_after;
	uint8_t flags;
} fire_item;

/* Lease run `run` (attempt `attempt`) to `worker` until
 * `lease_expires_at`; also extends a lease the worker holds. */
typedef struct lease_item {
	uint64_t run;
	uint32_t attempt;
	const char *worker;
	hora_time lease_expires_at;
} lease_item;

/* Finish an attempt (status: RUN_SUCCEEDED, RUN_FAILED, RUN_TIMED_OUT,
 * RUN_CANCELLED).  Output and error are sanitized to UTF-8 text without
 * NULs by the encoder. */
typedef struct complete_item {
	uint64_t run;
	uint32_t attempt;
	const char *worker;
	uint8_t status;
	int32_t exit_code;
	const char *output;
	size_t output_len;
	const char *error;
} complete_item;

/* Hand back an attempt whose lease expired (or was released).
 * lease_end: the lease end the leader saw expire; a lease extended since
 * (a heartbeat committed first) is left alone.  0: release regardless
 * (the holder hands the run back). */
typedef struct expire_item {
	uint64_t run;
	uint32_t attempt;
	hora_time lease_end;
} expire_item;

enum {
	/* ENTRY_PUT_JOBS: fail (conflict) for a name that exists rather
	 * than replacing it (POST /v1/jobs). */
	ENTRY_PUT_CREATE_ONLY = 1 << 0,
};

typedef struct entry_header {
	uint8_t version;
	uint8_t type;
	uint8_t flags;
	uint32_t count;
	hora_time stamp;
} entry_header;

/* Writers: produce a whole entry in a hora_malloc buffer (*buf, *len);
 * -HORA_ENOMEM on failure. */
int entry_encode_put(const job_spec *specs, size_t n, uint8_t flags,
		     hora_time stamp, uint8_t **buf, size_t *len);
int entry_encode_names(entry_type type, uint8_t flags,
		       const char *const *names, size_t n, hora_time stamp,
		       uint8_t **buf, size_t *len);
int entry_encode_node_info(uint64_t node_id, const char *api,
			   hora_time stamp, uint8_t **buf, size_t *len);
int entry_encode_noop(hora_time stamp, uint8_t **buf, size_t *len);
int entry_encode_fire(const fire_item *items, size_t n, hora_time stamp,
		      uint8_t **buf, size_t *len);
int entry_encode_lease(const lease_item *items, size_t n, hora_time stamp,
		       uint8_t **buf, size_t *len);
int entry_encode_complete(const complete_item *items, size_t n,
			  hora_time stamp, uint8_t **buf, size_t *len);
int entry_encode_expire(const expire_item *items, size_t n, hora_time stamp,
			uint8_t **buf, size_t *len);
int entry_encode_overlap(const uint64_t *runs, size_t n, hora_time stamp,
			 uint8_t **buf, size_t *len);

/* Write `len` bytes as a string, replacing NULs and invalid UTF-8 with
 * '?' so the text is always valid JSON string content. */
void entry_put_text(wire_writer *w, const char *s, size_t len);

/*
 * Read the header and position `r` at the first item.  -HORA_ECORRUPT for
 * a short or malformed header, -HORA_EVERSION for a version this build
 * cannot read.
 */
int entry_read_header(wire_reader *r, const void *buf, size_t len,
		      entry_header *out);

/* Write/read one job spec as TLV fields (also used by snapshots). */
void entry_put_spec(wire_writer *w, const job_spec *spec);
/* Decode into *out (job_spec_init'ed here; caller frees).  Validates
 * bounds and string rules so a corrupt entry cannot build a bad record:
 * -HORA_ECORRUPT, or -HORA_ENOMEM. */
int entry_get_spec(wire_reader *r, job_spec *out);

/* A length-prefixed string (u32 + bytes, no NUL). */
void entry_put_str(wire_writer *w, const char *s);
/* Decode into a new NUL-terminated hora_malloc string; NULL and r->bad on
 * a short read or an embedded NUL, NULL without r->bad on ENOMEM. */
char *entry_get_str(wire_reader *r, size_t max);

#endif
