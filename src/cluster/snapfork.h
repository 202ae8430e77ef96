/*
 * snapfork.h - a snapshot of the state machine encoded by a forked child,
 * so that the loop which hands out runs never encodes the state itself.
 *
 * C-Raft asks for a snapshot on the loop (raft_fsm.snapshot).  Encoding
 * 1,000,000 jobs takes 0.3-1 s; a fork() takes a few milliseconds (the
 * page tables: ~20 ms per GB of RSS on the development machine) and
 * freezes the state as it is at that index, copy-on-write.  The child
 * streams the encoding (fsm_snapshot_write, 1 MiB pieces) into a pipe
 * and exits; C-Raft's thread pool reads the pipe into the snapshot file
 * through the writer hook of patch 0007 (raft/uv.h,
 * struct raft_uv_snapshot_writer), so neither process holds the whole
 * encoding in memory.
 *
 * The child closes every descriptor but its pipe (it must not hold the
 * parent's sockets open), dies with the parent (PR_SET_PDEATHSIG) and
 * leaves with _exit().  It is reaped by the writer, or killed and reaped
 * by snapfork_free() if the writer never ran.
 *
 * snapfork_start() and snapfork_free() run on the loop; the writer runs
 * once on a thread of the pool, between them.
 */
#ifndef HORA_CLUSTER_SNAPFORK_H
#define HORA_CLUSTER_SNAPFORK_H

#include <stdint.h>
#include <sys/types.h>

#include <raft/uv.h>

#include "fsm/fsm.h"

typedef struct snapfork {
	/* first: C-Raft gets &writer as the snapshot's only buffer */
	struct raft_uv_snapshot_writer writer;
	pid_t pid;
	int rfd;          /* the pipe's read end; -1 once closed */
	int status;       /* the child's wait status, once reaped */
	int reaped;       /* 1 once waited for */
	uint64_t index;   /* the state's applied index (for the log) */
	uint64_t bytes;   /* copied to the snapshot file */
	uint64_t synced;  /* of which handed to writeback */
	uint64_t fork_ns; /* how long fork() held the loop */
	uint64_t copy_ns; /* how long the writer took, child included */
} snapfork;

/* Fork the child that encodes `f` as it is now.  0, or -HORA_EIO /
 * -HORA_ENOMEM (with errno's reason logged): the caller encodes on the
 * loop instead. */
int snapfork_start(const fsm *f, snapfork **out);

/* Release: close the pipe; kill and reap the child if the writer has not
 * reaped it.  NULL is fine. */
void snapfork_free(snapfork *s);

#endif
