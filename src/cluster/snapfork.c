#include "cluster/snapfork.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"

#define COPY_CHUNK ((size_t)1 << 20)
/* Written data is pushed to the disk every this many bytes (see
 * copy_to_file). */
#define WRITEBACK_STEP ((uint64_t)8 << 20)

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int sink_fd(void *ud, const void *p, size_t n)
{
	return write_all(*(int *)ud, p, n);
}

/* In the child: encode into the pipe and leave without running any of
 * the parent's exit handlers. */
static void child_main(const fsm *f, int wfd)
{
	int fd = 3;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* the parent's handlers (libuv's) would write to its signal pipe:
	 * a SIGTERM meant for the group simply ends the child */
	static const int sigs[] = {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD,
				   SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		signal(sigs[i], SIG_DFL);
	/* keep stdio and the pipe (as fd 3), drop the parent's sockets */
	if (wfd != fd && dup2(wfd, fd) < 0)
		_exit(2);
	close_range(4, ~0u, 0);
	_exit(fsm_snapshot_write(f, sink_fd, &fd) == 0 ? 0 : 1);
}

/* On the thread pool (patch 0007): the child's bytes into the file. */
static int copy_to_file(struct raft_uv_snapshot_writer *w, int fd,
			char *errmsg)
{
	snapfork *s = (snapfork *)w;
	uint64_t t0 = mono_ns();
	char *buf = hora_malloc(COPY_CHUNK);
	int rv = 0;
	if (buf == NULL) {
		snprintf(errmsg, RAFT_ERRMSG_BUF_SIZE, "out of memory");
		rv = RAFT_NOMEM;
	}
	while (rv == 0) {
		ssize_t n = read(s->rfd, buf, COPY_CHUNK);
		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || write_all(fd, buf, (size_t)n) != 0) {
			snprintf(errmsg, RAFT_ERRMSG_BUF_SIZE,
				 "snapshot %s: %s", n < 0 ? "pipe" : "write",
				 strerror(errno));
			rv = RAFT_IOERR;
			break;
		}
		s->bytes += (uint64_t)n;
		/* Incremental writeback: a few hundred MB of dirty pages
		 * flushed at once by the final fsync stall the Raft log's
		 * own fsyncs behind them for 100+ ms.  Start writing each
		 * step as it fills and wait for the one before. */
		if (s->bytes - s->synced >= WRITEBACK_STEP) {
			uint64_t from = s->synced;
			sync_file_range(fd, (off64_t)from,
					(off64_t)(s->bytes - from),
					SYNC_FILE_RANGE_WRITE);
			if (from >= WRITEBACK_STEP)
				sync_file_range(fd,
						(off64_t)(from - WRITEBACK_STEP),
						(off64_t)WRITEBACK_STEP,
						SYNC_FILE_RANGE_WAIT_BEFORE |
							SYNC_FILE_RANGE_WRITE |
							SYNC_FILE_RANGE_WAIT_AFTER);
			s->synced = s->bytes;
		}
	}
	hora_free(buf);
	/* the child is done (EOF) or must be (we stop reading) */
	if (rv != 0)
		kill(s->pid, SIGKILL);
	while (waitpid(s->pid, &s->status, 0) < 0 && errno == EINTR)
		;
	s->reaped = 1;
	if (rv == 0 && !(WIFEXITED(s->status) && WEXITSTATUS(s->status) == 0)) {
		snprintf(errmsg, RAFT_ERRMSG_BUF_SIZE,
			 "the snapshot child failed (%s %d)",
			 WIFSIGNALED(s->status) ? "signal" : "exit",
			 WIFSIGNALED(s->status) ? WTERMSIG(s->status)
						: WEXITSTATUS(s->status));
		rv = RAFT_IOERR;
	}
	s->copy_ns = mono_ns() - t0;
	return rv;
}

int snapfork_start(const fsm *f, snapfork **out)
{
	int p[2];
	snapfork *s = hora_calloc(1, sizeof *s);
	if (s == NULL)
		return -HORA_ENOMEM;
	if (pipe2(p, O_CLOEXEC) != 0) {
		log_warn("snapshot: pipe: %s", strerror(errno));
		hora_free(s);
		return -HORA_EIO;
	}
	uint64_t t0 = mono_ns();
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		child_main(f, p[1]);
	}
	s->fork_ns = mono_ns() - t0;
	close(p[1]);
	if (pid < 0) {
		log_warn("snapshot: fork: %s", strerror(errno));
		close(p[0]);
		hora_free(s);
		return -HORA_EIO;
	}
	s->writer.magic = RAFT_UV_SNAPSHOT_WRITER_MAGIC;
	s->writer.write = copy_to_file;
	s->pid = pid;
	s->rfd = p[0];
	s->index = fsm_last_index(f);
	*out = s;
	return 0;
}

void snapfork_free(snapfork *s)
{
	if (s == NULL)
		return;
	if (s->rfd >= 0)
		close(s->rfd);
	if (!s->reaped) {
		kill(s->pid, SIGKILL);
		while (waitpid(s->pid, &s->status, 0) < 0 && errno == EINTR)
			;
	}
	hora_free(s);
}
