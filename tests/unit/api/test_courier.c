/*
 * test_courier.c - timed writes by the courier thread, on a socketpair:
 * order by instant, never early, revoking, reports on the loop, finishing
 * (drained or given up) and aborting from inside a callback.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "api/courier.h"
#include "core/alloc.h"
#include "core/err.h"

typedef struct fixture {
	uv_loop_t loop;
	courier *c;
	int fd[2];
	courier_line *l;
	uint64_t tags[16];
	hora_time ats[16];
	int nwritten;
	int ndone;
	bool done_ok;
	bool abort_in_cb;
	int stop_after; /* stop the loop after this many reports */
	uv_timer_t guard;
	uv_timer_t reader;
	size_t nread;
} fixture;

static void on_written(void *ud, uint64_t tag, hora_time at)
{
	fixture *f = ud;
	if (f->nwritten < 16) {
		f->tags[f->nwritten] = tag;
		f->ats[f->nwritten] = at;
	}
	f->nwritten++;
	if (f->abort_in_cb) {
		courier_line_abort(f->l);
		f->l = NULL;
		f->abort_in_cb = false;
	}
	if (f->nwritten >= f->stop_after)
		uv_stop(&f->loop);
}

static void on_done(void *ud, bool ok)
{
	fixture *f = ud;
	f->ndone++;
	f->done_ok = ok;
	f->l = NULL;
	uv_stop(&f->loop);
}

static void on_guard(uv_timer_t *t)
{
	uv_stop(t->loop);
}

