/*
 * engine.h - the one worker engine: claims runs, executes them with the
 * executor of src/exec, keeps their leases alive and reports their
 * results (API.md "Runs", claim/heartbeat/complete).  It speaks to the
 * scheduler through a transport: `hora worker` uses the HTTP API
 * (worker/transport_http.h), horad's built-in slots call the dispatcher
 * in-process or relay to the leader (daemon/workers.c).
 *
 * Slots.  conf.concurrency bounds the runs held at once, from the claim
 * answer until the result is reported (or the run handed back).  Each
 * queue has at most one claim in flight; a claim asks for `max` runs and
 * reserves that many slots until it answers.  Free slots are shared among
 * the idle queues (round robin); when there are fewer free slots than
 * idle queues, claims use a short wait so that the queues take turns.
 *
 * A run: claimed -> job's timeout looked up (when the claim did not
 * carry it and the transport can look it up; without it the leader
 * still enforces the timeout) -> executed -> reported (retried with
 * backoff on TRANSIENT answers).  From the claim on it is heartbeated
 * every conf.heartbeat_ms; a LOST answer to a heartbeat means the lease
 * is gone (cancelled, expired, taken over): the execution is stopped and
 * nothing is reported.
 *
 * Push delivery.  With conf.stream and a transport that can stream, and
 * at least one slot per queue, each queue gets a stream instead of
 * claims (API.md "Push delivery"): the slots are split among the queues
 * as the streams' max_inflight, the scheduler pushes runs as they are
 * due, and a stream that ends (leader change) is opened again.  A slot
 * is free on the scheduler's side once the run's report has committed,
 * so a run may arrive just before the report's answer: runs held can
 * exceed the slots by the reports in flight, executions never do.
 *
 * Stopping (engine_stop, e.g. on SIGTERM): claims are abandoned, runs
 * not yet started are handed back (heartbeat with lease 0), running ones
 * get the grace period to finish and report, then are cancelled and
 * handed back; when every run is finished the executor is closed and
 * `done` runs.
 *
 * Output: a run's output and error are repaired to valid UTF-8 without
 * NUL (utf8_repair) before the transport sees them.
 *
 * Threading: everything on the loop's thread, callbacks included.
 */
#ifndef HORA_WORKER_ENGINE_H
#define HORA_WORKER_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "core/err.h"
#include "sched/run.h"

#define ENGINE_QUEUES_MAX 64
/* while queues take turns for too few slots */
#define ENGINE_STARVED_WAIT_MS 2000
/* an empty claim answer that came this early is followed by a pause */
#define ENGINE_EARLY_EMPTY_MS 500
#define ENGINE_COMPLETE_TRIES 8
#define ENGINE_RELEASE_TRIES 3

/* How a transport's call ended. */
typedef enum {
	ENGINE_OK = 0,
	ENGINE_LOST,      /* the lease is gone or the run with it (409/404) */
	ENGINE_TRANSIENT, /* no answer, back-pressure, no leader: try again */
	ENGINE_REJECTED,  /* any other refusal */
} engine_outcome;

/* A run handed out by a claim.  Borrowed for the duration of the
 * callback: the engine copies what it keeps. */
typedef struct engine_claimed {
	const char *id;
	const char *job;
	const char *scheduled_at; /* RFC 3339; NULL: unknown */
	uint32_t attempt;         /* 0: unknown (taken as 1) */
	const json_t *payload;    /* NULL or JSON null: none */
	const json_t *command;    /* the job's, as stored; NULL or null: none */
	const json_t *http;
	bool timeout_known; /* else looked up with transport.job_timeout */
	int64_t timeout_usec; /* when known; 0: none */
} engine_claimed;

/* The answer to a transport call, valid during the callback only. */
typedef struct engine_answer {
	engine_outcome outcome;
	/* not OK: a sentence for the log (a LOST heartbeat's says why the
	 * lease is gone, e.g. "the run no longer exists") */
	const char *why;
	const engine_claimed *runs; /* claim: what was handed out */
	size_t nruns;
	int64_t timeout_usec; /* job_timeout: the job's (0: none) */
} engine_answer;

/* A finished attempt, for transport.complete.  Borrowed during the call;
 * output and error are valid UTF-8 without NUL. */
typedef struct engine_result {
	const char *run_id;
	const char *job;
	uint32_t attempt;
	run_status status; /* RUN_SUCCEEDED, RUN_FAILED or RUN_TIMED_OUT */
	int exit_code;     /* -1: none */
	const char *output;
	size_t output_len;
	const char *error; /* "" when none */
} engine_result;

/* A call in flight, the transport's own. */
typedef struct engine_call engine_call;
typedef void (*engine_cb)(void *ud, const engine_answer *a);

