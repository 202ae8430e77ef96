/* Unit tests for src/worker/engine.c: the worker engine on a real libuv
 * loop with a fake transport (answers come from timers, never from inside
 * a call): a run claimed, executed and reported; a heartbeat answered
 * LOST stops the execution and reports nothing; a TRANSIENT completion
 * is retried; stopping with no grace hands a running run back; output
 * is repaired to valid UTF-8.  Every test ends with uv_loop_close() == 0:
 * no handle is left behind. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../test_util.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "core/utf8.h"
#include "worker/engine.h"

/* ---- the fake transport ---------------------------------------------- */

typedef struct fake fake;

typedef enum { F_CLAIM, F_HEARTBEAT, F_RELEASE, F_COMPLETE, F_STREAM } fkind;

typedef struct fcall {
	uv_timer_t timer;
	fake *f;
	fkind kind;
	engine_cb cb;
	void *ud;
	engine_cb pushed; /* F_STREAM */
	int step;         /* F_STREAM: 0 push a run, 1 end or idle */
} fcall;

struct fake {
	uv_loop_t loop;
	engine *e;
	json_t *command; /* of the one run handed out */
	int claims;
	int heartbeats, releases, completes;
	engine_outcome heartbeat_answer;
	int complete_transient; /* answer TRANSIENT this many times first */
	/* the last completion */
	run_status status;
	int exit_code;
	uint32_t attempt;
	char run_id[32];
	char output[256];
	size_t output_len;
	int stopped;
	int lines;
	/* streams */
	int streams;
	engine_outcome stream_answer; /* REJECTED: refuse at once */
	bool stream_ends;             /* end cleanly after the push */
	unsigned max_inflight;
};

static void fcall_closed(uv_handle_t *h)
{
	free(h->data);
}

static void fcall_fire(uv_timer_t *t)
{
	fcall *c = t->data;
	fake *f = c->f;
	engine_answer a = {.outcome = ENGINE_OK, .why = ""};
	engine_claimed one = {
		.id = "42",
		.job = "j",
		.scheduled_at = "2026-01-01T00:00:00Z",
		.attempt = 3,
		.command = f->command,
		.timeout_known = true,
	};

	switch (c->kind) {
	case F_STREAM:
		if (f->stream_answer != ENGINE_OK) {
			a.outcome = f->stream_answer;
			a.why = "HTTP 404 not_found: no such route";
			break;
		}
		if (c->step++ == 0 && f->streams == 1) {
			a.runs = &one;
			a.nruns = 1;
			/* the stream stays open: ended later or aborted */
			uv_timer_start(&c->timer, fcall_fire,
				       f->stream_ends ? 50 : 60000, 0);
			c->pushed(c->ud, &a);
			return;
		}
		if (!f->stream_ends && c->step < 3) {
			uv_timer_start(&c->timer, fcall_fire, 60000, 0);
			return;
		}
		break; /* a clean end */
	case F_CLAIM:
		a.runs = &one;
		a.nruns = 1;
		break;
	case F_HEARTBEAT:
		a.outcome = f->heartbeat_answer;
		a.why = a.outcome == ENGINE_LOST ? ENGINE_WHY_LEASE_LOST : "";
		break;
	case F_RELEASE:
		break;
	case F_COMPLETE:
		if (f->complete_transient > 0) {
			f->complete_transient--;
			a.outcome = ENGINE_TRANSIENT;
			a.why = "HTTP 503";
		}
		break;
	}
	uv_close((uv_handle_t *)&c->timer, fcall_closed);
	c->cb(c->ud, &a);
}

/* An answer in `ms`. */
static engine_call *fcall_new(fake *f, fkind kind, uint64_t ms, engine_cb cb,
			      void *ud)
{
	fcall *c = calloc(1, sizeof *c);
	assert_non_null(c);
	c->f = f;
	c->kind = kind;
	c->cb = cb;
	c->ud = ud;
	uv_timer_init(&f->loop, &c->timer);
	c->timer.data = c;
	uv_timer_start(&c->timer, fcall_fire, ms, 0);
	return (engine_call *)(void *)c;
}