static int setup(void **state)
{
	fixture *f = hora_calloc(1, sizeof *f);
	assert_non_null(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(courier_new(&f->loop, &f->c), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, f->fd), 0);
	f->l = courier_line_open(f->c, f->fd[0], on_written, on_done, f);
	assert_non_null(f->l);
	uv_timer_init(&f->loop, &f->guard);
	uv_timer_init(&f->loop, &f->reader);
	f->reader.data = f;
	f->stop_after = 1 << 30;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	if (f->l)
		courier_line_abort(f->l);
	courier_free(f->c);
	uv_close((uv_handle_t *)&f->guard, NULL);
	uv_close((uv_handle_t *)&f->reader, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	close(f->fd[0]);
	close(f->fd[1]);
	hora_free(f);
	return 0;
}

/* Run the loop until stopped, at most `ms`. */
static void run_for(fixture *f, uint64_t ms)
{
	uv_timer_start(&f->guard, on_guard, ms, 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	uv_timer_stop(&f->guard);
}

/* Until the thread has written every delivery of the line (at most 5 s). */
static void wait_written(fixture *f)
{
	uv_run(&f->loop, UV_RUN_NOWAIT); /* writes due now: the thread is woken */
	for (int i = 0; i < 5000 && courier_line_waiting(f->l) > 0; i++)
		usleep(1000);
	assert_int_equal(courier_line_waiting(f->l), 0);
}

static size_t read_all(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	for (;;) {
		ssize_t k = recv(fd, buf + n, cap - n, MSG_DONTWAIT);
		if (k <= 0)
			return n;
		n += (size_t)k;
	}
}

static void test_writes_in_order_of_instant_never_early(void **state)
{
	fixture *f = *state;
	hora_time now = hora_wallclock_usec();
	hora_time a = now + 60000, b = now + 20000;
	assert_int_equal(courier_send_at(f->l, a, "abc", 3, 7), 0);
	assert_int_equal(courier_send_at(f->l, b, "xy", 2, 8), 0);
	assert_int_equal(courier_line_waiting(f->l), 2);
	f->stop_after = 2;
	run_for(f, 2000);
	assert_int_equal(f->nwritten, 2);
	assert_int_equal(f->tags[0], 8);
	assert_int_equal(f->tags[1], 7);
	assert_true(f->ats[0] >= b);
	assert_true(f->ats[1] >= a);
	char buf[16];
	assert_int_equal(read_all(f->fd[1], buf, sizeof buf), 5);
	assert_memory_equal(buf, "xyabc", 5);
	assert_int_equal(courier_line_waiting(f->l), 0);
	assert_int_equal(courier_line_backlog(f->l), 0);
}

static void test_revoke(void **state)
{
	fixture *f = *state;
	hora_time now = hora_wallclock_usec(), at = 0;
	assert_int_equal(courier_send_at(f->l, now + 200000, "late", 4, 1), 0);
	assert_int_equal(courier_revoke(f->l, 1, &at), COURIER_REVOKED);
	assert_int_equal(courier_revoke(f->l, 1, &at), COURIER_UNKNOWN);
	/* due now: the thread writes it; until the loop has its report,
	 * revoking says it was written, and when */
	assert_int_equal(courier_send_at(f->l, now - 5, "now", 3, 2), 0);
	wait_written(f);
	assert_int_equal(courier_revoke(f->l, 2, &at), COURIER_WRITTEN);
	assert_true(at >= now);
	run_for(f, 300);
	assert_int_equal(f->nwritten, 0); /* no report after a revoke */
	char buf[16];
	assert_int_equal(read_all(f->fd[1], buf, sizeof buf), 3);
	assert_memory_equal(buf, "now", 3);
}

/* Untagged writes are not reported. */
static void test_untagged_not_reported(void **state)
{
	fixture *f = *state;
	assert_int_equal(courier_send_at(f->l, 0, "\n", 1, 0), 0);
	run_for(f, 100);
	assert_int_equal(f->nwritten, 0);
	char buf[4];
	assert_int_equal(read_all(f->fd[1], buf, sizeof buf), 1);
}

static void on_reader(uv_timer_t *t)
{
	fixture *f = t->data;
	char buf[65536];
	size_t n;
	while ((n = read_all(f->fd[1], buf, sizeof buf)) > 0)
		f->nread += n;
}

/* 4 MiB written now: more than the socket takes, so some stays in the
 * line's output.  Returns the size. */
static size_t write_more_than_fits(fixture *f)
{
	size_t big = 4 << 20;
	char *p = hora_calloc(1, big);
	assert_non_null(p);
	assert_int_equal(courier_send_at(f->l, 0, p, big, 0), 0);
	hora_free(p);
	wait_written(f);
	assert_true(courier_line_backlog(f->l) > 0);
	return big;
}

/* A big write the socket cannot take at once: finish drains it (the
 * client reads), then done(true); the waiting one is dropped. */
static void test_finish_drains_then_done(void **state)
{
	fixture *f = *state;
	size_t big = write_more_than_fits(f);
	assert_int_equal(courier_send_at(f->l, hora_wallclock_usec() + 50000,
					 "never", 5, 9),
			 0);
	courier_line_finish(f->l, 5000);
	assert_int_equal(courier_send_at(f->l, 0, "x", 1, 0), -HORA_EINVAL);
	uv_timer_start(&f->reader, on_reader, 1, 1);
	run_for(f, 5000);
	uv_timer_stop(&f->reader);
	assert_int_equal(f->ndone, 1);
	assert_true(f->done_ok);
	on_reader(&f->reader);
	assert_int_equal(f->nread, big);
	assert_int_equal(f->nwritten, 0);
}

/* Lines queued now and a finish in the same loop turn: the untagged one
 * goes out (it is due), the tagged one is dropped (its owner takes the
 * run back), then done(true). */
static void test_finish_sends_what_is_due(void **state)
{
	fixture *f = *state;
	assert_int_equal(courier_send_at(f->l, 0, "last\n", 5, 0), 0);
	assert_int_equal(courier_send_at(f->l, 0, "run\n", 4, 4), 0);
	courier_line_finish(f->l, 1000);
	run_for(f, 2000);
	assert_int_equal(f->ndone, 1);
	assert_true(f->done_ok);
	assert_int_equal(f->nwritten, 0);
	char buf[16];
	assert_int_equal(read_all(f->fd[1], buf, sizeof buf), 5);
	assert_memory_equal(buf, "last\n", 5);
}

/* Nobody reads: finish gives up after its grace. */
static void test_finish_gives_up(void **state)
{
	fixture *f = *state;
	write_more_than_fits(f);
	uint64_t t0 = uv_hrtime();
	courier_line_finish(f->l, 100);
	run_for(f, 3000);
	assert_int_equal(f->ndone, 1);
	assert_false(f->done_ok);
	assert_true(uv_hrtime() - t0 >= 100 * 1000000ull);
}

/* A callback that aborts its line: the other reports of the batch are
 * not delivered, the line is freed once the callback returns. */
static void test_abort_inside_callback(void **state)
{
	fixture *f = *state;
	hora_time at = hora_wallclock_usec() + 20000;
	assert_int_equal(courier_send_at(f->l, at, "a", 1, 1), 0);
	assert_int_equal(courier_send_at(f->l, at, "b", 1, 2), 0);
	f->abort_in_cb = true;
	run_for(f, 300);
	assert_int_equal(f->nwritten, 1);
	assert_null(f->l);
}

/* The peer closed: the line fails; finishing says so. */
static void test_peer_gone(void **state)
{
	fixture *f = *state;
	close(f->fd[1]);
	f->fd[1] = socket(AF_UNIX, SOCK_STREAM, 0); /* for teardown */
	assert_int_equal(courier_send_at(f->l, 0, "x", 1, 3), 0);
	wait_written(f);
	courier_line_finish(f->l, 1000);
	run_for(f, 2000);
	assert_int_equal(f->ndone, 1);
	assert_false(f->done_ok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_writes_in_order_of_instant_never_early, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
		cmocka_unit_test_setup_teardown(test_untagged_not_reported,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_drains_then_done,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_sends_what_is_due,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_gives_up, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_abort_inside_callback,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_gone, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