/*
 * What the engine needs from a scheduler.  `t` is the transport's
 * context.  Each call returns 0 and sets *out to a handle, then runs
 * `cb(ud, answer)` exactly once, later on the loop (never from inside the
 * call), unless `abort` forgets the call first.  Or it returns a
 * negative error (hora_strerror gives the sentence) and `cb` will not
 * run.
 */
typedef struct engine_transport {
	/* Up to `max` runs of `queue`, waiting up to wait_ms for one,
	 * leased for lease_ms. */
	int (*claim)(void *t, const char *queue, unsigned max, int64_t wait_ms,
		     int64_t lease_ms, engine_cb cb, void *ud,
		     engine_call **out);
	/* Extend the lease of run `id` to lease_ms from now, or hand the
	 * run back (lease_ms 0: it is delivered again). */
	int (*heartbeat)(void *t, const char *id, int64_t lease_ms,
			 engine_cb cb, void *ud, engine_call **out);
	int (*complete)(void *t, const engine_result *res, engine_cb cb,
			void *ud, engine_call **out);
	/* May be NULL: claimed runs then always carry their timeout. */
	int (*job_timeout)(void *t, const char *job, engine_cb cb, void *ud,
			   engine_call **out);
	/* Forget a call in flight: its cb will not run. */
	void (*abort)(void *t, engine_call *c);
	/* May be NULL: run `id` starts (on) or stops (off) executing. */
	void (*executing)(void *t, const char *id, bool on);
	/* May be NULL (then claims only).  Push delivery of `queue`:
	 * pushed(ud, a) for runs as they come (OK, nruns > 0), any number
	 * of times; then ended(ud, a) once: OK for a clean end (open
	 * another), else why it failed.  Nothing after `ended` or `abort`. */
	int (*stream)(void *t, const char *queue, unsigned max_inflight,
		      int64_t lease_ms, engine_cb pushed, engine_cb ended,
		      void *ud, engine_call **out);
} engine_transport;

typedef enum {
	ENGINE_LOG_DEBUG, /* a run's end, a claim to retry after a hiccup */
	ENGINE_LOG_INFO,  /* handed back, stopping */
	ENGINE_LOG_WARN,  /* a failure talking to the scheduler */
} engine_log_level;

/* One line, without its newline. */
typedef void (*engine_log_cb)(void *ud, engine_log_level level,
			      const char *line);

typedef struct engine_conf {
	const char *const *queues; /* borrowed for the engine's life */
	size_t nqueues;            /* 1..ENGINE_QUEUES_MAX */
	unsigned concurrency;      /* >= 1 */
	int64_t lease_ms;          /* asked for each run */
	int64_t heartbeat_ms;      /* 0: lease_ms / 3 */
	int64_t wait_ms;           /* a claim's long poll */
	bool stream; /* push delivery when the transport can (see above) */
	/* claim, report and hand-back retries: min doubling up to max */
	unsigned backoff_min_ms, backoff_max_ms;
	/* prefix of the engine's own lines ("<name>: ..."); a run's lines
	 * start with "run <id> job <job> attempt <n>:" */
	const char *name;
	engine_log_cb log;
	void *log_ud;
} engine_conf;

typedef struct engine engine;

/*
 * Make an engine with its own executor on `loop`; nothing is claimed
 * before engine_start.  `tp` and `t` are borrowed until `done` of
 * engine_stop has run.  -HORA_EINVAL (bad conf), -HORA_ENOMEM, or the
 * executor's error, with a sentence in *err.
 */
int engine_new(uv_loop_t *loop, const engine_conf *conf,
	       const engine_transport *tp, void *t, engine **out,
	       hora_error *err);

void engine_start(engine *e);

/* Runs held (claimed, not yet reported or handed back). */
unsigned engine_held(const engine *e);
/* Runs executing. */
unsigned engine_executing(const engine *e);

/* Stop executing run `id` if it executes here (its run was cancelled
 * elsewhere): nothing is reported for it.  Unknown ids are ignored. */
void engine_cancel_run(engine *e, const char *id);

/*
 * Stop claiming; hand back the runs not started; let running ones finish
 * for up to grace_ms, then cancel them and hand them back.  When every
 * run is finished and the executor closed, `e` is freed and done(ud)
 * (may be NULL) runs, never from inside this call.  Call once.
 */
void engine_stop(engine *e, int64_t grace_ms, void (*done)(void *ud),
		 void *ud);

/* Cancel every execution now (SIGTERM to the children), e.g. before the
 * process exits at once.  Nothing more is reported for them. */
void engine_kill(engine *e);

/* The lines of a heartbeat answered LOST. */
#define ENGINE_WHY_LEASE_LOST "lease lost (cancelled, expired or taken over)"
#define ENGINE_WHY_NO_RUN "the run no longer exists"

#endif