static int f_claim(void *t, const char *queue, unsigned max, int64_t wait_ms,
		   int64_t lease_ms, engine_cb cb, void *ud, engine_call **out)
{
	fake *f = t;
	assert_string_equal(queue, "q");
	assert_true(max >= 1);
	assert_int_equal(lease_ms, 3000);
	(void)wait_ms;
	/* one run at once, then a long poll that only a stop ends */
	*out = fcall_new(f, F_CLAIM, f->claims++ == 0 ? 1 : 60000, cb, ud);
	return 0;
}

static int f_heartbeat(void *t, const char *id, int64_t lease_ms,
		       engine_cb cb, void *ud, engine_call **out)
{
	fake *f = t;
	assert_string_equal(id, "42");
	if (lease_ms == 0)
		f->releases++;
	else
		f->heartbeats++;
	*out = fcall_new(f, lease_ms ? F_HEARTBEAT : F_RELEASE, 1, cb, ud);
	return 0;
}

static int f_complete(void *t, const engine_result *res, engine_cb cb,
		      void *ud, engine_call **out)
{
	fake *f = t;
	f->completes++;
	f->status = res->status;
	f->exit_code = res->exit_code;
	f->attempt = res->attempt;
	snprintf(f->run_id, sizeof f->run_id, "%s", res->run_id);
	assert_true(res->output_len < sizeof f->output);
	memcpy(f->output, res->output, res->output_len);
	f->output_len = res->output_len;
	*out = fcall_new(f, F_COMPLETE, 1, cb, ud);
	return 0;
}

static void f_abort(void *t, engine_call *ec)
{
	fcall *c = (fcall *)(void *)ec;
	(void)t;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, fcall_closed);
}

static int f_stream(void *t, const char *queue, unsigned max_inflight,
		    int64_t lease_ms, engine_cb pushed, engine_cb ended,
		    void *ud, engine_call **out)
{
	fake *f = t;
	assert_string_equal(queue, "q");
	assert_int_equal(lease_ms, 3000);
	f->streams++;
	f->max_inflight = max_inflight;
	*out = fcall_new(f, F_STREAM, 1, ended, ud);
	((fcall *)(void *)*out)->pushed = pushed;
	return 0;
}

static const engine_transport fake_ops = {
	.claim = f_claim,
	.heartbeat = f_heartbeat,
	.complete = f_complete,
	.abort = f_abort,
};

static const engine_transport fake_stream_ops = {
	.claim = f_claim,
	.heartbeat = f_heartbeat,
	.complete = f_complete,
	.abort = f_abort,
	.stream = f_stream,
};

static void f_log(void *ud, engine_log_level level, const char *line)
{
	fake *f = ud;
	(void)level;
	f->lines++;
	if (getenv("HORA_TEST_VERBOSE"))
		fprintf(stderr, "%s\n", line);
}

static void on_stopped(void *ud)
{
	fake *f = ud;
	f->stopped = 1;
}

/* ---- fixture ------------------------------------------------------- */

static const char *const queues[] = {"q"};

