/*
 * test_snapfork.c - src/cluster/snapfork.c: a snapshot encoded by a
 * forked child.  The bytes C-Raft's writer copies out of the child are
 * exactly fsm_snapshot_encode()'s; the state the child encodes is the
 * one at the fork, whatever the parent does next; an unread child is
 * killed and reaped; streaming (fsm_snapshot_write) gives the same bytes
 * as one buffer.
 */
#include "../test_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster/snapfork.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "fsm/entry.h"
#include "fsm/fsm.h"

#define SEC HORA_USEC_PER_SEC
#define T0 ((hora_time)1700000000 * SEC)

static uint64_t idx;

static void put_jobs(fsm *f, const char *prefix, int n)
{
	for (int i = 0; i < n; i++) {
		job_spec s;
		uint8_t *buf;
		size_t len;
		char name[64];
		snprintf(name, sizeof name, "%s-%06d", prefix, i);
		job_spec_init(&s);
		s.name = hora_strdup(name);
		s.schedule = hora_strdup("0 0 1 1 *");
		assert_int_equal(entry_encode_put(&s, 1, 0, T0, &buf, &len), 0);
		job_spec_free(&s);
		assert_int_equal(fsm_apply(f, buf, len, ++idx, NULL), 0);
		hora_free(buf);
	}
}

static int tmpfile_fd(void)
{
	char path[] = "/tmp/hora-snapfork-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

static void read_back(int fd, hora_buf *out)
{
	char chunk[65536];
	ssize_t n;
	assert_true(lseek(fd, 0, SEEK_SET) == 0);
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		buf_add(out, chunk, (size_t)n);
	assert_false(out->oom);
}

static void test_child_bytes_are_the_encoding_at_the_fork(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	put_jobs(f, "a", 3000); /* a few MiB: more than one pipe buffer */
	uint8_t *want;
	size_t want_len;
	assert_int_equal(fsm_snapshot_encode(f, &want, &want_len), 0);

	snapfork *sf;
	assert_int_equal(snapfork_start(f, &sf), 0);
	/* the parent moves on: the child still encodes the frozen state */
	put_jobs(f, "b", 500);

	int fd = tmpfile_fd();
	char errmsg[RAFT_ERRMSG_BUF_SIZE] = "";
	assert_int_equal(sf->writer.write(&sf->writer, fd, errmsg), 0);
	assert_true(sf->reaped);
	assert_true(WIFEXITED(sf->status) && WEXITSTATUS(sf->status) == 0);
	assert_int_equal(sf->bytes, want_len);
	assert_int_equal(sf->index, 3000);

	hora_buf got = HORA_BUF_INIT;
	read_back(fd, &got);
	assert_int_equal(got.len, want_len);
	assert_memory_equal(got.p, want, want_len);
	close(fd);
	buf_free(&got);
	hora_free(want);
	snapfork_free(sf);
	fsm_free(f);
}

static void test_free_without_write_reaps_the_child(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	put_jobs(f, "c", 2000);
	snapfork *sf;
	assert_int_equal(snapfork_start(f, &sf), 0);
	pid_t pid = sf->pid;
	snapfork_free(sf);
	/* reaped: no such child any more */
	assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
	fsm_free(f);
}

static int sink_buf(void *ud, const void *p, size_t n)
{
	buf_add(ud, p, n);
	return 0;
}

static int sink_fail(void *ud, const void *p, size_t n)
{
	(void)ud;
	(void)p;
	(void)n;
	return -1;
}

static void test_streamed_encoding_is_the_same(void **state)
{
	(void)state;
	fsm *f;
	assert_int_equal(fsm_new(&f), 0);
	put_jobs(f, "d", 5000);
	uint8_t *want;
	size_t want_len;
	assert_int_equal(fsm_snapshot_encode(f, &want, &want_len), 0);
	hora_buf got = HORA_BUF_INIT;
	assert_int_equal(fsm_snapshot_write(f, sink_buf, &got), 0);
	assert_int_equal(got.len, want_len);
	assert_memory_equal(got.p, want, want_len);
	/* and it restores */
	fsm *g;
	assert_int_equal(fsm_new(&g), 0);
	assert_int_equal(fsm_snapshot_restore(g, got.p, got.len), 0);
	assert_int_equal(store_count(fsm_store(g)), 5000);
	assert_int_equal(fsm_snapshot_write(f, sink_fail, NULL), -HORA_EIO);
	buf_free(&got);
	hora_free(want);
	fsm_free(g);
	fsm_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_child_bytes_are_the_encoding_at_the_fork),
		cmocka_unit_test(test_free_without_write_reaps_the_child),
		cmocka_unit_test(test_streamed_encoding_is_the_same),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
