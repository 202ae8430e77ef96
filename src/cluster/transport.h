/*
 * transport.h - C-Raft's TCP transport, wrapped to notice a peer's
 * death at once.
 *
 * A follower hears from the leader over the connection the leader
 * opened; when the leader process dies the kernel closes that
 * connection (EOF) tens of milliseconds later, long before an election
 * timeout would pass.  This wrapper hands every accepted connection to
 * raft as usual and also watches its socket for EPOLLRDHUP in an epoll
 * set of its own (the fd itself, never a dup, so closing stays raft's
 * business and the registration dies with the socket).  peer_gone(ud,
 * id) then tells the node, which shortens its election timeout
 * (DESIGN.md, "Facts measured here").  Loop thread only.
 */
#ifndef HORA_CLUSTER_TRANSPORT_H
#define HORA_CLUSTER_TRANSPORT_H

#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

typedef struct watch_transport watch_transport;

typedef void (*transport_peer_gone_cb)(void *ud, uint64_t id);

/* Set up *out (caller-allocated) around a new raft_uv_tcp transport;
 * out->outer is what goes to raft_uv_init.  Returns a RAFT_* code. */
int transport_init(watch_transport **out, uv_loop_t *loop,
		   transport_peer_gone_cb cb, void *ud);
struct raft_uv_transport *transport_raft(watch_transport *w);
/* Release after raft_close has closed the transport. */
void transport_free(watch_transport *w);

#endif