static fake *fake_start_with(const char *argv_json, int64_t heartbeat_ms,
			     bool stream, void (*setup)(fake *f))
{
	fake *f = calloc(1, sizeof *f);
	hora_error err;

	assert_non_null(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	f->command = json_loads(argv_json, 0, NULL);
	assert_non_null(f->command);
	engine_conf conf = {
		.queues = queues,
		.nqueues = 1,
		.concurrency = 2,
		.lease_ms = 3000,
		.heartbeat_ms = heartbeat_ms,
		.wait_ms = 30000,
		.backoff_min_ms = 10,
		.backoff_max_ms = 40,
		.name = "test",
		.log = f_log,
		.log_ud = f,
		.stream = stream,
	};
	if (setup != NULL)
		setup(f);
	assert_int_equal(engine_new(&f->loop, &conf,
				    stream ? &fake_stream_ops : &fake_ops, f,
				    &f->e, &err),
			 0);
	engine_start(f->e);
	return f;
}

static fake *fake_start(const char *argv_json, int64_t heartbeat_ms)
{
	return fake_start_with(argv_json, heartbeat_ms, false, NULL);
}

/* Run the loop until done(f) (or fail after 5 s). */
static void run_until_cond(fake *f, bool (*done)(const fake *f))
{
	uint64_t start = uv_hrtime();
	while (!done(f)) {
		if (uv_hrtime() - start > 5000000000ull)
			fail_msg("timed out waiting on the loop");
		uv_run(&f->loop, UV_RUN_ONCE);
	}
}

static bool completed(const fake *f)
{
	return f->completes > 0;
}

static bool stopped(const fake *f)
{
	return f->stopped != 0;
}

static bool idle(const fake *f)
{
	return engine_held(f->e) == 0;
}

static bool executing(const fake *f)
{
	return engine_executing(f->e) > 0;
}

/* Stop (grace_ms) and wait for done. */
static void fake_stop(fake *f, int64_t grace_ms)
{
	engine_stop(f->e, grace_ms, on_stopped, f);
	run_until_cond(f, stopped);
}

/* Close the loop: nothing may be left on it. */
static void fake_free(fake *f)
{
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	json_decref(f->command);
	free(f);
}

/* Stop with no grace, close the loop. */
static void fake_end(fake *f)
{
	fake_stop(f, 0);
	fake_free(f);
}

/* ---- tests --------------------------------------------------------- */

static void test_command_reported(void **state)
{
	(void)state;
	fake *f = fake_start("[\"sh\",\"-c\",\"echo hi\"]", 0);

	run_until_cond(f, completed);
	run_until_cond(f, idle);
	assert_int_equal(f->completes, 1);
	assert_string_equal(f->run_id, "42");
	assert_int_equal(f->attempt, 3);
	assert_int_equal(f->status, RUN_SUCCEEDED);
	assert_int_equal(f->exit_code, 0);
	assert_int_equal(f->output_len, 3);
	assert_memory_equal(f->output, "hi\n", 3);
	assert_true(f->lines >= 1); /* the run's line */
	fake_end(f);
}

static void test_lost_heartbeat_cancels(void **state)
{
	(void)state;
	fake *f = fake_start("[\"sleep\",\"30\"]", 20);
	uint64_t start;

	f->heartbeat_answer = ENGINE_LOST;
	run_until_cond(f, executing);
	start = uv_hrtime();
	run_until_cond(f, idle);
	assert_true(uv_hrtime() - start < 3000000000ull);
	assert_true(f->heartbeats >= 1);
	assert_int_equal(f->completes, 0);
	assert_int_equal(f->releases, 0);
	fake_end(f);
}

static void test_transient_complete_retried(void **state)
{
	(void)state;
	fake *f = fake_start("[\"sh\",\"-c\",\"exit 3\"]", 0);

	f->complete_transient = 2;
	/* "exit 3" may end before the loop returns: wait for the end */
	run_until_cond(f, completed);
	run_until_cond(f, idle);
	assert_int_equal(f->completes, 3);
	assert_int_equal(f->complete_transient, 0);
	assert_int_equal(f->status, RUN_FAILED);
	assert_int_equal(f->exit_code, 3);
	fake_end(f);
}

static void test_stop_hands_back(void **state)
{
	(void)state;
	fake *f = fake_start("[\"sleep\",\"30\"]", 0);
	uint64_t start;

	run_until_cond(f, executing);
	start = uv_hrtime();
	fake_stop(f, 0);
	assert_true(uv_hrtime() - start < 3000000000ull);
	assert_int_equal(f->releases, 1);
	assert_int_equal(f->completes, 0);
	fake_free(f);
}

static void test_output_repaired(void **state)
{
	(void)state;
	/* a, an invalid byte, b, NUL, c */
	fake *f = fake_start("[\"sh\",\"-c\","
			     "\"printf 'a\\\\377b\\\\000c'\"]",
			     0);
	static const char want[] = "a\xef\xbf\xbd"
				   "b\xef\xbf\xbd"
				   "c";

	run_until_cond(f, completed);
	run_until_cond(f, idle);
	assert_int_equal(f->status, RUN_SUCCEEDED);
	assert_int_equal(f->output_len, sizeof want - 1);
	assert_memory_equal(f->output, want, sizeof want - 1);
	fake_end(f);
}

static bool opened_twice(const fake *f)
{
	return f->streams >= 2;
}

static void test_stream_pushes(void **state)
{
	(void)state;
	fake *f = fake_start_with("[\"sh\",\"-c\",\"echo s\"]", 0, true, NULL);

	run_until_cond(f, completed);
	run_until_cond(f, idle);
	assert_int_equal(f->streams, 1);
	assert_int_equal(f->max_inflight, 2); /* all the slots, one queue */
	assert_int_equal(f->claims, 0);
	assert_int_equal(f->status, RUN_SUCCEEDED);
	assert_memory_equal(f->output, "s\n", 2);
	fake_end(f); /* aborts the open stream */
}

static void set_ends(fake *f)
{
	f->stream_ends = true;
}

static void test_stream_reopened_after_clean_end(void **state)
{
	(void)state;
	fake *f = fake_start_with("[\"sh\",\"-c\",\"echo s\"]", 0, true,
				  set_ends);

	run_until_cond(f, completed);
	run_until_cond(f, opened_twice);
	assert_int_equal(f->claims, 0);
	fake_end(f);
}

static void set_refused(fake *f)
{
	f->stream_answer = ENGINE_REJECTED;
}

static void test_stream_refused_falls_back_to_claims(void **state)
{
	(void)state;
	fake *f = fake_start_with("[\"sh\",\"-c\",\"echo c\"]", 0, true,
				  set_refused);

	run_until_cond(f, completed);
	assert_int_equal(f->streams, 1);
	assert_true(f->claims >= 1);
	assert_int_equal(f->status, RUN_SUCCEEDED);
	fake_end(f);
}

static void test_utf8_repair(void **state)
{
	char out[64];
	size_t n;

	(void)state;
	/* a cut character at the very start is dropped */
	n = utf8_repair("\x82\xacok", 4, out);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "ok", 2);
	/* valid text is kept; a cut one at the end becomes U+FFFD */
	n = utf8_repair("\xe2\x82\xac\xe2\x82", 5, out);
	assert_int_equal(n, 9);
	assert_memory_equal(out, "\xe2\x82\xac\xef\xbf\xbd\xef\xbf\xbd", 9);
	/* overlong and surrogate forms */
	n = utf8_repair("\xc0\xaf", 2, out);
	assert_int_equal(n, 6);
	n = utf8_repair("\xed\xa0\x80", 3, out);
	assert_int_equal(n, 9);
	assert_int_equal(utf8_repair("", 0, out), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_reported),
		cmocka_unit_test(test_lost_heartbeat_cancels),
		cmocka_unit_test(test_transient_complete_retried),
		cmocka_unit_test(test_stop_hands_back),
		cmocka_unit_test(test_output_repaired),
		cmocka_unit_test(test_stream_pushes),
		cmocka_unit_test(test_stream_reopened_after_clean_end),
		cmocka_unit_test(test_stream_refused_falls_back_to_claims),
		cmocka_unit_test(test_utf8_repair),
	};
	/* a closed pipe must not kill the test */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
